"""Equianalgesia: oral morphine equivalents, opioid rotation, methadone and breakthrough doses.

Every number returned here names its table (and the table's edition), its formula and any
reduction, and carries a *receipt*: for each step, daily dose × factor = OME, with the source id
and verification level of the factor.  The clinical values are data files, never code:

==============================  =================================================================
``data/ome-cdc-2022.toml``      ``cdc-2022`` (default): CDC 2022 MME factors
``data/ome-cdc-2016.toml``      ``cdc-2016``: hydromorphone 4, methadone tiered by dose
``data/ome-palliative.toml``    ``palliative``, ``palliative-duragesic``, ``palliative-uk``:
                                route-specific ratios (SC/IV morphine, parenteral hydromorphone
                                and oxycodone) and transdermal-fentanyl *bands* (ranges)
``data/ome-anzca-2021.toml``    ``anzca-2021``: ANZCA PS01(PM) factors [S]
``data/rotation.toml``          reductions for incomplete cross-tolerance; opioid tolerance
``data/methadone-schemes.toml`` switching schemes to methadone (one way only)
``data/breakthrough.toml``      breakthrough (rescue) fractions
``data/strengths.toml``         product strengths to round suggestions *down* (unverified [U])
==============================  =================================================================

Formulas (``dose_unit`` is mg/day except transdermal fentanyl, whose factor is per mcg/h):

- OME (MME/day) = daily dose in ``dose_unit`` × factor; a range-valued factor or a fentanyl band
  gives a range, and a range stays a range in every result;
- equianalgesic dose = OME ÷ factor of the target (or the fentanyl band holding the OME);
- reduced range = equianalgesic × (1 − high reduction) … equianalgesic × (1 − low reduction),
  from the LOW end of the equianalgesic dose when that is a range (an uncertain equivalence);
- suggestion = the largest combination of available strengths not above the top of the
  reduced range (rounded down, never up).

MME is a metric, not a dosing tool: CDC says the calculated MME must not choose the dose of a new
opioid; rotation therefore always shows a reduction, and converting *from* methadone by a linear
factor is refused.  Below the public functions everything is canonical floats; pint Quantities
are built only when a result's Quantity properties are read.
"""

from __future__ import annotations

import bisect
import difflib
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from functools import cache
from typing import Any, Final

import attrs

from . import _catalog, _units
from ._repr import Renderable
from .errors import (
    ConversionError,
    DataFileError,
    MpsAnalgesiaError,
    UnknownNameError,
    UnknownRouteError,
)
from .regimen import Regimen
from .steps import MethadoneAdjuvantStep, OpioidStep

__all__ = [
    "PRN_POLICIES",
    "BreakthroughDose",
    "BreakthroughFraction",
    "Conversion",
    "MethadoneConversion",
    "OmeLine",
    "OmeResult",
    "QuantityRange",
    "Reduction",
    "Schedule",
    "SkippedStep",
    "TableComparison",
    "breakthrough_dose",
    "compare_tables",
    "convert_opioid",
    "daily_ome",
    "methadone_from_ome",
    "methadone_schemes",
    "ome_tables",
]

#: The two definitions of how PRN (breakthrough) steps count towards a daily OME.
#: ``regular_only``: scheduled doses only; ``with_prn_maximum``: plus each PRN step's maximum
#: over 24 hours.
PRN_POLICIES: Final[tuple[str, ...]] = ("regular_only", "with_prn_maximum")
#: The default OME table.
DEFAULT_TABLE: Final = "cdc-2022"

_OME_FILES: Final = (
    "ome-cdc-2022.toml",
    "ome-cdc-2016.toml",
    "ome-palliative.toml",
    "ome-anzca-2021.toml",
)
_OPIOID_KINDS: Final = ("opioid", "methadone_adjuvant")
_HOURS_PER_DAY: Final = 24.0  # a unit identity, not a clinical number
_REL: Final = 1e-9
_ESTIMATE: Final = (
    "methadone's factor is an estimate, not a conversion ratio: never use it to dose methadone "
    "or to convert from methadone"
)
_FROM_METHADONE: Final = (
    "converting FROM methadone by a linear factor is refused: the morphine:methadone ratio is not "
    "linear (it rises with the prior dose: 2.5:1 to 14.3:1, median 7.75:1, in Ripamonti 1998) "
    "and methadone's long, variable half-life makes any back-conversion unreliable; rotate away "
    "from methadone under specialist guidance"
)


# ---- small helpers ----------------------------------------------------------------------------


def _num(x: float) -> str:
    """A number for display: whole numbers plain, others to 6 significant digits."""
    if math.isinf(x):
        return "∞"
    if abs(x - round(x)) < 1e-9 * max(1.0, abs(x)):
        return str(round(x))
    return f"{x:.6g}"


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= _REL * max(1.0, abs(a), abs(b))


def _span(low: float, high: float, unit: str = "") -> str:
    text = _num(low) if _close(low, high) else f"{_num(low)}–{_num(high)}"
    return f"{text} {unit}" if unit else text


def _weakest(levels: Iterable[str]) -> str:
    worst = "V"
    for level in levels:
        if level and _catalog.LEVELS.index(level) > _catalog.LEVELS.index(worst):
            worst = level
    return worst


def _tag(source: str, level: str) -> str:
    return f"[{source} {level}]" if source else "[caller's choice]"


def _unknown(kind: str, name: object, known: Iterable[str], field: str = "") -> UnknownNameError:
    known = list(known)
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.4)
    return UnknownNameError(
        kind,
        str(name),
        close,
        field,
        reason=f"unknown {kind} {name!r} (known: {', '.join(known)})",
    )


def _norm(value: str) -> str:
    return "-".join(str(value).strip().lower().replace("_", "-").split())


# ---- public value objects ---------------------------------------------------------------------


@attrs.define(frozen=True, slots=False)  # a dict class builds twice as fast
class QuantityRange:
    """A value that may be a published range: ``low`` … ``high`` in ``unit`` (equal for a point).

    A range is never collapsed to one number: :attr:`quantity` refuses a range.

    Example
    -------
    >>> from mps_analgesia.conversion import QuantityRange
    >>> QuantityRange(60.0, 134.0, "MME/day").text
    '60–134 MME/day'
    >>> QuantityRange(30.0, 30.0, "mg/day").quantity
    <Quantity(30.0, 'milligram / day')>
    """

    low: float
    high: float
    unit: str

    @property
    def is_range(self) -> bool:
        """True when low and high differ (a published range, not a point)."""
        return not _close(self.low, self.high)

    @property
    def low_quantity(self) -> Any:
        """The low end as a Quantity."""
        return _units.quantity_from_magnitude(self.low, self.unit)

    @property
    def high_quantity(self) -> Any:
        """The high end as a Quantity."""
        return _units.quantity_from_magnitude(self.high, self.unit)

    @property
    def quantity(self) -> Any:
        """The value as one Quantity; :class:`ConversionError` if it is a range."""
        if self.is_range:
            raise ConversionError(
                f"{self.text} is a range and stays one: read low_quantity and high_quantity"
            )
        return _units.quantity_from_magnitude(self.low, self.unit)

    @property
    def text(self) -> str:
        """``'60–134 MME/day'`` or ``'60 MME/day'``."""
        return _span(self.low, self.high, self.unit)

    def __str__(self) -> str:
        return self.text


@attrs.define(frozen=True, slots=False)  # a dict class builds twice as fast
class OmeLine:
    """One line of an OME receipt: a step's daily dose × factor = OME, with its source.

    ``basis`` is ``"factor"`` (a fixed factor, possibly a published range), ``"tier"`` (a factor
    chosen by the drug's total daily dose, CDC 2016 methadone) or ``"band"`` (a transdermal
    fentanyl band).  ``dose`` is in ``dose_unit`` (mg/day, or mcg/h for a patch).
    """

    step: int
    drug: str
    route: str
    kind: str
    prn: bool
    basis: str
    dose: float
    dose_unit: str
    factor_low: float
    factor_high: float
    ome_low: float
    ome_high: float
    source: str
    level: str
    estimate: bool = False
    detail: str = ""
    note: str = ""

    @property
    def ome(self) -> QuantityRange:
        """The step's OME in MME/day (a range for a range factor or a band)."""
        return QuantityRange(self.ome_low, self.ome_high, "MME/day")

    @property
    def text(self) -> str:
        """The receipt line: ``'step 1 oxycodone oral: 20 mg/day × 1.5 = 30 MME/day [...]'``."""
        what = f"step {self.step + 1} {self.drug} {self.route}"
        if self.kind == "methadone_adjuvant":
            what += " (adjuvant)"
        if self.prn:
            what += " (PRN maximum)"
        dose = f"{_num(self.dose)} {self.dose_unit}"
        ome = _span(self.ome_low, self.ome_high, "MME/day")
        if self.basis == "band":
            body = f"{dose} → {ome} ({self.detail})"
        else:
            body = f"{dose} × {_span(self.factor_low, self.factor_high)} = {ome}"
            if self.detail:
                body += f" ({self.detail})"
        text = f"{what}: {body} {_tag(self.source, self.level)}"
        if self.estimate:
            text += f"; {_ESTIMATE}"
        return text


@attrs.define(frozen=True, slots=False)  # a dict class builds twice as fast
class SkippedStep:
    """A step left out of a total: ``reason`` says why (not converted, or PRN excluded)."""

    step: int
    drug: str
    route: str
    reason: str
    source: str = ""
    level: str = ""

    @property
    def text(self) -> str:
        """``'step 2 buprenorphine transdermal: CDC lists ...'``."""
        tag = f" {_tag(self.source, self.level)}" if self.source else ""
        return f"step {self.step + 1} {self.drug} {self.route}: {self.reason}{tag}"


@attrs.define(frozen=True, slots=False)  # a dict class builds twice as fast
class OmeResult(Renderable):
    """The daily oral morphine equivalent of a step or regimen under one named table.

    Attributes
    ----------
    table, edition, title:
        The table id (``cdc-2022``), its data-file edition and title.
    prn:
        The PRN policy used: ``regular_only`` or ``with_prn_maximum``.
    lines:
        The receipt: one :class:`OmeLine` per converted step.
    not_converted:
        Steps the table cannot convert, each with why (buprenorphine under CDC): never 0.
    excluded:
        PRN steps left out by ``regular_only``.
    low_mme_per_day, high_mme_per_day:
        The total of the converted steps as canonical floats (equal unless a range is involved).

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.conversion import daily_ome
    >>> step = mps.OpioidStep(drug="oxycodone", formulation="modified-release",
    ...                       dose="10 mg", every="12 h")
    >>> result = daily_ome(step)
    >>> result.total
    <Quantity(30.0, 'morphine_milligram_equivalent / day')>
    >>> result.receipt[0]
    'step 1 oxycodone oral: 20 mg/day × 1.5 = 30 MME/day [cdc-2022 V]'
    """

    table: str
    edition: str
    prn: str
    lines: tuple[OmeLine, ...]
    not_converted: tuple[SkippedStep, ...]
    excluded: tuple[SkippedStep, ...]
    low_mme_per_day: float
    high_mme_per_day: float
    title: str = ""
    note: str = ""
    day: int | None = None

    @property
    def complete(self) -> bool:
        """True when every counted opioid step was converted."""
        return not self.not_converted

    @property
    def is_range(self) -> bool:
        """True when the total is a range (a range factor or a fentanyl band is involved)."""
        return not _close(self.low_mme_per_day, self.high_mme_per_day)

    @property
    def range(self) -> QuantityRange:
        """The total of the converted steps, MME/day, as a (possibly degenerate) range."""
        return QuantityRange(self.low_mme_per_day, self.high_mme_per_day, "MME/day")

    @property
    def low(self) -> Any:
        """The low end of the converted total as a Quantity in MME/day."""
        return self.range.low_quantity

    @property
    def high(self) -> Any:
        """The high end of the converted total as a Quantity in MME/day."""
        return self.range.high_quantity

    @property
    def total(self) -> Any:
        """The daily OME as one Quantity in MME/day.

        Raises :class:`ConversionError` when a step was not converted (a partial total is not
        the total) or when the total is a range (read :attr:`low` and :attr:`high`).
        """
        if self.not_converted:
            steps = "; ".join(s.text for s in self.not_converted)
            raise ConversionError(
                f"no total under {self.table}: not converted: {steps} "
                f"(the converted steps give {self.range.text}; see .range)"
            )
        return self.range.quantity

    @property
    def level(self) -> str:
        """The weakest verification level among the factors used (V, S or U)."""
        return _weakest(line.level for line in self.lines)

    @property
    def sources(self) -> tuple[str, ...]:
        """The source ids of the factors used, in order of first use."""
        return tuple(dict.fromkeys(line.source for line in self.lines))

    @property
    def converted(self) -> bool:
        """False when there were opioid steps to count and none could be converted: then there
        is no total (never 0)."""
        return bool(self.lines) or not self.not_converted

    @property
    def total_text(self) -> str:
        """The total as text: ``'30 MME/day'``; ``'60 MME/day (partial: 1 step not
        converted)'`` when a step was not converted; ``'not converted'`` when none was.

        Example
        -------
        >>> import mps_analgesia as mps
        >>> from mps_analgesia.conversion import daily_ome
        >>> patch = mps.OpioidStep(drug="buprenorphine", route="transdermal", rate="10 mcg/h")
        >>> daily_ome(patch).total_text
        'not converted'
        """
        if not self.converted:
            return "not converted"
        if self.not_converted:
            n = len(self.not_converted)
            return f"{self.range.text} (partial: {n} step{'s' if n != 1 else ''} not converted)"
        return self.range.text

    @property
    def text(self) -> str:
        """One line: ``'30 MME/day (cdc-2022, regular_only)'``, naming what was not converted."""
        total = self.range.text if self.converted else "not converted"
        if self.lines and self.not_converted:
            total += " (partial)"
        head = f"{total} ({self.table}, {self.prn})"
        if self.not_converted:
            head += "; NOT converted: " + "; ".join(s.text for s in self.not_converted)
        return head

    @property
    def receipt(self) -> tuple[str, ...]:
        """Every line of the calculation, then what was left out and the total."""
        out = [line.text for line in self.lines]
        out.extend(f"not converted: {s.text}" for s in self.not_converted)
        out.extend(f"excluded: {s.text}" for s in self.excluded)
        shown = self.range.text if self.converted else "not converted (no step could be)"
        total = f"total: {shown} by {self.table} ({self.edition}), prn={self.prn}"
        if self.day is not None:
            total += f", plan day {self.day}"
        if self.lines and self.not_converted:
            total += " (partial: some steps not converted)"
        out.append(total)
        return tuple(out)

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the result.

        ``total`` is :attr:`total_text` (it says when it is partial), or ``None`` with
        ``low_mme_per_day``/``high_mme_per_day`` when nothing could be converted (never 0).
        """
        converted = self.converted
        return {
            "table": self.table,
            "edition": self.edition,
            "prn": self.prn,
            "day": self.day,
            "total": self.total_text if converted else None,
            "low_mme_per_day": self.low_mme_per_day if converted else None,
            "high_mme_per_day": self.high_mme_per_day if converted else None,
            "complete": self.complete,
            "receipt": list(self.receipt),
            "not_converted": [
                {"step": s.step, "drug": s.drug, "route": s.route, "reason": s.reason}
                for s in self.not_converted
            ],
            "excluded": [{"step": s.step, "reason": s.reason} for s in self.excluded],
        }


@attrs.define(frozen=True)
class TableComparison(Renderable):
    """The same regimen under several OME tables, side by side.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.conversion import compare_tables
    >>> reg = mps.Regimen([mps.OpioidStep(drug="methadone", dose="10 mg", every="12 h")])
    >>> cmp = compare_tables(reg, ["cdc-2022", "cdc-2016"])
    >>> [r.range.text for r in cmp]
    ['94 MME/day', '80 MME/day']
    """

    results: tuple[OmeResult, ...]
    prn: str

    def __iter__(self) -> Iterator[OmeResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, key: int | str) -> OmeResult:
        if isinstance(key, int):
            return self.results[key]
        for result in self.results:
            if result.table == key:
                return result
        raise _unknown("OME table in this comparison", key, self.tables)

    @property
    def tables(self) -> tuple[str, ...]:
        """The table ids, in the order asked for."""
        return tuple(r.table for r in self.results)

    def to_text(self) -> str:
        """A plain-text side-by-side table."""
        width = max((len(t) for t in self.tables), default=5)
        lines = [f"{'table':<{width}}  OME/day (prn={self.prn})"]
        for r in self.results:
            row = f"{r.table:<{width}}  "
            missing = ", ".join(f"step {s.step + 1} {s.drug}" for s in r.not_converted)
            if not r.not_converted:
                row += r.range.text
            elif r.lines:
                row += f"{r.range.text} (partial; not converted: {missing})"
            else:
                row += f"not converted ({missing})"
            lines.append(row)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: each table's result."""
        return {"prn": self.prn, "results": [r.to_dict() for r in self.results]}


@attrs.define(frozen=True, slots=False)  # a dict class builds twice as fast
class Reduction:
    """A dose reduction for incomplete cross-tolerance: take off ``low`` … ``high`` (fractions).

    ``name`` is the named reduction of ``data/rotation.toml`` (with its source), ``"none"``, or
    ``"custom"`` for the caller's own numbers.
    """

    name: str
    low: float
    high: float
    source: str = ""
    level: str = ""
    note: str = ""

    def __attrs_post_init__(self) -> None:
        for value in (self.low, self.high):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConversionError(f"a reduction is a fraction between 0 and 1, not {value!r}")
            if not (math.isfinite(value) and 0.0 <= value < 1.0):
                raise ConversionError(
                    f"a reduction is a fraction from 0 up to (not including) 1, not {value!r}; "
                    "write 0.25 for 25 %"
                )
        if self.low > self.high:
            raise ConversionError(f"reduction low {self.low} is above high {self.high}")

    @property
    def text(self) -> str:
        """``'25–50 % (cross-tolerance) [stanford-opioid-tool S]'``."""
        if self.high == 0.0:
            return f"none ({self.note})" if self.note else "none"
        pct = _span(self.low * 100, self.high * 100)
        return f"{pct} % ({self.name}) {_tag(self.source, self.level)}"


@attrs.define(frozen=True, slots=False)  # a dict class builds twice as fast
class Schedule:
    """A suggested schedule in available strengths, always rounded *down* from ``target``.

    ``amount`` is per dose in mg (tablets; ``every_h`` set), a patch rate in mcg/h
    (``every_h`` None), or a 24-hour infusion in mg/day (``every_h`` None).  ``composition`` is
    ``((strength, count), ...)``.  The strengths are unverified [U] common strengths: local
    formularies differ.
    """

    drug: str
    route: str
    formulation: str
    amount: float
    amount_unit: str
    every_h: float | None
    composition: tuple[tuple[float, int], ...]
    target: float
    prn: bool = False
    source: str = ""
    level: str = ""
    note: str = ""

    @property
    def daily_value(self) -> float | None:
        """The daily amount as a float (mg/day, or mcg/h for a patch); None for a PRN dose."""
        if self.prn:
            return None
        if self.every_h is not None:
            return self.amount * (_HOURS_PER_DAY / self.every_h)
        return self.amount

    @property
    def daily_unit(self) -> str:
        """The unit of :attr:`daily_value`: ``mcg/h`` for a patch, else ``mg/day``."""
        return "mcg/h" if self.amount_unit == "mcg/h" else "mg/day"

    @property
    def dose(self) -> Any:
        """The dose per administration (or the patch rate, or the infusion) as a Quantity."""
        return _units.quantity_from_magnitude(self.amount, self.amount_unit)

    @property
    def every(self) -> Any:
        """The dosing interval as a Quantity in h, or None (continuous or PRN)."""
        if self.every_h is None:
            return None
        return _units.quantity_from_magnitude(self.every_h, "h")

    @property
    def daily_dose(self) -> Any:
        """The daily dose as a Quantity (mg/day, or the mcg/h of a patch); None for PRN."""
        value = self.daily_value
        if value is None:
            return None
        return _units.quantity_from_magnitude(value, self.daily_unit)

    @property
    def text(self) -> str:
        """``'oxycodone oral modified-release 15 mg every 12 h (1 × 15 mg) = 30 mg/day'``."""
        unit = "mg" if self.amount_unit == "mg/day" else self.amount_unit
        parts = " + ".join(f"{n} × {_num(s)} {unit}" for s, n in self.composition)
        what = f"{self.drug} {self.route} {self.formulation} {_num(self.amount)} {self.amount_unit}"
        if self.amount_unit == "mg/day":
            what += " by 24-hour infusion"
        if self.every_h is not None:
            what += f" every {_num(self.every_h)} h"
        if self.prn:
            what += " when needed"
        if parts and self.amount_unit != "mg/day":
            what += f" ({parts})"
        daily = self.daily_value
        if daily is not None and self.every_h is not None:
            what += f" = {_num(daily)} {self.daily_unit}"
        return what

    def to_step(self, **overrides: Any) -> OpioidStep:
        """The suggestion as an :class:`~mps_analgesia.OpioidStep` (keywords override fields).

        A PRN suggestion needs ``every=`` or ``max_doses_per_24h=`` from the caller.
        """
        fields: dict[str, Any] = {
            "drug": self.drug,
            "route": self.route,
            "formulation": self.formulation,
        }
        if self.amount_unit in ("mcg/h", "mg/day"):
            fields["rate"] = _units.quantity_from_magnitude(self.amount, self.amount_unit)
        else:
            fields["dose"] = _units.quantity_from_magnitude(self.amount, self.amount_unit)
            if self.every_h is not None:
                fields["every"] = _units.quantity_from_magnitude(self.every_h, "h")
        if self.prn:
            fields["prn"] = True
        fields.update(overrides)
        return OpioidStep(**fields)


@attrs.define(frozen=True, slots=False)  # a dict class builds twice as fast
class Conversion(Renderable):
    """An opioid rotation: equianalgesic dose, reduced range, rounded-down suggestion, receipt.

    Attributes
    ----------
    table, edition:
        The OME table used for both sides.
    to_drug, to_route, to_formulation:
        The target.
    source_ome:
        The daily OME converted from (MME/day).
    calculated:
        The calculated equianalgesic daily dose (mg/day, or mcg/h for a patch).
    reduction:
        The :class:`Reduction` applied for incomplete cross-tolerance, with its source.
    reduced:
        The reduced range.
    schedule:
        A :class:`Schedule` in available strengths rounded down from the top of the reduced
        range (capped at the catalog's maximum daily dose of the target), or ``None`` (why is
        in :attr:`notes`).
    ome:
        The :class:`OmeResult` of the source, when the source was a step or regimen.
    max_daily:
        The catalog's maximum daily dose of the target (``data/drugs.toml``) in the unit of the
        conversion, or ``None`` when the catalog gives none.
    can_carry:
        False when the whole reduced range is above :attr:`max_daily`: the target drug cannot
        carry this dose, and no schedule is suggested.
    """

    table: str
    edition: str
    to_drug: str
    to_route: str
    to_formulation: str
    source_ome: QuantityRange
    calculated: QuantityRange
    reduction: Reduction
    reduced: QuantityRange
    schedule: Schedule | None
    target_detail: str
    target_source: str
    target_level: str
    ome: OmeResult | None = None
    notes: tuple[str, ...] = ()
    max_daily: QuantityRange | None = None
    can_carry: bool = True

    @property
    def receipt(self) -> tuple[str, ...]:
        """Every step of the calculation, from the source OME to the suggestion."""
        out: list[str] = []
        if self.ome is not None:
            out.extend(self.ome.receipt)
        else:
            out.append(f"given: {self.source_ome.text}")
        out.append(
            f"equianalgesic {self.to_drug} {self.to_route}: {self.target_detail} "
            f"{_tag(self.target_source, self.target_level)}"
        )
        red = self.reduction
        if red.high == 0.0:
            out.append(f"reduction: {red.text}: {self.reduced.text}")
        else:
            out.append(
                f"reduction {red.text}: {_num(self.calculated.low)} {self.calculated.unit} × "
                f"(1 − {_num(red.high)}) … × (1 − {_num(red.low)}) = {self.reduced.text}"
            )
        if self.schedule is not None:
            out.append(
                f"suggested: {self.schedule.text}, rounded down from "
                f"{_num(self.schedule.target)} {self.schedule.amount_unit} "
                f"{_tag(self.schedule.source, self.schedule.level)}: local formularies differ"
            )
        out.extend(self.notes)
        return tuple(out)

    @property
    def text(self) -> str:
        """One line: calculated, reduced, suggested."""
        text = (
            f"{self.source_ome.text} → {self.to_drug} {self.to_route}: calculated "
            f"{self.calculated.text}, reduced {self.reduced.text}"
        )
        if self.schedule is not None:
            text += f", suggested {self.schedule.text}"
        if not self.can_carry and self.max_daily is not None:
            text += (
                f"; {self.to_drug} cannot carry this dose (its maximum is {self.max_daily.text})"
            )
        return text + f" ({self.table})"

    def __str__(self) -> str:
        return self.text


@attrs.define(frozen=True)
class MethadoneConversion(Renderable):
    """A switch to methadone by a named scheme (one way: methadone is never converted back).

    ``ratio`` is the morphine:methadone ratio (a range when the OME range spans tiers) for a
    ratio scheme, ``None`` for a fixed-dose scheme; ``daily`` is the resulting methadone dose
    range in mg/day after the scheme's reduction.
    """

    scheme: str
    title: str
    edition: str
    kind: str
    source: str
    level: str
    ome: QuantityRange
    ratio: QuantityRange | None
    calculated: QuantityRange
    reduction: Reduction | None
    daily: QuantityRange
    schedule: Schedule | None
    tier: str
    notes: tuple[str, ...] = ()

    @property
    def receipt(self) -> tuple[str, ...]:
        """The scheme, the tier, the arithmetic, the reduction and the suggestion."""
        out = [f"scheme: {self.scheme}: {self.title} {_tag(self.source, self.level)}"]
        if self.ratio is not None:
            out.append(
                f"{self.ome.text} ({self.tier}) ÷ {self.ratio.text} = {self.calculated.text}"
            )
        else:
            out.append(f"{self.ome.text} ({self.tier}) → fixed {self.calculated.text}")
        if self.reduction is not None and self.reduction.high > 0.0:
            red = self.reduction
            out.append(
                f"reduction {red.text}: {_num(self.calculated.low)} mg/day × "
                f"(1 − {_num(red.high)}) … × (1 − {_num(red.low)}) = {self.daily.text}"
            )
        if self.schedule is not None:
            out.append(f"suggested: {self.schedule.text}")
        out.extend(self.notes)
        return tuple(out)

    @property
    def text(self) -> str:
        """One line: OME → methadone mg/day by the scheme."""
        return f"{self.ome.text} → methadone {self.daily.text} ({self.scheme})"

    def __str__(self) -> str:
        return self.text


@attrs.define(frozen=True)
class BreakthroughFraction:
    """The fraction of the regular daily OME given as one breakthrough dose, with its source."""

    name: str
    low: float
    high: float
    source: str = ""
    level: str = ""
    note: str = ""

    def __attrs_post_init__(self) -> None:
        for value in (self.low, self.high):
            if not (math.isfinite(value) and 0.0 < value < 1.0):
                raise ConversionError(
                    f"a breakthrough fraction is between 0 and 1 (e.g. '1/6' or 0.15), "
                    f"not {value!r}"
                )
        if self.low > self.high:
            raise ConversionError(f"fraction low {self.low} is above high {self.high}")

    @property
    def text(self) -> str:
        """``'1/6 [japan-morphine-label V]'`` or ``'10–20 % [...]'``."""
        if _close(self.low, self.high):
            frac = Fraction(self.low).limit_denominator(100)
            what = (
                f"{frac.numerator}/{frac.denominator}"
                if _close(float(frac), self.low)
                else f"{_num(self.low * 100)} %"
            )
        else:
            what = f"{_span(self.low * 100, self.high * 100)} %"
        return f"{what} {_tag(self.source, self.level)}"


@attrs.define(frozen=True)
class BreakthroughDose(Renderable):
    """The immediate-release breakthrough dose of the main opioid from the regular daily OME.

    ``dose`` is the calculated dose per administration (a range for a range fraction or
    factor); ``suggested`` the largest available strength combination not above its top, or
    ``None`` (why is in :attr:`notes`).
    """

    ome: OmeResult
    fraction: BreakthroughFraction
    drug: str
    route: str
    formulation: str
    dose: QuantityRange
    suggested: Schedule | None
    main_step: int | None
    factor_detail: str
    factor_source: str
    factor_level: str
    notes: tuple[str, ...] = ()

    @property
    def receipt(self) -> tuple[str, ...]:
        """The regular OME, the fraction, the conversion to the drug and the rounding."""
        out = list(self.ome.receipt)
        out.append(
            f"breakthrough: {self.ome.range.text} × {self.fraction.text} → {self.drug} "
            f"{self.route}: {self.factor_detail} = {self.dose.text} per dose "
            f"{_tag(self.factor_source, self.factor_level)}"
        )
        if self.suggested is not None:
            out.append(
                f"suggested: {self.suggested.text}, rounded down from "
                f"{_num(self.suggested.target)} {self.suggested.amount_unit} "
                f"{_tag(self.suggested.source, self.suggested.level)}: local formularies differ"
            )
        out.extend(self.notes)
        return tuple(out)

    @property
    def text(self) -> str:
        """One line: the dose per administration and the suggestion."""
        text = f"{self.drug} {self.route} {self.dose.text} per dose"
        if self.suggested is not None:
            text += f" (suggested {_num(self.suggested.amount)} {self.suggested.amount_unit})"
        return text

    def __str__(self) -> str:
        return self.text


# ---- data: OME tables -------------------------------------------------------------------------


@attrs.define(frozen=True, slots=True)
class _Tier:
    lower: float
    lower_inclusive: bool
    upper: float
    upper_inclusive: bool
    value: float = 0.0
    daily: float = 0.0
    dose: float = 0.0
    times_per_day: int = 0

    def contains(self, x: float) -> bool:
        tol = _REL * max(1.0, abs(x))
        ok_low = x >= self.lower - tol if self.lower_inclusive else x > self.lower + tol
        if not ok_low:
            return False
        return x <= self.upper + tol if self.upper_inclusive else x < self.upper - tol

    def text(self, unit: str) -> str:
        low = f"{'≥' if self.lower_inclusive else '>'}{_num(self.lower)}"
        high = f"{'≤' if self.upper_inclusive else '<'}{_num(self.upper)}"
        if math.isinf(self.upper):
            return f"tier {low} {unit}"
        if self.lower == 0.0 and not self.lower_inclusive:
            return f"tier {high} {unit}"
        return f"tier {low} and {high} {unit}"


def _find_tier(tiers: Sequence[_Tier], x: float) -> _Tier | None:
    for tier in tiers:
        if tier.contains(x):
            return tier
    return None


@attrs.define(frozen=True, slots=True)
class _Band:
    rate: float  # mcg/h
    low: float | None  # MME/day; None = open below
    high: float  # MME/day, inclusive (exclusive 'below' for an open row)


@attrs.define(frozen=True, slots=True)
class _Entry:
    drug: str
    route: str
    kind: str  # factor | tiers | bands | none
    source: str
    level: str
    note: str = ""
    estimate: bool = False
    dose_unit: str = "mg/day"
    to_unit: float = 1.0  # a mg/day value × to_unit = the value in dose_unit
    factor_low: float = 0.0
    factor_high: float = 0.0
    tiers: tuple[_Tier, ...] = ()
    bands: tuple[_Band, ...] = ()
    band_title: str = ""
    reason: str = ""


@attrs.define(frozen=True)
class _Table:
    id: str
    title: str
    edition: str
    file: str
    source: str
    level: str
    note: str
    entries: Mapping[tuple[str, str], _Entry]
    any_route: Mapping[str, _Entry]

    def lookup(self, drug: str, route: str) -> _Entry | None:
        entry = self.entries.get((drug, route))
        if entry is None:
            entry = self.any_route.get(drug)
        return entry

    def targets(self) -> tuple[str, ...]:
        return tuple(
            f"{d} {r}"
            for (d, r), e in sorted(self.entries.items())
            if e.kind in ("factor", "bands")
        )


def _source_level(raw: Mapping[str, Any], where: str) -> tuple[str, str]:
    sid = raw.get("source")
    if not isinstance(sid, str) or sid not in _catalog.sources():
        raise DataFileError(f"{where}: 'source' {sid!r} is not an id in sources.toml")
    return sid, _catalog.level_of(raw, where)


def _magnitude(text: object, dimension: str, unit: str, where: str) -> float:
    try:
        q = _units.as_quantity(text, dimension, field=where)
    except MpsAnalgesiaError as exc:
        raise DataFileError(f"{where}: {exc}") from exc
    return _units.magnitude_in(q, unit)


def _positive(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataFileError(f"{where}: must be a number, not {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise DataFileError(f"{where}: must be greater than zero, not {value!r}")
    return float(value)


def _tier_bounds(
    raw: Mapping[str, Any], where: str, dimension: str, unit: str
) -> tuple[float, bool, float, bool]:
    if "above" in raw and "at_least" in raw:
        raise DataFileError(f"{where}: give 'above' or 'at_least', not both")
    if "up_to" in raw and "below" in raw:
        raise DataFileError(f"{where}: give 'up_to' or 'below', not both")
    lower, lower_incl = 0.0, False
    if "above" in raw:
        lower = _magnitude(raw["above"], dimension, unit, f"{where}.above")
    elif "at_least" in raw:
        lower, lower_incl = _magnitude(raw["at_least"], dimension, unit, f"{where}.at_least"), True
    upper, upper_incl = math.inf, False
    if "up_to" in raw:
        upper, upper_incl = _magnitude(raw["up_to"], dimension, unit, f"{where}.up_to"), True
    elif "below" in raw:
        upper = _magnitude(raw["below"], dimension, unit, f"{where}.below")
    if upper < lower:
        raise DataFileError(f"{where}: upper bound below lower bound")
    return lower, lower_incl, upper, upper_incl


def _check_tiers(tiers: Sequence[_Tier], where: str) -> None:
    for a, b in itertools.pairwise(tiers):
        if b.lower < a.upper or (
            _close(b.lower, a.upper) and b.lower_inclusive and a.upper_inclusive
        ):
            raise DataFileError(f"{where}: tiers overlap or are out of order")


def _parse_bands(raw: Mapping[str, Any], where: str) -> tuple[_Band, ...]:
    rows = raw.get("rows")
    if not isinstance(rows, list) or not rows:
        raise DataFileError(f"{where}: needs a non-empty 'rows' list")
    bands = []
    for i, row in enumerate(rows):
        rw = f"{where}.rows[{i}]"
        rate = _magnitude(row.get("rate"), "mass_rate", "mcg/h", f"{rw}.rate")
        if "below" in row:
            if i != 0:
                raise DataFileError(f"{rw}: only the first row may be open below")
            bands.append(
                _Band(rate, None, _magnitude(row["below"], "ome_rate", "MME/day", f"{rw}.below"))
            )
            continue
        low = _magnitude(row.get("low"), "ome_rate", "MME/day", f"{rw}.low")
        high = _magnitude(row.get("high"), "ome_rate", "MME/day", f"{rw}.high")
        prev = bands[-1] if bands else None
        overlap = prev is not None and (
            prev.rate >= rate or (prev.high > low if prev.low is None else prev.high >= low)
        )
        if high < low or overlap:
            raise DataFileError(f"{rw}: rows must rise in rate and in OME without overlap")
        bands.append(_Band(rate, low, high))
    return tuple(bands)


def _parse_entries(
    raw: Mapping[str, Any], where: str, band_sets: Mapping[str, tuple[str, tuple[_Band, ...]]]
) -> list[_Entry]:
    drug = raw.get("drug")
    try:
        record = _catalog.drug(str(drug))
    except MpsAnalgesiaError as exc:
        raise DataFileError(f"{where}.drug: {exc}") from exc
    routes = raw.get("routes")
    if not isinstance(routes, list) or not routes:
        raise DataFileError(f"{where}: needs a non-empty 'routes' list")
    for r in routes:
        if r != "*" and r not in _catalog.routes():
            raise DataFileError(f"{where}.routes: unknown route {r!r}")
    source, level = _source_level(raw, where)
    note = str(raw.get("note", ""))
    common: dict[str, Any] = {"source": source, "level": level, "note": note}
    if "not_converted" in raw:
        common.update(kind="none", reason=str(raw["not_converted"]))
    else:
        unit = str(raw.get("dose_unit", ""))
        try:
            info = _units.lookup_unit(unit)
        except MpsAnalgesiaError as exc:
            raise DataFileError(f"{where}.dose_unit: {exc}") from exc
        if info.dimension != "mass_rate":
            raise DataFileError(f"{where}.dose_unit: {unit!r} is not a mass per time")
        to_unit = _units.magnitude_in(_units.quantity_from_magnitude(1.0, "mg/day"), unit)
        common.update(dose_unit=info.text, to_unit=to_unit, estimate=bool(raw.get("estimate")))
        kinds = [k for k in ("factor", "tiers", "bands") if k in raw]
        if len(kinds) != 1:
            raise DataFileError(f"{where}: give exactly one of factor, tiers, bands")
        if "factor" in raw:
            factor = raw["factor"]
            if isinstance(factor, list):
                if len(factor) != 2:
                    raise DataFileError(f"{where}.factor: a range is [low, high]")
                low, high = (_positive(f, f"{where}.factor") for f in factor)
            else:
                low = high = _positive(factor, f"{where}.factor")
            if low > high:
                raise DataFileError(f"{where}.factor: low above high")
            common.update(kind="factor", factor_low=low, factor_high=high)
        elif "tiers" in raw:
            tiers = []
            for i, t in enumerate(raw["tiers"]):
                tw = f"{where}.tiers[{i}]"
                bounds = _tier_bounds(t, tw, "mass_rate", "mg/day")
                tiers.append(_Tier(*bounds, value=_positive(t.get("factor"), f"{tw}.factor")))
            _check_tiers(tiers, where)
            common.update(kind="tiers", tiers=tuple(tiers))
        else:
            name = raw["bands"]
            if name not in band_sets:
                raise DataFileError(f"{where}.bands: no band set {name!r}")
            if info.text != "mcg/h":
                raise DataFileError(f"{where}: bands need dose_unit = 'mcg/h'")
            title, bands = band_sets[name]
            common.update(kind="bands", bands=bands, band_title=title)
    return [_Entry(record.id, r, **common) for r in routes]


def _resolve(
    tid: str,
    seen: tuple[str, ...],
    raw_tables: Mapping[str, Any],
    parsed: dict[str, list[_Entry]],
    band_sets: Mapping[str, tuple[str, tuple[_Band, ...]]],
    file: str,
) -> list[_Entry]:
    """The entries of table ``tid``: its parent's (``extends``) replaced by its own."""
    if tid in parsed:
        return parsed[tid]
    if tid in seen or tid not in raw_tables:
        raise DataFileError(f"{file}: tables.{tid} is missing or extends in a loop")
    raw = raw_tables[tid]
    base: list[_Entry] = []
    if "extends" in raw:
        base = _resolve(str(raw["extends"]), (*seen, tid), raw_tables, parsed, band_sets, file)
    own: list[_Entry] = []
    for i, e in enumerate(raw.get("entries", ())):
        own.extend(_parse_entries(e, f"{file}: tables.{tid}.entries[{i}]", band_sets))
    keys = {(e.drug, e.route) for e in own}
    merged = [e for e in base if (e.drug, e.route) not in keys] + own
    parsed[tid] = merged
    return merged


@cache
def _tables() -> Mapping[str, _Table]:
    out: dict[str, _Table] = {}
    for file in _OME_FILES:
        data = _catalog.data_file(file)
        edition = str(data["meta"]["edition"])
        band_sets: dict[str, tuple[str, tuple[_Band, ...]]] = {}
        for name, raw in data.get("band_sets", {}).items():
            where = f"{file}: band_sets.{name}"
            _source_level(raw, where)
            band_sets[name] = (str(raw.get("title", name)), _parse_bands(raw, where))
        raw_tables = data.get("tables", {})
        parsed: dict[str, list[_Entry]] = {}
        for tid, raw in raw_tables.items():
            if tid in out:
                raise DataFileError(f"{file}: table id {tid!r} is defined twice")
            source, level = _source_level(raw, f"{file}: tables.{tid}")
            entries: dict[tuple[str, str], _Entry] = {}
            any_route: dict[str, _Entry] = {}
            for e in _resolve(tid, (), raw_tables, parsed, band_sets, file):
                if e.route == "*":
                    any_route[e.drug] = e
                else:
                    entries[(e.drug, e.route)] = e
            out[tid] = _Table(
                tid,
                str(raw.get("title", tid)),
                edition,
                file,
                source,
                level,
                str(raw.get("note", "")),
                entries,
                any_route,
            )
    return out


def ome_tables() -> tuple[str, ...]:
    """The ids of the OME tables, default first.

    Example
    -------
    >>> from mps_analgesia.conversion import ome_tables
    >>> ome_tables()[:2]
    ('cdc-2022', 'cdc-2016')
    """
    return tuple(_tables())


def _table(name: object) -> _Table:
    tables = _tables()
    hit = tables.get(name) if isinstance(name, str) else None
    if hit is None:
        raise _unknown("OME table", name, tables, "table")
    return hit


# ---- data: products, reductions, schemes, fractions --------------------------------------------


@attrs.define(frozen=True)
class _Product:
    drug: str
    route: str
    formulation: str
    unit: str  # mg | mcg/h
    sums: tuple[float, ...]
    compositions: tuple[tuple[tuple[float, int], ...], ...]
    increment: float
    every_h: float | None
    infusion: bool
    source: str
    level: str
    note: str

    def round_down(self, target: float) -> tuple[float, tuple[tuple[float, int], ...]] | None:
        """The largest amount not above ``target`` (with float tolerance), or None."""
        if not target > 0:
            return None
        if self.increment:
            units = math.floor(target / self.increment * (1 + _REL) + 1e-12)
            if units < 1:
                return None
            return units * self.increment, ((self.increment, units),)
        i = bisect.bisect_right(self.sums, target * (1 + _REL) + 1e-12) - 1
        if i < 0:
            return None
        return self.sums[i], self.compositions[i]


@cache
def _products() -> Mapping[tuple[str, str, str], _Product]:
    data = _catalog.data_file("strengths.toml")
    max_units = data.get("rounding", {}).get("max_units_per_dose")
    if isinstance(max_units, bool) or not isinstance(max_units, int) or max_units < 1:
        raise DataFileError("strengths.toml: rounding.max_units_per_dose must be a whole number")
    out: dict[tuple[str, str, str], _Product] = {}
    for i, raw in enumerate(data.get("products", ())):
        where = f"strengths.toml: products[{i}]"
        source, level = _source_level(raw, where)
        drug, route, form = str(raw.get("drug")), str(raw.get("route")), str(raw.get("formulation"))
        if form not in _catalog.FORMULATIONS:
            raise DataFileError(f"{where}.formulation: unknown {form!r}")
        every_h = None
        if "every" in raw:
            every_h = _magnitude(raw["every"], "time", "h", f"{where}.every")
        sums: tuple[float, ...] = ()
        comps: tuple[tuple[tuple[float, int], ...], ...] = ()
        increment = 0.0
        unit = "mg"
        if "increment" in raw:
            increment = _magnitude(raw["increment"], "mass", "mg", f"{where}.increment")
        else:
            texts = raw.get("strengths")
            if not isinstance(texts, list) or not texts:
                raise DataFileError(f"{where}: needs 'strengths' or 'increment'")
            unit = "mcg/h" if form == "patch" else "mg"
            dim = "mass_rate" if form == "patch" else "mass"
            strengths = sorted(_magnitude(t, dim, unit, f"{where}.strengths") for t in texts)
            best: dict[float, tuple[tuple[float, int], ...]] = {}
            for k in range(1, max_units + 1):
                for combo in itertools.combinations_with_replacement(strengths[::-1], k):
                    key = round(sum(combo), 9)
                    if key not in best:
                        counts: dict[float, int] = {}
                        for s in combo:
                            counts[s] = counts.get(s, 0) + 1
                        best[key] = tuple(counts.items())
            sums = tuple(sorted(best))
            comps = tuple(best[s] for s in sums)
        out[(drug, route, form)] = _Product(
            drug,
            route,
            form,
            unit,
            sums,
            comps,
            increment,
            every_h,
            raw.get("schedule") == "infusion",
            source,
            level,
            str(raw.get("note", "")),
        )
    return out


@cache
def _reductions() -> tuple[Mapping[str, Reduction], str]:
    data = _catalog.data_file("rotation.toml")
    out: dict[str, Reduction] = {}
    default = ""
    for name, raw in data.get("reductions", {}).items():
        where = f"rotation.toml: reductions.{name}"
        source, level = _source_level(raw, where)
        try:
            out[name] = Reduction(
                name, raw.get("low"), raw.get("high"), source, level, str(raw.get("note", ""))
            )
        except ConversionError as exc:
            raise DataFileError(f"{where}: {exc}") from exc
        if raw.get("default"):
            default = name
    if not default:
        raise DataFileError("rotation.toml: no reduction is marked default = true")
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


@attrs.define(frozen=True)
class _Scheme:
    id: str
    title: str
    kind: str
    source: str
    level: str
    note: str
    refuse_reason: str
    reduction: str
    tiers: tuple[_Tier, ...]


@cache
def _schemes() -> tuple[Mapping[str, _Scheme], str]:
    data = _catalog.data_file("methadone-schemes.toml")
    out: dict[str, _Scheme] = {}
    reductions, _default = _reductions()
    for sid, raw in data.get("schemes", {}).items():
        where = f"methadone-schemes.toml: schemes.{sid}"
        source, level = _source_level(raw, where)
        kind = raw.get("kind")
        if kind not in ("fixed", "ratio"):
            raise DataFileError(f"{where}.kind: must be 'fixed' or 'ratio', not {kind!r}")
        reduction = str(raw.get("reduction", ""))
        if kind == "ratio" and reduction not in reductions:
            raise DataFileError(f"{where}.reduction: {reduction!r} is not in rotation.toml")
        tiers = []
        for i, t in enumerate(raw.get("tiers", ())):
            tw = f"{where}.tiers[{i}]"
            bounds = _tier_bounds(t, tw, "ome_rate", "MME/day")
            if kind == "ratio":
                tiers.append(_Tier(*bounds, value=_positive(t.get("ratio"), f"{tw}.ratio")))
            else:
                daily = _magnitude(t.get("daily"), "mass_rate", "mg/day", f"{tw}.daily")
                dose, times = 0.0, 0
                if "dose" in t:
                    dose = _magnitude(t["dose"], "mass", "mg", f"{tw}.dose")
                    times = int(t.get("times_per_day", 0))
                    if times < 1 or not _close(dose * times, daily):
                        raise DataFileError(f"{tw}: dose × times_per_day must equal daily")
                tiers.append(_Tier(*bounds, daily=daily, dose=dose, times_per_day=times))
        if not tiers:
            raise DataFileError(f"{where}: has no tiers")
        _check_tiers(tiers, where)
        out[sid] = _Scheme(
            sid,
            str(raw.get("title", sid)),
            str(kind),
            source,
            level,
            str(raw.get("note", "")),
            str(raw.get("refuse_reason", "the scheme has no tier for this OME")),
            reduction,
            tuple(tiers),
        )
    return out, str(data["meta"]["edition"])


def methadone_schemes() -> tuple[str, ...]:
    """The ids of the methadone switching schemes.

    Example
    -------
    >>> from mps_analgesia.conversion import methadone_schemes
    >>> "methapain-label" in methadone_schemes()
    True
    """
    return tuple(_schemes()[0])


def _fraction_value(value: object, where: str) -> float:
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError) as exc:
            raise DataFileError(f"{where}: {value!r} is not a fraction") from exc
    return _positive(value, where)


@cache
def _fractions() -> tuple[Mapping[str, BreakthroughFraction], str]:
    data = _catalog.data_file("breakthrough.toml")
    out: dict[str, BreakthroughFraction] = {}
    default = ""
    for name, raw in data.get("fractions", {}).items():
        where = f"breakthrough.toml: fractions.{name}"
        source, level = _source_level(raw, where)
        out[name] = BreakthroughFraction(
            name,
            _fraction_value(raw.get("low"), f"{where}.low"),
            _fraction_value(raw.get("high"), f"{where}.high"),
            source,
            level,
            str(raw.get("note", "")),
        )
        if raw.get("default"):
            default = name
    if not default:
        raise DataFileError("breakthrough.toml: no fraction is marked default = true")
    return out, default


@attrs.define(frozen=True)
class _Sourced:
    value: float
    source: str
    level: str
    note: str


@cache
def breakthrough_window() -> tuple[_Sourced, _Sourced]:
    """The PRN-dose window of ``opioid.breakthrough-dose``: (low, high) fractions of the OME."""
    data = _catalog.data_file("breakthrough.toml").get("check_window", {})
    out = []
    for key in ("low", "high"):
        raw = data.get(key)
        where = f"breakthrough.toml: check_window.{key}"
        if not isinstance(raw, dict):
            raise DataFileError(f"{where}: missing")
        source, level = _source_level(raw, where)
        out.append(
            _Sourced(_fraction_value(raw.get("value"), where), source, level, str(raw.get("note")))
        )
    return out[0], out[1]


@cache
def tolerance_threshold() -> _catalog.SourcedValue:
    """The opioid-tolerance threshold in MME/day (FDA definition), as a sourced value."""
    raw = _catalog.data_file("rotation.toml").get("opioid_tolerance", {})
    return _catalog.sourced(
        raw, dimension="ome_rate", unit="MME/day", where="rotation.toml: opioid_tolerance"
    )


@cache
def mme_thresholds() -> tuple[_catalog.SourcedValue, ...]:
    """CDC 2016's MME/day thresholds (reassess, avoid), lowest first: information only."""
    raw = _catalog.data_file("ome-cdc-2016.toml").get("thresholds", {})
    values = [
        _catalog.sourced(
            v, dimension="ome_rate", unit="MME/day", where=f"ome-cdc-2016.toml: thresholds.{k}"
        )
        for k, v in raw.items()
    ]
    return tuple(sorted(values, key=lambda v: v.value))


# ---- daily OME --------------------------------------------------------------------------------


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
    entry: _Entry, index: int, step: Any, dose_mg: float, totals: Mapping[str, float]
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
        tier = _find_tier(entry.tiers, total)
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


def _no_entry(table: _Table, index: int, step: Any) -> SkippedStep:
    return SkippedStep(
        index,
        step.drug,
        step.route,
        f"{table.id} has no factor for {step.drug} by the {step.route} route",
    )


# Receipt lines are immutable values and depend only on the table entry, the step index, the
# step, its daily dose and (for a tiered entry) the drug's total, so each is built once and
# shared by every result that contains it: a regimen edited one step at a time rebuilds only
# the changed step's line.  Keyed by the entry's id; the entry is kept with the line (alive, so
# its id is not reused) and compared by identity.  Bounded.
_LINES: dict[tuple[int, int, Any, float, float | None], tuple[_Entry, OmeLine | SkippedStep]] = {}
_EXCLUDED: dict[tuple[int, str, str], SkippedStep] = {}
_MEMO_MAX: Final = 4096


def _cached_line(
    entry: _Entry, index: int, step: Any, dose_mg: float, totals: Mapping[str, float]
) -> OmeLine | SkippedStep:
    total = totals.get(step.drug) if entry.kind == "tiers" else None
    key = (id(entry), index, step, dose_mg, total)
    hit = _LINES.get(key)
    if hit is not None and hit[0] is entry:
        return hit[1]
    line = _line(entry, index, step, dose_mg, totals)
    if len(_LINES) >= _MEMO_MAX:
        _LINES.clear()
    _LINES[key] = (entry, line)
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
    table: _Table, indexed: Iterable[tuple[int, Any]], policy: str, day: int | None
) -> OmeResult:
    regular_only = policy == "regular_only"
    counted: list[tuple[int, Any, float, _Entry]] = []
    not_converted: list[SkippedStep] = []
    excluded: list[SkippedStep] = []
    totals: dict[str, float] = {}
    for index, step in indexed:
        if step.kind not in _OPIOID_KINDS:
            continue
        if step.prn and regular_only:
            excluded.append(_excluded_prn(index, step.drug, step.route))
            continue
        dose = step.daily_dose_mg if day is None else step.daily_dose_mg_on(day)
        if dose <= 0.0:
            continue
        entry = table.lookup(step.drug, step.route)
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
    table: str = DEFAULT_TABLE,
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
        ``palliative-uk`` or ``anzca-2021`` (see :func:`ome_tables`).
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
    tab = _table(table)
    policy = _prn_policy(prn)
    if day is not None and (isinstance(day, bool) or not isinstance(day, int) or day < 0):
        raise ConversionError(f"day must be a plan day (a whole number ≥ 0), not {day!r}")
    return _compute(tab, _indexed(step_or_regimen, "daily_ome()"), policy, day)


def compare_tables(
    regimen: Any,
    tables: Sequence[str] | None = None,
    prn: str = "regular_only",
) -> TableComparison:
    """The same regimen under several OME tables, side by side.

    Parameters
    ----------
    regimen:
        A step, a regimen or a list of steps (as for :func:`daily_ome`).
    tables:
        Table ids, in the order to show; default every table (:func:`ome_tables`).
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
    if isinstance(tables, str):
        tables = [tables]
    ids = list(tables) if tables is not None else list(ome_tables())
    if not ids:
        raise ConversionError("compare_tables() needs at least one table id")
    chosen = [_table(t) for t in ids]
    policy = _prn_policy(prn)
    indexed = _indexed(regimen, "compare_tables()")
    return TableComparison(tuple(_compute(t, indexed, policy, None) for t in chosen), policy)


# ---- rotation ---------------------------------------------------------------------------------


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
        raise UnknownRouteError("route", str(route), exc.suggestions, field) from None
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
        if route == "oral" and (drug, route, "modified-release") in _products():
            return "modified-release"
        return allowed[0]
    norm = _norm(str(formulation))
    if norm not in allowed:
        raise ConversionError(
            f"{field}: {formulation!r} does not exist by the {route} route "
            f"(allowed: {', '.join(allowed)})"
        )
    return norm


def _target_entry(table: _Table, drug: str, route: str) -> _Entry:
    if drug == "methadone":
        raise ConversionError(
            "convert_opioid() does not convert to methadone: its ratio depends on the prior dose; "
            "use methadone_from_ome(ome, scheme=...) with a named scheme "
            f"({', '.join(methadone_schemes())})"
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


def _band_rate(entry: _Entry, ome: float) -> float:
    bands = entry.bands
    tol = _REL * max(1.0, ome)
    for i, band in enumerate(bands):
        lower = band.low if band.low is not None else 0.0
        if band.low is None and not ome > 0:
            continue
        if ome < lower - tol:
            continue
        if i + 1 < len(bands):
            upper = bands[i + 1].low
            assert upper is not None
            if ome < upper - tol:
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


def _equianalgesic(entry: _Entry, low: float, high: float) -> tuple[float, float, str, str]:
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
    product = _products().get((drug, route, formulation))
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
    per_dose = target * product.every_h / _HOURS_PER_DAY
    got = product.round_down(per_dose)
    if got is None:
        return None, _below(per_dose, "mg", product, every_h=product.every_h)
    return (
        Schedule(
            drug, route, formulation, got[0], "mg", product.every_h, got[1], per_dose, **common
        ),
        "",
    )


def _below(target: float, unit: str, product: _Product, every_h: float | None = None) -> str:
    smallest = product.increment or (product.sums[0] if product.sums else 0.0)
    per = f" per dose every {_num(every_h)} h" if every_h is not None else ""
    return (
        f"no suggested schedule: {_num(target)} {unit}{per} is below the smallest available "
        f"{product.drug} {product.route} {product.formulation} amount ({_num(smallest)} "
        f"{'mcg/h' if product.unit == 'mcg/h' else 'mg'}); a dose is never rounded up"
    )


def _rotation_source(
    source: Any, table: _Table, policy: str
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
        raise ConversionError(f"source: {_FROM_METHADONE}")
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
        raise ConversionError(f"source: {_FROM_METHADONE}")
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
    table: str = DEFAULT_TABLE,
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
        The OME table used on both sides (see :func:`ome_tables`).
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
    ('41.6667 mcg/h', '20.8333–31.25 mcg/h', 'fentanyl transdermal patch 25 mcg/h (1 × 25 mcg/h)')
    """
    tab = _table(table)
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
        if daily is not None and daily < reduced_low * (1.0 - _REL):
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
    if reduced_low > cap * (1.0 + _REL):
        return (
            cap,
            f"{record.id} cannot carry this dose: the whole reduced range "
            f"({_span(reduced_low, reduced_high, unit)}) is above {limit_text}; no schedule is "
            "suggested",
            False,
        )
    if reduced_high > cap * (1.0 + _REL):
        return (
            cap,
            f"the suggestion is capped at {limit_text}: the reduced range reaches "
            f"{_num(reduced_high)} {unit}",
            True,
        )
    return cap, "", True


# ---- methadone --------------------------------------------------------------------------------


def _ome_range(ome: Any, what: str) -> tuple[float, float]:
    if isinstance(ome, OmeResult):
        if ome.not_converted:
            raise ConversionError(
                f"{what}: the OME is incomplete: " + "; ".join(s.text for s in ome.not_converted)
            )
        if any(line.drug == "methadone" for line in ome.lines):
            raise ConversionError(f"{what}: the OME includes methadone: {_FROM_METHADONE}")
        return ome.low_mme_per_day, ome.high_mme_per_day
    if isinstance(ome, QuantityRange):
        if ome.unit != "MME/day":
            raise ConversionError(f"{what}: a range in {ome.unit}, not MME/day")
        return ome.low, ome.high
    if isinstance(ome, str) or _units.is_quantity(ome):
        value = _units.magnitude_in(_units.as_quantity(ome, "ome_rate", field="ome"), "MME/day")
        if value < 0:
            raise ConversionError(f"{what}: a daily OME cannot be negative")
        return value, value
    raise ConversionError(
        f"{what} takes a daily OME ('200 MME/day', a Quantity or an OmeResult), not "
        f"{type(ome).__name__}; for a step or regimen use daily_ome() first"
    )


def methadone_from_ome(
    ome: Any, scheme: str = "methapain-label", *, reduction: Any = "scheme"
) -> MethadoneConversion:
    """Switch TO methadone from a daily oral morphine equivalent by a named scheme.

    Conversion is one way: no function turns methadone back into morphine by a factor.

    Parameters
    ----------
    ome:
        The prior daily OME: ``"200 MME/day"``, a Quantity in MME/day, or an
        :class:`OmeResult` (complete, without methadone).
    scheme:
        ``methapain-label`` (default; Japanese label: 60–160 → 15 mg/day, >160–390 → 30,
        >390 → 45; below 60 not recommended), ``msd-2023`` (tiered ratios then 75–90 % less),
        ``ccdhb-2009`` (tiered ratios then 25–50 % less), ``chatham-2013`` (30 mg/day above
        1200 MME/day), ``mercadante-2022`` (first-line starting doses below 60 MME/day).
    reduction:
        ``"scheme"`` (default: the scheme's own reduction), or any value
        :func:`convert_opioid` accepts, for ratio schemes only.

    Example
    -------
    >>> from mps_analgesia.conversion import methadone_from_ome
    >>> methadone_from_ome("200 MME/day").schedule.text
    'methadone oral immediate-release 10 mg every 8 h (1 × 10 mg) = 30 mg/day'
    >>> methadone_from_ome("250 MME/day", scheme="msd-2023").daily.text
    '3.125–7.8125 mg/day'
    """
    schemes, edition = _schemes()
    if not isinstance(scheme, str) or scheme not in schemes:
        raise _unknown("methadone scheme", scheme, schemes, "scheme")
    sch = schemes[scheme]
    low, high = _ome_range(ome, "methadone_from_ome()")
    tiers = []
    for x in (low, high):
        tier = _find_tier(sch.tiers, x)
        if tier is None:
            raise ConversionError(
                f"{scheme}: {sch.refuse_reason} (given {_num(x)} MME/day) "
                f"[{sch.source} {sch.level}]"
            )
        tiers.append(tier)
    t_low, t_high = tiers
    tier_text = t_low.text("MME/day")
    if t_high is not t_low:
        tier_text += " to " + t_high.text("MME/day")
    notes = [n for n in (sch.note,) if n]
    notes.append("one way only: a methadone dose is never converted back to morphine by a factor")
    ratio: QuantityRange | None = None
    red: Reduction | None = None
    schedule: Schedule | None = None
    if sch.kind == "fixed":
        if not (isinstance(reduction, str) and _norm(reduction) in ("scheme", "none")):
            raise ConversionError(f"{scheme} gives a fixed starting dose; it takes no reduction")
        calc = QuantityRange(t_low.daily, t_high.daily, "mg/day")
        daily = calc
        if t_low is t_high and t_low.dose > 0:
            product = _products().get(("methadone", "oral", "immediate-release"))
            comp: tuple[tuple[float, int], ...] = ()
            if product is not None:
                got = product.round_down(t_low.dose)
                if got is not None and _close(got[0], t_low.dose):
                    comp = got[1]
            schedule = Schedule(
                "methadone",
                "oral",
                "immediate-release",
                t_low.dose,
                "mg",
                _HOURS_PER_DAY / t_low.times_per_day,
                comp,
                t_low.dose,
                source=sch.source,
                level=sch.level,
                note=f"the {scheme} split",
            )
    else:
        # OME / ratio rises within a tier and drops at each tier start, so over an OME range
        # the extremes lie at its ends or at a tier start inside it.
        points = [(low, t_low), (high, t_high)]
        points += [(t.lower, t) for t in sch.tiers if low < t.lower <= high]
        doses = [x / t.value for x, t in points]
        ratios = [t.value for _, t in points]
        ratio = QuantityRange(min(ratios), max(ratios), "")
        calc = QuantityRange(min(doses), max(doses), "mg/day")
        if isinstance(reduction, str) and _norm(reduction) == "scheme":
            red = _reductions()[0][sch.reduction]
        else:
            red = _reduction(reduction, same_drug=False)
        # reduced from the low end of the calculated range (conservative, as in rotation)
        daily = QuantityRange(calc.low * (1.0 - red.high), calc.low * (1.0 - red.low), "mg/day")
    if schedule is None:
        schedule, why = _suggest("methadone", "oral", "immediate-release", daily.high, "mg/day")
        if why:
            notes.append(why)
    chatham = schemes.get("chatham-2013")
    if chatham is not None and scheme != "chatham-2013" and _find_tier(chatham.tiers, high):
        notes.append(
            f"above {_num(chatham.tiers[0].lower)} MME/day: {chatham.note} "
            f"[{chatham.source} {chatham.level}]"
        )
    return MethadoneConversion(
        scheme,
        sch.title,
        edition,
        sch.kind,
        sch.source,
        sch.level,
        QuantityRange(low, high, "MME/day"),
        ratio,
        calc,
        red,
        daily,
        schedule,
        tier_text,
        tuple(notes),
    )


# ---- breakthrough -----------------------------------------------------------------------------


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
    table: str = DEFAULT_TABLE,
    drug: str | None = None,
    route: str | None = None,
) -> BreakthroughDose:
    """The immediate-release breakthrough (rescue) dose of the main opioid.

    The dose per administration = regular daily OME × fraction ÷ the drug's factor, rounded
    *down* to available immediate-release strengths.

    Parameters
    ----------
    regimen:
        A regimen, a regular opioid step or a list of steps; its regular daily OME is the basis
        (adjuvant methadone counts, through the table's methadone factor).
    fraction:
        ``"1/6"`` (default, Japanese morphine label), ``"10-20%"`` (NCCN 2011), a number or a
        pair of numbers.
    table:
        The OME table.
    drug, route:
        The breakthrough drug and route; default the main opioid (the regular ``opioid`` step
        with the largest OME) and its route.  A patch has no immediate-release form: name
        another drug and route.

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
    tab = _table(table)
    frac = _fraction(fraction)
    result = _compute(tab, _indexed(regimen, "breakthrough_dose()"), "regular_only", None)
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
    notes = [why] if why else []
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


# ---- helpers for the opioid rules -------------------------------------------------------------


def single_dose_ome(step: Any, table: str = DEFAULT_TABLE) -> tuple[float, float] | str:
    """The OME (MME) of one dose of a step, as ``(low, high)``, or the reason it has none.

    Used by ``opioid.breakthrough-dose`` to compare a PRN dose with the regular daily OME.
    """
    tab = _table(table)
    entry = tab.lookup(step.drug, step.route)
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
    indexed: Iterable[tuple[int, Any]], table: str = DEFAULT_TABLE, prn: str = "regular_only"
) -> OmeResult:
    """:func:`daily_ome` of chosen ``(index, step)`` pairs of a regimen (indices kept)."""
    return _compute(_table(table), indexed, _prn_policy(prn), None)
