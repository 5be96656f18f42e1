"""The plan over time: the calendar anchor, the day plan and its renderings."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

import mps_analgesia as mps
from mps_analgesia.errors import CaseFileError, StepError

ROOT = Path(__file__).resolve().parent.parent
MULTIMODAL = ROOT / "examples" / "mps-multimodal.toml"

_CASE = """\
name = "calendar"
start_date = 2026-12-07
time_zone = "Asia/Tokyo"

[patient]
age = 60

[[step]]
kind = "opioid"
drug = "morphine"
dose = "10 mg"
every = "12 h"
at = ["08:00", "20:00"]
stop_day = 13
titration = [{ day = 7, dose = "15 mg", every = "8 h", at = ["06:00", "14:00", "22:00"] }]
"""


class TestCalendar:
    """A regimen may carry the date of plan day 0 and a time zone."""

    def test_start_date_from_text_or_date(self) -> None:
        """An ISO text and a date are the same anchor."""
        a = mps.Regimen([], start_date="2026-12-07")
        b = mps.Regimen([], start_date=datetime.date(2026, 12, 7))
        assert a == b
        assert a.date_of(0) == datetime.date(2026, 12, 7)

    def test_without_a_start_date_days_are_plan_days(self) -> None:
        """No anchor: no dates."""
        assert mps.Regimen([]).date_of(3) is None

    @pytest.mark.parametrize(
        ("kw", "field", "message"),
        [
            ({"start_date": "7/12/2026"}, "start_date", "not an ISO date"),
            ({"start_date": datetime.datetime(2026, 12, 7, 8)}, "start_date", "not a date and"),
            ({"start_date": "2026-12-07", "time_zone": "Mars/Olympus"}, "time_zone", "not a known"),
            ({"time_zone": "Asia/Tokyo"}, "time_zone", "without a start_date"),
        ],
    )
    def test_bad_anchor_is_refused(self, kw: Any, field: str, message: str) -> None:
        """A date that is not ISO, a date-time, an unknown zone, a zone without a date."""
        with pytest.raises(StepError) as info:
            mps.Regimen([], **kw)
        assert info.value.field == field
        assert message in info.value.reason

    def test_case_file_round_trips_the_calendar_and_times(self) -> None:
        """TOML and JSON keep start_date, time_zone, at, stop_day and a frequency change."""
        case = mps.loads_case(_CASE)
        assert case.regimen.start_date == datetime.date(2026, 12, 7)
        assert case.regimen.time_zone == "Asia/Tokyo"
        step = case.regimen[0]
        assert step.at == ("08:00", "20:00")
        assert step.titration[0].at == ("06:00", "14:00", "22:00")
        for fmt in ("toml", "json"):
            again = mps.loads_case(mps.dumps_case(case, format=fmt), format=fmt)
            assert again == case
            assert again.regimen.start_date == case.regimen.start_date
            assert again.regimen.time_zone == case.regimen.time_zone

    def test_json_start_date_is_a_string(self) -> None:
        """JSON has no date type: the ISO text is written and read."""
        data = mps.case_to_dict(mps.loads_case(_CASE))
        assert data["start_date"] == "2026-12-07"
        assert json.loads(mps.dumps_case(mps.loads_case(_CASE), format="json"))["time_zone"]

    def test_bad_calendar_keys_are_reported_with_their_line(self) -> None:
        """A bad date and a bad time of day are both reported, each with its line."""
        text = _CASE.replace("2026-12-07", '"next monday"').replace('"08:00"', '"8h"')
        with pytest.raises(CaseFileError) as info:
            mps.loads_case(text)
        paths = {p.path: p.line for p in info.value.problems}
        assert paths["start_date"] == 2
        assert "step[0].at" in paths

    def test_schema_knows_the_calendar_keys(self) -> None:
        """The case schema accepts start_date, time_zone, at and stop_day."""
        schema = mps.json_schema("case")
        assert schema["properties"]["start_date"]["format"] == "date"
        opioid = schema["$defs"]["OpioidStep"]["properties"]
        assert {"at", "stop_day", "duration"} <= set(opioid)
        assert {"every", "times_per_day", "at"} <= set(
            schema["$defs"]["TitrationPoint"]["properties"]
        )


class TestShippedExampleOverTime:
    """examples/mps-multimodal.toml, step by step over its days."""

    def test_methadone_block_and_radiotherapy_days(self) -> None:
        """Methadone 15 → 22.5 → 30 mg/day on days 0, 7, 14; block days 1-3; RT days 2-6."""
        reg = mps.load_case(MULTIMODAL).regimen
        ((_, methadone),) = reg.of_kind("methadone_adjuvant")
        assert [methadone.daily_dose_mg_on(d) for d in (0, 6, 7, 13, 14)] == [
            15.0,
            15.0,
            22.5,
            22.5,
            30.0,
        ]
        ((_, block),) = reg.of_kind("psoas_compartment_block")
        assert (block.start_day, block.last_day) == (1, 3)
        ((_, rt),) = reg.of_kind("radiotherapy")
        assert rt.fraction_days(reg.start_date) == (2, 3, 4, 5, 6)
