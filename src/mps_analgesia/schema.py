"""JSON Schemas for case files and protocol files, generated from the attrs models.

``json_schema("case")`` describes a case file: the :class:`~mps_analgesia.patient.Patient` and the
step classes, read from their attrs fields and the metadata of their quantity fields
(``dimension``, ``unit``, ``example``, ``doc``).  ``json_schema("protocol")`` describes a protocol
file from the models of :mod:`mps_analgesia.protocols`.  Editors that understand JSON Schema
(VS Code with a TOML extension, for example) then offer completion and checking.

The schemas describe the canonical spellings; the library itself is more forgiving (case, ``_``
for ``-`` in choices) and checks more than a schema can (units, dose limits).  JSON Schema draft
2020-12.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from typing import Any, Final

import attrs

from . import _catalog, _units
from .patient import HEPATIC_IMPAIRMENT, SEXES, Anticoagulant, Patient
from .steps import ADJUVANT_ROLES, BLOCK_SIDES, BLOCK_TECHNIQUES, STEP_KINDS, TitrationPoint

__all__ = ["DIALECT", "SCHEMA_NAMES", "json_schema", "schema_text"]

#: The JSON Schema dialect of the generated schemas.
DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
#: The schemas :func:`json_schema` can make.
SCHEMA_NAMES: Final = ("case", "protocol")
#: A quantity written as text: a number, then a unit (the library checks the unit itself).
QUANTITY_PATTERN: Final = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*[^\s\d].*$"


def _drug_names(kind: str) -> list[str]:
    """Every catalog name (ids and synonyms) a step of ``kind`` may use."""
    names: list[str] = []
    for did in _catalog.drug_ids():
        record = _catalog.drug(did)
        cls = record.drug_class
        if kind == "opioid":
            ok = cls == "opioid"
        elif kind == "methadone_adjuvant":
            ok = did == "methadone"
        elif kind == "psoas_compartment_block":
            ok = cls == "local_anaesthetic"
        else:
            ok = cls not in ("opioid", "local_anaesthetic")
        if ok:
            names.extend(n for n in dict.fromkeys((did, *record.names)))
    return sorted(dict.fromkeys(names))


def _enums() -> dict[str, list[Any]]:
    from . import protocols

    return {
        "route": list(_catalog.routes()),
        "formulation": list(_catalog.FORMULATIONS),
        "role": list(ADJUVANT_ROLES),
        "side": list(BLOCK_SIDES),
        "technique": list(BLOCK_TECHNIQUES),
        "sex": list(SEXES),
        "hepatic_impairment": list(HEPATIC_IMPAIRMENT),
        "levels": list(_catalog.LEVELS),
        "statuses": list(protocols.STATUSES),
        "evidence_levels": list(protocols.EVIDENCE_LEVELS),
        "start_methods": list(protocols.START_METHODS),
        "monitoring_kinds": list(protocols.MONITORING_KINDS),
        "check_fields": list(protocols.CHECK_FIELDS),
        "check_ops": sorted({op for ops in protocols.CHECK_OPS.values() for op in ops}),
        "if_unknown": ["unknown", "met", "not met"],
        "include_exclude": ["include", "exclude"],
        "compute": list(protocols.COMPUTE_KINDS),
        "template_kinds": [*STEP_KINDS, "action"],
    }


def _quantity(doc: str, dimensions: tuple[str, ...], unit: str = "", example: str = "") -> Any:
    example = example or _units.DIMENSIONS[dimensions[0]][1]
    dims = " or ".join(d.replace("_", " ") for d in dimensions)
    text = f"{doc}: a quantity with its unit ({dims}"
    text += f", canonical unit {unit})" if unit else ")"
    return {
        "type": "string",
        "pattern": QUANTITY_PATTERN,
        "description": f"{text}, e.g. {example!r}",
        "examples": [example],
    }


class _Builder:
    """Walks attrs classes into ``$defs``."""

    def __init__(self, enums: Mapping[str, list[Any]]) -> None:
        self.enums = enums
        self.defs: dict[str, Any] = {}

    def ref(self, cls: type, name: str | None = None, **kw: Any) -> dict[str, str]:
        key = name or cls.__name__
        if key not in self.defs:
            self.defs[key] = {}  # placeholder against recursion
            self.defs[key] = self.object(cls, **kw)
        return {"$ref": f"#/$defs/{key}"}

    def object(
        self,
        cls: type,
        *,
        skip: tuple[str, ...] = (),
        extra: Mapping[str, Any] | None = None,
        enum_overrides: Mapping[str, list[Any]] | None = None,
    ) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        props: dict[str, Any] = {}
        required: list[str] = []
        for a in attrs.fields(cls):
            if not a.init or a.name in skip or a.metadata.get("schema") is False:
                continue
            props[a.name] = self.field(a, hints.get(a.name, Any), enum_overrides or {})
            if a.default is attrs.NOTHING:
                required.append(a.name)
        props.update(extra or {})
        doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        out: dict[str, Any] = {
            "type": "object",
            "description": doc,
            "properties": props,
            "additionalProperties": False,
        }
        if required:
            out["required"] = required
        return out

    def field(
        self, a: attrs.Attribute[Any], hint: Any, enum_overrides: Mapping[str, list[Any]]
    ) -> Any:
        meta = a.metadata
        doc = str(meta.get("doc", "")) or a.name.replace("_", " ")
        dimension = meta.get("dimension")
        if dimension is not None:
            dims = (dimension,) if isinstance(dimension, str) else tuple(dimension)
            return _quantity(doc, dims, str(meta.get("unit", "")), str(meta.get("example", "")))
        if meta.get("quantity"):
            return _quantity(doc, ("mass", "mass_rate", "volume", "volume_rate"))
        schema = self.type(hint)
        enum_key = str(meta.get("enum", a.name))
        values = enum_overrides.get(a.name) or self.enums.get(enum_key)
        if values is not None and schema.get("type") == "string":
            schema["enum"] = list(values)
        elif values is not None and schema.get("type") == "array":
            schema["items"] = {"type": "string", "enum": list(values)}
        if doc:
            schema["description"] = doc
        return schema

    def type(self, hint: Any) -> dict[str, Any]:
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin is typing.Literal:
            if all(isinstance(x, str) for x in args):
                return {"type": "string", "enum": list(args)}
            return {"enum": list(args)}
        if origin in (typing.Union, types.UnionType):
            rest = [x for x in args if x is not type(None)]
            if len(rest) == 1:
                return self.type(rest[0])
            return {"anyOf": [self.type(x) for x in rest]}
        if origin is tuple or origin is list:
            item = args[0] if args else Any
            return {"type": "array", "items": self.type(item)}
        if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
            return {"type": "object"}
        if hint is str:
            return {"type": "string"}
        if hint is bool:
            return {"type": "boolean"}
        if hint is int:
            return {"type": "integer"}
        if hint is float:
            return {"type": "number"}
        if isinstance(hint, type) and attrs.has(hint):
            return dict(self.ref(hint))
        return {}


def _case_schema() -> dict[str, Any]:
    b = _Builder(_enums())
    b.ref(TitrationPoint)
    b.ref(Anticoagulant)
    patient = b.ref(Patient)
    refs = []
    for kind, cls in STEP_KINDS.items():
        drug = {"drug": _drug_names(kind)}
        obj = b.object(
            cls,
            extra={"kind": {"const": kind, "description": f"the step kind: {kind}"}},
            enum_overrides=drug,
        )
        obj["required"] = ["kind", *obj.get("required", ())]
        b.defs[cls.__name__] = obj
        refs.append({"$ref": f"#/$defs/{cls.__name__}"})
    b.defs["Step"] = {"oneOf": refs, "description": "a step; 'kind' tells which"}
    return {
        "$schema": DIALECT,
        "$id": "urn:mps-analgesia:schema:case",
        "title": "mps_analgesia case file",
        "description": "A patient and a regimen (TOML or JSON). Every quantity is text with its "
        "unit. Decision support only.",
        "type": "object",
        "properties": {
            "$schema": {"type": "string"},
            "name": {"type": "string", "description": "a name for the case"},
            "description": {"type": "string"},
            "start_date": {
                "type": "string",
                "format": "date",
                "description": "the calendar date of plan day 0 (ISO 8601, e.g. '2026-12-07'); "
                "without it, days are plan days 0, 1, 2 …",
            },
            "time_zone": {
                "type": "string",
                "description": "the IANA time zone of the times of day, e.g. 'Asia/Tokyo' "
                "(needs start_date)",
            },
            "patient": patient,
            "step": {
                "type": "array",
                "description": "the steps ([[step]] tables)",
                "items": {"$ref": "#/$defs/Step"},
            },
        },
        "additionalProperties": False,
        "$defs": b.defs,
    }


def _protocol_schema() -> dict[str, Any]:
    from . import protocols

    b = _Builder(_enums())
    template = b.object(protocols.StepTemplate, skip=("kind",))
    refs = []
    for kind in (*STEP_KINDS, "action"):
        props = dict(template["properties"])
        if kind in STEP_KINDS:
            cls = STEP_KINDS[kind]
            step_obj = b.object(
                cls, skip=("titration",), enum_overrides={"drug": _drug_names(kind)}
            )
            for key, value in step_obj["properties"].items():
                props.setdefault(key, value)
        props["kind"] = {"const": kind, "description": f"the step kind: {kind}"}
        name = f"StepTemplate_{kind}"
        b.defs[name] = {
            "type": "object",
            "description": f"a {kind!r} step template: template keys and the step's fixed values",
            "properties": props,
            "required": ["kind", *template.get("required", ())],
            "additionalProperties": False,
        }
        refs.append({"$ref": f"#/$defs/{name}"})
    b.defs["StepTemplate"] = {"oneOf": refs, "description": "a step template; 'kind' tells which"}
    b.ref(protocols.Check)
    schema = b.object(protocols.Protocol)
    props = schema["properties"]
    props["$schema"] = {"type": "string"}
    props["step"] = {
        "type": "array",
        "description": "step templates ([[step]] tables)",
        "items": {"$ref": "#/$defs/StepTemplate"},
        "minItems": 1,
    }
    props["phase"]["minItems"] = 1
    props["sources"]["items"] = {"type": "string", "enum": sorted(_catalog.sources())}
    data_ref = {
        "type": "object",
        "description": "a value of a data file, named instead of restated: "
        '{data = "methadone.toml", key = "titration.min_interval"}',
        "properties": {"data": {"type": "string"}, "key": {"type": "string"}},
        "required": ["data", "key"],
        "additionalProperties": False,
    }
    check_value = b.defs["Check"]["properties"]["value"]
    check_value.clear()
    check_value.update(
        {
            "description": "the value compared with: a quantity text, a number, a text, a list "
            "of texts or true/false, or a value of a data file ({data, key})",
            "anyOf": [{"type": ["string", "number", "boolean", "array"]}, data_ref],
        }
    )
    # every quantity a protocol holds may name a data value instead ({data, key})
    for definition in b.defs.values():
        for key, prop in definition.get("properties", {}).items():
            if prop.get("pattern") == QUANTITY_PATTERN:
                definition["properties"][key] = {
                    "description": prop["description"] + ", or a value of a data file",
                    "anyOf": [{k: v for k, v in prop.items() if k != "description"}, data_ref],
                }
    for cls_name in (f"StepTemplate_{k}" for k in (*STEP_KINDS, "action")):
        b.defs[cls_name]["properties"]["sources"]["items"] = {
            "type": "string",
            "enum": sorted(_catalog.sources()),
        }
    return {
        "$schema": DIALECT,
        "$id": "urn:mps-analgesia:schema:protocol",
        "title": "mps_analgesia protocol file",
        **{k: v for k, v in schema.items() if k != "description"},
        "description": "A reusable MPS analgesia protocol (TOML or JSON): checks on the patient, "
        "ordered phases and step templates; every number with a source id and a level (V, S, "
        "U). See docs/protocols.md.",
        "$defs": b.defs,
    }


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a ``"case"`` or ``"protocol"`` file, as a dict.

    Raises
    ------
    UnknownNameError
        A name other than ``case`` or ``protocol``.

    Example
    -------
    >>> from mps_analgesia.schema import json_schema
    >>> schema = json_schema("case")
    >>> schema["$defs"]["OpioidStep"]["properties"]["dose"]["examples"]
    ['10 mg']
    >>> sorted(json_schema("protocol")["required"])
    ['evidence', 'id', 'indication', 'status', 'title', 'version']
    """
    if name == "case":
        return _case_schema()
    if name == "protocol":
        return _protocol_schema()
    import difflib

    from .errors import UnknownNameError

    raise UnknownNameError("schema", str(name), difflib.get_close_matches(str(name), SCHEMA_NAMES))


def schema_text(name: str, *, indent: int = 2) -> str:
    """The JSON Schema of ``name`` as JSON text (what ``mps-analgesia schema NAME`` prints).

    Example
    -------
    >>> from mps_analgesia.schema import schema_text
    >>> schema_text("case").startswith("{")
    True
    """
    return json.dumps(json_schema(name), indent=indent, ensure_ascii=False) + "\n"
