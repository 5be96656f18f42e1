"""FHIR R4 in and out: a regimen and patient as a Bundle, a Report as DetectedIssues.

Plain dicts in, plain dicts out: no FHIR model library is needed at run time.

- :func:`to_bundle` writes a ``collection`` Bundle: the Patient; Observations for weight, height,
  eGFR, creatinine clearance and QTc (LOINC); MedicationStatements for the other medicines and
  the anticoagulant; a MedicationRequest per drug step (RxNorm ingredient, SNOMED CT route,
  ``dosageInstruction`` with ``timing.repeat``, ``doseAndRate`` in UCUM, ``asNeeded`` and
  ``maxDosePerPeriod`` for PRN, titration as successive dosage instructions bounded by
  ``timing.repeat.boundsDuration``); a ServiceRequest for a psoas compartment block or a
  radiotherapy course (doses in extensions); and a CarePlan that keeps the order and name.
- :func:`from_bundle` reads such a Bundle back (lossless for what :func:`to_bundle` wrote) and also
  reads orders written by other systems, as far as the standard elements say enough.
- :func:`report_to_fhir` turns a :class:`~mps_analgesia.report.Report` into DetectedIssue
  resources.

Fields with no standard home travel in extensions under :data:`EXTENSION_BASE`; every one is
listed in ``docs/fhir-and-cds-hooks.md``.  Units go through a closed UCUM table
(``data/ucum.toml``): micrograms are ``ug`` (``mcg`` is refused, it is not a UCUM microgram),
annotations such as ``{tbl}`` are refused where a mass is needed, and any unknown code is refused
with a message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any, Final

import attrs

from . import _catalog, _units
from .errors import CaseFileError, MpsAnalgesiaError, Problem, StepError, UnitError
from .patient import Anticoagulant, Patient
from .regimen import Regimen
from .report import FHIR_SEVERITY, Report
from .steps import (
    STEP_KINDS,
    AdjuvantStep,
    PsoasCompartmentBlockStep,
    RadiotherapyStep,
    Step,
    TitrationPoint,
)

__all__ = [
    "CODE_SYSTEM_BASE",
    "EXTENSION_BASE",
    "PROJECT_BASE",
    "UCUM",
    "from_bundle",
    "from_fhir_quantity",
    "patient_from_resources",
    "report_to_fhir",
    "step_from_resource",
    "to_bundle",
    "to_fhir_quantity",
]

_CODES_FILE: Final = "fhir-codes.toml"
_UCUM_FILE: Final = "ucum.toml"


@cache
def _codes() -> Mapping[str, Any]:
    return _catalog.data_file(_CODES_FILE)


#: The project's canonical FHIR base (``data/fhir-codes.toml`` ``[meta].base``).
PROJECT_BASE: Final = str(_codes()["meta"]["base"])
#: The canonical base of the project's extensions: ``<base>/StructureDefinition/<name>``.
EXTENSION_BASE: Final = f"{PROJECT_BASE}/StructureDefinition"
#: The canonical base of the project's code systems: ``<base>/CodeSystem/<name>``.
CODE_SYSTEM_BASE: Final = f"{PROJECT_BASE}/CodeSystem"
#: The UCUM code system URI.
UCUM: Final = "http://unitsofmeasure.org"
LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
_OBS_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"

_BUNDLE_FILE: Final = "<FHIR Bundle>"


def _ext_url(name: str) -> str:
    return f"{EXTENSION_BASE}/{name}"


def _cs(name: str) -> str:
    return f"{CODE_SYSTEM_BASE}/{name}"


# Extension names (all documented in docs/fhir-and-cds-hooks.md).
X_STEP_KIND: Final = _ext_url("step-kind")
X_FORMULATION: Final = _ext_url("formulation")
X_ROLE: Final = _ext_url("adjuvant-role")
X_START_DAY: Final = _ext_url("start-day")
X_PLAN_DAY: Final = _ext_url("plan-day")
X_SCHEDULE: Final = _ext_url("schedule")
X_AGE: Final = _ext_url("age")
X_HEPATIC: Final = _ext_url("hepatic-impairment")
X_TOLERANT: Final = _ext_url("opioid-tolerant")
X_MED_ROLE: Final = _ext_url("medication-role")
X_LAST_DOSE_AGO: Final = _ext_url("last-dose-ago")
X_MEDICATIONS_RECORDED: Final = _ext_url("medications-recorded")
X_NO_ANTICOAGULANT: Final = _ext_url("no-anticoagulant")
X_LOCAL_ANAESTHETIC: Final = _ext_url("local-anaesthetic")
X_CONCENTRATION: Final = _ext_url("concentration")
X_BOLUS_VOLUME: Final = _ext_url("bolus-volume")
X_INFUSION_RATE: Final = _ext_url("infusion-rate")
X_INFUSION_DURATION: Final = _ext_url("infusion-duration")
X_ADRENALINE: Final = _ext_url("adrenaline")
X_SIDE: Final = _ext_url("block-side")
X_TECHNIQUE: Final = _ext_url("block-technique")
X_TOTAL_DOSE: Final = _ext_url("total-dose")
X_FRACTIONS: Final = _ext_url("fractions")
X_SITE: Final = _ext_url("treatment-site")
X_PRIOR_DOSE: Final = _ext_url("prior-dose")
X_PRIOR_FRACTIONS: Final = _ext_url("prior-fractions")
X_LEVEL: Final = _ext_url("evidence-level")
X_NOT_CHECKED: Final = _ext_url("not-checked")

CS_DRUG: Final = _cs("drug")
CS_ROUTE: Final = _cs("route")
CS_STEP_KIND: Final = _cs("step-kind")
CS_MEASURE: Final = _cs("patient-measure")
CS_FINDING: Final = _cs("finding-code")
CS_NOT_CHECKED: Final = _cs("not-checked")
CS_OVERRIDE: Final = _cs("override-reason")

_STEP_KIND_TEXT: Final = {
    "opioid": "Opioid",
    "methadone_adjuvant": "Methadone added to the current opioid",
    "adjuvant": "Adjuvant analgesic",
    "psoas_compartment_block": "Psoas compartment block",
    "radiotherapy": "Palliative radiotherapy",
}
_PERIOD_UNITS: Final = {"s": "s", "min": "min", "h": "h", "day": "d", "week": "wk"}
_PERIOD_UNITS_IN: Final = {"s": "s", "min": "min", "h": "h", "d": "day", "wk": "week"}
_SEXES: Final = {"female": "female", "male": "male", "other": "other"}
# Patient fields read from Observations, in output order.
_MEASURES: Final = ("weight", "height", "egfr", "creatinine_clearance", "qtc")
_MEASURE_DIMENSION: Final = {
    "weight": "mass",
    "height": "length",
    "egfr": "egfr",
    "creatinine_clearance": "renal_clearance",
    "qtc": "time",
}
_MEASURE_CODE: Final = {m: m.replace("_", "-") for m in _MEASURES}
# The unit a value of each library dimension is written in when its own unit has no UCUM row.
_CANONICAL: Final = {
    "mass": "mg",
    "volume": "mL",
    "time": "h",
    "length": "cm",
    "mass_rate": "mg/h",
    "volume_rate": "mL/h",
    "concentration": "mg/mL",
    "absorbed_dose": "Gy",
    "renal_clearance": "mL/min",
    "egfr": "mL/min/1.73m2",
}


# ---- UCUM ---------------------------------------------------------------------------------------


@attrs.define(frozen=True)
class _UcumRow:
    library: str
    ucum: str
    display: str
    emit: bool = True


@cache
def _ucum_rows() -> tuple[_UcumRow, ...]:
    raw = _catalog.data_file(_UCUM_FILE).get("units", ())
    return tuple(
        _UcumRow(str(r["library"]), str(r["ucum"]), str(r["display"]), bool(r.get("emit", True)))
        for r in raw
    )


@cache
def _ucum_by_library() -> Mapping[str, _UcumRow]:
    return {r.library: r for r in _ucum_rows() if r.emit}


@cache
def _ucum_by_code() -> Mapping[str, _UcumRow]:
    return {r.ucum: r for r in _ucum_rows()}


@cache
def _ucum_refused() -> Mapping[str, str]:
    return {str(k): str(v) for k, v in _catalog.data_file(_UCUM_FILE).get("refused", {}).items()}


_ANNOTATION = re.compile(r"\{[^{}]*\}")
_LETTERS = re.compile(r"\[[^\]]*\]|[A-Za-z%]+")


def _num(x: float) -> int | float:
    """A JSON number: an int when the float is whole (``1000`` not ``1000.0``)."""
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return int(x)
    return x


def _shown(value: object) -> str:
    """``repr`` of a JSON value, short even for an integer with thousands of digits."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**15:
        digits = int(abs(value).bit_length() * 0.30103) + 1
        return f"<an integer of about {digits} digits>"
    return repr(value)


def _finite_number(value: object, field: str, hint: str = "") -> float:
    """``value`` as a finite float; :class:`UnitError` for anything else.

    Refused: a non-number (``true`` included), NaN, ±Infinity (Python's JSON reader accepts them)
    and an integer too large for a float (JSON integers have no size limit).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = value if isinstance(value, str) else _shown(value)
        raise UnitError(text, "is not a number", hint, field)
    try:
        x = float(value)
    except OverflowError:
        raise UnitError(_shown(value), "is too large to compute with", hint, field) from None
    if not math.isfinite(x):
        raise UnitError(_shown(value), "is not a finite number", hint, field)
    return x


def _library_unit(code: str, *, field: str = "") -> str:
    """The library unit text for a UCUM code; :class:`UnitError` for a refused or unknown code."""
    if not isinstance(code, str) or not code.strip():
        raise UnitError(repr(code), "is not a UCUM code", "send e.g. code 'mg'", field)
    row = _ucum_by_code().get(code)
    if row is not None:
        return row.library
    refused = _ucum_refused()
    if code in refused:
        raise UnitError(code, "is refused as a UCUM code", refused[code], field)
    for token in _LETTERS.findall(code):
        if token in refused:
            raise UnitError(
                code, f"contains the refused UCUM unit {token!r}", refused[token], field
            )
    if "{" in code:
        bare = _ANNOTATION.sub("", code).strip()
        if bare in ("", "1"):
            raise UnitError(
                code,
                "is a UCUM annotation with no unit: a count of tablets or doses has no mass, so "
                "the dose cannot be checked",
                "send the dose as a mass, e.g. code 'mg'",
                field,
            )
        if not bare.endswith(("/", ".")) and "/." not in bare:
            row = _ucum_by_code().get(bare)
            if row is not None:
                return row.library
    known = ", ".join(sorted({r.ucum for r in _ucum_rows() if r.emit}))
    raise UnitError(
        code,
        "is not a UCUM code this library accepts",
        f"use one of: {known}",
        field,
    )


def to_fhir_quantity(q: Any) -> dict[str, Any]:
    """A FHIR ``Quantity`` (value, unit, UCUM system and code) for a library Quantity.

    The value is kept in the quantity's own unit when that unit has a UCUM row (so it round-trips
    exactly); otherwise it is converted to the canonical unit of its dimension.  ``%`` (w/v) goes
    out as mg/mL, never as UCUM's dimensionless ``%``.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.fhir import to_fhir_quantity
    >>> to_fhir_quantity(mps.Q("25 mcg/h"))
    {'value': 25, 'unit': 'µg/h', 'system': 'http://unitsofmeasure.org', 'code': 'ug/h'}
    >>> to_fhir_quantity(mps.Q("0.2 %"))["code"]
    'mg/mL'
    """
    q = _units.Q(q)
    text = _units.format_unit(q.units)
    row = _ucum_by_library().get(text)
    value = float(q.magnitude)
    if row is None:
        dimension = _units.lookup_unit(text).dimension
        target = _CANONICAL.get(dimension)
        if target is None:
            raise UnitError(
                _units.format_quantity(q),
                "has no UCUM code in data/ucum.toml",
                "convert it to mg, mL, h, mg/h, mL/h, mg/mL or Gy",
            )
        value = _units.magnitude_in(q, target)
        row = _ucum_by_library()[target]
    return {"value": _num(value), "unit": row.display, "system": UCUM, "code": row.ucum}


def from_fhir_quantity(obj: object, dimension: str | None = None, *, field: str = "") -> Any:
    """Read a FHIR ``Quantity`` into a library Quantity, refusing unsafe or unknown units.

    With ``system`` UCUM (or absent) the ``code`` is looked up in the UCUM table; without a code,
    the display ``unit`` is read as clinical text (where ``mcg`` *is* microgram).  ``dimension``
    (a name of :data:`mps_analgesia._units.DIMENSIONS`) checks what the value is.

    Example
    -------
    >>> from mps_analgesia.fhir import from_fhir_quantity
    >>> from_fhir_quantity({"value": 25, "system": "http://unitsofmeasure.org", "code": "ug/h"})
    <Quantity(25.0, 'microgram / hour')>
    >>> from_fhir_quantity({"value": 25, "system": "http://unitsofmeasure.org", "code": "mcg/h"})
    Traceback (most recent call last):
    ...
    mps_analgesia.errors.UnitError: 'mcg/h' contains the refused UCUM unit 'mcg'; 'mcg' is not a \
UCUM microgram (UCUM has no 'mc' prefix; a UCUM parser reads 'mcg' as milli-centi-gram, 10 \
micrograms); send micrograms as code 'ug'
    """
    if not isinstance(obj, Mapping):
        raise UnitError(_shown(obj), "is not a FHIR Quantity", "send {value, system, code}", field)
    value = _finite_number(obj.get("value"), field, "send Quantity.value as a number")
    for key in ("comparator",):
        if obj.get(key) is not None:
            raise UnitError(
                f"{obj.get(key)}{_num(value)}",
                "has a comparator; an exact dose is needed",
                "send the value without a comparator",
                field,
            )
    system = obj.get("system")
    code = obj.get("code")
    if code is not None:
        if system not in (None, UCUM):
            raise UnitError(
                str(code),
                f"is a code of {system!r}, not of UCUM",
                f"send the unit with system {UCUM!r}",
                field,
            )
        library = _library_unit(code, field=field)
    else:
        unit = obj.get("unit")
        if not isinstance(unit, str) or not unit.strip():
            raise UnitError(repr(value), "has no unit", "send a UCUM code, e.g. 'mg'", field)
        library = _units.lookup_unit(unit).text
    q = _units.Q(value, library)
    if dimension is not None:
        q = _units.as_quantity(q, dimension, field=field)
    return q


# ---- small FHIR helpers -------------------------------------------------------------------------


def _coding(system: str, code: str, display: str = "") -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _list(value: object) -> list[Any]:
    """``value`` if it is a JSON array, else an empty list (malformed input reads as absent)."""
    return value if isinstance(value, list) else []


def _ext(url: str, **value: Any) -> dict[str, Any]:
    return {"url": url, **value}


def _extensions(resource: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    exts = resource.get("extension") or ()
    if not isinstance(exts, list):
        return {}
    return {e["url"]: e for e in exts if isinstance(e, Mapping) and isinstance(e.get("url"), str)}


def _ext_value(exts: Mapping[str, Mapping[str, Any]], url: str, key: str) -> Any:
    e = exts.get(url)
    return None if e is None else e.get(key)


def _codes_in(concept: object) -> list[tuple[str, str, str]]:
    """The (system, code, display) triples of a CodeableConcept."""
    if not isinstance(concept, Mapping):
        return []
    out = []
    for c in _list(concept.get("coding")):
        if isinstance(c, Mapping):
            out.append(
                (str(c.get("system", "")), str(c.get("code", "")), str(c.get("display", "")))
            )
    return out


@cache
def _rxnorm() -> Mapping[str, str]:
    return {str(k): str(v["code"]) for k, v in _codes().get("rxnorm", {}).items()}


@cache
def _rxnorm_reverse() -> Mapping[str, str]:
    return {code: name for name, code in _rxnorm().items()}


@cache
def _routes_snomed() -> Mapping[str, tuple[str, str]]:
    return {
        str(k): (str(v["snomed"]), str(v.get("display", "")))
        for k, v in _codes().get("routes", {}).items()
    }


@cache
def _routes_reverse() -> Mapping[str, str]:
    return {code: route for route, (code, _d) in _routes_snomed().items()}


@cache
def _observation_table() -> Mapping[str, Mapping[str, Any]]:
    return dict(_codes().get("observations", {}))


@cache
def _loinc_to_measure() -> Mapping[str, str]:
    out: dict[str, str] = {}
    for measure, row in _observation_table().items():
        for code in [row.get("code", ""), *row.get("accept", ())]:
            if code:
                out[str(code)] = measure
    return out


def _drug_concept(name: str) -> dict[str, Any]:
    coding = []
    rx = _rxnorm().get(name)
    if rx:
        coding.append(_coding(RXNORM, rx, name))
    coding.append(_coding(CS_DRUG, name, name))
    return {"coding": coding, "text": name}


def _route_concept(route: str) -> dict[str, Any]:
    coding = []
    sct = _routes_snomed().get(route)
    if sct is not None:
        coding.append(_coding(SNOMED, sct[0], sct[1]))
    coding.append(_coding(CS_ROUTE, route, route))
    return {"coding": coding, "text": route}


def _drug_from_concept(concept: object, *, field: str) -> str:
    """The catalog drug id of a medication CodeableConcept (project code, RxNorm, then text)."""
    if not isinstance(concept, Mapping):
        raise StepError(
            field,
            "a medicationCodeableConcept is required (medicationReference is "
            "not supported: send the medication inline)",
        )
    codes = _codes_in(concept)
    for system, code, _d in codes:
        if system == CS_DRUG:
            return _catalog.drug(code, field=field).id
    for system, code, _d in codes:
        if system == RXNORM and code in _rxnorm_reverse():
            return _catalog.drug(_rxnorm_reverse()[code], field=field).id
    names = [concept.get("text")] + [d for _s, _c, d in codes]
    last: MpsAnalgesiaError | None = None
    for name in names:
        if isinstance(name, str) and name.strip():
            try:
                return _catalog.drug(name, field=field).id
            except MpsAnalgesiaError as exc:
                last = exc
    if last is not None:
        raise last
    raise StepError(field, "the medication has no code or text this library knows")


def _medication_name(concept: object) -> str | None:
    """A medicine's name as written (``text``), else from its RxNorm code or a display."""
    if not isinstance(concept, Mapping):
        return None
    text = concept.get("text")
    if isinstance(text, str) and text.strip():
        return text
    codes = _codes_in(concept)
    for system, code, _display in codes:
        if system == RXNORM and code in _rxnorm_reverse():
            return _rxnorm_reverse()[code]
        if system == CS_DRUG and code:
            return code
    for _s, _c, display in codes:
        if display.strip():
            return display
    return None


def _route_from_concept(concept: object) -> str | None:
    if not isinstance(concept, Mapping):
        return None
    codes = _codes_in(concept)
    for system, code, _d in codes:
        if system == CS_ROUTE and code:
            return code
    for system, code, _d in codes:
        if system == SNOMED and code in _routes_reverse():
            return _routes_reverse()[code]
    text = concept.get("text")
    return text if isinstance(text, str) and text.strip() else None


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


def _dosages(step: Any) -> list[dict[str, Any]]:
    route = _route_concept(step.route)
    timing: dict[str, Any] = {}
    schedule = ""
    if step.every is not None:
        timing = _timing_every(step.every)
        schedule = "every"
    elif step.times_per_day is not None:
        timing = {"frequency": step.times_per_day, "period": 1, "periodUnit": "d"}
        schedule = "times-per-day"
    elif step.once:
        timing = {"count": 1}
        schedule = "once"
    phases: list[tuple[int, Any, Any]] = [(step.start_day, step.dose, step.rate)]
    phases.extend((p.day, p.dose, p.rate) for p in step.titration)
    out = []
    for i, (day, dose, rate) in enumerate(phases):
        d: dict[str, Any] = {"sequence": i + 1}
        ext = [_ext(X_PLAN_DAY, valueInteger=day)]
        if schedule:
            ext.append(_ext(X_SCHEDULE, valueCode=schedule))
        d["extension"] = ext
        if i == 0:
            d["text"] = step.describe()
        repeat = dict(timing)
        if i + 1 < len(phases):
            length = phases[i + 1][0] - day
            repeat["boundsDuration"] = {"value": length, "unit": "day", "system": UCUM, "code": "d"}
        if repeat:
            d["timing"] = {"repeat": repeat}
        if step.prn:
            d["asNeededBoolean"] = True
        d["route"] = route
        if rate is not None:
            d["doseAndRate"] = [{"rateQuantity": to_fhir_quantity(rate)}]
        else:
            d["doseAndRate"] = [{"doseQuantity": to_fhir_quantity(dose)}]
        if step.max_doses_per_24h is not None:
            d["maxDosePerPeriod"] = _max_dose(step)
        out.append(d)
    return out


def _medication_request(step: Any, rid: str, subject: dict[str, str]) -> dict[str, Any]:
    ext = [
        _ext(X_STEP_KIND, valueCode=step.kind),
        _ext(X_FORMULATION, valueCode=step.formulation),
    ]
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
        "dosageInstruction": _dosages(step),
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


def to_bundle(regimen: Regimen, patient: Patient | None = None) -> dict[str, Any]:
    """Write a regimen and its patient as a FHIR R4 ``collection`` Bundle (plain dicts).

    Resource ids are stable: ``Patient/patient``, ``MedicationRequest/step-<i>`` or
    ``ServiceRequest/step-<i>`` for step ``i`` (0-based, as in ``Finding.step``), and a CarePlan
    ``careplan`` listing the steps in order with the regimen's name as its title.

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
    for i, step in enumerate(regimen):
        rid = f"step-{i}"
        if _resource_type(step) == "ServiceRequest":
            resources.append(_service_request(step, rid, subject))
        else:
            resources.append(_medication_request(step, rid, subject))
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
    if activities:
        plan["activity"] = activities
    resources.append(plan)
    base = PROJECT_BASE
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources
        ],
    }


# ---- reading: patient ---------------------------------------------------------------------------


def _observation_measure(res: Mapping[str, Any]) -> str | None:
    codes = _codes_in(res.get("code"))
    for system, code, _d in codes:
        if system == CS_MEASURE:
            for m, c in _MEASURE_CODE.items():
                if c == code:
                    return m
    for system, code, _d in codes:
        if system == LOINC and code in _loinc_to_measure():
            return _loinc_to_measure()[code]
    return None


def _effective(res: Mapping[str, Any]) -> str:
    for key in ("effectiveDateTime", "issued"):
        v = res.get(key)
        if isinstance(v, str):
            return v
    period = res.get("effectivePeriod")
    if isinstance(period, Mapping) and isinstance(period.get("end") or period.get("start"), str):
        return str(period.get("end") or period.get("start"))
    return ""


def _age_from_birth_date(text: object) -> float:
    """The age in whole years on today's date; :class:`StepError` for a date that is not one."""
    import datetime as _dt

    field = "birthDate"
    if not isinstance(text, str):
        raise StepError(
            field, f"must be a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD), not {_shown(text)}"
        )
    m = re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", text.strip())
    if m is None:
        raise StepError(field, f"{text!r} is not a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)")
    try:
        born = _dt.date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
    except ValueError as exc:
        raise StepError(field, f"{text!r} is not a calendar date ({exc})") from None
    today = _dt.date.today()
    years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if not 0 <= years <= 130:
        raise StepError(field, f"{text!r} gives an age of {years} years, outside 0-130")
    return float(years)


def _age_from_extension(ext: Mapping[str, Any]) -> float:
    """The age in years from the project's ``age`` extension (a Quantity in years)."""
    q = ext.get("valueQuantity")
    if not isinstance(q, Mapping):
        raise StepError("extension(age)", "needs a valueQuantity in years")
    code = q.get("code")
    if code not in (None, "a"):
        raise StepError(
            "extension(age).valueQuantity.code", f"must be 'a' (UCUM year), not {_shown(code)}"
        )
    return _finite_number(q.get("value"), "extension(age).valueQuantity.value")


def _anticoagulant_from(res: Mapping[str, Any], path: str) -> Anticoagulant:
    name = _medication_name(res.get("medicationCodeableConcept"))
    if name is None:
        raise StepError(f"{path}.medicationCodeableConcept", "the anticoagulant has no name")
    exts = _extensions(res)
    kwargs: dict[str, Any] = {"drug": name}
    ago = _ext_value(exts, X_LAST_DOSE_AGO, "valueDuration")
    if ago is not None:
        kwargs["last_dose_ago"] = from_fhir_quantity(ago, "time", field="last_dose_ago")
    dosages = res.get("dosage") or []
    if isinstance(dosages, list) and dosages and isinstance(dosages[0], Mapping):
        d = dosages[0]
        dose = _first_dose_and_rate(d).get("doseQuantity")
        if dose is not None:
            kwargs["dose"] = from_fhir_quantity(dose, "mass", field="dose")
        every = _every_from_timing(d.get("timing"))
        if every is not None:
            kwargs["every"] = every
    return Anticoagulant(**kwargs)


def patient_from_resources(
    patient: Mapping[str, Any] | None = None,
    observations: Iterable[Mapping[str, Any]] = (),
    statements: Iterable[Mapping[str, Any]] = (),
    *,
    problems: list[Problem] | None = None,
) -> Patient:
    """Build a :class:`~mps_analgesia.patient.Patient` from FHIR resources.

    ``patient`` is a Patient resource (age from the project's ``age`` extension, else from
    ``birthDate``; sex from ``gender``; hepatic impairment and opioid tolerance from extensions);
    ``observations`` give weight, height, eGFR, creatinine clearance and QTc (the most recent of
    each, by LOINC or project code); ``statements`` are MedicationStatements (other medicines, and
    the anticoagulant with its last-dose time).  The other medicines are *recorded* when there is
    an active statement or the Patient carries the ``medications-recorded`` extension (then no
    statement means "takes none"), else ``None`` (not recorded); the ``no-anticoagulant``
    extension records that the patient takes no anticoagulant (``"none"``).  With ``problems``
    given, a value that cannot be read is recorded there and left out (the check that needs it
    then reports *not checked*); without it, the first problem raises.

    Example
    -------
    >>> from mps_analgesia.fhir import patient_from_resources
    >>> obs = {"resourceType": "Observation", "status": "final",
    ...        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
    ...        "valueQuantity": {"value": 61.5, "system": "http://unitsofmeasure.org",
    ...                          "code": "kg"}}
    >>> patient_from_resources({"resourceType": "Patient", "gender": "female"}, [obs]).weight_kg
    61.5
    """

    def fail(path: str, exc: Exception) -> None:
        if problems is None:
            raise exc
        problems.append(Problem(path, _message(exc)))

    kwargs: dict[str, Any] = {}
    medications_recorded = no_anticoagulant = False
    if patient is not None:
        exts = _extensions(patient)
        medications_recorded = _ext_value(exts, X_MEDICATIONS_RECORDED, "valueBoolean") is True
        no_anticoagulant = _ext_value(exts, X_NO_ANTICOAGULANT, "valueBoolean") is True
        if X_AGE in exts:
            try:
                kwargs["age"] = _age_from_extension(exts[X_AGE])
            except MpsAnalgesiaError as exc:
                fail("Patient.extension(age)", exc)
        if patient.get("birthDate") is not None:
            try:
                birth = _age_from_birth_date(patient.get("birthDate"))
            except MpsAnalgesiaError as exc:
                fail("Patient.birthDate", exc)
            else:
                kwargs.setdefault("age", birth)
        gender = patient.get("gender")
        if isinstance(gender, str) and gender in _SEXES:
            kwargs["sex"] = gender
        elif gender is not None and gender != "unknown":
            fail(
                "Patient.gender",
                StepError(
                    "gender",
                    f"{_shown(gender)} is not a FHIR gender (male, female, other or unknown)",
                ),
            )
        hepatic = _ext_value(exts, X_HEPATIC, "valueCode")
        if hepatic is not None:
            kwargs["hepatic_impairment"] = hepatic
        tolerant = _ext_value(exts, X_TOLERANT, "valueBoolean")
        if tolerant is not None:
            kwargs["opioid_tolerant"] = tolerant
    latest: dict[str, tuple[str, Mapping[str, Any], str]] = {}
    for i, obs in enumerate(observations):
        if obs.get("status") in ("entered-in-error", "cancelled"):
            continue
        measure = _observation_measure(obs)
        if measure is None:
            continue
        when = _effective(obs)
        path = f"Observation/{obs.get('id', i)}"
        if measure not in latest or when > latest[measure][0]:
            latest[measure] = (when, obs, path)
    for measure, (_when, obs, path) in latest.items():
        try:
            value = obs.get("valueQuantity")
            if value is None:
                raise UnitError(repr(None), "has no valueQuantity", "", measure)
            kwargs[measure] = from_fhir_quantity(
                value, _MEASURE_DIMENSION[measure], field=f"{measure}"
            )
        except MpsAnalgesiaError as exc:
            fail(f"{path}.valueQuantity", exc)
    medications: list[str] = []
    for i, st in enumerate(statements):
        if st.get("status") in ("entered-in-error", "not-taken", "stopped", "completed"):
            continue
        path = f"MedicationStatement/{st.get('id', i)}"
        role = _ext_value(_extensions(st), X_MED_ROLE, "valueCode")
        if role == "anticoagulant":
            try:
                kwargs["anticoagulant"] = _anticoagulant_from(st, path)
            except MpsAnalgesiaError as exc:
                fail(path, exc)
            except ArithmeticError as exc:
                fail(path, _numeric_problem(exc))
            continue
        name = _medication_name(st.get("medicationCodeableConcept"))
        if name is not None:
            medications.append(name)
    if medications or medications_recorded:
        kwargs["medications"] = medications
    if no_anticoagulant and "anticoagulant" not in kwargs:
        kwargs["anticoagulant"] = "none"
    if problems is None:
        return _finite_patient(Patient(**kwargs))
    return _lenient_patient(kwargs, problems)


# The Patient's canonical numbers and the field each comes from (bmi: weight over height²).
_PATIENT_NUMBERS: Final = (
    ("weight_kg", "weight"),
    ("height_cm", "height"),
    ("egfr_ml_min_173", "egfr"),
    ("crcl_ml_min", "creatinine_clearance"),
    ("qtc_ms", "qtc"),
    ("bmi", "height"),
)


def _finite_patient(patient: Patient) -> Patient:
    """``patient`` if its canonical numbers are finite; :class:`StepError` naming the field if not.

    A value such as ``1e308 m`` is a finite number that overflows once converted (to cm), and
    the checks could not compute with it.
    """
    for attr, field in _PATIENT_NUMBERS:
        try:
            value = getattr(patient, attr)
        except ArithmeticError as exc:  # bmi with a height so small its square is 0
            raise _numeric_problem(exc, field) from None
        if value is not None and not math.isfinite(value):
            raise StepError(
                field,
                f"{_units.format_quantity(getattr(patient, field))} is too large to compute with",
            )
    return patient


def _lenient_patient(kwargs: dict[str, Any], problems: list[Problem]) -> Patient:
    """Build a Patient, dropping (and recording) each field that is refused."""
    for _ in range(len(kwargs) + 1):
        try:
            return _finite_patient(Patient(**kwargs))
        except MpsAnalgesiaError as exc:
            field = getattr(exc, "field", "").split(".")[0]
            if field not in kwargs:
                raise
            problems.append(Problem(f"Patient.{field}", _message(exc)))
            kwargs.pop(field)
    return Patient()  # pragma: no cover


# ---- reading: steps -----------------------------------------------------------------------------


def _message(exc: Exception) -> str:
    return str(exc)


def _first_dose_and_rate(dosage: Mapping[str, Any]) -> Mapping[str, Any]:
    dr = dosage.get("doseAndRate")
    if isinstance(dr, list) and dr and isinstance(dr[0], Mapping):
        return dr[0]
    return {}


def _every_from_timing(timing: object) -> Any:
    if not isinstance(timing, Mapping):
        return None
    repeat = timing.get("repeat")
    if not isinstance(repeat, Mapping):
        return None
    period, unit = repeat.get("period"), repeat.get("periodUnit")
    freq = repeat.get("frequency", 1)
    if period is None or unit is None:
        return None
    if not isinstance(unit, str) or unit not in _PERIOD_UNITS_IN:
        raise StepError("timing.repeat.periodUnit", f"{unit!r} is not s, min, h, d or wk")
    if isinstance(freq, bool) or not isinstance(freq, int) or freq < 1:
        raise StepError(
            "timing.repeat.frequency", f"must be a whole number >= 1, not {_shown(freq)}"
        )
    if freq > 2**53:  # beyond exact float integers: no division by it means anything
        raise StepError("timing.repeat.frequency", f"{_shown(freq)} is too large to compute with")
    if isinstance(period, bool) or not isinstance(period, int | float):
        raise StepError("timing.repeat.period", f"must be a number, not {_shown(period)}")
    value = _finite_number(period, "timing.repeat.period")
    if freq != 1:
        value = value / freq
    return _units.Q(value, _PERIOD_UNITS_IN[unit])


def _whole(x: float, field: str) -> int:
    if not math.isfinite(x):
        raise StepError(field, "gives no finite number of doses per 24 h")
    n = round(x)
    if n < 1 or abs(x - n) > 1e-6 * max(1.0, abs(x)):
        raise StepError(field, f"gives {x:g} doses per 24 h, which is not a whole number")
    return int(n)


def _max_doses(ratio: object, dose: Any) -> int:
    field = "maxDosePerPeriod"
    if not isinstance(ratio, Mapping):
        raise StepError(field, "must be a Ratio {numerator, denominator}")
    num, den = ratio.get("numerator"), ratio.get("denominator")
    if not isinstance(num, Mapping) or not isinstance(den, Mapping):
        raise StepError(field, "needs a numerator and a denominator")
    hours = _units.magnitude_in(from_fhir_quantity(den, "time", field=f"{field}.denominator"), "h")
    value = num.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise StepError(f"{field}.numerator", f"must be a positive number, not {_shown(value)}")
    value = _finite_number(value, f"{field}.numerator.value")
    code = num.get("code")
    is_count = (
        code is None
        or code == "1"
        or (isinstance(code, str) and _ANNOTATION.sub("", code).strip() in ("", "1"))
    )
    if is_count:
        per_period = float(value)
    else:
        amount = from_fhir_quantity(num, "mass", field=f"{field}.numerator")
        if dose is None:
            raise StepError(field, "a maximum in mg needs a dose per administration")
        per_period = _units.magnitude_in(amount, "mg") / _units.magnitude_in(dose, "mg")
    return _whole(per_period * 24.0 / hours, field)


def _sorted_dosages(res: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = res.get("dosageInstruction")
    if not isinstance(raw, list) or not raw:
        raise StepError("dosageInstruction", "is required: the dose and schedule of the order")
    dosages = [d for d in raw if isinstance(d, Mapping)]
    if len(dosages) != len(raw):
        raise StepError("dosageInstruction", "every entry must be a Dosage object")
    return sorted(dosages, key=lambda d: _int_or(d.get("sequence"), 0))


def _phase_days(dosages: Sequence[Mapping[str, Any]], start_day: int) -> list[int]:
    days = []
    day = start_day
    for i, d in enumerate(dosages):
        plan_day = _ext_value(_extensions(d), X_PLAN_DAY, "valueInteger")
        if isinstance(plan_day, int) and not isinstance(plan_day, bool):
            day = plan_day
        days.append(day)
        timing = d.get("timing")
        repeat = timing.get("repeat") if isinstance(timing, Mapping) else None
        bounds = repeat.get("boundsDuration") if isinstance(repeat, Mapping) else None
        if bounds is not None:
            length = from_fhir_quantity(bounds, "time", field=f"dosageInstruction[{i}].bounds")
            day = day + round(_units.magnitude_in(length, "day"))
        elif i + 1 < len(dosages):
            nxt = _ext_value(_extensions(dosages[i + 1]), X_PLAN_DAY, "valueInteger")
            if not isinstance(nxt, int):
                raise StepError(
                    f"dosageInstruction[{i}].timing.repeat.boundsDuration",
                    "successive dosage instructions need a boundsDuration (how long each lasts)",
                )
    return days


def _int_or(value: object, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return default


def _step_from_medication_request(res: Mapping[str, Any]) -> Step:
    exts = _extensions(res)
    drug = _drug_from_concept(res.get("medicationCodeableConcept"), field="medication")
    record = _catalog.drug(drug)
    kind = _ext_value(exts, X_STEP_KIND, "valueCode")
    if kind is None:
        if record.drug_class == "local_anaesthetic":
            raise StepError(
                "medication",
                f"{drug} is a local anaesthetic: send the block as a ServiceRequest with the "
                "psoas_compartment_block step kind",
            )
        kind = "opioid" if record.drug_class == "opioid" else "adjuvant"
    if kind not in ("opioid", "methadone_adjuvant", "adjuvant"):
        raise StepError("extension.step-kind", f"{kind!r} is not a drug step kind")
    dosages = _sorted_dosages(res)
    first = dosages[0]
    start_day = _int_or(_ext_value(exts, X_START_DAY, "valueInteger"), 0)
    kwargs: dict[str, Any] = {"drug": drug, "start_day": start_day}
    route = _route_from_concept(first.get("route"))
    if route is not None:
        kwargs["route"] = route
    formulation = _ext_value(exts, X_FORMULATION, "valueCode")
    if formulation is not None:
        kwargs["formulation"] = formulation
    if kind == "adjuvant":
        role = _ext_value(exts, X_ROLE, "valueCode")
        if role is None:
            role = _codes().get("default_roles", {}).get(record.drug_class)
        if role is None:
            raise StepError(
                "extension.adjuvant-role", f"the role of {drug} is not given and has no default"
            )
        kwargs["role"] = role
    notes = res.get("note")
    if isinstance(notes, list) and notes and isinstance(notes[0], Mapping):
        text = notes[0].get("text")
        if isinstance(text, str):
            kwargs["note"] = text
    dr = _first_dose_and_rate(first)
    if "doseRange" in dr or "rateRange" in dr or "rateRatio" in dr:
        raise StepError(
            "dosageInstruction[0].doseAndRate",
            "a dose range cannot be checked: send one doseQuantity (or rateQuantity)",
        )
    continuous = dr.get("rateQuantity") is not None
    if continuous:
        kwargs["rate"] = from_fhir_quantity(dr["rateQuantity"], "mass_rate", field="rate")
    else:
        dose = dr.get("doseQuantity")
        if dose is None:
            raise StepError(
                "dosageInstruction[0].doseAndRate", "needs a doseQuantity (or a rateQuantity)"
            )
        kwargs["dose"] = from_fhir_quantity(dose, "mass", field="dose")
        schedule = _ext_value(_extensions(first), X_SCHEDULE, "valueCode")
        timing = first.get("timing")
        repeat = timing.get("repeat") if isinstance(timing, Mapping) else None
        repeat = repeat if isinstance(repeat, Mapping) else {}
        freq, period, unit = repeat.get("frequency"), repeat.get("period"), repeat.get("periodUnit")
        if schedule == "once" or (repeat.get("count") == 1 and period is None and schedule is None):
            kwargs["once"] = True
        elif schedule == "times-per-day" or (
            schedule is None
            and isinstance(freq, int)
            and freq > 1
            and period in (1, 1.0)
            and unit == "d"
        ):
            kwargs["times_per_day"] = freq
        else:
            every = _every_from_timing(timing)
            if every is not None:
                kwargs["every"] = every
        if first.get("asNeededBoolean") is True or first.get("asNeededCodeableConcept"):
            kwargs["prn"] = True
        if first.get("maxDosePerPeriod") is not None:
            kwargs["max_doses_per_24h"] = _max_doses(first["maxDosePerPeriod"], kwargs["dose"])
    if len(dosages) > 1:
        days = _phase_days(dosages, start_day)
        points = []
        for i, d in enumerate(dosages[1:], start=1):
            dri = _first_dose_and_rate(d)
            if continuous:
                q = from_fhir_quantity(
                    dri.get("rateQuantity"), "mass_rate", field=f"titration[{i - 1}].rate"
                )
                points.append(TitrationPoint(day=days[i], rate=q))
            else:
                q = from_fhir_quantity(
                    dri.get("doseQuantity"), "mass", field=f"titration[{i - 1}].dose"
                )
                points.append(TitrationPoint(day=days[i], dose=q))
        kwargs["titration"] = points
    cls = STEP_KINDS[kind]
    step: Step = cls(**kwargs)
    return step


def _step_from_service_request(res: Mapping[str, Any]) -> Step:
    exts = _extensions(res)
    kind = _ext_value(exts, X_STEP_KIND, "valueCode")
    if kind is None:
        for system, code, _d in _codes_in(res.get("code")):
            if system == CS_STEP_KIND:
                kind = code
    if kind not in ("psoas_compartment_block", "radiotherapy"):
        raise StepError(
            "code", "this ServiceRequest is not a psoas compartment block or a radiotherapy course"
        )
    start_day = _int_or(_ext_value(exts, X_START_DAY, "valueInteger"), 0)
    kwargs: dict[str, Any] = {"start_day": start_day}
    notes = res.get("note")
    if isinstance(notes, list) and notes and isinstance(notes[0], Mapping):
        text = notes[0].get("text")
        if isinstance(text, str):
            kwargs["note"] = text

    def q(url: str, key: str, dimension: str, field: str) -> None:
        value = _ext_value(exts, url, key)
        if value is not None:
            kwargs[field] = from_fhir_quantity(value, dimension, field=field)

    if kind == "psoas_compartment_block":
        kwargs["drug"] = _drug_from_concept(
            _ext_value(exts, X_LOCAL_ANAESTHETIC, "valueCodeableConcept"), field="drug"
        )
        q(X_CONCENTRATION, "valueQuantity", "concentration", "concentration")
        q(X_BOLUS_VOLUME, "valueQuantity", "volume", "bolus_volume")
        q(X_INFUSION_RATE, "valueQuantity", "volume_rate", "infusion_rate")
        q(X_INFUSION_DURATION, "valueDuration", "time", "infusion_duration")
        for url, key, field in (
            (X_ADRENALINE, "valueBoolean", "adrenaline"),
            (X_SIDE, "valueCode", "side"),
            (X_TECHNIQUE, "valueCode", "technique"),
        ):
            value = _ext_value(exts, url, key)
            if value is not None:
                kwargs[field] = value
        block: Step = PsoasCompartmentBlockStep(**kwargs)
        return block
    q(X_TOTAL_DOSE, "valueQuantity", "absorbed_dose", "total_dose")
    q(X_PRIOR_DOSE, "valueQuantity", "absorbed_dose", "prior_dose")
    for url, key, field in (
        (X_FRACTIONS, "valueInteger", "fractions"),
        (X_PRIOR_FRACTIONS, "valueInteger", "prior_fractions"),
        (X_SITE, "valueString", "site"),
    ):
        value = _ext_value(exts, url, key)
        if value is not None:
            kwargs[field] = value
    if "site" not in kwargs:
        sites = res.get("bodySite")
        if isinstance(sites, list) and sites and isinstance(sites[0], Mapping):
            kwargs["site"] = sites[0].get("text", "")
    course: Step = RadiotherapyStep(**kwargs)
    return course


def step_from_resource(resource: Mapping[str, Any]) -> Step:
    """Build one step from a MedicationRequest or ServiceRequest resource.

    A MedicationRequest gives an opioid, methadone-adjuvant or adjuvant step (the kind from the
    project's ``step-kind`` extension, else from the drug's class); a ServiceRequest gives a psoas
    compartment block or a radiotherapy course.  Raises a :class:`MpsAnalgesiaError` saying what
    is missing or wrong.

    Example
    -------
    >>> from mps_analgesia.fhir import step_from_resource
    >>> order = {"resourceType": "MedicationRequest", "status": "draft", "intent": "order",
    ...     "medicationCodeableConcept": {"coding": [
    ...         {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "10689"}]},
    ...     "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 6,
    ...                                                  "periodUnit": "h"}},
    ...         "doseAndRate": [{"doseQuantity": {"value": 100, "system":
    ...                          "http://unitsofmeasure.org", "code": "mg"}}]}]}
    >>> step_from_resource(order).daily_dose_mg
    400.0
    """
    rtype = resource.get("resourceType")
    if rtype not in ("MedicationRequest", "ServiceRequest"):
        raise StepError(
            "resourceType", f"{_shown(rtype)} is not a MedicationRequest or ServiceRequest"
        )
    try:
        if rtype == "MedicationRequest":
            step = _step_from_medication_request(resource)
        else:
            step = _step_from_service_request(resource)
        return _finite_step(step)
    except MpsAnalgesiaError:
        raise
    except ArithmeticError as exc:
        raise _numeric_problem(exc) from None


def _numeric_problem(exc: BaseException, field: str = "value") -> StepError:
    """A :class:`StepError` for a number that overflowed (or divided by zero) while being read."""
    return StepError(
        field,
        f"a number is too large or too small to compute with ({type(exc).__name__}: {exc})",
    )


# Numbers a step derives (besides its float fields) that the checks compute with.
_STEP_DERIVED: Final = ("bolus_mg", "infusion_mg_per_h", "infusion_total_mg", "max_24h_mg")
_MAX_EXACT_INT: Final = 2**53  # integers beyond this are not exact floats


def _finite_step(step: Step) -> Step:
    """``step`` if every number it holds or derives is finite; :class:`StepError` if not.

    ``1e308 mg`` every 6 h is a finite dose but an infinite daily dose: refused here, so that no
    check ever computes with infinity.
    """
    values: list[tuple[str, object]] = [
        (f.name, getattr(step, f.name)) for f in attrs.fields(type(step))
    ]
    values += [(name, getattr(step, name)) for name in _STEP_DERIVED if hasattr(step, name)]
    if isinstance(step, RadiotherapyStep):
        values.append(("dose_per_fraction", step.dose_per_fraction_gy))
    for i, point in enumerate(getattr(step, "titration", None) or ()):
        values += [
            (f"titration[{i}].dose", point.dose_mg),
            (f"titration[{i}].rate", point.rate_mg_per_h),
        ]
    for name, value in values:
        if isinstance(value, bool):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise StepError(name, "is too large to compute with (it overflows to infinity)")
        if isinstance(value, int) and abs(value) > _MAX_EXACT_INT:
            raise StepError(name, f"{_shown(value)} is too large to compute with")
    return step


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


def from_bundle(bundle: Mapping[str, Any]) -> tuple[Patient, Regimen]:
    """Read a FHIR Bundle back into ``(patient, regimen)``.

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
        patient = patient_from_resources(patient_res, observations, statements)
    except MpsAnalgesiaError as exc:
        problems.append(Problem("Patient", _message(exc)))
        patient = Patient()
    except ArithmeticError as exc:  # every read is guarded; kept as a net
        problems.append(Problem("Patient", _message(_numeric_problem(exc))))
        patient = Patient()
    steps = []
    for i, res in _careplan_order(plan, requests):
        try:
            steps.append(step_from_resource(res))
        except MpsAnalgesiaError as exc:
            problems.append(
                Problem(f"entry[{i}] ({res['resourceType']}/{res.get('id')})", str(exc))
            )
    if problems:
        raise CaseFileError(_BUNDLE_FILE, problems)
    name = plan.get("title", "") if plan is not None else ""
    return patient, Regimen(steps, name=str(name) if isinstance(name, str) else "")


# ---- Report -> DetectedIssue --------------------------------------------------------------------


def _default_reference(report: Report, index: int) -> str:
    regimen = report.regimen
    if regimen is not None and 0 <= index < len(regimen):
        return f"{_resource_type(regimen[index])}/step-{index}"
    return f"MedicationRequest/step-{index}"


def _source_url(source_ids: Iterable[str]) -> str:
    for sid in source_ids:
        try:
            url = _catalog.source(sid).url
        except MpsAnalgesiaError:
            continue
        if url:
            return url
    return ""


def report_to_fhir(
    report: Report,
    *,
    patient_reference: str = "Patient/patient",
    references: Mapping[int, str] | None = None,
    include_not_checked: bool = True,
) -> list[dict[str, Any]]:
    """The report's findings as FHIR R4 DetectedIssue resources.

    ``severity`` follows :data:`~mps_analgesia.report.FHIR_SEVERITY` (error → high, warning →
    moderate, info → low); ``code`` is the finding code; ``detail`` is the message and the
    arithmetic; ``implicated`` references the step's MedicationRequest or ServiceRequest
    (``references`` maps a step index to a reference, default ``MedicationRequest/step-<i>`` as
    written by :func:`to_bundle`); ``reference`` is the DOI link of the first source that has
    one.  With ``include_not_checked``, each check that could not run is also a low-severity
    DetectedIssue (code system ``.../CodeSystem/not-checked``), so an incomplete check never
    reads as clean.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.fhir import report_to_fhir
    >>> step = mps.AdjuvantStep(drug="acetaminophen", role="nociceptive",
    ...                         dose="1250 mg", every="6 h")
    >>> issues = report_to_fhir(mps.validate(mps.Regimen([step])))
    >>> issue = [i for i in issues if i["code"]["coding"][0]["code"] == "dose.max-daily"][0]
    >>> issue["severity"], issue["implicated"][0]["reference"]
    ('high', 'MedicationRequest/step-0')
    """
    references = references or {}
    out: list[dict[str, Any]] = []
    for n, f in enumerate(report.findings):
        detail = f.message
        if f.arithmetic:
            detail += f"\nCalculation: {f.arithmetic}"
        res: dict[str, Any] = {
            "resourceType": "DetectedIssue",
            "id": f"finding-{n}",
            "extension": [_ext(X_LEVEL, valueCode=f.level)],
            "status": "preliminary",
            "code": {"coding": [_coding(CS_FINDING, f.code)], "text": f.code},
            "severity": FHIR_SEVERITY[f.severity],
            "patient": {"reference": patient_reference},
            "detail": detail,
        }
        if f.step is not None:
            ref = references.get(f.step) or _default_reference(report, f.step)
            implicated: dict[str, Any] = {"reference": ref}
            if report.regimen is not None and 0 <= f.step < len(report.regimen):
                implicated["display"] = report.regimen[f.step].describe()
            res["implicated"] = [implicated]
        url = _source_url(f.source)
        if url:
            res["reference"] = url
        if f.source:
            res["evidence"] = [{"detail": [{"display": sid} for sid in f.source]}]
        out.append(res)
    if include_not_checked:
        for n, nc in enumerate(report.not_checked):
            why = f": {nc.reason}" if nc.reason else ""
            res = {
                "resourceType": "DetectedIssue",
                "id": f"not-checked-{n}",
                "extension": [_ext(X_NOT_CHECKED, valueString=nc.missing)],
                "status": "preliminary",
                "code": {"coding": [_coding(CS_NOT_CHECKED, nc.rule)], "text": nc.rule},
                "severity": "low",
                "patient": {"reference": patient_reference},
                "detail": f"Not checked (this is not a pass): missing {nc.missing}{why}",
            }
            if nc.step is not None:
                ref = references.get(nc.step) or _default_reference(report, nc.step)
                res["implicated"] = [{"reference": ref}]
            out.append(res)
    return out
