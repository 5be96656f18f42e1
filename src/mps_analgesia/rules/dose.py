"""Maximum single and daily doses from the drug catalog (``data/drugs.toml``).

``dose.max-single``: a dose per administration (the largest over the titration) above the
catalog maximum for the drug, route and formulation.
``dose.max-daily``: the total daily dose of a drug on any one day, summed over every step that
gives it that day (regular doses plus the PRN maximum), above the catalog maximum; the finding
names the day(s).  Steps that do not overlap in time are not added up.
A drug with no published maximum in the catalog is *not checked*, never passed, unless a
sourced statement says no maximum exists (``data/limits-none.toml``: a full opioid agonist has
no ceiling dose); it is then *not applicable*.
"""

from __future__ import annotations

import functools
from typing import Any

from .. import _catalog
from ..errors import DataFileError
from ._engine import PASSED, Context, Missing, NoLimit, Rule, finding, rule
from ._util import (
    DRUG_KINDS,
    above,
    drug_total,
    measure,
    num,
    step_outcomes,
    suggested_dose,
    suggested_dose_within_daily,
)

__all__ = ["RULES"]

_DRUG_KINDS = DRUG_KINDS


# (drug, kind, route, formulation) → (the drug record, its limits or a Missing), so a repeated
# check costs a dict lookup; the record is kept to notice a different catalog.
_LIMITS: dict[
    tuple[str, str, str, str], tuple[Any, tuple[_catalog.Limit, ...] | Missing | NoLimit]
] = {}

_NONE_FILE = "limits-none.toml"


@functools.cache
def _statements() -> dict[tuple[str, str], NoLimit]:
    """(drug, limit kind) → the sourced statement that no such limit exists."""
    data = _catalog.data_file(_NONE_FILE)
    out: dict[tuple[str, str], NoLimit] = {}
    for sid, entry in data.get("statements", {}).items():
        where = f"{_NONE_FILE}: statements.{sid}"
        source = entry.get("source")
        if source not in _catalog.sources():
            raise DataFileError(f"{where}: 'source' {source!r} is not an id in sources.toml")
        _catalog.level_of(entry, where)
        reason = str(entry.get("reason", ""))
        for drug in entry.get("drugs", ()):
            if _catalog.drug(drug).id != drug:
                raise DataFileError(f"{where}: {drug!r} is not a drug id of drugs.toml")
            for kind in entry.get("limits", ()):
                if kind not in ("max_single", "max_daily"):
                    raise DataFileError(f"{where}: limit kind {kind!r} is not max_single/daily")
                out[(drug, kind)] = NoLimit(reason, str(source))
    return out


_LIMIT_KINDS = ("label-maximum", "usual-range")


@functools.cache
def _policy_kinds() -> dict[str, str]:
    """The severity-policy kind of each catalog limit, by its place in drugs.toml (``where``)."""
    out: dict[str, str] = {}
    for did, entry in _catalog.data_file("drugs.toml").get("drugs", {}).items():
        for i, lim in enumerate(entry.get("limits", ())):
            where = f"drugs.toml: drugs.{did}.limits[{i}]"
            kind = lim.get("limit_kind", "label-maximum")
            if kind not in _LIMIT_KINDS:
                raise DataFileError(f"{where}: limit_kind must be one of {_LIMIT_KINDS}")
            out[where] = kind
    return out


def policy_kind(limit: _catalog.Limit) -> str:
    """What a catalog limit is, for the severity policy (``label-maximum`` by default)."""
    return _policy_kinds().get(limit.value.where, "label-maximum")


def no_limit(drug: str, kind: str) -> NoLimit | None:
    """The sourced statement that ``drug`` has no limit of ``kind``, or ``None``."""
    return _statements().get((drug, kind))


def _limits(step: Any, kind: str) -> tuple[_catalog.Limit, ...] | Missing | NoLimit:
    """The catalog limits of ``kind`` for the step, or a Missing saying there are none."""
    record = _catalog.drug(step.drug)
    key = (step.drug, kind, step.route, step.formulation)
    hit = _LIMITS.get(key)
    if hit is None or hit[0] is not record:
        limits = record.limits_for(kind, step.route, step.formulation)
        what = "single" if kind == "max_single" else "daily"
        result: tuple[_catalog.Limit, ...] | Missing | NoLimit = (
            limits
            or no_limit(step.drug, kind)
            or Missing(
                "catalog limit",
                f"the catalog has no published maximum {what} dose for {step.drug} "
                f"({step.route}, {step.formulation})",
            )
        )
        hit = _LIMITS[key] = (record, result)
    return hit[1]


def _step_limits(step: Any, kind: str) -> tuple[_catalog.Limit, ...] | Missing | NoLimit:
    """The step's catalog limits of ``kind``, looked up by its drug, route and formulation
    (closed vocabularies: the memo never holds a step, and its size is bounded by them)."""
    return _limits(step, kind)


def _single_doses(step: Any) -> list[float]:
    doses = [step.dose_mg] if step.dose_mg is not None else []
    doses.extend(p.dose_mg for p in step.titration if p.dose_mg is not None)
    return doses


@rule(
    "dose.max-single",
    title="Maximum single dose",
    applies_to=_DRUG_KINDS,
    needs=("step.dose",),
    sources=(),
    severity="error above the catalog maximum; warning when that maximum is [U]",
    data_files=("drugs.toml", _NONE_FILE),
    description="A dose per administration above the published maximum single dose of the "
    "drug for its route and formulation (catalog limit with its source).",
)
@step_outcomes  # a function of the step alone (and the catalog)
def max_single(ctx: Context, index: int | None, step: Any) -> Any:
    """Compare the largest dose per administration with the catalog maximum single dose."""
    if step.is_continuous:
        return None
    limits = _step_limits(step, "max_single")
    if isinstance(limits, Missing | NoLimit):
        return limits
    dose = max(_single_doses(step))
    out = []
    for lim in limits:
        if above(dose, lim.value.value):
            out.append(
                finding(
                    "dose.max-single",
                    "error",
                    f"{step.drug} {num(dose)} mg per dose is above the "
                    f"{_what(lim)} single dose of "
                    f"{num(lim.value.value)} mg ({lim.value.note or lim.value.source}).",
                    step=index,
                    source=(lim.value.source,),
                    level=lim.value.level,
                    kind=policy_kind(lim),
                    beyond=dose / lim.value.value if lim.value.value > 0 else None,
                    arithmetic=f"{num(dose)} mg > {num(lim.value.value)} mg",
                    detail={
                        **measure("dose", dose, "mg"),
                        **measure("limit", lim.value.value, "mg"),
                        **suggested_dose(step, lim.value.value),
                    },
                )
            )
    return out or PASSED


def _what(lim: _catalog.Limit) -> str:
    return "top of the usual range" if policy_kind(lim) == "usual-range" else "maximum"


def _explain(step: Any, day: int | None = None) -> str:
    phase = None if day is None else step.phase_on(day)
    if phase is not None:
        if phase.rate_mg_per_h is not None:
            return f"{num(phase.rate_mg_per_h)} mg/h × 24 h"
        return f"{num(phase.dose_mg)} mg × {num(phase.doses_per_day)} doses/day"
    if step.is_continuous:
        return f"{num(step.rate_mg_per_h)} mg/h × 24 h"
    return f"{num(max(_single_doses(step)))} mg × {num(step.doses_per_day)} doses/day"


def _static(step: Any) -> bool:
    """A step with one dose from day 0 on (no titration, no start or stop day)."""
    return step.start_day == 0 and len(step.phases) == 1 and step.last_day is None


#: A stretch of days with the same total: (first day, last day or None, total mg/day, parts
#: given on those days).
_Stretch = tuple[int, "int | None", float, tuple[tuple[int, Any], ...]]


def _day_totals(ctx: Context, drug: str) -> tuple[tuple[_Stretch, ...], list[tuple[int, Any]]]:
    """The drug's total on each stretch of days on which it does not change, and its steps.

    A regimen without time structure (every step of the drug static) is one stretch whose
    total is the sum of the steps' daily doses, as before; otherwise the totals are evaluated
    at each day a step of the drug starts, changes or stops (on each call: a memo keyed on the
    steps would hold them, free text and all, and one per regimen object costs a fresh regimen
    more than it saves).
    """
    total, parts = drug_total(ctx, drug)
    key = tuple(parts)
    if all(_static(s) for _, s in parts):
        return ((0, None, total, key),), parts
    cuts = set()
    for _, s in parts:
        for phase in s.phases:
            cuts.add(phase.first_day)
        if s.last_day is not None:
            cuts.add(s.last_day + 1)
    days = sorted(cuts)
    out: list[_Stretch] = []
    for k, day in enumerate(days):
        last = days[k + 1] - 1 if k + 1 < len(days) else None
        given = tuple((i, s) for i, s in parts if s.daily_dose_mg_on(day) > 0.0)
        if given:
            out.append((day, last, sum(s.daily_dose_mg_on(day) for _, s in given), given))
    return tuple(out), parts


def _days_text(spans: list[tuple[int, int | None]]) -> str:
    """``'day 14'``, ``'days 14–20'``, ``'from day 14'``, joined with commas."""
    out = []
    for first, last in spans:
        if last is None:
            out.append(f"from day {first}")
        elif last == first:
            out.append(f"day {first}")
        else:
            out.append(f"days {first}–{last}")
    return ", ".join(out)


def _merge(spans: list[tuple[int, int | None]]) -> list[tuple[int, int | None]]:
    merged: list[tuple[int, int | None]] = []
    for first, last in spans:
        if merged and merged[-1][1] is not None and merged[-1][1] + 1 == first:
            merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


@rule(
    "dose.max-daily",
    title="Maximum daily dose",
    applies_to=_DRUG_KINDS,
    needs=("step.dose", "step.schedule"),
    sources=(),
    severity="error above the catalog maximum; warning when that maximum is [U]",
    data_files=("drugs.toml", _NONE_FILE),
    description="The total daily dose of a drug on any one day, summed over every step that "
    "gives it that day (regular doses and the PRN maximum), above its published maximum daily "
    "dose; the finding names the day(s) over the limit.",
)
def max_daily(ctx: Context, index: int | None, step: Any) -> Any:
    """Compare the drug's total on each day, over all its steps, with the catalog maximum."""
    limits = _step_limits(step, "max_daily")
    if isinstance(limits, Missing | NoLimit):
        return limits
    stretches, parts = _day_totals(ctx, step.drug)
    timed = not (len(stretches) == 1 and stretches[0][0] == 0 and stretches[0][1] is None)
    out = []
    for lim in limits:
        limit = lim.value.value
        over = [st for st in stretches if above(st[2], limit)]
        if not over:
            continue
        peak = max(over, key=lambda st: st[2])
        first_day, _, total, given = peak
        involved = sorted({i for st in over for i, _ in st[3]})
        if involved[0] != index and any(
            lim in _catalog.drug(s.drug).limits_for("max_daily", s.route, s.formulation)
            for i, s in parts
            if i in involved and i < (index if index is not None else 0)
        ):
            # Already reported on an earlier step of the same drug (the finding lists every
            # step in detail["steps"]); this step is not "passed", as it adds to the excess.
            return None
        if index not in involved:
            continue
        when = _days_text(_merge([(st[0], st[1]) for st in over]))
        terms = " + ".join(_explain(s, first_day if timed else None) for _, s in given)
        arithmetic = f"{terms} = {num(total)} mg/day > {num(limit)} mg/day"
        if timed:
            arithmetic = f"day {first_day}: {arithmetic}"
        steps_txt = "" if len(given) == 1 else f" over {len(given)} steps"
        prefix = f"{when[0].upper()}{when[1:]}: " if timed else ""
        out.append(
            finding(
                "dose.max-daily",
                "error",
                f"{prefix}{step.drug} totals {num(total)} mg/day{steps_txt}, above the "
                f"{_what(lim)} of {num(limit)} mg/day ({lim.value.note or lim.value.source}).",
                step=index,
                source=(lim.value.source,),
                level=lim.value.level,
                kind=policy_kind(lim),
                beyond=total / limit if limit > 0 else None,
                arithmetic=arithmetic,
                detail={
                    **measure("daily_dose", total, "mg/day"),
                    **measure("limit", limit, "mg/day"),
                    "steps": involved,
                    "days": [[a, b] for a, b in _merge([(st[0], st[1]) for st in over])],
                    **(suggested_dose_within_daily(step, limit) if len(given) == 1 else {}),
                },
            )
        )
    return out or PASSED


RULES: tuple[Rule, ...] = (max_single, max_daily)
