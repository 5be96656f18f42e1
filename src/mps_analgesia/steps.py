"""Typed protocol steps: frozen attrs value objects, validated on construction.

Five step kinds model the multimodal analgesia of malignant psoas syndrome; ``kind`` tells them
apart in case files:

=============================  ====================================================
``opioid``                     :class:`OpioidStep`: the main opioid, regular or PRN
``methadone_adjuvant``         :class:`MethadoneAdjuvantStep`: methadone *added to* the opioid
``adjuvant``                   :class:`AdjuvantStep`: non-opioid and co-analgesic drugs
``psoas_compartment_block``    :class:`PsoasCompartmentBlockStep`: local anaesthetic block
``radiotherapy``               :class:`RadiotherapyStep`: palliative external-beam radiotherapy
=============================  ====================================================

Doses enter as text (``"10 mg"``) or Quantities, never as bare numbers.  Each step keeps the
Quantities it was given (``dose``, ``rate`` ...) for display and round trips, and canonical floats
whose names carry their unit (``dose_mg``, ``every_h``, ``daily_dose_mg``) for the rules.
Equality and hashing use the canonical floats only (pint Quantities do not hash reliably).
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Final, TypeAlias

import attrs

from . import _catalog, _units
from ._repr import Renderable
from .errors import StepError, UnitError, UnknownDrugError, UnknownRouteError

__all__ = [
    "ADJUVANT_ROLES",
    "BLOCK_SIDES",
    "BLOCK_TECHNIQUES",
    "STEP_KINDS",
    "TAPER_AFTER",
    "TAPER_BASES",
    "AdjuvantStep",
    "MethadoneAdjuvantStep",
    "OpioidStep",
    "Phase",
    "PsoasCompartmentBlockStep",
    "RadiotherapyStep",
    "Step",
    "TaperStep",
    "TitrationPoint",
]

#: Roles an adjuvant may play (Agar 2004's mechanism-directed menu).
ADJUVANT_ROLES: Final = ("nociceptive", "neuropathic", "muscle-spasm", "anti-inflammatory", "nmda")
#: Sides a psoas compartment block may be given on.
BLOCK_SIDES: Final = ("left", "right", "bilateral")
#: Techniques of a psoas compartment block.
BLOCK_TECHNIQUES: Final = ("single-shot", "catheter")

_HOURS_PER_DAY: Final = 24.0  # a unit identity, not a clinical number
#: Monday to Friday are ``date.weekday()`` 0-4: radiotherapy fractions fall on working days.
_WORKING_DAYS: Final = 5


def _qfield(dimension: str, unit: str, example: str, doc: str) -> Any:
    """An optional Quantity field: compared through its canonical float, not itself."""
    return attrs.field(
        default=None,
        eq=False,
        metadata={"dimension": dimension, "unit": unit, "example": example, "doc": doc},
    )


def _norm_choice(value: object) -> str:
    return "-".join(str(value).strip().lower().replace("_", "-").split())


def _choice(field: str, value: object, allowed: Sequence[str]) -> str:
    """Normalise a choice (case, '_' and ' ' → '-') and check it is one of ``allowed``."""
    norm = _norm_choice(value)
    if norm in allowed:
        return norm
    import difflib

    close = difflib.get_close_matches(norm, list(allowed), n=2, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise StepError(field, f"{value!r} is not one of {', '.join(allowed)}{hint}")


def _read(obj: object, name: str, dimension: str, unit: str, *, positive: bool = True) -> float:
    """Read field ``name`` as a Quantity of ``dimension``; store it back; return it in ``unit``."""
    value = getattr(obj, name)
    cls: Any = type(obj)
    example = getattr(attrs.fields(cls), name).metadata.get("example", "")
    q = _units.as_quantity(value, dimension, field=name, example=example)
    object.__setattr__(obj, name, q)
    magnitude = _units.magnitude_in(q, unit)
    if positive and not magnitude > 0:
        raise StepError(name, f"must be greater than zero, not {_units.format_quantity(q)}")
    if not positive and magnitude < 0:
        raise StepError(name, f"cannot be negative ({_units.format_quantity(q)})")
    return magnitude


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _int(field: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StepError(field, f"must be a whole number, not {value!r}")
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise StepError(field, f"must be a whole number, not {value!r}")
    if int(value) < minimum:
        raise StepError(field, f"must be at least {minimum}, not {value!r}")
    return int(value)


def _text(value: Any) -> str | None:
    return None if value is None else _units.format_quantity(value)


# ---- titration ---------------------------------------------------------------------------------


def _times(field: str, value: object) -> tuple[str, ...]:
    """Times of day as ``"HH:MM"`` texts (24-hour clock), in order, each once."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Iterable):
        raise StepError(
            field, f"must be a list of times of day such as ['08:00', '20:00'], not {value!r}"
        )
    out: list[str] = []
    for item in value:
        text = str(item).strip()
        m = _TIME.match(text)
        if not isinstance(item, str) or m is None:
            raise StepError(field, f"{item!r} is not a time of day: write 'HH:MM', e.g. '08:00'")
        hour, minute = int(m.group(1)), int(m.group(2))
        if hour > 23 or minute > 59:
            raise StepError(field, f"{item!r} is not a time of day (00:00 to 23:59)")
        norm = f"{hour:02d}:{minute:02d}"
        if norm in out:
            raise StepError(field, f"{norm} is given twice")
        out.append(norm)
    if out != sorted(out):
        raise StepError(field, f"times must be in order through the day: {', '.join(sorted(out))}")
    return tuple(out)


def _at(value: Any) -> tuple[str, ...]:
    return _times("at", value)


_TIME: Final = re.compile(r"^(\d{1,2}):(\d{2})$")


def minutes_of(time: str) -> int:
    """Minutes after midnight of an ``"HH:MM"`` text (as :func:`_times` writes it)."""
    return int(time[:2]) * 60 + int(time[3:5])


def _check_at(at: tuple[str, ...], per_day: float | None, field: str = "at") -> None:
    """Times of day must match the number of doses a day (when that is a whole number)."""
    if not at or per_day is None:
        return
    if not math.isfinite(per_day) or per_day != int(per_day) or len(at) != int(per_day):
        raise StepError(
            field,
            f"{len(at)} time{'s' if len(at) != 1 else ''} of day given for "
            f"{_units_num(per_day)} doses a day: give one time per dose",
        )


def _units_num(x: float) -> str:
    return str(int(x)) if math.isfinite(x) and x == int(x) else f"{x:.3g}"


@attrs.define(frozen=True, kw_only=True, cache_hash=True)
class TitrationPoint:
    """From plan day ``day`` on, the step's dose (or rate) and/or its frequency change.

    A point may give a new ``dose``, a new frequency (``every`` or ``times_per_day``), or both;
    a continuous step changes its ``rate``.  What a point leaves out stays as it was.  ``at``
    gives the new times of day when the frequency changes.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> mps.TitrationPoint(day=7, dose="7.5 mg").dose_mg
    7.5
    >>> mps.TitrationPoint(day=14, dose="10 mg", every="12 h").doses_per_day
    2.0
    """

    day: int
    dose: Any = _qfield("mass", "mg", "7.5 mg", "the new dose per administration")
    rate: Any = _qfield("mass_rate", "mg/h", "37 mcg/h", "the new rate of a continuous step")
    every: Any = _qfield("time", "h", "8 h", "the new interval between doses")
    times_per_day: int | None = None
    at: tuple[str, ...] = attrs.field(default=(), converter=_at)
    dose_mg: float | None = attrs.field(init=False, default=None)
    rate_mg_per_h: float | None = attrs.field(init=False, default=None)
    every_h: float | None = attrs.field(init=False, default=None)
    doses_per_day: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        _set(self, "day", _int("day", self.day, minimum=0))
        frequency = self.every is not None or self.times_per_day is not None
        if self.rate is not None:
            if self.dose is not None or frequency:
                raise StepError("rate", "a continuous step's point gives a rate only")
            _set(self, "rate_mg_per_h", _read(self, "rate", "mass_rate", "mg/h"))
            return
        if self.dose is None and not frequency:
            raise StepError(
                "dose",
                "a titration point needs a dose or a rate (or a new frequency: every, "
                "times_per_day)",
            )
        if self.dose is not None:
            _set(self, "dose_mg", _read(self, "dose", "mass", "mg"))
        if self.every is not None and self.times_per_day is not None:
            raise StepError("times_per_day", "give every or times_per_day, not both")
        if self.every is not None:
            every_h = _read(self, "every", "time", "h")
            _set(self, "every_h", every_h)
            _set(self, "doses_per_day", _HOURS_PER_DAY / every_h)
        elif self.times_per_day is not None:
            n = _int("times_per_day", self.times_per_day, minimum=1)
            _set(self, "times_per_day", n)
            _set(self, "doses_per_day", float(n))
        if self.at and not frequency:
            raise StepError(
                "at", "new times of day go with a new frequency (every or times_per_day)"
            )
        _check_at(self.at, self.doses_per_day)


@attrs.define(frozen=True, slots=True)
class Phase:
    """A stretch of days on which a drug step's dose and schedule stay the same.

    ``first_day`` and ``last_day`` are plan days (``last_day`` is ``None`` when the step has no
    end); ``daily_mg`` is the daily dose in mg/day (for a PRN step, the most in 24 hours).
    """

    first_day: int
    last_day: int | None
    dose_mg: float | None
    rate_mg_per_h: float | None
    every_h: float | None
    doses_per_day: float | None
    at: tuple[str, ...]
    daily_mg: float

    def covers(self, day: int) -> bool:
        """True when ``day`` falls in this phase."""
        return self.first_day <= day and (self.last_day is None or day <= self.last_day)


def _titration(value: object) -> tuple[TitrationPoint, ...]:
    if value is None:
        return ()
    if isinstance(value, TitrationPoint):
        return (value,)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise StepError("titration", "must be a list of {day, dose} points")
    out = []
    for i, p in enumerate(value):
        if isinstance(p, TitrationPoint):
            out.append(p)
        elif isinstance(p, dict):
            try:
                out.append(TitrationPoint(**p))
            except TypeError as exc:
                raise StepError(f"titration[{i}]", f"unknown key: {exc}") from None
            except StepError as exc:
                raise StepError(f"titration[{i}].{exc.field}", exc.reason) from None
            except UnitError as exc:
                hint = f"; {exc.suggestion}" if exc.suggestion else ""
                reason = f"{exc.text!r} {exc.reason}{hint}"
                raise StepError(f"titration[{i}].{exc.field}", reason) from None
        else:
            raise StepError(f"titration[{i}]", f"must be a {{day, dose}} table, not {p!r}")
    return tuple(out)


def _stop_day(step: Any) -> int | None:
    """The last day from ``stop_day`` or ``duration`` (whole days; not both)."""
    stop, duration = step.stop_day, step.duration
    if stop is not None and duration is not None:
        raise StepError("duration", "give stop_day or duration, not both")
    if duration is not None:
        days = _read(step, "duration", "time", "day")
        if abs(days - round(days)) > 1e-9:
            raise StepError("duration", f"must be whole days, not {_text(step.duration)}")
        return int(step.start_day + round(days) - 1)
    if stop is None:
        return None
    stop = _int("stop_day", stop, minimum=0)
    if stop < step.start_day:
        raise StepError("stop_day", f"day {stop} comes before start_day {step.start_day}")
    return stop


def _dose_forms() -> Any:
    return _catalog.data_file("dose-forms.toml").get("forms", {})


def _check_dose_form(step: Any) -> None:
    """``dose_form`` is one of ``data/dose-forms.toml`` and fits the step's route."""
    if step.dose_form is None:
        return
    forms = _dose_forms()
    form = _choice("dose_form", step.dose_form, tuple(forms))
    route = str(forms[form].get("route", ""))
    if route and route != step.route:
        raise StepError(
            "dose_form",
            f"a {forms[form]['display']} is given by the {route} route, not {step.route}",
        )
    _set(step, "dose_form", form)


# ---- drug steps --------------------------------------------------------------------------------


@attrs.define(frozen=True, kw_only=True, cache_hash=True)
class _DrugStep(Renderable):
    """What every drug step shares: drug, route, formulation, dose and schedule, titration.

    Schedules: ``dose`` + ``every`` (every N hours), ``dose`` + ``times_per_day``, ``dose`` +
    ``once``, ``rate`` alone (continuous: patch or infusion), and ``prn`` (when needed) with
    ``every`` and/or ``max_doses_per_24h``.
    """

    kind: ClassVar[str] = ""
    _allowed_classes: ClassVar[tuple[str, ...]] = ()

    drug: str
    route: str = "oral"
    formulation: str | None = None
    dose: Any = _qfield("mass", "mg", "10 mg", "the dose per administration")
    dose_high: Any = _qfield("mass", "mg", "10 mg", "the high end of a dose range dose..dose_high")
    dose_form: str | None = None
    every: Any = _qfield("time", "h", "12 h", "the interval between doses")
    times_per_day: int | None = None
    rate: Any = _qfield("mass_rate", "mg/h", "25 mcg/h", "continuous delivery (patch, infusion)")
    once: bool = False
    prn: bool = False
    max_doses_per_24h: int | None = None
    start_day: int = 0
    stop_day: int | None = None
    duration: Any = _qfield("time", "day", "14 day", "how long the step is given (or stop_day)")
    at: tuple[str, ...] = attrs.field(default=(), converter=_at)
    titration: tuple[TitrationPoint, ...] = attrs.field(default=(), converter=_titration)
    note: str = ""

    #: The dose per administration the checks use: the high end of a range (``dose_high``).
    dose_mg: float | None = attrs.field(init=False, default=None)
    #: The low end of a dose range (``dose``); equal to ``dose_mg`` without a range.
    dose_low_mg: float | None = attrs.field(init=False, default=None)
    every_h: float | None = attrs.field(init=False, default=None)
    rate_mg_per_h: float | None = attrs.field(init=False, default=None)
    doses_per_day: float | None = attrs.field(init=False, default=None)
    daily_dose_mg: float = attrs.field(init=False, default=0.0)
    drug_class: str = attrs.field(init=False, default="", eq=False)
    #: The step's dose phases in day order (the start, then each titration point).
    phases: tuple[Phase, ...] = attrs.field(init=False, default=(), eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        record = _catalog.drug(self.drug, field="drug")
        self._check_drug(record)
        _set(self, "drug", record.id)
        _set(self, "drug_class", record.drug_class)
        route = _norm_choice(self.route)
        try:
            allowed_formulations = _catalog.route_formulations(route)
        except UnknownRouteError as exc:
            reason = exc.reason.replace(repr(route), repr(str(self.route)), 1)
            raise UnknownRouteError(
                "route", str(self.route), exc.suggestions, "route", reason
            ) from None
        if route not in record.routes:
            raise UnknownRouteError(
                "route",
                route,
                record.routes,
                "route",
                reason=f"{record.id} has no {route} route (its routes: {', '.join(record.routes)})",
            )
        _set(self, "route", route)
        formulation = self.formulation
        if formulation is None:
            formulation = allowed_formulations[0]
        formulation = _choice("formulation", formulation, _catalog.FORMULATIONS)
        if formulation not in allowed_formulations:
            if formulation == "patch":
                reason = f"a patch is transdermal; {record.id} by the {route} route cannot be one"
            else:
                reason = (
                    f"{formulation!r} does not exist by the {route} route "
                    f"(allowed: {', '.join(allowed_formulations)})"
                )
            raise StepError("formulation", reason)
        _set(self, "formulation", formulation)
        _check_dose_form(self)
        _set(self, "start_day", _int("start_day", self.start_day, minimum=0))
        _set(self, "stop_day", _stop_day(self))
        for flag in ("once", "prn"):
            if not isinstance(getattr(self, flag), bool):
                raise StepError(flag, f"must be true or false, not {getattr(self, flag)!r}")
        self._check_schedule()
        self._check_titration()

    def _check_drug(self, record: _catalog.DrugRecord) -> None:
        if self._allowed_classes and record.drug_class not in self._allowed_classes:
            other = (
                "a 'psoas_compartment_block'"
                if record.drug_class == "local_anaesthetic"
                else "an 'adjuvant'"
            )
            raise UnknownDrugError(
                "drug",
                record.id,
                (),
                "drug",
                reason=f"{record.id} is not an opioid; use {other} step",
            )

    def _check_schedule(self) -> None:
        if self.rate is not None:
            for other in ("dose", "dose_high", "every", "times_per_day", "max_doses_per_24h"):
                if getattr(self, other) is not None:
                    raise StepError(
                        other, "a continuous step has a rate only; remove dose/every/times_per_day"
                    )
            if self.once or self.prn:
                raise StepError("rate", "a continuous step cannot be 'once' or 'prn'")
            if self.at:
                raise StepError("at", "a continuous step has no times of day (it runs throughout)")
            rate_h = _read(self, "rate", "mass_rate", "mg/h")
            if self.formulation == "patch" and not _units.format_unit(self.rate.units).endswith(
                "/h"
            ):
                raise StepError(
                    "rate",
                    f"patches are labelled per hour; {_text(self.rate)!r} looks like a daily "
                    "dose: write the patch strength, e.g. '25 mcg/h'",
                )
            _set(self, "rate_mg_per_h", rate_h)
            _set(self, "daily_dose_mg", rate_h * _HOURS_PER_DAY)
            return
        if self.formulation == "patch":
            raise StepError(
                "rate",
                "a transdermal patch is dosed as a rate: write rate = '25 mcg/h', not a dose",
            )
        if self.dose is None:
            raise StepError("dose", "is required (or 'rate' for continuous delivery)")
        dose_mg = _read(self, "dose", "mass", "mg")
        _set(self, "dose_low_mg", dose_mg)
        if self.dose_high is not None:
            high = _read(self, "dose_high", "mass", "mg")
            if high < dose_mg:
                raise StepError(
                    "dose_high",
                    f"{_text(self.dose_high)} is below dose {_text(self.dose)}: the range is "
                    "dose..dose_high",
                )
            dose_mg = high  # the checks use the high end of the range
        _set(self, "dose_mg", dose_mg)
        given = [
            n for n in ("every", "times_per_day", "once") if getattr(self, n) not in (None, False)
        ]
        if len(given) > 1:
            raise StepError(given[1], f"give one of every, times_per_day, once (not {given})")
        per_day: float
        if self.every is not None:
            every_h = _read(self, "every", "time", "h")
            _set(self, "every_h", every_h)
            per_day = _HOURS_PER_DAY / every_h
        elif self.times_per_day is not None:
            per_day = _int("times_per_day", self.times_per_day, minimum=1)
        elif self.once:
            per_day = 1.0
        elif self.prn and self.max_doses_per_24h is not None:
            per_day = math.inf
        else:
            raise StepError("every", "give a schedule: every = '12 h', times_per_day = 2 or once")
        if self.max_doses_per_24h is not None:
            if not self.prn:
                raise StepError(
                    "max_doses_per_24h", "applies to PRN steps only; set prn = true or remove it"
                )
            max_doses = _int("max_doses_per_24h", self.max_doses_per_24h, minimum=1)
            per_day = min(per_day, float(max_doses))
        if self.at and self.prn:
            raise StepError("at", "a PRN step is given when needed, not at set times of day")
        _check_at(self.at, per_day)
        _set(self, "doses_per_day", float(per_day))
        _set(self, "daily_dose_mg", dose_mg * per_day)

    def _check_titration(self) -> None:
        last = self.start_day
        dose, rate = self.dose_mg, self.rate_mg_per_h
        every_h, per_day, at = self.every_h, self.doses_per_day, self.at
        starts: list[tuple[int, float | None, float | None, float | None, float | None, Any]] = [
            (self.start_day, dose, rate, every_h, per_day, at)
        ]
        for i, point in enumerate(self.titration):
            if point.day <= last:
                raise StepError(
                    f"titration[{i}].day",
                    f"day {point.day} must come after day {last} (start_day or previous change)",
                )
            if self.stop_day is not None and point.day > self.stop_day:
                raise StepError(
                    f"titration[{i}].day",
                    f"day {point.day} comes after the step stops (day {self.stop_day})",
                )
            last = point.day
            if self.rate is not None:
                if point.rate_mg_per_h is None:
                    raise StepError(f"titration[{i}].rate", "a continuous step titrates its rate")
                rate = point.rate_mg_per_h
            else:
                if point.rate_mg_per_h is not None:
                    raise StepError(f"titration[{i}].dose", "this step titrates its dose")
                if point.doses_per_day is not None:
                    if self.prn or self.once:
                        raise StepError(
                            f"titration[{i}].every",
                            "a PRN or once-only step cannot change its frequency",
                        )
                    every_h, per_day, at = point.every_h, point.doses_per_day, point.at
                elif self.at and point.at:
                    raise StepError(f"titration[{i}].at", "new times of day need a new frequency")
                dose = point.dose_mg if point.dose_mg is not None else dose
            starts.append((point.day, dose, rate, every_h, per_day, at))
        phases = []
        for j, (day, dose_j, rate_j, every_j, per_j, at_j) in enumerate(starts):
            end = starts[j + 1][0] - 1 if j + 1 < len(starts) else self.last_day
            if rate_j is not None:
                daily = rate_j * _HOURS_PER_DAY
            else:
                assert dose_j is not None
                assert per_j is not None
                daily = dose_j * per_j
            phases.append(Phase(day, end, dose_j, rate_j, every_j, per_j, at_j, daily))
        _set(self, "phases", tuple(phases))
        _set(self, "daily_dose_mg", max(p.daily_mg for p in phases))

    @property
    def last_day(self) -> int | None:
        """The last plan day the step is given (``None``: no end stated).  A once-only step is
        given on its start day only."""
        if self.once:
            return self.start_day
        return self.stop_day

    @property
    def peak_day(self) -> int:
        """The first plan day on which the step's largest daily dose (:attr:`daily_dose_mg`)
        is given: the start day without a titration.

        Example
        -------
        >>> import mps_analgesia as mps
        >>> mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h", titration=[
        ...     {"day": 7, "dose": "7.5 mg"}, {"day": 14, "dose": "10 mg"}]).peak_day
        14
        """
        return max(self.phases, key=lambda p: p.daily_mg).first_day

    def phase_on(self, day: int) -> Phase | None:
        """The dose phase in force on plan ``day`` (``None`` before the start or after the stop)."""
        found = None
        for phase in self.phases:
            if phase.first_day <= day:
                found = phase
        if found is None or (found.last_day is not None and day > found.last_day):
            return None
        return found

    # ---- derived values -------------------------------------------------------------------------

    @property
    def is_continuous(self) -> bool:
        """True for a patch or an infusion (a rate, no discrete doses)."""
        return self.rate_mg_per_h is not None

    @property
    def is_regular(self) -> bool:
        """True for a scheduled (not PRN) step."""
        return not self.prn

    @property
    def daily_dose(self) -> Any:
        """The largest daily dose over the step's titration, as a Quantity in mg/day.

        For a PRN step this is the most that can be given in 24 hours.
        """
        return _units.quantity_from_magnitude(self.daily_dose_mg, "mg/day")

    def daily_dose_mg_on(self, day: int) -> float:
        """The daily dose in mg/day in force on plan day ``day`` (0.0 before the step starts
        and after it stops)."""
        phase = self.phase_on(day)
        return 0.0 if phase is None else phase.daily_mg

    def daily_dose_on(self, day: int) -> Any:
        """The daily dose in force on plan day ``day`` as a Quantity in mg/day."""
        return _units.quantity_from_magnitude(self.daily_dose_mg_on(day), "mg/day")

    def dose_on(self, day: int) -> Any:
        """The dose per administration (or the rate) in force on ``day`` as a Quantity;
        ``None`` before the start and after the stop."""
        if self.phase_on(day) is None:
            return None
        current = self.rate if self.rate is not None else self.dose
        for point in self.titration:
            if point.day <= day:
                if point.rate is not None:
                    current = point.rate
                elif point.dose is not None:
                    current = point.dose
        return current

    def describe(self) -> str:
        """A one-line plain-language description: ``'oxycodone 10 mg oral every 12 h'``."""
        if self.rate is not None:
            what = f"{self.drug} {_text(self.rate)} {self.route}"
            if self.formulation == "patch":
                what += " patch"
            return what
        dose = _text(self.dose)
        if self.dose_high is not None:
            dose = f"{dose} to {_text(self.dose_high)}"
        what = f"{self.drug} {dose} {self.route}"
        if self.every is not None:
            what += f" every {_text(self.every)}"
        elif self.times_per_day == 1:
            what += " once a day"
        elif self.times_per_day is not None:
            what += f" {self.times_per_day} times a day"
        elif self.once:
            what += " once"
        if self.prn:
            what += " when needed"
            if self.max_doses_per_24h is not None:
                what += f", at most {self.max_doses_per_24h} doses in 24 h"
        return what


@attrs.define(frozen=True, kw_only=True, cache_hash=True)
class OpioidStep(_DrugStep):
    """An opioid given as the main analgesic, regular or PRN (breakthrough).

    Example
    -------
    >>> import mps_analgesia as mps
    >>> step = mps.OpioidStep(drug="oxycodone", formulation="modified-release",
    ...                       dose="10 mg", every="12 h")
    >>> step.daily_dose
    <Quantity(20.0, 'milligram / day')>
    >>> patch = mps.OpioidStep(drug="fentanyl", route="transdermal", rate="25 mcg/h")
    >>> round(patch.daily_dose_mg, 9), patch.formulation
    (0.6, 'patch')
    """

    kind: ClassVar[str] = "opioid"
    _allowed_classes: ClassVar[tuple[str, ...]] = ("opioid",)

    rescue_for: str | None = attrs.field(
        default=None,
        metadata={
            "doc": "on a PRN step: the regular opioid it is the rescue for (its regular daily "
            "dose is the basis of the breakthrough check); default the PRN step's own drug"
        },
    )

    def __attrs_post_init__(self) -> None:
        _DrugStep.__attrs_post_init__(self)
        if self.rescue_for is not None:
            if not self.prn:
                raise StepError("rescue_for", "only a PRN (when needed) step is a rescue dose")
            record = _catalog.drug(str(self.rescue_for), field="rescue_for")
            if record.drug_class != "opioid":
                raise StepError("rescue_for", f"{record.id} is not an opioid")
            _set(self, "rescue_for", record.id)

    @property
    def is_long_acting(self) -> bool:
        """A modified-release tablet, a patch, or methadone: the regimen's long-acting opioid."""
        if self.formulation in ("modified-release", "patch"):
            return True
        return _catalog.drug(self.drug).long_acting and not self.prn


@attrs.define(frozen=True, kw_only=True, cache_hash=True)
class MethadoneAdjuvantStep(_DrugStep):
    """Methadone *added to* the current opioid (Takase 2015), not a rotation to methadone.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> step = mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h",
    ...                                  titration=[{"day": 7, "dose": "7.5 mg"}])
    >>> step.daily_dose
    <Quantity(22.5, 'milligram / day')>
    """

    kind: ClassVar[str] = "methadone_adjuvant"
    _allowed_classes: ClassVar[tuple[str, ...]] = ("opioid",)

    drug: str = "methadone"

    def _check_drug(self, record: _catalog.DrugRecord) -> None:
        if record.id != "methadone":
            raise UnknownDrugError(
                "drug",
                record.id,
                ("methadone",),
                "drug",
                reason=f"a methadone_adjuvant step is methadone, not {record.id}",
            )
        if self.prn:
            raise StepError("prn", "adjuvant methadone is given regularly, not when needed")


@attrs.define(frozen=True, kw_only=True, cache_hash=True)
class AdjuvantStep(_DrugStep):
    """A non-opioid or co-analgesic drug with its ``role``.

    Roles: nociceptive, neuropathic, muscle-spasm, anti-inflammatory, nmda.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> mps.AdjuvantStep(drug="paracetamol", role="nociceptive", dose="1 g", every="6 h").drug
    'acetaminophen'
    """

    kind: ClassVar[str] = "adjuvant"

    role: str = ""

    def _check_drug(self, record: _catalog.DrugRecord) -> None:
        if record.drug_class in ("opioid", "local_anaesthetic"):
            step = "an 'opioid'" if record.drug_class == "opioid" else "a 'psoas_compartment_block'"
            raise UnknownDrugError(
                "drug",
                record.id,
                (),
                "drug",
                reason=f"{record.id} is not an adjuvant; use {step} step",
            )
        if not self.role:
            raise StepError("role", f"is required: one of {', '.join(ADJUVANT_ROLES)}")
        _set(self, "role", _choice("role", self.role, ADJUVANT_ROLES))


# ---- psoas compartment block -----------------------------------------------------------------


@attrs.define(frozen=True, kw_only=True, cache_hash=True)
class PsoasCompartmentBlockStep(Renderable):
    """A psoas compartment (posterior lumbar plexus) block with local anaesthetic.

    The dose is computed in units: concentration × volume for the bolus, concentration × rate ×
    duration for an infusion through a catheter.  ``%`` is % w/v (0.2 % = 2 mg/mL).

    Example
    -------
    >>> import mps_analgesia as mps
    >>> block = mps.PsoasCompartmentBlockStep(drug="ropivacaine", concentration="0.2 %",
    ...     bolus_volume="20 mL", infusion_rate="6 mL/h", infusion_duration="48 h",
    ...     side="left", technique="catheter")
    >>> block.bolus_mg, block.infusion_mg_per_h, block.max_24h_mg
    (40.0, 12.0, 328.0)
    """

    kind: ClassVar[str] = "psoas_compartment_block"

    drug: str
    concentration: Any = _qfield("concentration", "mg/mL", "0.2 %", "local anaesthetic strength")
    bolus_volume: Any = _qfield("volume", "mL", "20 mL", "the bolus (loading) volume")
    infusion_rate: Any = _qfield("volume_rate", "mL/h", "6 mL/h", "catheter infusion rate")
    infusion_duration: Any = _qfield("time", "h", "48 h", "how long the infusion runs")
    adrenaline: bool = False
    side: str | None = None
    technique: str = "single-shot"
    start_day: int = 0
    stop_day: int | None = None
    at: tuple[str, ...] = attrs.field(default=(), converter=_at)
    note: str = ""
    anticoagulant_restart: Any = _qfield(
        "time",
        "h",
        "6 h",
        "time from catheter removal (or the single-shot block) to the next anticoagulant dose",
    )
    catheter_removal: Any = _qfield(
        "time",
        "h",
        "48 h",
        "time from the block to catheter removal (a catheter; default: when its infusion ends)",
    )

    concentration_mg_per_ml: float | None = attrs.field(init=False, default=None)
    bolus_ml: float | None = attrs.field(init=False, default=None)
    infusion_ml_per_h: float | None = attrs.field(init=False, default=None)
    infusion_h: float | None = attrs.field(init=False, default=None)
    anticoagulant_restart_h: float | None = attrs.field(init=False, default=None)
    catheter_removal_h: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        record = _catalog.drug(self.drug, field="drug")
        if record.drug_class != "local_anaesthetic":
            raise UnknownDrugError(
                "drug",
                record.id,
                ("ropivacaine", "bupivacaine", "levobupivacaine", "lidocaine"),
                "drug",
                reason=f"{record.id} is not a local anaesthetic",
            )
        _set(self, "drug", record.id)
        if self.anticoagulant_restart is not None:
            _set(
                self,
                "anticoagulant_restart_h",
                _read(self, "anticoagulant_restart", "time", "h", positive=False),
            )
        if not isinstance(self.adrenaline, bool):
            raise StepError("adrenaline", f"must be true or false, not {self.adrenaline!r}")
        if self.side is None:
            raise StepError("side", f"is required (never assumed): one of {', '.join(BLOCK_SIDES)}")
        _set(self, "side", _choice("side", self.side, BLOCK_SIDES))
        _set(self, "technique", _choice("technique", self.technique, BLOCK_TECHNIQUES))
        _set(self, "start_day", _int("start_day", self.start_day, minimum=0))
        if self.bolus_volume is None and self.infusion_rate is None:
            raise StepError(
                "bolus_volume", "a block needs a bolus_volume, an infusion_rate or both"
            )
        if self.concentration is None:
            raise StepError(
                "concentration",
                "is required to compute the dose from a volume: write e.g. concentration = '0.2 %'",
            )
        _set(
            self, "concentration_mg_per_ml", _read(self, "concentration", "concentration", "mg/mL")
        )
        if self.bolus_volume is not None:
            _set(self, "bolus_ml", _read(self, "bolus_volume", "volume", "mL"))
        if self.infusion_rate is not None:
            if self.technique != "catheter":
                raise StepError(
                    "infusion_rate", "an infusion needs a catheter: set technique = 'catheter'"
                )
            _set(self, "infusion_ml_per_h", _read(self, "infusion_rate", "volume_rate", "mL/h"))
        if self.infusion_duration is not None:
            if self.infusion_rate is None:
                raise StepError("infusion_duration", "is given without an infusion_rate")
            _set(self, "infusion_h", _read(self, "infusion_duration", "time", "h"))
        if self.catheter_removal is not None:
            if self.technique != "catheter":
                raise StepError("catheter_removal", "a single-shot block has no catheter to remove")
            removal = _read(self, "catheter_removal", "time", "h", positive=False)
            if self.infusion_h is not None and removal < self.infusion_h * (1 - 1e-9):
                raise StepError(
                    "catheter_removal",
                    f"the catheter is removed before its {self.infusion_h:g} h infusion ends",
                )
            _set(self, "catheter_removal_h", removal)
        if len(self.at) > 1:
            raise StepError("at", "give one time of day: when the block (its bolus) is given")
        if self.stop_day is not None:
            stop = _int("stop_day", self.stop_day, minimum=0)
            if stop < self.start_day:
                raise StepError("stop_day", f"day {stop} comes before start_day {self.start_day}")
            if self.infusion_h is not None:
                raise StepError(
                    "stop_day",
                    "the infusion_duration already ends the block; give one of the two",
                )
            if self.infusion_rate is None and stop != self.start_day:
                raise StepError("stop_day", "a block without an infusion is given on one day")
            _set(self, "stop_day", stop)

    # ---- over time ------------------------------------------------------------------------------

    @property
    def start_hour(self) -> float | None:
        """The hour of the day the block is given (from ``at``), ``None`` when not stated."""
        return minutes_of(self.at[0]) / 60.0 if self.at else None

    @property
    def last_day(self) -> int | None:
        """The last plan day local anaesthetic may run (``None``: an open infusion with no
        ``stop_day``).  Without a time of day, an infusion of H hours may reach into the day
        after its H/24 days, so that day is counted too."""
        if self.infusion_ml_per_h is None:
            return self.start_day
        if self.infusion_h is None:
            return self.stop_day
        t0 = self.start_hour
        if t0 is None:
            return self.start_day + math.ceil(self.infusion_h / _HOURS_PER_DAY - 1e-9)
        return self.start_day + max(
            0, math.ceil((t0 + self.infusion_h) / _HOURS_PER_DAY - 1e-9) - 1
        )

    @property
    def removal_h(self) -> float | None:
        """Hours from the block to catheter removal: ``catheter_removal``, else the end of the
        infusion; ``0.0`` for a single shot (no catheter: the block itself is the time the
        anticoagulant restart counts from); ``None`` for a catheter whose end is not known."""
        if self.technique != "catheter":
            return 0.0
        if self.catheter_removal_h is not None:
            return self.catheter_removal_h
        return self.infusion_h

    def day_and_time_after(self, hours: float) -> tuple[int, str | None]:
        """The plan day (and clock time, when the block has one) ``hours`` after the block.
        Without a time of day the day is the latest it can be (as :attr:`last_day`)."""
        t0 = self.start_hour
        if t0 is None:
            return self.start_day + math.ceil(hours / _HOURS_PER_DAY - 1e-9), None
        t = t0 + hours
        day = self.start_day + math.floor(t / _HOURS_PER_DAY + 1e-9)
        minutes = round((t - _HOURS_PER_DAY * math.floor(t / _HOURS_PER_DAY + 1e-9)) * 60)
        return day, f"{minutes // 60:02d}:{minutes % 60:02d}"

    def local_anaesthetic_mg_on(self, day: int) -> float:
        """The local anaesthetic (mg) given on plan ``day``: the bolus on its day plus the
        infusion hours that fall on that day.

        Without a time of day (``at``), each day's value is the most the day can hold (the
        infusion might start late in the first day and run into the last): an upper bound
        per day, not a share of the total.
        """
        k = day - self.start_day
        last = self.last_day
        if k < 0 or (last is not None and day > last):
            return 0.0
        mg = self.bolus_mg if k == 0 else 0.0
        rate = self.infusion_mg_per_h
        if rate == 0.0:
            return mg
        hours = self.infusion_h
        t0 = self.start_hour
        if hours is None:  # open infusion: through its stop day (or on)
            lo = t0 if (k == 0 and t0 is not None) else 0.0
            return mg + rate * (_HOURS_PER_DAY - lo)
        if t0 is None:
            on = min(_HOURS_PER_DAY, hours) if k == 0 else hours - _HOURS_PER_DAY * (k - 1)
        else:
            lo, hi = _HOURS_PER_DAY * k, _HOURS_PER_DAY * (k + 1)
            on = min(hi, t0 + hours) - max(lo, t0)
        return mg + rate * max(0.0, min(_HOURS_PER_DAY, on))

    def dose_on(self, day: int) -> Any:
        """The local anaesthetic given on plan ``day`` as a Quantity in mg (``None`` on a day
        without the block); see :meth:`local_anaesthetic_mg_on`."""
        mg = self.local_anaesthetic_mg_on(day)
        last = self.last_day
        if day < self.start_day or (last is not None and day > last):
            return None
        return _units.quantity_from_magnitude(mg, "mg")

    @property
    def bolus_mg(self) -> float:
        """The bolus dose in mg (concentration × volume); 0.0 without a bolus."""
        if self.bolus_ml is None or self.concentration_mg_per_ml is None:
            return 0.0
        return self.concentration_mg_per_ml * self.bolus_ml

    @property
    def infusion_mg_per_h(self) -> float:
        """The infusion dose rate in mg/h (concentration × rate); 0.0 without an infusion."""
        if self.infusion_ml_per_h is None or self.concentration_mg_per_ml is None:
            return 0.0
        return self.concentration_mg_per_ml * self.infusion_ml_per_h

    @property
    def infusion_total_mg(self) -> float | None:
        """The whole infusion in mg (rate × duration); ``None`` when the duration is open."""
        if self.infusion_h is None:
            return None if self.infusion_ml_per_h is not None else 0.0
        return self.infusion_mg_per_h * self.infusion_h

    @property
    def max_24h_mg(self) -> float:
        """The most given in any 24 hours: the bolus plus the first 24 h of infusion."""
        hours = _HOURS_PER_DAY if self.infusion_h is None else min(_HOURS_PER_DAY, self.infusion_h)
        return self.bolus_mg + self.infusion_mg_per_h * hours

    @property
    def bolus_dose(self) -> Any:
        """The bolus dose as a Quantity in mg."""
        return _units.quantity_from_magnitude(self.bolus_mg, "mg")

    @property
    def max_24h_dose(self) -> Any:
        """The most given in any 24 hours as a Quantity in mg."""
        return _units.quantity_from_magnitude(self.max_24h_mg, "mg")

    def describe(self) -> str:
        """A one-line plain-language description of the block."""
        conc = _text(self.concentration)
        adr = " with adrenaline" if self.adrenaline else ""
        parts = [f"{self.side} psoas compartment block, {self.drug} {conc}{adr}"]
        if self.bolus_volume is not None:
            parts.append(f"{_text(self.bolus_volume)} bolus")
        if self.infusion_rate is not None:
            inf = f"then {_text(self.infusion_rate)} by catheter"
            if self.infusion_duration is not None:
                inf += f" for {_text(self.infusion_duration)}"
            parts.append(inf)
        return ", ".join(parts)


# ---- radiotherapy ------------------------------------------------------------------------------


@attrs.define(frozen=True, kw_only=True, cache_hash=True)
class RadiotherapyStep(Renderable):
    """Palliative external-beam radiotherapy: total dose in Gy over ``fractions`` fractions.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> rt = mps.RadiotherapyStep(total_dose="20 Gy", fractions=5, site="left psoas")
    >>> rt.dose_per_fraction
    <Quantity(4.0, 'gray / fraction')>
    """

    kind: ClassVar[str] = "radiotherapy"

    total_dose: Any = _qfield("absorbed_dose", "Gy", "20 Gy", "the total prescribed dose")
    fractions: int = 1
    site: str = ""
    prior_dose: Any = _qfield("absorbed_dose", "Gy", "8 Gy", "earlier dose to the same site")
    prior_fractions: int | None = None
    start_day: int = 0
    note: str = ""

    total_dose_gy: float = attrs.field(init=False, default=0.0)
    prior_dose_gy: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        if self.total_dose is None:
            raise StepError("total_dose", "is required: write e.g. total_dose = '20 Gy'")
        _set(self, "total_dose_gy", _read(self, "total_dose", "absorbed_dose", "Gy"))
        _set(self, "fractions", _int("fractions", self.fractions, minimum=1))
        _set(self, "start_day", _int("start_day", self.start_day, minimum=0))
        if not isinstance(self.site, str) or not self.site.strip():
            raise StepError("site", "is required: the treated site, e.g. 'left psoas'")
        if self.prior_dose is not None:
            _set(self, "prior_dose_gy", _read(self, "prior_dose", "absorbed_dose", "Gy"))
        if self.prior_fractions is not None:
            if self.prior_dose is None:
                raise StepError("prior_fractions", "is given without a prior_dose")
            _set(self, "prior_fractions", _int("prior_fractions", self.prior_fractions, minimum=1))

    def fraction_days(self, start_date: datetime.date | None = None) -> tuple[int, ...]:
        """The plan days of the fractions: consecutive days from ``start_day`` when the plan
        has no calendar date; Monday to Friday when ``start_date`` (the date of plan day 0)
        is given.

        Example
        -------
        >>> import datetime, mps_analgesia as mps
        >>> rt = mps.RadiotherapyStep(total_dose="20 Gy", fractions=5, site="psoas", start_day=2)
        >>> rt.fraction_days()
        (2, 3, 4, 5, 6)
        >>> rt.fraction_days(datetime.date(2026, 12, 3))  # a Thursday: day 2 is Saturday
        (4, 5, 6, 7, 8)
        """
        if start_date is None:
            return tuple(range(self.start_day, self.start_day + self.fractions))
        days: list[int] = []
        day = self.start_day
        weekday = (start_date.weekday() + day) % 7
        while len(days) < self.fractions:
            if weekday < _WORKING_DAYS:
                days.append(day)
            day += 1
            weekday = (weekday + 1) % 7
        return tuple(days)

    def last_day_of(self, start_date: datetime.date | None = None) -> int:
        """The plan day of the last fraction."""
        return self.fraction_days(start_date)[-1]

    @property
    def last_day(self) -> int:
        """The plan day of the last fraction on consecutive days (no calendar date)."""
        return self.start_day + self.fractions - 1

    def dose_on(self, day: int, start_date: datetime.date | None = None) -> Any:
        """The dose given on plan ``day`` as a Quantity in Gy (``None`` on a day without a
        fraction)."""
        if day not in self.fraction_days(start_date):
            return None
        return _units.quantity_from_magnitude(self.dose_per_fraction_gy, "Gy")

    @property
    def dose_per_fraction_gy(self) -> float:
        """The dose per fraction in Gy."""
        return self.total_dose_gy / self.fractions

    @property
    def dose_per_fraction(self) -> Any:
        """The dose per fraction as a Quantity in Gy/fraction."""
        return _units.quantity_from_magnitude(self.dose_per_fraction_gy, "Gy/fraction")

    def describe(self) -> str:
        """A one-line plain-language description of the course."""
        text = (
            f"radiotherapy to {self.site}: {_text(self.total_dose)} in {self.fractions} "
            f"fraction{'s' if self.fractions != 1 else ''}"
        )
        if self.prior_dose is not None:
            text += f" (prior {_text(self.prior_dose)}"
            if self.prior_fractions is not None:
                text += f" in {self.prior_fractions}"
            text += ")"
        return text


# ---- taper ------------------------------------------------------------------------------------

#: What a taper reduces by: a share of the dose in force (``current``) or of the dose before the
#: taper (``original``).
TAPER_BASES: Final = ("current", "original")
#: Steps a taper may follow (it starts the day after the last such step ends).
TAPER_AFTER: Final = ("psoas_compartment_block", "radiotherapy")


@attrs.define(frozen=True, kw_only=True, cache_hash=True)
class TaperStep:
    """Reduce the regular dose of an opioid by ``reduce_by_percent`` every ``every`` days, from
    ``start_day`` or from the day after the last block or radiotherapy step (``after``) ends,
    down to ``floor`` (a daily dose; ``"0 mg/day"`` stops the opioid).

    The numbers are the prescriber's: the library found no source giving a percentage after a
    successful block or radiotherapy, so the plan says the choice is clinical (CDC 2022's pace is
    shown for comparison).  ``source`` may name the source the prescriber follows.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> taper = mps.TaperStep(drug="oxycodone", reduce_by_percent=25, every="7 day",
    ...                       floor="20 mg/day", start_day=7)
    >>> [round(taper.reduced_daily_mg(60.0, d, 7), 2) for d in (6, 7, 14, 21, 28)]
    [60.0, 45.0, 33.75, 25.31, 20.0]
    """

    kind: ClassVar[str] = "taper"

    drug: str
    reduce_by_percent: float
    every: Any = _qfield("time", "day", "7 day", "the interval between reductions")
    floor: Any = _qfield("mass_rate", "mg/day", "20 mg/day", "the daily dose not to go below")
    start_day: int = 0
    after: str | None = None
    of: str = "current"
    source: str = ""
    note: str = ""

    every_days: int = attrs.field(init=False, default=0)
    floor_mg_per_day: float = attrs.field(init=False, default=0.0)

    def __attrs_post_init__(self) -> None:
        record = _catalog.drug(self.drug, field="drug")
        if record.drug_class != "opioid":
            raise UnknownDrugError(
                "drug", record.id, (), "drug", reason=f"a taper reduces an opioid, not {record.id}"
            )
        _set(self, "drug", record.id)
        pct = self.reduce_by_percent
        if isinstance(pct, bool) or not isinstance(pct, int | float) or not math.isfinite(pct):
            raise StepError("reduce_by_percent", f"must be a number of percent, not {pct!r}")
        if not 0 < pct < 100:
            raise StepError("reduce_by_percent", f"must be above 0 and below 100, not {pct!r}")
        _set(self, "reduce_by_percent", float(pct))
        if self.every is None:
            raise StepError("every", "is required: how often to reduce, e.g. every = '7 day'")
        days = _read(self, "every", "time", "day")
        if abs(days - round(days)) > 1e-9:
            raise StepError("every", f"must be whole days, not {_text(self.every)}")
        _set(self, "every_days", round(days))
        if self.floor is None:
            raise StepError(
                "floor",
                "is required: the daily dose to stop at, e.g. '20 mg/day' ('0 mg/day' stops)",
            )
        _set(self, "floor_mg_per_day", _read(self, "floor", "mass_rate", "mg/day", positive=False))
        _set(self, "start_day", _int("start_day", self.start_day, minimum=0))
        if self.after is not None:
            spelled = tuple(a.replace("_", "-") for a in TAPER_AFTER)  # as _choice normalises
            _set(self, "after", _choice("after", self.after, spelled).replace("-", "_"))
        _set(self, "of", _choice("of", self.of, TAPER_BASES))
        if self.source and self.source not in _catalog.sources():
            raise StepError("source", f"{self.source!r} is not a source id of data/sources.toml")

    @property
    def fraction(self) -> float:
        """The reduction at each step as a fraction (0.25 for 25 %)."""
        return self.reduce_by_percent / 100.0

    def first_day(self, steps: Sequence[Any], start_date: datetime.date | None = None) -> int:
        """The day of the first reduction: ``start_day``, or the day after the last step of
        kind ``after`` ends (``start_day`` when the regimen has no such step)."""
        if self.after is None:
            return self.start_day
        ends = []
        for step in steps:
            if step.kind != self.after:
                continue
            if isinstance(step, RadiotherapyStep):
                ends.append(step.last_day_of(start_date))
            elif step.last_day is not None:
                ends.append(step.last_day)
        return max(self.start_day, max(ends) + 1) if ends else self.start_day

    def reductions_on(self, day: int, first: int) -> int:
        """How many reductions have been made by ``day`` (0 before ``first``)."""
        return 0 if day < first else (day - first) // self.every_days + 1

    def reduced_daily_mg(self, base_mg: float, day: int, first: int) -> float:
        """The regular daily dose on ``day`` of a drug whose untapered dose is ``base_mg``."""
        k = self.reductions_on(day, first)
        if k == 0 or base_mg <= self.floor_mg_per_day:
            return base_mg
        if self.of == "current":
            reduced = base_mg * (1.0 - self.fraction) ** k
        else:
            reduced = base_mg * max(0.0, 1.0 - k * self.fraction)
        return max(reduced, self.floor_mg_per_day)

    def describe(self) -> str:
        """A one-line plain-language description of the taper."""
        when = (
            f"after the {self.after.replace('_', ' ')}"
            if self.after
            else f"from day {self.start_day}"
        )
        base = "" if self.of == "current" else " of the starting dose"
        return (
            f"taper {self.drug} {when}: reduce by {_units_num(self.reduce_by_percent)} %{base} "
            f"every {self.every_days} day{'s' if self.every_days != 1 else ''} down to "
            f"{_text(self.floor)}"
        )


Step: TypeAlias = (
    OpioidStep
    | MethadoneAdjuvantStep
    | AdjuvantStep
    | PsoasCompartmentBlockStep
    | RadiotherapyStep
    | TaperStep
)
#: The step classes by their ``kind`` (the key used in case and protocol files).
STEP_KINDS: Final[dict[str, type[Any]]] = {
    cls.kind: cls
    for cls in (
        OpioidStep,
        MethadoneAdjuvantStep,
        AdjuvantStep,
        PsoasCompartmentBlockStep,
        RadiotherapyStep,
        TaperStep,
    )
}
