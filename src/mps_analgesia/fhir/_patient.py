"""Reading the Patient, its Observations and MedicationStatements into a Patient."""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from .. import _units
from ..errors import MpsAnalgesiaError, Problem, StepError, UnitError
from ..patient import Anticoagulant, Patient
from ._base import (
    _MEASURE_CODE,
    _MEASURE_DIMENSION,
    _SEXES,
    CS_MEASURE,
    LOINC,
    X_AGE,
    X_HEPATIC,
    X_LAST_DOSE_AGO,
    X_MED_ROLE,
    X_MEDICATIONS_RECORDED,
    X_NO_ANTICOAGULANT,
    X_TOLERANT,
    _codes_in,
    _ext_value,
    _extensions,
    _finite_number,
    _loinc_to_measure,
    _medication_name,
    _message,
    _numeric_problem,
    _shown,
)
from ._dosage import _every_from_timing, _first_dose_and_rate
from ._quantity import from_fhir_quantity

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


def _age_from_birth_date(text: object, as_of: _dt.date | None = None) -> float:
    """The age in whole years on ``as_of`` (default: today's date); :class:`StepError` for a
    date that is not one."""

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
    today = as_of if as_of is not None else _dt.date.today()
    years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if not 0 <= years <= 130:
        raise StepError(field, f"{text!r} gives an age of {years} years, outside 0-130")
    return float(years)


def _as_date(value: _dt.date | _dt.datetime | None) -> _dt.date | None:
    """A reference date: a datetime counts by its own date."""
    if isinstance(value, _dt.datetime):
        return value.date()
    if value is None or isinstance(value, _dt.date):
        return value
    raise TypeError(f"as_of must be a date or datetime, not {type(value).__name__}")


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
    as_of: _dt.date | _dt.datetime | None = None,
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
    then reports *not checked*); without it, the first problem raises.  ``as_of`` is the date
    an age from ``birthDate`` is computed on (a datetime counts by its date; default: today),
    so an audit ``--as-of`` a past date gives the age the patient had then.

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
                birth = _age_from_birth_date(patient.get("birthDate"), _as_date(as_of))
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
