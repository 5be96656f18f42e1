"""Smoke tests: the shipped examples load, validate, and the CLI's exit codes hold."""

from __future__ import annotations

from pathlib import Path

import pytest

import mps_analgesia as mps
from mps_analgesia.cli import main

EXAMPLES = sorted(Path(__file__).parent.parent.joinpath("examples").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads_and_validates_without_error(path: Path) -> None:
    """Every shipped example is a valid case and has no error-severity finding."""
    case = mps.load_case(path)
    report = mps.validate(case.regimen, case.patient)
    assert not report.has_errors, report.to_text()


def test_cli_check_example_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    """`check` on the multimodal example prints a report and exits 0."""
    assert main(["check", "examples/mps-multimodal.toml"]) == 0
    out = capsys.readouterr().out
    assert "Decision support only" in out
