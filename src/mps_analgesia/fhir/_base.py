"""The FHIR boundary's vocabulary: bases, extension URLs, code systems and small helpers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from typing import Any, Final

from .. import _catalog
from ..errors import MpsAnalgesiaError, StepError, UnitError

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
X_DOSE_FORM: Final = _ext_url("dose-form")
X_ORIGINAL_TEXT: Final = _ext_url("original-text")
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
            "a medicationCodeableConcept or a medicationReference to a Medication is required",
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


def _message(exc: Exception) -> str:
    return str(exc)


def _numeric_problem(exc: BaseException, field: str = "value") -> StepError:
    """A :class:`StepError` for a number that overflowed (or divided by zero) while being read."""
    return StepError(
        field,
        f"a number is too large or too small to compute with ({type(exc).__name__}: {exc})",
    )
