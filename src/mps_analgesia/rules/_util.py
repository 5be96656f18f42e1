"""Small helpers shared by the rule modules: number display, tolerance comparison, the
per-call daily totals of each drug, and the memo helpers for outcomes that depend on a step."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, Final, TypeVar

from .. import _catalog, _format
from ..report import Finding
from ._engine import (
    KEPT_CELL_BYTES,
    PASSED,
    Missing,
    NoLimit,
    Shape,
    grow_kept,
    kept,
    shape_of,
)

__all__ = [
    "DRUG_KINDS",
    "NOT_KEPT",
    "REL_TOL",
    "above",
    "below",
    "drug_total",
    "keep",
    "kept_outcome",
    "measure",
    "measure_range",
    "num",
    "outcome_size",
    "rekey",
    "step_outcomes",
    "suggested_dose",
    "suggested_dose_within_daily",
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


def measure(name: str, value: float, unit: str, text: str | None = None) -> dict[str, Any]:
    """The detail items of one number: ``name`` (a float), ``name_unit`` (its UCUM code) and
    ``name_text`` (the display text, by default the number and the library unit).

    Example
    -------
    >>> measure("limit", 4000, "mg/day")
    {'limit': 4000.0, 'limit_unit': 'mg/d', 'limit_text': '4000 mg/day'}
    """
    return {
        name: float(value),
        f"{name}_unit": _catalog.ucum_code(unit),
        f"{name}_text": f"{num(value)} {unit}" if text is None else text,
    }


def measure_range(
    name: str, low: float, high: float, unit: str, text: str | None = None
) -> dict[str, Any]:
    """The detail items of a range: ``name_low``, ``name_high`` (floats), ``name_unit`` (UCUM)
    and ``name_text``.

    Example
    -------
    >>> measure_range("range", 15, 30, "mg/day")["range_text"]
    '15–30 mg/day'
    """
    return {
        f"{name}_low": float(low),
        f"{name}_high": float(high),
        f"{name}_unit": _catalog.ucum_code(unit),
        f"{name}_text": _format.span(low, high, unit) if text is None else text,
    }


def suggested_dose(step: Any, target_mg: float) -> dict[str, Any]:
    """The reduced dose per administration to suggest for a dose finding on ``step``.

    ``target_mg`` is the largest dose the finding allows (a per-dose limit, or a daily limit
    divided by the doses per day).  The dose is rounded *down* to a sum of the product strengths
    of ``data/strengths.toml`` (or a multiple of its measuring increment); without a product on
    file it is offered only when ``target_mg`` is itself a whole number of mg.  Returns the items
    ``suggested_dose`` (mg, a float), ``suggested_dose_unit`` (``'mg'``), ``suggested_dose_text``
    and ``suggested_dose_basis`` (how it is made up), or ``{}`` when no dose can be suggested
    (a continuous or titrated step, no dose to lower, or nothing dispensable below the target).
    """
    if (
        step.is_continuous
        or getattr(step, "titration", ())
        or step.dose_mg is None
        or not (target_mg > 0 and math.isfinite(target_mg))
    ):
        return {}
    product = _catalog.product(step.drug, step.route, step.formulation)
    if product is not None:
        if product.unit != "mg":
            return {}
        got = product.round_down(target_mg)
        if got is None:
            return {}
        amount, parts = got
        if product.increment:
            basis = f"in steps of {num(product.increment)} mg ({product.formulation})"
        else:
            basis = " + ".join(f"{n} × {num(s)} mg" for s, n in parts)
            basis = f"{basis} {product.formulation}"
    else:
        amount = float(round(target_mg))
        if amount < 1 or abs(target_mg - amount) > REL_TOL * max(1.0, target_mg):
            return {}
        basis = "the limit itself; no product strengths are on file for this drug"
    if not amount < step.dose_mg * (1 - REL_TOL):
        return {}
    return {**measure("suggested_dose", amount, "mg"), "suggested_dose_basis": basis}


def suggested_dose_within_daily(step: Any, daily_limit_mg: float) -> dict[str, Any]:
    """:func:`suggested_dose` for a daily limit: the limit divided by the step's doses per day
    (``{}`` for a step without a countable number of doses per day)."""
    per_day = None if step.is_continuous else step.doses_per_day
    if not per_day or not math.isfinite(per_day):
        return {}
    return suggested_dose(step, daily_limit_mg / per_day)


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


CheckFn = Callable[[Any, "int | None", Any], Any]


def outcome_size(result: Any) -> int | None:
    """The bytes a kept outcome adds beyond its cell (:data:`KEPT_CELL_BYTES`): ``None``,
    :data:`PASSED`, and a :class:`Missing` or :class:`NoLimit` whose texts fit the cell
    nothing; a longer one its texts; a finding its texts and details (``None``: not kept, a
    value too large or not immutable)."""
    if result is None or result is PASSED:
        return 0
    cls = result.__class__
    if cls is Missing or cls is NoLimit:
        first, second = (
            (result.missing, result.reason) if cls is Missing else (result.reason, result.source)
        )
        if first.__class__ is not str or second.__class__ is not str:
            return None
        texts = len(first) + len(second)
        if texts > 4096:
            return None
        return 0 if texts <= _CELL_TEXT else 2 * texts
    if cls is Finding:
        return _finding_size(result)
    if cls is list and len(result) <= 8 and all(f.__class__ is Finding for f in result):
        sizes = [_finding_size(f) for f in result]
        return None if None in sizes else sum(s for s in sizes if s is not None)
    return None


#: The characters of text an outcome may hold within its cell.
_CELL_TEXT: Final = (KEPT_CELL_BYTES - 96) // 2


def _finding_size(f: Finding) -> int | None:
    if not isinstance(f.detail, dict):  # a detail still to build may hold anything
        return None
    texts = len(f.message) + len(f.arithmetic)
    if texts > 8192:
        return None
    return 1024 + 2 * texts + 128 * len(f.detail)


def step_outcomes(check: CheckFn) -> CheckFn:
    """Keep a check's outcomes that depend on the step alone (immutable values).

    For a check whose result is a function of the step only (not of the patient or the other
    steps): its outcomes (``None``, :data:`PASSED`, :class:`Missing`, findings) are kept for
    the very step object at that index (:func:`~mps_analgesia.rules._engine.kept`: a weak
    reference, never the step and its free text; bounded in bytes), so validating an unchanged
    step again costs one lookup, and a step never seen before costs no hashing.
    """

    @functools.wraps(check)
    def wrapped(ctx: Any, index: int | None, step: Any) -> Any:
        if index is None:  # not a step check: nothing to keep
            return check(ctx, index, step)
        key = (wrapped, index)  # the same step object may stand at two places
        hit = kept(ctx, index).get(key, _MISSING)
        if hit is not _MISSING:
            return hit
        return keep(ctx, index, key, check(ctx, index, step), reckoned=True)

    return wrapped


_MISSING: Final = object()

#: What :func:`kept_outcome` returns when nothing is kept.
NOT_KEPT: Final = _MISSING


def kept_outcome(ctx: Any, index: int | None, key: Any) -> Any:
    """The outcome kept under ``key`` for the step object at ``index`` (``None``: the regimen
    object), else :data:`NOT_KEPT`.

    ``key`` names the check and what else the outcome depends on (canonical values: the
    patient's weight, say), never the step.
    """
    return kept(ctx, index).get(key, _MISSING)


def keep(ctx: Any, index: int | None, key: Any, result: Any, *, reckoned: bool = False) -> Any:
    """Keep ``result`` under ``key`` for the step object at ``index`` when it is an immutable
    outcome of a bounded size (see :func:`outcome_size`); return it either way.

    ``reckoned``: the entry itself is one of the cells the step's memo was sized for (one per
    rule), so only a finding's own size is added to the bound.
    """
    size = outcome_size(result)
    if size is not None:
        kept(ctx, index)[key] = result
        if not reckoned:
            size += KEPT_CELL_BYTES
        if size:
            grow_kept(ctx, index, size)
    return result


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
