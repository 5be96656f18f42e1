"""The age from ``birthDate`` is computed on a reference date: today, or the audit's --as-of."""

from __future__ import annotations

import datetime as dt

import pytest

from mps_analgesia.errors import StepError
from mps_analgesia.fhir import from_bundle, patient_from_resources, read_order_sign

BORN = {"resourceType": "Patient", "id": "p", "birthDate": "2000-06-15"}


class TestAsOf:
    @pytest.mark.parametrize(
        ("as_of", "age"),
        [
            (dt.date(2026, 6, 14), 25.0),  # the day before the birthday
            (dt.date(2026, 6, 15), 26.0),  # the birthday
            (dt.datetime(2010, 1, 1, 12, tzinfo=dt.UTC), 9.0),  # a datetime counts by its date
        ],
    )
    def test_age_on_the_reference_date(self, as_of: dt.date, age: float) -> None:
        """birthDate 2000-06-15 gives the whole years on the as_of date."""
        assert patient_from_resources(BORN, as_of=as_of).age == age

    def test_default_is_today(self) -> None:
        """Without as_of the age is on today's date."""
        today = dt.date.today()
        expected = today.year - 2000 - ((today.month, today.day) < (6, 15))
        assert patient_from_resources(BORN).age == expected

    def test_a_date_before_birth_is_refused(self) -> None:
        """An as_of before the birth date gives no negative age: a named problem."""
        with pytest.raises(StepError, match="outside 0-130"):
            patient_from_resources(BORN, as_of=dt.date(1999, 1, 1))

    def test_a_non_date_is_refused(self) -> None:
        """as_of must be a date or datetime."""
        with pytest.raises(TypeError, match="as_of must be a date"):
            patient_from_resources(BORN, as_of="2026-01-01")  # type: ignore[arg-type]

    def test_bundle_and_order_sign_pass_it_through(self) -> None:
        """from_bundle and read_order_sign take as_of too."""
        bundle = {"resourceType": "Bundle", "entry": [{"resource": BORN}]}
        patient, _ = from_bundle(bundle, as_of=dt.date(2020, 7, 1))
        assert patient.age == 20.0
        read = read_order_sign(
            {"draftOrders": {"resourceType": "Bundle"}},
            {"patient": BORN},
            as_of=dt.date(2020, 7, 1),
        )
        assert read.patient.age == 20.0

    def test_audit_uses_its_as_of(self) -> None:
        """The audit computes the age on its --as-of date, not today: tramadol 400 mg/day at
        70 years (as of 2020) passes the over-75 limit; at 80 years (as of 2030) it is flagged."""
        from mps_analgesia.audit._patient import audit_patient

        patient = {"resourceType": "Patient", "id": "p", "birthDate": "1950-01-01"}
        order = {
            "resourceType": "MedicationRequest",
            "id": "t",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "tramadol"},
            "dosageInstruction": [
                {
                    "timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}},
                    "route": {"text": "oral"},
                    "doseAndRate": [
                        {
                            "doseQuantity": {
                                "value": 100,
                                "system": "http://unitsofmeasure.org",
                                "code": "mg",
                            }
                        }
                    ],
                }
            ],
        }
        codes = [
            [
                f["code"]
                for f in audit_patient(
                    "p", [patient, order], dt.datetime(year, 7, 1, tzinfo=dt.UTC)
                )["findings"]
            ]
            for year in (2020, 2030)
        ]
        assert "age.dose-adjust" not in codes[0]
        assert "age.dose-adjust" in codes[1]
