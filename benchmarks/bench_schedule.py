"""Benchmarks of the day plan (issue 11), with its budget.

Run with::

    python -m pytest benchmarks/bench_schedule.py --benchmark-only -q

Budget (median, on the development machine): ``schedule()`` of a 6-step regimen over 28 days
≤ 1 ms.  The regimen is the shipped multimodal example without its radiotherapy step (a
titrated methadone step, a PRN, a block by catheter): each call gets a regimen never seen before
(a new methadone dose), built outside the timing.  Baseline in the same run: the plain loop of
``daily_dose_mg_on(day)`` over the same steps and days, the least any day plan must do.  Reading
every day's OME is measured and reported, not budgeted (it is computed on first read, once per
distinct set of opioid doses).

A budget is checked only when the benchmark actually ran (not under ``--benchmark-disable``).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import attrs

import mps_analgesia as mps

ROOT = Path(__file__).resolve().parent.parent
MULTIMODAL = ROOT / "examples" / "mps-multimodal.toml"
DAYS = 28


def _regimens(n: int = 400) -> list[mps.Regimen]:
    """``n`` different six-step regimens: the methadone start dose differs in each."""
    steps = [s for s in mps.load_case(MULTIMODAL).regimen if s.kind != "radiotherapy"]
    assert len(steps) == 6
    k = next(i for i, s in enumerate(steps) if s.kind == "methadone_adjuvant")
    out = []
    for j in range(n):
        changed = list(steps)
        changed[k] = attrs.evolve(steps[k], dose=f"{5 - (j + 1) * 1e-4:.4f} mg")
        out.append(mps.Regimen(changed))
    return out


def _median(benchmark: Any) -> float | None:
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else float(stats.stats.median)


def _baseline(regimen: mps.Regimen) -> float:
    total = 0.0
    for d in range(DAYS):
        for step in regimen:
            if step.kind in ("opioid", "methadone_adjuvant", "adjuvant"):
                total += step.daily_dose_mg_on(d)  # type: ignore[union-attr]
    return total


def test_baseline_daily_dose_loop(benchmark: Any) -> None:
    """Baseline: daily_dose_mg_on over 6 steps × 28 days."""
    fresh = itertools.cycle(_regimens())
    benchmark(lambda: _baseline(next(fresh)))


def test_schedule_six_steps_28_days(benchmark: Any) -> None:
    """schedule() of a never-seen 6-step regimen over 28 days ≤ 1 ms (median)."""
    fresh = itertools.cycle(_regimens())
    mps.schedule(next(fresh), days=DAYS)  # load the modules outside the timing
    plan = benchmark(lambda: mps.schedule(next(fresh), days=DAYS))
    assert len(plan) == DAYS
    median = _median(benchmark)
    if median is not None:
        benchmark.extra_info["budget"] = 1e-3
        assert median <= 1e-3, f"median {median * 1e6:.0f} µs > budget 1000 µs"


def test_schedule_and_read_every_ome(benchmark: Any) -> None:
    """schedule() plus reading every day's regular and PRN OME (reported, not budgeted)."""
    fresh = itertools.cycle(_regimens())

    def run() -> float:
        plan = mps.schedule(next(fresh), days=DAYS)
        return sum(d.ome_regular.high_mme_per_day + d.ome_with_prn.high_mme_per_day for d in plan)

    assert benchmark(run) > 0
