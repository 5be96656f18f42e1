"""The whole FHIR Dosage: one test per element the reader reads (or refuses by name)."""

from __future__ import annotations

from typing import Any

import pytest

import mps_analgesia as mps
from mps_analgesia.errors import MpsAnalgesiaError, StepError
from mps_analgesia.fhir import from_bundle, step_from_resource, steps_from_resource, to_bundle

UCUM = "http://unitsofmeasure.org"
ORAL = {"coding": [{"system": "http://snomed.info/sct", "code": "26643006"}]}


def _mg(value: float, code: str = "mg") -> dict[str, Any]:
    return {"value": value, "system": UCUM, "code": code}


def _order(drug: str = "morphine", **dosage: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "route": ORAL,
        "timing": {"repeat": {"frequency": 1, "period": 4, "periodUnit": "h"}},
        "doseAndRate": [{"doseQuantity": _mg(10)}],
    }
    d.update(dosage)
    return {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"text": drug},
        "dosageInstruction": [d],
    }


def _repeat(**repeat: Any) -> dict[str, Any]:
    return {"repeat": repeat}


class TestTiming:
    def test_frequency_max_reads_the_most_frequent(self) -> None:
        """frequency 1, frequencyMax 2 per 8 h: read as every 4 h (the high end)."""
        order = _order(timing=_repeat(frequency=1, frequencyMax=2, period=8, periodUnit="h"))
        assert step_from_resource(order).every_h == 4.0

    def test_period_max_reads_the_shorter_period(self) -> None:
        """every 4 to 6 h: read as every 4 h."""
        order = _order(timing=_repeat(frequency=1, period=4, periodMax=6, periodUnit="h"))
        assert step_from_resource(order).every_h == 4.0

    @pytest.mark.parametrize(
        ("unit", "hours"), [("min", 240 / 60), ("d", 24.0), ("wk", 168.0), ("mo", 730.5)]
    )
    def test_every_ucum_unit_of_time(self, unit: str, hours: float) -> None:
        """periodUnit min, d, wk and mo are read (mo = 30.4375 d, UCUM)."""
        period = 240 if unit == "min" else 1
        order = _order(timing=_repeat(frequency=1, period=period, periodUnit=unit))
        assert step_from_resource(order).every_h == pytest.approx(hours)

    def test_year_unit(self) -> None:
        """periodUnit a (365.25 d) is read."""
        order = _order(timing=_repeat(frequency=1, period=1, periodUnit="a"))
        assert step_from_resource(order).every_h == pytest.approx(365.25 * 24)

    def test_unknown_period_unit_is_named(self) -> None:
        """A unit of time FHIR does not have is refused naming the element."""
        with pytest.raises(StepError, match=r"periodUnit|period"):
            step_from_resource(
                _order(timing=_repeat(frequency=1, period=1, periodUnit="fortnight"))
            )

    def test_time_of_day_gives_at_times(self) -> None:
        """timeOfDay gives the step's at times and the frequency."""
        order = _order(timing=_repeat(timeOfDay=["08:00:00", "20:00:00"]))
        step = step_from_resource(order)
        assert (step.times_per_day, step.at) == (2, ("08:00", "20:00"))

    def test_time_of_day_must_match_the_frequency(self) -> None:
        """Two times of day for three doses a day is a named problem."""
        order = _order(timing=_repeat(frequency=3, period=1, periodUnit="d", timeOfDay=["08:00"]))
        with pytest.raises(StepError, match="timeOfDay"):
            step_from_resource(order)

    def test_when_counts_the_doses(self) -> None:
        """when [MORN, EVE] with no frequency: twice a day."""
        order = _order(timing=_repeat(when=["MORN", "EVE"]))
        assert step_from_resource(order).times_per_day == 2

    def test_timing_code_bid(self) -> None:
        """Timing.code BID (no repeat) is twice a day."""
        order = _order(timing={"code": {"coding": [{"code": "BID"}]}})
        assert step_from_resource(order).doses_per_day == 2.0

    def test_unreadable_timing_code(self) -> None:
        """A timing code that does not say how often is refused."""
        with pytest.raises(StepError, match=r"timing\.code"):
            step_from_resource(_order(timing={"code": {"coding": [{"code": "AM"}]}}))

    def test_count_one_is_once(self) -> None:
        """repeat.count 1 with no period is a single dose."""
        assert step_from_resource(_order(timing=_repeat(count=1))).once

    def test_bounds_duration_gives_the_stop_day(self) -> None:
        """boundsDuration 2 wk: the step stops on day 13."""
        timing = _repeat(
            frequency=1, period=4, periodUnit="h", boundsDuration={"value": 2, "code": "wk"}
        )
        assert step_from_resource(_order(timing=timing)).stop_day == 13

    def test_bounds_period_gives_the_stop_day(self) -> None:
        """boundsPeriod of 10 calendar days (end inclusive): stop day 9."""
        timing = _repeat(
            frequency=1,
            period=4,
            periodUnit="h",
            boundsPeriod={"start": "2026-01-01", "end": "2026-01-10"},
        )
        assert step_from_resource(_order(timing=timing)).stop_day == 9

    def test_bounds_period_ending_before_it_starts(self) -> None:
        """A boundsPeriod that ends before it starts is refused."""
        timing = _repeat(
            frequency=1,
            period=4,
            periodUnit="h",
            boundsPeriod={"start": "2026-01-10", "end": "2026-01-01"},
        )
        with pytest.raises(StepError, match="before it starts"):
            step_from_resource(_order(timing=timing))


class TestDoseAndRate:
    def test_dose_range_gives_dose_high(self) -> None:
        """doseRange 5..10 mg: dose 5 mg, dose_high 10 mg, checks use 10 mg."""
        order = _order(doseAndRate=[{"doseRange": {"low": _mg(5), "high": _mg(10)}}])
        step = step_from_resource(order)
        assert (step.dose_low_mg, step.dose_mg, step.daily_dose_mg) == (5.0, 10.0, 60.0)
        assert "5 mg to 10 mg" in step.describe()

    def test_several_dose_and_rate_prefer_ordered(self) -> None:
        """Of several doseAndRate, the one typed 'ordered' is read."""
        ordered = {"type": {"coding": [{"code": "ordered"}]}, "doseQuantity": _mg(10)}
        calculated = {"type": {"coding": [{"code": "calculated"}]}, "doseQuantity": _mg(9.7)}
        order = _order(doseAndRate=[calculated, ordered])
        assert step_from_resource(order).dose_mg == 10.0

    def test_several_different_dose_and_rate_are_ambiguous(self) -> None:
        """Two different doses, none typed ordered: a named problem, not the first one."""
        order = _order(doseAndRate=[{"doseQuantity": _mg(10)}, {"doseQuantity": _mg(20)}])
        with pytest.raises(StepError, match="ambiguous"):
            step_from_resource(order)

    def test_rate_quantity(self) -> None:
        """rateQuantity 1 mg/h subcutaneous: a continuous step, 24 mg/day."""
        order = _order(
            route={"text": "subcutaneous"},
            timing=None,
            doseAndRate=[{"rateQuantity": _mg(1, "mg/h")}],
        )
        assert step_from_resource(order).daily_dose_mg == pytest.approx(24.0)

    def test_rate_ratio(self) -> None:
        """rateRatio 30 mg / 24 h (a syringe driver): 1.25 mg/h."""
        ratio = {"numerator": _mg(30), "denominator": {"value": 24, "system": UCUM, "code": "h"}}
        order = _order(
            route={"text": "subcutaneous"}, timing=None, doseAndRate=[{"rateRatio": ratio}]
        )
        assert step_from_resource(order).rate_mg_per_h == pytest.approx(1.25)

    def test_rate_range_is_refused(self) -> None:
        """A rate range is a named problem."""
        rng = {"low": _mg(1, "mg/h"), "high": _mg(2, "mg/h")}
        order = _order(
            route={"text": "subcutaneous"}, timing=None, doseAndRate=[{"rateRange": rng}]
        )
        with pytest.raises(StepError, match="rate range"):
            step_from_resource(order)

    def test_volume_rate_through_the_concentration(self) -> None:
        """2 mL/h of morphine 1 MG/ML injectable solution IV: 2 mg/h."""
        order = _order(
            route={"text": "intravenous"},
            timing=None,
            doseAndRate=[{"rateQuantity": _mg(2, "mL/h")}],
        )
        order["medicationCodeableConcept"] = {
            "text": "morphine sulfate 1 MG/ML Injectable Solution"
        }
        assert step_from_resource(order).rate_mg_per_h == pytest.approx(2.0)

    def test_volume_rate_without_a_concentration_is_refused(self) -> None:
        """mL/h of an ingredient (no product strength) cannot become mg."""
        order = _order(
            route={"text": "intravenous"},
            timing=None,
            doseAndRate=[{"rateQuantity": _mg(2, "mL/h")}],
        )
        with pytest.raises(StepError, match="concentration"):
            step_from_resource(order)

    def test_no_dose_at_all(self) -> None:
        """A Dosage with no dose or rate is a named problem."""
        with pytest.raises(StepError, match="doseQuantity"):
            step_from_resource(_order(doseAndRate=[]))


class TestAsNeededAndMaximum:
    def test_as_needed_boolean(self) -> None:
        """asNeededBoolean true is PRN."""
        assert step_from_resource(_order(asNeededBoolean=True)).prn

    def test_as_needed_codeable_concept(self) -> None:
        """asNeededCodeableConcept (the reason) is PRN."""
        assert step_from_resource(_order(asNeededCodeableConcept={"text": "pain"})).prn

    def test_as_needed_of_a_wrong_type(self) -> None:
        """asNeededBoolean 'yes' is refused."""
        with pytest.raises(StepError, match="asNeededBoolean"):
            step_from_resource(_order(asNeededBoolean="yes"))

    def test_max_dose_per_period_in_doses(self) -> None:
        """maxDosePerPeriod 4 {dose} / 24 h caps a PRN step at 4 doses."""
        ratio = {
            "numerator": {"value": 4, "code": "{dose}"},
            "denominator": {"value": 24, "code": "h"},
        }
        step = step_from_resource(_order(asNeededBoolean=True, maxDosePerPeriod=ratio))
        assert step.max_doses_per_24h == 4

    def test_max_dose_per_period_in_tablets(self) -> None:
        """8 tablets per 24 h at 2 tablets a dose is 4 doses (the tablets are counted)."""
        ratio = {
            "numerator": {"value": 8, "code": "{tablet}"},
            "denominator": {"value": 1, "code": "d"},
        }
        order = _order(
            asNeededBoolean=True,
            maxDosePerPeriod=ratio,
            doseAndRate=[{"doseQuantity": {"value": 2, "code": "{tablet}"}}],
        )
        order["medicationCodeableConcept"] = {"text": "oxycodone hydrochloride 5 MG Oral Tablet"}
        assert step_from_resource(order).max_doses_per_24h == 4


class TestRoute:
    def test_route_missing_for_a_drug_with_several_routes(self) -> None:
        """No route, no dose form, several routes: a named problem, never oral by default."""
        order = _order()
        del order["dosageInstruction"][0]["route"]
        with pytest.raises(StepError, match="not read as oral"):
            step_from_resource(order)

    def test_route_of_a_single_route_drug(self) -> None:
        """A drug with one route (tapentadol: oral) needs no route element."""
        order = _order("tapentadol")
        del order["dosageInstruction"][0]["route"]
        assert step_from_resource(order).route == "oral"

    def test_unreadable_route_is_named(self) -> None:
        """A route with an unknown code and no text is refused, not ignored."""
        order = _order(route={"coding": [{"system": "http://snomed.info/sct", "code": "1"}]})
        with pytest.raises(StepError, match="route"):
            step_from_resource(order)


class TestSeveralDosageInstructions:
    def test_concurrent_regular_and_prn(self) -> None:
        """Two dosageInstructions without sequence: a regular and a PRN step."""
        order = _order()
        prn = dict(order["dosageInstruction"][0], asNeededBoolean=True)
        order["dosageInstruction"].append(prn)
        steps = steps_from_resource(order)
        assert [s.prn for s in steps] == [False, True]

    def test_sequential_with_frequency_change(self) -> None:
        """Sequence 1 then 2: a titration that changes dose and frequency."""
        first = {
            "sequence": 1,
            "route": ORAL,
            "timing": _repeat(
                frequency=1, period=6, periodUnit="h", boundsDuration={"value": 3, "code": "d"}
            ),
            "doseAndRate": [{"doseQuantity": _mg(5)}],
        }
        second = {
            "sequence": 2,
            "route": ORAL,
            "timing": _repeat(frequency=1, period=4, periodUnit="h"),
            "doseAndRate": [{"doseQuantity": _mg(10)}],
        }
        order = _order()
        order["dosageInstruction"] = [second, first]
        step = step_from_resource(order)
        assert [(p.day, p.dose_mg, p.every_h) for p in step.titration] == [(3, 10.0, 4.0)]
        assert step.daily_dose_mg == 60.0


class TestRoundTrip:
    def test_range_form_times_and_stop_round_trip(self) -> None:
        """dose_high, dose_form, at and stop_day survive to_bundle → from_bundle."""
        step = mps.OpioidStep(
            drug="fentanyl",
            route="buccal",
            dose="100 mcg",
            dose_high="200 mcg",
            dose_form="buccal-film",
            every="4 h",
            prn=True,
            stop_day=6,
        )
        regular = mps.AdjuvantStep(
            drug="acetaminophen",
            role="nociceptive",
            dose="1 g",
            times_per_day=2,
            at=("08:00", "20:00"),
        )
        regimen = mps.Regimen([step, regular])
        _patient, back = from_bundle(to_bundle(regimen))
        assert back == regimen
        assert back[0].dose_form == "buccal-film"


def test_errors_are_library_errors() -> None:
    """Every refusal above is an MpsAnalgesiaError (so a batch or a CDS request goes on)."""
    with pytest.raises(MpsAnalgesiaError):
        step_from_resource(_order(timing=_repeat(frequency=1, period=-1, periodUnit="h")))
