"""Product-coded orders: RxNorm product codes, normalized names, brands, NDC, counts."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

import mps_analgesia as mps
from mps_analgesia.errors import StepError
from mps_analgesia.fhir import from_bundle, step_from_resource, steps_from_resource

UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _order(medication: dict[str, Any], dose: dict[str, Any], **dosage: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": medication,
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}},
                "doseAndRate": [{"doseQuantity": dose}],
                **dosage,
            }
        ],
    }


def _rx(code: str, display: str = "") -> dict[str, Any]:
    coding = {"system": RXNORM, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


TABLET = {"value": 1, "unit": "tablet", "system": UCUM, "code": "{tablet}"}


class TestProductCodes:
    def test_patch_code_without_route_is_transdermal(self) -> None:
        """RXCUI 197696 and 1 {patch}: a 75 mcg/h transdermal rate, never oral."""
        order = _order(_rx("197696"), {"value": 1, "system": UCUM, "code": "{patch}"})
        order["dosageInstruction"][0]["timing"] = {
            "repeat": {"frequency": 1, "period": 72, "periodUnit": "h"}
        }
        step = step_from_resource(order)
        assert (step.drug, step.route, step.formulation) == ("fentanyl", "transdermal", "patch")
        assert step.rate_mg_per_h == pytest.approx(0.075)

    def test_tablet_count_times_strength(self) -> None:
        """2 tablets of oxycodone 5 MG every 6 h: 40 mg/day, oral, immediate-release."""
        order = _order(_rx("1049621"), dict(TABLET, value=2))
        step = step_from_resource(order)
        assert (step.route, step.formulation, step.daily_dose_mg) == (
            "oral",
            "immediate-release",
            40.0,
        )

    def test_hl7_v3_tab_count(self) -> None:
        """A dose in HL7 v3 orderable drug form TAB is a count of tablets."""
        dose = {
            "value": 1,
            "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
            "code": "TAB",
        }
        assert step_from_resource(_order(_rx("1049621"), dose)).dose_mg == 5.0

    def test_count_of_the_wrong_form_is_refused(self) -> None:
        """A count of patches of a tablet product is a named problem."""
        with pytest.raises(StepError, match="does not fit"):
            step_from_resource(_order(_rx("1049621"), {"value": 1, "code": "{patch}"}))

    def test_oral_solution_in_ml(self) -> None:
        """5 mL of morphine 2 MG/ML oral solution is 10 mg."""
        name = {"text": "morphine sulfate 2 MG/ML Oral Solution"}
        step = step_from_resource(_order(name, {"value": 5, "system": UCUM, "code": "mL"}))
        assert (step.dose_mg, step.route) == (10.0, "oral")

    def test_injection_without_route_is_refused(self) -> None:
        """An injection product with no route element is refused: the form does not say it."""
        name = {"text": "morphine sulfate 10 MG/ML Injectable Solution"}
        with pytest.raises(StepError, match="does not say its route"):
            step_from_resource(_order(name, {"value": 1, "system": UCUM, "code": "mL"}))


class TestCombinations:
    NAME: ClassVar[dict[str, str]] = {
        "text": "acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet"
    }

    def test_two_steps(self) -> None:
        """A combination gives the opioid step and an acetaminophen step."""
        steps = steps_from_resource(_order(self.NAME, dict(TABLET, value=2)))
        assert [(s.kind, s.drug, s.daily_dose_mg) for s in steps] == [
            ("opioid", "oxycodone", 40.0),
            ("adjuvant", "acetaminophen", 2600.0),
        ]
        assert steps[1].note.startswith("in acetaminophen 325 MG")

    def test_step_from_resource_refuses_a_combination(self) -> None:
        """step_from_resource names steps_from_resource for a combination."""
        with pytest.raises(StepError, match="steps_from_resource"):
            step_from_resource(_order(self.NAME, TABLET))

    def test_mass_dose_of_a_combination_is_refused(self) -> None:
        """A mass does not say of which ingredient: refused."""
        with pytest.raises(StepError, match="combination product"):
            steps_from_resource(_order(self.NAME, {"value": 5, "system": UCUM, "code": "mg"}))

    def test_combination_acetaminophen_counts_toward_its_maximum(self) -> None:
        """4 tablets of 325 mg acetaminophen every 6 h (5.2 g/day) exceed the daily maximum."""
        bundle = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": _order(self.NAME, dict(TABLET, value=4))}],
        }
        _patient, regimen = from_bundle(bundle)
        report = mps.validate(regimen)
        codes = {(f.code, regimen[f.step].drug) for f in report.findings if f.step is not None}
        assert ("dose.max-daily", "acetaminophen") in codes


class TestUnknown:
    def test_ndc_only_is_an_unknown_product(self) -> None:
        """An NDC coding alone is an unknown product naming NDC."""
        concept = {"coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "59011-410-10"}]}
        with pytest.raises(mps.UnknownProductError, match="NDC"):
            step_from_resource(_order(concept, TABLET))

    def test_unknown_rxnorm_code_without_name(self) -> None:
        """An RxNorm code outside the table with no name is an unknown product."""
        with pytest.raises(mps.UnknownProductError, match="RxNorm"):
            step_from_resource(_order(_rx("99999999"), TABLET))

    def test_unknown_code_with_normalized_display(self) -> None:
        """An RxNorm code outside the table is read from its normalized display name."""
        concept = _rx("99999999", "gabapentin 300 MG Oral Capsule")
        step = step_from_resource(_order(concept, {"value": 1, "code": "{capsule}"}))
        assert (step.drug, step.dose_mg) == ("gabapentin", 300.0)

    def test_unknown_brand(self) -> None:
        """A brand the table does not carry is an unknown drug or product, never a number."""
        with pytest.raises(mps.UnknownNameError):
            step_from_resource(_order({"text": "Zzyzxol"}, TABLET))

    def test_brand_name_with_mass_dose(self) -> None:
        """A bracketed brand of one shape gives drug, route and formulation; dose in mg."""
        step = step_from_resource(
            _order({"text": "OxyContin"}, {"value": 10, "system": UCUM, "code": "mg"})
        )
        assert (step.drug, step.formulation, step.route) == (
            "oxycodone",
            "modified-release",
            "oral",
        )

    def test_brand_name_with_count_is_refused(self) -> None:
        """A brand alone has no strength: a count is refused."""
        with pytest.raises(mps.MpsAnalgesiaError, match="count"):
            step_from_resource(_order({"text": "OxyContin"}, TABLET))


class TestDoseFormFactors:
    """The CDC/CMS analytic file's per-form transmucosal fentanyl factors (cdc-2016 table)."""

    @pytest.mark.parametrize(
        ("code_text", "mme"),
        [
            # 200 mcg x 4 a day = 800 mcg/day; film 0.18 per mcg -> 144 MME/day
            ("fentanyl 0.2 MG Buccal Film", 144.0),
            # buccal tablet 0.13 per mcg -> 104 MME/day
            ("fentanyl 0.2 MG Buccal Tablet", 104.0),
            # lozenge 0.13 per mcg -> 104 MME/day
            ("fentanyl 0.2 MG Oral Lozenge", 104.0),
        ],
    )
    def test_product_dose_form_picks_its_factor(self, code_text: str, mme: float) -> None:
        """The product's dose form selects its own factor instead of the 0.13-0.18 range."""
        order = _order({"text": code_text}, {"value": 1, "system": UCUM, "code": "1"})
        order["dosageInstruction"][0]["timing"] = {
            "repeat": {"frequency": 4, "period": 1, "periodUnit": "d"}
        }
        step = step_from_resource(order)
        result = mps.daily_ome(mps.Regimen([step]), table="cdc-2016")
        assert result.low.magnitude == pytest.approx(mme)
        assert result.high.magnitude == pytest.approx(mme)

    def test_without_dose_form_the_range_is_kept(self) -> None:
        """A buccal fentanyl step with no dose form keeps the 0.13-0.18 range."""
        step = mps.OpioidStep(drug="fentanyl", route="buccal", dose="200 mcg", times_per_day=4)
        result = mps.daily_ome(mps.Regimen([step]), table="cdc-2016")
        assert (result.low.magnitude, result.high.magnitude) == pytest.approx((104.0, 144.0))
