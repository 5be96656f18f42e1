"""Benchmarks for equianalgesia (issue 3).

Targets: ``daily_ome()`` of a 6-step regimen ≤ 20 µs median; ``convert_opioid()`` ≤ 50 µs.
The data tables are loaded (and their factors precomputed) once, before timing.

Run: ``python -m pytest benchmarks/bench_conversion.py --benchmark-only -q``
"""

from __future__ import annotations

from typing import Any

import pytest

import mps_analgesia as mps
from mps_analgesia.conversion import (
    breakthrough_dose,
    compare_tables,
    convert_opioid,
    daily_ome,
    methadone_from_ome,
)


@pytest.fixture(scope="module")
def regimen() -> mps.Regimen:
    """A 6-step multimodal regimen: MR oxycodone, PRN oxycodone, adjuvant methadone, a patch,
    acetaminophen and regular oral morphine."""
    reg = mps.Regimen(
        [
            mps.OpioidStep(
                drug="oxycodone", formulation="modified-release", dose="30 mg", every="12 h"
            ),
            mps.OpioidStep(
                drug="oxycodone", dose="10 mg", every="2 h", prn=True, max_doses_per_24h=6
            ),
            mps.MethadoneAdjuvantStep(
                dose="5 mg", every="8 h", titration=[{"day": 7, "dose": "7.5 mg"}]
            ),
            mps.OpioidStep(drug="fentanyl", route="transdermal", rate="25 mcg/h"),
            mps.AdjuvantStep(drug="acetaminophen", role="nociceptive", dose="1 g", every="6 h"),
            mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h"),
        ]
    )
    daily_ome(reg)  # load the tables once
    convert_opioid(reg[0], to_drug="morphine")
    return reg


def test_daily_ome_six_steps(benchmark: Any, regimen: mps.Regimen) -> None:
    """daily_ome() of a 6-step regimen (target ≤ 20 µs median)."""
    result = benchmark(daily_ome, regimen)
    assert len(result.lines) == 4


def test_daily_ome_cdc_2016_tiers(benchmark: Any, regimen: mps.Regimen) -> None:
    """daily_ome() with the tiered methadone table."""
    result = benchmark(daily_ome, regimen, "cdc-2016")
    assert result.complete


def test_convert_opioid_step(benchmark: Any, regimen: mps.Regimen) -> None:
    """convert_opioid() of one step to oral morphine (target ≤ 50 µs median)."""
    result = benchmark(lambda: convert_opioid(regimen[0], to_drug="morphine"))
    assert result.schedule is not None


def test_convert_opioid_to_patch(benchmark: Any, regimen: mps.Regimen) -> None:
    """convert_opioid() of one step to a fentanyl patch."""
    result = benchmark(
        lambda: convert_opioid(regimen[0], to_drug="fentanyl", to_route="transdermal")
    )
    assert result.schedule is not None


def test_convert_opioid_regimen(benchmark: Any, regimen: mps.Regimen) -> None:
    """convert_opioid() of the whole regimen (adjuvant methadone left out) to hydromorphone."""
    result = benchmark(lambda: convert_opioid(regimen, to_drug="hydromorphone"))
    assert result.ome is not None


def test_methadone_from_ome(benchmark: Any) -> None:
    """methadone_from_ome() by the MSD tiers."""
    ome = mps.Q("250 MME/day")
    result = benchmark(lambda: methadone_from_ome(ome, scheme="msd-2023"))
    assert result.daily.high > 0


def test_breakthrough_dose(benchmark: Any, regimen: mps.Regimen) -> None:
    """breakthrough_dose() of the regimen."""
    result = benchmark(breakthrough_dose, regimen)
    assert result.drug == "oxycodone"


def test_compare_tables(benchmark: Any, regimen: mps.Regimen) -> None:
    """compare_tables() of the regimen under every table."""
    result = benchmark(compare_tables, regimen)
    assert len(result) >= 5
