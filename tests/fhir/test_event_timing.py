"""``timing.repeat.when``: each FHIR R4 EventTiming code gives the step's ``at`` or a problem."""

from __future__ import annotations

import pytest

from mps_analgesia import _catalog
from mps_analgesia.errors import StepError
from mps_analgesia.fhir import step_from_resource
from mps_analgesia.fhir._timing import read_timing

#: The FHIR R4 EventTiming value set: the FHIR codes and the v3 TimingEvent codes.
R4_EVENT_TIMING = (
    "MORN", "MORN.early", "MORN.late", "NOON", "AFT", "AFT.early", "AFT.late", "EVE",
    "EVE.early", "EVE.late", "NIGHT", "PHS", "HS", "WAKE", "C", "CM", "CD", "CV", "AC", "ACM",
    "ACD", "ACV", "PC", "PCM", "PCD", "PCV",
)  # fmt: skip
#: The library's convention (data/ucum.toml [event_times]), written out by hand.
EXPECTED = {
    "MORN": "08:00", "MORN.early": "06:00", "MORN.late": "10:00", "NOON": "12:00",
    "AFT": "15:00", "AFT.early": "13:00", "AFT.late": "17:00", "EVE": "19:00",
    "EVE.early": "18:00", "EVE.late": "21:00", "NIGHT": "23:00", "HS": "22:00", "WAKE": "07:00",
    "CM": "08:00", "CD": "12:00", "CV": "18:00", "ACM": "08:00", "ACD": "12:00", "ACV": "18:00",
    "PCM": "08:00", "PCD": "12:00", "PCV": "18:00",
}  # fmt: skip
REFUSED = {"C": "which meal", "AC": "which meal", "PC": "which meal", "PHS": "no set time"}


class TestEveryCode:
    def test_every_r4_code_is_handled_one_way_or_the_other(self) -> None:
        """Each code of the R4 value set has a time or a refusal in the data file."""
        table = _catalog.data_file("ucum.toml")["event_times"]
        assert set(R4_EVENT_TIMING) <= set(table)
        assert set(EXPECTED) | set(REFUSED) == set(R4_EVENT_TIMING)

    def test_the_data_states_level_and_source(self) -> None:
        """The times are the library's convention: level U, a source in the bibliography."""
        meta = _catalog.data_file("ucum.toml")["event_times"]["meta"]
        assert meta["level"] == "U"
        assert "convention" in _catalog.source(meta["source"]).citation

    @pytest.mark.parametrize("code", sorted(EXPECTED))
    def test_code_gives_its_time(self, code: str) -> None:
        """A when code alone: one dose a day at the convention's time."""
        kwargs = read_timing({"repeat": {"when": [code]}}).kwargs
        assert kwargs == {"times_per_day": 1, "at": (EXPECTED[code],)}

    @pytest.mark.parametrize("code", sorted(REFUSED))
    def test_code_without_a_time_is_a_named_problem(self, code: str) -> None:
        """C, AC, PC and PHS have no time to give: a StepError naming the element and why."""
        with pytest.raises(StepError, match=REFUSED[code]) as info:
            read_timing({"repeat": {"when": [code]}})
        assert "timing.repeat.when[0]" in str(info.value)

    @pytest.mark.parametrize("code", ["IMD", "morning", "XYZ"])
    def test_other_codes_are_refused(self, code: str) -> None:
        """R5's IMD and anything outside the value set are refused, never guessed."""
        with pytest.raises(StepError, match=r"timing\.repeat\.when"):
            read_timing({"repeat": {"when": [code]}})


class TestWithTheRest:
    def test_with_a_frequency_and_period(self) -> None:
        """2 a day with when [CM, CV]: at 08:00 and 18:00, sorted."""
        repeat = {"frequency": 2, "period": 1, "periodUnit": "d", "when": ["CV", "CM"]}
        assert read_timing({"repeat": repeat}).kwargs == {
            "times_per_day": 2,
            "at": ("08:00", "18:00"),
        }

    def test_count_mismatch_is_refused(self) -> None:
        """3 a day with one event: one time per dose."""
        with pytest.raises(StepError, match="one time per dose"):
            read_timing(
                {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d", "when": ["HS"]}}
            )

    def test_offset_moves_after_and_before(self) -> None:
        """offset 30 min: after CM (08:30), before ACM (07:30)."""
        assert read_timing({"repeat": {"when": ["CM"], "offset": 30}}).kwargs["at"] == ("08:30",)
        assert read_timing({"repeat": {"when": ["ACM"], "offset": 30}}).kwargs["at"] == ("07:30",)

    @pytest.mark.parametrize("offset", [-5, 1.5, True, "30"])
    def test_bad_offset_is_refused(self, offset: object) -> None:
        """offset must be whole minutes >= 0."""
        with pytest.raises(StepError, match="offset"):
            read_timing({"repeat": {"when": ["CM"], "offset": offset}})

    def test_offset_past_midnight_is_refused(self) -> None:
        """An offset that leaves the day has no time of day: a named problem."""
        with pytest.raises(StepError, match="outside the day"):
            read_timing({"repeat": {"when": ["NIGHT"], "offset": 120}})

    def test_two_codes_at_one_time_are_refused(self) -> None:
        """CM and PCM are both 08:00: the same time twice is refused."""
        with pytest.raises(StepError, match="same time twice"):
            read_timing({"repeat": {"when": ["CM", "PCM"]}})

    def test_time_of_day_and_when_together_are_refused(self) -> None:
        """FHIR's tim-10: timeOfDay or when, not both."""
        with pytest.raises(StepError, match="tim-10"):
            read_timing({"repeat": {"when": ["HS"], "timeOfDay": ["22:00:00"]}})

    def test_an_order_gets_the_times(self) -> None:
        """A gabapentin order at HS reads into a step at 22:00."""
        order = {
            "resourceType": "MedicationRequest",
            "status": "draft",
            "intent": "order",
            "medicationCodeableConcept": {"text": "gabapentin"},
            "dosageInstruction": [
                {
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d",
                                          "when": ["HS"]}},
                    "route": {"text": "oral"},
                    "doseAndRate": [{"doseQuantity": {"value": 300, "code": "mg",
                                     "system": "http://unitsofmeasure.org"}}],
                }
            ],
        }  # fmt: skip
        step = step_from_resource(order)
        assert step.at == ("22:00",)
        assert step.daily_dose_mg == 300.0
