"""The plan over time: the calendar anchor, the day plan and its renderings."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mps_analgesia as mps
from mps_analgesia.errors import CaseFileError, StepError
from strategies import regimens

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


def _plan(days: int = 21) -> mps.DayPlan:
    return mps.schedule(mps.load_case(MULTIMODAL).regimen, days=days)


class TestDayPlan:
    """schedule(regimen, days=N): one Day per plan day."""

    def test_shipped_example_day_by_day(self) -> None:
        """Methadone 15 → 22.5 → 30 mg/day on days 0, 7, 14; block days 1-3; RT days 2-6."""
        plan = _plan()
        methadone = [plan[d].totals_mg["methadone"] for d in range(21)]
        assert methadone[0] == methadone[6] == 15.0
        assert methadone[7] == methadone[13] == 22.5
        assert methadone[14] == methadone[20] == 30.0
        assert plan.days_of("ropivacaine") == (1, 2, 3)
        assert [d.day for d in plan if d.rt_fraction is not None] == [2, 3, 4, 5, 6]
        assert [plan[d].rt_fraction.number for d in range(2, 7)] == [1, 2, 3, 4, 5]  # type: ignore[union-attr]
        assert plan[2].rt_fraction.dose == mps.Q("4 Gy")  # type: ignore[union-attr]

    def test_plan_days_and_days_attribute_agree(self) -> None:
        """plan[d] is plan.days[d]; len is the number of days; dates are None without anchor."""
        plan = _plan(5)
        assert len(plan) == 5
        assert plan[3] is plan.days[3]
        assert plan[3].date is None
        assert plan[3].label() == "day 3"

    def test_default_days_run_through_the_last_change(self) -> None:
        """Without days=, the plan runs to the regimen's last change (day 14 here)."""
        assert len(mps.schedule(mps.load_case(MULTIMODAL).regimen)) == 15

    def test_totals_are_quantities(self) -> None:
        """Day.totals gives Quantities in mg/day; PRN counts at its maximum."""
        day = _plan()[0]
        assert day.totals["oxycodone"] == mps.Q("120 mg/day")
        assert day.regular_totals_mg["oxycodone"] == 60.0

    def test_ome_matches_daily_ome_of_the_day(self) -> None:
        """The day's OME is daily_ome(regimen, day=d), regular and with PRN."""
        reg = mps.load_case(MULTIMODAL).regimen
        plan = mps.schedule(reg, days=15)
        for d in (0, 7, 14):
            for prn, got in (
                ("regular_only", plan[d].ome_regular),
                ("with_prn_maximum", plan[d].ome_with_prn),
            ):
                want = mps.daily_ome(reg, prn=prn, day=d)
                assert got.low_mme_per_day == pytest.approx(want.low_mme_per_day)
                assert got.high_mme_per_day == pytest.approx(want.high_mme_per_day)
        assert plan[14].ome_with_prn.high_mme_per_day > plan[14].ome_regular.high_mme_per_day
        assert plan[14].ome_regular.high_mme_per_day > plan[0].ome_regular.high_mme_per_day

    def test_local_anaesthetic_that_day(self) -> None:
        """Block day 1: bolus + 24 h (328 mg, an upper bound without a time of day)."""
        day = _plan()[1]
        assert day.local_anaesthetic_mg == {"ropivacaine": 328.0}
        assert day.local_anaesthetic["ropivacaine"] == mps.Q("328 mg")
        assert day.local_anaesthetic_upper_bound
        assert _plan()[4].local_anaesthetic_mg == {}

    def test_two_blocks_on_one_day_add_up(self) -> None:
        """Left and right single shots on the same day: both counted that day."""
        left = mps.PsoasCompartmentBlockStep(
            drug="ropivacaine", concentration="0.5 %", bolus_volume="30 mL", side="left"
        )
        right = attrs.evolve(left, side="right")
        day = mps.schedule(mps.Regimen([left, right]), days=2)[0]
        assert day.local_anaesthetic_mg == {"ropivacaine": 300.0}
        assert day.block_steps == (0, 1)

    def test_doses_carry_their_times_of_day(self) -> None:
        """A step with at = [08:00, 20:00] gives two doses with their times, in time order."""
        step = mps.OpioidStep(
            drug="morphine",
            formulation="modified-release",
            dose="30 mg",
            every="12 h",
            at=["08:00", "20:00"],
            titration=[
                {"day": 2, "dose": "20 mg", "every": "8 h", "at": ["06:00", "14:00", "22:00"]}
            ],
        )
        prn = mps.OpioidStep(
            drug="morphine", dose="10 mg", every="2 h", prn=True, max_doses_per_24h=6
        )
        plan = mps.schedule(mps.Regimen([step, prn]), days=3)
        assert [(d.time, d.dose_mg) for d in plan[0].doses if not d.prn] == [
            ("08:00", 30.0),
            ("20:00", 30.0),
        ]
        assert [d.time for d in plan[2].doses] == ["06:00", "14:00", "22:00", None]
        assert plan[2].doses[-1].count == 6

    def test_dates_and_weekday_fractions_with_a_start_date(self) -> None:
        """From Friday 2026-12-04, RT 20 Gy/5 from day 0: Fri, then Mon-Thu."""
        rt = mps.RadiotherapyStep(total_dose="20 Gy", fractions=5, site="left psoas")
        plan = mps.schedule(mps.Regimen([rt], start_date="2026-12-04"), days=8)
        assert [d.day for d in plan if d.fractions] == [0, 3, 4, 5, 6]
        assert plan[3].date == datetime.date(2026, 12, 7)
        assert plan[3].label() == "day 3 (2026-12-07, Mon)"

    def test_stopped_step_is_absent_after_its_stop_day(self) -> None:
        """A 3-day course (days 0-2) is not on day 3."""
        step = mps.AdjuvantStep(
            drug="dexamethasone",
            role="anti-inflammatory",
            dose="8 mg",
            times_per_day=1,
            duration="3 day",
        )
        plan = mps.schedule(mps.Regimen([step]), days=5)
        assert [bool(d.items) for d in plan] == [True, True, True, False, False]

    @pytest.mark.parametrize("days", [0, -1, 2.5, True, "7"])
    def test_bad_days_is_refused(self, days: Any) -> None:
        """days must be a whole number ≥ 1."""
        with pytest.raises(StepError, match="days"):
            mps.schedule(mps.Regimen([]), days=days)

    def test_not_a_regimen_is_refused(self) -> None:
        """A list of steps is not a regimen."""
        with pytest.raises(StepError, match="must be a Regimen"):
            mps.schedule([], days=3)  # type: ignore[arg-type]

    def test_module_and_function_are_both_callable(self) -> None:
        """mps.schedule works whether it resolves to the module or the function."""
        import sys

        import mps_analgesia.schedule  # noqa: F401  (loads the module)

        module: Any = sys.modules["mps_analgesia.schedule"]
        reg = mps.Regimen([])
        assert len(module(reg, days=2)) == len(module.schedule(reg, days=2)) == 2
        assert len(mps.schedule(reg, days=2)) == 2

    @given(regimens(max_size=5), st.integers(1, 30))
    @settings(deadline=None, max_examples=30)
    def test_day_totals_are_the_steps_doses_that_day(self, reg: mps.Regimen, days: int) -> None:
        """Every day's drug totals equal the sum of each step's daily_dose_mg_on(day)."""
        plan = mps.schedule(reg, days=days)
        assert len(plan) == days
        for d in plan:
            want: dict[str, float] = {}
            for step in reg:
                if step.kind in ("opioid", "methadone_adjuvant", "adjuvant"):
                    mg = step.daily_dose_mg_on(d.day)
                    if mg > 0:
                        want[step.drug] = want.get(step.drug, 0.0) + mg
            got = d.totals_mg
            assert got.keys() == want.keys()
            for drug, mg in want.items():
                assert got[drug] == pytest.approx(mg)


class TestRenderings:
    """Text, Markdown, HTML and JSON of the day table read the plan."""

    def test_text_has_a_row_per_day(self) -> None:
        """One line per day after the header and rule."""
        text = _plan(15).to_text()
        lines = text.splitlines()
        assert len(lines) == 1 + 2 + 15
        assert "methadone 30" in lines[-1]
        assert "4 Gy (1/5)" in text
        assert "ropivacaine ≤ 328 mg" in text

    def test_markdown_is_a_table(self) -> None:
        """A Markdown table with the header row and one row per day."""
        md = _plan(8).to_markdown()
        rows = [line for line in md.splitlines() if line.startswith("|")]
        assert len(rows) == 2 + 8
        assert rows[0].startswith("| day |")

    def test_html_is_escaped(self) -> None:
        """The regimen's text is escaped in HTML."""
        step = mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h")
        html = mps.schedule(mps.Regimen([step], name="<b>x</b>"), days=2).to_html()
        assert html.startswith('<table class="mps-dayplan">')
        assert html.count("<tr>") == 3
        assert "<b>" not in html

    def test_json_round_trips_through_json(self) -> None:
        """to_json is valid JSON with one entry per day and numbers in named units."""
        data = json.loads(_plan(15).to_json())
        assert len(data["days"]) == 15
        assert data["days"][14]["totals_mg_per_day"]["methadone"] == 30.0
        assert data["days"][1]["local_anaesthetic_mg"] == {"ropivacaine": 328.0}
        assert data["days"][2]["rt_fractions"][0]["dose_gy"] == 4.0
        assert data["start_date"] is None

    def test_date_column_only_with_a_start_date(self) -> None:
        """Without a start date the table has no date column."""
        assert "date" not in _plan(3).to_markdown().splitlines()[2]
        reg = attrs.evolve(mps.load_case(MULTIMODAL).regimen, start_date="2026-12-07")
        assert "2026-12-07 Mon" in mps.schedule(reg, days=3).to_text()


def _apap(**kw: Any) -> mps.AdjuvantStep:
    base: dict[str, Any] = {"drug": "acetaminophen", "role": "nociceptive", "dose": "1 g"}
    base.update(kw)
    if "every" not in base and "once" not in base and "times_per_day" not in base:
        base["every"] = "6 h"
    return mps.AdjuvantStep(**base)


def _daily_findings(reg: mps.Regimen) -> list[Any]:
    return [f for f in mps.validate(reg, mps.Patient()).findings if f.code == "dose.max-daily"]


class TestMaxDailyOnTheDay:
    """dose.max-daily adds up what is given on the same day, not each step's peak."""

    def test_steps_on_different_days_are_not_added(self) -> None:
        """4 g/day on days 0-6, then 4 g/day from day 7: the old sum of peaks (8 g) flagged it;
        no day is over the limit."""
        reg = mps.Regimen([_apap(stop_day=6), _apap(start_day=7)])
        report = mps.validate(reg, mps.Patient())
        assert _daily_findings(reg) == []
        assert ("dose.max-daily", 0) in report.passed

    def test_over_the_limit_on_day_14_only_is_flagged_on_day_14(self) -> None:
        """4 g/day plus an extra 1 g once on day 14: 5 g/day on day 14 only."""
        reg = mps.Regimen([_apap(), _apap(once=True, every=None, start_day=14)])
        (f,) = _daily_findings(reg)
        assert f.severity == "error"
        assert f.message.startswith("Day 14: acetaminophen totals 5000 mg/day over 2 steps")
        assert f.detail["days"] == [[14, 14]]
        assert f.arithmetic.startswith("day 14: ")

    def test_a_titration_over_the_limit_names_the_days(self) -> None:
        """500 mg q6h, then 1.5 g q6h from day 7 to 9: days 7-9 are over."""
        reg = mps.Regimen(
            [_apap(dose="500 mg", stop_day=9, titration=[{"day": 7, "dose": "1.5 g"}])]
        )
        (f,) = _daily_findings(reg)
        assert f.message.startswith("Days 7–9: acetaminophen totals 6000 mg/day")

    def test_a_static_regimen_reads_as_before(self) -> None:
        """No time structure: the message has no day prefix and sums the steps."""
        reg = mps.Regimen([_apap(), _apap(every="12 h")])
        (f,) = _daily_findings(reg)
        assert f.message.startswith("acetaminophen totals 6000 mg/day over 2 steps")
        assert "days" in f.detail


class TestMethadoneOnTheDay:
    """Methadone titration step size and ECG re-check days, named by day."""

    def _findings(self, step: Any, code: str) -> list[Any]:
        report = mps.validate(mps.Regimen([step]), mps.Patient(qtc="430 ms"))
        return [f for f in report.findings if f.code == code]

    def test_a_large_step_is_a_warning_naming_the_day(self) -> None:
        """5 mg q8h then 10 mg q8h on day 7: +15 mg/day at one step; the limit is [U]."""
        step = mps.MethadoneAdjuvantStep(
            dose="5 mg", every="8 h", titration=[{"day": 7, "dose": "10 mg"}]
        )
        (f,) = self._findings(step, "methadone.titration-step")
        assert f.severity == "warning"
        assert f.message.startswith("Day 7: methadone rises by 15 mg/day (15 → 30 mg/day)")
        assert "[U" in f.message
        assert f.level == "U"

    def test_the_takase_steps_are_within_the_limit(self) -> None:
        """15 → 22.5 → 30 mg/day: 7.5 mg/day a step, no warning."""
        case = mps.load_case(MULTIMODAL)
        report = mps.validate(case.regimen, case.patient)
        assert not [f for f in report.findings if f.code == "methadone.titration-step"]
        ((_, index),) = [
            (s, i) for i, s in enumerate(case.regimen) if s.kind == "methadone_adjuvant"
        ]
        assert ("methadone.titration-step", index) in report.passed

    def test_a_frequency_change_counts_in_the_step(self) -> None:
        """5 mg q12h (10 mg/day) then 5 mg q8h... 10 mg q8h (30 mg/day): +20 mg/day."""
        step = mps.OpioidStep(
            drug="methadone",
            dose="5 mg",
            every="12 h",
            titration=[{"day": 7, "dose": "10 mg", "every": "8 h"}],
        )
        (f,) = self._findings(step, "methadone.titration-step")
        assert "(10 → 30 mg/day)" in f.message

    def test_ecg_recheck_days(self) -> None:
        """The shipped plan: follow-up days 14-28, the increases on days 7 and 14, 30 mg/day on
        day 14."""
        case = mps.load_case(MULTIMODAL)
        report = mps.validate(case.regimen, case.patient)
        (f,) = [f for f in report.findings if f.code == "methadone.ecg-recheck"]
        assert f.severity == "info"
        assert f.detail["follow_up_days"] == [14, 28]
        assert "day 14 (reaches 30 mg/day)" in f.message
        assert "day 7 (increase to 22.5 mg/day)" in f.message


TAPER_EXAMPLE = ROOT / "tests" / "data" / "taper-after-radiotherapy.toml"


def _with_taper(**kw: Any) -> mps.Regimen:
    base: dict[str, Any] = {
        "drug": "oxycodone",
        "reduce_by_percent": 25,
        "every": "7 day",
        "floor": "20 mg/day",
        "after": "radiotherapy",
    }
    base.update(kw)
    return mps.Regimen([*mps.load_case(MULTIMODAL).regimen, mps.TaperStep(**base)])


class TestTaper:
    """A taper step reduces an opioid over days; the rescue dose is recomputed each day."""

    def test_taper_after_rt_in_the_shipped_example(self) -> None:
        """RT ends on day 6: oxycodone 60 → 45 mg/day on day 7, 33.75 on day 14; the rescue
        recomputed to 7.5 then 5.625 mg (1/6), flagged above the written 10 mg."""
        plan = mps.schedule(_with_taper(), days=30)
        oxy = [plan[d].regular_totals_mg["oxycodone"] for d in (6, 7, 13, 14, 21, 28, 29)]
        assert oxy == pytest.approx([60, 45, 45, 33.75, 25.3125, 20, 20])
        (rescue,) = plan[7].rescues
        assert rescue.recomputed_mg == pytest.approx(7.5)
        assert rescue.above
        assert plan[14].rescues[0].recomputed_mg == pytest.approx(5.625)
        assert not plan[6].rescues[0].above
        assert any("reduced to 45 mg/day" in e.what for e in plan[7].events)
        assert plan[7].doses[0].reduced == pytest.approx(0.75) or any(
            d.reduced == pytest.approx(0.75) for d in plan[7].doses
        )
        # methadone is not tapered
        assert plan[14].totals_mg["methadone"] == 30.0

    def test_taper_findings_on_the_shipped_example(self) -> None:
        """The rescue warning names day 7; reductions on days 7 and 14 meet methadone changes."""
        case = mps.load_case(MULTIMODAL)
        report = mps.validate(_with_taper(), case.patient)
        by_code = {f.code: f for f in report.findings if f.code.startswith("taper.")}
        assert by_code["taper.rescue-above-fraction"].message.startswith("Day 7: the taper")
        assert by_code["taper.rescue-above-fraction"].severity == "warning"
        steady = by_code["taper.methadone-steady-state"]
        assert steady.detail["days"] == [7, 14]
        assert by_code["taper.clinical-choice"].severity == "info"
        assert "clinical choice" in by_code["taper.clinical-choice"].message

    def test_taper_after_methadone_steady_state_is_clean(self) -> None:
        """Starting on day 20 (after the day-14 increase has settled): no steady-state warning."""
        case = mps.load_case(MULTIMODAL)
        reg = _with_taper(after=None, start_day=20)
        report = mps.validate(reg, case.patient)
        assert not [f for f in report.findings if f.code == "taper.methadone-steady-state"]

    @pytest.mark.parametrize("after", ["psoas_compartment_block", "psoas-compartment-block"])
    def test_taper_after_the_block(self, after: str) -> None:
        """After the catheter block (days 1-3 of the example): the first reduction on day 4."""
        reg = _with_taper(after=after)
        (taper,) = [s for s in reg if s.kind == "taper"]
        assert taper.after == "psoas_compartment_block"
        plan = mps.schedule(reg, days=12)
        oxy = [plan[d].regular_totals_mg["oxycodone"] for d in (3, 4, 11)]
        assert oxy == pytest.approx([60, 45, 33.75])

    def test_original_base_reduces_linearly_to_the_floor(self) -> None:
        """10 % of the starting dose each week: 60, 54, 48 … down to 20 mg/day."""
        taper = mps.TaperStep(
            drug="oxycodone", reduce_by_percent=10, every="7 day", floor="20 mg/day", of="original"
        )
        got = [taper.reduced_daily_mg(60.0, d, 0) for d in (0, 7, 14, 70)]
        assert got == pytest.approx([54, 48, 42, 20])

    @pytest.mark.parametrize(
        ("kw", "field"),
        [
            ({"drug": "pregabalin"}, "drug"),
            ({"reduce_by_percent": 0}, "reduce_by_percent"),
            ({"reduce_by_percent": 100}, "reduce_by_percent"),
            ({"reduce_by_percent": "25"}, "reduce_by_percent"),
            ({"every": None}, "every"),
            ({"every": "36 h"}, "every"),
            ({"floor": None}, "floor"),
            ({"after": "opioid"}, "after"),
            ({"of": "peak"}, "of"),
            ({"source": "nobody-2020"}, "source"),
        ],
    )
    def test_bad_taper_is_refused(self, kw: Any, field: str) -> None:
        """A taper that cannot be right names its field."""
        base: dict[str, Any] = {
            "drug": "oxycodone",
            "reduce_by_percent": 25,
            "every": "7 day",
            "floor": "20 mg/day",
        }
        base.update(kw)
        with pytest.raises(mps.MpsAnalgesiaError) as info:
            mps.TaperStep(**base)
        assert getattr(info.value, "field", None) == field

    def test_shipped_taper_example_round_trips(self) -> None:
        """tests/data/taper-after-radiotherapy.toml reads, writes and reads back equal; FHIR
        keeps the taper as a CarePlan note."""
        case = mps.load_case(TAPER_EXAMPLE)
        for fmt in ("toml", "json"):
            assert mps.loads_case(mps.dumps_case(case, format=fmt), format=fmt) == case
        plan = mps.schedule(case.regimen, days=20)
        assert plan[5].regular_totals_mg["oxycodone"] == pytest.approx(45)
        bundle = mps.fhir.to_bundle(case.regimen, case.patient)
        (careplan,) = [
            e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan"
        ]
        assert "taper oxycodone" in careplan["note"][0]["text"]

    @given(
        st.floats(1, 90),
        st.integers(1, 30),
        st.integers(0, 200),
        st.sampled_from(["current", "original"]),
    )
    def test_reduction_never_rises_and_stops_at_the_floor(
        self, pct: float, every: int, floor: int, of: str
    ) -> None:
        """Day by day the reduced dose never rises and never goes below the floor (or the
        starting dose, when that is lower)."""
        taper = mps.TaperStep(
            drug="morphine",
            reduce_by_percent=pct,
            every=f"{every} day",
            floor=f"{floor} mg/day",
            of=of,
        )
        last = math.inf
        for d in range(0, 120, 3):
            got = taper.reduced_daily_mg(120.0, d, 0)
            assert got <= last + 1e-9
            assert got >= min(floor, 120.0) - 1e-9
            last = got
