"""The order-sign reader: a CDS Hooks request read once into patient, orders and unread orders."""

from __future__ import annotations

from typing import Any

import pytest

from mps_analgesia.errors import CaseFileError, StepError
from mps_analgesia.fhir import (
    medication_index,
    medication_of,
    read_order_sign,
    step_from_resource,
)

UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _order(rid: str, medication: dict[str, Any], dose_mg: float = 10, hours: int = 4) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        **medication,
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": hours, "periodUnit": "h"}},
                "route": {"text": "oral"},
                "doseAndRate": [{"doseQuantity": {"value": dose_mg, "system": UCUM, "code": "mg"}}],
            }
        ],
    }


def _bundle(*resources: dict, full_urls: bool = False) -> dict:
    entries = []
    for r in resources:
        e: dict[str, Any] = {"resource": r}
        if full_urls:
            e["fullUrl"] = f"urn:uuid:{r['id']}"
        entries.append(e)
    return {"resourceType": "Bundle", "entry": entries}


MORPHINE = {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "7052"}]}}


class TestReadOrderSign:
    def test_draft_orders_read_with_references(self) -> None:
        """Each draft order becomes a step with its reference; draft is True."""
        read = read_order_sign({"draftOrders": _bundle(_order("a", MORPHINE))})
        assert [(o.reference, o.draft, o.step.daily_dose_mg) for o in read.orders] == [
            ("MedicationRequest/a", True, 60.0)
        ]

    def test_unread_order_is_listed_with_its_name(self) -> None:
        """An order that cannot be read is listed with the medicine's name and why."""
        bad = _order("b", {"medicationCodeableConcept": {"text": "unobtainium"}})
        read = read_order_sign({"draftOrders": _bundle(bad)})
        assert read.orders == ()
        assert [(u.reference, u.name, u.draft) for u in read.unread] == [
            ("MedicationRequest/b", "unobtainium", True)
        ]
        assert "unobtainium" in read.unread[0].message

    def test_unread_active_order_is_listed_too(self) -> None:
        """An active order from prefetch that cannot be read is unread, never dropped."""
        bad = _order("c", {"medicationCodeableConcept": {"text": "unobtainium"}})
        bad["status"] = "active"
        read = read_order_sign({"draftOrders": _bundle()}, {"medications": _bundle(bad)})
        assert [(u.reference, u.draft) for u in read.unread] == [("MedicationRequest/c", False)]
        assert read.patient.medications == ("unobtainium",)

    def test_active_order_equal_to_a_draft_counts_once(self) -> None:
        """A draft that is also in the active orders is read once, as the draft."""
        order = _order("a", MORPHINE)
        active = dict(order, status="active")
        read = read_order_sign({"draftOrders": _bundle(order)}, {"medications": _bundle(active)})
        assert [o.draft for o in read.orders] == [True]

    def test_operation_outcome_and_null_prefetch_reported(self) -> None:
        """An OperationOutcome in prefetch and a null key are reported, not ignored."""
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "forbidden", "diagnostics": "no access"}],
        }
        read = read_order_sign({"draftOrders": _bundle()}, {"weight": outcome, "qtc": None})
        assert read.outcomes == (("weight", "no access"),)
        assert read.null_keys == ("qtc",)

    def test_patient_and_observations(self) -> None:
        """The Patient and the Observations in prefetch give the patient."""
        weight = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "valueQuantity": {"value": 61.5, "system": UCUM, "code": "kg"},
        }
        read = read_order_sign(
            {"draftOrders": _bundle()},
            {"patient": {"resourceType": "Patient", "gender": "female"}, "weight": _bundle(weight)},
        )
        assert (read.patient.sex, read.patient.weight_kg) == ("female", 61.5)

    @pytest.mark.parametrize(
        ("context", "prefetch", "path"),
        [
            ({}, None, "context.draftOrders"),
            (
                {"draftOrders": {"resourceType": "Patient"}},
                None,
                "context.draftOrders.resourceType",
            ),
            ({"draftOrders": _bundle()}, {"weight": 3}, "prefetch.weight"),
            ({"draftOrders": _bundle()}, {"weight": {"entry": []}}, "prefetch.weight"),
        ],
    )
    def test_malformed_shapes_name_the_key(
        self, context: dict, prefetch: dict | None, path: str
    ) -> None:
        """A malformed request shape is a CaseFileError whose problem names the key."""
        with pytest.raises(CaseFileError) as info:
            read_order_sign(context, prefetch)
        assert [p.path for p in info.value.problems] == [path]


_MEDICATION: dict[str, Any] = {
    "resourceType": "Medication",
    "id": "m1",
    "code": {"coding": [{"system": RXNORM, "code": "7052"}], "text": "morphine"},
}


class TestMedicationReference:
    def test_contained_medication(self) -> None:
        """A reference '#id' to a contained Medication is read like a CodeableConcept."""
        order = _order("a", {"medicationReference": {"reference": "#m1"}})
        order["contained"] = [_MEDICATION]
        assert step_from_resource(order).drug == "morphine"

    def test_bundled_medication(self) -> None:
        """A reference to a Medication in the Bundle (by type/id or fullUrl) is resolved."""
        by_id = _order("a", {"medicationReference": {"reference": "Medication/m1"}})
        by_url = _order("b", {"medicationReference": {"reference": "urn:uuid:m1"}})
        read = read_order_sign({"draftOrders": _bundle(_MEDICATION, by_id, by_url, full_urls=True)})
        assert [o.step.drug for o in read.orders] == ["morphine", "morphine"]
        assert read.unread == ()

    def test_unresolved_reference_is_a_named_problem(self) -> None:
        """A reference that resolves to nothing is a StepError naming the reference."""
        order = _order("a", {"medicationReference": {"reference": "Medication/zz"}})
        with pytest.raises(StepError, match="Medication/zz"):
            step_from_resource(order)

    def test_index_and_lookup(self) -> None:
        """medication_index keys a Medication by type/id; medication_of returns its code."""
        index = medication_index([_MEDICATION])
        concept = medication_of({"medicationReference": {"reference": "Medication/m1"}}, index)
        assert concept is not None
        assert concept["text"] == "morphine"
