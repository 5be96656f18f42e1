"""Reading a CDS Hooks request: the body, the draft orders and the prefetch, once.

The result is a :class:`CheckedRequest`: the patient and the orders (each a step with the
resource it was read from), the orders that could not be read and the patient data that could
not be read, and which prefetch keys were absent or empty.  Nothing here validates or writes a
card.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ..errors import CaseFileError, Problem
from ..fhir import read_order_sign
from ..fhir._bundle import _bundle_entries
from ._discovery import HOOKS, PREFETCH_KEYS
from ._errors import CdsRequestError

__all__ = ["CheckedRequest", "Order", "Unreadable", "parse_body", "read_request"]


@attrs.define
class Order:
    """One step of the checked regimen and where it came from.

    A combination product is one order of several steps; ``parts`` is how many steps its order
    has (a suggestion is written only for an order of one step).
    """

    step: Any
    reference: str
    resource: Mapping[str, Any]
    draft: bool
    parts: int = 1


@attrs.define(frozen=True)
class Unreadable:
    """An order that could not be read (or checked): its reference, a name, and why."""

    reference: str
    name: str
    message: str
    draft: bool = True


#: What a prefetch key held: ``absent`` (not sent: the client chose not to, or could not),
#: ``null`` (sent as null: the client has no data), ``empty`` (a Bundle without entries),
#: ``error`` (an OperationOutcome: the client's fetch failed), ``sent`` (data).
PREFETCH_STATES: Final = ("absent", "null", "empty", "error", "sent")


@attrs.define
class CheckedRequest:
    """What a request holds, read once: patient, orders and what could not be read.

    ``prefetch`` maps each prefetch key the service reads to one of :data:`PREFETCH_STATES`;
    ``prefetch_errors`` the diagnostics of the OperationOutcomes sent under a key.
    """

    data: Mapping[str, Any]
    patient: Any
    orders: list[Order]
    unreadable: list[Unreadable]
    problems: list[Problem]
    prefetch: dict[str, str]
    prefetch_errors: dict[str, list[str]]

    def keys_in(self, state: str) -> list[str]:
        """The prefetch keys in ``state``, in discovery order."""
        return [k for k, v in self.prefetch.items() if v == state]


def _outcome_texts(res: Mapping[str, Any]) -> list[str]:
    """The diagnostics (or details) of an OperationOutcome's issues."""
    out = []
    issues = res.get("issue")
    for issue in issues if isinstance(issues, list) else []:
        if not isinstance(issue, Mapping):
            continue
        text = issue.get("diagnostics")
        details = issue.get("details")
        if not isinstance(text, str) and isinstance(details, Mapping):
            text = details.get("text")
        code = issue.get("code")
        out.append(str(text) if isinstance(text, str) else f"issue {code!s}")
    return out or ["an OperationOutcome without issues"]


def _resources(value: object, key: str) -> list[Mapping[str, Any]]:
    """The resources of a prefetch value: a resource, a Bundle of them, or nothing."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise CdsRequestError(400, f"prefetch.{key} must be a FHIR resource or Bundle")
    if value.get("resourceType") == "Bundle":
        try:
            return [r for _i, r in _bundle_entries(value)]
        except CaseFileError as exc:
            raise CdsRequestError(
                400, f"prefetch.{key} is not a valid Bundle", [str(p) for p in exc.problems]
            ) from None
    if not isinstance(value.get("resourceType"), str):
        raise CdsRequestError(400, f"prefetch.{key} has no resourceType")
    return [value]


def _prefetch_state(
    prefetch: Mapping[str, Any], key: str, resources: list[Mapping[str, Any]]
) -> tuple[str, list[str]]:
    if key not in prefetch:
        return "absent", []
    if prefetch[key] is None:
        return "null", []
    errors = [
        text
        for r in resources
        if r.get("resourceType") == "OperationOutcome"
        for text in _outcome_texts(r)
    ]
    data = [r for r in resources if r.get("resourceType") != "OperationOutcome"]
    if errors and not data:
        return "error", errors
    if not data:
        return "empty", errors
    return "sent", errors


def _reference(res: Mapping[str, Any], fallback: str) -> str:
    rid = res.get("id")
    return f"{res.get('resourceType')}/{rid}" if isinstance(rid, str) and rid else fallback


def parse_body(body: object) -> Mapping[str, Any]:
    """The request's JSON object, its shape checked (hook, context, prefetch)."""
    if not isinstance(body, bytes | bytearray | str):
        data: Any = body  # already parsed
    else:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise CdsRequestError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise CdsRequestError(400, "the request body must be a JSON object")
    hook = data.get("hook")
    if hook not in HOOKS:
        raise CdsRequestError(400, f"'hook' must be one of {', '.join(HOOKS)}, not {hook!r}")
    if "hookInstance" in data and not isinstance(data["hookInstance"], str):
        raise CdsRequestError(400, "'hookInstance' must be a string")
    context = data.get("context")
    if not isinstance(context, Mapping):
        raise CdsRequestError(400, "'context' must be an object")
    prefetch = data.get("prefetch")
    if prefetch is not None and not isinstance(prefetch, Mapping):
        raise CdsRequestError(400, "'prefetch' must be an object")
    return data


def read_request(data: Mapping[str, Any]) -> CheckedRequest:
    """Read the request once with the FHIR reader (:func:`~mps_analgesia.fhir.read_order_sign`).

    The draft orders come first, then the active ones; each step of an order (a combination
    product has several) is one :class:`Order`.  Each prefetch key gets its state
    (:data:`PREFETCH_STATES`).
    """
    context = data["context"]
    prefetch: Mapping[str, Any] = data.get("prefetch") or {}
    try:
        read = read_order_sign(context, prefetch)
    except CaseFileError as exc:
        paths = [p.path for p in exc.problems]
        if any(p.startswith("context") for p in paths):
            what = "context.draftOrders must be a FHIR Bundle of the orders"
        else:
            keys = sorted({p.split(".")[1] for p in paths if p.startswith("prefetch.")})
            what = (
                f"{', '.join(f'prefetch.{k}' for k in keys) or 'prefetch'} must be a FHIR "
                "resource or Bundle"
            )
        raise CdsRequestError(400, what, [str(p) for p in exc.problems]) from None
    states: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for key in PREFETCH_KEYS:
        states[key] = _prefetch_state(prefetch, key, _resources(prefetch.get(key), key))[0]
    for key, text in read.outcomes:
        errors.setdefault(key, []).append(text)
    patient = read.patient
    if states["medications"] == "null" and patient.medications is None:
        patient = attrs.evolve(patient, medications=[])  # null: the client has none on record
    orders = [
        Order(step, o.reference, o.resource, o.draft, len(o.steps))
        for o in read.orders
        for step in o.steps
    ]
    unreadable = [Unreadable(u.reference, u.name, u.message, u.draft) for u in read.unread]
    return CheckedRequest(data, patient, orders, unreadable, list(read.problems), states, errors)
