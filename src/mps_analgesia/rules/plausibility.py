"""The library's unit-slip guard: ``dose.implausible``.

A dose per administration or a rate more than a stated multiple (``data/severity-policy.toml``
``[guards.dose-implausible]``) of the largest marketed unit of the drug by its route
(``data/limits-plausible.toml``, from RxNorm) — or of the catalog's maximum single dose for a
drug that has one — is almost always a unit slip: ``25 mg/h`` written for a ``25 mcg/h`` patch,
``100 mg`` buccal fentanyl for ``100 mcg``.  The finding names the likely slip.  This guard is
the library's, not a clinical claim: its multiple and reasoning are data, and a drug with no
strength or maximum in data is not guarded (the rule returns nothing for it).

The limits are worked out once per (drug, route, formulation); a step costs a dict lookup and
a comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, Final

import attrs

from .. import _catalog, _units
from ..errors import DataFileError, UnitError
from . import _policy
from ._engine import PASSED, Context, Rule, finding, rule
from ._util import DRUG_KINDS, measure, num, step_outcomes

__all__ = ["RULES"]

_FILE: Final = "limits-plausible.toml"
_GUARD: Final = "dose-implausible"
_SLIP: Final = 1000.0  # mg ↔ mcg: a unit identity, not a clinical number


@attrs.define(frozen=True)
class _Largest:
    """The largest marketed unit of a drug by route: a dose (mg) or a rate (mg/h)."""

    mg: float
    per_hour: bool
    form: str
    source: str
    level: str
    note: str


def _read(entry: Mapping[str, Any], where: str) -> _Largest:
    has_dose, has_rate = entry.get("dose") is not None, entry.get("rate") is not None
    if has_dose == has_rate:
        raise DataFileError(f"{_FILE}: {where} needs exactly one of 'dose' and 'rate'")
    key, dim, unit = ("rate", "mass_rate", "mg/h") if has_rate else ("dose", "mass", "mg")
    try:
        q = _units.as_quantity(entry[key], dim, field=f"{where}.{key}")
    except UnitError as exc:
        raise DataFileError(f"{_FILE}: {where}.{key}: {exc}") from exc
    value = _units.magnitude_in(q, unit)
    if not value > 0:
        raise DataFileError(f"{_FILE}: {where}.{key} must be above zero")
    source = entry.get("source")
    if source not in _catalog.sources():
        raise DataFileError(f"{_FILE}: {where}: 'source' {source!r} is not an id in sources.toml")
    return _Largest(
        value,
        has_rate,
        str(entry.get("form", "")),
        str(source),
        _catalog.level_of(entry, f"{_FILE}: {where}"),
        str(entry.get("note", "")),
    )


@cache
def _strengths() -> dict[tuple[str, str, bool], _Largest]:
    """(drug, route, per hour) → the largest marketed unit."""
    out: dict[tuple[str, str, bool], _Largest] = {}
    for i, entry in enumerate(_catalog.data_file(_FILE).get("strengths", ())):
        where = f"strengths[{i}]"
        drug = entry.get("drug")
        if not isinstance(drug, str) or _catalog.drug(drug).id != drug:
            raise DataFileError(f"{_FILE}: {where}.drug {drug!r} is not a drug id of drugs.toml")
        route = entry.get("route")
        if route not in _catalog.routes():
            raise DataFileError(f"{_FILE}: {where}.route {route!r} is not a route of drugs.toml")
        largest = _read(entry, where)
        out[(drug, str(route), largest.per_hour)] = largest
    return out


# (drug, route, formulation, per hour) → the reference unit, or None: not guarded.
_REFERENCE: dict[tuple[str, str, str, bool], _Largest | None] = {}


def _reference(drug: str, route: str, formulation: str, per_hour: bool) -> _Largest | None:
    key = (drug, route, formulation, per_hour)
    if key in _REFERENCE:
        return _REFERENCE[key]
    hit = _strengths().get((drug, route, per_hour))
    if hit is None and not per_hour:
        limits = _catalog.drug(drug).limits_for("max_single", route, formulation)
        if limits:
            lim = max(limits, key=lambda lim: lim.value.value)
            hit = _Largest(
                lim.value.value,
                False,
                "catalog maximum single dose",
                lim.value.source,
                lim.value.level,
                lim.value.note,
            )
    _REFERENCE[key] = hit
    return hit


@cache
def _multiple() -> float:
    return _policy.guard(_GUARD).multiple


def _amount(mg: float, per_hour: bool) -> str:
    """``'100 mcg/h'``, ``'25 mg'``: micrograms below 1 mg."""
    suffix = "/h" if per_hour else ""
    if mg < 1:
        return f"{num(mg * _SLIP)} mcg{suffix}"
    return f"{num(mg)} mg{suffix}"


def _check(step: Any, index: int | None, value: float, per_hour: bool) -> Any:
    key = (step.drug, step.route, step.formulation or "", per_hour)
    ref = _REFERENCE[key] if key in _REFERENCE else _reference(*key)
    if ref is None or not value > 0:
        return None
    ratio = value / ref.mg
    if not ratio > _multiple():
        return PASSED
    guard = _policy.guard(_GUARD)
    written = _amount(value, per_hour)
    largest = _amount(ref.mg, per_hour)
    slipped = value / _SLIP
    hint = (
        f" — did you mean {num(value)} mcg{'/h' if per_hour else ''} (mg written for mcg)?"
        if slipped / ref.mg <= guard.multiple
        else " — check the unit and the number."
    )
    what = "rate" if per_hour else "dose"
    return finding(
        "dose.implausible",
        "error",
        f"{step.drug} {written} ({step.route}) is {num(round(ratio))}× the largest {ref.form}, "
        f"{largest}{hint} (The library's unit-slip guard: more than {num(guard.multiple)}× the "
        f"largest marketed unit.)",
        step=index,
        source=(ref.source, "library-policy"),
        level=ref.level,
        kind="library-guard",
        beyond=ratio,
        arithmetic=f"{written} ÷ {largest} = {num(ratio)} > {num(guard.multiple)}",
        detail={
            **measure(what, value, "mg/h" if per_hour else "mg", written),
            **measure("largest_marketed", ref.mg, "mg/h" if per_hour else "mg", largest),
            "multiple": guard.multiple,
            "ratio": ratio,
            "guard": guard.reasoning,
        },
    )


@rule(
    "dose.implausible",
    title="Implausible dose or rate (unit slip)",
    applies_to=DRUG_KINDS,
    needs=("step.dose", "step.rate"),
    sources=("omtk-rxnorm-2020", "library-policy"),
    severity="error (the library's plausibility guard; a warning when the strength it rests on "
    "is [U])",
    data_files=(_FILE, _policy.FILE, "drugs.toml"),
    description="A dose per administration, or a rate, more than "
    "{severity-policy:guards.dose-implausible.multiple} times (the guard's multiple, "
    "data/severity-policy.toml) the largest marketed unit of the drug by route "
    "(data/limits-plausible.toml, from RxNorm: the largest fentanyl patch is "
    "{limits-plausible:strengths[drug=fentanyl,route=transdermal].rate}) or the catalog's maximum "
    "single dose: almost always a unit slip (mg for mcg). The finding names the likely slip. It is "
    "the library's guard, not a clinical claim; a drug with neither a strength nor a maximum in "
    "data is not guarded.",
)
@step_outcomes
def implausible(ctx: Context, index: int | None, step: Any) -> Any:
    """Compare each dose and rate with the largest marketed unit of the drug."""
    rate = step.rate_mg_per_h
    if rate is not None:
        if step.titration:
            rate = max(
                [rate, *(p.rate_mg_per_h for p in step.titration if p.rate_mg_per_h is not None)]
            )
        return _check(step, index, rate, True)
    dose = step.dose_mg
    if dose is None:
        return None
    if step.titration:
        dose = max([dose, *(p.dose_mg for p in step.titration if p.dose_mg is not None)])
    return _check(step, index, dose, False)


RULES: tuple[Rule, ...] = (implausible,)
