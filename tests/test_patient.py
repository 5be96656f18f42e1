"""The patient: every field optional, validated, with canonical floats and derived values."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings

from mps_analgesia._units import Q
from mps_analgesia.errors import DimensionError, StepError, UnitError
from mps_analgesia.patient import HEPATIC_IMPAIRMENT, SEXES, Anticoagulant, Patient
from strategies import patients


class TestFields:
    def test_everything_missing_is_allowed(self) -> None:
        """Patient() with nothing known constructs; every value is None (not recorded)."""
        p = Patient()
        assert (p.age, p.sex, p.weight_kg, p.height_cm, p.qtc_ms) == (None,) * 5
        assert (p.egfr_ml_min_173, p.crcl_ml_min, p.hepatic_impairment) == (None,) * 3
        assert (p.opioid_tolerant, p.anticoagulant, p.medications) == (None, None, None)
        assert p.bmi is None
        assert p.renal_function is None

    def test_full_patient(self) -> None:
        """The issue's example patient constructs with canonical floats."""
        p = Patient(
            age=78,
            sex="female",
            weight="52 kg",
            height="155 cm",
            egfr="58 mL/min/1.73m2",
            hepatic_impairment="none",
            qtc="440 ms",
            opioid_tolerant=True,
            medications=["letrozole", "sertraline"],
            anticoagulant={
                "drug": "apixaban",
                "dose": "5 mg",
                "every": "12 h",
                "last_dose_ago": "30 h",
            },
        )
        assert p.age == 78.0
        assert isinstance(p.age, float)
        assert (p.weight_kg, p.height_cm, p.egfr_ml_min_173, p.qtc_ms) == (52.0, 155.0, 58.0, 440.0)
        assert p.medications == ("letrozole", "sertraline")
        assert p.anticoagulant is not None
        assert p.anticoagulant.last_dose_h == 30.0

    @pytest.mark.parametrize(
        ("field", "text", "attr", "expected"),
        [
            ("weight", "52000 g", "weight_kg", 52.0),
            ("height", "1.55 m", "height_cm", 155.0),
            ("qtc", "0.44 s", "qtc_ms", 440.0),
            ("egfr", "58 mL/min/1.73 m²", "egfr_ml_min_173", 58.0),
            ("creatinine_clearance", "55 mL/min", "crcl_ml_min", 55.0),
        ],
    )
    def test_quantities_in_other_units(
        self, field: str, text: str, attr: str, expected: float
    ) -> None:
        """Quantities in any unit of the right dimension become canonical floats."""
        assert getattr(Patient(**{field: text}), attr) == pytest.approx(expected)

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("weight", 52, "weight: '52' has no unit; write e.g. '52 kg'"),
            ("qtc", "440", "qtc: '440' has no unit; write e.g. '440 ms'"),
            ("height", 155, "height: '155' has no unit; write e.g. '155 cm'"),
        ],
    )
    def test_bare_numbers_name_the_expected_unit(
        self, field: str, value: Any, message: str
    ) -> None:
        """A bare number is refused with the field's usual unit."""
        with pytest.raises(UnitError) as info:
            Patient(**{field: value})
        assert str(info.value) == message

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("egfr", "58 mL/min", "is a volume rate, not an egfr"),
            ("creatinine_clearance", "58 mL/min/1.73m2", "is an egfr, not a renal clearance"),
            ("weight", "52 mL", "is a volume, not a mass"),
            ("qtc", "440 mg", "is a mass, not a time"),
        ],
    )
    def test_wrong_dimension(self, field: str, value: str, message: str) -> None:
        """A quantity of the wrong dimension raises DimensionError naming the field."""
        with pytest.raises(DimensionError, match=message) as info:
            Patient(**{field: value})
        assert info.value.field == field

    @pytest.mark.parametrize("field", ["weight", "height", "qtc", "egfr", "creatinine_clearance"])
    def test_zero_is_refused(self, field: str) -> None:
        """A zero weight, height, QTc or renal function is refused."""
        value = {
            "weight": "0 kg",
            "height": "0 cm",
            "qtc": "0 ms",
            "egfr": "0 mL/min/1.73m2",
            "creatinine_clearance": "0 mL/min",
        }[field]
        with pytest.raises(StepError, match="must be greater than zero") as info:
            Patient(**{field: value})
        assert info.value.field == field

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("78", "must be a number of years"),
            (True, "must be a number of years"),
            (math.nan, "must be a number of years"),
            (-1, "between 0 and 130"),
            (131, "between 0 and 130"),
        ],
    )
    def test_bad_age(self, value: Any, message: str) -> None:
        """Age is a number of years between 0 and 130."""
        with pytest.raises(StepError, match=message) as info:
            Patient(age=value)
        assert info.value.field == "age"

    @pytest.mark.parametrize("sex", SEXES)
    def test_sexes(self, sex: str) -> None:
        """Each listed sex is accepted, case-insensitively."""
        assert Patient(sex=sex.upper()).sex == sex

    def test_unknown_sex(self) -> None:
        """An unlisted sex is refused with the choices."""
        with pytest.raises(StepError, match="'F' is not one of female, male, other"):
            Patient(sex="F")

    @pytest.mark.parametrize("grade", HEPATIC_IMPAIRMENT)
    def test_hepatic_grades(self, grade: str) -> None:
        """Each hepatic impairment grade is accepted."""
        assert Patient(hepatic_impairment=f" {grade.title()} ").hepatic_impairment == grade

    def test_unknown_hepatic_grade(self) -> None:
        """An unknown hepatic impairment grade is refused on its field."""
        with pytest.raises(StepError) as info:
            Patient(hepatic_impairment="Child-Pugh B")
        assert info.value.field == "hepatic_impairment"
        assert "none, mild, moderate, severe" in str(info.value)

    def test_opioid_tolerance_is_a_boolean(self) -> None:
        """opioid_tolerant is true, false or unknown (None)."""
        assert Patient(opioid_tolerant=False).opioid_tolerant is False
        with pytest.raises(StepError, match="must be true or false"):
            Patient(opioid_tolerant="yes")

    def test_medications_are_normalised(self) -> None:
        """Medicine names are trimmed, white space folded and lower-cased."""
        p = Patient(medications=[" St  John's Wort ", "Sertraline"])
        assert p.medications == ("st john's wort", "sertraline")

    def test_no_medications_is_not_the_same_as_not_recorded(self) -> None:
        """[] records 'takes none' (an empty tuple); None (the default) is 'not recorded'."""
        assert Patient(medications=[]).medications == ()
        assert Patient(medications=()).medications == ()
        assert Patient(medications=None).medications is None
        assert Patient(medications=[]) != Patient()

    @pytest.mark.parametrize(
        ("value", "field"),
        [
            ("sertraline", "medications"),
            (["sertraline", ""], "medications[1]"),
            ([3], "medications[0]"),
        ],
    )
    def test_bad_medications(self, value: Any, field: str) -> None:
        """Medications must be a list of non-empty names; the bad item is named."""
        with pytest.raises(StepError) as info:
            Patient(medications=value)
        assert info.value.field == field


class TestDerived:
    def test_bmi(self) -> None:
        """BMI = weight / height²: 52 kg at 155 cm is 21.6."""
        assert Patient(weight="52 kg", height="155 cm").bmi == pytest.approx(21.644, abs=1e-3)

    @pytest.mark.parametrize("kwargs", [{"weight": "52 kg"}, {"height": "155 cm"}])
    def test_bmi_needs_both(self, kwargs: dict[str, str]) -> None:
        """Without weight or height there is no BMI."""
        assert Patient(**kwargs).bmi is None

    def test_renal_function_prefers_creatinine_clearance(self) -> None:
        """With both, creatinine clearance is the renal measure used."""
        p = Patient(egfr="58 mL/min/1.73m2", creatinine_clearance="45 mL/min")
        assert p.renal_function == (45.0, "creatinine clearance")

    def test_renal_function_falls_back_to_egfr(self) -> None:
        """With only eGFR, eGFR is used."""
        assert Patient(egfr="58 mL/min/1.73m2").renal_function == (58.0, "eGFR")


class TestAnticoagulant:
    def test_table(self) -> None:
        """An anticoagulant with dose, interval and time since the last dose."""
        a = Anticoagulant(drug=" Apixaban ", dose="5 mg", every="12 h", last_dose_ago="1.5 day")
        assert (a.drug, a.dose_mg, a.every_h, a.last_dose_h) == ("apixaban", 5.0, 12.0, 36.0)

    def test_only_the_drug_is_required(self) -> None:
        """Dose, interval and last dose may be missing."""
        a = Anticoagulant(drug="warfarin")
        assert (a.dose_mg, a.every_h, a.last_dose_h) == (None, None, None)

    def test_last_dose_just_now(self) -> None:
        """A last dose 0 h ago is allowed (it was just given)."""
        assert Anticoagulant(drug="apixaban", last_dose_ago="0 h").last_dose_h == 0.0

    @pytest.mark.parametrize("text", ["none", "None", " NONE "])
    def test_none_records_no_anticoagulant(self, text: str) -> None:
        """The text 'none' records that the patient takes no anticoagulant; None is unknown."""
        p = Patient(anticoagulant=text)
        assert p.anticoagulant == "none"
        assert p.anticoagulant_drug is None
        assert p != Patient()
        assert Patient().anticoagulant is None

    def test_anticoagulant_drug(self) -> None:
        """anticoagulant_drug is the Anticoagulant taken, else None."""
        a = Anticoagulant(drug="apixaban")
        assert Patient(anticoagulant=a).anticoagulant_drug is a
        assert Patient().anticoagulant_drug is None

    def test_patient_takes_a_dict_or_an_object(self) -> None:
        """The patient's anticoagulant may be given as a table or an Anticoagulant."""
        a = Anticoagulant(drug="apixaban", dose="5 mg")
        assert Patient(anticoagulant={"drug": "apixaban", "dose": "5 mg"}).anticoagulant == a
        assert Patient(anticoagulant=a).anticoagulant is a

    @pytest.mark.parametrize(
        ("value", "exc", "field", "message"),
        [
            ({"drug": " "}, StepError, "anticoagulant.drug", "is required"),
            ({"drug": "apixaban", "dose": "5 mL"}, DimensionError, "anticoagulant.dose", "volume"),
            (
                {"drug": "apixaban", "every": "0 h"},
                StepError,
                "anticoagulant.every",
                "greater than zero",
            ),
            (
                {"drug": "apixaban", "last_dose_ago": "-2 h"},
                StepError,
                "anticoagulant.last_dose_ago",
                "cannot be negative",
            ),
            ({"drug": "apixaban", "dos": "5 mg"}, StepError, "anticoagulant", "unknown key"),
            ("apixaban", StepError, "anticoagulant", "must be a table"),
            ("no", StepError, "anticoagulant", "or 'none' when"),
            (False, StepError, "anticoagulant", "must be a table"),
        ],
    )
    def test_bad_anticoagulant(
        self, value: Any, exc: type[Exception], field: str, message: str
    ) -> None:
        """A bad anticoagulant names its field under 'anticoagulant.'."""
        with pytest.raises(exc, match=message) as info:
            Patient(anticoagulant=value)
        assert info.value.field == field  # type: ignore[attr-defined]


class TestEquality:
    def test_equal_in_other_units(self) -> None:
        """Patients equal in canonical values are equal and hash equal."""
        a = Patient(weight="52 kg", qtc="440 ms")
        b = Patient(weight="52000 g", qtc="0.44 s")
        assert a == b
        assert hash(a) == hash(b)

    def test_quantity_is_kept(self) -> None:
        """The Quantity given is kept for display and round trips."""
        assert Patient(weight="52 kg").weight == Q("52 kg")

    @settings(max_examples=80, deadline=None)
    @given(patients())
    def test_generated_patients_hash_and_rebuild(self, p: Patient) -> None:
        """Any valid patient is hashable and equals a copy rebuilt from its fields."""
        import attrs

        kwargs = {a.name: getattr(p, a.name) for a in attrs.fields(Patient) if a.init}
        assert Patient(**kwargs) == p
        assert hash(Patient(**kwargs)) == hash(p)


class TestPlausibility:
    """Unit slips that give absurd measurements are refused at the boundary."""

    @pytest.mark.parametrize(
        ("field", "text"),
        [
            ("weight", "52 mg"),
            ("qtc", "440 h"),
            ("height", "1.6 cm"),
            ("egfr", "5800 mL/min/1.73m2"),
        ],
    )
    def test_implausible_measurement_is_refused(self, field: str, text: str) -> None:
        """A measurement outside the plausibility bounds names the field and says check the unit."""
        with pytest.raises(StepError, match=f"^{field}: .*not a plausible.*check the unit"):
            Patient(**{field: text})

    def test_plausible_measurements_pass(self) -> None:
        """Ordinary values are accepted unchanged."""
        p = Patient(weight="45 kg", height="150 cm", qtc="480 ms", egfr="25 mL/min/1.73m2")
        assert (p.weight_kg, p.height_cm, p.qtc_ms, p.egfr_ml_min_173) == (45.0, 150.0, 480.0, 25.0)
