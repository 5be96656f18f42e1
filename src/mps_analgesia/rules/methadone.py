"""Methadone safety: the adjuvant dose range, QTc gates, ECG monitoring, titration pace and
interactions.

The rules apply to ``methadone_adjuvant`` steps (methadone *added to* the current opioid,
Takase 2015) and to ``opioid`` steps whose drug is methadone; ``methadone.adjuvant-range``
applies to adjuvant methadone only.  Values come from ``data/methadone.toml`` (QTc gates, ECG
schedule, titration interval, adjuvant range) and ``data/interactions.toml`` (the interaction
list by CYP role and QT effect).

``methadone.adjuvant-range``: the largest daily dose over the titration above the range's upper
end → warning; the final (target) daily dose below its lower end → info.
``methadone.qtc-contraindicated``: QTc above the contraindication threshold → error.
``methadone.qtc-prolonged``: QTc in the prolonged range (up to that threshold) → warning.
``methadone.ecg-required``: no QTc recorded → warning with the ECG schedule.
``methadone.titration-interval``: a dose increase sooner than the least interval of
``data/methadone.toml`` after the start or after the previous increase → warning.
``methadone.interaction``: a CYP inhibitor or inducer, a QT-prolonging drug, an opioid antagonist
or partial agonist among the other steps or the patient's medicines → warning.
"""

from __future__ import annotations

import functools
from functools import cache, lru_cache
from itertools import pairwise
from typing import Any, Final

import attrs

from .. import _catalog
from ..errors import DataFileError
from ..report import Finding
from ._engine import PASSED, Context, Missing, Rule, finding, for_drugs, rule
from ._util import above, below, measure, measure_range, num, step_outcomes
from .interactions import (
    MethadoneInteraction,
    Parties,
    outcome,
    parties,
    tables,
    unverified_note,
)

__all__ = ["RULES"]

_FILE: Final = "methadone.toml"
_KINDS: Final = ("opioid", "methadone_adjuvant")
_HOURS_PER_DAY: Final = 24.0  # a unit identity, not a clinical number


@attrs.define(frozen=True)
class _Values:
    lower: _catalog.SourcedValue
    upper: _catalog.SourcedValue
    qtc_contraindicated: _catalog.SourcedValue
    qtc_prolonged: _catalog.SourcedValue
    ecg_schedule: tuple[str, ...]
    ecg_source: str
    ecg_level: str
    ecg_note: str
    checkpoints: tuple[_catalog.SourcedValue, ...]
    min_interval: _catalog.SourcedValue
    min_interval_also: str


@cache
def _values() -> _Values:
    raw = _catalog.data_file(_FILE)

    def get(*path: str) -> Any:
        node: Any = raw
        for key in path:
            if not isinstance(node, dict) or key not in node:
                raise DataFileError(f"{_FILE}: {'.'.join(path)} is missing")
            node = node[key]
        return node

    def rate(*path: str) -> _catalog.SourcedValue:
        return _catalog.sourced(
            get(*path), dimension="mass_rate", unit="mg/day", where=f"{_FILE}: {'.'.join(path)}"
        )

    def ms(*path: str) -> _catalog.SourcedValue:
        return _catalog.sourced(
            get(*path), dimension="time", unit="ms", where=f"{_FILE}: {'.'.join(path)}"
        )

    ecg = get("ecg")
    schedule = ecg.get("schedule")
    if (
        not isinstance(schedule, list)
        or not schedule
        or not all(isinstance(s, str) and s.strip() for s in schedule)
    ):
        raise DataFileError(f"{_FILE}: ecg.schedule must be a non-empty list of texts")
    checkpoints = tuple(
        _catalog.sourced(c, dimension="mass_rate", unit="mg/day", where=f"{_FILE}: ecg.checkpoints")
        for c in ecg.get("checkpoints", ())
    )
    interval = get("titration", "min_interval")
    also = str(interval.get("also", ""))
    if also and also not in _catalog.sources():
        raise DataFileError(f"{_FILE}: titration.min_interval.also {also!r} is not a source id")
    values = _Values(
        rate("adjuvant_range", "lower"),
        rate("adjuvant_range", "upper"),
        ms("qtc", "contraindicated_above"),
        ms("qtc", "prolonged_from"),
        tuple(schedule),
        _catalog.source(str(ecg.get("source", ""))).id,
        _catalog.level_of(ecg, f"{_FILE}: ecg"),
        str(ecg.get("note", "")),
        checkpoints,
        _catalog.sourced(
            interval, dimension="time", unit="day", where=f"{_FILE}: titration.min_interval"
        ),
        also,
    )
    if not values.lower.value < values.upper.value:
        raise DataFileError(f"{_FILE}: adjuvant_range.lower must be below adjuvant_range.upper")
    return values


def _methadone_drug(drug: str) -> bool:
    return drug == "methadone"


def _is_methadone(step: Any) -> bool:
    # a methadone_adjuvant step's drug is always methadone (steps.py checks it)
    return bool(step.drug == "methadone")


def _changes(step: Any) -> list[tuple[int, float, float]]:
    """``(day, dose or rate, daily dose in mg/day)`` at the start and at each titration point
    (a point may change the frequency too: the daily dose is read from the step's phases)."""
    out = []
    for phase in step.phases:
        per = phase.rate_mg_per_h if phase.rate_mg_per_h is not None else phase.dose_mg
        out.append((phase.first_day, per, phase.daily_mg))
    return out


def _peak_shown(check: Any) -> Any:
    """Add the day of the step's peak daily dose to each finding of a titrated methadone step
    (its detail ``peak_day`` and ``peak_daily_dose``; a sentence unless the message already
    names both)."""

    @functools.wraps(check)
    def wrapped(ctx: Context, index: int | None, step: Any) -> Any:
        result = check(ctx, index, step)
        if result is PASSED or result is None or type(result) is Missing or not step.titration:
            return result
        one = isinstance(result, Finding)
        found = [result] if one else list(result)
        peak, day = step.daily_dose_mg, step.peak_day
        dose = f"{num(peak)} mg/day"
        out = []
        for f in found:
            if not isinstance(f, Finding) or f.step != index:
                out.append(f)
                continue
            message = f.message
            if not (dose in message and f"day {day}" in message):
                message += f" (Its peak: {dose} from day {day}.)"
            out.append(
                attrs.evolve(
                    f,
                    message=message,
                    detail={
                        **f.detail,
                        **measure("peak_daily_dose", peak, "mg/day"),
                        "peak_day": day,
                    },
                )
            )
        return out[0] if one else out

    return wrapped


def _daily_text(step: Any, per: float, daily: float) -> str:
    """How a daily dose is made: ``'10 mg × 3 doses/day'`` or ``'1.25 mg/h × 24 h'``."""
    if step.rate_mg_per_h is not None:
        return f"{num(per)} mg/h × 24 h"
    return f"{num(per)} mg × {num(daily / per)} doses/day"


# ---- adjuvant range --------------------------------------------------------------------------


@rule(
    "methadone.adjuvant-range",
    title="Adjuvant methadone dose range",
    applies_to=("methadone_adjuvant",),
    needs=("step.dose", "step.schedule", "step.titration"),
    sources=("takase-2015", "palliverse-2015"),
    severity="warning above {methadone:adjuvant_range.upper}, error above twice it (a usual range, "
    "far beyond: the severity policy); info when the final dose is below "
    "{methadone:adjuvant_range.lower}",
    data_files=(_FILE, "severity-policy.toml"),
    description="Adjuvant methadone outside the "
    "{methadone:adjuvant_range.lower!n}–{methadone:adjuvant_range.upper} range of the Takase 2015 "
    "MPS series [S]: the largest daily dose over the titration above "
    "{methadone:adjuvant_range.upper} is a warning, and more than twice it an error (a usual range "
    "far exceeded, data/severity-policy.toml); a final (target) daily dose below "
    "{methadone:adjuvant_range.lower} is information.",
)
@step_outcomes  # outside: the finding with its peak is kept too
@_peak_shown
def adjuvant_range(ctx: Context, index: int | None, step: Any) -> Any:
    """Compare adjuvant methadone's peak and final daily doses with the Takase range."""
    v = _values()
    changes = _changes(step)
    out = []
    peak_day, peak_per, peak = max(changes, key=lambda c: c[2])
    if above(peak, v.upper.value):
        when = "" if len(changes) == 1 else f" (its largest daily dose, from day {peak_day})"
        out.append(
            finding(
                "methadone.adjuvant-range",
                "warning",
                f"Adjuvant methadone reaches {num(peak)} mg/day{when}, above the "
                f"{num(v.lower.value)}–{num(v.upper.value)} mg/day range of the Takase 2015 MPS "
                f"series ({v.upper.note}).",
                step=index,
                source=(v.upper.source, "takase-2015"),
                level=v.upper.level,
                kind="usual-range",
                beyond=peak / v.upper.value,
                arithmetic=f"{_daily_text(step, peak_per, peak)} = {num(peak)} mg/day > "
                f"{num(v.upper.value)} mg/day",
                detail={
                    **measure("daily_dose", peak, "mg/day"),
                    "day": peak_day,
                    **measure_range("range", v.lower.value, v.upper.value, "mg/day"),
                },
            )
        )
    final_day, final_per, final = changes[-1]
    if below(final, v.lower.value):
        what = (
            f"is {num(final)} mg/day"
            if len(changes) == 1
            else f"ends at {num(final)} mg/day (the final, target dose of its titration, "
            f"from day {final_day})"
        )
        out.append(
            finding(
                "methadone.adjuvant-range",
                "info",
                f"Adjuvant methadone {what}, below the {num(v.lower.value)}–"
                f"{num(v.upper.value)} mg/day range of the Takase 2015 MPS series "
                f"({v.lower.note}).",
                step=index,
                source=(v.lower.source, "takase-2015"),
                level=v.lower.level,
                arithmetic=f"{_daily_text(step, final_per, final)} = {num(final)} mg/day < "
                f"{num(v.lower.value)} mg/day",
                detail={
                    **measure("final_daily_dose", final, "mg/day"),
                    "day": final_day,
                    **measure_range("range", v.lower.value, v.upper.value, "mg/day"),
                },
            )
        )
    return out or PASSED


# ---- QTc ---------------------------------------------------------------------------------------


def _no_qtc() -> Missing:
    return Missing("qtc", "no QTc is recorded (see methadone.ecg-required)")


@rule(
    "methadone.qtc-contraindicated",
    title="Methadone with a QTc above the contraindication threshold",
    applies_to=_KINDS,
    needs=("patient.qtc",),
    sources=("aps-cpdd-2014",),
    severity="error",
    data_files=(_FILE,),
    description="Methadone with a QTc above the APS/CPDD 2014 contraindication threshold "
    "(data/methadone.toml: qtc.contraindicated_above; APS/CPDD 2014: do not use methadone).",
)
@for_drugs(_methadone_drug)
@_peak_shown
def qtc_contraindicated(ctx: Context, index: int | None, step: Any) -> Any:
    """Flag methadone when the patient's QTc is above the contraindication threshold."""
    if not _is_methadone(step):
        return None
    qtc = ctx.patient.qtc_ms
    if qtc is None:
        return _no_qtc()
    gate = _values().qtc_contraindicated
    if not above(qtc, gate.value):
        return PASSED
    return finding(
        "methadone.qtc-contraindicated",
        "error",
        f"QTc {num(qtc)} ms is above {num(gate.value)} ms: do not use methadone ({gate.note}).",
        step=index,
        source=(gate.source,),
        level=gate.level,
        arithmetic=f"QTc {num(qtc)} ms > {num(gate.value)} ms",
        detail={**measure("qtc", qtc, "ms"), **measure("limit", gate.value, "ms")},
    )


@rule(
    "methadone.qtc-prolonged",
    title="Methadone with a prolonged QTc",
    applies_to=_KINDS,
    needs=("patient.qtc",),
    sources=("aps-cpdd-2014",),
    severity="warning",
    data_files=(_FILE,),
    description="Methadone with a QTc from the start of the prolonged range up to the "
    "contraindication threshold, both included (data/methadone.toml: qtc.prolonged_from, "
    "qtc.contraindicated_above; APS/CPDD 2014: consider an alternative opioid; if methadone is "
    "used, correct reversible causes first).",
)
@for_drugs(_methadone_drug)
@_peak_shown
def qtc_prolonged(ctx: Context, index: int | None, step: Any) -> Any:
    """Flag methadone when the patient's QTc is in the prolonged range."""
    if not _is_methadone(step):
        return None
    qtc = ctx.patient.qtc_ms
    if qtc is None:
        return _no_qtc()
    v = _values()
    low, high = v.qtc_prolonged, v.qtc_contraindicated
    if below(qtc, low.value) or above(qtc, high.value):
        return PASSED
    return finding(
        "methadone.qtc-prolonged",
        "warning",
        f"QTc {num(qtc)} ms is prolonged ({num(low.value)}–{num(high.value)} ms): consider an "
        f"alternative opioid; if methadone is used, correct reversible causes first and monitor "
        f"the ECG ({low.source}).",
        step=index,
        source=(low.source,),
        level=low.level,
        arithmetic=f"{num(low.value)} ms ≤ QTc {num(qtc)} ms ≤ {num(high.value)} ms",
        detail={**measure("qtc", qtc, "ms"), **measure_range("range", low.value, high.value, "ms")},
    )


@rule(
    "methadone.ecg-required",
    title="ECG monitoring for methadone",
    applies_to=_KINDS,
    needs=("patient.qtc",),
    sources=("va-dod-opioid-cpg", "aps-cpdd-2014"),
    severity="warning when no QTc is recorded",
    data_files=(_FILE,),
    description="Methadone with no QTc recorded: a warning carrying the ECG schedule of "
    "data/methadone.toml [ecg] (baseline, "
    "{methadone:ecg.follow_up_from!n}–{methadone:ecg.follow_up_to} after the start, at "
    "{methadone:ecg.checkpoints[0]}, at {methadone:ecg.checkpoints[1]}; VA/DoD Table D-4) and the "
    "days on which the step's titration reaches the dose checkpoints.",
)
@for_drugs(_methadone_drug)
@_peak_shown
def ecg_required(ctx: Context, index: int | None, step: Any) -> Any:
    """Warn, with the ECG schedule, when methadone is planned and no QTc is recorded."""
    if not _is_methadone(step):
        return None
    if ctx.patient.qtc_ms is not None:
        return PASSED
    v = _values()
    changes = _changes(step)
    reached = []
    for cp in v.checkpoints:
        day = next((d for d, _, daily in changes if not below(daily, cp.value)), None)
        if day is not None:
            reached.append(f"{num(cp.value)} mg/day on day {day}")
    when = f" This plan reaches {' and '.join(reached)}." if reached else ""
    return finding(
        "methadone.ecg-required",
        "warning",
        f"No QTc is recorded. {_ecg_text(v)}{when}",
        step=index,
        source=(v.ecg_source,),
        level=v.ecg_level,
        detail={"ecg_schedule": list(v.ecg_schedule), "checkpoints_reached": reached},
    )


def _ecg_text(v: _Values) -> str:
    """The ECG schedule of ``data/methadone.toml`` as one sentence."""
    where = f" ({v.ecg_note})" if v.ecg_note else ""
    items = "; ".join(s.strip().rstrip(".") for s in v.ecg_schedule)
    return f"ECG schedule for methadone{where}: {items}."


# ---- titration pace ----------------------------------------------------------------------------


@rule(
    "methadone.titration-interval",
    title="Methadone dose increases at least {methadone:titration.min_interval} apart",
    applies_to=_KINDS,
    needs=("step.titration",),
    sources=("methapain-label", "va-2016-methadone"),
    severity="warning",
    data_files=(_FILE,),
    description="A methadone dose increase sooner than {methadone:titration.min_interval} after "
    "the start or after the previous increase (the Japanese Methapain label's least interval; VA "
    "2016 methadone guidance gives a similar pace).",
)
@for_drugs(_methadone_drug)
@step_outcomes  # outside: the finding with its peak is kept too
@_peak_shown
def titration_interval(ctx: Context, index: int | None, step: Any) -> Any:
    """Flag each methadone dose increase that comes sooner than the least interval after the
    last."""
    if not _is_methadone(step):
        return None
    v = _values()
    gap = v.min_interval
    sources = (gap.source, v.min_interval_also) if v.min_interval_also else (gap.source,)
    changes = _changes(step)
    out = []
    last_day, _, last_daily = changes[0]
    since = "the start"
    for day, _, daily in changes[1:]:
        if above(daily, last_daily):
            days = day - last_day
            if below(days, gap.value):
                out.append(
                    finding(
                        "methadone.titration-interval",
                        "warning",
                        f"Methadone rises from {num(last_daily)} to {num(daily)} mg/day on day "
                        f"{day}, {days} day{'s' if days != 1 else ''} after {since} (day "
                        f"{last_day}); increase no sooner than every {num(gap.value)} days "
                        f"({gap.note}).",
                        step=index,
                        source=sources,
                        level=gap.level,
                        arithmetic=f"day {day} − day {last_day} = {days} days < "
                        f"{num(gap.value)} days",
                        detail={
                            "day": day,
                            "previous_day": last_day,
                            **measure("from", last_daily, "mg/day"),
                            **measure("to", daily, "mg/day"),
                        },
                    )
                )
            last_day = day
            since = "the previous increase"
        last_daily = daily
    return out or PASSED


# ---- titration step size ---------------------------------------------------------------------


@cache
def _step_limit() -> _catalog.SourcedValue:
    entry = _catalog.data_file(_FILE).get("titration", {}).get("max_increase")
    if not isinstance(entry, dict):
        raise DataFileError(f"{_FILE}: titration.max_increase is missing")
    return _catalog.sourced(
        entry, dimension="mass_rate", unit="mg/day", where=f"{_FILE}: titration.max_increase"
    )


def _level_note(level: str) -> str:
    return " [U: not verified against the primary text; a warning only]" if level == "U" else ""


@rule(
    "methadone.titration-step",
    title="Methadone titration step size",
    applies_to=_KINDS,
    needs=("step.titration",),
    sources=("aps-cpdd-2014",),
    severity="warning (the limit is [U])",
    data_files=(_FILE,),
    description="A methadone titration step that raises the daily dose by more than the largest "
    "step of data/methadone.toml [titration.max_increase] ({methadone:titration.max_increase}, "
    "APS/CPDD 2014 as commonly cited, unverified [U]: a warning only); the finding names the day.",
)
@for_drugs(_methadone_drug)
@step_outcomes  # outside: the finding with its peak is kept too
@_peak_shown
def titration_step(ctx: Context, index: int | None, step: Any) -> Any:
    """Flag each methadone titration step that raises the daily dose by more than the limit."""
    if not _is_methadone(step):
        return None
    changes = _changes(step)
    if len(changes) == 1:
        return PASSED
    limit = _step_limit()
    out = []
    for (_, _, before), (day, _, after) in pairwise(changes):
        rise = after - before
        if above(rise, limit.value):
            out.append(
                finding(
                    "methadone.titration-step",
                    "warning",
                    f"Day {day}: methadone rises by {num(rise)} mg/day ({num(before)} → "
                    f"{num(after)} mg/day), more than {num(limit.value)} mg/day at one step "
                    f"({limit.note}){_level_note(limit.level)}.",
                    step=index,
                    source=(limit.source,),
                    level=limit.level,
                    arithmetic=f"{num(after)} − {num(before)} = {num(rise)} mg/day > "
                    f"{num(limit.value)} mg/day",
                    detail={
                        "day": day,
                        "from": f"{num(before)} mg/day",
                        "to": f"{num(after)} mg/day",
                    },
                )
            )
    return out or PASSED


# ---- ECG re-check days -------------------------------------------------------------------------


@cache
def _follow_up() -> tuple[_catalog.SourcedValue, _catalog.SourcedValue]:
    ecg = _catalog.data_file(_FILE).get("ecg", {})
    out = []
    for key in ("follow_up_from", "follow_up_to"):
        entry = ecg.get(key)
        if not isinstance(entry, dict):
            raise DataFileError(f"{_FILE}: ecg.{key} is missing")
        out.append(
            _catalog.sourced(entry, dimension="time", unit="day", where=f"{_FILE}: ecg.{key}")
        )
    return out[0], out[1]


@rule(
    "methadone.ecg-recheck",
    title="ECG re-check days of a methadone plan",
    applies_to=_KINDS,
    needs=("step.titration",),
    sources=("va-dod-opioid-cpg",),
    severity="info",
    data_files=(_FILE,),
    description="The plan days on which the ECG schedule of data/methadone.toml asks for a "
    "re-check: the follow-up window after the start (VA/DoD Table D-4: "
    "{methadone:ecg.follow_up_from!n}–{methadone:ecg.follow_up_to}), each dose increase, and the "
    "first day the daily dose reaches each checkpoint ({methadone:ecg.checkpoints[0]!n} and "
    "{methadone:ecg.checkpoints[1]}).",
)
@for_drugs(_methadone_drug)
@step_outcomes  # outside: the finding with its peak is kept too
@_peak_shown
def ecg_recheck(ctx: Context, index: int | None, step: Any) -> Any:
    """List the plan days of the ECG re-checks the methadone step's schedule calls for."""
    if not _is_methadone(step):
        return None
    v = _values()
    low, high = _follow_up()
    changes = _changes(step)
    start = step.start_day
    first, last = start + round(low.value), start + round(high.value)
    days: list[str] = [
        f"days {first}–{last} (follow-up {num(low.value)}–{num(high.value)} days "
        f"after the start on day {start})"
    ]
    for (_, _, before), (day, _, after) in pairwise(changes):
        if above(after, before):
            days.append(f"day {day} (increase to {num(after)} mg/day)")
    for cp in v.checkpoints:
        reach = next((d for d, _, daily in changes if not below(daily, cp.value)), None)
        if reach is not None:
            days.append(f"day {reach} (reaches {num(cp.value)} mg/day)")
    return finding(
        "methadone.ecg-recheck",
        "info",
        f"ECG re-checks for this methadone plan: {'; '.join(days)} ({v.ecg_note}).",
        step=index,
        source=(low.source,),
        level=low.level,
        detail={"recheck": days, "follow_up_days": [first, last]},
    )


# ---- interactions ----------------------------------------------------------------------------


@rule(
    "methadone.interaction",
    title="Methadone interactions (CYP, QT, antagonists)",
    applies_to=_KINDS,
    needs=("patient.medications",),
    sources=("methadone-us-label", "methapain-label", "globalrph-methadone"),
    severity="error for a contraindicated combination (nalmefene, Japanese label); warning for "
    "the others; the finding says when the interaction entry is unverified [U]",
    data_files=(_FILE, "interactions.toml"),
    description="A CYP3A4/2B6/2C19 inhibitor or inducer, a QT-prolonging drug, a drug that "
    "lowers potassium, or an opioid antagonist or partial agonist among the other steps or the "
    "patient's medicines (data/interactions.toml, each entry with its source and level). With "
    "the patient's other medicines not recorded and nothing flagged among the steps, the check "
    "is not checked (medications = [] records that the patient takes none).",
)
@for_drugs(_methadone_drug)
@_peak_shown
def interaction(ctx: Context, index: int | None, step: Any) -> Any:
    """Flag each drug of the case that interacts with this methadone step."""
    if not _is_methadone(step):
        return None
    found = parties(ctx)
    memo = found.memo
    every = memo.get(_ALL_INTERACTIONS)
    if every is None:
        every = memo[_ALL_INTERACTIONS] = _interactions(found)
    return every.get(index)


#: The memo key of the outcomes of every methadone step, computed in one pass.
_ALL_INTERACTIONS: Final = "methadone.interaction:all"


def _interactions(found: Parties) -> dict[int | None, Any]:
    """The outcome of ``methadone.interaction`` for every methadone step, in one pass over the
    parties (linear): each interacting party is one finding, on the first methadone step, naming
    every methadone step it affects; a later methadone step then has nothing of its own."""
    methadone_steps = [p.step for p in found.parties if p.drug == "methadone"]
    if not methadone_steps:
        return {}
    first = methadone_steps[0]
    out = []
    for party in found.parties:
        if party.drug == "methadone":
            continue
        for entry in _entries(party.drug, party.classes):
            out.append(
                finding(
                    "methadone.interaction",
                    "warning",
                    f"Methadone with {party.label} — {entry.role}: {party.drug} "
                    f"{entry.effect} ({entry.source if entry.level == 'U' else entry.note})."
                    + unverified_note(entry.level, entry.note),
                    step=first,
                    source=(entry.source,),
                    level=entry.level,
                    kind="contraindication"
                    if entry.id in _contraindications()
                    else "guideline-caution",
                    detail={
                        "interacting": party.label,
                        "interacting_step": party.step,
                        "role": entry.role,
                        "entry": entry.id,
                        "methadone_steps": list(methadone_steps),
                        "unclassified_medications": list(found.unknown),
                    },
                )
            )
    result: dict[int | None, Any] = {first: outcome(found, out, "methadone")}
    for i in methadone_steps[1:]:
        result[i] = None if out else outcome(found, (), "methadone")
    return result


@cache
def _contraindications() -> frozenset[str]:
    """The interaction entry ids that are contraindications (data/methadone.toml)."""
    ids = _catalog.data_file(_FILE).get("interactions", {}).get("contraindication", ())
    return frozenset(str(i) for i in ids)


@lru_cache(maxsize=1024)
def _entries(drug: str, classes: frozenset[str]) -> tuple[MethadoneInteraction, ...]:
    """The methadone interaction entries a drug matches (by name or class)."""
    return tuple(
        e for e in tables().methadone if drug in e.drugs or not e.classes.isdisjoint(classes)
    )


# ---- totals and prerequisites (safety net) ------------------------------------------------------


def _peak_daily(step: Any) -> tuple[int, float]:
    """The day and the largest daily dose (mg/day) of a methadone step over its titration."""
    day, _, daily = max(_changes(step), key=lambda c: c[2])
    return day, daily


@rule(
    "methadone.total-daily",
    title="Total methadone over every methadone step",
    applies_to=(),
    needs=("step.dose", "step.schedule", "step.titration"),
    sources=("takase-2015", "palliverse-2015"),
    severity="warning above {methadone:adjuvant_range.upper}, error above twice it (usual range, "
    "severity policy)",
    scope="regimen",
    data_files=(_FILE, "severity-policy.toml"),
    description="When a regimen gives methadone in more than one step with at least one "
    "methadone_adjuvant step (two adjuvant steps, or main methadone plus adjuvant methadone), the "
    "sum of each step's largest daily dose over its titration against the "
    "{methadone:adjuvant_range.lower!n}–{methadone:adjuvant_range.upper} adjuvant range of the "
    "Takase 2015 series [S]: above {methadone:adjuvant_range.upper} a warning, more than twice it "
    "an error (a usual range far exceeded, data/severity-policy.toml). Each step's peak is summed, "
    "whichever day it falls on (conservative); the finding names each step's peak day.",
)
def total_daily(ctx: Context, index: int | None, step: Any) -> Any:
    """Sum the methadone of every methadone step and compare it with the adjuvant range."""
    adjuvant = ctx.steps_of("methadone_adjuvant")
    if not adjuvant:
        return None
    main = [(i, s) for i, s in ctx.steps_of("opioid") if s.drug == "methadone"]
    parts = sorted([*adjuvant, *main], key=lambda pair: pair[0])
    if len(parts) < 2:
        return None
    # computed on each call: a memo keyed on the steps would hold them, free text and all
    return _total_daily(parts)


def _total_daily(parts: list[tuple[int, Any]]) -> Any:
    v = _values()
    peaks = [(i, s, *_peak_daily(s)) for i, s in parts]
    total = sum(p[3] for p in peaks)
    if not above(total, v.upper.value):
        return PASSED
    terms = " + ".join(
        f"step {i + 1} ({'adjuvant' if s.kind == 'methadone_adjuvant' else 'main'}) "
        f"{num(daily)} mg/day" + (f" from day {day}" if s.titration else "")
        for i, s, day, daily in peaks
    )
    return finding(
        "methadone.total-daily",
        "warning",
        f"Methadone totals {num(total)} mg/day over {len(peaks)} steps ({terms}), above the "
        f"{num(v.lower.value)}–{num(v.upper.value)} mg/day range of adjuvant methadone in the "
        f"Takase 2015 MPS series ({v.upper.note}).",
        step=parts[0][0],
        source=(v.upper.source, "takase-2015"),
        level=v.upper.level,
        kind="usual-range",
        beyond=total / v.upper.value,
        arithmetic=f"{terms} = {num(total)} mg/day > {num(v.upper.value)} mg/day",
        detail={
            **measure("total_daily_dose", total, "mg/day"),
            "steps": [i for i, *_ in peaks],
            "peak_days": {str(i): day for i, _, day, _ in peaks},
            **measure_range("range", v.lower.value, v.upper.value, "mg/day"),
        },
    )


@cache
def _min_ome() -> _catalog.SourcedValue:
    entry = _catalog.data_file(_FILE).get("adjuvant_prerequisite", {}).get("min_ome")
    if not isinstance(entry, dict):
        raise DataFileError(f"{_FILE}: adjuvant_prerequisite.min_ome is missing")
    return _catalog.sourced(
        entry, dimension="mass_rate", unit="mg/day", where=f"{_FILE}: adjuvant_prerequisite"
    )


@rule(
    "methadone.adjuvant-without-opioid",
    title="Adjuvant methadone with no opioid to add it to",
    applies_to=("methadone_adjuvant",),
    needs=("regimen", "patient.opioid_tolerant"),
    sources=("methapain-label", "mercadante-2022"),
    severity="error when the patient is recorded as not opioid tolerant (the Japanese label: only "
    "as a switch from a strong opioid at {methadone:adjuvant_prerequisite.min_ome} OME or more); "
    "warning when tolerance is not recorded",
    data_files=(_FILE,),
    description="A methadone_adjuvant step is methadone added to a current opioid (Takase 2015). "
    "With no regular strong opioid among the other steps, it needs recorded opioid tolerance: the "
    "Japanese Methapain label (Japan) allows methadone only as a switch from another strong opioid "
    "at {methadone:adjuvant_prerequisite.min_ome} oral morphine equivalent or more "
    "(patient.opioid_tolerant = true meets it: the FDA definition of opioid tolerance is "
    "{rotation:opioid_tolerance}). Recorded as not tolerant: an error; tolerance not recorded: a "
    "warning. Methadone first-line in an opioid-naive patient (Mercadante 2022) is an `opioid` "
    "step, not an adjuvant, and is not flagged here.",
)
@_peak_shown
def adjuvant_without_opioid(ctx: Context, index: int | None, step: Any) -> Any:
    """Check that adjuvant methadone has a strong opioid, or recorded tolerance, to add to."""
    for _, other in ctx.steps_of("opioid"):
        if not other.prn and _catalog.drug(other.drug).strong_opioid:
            return PASSED
    tolerant = ctx.patient.opioid_tolerant
    if tolerant is True:
        return PASSED
    gate = _min_ome()
    if tolerant is False:
        return finding(
            "methadone.adjuvant-without-opioid",
            "error",
            f"Adjuvant methadone with no regular strong opioid in the regimen, in a patient "
            f"recorded as not opioid tolerant: the Japanese Methapain label (Japan) allows "
            f"methadone only as a switch from another strong opioid at {num(gate.value)} mg/day "
            f"oral morphine equivalent or more ({gate.note}). For methadone first-line in an "
            f"opioid-naive patient, write an 'opioid' step with a naive starting dose.",
            step=index,
            source=(gate.source,),
            level=gate.level,
            kind="contraindication",
            detail={"opioid_tolerant": False, **measure("threshold", gate.value, "mg/day")},
        )
    return finding(
        "methadone.adjuvant-without-opioid",
        "warning",
        f"Adjuvant methadone with no regular strong opioid in the regimen to add it to, and "
        f"opioid tolerance is not recorded: the Japanese Methapain label (Japan) allows "
        f"methadone only as a switch from another strong opioid at {num(gate.value)} mg/day "
        f"oral morphine equivalent or more. Record opioid_tolerant, add the current opioid, or "
        f"write methadone as an 'opioid' step.",
        step=index,
        source=(gate.source,),
        level=gate.level,
        kind="guideline-caution",
        detail={"opioid_tolerant": None, **measure("threshold", gate.value, "mg/day")},
    )


RULES: tuple[Rule, ...] = (
    adjuvant_range,
    qtc_contraindicated,
    qtc_prolonged,
    ecg_required,
    titration_interval,
    titration_step,
    ecg_recheck,
    interaction,
    total_daily,
    adjuvant_without_opioid,
)
