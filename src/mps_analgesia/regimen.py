"""A regimen (the steps for one patient over days) and a case (a patient with a regimen)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from ._repr import Renderable
from .errors import StepError
from .patient import Patient
from .steps import STEP_KINDS, Step

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
        """The last plan day on which any step starts or changes (0 for a static regimen)."""
        last = 0
        for step in self.steps:
            last = max(last, step.start_day)
            for point in getattr(step, "titration", ()):
                last = max(last, point.day)
        return last


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
