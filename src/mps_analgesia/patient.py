"""The patient: what the checks need to know, every value optional.

A missing value is allowed: a check that needs it reports *not checked* and names it, never
passed.  Quantities enter as text or Quantities and are kept with canonical floats whose names
carry the unit (``weight_kg``, ``qtc_ms``, ``egfr_ml_min_173``).

"Takes none" and "not recorded" are different facts.  ``medications`` is ``None`` when the other
medicines are not recorded and ``()`` when they are recorded and there are none;
``anticoagulant`` is ``None`` when not recorded, the string ``"none"``
(:data:`NO_ANTICOAGULANT`) when the patient is recorded as taking none, and an
:class:`Anticoagulant` otherwise.  Interaction and block checks that need either report *not
checked* when it is not recorded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, TypeAlias

import attrs

from . import _units
from .errors import StepError, UnitError

__all__ = [
    "HEPATIC_IMPAIRMENT",
    "NO_ANTICOAGULANT",
    "SEXES",
    "Anticoagulant",
    "AnticoagulantStatus",
    "Patient",
]

#: Hepatic impairment grades a patient may have.
HEPATIC_IMPAIRMENT: Final = ("none", "mild", "moderate", "severe")
#: Sexes recorded (for sex-specific reference values).
SEXES: Final = ("female", "male", "other")
#: ``Patient.anticoagulant`` when the patient is recorded as taking no anticoagulant.
NO_ANTICOAGULANT: Final = "none"


def _qfield(dimension: str, unit: str, example: str, doc: str) -> Any:
    return attrs.field(
        default=None,
        eq=False,
        metadata={"dimension": dimension, "unit": unit, "example": example, "doc": doc},
    )


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _bounds(name: str, dimension: str, unit: str) -> tuple[float, float] | None:
    """The plausibility bounds of a patient measurement (data/plausibility.toml), cached."""
    hit = _BOUNDS.get(name)
    if hit is None:
        from . import _catalog

        entry = _catalog.data_file("plausibility.toml").get("bounds", {}).get(name)
        if entry is None:
            return None
        where = f"plausibility.toml: bounds.{name}"
        low = _catalog.sourced(entry, dimension=dimension, unit=unit, where=where, key="low")
        high = _catalog.sourced(entry, dimension=dimension, unit=unit, where=where, key="high")
        hit = _BOUNDS[name] = (low.value, high.value)
    return hit


_BOUNDS: dict[str, tuple[float, float]] = {}


def _read(obj: object, name: str, dimension: str, unit: str) -> float | None:
    value = getattr(obj, name)
    if value is None:
        return None
    cls: Any = type(obj)
    example = getattr(attrs.fields(cls), name).metadata.get("example", "")
    q = _units.as_quantity(value, dimension, field=name, example=example)
    _set(obj, name, q)
    magnitude = _units.magnitude_in(q, unit)
    if not magnitude > 0:
        raise StepError(name, f"must be greater than zero, not {_units.format_quantity(q)}")
    bounds = _bounds(name, dimension, unit)
    if bounds is not None and not bounds[0] <= magnitude <= bounds[1]:
        raise StepError(
            name,
            f"{_units.format_quantity(q)} is not a plausible {name.replace('_', ' ')} "
            f"(outside {_units._fmt_number(bounds[0])}–{_units._fmt_number(bounds[1])} {unit}); "
            "check the unit",
        )
    return magnitude


def _names(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None  # not recorded (an empty list is recorded: takes none)
    unordered = isinstance(value, Mapping | set | frozenset)  # a table's keys are no list
    if isinstance(value, str | bytes) or unordered or not isinstance(value, Iterable):
        raise StepError(
            "medications",
            "must be a list of medicine names, e.g. ['sertraline'] ([] when the patient takes "
            "none)",
        )
    out = []
    for i, name in enumerate(value):
        if not isinstance(name, str) or not name.strip():
            raise StepError(f"medications[{i}]", f"must be a medicine name, not {name!r}")
        out.append(" ".join(name.split()).lower())
    return tuple(out)


@attrs.define(frozen=True, kw_only=True)
class Anticoagulant:
    """An anticoagulant the patient takes, with the time since its last dose.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> mps.Anticoagulant(drug="apixaban", dose="5 mg", every="12 h",
    ...                   last_dose_ago="30 h").last_dose_h
    30.0
    """

    drug: str
    dose: Any = _qfield("mass", "mg", "5 mg", "the dose per administration")
    every: Any = _qfield("time", "h", "12 h", "the dosing interval")
    last_dose_ago: Any = _qfield("time", "h", "30 h", "time since the last dose")

    dose_mg: float | None = attrs.field(init=False, default=None)
    every_h: float | None = attrs.field(init=False, default=None)
    last_dose_h: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.drug, str) or not self.drug.strip():
            raise StepError("drug", "is required, e.g. 'apixaban'")
        _set(self, "drug", " ".join(self.drug.split()).lower())
        _set(self, "dose_mg", _read(self, "dose", "mass", "mg"))
        _set(self, "every_h", _read(self, "every", "time", "h"))
        value = self.last_dose_ago
        if value is not None:
            q = _units.as_quantity(value, "time", field="last_dose_ago", example="30 h")
            _set(self, "last_dose_ago", q)
            hours = _units.magnitude_in(q, "h")
            if hours < 0:
                raise StepError("last_dose_ago", "cannot be negative")
            _set(self, "last_dose_h", hours)


#: What ``Patient.anticoagulant`` holds: the drug, ``"none"`` (recorded: takes none), or
#: ``None`` (not recorded).
AnticoagulantStatus: TypeAlias = "Anticoagulant | Literal['none'] | None"


def _anticoagulant(value: object) -> Anticoagulant | Literal["none"] | None:
    if value is None or isinstance(value, Anticoagulant):
        return value
    if isinstance(value, str) and value.strip().lower() == NO_ANTICOAGULANT:
        return "none"
    if isinstance(value, dict):
        try:
            return Anticoagulant(**value)
        except TypeError as exc:
            raise StepError("anticoagulant", f"unknown key: {exc}") from None
        except StepError as exc:  # name the field as the case file does
            raise StepError(f"anticoagulant.{exc.field}", exc.reason) from None
        except UnitError as exc:
            field = f"anticoagulant.{exc.field}"
            raise type(exc)(exc.text, exc.reason, exc.suggestion, field) from None
    raise StepError(
        "anticoagulant",
        "must be a table {drug, dose, every, last_dose_ago}, or 'none' when the patient is "
        "recorded as taking no anticoagulant",
    )


@attrs.define(frozen=True, kw_only=True)
class Patient:
    """A patient as the checks see them.  Every value is optional.

    ``medications``: ``None`` = not recorded, ``()`` (``[]`` in a case file) = recorded, takes
    none.  ``anticoagulant``: ``None`` = not recorded, ``"none"`` = recorded, takes none, an
    :class:`Anticoagulant` (a table in a case file) = the drug taken.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> p = mps.Patient(age=78, sex="female", weight="52 kg", height="155 cm", qtc="440 ms")
    >>> round(p.bmi, 1), p.qtc_ms
    (21.6, 440.0)
    >>> p.medications is None, mps.Patient(medications=[]).medications
    (True, ())
    >>> mps.Patient(anticoagulant="none").anticoagulant, p.anticoagulant is None
    ('none', True)
    """

    age: float | None = attrs.field(default=None, metadata={"doc": "age in years (a number)"})
    sex: str | None = None
    weight: Any = _qfield("mass", "kg", "52 kg", "body weight")
    height: Any = _qfield("length", "cm", "155 cm", "height")
    egfr: Any = _qfield("egfr", "mL/min/standard_bsa", "58 mL/min/1.73m2", "estimated GFR")
    creatinine_clearance: Any = _qfield(
        "renal_clearance", "mL/min", "55 mL/min", "creatinine clearance (Cockcroft-Gault)"
    )
    hepatic_impairment: str | None = None
    qtc: Any = _qfield("time", "ms", "440 ms", "corrected QT interval")
    opioid_tolerant: bool | None = None
    medications: tuple[str, ...] | None = attrs.field(
        default=None,
        converter=_names,
        metadata={
            "doc": "the patient's other current medicines by name; [] = recorded, takes none; "
            "leave out when not recorded"
        },
    )
    anticoagulant: Anticoagulant | Literal["none"] | None = attrs.field(
        default=None,
        converter=_anticoagulant,
        metadata={
            "doc": "the anticoagulant taken, as a table; 'none' = recorded, takes none; leave "
            "out when not recorded"
        },
    )
    inr: float | None = attrs.field(
        default=None,
        metadata={"doc": "the latest INR (international normalized ratio, a plain number)"},
    )

    weight_kg: float | None = attrs.field(init=False, default=None)
    height_cm: float | None = attrs.field(init=False, default=None)
    egfr_ml_min_173: float | None = attrs.field(init=False, default=None)
    crcl_ml_min: float | None = attrs.field(init=False, default=None)
    qtc_ms: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        if self.age is not None:
            age = self.age
            if isinstance(age, bool) or not isinstance(age, int | float) or not math.isfinite(age):
                raise StepError("age", f"must be a number of years, not {age!r}")
            if not 0 <= age <= 130:
                raise StepError("age", f"must be between 0 and 130 years, not {age!r}")
            _set(self, "age", float(age))
        if self.sex is not None:
            sex = str(self.sex).strip().lower()
            if sex not in SEXES:
                raise StepError("sex", f"{self.sex!r} is not one of {', '.join(SEXES)}")
            _set(self, "sex", sex)
        if self.hepatic_impairment is not None:
            grade = str(self.hepatic_impairment).strip().lower()
            if grade not in HEPATIC_IMPAIRMENT:
                raise StepError(
                    "hepatic_impairment",
                    f"{self.hepatic_impairment!r} is not one of {', '.join(HEPATIC_IMPAIRMENT)}",
                )
            _set(self, "hepatic_impairment", grade)
        if self.opioid_tolerant is not None and not isinstance(self.opioid_tolerant, bool):
            raise StepError(
                "opioid_tolerant", f"must be true or false, not {self.opioid_tolerant!r}"
            )
        if self.inr is not None:
            inr = self.inr
            if isinstance(inr, bool) or not isinstance(inr, int | float) or not math.isfinite(inr):
                raise StepError("inr", f"must be a number (a ratio, no unit), not {inr!r}")
            if not 0.5 <= inr <= 20:
                raise StepError("inr", f"must be between 0.5 and 20, not {inr!r}")
            _set(self, "inr", float(inr))
        _set(self, "weight_kg", _read(self, "weight", "mass", "kg"))
        _set(self, "height_cm", _read(self, "height", "length", "cm"))
        _set(self, "egfr_ml_min_173", _read(self, "egfr", "egfr", "mL/min/standard_bsa"))
        _set(self, "crcl_ml_min", _read(self, "creatinine_clearance", "renal_clearance", "mL/min"))
        _set(self, "qtc_ms", _read(self, "qtc", "time", "ms"))

    @property
    def anticoagulant_drug(self) -> Anticoagulant | None:
        """The anticoagulant taken, or ``None`` (none taken, or not recorded).

        Example
        -------
        >>> Patient(anticoagulant={"drug": "apixaban"}).anticoagulant_drug.drug
        'apixaban'
        >>> Patient(anticoagulant="none").anticoagulant_drug is None
        True
        """
        ac = self.anticoagulant
        return ac if isinstance(ac, Anticoagulant) else None

    @property
    def bmi(self) -> float | None:
        """Body-mass index in kg/m² (weight / height²), or ``None`` without both."""
        if self.weight_kg is None or self.height_cm is None:
            return None
        metres = self.height_cm / 100.0
        return self.weight_kg / (metres * metres)

    @property
    def renal_function(self) -> tuple[float, str] | None:
        """The renal measure the checks use: creatinine clearance if known, else eGFR.

        Returns ``(value in mL/min, "creatinine clearance" | "eGFR")`` or ``None``.
        """
        if self.crcl_ml_min is not None:
            return self.crcl_ml_min, "creatinine clearance"
        if self.egfr_ml_min_173 is not None:
            return self.egfr_ml_min_173, "eGFR"
        return None
