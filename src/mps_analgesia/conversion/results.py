"""The results of the calculators: OME totals with receipts, rotations, methadone switches and
breakthrough doses.  Canonical floats inside; Quantities only when a property is read."""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import attrs

from .. import _units
from .._repr import Renderable
from ..errors import ConversionError
from ..steps import OpioidStep
from ._common import (
    ESTIMATE,
    HOURS_PER_DAY,
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
    tag as _tag,
)
from ._common import (
    unknown as _unknown,
)
from ._common import (
    weakest as _weakest,
)

__all__ = [
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
]

# ---- public value objects -----------------------------------------------------------------------


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
            text += f"; {ESTIMATE}"
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
        """The total of the converted steps, MME/day, as a (possibly degenerate) range.

        Raises :class:`ConversionError` when there were opioid steps to count and none could be
        converted (:attr:`converted` is False, e.g. buprenorphine alone under CDC): there is no
        total then, and it never reads 0 MME/day.  The same holds for :attr:`low`,
        :attr:`high` and :attr:`total`.

        Example
        -------
        >>> import mps_analgesia as mps
        >>> from mps_analgesia.conversion import daily_ome
        >>> patch = mps.OpioidStep(drug="buprenorphine", route="transdermal", rate="10 mcg/h")
        >>> daily_ome(patch).range  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mps_analgesia.errors.ConversionError: no total under cdc-2022: no opioid step ...
        """
        if not self.converted:
            steps = "; ".join(s.text for s in self.not_converted)
            raise ConversionError(
                f"no total under {self.table}: no opioid step could be converted; not converted: "
                f"{steps}; there is no total, never 0 MME/day (see .not_converted, or try "
                "another table)"
            )
        return QuantityRange(self.low_mme_per_day, self.high_mme_per_day, "MME/day")

    @property
    def low(self) -> Any:
        """The low end of the converted total as a Quantity in MME/day (raises
        :class:`ConversionError` when no step could be converted, as :attr:`range` does)."""
        return self.range.low_quantity

    @property
    def high(self) -> Any:
        """The high end of the converted total as a Quantity in MME/day (raises
        :class:`ConversionError` when no step could be converted, as :attr:`range` does)."""
        return self.range.high_quantity

    @property
    def total(self) -> Any:
        """The daily OME as one Quantity in MME/day.

        Raises :class:`ConversionError` when a step was not converted (a partial total is not
        the total) or when the total is a range (read :attr:`low` and :attr:`high`).
        """
        if not self.converted:
            return self.range.quantity  # raises: no step could be converted, no total
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
            return self.amount * (HOURS_PER_DAY / self.every_h)
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
