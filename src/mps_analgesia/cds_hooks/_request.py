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

from ..errors import CaseFileError, MpsAnalgesiaError, Problem
from ..fhir import _bundle_entries, _medication_name, patient_from_resources, step_from_resource
from ._discovery import HOOKS, PREFETCH_KEYS, PREFETCH_MEASURES
from ._errors import CdsRequestError

__all__ = ["CheckedRequest", "Order", "Unreadable", "parse_body", "read_request"]


@attrs.define
class Order:
    """One step of the checked regimen and where it came from."""

    step: Any
    reference: str
    resource: Mapping[str, Any]
    draft: bool


@attrs.define(frozen=True)
class Unreadable:
    """An order that could not be read (or checked): its reference, a name, and why."""

    reference: str
    name: str
    message: str


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
    """Read the patient and the orders (the draft orders first, then the active ones)."""
    context = data["context"]
    prefetch: Mapping[str, Any] = data.get("prefetch") or {}
    draft = context.get("draftOrders")
    try:
        draft_entries = _bundle_entries(draft)
    except CaseFileError as exc:
        raise CdsRequestError(
            400,
            "context.draftOrders must be a FHIR Bundle of the orders",
            [str(p) for p in exc.problems],
        ) from None
    resources = {key: _resources(prefetch.get(key), key) for key in PREFETCH_KEYS}
    states: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for key in PREFETCH_KEYS:
        states[key], texts = _prefetch_state(prefetch, key, resources[key])
        if texts:
            errors[key] = texts
    patient_res = next(
        (r for r in resources["patient"] if r.get("resourceType") == "Patient"), None
    )
    observations = [
        r
        for key in PREFETCH_MEASURES
        for r in resources[key]
        if r.get("resourceType") == "Observation"
    ]
    problems: list[Problem] = []
    patient = patient_from_resources(patient_res, observations, (), problems=problems)
    orders: list[Order] = []
    unreadable: list[Unreadable] = []
    draft_refs = set()
    for i, res in draft_entries:
        if res["resourceType"] not in ("MedicationRequest", "ServiceRequest"):
            continue
        ref = _reference(res, f"{res['resourceType']}/draft-{i}")
        draft_refs.add(ref)
        try:
            orders.append(Order(step_from_resource(res), ref, res, True))
        except MpsAnalgesiaError as exc:
            label = _medication_name(res.get("medicationCodeableConcept")) or ref
            unreadable.append(Unreadable(ref, label, str(exc)))
    others = []
    for i, res in enumerate(resources["medications"]):
        if res.get("resourceType") != "MedicationRequest" or res.get("status") not in (
            None,
            "active",
        ):
            continue
        ref = _reference(res, f"MedicationRequest/active-{i}")
        if ref in draft_refs:
            continue
        try:
            orders.append(Order(step_from_resource(res), ref, res, False))
        except MpsAnalgesiaError:
            name = _medication_name(res.get("medicationCodeableConcept"))
            if name is not None:
                others.append(name)
    if states["medications"] in ("sent", "empty", "null"):
        # the active orders were sent (null: the client has none): the medicines not in the
        # regimen are recorded (none: [])
        patient = attrs.evolve(patient, medications=[*(patient.medications or ()), *others])
    return CheckedRequest(data, patient, orders, unreadable, problems, states, errors)
