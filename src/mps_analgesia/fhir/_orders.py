"""Reading a CDS Hooks order-sign (or order-select) request once: FHIR → patient and orders.

The CDS service hands :func:`read_order_sign` the request's ``context`` and ``prefetch`` and gets
back everything it needs to check and to answer: the patient, each order read into a step (with
where it came from), each order that could not be read (with why), the problems met reading the
patient, and any OperationOutcome the client sent instead of data.  Nothing here knows HTTP or
cards; a malformed request shape raises :class:`~mps_analgesia.errors.CaseFileError` whose
problems name the key (``context.draftOrders``, ``prefetch.weight``).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ..errors import CaseFileError, MpsAnalgesiaError, Problem
from ..patient import Patient
from ..regimen import Regimen
from ..report import Report
from ..report import UnreadOrder as UnreadOrder
from ..steps import Step
from ._base import _list, _medication_name
from ._bundle import _bundle_entries
from ._dosage import medication_index, medication_of, steps_from_resource
from ._medication import may_be_opioid
from ._patient import patient_from_resources

_REQUEST_FILE: Final = "<CDS Hooks request>"
#: The statuses of an active MedicationRequest in prefetch (absent status: read as active).
_ACTIVE: Final = (None, "active")


@attrs.define(frozen=True)
class ReadOrder:
    """One order read into its steps: ``reference`` (``MedicationRequest/abc``), the resource
    as sent, and ``draft`` (in ``context.draftOrders``) or an active order from prefetch.

    ``steps`` holds one step, or for a combination product its opioid step and then one step per
    other ingredient (all of them belong in the checked regimen: the acetaminophen of a
    combination counts toward its daily maximum); ``step`` is the first.
    """

    steps: tuple[Step, ...]
    reference: str
    resource: Mapping[str, Any] = attrs.field(eq=False, repr=False)
    draft: bool

    @property
    def step(self) -> Step:
        """The order's (first) step: its opioid for a combination product."""
        return self.steps[0]


@attrs.define(frozen=True)
class OrderSignRead:
    """What an order-sign request says, read once.

    ``orders`` are the draft orders and then the active ones (a draft that is also active counts
    once, as the draft); ``unread`` the orders that could not be read (none of their checks can
    run, and any total over orders is then incomplete); ``problems`` the patient values that
    could not be read (left out, so the checks needing them report *not checked*);
    ``outcomes`` ``(prefetch key, text)`` for each OperationOutcome sent instead of data;
    ``null_keys`` the prefetch keys sent as ``null`` (CDS Hooks 2.0: the client has no data).
    Each unread order is a :class:`~mps_analgesia.report.UnreadOrder` (also importable as
    ``mps_analgesia.fhir.UnreadOrder``).
    """

    patient: Patient
    orders: tuple[ReadOrder, ...]
    unread: tuple[UnreadOrder, ...]
    problems: tuple[Problem, ...]
    outcomes: tuple[tuple[str, str], ...] = ()
    null_keys: tuple[str, ...] = ()

    @property
    def regimen(self) -> Regimen:
        """The steps of the orders that were read, drafts first, as one regimen."""
        return Regimen([step for order in self.orders for step in order.steps])

    def validate(self, **options: Any) -> Report:
        """Validate the orders that were read against the patient, never understated.

        The same as ``validate(read.regimen, read.patient, **options)``, then
        :meth:`Report.with_unread_orders <mps_analgesia.report.Report.with_unread_orders>`
        with :attr:`unread`: the report lists each order that could not be read, its OME total
        says it is incomplete, and an order that may be an opioid gives a warning.

        Example
        -------
        >>> from mps_analgesia.fhir import read_order_sign
        >>> bad = {"resourceType": "MedicationRequest", "id": "b", "status": "draft",
        ...        "intent": "order", "medicationCodeableConcept": {"text": "oxycodone"}}
        >>> read = read_order_sign({"draftOrders": {"resourceType": "Bundle",
        ...                                         "entry": [{"resource": bad}]}})
        >>> report = read.validate()
        >>> report.status, [u.reference for u in report.unread_orders]
        ('warnings', ['MedicationRequest/b'])
        """
        from ..rules import validate

        report = validate(self.regimen, self.patient, **options)
        return report.with_unread_orders(self.unread)


def _resources(value: object, key: str) -> list[Mapping[str, Any]]:
    """The resources of a prefetch value: a resource, a Bundle of them, or nothing."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise CaseFileError(
            _REQUEST_FILE, [Problem(f"prefetch.{key}", "must be a FHIR resource or Bundle")]
        )
    if value.get("resourceType") == "Bundle":
        try:
            return [r for _i, r in _bundle_entries(value)]
        except CaseFileError as exc:
            raise CaseFileError(
                _REQUEST_FILE,
                [Problem(f"prefetch.{key}.{p.path}".rstrip("."), p.message) for p in exc.problems],
            ) from None
    if not isinstance(value.get("resourceType"), str):
        raise CaseFileError(_REQUEST_FILE, [Problem(f"prefetch.{key}", "has no resourceType")])
    return [value]


def _as_mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _reference(res: Mapping[str, Any], fallback: str) -> str:
    rid = res.get("id")
    return f"{res.get('resourceType')}/{rid}" if isinstance(rid, str) and rid else fallback


def _outcome_text(res: Mapping[str, Any]) -> str:
    texts = []
    for issue in _list(res.get("issue")):
        if not isinstance(issue, Mapping):
            continue
        details = issue.get("details")
        text = details.get("text") if isinstance(details, Mapping) else None
        text = text or issue.get("diagnostics") or issue.get("code")
        if isinstance(text, str) and text.strip():
            texts.append(" ".join(text.split()))
    return "; ".join(texts) or "an OperationOutcome with no text"


def _label(res: Mapping[str, Any], ref: str, medications: Mapping[str, Mapping[str, Any]]) -> str:
    try:
        concept = medication_of(res, medications)
    except MpsAnalgesiaError:
        concept = None
    return _medication_name(concept) or ref


def unread_order(
    res: Mapping[str, Any],
    reference: str,
    medications: Mapping[str, Mapping[str, Any]],
    message: str,
    draft: bool,
) -> UnreadOrder:
    """The :class:`~mps_analgesia.report.UnreadOrder` of an order that could not be read: its
    medicine's name as sent (or the reference) and whether that name may be an opioid."""
    try:
        name = _label(res, reference, medications)
    except Exception:  # an order already refused: its name is only a label, never a crash
        name = reference
    return UnreadOrder(reference, name, message, draft, may_be_opioid(name))


def read_order_sign(
    context: Mapping[str, Any],
    prefetch: Mapping[str, Any] | None = None,
    *,
    as_of: _dt.date | _dt.datetime | None = None,
) -> OrderSignRead:
    """Read an order-sign request's ``context`` and ``prefetch`` once into patient and orders.

    ``context.draftOrders`` must be a Bundle; its MedicationRequests and ServiceRequests are the
    draft orders (a ``medicationReference`` is resolved against the Medications in the Bundle or
    contained in the order).  In ``prefetch``, the first Patient gives the patient; every
    Observation (weight, height, eGFR, QTc …, the most recent of each) and MedicationStatement
    its measures and other medicines; active MedicationRequests are the active orders, and when
    the ``medications`` key is sent, the patient's other medicines are *recorded* (the active
    orders that are not drug steps by name).  An OperationOutcome is reported in ``outcomes``.
    A malformed shape raises :class:`~mps_analgesia.errors.CaseFileError` naming the key.
    ``as_of`` is the date an age from ``birthDate`` is computed on (default: today).

    Example
    -------
    >>> from mps_analgesia.fhir import read_order_sign
    >>> order = {"resourceType": "MedicationRequest", "id": "a", "status": "draft",
    ...     "intent": "order", "medicationCodeableConcept": {"text": "morphine"},
    ...     "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 4,
    ...                                                  "periodUnit": "h"}},
    ...         "route": {"text": "oral"},
    ...         "doseAndRate": [{"doseQuantity": {"value": 10, "system":
    ...                          "http://unitsofmeasure.org", "code": "mg"}}]}]}
    >>> read = read_order_sign({"draftOrders": {"resourceType": "Bundle",
    ...                                         "entry": [{"resource": order}]}})
    >>> [(o.reference, o.step.daily_dose_mg) for o in read.orders], read.unread
    ([('MedicationRequest/a', 60.0)], ())
    """
    prefetch = prefetch if prefetch is not None else {}
    try:
        draft_entries = _bundle_entries(context.get("draftOrders"))
    except CaseFileError as exc:
        raise CaseFileError(
            _REQUEST_FILE,
            [Problem(f"context.draftOrders.{p.path}".rstrip("."), p.message) for p in exc.problems],
        ) from None
    by_key: dict[str, list[Mapping[str, Any]]] = {}
    problems_shape: list[Problem] = []
    null_keys = []
    for key in prefetch:
        if prefetch[key] is None:
            null_keys.append(str(key))
            continue
        try:
            by_key[str(key)] = _resources(prefetch[key], str(key))
        except CaseFileError as exc:
            problems_shape.extend(exc.problems)
    if problems_shape:
        raise CaseFileError(_REQUEST_FILE, problems_shape)
    patient_res = None
    observations: list[Mapping[str, Any]] = []
    statements: list[Mapping[str, Any]] = []
    active: list[Mapping[str, Any]] = []
    outcomes: list[tuple[str, str]] = []
    for key, resources in by_key.items():
        for res in resources:
            rtype = res.get("resourceType")
            if rtype == "Patient" and patient_res is None and key == "patient":
                patient_res = res
            elif rtype == "Observation":
                observations.append(res)
            elif rtype == "MedicationStatement":
                statements.append(res)
            elif rtype == "MedicationRequest" and key == "medications":
                active.append(res)
            elif rtype == "OperationOutcome":
                outcomes.append((key, _outcome_text(res)))
    if patient_res is None:
        patient_res = next(
            (r for rs in by_key.values() for r in rs if r.get("resourceType") == "Patient"), None
        )
    problems: list[Problem] = []
    patient = patient_from_resources(
        patient_res, observations, statements, problems=problems, as_of=as_of
    )
    draft_meds = medication_index(_list(context["draftOrders"].get("entry")))
    orders: list[ReadOrder] = []
    unread: list[UnreadOrder] = []
    draft_refs = set()
    for i, res in draft_entries:
        if res["resourceType"] not in ("MedicationRequest", "ServiceRequest"):
            continue
        ref = _reference(res, f"{res['resourceType']}/draft-{i}")
        draft_refs.add(ref)
        try:
            orders.append(
                ReadOrder(steps_from_resource(res, medications=draft_meds), ref, res, True)
            )
        except MpsAnalgesiaError as exc:
            unread.append(unread_order(res, ref, draft_meds, str(exc), True))
    active_meds = medication_index(_list(_as_mapping(prefetch.get("medications")).get("entry")))
    active_meds.update(medication_index(by_key.get("medications", ())))
    others: list[str] = []
    for i, res in enumerate(active):
        if res.get("status") not in _ACTIVE:
            continue
        ref = _reference(res, f"MedicationRequest/active-{i}")
        if ref in draft_refs:
            continue
        try:
            orders.append(
                ReadOrder(steps_from_resource(res, medications=active_meds), ref, res, False)
            )
        except MpsAnalgesiaError as exc:
            unread.append(unread_order(res, ref, active_meds, str(exc), False))
            try:
                name = _medication_name(medication_of(res, active_meds))
            except MpsAnalgesiaError:
                name = None
            if name is not None:
                others.append(name)
    if "medications" in prefetch and prefetch["medications"] is not None:
        # the active orders were sent: the medicines not in the regimen are recorded (none: [])
        patient = attrs.evolve(patient, medications=[*(patient.medications or ()), *others])
    return OrderSignRead(
        patient=patient,
        orders=tuple(orders),
        unread=tuple(unread),
        problems=tuple(problems),
        outcomes=tuple(outcomes),
        null_keys=tuple(null_keys),
    )
