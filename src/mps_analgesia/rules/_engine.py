"""The rule engine: declared rules in a registry, three outcomes per rule × step, one Report.

A rule is a small declared object: its id (= the finding code), the step kinds it applies to,
the inputs it needs, its source ids, its severity policy, the data files it reads, and a check
function.  A check function is called once per applicable step (``scope="step"``) or once per
regimen (``scope="regimen"``, with ``index=None, step=None``) and returns one of:

- ``None``: the rule does not apply here (nothing is counted);
- :data:`PASSED`: checked, nothing to flag;
- :class:`Missing` (``Missing("weight")``): not checked, the missing input named;
- a :class:`~mps_analgesia.report.Finding`, or a list of them: flagged (an empty list = passed).

Rules compare canonical floats held by the steps and patient; nothing here touches pint.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias

import attrs

from .. import _catalog
from ..errors import UnknownNameError
from ..patient import Patient
from ..regimen import Regimen
from ..report import Finding, NotChecked, Report, Severity

__all__ = [
    "PASSED",
    "Context",
    "Missing",
    "Rule",
    "RuleRegistry",
    "default_rules",
    "finding",
    "rule",
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


CheckResult: TypeAlias = "Finding | Sequence[Finding] | Missing | _Passed | None"


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
            hit = self.cache[key] = self.regimen.of_kind(kind)
        result: tuple[tuple[int, Any], ...] = hit
        return result


CheckFn: TypeAlias = Callable[[Context, "int | None", Any], Any]


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
        return Rule(
            id,
            title,
            tuple(applies_to),
            tuple(needs),
            tuple(sources),
            severity,
            fn,
            scope,
            tuple(data_files),
            description or (fn.__doc__ or "").strip(),
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
) -> Finding:
    """Make a :class:`Finding`; a finding resting on a ``U`` value is turned into a warning."""
    sources: tuple[str, ...] = tuple(source)
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


# The editions a registry's rules read, by the identity of its rules tuple (kept alive with it,
# so an id is never reused while cached); saves rebuilding the file list on every call.
_REGISTRY_EDITIONS: dict[int, tuple[tuple[Rule, ...], dict[str, str]]] = {}


def _registry_editions(rules: tuple[Rule, ...]) -> dict[str, str]:
    hit = _REGISTRY_EDITIONS.get(id(rules))
    if hit is None or hit[0] is not rules:
        files = ["sources.toml"]
        for r in rules:
            files.extend(r.data_files)
        if len(_REGISTRY_EDITIONS) > 64:
            _REGISTRY_EDITIONS.clear()
        hit = _REGISTRY_EDITIONS[id(rules)] = (rules, _editions(tuple(dict.fromkeys(files))))
    return hit[1]


_REGIMEN_TARGETS: Final[tuple[tuple[None, None], ...]] = ((None, None),)


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
        Rule options, for example ``{"ome_table": "cdc-2016"}``.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> case = mps.load_case("examples/mps-multimodal.toml")  # doctest: +SKIP
    >>> reg = mps.Regimen([mps.OpioidStep(drug="tramadol", dose="150 mg", every="6 h")])
    >>> report = mps.validate(reg, mps.Patient(age=70))
    >>> [(f.severity, f.code) for f in report.findings if f.code.startswith("dose.")]
    [('error', 'dose.max-single'), ('error', 'dose.max-daily')]
    """
    registry = rules if rules is not None else default_rules()
    if disable:
        registry = registry.disable(*disable)
    ctx = Context(regimen, patient if patient is not None else _EMPTY_PATIENT, options or {})
    findings: list[Finding] = []
    passed: list[tuple[str, int | None]] = []
    not_checked: list[NotChecked] = []
    steps = regimen.steps
    # the (index, step) pairs of each applies_to tuple, computed once per call
    by_kinds: dict[tuple[str, ...], list[tuple[int, Any]]] = {}
    for r in registry.rules:
        targets: Iterable[tuple[int | None, Any]]
        if r.scope == "regimen":
            targets = _REGIMEN_TARGETS
        else:
            kinds = r.applies_to
            hit = by_kinds.get(kinds)
            if hit is None:
                hit = by_kinds[kinds] = [(i, s) for i, s in enumerate(steps) if s.kind in kinds]
            targets = hit
        check = r.check
        for index, step in targets:
            result = check(ctx, index, step)
            if result is None:
                continue
            if result is PASSED:
                passed.append((r.id, index))
            elif isinstance(result, Finding):
                findings.append(result)
            elif isinstance(result, Missing):
                not_checked.append(NotChecked(r.id, index, result.missing, result.reason))
            elif result:
                findings.extend(result)
            else:
                passed.append((r.id, index))
    return Report(
        tuple(findings),
        tuple(passed),
        tuple(not_checked),
        _registry_editions(registry.rules),
        regimen,
    )
