"""Reading a whole Bundle into ``(patient, regimen)``."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

from .. import _files
from ..errors import CaseFileError, MpsAnalgesiaError, Problem
from ..patient import Patient
from ..regimen import Case, Regimen
from ..steps import Step
from ._base import _BUNDLE_FILE, _list, _message, _numeric_problem
from ._dosage import medication_index, steps_from_resource
from ._patient import patient_from_resources
from ._write import to_bundle

# ---- reading: the bundle ------------------------------------------------------------------------


def _bundle_entries(bundle: object) -> list[tuple[int, Mapping[str, Any]]]:
    """``(index, resource)`` for each entry; :class:`CaseFileError` for a malformed Bundle."""
    if not isinstance(bundle, Mapping):
        raise CaseFileError(_BUNDLE_FILE, [Problem("", "a FHIR Bundle must be a JSON object")])
    if bundle.get("resourceType") != "Bundle":
        raise CaseFileError(
            _BUNDLE_FILE,
            [Problem("resourceType", f"must be 'Bundle', not {bundle.get('resourceType')!r}")],
        )
    entries = bundle.get("entry", [])
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise CaseFileError(_BUNDLE_FILE, [Problem("entry", "must be an array")])
    out = []
    problems = []
    for i, entry in enumerate(entries):
        res = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(res, Mapping):
            problems.append(Problem(f"entry[{i}]", "has no resource object"))
        elif not isinstance(res.get("resourceType"), str):
            problems.append(Problem(f"entry[{i}].resource", "has no resourceType"))
        else:
            out.append((i, res))
    if problems:
        raise CaseFileError(_BUNDLE_FILE, problems)
    return out


def _careplan_order(
    plan: Mapping[str, Any] | None, requests: list[tuple[int, Mapping[str, Any]]]
) -> list[tuple[int, Mapping[str, Any]]]:
    if plan is None:
        return requests
    by_ref = {f"{r['resourceType']}/{r.get('id')}": (i, r) for i, r in requests}
    ordered = []
    for act in _list(plan.get("activity")):
        ref = act.get("reference") if isinstance(act, Mapping) else None
        key = ref.get("reference") if isinstance(ref, Mapping) else None
        if isinstance(key, str) and key in by_ref:
            ordered.append(by_ref.pop(key))
    ordered.extend(v for v in requests if f"{v[1]['resourceType']}/{v[1].get('id')}" in by_ref)
    return ordered


def from_bundle(
    bundle: Mapping[str, Any], *, as_of: _dt.date | _dt.datetime | None = None
) -> tuple[Patient, Regimen]:
    """Read a FHIR Bundle back into ``(patient, regimen)``.

    ``as_of`` is the date an age from the Patient's ``birthDate`` is computed on (default:
    today; see :func:`~mps_analgesia.fhir.patient_from_resources`).  The CarePlan's
    ``period.start`` is the regimen's ``start_date`` (plan day 0), and an order's
    ``boundsPeriod.start`` and ``end`` are then its start and stop days (see
    :func:`~mps_analgesia.fhir.steps_from_resource`).

    The inverse of :func:`to_bundle`: ``from_bundle(to_bundle(r, p)) == (p, r)``.  It also reads
    Bundles from other systems, using the standard elements where the project's extensions are
    absent.  Every problem is reported at once in a :class:`~mps_analgesia.errors.CaseFileError`
    whose paths name the entry (``entry[3] (MedicationRequest/abc)``).

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.fhir import from_bundle, to_bundle
    >>> case = mps.load_case("examples/mps-multimodal.toml")
    >>> from_bundle(to_bundle(case.regimen, case.patient)) == (case.patient, case.regimen)
    True
    """
    unwritable = _lone_surrogates(bundle)
    if unwritable:
        message = "contains a lone surrogate (\\ud800-\\udfff), not text that can be written"
        raise CaseFileError(_BUNDLE_FILE, [Problem(path, message) for path in unwritable])
    entries = _bundle_entries(bundle)
    problems: list[Problem] = []
    patient_res = None
    observations = []
    statements = []
    requests = []
    plan = None
    for i, res in entries:
        rtype = res["resourceType"]
        if rtype == "Patient" and patient_res is None:
            patient_res = res
        elif rtype == "Observation":
            observations.append(res)
        elif rtype == "MedicationStatement":
            statements.append(res)
        elif rtype in ("MedicationRequest", "ServiceRequest"):
            requests.append((i, res))
        elif rtype == "CarePlan" and plan is None:
            plan = res
    try:
        patient = patient_from_resources(patient_res, observations, statements, as_of=as_of)
    except MpsAnalgesiaError as exc:
        problems.append(Problem("Patient", _message(exc)))
        patient = Patient()
    except ArithmeticError as exc:  # every read is guarded; kept as a net
        problems.append(Problem("Patient", _message(_numeric_problem(exc))))
        patient = Patient()
    medications = medication_index(_list(bundle.get("entry")))
    start_date = None
    period = plan.get("period") if plan is not None else None
    if isinstance(period, Mapping) and period.get("start") is not None:
        try:
            start_date = _plan_start(period["start"])
        except MpsAnalgesiaError as exc:
            problems.append(Problem("CarePlan.period.start", _message(exc)))
    steps: list[Step] = []
    for i, res in _careplan_order(plan, requests):
        try:
            steps.extend(steps_from_resource(res, medications=medications, start_date=start_date))
        except MpsAnalgesiaError as exc:
            problems.append(
                Problem(f"entry[{i}] ({res['resourceType']}/{res.get('id')})", str(exc))
            )
    if problems:
        raise CaseFileError(_BUNDLE_FILE, problems)
    name = plan.get("title", "") if plan is not None else ""
    return patient, Regimen(
        steps, name=str(name) if isinstance(name, str) else "", start_date=start_date
    )


def _plan_start(text: object) -> _dt.date:
    """The date of plan day 0 from ``CarePlan.period.start`` (a date, or a dateTime's date)."""
    from ._timing import _as_date, _when

    return _as_date(_when(text, "CarePlan.period.start"))


def case_to_bundle(case: Case) -> dict[str, Any]:
    """Write a whole case as a FHIR Bundle: its regimen, its patient, its name and description.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.fhir import case_from_bundle, case_to_bundle
    >>> case = mps.load_case("examples/mps-multimodal.toml")
    >>> again = case_from_bundle(case_to_bundle(case))
    >>> again == case, again.name == case.name, again.description == case.description
    (True, True, True)
    """
    return to_bundle(case.regimen, case.patient, description=case.description)


def case_from_bundle(
    bundle: Mapping[str, Any], *, as_of: _dt.date | _dt.datetime | None = None
) -> Case:
    """Read a FHIR Bundle into a :class:`~mps_analgesia.Case`, with the CarePlan's title as its
    name and its description as the case's description (see :func:`from_bundle`, and its
    ``as_of``)."""
    patient, regimen = from_bundle(bundle, as_of=as_of)
    description = ""
    for _, res in _bundle_entries(bundle):
        if res["resourceType"] == "CarePlan" and isinstance(res.get("description"), str):
            description = res["description"]
            break
    return Case(patient, regimen, name=regimen.name, description=description)


def _lone_surrogates(data: Any) -> list[str]:
    """The paths of the strings (keys included) that hold a lone surrogate: such text loads from
    JSON escapes but can never be written back as UTF-8, so it is refused where it is."""
    found: list[str] = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if not _files._is_text(value):
                found.append(path)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and not _files._is_text(key):
                    found.append(where)
                stack.append((where, item))
        elif isinstance(value, list | tuple):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return sorted(found)
