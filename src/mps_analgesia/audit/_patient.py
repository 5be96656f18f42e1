"""One patient of an export: the regimen active at the as-of time, validated, as one row.

- **Orders** (MedicationRequest, ServiceRequest): ``active`` or ``on-hold`` ones authored at or
  before the as-of time; ``completed`` or ``stopped`` ones only when their end (the dispense
  validity or the dosage's ``boundsPeriod``) is at or after it; never ``draft``, ``cancelled``,
  ``entered-in-error``.  An order that cannot be read is an *unread order* of the row, with the
  reason; the others are checked.
- **Observations**: those at or before the as-of time (the latest of each measure counts).
- **MedicationStatements**: ``active`` / ``intended`` ones started at or before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from ..errors import MpsAnalgesiaError, Problem

__all__ = ["ROW_VERSION", "audit_patient"]

#: The version of the row layout (in every row, and in the row schema).
ROW_VERSION: Final = 1

_ORDER_ACTIVE: Final = frozenset({"active", "on-hold"})
_ORDER_ENDED: Final = frozenset({"completed", "stopped"})
_STATEMENT_ACTIVE: Final = frozenset({"active", "intended"})


def _time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _get(res: Mapping[str, Any], *path: str | int) -> Any:
    cur: Any = res
    for key in path:
        if isinstance(key, int):
            if not isinstance(cur, list) or len(cur) <= key:
                return None
            cur = cur[key]
        else:
            if not isinstance(cur, Mapping):
                return None
            cur = cur.get(key)
    return cur


def _order_start(res: Mapping[str, Any]) -> datetime | None:
    return _time(res.get("authoredOn")) or _time(res.get("occurrenceDateTime"))


def _order_end(res: Mapping[str, Any]) -> datetime | None:
    return (
        _time(_get(res, "dispenseRequest", "validityPeriod", "end"))
        or _time(_get(res, "dosageInstruction", 0, "timing", "repeat", "boundsPeriod", "end"))
        or _time(_get(res, "occurrencePeriod", "end"))
    )


def active_order(res: Mapping[str, Any], as_of: datetime) -> bool:
    """True when the order is in force at ``as_of`` (see the module docstring)."""
    status = res.get("status")
    start = _order_start(res)
    if start is not None and start > as_of:
        return False
    end = _order_end(res)
    if status in _ORDER_ACTIVE:
        return end is None or end >= as_of
    if status in _ORDER_ENDED:
        return end is not None and end >= as_of
    return False


def _observed_by(res: Mapping[str, Any], as_of: datetime) -> bool:
    when = (
        _time(res.get("effectiveDateTime"))
        or _time(_get(res, "effectivePeriod", "end"))
        or _time(_get(res, "effectivePeriod", "start"))
        or _time(res.get("issued"))
    )
    status = res.get("status")
    if status in ("entered-in-error", "cancelled", "preliminary", "registered"):
        return False
    return when is None or when <= as_of


def _statement_active(res: Mapping[str, Any], as_of: datetime) -> bool:
    if res.get("status") not in _STATEMENT_ACTIVE:
        return False
    start = _time(res.get("effectiveDateTime")) or _time(_get(res, "effectivePeriod", "start"))
    end = _time(_get(res, "effectivePeriod", "end"))
    return (start is None or start <= as_of) and (end is None or end >= as_of)


def _reference(res: Mapping[str, Any]) -> str:
    rid = res.get("id")
    return f"{res.get('resourceType')}/{rid if isinstance(rid, str) else '?'}"


def _order_key(res: Mapping[str, Any]) -> tuple[str, str]:
    start = _order_start(res)
    return (start.isoformat() if start else "", _reference(res))


def audit_patient(
    patient_id: str,
    resources: Iterable[Mapping[str, Any]],
    as_of: datetime,
    registry: Any = None,
) -> dict[str, Any]:
    """The audit row of one patient: counts, findings, unread orders (never raises).

    Example
    -------
    >>> from datetime import datetime, UTC
    >>> from mps_analgesia.audit._patient import audit_patient
    >>> row = audit_patient("p1", [{"resourceType": "Patient", "id": "p1"}],
    ...                     datetime(2026, 1, 1, tzinfo=UTC))
    >>> row["patient"], row["orders"], row["errors"]
    ('p1', 0, 0)
    """
    from ..fhir import medication_index, patient_from_resources, steps_from_resource
    from ..fhir._orders import unread_order
    from ..regimen import Regimen
    from ..rules import validate

    patient_res = None
    observations: list[Mapping[str, Any]] = []
    statements: list[Mapping[str, Any]] = []
    orders: list[Mapping[str, Any]] = []
    listed = list(resources)
    for res in listed:
        kind = res.get("resourceType")
        if kind == "Patient":
            if patient_res is None or str(res.get("id")) == patient_id:
                patient_res = res
        elif kind == "Observation":
            if _observed_by(res, as_of):
                observations.append(res)
        elif kind == "MedicationStatement":
            if _statement_active(res, as_of):
                statements.append(res)
        elif kind in ("MedicationRequest", "ServiceRequest") and active_order(res, as_of):
            orders.append(res)
    problems: list[Problem] = []
    row: dict[str, Any] = {
        "version": ROW_VERSION,
        "patient": patient_id,
        "as_of": as_of.isoformat(),
    }
    try:
        patient = patient_from_resources(
            patient_res, observations, statements, problems=problems, as_of=as_of
        )
    except (MpsAnalgesiaError, ArithmeticError, TypeError, ValueError) as exc:
        from ..patient import Patient

        problems.append(Problem("Patient", f"{type(exc).__name__}: {exc}"))
        patient = Patient()
    medications = medication_index(listed)
    steps: list[Any] = []
    unread: list[dict[str, str]] = []
    not_read: list[Any] = []  # the same orders for the report: its totals are then incomplete
    for res in sorted(orders, key=_order_key):
        try:
            steps.extend(steps_from_resource(res, medications=medications))
        except MpsAnalgesiaError as exc:
            unread.append({"order": _reference(res), "reason": str(exc)})
            not_read.append((res, str(exc)))
        except Exception as exc:  # the order boundary: one bad order never stops the patient
            unread.append({"order": _reference(res), "reason": f"unexpected {type(exc).__name__}"})
            not_read.append((res, f"unexpected {type(exc).__name__}"))
    try:
        kwargs = {"rules": registry} if registry is not None else {}
        report = validate(Regimen(steps), patient, **kwargs).with_unread_orders(
            unread_order(res, _reference(res), medications, why, False) for res, why in not_read
        )
    except Exception as exc:  # the patient boundary: reported in the row, the audit goes on
        row.update(
            status="not checked",
            orders=len(steps),
            errors=0,
            warnings=0,
            info=0,
            not_checked=0,
            not_applicable=0,
            unread_orders=len(unread),
            findings=[],
            unread=unread,
            problems=[f"{p.path}: {p.message}" for p in problems]
            + [f"validate: unexpected {type(exc).__name__}"],
        )
        return row
    counts = report.counts
    row.update(
        status=report.status,
        orders=len(steps),
        errors=counts["error"],
        warnings=counts["warning"],
        info=counts["info"],
        not_checked=counts["not_checked"],
        not_applicable=counts.get("not_applicable", 0),
        unread_orders=len(unread),
        findings=[
            {"code": f.code, "severity": str(f.severity), "step": f.step, "message": f.message}
            for f in report.findings
        ],
        unread=unread,
        problems=[f"{p.path}: {p.message}" for p in problems],
    )
    return row


#: The JSON Schema of one audit row.
ROW_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://mps-analgesia.readthedocs.io/schemas/audit-row.json",
    "title": "mps-analgesia audit: one row per patient",
    "type": "object",
    "required": [
        "version",
        "patient",
        "as_of",
        "status",
        "orders",
        "errors",
        "warnings",
        "info",
        "not_checked",
        "not_applicable",
        "unread_orders",
        "findings",
        "unread",
        "problems",
    ],
    "additionalProperties": False,
    "properties": {
        "version": {"const": ROW_VERSION},
        "patient": {"type": "string", "description": "the Patient id of the export"},
        "as_of": {"type": "string", "format": "date-time"},
        "status": {"type": "string"},
        "orders": {"type": "integer", "minimum": 0, "description": "orders read and checked"},
        **{
            k: {"type": "integer", "minimum": 0}
            for k in ("errors", "warnings", "info", "not_checked", "not_applicable")
        },
        "unread_orders": {"type": "integer", "minimum": 0},
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["code", "severity", "step", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "severity": {"enum": ["error", "warning", "info"]},
                    "step": {"type": ["integer", "null"]},
                    "message": {"type": "string"},
                },
            },
        },
        "unread": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["order", "reason"],
                "properties": {"order": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
        "problems": {"type": "array", "items": {"type": "string"}},
    },
}
