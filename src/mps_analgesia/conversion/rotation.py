"""Opioid rotation: equianalgesic dose, reduction for incomplete cross-tolerance, and a
schedule rounded *down* to available strengths (capped at the catalog's maximum daily dose)."""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from .. import _catalog, _units
from .._catalog import ConversionTable, Product, TableEntry
from ..errors import ConversionError, MpsAnalgesiaError, UnknownRouteError
from ..regimen import Regimen
from ..steps import MethadoneAdjuvantStep, OpioidStep
from ._common import (
    DEFAULT_TABLE,
    FROM_METHADONE,
    HOURS_PER_DAY,
    REL,
)
from ._common import (
    close as _close,
)
from ._common import (
    norm as _norm,
)
from ._common import (
    num as _num,
)
from ._common import (
    span as _span,
)
from ._common import (
    tag as _tag,
)
from ._common import (
    unknown as _unknown,
)
from .ome import _compute, _indexed, _prn_policy, table_by_id
from .results import Conversion, OmeResult, QuantityRange, Reduction, Schedule

__all__ = ["convert_opioid"]


@cache
def _reductions() -> tuple[dict[str, Reduction], str]:
    """The named reductions of ``rotation.toml`` as :class:`Reduction` values, and the default."""
    records, default = _catalog.reductions()
    out = {
        name: Reduction(r.name, r.low, r.high, r.source, r.level, r.note)
        for name, r in records.items()
    }
    return out, default


_NONE_REDUCTION: Final = Reduction("none", 0.0, 0.0, note="no reduction")


def _reduction(spec: object, *, same_drug: bool) -> Reduction:
    named, default = _reductions()
    if isinstance(spec, Reduction):
        return spec
    if isinstance(spec, str):
        key = _norm(spec)
        if key == "auto":
            if same_drug:
                return Reduction(
                    "none",
                    0.0,
                    0.0,
                    note="same drug, route change only: no cross-tolerance reduction",
                )
            return named[default]
        if key == "none":
            return _NONE_REDUCTION
        if key in named:
            return named[key]
        raise _unknown("reduction", spec, ["auto", "none", *named], "reduction")
    if spec is None:
        raise ConversionError(
            "reduction=None is ambiguous: write reduction='auto' (25–50 % when the drug "
            "changes), 'none', a named reduction, or fractions such as (0.25, 0.5)"
        )
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        value = float(spec)
        return _NONE_REDUCTION if value == 0 else Reduction("custom", value, value)
    if isinstance(spec, tuple | list) and len(spec) == 2:
        return Reduction("custom", spec[0], spec[1])
    raise ConversionError(
        f"reduction {spec!r} is not understood: give a name ('auto', 'none', "
        f"{', '.join(repr(n) for n in named)}), a fraction (0.3) or a pair (0.25, 0.5)"
    )


# ---- rotation -----------------------------------------------------------------------------------


def _target_drug(name: object, field: str) -> _catalog.DrugRecord:
    record = _catalog.drug(str(name), field=field)
    if record.drug_class != "opioid":
        raise ConversionError(
            f"{field}: {record.id} is not an opioid; it has no equianalgesic dose"
        )
    return record


def _target_route(record: _catalog.DrugRecord, route: object, field: str) -> str:
    norm = _norm(str(route))
    try:
        _catalog.route_formulations(norm)
    except UnknownRouteError as exc:
        reason = exc.reason.replace(repr(norm), repr(str(route)), 1)
        raise UnknownRouteError("route", str(route), exc.suggestions, field, reason) from None
    if norm not in record.routes:
        raise UnknownRouteError(
            "route",
            norm,
            record.routes,
            field,
            reason=f"{record.id} has no {norm} route (its routes: {', '.join(record.routes)})",
        )
    return norm


def _target_formulation(drug: str, route: str, formulation: object, field: str) -> str:
    allowed = _catalog.route_formulations(route)
    if formulation is None:
        if route == "oral" and (drug, route, "modified-release") in _catalog.products():
            return "modified-release"
        return allowed[0]
    norm = _norm(str(formulation))
    if norm not in allowed:
        raise ConversionError(
            f"{field}: {formulation!r} does not exist by the {route} route "
            f"(allowed: {', '.join(allowed)})"
        )
    return norm


def _target_entry(table: ConversionTable, drug: str, route: str) -> TableEntry:
    if drug == "methadone":
        raise ConversionError(
            "convert_opioid() does not convert to methadone: its ratio depends on the prior dose; "
            "use methadone_from_ome(ome, scheme=...) with a named scheme "
            f"({', '.join(_catalog.switching_schemes()[0])})"
        )
    entry = table.lookup(drug, route)
    if entry is None:
        raise ConversionError(
            f"{table.id} has no factor for {drug} by the {route} route, so it cannot convert to "
            f"it (it converts to: {', '.join(table.targets())}); try another table, e.g. "
            "table='palliative' for subcutaneous and intravenous routes"
        )
    if entry.kind == "none":
        raise ConversionError(
            f"{table.id} cannot convert to {drug}: {entry.reason} [{entry.source} {entry.level}]"
        )
    if entry.kind == "tiers":
        raise ConversionError(f"{table.id}: {drug}'s tiered factor is not a conversion ratio")
    return entry


def _band_rate(entry: TableEntry, ome: float) -> float:
    bands = entry.bands
    tol = REL * max(1.0, ome)
    for i, band in enumerate(bands):
        lower = band.low if band.low is not None else 0.0
        if band.low is None and not ome > 0:
            continue
        if ome < lower - tol:
            continue
        if i + 1 < len(bands):
            upper = bands[i + 1].low
            assert upper is not None
            # below the next row, or on an end point it shares with it: the LOWER patch
            if ome < upper - tol or ome <= band.high + tol:
                return band.rate
        elif ome <= band.high + tol:
            return band.rate
    first = bands[0]
    if first.low is not None and ome < first.low:
        why = f"below {_num(first.low)} MME/day, where the {entry.band_title} bands start"
    else:
        why = f"above {_num(bands[-1].high)} MME/day, where the {entry.band_title} bands end"
    raise ConversionError(
        f"{_num(ome)} MME/day is {why}: no patch strength is given for it "
        f"[{entry.source} {entry.level}]"
    )


def _equianalgesic(entry: TableEntry, low: float, high: float) -> tuple[float, float, str, str]:
    """OME range → target range in the entry's dose unit, with the detail text."""
    unit = entry.dose_unit
    if entry.kind == "bands":
        rate_low, rate_high = _band_rate(entry, low), _band_rate(entry, high)
        detail = (
            f"{_span(low, high, 'MME/day')} in the {entry.band_title} band of "
            f"{_span(rate_low, rate_high, unit)}"
        )
        return rate_low, rate_high, unit, detail
    calc_low, calc_high = low / entry.factor_high, high / entry.factor_low
    detail = (
        f"{_span(low, high, 'MME/day')} ÷ {_span(entry.factor_low, entry.factor_high)} = "
        f"{_span(calc_low, calc_high, unit)}"
    )
    return calc_low, calc_high, unit, detail


def _suggest(
    drug: str, route: str, formulation: str, target: float, unit: str, *, prn: bool = False
) -> tuple[Schedule | None, str]:
    """Round ``target`` (a daily amount in ``unit``, or one PRN dose in mg) down to a product."""
    product = _catalog.products().get((drug, route, formulation))
    if product is None:
        return None, (
            f"no suggested schedule: strengths.toml lists no {drug} {route} {formulation} product; "
            "round the reduced dose down to what your formulary supplies"
        )
    common: dict[str, Any] = {
        "source": product.source,
        "level": product.level,
        "note": product.note,
    }
    if prn:
        if unit != "mg":
            return None, f"no suggested dose: the dose is in {unit}, the product in mg"
        got = product.round_down(target)
        if got is None:
            return None, _below(target, "mg", product)
        return Schedule(
            drug, route, formulation, got[0], "mg", None, got[1], target, True, **common
        ), ""
    if product.unit == "mcg/h":
        if unit != "mcg/h":
            return None, f"no suggested schedule: the dose is in {unit}, the patch in mcg/h"
        got = product.round_down(target)
        if got is None:
            return None, _below(target, "mcg/h", product)
        return Schedule(
            drug, route, formulation, got[0], "mcg/h", None, got[1], target, **common
        ), ""
    if unit != "mg/day":
        return None, f"no suggested schedule: the dose is in {unit}, the product in mg"
    if product.infusion or product.every_h is None:
        got = product.round_down(target)
        if got is None:
            return None, _below(target, "mg/day", product)
        return (
            Schedule(drug, route, formulation, got[0], "mg/day", None, got[1], target, **common),
            "",
        )
    per_dose = target * product.every_h / HOURS_PER_DAY
    got = product.round_down(per_dose)
    if got is None:
        return None, _below(per_dose, "mg", product, every_h=product.every_h)
    return (
        Schedule(
            drug, route, formulation, got[0], "mg", product.every_h, got[1], per_dose, **common
        ),
        "",
    )


def _below(target: float, unit: str, product: Product, every_h: float | None = None) -> str:
    smallest = product.increment or (product.sums[0] if product.sums else 0.0)
    per = f" per dose every {_num(every_h)} h" if every_h is not None else ""
    return (
        f"no suggested schedule: {_num(target)} {unit}{per} is below the smallest available "
        f"{product.drug} {product.route} {product.formulation} amount ({_num(smallest)} "
        f"{'mcg/h' if product.unit == 'mcg/h' else 'mg'}); a dose is never rounded up"
    )


def _rotation_source(
    source: Any, table: ConversionTable, policy: str
) -> tuple[OmeResult | None, float, float, frozenset[str], tuple[str, ...]]:
    notes: list[str] = []
    if isinstance(source, str) or _units.is_quantity(source):
        q = _units.as_quantity(source, "ome_rate", field="source")
        value = _units.magnitude_in(q, "MME/day")
        if not value > 0:
            raise ConversionError(f"source: a daily OME to convert must be above 0, not {value}")
        return None, value, value, frozenset(), ()
    if isinstance(source, OmeResult):
        result = source
        if result.table != table.id:
            raise ConversionError(
                f"source: this OmeResult was computed with {result.table}, not {table.id}; "
                f"pass table={result.table!r} or the regimen itself"
            )
    elif isinstance(source, MethadoneAdjuvantStep):
        raise ConversionError(f"source: {FROM_METHADONE}")
    elif isinstance(source, OpioidStep):
        if source.prn:
            raise ConversionError(
                "source: a PRN step is not rotated on its own; use breakthrough_dose() for the "
                "new rescue dose"
            )
        result = _compute(table, ((0, source),), policy, None)
    elif isinstance(source, Regimen | list | tuple):
        indexed = _indexed(source, "convert_opioid()")
        kept: list[tuple[int, Any]] = []
        for i, s in indexed:
            if s.kind == "methadone_adjuvant":
                notes.append(
                    f"step {i + 1} adjuvant methadone is not rotated: it is added to the opioid, "
                    "not part of it"
                )
            elif s.kind == "opioid":
                kept.append((i, s))
        if not kept:
            raise ConversionError("source: the regimen has no opioid step to convert")
        result = _compute(table, kept, policy, None)
    else:
        raise ConversionError(
            "source must be an OpioidStep, a Regimen, an OmeResult or a daily OME such as "
            f"'60 MME/day', not {type(source).__name__}"
        )
    if any(line.drug == "methadone" for line in result.lines):
        raise ConversionError(f"source: {FROM_METHADONE}")
    if result.not_converted:
        raise ConversionError(
            f"source: cannot convert, because {table.id} does not convert every step: "
            + "; ".join(s.text for s in result.not_converted)
        )
    if not result.high_mme_per_day > 0:
        raise ConversionError(
            f"source: nothing to convert (no regular opioid dose; prn={result.prn})"
        )
    drugs = frozenset(line.drug for line in result.lines)
    return result, result.low_mme_per_day, result.high_mme_per_day, drugs, tuple(notes)


def convert_opioid(
    source: Any,
    *,
    to_drug: str,
    to_route: str = "oral",
    to_formulation: str | None = None,
    reduction: Any = "auto",
    table: str | ConversionTable = DEFAULT_TABLE,
    prn: str = "regular_only",
) -> Conversion:
    """Rotate to another opioid or route: equianalgesic dose, reduced range, rounded suggestion.

    Parameters
    ----------
    source:
        A regular :class:`~mps_analgesia.OpioidStep`, a :class:`~mps_analgesia.Regimen` (its
        regular ``opioid`` steps; adjuvant methadone is not rotated), an :class:`OmeResult`, or
        a daily OME (``"60 MME/day"`` or a Quantity).  Methadone as a source is refused.
    to_drug, to_route, to_formulation:
        The target.  The formulation defaults to modified-release for oral targets that have
        one, a patch for transdermal, otherwise immediate-release.
    reduction:
        ``"auto"`` (default): the default 25–50 % reduction of ``data/rotation.toml`` when the
        drug changes, none for a route change of the same drug; ``"none"``; a named reduction
        (``"msd-2023"`` …); a fraction (``0.3``) or a pair (``(0.25, 0.5)``).
    table:
        The OME table used on both sides: an id (see :func:`ome_tables`) or a local table read
        by :func:`~mps_analgesia.load_table`.
    prn:
        The PRN policy for a regimen source (default ``regular_only``).

    Returns
    -------
    Conversion
        The calculated dose, the reduced range, a schedule rounded *down* to available strengths
        (or ``None`` with the reason in ``notes``), and the receipt.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.conversion import convert_opioid
    >>> morphine = mps.OpioidStep(drug="morphine", formulation="modified-release",
    ...                           dose="50 mg", every="12 h")
    >>> c = convert_opioid(morphine, to_drug="fentanyl", to_route="transdermal")
    >>> c.calculated.text, c.reduced.text, c.schedule.text
    ('41.67 mcg/h', '20.83–31.25 mcg/h', 'fentanyl transdermal patch 25 mcg/h (1 × 25 mcg/h)')
    """
    tab = table_by_id(table)
    policy = _prn_policy(prn)
    record = _target_drug(to_drug, "to_drug")
    route = _target_route(record, to_route, "to_route")
    formulation = _target_formulation(record.id, route, to_formulation, "to_formulation")
    entry = _target_entry(tab, record.id, route)
    result, low, high, drugs, notes = _rotation_source(source, tab, policy)
    calc_low, calc_high, unit, detail = _equianalgesic(entry, low, high)
    red = _reduction(reduction, same_drug=bool(drugs) and drugs == {record.id})
    # An uncertain equivalence (a range) is reduced from its low end: conservative by design.
    reduced_low, reduced_high = calc_low * (1.0 - red.high), calc_low * (1.0 - red.low)
    all_notes = list(notes)
    cap, cap_note, can_carry = _cap(record, route, formulation, unit, reduced_low, reduced_high)
    if cap_note:
        all_notes.append(cap_note)
    target = reduced_high if cap is None else min(reduced_high, cap)
    schedule: Schedule | None = None
    why = ""
    if can_carry:
        schedule, why = _suggest(record.id, route, formulation, target, unit)
    if not _close(calc_low, calc_high):
        all_notes.append(
            "the calculated dose is a range (an uncertain equivalence): the reduction starts "
            "from its low end"
        )
    if why:
        all_notes.append(why)
    elif schedule is not None:
        daily = schedule.daily_value
        if daily is not None and daily < reduced_low * (1.0 - REL):
            all_notes.append(
                f"the suggestion ({_num(daily)} {schedule.daily_unit}) is below the reduced range "
                "because no combination of the listed strengths falls inside it; it is never "
                "rounded up"
            )
    if entry.kind == "bands":
        all_notes.append(
            "the fentanyl band already maps an OME range to one patch; the reduction is applied "
            "on top of it"
        )
    return Conversion(
        tab.id,
        tab.edition,
        record.id,
        route,
        formulation,
        QuantityRange(low, high, "MME/day"),
        QuantityRange(calc_low, calc_high, unit),
        red,
        QuantityRange(reduced_low, reduced_high, unit),
        schedule,
        detail,
        entry.source,
        entry.level,
        result,
        tuple(all_notes),
        None if cap is None else QuantityRange(cap, cap, unit),
        can_carry,
    )


def _max_daily(record: _catalog.DrugRecord, route: str, formulation: str) -> _catalog.Limit | None:
    """The lowest catalog maximum daily dose that applies to the target, or ``None``."""
    limits = record.limits_for("max_daily", route, formulation)
    return min(limits, key=lambda lim: lim.value.value) if limits else None


def _cap(
    record: _catalog.DrugRecord,
    route: str,
    formulation: str,
    unit: str,
    reduced_low: float,
    reduced_high: float,
) -> tuple[float | None, str, bool]:
    """The catalog maximum daily dose in ``unit`` (``None`` without one), the receipt note when
    it caps the suggestion, and whether the target can carry the reduced range at all."""
    limit = _max_daily(record, route, formulation)
    if limit is None:
        return None, "", True
    try:
        q = _units.quantity_from_magnitude(limit.value.value, limit.value.unit)
        cap = _units.magnitude_in(q, unit)
    except MpsAnalgesiaError:  # a unit the limit cannot be read in: no cap to apply
        return None, "", True
    sv = limit.value
    what = f"{record.id} {route} {formulation}"
    limit_text = (
        f"the catalog maximum daily dose of {_num(cap)} {unit} for {what} "
        f"({sv.note or sv.source}) {_tag(sv.source, sv.level)}"
    )
    if reduced_low > cap * (1.0 + REL):
        return (
            cap,
            f"{record.id} cannot carry this dose: the whole reduced range "
            f"({_span(reduced_low, reduced_high, unit)}) is above {limit_text}; no schedule is "
            "suggested",
            False,
        )
    if reduced_high > cap * (1.0 + REL):
        return (
            cap,
            f"the suggestion is capped at {limit_text}: the reduced range reaches "
            f"{_num(reduced_high)} {unit}",
            True,
        )
    return cap, "", True
