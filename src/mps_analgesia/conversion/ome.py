"""Daily oral morphine equivalents: one step, a regimen, or a regimen under several tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from .. import _catalog
from .._catalog import ConversionTable, TableEntry, find_tier
from .._memo import Memo
from ..errors import ConversionError
from ..regimen import Regimen
from ..steps import MethadoneAdjuvantStep, OpioidStep
from ._common import (
    DEFAULT_TABLE,
    OPIOID_KINDS,
    PRN_POLICIES,
)
from ._common import (
    close as _close,
)
from ._common import (
    num as _num,
)
from ._common import (
    unknown as _unknown,
)
from .results import OmeLine, OmeResult, SkippedStep, TableComparison

__all__ = ["compare_tables", "daily_ome", "ome_of_steps", "ome_tables", "single_dose_ome"]


def ome_tables() -> tuple[str, ...]:
    """The ids of the OME tables, default first.

    Example
    -------
    >>> from mps_analgesia.conversion import ome_tables
    >>> ome_tables()[:2]
    ('cdc-2022', 'cdc-2016')
    """
    return tuple(_catalog.conversion_tables())


def table_by_id(name: object) -> ConversionTable:
    """The table with this id (a table given itself is returned as it is);
    :class:`~mps_analgesia.errors.UnknownNameError` if none."""
    return _catalog.conversion_table(name)


# ---- daily OME ----------------------------------------------------------------------------------


def _prn_policy(prn: object) -> str:
    if isinstance(prn, str):
        key = prn.strip().lower().replace("-", "_")
        if key in PRN_POLICIES:
            return key
    raise _unknown("PRN policy", prn, PRN_POLICIES, "prn")


def _indexed(source: object, what: str) -> tuple[tuple[int, Any], ...]:
    if isinstance(source, Regimen):
        return tuple(enumerate(source.steps))
    if isinstance(source, OpioidStep | MethadoneAdjuvantStep):
        return ((0, source),)
    if isinstance(source, list | tuple):
        return tuple(enumerate(Regimen(source).steps))
    kind = getattr(source, "kind", None)
    if isinstance(kind, str):
        raise ConversionError(f"{what}: a {kind!r} step is not an opioid; it has no OME")
    raise ConversionError(
        f"{what} takes an OpioidStep, a MethadoneAdjuvantStep or a Regimen, not "
        f"{type(source).__name__}"
    )


def _line(
    entry: TableEntry, index: int, step: Any, dose_mg: float, totals: Mapping[str, float]
) -> OmeLine | SkippedStep:
    value = dose_mg * entry.to_unit
    if entry.kind == "factor":
        return OmeLine(
            index,
            step.drug,
            step.route,
            step.kind,
            step.prn,
            "factor",
            value,
            entry.dose_unit,
            entry.factor_low,
            entry.factor_high,
            value * entry.factor_low,
            value * entry.factor_high,
            entry.source,
            entry.level,
            entry.estimate,
            "",
            entry.note,
        )
    if entry.kind == "tiers":
        total = totals[step.drug] * entry.to_unit
        tier = find_tier(entry.tiers, total)
        if tier is None:
            return SkippedStep(
                index,
                step.drug,
                step.route,
                f"{_num(total)} {entry.dose_unit} is outside the table's tiers",
                entry.source,
                entry.level,
            )
        detail = tier.text(entry.dose_unit)
        if not _close(total, value):
            detail += f", chosen by the {_num(total)} {entry.dose_unit} {step.drug} total"
        return OmeLine(
            index,
            step.drug,
            step.route,
            step.kind,
            step.prn,
            "tier",
            value,
            entry.dose_unit,
            tier.value,
            tier.value,
            value * tier.value,
            value * tier.value,
            entry.source,
            entry.level,
            entry.estimate,
            detail,
            entry.note,
        )
    # bands: the patch rate maps to a published OME range
    for band in entry.bands:
        if abs(band.rate - value) <= 1e-6 * max(1.0, value):
            if band.low is None:
                return SkippedStep(
                    index,
                    step.drug,
                    step.route,
                    f"the {entry.band_title} band for {_num(value)} mcg/h is "
                    f"open below (< {_num(band.high)} MME/day), so it gives no OME",
                    entry.source,
                    entry.level,
                )
            return OmeLine(
                index,
                step.drug,
                step.route,
                step.kind,
                step.prn,
                "band",
                value,
                entry.dose_unit,
                0.0,
                0.0,
                band.low,
                band.high,
                entry.source,
                entry.level,
                entry.estimate,
                f"{entry.band_title} band for {_num(value)} mcg/h",
                entry.note,
            )
    rows = ", ".join(_num(b.rate) for b in entry.bands if b.low is not None)
    return SkippedStep(
        index,
        step.drug,
        step.route,
        f"{_num(value)} mcg/h is not a row of the {entry.band_title} bands "
        f"({rows} mcg/h); use a table with a per-mcg/h factor such as cdc-2022",
        entry.source,
        entry.level,
    )


def _no_entry(table: ConversionTable, index: int, step: Any) -> SkippedStep:
    return SkippedStep(
        index,
        step.drug,
        step.route,
        f"{table.id} has no factor for {step.drug} by the {step.route} route",
    )


# Receipt lines are immutable values and depend only on the table entry, the step index, the
# step's kind, drug, route and PRN flag, its daily dose and (for a tiered entry) the drug's
# total, so each is built once and shared by every result that contains it: a regimen edited
# one step at a time rebuilds only the changed step's line.  Keyed by the entry's id and those
# canonical values (never the step, which may carry free text); the entry is kept with the line
# (alive, so its id is not reused) and compared by identity.  Bounded in bytes.
_LINES: Final = Memo("conversion.ome: receipt lines", 1 << 20)
_LINE_SIZE: Final = 1024
_LINE_KEY_SIZE: Final = 512
_EXCLUDED: dict[tuple[int, str, str], SkippedStep] = {}
_MEMO_MAX: Final = 4096


def _cached_line(
    entry: TableEntry, index: int, step: Any, dose_mg: float, totals: Mapping[str, float]
) -> OmeLine | SkippedStep:
    total = totals.get(step.drug) if entry.kind == "tiers" else None
    key = (id(entry), index, step.kind, step.drug, step.route, step.prn, dose_mg, total)
    hit = _LINES.data.get(key)
    if hit is not None and hit[0] is entry:
        return hit[1]  # type: ignore[no-any-return]
    line = _line(entry, index, step, dose_mg, totals)
    # the key is canonical by construction: validated vocabulary ids and numbers
    _LINES.put(key, (entry, line), _LINE_SIZE, key_bytes=_LINE_KEY_SIZE)
    return line


def _excluded_prn(index: int, drug: str, route: str) -> SkippedStep:
    """The receipt entry of a PRN step left out under ``regular_only`` (shared)."""
    key = (index, drug, route)
    hit = _EXCLUDED.get(key)
    if hit is None:
        if len(_EXCLUDED) >= _MEMO_MAX:
            _EXCLUDED.clear()
        hit = _EXCLUDED[key] = SkippedStep(
            index, drug, route, "PRN step left out (prn=regular_only)"
        )
    return hit


def _compute(
    table: ConversionTable, indexed: Iterable[tuple[int, Any]], policy: str, day: int | None
) -> OmeResult:
    regular_only = policy == "regular_only"
    counted: list[tuple[int, Any, float, TableEntry]] = []
    not_converted: list[SkippedStep] = []
    excluded: list[SkippedStep] = []
    totals: dict[str, float] = {}
    for index, step in indexed:
        if step.kind not in OPIOID_KINDS:
            continue
        if step.prn and regular_only:
            excluded.append(_excluded_prn(index, step.drug, step.route))
            continue
        dose = step.daily_dose_mg if day is None else step.daily_dose_mg_on(day)
        if dose <= 0.0:
            continue
        entry = table.lookup(step.drug, step.route, getattr(step, "dose_form", None))
        if entry is None:
            not_converted.append(_no_entry(table, index, step))
            continue
        if entry.kind == "none":
            not_converted.append(
                SkippedStep(
                    index,
                    step.drug,
                    step.route,
                    entry.reason,
                    entry.source,
                    entry.level,
                )
            )
            continue
        if entry.kind == "tiers":
            totals[step.drug] = totals.get(step.drug, 0.0) + dose
        counted.append((index, step, dose, entry))
    lines: list[OmeLine] = []
    low = high = 0.0
    for index, step, dose, entry in counted:
        line = _cached_line(entry, index, step, dose, totals)
        if isinstance(line, SkippedStep):
            not_converted.append(line)
            continue
        lines.append(line)
        low += line.ome_low
        high += line.ome_high
    return OmeResult(
        table.id,
        table.edition,
        policy,
        tuple(lines),
        tuple(not_converted),
        tuple(excluded),
        low,
        high,
        table.title,
        table.note,
        day,
    )


def daily_ome(
    step_or_regimen: Any,
    table: str | ConversionTable = DEFAULT_TABLE,
    prn: str = "regular_only",
    *,
    day: int | None = None,
) -> OmeResult:
    """The daily oral morphine equivalent of a step or regimen under a named table.

    Parameters
    ----------
    step_or_regimen:
        An :class:`~mps_analgesia.OpioidStep`, a :class:`~mps_analgesia.MethadoneAdjuvantStep`,
        a :class:`~mps_analgesia.Regimen` or a list of steps.  Non-opioid steps are ignored;
        ``methadone_adjuvant`` steps count through the table's methadone factor (an estimate).
    table:
        ``cdc-2022`` (default), ``cdc-2016``, ``palliative``, ``palliative-duragesic``,
        ``palliative-uk``, ``palliative-nougg``, ``palliative-scotland`` or ``anzca-2021`` (see
        :func:`ome_tables`), or a local table read by
        :func:`~mps_analgesia.load_table`.  A string is always an id, never a path.
    prn:
        ``regular_only`` (default: scheduled doses only) or ``with_prn_maximum`` (plus each PRN
        step's maximum over 24 h).  Recorded on the result.
    day:
        A plan day: use the doses in force that day.  Default: each step's largest daily dose
        over its titration.

    Returns
    -------
    OmeResult
        The total (:attr:`OmeResult.total`, a Quantity in MME/day; :attr:`OmeResult.range` when
        a range is involved), the receipt, and the steps *not converted* with why.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.conversion import daily_ome
    >>> patch = mps.OpioidStep(drug="fentanyl", route="transdermal", rate="25 mcg/h")
    >>> daily_ome(patch).total
    <Quantity(60.0, 'morphine_milligram_equivalent / day')>
    >>> daily_ome(patch, table="palliative").range.text
    '60–134 MME/day'
    >>> bup = mps.OpioidStep(drug="buprenorphine", route="transdermal", rate="10 mcg/h")
    >>> daily_ome(bup).not_converted[0].reason[:39]
    'CDC lists buprenorphine products withou'
    """
    tab = table_by_id(table)
    policy = _prn_policy(prn)
    if day is not None and (isinstance(day, bool) or not isinstance(day, int) or day < 0):
        raise ConversionError(f"day must be a plan day (a whole number ≥ 0), not {day!r}")
    return _compute(tab, _indexed(step_or_regimen, "daily_ome()"), policy, day)


def compare_tables(
    regimen: Any,
    tables: Sequence[str | ConversionTable] | str | ConversionTable | None = None,
    prn: str = "regular_only",
) -> TableComparison:
    """The same regimen under several OME tables, side by side.

    Parameters
    ----------
    regimen:
        A step, a regimen or a list of steps (as for :func:`daily_ome`).
    tables:
        Table ids or tables (a local one from :func:`~mps_analgesia.load_table`), in the order
        to show; default every shipped table (:func:`ome_tables`).
    prn:
        The PRN policy, the same for every table.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.conversion import compare_tables
    >>> reg = mps.Regimen([mps.OpioidStep(drug="tramadol", dose="100 mg", every="6 h")])
    >>> print(compare_tables(reg, ["cdc-2022", "cdc-2016"]).to_text())
    table     OME/day (prn=regular_only)
    cdc-2022  80 MME/day
    cdc-2016  40 MME/day
    """
    if isinstance(tables, str | ConversionTable):
        tables = [tables]
    ids: list[str | ConversionTable] = list(tables) if tables is not None else list(ome_tables())
    if not ids:
        raise ConversionError("compare_tables() needs at least one table id")
    chosen = [table_by_id(t) for t in ids]
    policy = _prn_policy(prn)
    indexed = _indexed(regimen, "compare_tables()")
    return TableComparison(tuple(_compute(t, indexed, policy, None) for t in chosen), policy)


# ---- helpers for the opioid rules ---------------------------------------------------------------


def single_dose_ome(
    step: Any, table: str | ConversionTable = DEFAULT_TABLE
) -> tuple[float, float] | str:
    """The OME (MME) of one dose of a step, as ``(low, high)``, or the reason it has none.

    Used by ``opioid.breakthrough-dose`` to compare a PRN dose with the regular daily OME.
    """
    tab = table_by_id(table)
    entry = tab.lookup(step.drug, step.route, getattr(step, "dose_form", None))
    if entry is None:
        return f"{tab.id} has no factor for {step.drug} by the {step.route} route"
    if entry.kind == "none":
        return f"{tab.id}: {entry.reason}"
    if entry.kind != "factor":
        return f"{tab.id}'s {step.drug} {step.route} factor depends on the daily total or a band"
    doses = [step.dose_mg] if step.dose_mg is not None else []
    doses.extend(p.dose_mg for p in step.titration if p.dose_mg is not None)
    if not doses:
        return "the step has no dose per administration"
    value = max(doses) * entry.to_unit
    return value * entry.factor_low, value * entry.factor_high


def ome_of_steps(
    indexed: Iterable[tuple[int, Any]],
    table: str | ConversionTable = DEFAULT_TABLE,
    prn: str = "regular_only",
) -> OmeResult:
    """:func:`daily_ome` of chosen ``(index, step)`` pairs of a regimen (indices kept)."""
    return _compute(table_by_id(table), indexed, _prn_policy(prn), None)
