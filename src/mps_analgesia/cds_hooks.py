"""A CDS Hooks 2.0 service: ``order-select`` and ``order-sign`` checked by :func:`validate`.

Run it with ``mps-analgesia serve --host 127.0.0.1 --port 8080`` (or :func:`serve`), or mount the
ASGI app from :func:`create_app` in your own server.  It needs the ``serve`` extra (Starlette and
uvicorn); they are imported only when the app is built, so ``import mps_analgesia`` never loads
them.

Endpoints
---------
``GET /cds-services``
    The discovery document: the service ``mps-analgesia`` (hook ``order-sign``) and
    ``mps-analgesia-order-select`` (hook ``order-select``), with prefetch templates for the
    patient, weight, height, eGFR, QTc and the active MedicationRequests.
``POST /cds-services/mps-analgesia`` (and ``/cds-services/mps-analgesia-order-select``)
    Reads ``context.draftOrders`` (a Bundle) and ``prefetch``, builds the patient and the regimen
    (the draft orders first, then the active medication requests), validates, and answers
    ``{"cards": [...]}``.  Both hooks are accepted on both paths.
``POST /cds-services/{id}/feedback``
    Accepted and acknowledged (``{}``); nothing is stored.

Cards: one per finding (indicator from the severity, summary under 140 characters, the receipt
in the detail, the source label and DOI link, ``overrideReasons``, and a ``suggestions`` entry
where a reduced dose at the limit can be computed from the finding's own numbers and passes the
checks again); one card naming the checks that could not run (missing prefetch data); one card
per order that could not be read.  Malformed JSON or an invalid Bundle is answered with 400 and a
JSON error body; no request produces a 500.
"""

from __future__ import annotations

import copy
import json
import math
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs

from . import _catalog, _units
from .errors import CaseFileError, MpsAnalgesiaError, Problem
from .fhir import (
    CS_FINDING,
    CS_OVERRIDE,
    LOINC,
    _bundle_entries,
    _codes,
    _medication_name,
    patient_from_resources,
    step_from_resource,
    to_bundle,
    to_fhir_quantity,
)
from .regimen import Regimen
from .report import CDS_INDICATOR, INTENDED_USE, SEVERITIES, Finding, Report

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from .rules import RuleRegistry

__all__ = [
    "HOOKS",
    "MAX_BODY_BYTES",
    "SELECT_SERVICE_ID",
    "SERVICE_ID",
    "CdsRequestError",
    "create_app",
    "discovery_document",
    "handle",
    "listening_socket",
    "make_server",
    "serve",
]

#: The id of the service (hook ``order-sign``; it answers ``order-select`` too).
SERVICE_ID: Final = "mps-analgesia"
#: The id under which the same service is discovered for ``order-select``.
SELECT_SERVICE_ID: Final = "mps-analgesia-order-select"
#: The hooks the service answers.
HOOKS: Final = ("order-select", "order-sign")
#: The largest request body read (bytes); a larger one is answered with 413.
MAX_BODY_BYTES: Final = 2_000_000
_SUMMARY_MAX: Final = 139  # CDS Hooks: "SHOULD be less than 140 characters"
_PREFETCH_MEASURES: Final = ("weight", "height", "egfr", "qtc")


class CdsRequestError(MpsAnalgesiaError, ValueError):
    """A CDS Hooks request that cannot be answered: ``status`` is the HTTP status to send."""

    def __init__(self, status: int, message: str, problems: Sequence[str] = ()) -> None:
        self.status = status
        self.message = message
        self.problems = tuple(problems)
        super().__init__(status, message, self.problems)

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        out: dict[str, Any] = {"error": self.message}
        if self.problems:
            out["problems"] = list(self.problems)
        return out


# ---- discovery ----------------------------------------------------------------------------------


def _observation_query(measure: str) -> str:
    row = _codes()["observations"][measure]
    codes = [c for c in [row.get("code", ""), *row.get("accept", ())] if c]
    joined = ",".join(f"{LOINC}|{c}" for c in codes)
    return f"Observation?patient={{{{context.patientId}}}}&code={joined}&_sort=-date&_count=1"


def _prefetch() -> dict[str, str]:
    out = {"patient": "Patient/{{context.patientId}}"}
    for measure in _PREFETCH_MEASURES:
        out[measure] = _observation_query(measure)
    out["medications"] = "MedicationRequest?patient={{context.patientId}}&status=active"
    return out


def discovery_document() -> dict[str, Any]:
    """The CDS Hooks discovery document (``GET /cds-services``).

    Example
    -------
    >>> from mps_analgesia.cds_hooks import discovery_document
    >>> [(s["id"], s["hook"]) for s in discovery_document()["services"]]
    [('mps-analgesia', 'order-sign'), ('mps-analgesia-order-select', 'order-select')]
    >>> sorted(discovery_document()["services"][0]["prefetch"])
    ['egfr', 'height', 'medications', 'patient', 'qtc', 'weight']
    """
    description = (
        "Checks analgesic orders for malignant psoas syndrome (opioids, adjuvant methadone, "
        "adjuvants, psoas compartment block, radiotherapy) against published limits; reports "
        "what could not be checked. Decision support only."
    )
    prefetch = _prefetch()
    return {
        "services": [
            {
                "hook": "order-sign",
                "id": SERVICE_ID,
                "title": "MPS analgesia check",
                "description": description,
                "prefetch": prefetch,
                "usageRequirements": "Send the orders as MedicationRequest (drugs) and "
                "ServiceRequest (block, radiotherapy) in context.draftOrders.",
            },
            {
                "hook": "order-select",
                "id": SELECT_SERVICE_ID,
                "title": "MPS analgesia check (on select)",
                "description": description,
                "prefetch": prefetch,
            },
        ]
    }


# ---- the request --------------------------------------------------------------------------------


@attrs.define
class _Order:
    """One step of the checked regimen and where it came from."""

    step: Any
    reference: str
    resource: Mapping[str, Any]
    draft: bool


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


def _reference(res: Mapping[str, Any], fallback: str) -> str:
    rid = res.get("id")
    return f"{res.get('resourceType')}/{rid}" if isinstance(rid, str) and rid else fallback


def _parse(body: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        data: Any = body
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


def _prefetch_status(prefetch: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Prefetch keys not provided, and keys provided but with nothing on record."""
    absent, empty = [], []
    for key in ("patient", *_PREFETCH_MEASURES):
        value = prefetch.get(key)
        if value is None:
            absent.append(key)
        elif (
            isinstance(value, Mapping)
            and value.get("resourceType") == "Bundle"
            and not value.get("entry")
        ):
            empty.append(key)
    return absent, empty


def _build(
    data: Mapping[str, Any],
) -> tuple[Any, list[_Order], list[tuple[str, str, str]], list[Problem]]:
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
    patient_res = None
    for res in _resources(prefetch.get("patient"), "patient"):
        if res.get("resourceType") == "Patient":
            patient_res = res
            break
    observations: list[Mapping[str, Any]] = []
    for key in _PREFETCH_MEASURES:
        observations.extend(
            r for r in _resources(prefetch.get(key), key) if r.get("resourceType") == "Observation"
        )
    problems: list[Problem] = []
    patient = patient_from_resources(patient_res, observations, (), problems=problems)
    orders: list[_Order] = []
    unreadable: list[tuple[str, str, str]] = []
    draft_refs = set()
    for i, res in draft_entries:
        if res["resourceType"] not in ("MedicationRequest", "ServiceRequest"):
            continue
        ref = _reference(res, f"{res['resourceType']}/draft-{i}")
        draft_refs.add(ref)
        try:
            orders.append(_Order(step_from_resource(res), ref, res, True))
        except MpsAnalgesiaError as exc:
            label = _medication_name(res.get("medicationCodeableConcept")) or ref
            unreadable.append((ref, label, str(exc)))
    others = []
    for i, res in enumerate(_resources(prefetch.get("medications"), "medications")):
        if res.get("resourceType") != "MedicationRequest" or res.get("status") not in (
            None,
            "active",
        ):
            continue
        ref = _reference(res, f"MedicationRequest/active-{i}")
        if ref in draft_refs:
            continue
        try:
            orders.append(_Order(step_from_resource(res), ref, res, False))
        except MpsAnalgesiaError:
            name = _medication_name(res.get("medicationCodeableConcept"))
            if name is not None:
                others.append(name)
    if prefetch.get("medications") is not None:
        # the active orders were sent: the medicines not in the regimen are recorded (none: [])
        patient = attrs.evolve(patient, medications=[*(patient.medications or ()), *others])
    return patient, orders, unreadable, problems


# ---- cards --------------------------------------------------------------------------------------


def _summary(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= _SUMMARY_MAX:
        return text
    cut = text[: _SUMMARY_MAX - 1]
    if " " in cut[40:]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:.") + "…"


def _override_reasons() -> list[dict[str, str]]:
    return [
        {"system": CS_OVERRIDE, "code": str(r["code"]), "display": str(r["display"])}
        for r in _codes().get("override_reasons", ())
    ]


def _records(f: Finding) -> list[_catalog.SourceRecord]:
    """The bibliography records of the finding's sources, in its order, each once."""
    out: list[_catalog.SourceRecord] = []
    for sid in dict.fromkeys(f.source):
        try:
            out.append(_catalog.source(sid))
        except MpsAnalgesiaError:
            continue
    return out


def _short(citation: str) -> str:
    return citation if len(citation) <= 80 else citation[:79].rstrip() + "…"


def _source(f: Finding) -> dict[str, Any]:
    """The card's source: label and link both from the finding's first source.

    The link is that source's DOI, or absent when it has none: a label never names one source
    while the link opens another (the further sources are the card's ``links``).
    """
    out: dict[str, Any] = {"label": "mps-analgesia"}
    records = _records(f)
    if records:
        out["label"] = f"mps-analgesia · {_short(records[0].citation)}"
        if records[0].url:
            out["url"] = records[0].url
    out["topic"] = {"system": CS_FINDING, "code": f.code, "display": f.code}
    return out


def _links(f: Finding) -> list[dict[str, str]]:
    """A link per further source with a DOI, each labelled with its own citation."""
    return [
        {"label": _short(r.citation), "url": r.url, "type": "absolute"}
        for r in _records(f)[1:]
        if r.url
    ]


def _detail(f: Finding, order: _Order | None) -> str:
    lines = [f"**{f.severity.upper()}** · `{f.code}` · evidence level {f.level}", "", f.message]
    if f.arithmetic:
        lines += ["", f"**Calculation:** {f.arithmetic}"]
    if f.detail:
        lines += ["", "| value | |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in f.detail.items()]
    if order is not None:
        lines += ["", f"**Order:** {order.step.describe()} ({order.reference})"]
    cites = []
    for sid in f.source:
        try:
            record = _catalog.source(sid)
        except MpsAnalgesiaError:
            continue
        cites.append(f"- {record.citation}" + (f" {record.url}" if record.url else ""))
    if cites:
        lines += ["", "**Sources:**", *cites]
    lines += ["", f"_{INTENDED_USE}_"]
    return "\n".join(lines)


#: Findings whose sources set the dosing interval together with the maximum: the renal bands
#: (tramadol below CrCl 30: every 12 h; gabapentin below 30: once daily; pregabalin below 15: one
#: dose) and the hepatic limits (tramadol in cirrhosis: 50 mg every 12 h; the acetaminophen limit
#: sets none, but shares the code and is treated alike).  data/organ.toml holds the maxima but
#: not these intervals as values, so a lower dose at the order's own interval cannot be
#: justified from the data: no dose is suggested for an order with such a finding.
_SCHEDULE_BOUND: Final = frozenset({"renal.dose-adjust", "hepatic.dose-adjust"})


def _limit(f: Finding, dimension: str, unit: str) -> float | None:
    """The finding's ``limit`` in ``unit``: the canonical float (its UCUM code in
    ``limit_unit``), or, for a caller's own rule, a quantity text of ``dimension``."""
    from . import _catalog

    value = f.detail.get("limit")
    if isinstance(value, float):
        if f.detail.get("limit_unit") != _catalog.ucum_code(unit):
            return None
        return value if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    try:
        got: float = _units.magnitude_in(_units.as_quantity(value, dimension), unit)
    except MpsAnalgesiaError:
        return None
    return got if math.isfinite(got) else None


def _dose_family(code: str) -> bool:
    """Findings a lower dose per administration can resolve (maximum and adjusted doses)."""
    return code.startswith("dose.") or code.endswith(".dose-adjust")


def _num_text(x: float) -> str:
    return f"{x:.6g}"


def _dispensable(step: Any, target_mg: float) -> tuple[float, str] | None:
    """The largest dispensable dose (mg) not above ``target_mg``, and how it is made up.

    With a product of the step's drug, route and formulation in ``data/strengths.toml`` the dose
    is rounded *down* to a sum of its strengths (at most the file's units per dose) or to a
    multiple of its measuring increment.  Without one, no rounding is possible from the data: the
    dose is offered only if ``target_mg`` is itself a whole number of mg (the limit exactly, such
    as 4000 mg/day ÷ 4 = 1000 mg); ``33.3 mg`` or ``233 mg`` is never offered.
    """
    from .conversion import _products  # read-only: the strengths table conversions round with

    product = _products().get((step.drug, step.route, step.formulation))
    if product is not None:
        if product.unit != "mg":
            return None
        got = product.round_down(target_mg)
        if got is None:
            return None
        amount, parts = got
        if product.increment:
            how = f"in steps of {_num_text(product.increment)} mg ({product.formulation})"
        else:
            how = " + ".join(f"{n} × {_num_text(s)} mg" for s, n in parts)
            how = f"{how} {product.formulation}"
        return amount, how
    whole = round(target_mg)
    if whole < 1 or abs(target_mg - whole) > 1e-9 * max(1.0, target_mg):
        return None
    return float(whole), "the limit itself; no product strengths are on file for this drug"


def _suggestion(
    index: int,
    orders: Sequence[_Order],
    findings: Sequence[Finding],
    patient: Any,
    rules: RuleRegistry | None,
) -> dict[str, Any] | None:
    """A reduced dose for order ``index``, computed only from its findings' own limits.

    The target is the lowest limit among the step's dose findings (a per-dose limit as is, a daily
    limit divided by the doses per day); the dose is the target rounded *down* to something that
    can be dispensed (:func:`_dispensable`).  It is offered only if every dose finding on the step
    carries numbers to compute from, none of them also sets the dosing interval
    (:data:`_SCHEDULE_BOUND`), and the regimen, re-checked with that dose, has no dose finding
    left on the step.
    """
    order = orders[index]
    step = order.step
    if (
        not order.draft
        or step.kind not in ("opioid", "methadone_adjuvant", "adjuvant")
        or step.is_continuous
        or step.titration
        or not isinstance(order.resource.get("id"), str)
    ):
        return None
    mine = [g for g in findings if g.step == index and _dose_family(g.code)]
    if any(g.code in _SCHEDULE_BOUND for g in mine):
        return None  # the source sets the interval too; the data cannot say which
    targets = []
    for g in mine:
        steps = g.detail.get("steps")
        if isinstance(steps, list) and steps != [index]:
            return None  # a total over several orders: this order alone cannot fix it
        per_dose = _limit(g, "mass", "mg")
        per_day = _limit(g, "mass_rate", "mg/day")
        if per_dose is not None:
            targets.append(per_dose)
        elif per_day is not None and step.doses_per_day and math.isfinite(step.doses_per_day):
            targets.append(per_day / step.doses_per_day)
        else:
            return None  # a dose finding without numbers to compute from
    if not targets:
        return None
    got = _dispensable(step, min(targets))
    if got is None:
        return None
    value, how = got
    if not value > 0 or value >= step.dose_mg:
        return None
    new_dose = _units.Q(value, "mg")
    try:
        new_step = attrs.evolve(step, dose=new_dose)
    except MpsAnalgesiaError:
        return None
    steps_now = [o.step for o in orders]
    steps_now[index] = new_step
    from .rules import validate

    try:
        recheck = validate(Regimen(steps_now), patient, rules=rules)
    except ArithmeticError:
        return None
    if any(g.step == index and _dose_family(g.code) for g in recheck.findings):
        return None
    resource = copy.deepcopy(dict(order.resource))
    dosages = resource.get("dosageInstruction")
    if not isinstance(dosages, list) or not dosages or not isinstance(dosages[0], dict):
        return None
    first = dosages[0]
    dr = first.get("doseAndRate")
    if not isinstance(dr, list) or not dr or not isinstance(dr[0], dict):
        return None
    dr[0]["doseQuantity"] = to_fhir_quantity(new_dose)
    first["text"] = new_step.describe()
    try:
        json.dumps(resource, allow_nan=False)
    except (TypeError, ValueError):
        return None
    dose_text = _units.format_quantity(new_dose)
    daily = _units.format_quantity(_units.Q(round(new_step.daily_dose_mg, 6), "mg/day"))
    return {
        "label": _summary(f"Change to {dose_text} per dose ({daily}, within the limits found)"),
        "uuid": str(uuid.uuid4()),
        "actions": [
            {
                "type": "update",
                "description": f"{step.drug}: {_units.format_quantity(step.dose)} → {dose_text} "
                f"per dose ({new_step.describe()}); {how}",
                "resource": resource,
            }
        ],
    }


def _finding_card(
    f: Finding, orders: Sequence[_Order], suggestions: Mapping[int, dict[str, Any] | None]
) -> dict[str, Any]:
    order = orders[f.step] if f.step is not None and 0 <= f.step < len(orders) else None
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": _summary(f.message),
        "detail": _detail(f, order),
        "indicator": CDS_INDICATOR[f.severity],
        "source": _source(f),
    }
    links = _links(f)
    if links:
        card["links"] = links
    suggestion = suggestions.get(f.step) if f.step is not None and _dose_family(f.code) else None
    if f.code in _SCHEDULE_BOUND:
        card["detail"] = card["detail"].replace(
            f"\n\n_{INTENDED_USE}_",
            "\n\nNo dose is suggested for a renal or hepatic dose limit: such sources set the "
            "dosing interval with the maximum (tramadol below CrCl 30 mL/min: every 12 h; "
            "gabapentin at 15-29: once daily), and the data hold the maximum only. Check the "
            f"source's dose and interval.\n\n_{INTENDED_USE}_",
        )
    if suggestion is not None:
        card["suggestions"] = [suggestion]
        card["selectionBehavior"] = "at-most-one"
    if f.severity in ("error", "warning"):
        card["overrideReasons"] = _override_reasons()
    return card


def _not_checked_card(
    report: Report,
    orders: Sequence[_Order],
    absent: Sequence[str],
    empty: Sequence[str],
    problems: Sequence[Problem],
) -> dict[str, Any] | None:
    if not report.not_checked and not problems:
        return None
    missing = sorted({n.missing for n in report.not_checked})
    n = len(report.not_checked)
    if n:
        summary = f"{n} check(s) could not run: missing {', '.join(missing)}"
    else:
        summary = "Some patient data could not be read; the checks that need them did not run"
    lines = ["Checks that could **not** run (they are not passed):", ""]
    if report.not_checked:
        lines += ["| check | order | missing | why |", "|---|---|---|---|"]
        for nc in report.not_checked:
            where = orders[nc.step].reference if nc.step is not None else "regimen"
            lines.append(f"| `{nc.rule}` | {where} | {nc.missing} | {nc.reason} |")
    if absent:
        lines += ["", f"Not sent in prefetch: {', '.join(absent)}."]
    if empty:
        lines += ["", f"Nothing on record for: {', '.join(empty)}."]
    if problems:
        lines += ["", "Could not be read:"] + [f"- {p}" for p in problems]
    lines += ["", f"_{INTENDED_USE}_"]
    patient_gap = bool(absent or empty or problems)
    return {
        "uuid": str(uuid.uuid4()),
        "summary": _summary(summary),
        "detail": "\n".join(lines),
        "indicator": "warning" if patient_gap else "info",
        "source": {"label": "mps-analgesia"},
    }


def _unreadable_card(ref: str, name: str, message: str) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "summary": _summary(f"Order for {name} could not be checked: {message}"),
        "detail": f"The order {ref} could not be read, so **none** of its checks ran.\n\n"
        f"{message}\n\n_{INTENDED_USE}_",
        "indicator": "warning",
        "source": {"label": "mps-analgesia"},
    }


#: The patient's numbers a check may compute with, tried one by one when a check overflows.
_PATIENT_NUMBERS: Final = ("age", "weight", "height", "egfr", "creatinine_clearance", "qtc")


def _overflow_text(exc: ArithmeticError) -> str:
    return (
        f"a number is too large or too small for the checks to compute with "
        f"({type(exc).__name__}: {exc})"
    )


def _validate(
    orders: list[_Order],
    patient: Any,
    rules: RuleRegistry | None,
    unreadable: list[tuple[str, str, str]],
    problems: list[Problem],
) -> tuple[Report, list[_Order], Any]:
    """Validate; if a check overflows, find the orders and patient values that make it overflow.

    Every value was finite when read, but a finite extreme (``1e300 mg``, a weight of ``1e-300
    kg``) can still overflow inside a check.  Then the orders are re-checked one by one against
    the patient without numbers (an order that overflows on its own gets a not-checked order
    card), and the patient's numbers are added back one by one (one that overflows is reported
    under *could not be read* and left out, so the checks needing it report *not checked*).
    """
    from .rules import validate

    def attempt(kept: Sequence[_Order], who: Any) -> Report | ArithmeticError:
        try:
            return validate(Regimen([o.step for o in kept]), who, rules=rules)
        except ArithmeticError as exc:
            return exc

    first = attempt(orders, patient)
    if isinstance(first, Report):
        return first, orders, patient
    bare = attrs.evolve(patient, **dict.fromkeys(_PATIENT_NUMBERS))
    kept: list[_Order] = []
    for order in orders:
        result = attempt([*kept, order], bare)
        if isinstance(result, Report):
            kept.append(order)
        else:
            name = getattr(order.step, "drug", None) or order.step.kind.replace("_", " ")
            unreadable.append((order.reference, str(name), _overflow_text(result)))
    for field in _PATIENT_NUMBERS:
        value = getattr(patient, field)
        if value is None:
            continue
        trial = attrs.evolve(bare, **{field: value})
        result = attempt(kept, trial)
        if isinstance(result, Report):
            bare = trial
        else:
            problems.append(Problem(f"Patient.{field}", _overflow_text(result)))
    final = attempt(kept, bare)
    if isinstance(final, ArithmeticError):  # pragma: no cover - each part passed on its own
        raise final
    return final, kept, bare


def _cards(data: Mapping[str, Any], rules: RuleRegistry | None) -> list[dict[str, Any]]:
    patient, orders, unreadable, problems = _build(data)
    report, orders, patient = _validate(orders, patient, rules, unreadable, problems)
    findings = sorted(report.findings, key=lambda f: SEVERITIES.index(f.severity))
    suggestions = {
        i: _suggestion(i, orders, report.findings, patient, rules)
        for i in sorted({f.step for f in findings if f.step is not None and _dose_family(f.code)})
        if 0 <= i < len(orders)
    }
    cards = [_finding_card(f, orders, suggestions) for f in findings]
    cards.extend(_unreadable_card(*u) for u in unreadable)
    absent, empty = _prefetch_status(data.get("prefetch") or {})
    nc = _not_checked_card(report, orders, absent, empty, problems)
    if nc is not None:
        cards.append(nc)
    return cards


def handle(
    body: bytes | str | Mapping[str, Any], *, rules: RuleRegistry | None = None
) -> tuple[int, dict[str, Any]]:
    """Answer one CDS Hooks service request: ``(HTTP status, JSON body)``; never raises.

    ``body`` is the request body (bytes or text) or the already parsed JSON object.  A request
    that cannot be read gives 400 with ``{"error": ..., "problems": [...]}``; anything the
    service cannot process otherwise gives 422; a checked request gives 200 with ``{"cards"}``.

    Example
    -------
    >>> from mps_analgesia.cds_hooks import handle
    >>> handle(b"{not json")[0]
    400
    >>> status, body = handle({"hook": "order-sign", "hookInstance": "x",
    ...                        "context": {"draftOrders": {"resourceType": "Bundle"}}})
    >>> status, [c["indicator"] for c in body["cards"]]
    (200, [])
    """
    try:
        data = _parse(body)
        cards = _cards(data, rules)
        payload: dict[str, Any] = {"cards": cards}
        json.dumps(payload, allow_nan=False)
        return 200, payload
    except CdsRequestError as exc:
        return exc.status, exc.body()
    except MpsAnalgesiaError as exc:
        return 422, {"error": f"the request could not be checked: {exc}"}
    except Exception as exc:  # the service must answer every request, never crash
        return 422, {"error": f"the request could not be processed ({type(exc).__name__})"}


# ---- ASGI ---------------------------------------------------------------------------------------


def _require_serve_extra() -> None:
    try:
        import starlette  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the CDS Hooks service needs the 'serve' extra: pip install 'mps-analgesia[serve]'"
        ) from exc


def _dumps(payload: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(payload, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError):
        return b'{"error": "the response could not be written as JSON"}'


def create_app(
    *, rules: RuleRegistry | None = None, max_body_bytes: int = MAX_BODY_BYTES
) -> Starlette:
    """The CDS Hooks service as a Starlette ASGI application.

    ``rules`` replaces the default rule registry (for example ``default_rules().disable(...)``).

    Example
    -------
    >>> from mps_analgesia.cds_hooks import create_app
    >>> sorted(r.path for r in create_app().routes)  # doctest: +NORMALIZE_WHITESPACE
    ['/cds-services', '/cds-services/{service_id}', '/cds-services/{service_id}/feedback']
    """
    _require_serve_extra()
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    def json_response(status: int, payload: Mapping[str, Any]) -> Response:
        return Response(_dumps(payload), status_code=status, media_type="application/json")

    async def read_body(request: Request) -> bytes | None:
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def discovery(request: Request) -> Response:
        return json_response(200, discovery_document())

    async def service(request: Request) -> Response:
        service_id = request.path_params.get("service_id")
        if service_id not in (SERVICE_ID, SELECT_SERVICE_ID):
            return json_response(404, {"error": f"no CDS service {service_id!r}"})
        try:
            body = await read_body(request)
        except Exception:
            return json_response(400, {"error": "the request body could not be read"})
        if body is None:
            return json_response(413, {"error": f"the request body is over {max_body_bytes} bytes"})
        status, payload = handle(body, rules=rules)
        return json_response(status, payload)

    async def feedback(request: Request) -> Response:
        service_id = request.path_params.get("service_id")
        if service_id not in (SERVICE_ID, SELECT_SERVICE_ID):
            return json_response(404, {"error": f"no CDS service {service_id!r}"})
        try:
            body = await read_body(request)
            data = json.loads(body) if body is not None else None
        except Exception:
            return json_response(400, {"error": "the feedback body is not valid JSON"})
        if not isinstance(data, Mapping):
            return json_response(400, {"error": "the feedback body must be a JSON object"})
        return json_response(200, {})

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 400
        detail = exc.detail if isinstance(exc, HTTPException) else "bad request"
        return json_response(status, {"error": str(detail)})

    async def any_error(request: Request, exc: Exception) -> Response:
        return json_response(
            422, {"error": f"the request could not be processed ({type(exc).__name__})"}
        )

    routes = [
        Route("/cds-services", discovery, methods=["GET"]),
        Route("/cds-services/{service_id}", service, methods=["POST"]),
        Route("/cds-services/{service_id}/feedback", feedback, methods=["POST"]),
    ]
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=["*"],
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["*"],
        )
    ]
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: http_error, Exception: any_error},
    )


def listening_socket(host: str = "127.0.0.1", port: int = 8080) -> socket.socket:
    """A bound TCP socket with ``TCP_NODELAY`` set, for uvicorn to serve on.

    ``TCP_NODELAY`` matters: uvicorn writes a response's head and body separately, and with
    Nagle's algorithm on, the body then waits for the client's delayed ACK (about 40 ms on
    Linux) — ten times the time it takes to check the orders.  ``port=0`` picks a free port.

    Example
    -------
    >>> from mps_analgesia.cds_hooks import listening_socket
    >>> sock = listening_socket("127.0.0.1", 0)
    >>> sock.getsockname()[1] > 0
    True
    >>> sock.close()
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def make_server(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    rules: RuleRegistry | None = None,
    log_level: str = "info",
) -> tuple[Any, socket.socket]:
    """A uvicorn ``Server`` for the service and the socket to run it on (not started).

    Start it with ``server.run(sockets=[sock])`` (blocking; in a thread for tests) and stop it
    with ``server.should_exit = True``.

    Example
    -------
    >>> from mps_analgesia.cds_hooks import make_server
    >>> server, sock = make_server("127.0.0.1", 0)
    >>> server.started
    False
    >>> sock.close()
    """
    _require_serve_extra()
    import uvicorn

    sock = listening_socket(host, port)
    config = uvicorn.Config(create_app(rules=rules), log_level=log_level, lifespan="off")
    _warm_up(rules)
    return uvicorn.Server(config), sock


def _warm_up(rules: RuleRegistry | None) -> None:
    """Load the data tables and rules once, so the first real request is as fast as the rest."""
    from .steps import AdjuvantStep

    step = AdjuvantStep(drug="acetaminophen", role="nociceptive", dose="1 g", every="6 h")
    bundle = to_bundle(Regimen([step]))
    orders = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationRequest"]
    handle(
        {
            "hook": "order-sign",
            "context": {"draftOrders": {"resourceType": "Bundle", "entry": orders}},
        },
        rules=rules,
    )


def serve(host: str = "127.0.0.1", port: int = 8080, *, log_level: str = "info") -> None:
    """Run the CDS Hooks service with uvicorn until interrupted.

    Example
    -------
    >>> from mps_analgesia.cds_hooks import serve
    >>> serve("127.0.0.1", 8080)  # doctest: +SKIP
    """
    server, sock = make_server(host, port, log_level=log_level)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
