"""Never understate: orders that could not be read travel in the Report, JSON, FHIR and text."""

from __future__ import annotations

import json
from typing import Any

import pytest

import mps_analgesia as mps
from mps_analgesia.fhir import read_order_sign
from mps_analgesia.report import UNREAD_OPIOID, UnreadOrder

UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _order(rid: str, medication: dict[str, Any], dose: dict[str, Any] | None = None) -> dict:
    dose_and_rate = [{"doseQuantity": dose}] if dose is not None else []
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": medication,
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 4, "periodUnit": "h"}},
                "route": {"text": "oral"},
                "doseAndRate": dose_and_rate,
            }
        ],
    }


MG10 = {"value": 10, "system": UCUM, "code": "mg"}
MORPHINE = _order("a", {"coding": [{"system": RXNORM, "code": "7052"}]}, MG10)
#: an oxycodone order with a dose in an unknown unit: refused, never a number
OXY_BAD = _order("b", {"text": "oxycodone 5 MG Oral Tablet"}, {"value": 1, "code": "{spoon}"})
GABA_BAD = _order("c", {"text": "gabapentin 300 MG Oral Capsule"}, {"value": 1, "code": "{x}"})
UNKNOWN = _order("d", {"text": "unobtainium"}, MG10)


def _read(*orders: dict) -> Any:
    return read_order_sign(
        {"draftOrders": {"resourceType": "Bundle", "entry": [{"resource": o} for o in orders]}}
    )


def _ome(report: mps.Report) -> mps.Finding:
    (total,) = [f for f in report.findings if f.code == "opioid.ome-total"]
    return total


class TestReaderMarksOpioids:
    @pytest.mark.parametrize(
        ("order", "expected"),
        [(OXY_BAD, True), (GABA_BAD, False), (UNKNOWN, True)],
        ids=["opioid", "not-an-opioid", "unknown-drug-could-be-one"],
    )
    def test_may_be_opioid(self, order: dict, expected: bool) -> None:
        """An unread order names an opioid, a known non-opioid, or no known drug (maybe one)."""
        (unread,) = _read(order).unread
        assert isinstance(unread, UnreadOrder)
        assert unread.may_be_opioid is expected


class TestReport:
    def test_unread_orders_are_carried_with_reference_and_reason(self) -> None:
        """read.validate() lists each unread order: reference, name, why; not complete."""
        report = _read(MORPHINE, OXY_BAD).validate()
        assert [(u.reference, u.name) for u in report.unread_orders] == [
            ("MedicationRequest/b", "oxycodone 5 MG Oral Tablet")
        ]
        assert "spoon" in report.unread_orders[0].message
        assert not report.complete
        assert "1 order(s) not read" in report.summary()

    def test_ome_total_says_incomplete_and_warns_for_an_opioid(self) -> None:
        """The OME total over a read morphine order and an unread oxycodone one is marked
        incomplete, names the order and is a warning (it was info)."""
        plain = mps.validate(_read(MORPHINE).regimen)
        assert _ome(plain).severity == "info"
        total = _ome(_read(MORPHINE, OXY_BAD).validate())
        assert total.message.startswith("Incomplete total: it leaves out 1 order")
        assert "MedicationRequest/b" in total.message
        assert total.detail["unread_orders"] == ["MedicationRequest/b"]
        assert total.severity == "warning"

    def test_unread_opioid_is_a_warning_even_with_no_total(self) -> None:
        """Only an unread opioid order: no total can be shown, the warning still is."""
        report = _read(OXY_BAD).validate()
        assert [f.code for f in report.warnings] == [UNREAD_OPIOID]
        assert report.status == "warnings"

    def test_unread_non_opioid_is_incomplete_not_a_warning(self) -> None:
        """An unread gabapentin order: listed, status incomplete, no opioid warning, and the
        OME total over the morphine is still marked incomplete but stays info."""
        report = _read(MORPHINE, GABA_BAD).validate()
        assert UNREAD_OPIOID not in [f.code for f in report.findings]
        assert _ome(report).message.startswith("Incomplete total")
        assert _ome(report).severity == "info"
        bare = mps.Report().with_unread_orders(_read(GABA_BAD).unread)
        assert (bare.status, bare.complete) == ("incomplete", False)

    def test_no_unread_orders_leaves_the_report_alone(self) -> None:
        """with_unread_orders([]) is the report itself."""
        report = _read(MORPHINE).validate()
        assert report.unread_orders == ()
        assert report.with_unread_orders([]) is report


class TestOutputs:
    def test_json_lists_them_and_matches_the_published_schema(self) -> None:
        """to_dict()/to_json() carry unread_orders; the output-check schema accepts it."""
        report = _read(MORPHINE, OXY_BAD).validate()
        data = json.loads(report.to_json())
        assert data["unread_orders"] == [
            {
                "reference": "MedicationRequest/b",
                "name": "oxycodone 5 MG Oral Tablet",
                "message": report.unread_orders[0].message,
                "draft": True,
                "may_be_opioid": True,
            }
        ]
        jsonschema = pytest.importorskip("jsonschema")
        from mps_analgesia.cli._json import output_schema

        jsonschema.validate(dict(data, file="x.json"), output_schema("output-check"))
        bad = dict(data, file="x.json", unread_orders=[{"reference": "x"}])
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, output_schema("output-check"))

    def test_empty_report_json_has_an_empty_list(self) -> None:
        """Every report's JSON has the key: [] when every order was read."""
        assert json.loads(mps.Report().to_json())["unread_orders"] == []

    def test_fhir_has_a_detected_issue_per_unread_order(self) -> None:
        """Each unread order is a DetectedIssue (order.unread, implicating it; moderate for a
        possible opioid, low otherwise), even without the not-checked issues."""
        report = _read(MORPHINE, OXY_BAD, GABA_BAD).validate()
        issues = report.to_fhir(include_not_checked=False)
        unread = [i for i in issues if i["code"]["text"] == "order.unread"]
        assert [(i["implicated"][0]["reference"], i["severity"]) for i in unread] == [
            ("MedicationRequest/b", "moderate"),
            ("MedicationRequest/c", "low"),
        ]
        assert all("incomplete" in i["detail"] for i in unread)
        (total,) = [i for i in issues if i["code"]["text"] == "opioid.ome-total"]
        assert total["detail"].startswith("Incomplete total")
        assert total["severity"] == "moderate"

    @pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
    def test_renderings_list_them(self, fmt: str) -> None:
        """Text, markdown and HTML have an 'Orders not read' section naming each order."""
        report = _read(MORPHINE, OXY_BAD, GABA_BAD).validate()
        out = mps.render(report, fmt)
        assert "orders not read" in out.lower()
        assert "MedicationRequest/b" in out
        assert "MedicationRequest/c" in out
        assert "may be an opioid" in out
        assert "Incomplete total" in out

    def test_records_have_a_not_read_row(self) -> None:
        """to_records() ends with one 'not read' row per unread order."""
        rows = _read(OXY_BAD).validate().to_records()
        assert rows[-1]["outcome"] == "not read"
        assert rows[-1]["code"] == "MedicationRequest/b"


class TestAudit:
    def test_audit_row_findings_say_incomplete(self) -> None:
        """An audited patient with an unread oxycodone order gets the unread-opioid warning."""
        from datetime import UTC, datetime

        from mps_analgesia.audit._patient import audit_patient

        active = [dict(o, status="active") for o in (MORPHINE, OXY_BAD)]
        row = audit_patient("p", active, datetime(2026, 1, 1, tzinfo=UTC))
        assert row["unread_orders"] == 1
        codes = [f["code"] for f in row["findings"]]
        assert UNREAD_OPIOID in codes
        (total,) = [f for f in row["findings"] if f["code"] == "opioid.ome-total"]
        assert total["message"].startswith("Incomplete total")
