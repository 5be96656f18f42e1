"""Drug interactions between the steps of a regimen and the patient's other medicines.

``interaction.opioid-benzodiazepine``: an opioid (or methadone) step with a benzodiazepine, as a
step or among ``patient.medications``.
``interaction.serotonergic``: tramadol or methadone with an SSRI, SNRI, tricyclic or MAOI.
``interaction.duplicate-class``: two different NSAIDs, or two different gabapentinoids, among the
steps and the patient's medicines (at least one of them a step).

The drug lists live in ``data/interactions.toml``.  This module also resolves medicine names to
drug classes for ``methadone.interaction`` (:func:`parties`).  A medicine the library does not
know cannot be ruled out: when nothing is flagged, such a check is *not checked*, naming it.
Medicines that are not recorded (``patient.medications is None``) cannot be ruled out either:
the check is *not checked* with ``medications`` named; ``[]`` records that the patient takes
none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache, lru_cache
from typing import Any, Final

import attrs

from .. import _catalog
from .._memo import MAX_KEY_TEXT, Memo
from ..errors import DataFileError
from ._engine import PASSED, Context, Missing, Rule, finding, rule, shape_of

__all__ = [
    "RULES",
    "Party",
    "drug_class_label",
    "memoized",
    "not_recorded",
    "not_ruled_out",
    "outcome",
    "parties",
    "resolve_medication",
    "tables",
    "unverified_note",
]


_FILE: Final = "interactions.toml"
_DRUG_KINDS: Final = ("opioid", "methadone_adjuvant", "adjuvant")
_OPIOID_KINDS: Final = ("opioid", "methadone_adjuvant")


# ---- tables --------------------------------------------------------------------------------------


@attrs.define(frozen=True)
class DrugClass:
    """A drug class of the interaction tables: id, human label, and the source of its list."""

    id: str
    label: str
    source: str
    level: str
    note: str = ""


@attrs.define(frozen=True)
class MethadoneInteraction:
    """One entry of the methadone interaction list: the drugs and classes it covers and why."""

    id: str
    role: str
    drugs: frozenset[str]
    classes: frozenset[str]
    effect: str
    source: str
    level: str
    note: str = ""

    def matches(self, party: Party) -> bool:
        """True when ``party`` is one of the entry's drugs or belongs to one of its classes."""
        return party.drug in self.drugs or not self.classes.isdisjoint(party.classes)


@attrs.define(frozen=True)
class ClassInteraction:
    """An interaction statement about a class (or a class pair) with its source and level."""

    classes: frozenset[str]
    effect: str
    sources: tuple[str, ...]
    level: str
    note: str = ""


@attrs.define(frozen=True)
class Tables:
    """The parsed ``data/interactions.toml``."""

    classes: Mapping[str, DrugClass]
    names: Mapping[str, tuple[str, frozenset[str]]]
    methadone: tuple[MethadoneInteraction, ...]
    opioid_benzodiazepine: ClassInteraction
    serotonergic_classes: frozenset[str]
    serotonergic_effect: str
    serotonergic_opioids: Mapping[str, ClassInteraction]
    duplicate_class: tuple[tuple[str, ClassInteraction], ...]


def _where(*path: object) -> str:
    return f"{_FILE}: " + ".".join(str(p) for p in path)


def _str(entry: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = entry.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise DataFileError(f"{where}: {key!r} must be a non-empty text, not {value!r}")
    return value


def _names(entry: Mapping[str, Any], key: str, where: str) -> frozenset[str]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise DataFileError(f"{where}: {key!r} must be a list of names")
    return frozenset(_norm(v) for v in value)


def _source(entry: Mapping[str, Any], where: str) -> tuple[str, str]:
    sid = entry.get("source")
    if not isinstance(sid, str) or sid not in _catalog.sources():
        raise DataFileError(f"{where}: 'source' {sid!r} is not an id in sources.toml")
    also = entry.get("also", ())
    for extra in [also] if isinstance(also, str) else also:
        if extra not in _catalog.sources():
            raise DataFileError(f"{where}: 'also' {extra!r} is not an id in sources.toml")
    return sid, _catalog.level_of(entry, where)


def _class_interaction(
    entry: Mapping[str, Any], where: str, classes: frozenset[str], known: Iterable[str]
) -> ClassInteraction:
    sid, level = _source(entry, where)
    unknown = classes - set(known)
    if unknown:
        raise DataFileError(f"{where}: unknown class(es) {sorted(unknown)}; add them to [classes]")
    also = entry.get("also", [])
    if isinstance(also, str):
        also = [also]
    return ClassInteraction(
        classes,
        _str(entry, "effect", where, required=False),
        (sid, *also),
        level,
        str(entry.get("note", "")),
    )


def _norm(name: str) -> str:
    return " ".join(name.casefold().split())


@cache
def tables() -> Tables:
    """Read ``data/interactions.toml`` once and check its shape (:class:`DataFileError`).

    Example
    -------
    >>> t = tables()
    >>> sorted(t.names["amitriptyline"][1]), t.methadone[0].role
    (['tca'], 'CYP inhibitor')
    """
    raw = _catalog.data_file(_FILE)
    classes: dict[str, DrugClass] = {}
    names: dict[str, tuple[str, frozenset[str]]] = {}

    def add(name: str, canonical: str, cls: Iterable[str]) -> None:
        key = _norm(name)
        old = names.get(key)
        if old is None:
            names[key] = (canonical, frozenset(cls))
        else:
            names[key] = (old[0], old[1] | frozenset(cls))

    for did in _catalog.drug_ids():
        record = _catalog.drug(did)
        for name in (did, *record.names):
            add(name, did, (record.drug_class,))
    for cid, entry in raw.get("classes", {}).items():
        where = _where("classes", cid)
        sid, level = _source(entry, where)
        classes[cid] = DrugClass(
            cid, _str(entry, "label", where), sid, level, str(entry.get("note", ""))
        )
        for member in _names(entry, "members", where):
            canonical = names[member][0] if member in names else member
            add(member, canonical, (cid,))
    methadone: list[MethadoneInteraction] = []
    for i, entry in enumerate(raw.get("methadone", ())):
        where = _where(f"methadone[{i}]")
        sid, level = _source(entry, where)
        drugs = _names(entry, "drugs", where)
        cls = _names(entry, "classes", where)
        if cls - set(classes):
            raise DataFileError(f"{where}: unknown class(es) {sorted(cls - set(classes))}")
        if not drugs and not cls:
            raise DataFileError(f"{where}: give 'drugs' or 'classes'")
        for d in drugs:
            add(d, names[d][0] if d in names else d, ())
        methadone.append(
            MethadoneInteraction(
                _str(entry, "id", where),
                _str(entry, "role", where),
                frozenset(names[d][0] for d in drugs),
                cls,
                _str(entry, "effect", where),
                sid,
                level,
                str(entry.get("note", "")),
            )
        )
    try:
        benzo_raw = raw["opioid_benzodiazepine"]
        sero_raw = raw["serotonergic"]
        dup_raw = raw["duplicate_class"]
    except KeyError as exc:
        raise DataFileError(f"{_FILE}: the table {exc.args[0]!r} is missing") from None
    benzo = _class_interaction(
        benzo_raw, _where("opioid_benzodiazepine"), _names(benzo_raw, "classes", _FILE), classes
    )
    sero_classes = _names(sero_raw, "classes", _where("serotonergic"))
    sero_opioids = {
        _catalog.drug(name).id: _class_interaction(
            entry, _where("serotonergic.opioids", name), sero_classes, classes
        )
        for name, entry in sero_raw.get("opioids", {}).items()
    }
    duplicates = []
    for i, entry in enumerate(dup_raw):
        where = _where(f"duplicate_class[{i}]")
        cid = _str(entry, "class", where)
        duplicates.append((cid, _class_interaction(entry, where, frozenset((cid,)), classes)))
    return Tables(
        classes,
        names,
        tuple(methadone),
        benzo,
        sero_classes,
        _str(sero_raw, "effect", _where("serotonergic")),
        sero_opioids,
        tuple(duplicates),
    )


def drug_class_label(class_id: str) -> str:
    """The human label of a class id (``"tca"`` → ``"tricyclic antidepressant (TCA)"``).

    Example
    -------
    >>> drug_class_label("snri")
    'serotonin-noradrenaline reuptake inhibitor (SNRI)'
    """
    cls = tables().classes.get(class_id)
    return cls.label if cls is not None else class_id.replace("_", " ")


def unverified_note(level: str, note: str, what: str = "This interaction entry") -> str:
    """The sentence a finding resting on a ``U`` entry carries (empty for ``V`` and ``S``).

    Example
    -------
    >>> unverified_note("U", "not in the reference notes")
    ' This interaction entry is unverified [U]: not in the reference notes.'
    >>> unverified_note("V", "label")
    ''
    """
    if level != "U":
        return ""
    return f" {what} is unverified [U]" + (f": {note.rstrip('.')}." if note else ".")


# ---- who takes what --------------------------------------------------------------------------


@attrs.define(frozen=True)
class Party:
    """A drug present in a case: a step of the regimen, or one of the patient's medicines.

    ``drug`` is the canonical name (the catalog id when the catalog knows it), ``classes`` the
    class ids it belongs to, ``step`` the step index (``None`` for a medication).
    """

    label: str
    drug: str
    classes: frozenset[str]
    step: int | None = None


_SPLIT: Final = re.compile(r"\s*(?:/|\+|,|;|&|\band\b|\bwith\b)\s*")


_Resolved = tuple[tuple[tuple[str, frozenset[str]], ...], tuple[str, ...]]


def resolve_medication(name: str) -> _Resolved:
    """Resolve a medicine name to ``((canonical, classes), ...)`` and the parts it cannot read.

    A combination (``"lopinavir/ritonavir"``) is split; a strength or form after the name
    (``"sertraline 50 mg"``) is dropped.

    Example
    -------
    >>> known, unknown = resolve_medication("Sertraline 50 mg")
    >>> known[0][0], sorted(known[0][1]), unknown
    ('sertraline', ['ssri'], ())
    >>> resolve_medication("letrozole")
    ((), ('letrozole',))
    """
    # a name of a medicine's length is kept (bounded); a longer text is free text, never kept
    return _resolve_kept(name) if len(name) <= MAX_KEY_TEXT else _resolve(name)


@lru_cache(maxsize=4096)
def _resolve_kept(name: str) -> _Resolved:
    return _resolve(name)


def _resolve(name: str) -> _Resolved:
    index = tables().names
    known: list[tuple[str, frozenset[str]]] = []
    unknown: list[str] = []
    for part in _SPLIT.split(_norm(name)):
        if not part:
            continue
        words = part.split()
        hit = None
        for n in range(len(words), 0, -1):
            hit = index.get(" ".join(words[:n]))
            if hit is not None:
                break
        if hit is None:
            hit = next((index[w] for w in words if w in index), None)
        if hit is None:
            unknown.append(part)
        else:
            known.append(hit)
    return tuple(known), tuple(unknown)


@attrs.define(frozen=True, eq=False)
class Parties:
    """Every drug of a case, the medicine names the library could not read, and a memo.

    ``steps`` holds ``(index, kind, drug)`` for each drug step; ``recorded`` is False when the
    patient's medicines are not recorded.  A :class:`Parties` depends only on the steps' drugs
    and the medicine names, so it is shared by every ``validate()`` call with the same layout,
    and ``memo`` keeps rule results that depend on nothing else.
    """

    parties: tuple[Party, ...]
    unknown: tuple[str, ...]
    steps: tuple[tuple[int, str, str], ...]
    recorded: bool = True
    memo: dict[str, Any] = attrs.field(factory=dict)


_KEY: Final = "interactions.parties"


def _layout(
    steps: tuple[tuple[int, str, str], ...], medications: tuple[str, ...] | None
) -> Parties:
    names = tables().names
    out: list[Party] = []
    for i, _, drug in steps:
        entry = names.get(drug)
        classes = entry[1] if entry is not None else frozenset()
        out.append(Party(f"{drug} (step {i + 1})", drug, classes, i))
    unknown: list[str] = []
    for med in medications or ():
        known, missing = resolve_medication(med)
        for canonical, classes in known:
            label = (
                f"{med} (patient medication)"
                if canonical in med and len(known) == 1
                else f"{med} ({canonical}; patient medication)"
            )
            out.append(Party(label, canonical, classes))
        unknown.extend(missing)
    return Parties(tuple(out), tuple(dict.fromkeys(unknown)), steps, medications is not None)


def _keepable(medications: tuple[str, ...] | None) -> bool:
    """True when the medicine names may key a memo: a few names of a medicine's length (a
    longer text is free text, which no memo keeps)."""
    return medications is None or (
        len(medications) <= _MAX_KEPT_MEDICATIONS
        and all(len(m) <= MAX_KEY_TEXT for m in medications)
    )


_MAX_KEPT_MEDICATIONS: Final = 32


def parties(ctx: Context) -> Parties:
    """The drugs of the regimen's steps and the patient's medicines, resolved once per call.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.rules import Context
    >>> reg = mps.Regimen([mps.OpioidStep(drug="tramadol", dose="50 mg", every="6 h")])
    >>> found = parties(Context(reg, mps.Patient(medications=["sertraline", "letrozole"])))
    >>> [p.label for p in found.parties], found.unknown
    (['tramadol (step 1)', 'sertraline (patient medication)'], ('letrozole',))
    """
    hit = ctx.cache.get(_KEY)
    if hit is None:
        medications = ctx.patient.medications
        # the layout depends on the steps' kinds and drugs and the medicine names alone
        shape = shape_of(ctx)
        steps: tuple[tuple[int, str, str], ...] | None = shape.memo.get(_KEY)
        if steps is None:
            steps = shape.memo[_KEY] = tuple(
                (i, kind, drug)
                for i, (kind, drug) in enumerate(shape.signature)
                if kind in _DRUG_KINDS
            )
        key = (steps, medications)
        hit = _PARTIES.data.get(key) if _keepable(medications) else None
        if hit is None:
            hit = _layout(steps, medications)
            if _keepable(medications):  # free text beyond a medicine name is never kept
                size = 2048 + 512 * len(hit.parties) + _PARTIES_MEMO_BYTES
                _PARTIES.put(key, hit, size)
        ctx.cache[_KEY] = hit
    result: Parties = hit
    return result


# (the drug steps' (index, kind, drug), the medicine names) → Parties, with the few rule
# results its memo keeps; bounded in bytes.
_PARTIES: Final = Memo("rules.interactions: parties per layout", 4 << 20)
_PARTIES_MEMO_BYTES: Final = 8192


def not_ruled_out(unknown: Sequence[str], with_what: str) -> Missing:
    """The *not checked* outcome when unknown medicines might interact.

    Example
    -------
    >>> not_ruled_out(["letrozole"], "methadone").missing
    'medication classes'
    """
    return Missing(
        "medication classes",
        f"not in the library's drug lists: {', '.join(unknown)}; an interaction with "
        f"{with_what} cannot be ruled out",
    )


def not_recorded(with_what: str) -> Missing:
    """The *not checked* outcome when the patient's other medicines are not recorded.

    Example
    -------
    >>> not_recorded("tramadol").missing
    'medications'
    """
    return Missing(
        "medications",
        f"the patient's other medicines are not recorded, so an interaction with {with_what} "
        "cannot be ruled out (record medications = [] when the patient takes none)",
    )


def outcome(found: Parties, findings: Sequence[Any], with_what: str) -> Any:
    """The outcome of an interaction check from its findings and what could not be ruled out.

    Findings win (a sentence says when the medicines are not recorded); with none, unrecorded
    medicines, then unknown medicine names, make the check *not checked*; else it passed.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.rules import Context
    >>> found = parties(Context(mps.Regimen([]), mps.Patient()))
    >>> outcome(found, [], "the opioid").missing
    'medications'
    """
    if findings:
        if found.recorded:
            return tuple(findings)
        return tuple(attrs.evolve(f, message=f"{f.message}{_UNRECORDED_NOTE}") for f in findings)
    if not found.recorded:
        return not_recorded(with_what)
    if found.unknown:
        return not_ruled_out(found.unknown, with_what)
    return PASSED


_UNRECORDED_NOTE: Final = (
    " The patient's other medicines are not recorded: further interactions cannot be ruled out."
)


def _steps_text(pairs: Sequence[tuple[int, str]]) -> str:
    by_drug: dict[str, list[int]] = {}
    for i, drug in pairs:
        by_drug.setdefault(drug, []).append(i + 1)
    parts = []
    for drug, idx in by_drug.items():
        word = "step" if len(idx) == 1 else "steps"
        parts.append(f"{drug} ({word} {', '.join(map(str, idx))})")
    return ", ".join(parts)


def memoized(ctx: Context, key: str, compute: Callable[[Parties], Any]) -> Any:
    """A rule result that depends only on the case layout (:class:`Parties`), computed once.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.rules import Context
    >>> ctx = Context(mps.Regimen([]), mps.Patient(medications=["letrozole"]))
    >>> memoized(ctx, "example.unknown", lambda found: found.unknown)
    ('letrozole',)
    """
    found = parties(ctx)
    memo = found.memo
    if key in memo:
        return memo[key]
    result = memo[key] = compute(found)
    return result


# ---- rules -----------------------------------------------------------------------------------


def _benzo(found: Parties) -> Any:
    opioids = [(i, drug) for i, kind, drug in found.steps if kind in _OPIOID_KINDS]
    if not opioids:
        return None
    entry = tables().opioid_benzodiazepine
    benzos = [p for p in found.parties if not entry.classes.isdisjoint(p.classes)]
    if not benzos:
        return outcome(found, (), "the opioid")
    flagged = finding(
        "interaction.opioid-benzodiazepine",
        "warning",
        f"Opioid {_steps_text(opioids)} with a benzodiazepine, "
        f"{', '.join(p.label for p in benzos)}: {entry.effect}."
        + unverified_note(entry.level, entry.note, "This statement"),
        source=entry.sources,
        level=entry.level,
        detail={
            "opioid_steps": [i for i, _ in opioids],
            "benzodiazepines": [p.label for p in benzos],
            "benzodiazepine_steps": [p.step for p in benzos if p.step is not None],
        },
    )
    return outcome(found, (flagged,), "the opioid")


@rule(
    "interaction.opioid-benzodiazepine",
    title="Opioid with a benzodiazepine",
    needs=("patient.medications",),
    sources=("fda-2016-opioid-benzodiazepine", "cdc-2022"),
    severity="warning (the statement is not in the reference notes: level U)",
    scope="regimen",
    data_files=(_FILE,),
    description="An opioid or methadone step together with a benzodiazepine, given as a step or "
    "taken by the patient (patient.medications). With an opioid step and the patient's other "
    "medicines not recorded, and no benzodiazepine among the steps, the check is not checked "
    "(medications = [] records that the patient takes none).",
)
def opioid_benzodiazepine(ctx: Context, index: int | None, step: Any) -> Any:
    """Flag an opioid or methadone step given with a benzodiazepine (step or medication)."""
    return memoized(ctx, "benzo", _benzo)


def _serotonergic(found: Parties) -> Any:
    t = tables()
    opioid_steps: dict[str, list[tuple[int, str]]] = {}
    for i, kind, drug in found.steps:
        if kind in _OPIOID_KINDS and drug in t.serotonergic_opioids:
            opioid_steps.setdefault(drug, []).append((i, drug))
    if not opioid_steps:
        return None
    partners = [
        p
        for p in found.parties
        if not t.serotonergic_classes.isdisjoint(p.classes) and p.drug not in opioid_steps
    ]
    if not partners:
        return outcome(found, (), " and ".join(opioid_steps))
    out = []
    for drug, pairs in opioid_steps.items():
        entry = t.serotonergic_opioids[drug]
        for p in partners:
            cls = sorted(t.serotonergic_classes & p.classes)
            kind = " / ".join(drug_class_label(c) for c in cls)
            out.append(
                finding(
                    "interaction.serotonergic",
                    "warning",
                    f"{_steps_text(pairs).capitalize()} with {p.label}, a {kind}: "
                    f"{t.serotonergic_effect}."
                    + unverified_note(entry.level, entry.note, "This statement"),
                    source=entry.sources,
                    level=entry.level,
                    detail={
                        "opioid": drug,
                        "opioid_steps": [i for i, _ in pairs],
                        "partner": p.label,
                        "partner_step": p.step,
                        "partner_classes": cls,
                    },
                )
            )
    return outcome(found, out, " and ".join(opioid_steps))


@rule(
    "interaction.serotonergic",
    title="Serotonergic opioid with a serotonergic antidepressant",
    needs=("patient.medications",),
    sources=("ultram-label", "methadone-us-label"),
    severity="warning (the statement is not in the reference notes: level U)",
    scope="regimen",
    data_files=(_FILE,),
    description="Tramadol or methadone (as steps) with an SSRI, SNRI, tricyclic antidepressant "
    "or MAOI, given as a step or taken by the patient: risk of serotonin syndrome. With "
    "tramadol or methadone and the patient's other medicines not recorded, and no such "
    "partner among the steps, the check is not checked.",
)
def serotonergic(ctx: Context, index: int | None, step: Any) -> Any:
    """Flag tramadol or methadone with an SSRI, SNRI, TCA or MAOI (steps or medications)."""
    return memoized(ctx, "serotonergic", _serotonergic)


def _duplicates(found: Parties) -> Any:
    t = tables()
    out = []
    applies = []
    for cid, entry in t.duplicate_class:
        members = [p for p in found.parties if cid in p.classes]
        if not any(p.step is not None for p in members):
            continue  # the rule is about a step: a class with no step here does not apply
        applies.append(drug_class_label(cid))
        drugs = list(dict.fromkeys(p.drug for p in members))
        if len(drugs) < 2:
            continue
        pairs = [(p.step, p.drug) for p in members if p.step is not None]
        meds = [p.label for p in members if p.step is None]
        where = ", ".join(filter(None, (_steps_text(pairs), ", ".join(meds))))
        out.append(
            finding(
                "interaction.duplicate-class",
                "warning",
                f"Two {drug_class_label(cid)}s at once, {where}: "
                f"{entry.effect}." + unverified_note(entry.level, entry.note, "This statement"),
                source=entry.sources,
                level=entry.level,
                detail={
                    "class": cid,
                    "drugs": drugs,
                    "steps": [i for i, _ in pairs],
                    "medications": meds,
                },
            )
        )
    if not applies:
        return None
    return outcome(found, out, "another " + " or ".join(applies))


@rule(
    "interaction.duplicate-class",
    title="Two drugs of one class",
    needs=("patient.medications",),
    sources=("nsaid-class-label", "therapeutic-duplication-note"),
    severity="warning (level U)",
    scope="regimen",
    data_files=(_FILE,),
    description="Two different NSAIDs, or two different gabapentinoids, among the steps of one "
    "regimen and the patient's other medicines, at least one of them a step (the same drug "
    "in a regular and a PRN step, or as a step and a medication, is not a duplication). With "
    "a step of such a class and the patient's other medicines not recorded, and no "
    "duplication among the steps, the check is not checked.",
)
def duplicate_class(ctx: Context, index: int | None, step: Any) -> Any:
    """Flag two different drugs of one class (NSAIDs, gabapentinoids) among steps and medicines."""
    return memoized(ctx, "duplicate", _duplicates)


RULES: tuple[Rule, ...] = (opioid_benzodiazepine, serotonergic, duplicate_class)
