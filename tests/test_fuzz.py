"""Fuzzing every input boundary (issue 14): a result or an MpsAnalgesiaError, nothing else."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import mps_analgesia as mps
from mps_analgesia import _units
from mps_analgesia.errors import MpsAnalgesiaError, UnitError
from strategies_fuzz import (
    mutated_bundles,
    mutated_case_texts,
    mutated_protocol_texts,
    quantity_noise,
)

ROOT = Path(__file__).resolve().parents[1]
_SP = "[ \u00a0\u2007\u202f]*"
_SPELLING = "|".join(re.escape(s) for s in sorted(_units._SPELLINGS, key=len, reverse=True))
_DENOM = rf"(?:{_SPELLING}|24 ?(?:h|hr|hrs|hour|hours)|1\.73 ?(?:m2|m²|m\^2))"
#: What a quantity text may be: a number and documented unit spellings divided by '/'.
ORACLE = re.compile(
    rf"{_SP}[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?{_SP}"
    rf"(?:{_SPELLING})(?:{_SP}/{_SP}{_DENOM})*{_SP}"
)
_SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestBoundaries:
    @settings(max_examples=300, deadline=None)
    @given(quantity_noise())
    def test_quantity_text_is_a_number_or_a_unit_error(self, text: str) -> None:
        """Noisy quantity text is refused with UnitError or is a number and documented unit."""
        try:
            q = mps.Q(text)
        except UnitError:
            return
        assert ORACLE.fullmatch(text.replace("\u00a0", " ")), text
        assert q.magnitude == 0 or 1e-12 <= abs(q.magnitude) <= 1e12

    @_SLOW
    @given(mutated_case_texts())
    def test_mutated_case_file_loads_or_is_refused(self, text_format: tuple[str, str]) -> None:
        """A mutated case file loads, validates and is written, or raises MpsAnalgesiaError."""
        text, fmt = text_format
        try:
            case = mps.loads_case(text, format=fmt)
        except MpsAnalgesiaError:
            return
        mps.validate(case.regimen, case.patient)
        again = mps.loads_case(mps.dumps_case(case, format=fmt), format=fmt)
        assert again == case

    @_SLOW
    @given(mutated_protocol_texts())
    def test_mutated_protocol_file_loads_or_is_refused(self, text_format: tuple[str, str]) -> None:
        """A mutated protocol file loads or raises MpsAnalgesiaError."""
        text, fmt = text_format
        try:
            mps.loads_protocol(text, format=fmt)
        except MpsAnalgesiaError:
            return

    @_SLOW
    @given(mutated_bundles())
    def test_mutated_bundle_reads_or_is_refused(self, bundle: object) -> None:
        """A mutated FHIR Bundle reads back or raises MpsAnalgesiaError."""
        from mps_analgesia.fhir import from_bundle

        try:
            patient, regimen = from_bundle(bundle)  # type: ignore[arg-type]
        except MpsAnalgesiaError:
            return
        mps.validate(regimen, patient)


@pytest.mark.slow
def test_fuzz_harness_finds_nothing() -> None:
    """The fuzz harness over every boundary finds no bare exception, silent number or hang."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fuzz_boundaries.py"), "--n", "5000"],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "bare exceptions: 0" in out.stdout
