"""The rule engine: declared rules in a registry, three outcomes per rule × step, one Report.

A rule is a small declared object: its id (= the finding code), the step kinds it applies to,
the inputs it needs, its source ids, its severity policy, the data files it reads, and a check
function.  A check function is called once per applicable step (``scope="step"``) or once per
regimen (``scope="regimen"``, with ``index=None, step=None``) and returns one of:

- ``None``: the rule does not apply here (nothing is counted);
- :data:`PASSED`: checked, nothing to flag;
- :class:`Missing` (``Missing("weight")``): not checked, the missing input named;
- :class:`NoLimit` (``NoLimit("no ceiling dose", "source-id")``): not applicable, a sourced
  statement that no limit exists (never counted as passed);
- a :class:`~mps_analgesia.report.Finding`, or a list of them: flagged (an empty list = passed).

Rules compare canonical floats held by the steps and patient; nothing here touches pint.

Speed (``validate()`` of a 6-step regimen with every rule runs in tens of microseconds): the
engine works out once per registry and regimen :class:`Shape` (the steps' kinds and drugs) which
rule is called on which step, and a step check may declare with :func:`for_drugs` the drugs it
can apply to, so it is not called for the others.  Rule modules keep results that are pure
functions of immutable values (a step, the opioid steps of a regimen, a shape) in bounded memos,
and never a report: every call runs every applicable check, and a step edited between two calls
is checked afresh.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias, TypeVar

import attrs

from .. import _catalog, _datatext
from .._memo import IdentityMemo, Memo
from ..errors import UnknownNameError, expect
from ..patient import Patient
from ..regimen import Regimen
from ..report import Finding, NotChecked, Report, Severity
from ..report import NotApplicable as NotApplicableRecord

__all__ = [
    "PASSED",
    "Context",
    "Missing",
    "NoLimit",
    "Rule",
    "RuleRegistry",
    "Shape",
    "default_rules",
    "finding",
    "for_drugs",
    "kept",
    "rule",
    "shape_of",
    "validate",
]


class _Passed:
    __slots__ = ()

    def __repr__(self) -> str:
        return "PASSED"


#: Returned by a check that ran and found nothing to flag.
PASSED: Final = _Passed()


@attrs.define(frozen=True)
class Missing:
    """Returned by a check that could not run: ``missing`` names the input, ``reason`` says why."""

    missing: str
    reason: str = ""


@attrs.define(frozen=True)
class NoLimit:
    """Returned by a check for which no limit exists: a sourced statement, not a missing input.

    ``reason`` says why (``"a full opioid agonist has no ceiling dose"``); ``source`` is the id
    in ``data/sources.toml`` of the statement.  It is never counted as passed.
    """

    reason: str
    source: str = ""


CheckResult: TypeAlias = "Finding | Sequence[Finding] | Missing | NoLimit | _Passed | None"


@attrs.define
class Context:
    """What a check sees: the regimen, the patient, options, and a per-call cache.

    ``cache`` lets rules share derived values (the daily OME, the steps of one drug) so each is
    computed once per ``validate()`` call.
    """

    regimen: Regimen
    patient: Patient
    options: Mapping[str, Any] = attrs.field(factory=dict)
    cache: dict[str, Any] = attrs.field(factory=dict)

    def steps_of(self, kind: str) -> tuple[tuple[int, Any], ...]:
        """The ``(index, step)`` pairs of one step kind (cached)."""
        key = "kind:" + kind
        hit = self.cache.get(key)
        if hit is None:
            steps = self.regimen.steps
            indices = shape_of(self).kinds.get(kind, ())
            hit = self.cache[key] = tuple([(i, steps[i]) for i in indices])
        result: tuple[tuple[int, Any], ...] = hit
        return result


Signature: TypeAlias = "tuple[tuple[str, Any], ...]"


class Shape:
    """What the kinds and drugs of a regimen's steps alone determine, shared by every regimen
    of that shape (a change of dose keeps the shape).

    ``signature`` holds each step's ``(kind, drug)`` (``drug`` is ``None`` for a step without
    one); ``kinds`` the step indices of each kind; ``memo`` lets rule modules keep values that
    depend on the shape alone (bounded by the modules that use it).
    """

    __slots__ = ("kinds", "memo", "signature")

    def __init__(self, signature: Signature) -> None:
        self.signature: Signature = signature
        kinds: dict[str, list[int]] = {}
        for i, (kind, _) in enumerate(signature):
            group = kinds.get(kind)
            if group is None:
                kinds[kind] = [i]
            else:
                group.append(i)
        self.kinds: dict[str, tuple[int, ...]] = {k: tuple(v) for k, v in kinds.items()}
        self.memo: dict[Any, Any] = {}


_SHAPES: dict[Signature, Shape] = {}
_SHAPE_KEY: Final = "engine.shape"


def _signature(steps: Sequence[Any]) -> Signature:
    return tuple([(s.kind, getattr(s, "drug", None)) for s in steps])


def _shape(signature: Signature) -> Shape:
    hit = _SHAPES.get(signature)
    if hit is None:
        if len(_SHAPES) >= 1024:
            _SHAPES.clear()
        hit = _SHAPES[signature] = Shape(signature)
    return hit


def shape_of(ctx: Context) -> Shape:
    """The :class:`Shape` of the context's regimen (set by ``validate()``, else computed)."""
    hit = ctx.cache.get(_SHAPE_KEY)
    if hit is None:
        hit = ctx.cache[_SHAPE_KEY] = _shape(_signature(ctx.regimen.steps))
    result: Shape = hit
    return result


#: The bytes the outcomes kept per step object may take, all steps together.
KEPT_BYTES: Final = 4 << 20
#: What one kept outcome is reckoned to take (a key, a pointer, a shared or small value); a
#: kept finding adds its own size (:func:`grow_kept`).
KEPT_CELL_BYTES: Final = 256
_KEPT: Final = IdentityMemo("rules: outcomes kept per step object", KEPT_BYTES)
_KEPT_KEY: Final = "engine.kept"


def kept(ctx: Context, index: int | None) -> dict[Any, Any]:
    """Outcomes kept for the very step object at ``index`` (``None``: the regimen object)
    while it lives.

    Rules put here what depends only on the immutable step, or regimen (``step_outcomes``),
    keyed by what they are and the step's index.  The memo holds a weak reference to the step
    or regimen, never the object or its free text, and is bounded in bytes
    (:data:`KEPT_BYTES`); an object never seen before costs one empty dict, and no hashing.
    """
    cells: list[dict[Any, Any] | None] | None = ctx.cache.get(_KEPT_KEY)
    if cells is None:
        cells = ctx.cache[_KEPT_KEY] = [None] * (len(ctx.regimen.steps) + 1)
    hit = cells[index if index is not None else -1]
    if hit is None:
        step = ctx.regimen.steps[index] if index is not None else ctx.regimen
        entry = _KEPT.data.get(id(step))
        if entry is not None and entry[0]() is step:
            hit = entry[2]
        else:
            if not _KEPT_SIZE:
                _KEPT_SIZE.append(64 + KEPT_CELL_BYTES * len(default_rules()))
            hit = _KEPT.put(step, {}, _KEPT_SIZE[0])
        cells[index if index is not None else -1] = hit
    return hit


# What a step's kept outcomes are reckoned to take: one cell per default rule (worked out once).
_KEPT_SIZE: list[int] = []


def grow_kept(ctx: Context, index: int | None, nbytes: int) -> None:
    """Count ``nbytes`` more against the kept outcomes' bound (a kept finding's size)."""
    _KEPT.grow(ctx.regimen.steps[index] if index is not None else ctx.regimen, nbytes)


CheckFn: TypeAlias = Callable[[Context, "int | None", Any], Any]
CheckFnT = TypeVar("CheckFnT", bound=Callable[..., Any])


@attrs.define(frozen=True)
class Rule:
    """A declared clinical rule.

    Attributes
    ----------
    id:
        The stable finding code (``dose.max-daily``).
    title:
        A short human title.
    applies_to:
        The step kinds it checks (``("opioid", "adjuvant")``); ignored for regimen scope.
    needs:
        The inputs it needs (``("patient.weight",)``), for the documentation.
    sources:
        The source ids its logic rests on (a finding may add the source of its value).
    severity:
        The severity policy in words (``"error above the limit; warning if the limit is [U]"``).
    check:
        The check function (see the module docstring).
    scope:
        ``"step"`` (called per applicable step) or ``"regimen"`` (called once).
    data_files:
        The data files it reads; their editions are recorded in the report.
    description:
        What the rule checks, for ``docs/rules.md``.
    """

    id: str
    title: str
    applies_to: tuple[str, ...]
    needs: tuple[str, ...]
    sources: tuple[str, ...]
    severity: str
    check: CheckFn = attrs.field(eq=False, repr=False)
    scope: Literal["step", "regimen"] = "step"
    data_files: tuple[str, ...] = ()
    description: str = ""


def rule(
    id: str,
    *,
    title: str,
    applies_to: Sequence[str] = (),
    needs: Sequence[str] = (),
    sources: Sequence[str] = (),
    severity: str,
    scope: Literal["step", "regimen"] = "step",
    data_files: Sequence[str] = (),
    description: str = "",
) -> Callable[[CheckFn], Rule]:
    """Declare a rule around a check function (a decorator).

    ``title``, ``severity`` and ``description`` name a clinical number by where it lives,
    ``{file:key}`` (``"at least {methadone:titration.min_interval} apart"``), and the value is
    written in from ``data/`` here (:mod:`mps_analgesia._datatext`); a key that names no data
    value raises :class:`~mps_analgesia.errors.DataFileError`.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> @mps.rule("local.no-ketamine", title="No ketamine here", applies_to=["adjuvant"],
    ...           severity="warning")
    ... def no_ketamine(ctx, index, step):
    ...     if step.drug != "ketamine":
    ...         return mps.PASSED
    ...     return mps.finding("local.no-ketamine", "warning", "Ketamine is not on our formulary.",
    ...                        step=index)
    >>> rules = mps.default_rules().with_rules(no_ketamine)
    >>> reg = mps.Regimen([mps.AdjuvantStep(drug="ketamine", role="nmda", dose="10 mg",
    ...                                     every="8 h")])
    >>> [f.code for f in mps.validate(reg, rules=rules).warnings]
    ['local.no-ketamine']
    """

    def wrap(fn: CheckFn) -> Rule:
        # a {file:key} placeholder names a data value instead of restating it (_datatext)
        return Rule(
            id,
            _datatext.fill(title),
            tuple(applies_to),
            tuple(needs),
            tuple(sources),
            _datatext.fill(severity),
            fn,
            scope,
            tuple(data_files),
            _datatext.fill(description or (fn.__doc__ or "").strip()),
        )

    return wrap


def finding(
    code: str,
    severity: Severity,
    message: str,
    *,
    step: int | None = None,
    source: Iterable[str] = (),
    detail: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
    arithmetic: str = "",
    level: str = "V",
    kind: str | None = None,
    beyond: float | None = None,
) -> Finding:
    """Make a :class:`Finding`; a finding resting on a ``U`` value is turned into a warning.

    With ``kind`` (what the limit is: ``label-maximum``, ``contraindication``,
    ``guideline-caution``, ``usual-range``, ``library-guard``) the severity comes from the
    severity policy (``data/severity-policy.toml``) for that kind, ``level`` and ``beyond`` (the
    dose divided by the limit), and ``severity`` is ignored.
    """
    sources: tuple[str, ...] = tuple(source)
    if kind is not None:
        from . import _policy

        # A [U] value is judged as if verified; Finding then turns an error into a warning and
        # says why in the message.
        severity = _policy.severity(kind, "V" if level == "U" else level, beyond)
    return Finding(code, severity, message, step, sources, detail or {}, arithmetic, level)


@attrs.define(frozen=True)
class RuleRegistry:
    """An ordered, immutable set of rules.  Copy-on-write: ``disable`` and ``with_rules`` return
    a new registry, so the default one can be shared safely.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> rules = mps.default_rules().disable("dose.max-single")
    >>> "dose.max-single" in rules.ids
    False
    """

    rules: tuple[Rule, ...] = ()

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def ids(self) -> tuple[str, ...]:
        """The rule ids, in order."""
        return tuple(r.id for r in self.rules)

    def get(self, rule_id: str) -> Rule:
        """The rule with this id; :class:`UnknownNameError` with suggestions if there is none."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        import difflib

        raise UnknownNameError("rule", rule_id, difflib.get_close_matches(rule_id, self.ids))

    def disable(self, *rule_ids: str) -> RuleRegistry:
        """A registry without these rules; an unknown id raises (a typo must not go unnoticed)."""
        for rid in rule_ids:
            self.get(rid)
        drop = set(rule_ids)
        return RuleRegistry(tuple(r for r in self.rules if r.id not in drop))

    def with_rules(self, *new: Rule) -> RuleRegistry:
        """A registry with these rules added (a rule with an existing id replaces it)."""
        ids = {r.id for r in new}
        return RuleRegistry(tuple(r for r in self.rules if r.id not in ids) + tuple(new))


#: The modules under ``mps_analgesia.rules`` whose ``RULES`` make up the default registry.
RULE_MODULES: Final[tuple[str, ...]] = (
    "dose",
    "opioid",
    "methadone",
    "organ",
    "interactions",
    "block",
    "radiotherapy",
    "plausibility",
    "taper",
    "naive",
)

_DEFAULT: list[RuleRegistry] = []


def default_rules() -> RuleRegistry:
    """The library's rules, loaded on first use."""
    if not _DEFAULT:
        rules: list[Rule] = []
        for name in RULE_MODULES:
            module = importlib.import_module(f"mps_analgesia.rules.{name}")
            rules.extend(module.RULES)
        _DEFAULT.append(RuleRegistry(tuple(rules)))
    return _DEFAULT[0]


_EDITIONS: dict[tuple[str, ...], dict[str, str]] = {}


def _editions(files: tuple[str, ...]) -> dict[str, str]:
    hit = _EDITIONS.get(files)
    if hit is None:
        hit = _EDITIONS[files] = {f: _catalog.edition(f) for f in files}
    return hit


_DRUG_FILTER: Final = "_mps_applies_to_drug"


def for_drugs(test: Callable[[str], bool]) -> Callable[[CheckFnT], CheckFnT]:
    """Declare that a step check returns ``None`` (not applicable) for a step whose drug fails
    ``test``; ``validate()`` then does not call it for such steps.

    A dispatch hint only: the check must still return ``None`` itself for those steps, and
    ``test`` must depend on the drug id alone (and on data that does not change).
    """

    def mark(fn: CheckFnT) -> CheckFnT:
        setattr(fn, _DRUG_FILTER, test)
        return fn

    return mark


#: The targets of a regimen-scope rule: called once, with ``index=None, step=None``.
_REGIMEN: Final[tuple[None]] = (None,)


class _Plan:
    """What ``validate()`` needs of a registry, worked out once per rules tuple.

    ``entries`` holds ``(rule id, check, applies_to or None for regimen scope)``; ``layouts``
    maps a regimen :class:`Shape` (its steps' kinds and drugs) to the step indices each rule is
    called on, so dispatching a regimen of a known shape costs one dict lookup.
    """

    __slots__ = ("editions", "entries", "filters", "layouts", "rules")

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self.entries: tuple[tuple[str, CheckFn, tuple[str, ...] | None], ...] = tuple(
            (r.id, r.check, None if r.scope == "regimen" else r.applies_to) for r in rules
        )
        self.filters: tuple[Callable[[str], bool] | None, ...] = tuple(
            getattr(r.check, _DRUG_FILTER, None) for r in rules
        )
        self.layouts: dict[Shape, tuple[tuple[int | None, ...], ...]] = {}
        self.editions: dict[str, str] | None = None

    def layout(self, regimen_shape: Shape) -> tuple[tuple[int | None, ...], ...]:
        """For each rule, the indices of the steps it checks (``(None,)``: the regimen).

        A step is left out for a rule whose check declares (:func:`for_drugs`) that it does not
        apply to the step's drug.
        """
        hit = self.layouts.get(regimen_shape)
        if hit is None:
            shape = regimen_shape.signature
            by_kinds: dict[tuple[str, ...], tuple[int, ...]] = {}
            out: list[tuple[int | None, ...]] = []
            for (_, _, applies), test in zip(self.entries, self.filters, strict=True):
                if applies is None:
                    out.append(_REGIMEN)
                    continue
                idx = by_kinds.get(applies)
                if idx is None:
                    idx = by_kinds[applies] = tuple(
                        i for i, (kind, _) in enumerate(shape) if kind in applies
                    )
                if test is not None:
                    idx = tuple(i for i in idx if shape[i][1] is None or test(shape[i][1]))
                out.append(idx)
            if len(self.layouts) >= 512:
                self.layouts.clear()
            hit = self.layouts[regimen_shape] = tuple(out)
        return hit

    def data_editions(self) -> dict[str, str]:
        """The editions of the data files the rules read (``sources.toml`` first)."""
        if self.editions is None:
            files = ["sources.toml"]
            for r in self.rules:
                files.extend(r.data_files)
            self.editions = _editions(tuple(dict.fromkeys(files)))
        return self.editions


# The plan of a registry, by the identity of its rules tuple (kept alive with it, so an id is
# never reused while cached).
_PLANS: dict[int, _Plan] = {}


def _plan(rules: tuple[Rule, ...]) -> _Plan:
    hit = _PLANS.get(id(rules))
    if hit is None or hit.rules is not rules:
        if len(_PLANS) > 64:
            _PLANS.clear()
        hit = _PLANS[id(rules)] = _Plan(rules)
    return hit


def _registry_editions(rules: tuple[Rule, ...]) -> dict[str, str]:
    return _plan(rules).data_editions()


# (id of a registry's rules, rule ids left out) → (those rules, the registry without them), so
# validate(..., disable=[...]) called again reuses one registry (and its plan).
_DISABLED: dict[tuple[int, tuple[str, ...]], tuple[tuple[Rule, ...], RuleRegistry]] = {}


def _disabled(registry: RuleRegistry, disable: Iterable[str]) -> RuleRegistry:
    ids = tuple(disable)
    key = (id(registry.rules), ids)
    try:
        hit = _DISABLED.get(key)
    except TypeError:  # an unhashable id: disable() says what is wrong
        return registry.disable(*ids)
    if hit is None or hit[0] is not registry.rules:
        result = registry.disable(*ids)  # an unknown id raises here, every time
        if len(_DISABLED) >= 64:
            _DISABLED.clear()
        hit = _DISABLED[key] = (registry.rules, result)
    return hit[1]


# NotChecked records are immutable: one per (rule, step, missing, reason) is shared by every
# report that has it, which spares building the same record on each call.  Bounded in bytes; a
# reason longer than a sentence (one naming a long medicine name, say) is not kept.
_NOT_CHECKED: Final = Memo("rules: not-checked records", 1 << 20, max_text=512)


def _not_checked(rule_id: str, index: int | None, result: Missing) -> NotChecked:
    key = (rule_id, index, result.missing, result.reason)
    try:
        hit = _NOT_CHECKED.data.get(key)
    except TypeError:  # an unhashable missing/reason from a custom rule
        return NotChecked(rule_id, index, result.missing, result.reason)
    if hit is None:
        hit = NotChecked(rule_id, index, result.missing, result.reason)
        _NOT_CHECKED.put(key, hit, 160)
    return hit


_EMPTY_PATIENT: Final = Patient()


def validate(
    regimen: Regimen,
    patient: Patient | None = None,
    *,
    rules: RuleRegistry | None = None,
    disable: Iterable[str] = (),
    options: Mapping[str, Any] | None = None,
) -> Report:
    """Check a regimen for a patient; every rule × step is flagged, passed or not checked.

    Parameters
    ----------
    regimen:
        The steps to check.
    patient:
        The patient; ``None`` means nothing is known, so checks that need the patient report
        *not checked*.
    rules:
        The rule registry (default: :func:`default_rules`).
    disable:
        Rule ids to leave out of this call.
    options:
        Rule options, for example ``{"ome_table": "cdc-2016"}``; ``ome_table`` also takes a
        local table (:func:`mps_analgesia.load_table`), which the report's editions then name.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> case = mps.load_case("examples/mps-multimodal.toml")  # doctest: +SKIP
    >>> reg = mps.Regimen([mps.OpioidStep(drug="tramadol", dose="150 mg", every="6 h")])
    >>> report = mps.validate(reg, mps.Patient(age=70))
    >>> [(f.severity, f.code) for f in report.findings if f.code.startswith("dose.")]
    [('error', 'dose.max-single'), ('error', 'dose.max-daily')]
    """
    expect(regimen, Regimen, "regimen", "a Regimen, e.g. mps.Regimen([step, ...])")
    if patient is not None:
        expect(patient, Patient, "patient", "a Patient, e.g. mps.Patient(age=70), or None")
    registry = rules if rules is not None else default_rules()
    if disable:
        registry = _disabled(registry, disable)
    plan = _plan(registry.rules)
    steps = regimen.steps
    shape = _shape(_signature(steps))
    layout = plan.layouts.get(shape)
    if layout is None:
        layout = plan.layout(shape)
    ctx = Context(
        regimen,
        patient if patient is not None else _EMPTY_PATIENT,
        options or {},
        {_SHAPE_KEY: shape},
    )
    findings: list[Finding] = []
    passed: list[tuple[str, int | None]] = []
    not_checked: list[NotChecked] = []
    not_applicable: list[NotApplicableRecord] = []
    add_finding, add_passed, add_not_checked = findings.append, passed.append, not_checked.append
    for (rule_id, check, _), targets in zip(plan.entries, layout, strict=True):
        for index in targets:
            result = check(ctx, index, None if index is None else steps[index])
            if result is None:
                continue
            if result is PASSED:
                add_passed((rule_id, index))
                continue
            cls = result.__class__
            if cls is Finding:
                add_finding(result)
            elif cls is Missing:
                add_not_checked(_not_checked(rule_id, index, result))
            elif isinstance(result, Finding):
                add_finding(result)
            elif isinstance(result, Missing):
                add_not_checked(NotChecked(rule_id, index, result.missing, result.reason))
            elif isinstance(result, NoLimit):
                not_applicable.append(
                    NotApplicableRecord(rule_id, index, result.reason, result.source)
                )
            elif result:
                findings.extend(result)
            else:
                add_passed((rule_id, index))
    editions = plan.data_editions()
    if options and any(isinstance(v, _catalog.ConversionTable) for v in options.values()):
        editions = {**editions, **_catalog.local_editions(options.values())}  # a local table
    return Report(
        tuple(findings),
        tuple(passed),
        tuple(not_checked),
        editions,
        regimen,
        tuple(not_applicable),
    )
