"""Breakthrough (rescue) doses from the regular daily OME."""

from __future__ import annotations

from fractions import Fraction
from functools import cache
from typing import Any

from .. import _catalog
from .._catalog import ConversionTable
from ..errors import ConversionError
from ._common import (
    DEFAULT_TABLE,
)
from ._common import (
    close as _close,
)
from ._common import (
    num as _num,
)
from ._common import (
    span as _span,
)
from ._common import (
    unknown as _unknown,
)
from .ome import _compute, _indexed, table_by_id
from .results import BreakthroughDose, BreakthroughFraction, QuantityRange
from .rotation import _suggest, _target_drug, _target_entry, _target_route

__all__ = ["breakthrough_dose", "breakthrough_window"]

#: The PRN-dose window of ``opioid.breakthrough-dose``: (low, high) fractions of the OME.
breakthrough_window = _catalog.breakthrough_window


@cache
def _fractions() -> tuple[dict[str, BreakthroughFraction], str]:
    """The named fractions of ``breakthrough.toml`` as values, and the default's name."""
    records, default = _catalog.breakthrough_fractions()
    out = {
        name: BreakthroughFraction(r.name, r.low, r.high, r.source, r.level, r.note)
        for name, r in records.items()
    }
    return out, default


# ---- breakthrough -------------------------------------------------------------------------------


def _fraction(spec: object) -> BreakthroughFraction:
    named, default = _fractions()
    if isinstance(spec, BreakthroughFraction):
        return spec
    if isinstance(spec, str):
        key = spec.strip().replace(" ", "")
        if key in named:
            return named[key]
        if key == "default":
            return named[default]
        raise _unknown("breakthrough fraction", spec, named, "fraction")
    if isinstance(spec, Fraction):
        return BreakthroughFraction("custom", float(spec), float(spec))
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        return BreakthroughFraction("custom", float(spec), float(spec))
    if isinstance(spec, tuple | list) and len(spec) == 2:
        lo, hi = (float(Fraction(str(v))) if isinstance(v, str) else v for v in spec)
        if isinstance(lo, bool) or isinstance(hi, bool):
            raise ConversionError("a breakthrough fraction is a number, not true/false")
        return BreakthroughFraction("custom", float(lo), float(hi))
    raise ConversionError(
        f"fraction {spec!r} is not understood: give {', '.join(repr(n) for n in named)}, "
        "a number (0.15) or a pair (0.1, 0.2)"
    )


def breakthrough_dose(
    regimen: Any,
    fraction: Any = "1/6",
    *,
    table: str | ConversionTable = DEFAULT_TABLE,
    drug: str | None = None,
    route: str | None = None,
    include_adjuvant_methadone: bool = False,
) -> BreakthroughDose:
    """The immediate-release breakthrough (rescue) dose of the main opioid.

    The dose per administration = regular daily OME × fraction ÷ the drug's factor, rounded
    *down* to available immediate-release strengths.

    Parameters
    ----------
    regimen:
        A regimen, a regular opioid step or a list of steps.  The basis is the regular daily
        OME of the opioid the rescue replaces: the regular steps of the breakthrough drug when
        the regimen has them, else every regular ``opioid`` step.  Adjuvant methadone is left
        out (CDC 2022: its factor is not for dosing; conversion from methadone is one-way); the
        notes say which steps were used.
    fraction:
        ``"1/6"`` (default, Japanese morphine label), ``"10-20%"`` (NCCN 2011), a number or a
        pair of numbers.
    table:
        The OME table: an id or a local table read by :func:`~mps_analgesia.load_table`.
    drug, route:
        The breakthrough drug and route; default the main opioid (the regular ``opioid`` step
        with the largest OME) and its route.  A patch has no immediate-release form: name
        another drug and route.
    include_adjuvant_methadone:
        Count adjuvant methadone in the basis (through the table's methadone factor, an
        estimate); off by default.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.conversion import breakthrough_dose
    >>> reg = mps.Regimen([mps.OpioidStep(drug="morphine", formulation="modified-release",
    ...                                   dose="30 mg", every="12 h")])
    >>> breakthrough_dose(reg).dose.text
    '10 mg'
    >>> b = breakthrough_dose(reg, "10-20%")
    >>> b.dose.text, b.suggested.amount
    ('6–12 mg', 10.0)
    """
    tab = table_by_id(table)
    frac = _fraction(fraction)
    indexed = list(_indexed(regimen, "breakthrough_dose()"))
    chosen = [
        (i, s)
        for i, s in indexed
        if include_adjuvant_methadone or getattr(s, "kind", "") != "methadone_adjuvant"
    ]
    if not chosen and indexed:
        raise ConversionError(
            "no main opioid (only adjuvant methadone is regular): name the breakthrough drug= "
            "and give its regular step, or pass include_adjuvant_methadone=True"
        )
    rescue = _target_drug(drug, "drug").id if drug is not None else None
    same = [
        (i, s)
        for i, s in chosen
        if rescue is not None and getattr(s, "drug", None) == rescue and not getattr(s, "prn", 0)
    ]
    basis_note = (
        f"basis: the regular {rescue} steps (the opioid the rescue replaces)"
        if same
        else "basis: every regular opioid step"
    ) + (
        ""
        if include_adjuvant_methadone or len(chosen) == len(indexed)
        else "; adjuvant methadone left out (its factor is not for dosing)"
    )
    result = _compute(tab, same or chosen, "regular_only", None)
    if result.not_converted:
        raise ConversionError(
            f"no breakthrough dose: {tab.id} does not convert every regular opioid: "
            + "; ".join(s.text for s in result.not_converted)
        )
    if not result.high_mme_per_day > 0:
        raise ConversionError("no breakthrough dose: the regimen has no regular opioid dose")
    main = max(
        (line for line in result.lines if line.kind == "opioid"),
        key=lambda line: line.ome_high,
        default=None,
    )
    if drug is None and main is None:
        raise ConversionError(
            "no main opioid (only adjuvant methadone is regular): name the breakthrough drug="
        )
    record = _target_drug(drug if drug is not None else main.drug if main else "", "drug")
    if route is None:
        if main is not None and record.id == main.drug:
            route_name = main.route
        else:
            route_name = "oral" if "oral" in record.routes else record.routes[0]
    else:
        route_name = str(route)
    if route_name == "transdermal":
        raise ConversionError(
            f"a {record.id} patch has no immediate-release form for breakthrough doses: "
            "name drug= and route= (for example drug='morphine', route='oral')"
        )
    route_id = _target_route(record, route_name, "route")
    entry = _target_entry(tab, record.id, route_id)
    if entry.kind != "factor" or not entry.dose_unit.endswith("/day"):
        raise ConversionError(f"{tab.id} gives no per-dose factor for {record.id} {route_id}")
    per_dose_unit = entry.dose_unit[: -len("/day")]
    low = result.low_mme_per_day * frac.low / entry.factor_high
    high = result.high_mme_per_day * frac.high / entry.factor_low
    # The fraction's range is the prescriber's choice (its top is used); an uncertain OME or
    # factor (a range) resolves to its conservative end.
    target = result.low_mme_per_day * frac.high / entry.factor_high
    detail = (
        f"{_span(result.low_mme_per_day * frac.low, result.high_mme_per_day * frac.high, 'MME')}"
        f" ÷ {_span(entry.factor_low, entry.factor_high)}"
    )
    formulation = "immediate-release"
    suggested, why = _suggest(record.id, route_id, formulation, target, per_dose_unit, prn=True)
    notes = [basis_note, *([why] if why else [])]
    if result.is_range or not _close(entry.factor_low, entry.factor_high):
        notes.append(
            "the OME or the factor is a range: the suggestion starts from its conservative end "
            f"({_num(target)} {per_dose_unit})"
        )
    if any(line.kind == "methadone_adjuvant" for line in result.lines):
        notes.append(
            "adjuvant methadone is counted in the regular OME through the table's methadone "
            "factor, which is an estimate"
        )
    return BreakthroughDose(
        result,
        frac,
        record.id,
        route_id,
        formulation,
        QuantityRange(low, high, per_dose_unit),
        suggested,
        main.step if main is not None else None,
        detail,
        entry.source,
        entry.level,
        tuple(notes),
    )
