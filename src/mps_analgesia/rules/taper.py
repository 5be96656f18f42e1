"""Tapers: the reduced opioid's rescue dose on each reduced day, reductions while methadone has
not reached steady state, and the statement that a taper's numbers are a clinical choice.

``taper.rescue-above-fraction``: on a day the taper has reduced the regular dose, a PRN step of
the same drug whose dose is above the breakthrough fraction (1/6, ``data/breakthrough.toml``)
of the reduced daily dose → warning naming the first such day and the recomputed rescue dose.
``taper.methadone-steady-state``: a reduction of another opioid within the days methadone takes
to reach steady state after it starts or rises (``data/methadone.toml`` [steady_state]) →
warning naming the days.
``taper.clinical-choice``: every taper → information: the percentage and interval are the
prescriber's (no source gives them after a block or radiotherapy), with the CDC paces of
``data/taper.toml`` for comparison.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from .. import _catalog
from ..errors import DataFileError
from ._engine import PASSED, Context, Rule, finding, rule
from ._util import above, num

__all__ = ["RULES"]

_OPIOID_KINDS: Final = ("opioid", "methadone_adjuvant")
#: How many reductions the rescue check looks at, at most (a bound on the work).
_MAX_REDUCTIONS: Final = 60


def _first(ctx: Context, step: Any) -> int:
    return int(step.first_day(ctx.regimen.steps, getattr(ctx.regimen, "start_date", None)))


def _reduction_days(step: Any, first: int, horizon: int) -> list[int]:
    return list(range(first, horizon + 1, step.every_days))


def _horizon(ctx: Context, step: Any, first: int) -> int:
    """The last day worth looking at: long enough for the taper to reach its floor or 60
    reductions, whichever comes first (a bound on the work, not a clinical number)."""
    return int(first + step.every_days * _MAX_REDUCTIONS)


@rule(
    "taper.rescue-above-fraction",
    title="Rescue dose after a taper reduction",
    applies_to=("taper",),
    needs=("step.dose",),
    sources=("japan-morphine-label",),
    severity="warning",
    data_files=("breakthrough.toml",),
    description="On a day a taper has reduced the regular opioid, a PRN step of the same drug "
    "whose dose is above the breakthrough fraction (data/breakthrough.toml, the Japanese label's "
    "{breakthrough:check_window.high}) of the reduced daily dose: the finding names the first such "
    "day and the recomputed rescue.",
)
def rescue_above(ctx: Context, index: int | None, step: Any) -> Any:
    """Recompute the rescue dose on each reduced day and compare the PRN dose with it."""
    steps: Any = ctx.regimen.steps
    prn = [
        (i, s)
        for i, s in enumerate(steps)
        if s.kind in _OPIOID_KINDS and s.prn and s.drug == step.drug
    ]
    if not prn:
        return None
    regular = [s for s in steps if s.kind in _OPIOID_KINDS and not s.prn and s.drug == step.drug]
    high = _catalog.breakthrough_window()[1]
    first = _first(ctx, step)
    out = []
    for i, s in prn:
        for day in _reduction_days(step, first, _horizon(ctx, step, first)):
            base = sum(r.daily_dose_mg_on(day) for r in regular)
            if base <= 0.0 or s.daily_dose_mg_on(day) <= 0.0:
                continue
            reduced = step.reduced_daily_mg(base, day, first)
            phase = s.phase_on(day)
            dose = phase.dose_mg if phase is not None else None
            if dose is None:
                continue
            rescue = reduced * high.value
            if above(dose, rescue):
                out.append(
                    finding(
                        "taper.rescue-above-fraction",
                        "warning",
                        f"Day {day}: the taper reduces {step.drug} to {num(round(reduced, 2))} "
                        f"mg/day; the rescue dose of step {i + 1} ({num(dose)} mg) is above the "
                        f"breakthrough fraction of it ({num(round(rescue, 2))} mg; {high.note}). "
                        "Recompute the rescue dose with each reduction.",
                        step=index,
                        source=(high.source,),
                        level=high.level,
                        arithmetic=f"{num(round(reduced, 2))} mg/day × {num(round(high.value, 4))} "
                        f"= {num(round(rescue, 2))} mg < {num(dose)} mg",
                        detail={
                            "day": day,
                            "prn_step": i,
                            "reduced_daily_mg": reduced,
                            "recomputed_rescue_mg": rescue,
                        },
                    )
                )
                break
            if reduced <= step.floor_mg_per_day:
                break
    return out or PASSED


@cache
def _steady_state() -> _catalog.SourcedValue:
    entry = _catalog.data_file("methadone.toml").get("steady_state")
    if not isinstance(entry, dict):
        raise DataFileError("methadone.toml: steady_state is missing")
    return _catalog.sourced(
        entry, dimension="time", unit="day", where="methadone.toml: steady_state"
    )


@rule(
    "taper.methadone-steady-state",
    title="Opioid reduced before methadone reaches steady state",
    applies_to=("taper",),
    needs=("step.titration",),
    sources=("methadone-us-label",),
    severity="warning",
    data_files=("methadone.toml",),
    description="A taper reduction of another opioid within the days methadone takes to reach "
    "steady state after it starts or its dose rises ({methadone:steady_state}, the upper end of "
    "the US Dolophine label's range): the effect of the methadone change is not yet known.",
)
def methadone_steady_state(ctx: Context, index: int | None, step: Any) -> Any:
    """Flag taper reductions that fall within the steady-state days of a methadone change."""
    if step.drug == "methadone":
        return None
    changes: list[tuple[int, int]] = []
    all_steps: Any = ctx.regimen.steps
    for i, s in enumerate(all_steps):
        if s.kind not in _OPIOID_KINDS or s.drug != "methadone":
            continue
        before = 0.0
        for phase in s.phases:
            if phase.daily_mg > before:
                changes.append((phase.first_day, i))
            before = phase.daily_mg
    if not changes:
        return None
    ss = _steady_state()
    first = _first(ctx, step)
    last_change = max(d for d, _ in changes)
    hits = []
    for day in _reduction_days(step, first, last_change + round(ss.value)):
        for change, _ in changes:
            if change <= day < change + ss.value:
                hits.append((day, change))
                break
    if not hits:
        return PASSED
    days = ", ".join(f"day {d} (methadone changed on day {c})" for d, c in hits)
    return finding(
        "taper.methadone-steady-state",
        "warning",
        f"The taper reduces {step.drug} on {days}, within {num(ss.value)} days of a methadone "
        f"start or increase ({ss.note}): the new methadone dose has not reached steady state, "
        "so its effect is not yet known. Reduce after steady state.",
        step=index,
        source=(ss.source,),
        level=ss.level,
        detail={"days": [d for d, _ in hits], "methadone_changes": [c for _, c in hits]},
    )


@cache
def _comparisons() -> tuple[tuple[float, float, str, str, str], ...]:
    raw = _catalog.data_file("taper.toml").get("comparison", {})
    out = []
    for name, entry in raw.items():
        where = f"taper.toml: comparison.{name}"
        interval = _catalog.sourced(
            entry, dimension="time", unit="day", where=where, key="interval"
        )
        pct = entry.get("percent")
        if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 < pct < 100:
            raise DataFileError(f"{where}.percent must be a number of percent, not {pct!r}")
        out.append((float(pct), interval.value, interval.source, interval.level, interval.note))
    return tuple(out)


@rule(
    "taper.clinical-choice",
    title="A taper's numbers are a clinical choice",
    applies_to=("taper",),
    needs=(),
    sources=("cdc-2022", "cdc-2016"),
    severity="info",
    data_files=("taper.toml",),
    description="Every taper: no source found gives the percentage or interval of an opioid "
    "reduction after a successful block or radiotherapy, so the taper's numbers are the "
    "prescriber's; the CDC paces of data/taper.toml are shown for comparison.",
)
def clinical_choice(ctx: Context, index: int | None, step: Any) -> Any:
    """State that the taper's pace is the prescriber's, with the CDC paces for comparison."""
    comparisons = _comparisons()
    cited = f" (the prescriber cites {step.source})" if step.source else ""
    pace = "; ".join(
        f"{num(p)} % every {num(days)} days ({note})" for p, days, _, _, note in comparisons
    )
    return finding(
        "taper.clinical-choice",
        "info",
        f"{step.describe()[0].upper()}{step.describe()[1:]}: the reduction is a clinical choice"
        f"{cited}; no source found gives a percentage after a successful block or radiotherapy. "
        f"For comparison: {pace}.",
        step=index,
        source=tuple(dict.fromkeys(src for _, _, src, _, _ in comparisons)),
        level="S",
        detail={"reduce_by_percent": step.reduce_by_percent, "every_days": step.every_days},
    )


RULES: tuple[Rule, ...] = (rescue_above, methadone_steady_state, clinical_choice)
