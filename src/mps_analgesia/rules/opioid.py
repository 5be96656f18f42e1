"""Opioid rules: breakthrough doses, fentanyl patches, duplicate long-acting opioids, the OME.

The daily oral morphine equivalent comes from :mod:`mps_analgesia.conversion` with the table
named by ``options["ome_table"]`` (default ``cdc-2022``) and the ``regular_only`` PRN policy; it
is computed once per ``validate()`` call and kept in ``ctx.cache``.

``opioid.breakthrough-missing`` (warning): a regular strong opioid and no PRN opioid step.
``opioid.breakthrough-dose`` (warning): a PRN dose outside the check window of the regular daily OME
(compared in OME, so a PRN of another drug is judged too).
``opioid.fentanyl-patch-not-tolerant`` (error): a fentanyl patch for a patient recorded as not
opioid tolerant, or, when tolerance is not recorded, whose other regular opioids come to less
than the FDA tolerance threshold (``data/rotation.toml``, [S]); with neither, *not checked*.
``opioid.duplicate-long-acting`` (warning): regular long-acting opioids of two different drugs at
once; ``methadone_adjuvant`` steps are exempt (that combination is the point of them).
``opioid.ome-total`` (info): the daily OME with its table and receipt; CDC 2016's MME/day
thresholds shown as information only, because CDC 2016 excluded palliative and end-of-life care.
"""

from __future__ import annotations

from typing import Any, Final

from .. import _catalog, conversion
from .._memo import Memo
from ._engine import PASSED, Context, Missing, Rule, Shape, finding, for_drugs, rule, shape_of
from ._util import above, below, measure, measure_range, num

__all__ = ["RULES"]

_OME_FILES: Final = (
    "ome-cdc-2022.toml",
    "ome-cdc-2016.toml",
    "ome-palliative.toml",
    "ome-anzca-2021.toml",
)


def _option(ctx: Context) -> Any:
    """The ``ome_table`` option as given: a table id or a (local) ``ConversionTable``."""
    return ctx.options.get("ome_table", conversion.DEFAULT_TABLE)


def _table(ctx: Context) -> str:
    """The cache key of the chosen table: its id, or for a table object its id and identity
    (a local table; every record keyed by it holds the table, so the identity is not reused)."""
    table = _option(ctx)
    if isinstance(table, _catalog.ConversionTable):
        return f"{table.id}@{id(table)}"
    return str(table)


class _Opioids:
    """The regular daily OME of a regimen's opioid steps under one table, with a memo of the
    rule results that depend on nothing else (the OME rules' findings).

    The regular-only OME depends only on the ``(index, step)`` pairs of the regular opioid and
    methadone_adjuvant steps and on where the PRN opioid steps are (index, drug, route: they are
    listed as left out), all immutable values, so one record is shared by every ``validate()``
    call with those steps: an edit of another step, or of a PRN dose, reuses it.
    """

    __slots__ = ("_level", "_sources", "_total", "memo", "ome", "table")

    def __init__(self, table: Any, ome: conversion.OmeResult) -> None:
        self.table = table
        self.ome = ome
        self.memo: dict[Any, Any] = {}
        self._level: str | None = None
        self._sources: tuple[str, ...] | None = None
        self._total: str | None = None

    @property
    def total(self) -> str:
        """The converted total as text, ``'231 MME/day'`` (computed once)."""
        if self._total is None:
            ome = self.ome
            self._total = _span(ome.low_mme_per_day, ome.high_mme_per_day, "MME/day")
        return self._total

    @property
    def level(self) -> str:
        """``ome.level``, computed once."""
        if self._level is None:
            self._level = self.ome.level
        return self._level

    @property
    def sources(self) -> tuple[str, ...]:
        """``ome.sources``, computed once."""
        if self._sources is None:
            self._sources = self.ome.sources
        return self._sources


# (table id, the canonical facts of each opioid and methadone_adjuvant step) → _Opioids:
# strings from closed vocabularies and floats, never a step (which may carry free text).
# Bounded in bytes; a record's size counts its receipt and the few findings its memo keeps.
_OPIOIDS: Final = Memo("rules.opioid: regular OME per regimen", 2 << 20)
_STATE_MEMO_MAX: Final = 8
_STATE_SIZE: Final = 4096 + _STATE_MEMO_MAX * 2048


def _by_index(pair: tuple[int, Any]) -> int:
    return pair[0]


def _facts(step: Any) -> tuple[Any, ...]:
    """What a step's regular-only OME depends on (``conversion._compute``): canonical values
    only; a PRN step is only listed as left out, so its dose is not part of it (a record is
    shared by PRN edits)."""
    if step.prn:
        return (step.kind, step.drug, step.route, True)
    return (step.kind, step.drug, step.route, step.dose_form, False, step.daily_dose_mg)


def _opioids(ctx: Context) -> _Opioids:
    """The :class:`_Opioids` record of this call's regimen and table (looked up once per call)."""
    table = _table(ctx)
    key = "opioid.ome:" + table
    hit = ctx.cache.get(key)
    if hit is None:
        # an unknown table raises here, as daily_ome() does
        tab = _catalog.conversion_table(_option(ctx))
        steps = ctx.regimen.steps
        indices = _opioid_indices(shape_of(ctx))
        sig = (table, indices, *[_facts(steps[i]) for i in indices])
        hit = _OPIOIDS.data.get(sig)
        if hit is None or hit.table is not tab:
            hit = _lookup(ctx, table, tab)
            # the key is canonical by construction (vocabulary ids, flags and doses)
            _OPIOIDS.put(sig, hit, _STATE_SIZE + 1024 * len(indices), key_bytes=512 * len(sig))
        ctx.cache[key] = hit
    result: _Opioids = hit
    return result


def _lookup(ctx: Context, table: str, tab: Any) -> _Opioids:
    """A new record: the regular-only OME of the opioid and methadone_adjuvant steps."""
    opioids, adjuvant = ctx.steps_of("opioid"), ctx.steps_of("methadone_adjuvant")
    # = daily_ome(ctx.regimen, table, "regular_only"): only these steps have an OME
    pairs = sorted((*opioids, *adjuvant), key=_by_index) if adjuvant else opioids
    ome = conversion.ome_of_steps(pairs, tab, "regular_only")
    return _Opioids(tab, ome)


_OPIOID_INDICES: Final = "opioid.indices"


def _opioid_indices(shape: Shape) -> tuple[int, ...]:
    """The indices of the opioid and methadone_adjuvant steps, in order (by regimen shape)."""
    hit: tuple[int, ...] | None = shape.memo.get(_OPIOID_INDICES)
    if hit is None:
        kinds = shape.kinds
        hit = shape.memo[_OPIOID_INDICES] = tuple(
            sorted((*kinds.get("opioid", ()), *kinds.get("methadone_adjuvant", ())))
        )
    return hit


def _ome(ctx: Context) -> conversion.OmeResult:
    """The regimen's regular daily OME under the chosen table (cached per validate call)."""
    return _opioids(ctx).ome


def _span(low: float, high: float, unit: str) -> str:
    if low == high or abs(low - high) <= 1e-9 * max(1.0, high):
        text = num(low)
    else:
        text = f"{num(low)}–{num(high)}"
    return f"{text} {unit}" if unit else text


_PERCENT_TEXTS: dict[float, str] = {}
_NUM_TEXTS: dict[float, str] = {}


def _percent(fraction: float) -> str:
    """``num(fraction * 100)`` of a data value (cached: a handful of values)."""
    hit = _PERCENT_TEXTS.get(fraction)
    if hit is None:
        hit = _PERCENT_TEXTS[fraction] = num(fraction * 100)
    return hit


def _num_of(value: float) -> str:
    """``num(value)`` of a data value (cached: a handful of values)."""
    hit = _NUM_TEXTS.get(value)
    if hit is None:
        hit = _NUM_TEXTS[value] = num(value)
    return hit


def _not_converted(result: conversion.OmeResult) -> str:
    return "; ".join(s.text for s in result.not_converted)


# ---- opioid.breakthrough-missing --------------------------------------------------------------


@rule(
    "opioid.breakthrough-missing",
    title="Regular strong opioid without a breakthrough dose",
    applies_to=("opioid",),
    needs=("regimen",),
    sources=("nccn-2011-breakthrough", "japan-morphine-label"),
    severity="warning",
    scope="regimen",
    data_files=("drugs.toml",),
    description="A regular (scheduled) strong opioid with no PRN opioid step for breakthrough "
    "pain.  Strong opioids are those marked strong_opioid in the drug catalog.",
)
def breakthrough_missing(ctx: Context, index: int | None, step: Any) -> Any:
    """Flag a regular strong opioid when the regimen has no PRN opioid step."""
    opioids = ctx.steps_of("opioid")
    strong = [(i, s) for i, s in opioids if not s.prn and _catalog.drug(s.drug).strong_opioid]
    if not strong:
        return None
    if any(s.prn for _, s in opioids):
        return PASSED
    first = strong[0][0]
    names = ", ".join(dict.fromkeys(f"{t.drug} (step {i + 1})" for i, t in strong))
    return finding(
        "opioid.breakthrough-missing",
        "warning",
        f"A regular strong opioid, {names}, has no PRN (breakthrough) opioid step; add an "
        "immediate-release rescue dose (see breakthrough_dose()).",
        step=first,
        source=("nccn-2011-breakthrough", "japan-morphine-label"),
        level="S",
        detail={"regular_strong_opioids": [i for i, _ in strong]},
    )


# ---- opioid.breakthrough-dose -----------------------------------------------------------------


@rule(
    "opioid.breakthrough-dose",
    title="Breakthrough dose outside "
    "{breakthrough:check_window.low}–{breakthrough:check_window.high} of the regular daily OME",
    applies_to=("opioid",),
    needs=("step.dose", "regimen.regular opioids"),
    sources=("nccn-2011-breakthrough", "japan-morphine-label"),
    severity="warning; error above twice {breakthrough:check_window.high} (a usual rule far "
    "exceeded: severity policy)",
    data_files=(*_OME_FILES, "breakthrough.toml", "severity-policy.toml"),
    description="A PRN opioid dose (the largest over its titration), converted to OME, below "
    "{breakthrough:check_window.low} (NCCN 2011) or above {breakthrough:check_window.high} "
    "(Japanese morphine label) of the regular daily OME of the opioid it replaces: the regular "
    "steps of the PRN's `rescue_for` drug, else of its own drug, else every regular opioid step; "
    "adjuvant methadone is left out (CDC 2022: its factor is not for dosing).  More than twice "
    "{breakthrough:check_window.high} is an error (severity policy).  Not checked when the table "
    "cannot convert the PRN drug or a regular opioid.",
)
def breakthrough_dose(ctx: Context, index: int | None, step: Any) -> Any:
    """Compare one PRN dose, in OME, with the regular daily OME."""
    if not step.prn:
        return None
    state = _opioids(ctx)
    # what the outcome depends on besides the record (which holds the regular opioids)
    key = (index, step.drug, step.route, step.dose_form, step.rescue_for, _largest_dose(step))
    memo = state.memo
    if key in memo:
        return memo[key]
    result = _breakthrough_dose(state, _table(ctx), index, step, _rescue_basis(ctx, step))
    if len(memo) >= _STATE_MEMO_MAX:
        memo.clear()
    memo[key] = result
    return result


def _largest_dose(step: Any) -> float | None:
    """The largest dose per administration over the titration (``None`` without one)."""
    doses = [step.dose_mg] if step.dose_mg is not None else []
    doses.extend(p.dose_mg for p in step.titration if p.dose_mg is not None)
    return max(doses) if doses else None


def _rescue_basis(ctx: Context, step: Any) -> tuple[Any, str]:
    """The regular daily OME a rescue dose is a fraction of, and how it was chosen.

    The regular doses of the opioid the rescue replaces: the PRN step's ``rescue_for`` drug, else
    its own drug, when a regular step gives it; otherwise every regular ``opioid`` step.
    Adjuvant methadone is left out (CDC 2022: its factor is not for dosing; conversion from
    methadone is one-way).
    """
    table = _table(ctx)
    target = getattr(step, "rescue_for", None) or step.drug
    regular = [(i, s) for i, s in ctx.steps_of("opioid") if not s.prn]
    same = [(i, s) for i, s in regular if s.drug == target]
    pairs = same or regular
    key = f"opioid.rescue-basis:{table}:" + ",".join(str(i) for i, _ in pairs)
    hit = ctx.cache.get(key)
    if hit is None:
        how = (
            f"the regular {target} steps"
            if same
            else "every regular opioid step (no regular step of the rescue's drug)"
        ) + "; adjuvant methadone left out"
        ome = _subset(_opioids(ctx).ome, pairs)
        if ome is None:
            ome = conversion.ome_of_steps(pairs, _option(ctx), "regular_only")
        hit = ctx.cache[key] = (ome, how)
    result: tuple[Any, str] = hit
    return result


def _subset(ome: conversion.OmeResult, pairs: Any) -> conversion.OmeResult | None:
    """``ome_of_steps(pairs)`` read off the regimen's regular OME, which holds every regular
    opioid step: the same lines, summed in the same order.  ``None`` when a step of ``pairs``
    has no line there, or a line whose factor depends on a drug total (a tier), which the
    subset could change: then it is computed."""
    lines = []
    for i, _ in pairs:
        for line in ome.lines:
            if line.step == i:
                break
        else:
            return None
        if line.basis == "tier":
            return None
        lines.append(line)
    low = high = 0.0
    for line in lines:
        low += line.ome_low
        high += line.ome_high
    return conversion.OmeResult(
        ome.table,
        ome.edition,
        "regular_only",
        tuple(lines),
        (),
        (),
        low,
        high,
        ome.title,
        ome.note,
        None,
    )


def _prn_dose(state: _Opioids, step: Any) -> tuple[float, float] | str:
    """The OME of one PRN dose (``conversion.single_dose_ome``), or why it has none: a few
    float operations on a dict lookup by drug, route and form, so it is not memoized."""
    return conversion.single_dose_ome(step, state.table)


def _breakthrough_dose(
    state: _Opioids, table: str, index: int | None, step: Any, basis: tuple[Any, str]
) -> Any:
    ome, basis_how = basis
    if not ome.lines and not ome.not_converted:
        if state.ome.lines:
            return Missing(
                "regular dose of the opioid the rescue replaces",
                "the only regular opioid is adjuvant methadone, which is not a basis for a "
                "rescue dose; name the regular opioid (rescue_for) or add its step",
            )
        return None  # no regular opioid: nothing to be a fraction of
    if ome.not_converted:
        return Missing(
            "OME of the regular opioids",
            f"{state.table.id} does not convert: {_not_converted(ome)}",
        )
    dose = _prn_dose(state, step)
    if isinstance(dose, str):
        return Missing("OME of the PRN dose", dose)
    low_win, high_win = conversion.breakthrough_window()
    prn_low, prn_high = dose
    regular_low, regular_high = ome.low_mme_per_day, ome.high_mme_per_day
    frac_low, frac_high = prn_low / regular_high, prn_high / regular_low
    if below(frac_high, low_win.value):
        which, sv, word, compare = "below", low_win, "low", "<"
    elif above(frac_low, high_win.value):
        which, sv, word, compare = "above", high_win, "high", ">"
    else:
        return PASSED
    prn_text = _span(prn_low, prn_high, "MME")
    fraction = _span(frac_low * 100, frac_high * 100, "%")
    compared = f"{fraction} {compare} {_percent(sv.value)} %"
    regular_text = _span(regular_low, regular_high, "MME/day")
    arithmetic = f"{prn_text} ÷ {regular_text} = {compared}"
    window = f"{_percent(low_win.value)}–{_percent(high_win.value)} %"

    def detail() -> dict[str, Any]:
        return {
            **measure_range("prn_dose_ome", prn_low, prn_high, "MME", prn_text),
            **measure_range("regular_ome", regular_low, regular_high, "MME/day", regular_text),
            **measure_range("fraction", frac_low * 100, frac_high * 100, "%", fraction),
            **measure_range("window", low_win.value * 100, high_win.value * 100, "%", window),
            "table": state.table.id,
            "edition": ome.edition,
            "basis": basis_how,
        }

    levels = _catalog.LEVELS
    return finding(
        "opioid.breakthrough-dose",
        "warning",
        # ``compared`` is the part of the arithmetic after its last " = "
        f"The PRN {step.drug} dose is {which} the usual breakthrough range of {window} of the "
        f"regular daily OME ({compared}); it looks too {word}.",
        step=index,
        source=(sv.source, *state.sources),
        level=levels[max(levels.index(sv.level), levels.index(state.level))],
        arithmetic=arithmetic,
        detail=detail,
        # above the window: a usual rule exceeded (far beyond it, an error: severity policy)
        kind="usual-range" if which == "above" else "guideline-caution",
        beyond=frac_low / high_win.value if which == "above" and high_win.value > 0 else None,
    )


# ---- opioid.fentanyl-patch-not-tolerant -------------------------------------------------------


def _other_ome(ctx: Context) -> conversion.OmeResult:
    table = _table(ctx)
    key = "opioid.ome-without-patches:" + table
    hit = ctx.cache.get(key)
    if hit is None:
        others: list[tuple[int, Any]] = [
            (i, s)
            for i, s in (*ctx.steps_of("opioid"), *ctx.steps_of("methadone_adjuvant"))
            if not s.prn and not (s.drug == "fentanyl" and s.route == "transdermal")
        ]
        others.sort(key=lambda pair: pair[0])
        hit = ctx.cache[key] = conversion.ome_of_steps(others, _option(ctx))
    result: conversion.OmeResult = hit
    return result


@rule(
    "opioid.fentanyl-patch-not-tolerant",
    title="Fentanyl patch for a patient who is not opioid tolerant",
    applies_to=("opioid",),
    needs=("patient.opioid_tolerant",),
    sources=("fda-opioid-tolerance",),
    severity="error",
    data_files=(*_OME_FILES, "rotation.toml"),
    description="A transdermal fentanyl patch when the patient is recorded as not opioid tolerant; "
    "when tolerance is not recorded, when the regimen's other regular opioids come to less than "
    "{rotation:opioid_tolerance} of oral morphine equivalent (FDA definition of opioid "
    "tolerance, [S]).  Not checked when neither is known.",
)
@for_drugs(lambda drug: drug == "fentanyl")
def fentanyl_patch_not_tolerant(ctx: Context, index: int | None, step: Any) -> Any:
    """Check opioid tolerance before a fentanyl patch."""
    if step.drug != "fentanyl" or step.route != "transdermal":
        return None
    threshold = conversion.tolerance_threshold()
    tolerant = ctx.patient.opioid_tolerant
    if tolerant is True:
        return PASSED
    if tolerant is False:
        return finding(
            "opioid.fentanyl-patch-not-tolerant",
            "error",
            "A fentanyl patch is for opioid-tolerant patients only, and this patient is recorded "
            f"as not opioid tolerant (tolerant: at least {num(threshold.value)} mg/day oral "
            "morphine equivalent for a week or longer).",
            step=index,
            source=(threshold.source,),
            level=threshold.level,
            detail={
                "opioid_tolerant": False,
                **measure("threshold", threshold.value, "MME/day"),
            },
        )
    others = _other_ome(ctx)
    if not others.lines and not others.not_converted:
        return Missing(
            "opioid tolerance",
            "patient.opioid_tolerant is not recorded and the regimen has no other regular opioid "
            "to judge it by",
        )
    low, high = others.low_mme_per_day, others.high_mme_per_day
    limit = threshold.value
    if not below(low, limit):
        return PASSED
    if others.not_converted:
        return Missing(
            "opioid tolerance",
            "patient.opioid_tolerant is not recorded and the other opioids cannot all be "
            f"converted: {_not_converted(others)}",
        )
    if not below(high, limit):
        return Missing(
            "opioid tolerance",
            f"patient.opioid_tolerant is not recorded and the other regular opioids come to "
            f"{_span(low, high, 'MME/day')}, a range across the {num(limit)} MME/day threshold",
        )
    terms = " + ".join(
        f"{line.drug} {num(line.dose)} {line.dose_unit} → {_span(line.ome_low, line.ome_high, '')}"
        for line in others.lines
    )
    return finding(
        "opioid.fentanyl-patch-not-tolerant",
        "error",
        "A fentanyl patch is for opioid-tolerant patients only: opioid tolerance is not "
        f"recorded and the other regular opioids come to {_span(low, high, 'MME/day')}, below "
        f"{num(limit)} MME/day ({others.table}).",
        step=index,
        source=(threshold.source, *others.sources),
        level=_catalog.LEVELS[
            max(_catalog.LEVELS.index(threshold.level), _catalog.LEVELS.index(others.level))
        ],
        arithmetic=f"{terms} = {_span(low, high, 'MME/day')} < {num(limit)} MME/day",
        detail={
            "opioid_tolerant": None,
            **measure_range("other_ome", low, high, "MME/day"),
            **measure("threshold", limit, "MME/day"),
            "table": others.table,
        },
    )


# ---- opioid.duplicate-long-acting -------------------------------------------------------------


@rule(
    "opioid.duplicate-long-acting",
    title="Two regular long-acting opioids at once",
    applies_to=("opioid",),
    needs=("regimen",),
    sources=(),
    severity="warning",
    scope="regimen",
    data_files=("drugs.toml",),
    description="Regular long-acting opioids (modified-release, patch, or methadone as the main "
    "opioid) of two or more different drugs at once.  methadone_adjuvant steps are exempt: "
    "adding methadone to the opioid is the point of them.  Steps of the same drug (a dose made "
    "of two strengths) are not a duplicate.",
)
def duplicate_long_acting(ctx: Context, index: int | None, step: Any) -> Any:
    """Flag regular long-acting opioids of two different drugs."""
    opioids = ctx.steps_of("opioid")
    if not opioids:
        return None
    first: dict[str, int] = {}
    for i, s in opioids:
        if not s.prn and s.is_long_acting:
            first.setdefault(s.drug, i)
    if len(first) < 2:
        return PASSED
    items = list(first.items())
    names = " and ".join(f"{d} (step {i + 1})" for d, i in items)
    return finding(
        "opioid.duplicate-long-acting",
        "warning",
        f"Two regular long-acting opioids at once: {names}.  Use one long-acting opioid, or "
        "say why (adjuvant methadone belongs in a methadone_adjuvant step).",
        step=items[1][1],
        source=(),
        level="U",
        detail={"steps": [i for _, i in items], "drugs": [d for d, _ in items]},
    )


# ---- opioid.ome-total -------------------------------------------------------------------------


@rule(
    "opioid.ome-total",
    title="Daily oral morphine equivalent",
    applies_to=("opioid", "methadone_adjuvant"),
    needs=("regimen",),
    sources=("cdc-2022", "cdc-2016"),
    severity="info",
    scope="regimen",
    data_files=_OME_FILES,
    description="The regimen's regular daily oral morphine equivalent with its table, edition and "
    "receipt (PRN doses excluded), and the steps the table cannot convert.  CDC 2016's "
    "{ome-cdc-2016:thresholds.reassess!n} and {ome-cdc-2016:thresholds.avoid} thresholds are shown "
    "as information only: CDC 2016 excluded palliative and end-of-life care.",
)
def ome_total(ctx: Context, index: int | None, step: Any) -> Any:
    """Report the daily OME of the regular opioids, with the table it came from."""
    if not ctx.steps_of("opioid") and not ctx.steps_of("methadone_adjuvant"):
        return None
    state = _opioids(ctx)
    memo = state.memo
    if "opioid.ome-total" in memo:
        return memo["opioid.ome-total"]
    result = memo["opioid.ome-total"] = _ome_total(state, ctx.regimen.steps)
    return result


def _ome_total(state: _Opioids, steps: Any = ()) -> Any:
    ome = state.ome
    if not ome.lines and not ome.not_converted:
        return None  # PRN only: no regular OME to report
    if not ome.lines:
        # nothing could be converted: there is no total, and it is never shown as 0
        return finding(
            "opioid.ome-total",
            "info",
            f"Regular daily oral morphine equivalent: not converted ({ome.table}, regular doses "
            f"only): {_not_converted(ome)}.",
            source=tuple(dict.fromkeys(s.source for s in ome.not_converted if s.source)),
            level=state.level,
            detail=lambda: {
                "table": ome.table,
                "edition": ome.edition,
                "prn": ome.prn,
                "total_low": None,
                "total_high": None,
                "total_unit": _catalog.ucum_code("MME/day"),
                "total_text": None,
                "receipt": list(ome.receipt),
                "not_converted": [s.text for s in ome.not_converted],
            },
        )
    total = state.total
    if ome.not_converted:
        total += " (partial)"
    message = f"Regular daily oral morphine equivalent: {total} ({ome.table}, regular doses only)"
    if ome.not_converted:
        message += f", NOT counting {_not_converted(ome)}"
    message += "."
    crossed = [t for t in conversion.mme_thresholds() if not below(ome.high_mme_per_day, t.value)]
    if crossed:
        t = crossed[-1]
        where = "At or above" if not below(ome.low_mme_per_day, t.value) else "The range reaches"
        message += (
            f"  {where} CDC 2016's {_num_of(t.value)} MME/day threshold ({t.note}): shown "
            "for information only, because CDC 2016 excluded palliative and end-of-life care."
        )
    terms = " + ".join(
        f"{'adjuvant ' if line.kind == 'methadone_adjuvant' else ''}{line.drug} "
        f"{_span(line.ome_low, line.ome_high, '')}"
        for line in ome.lines
    )
    sources = (*state.sources, *(t.source for t in crossed))
    return finding(
        "opioid.ome-total",
        "info",
        message,
        source=tuple(dict.fromkeys(sources)),
        level=state.level,
        arithmetic=(f"{terms} = {total}" + _adjuvant_methadone_apart(ome, steps))
        if ome.lines
        else "",
        detail=lambda: {
            "table": ome.table,
            "edition": ome.edition,
            "prn": ome.prn,
            **measure_range("total", ome.low_mme_per_day, ome.high_mme_per_day, "MME/day", total),
            "receipt": list(ome.receipt),
            "not_converted": [s.text for s in ome.not_converted],
            "cdc_thresholds": [t.value for t in conversion.mme_thresholds()],
            "cdc_thresholds_unit": _catalog.ucum_code("MME/day"),
            "cdc_thresholds_text": [f"{num(t.value)} MME/day" for t in conversion.mme_thresholds()],
        },
    )


def _adjuvant_methadone_apart(ome: conversion.OmeResult, steps: Any) -> str:
    """The adjuvant methadone share of the total, shown apart: its factor is not for dosing
    (with the day of each titrated step's peak, the dose the table converts)."""
    lines = [line for line in ome.lines if line.kind == "methadone_adjuvant"]
    if not lines:
        return ""
    low = sum(line.ome_low for line in lines)
    high = sum(line.ome_high for line in lines)

    def peak(line: Any) -> str:
        step = steps[line.step] if 0 <= line.step < len(steps) else None
        if step is None or not getattr(step, "titration", ()):
            return ""
        return f", peak from day {step.peak_day}"

    terms = " + ".join(
        f"{num(line.dose)} {line.dose_unit} × {_span(line.factor_low, line.factor_high, '')}"
        f"{peak(line)}"
        for line in lines
    )
    rest = _span(ome.low_mme_per_day - low, ome.high_mme_per_day - high, "MME/day")
    return (
        f"; adjuvant methadone not converted for dosing (CDC 2022: the calculated MME must not "
        f"choose a dose): {_span(low, high, 'MME/day')} from {terms}; without it, {rest}"
    )


RULES: tuple[Rule, ...] = (
    breakthrough_missing,
    breakthrough_dose,
    fentanyl_patch_not_tolerant,
    duplicate_long_acting,
    ome_total,
)
