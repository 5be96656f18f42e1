"""The day plan: what a regimen gives on each day, from its steps' start and stop days,
titrations, block infusions, radiotherapy fractions and tapers.

``schedule(regimen, days=N)`` returns a :class:`DayPlan`; ``plan[d]`` is the :class:`Day` with
its doses (with their times of day when the step names them), the daily total of each drug, the
daily oral morphine equivalent (regular doses, and with each PRN step at its maximum), the local
anaesthetic given that day and the radiotherapy fraction of that day.

Canonical floats inside (``daily_mg``, ``local_anaesthetic_mg``); Quantities are built only when
a property such as :attr:`Day.totals` is read.  Nothing here is a clinical number: the values
come from the steps, and the OME from the conversion tables (``conversion.daily_ome``).
"""

from __future__ import annotations

import datetime
import sys
import types
from collections.abc import Iterator
from typing import Any, Final

import attrs

from . import _units
from ._repr import Renderable, _write
from .errors import StepError
from .regimen import Regimen
from .steps import PsoasCompartmentBlockStep, RadiotherapyStep, TaperStep

__all__ = ["Day", "DayDose", "DayEvent", "DayPlan", "Rescue", "RtFraction", "schedule"]

_DRUG_KINDS: Final = ("opioid", "methadone_adjuvant", "adjuvant")
_OPIOID_KINDS: Final = ("opioid", "methadone_adjuvant")


@attrs.define(frozen=True, slots=True)
class DayDose:
    """What one drug step gives on one day.

    ``time`` is the time of day (``"08:00"``) when the step names its times (one record per
    administration then); otherwise ``None`` and ``count`` says how many administrations the
    day holds (for a PRN step, the most allowed in 24 hours).  ``dose_mg`` is the dose per
    administration (``None`` for a continuous step, which has ``rate_mg_per_h``).  ``reduced``
    is the taper's share of the step's scheduled dose that day (1.0 when not tapered).
    """

    step: int
    kind: str
    drug: str
    route: str
    prn: bool
    time: str | None
    count: float
    dose_mg: float | None
    rate_mg_per_h: float | None
    daily_mg: float
    reduced: float = 1.0

    @property
    def dose(self) -> Any:
        """The dose per administration as a Quantity in mg (``None`` for a continuous step)."""
        if self.dose_mg is None:
            return None
        return _units.quantity_from_magnitude(self.dose_mg, "mg")

    @property
    def rate(self) -> Any:
        """The rate of a continuous step as a Quantity in mg/h (else ``None``)."""
        if self.rate_mg_per_h is None:
            return None
        return _units.quantity_from_magnitude(self.rate_mg_per_h, "mg/h")


@attrs.define(frozen=True, slots=True)
class RtFraction:
    """A radiotherapy fraction: step ``step``'s fraction ``number`` of ``of``, ``dose_gy``."""

    step: int
    number: int
    of: int
    dose_gy: float
    site: str

    @property
    def dose(self) -> Any:
        """The fraction's dose as a Quantity in Gy."""
        return _units.quantity_from_magnitude(self.dose_gy, "Gy")


@attrs.define(frozen=True, slots=True)
class DayEvent:
    """Something that happens on a day: a block's bolus, a catheter's last day, a titration
    change, a taper reduction ... ``time`` when known."""

    step: int
    what: str
    time: str | None = None


@attrs.define(frozen=True, slots=True)
class Rescue:
    """A PRN (rescue) step's dose on a day beside the dose recomputed from that day's regular
    daily dose of the same drug: ``recomputed_mg`` = ``regular_mg`` × ``fraction`` (the
    breakthrough fraction of ``data/breakthrough.toml``, ``source``)."""

    step: int
    drug: str
    dose_mg: float
    regular_mg: float
    fraction: float
    recomputed_mg: float
    source: str

    @property
    def above(self) -> bool:
        """True when the written rescue dose is above the recomputed one (beyond rounding)."""
        return self.dose_mg > self.recomputed_mg * (1 + 1e-9) + 1e-12


@attrs.define(frozen=True, slots=True)
class _BlockDay:
    step: int
    drug: str
    mg: float
    upper_bound: bool


@attrs.define(frozen=True, slots=True, eq=False)
class Day:
    """One day of the plan.  Build through :func:`schedule`.

    Attributes
    ----------
    day:
        The plan day (0, 1, 2 …).
    date:
        Its calendar date when the regimen has a ``start_date`` (else ``None``).
    items:
        One :class:`DayDose` per drug step given that day (counts, no times).
    fractions:
        The radiotherapy fractions of the day.
    events:
        What starts, changes or ends that day.
    rescues:
        Each PRN opioid step with the rescue dose recomputed from the day's regular dose of its
        drug (after any taper).
    """

    day: int
    date: datetime.date | None
    items: tuple[DayDose, ...]
    blocks: tuple[_BlockDay, ...]
    fractions: tuple[RtFraction, ...]
    events: tuple[DayEvent, ...]
    rescues: tuple[Rescue, ...]
    _plan: DayPlan = attrs.field(repr=False)
    _state: tuple[tuple[int, float], ...] = attrs.field(repr=False)

    # ---- doses ----------------------------------------------------------------------------------

    @property
    def doses(self) -> tuple[DayDose, ...]:
        """Each administration with its time of day where the step names one; a step without
        times of day gives one record with its ``count``."""
        out: list[DayDose] = []
        steps: Any = self._plan.regimen.steps
        for item in self.items:
            phase = None if item.prn else steps[item.step].phase_on(self.day)
            times = phase.at if phase is not None else ()
            if times:
                out.extend(attrs.evolve(item, time=t, count=1.0) for t in times)
            else:
                out.append(item)
        out.sort(key=lambda d: (d.time is None, d.time or "", d.step))
        return tuple(out)

    @property
    def totals_mg(self) -> dict[str, float]:
        """Drug → daily total in mg/day (regular doses plus each PRN step at its maximum)."""
        out: dict[str, float] = {}
        for item in self.items:
            out[item.drug] = out.get(item.drug, 0.0) + item.daily_mg
        return out

    @property
    def regular_totals_mg(self) -> dict[str, float]:
        """Drug → daily total in mg/day of the scheduled (not PRN) doses."""
        out: dict[str, float] = {}
        for item in self.items:
            if not item.prn:
                out[item.drug] = out.get(item.drug, 0.0) + item.daily_mg
        return out

    @property
    def totals(self) -> dict[str, Any]:
        """Drug → daily total as a Quantity in mg/day (PRN steps at their maximum)."""
        return {
            drug: _units.quantity_from_magnitude(mg, "mg/day")
            for drug, mg in self.totals_mg.items()
        }

    # ---- OME -----------------------------------------------------------------------------------

    @property
    def ome_regular(self) -> Any:
        """The day's oral morphine equivalent of the scheduled opioid doses: an
        :class:`~mps_analgesia.conversion.OmeResult` (``.total``, ``.range``, the receipt and
        the steps not converted)."""
        return self._plan._ome(self, "regular_only")

    @property
    def ome_with_prn(self) -> Any:
        """The day's OME with each PRN step at its maximum over 24 hours (an ``OmeResult``)."""
        return self._plan._ome(self, "with_prn_maximum")

    # ---- block and radiotherapy ----------------------------------------------------------------

    @property
    def local_anaesthetic_mg(self) -> dict[str, float]:
        """Local anaesthetic drug → mg given that day over every block step."""
        out: dict[str, float] = {}
        for b in self.blocks:
            out[b.drug] = out.get(b.drug, 0.0) + b.mg
        return out

    @property
    def local_anaesthetic(self) -> dict[str, Any]:
        """Local anaesthetic drug → the day's mg as a Quantity."""
        return {
            drug: _units.quantity_from_magnitude(mg, "mg")
            for drug, mg in self.local_anaesthetic_mg.items()
        }

    @property
    def local_anaesthetic_upper_bound(self) -> bool:
        """True when a block of the day has no time of day, so its mg is the most the day can
        hold (an upper bound), not a share of the total."""
        return any(b.upper_bound for b in self.blocks)

    @property
    def block_steps(self) -> tuple[int, ...]:
        """The indices of the block steps running that day."""
        return tuple(b.step for b in self.blocks)

    @property
    def rt_fraction(self) -> RtFraction | None:
        """The day's radiotherapy fraction (the first, when two courses overlap), or ``None``."""
        return self.fractions[0] if self.fractions else None

    def label(self) -> str:
        """``'day 3'`` or ``'day 3 (2026-12-10, Thu)'``."""
        if self.date is None:
            return f"day {self.day}"
        return f"day {self.day} ({self.date.isoformat()}, {self.date.strftime('%a')})"


@attrs.define(frozen=True, eq=False)
class DayPlan(Renderable):
    """The day-by-day plan of a regimen.  ``plan[d]`` (or ``plan.days[d]``) is day ``d``.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> reg = mps.Regimen([mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h",
    ...     titration=[{"day": 7, "dose": "7.5 mg"}])])
    >>> plan = mps.schedule(reg, days=10)
    >>> plan[0].totals_mg, plan[7].totals_mg
    ({'methadone': 15.0}, {'methadone': 22.5})
    """

    regimen: Regimen
    days: tuple[Day, ...] = attrs.field(factory=tuple)
    table: Any = "cdc-2022"  # an id or a (local) ConversionTable
    _ome_memo: dict[tuple[Any, ...], Any] = attrs.field(factory=dict, repr=False)

    def __getitem__(self, day: int) -> Day:
        return self.days[day]

    def __len__(self) -> int:
        return len(self.days)

    def __iter__(self) -> Iterator[Day]:
        return iter(self.days)

    @property
    def start_date(self) -> datetime.date | None:
        """The date of plan day 0 (the regimen's), or ``None``."""
        return self.regimen.start_date

    def drugs(self) -> tuple[str, ...]:
        """Every drug given over the plan, in order of first appearance."""
        seen: dict[str, None] = {}
        for d in self.days:
            for item in d.items:
                seen.setdefault(item.drug, None)
        return tuple(seen)

    def days_of(self, drug: str) -> tuple[int, ...]:
        """The plan days on which ``drug`` is given (drug steps or blocks)."""
        return tuple(
            d.day
            for d in self.days
            if any(i.drug == drug for i in d.items) or any(b.drug == drug for b in d.blocks)
        )

    # ---- internals used by Day ----------------------------------------------------------------

    def _ome(self, day: Day, prn: str) -> Any:
        key = (prn, day._state)
        hit = self._ome_memo.get(key)
        if hit is None:
            from .conversion import ome_of_steps

            steps = self.regimen.steps
            indexed = [
                (i.step, _DayStep(steps[i.step], i.daily_mg))
                for i in day.items
                if i.kind in _OPIOID_KINDS
            ]
            hit = self._ome_memo[key] = ome_of_steps(indexed, self.table, prn)
        return hit

    # ---- output -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain data (numbers in named units), the shape of ``to_json``."""
        return _plan_to_dict(self)

    def to_json(self, *, indent: int | None = 2) -> str:
        """The plan as JSON text."""
        import json

        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_text(self) -> str:
        """The day table as plain text."""
        return _write("day-table", "text", self)

    def to_markdown(self) -> str:
        """The day table as Markdown."""
        return _write("day-table", "markdown", self)

    def to_html(self) -> str:
        """The day table as an HTML fragment."""
        return _write("day-table", "html", self)

    def __str__(self) -> str:
        return self.to_text()


@attrs.define(frozen=True, slots=True)
class _DayStep:
    """A drug step as given on one day (its daily dose that day), for the OME tables."""

    step: Any = attrs.field(eq=False)
    daily_dose_mg: float
    kind: str = attrs.field(init=False)
    drug: str = attrs.field(init=False)
    route: str = attrs.field(init=False)
    formulation: str = attrs.field(init=False)
    prn: bool = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        s = self.step
        object.__setattr__(self, "kind", s.kind)
        object.__setattr__(self, "drug", s.drug)
        object.__setattr__(self, "route", s.route)
        object.__setattr__(self, "formulation", s.formulation)
        object.__setattr__(self, "prn", s.prn)

    def daily_dose_mg_on(self, day: int) -> float:
        return self.daily_dose_mg


def _days_arg(days: object, regimen: Regimen) -> int:
    if days is None:
        return regimen.last_day + 1
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise StepError("days", f"must be a whole number of days, 1 or more, not {days!r}")
    return days


def schedule(regimen: Regimen, days: int | None = None, *, table: Any = "cdc-2022") -> DayPlan:
    """The day plan of ``regimen`` over ``days`` days (default: through its last change).

    Parameters
    ----------
    regimen:
        The regimen; its ``start_date`` (if any) dates the days and puts radiotherapy fractions
        on Monday to Friday.
    days:
        How many plan days, from day 0.
    table:
        The OME table for :attr:`Day.ome_regular` and :attr:`Day.ome_with_prn`: an id or a
        local table (:func:`~mps_analgesia.load_table`).

    Returns
    -------
    DayPlan
        ``plan[d]`` is a :class:`Day`.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> case = mps.load_case("examples/mps-multimodal.toml")
    >>> plan = mps.schedule(case.regimen, days=21)
    >>> plan[14].totals_mg["methadone"], plan[1].block_steps, plan[2].rt_fraction.number
    (30.0, (5,), 1)
    """
    if not isinstance(regimen, Regimen):
        raise StepError("regimen", f"must be a Regimen, not {type(regimen).__name__}")
    n = _days_arg(days, regimen)
    start = regimen.start_date
    one = datetime.timedelta(days=1)
    steps = regimen.steps
    plan = DayPlan(regimen, (), table)
    # per step: a function of the day → items/blocks/fractions, precomputed where possible
    drug_steps: list[tuple[int, Any]] = []
    block_steps: list[tuple[int, PsoasCompartmentBlockStep]] = []
    rt_days: dict[int, list[RtFraction]] = {}
    events: dict[int, list[DayEvent]] = {}
    tapers: list[tuple[int, TaperStep, int]] = []
    step: Any
    for i, step in enumerate(steps):
        if step.kind in _DRUG_KINDS:
            drug_steps.append((i, step))
            for j, phase in enumerate(step.phases):
                name = f"{step.drug} PRN" if step.prn else step.drug
                what = f"{name} starts" if j == 0 else f"{name} changes"
                events.setdefault(phase.first_day, []).append(
                    DayEvent(i, what, phase.at[0] if phase.at else None)
                )
            last = step.last_day
            if last is not None and not step.once:
                events.setdefault(last, []).append(DayEvent(i, f"{step.drug} last day"))
        elif isinstance(step, PsoasCompartmentBlockStep):
            block_steps.append((i, step))
            events.setdefault(step.start_day, []).append(
                DayEvent(
                    i, f"{step.side} psoas block ({step.drug})", step.at[0] if step.at else None
                )
            )
            if step.infusion_ml_per_h is not None and step.last_day is not None:
                events.setdefault(step.last_day, []).append(DayEvent(i, "catheter infusion ends"))
            for day, event in _removal_events(i, step):
                events.setdefault(day, []).append(event)
        elif isinstance(step, TaperStep):
            first = step.first_day(steps, start)
            tapers.append((i, step, first))
        elif isinstance(step, RadiotherapyStep):
            fdays = step.fraction_days(start)
            for k, d in enumerate(fdays, start=1):
                rt_days.setdefault(d, []).append(
                    RtFraction(i, k, step.fractions, step.dose_per_fraction_gy, step.site)
                )
    out: list[Day] = []
    for d in range(n):
        items: list[DayDose] = []
        state: list[tuple[int, float]] = []
        for i, step in drug_steps:
            phase = step.phase_on(d)
            if phase is None:
                continue
            count = 1.0 if phase.doses_per_day is None else phase.doses_per_day
            items.append(
                DayDose(
                    i,
                    step.kind,
                    step.drug,
                    step.route,
                    step.prn,
                    None,
                    count,
                    phase.dose_mg,
                    phase.rate_mg_per_h,
                    phase.daily_mg,
                )
            )
            state.append((i, phase.daily_mg))
        day_events = list(events.get(d, ()))
        for t_index, taper, first in tapers:
            if d >= first:
                _apply_taper(items, state, taper, t_index, d, first, day_events)
        rescues = _rescues(items) if any(i.prn for i in items) else ()
        blocks = tuple(
            _BlockDay(i, b.drug, b.local_anaesthetic_mg_on(d), not b.at)
            for i, b in block_steps
            if b.start_day <= d and (b.last_day is None or d <= b.last_day)
        )
        out.append(
            Day(
                d,
                None if start is None else start + one * d,
                tuple(items),
                blocks,
                tuple(rt_days.get(d, ())),
                tuple(day_events),
                rescues,
                plan,
                tuple(state),
            )
        )
    object.__setattr__(plan, "days", tuple(out))
    return plan


def _removal_events(i: int, step: PsoasCompartmentBlockStep) -> list[tuple[int, DayEvent]]:
    """The catheter's removal and the planned anticoagulant restart, on their days (with the
    clock time when the block has one); nothing for what the step does not say."""
    out: list[tuple[int, DayEvent]] = []
    removal = step.removal_h
    if removal is None:
        return out
    catheter = step.technique == "catheter"
    if catheter:
        day, time = step.day_and_time_after(removal)
        out.append((day, DayEvent(i, "catheter removed", time)))
    restart = step.anticoagulant_restart_h
    if restart is not None:
        day, time = step.day_and_time_after(removal + restart)
        after = "catheter removal" if catheter else "the block"
        out.append(
            (day, DayEvent(i, f"anticoagulant restart ({_num(restart)} h after {after})", time))
        )
    return out


def _apply_taper(
    items: list[DayDose],
    state: list[tuple[int, float]],
    taper: TaperStep,
    t_index: int,
    day: int,
    first: int,
    events: list[DayEvent],
) -> None:
    """Scale the day's regular doses of the taper's drug to the reduced daily total."""
    regular = [k for k, item in enumerate(items) if item.drug == taper.drug and not item.prn]
    base = sum(items[k].daily_mg for k in regular)
    if base <= 0.0:
        return
    reduced = taper.reduced_daily_mg(base, day, first)
    share = reduced / base
    if share >= 1.0:
        return
    for k in regular:
        item = items[k]
        items[k] = attrs.evolve(
            item,
            dose_mg=None if item.dose_mg is None else item.dose_mg * share,
            rate_mg_per_h=None if item.rate_mg_per_h is None else item.rate_mg_per_h * share,
            daily_mg=item.daily_mg * share,
            reduced=item.reduced * share,
        )
        state[k] = (item.step, item.daily_mg * share)
    if (day - first) % taper.every_days == 0:
        n = taper.reductions_on(day, first)
        events.append(
            DayEvent(t_index, f"{taper.drug} reduced to {_num(reduced)} mg/day (taper step {n})")
        )


def _rescues(items: list[DayDose]) -> tuple[Rescue, ...]:
    """Each PRN opioid item beside the rescue dose recomputed from the day's regular dose."""
    from . import _catalog

    high = _catalog.breakthrough_window()[1]
    regular: dict[str, float] = {}
    for item in items:
        if not item.prn and item.kind in _OPIOID_KINDS:
            regular[item.drug] = regular.get(item.drug, 0.0) + item.daily_mg
    out = []
    for item in items:
        if item.prn and item.dose_mg is not None and item.drug in regular:
            base = regular[item.drug]
            out.append(
                Rescue(
                    item.step,
                    item.drug,
                    item.dose_mg,
                    base,
                    high.value,
                    base * high.value,
                    high.source,
                )
            )
    return tuple(out)


def _num(x: float) -> str:
    from ._format import number

    return number(round(x, 2))


class _CallableModule(types.ModuleType):
    """``mps_analgesia.schedule`` is also callable, so ``mps.schedule(regimen)`` works whether
    the name resolves to this module or to its function."""

    def __call__(
        self, regimen: Regimen, days: int | None = None, *, table: Any = "cdc-2022"
    ) -> DayPlan:
        return schedule(regimen, days, table=table)


sys.modules[__name__].__class__ = _CallableModule


def _plan_to_dict(plan: DayPlan) -> dict[str, Any]:
    """The plan as plain data: numbers with their unit in the key (``daily_mg``)."""
    days = []
    for day in plan:
        reg, prn = day.ome_regular, day.ome_with_prn
        days.append(
            {
                "day": day.day,
                "date": None if day.date is None else day.date.isoformat(),
                "doses": [
                    {
                        "step": d.step,
                        "drug": d.drug,
                        "route": d.route,
                        "prn": d.prn,
                        "time": d.time,
                        "count": d.count,
                        "dose_mg": d.dose_mg,
                        "rate_mg_per_h": d.rate_mg_per_h,
                        "daily_mg": d.daily_mg,
                        "reduced": d.reduced,
                    }
                    for d in day.doses
                ],
                "totals_mg_per_day": day.totals_mg,
                "ome_regular_mme_per_day": [reg.low_mme_per_day, reg.high_mme_per_day],
                "ome_regular_complete": reg.complete,
                "ome_with_prn_mme_per_day": [prn.low_mme_per_day, prn.high_mme_per_day],
                "ome_with_prn_complete": prn.complete,
                "local_anaesthetic_mg": day.local_anaesthetic_mg,
                "local_anaesthetic_upper_bound": day.local_anaesthetic_upper_bound,
                "rt_fractions": [
                    {"step": f.step, "number": f.number, "of": f.of, "dose_gy": f.dose_gy}
                    for f in day.fractions
                ],
                "events": [{"step": e.step, "what": e.what, "time": e.time} for e in day.events],
                "rescues": [
                    {
                        "step": r.step,
                        "drug": r.drug,
                        "dose_mg": r.dose_mg,
                        "regular_mg_per_day": r.regular_mg,
                        "fraction": r.fraction,
                        "recomputed_mg": r.recomputed_mg,
                        "above": r.above,
                        "source": r.source,
                    }
                    for r in day.rescues
                ],
            }
        )
    return {
        "regimen": plan.regimen.name,
        "start_date": None if plan.start_date is None else plan.start_date.isoformat(),
        "time_zone": plan.regimen.time_zone,
        "ome_table": getattr(plan.table, "id", plan.table),  # a local table by its id
        "days": days,
    }
