"""The library's unit-slip guard: ``dose.implausible``.

A dose per administration or a rate more than a stated multiple (``data/severity-policy.toml``
``[guards.dose-implausible]``) of the largest marketed unit of the drug by its route
(``data/limits-plausible.toml``, from RxNorm) — or of the catalog's maximum single dose for a
drug that has one — is almost always a unit slip: ``25 mg/h`` written for a ``25 mcg/h`` patch,
``100 mg`` buccal fentanyl for ``100 mcg``.  The finding names the likely slip.  This guard is
the library's, not a clinical claim: its multiple and reasoning are data, and a drug with no
strength or maximum in data is not guarded (the rule returns nothing for it).

A psoas compartment block step is guarded too: its concentration against the most
concentrated marketed solution of its agent (``[[concentrations]]``, multiple
``[guards.block-concentration]``: 7.5 mg/mL written as 7.5 %), its bolus volume and infusion
rate against the largest published ones (``[block]``, multiple ``[guards.block-volume]``: 20 L
for 20 mL, 6 mL/min for 6 mL/h).  An agent with no strengths in data has its concentration not
guarded.

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
_BLOCK: Final = "psoas_compartment_block"
_CONCENTRATION_GUARD: Final = "block-concentration"
_VOLUME_GUARD: Final = "block-volume"
_PERCENT: Final = 10.0  # 1 % w/v = 10 mg/mL: a unit identity
_LITRE: Final = 1000.0  # 1 L = 1000 mL: a unit identity
_PER_MINUTE: Final = 60.0  # mL/min → mL/h: a unit identity


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


# ---- block steps: concentration, bolus volume, infusion rate --------------------------------


@attrs.define(frozen=True)
class _Solutions:
    """The marketed concentrations (mg/mL) of one local anaesthetic, with their provenance."""

    strengths: tuple[float, ...]
    source: str
    level: str
    note: str

    @property
    def largest(self) -> float:
        return max(self.strengths)


@cache
def _solutions() -> dict[str, _Solutions]:
    """Local anaesthetic id → its marketed concentrations (``[[concentrations]]``)."""
    out: dict[str, _Solutions] = {}
    for i, entry in enumerate(_catalog.data_file(_FILE).get("concentrations", ())):
        where = f"concentrations[{i}]"
        drug = entry.get("drug")
        if (
            not isinstance(drug, str)
            or _catalog.drug(drug).id != drug
            or _catalog.drug(drug).drug_class != "local_anaesthetic"
        ):
            raise DataFileError(f"{_FILE}: {where}.drug {drug!r} is not a local anaesthetic id")
        raw = entry.get("strengths")
        if not isinstance(raw, list) or not raw:
            raise DataFileError(f"{_FILE}: {where}.strengths must be a non-empty list")
        values = []
        for j, text in enumerate(raw):
            try:
                q = _units.as_quantity(text, "concentration", field=f"{where}.strengths[{j}]")
            except UnitError as exc:
                raise DataFileError(f"{_FILE}: {where}.strengths[{j}]: {exc}") from exc
            value = _units.magnitude_in(q, "mg/mL")
            if not value > 0:
                raise DataFileError(f"{_FILE}: {where}.strengths[{j}] must be above zero")
            values.append(value)
        source = entry.get("source")
        if source not in _catalog.sources():
            raise DataFileError(f"{_FILE}: {where}: 'source' {source!r} is not a source id")
        out[drug] = _Solutions(
            tuple(sorted(values)),
            str(source),
            _catalog.level_of(entry, f"{_FILE}: {where}"),
            str(entry.get("note", "")),
        )
    return out


@cache
def _block_refs() -> tuple[_catalog.SourcedValue, _catalog.SourcedValue]:
    """The largest published bolus volume (mL) and infusion rate (mL/h) (``[block]``)."""
    block = _catalog.data_file(_FILE).get("block")
    if not isinstance(block, Mapping):
        raise DataFileError(f"{_FILE}: [block] is missing")
    out = []
    for key, dim, unit in (
        ("bolus_volume", "volume", "mL"),
        ("infusion_rate", "volume_rate", "mL/h"),
    ):
        entry = block.get(key)
        if not isinstance(entry, Mapping):
            raise DataFileError(f"{_FILE}: block.{key} is missing")
        value = _catalog.sourced(entry, dimension=dim, unit=unit, where=f"{_FILE}: block.{key}")
        if not value.value > 0:
            raise DataFileError(f"{_FILE}: block.{key} must be above zero")
        out.append(value)
    return out[0], out[1]


def _percent(mg_per_ml: float) -> str:
    return f"{num(mg_per_ml / _PERCENT)} %"


def _concentration(step: Any, index: int | None) -> Any:
    sol = _solutions().get(step.drug)
    value = step.concentration_mg_per_ml
    if sol is None or value is None or not value > 0:
        return None
    guard = _policy.guard(_CONCENTRATION_GUARD)
    largest = sol.largest
    ratio = value / largest
    if not ratio > guard.multiple:
        return PASSED
    meant = value / _PERCENT
    if any(abs(meant - s) <= 1e-9 * s for s in sol.strengths) or meant <= largest:
        hint = (
            f" — was {num(meant)} mg/mL written as {num(meant)} % ({_percent(meant)} is "
            f"{num(meant)} mg/mL)?"
        )
    else:
        hint = " — check the unit and the number."
    strengths = ", ".join(f"{num(s)} mg/mL" for s in sol.strengths)
    return finding(
        "dose.implausible",
        "error",
        f"{step.drug} {num(value)} mg/mL ({_percent(value)}) is {num(round(ratio, 1))}× the most "
        f"concentrated marketed solution, {num(largest)} mg/mL ({_percent(largest)}){hint} "
        f"(The library's unit-slip guard: more than {num(guard.multiple)}× the most "
        f"concentrated marketed solution; marketed: {strengths}.)",
        step=index,
        source=(sol.source, "library-policy"),
        level=sol.level,
        kind="library-guard",
        beyond=ratio,
        arithmetic=f"{num(value)} mg/mL ÷ {num(largest)} mg/mL = {num(ratio)} > "
        f"{num(guard.multiple)}",
        detail={
            **measure("concentration", value, "mg/mL"),
            **measure("largest_marketed", largest, "mg/mL"),
            "multiple": guard.multiple,
            "ratio": ratio,
            "guard": guard.reasoning,
        },
    )


def _volume(
    step: Any,
    index: int | None,
    value: float | None,
    ref: _catalog.SourcedValue,
    what: str,
    unit: str,
    slips: tuple[tuple[float, str, str], ...],
) -> Any:
    if value is None or not value > 0:
        return None
    guard = _policy.guard(_VOLUME_GUARD)
    ratio = value / ref.value
    if not ratio > guard.multiple:
        return PASSED
    hint = " — check the unit and the number."
    for factor, written, meant in slips:
        if value / factor <= ref.value * guard.multiple:
            hint = (
                f" — was {num(value / factor)} {meant} written as {num(value / factor)} {written}?"
            )
            break
    return finding(
        "dose.implausible",
        "error",
        f"{step.drug} block {what} {num(value)} {unit} is {num(round(ratio))}× the largest "
        f"published, {num(ref.value)} {unit} ({ref.note}){hint} (The library's unit-slip "
        f"guard: more than {num(guard.multiple)}× the largest published {what}.)",
        step=index,
        source=(ref.source, "library-policy"),
        level=ref.level,
        kind="library-guard",
        beyond=ratio,
        arithmetic=f"{num(value)} {unit} ÷ {num(ref.value)} {unit} = {num(ratio)} > "
        f"{num(guard.multiple)}",
        detail={
            **measure(what.replace(" ", "_"), value, unit),
            **measure("largest_published", ref.value, unit),
            "multiple": guard.multiple,
            "ratio": ratio,
            "guard": guard.reasoning,
        },
    )


def _block(step: Any, index: int | None) -> Any:
    """The concentration, bolus volume and infusion rate of a block step against the guards."""
    bolus, rate = _block_refs()
    outcomes = [
        _concentration(step, index),
        _volume(step, index, step.bolus_ml, bolus, "bolus volume", "mL", ((_LITRE, "L", "mL"),)),
        _volume(
            step,
            index,
            step.infusion_ml_per_h,
            rate,
            "infusion rate",
            "mL/h",
            ((_PER_MINUTE, "mL/min", "mL/h"), (_LITRE, "L/h", "mL/h")),
        ),
    ]
    found = [o for o in outcomes if o is not None and o is not PASSED]
    if found:
        return found
    return PASSED if any(o is PASSED for o in outcomes) else None


@rule(
    "dose.implausible",
    title="Implausible dose or rate (unit slip)",
    applies_to=(*DRUG_KINDS, _BLOCK),
    needs=(
        "step.dose",
        "step.rate",
        "step.concentration",
        "step.bolus_volume",
        "step.infusion_rate",
    ),
    sources=("omtk-rxnorm-2020", "ropivacaine-us-label", "chelly-lumbar-plexus", "library-policy"),
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
    "data is not guarded. A psoas compartment block step's concentration is compared with the "
    "most concentrated marketed solution of its agent (more than "
    "{severity-policy:guards.block-concentration.multiple} times it: a strength in mg/mL written "
    "as %), its bolus volume and infusion rate with the largest published ones, "
    "{limits-plausible:block.bolus_volume} and {limits-plausible:block.infusion_rate} (more than "
    "{severity-policy:guards.block-volume.multiple} times: litres written for millilitres, mL/min "
    "written for mL/h).",
)
@step_outcomes
def implausible(ctx: Context, index: int | None, step: Any) -> Any:
    """Compare each dose and rate with the largest marketed unit of the drug."""
    if step.kind == _BLOCK:
        return _block(step, index)
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
