"""FHIR R4: Bundles out and back (lossless), the UCUM table and its traps, DetectedIssues."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mps_analgesia as mps
from mps_analgesia import fhir
from mps_analgesia.errors import CaseFileError, MpsAnalgesiaError, StepError, UnitError
from mps_analgesia.fhir import (
    from_bundle,
    from_fhir_quantity,
    patient_from_resources,
    report_to_fhir,
    step_from_resource,
    to_bundle,
    to_fhir_quantity,
)
from strategies import UNITS_BY_DIMENSION, patients, quantity_texts, regimens

r4b = pytest.importorskip("fhir.resources.R4B")
from fhir.resources.R4B.bundle import Bundle  # noqa: E402
from fhir.resources.R4B.detectedissue import DetectedIssue  # noqa: E402

EXAMPLES = sorted(Path(__file__).parent.parent.joinpath("examples").glob("*.toml"))
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_FAST = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def _resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def _json_round(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def _multimodal() -> mps.Case:
    return mps.load_case(EXAMPLES[0].parent / "mps-multimodal.toml")


def _order(**dosage: Any) -> dict[str, Any]:
    """A MedicationRequest as another system would write it: no project extensions."""
    base: dict[str, Any] = {
        "timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}},
        "route": {"coding": [{"system": SNOMED, "code": "26643006"}]},
        "doseAndRate": [{"doseQuantity": {"value": 100, "system": UCUM, "code": "mg"}}],
    }
    base.update(dosage)
    return {
        "resourceType": "MedicationRequest",
        "id": "ext-1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/x"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "10689"}]},
        "dosageInstruction": [base],
    }


class TestRoundTrip:
    @pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
    def test_every_example_round_trips_exactly(self, path: Path) -> None:
        """from_bundle(to_bundle(r, p)) gives back the example's patient and regimen."""
        case = mps.load_case(path)
        bundle = _json_round(to_bundle(case.regimen, case.patient))
        assert from_bundle(bundle) == (case.patient, case.regimen)

    @_FAST
    @given(regimens(), patients())
    def test_any_regimen_and_patient_round_trip(self, regimen: mps.Regimen, patient: Any) -> None:
        """Random valid regimens and patients survive the trip through JSON FHIR unchanged."""
        bundle = _json_round(to_bundle(regimen, patient))
        assert from_bundle(bundle) == (patient, regimen)

    def test_protocol_instantiations_round_trip(self) -> None:
        """Every shipped protocol, made for the multimodal patient, round-trips."""
        protocols = pytest.importorskip("mps_analgesia.protocols")
        shipped = protocols.list_protocols()
        if not shipped:
            pytest.skip("no protocol is shipped yet")
        case = _multimodal()
        done = 0
        for protocol in shipped:
            for current in (mps.Regimen([]), mps.Regimen(case.regimen.steps[:2])):
                try:
                    plan = protocol.instantiate(case.patient, current, {"side": "left"})
                except mps.ProtocolError:
                    continue
                bundle = _json_round(to_bundle(plan.regimen, plan.patient))
                assert from_bundle(bundle) == (plan.patient, plan.regimen), protocol.id
                done += 1
        assert done > 0

    @pytest.mark.parametrize("medications", [None, [], ["sertraline", "letrozole"]])
    @pytest.mark.parametrize(
        "anticoagulant", [None, "none", {"drug": "apixaban", "last_dose_ago": "30 h"}]
    )
    def test_recorded_and_unrecorded_states_round_trip(
        self, medications: Any, anticoagulant: Any
    ) -> None:
        """Not recorded, recorded as none, and recorded values of the medicines and the
        anticoagulant each come back as they went out."""
        patient = mps.Patient(medications=medications, anticoagulant=anticoagulant)
        bundle = _json_round(to_bundle(mps.Regimen([]), patient))
        back, _ = from_bundle(bundle)
        assert back == patient
        assert back.medications == patient.medications
        assert back.anticoagulant == patient.anticoagulant

    def test_recorded_none_flags(self) -> None:
        """[] and 'none' are Patient extensions; unrecorded values write nothing."""

        def urls(patient: mps.Patient) -> set[str]:
            (res,) = _resources(to_bundle(mps.Regimen([]), patient), "Patient")
            return {e["url"].rsplit("/", 1)[1] for e in res.get("extension", ())}

        assert urls(mps.Patient()) == set()
        assert urls(mps.Patient(medications=[], anticoagulant="none")) == {
            "medications-recorded",
            "no-anticoagulant",
        }

    def test_foreign_statements_count_as_recorded(self) -> None:
        """Another system's MedicationStatements, without the project flag, are a recorded list;
        with none and no flag the medicines are not recorded."""
        statement = {
            "resourceType": "MedicationStatement",
            "status": "active",
            "medicationCodeableConcept": {"text": "sertraline"},
        }
        assert patient_from_resources(None, (), [statement]).medications == ("sertraline",)
        assert patient_from_resources({"resourceType": "Patient"}).medications is None
        assert patient_from_resources({"resourceType": "Patient"}).anticoagulant is None

    def test_regimen_name_travels_as_careplan_title(self) -> None:
        """The regimen's name is the CarePlan title, and the CarePlan keeps the step order."""
        case = _multimodal()
        bundle = to_bundle(case.regimen, case.patient)
        (plan,) = _resources(bundle, "CarePlan")
        assert plan["title"] == case.regimen.name
        refs = [a["reference"]["reference"] for a in plan["activity"]]
        assert refs[0] == "MedicationRequest/step-0"
        assert refs[-1] == "ServiceRequest/step-6"

    def test_careplan_order_wins_over_entry_order(self) -> None:
        """Steps come back in CarePlan order even when the entries are shuffled."""
        case = _multimodal()
        bundle = to_bundle(case.regimen, case.patient)
        bundle["entry"].reverse()
        assert from_bundle(bundle)[1] == case.regimen

    def test_empty_regimen_and_unknown_patient(self) -> None:
        """An empty regimen and an empty patient make a minimal Bundle that reads back."""
        bundle = to_bundle(mps.Regimen([]))
        assert [r["resourceType"] for r in (e["resource"] for e in bundle["entry"])] == [
            "Patient",
            "CarePlan",
        ]
        assert from_bundle(bundle) == (mps.Patient(), mps.Regimen([]))


class TestR4Model:
    @pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
    def test_bundle_is_a_valid_r4_bundle(self, path: Path) -> None:
        """Each example's Bundle validates against the R4(B) model library."""
        case = mps.load_case(path)
        Bundle.model_validate(to_bundle(case.regimen, case.patient))

    @_FAST
    @given(regimens(max_size=4), patients())
    def test_random_bundles_validate(self, regimen: mps.Regimen, patient: Any) -> None:
        """Bundles of random regimens validate against the R4(B) model library."""
        Bundle.model_validate(to_bundle(regimen, patient))

    def test_model_library_catches_a_broken_resource(self) -> None:
        """The validation used above can fail: an unknown element is rejected."""
        bundle = to_bundle(mps.Regimen([mps.OpioidStep(drug="morphine", dose="5 mg", once=True)]))
        _resources(bundle, "MedicationRequest")[0]["dosageInstructions"] = []
        with pytest.raises(ValueError, match="dosageInstructions"):
            Bundle.model_validate(bundle)

    @pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
    def test_detected_issues_validate(self, path: Path) -> None:
        """Every DetectedIssue of every example's report validates."""
        case = mps.load_case(path)
        for issue in report_to_fhir(mps.validate(case.regimen, case.patient)):
            DetectedIssue.model_validate(issue)


class TestEncoding:
    def test_observations_carry_loinc_codes_and_ucum_units(self) -> None:
        """Weight, height, eGFR and QTc are Observations with their LOINC code and UCUM unit."""
        case = _multimodal()
        obs = {o["id"]: o for o in _resources(to_bundle(case.regimen, case.patient), "Observation")}
        expected = {
            "weight": ("29463-7", "kg"),
            "height": ("8302-2", "cm"),
            "egfr": ("69405-9", "mL/min/{1.73_m2}"),
            "qtc": ("8636-3", "ms"),
        }
        for oid, (loinc, ucum) in expected.items():
            codes = {(c["system"], c["code"]) for c in obs[oid]["code"]["coding"]}
            assert (LOINC, loinc) in codes
            assert obs[oid]["valueQuantity"]["system"] == UCUM
            assert obs[oid]["valueQuantity"]["code"] == ucum

    def test_medication_request_has_rxnorm_and_snomed_route(self) -> None:
        """A drug step names its RxNorm ingredient and its SNOMED CT route."""
        case = _multimodal()
        mr = _resources(to_bundle(case.regimen, case.patient), "MedicationRequest")[0]
        med = mr["medicationCodeableConcept"]["coding"]
        assert {"system": RXNORM, "code": "7804", "display": "oxycodone"} in med
        route = mr["dosageInstruction"][0]["route"]["coding"]
        assert route[0] == {"system": SNOMED, "code": "26643006", "display": "Oral route"}
        assert mr["dosageInstruction"][0]["timing"]["repeat"] == {
            "frequency": 1,
            "period": 12,
            "periodUnit": "h",
        }

    def test_prn_step_has_as_needed_and_max_dose_per_period(self) -> None:
        """A PRN step has asNeededBoolean and at most N doses per 24 h as maxDosePerPeriod."""
        case = _multimodal()
        prn = _resources(to_bundle(case.regimen, case.patient), "MedicationRequest")[1]
        dosage = prn["dosageInstruction"][0]
        assert dosage["asNeededBoolean"] is True
        assert dosage["maxDosePerPeriod"]["numerator"]["value"] == 6
        assert dosage["maxDosePerPeriod"]["denominator"] == {
            "value": 24,
            "unit": "h",
            "system": UCUM,
            "code": "h",
        }

    def test_titration_is_successive_dosages_bounded_in_days(self) -> None:
        """Methadone 5 → 7.5 → 10 mg is three dosage instructions, the first two bounded 7 d."""
        case = _multimodal()
        mr = _resources(to_bundle(case.regimen, case.patient), "MedicationRequest")[2]
        dosages = mr["dosageInstruction"]
        assert [d["sequence"] for d in dosages] == [1, 2, 3]
        doses = [d["doseAndRate"][0]["doseQuantity"]["value"] for d in dosages]
        assert doses == [5, 7.5, 10]
        bounds = [d["timing"]["repeat"].get("boundsDuration", {}).get("value") for d in dosages]
        assert bounds == [7, 7, None]

    def test_patch_rate_is_written_in_ug_per_hour(self) -> None:
        """A 25 mcg/h patch goes out as rateQuantity 25 ug/h (never UCUM's 'mcg')."""
        reg = mps.Regimen([mps.OpioidStep(drug="fentanyl", route="transdermal", rate="25 mcg/h")])
        mr = _resources(to_bundle(reg), "MedicationRequest")[0]
        rate = mr["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"]
        assert (rate["value"], rate["code"]) == (25, "ug/h")
        assert mr["dosageInstruction"][0]["route"]["coding"][0]["code"] == "45890007"

    def test_block_and_radiotherapy_are_service_requests_with_doses(self) -> None:
        """The block and the radiotherapy course are ServiceRequests carrying their doses."""
        case = _multimodal()
        block, rt = _resources(to_bundle(case.regimen, case.patient), "ServiceRequest")
        ext = {e["url"].rsplit("/", 1)[1]: e for e in block["extension"]}
        assert ext["concentration"]["valueQuantity"]["code"] == "mg/mL"
        assert ext["concentration"]["valueQuantity"]["value"] == 2
        assert ext["bolus-volume"]["valueQuantity"] == {
            "value": 20,
            "unit": "mL",
            "system": UCUM,
            "code": "mL",
        }
        rext = {e["url"].rsplit("/", 1)[1]: e for e in rt["extension"]}
        assert rext["total-dose"]["valueQuantity"]["code"] == "Gy"
        assert rext["fractions"]["valueInteger"] == 5
        assert rt["orderDetail"][0]["text"] == "radiotherapy to left psoas: 20 Gy in 5 fractions"

    def test_fields_without_standard_home_use_project_extensions(self) -> None:
        """Hepatic impairment, opioid tolerance, age and the recorded-none flags are Patient
        extensions on the base URL."""
        case = _multimodal()
        (patient,) = _resources(to_bundle(case.regimen, case.patient), "Patient")
        urls = {e["url"] for e in patient["extension"]}
        assert urls == {
            f"{fhir.EXTENSION_BASE}/age",
            f"{fhir.EXTENSION_BASE}/hepatic-impairment",
            f"{fhir.EXTENSION_BASE}/opioid-tolerant",
            f"{fhir.EXTENSION_BASE}/medications-recorded",
            f"{fhir.EXTENSION_BASE}/no-anticoagulant",
        }
        assert fhir.EXTENSION_BASE.startswith(fhir.PROJECT_BASE)

    def test_anticoagulant_timing_is_kept(self) -> None:
        """The anticoagulant is a MedicationStatement with its last-dose time as a Duration."""
        case = mps.load_case(EXAMPLES[0].parent / "psoas-block.toml")
        statements = _resources(to_bundle(case.regimen, case.patient), "MedicationStatement")
        (anti,) = [s for s in statements if s["id"] == "anticoagulant"]
        ext = {e["url"].rsplit("/", 1)[1]: e for e in anti["extension"]}
        assert ext["last-dose-ago"]["valueDuration"]["value"] == 26
        assert anti["medicationCodeableConcept"]["coding"][0]["code"] == "67108"


class TestUcum:
    def test_mcg_code_is_refused_with_the_ug_spelling(self) -> None:
        """UCUM 'mcg' is not a microgram: refused, and the message says to send 'ug'."""
        with pytest.raises(UnitError, match="send micrograms as code 'ug'"):
            from_fhir_quantity({"value": 25, "system": UCUM, "code": "mcg"})

    def test_megagram_trap_is_refused(self) -> None:
        """'Mg' (megagram in case-sensitive UCUM) is refused and 'mg' suggested."""
        with pytest.raises(UnitError, match="megagram"):
            from_fhir_quantity({"value": 5, "system": UCUM, "code": "Mg"})

    @pytest.mark.parametrize("code", ["{tbl}", "1{tablet}", "{dose}"])
    def test_annotation_counts_are_refused_for_a_dose(self, code: str) -> None:
        """A dose in tablets ({tbl}) has no mass: refused, asking for a mass."""
        with pytest.raises(UnitError, match="annotation with no unit"):
            from_fhir_quantity({"value": 1, "system": UCUM, "code": code}, "mass")

    def test_annotation_on_a_unit_is_read_as_the_unit(self) -> None:
        """'mg{total}' is UCUM milligrams with a comment."""
        assert from_fhir_quantity({"value": 5, "system": UCUM, "code": "mg{total}"}) == mps.Q(
            "5 mg"
        )

    def test_unknown_code_is_refused_with_the_accepted_list(self) -> None:
        """An unknown UCUM code is refused, and the message lists what is accepted."""
        with pytest.raises(UnitError, match=r"not a UCUM code this library accepts.*ug/h"):
            from_fhir_quantity({"value": 1, "system": UCUM, "code": "furlong"})

    def test_egfr_code_keeps_its_body_surface_dimension(self) -> None:
        """mL/min/{1.73_m2} is read as eGFR, not as a plain clearance."""
        q = from_fhir_quantity({"value": 58, "system": UCUM, "code": "mL/min/{1.73_m2}"}, "egfr")
        assert mps.Patient(egfr=q).egfr_ml_min_173 == 58.0

    def test_percent_is_never_emitted(self) -> None:
        """0.25 % (w/v) goes out as 2.5 mg/mL, and UCUM '%' is refused on the way in."""
        assert to_fhir_quantity(mps.Q("0.25 %"))["value"] == 2.5
        with pytest.raises(UnitError, match="% w/v"):
            from_fhir_quantity({"value": 0.2, "system": UCUM, "code": "%"})

    def test_display_unit_without_code_is_clinical_text(self) -> None:
        """Without a UCUM code, the display unit 'mcg' is read as micrograms."""
        assert from_fhir_quantity({"value": 25, "unit": "mcg/h"}) == mps.Q("25 mcg/h")

    def test_other_code_system_is_refused(self) -> None:
        """A unit from another code system is refused."""
        with pytest.raises(UnitError, match="not of UCUM"):
            from_fhir_quantity({"value": 1, "system": "http://example.org", "code": "TAB"})

    @pytest.mark.parametrize(
        "bad",
        [
            {"value": "10", "system": UCUM, "code": "mg"},
            {"value": True, "system": UCUM, "code": "mg"},
            {"value": float("nan"), "system": UCUM, "code": "mg"},
            {"value": 10, "comparator": "<", "system": UCUM, "code": "mg"},
            {"value": 10},
            "10 mg",
        ],
    )
    def test_garbage_never_becomes_a_number(self, bad: object) -> None:
        """Non-numbers, NaN, comparators and unit-less values are refused."""
        with pytest.raises(UnitError):
            from_fhir_quantity(bad)

    def test_wrong_dimension_is_refused(self) -> None:
        """A volume where a mass is needed is a DimensionError."""
        with pytest.raises(mps.DimensionError):
            from_fhir_quantity({"value": 10, "system": UCUM, "code": "mL"}, "mass")

    @_FAST
    @given(
        quantity_texts(
            "mass",
        )
        | quantity_texts("mass_rate")
        | quantity_texts("volume")
        | quantity_texts("time")
    )
    def test_quantities_round_trip_through_ucum(self, text: str) -> None:
        """Any mass, rate, volume or time survives to_fhir_quantity/from_fhir_quantity."""
        q = mps.Q(text)
        back = from_fhir_quantity(_json_round(to_fhir_quantity(q)))
        dim = mps._units.lookup_unit(mps._units.format_unit(q.units)).dimension
        unit = fhir._CANONICAL[dim]
        assert mps._units.magnitude_in(back, unit) == pytest.approx(
            mps._units.magnitude_in(q, unit), rel=1e-12
        )

    def test_every_library_unit_of_the_strategies_has_a_ucum_row(self) -> None:
        """Each unit the parser reads for doses, rates and volumes is written without converting."""
        rows = fhir._ucum_by_library()
        for dim in ("mass", "volume", "time", "mass_rate", "volume_rate", "egfr"):
            for unit in UNITS_BY_DIMENSION[dim]:
                assert mps._units.lookup_unit(unit).text in rows, unit


class TestForeignOrders:
    def test_plain_order_is_read_from_standard_elements(self) -> None:
        """RxNorm code, SNOMED route, timing and dose make a tramadol step with no extensions."""
        step = step_from_resource(_order())
        assert (step.kind, step.drug, step.route, step.every_h, step.dose_mg) == (
            "opioid",
            "tramadol",
            "oral",
            6.0,
            100.0,
        )

    def test_twice_daily_is_times_per_day(self) -> None:
        """frequency 2 per 1 d is read as twice a day."""
        step = step_from_resource(
            _order(timing={"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}})
        )
        assert (step.times_per_day, step.daily_dose_mg) == (2, 200.0)

    def test_max_dose_per_period_in_mg_gives_a_dose_count(self) -> None:
        """A PRN maximum of 400 mg per day at 100 mg a dose is 4 doses in 24 h."""
        step = step_from_resource(
            _order(
                asNeededBoolean=True,
                maxDosePerPeriod={
                    "numerator": {"value": 400, "system": UCUM, "code": "mg"},
                    "denominator": {"value": 1, "system": UCUM, "code": "d"},
                },
            )
        )
        assert (step.prn, step.max_doses_per_24h) == (True, 4)

    def test_fractional_dose_count_is_refused(self) -> None:
        """A maximum that is not a whole number of doses per 24 h is refused, not rounded."""
        with pytest.raises(StepError, match="not a whole number"):
            step_from_resource(
                _order(
                    asNeededBoolean=True,
                    maxDosePerPeriod={
                        "numerator": {"value": 250, "system": UCUM, "code": "mg"},
                        "denominator": {"value": 24, "system": UCUM, "code": "h"},
                    },
                )
            )

    def test_adjuvant_role_defaults_from_the_drug_class(self) -> None:
        """An incoming gabapentin order without a role is a neuropathic adjuvant."""
        order = _order()
        order["medicationCodeableConcept"] = {"text": "Gabapentin"}
        step = step_from_resource(order)
        assert (step.kind, step.role) == ("adjuvant", "neuropathic")

    def test_local_anaesthetic_order_is_refused(self) -> None:
        """A local anaesthetic MedicationRequest is refused: a block is a ServiceRequest."""
        order = _order()
        order["medicationCodeableConcept"] = {"text": "ropivacaine"}
        with pytest.raises(StepError, match="ServiceRequest"):
            step_from_resource(order)

    def test_dose_range_without_units_is_refused(self) -> None:
        """A dose range with no units is refused naming the bound."""
        order = _order(doseAndRate=[{"doseRange": {"low": {"value": 1}, "high": {"value": 2}}}])
        with pytest.raises(UnitError, match=r"doseRange\.low"):
            step_from_resource(order)

    def test_unresolved_medication_reference_is_refused(self) -> None:
        """A medicationReference to a Medication not sent is refused with how to fix it."""
        order = _order()
        del order["medicationCodeableConcept"]
        order["medicationReference"] = {"reference": "Medication/1"}
        with pytest.raises(StepError, match="'Medication/1' is not a Medication in the Bundle"):
            step_from_resource(order)

    def test_unknown_drug_is_refused(self) -> None:
        """A drug the catalog does not know is an UnknownDrugError, never a guess."""
        order = _order()
        order["medicationCodeableConcept"] = {"text": "unobtainium"}
        with pytest.raises(mps.UnknownDrugError):
            step_from_resource(order)

    def test_patient_from_ehr_resources(self) -> None:
        """An EHR Patient (birthDate, gender) and a Fridericia QTc give age, sex and QTc."""
        qtc = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "76634-5"}]},
            "valueQuantity": {"value": 0.46, "system": UCUM, "code": "s"},
        }
        p = patient_from_resources(
            {"resourceType": "Patient", "gender": "male", "birthDate": "1950-06-01"}, [qtc]
        )
        assert p.sex == "male"
        assert p.age is not None
        assert p.age >= 70
        assert p.qtc_ms == pytest.approx(460.0)

    def test_latest_observation_wins(self) -> None:
        """With two weights, the most recent one is used."""

        def weight(value: float, when: str) -> dict[str, Any]:
            return {
                "resourceType": "Observation",
                "status": "final",
                "effectiveDateTime": when,
                "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
                "valueQuantity": {"value": value, "system": UCUM, "code": "kg"},
            }

        p = patient_from_resources(None, [weight(70, "2026-01-01"), weight(64, "2026-03-01")])
        assert p.weight_kg == 64.0

    def test_unreadable_observation_is_recorded_when_lenient(self) -> None:
        """With a problems list, a bad value is recorded and left out instead of raising."""
        bad = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
            "valueQuantity": {"value": 64, "system": UCUM, "code": "mcg"},
        }
        problems: list[Any] = []
        assert patient_from_resources(None, [bad], problems=problems).weight is None
        assert "ug" in str(problems[0])
        with pytest.raises(UnitError):
            patient_from_resources(None, [bad])


class TestBundleErrors:
    @pytest.mark.parametrize(
        ("bundle", "match"),
        [
            ([], "JSON object"),
            ({"resourceType": "Patient"}, "must be 'Bundle'"),
            ({"resourceType": "Bundle", "entry": {}}, "must be an array"),
            ({"resourceType": "Bundle", "entry": [{"fullUrl": "x"}]}, "no resource"),
            ({"resourceType": "Bundle", "entry": [{"resource": {}}]}, "no resourceType"),
        ],
    )
    def test_malformed_bundle_is_a_case_file_error(self, bundle: Any, match: str) -> None:
        """A malformed Bundle raises CaseFileError naming what is wrong."""
        with pytest.raises(CaseFileError, match=match):
            from_bundle(bundle)

    def test_every_bad_order_is_reported_at_once(self) -> None:
        """Two unreadable orders give one error with two problems, each naming its entry."""
        case = _multimodal()
        bundle = to_bundle(case.regimen, case.patient)
        mrs = _resources(bundle, "MedicationRequest")
        mrs[0]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["code"] = "mcg"
        mrs[3]["medicationCodeableConcept"] = {"text": "unobtainium"}
        with pytest.raises(CaseFileError) as info:
            from_bundle(bundle)
        paths = [p.path for p in info.value.problems]
        assert paths == [
            "entry[6] (MedicationRequest/step-0)",
            "entry[9] (MedicationRequest/step-3)",
        ]
        assert "'ug'" in info.value.problems[0].message

    _json = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=8,
    )

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data(), _json)
    def test_corrupted_bundles_raise_only_library_errors(self, data: Any, value: Any) -> None:
        """Any element of a Bundle replaced by random JSON reads back or raises CaseFileError."""
        case = _multimodal()
        bundle = _json_round(to_bundle(case.regimen, case.patient))

        def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
            out = [prefix]
            if isinstance(obj, dict):
                for k, v in obj.items():
                    out.extend(paths(v, (*prefix, k)))
            elif isinstance(obj, list):
                for i, v in enumerate(obj):
                    out.extend(paths(v, (*prefix, i)))
            return out

        path = data.draw(st.sampled_from(paths(bundle)[1:]))
        node = bundle
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        outcome: tuple[Any, ...]
        try:
            outcome = from_bundle(bundle)
        except CaseFileError as exc:
            outcome = exc.problems  # every problem is reported, with where it is
        assert outcome

    def test_errors_share_the_library_root(self) -> None:
        """Bundle errors are MpsAnalgesiaError and ValueError."""
        with pytest.raises(MpsAnalgesiaError):
            from_bundle({"resourceType": "Bundle", "entry": 3})
        with pytest.raises(ValueError, match="Bundle"):
            from_bundle({"resourceType": "Bundle", "entry": 3})


class TestDetectedIssues:
    def _report(self) -> mps.Report:
        step = mps.AdjuvantStep(
            drug="acetaminophen", role="nociceptive", dose="1250 mg", every="6 h"
        )
        return mps.validate(mps.Regimen([step]), mps.Patient())

    def test_error_finding_is_a_high_severity_issue(self) -> None:
        """dose.max-daily becomes a high-severity DetectedIssue with the arithmetic."""
        issues = report_to_fhir(self._report())
        (issue,) = [i for i in issues if i["code"]["text"] == "dose.max-daily"]
        assert issue["severity"] == "high"
        assert issue["code"]["coding"][0] == {"system": fhir.CS_FINDING, "code": "dose.max-daily"}
        assert "1250 mg × 4 doses/day = 5000 mg/day > 4000 mg/day" in issue["detail"]
        assert issue["implicated"][0]["reference"] == "MedicationRequest/step-0"
        assert issue["patient"] == {"reference": "Patient/patient"}

    def test_severities_follow_the_mapping(self) -> None:
        """Every issue's severity is FHIR_SEVERITY of its finding."""
        case = _multimodal()
        report = mps.validate(case.regimen, case.patient)
        issues = report_to_fhir(report, include_not_checked=False)
        assert [i["severity"] for i in issues] == [f.fhir_severity for f in report.findings]

    def test_not_checked_are_low_issues_unless_left_out(self) -> None:
        """Checks that could not run appear as low issues; include_not_checked=False drops them."""
        report = self._report()
        assert report.not_checked
        issues = report_to_fhir(report)
        nc = [i for i in issues if i["id"].startswith("not-checked")]
        assert len(nc) == len(report.not_checked)
        assert all(i["severity"] == "low" and "not a pass" in i["detail"] for i in nc)
        assert not any(
            i["id"].startswith("not-checked")
            for i in report_to_fhir(report, include_not_checked=False)
        )

    def test_references_can_point_at_the_ehr_orders(self) -> None:
        """``references`` maps a step to the EHR's own order reference."""
        issues = report_to_fhir(
            self._report(), references={0: "MedicationRequest/abc"}, patient_reference="Patient/42"
        )
        assert issues[0]["implicated"][0]["reference"] == "MedicationRequest/abc"
        assert issues[0]["patient"]["reference"] == "Patient/42"

    def test_block_finding_points_at_a_service_request(self) -> None:
        """A finding on a block step implicates its ServiceRequest."""
        block = mps.PsoasCompartmentBlockStep(
            drug="ropivacaine", concentration="0.75 %", bolus_volume="60 mL", side="left"
        )
        report = mps.validate(mps.Regimen([block]), mps.Patient(weight="50 kg"))
        issues = [i for i in report_to_fhir(report) if "implicated" in i]
        assert issues
        assert {i["implicated"][0]["reference"] for i in issues} == {"ServiceRequest/step-0"}

    def test_doi_of_the_source_is_the_reference(self) -> None:
        """A finding whose source has a DOI links it in DetectedIssue.reference."""
        finding = mps.Finding("x.test", "warning", "A test finding.", 0, ("takase-2015",))
        report = mps.Report((finding,), regimen=_multimodal().regimen)
        (issue,) = report_to_fhir(report)
        assert issue["reference"] == "https://doi.org/10.1089/jpm.2014.0387"
        assert issue["implicated"][0]["display"].startswith("oxycodone 30 mg")

    def test_issues_are_plain_json(self) -> None:
        """The issues serialise to JSON unchanged."""
        issues = report_to_fhir(self._report())
        assert _json_round(issues) == copy.deepcopy(issues)


def _weight_obs(value: Any, unit: str = "kg") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
        "valueQuantity": {"value": value, "system": UCUM, "code": unit},
    }


class TestPatientFields:
    @pytest.mark.parametrize(
        ("patient", "path"),
        [
            ({"birthDate": "1960-13-45"}, "Patient.birthDate"),
            ({"birthDate": "yesterday"}, "Patient.birthDate"),
            ({"birthDate": 1960}, "Patient.birthDate"),
            ({"birthDate": "2999-01-01"}, "Patient.birthDate"),
            ({"gender": "F"}, "Patient.gender"),
            ({"gender": 2}, "Patient.gender"),
            ({"gender": []}, "Patient.gender"),
            ({"gender": {"a": 1}}, "Patient.gender"),
            (
                {"extension": [{"url": fhir.X_AGE, "valueQuantity": {"value": "old"}}]},
                "Patient.extension(age)",
            ),
            (
                {"extension": [{"url": fhir.X_AGE, "valueQuantity": {"value": 70, "code": "mo"}}]},
                "Patient.extension(age)",
            ),
        ],
    )
    def test_unreadable_patient_field_is_a_problem(self, patient: Any, path: str) -> None:
        """A bad birthDate, gender or age extension is recorded like a bad weight, not dropped."""
        resource = {"resourceType": "Patient", **patient}
        problems: list[Any] = []
        p = patient_from_resources(resource, [_weight_obs(60)], problems=problems)
        assert [pr.path for pr in problems] == [path]
        assert p.weight_kg == 60.0  # the rest is still read
        with pytest.raises(MpsAnalgesiaError):
            patient_from_resources(resource)

    def test_unreadable_patient_field_is_in_the_case_file_error(self) -> None:
        """from_bundle reports a bad birthDate and a bad gender in its CaseFileError."""
        case = _multimodal()
        bundle = to_bundle(case.regimen, case.patient)
        (patient,) = _resources(bundle, "Patient")
        patient["extension"] = [e for e in patient["extension"] if e["url"] != fhir.X_AGE]
        patient["birthDate"] = "1960-02-30"
        with pytest.raises(CaseFileError) as info:
            from_bundle(bundle)
        (problem,) = info.value.problems
        assert problem.path == "Patient"
        assert "birthDate" in problem.message
        assert "'1960-02-30' is not a calendar date" in problem.message
        patient["birthDate"] = "1960-02-28"
        patient["gender"] = "woman"
        with pytest.raises(CaseFileError, match="'woman' is not a FHIR gender"):
            from_bundle(bundle)

    def test_unknown_gender_is_not_a_problem(self) -> None:
        """FHIR gender 'unknown' leaves the sex unrecorded without a problem."""
        problems: list[Any] = []
        p = patient_from_resources(
            {"resourceType": "Patient", "gender": "unknown", "birthDate": "1950"},
            problems=problems,
        )
        assert (p.sex, problems) == (None, [])
        assert p.age is not None

    def test_valid_birth_date_still_gives_the_age(self) -> None:
        """A partial FHIR date (year only) is read as an age in whole years."""
        p = patient_from_resources({"resourceType": "Patient", "birthDate": "1950"})
        assert p.age is not None
        assert 70 <= p.age <= 130


class TestNumericOverflow:
    """Every numeric overflow while reading is a reported problem, never an OverflowError."""

    def test_huge_dose_is_a_reported_problem(self) -> None:
        """A dose of 1e308 mg every 6 h (an infinite daily dose) is refused with the entry named."""
        case = _multimodal()
        bundle = to_bundle(case.regimen, case.patient)
        mr = _resources(bundle, "MedicationRequest")[0]
        mr["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 1e308
        with pytest.raises(CaseFileError) as info:
            from_bundle(bundle)
        (problem,) = info.value.problems
        assert problem.path == "entry[6] (MedicationRequest/step-0)"
        assert "larger than" in problem.message

    @pytest.mark.parametrize("value", [10**400, float("inf"), float("nan")])
    def test_unfloatable_quantity_is_a_unit_error(self, value: Any) -> None:
        """An integer beyond float range, or a non-finite value, is a UnitError, not a crash."""
        with pytest.raises(UnitError, match=r"too large|not a finite"):
            from_fhir_quantity({"value": value, "system": UCUM, "code": "mg"}, "mass")

    def test_tiny_height_is_a_problem_not_a_division_by_zero(self) -> None:
        """A height whose square underflows to 0 (BMI divides by it) is a problem for height."""
        height = _weight_obs(1e-300, "m")
        height["code"] = {"coding": [{"system": LOINC, "code": "8302-2"}]}
        problems: list[Any] = []
        p = patient_from_resources(None, [_weight_obs(60), height], problems=problems)
        assert [pr.path for pr in problems] in (["Patient.height"], ["Observation/1.valueQuantity"])
        assert (p.weight_kg, p.height_cm) == (60.0, None)

    @pytest.mark.parametrize(
        ("where", "value", "prn"),
        [
            (("timing", "repeat", "period"), 10**400, False),
            (("timing", "repeat", "frequency"), 10**400, False),
            (("timing", "repeat", "period"), 1e-320, False),
            (("maxDosePerPeriod", "numerator", "value"), 1e308, True),
        ],
    )
    def test_overflowing_schedule_is_a_step_error(
        self, where: tuple[str, ...], value: Any, prn: bool
    ) -> None:
        """A period, frequency or dose count that overflows is a library error, not a crash."""
        dosage: dict[str, Any] = {}
        if prn:
            dosage = {
                "asNeededBoolean": True,
                "maxDosePerPeriod": {
                    "numerator": {"value": 6},
                    "denominator": {"value": 1, "system": UCUM, "code": "d"},
                },
            }
        order = _order(**dosage)
        assert step_from_resource(copy.deepcopy(order))  # readable before the change
        node = order["dosageInstruction"][0]
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value
        with pytest.raises(MpsAnalgesiaError, match=r"too large|doses per 24 h|larger|smaller"):
            step_from_resource(order)

    @pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
    def test_every_number_of_every_example_survives_extremes(self, path: Path) -> None:
        """Each number of an example Bundle set to an extreme reads back or gives CaseFileError."""
        case = mps.load_case(path)
        bundle = _json_round(to_bundle(case.regimen, case.patient))

        def numbers(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
            if isinstance(obj, dict):
                return [p for k, v in obj.items() for p in numbers(v, (*prefix, k))]
            if isinstance(obj, list):
                return [p for i, v in enumerate(obj) for p in numbers(v, (*prefix, i))]
            if isinstance(obj, int | float) and not isinstance(obj, bool):
                return [prefix]
            return []

        paths = numbers(bundle)
        assert paths
        for where in paths:
            for value in (1e308, -1e308, 10**400, 1e-300, 1e300):
                corrupted = copy.deepcopy(bundle)
                node = corrupted
                for key in where[:-1]:
                    node = node[key]
                node[where[-1]] = value
                outcome: Any
                try:
                    outcome = from_bundle(corrupted)
                except CaseFileError as exc:
                    outcome = exc.problems  # reported, each with where it is
                assert outcome


class TestGenderShapes:
    @pytest.mark.parametrize("gender", [[], {}, 3, True])
    def test_gender_of_a_wrong_type_is_a_step_error(self, gender: object) -> None:
        """A gender that is not a string is a StepError, never a bare TypeError."""
        with pytest.raises(StepError, match="is not a FHIR gender"):
            patient_from_resources({"resourceType": "Patient", "gender": gender})


_EXAMPLES = Path(__file__).parents[1] / "examples"


class TestCaseRoundTrip:
    """A whole case goes through FHIR with its name, description and the spelling of its text."""

    @pytest.mark.parametrize(
        "path", sorted((Path(__file__).parents[1] / "examples").glob("*.toml"))
    )
    def test_name_and_description_survive(self, path: Path) -> None:
        """Every shipped example keeps its name and description through a Bundle."""
        from mps_analgesia.fhir import case_from_bundle, case_to_bundle

        case = mps.load_case(path)
        again = case_from_bundle(json.loads(json.dumps(case_to_bundle(case))))
        assert (again, again.name, again.description) == (case, case.name, case.description)

    def test_description_with_any_text(self) -> None:
        """Free text (quotes, line breaks, non-ASCII) in a description comes back unchanged."""
        from mps_analgesia.fhir import case_from_bundle, case_to_bundle

        text = 'Left psoas, "L1–L4";\nα/β 10 Gy — 0.2 % ropivacaine'
        case = mps.Case(mps.Patient(), mps.Regimen([]), name="n", description=text)
        assert case_from_bundle(case_to_bundle(case)).description == text

    def test_text_that_cannot_be_written_is_refused(self) -> None:
        """A Bundle whose text holds a lone surrogate is refused where it is, never loaded into
        a case that could not be written back as UTF-8."""
        from mps_analgesia.fhir import case_to_bundle

        bundle = case_to_bundle(mps.load_case(_EXAMPLES / "mps-multimodal.toml"))
        plan = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan")
        plan["resource"]["title"] = "plan \ud800"
        with pytest.raises(CaseFileError) as info:
            fhir.from_bundle(bundle)
        assert "lone surrogate" in str(info.value)
        assert "title" in str(info.value)


def test_original_text_of_another_dimension_is_ignored() -> None:
    """An original-text extension whose unit is of another dimension (a volume for a
    concentration) is ignored, never a bare pint error (found by a fresh fuzz seed)."""
    from mps_analgesia.fhir._base import X_ORIGINAL_TEXT
    from mps_analgesia.fhir._quantity import from_fhir_quantity

    value = {
        "value": 2.5,
        "unit": "mg/mL",
        "system": "http://unitsofmeasure.org",
        "code": "mg/mL",
        "extension": [{"url": X_ORIGINAL_TEXT, "valueString": "2.5 L"}],
    }
    q = from_fhir_quantity(value, "concentration", field="concentration")
    assert str(q.units) == "milligram / milliliter"
