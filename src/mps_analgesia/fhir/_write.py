"""Writing a regimen and patient as a FHIR R4 ``collection`` Bundle."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from .. import _units
from ..patient import Anticoagulant, Patient
from ..regimen import Regimen
from ..steps import (
    AdjuvantStep,
    PsoasCompartmentBlockStep,
)
from ._base import (
    _MEASURE_CODE,
    _MEASURES,
    _OBS_CATEGORY,
    _PERIOD_UNITS,
    _SEXES,
    _STEP_KIND_TEXT,
    CS_MEASURE,
    CS_STEP_KIND,
    LOINC,
    PROJECT_BASE,
    RXNORM,
    UCUM,
    X_ADRENALINE,
    X_AGE,
    X_BOLUS_VOLUME,
    X_CONCENTRATION,
    X_DOSE_FORM,
    X_FORMULATION,
    X_FRACTIONS,
    X_HEPATIC,
    X_INFUSION_DURATION,
    X_INFUSION_RATE,
    X_LAST_DOSE_AGO,
    X_LOCAL_ANAESTHETIC,
    X_MED_ROLE,
    X_MEDICATIONS_RECORDED,
    X_NO_ANTICOAGULANT,
    X_PLAN_DAY,
    X_PRIOR_DOSE,
    X_PRIOR_FRACTIONS,
    X_ROLE,
    X_SCHEDULE,
    X_SIDE,
    X_SITE,
    X_START_DAY,
    X_STEP_KIND,
    X_TECHNIQUE,
    X_TOLERANT,
    X_TOTAL_DOSE,
    _coding,
    _drug_concept,
    _ext,
    _num,
    _observation_table,
    _route_concept,
    _rxnorm,
)
from ._quantity import to_fhir_quantity

# ---- writing: patient ---------------------------------------------------------------------------


def _ref(resource_type: str, rid: str) -> dict[str, str]:
    return {"reference": f"{resource_type}/{rid}"}


def _patient_resource(patient: Patient, pid: str) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Patient", "id": pid}
    ext = []
    if patient.age is not None:
        ext.append(
            _ext(
                X_AGE,
                valueQuantity={
                    "value": _num(patient.age),
                    "unit": "year",
                    "system": UCUM,
                    "code": "a",
                },
            )
        )
    if patient.hepatic_impairment is not None:
        ext.append(_ext(X_HEPATIC, valueCode=patient.hepatic_impairment))
    if patient.opioid_tolerant is not None:
        ext.append(_ext(X_TOLERANT, valueBoolean=patient.opioid_tolerant))
    if patient.medications is not None:
        # recorded: the role-less MedicationStatements are the whole list (none: takes none)
        ext.append(_ext(X_MEDICATIONS_RECORDED, valueBoolean=True))
    if patient.anticoagulant == "none":
        ext.append(_ext(X_NO_ANTICOAGULANT, valueBoolean=True))
    if ext:
        res["extension"] = ext
    if patient.sex is not None:
        res["gender"] = _SEXES[patient.sex]
    return res


def _observation(measure: str, q: Any, subject: dict[str, str], oid: str) -> dict[str, Any]:
    row = _observation_table()[measure]
    coding = []
    if row.get("code"):
        coding.append(_coding(LOINC, str(row["code"]), str(row.get("display", ""))))
    coding.append(_coding(CS_MEASURE, _MEASURE_CODE[measure], str(row.get("text", measure))))
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [_coding(_OBS_CATEGORY, str(row["category"]))]}],
        "code": {"coding": coding, "text": str(row.get("text", measure))},
        "subject": subject,
        "valueQuantity": to_fhir_quantity(q),
    }


def _medication_statement(name: str, subject: dict[str, str], sid: str) -> dict[str, Any]:
    concept: dict[str, Any] = {"text": name}
    rx = _rxnorm().get(name)
    if rx:
        concept["coding"] = [_coding(RXNORM, rx, name)]
    return {
        "resourceType": "MedicationStatement",
        "id": sid,
        "status": "active",
        "medicationCodeableConcept": concept,
        "subject": subject,
    }


def _timing_every(q: Any) -> dict[str, Any]:
    text = _units.format_unit(q.units)
    unit = _PERIOD_UNITS.get(text)
    value = float(q.magnitude)
    if unit is None:
        value, unit = _units.magnitude_in(q, "h"), "h"
    return {"frequency": 1, "period": _num(value), "periodUnit": unit}


def _anticoagulant_statement(a: Anticoagulant, subject: dict[str, str]) -> dict[str, Any]:
    res = _medication_statement(a.drug, subject, "anticoagulant")
    ext = [_ext(X_MED_ROLE, valueCode="anticoagulant")]
    if a.last_dose_ago is not None:
        ext.append(_ext(X_LAST_DOSE_AGO, valueDuration=to_fhir_quantity(a.last_dose_ago)))
    res["extension"] = ext
    dosage: dict[str, Any] = {}
    if a.every is not None:
        dosage["timing"] = {"repeat": _timing_every(a.every)}
    if a.dose is not None:
        dosage["doseAndRate"] = [{"doseQuantity": to_fhir_quantity(a.dose)}]
    if dosage:
        res["dosage"] = [dosage]
    return res


# ---- writing: steps -----------------------------------------------------------------------------


def _max_dose(step: Any) -> dict[str, Any]:
    return {
        "numerator": {
            "value": step.max_doses_per_24h,
            "unit": "doses",
            "system": UCUM,
            "code": "{dose}",
        },
        "denominator": {"value": 24, "unit": "h", "system": UCUM, "code": "h"},
    }


def _schedule_timing(
    every: Any, times_per_day: Any, once: bool, at: Any
) -> tuple[dict[str, Any], str]:
    timing: dict[str, Any] = {}
    schedule = ""
    if every is not None:
        timing = _timing_every(every)
        schedule = "every"
    elif times_per_day is not None:
        timing = {"frequency": times_per_day, "period": 1, "periodUnit": "d"}
        schedule = "times-per-day"
    elif once:
        timing = {"count": 1}
        schedule = "once"
    if at:
        timing["timeOfDay"] = [f"{t}:00" for t in at]
    return timing, schedule


def _dosages(step: Any, start_date: _dt.date | None = None) -> list[dict[str, Any]]:
    """The step's phases as dosage instructions; with the regimen's ``start_date``, each phase's
    days as a ``boundsPeriod`` of dates, else as a ``boundsDuration`` (a Timing has one bounds)."""
    route = _route_concept(step.route)
    every, times_per_day, at = step.every, step.times_per_day, step.at
    phases: list[tuple[int, Any, Any, Any, Any, Any]] = [
        (step.start_day, step.dose, step.rate, every, times_per_day, at)
    ]
    for p in step.titration:
        if p.every is not None or p.times_per_day is not None:
            every, times_per_day, at = p.every, p.times_per_day, p.at
        phases.append((p.day, p.dose, p.rate, every, times_per_day, at))
    out = []
    for i, (day, dose, rate, every_i, per_day_i, at_i) in enumerate(phases):
        timing, schedule = _schedule_timing(every_i, per_day_i, step.once, at_i)
        d: dict[str, Any] = {"sequence": i + 1}
        ext = [_ext(X_PLAN_DAY, valueInteger=day)]
        if schedule:
            ext.append(_ext(X_SCHEDULE, valueCode=schedule))
        d["extension"] = ext
        if i == 0:
            d["text"] = step.describe()
        repeat = dict(timing)
        length = None
        if i + 1 < len(phases):
            length = phases[i + 1][0] - day
        elif step.stop_day is not None and not step.once:
            length = step.stop_day - day + 1
        if start_date is not None:
            period = {"start": (start_date + _dt.timedelta(days=day)).isoformat()}
            if length is not None:
                period["end"] = (start_date + _dt.timedelta(days=day + length - 1)).isoformat()
            repeat["boundsPeriod"] = period
        elif length is not None:
            repeat["boundsDuration"] = {"value": length, "unit": "day", "system": UCUM, "code": "d"}
        if repeat:
            d["timing"] = {"repeat": repeat}
        if step.prn:
            d["asNeededBoolean"] = True
        d["route"] = route
        if rate is not None:
            d["doseAndRate"] = [{"rateQuantity": to_fhir_quantity(rate)}]
        elif i == 0 and step.dose_high is not None:
            d["doseAndRate"] = [
                {
                    "doseRange": {
                        "low": to_fhir_quantity(dose),
                        "high": to_fhir_quantity(step.dose_high),
                    }
                }
            ]
        else:
            d["doseAndRate"] = [{"doseQuantity": to_fhir_quantity(dose)}]
        if step.max_doses_per_24h is not None:
            d["maxDosePerPeriod"] = _max_dose(step)
        out.append(d)
    return out


def _medication_request(
    step: Any, rid: str, subject: dict[str, str], start_date: _dt.date | None = None
) -> dict[str, Any]:
    ext = [
        _ext(X_STEP_KIND, valueCode=step.kind),
        _ext(X_FORMULATION, valueCode=step.formulation),
    ]
    if step.dose_form is not None:
        ext.append(_ext(X_DOSE_FORM, valueCode=step.dose_form))
    if isinstance(step, AdjuvantStep):
        ext.append(_ext(X_ROLE, valueCode=step.role))
    if step.start_day:
        ext.append(_ext(X_START_DAY, valueInteger=step.start_day))
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "extension": ext,
        "status": "active",
        "intent": "order",
        "category": [{"coding": [_coding(CS_STEP_KIND, step.kind, _STEP_KIND_TEXT[step.kind])]}],
        "medicationCodeableConcept": _drug_concept(step.drug),
        "subject": subject,
        "dosageInstruction": _dosages(step, start_date),
    }
    if step.note:
        res["note"] = [{"text": step.note}]
    return res


def _service_request(step: Any, rid: str, subject: dict[str, str]) -> dict[str, Any]:
    ext: list[dict[str, Any]] = [_ext(X_STEP_KIND, valueCode=step.kind)]
    if isinstance(step, PsoasCompartmentBlockStep):
        ext.append(_ext(X_LOCAL_ANAESTHETIC, valueCodeableConcept=_drug_concept(step.drug)))
        ext.append(_ext(X_CONCENTRATION, valueQuantity=to_fhir_quantity(step.concentration)))
        if step.bolus_volume is not None:
            ext.append(_ext(X_BOLUS_VOLUME, valueQuantity=to_fhir_quantity(step.bolus_volume)))
        if step.infusion_rate is not None:
            ext.append(_ext(X_INFUSION_RATE, valueQuantity=to_fhir_quantity(step.infusion_rate)))
        if step.infusion_duration is not None:
            ext.append(
                _ext(X_INFUSION_DURATION, valueDuration=to_fhir_quantity(step.infusion_duration))
            )
        ext.append(_ext(X_ADRENALINE, valueBoolean=step.adrenaline))
        ext.append(_ext(X_SIDE, valueCode=step.side))
        ext.append(_ext(X_TECHNIQUE, valueCode=step.technique))
        body_site = f"{step.side} psoas compartment"
    else:
        ext.append(_ext(X_TOTAL_DOSE, valueQuantity=to_fhir_quantity(step.total_dose)))
        ext.append(_ext(X_FRACTIONS, valueInteger=step.fractions))
        ext.append(_ext(X_SITE, valueString=step.site))
        if step.prior_dose is not None:
            ext.append(_ext(X_PRIOR_DOSE, valueQuantity=to_fhir_quantity(step.prior_dose)))
        if step.prior_fractions is not None:
            ext.append(_ext(X_PRIOR_FRACTIONS, valueInteger=step.prior_fractions))
        body_site = step.site
    if step.start_day:
        ext.append(_ext(X_START_DAY, valueInteger=step.start_day))
    res: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": rid,
        "extension": ext,
        "status": "active",
        "intent": "order",
        "code": {
            "coding": [_coding(CS_STEP_KIND, step.kind, _STEP_KIND_TEXT[step.kind])],
            "text": _STEP_KIND_TEXT[step.kind],
        },
        "orderDetail": [{"text": step.describe()}],
        "subject": subject,
        "bodySite": [{"text": body_site}],
    }
    if step.note:
        res["note"] = [{"text": step.note}]
    return res


def _resource_type(step: Any) -> str:
    return (
        "ServiceRequest"
        if step.kind in ("psoas_compartment_block", "radiotherapy")
        else ("MedicationRequest")
    )


def to_bundle(
    regimen: Regimen, patient: Patient | None = None, *, description: str = ""
) -> dict[str, Any]:
    """Write a regimen and its patient as a FHIR R4 ``collection`` Bundle (plain dicts).

    Resource ids are stable: ``Patient/patient``, ``MedicationRequest/step-<i>`` or
    ``ServiceRequest/step-<i>`` for step ``i`` (0-based, as in ``Finding.step``), and a CarePlan
    ``careplan`` listing the steps in order with the regimen's name as its title (and a case's
    ``description`` as its description; :func:`case_to_bundle` writes a whole case).

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.fhir import to_bundle
    >>> reg = mps.Regimen([mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h")])
    >>> bundle = to_bundle(reg, mps.Patient(weight="60 kg"))
    >>> [e["resource"]["resourceType"] for e in bundle["entry"]]
    ['Patient', 'Observation', 'MedicationRequest', 'CarePlan']
    >>> mr = bundle["entry"][2]["resource"]
    >>> mr["medicationCodeableConcept"]["coding"][0]["code"], mr["dosageInstruction"][0]["timing"]
    ('7052', {'repeat': {'frequency': 1, 'period': 4, 'periodUnit': 'h'}})
    """
    patient = patient if patient is not None else Patient()
    pid = "patient"
    subject = _ref("Patient", pid)
    resources: list[dict[str, Any]] = [_patient_resource(patient, pid)]
    for measure in _MEASURES:
        q = getattr(patient, measure)
        if q is not None:
            resources.append(_observation(measure, q, subject, measure.replace("_", "-")))
    for i, name in enumerate(patient.medications or ()):
        resources.append(_medication_statement(name, subject, f"medication-{i}"))
    if patient.anticoagulant_drug is not None:
        resources.append(_anticoagulant_statement(patient.anticoagulant_drug, subject))
    activities = []
    notes = []
    for i, step in enumerate(regimen):
        rid = f"step-{i}"
        if step.kind == "taper":
            # a taper has no FHIR resource of its own yet: it is kept as a note on the CarePlan
            notes.append({"text": f"step {i + 1}: {step.describe()}"})
            continue
        if _resource_type(step) == "ServiceRequest":
            resources.append(_service_request(step, rid, subject))
        else:
            resources.append(_medication_request(step, rid, subject, regimen.start_date))
        activities.append({"reference": _ref(_resource_type(step), rid)})
    plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": "careplan",
        "status": "active",
        "intent": "plan",
        "subject": subject,
    }
    if regimen.name:
        plan["title"] = regimen.name
    if description:
        plan["description"] = description
    if regimen.start_date is not None:  # plan day 0 (read back by from_bundle)
        plan["period"] = {"start": regimen.start_date.isoformat()}
    if activities:
        plan["activity"] = activities
    if notes:
        plan["note"] = notes
    resources.append(plan)
    base = PROJECT_BASE
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources
        ],
    }
