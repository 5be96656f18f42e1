"""Small helpers shared by the rule modules: number display, tolerance comparison, the
per-call daily totals of each drug, and the memo helpers for outcomes that depend on a step."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final, TypeVar

from .. import _format
from ._engine import PASSED, Missing, Shape, shape_of

__all__ = [
    "DRUG_KINDS",
    "REL_TOL",
    "above",
    "below",
    "drug_total",
    "num",
    "rekey",
    "step_outcomes",
]

#: The step kinds that give a drug by mouth, patch or infusion (they have a ``drug`` and doses).
DRUG_KINDS: Final = ("opioid", "methadone_adjuvant", "adjuvant")

#: Relative tolerance for comparing converted floats (never compare them with ``==``).
REL_TOL: Final = 1e-9


def above(value: float, limit: float) -> bool:
    """True when ``value`` exceeds ``limit`` by more than rounding noise."""
    return value > limit * (1 + REL_TOL) + 1e-12


def below(value: float, limit: float) -> bool:
    """True when ``value`` is under ``limit`` by more than rounding noise."""
    return value < limit * (1 - REL_TOL) - 1e-12


#: The one number formatter (``_format.number``): whole numbers plain, else 4 significant digits.
num = _format.number


_TOTALS_KEY: Final = "drug.totals"
_DRUG_STEPS: Final = "util.drug-steps"


def _drug_steps(shape: Shape) -> dict[str, tuple[int, ...]]:
    """The indices of the drug steps giving each drug, by regimen shape."""
    hit: dict[str, tuple[int, ...]] | None = shape.memo.get(_DRUG_STEPS)
    if hit is None:
        groups: dict[str, list[int]] = {}
        for i, (kind, drug) in enumerate(shape.signature):
            if kind in DRUG_KINDS:
                groups.setdefault(drug, []).append(i)
        hit = shape.memo[_DRUG_STEPS] = {d: tuple(idx) for d, idx in groups.items()}
    return hit


def drug_total(ctx: Any, drug: str) -> tuple[float, list[tuple[int, Any]]]:
    """A drug's daily dose summed over the drug steps that give it, with those ``(index,
    step)`` pairs in order (computed once per ``validate()`` call and drug)."""
    totals: dict[str, tuple[float, list[tuple[int, Any]]]] | None = ctx.cache.get(_TOTALS_KEY)
    if totals is None:
        totals = ctx.cache[_TOTALS_KEY] = {}
    hit = totals.get(drug)
    if hit is None:
        steps = ctx.regimen.steps
        parts = [(i, steps[i]) for i in _drug_steps(shape_of(ctx))[drug]]
        total = 0.0
        for _, step in parts:
            total += step.daily_dose_mg
        hit = totals[drug] = (total, parts)
    return hit


_STEP_OUTCOMES_MAX: Final = 4096

CheckFn = Callable[[Any, "int | None", Any], Any]


def step_outcomes(check: CheckFn) -> CheckFn:
    """Keep a check's outcomes that depend on the step alone and are immutable values.

    For a check whose result is a function of the step only (not of its index, the patient or
    the other steps): ``None``, :data:`PASSED` and :class:`Missing` outcomes are kept per step
    (steps are immutable, hashable values; bounded), so an unchanged step costs one lookup.
    Findings are computed on every call.
    """
    memo: dict[Any, tuple[Any, Any]] = {}

    @functools.wraps(check)
    def wrapped(ctx: Any, index: int | None, step: Any) -> Any:
        hit = memo.get(step)
        if hit is not None:
            if hit[0] is not step:
                hit = rekey(memo, step, (step, hit[1]))
            return hit[1]
        result = check(ctx, index, step)
        if result is None or result is PASSED or isinstance(result, Missing):
            if len(memo) >= _STEP_OUTCOMES_MAX:
                memo.clear()
            memo[step] = (step, result)
        return result

    return wrapped


V = TypeVar("V")


def rekey(memo: dict[Any, V], key: Any, value: V) -> V:
    """Store ``value`` under ``key`` in place of the equal key already there.

    Memos keyed by steps find an equal step (one read from the same file again) through the
    steps' ``__eq__``, which compares every field; storing the entry again under the step in
    hand makes the next lookup with it an identity match.
    """
    memo.pop(key, None)  # (another thread may have done it already)
    memo[key] = value
    return value
