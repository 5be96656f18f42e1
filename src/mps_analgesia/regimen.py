"""A regimen (the steps for one patient over days) and a case (a patient with a regimen)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from ._repr import Renderable
from .errors import StepError
from .patient import Patient
from .steps import STEP_KINDS, RadiotherapyStep, Step

__all__ = ["Case", "Regimen"]

_STEP_TYPES = tuple(STEP_KINDS.values())


def _steps(value: Iterable[Any]) -> tuple[Step, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise StepError("steps", "must be a sequence of steps")
    steps = tuple(value)
    for i, step in enumerate(steps):
        if not isinstance(step, _STEP_TYPES):
            raise StepError(
                f"steps[{i}]",
                f"{type(step).__name__} is not a step; use one of "
                + ", ".join(cls.__name__ for cls in _STEP_TYPES),
            )
    return steps


def _start_date(value: object) -> datetime.date | None:
    """An ISO date (``"2026-12-07"``), a :class:`datetime.date`, or ``None``."""
    if value is None or (
        isinstance(value, datetime.date) and not isinstance(value, datetime.datetime)
    ):
        return value
    if isinstance(value, datetime.datetime):
        raise StepError(
            "start_date", f"is a date (day 0 of the plan), not a date and time: {value.isoformat()}"
        )
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise StepError(
        "start_date",
        f"{value!r} is not an ISO date: write the date of plan day 0, e.g. '2026-12-07'",
    )


def _time_zone(value: object) -> str | None:
    """An IANA time zone name (``"Asia/Tokyo"``), checked against the system's zone data."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise StepError(
            "time_zone", f"must be a time zone name such as 'Europe/London', not {value!r}"
        )
    import zoneinfo

    name = value.strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise StepError(
            "time_zone",
            f"{value!r} is not a known time zone: write an IANA name such as 'Asia/Tokyo'",
        ) from None
    return name


@attrs.define(frozen=True)
class Regimen(Renderable):
    """The ordered steps of a plan, a step's ``start_day`` and ``titration`` placing it in time.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> reg = mps.Regimen([mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h")])
    >>> len(reg), reg[0].daily_dose_mg
    (1, 60.0)
    """

    steps: tuple[Step, ...] = attrs.field(converter=_steps)
    name: str = ""
    #: The calendar date of plan day 0; without one, days are plan days 0, 1, 2 … and nothing
    #: depends on the weekday.
    start_date: datetime.date | None = attrs.field(
        default=None, kw_only=True, converter=_start_date
    )
    #: The IANA time zone of the times of day (``at``), e.g. ``"Asia/Tokyo"``; optional.
    time_zone: str | None = attrs.field(default=None, kw_only=True, converter=_time_zone)

    def __attrs_post_init__(self) -> None:
        if self.time_zone is not None and self.start_date is None:
            raise StepError("time_zone", "is given without a start_date (the date of plan day 0)")

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index: int) -> Step:
        return self.steps[index]

    def of_kind(self, kind: str) -> tuple[tuple[int, Step], ...]:
        """The ``(index, step)`` pairs whose ``kind`` is ``kind``."""
        return tuple((i, s) for i, s in enumerate(self.steps) if s.kind == kind)

    @property
    def last_day(self) -> int:
        """The last plan day on which any step starts, changes or ends (0 for a static
        regimen)."""
        last = 0
        for step in self.steps:
            last = max(last, step.start_day)
            for point in getattr(step, "titration", ()):
                last = max(last, point.day)
            if isinstance(step, RadiotherapyStep):
                last = max(last, step.last_day_of(self.start_date))
            else:
                end = getattr(step, "last_day", None)
                if end is not None:
                    last = max(last, end)
        return last

    def date_of(self, day: int) -> datetime.date | None:
        """The calendar date of plan ``day`` (``None`` without a ``start_date``).

        Example
        -------
        >>> import mps_analgesia as mps
        >>> mps.Regimen([], start_date="2026-12-07").date_of(7)
        datetime.date(2026, 12, 14)
        """
        if self.start_date is None:
            return None
        return self.start_date + datetime.timedelta(days=day)


@attrs.define(frozen=True)
class Case(Renderable):
    """A patient and the regimen to check for them, as read from a case file.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> case = mps.Case(mps.Patient(age=60), mps.Regimen([]))
    >>> mps.validate(case.regimen, case.patient).counts["flagged"]
    0
    """

    patient: Patient
    regimen: Regimen
    #: A display name (the file's ``name`` key, else its stem); not part of equality.
    name: str = attrs.field(default="", eq=False)
    #: The file's ``description`` (free text, kept through load and dump); not part of equality.
    description: str = attrs.field(default="", eq=False, kw_only=True)
