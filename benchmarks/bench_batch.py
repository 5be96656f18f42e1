"""Benchmarks for many cases at once and for the block and radiotherapy rules.

Target (issue 4): 10 000 case files checked from disk in at most 15 s on one core.  The files are
generated in a temporary directory (copies of the shipped examples, 1 000 per sub-directory).

Run: ``python -m pytest benchmarks/bench_batch.py --benchmark-only -q``
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

import mps_analgesia as mps
from mps_analgesia import cli
from mps_analgesia.batch import validate_many
from mps_analgesia.cli import _check

N_FILES = 10_000
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 000 case files: the shipped examples copied round-robin into 10 sub-directories."""
    root = tmp_path_factory.mktemp("cases")
    texts = [p.read_text(encoding="utf-8") for p in sorted(EXAMPLES.glob("*.toml"))]
    for i in range(N_FILES):
        sub = root / f"{i // 1000:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"case{i:05d}.toml").write_text(texts[i % len(texts)], encoding="utf-8")
    # Warm the caches (registry, data tables) so every round measures the steady state.
    for _ in validate_many([next(root.rglob("*.toml"))]):
        pass
    return root


def test_validate_many_10000_files(benchmark: Any, case_dir: Path) -> None:
    """validate_many over 10 000 files read from disk (target ≤ 15 s)."""

    def run() -> int:
        n = 0
        for result in validate_many([case_dir]):
            assert result.ok
            n += 1
        return n

    assert benchmark.pedantic(run, rounds=3, iterations=1) == N_FILES


def test_cli_check_jsonl_10000_files(benchmark: Any, case_dir: Path) -> None:
    """`mps-analgesia check DIR --format jsonl` over 10 000 files, output discarded."""
    args = cli._parser().parse_args(["check", str(case_dir), "--format", "jsonl"])

    def run() -> int:
        with open(os.devnull, "w", encoding="utf-8") as out:
            return _check.run(args, out, io.StringIO())

    assert benchmark.pedantic(run, rounds=3, iterations=1) == 0


def _block_and_radiotherapy_regimen() -> tuple[mps.Regimen, mps.Patient]:
    steps = [
        mps.PsoasCompartmentBlockStep(
            drug="ropivacaine",
            concentration="0.2 %",
            bolus_volume="20 mL",
            infusion_rate="6 mL/h",
            infusion_duration="48 h",
            technique="catheter",
            side="left",
        ),
        mps.PsoasCompartmentBlockStep(
            drug="lidocaine",
            concentration="1 %",
            bolus_volume="20 mL",
            adrenaline=True,
            side="right",
        ),
        mps.RadiotherapyStep(total_dose="20 Gy", fractions=5, site="left psoas"),
        mps.RadiotherapyStep(
            total_dose="8 Gy", fractions=1, site="left psoas", prior_dose="8 Gy", prior_fractions=1
        ),
        mps.OpioidStep(
            drug="oxycodone", formulation="modified-release", dose="10 mg", every="12 h"
        ),
        mps.AdjuvantStep(drug="acetaminophen", role="nociceptive", dose="1 g", every="6 h"),
    ]
    patient = mps.Patient(
        age=70,
        sex="female",
        weight="60 kg",
        height="160 cm",
        anticoagulant=mps.Anticoagulant(
            drug="apixaban", dose="5 mg", every="12 h", last_dose_ago="80 h"
        ),
    )
    return mps.Regimen(steps), patient


def test_validate_block_and_radiotherapy_regimen(benchmark: Any) -> None:
    """validate() of a 6-step regimen with two blocks and two radiotherapy courses, every rule."""
    regimen, patient = _block_and_radiotherapy_regimen()
    mps.validate(regimen, patient)  # warm the caches
    report = benchmark(mps.validate, regimen, patient)
    assert report.counts["flagged"] > 0


def test_block_and_radiotherapy_rules_only(benchmark: Any) -> None:
    """The same regimen with only the block and radiotherapy rules (their own cost)."""
    from mps_analgesia.rules import RuleRegistry, block, radiotherapy

    regimen, patient = _block_and_radiotherapy_regimen()
    rules = RuleRegistry(block.RULES + radiotherapy.RULES)
    mps.validate(regimen, patient, rules=rules)
    report = benchmark(mps.validate, regimen, patient, rules=rules)
    assert report.counts["flagged"] > 0
