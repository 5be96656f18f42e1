"""``--format json`` for every subcommand, and the JSON Schema of each output.

Results that have a ``to_dict()`` (reports, plans, assessments) are written with it; other value
objects (a conversion, a protocol, a document) are written field by field: quantities as the
text the library prints (``"60 mg/day"``), tuples as lists.  Each output has a published JSON
Schema (``mps-analgesia schema output-NAME``), which the tests validate every output against.

Example
-------
>>> from mps_analgesia.cli._json import output_schema, OUTPUT_SCHEMAS
>>> sorted(OUTPUT_SCHEMAS)[:3]
['output-assess', 'output-check', 'output-convert']
>>> output_schema("output-plan")["required"]
['protocol', 'status', 'steps']
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["OUTPUT_SCHEMAS", "output_schema", "to_json"]

_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
_ID: Final = "https://mps-analgesia.readthedocs.io/schemas/"


def to_json(obj: Any) -> Any:
    """A JSON-ready form of a result or value object (see the module docstring)."""
    import attrs

    from .. import _units

    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict) and not isinstance(obj, type):
        return to_json(to_dict())
    if _units.is_quantity(obj):
        return _units.format_quantity(obj)
    if attrs.has(type(obj)):
        return {
            f.name: to_json(getattr(obj, f.name))
            for f in attrs.fields(type(obj))
            if not f.name.startswith("_")
        }
    if isinstance(obj, enum.Enum):
        return to_json(obj.value)
    if isinstance(obj, Mapping):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_json(v) for v in obj]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return str(obj)


def _object(required: list[str], properties: Mapping[str, Any], title: str) -> dict[str, Any]:
    return {
        "type": "object",
        "title": title,
        "required": required,
        "properties": dict(properties),
    }


_FINDING: Final = _object(
    ["code", "severity", "message"],
    {
        "code": {"type": "string"},
        "severity": {"enum": ["error", "warning", "info"]},
        "message": {"type": "string"},
        "detail": {"type": "object"},
    },
    "A finding",
)
_REPORT: Final = _object(
    ["status", "counts", "findings", "not_checked", "editions"],
    {
        "status": {"type": "string"},
        "counts": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "findings": {"type": "array", "items": _FINDING},
        "not_checked": {"type": "array"},
        "unread_orders": {
            "type": "array",
            "description": "Orders that could not be read: none of their checks ran, and every "
            "total over the orders (the daily OME) leaves them out, so it is incomplete",
            "items": _object(
                ["reference", "name", "message", "draft", "may_be_opioid"],
                {
                    "reference": {"type": "string"},
                    "name": {"type": "string"},
                    "message": {"type": "string"},
                    "draft": {"type": "boolean"},
                    "may_be_opioid": {"type": "boolean"},
                },
                "An order that could not be read",
            ),
        },
        "passed": {"type": "array"},
        "editions": {"type": "object"},
        "steps": {"type": "array"},
        "intended_use": {"type": "string"},
    },
    "A validation report",
)
_UNREADABLE: Final = _object(
    ["file", "status", "error"],
    {
        "file": {"type": "string"},
        "status": {"const": "unreadable"},
        "error": {"type": "string"},
        "problems": {
            "type": "array",
            "items": _object(
                ["path", "message", "line"],
                {
                    "path": {"type": "string"},
                    "message": {"type": "string"},
                    "line": {"type": ["integer", "null"]},
                },
                "A problem",
            ),
        },
    },
    "A case file that could not be read or checked",
)
_CHECKED: Final = {
    "title": "One case file's report",
    "allOf": [_REPORT, _object(["file"], {"file": {"type": "string"}}, "With its file")],
}
_CHECK_ONE: Final = {"oneOf": [_CHECKED, _UNREADABLE]}
_PROTOCOL: Final = _object(
    ["id", "title", "version", "status", "evidence", "step"],
    {
        "id": {"type": "string"},
        "title": {"type": "string"},
        "version": {"type": "string"},
        "status": {"type": "string"},
        "evidence": {"type": "object"},
        "step": {"type": "array"},
    },
    "A protocol",
)
_DOCUMENT: Final = _object(
    ["title", "blocks"],
    {"title": {"type": "string"}, "blocks": {"type": "array"}, "kind": {"type": "string"}},
    "A document (the radiotherapy table)",
)

#: The JSON Schema of each subcommand's ``--format json`` output, by schema name.
OUTPUT_SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "output-check": {
        "title": "mps-analgesia check --format json (one file: an object; several: a list); "
        "--format jsonl: one such object per line",
        "oneOf": [_CHECK_ONE, {"type": "array", "items": _CHECK_ONE}],
    },
    "output-protocols": _object(
        ["protocols"],
        {
            "protocols": {
                "type": "array",
                "items": _object(
                    ["id", "version", "status", "evidence", "title"],
                    {k: {"type": "string"} for k in ("id", "version", "status", "evidence")}
                    | {"title": {"type": "string"}},
                    "A shipped protocol",
                ),
            }
        },
        "mps-analgesia protocols --format json",
    ),
    "output-summarize": {
        "title": "mps-analgesia summarize --format json: a case's report, a protocol, or the "
        "radiotherapy table",
        "oneOf": [_CHECKED, _PROTOCOL, _DOCUMENT],
    },
    "output-plan": _object(
        ["protocol", "status", "steps"],
        {
            "protocol": _object(
                ["id", "version", "status"],
                {k: {"type": "string"} for k in ("id", "version", "status")},
                "The protocol instantiated",
            ),
            "status": {"type": "string"},
            "choices": {"type": "object"},
            "checks": {"type": "array"},
            "steps": {"type": "array"},
            "decisions": {"type": "array"},
            "monitoring": {"type": "array"},
        },
        "mps-analgesia plan --format json",
    ),
    "output-convert": _object(
        ["table", "edition", "to_drug", "to_route", "calculated", "reduced"],
        {
            "table": {"type": "string"},
            "edition": {"type": "string"},
            "to_drug": {"type": "string"},
            "to_route": {"type": "string"},
            "source_ome": {"type": "object"},
            "calculated": {"type": "object"},
            "reduction": {"type": "object"},
            "reduced": {"type": "object"},
            "schedule": {"type": ["object", "null"]},
            "can_carry": {"type": "boolean"},
        },
        "mps-analgesia convert --format json",
    ),
    "output-assess": _object(
        ["features", "definitions", "edition"],
        {
            "features": {"type": "object"},
            "definitions": {"type": "array"},
            "differential": {"type": "array"},
            "edition": {"type": "string"},
        },
        "mps-analgesia assess --format json",
    ),
    "output-schema": {
        "title": "mps-analgesia schema NAME: a JSON Schema",
        "type": "object",
        "required": ["$schema"],
    },
}


def output_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of an output (``output-check``, ``output-plan`` ...), with its id."""
    body = OUTPUT_SCHEMAS[name]
    return {"$schema": _DIALECT, "$id": f"{_ID}{name}.json", **body}
