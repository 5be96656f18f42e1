"""``boundsPeriod.start``/``end`` -> a step's start and stop day, counted from the regimen's
``start_date`` (``CarePlan.period.start``); without one, the plan-day reading."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest

import mps_analgesia as mps
from mps_analgesia.errors import CaseFileError, StepError
from mps_analgesia.fhir import X_START_DAY, from_bundle, step_from_resource, to_bundle

DAY0 = dt.date(2026, 12, 7)


def _order(bounds: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"text": "morphine"},
        "dosageInstruction": [
            {
                "timing": {
                    "repeat": {
                        "frequency": 1,
                        "period": 4,
                        "periodUnit": "h",
                        "boundsPeriod": bounds,
                    }
                },
                "route": {"text": "oral"},
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": 10,
                            "code": "mg",
                            "system": "http://unitsofmeasure.org",
                        }
                    }
                ],
            }
        ],
        **extra,
    }


class TestWithAStartDate:
    def test_start_and_end_give_start_and_stop_days(self) -> None:
        """10 to 16 December from day 0 = 7 December: days 3 to 9."""
        step = step_from_resource(
            _order({"start": "2026-12-10", "end": "2026-12-16"}), start_date=DAY0
        )
        assert (step.start_day, step.stop_day) == (3, 9)

    def test_a_date_time_counts_by_its_date(self) -> None:
        """A dateTime start is counted by its date."""
        step = step_from_resource(_order({"start": "2026-12-08T09:00:00Z"}), start_date=DAY0)
        assert (step.start_day, step.stop_day) == (1, None)

    def test_a_start_before_day_0_is_a_named_problem(self) -> None:
        """An order that starts before the plan's day 0 is refused, naming both dates."""
        with pytest.raises(StepError, match="before the regimen's start date 2026-12-07") as info:
            step_from_resource(_order({"start": "2026-12-01"}), start_date=DAY0)
        assert "boundsPeriod.start" in str(info.value)

    def test_a_start_day_extension_that_disagrees_is_refused(self) -> None:
        """boundsPeriod.start says day 3, the start-day extension day 5: refused."""
        ext = {"extension": [{"url": X_START_DAY, "valueInteger": 5}]}
        with pytest.raises(StepError, match="start-day extension says day 5"):
            step_from_resource(_order({"start": "2026-12-10"}, **ext), start_date=DAY0)
        ext = {"extension": [{"url": X_START_DAY, "valueInteger": 3}]}
        assert (
            step_from_resource(_order({"start": "2026-12-10"}, **ext), start_date=DAY0).start_day
            == 3
        )


class TestWithoutAStartDate:
    def test_plan_day_reading(self) -> None:
        """No start date: day 0 (or the extension's), and the period gives only the length."""
        step = step_from_resource(_order({"start": "2026-12-10", "end": "2026-12-16"}))
        assert (step.start_day, step.stop_day) == (0, 6)


class TestBundle:
    def test_careplan_period_start_round_trips_as_start_date(self) -> None:
        """to_bundle writes start_date as CarePlan.period.start; from_bundle reads it back."""
        case = mps.load_case("examples/mps-multimodal.toml")
        regimen = attrs.evolve(case.regimen, start_date=DAY0)
        bundle = to_bundle(regimen, case.patient)
        plan = next(
            e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan"
        )
        assert plan["period"] == {"start": "2026-12-07"}
        assert from_bundle(bundle) == (case.patient, regimen)

    def test_orders_of_the_bundle_count_from_the_careplan(self) -> None:
        """An order of a Bundle whose CarePlan starts 7 December starts on day 3."""
        order = dict(_order({"start": "2026-12-10"}), id="m")
        plan = {"resourceType": "CarePlan", "status": "active", "intent": "plan",
                "period": {"start": "2026-12-07"}}  # fmt: skip
        bundle = {"resourceType": "Bundle", "entry": [{"resource": order}, {"resource": plan}]}
        _, regimen = from_bundle(bundle)
        assert (regimen.start_date, regimen[0].start_day) == (DAY0, 3)

    def test_a_bad_careplan_start_is_a_problem(self) -> None:
        """A CarePlan.period.start that is not a date is reported with its path."""
        plan = {"resourceType": "CarePlan", "status": "active", "intent": "plan",
                "period": {"start": "soon"}}  # fmt: skip
        with pytest.raises(CaseFileError) as info:
            from_bundle({"resourceType": "Bundle", "entry": [{"resource": plan}]})
        assert [p.path for p in info.value.problems] == ["CarePlan.period.start"]
