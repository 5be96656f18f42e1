"""Shared helpers of the red-team suites in this folder: a case, and the outcomes of one rule.

A case is a regimen and a patient (both built lazily, so a collection error names the case)
and what a pharmacist insists on for one finding code; every case names its source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

import mps_analgesia as mps


@attrs.define(frozen=True)
class Case:
    """``expect``: ``error`` / ``warning`` / ``info`` (a finding of that code and severity),
    ``clean`` (no finding of that code; the check passed or did not apply), ``passed``,
    ``not_checked``, ``not_applicable``."""

    id: str
    source: str
    steps: Callable[[], Sequence[Any]]
    patient: Callable[[], mps.Patient]
    code: str
    expect: str


def outcome(report: mps.Report, code: str) -> set[str]:
    """Every outcome of ``code`` in a report: severities, ``passed``, ``not_checked`` …"""
    out = {f.severity for f in report.findings if f.code == code}
    if any(n.rule == code for n in report.not_checked):
        out.add("not_checked")
    if any(a.rule == code for a in report.not_applicable):
        out.add("not_applicable")
    if any(r == code for r, _ in report.passed):
        out.add("passed")
    return out


def run(case: Case) -> mps.Report:
    """Validate a case."""
    return mps.validate(mps.Regimen(list(case.steps())), case.patient())


def check(case: Case) -> None:
    """Assert that a case gives what its ``expect`` says (and nothing worse for ``clean``)."""
    report = run(case)
    got = outcome(report, case.code)
    messages = [f.message for f in report.findings if f.code == case.code]
    if case.expect == "clean":
        assert not got & {"error", "warning", "info"}, (case.id, messages)
    else:
        assert case.expect in got, (case.id, got, messages)
        if case.expect == "warning":
            assert "error" not in got, (case.id, messages)
