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


def _phased(first: dict[str, Any], second: dict[str, Any], **ext: Any) -> dict[str, Any]:
    """A morphine order of two phases: 10 mg then 15 mg every 4 h, each with its bounds."""
    order = _order(first)
    later = dict(order["dosageInstruction"][0], **ext)
    later["timing"] = {"repeat": dict(later["timing"]["repeat"], boundsPeriod=second)}
    later["doseAndRate"] = [
        {"doseQuantity": {"value": 15, "code": "mg", "system": "http://unitsofmeasure.org"}}
    ]
    order["dosageInstruction"] = [
        dict(order["dosageInstruction"][0], sequence=1),
        dict(later, sequence=2),
    ]
    return order


class TestPhases:
    def test_titration_phases_are_written_as_periods_of_dates(self) -> None:
        """With a start date, each methadone phase (days 0, 7, 14) is a boundsPeriod of dates."""
        case = mps.load_case("examples/mps-multimodal.toml")
        regimen = attrs.evolve(case.regimen, start_date=DAY0)
        bundle = to_bundle(regimen, case.patient)
        orders = [e["resource"] for e in bundle["entry"]]
        methadone = next(
            r
            for r in orders
            if r["resourceType"] == "MedicationRequest"
            and r["medicationCodeableConcept"]["text"].startswith("methadone")
        )
        repeats = [d["timing"]["repeat"] for d in methadone["dosageInstruction"]]
        assert [r["boundsPeriod"]["start"] for r in repeats] == [
            "2026-12-07",
            "2026-12-14",
            "2026-12-21",
        ]
        assert [r["boundsPeriod"].get("end") for r in repeats[:2]] == ["2026-12-13", "2026-12-20"]
        assert not any("boundsDuration" in r for r in repeats)

    def test_without_a_start_date_phases_keep_durations(self) -> None:
        """No start date: the phases are written with boundsDuration, as before."""
        case = mps.load_case("examples/mps-multimodal.toml")
        bundle = to_bundle(case.regimen, case.patient)
        repeats = [
            d["timing"]["repeat"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "MedicationRequest"
            for d in e["resource"]["dosageInstruction"]
            if "timing" in d
        ]
        assert not any("boundsPeriod" in r for r in repeats)
        assert any("boundsDuration" in r for r in repeats)

    def test_a_foreign_order_of_dated_phases_reads(self) -> None:
        """Phases dated 7 and 14 December (no plan-day extensions): 15 mg from day 7."""
        order = _phased({"start": "2026-12-07", "end": "2026-12-13"}, {"start": "2026-12-14"})
        step = step_from_resource(order, start_date=DAY0)
        assert step.start_day == 0
        assert [(p.day, p.dose) for p in step.titration] == [(7, mps.Q(15, "mg"))]
        assert step.stop_day is None  # the last phase is open-ended

    def test_a_closed_first_period_gives_the_next_day_without_a_start_date(self) -> None:
        """Without a start date, a 7-day first period puts the second phase on day 7."""
        order = _phased({"start": "2026-12-07", "end": "2026-12-13"}, {"start": "2026-12-14"})
        step = step_from_resource(order)
        assert [p.day for p in step.titration] == [7]

    def test_a_period_that_disagrees_with_the_plan_day_is_a_problem(self) -> None:
        """A phase whose date and plan-day extension disagree is refused at that phase."""
        plan_day = {"extension": [{"url": _plan_day_url(), "valueInteger": 5}]}
        order = _phased({"start": "2026-12-07"}, {"start": "2026-12-14"}, **plan_day)
        with pytest.raises(StepError) as info:
            step_from_resource(order, start_date=DAY0)
        assert "dosageInstruction[1].timing.repeat.boundsPeriod.start" in str(info.value)
        assert "day 7" in str(info.value)
        assert "day 5" in str(info.value)


def _plan_day_url() -> str:
    from mps_analgesia.fhir import _base

    return _base.X_PLAN_DAY
