"""Recognising malignant psoas syndrome: the published definitions applied to clinical features.

:func:`assess_mps` takes the clinical features (each true, false or unknown) and returns, for each
published definition of malignant psoas syndrome (MPS) — Stevens & Gonet 1990 (four features),
Agar 2004 (the triad) and Yoshioka 2025 (imaging or pathology plus one or more of three
features) — which criteria are met, not met or unknown, and whether the definition is
*satisfied*, *not satisfied* or *undetermined*.  It also lists the differential of a psoas lesion
that the seed case discusses (pyogenic abscess, cold abscess, haematoma, metastasis) with the
findings that bear on each.  That list is information for the clinician, never a diagnosis.

The definitions and the differential are data (``data/mps-criteria.toml``), each with its source
and verification level.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, Final

import attrs

from . import _catalog
from ._repr import Renderable
from .errors import DataFileError, StepError

__all__ = [
    "BIOPSY_RESULTS",
    "DATA_FILE",
    "NOT_A_DIAGNOSIS",
    "CriterionResult",
    "DefinitionResult",
    "DifferentialFinding",
    "DifferentialItem",
    "MpsAssessment",
    "MpsFeatures",
    "assess_mps",
]

#: The data file of definitions and differential.
DATA_FILE: Final = "mps-criteria.toml"
#: Biopsy results :class:`MpsFeatures` accepts.
BIOPSY_RESULTS: Final = ("malignant", "abscess", "haematoma", "non-diagnostic")
#: Sides of psoas involvement.
SIDES: Final = ("left", "right", "bilateral")
#: Kinds of evidence of psoas involvement.
EVIDENCE: Final = ("imaging", "pathology", "imaging-and-pathology")
#: Printed with every assessment.
NOT_A_DIAGNOSIS: Final = (
    "Information for the clinician, not a diagnosis: the definitions come from case reports and "
    "series, and the differential lists what the seed case weighed."
)
_UNKNOWN_WORDS: Final = ("unknown", "not known", "n/a", "")


def _tri(doc: str) -> Any:
    return attrs.field(default=None, metadata={"doc": doc, "kind": "tri-state"})


def _choice(doc: str, allowed: Sequence[str]) -> Any:
    return attrs.field(default=None, metadata={"doc": doc, "kind": "choice", "enum": allowed})


def _tri_state(name: str, value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _UNKNOWN_WORDS:
        return None
    raise StepError(name, f"must be true, false or unknown (None), not {value!r}")


def _one_of(name: str, value: object, allowed: Sequence[str]) -> str | None:
    if value is None:
        return None
    norm = "-".join(str(value).strip().lower().replace("_", "-").split())
    if norm in _UNKNOWN_WORDS:
        return None
    if norm not in allowed:
        close = difflib.get_close_matches(norm, list(allowed), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise StepError(name, f"{value!r} is not one of {', '.join(allowed)}{hint}")
    return norm


@attrs.define(frozen=True, kw_only=True)
class MpsFeatures:
    """The clinical features that bear on malignant psoas syndrome; each true, false or unknown.

    A feature left out (``None``, or the text ``"unknown"``) is *unknown*: a definition that needs
    it is then *undetermined*, never satisfied by default.

    Example
    -------
    >>> from mps_analgesia.assess import MpsFeatures
    >>> MpsFeatures(psoas_involvement=True, side="Left").side
    'left'
    """

    psoas_involvement: bool | None = _tri(
        "malignant involvement of the ipsilateral psoas major on imaging or pathology"
    )
    involvement_evidence: str | None = _choice(
        "how the involvement was shown: imaging, pathology or both", EVIDENCE
    )
    side: str | None = _choice("the side of the psoas involvement", SIDES)
    painful_hip_flexion: bool | None = _tri(
        "painful (fixed) flexion of the ipsilateral hip, or a positive psoas stretch test"
    )
    neuropathic_pain: bool | None = _tri("ipsilateral proximal (L1-L4) neuropathic pain")
    nociceptive_pain: bool | None = _tri(
        "ipsilateral nociceptive pain of the abdomen, back, hip or thigh"
    )
    osseous_lumbar_metastasis: bool | None = _tri("osseous lumbar vertebral metastasis present")
    other_radiculopathy: bool | None = _tri("lumbar polyradiculopathy from another cause present")
    inflammatory_markers_raised: bool | None = _tri(
        "raised inflammatory markers (white cells, neutrophils, CRP)"
    )
    systemic_infection_signs: bool | None = _tri("systemic signs of infection")
    imaging_suggests_abscess: bool | None = _tri("imaging suggests an abscess")
    pet_uptake: bool | None = _tri("abnormal FDG uptake in the lesion on PET-CT")
    lesion_enlarging: bool | None = _tri("the lesion enlarges over time")
    tuberculosis_history: bool | None = _tri("a history relevant to tuberculosis")
    biopsy: str | None = _choice(
        "biopsy result: malignant, abscess, haematoma or non-diagnostic", BIOPSY_RESULTS
    )

    def __attrs_post_init__(self) -> None:
        for a in attrs.fields(type(self)):
            value = getattr(self, a.name)
            if a.metadata.get("kind") == "choice":
                value = _one_of(a.name, value, a.metadata["enum"])
            else:
                value = _tri_state(a.name, value)
            object.__setattr__(self, a.name, value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MpsFeatures:
        """Build from a mapping; an unknown key raises :class:`StepError` with a suggestion.

        Example
        -------
        >>> from mps_analgesia.assess import MpsFeatures
        >>> MpsFeatures.from_dict({"psoas_involvment": True})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
          ...
        mps_analgesia.errors.StepError: psoas_involvment: unknown feature; did you mean ...?
        """
        if not isinstance(data, Mapping):
            raise StepError("features", f"must be a mapping of feature names, not {data!r}")
        names = [a.name for a in attrs.fields(cls)]
        for key in data:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise StepError(str(key), f"unknown feature{hint}")
        return cls(**dict(data))

    def get(self, name: str) -> Any:
        """The value of a feature by name."""
        return getattr(self, name)


# ---- results ------------------------------------------------------------------------------------


@attrs.define(frozen=True)
class CriterionResult:
    """One criterion of a definition: ``met``, ``not met`` or ``unknown``, with the features read.

    ``role`` is ``required`` or, for the "one or more of" criteria, ``any``.
    """

    id: str
    text: str
    status: str
    features: tuple[tuple[str, bool | None], ...]
    role: str = "required"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "text": self.text,
            "status": self.status,
            "role": self.role,
            "features": dict(self.features),
        }


@attrs.define(frozen=True)
class DefinitionResult:
    """One published definition applied to the features.

    ``status`` is ``satisfied``, ``not satisfied`` or ``undetermined`` (a criterion that could
    decide it is unknown).
    """

    id: str
    title: str
    status: str
    criteria: tuple[CriterionResult, ...]
    rule: str
    source: str
    level: str
    note: str = ""
    also: str = ""

    @property
    def satisfied(self) -> bool | None:
        """True, False, or None when undetermined."""
        return {"satisfied": True, "not satisfied": False}.get(self.status)

    def _ids(self, status: str) -> tuple[str, ...]:
        return tuple(c.id for c in self.criteria if c.status == status)

    @property
    def met(self) -> tuple[str, ...]:
        """The ids of the criteria met."""
        return self._ids("met")

    @property
    def not_met(self) -> tuple[str, ...]:
        """The ids of the criteria not met."""
        return self._ids("not met")

    @property
    def unknown(self) -> tuple[str, ...]:
        """The ids of the criteria that could not be decided."""
        return self._ids("unknown")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "rule": self.rule,
            "source": self.source,
            "level": self.level,
            "note": self.note,
            "criteria": [c.to_dict() for c in self.criteria],
        }


@attrs.define(frozen=True)
class DifferentialFinding:
    """A finding that bears on one entity of the differential, and what it meant in the seed."""

    feature: str
    observed: str
    bearing: str
    source: str
    level: str


@attrs.define(frozen=True)
class DifferentialItem:
    """One entity of the differential of a psoas lesion, with the findings that bear on it."""

    entity: str
    findings: tuple[DifferentialFinding, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "entity": self.entity,
            "findings": [attrs.asdict(f) for f in self.findings],
        }


@attrs.define(frozen=True)
class MpsAssessment(Renderable):
    """The result of :func:`assess_mps`: each definition's outcome and the differential."""

    features: MpsFeatures
    definitions: tuple[DefinitionResult, ...]
    differential: tuple[DifferentialItem, ...]
    edition: str
    note: str = NOT_A_DIAGNOSIS

    def definition(self, definition_id: str) -> DefinitionResult:
        """The result for one definition id (``stevens-gonet-1990``, ``agar-2004``, ...)."""
        for d in self.definitions:
            if d.id == definition_id:
                return d
        from .errors import UnknownNameError

        ids = [d.id for d in self.definitions]
        raise UnknownNameError(
            "MPS definition", definition_id, difflib.get_close_matches(definition_id, ids)
        )

    @property
    def satisfied_by(self) -> tuple[str, ...]:
        """The ids of the definitions the features satisfy."""
        return tuple(d.id for d in self.definitions if d.status == "satisfied")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "features": attrs.asdict(self.features),
            "definitions": [d.to_dict() for d in self.definitions],
            "differential": [i.to_dict() for i in self.differential],
            "edition": self.edition,
            "note": self.note,
        }

    def to_text(self) -> str:
        """A readable summary."""
        lines = []
        side = f" ({self.features.side})" if self.features.side else ""
        lines.append(f"Malignant psoas syndrome: published definitions{side}")
        for d in self.definitions:
            lines.append(f"  {d.title}: {d.status.upper()} [{d.source} {d.level}]")
            for c in d.criteria:
                role = " (one or more of)" if c.role == "any" else ""
                lines.append(f"    - {c.status}: {c.text}{role}")
        lines.append("Differential of the psoas lesion (information, not a diagnosis):")
        for item in self.differential:
            lines.append(f"  {item.entity}:")
            for f in item.findings:
                lines.append(f"    - {f.feature} = {f.observed}: {f.bearing}")
        lines.append(self.note)
        return "\n".join(lines)


# ---- data ---------------------------------------------------------------------------------------


@attrs.define(frozen=True)
class _Criterion:
    id: str
    text: str
    role: str
    all_of: tuple[str, ...]
    none_of: tuple[str, ...]


@attrs.define(frozen=True)
class _Definition:
    id: str
    title: str
    rule: str
    min_any: int
    source: str
    level: str
    note: str
    also: str
    criteria: tuple[_Criterion, ...]


@attrs.define(frozen=True)
class _Finding:
    feature: str
    source: str
    level: str
    if_true: str
    if_false: str
    if_unknown: str
    values: tuple[tuple[str, str], ...]


_FEATURES: Final = tuple(a.name for a in attrs.fields(MpsFeatures))


@cache
def _data() -> tuple[tuple[_Definition, ...], tuple[tuple[str, tuple[_Finding, ...]], ...]]:
    raw = _catalog.data_file(DATA_FILE)
    definitions = []
    for i, d in enumerate(raw.get("definitions", ())):
        where = f"{DATA_FILE}: definitions[{i}]"
        rule = d.get("rule")
        if rule not in ("all", "required-plus-any"):
            raise DataFileError(f"{where}.rule: {rule!r} is not 'all' or 'required-plus-any'")
        source = d.get("source")
        if source not in _catalog.sources():
            raise DataFileError(f"{where}.source: {source!r} is not in sources.toml")
        level = _catalog.level_of(d, where)
        criteria = []
        for j, c in enumerate(d.get("criteria", ())):
            cwhere = f"{where}.criteria[{j}]"
            feats = (*c.get("all_of", ()), *c.get("none_of", ()))
            if not feats or any(f not in _FEATURES for f in feats):
                raise DataFileError(f"{cwhere}: features must be among {', '.join(_FEATURES)}")
            role = c.get("role", "required")
            if role not in ("required", "any"):
                raise DataFileError(f"{cwhere}.role: {role!r} is not 'required' or 'any'")
            criteria.append(
                _Criterion(
                    str(c["id"]),
                    str(c["text"]),
                    role,
                    tuple(c.get("all_of", ())),
                    tuple(c.get("none_of", ())),
                )
            )
        min_any = d.get("min_any", 0)
        if rule == "required-plus-any" and not (isinstance(min_any, int) and min_any >= 1):
            raise DataFileError(f"{where}.min_any: a whole number of at least 1 is required")
        definitions.append(
            _Definition(
                str(d["id"]),
                str(d["title"]),
                rule,
                int(min_any),
                str(source),
                level,
                str(d.get("note", "")),
                str(d.get("also", "")),
                tuple(criteria),
            )
        )
    differential = []
    for i, item in enumerate(raw.get("differential", ())):
        findings = []
        for j, f in enumerate(item.get("findings", ())):
            fwhere = f"{DATA_FILE}: differential[{i}].findings[{j}]"
            feature = f.get("feature")
            if feature not in _FEATURES:
                raise DataFileError(f"{fwhere}.feature: {feature!r} is not a feature")
            source = f.get("source")
            if source not in _catalog.sources():
                raise DataFileError(f"{fwhere}.source: {source!r} is not in sources.toml")
            values = f.get("values", {})
            if any(v not in BIOPSY_RESULTS for v in values):
                raise DataFileError(f"{fwhere}.values: keys must be {', '.join(BIOPSY_RESULTS)}")
            findings.append(
                _Finding(
                    str(feature),
                    str(source),
                    _catalog.level_of(f, fwhere),
                    str(f.get("if_true", "")),
                    str(f.get("if_false", "")),
                    str(f.get("if_unknown", "")),
                    tuple((str(k), str(v)) for k, v in values.items()),
                )
            )
        differential.append((str(item["entity"]), tuple(findings)))
    return tuple(definitions), tuple(differential)


# ---- assessment ---------------------------------------------------------------------------------


def _criterion(c: _Criterion, features: MpsFeatures) -> CriterionResult:
    read: list[tuple[str, bool | None]] = []
    verdicts: list[bool | None] = []
    for name in c.all_of:
        value = features.get(name)
        read.append((name, value))
        verdicts.append(value)
    for name in c.none_of:
        value = features.get(name)
        read.append((name, value))
        verdicts.append(None if value is None else not value)
    if any(v is False for v in verdicts):
        status = "not met"
    elif any(v is None for v in verdicts):
        status = "unknown"
    else:
        status = "met"
    return CriterionResult(c.id, c.text, status, tuple(read), c.role)


def _definition(d: _Definition, features: MpsFeatures) -> DefinitionResult:
    results = tuple(_criterion(c, features) for c in d.criteria)
    required = [r for r in results if r.role == "required"]
    optional = [r for r in results if r.role == "any"]
    if any(r.status == "not met" for r in required):
        status = "not satisfied"
    elif d.rule == "all" or not optional:
        status = "satisfied" if all(r.status == "met" for r in required) else "undetermined"
    else:
        met = sum(r.status == "met" for r in optional)
        possible = met + sum(r.status == "unknown" for r in optional)
        if possible < d.min_any:
            status = "not satisfied"
        elif met >= d.min_any and all(r.status == "met" for r in required):
            status = "satisfied"
        else:
            status = "undetermined"
    if d.rule == "all":
        rule = "all criteria"
    else:
        rule = f"every required criterion and at least {d.min_any} of the others"
    return DefinitionResult(d.id, d.title, status, results, rule, d.source, d.level, d.note, d.also)


def _observed(value: object) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _bearing(f: _Finding, value: object) -> str:
    if value is None:
        return f.if_unknown
    if isinstance(value, bool):
        return f.if_true if value else f.if_false
    return dict(f.values).get(str(value), f.if_unknown)


def assess_mps(features: MpsFeatures | Mapping[str, Any]) -> MpsAssessment:
    """Apply the published definitions of MPS to the features, and list the differential.

    Parameters
    ----------
    features:
        An :class:`MpsFeatures`, or a mapping of feature names to ``True``, ``False`` or
        ``None`` (unknown); see :class:`MpsFeatures` for the names.

    Returns
    -------
    MpsAssessment
        For each definition (Stevens & Gonet 1990, Agar 2004, Yoshioka 2025) the criteria met,
        not met or unknown and whether it is satisfied, not satisfied or undetermined; and the
        differential of a psoas lesion with the findings that bear on each entity (information,
        not a diagnosis).

    Raises
    ------
    StepError
        An unknown feature name, or a value that is not true, false or unknown.

    Example
    -------
    >>> from mps_analgesia.assess import assess_mps
    >>> a = assess_mps({"psoas_involvement": True, "nociceptive_pain": True,
    ...                 "neuropathic_pain": False})
    >>> for d in a.definitions:
    ...     print(d.id, d.status)
    stevens-gonet-1990 not satisfied
    agar-2004 not satisfied
    yoshioka-2025 satisfied
    """
    feats = features if isinstance(features, MpsFeatures) else MpsFeatures.from_dict(features)
    definitions, differential = _data()
    items = []
    for entity, findings in differential:
        items.append(
            DifferentialItem(
                entity,
                tuple(
                    DifferentialFinding(
                        f.feature,
                        _observed(feats.get(f.feature)),
                        _bearing(f, feats.get(f.feature)),
                        f.source,
                        f.level,
                    )
                    for f in findings
                ),
            )
        )
    return MpsAssessment(
        feats,
        tuple(_definition(d, feats) for d in definitions),
        tuple(items),
        _catalog.edition(DATA_FILE),
    )
