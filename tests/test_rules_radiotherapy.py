"""Radiotherapy rules: BED/EQD2 report, non-standard schedule, dose per fraction, re-irradiation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mps_analgesia as mps
from mps_analgesia.report import Finding, Report
from mps_analgesia.rules import radiotherapy as rt_rules
from strategies import adjuvant_steps, opioid_steps

RT_RULES = (
    "radiotherapy.bed-eqd2",
    "radiotherapy.schedule-nonstandard",
    "radiotherapy.dose-per-fraction",
    "radiotherapy.reirradiation",
)


def rt(total: str, fractions: int, site: str = "left psoas", **kw: Any) -> mps.RadiotherapyStep:
    return mps.RadiotherapyStep(total_dose=total, fractions=fractions, site=site, **kw)


def check(*steps: Any, patient: mps.Patient | None = None) -> Report:
    return mps.validate(mps.Regimen(list(steps)), patient)


def outcome(report: Report, rule_id: str, step: int = 0) -> str:
    """'flagged', 'passed', 'not checked' or 'absent' for one rule on one step."""
    if any(f.code == rule_id and f.step == step for f in report.findings):
        return "flagged"
    if (rule_id, step) in report.passed:
        return "passed"
    if any(n.rule == rule_id and n.step == step for n in report.not_checked):
        return "not checked"
    return "absent"


def only(report: Report, rule_id: str, step: int = 0) -> Finding:
    found = [f for f in report.findings if f.code == rule_id and f.step == step]
    assert len(found) == 1, found
    return found[0]


class TestRegistry:
    def test_rules_registered(self) -> None:
        """The four radiotherapy rules are in the default registry with their exact ids."""
        ids = mps.default_rules().ids
        for rid in RT_RULES:
            assert rid in ids
        assert tuple(r.id for r in rt_rules.RULES) == RT_RULES

    def test_never_not_checked(self) -> None:
        """A radiotherapy step carries all the rules need: none reports not checked."""
        report = check(rt("39 Gy", 13, prior_dose="8 Gy"), patient=None)
        assert not [n for n in report.not_checked if n.rule.startswith("radiotherapy.")]

    def test_data_edition_recorded(self) -> None:
        """The report names the radiotherapy.toml edition it used."""
        assert "radiotherapy.toml" in check(rt("8 Gy", 1)).editions


class TestBedEqd2:
    def test_reported_as_info_with_values(self) -> None:
        """20 Gy/5 reports BED10 28, EQD2(10) 23.33, BED3 46.67, EQD2(3) 28 Gy as info."""
        f = only(check(rt("20 Gy", 5)), "radiotherapy.bed-eqd2")
        assert f.severity == "info"
        texts = {k: v for k, v in f.detail.items() if k.endswith("_text")}
        assert texts == {
            "bed_10_text": "28 Gy",
            "eqd2_10_text": "23.33 Gy",
            "bed_3_text": "46.67 Gy",
            "eqd2_3_text": "28 Gy",
            "dose_per_fraction_text": "4 Gy",
        }
        assert f.detail["bed_10"] == pytest.approx(28.0)
        assert f.detail["eqd2_10"] == pytest.approx(70 / 3)
        assert f.detail["eqd2_3_unit"] == "Gy"
        assert "BED10 = 20 Gy × (1 + 4/10) = 28 Gy" in f.arithmetic
        assert set(f.source) == {"hall-giaccia-2012", "joiner-2009"}
        assert f.level == "V"

    def test_single_fraction_values(self) -> None:
        """8 Gy × 1 reports BED3 29.33 and EQD2(3) 17.6 Gy (§7 #24)."""
        f = only(check(rt("8 Gy", 1)), "radiotherapy.bed-eqd2")
        assert f.detail["bed_3_text"] == "29.33 Gy"
        assert f.detail["eqd2_3_text"] == "17.6 Gy"
        assert f.detail["bed_10_text"] == "14.4 Gy"
        assert f.detail["eqd2_3"] == pytest.approx(17.6)

    def test_every_radiotherapy_step_reports(self) -> None:
        """Each radiotherapy step gets its own info finding (never 'passed')."""
        report = check(rt("8 Gy", 1), rt("30 Gy", 10, site="spine"))
        assert outcome(report, "radiotherapy.bed-eqd2", 0) == "flagged"
        assert outcome(report, "radiotherapy.bed-eqd2", 1) == "flagged"

    def test_not_applied_to_other_steps(self) -> None:
        """A regimen without radiotherapy has no radiotherapy outcome at all."""
        report = check(mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h"))
        assert outcome(report, "radiotherapy.bed-eqd2") == "absent"


class TestScheduleNonstandard:
    @pytest.mark.parametrize(
        ("total", "n"), [("8 Gy", 1), ("20 Gy", 5), ("24 Gy", 6), ("30 Gy", 10)]
    )
    def test_astro_schedule_passes(self, total: str, n: int) -> None:
        """The four ASTRO 2017 schedules pass."""
        assert outcome(check(rt(total, n)), "radiotherapy.schedule-nonstandard") == "passed"

    @pytest.mark.parametrize(
        ("total", "n"), [("39 Gy", 13), ("20 Gy", 4), ("8 Gy", 2), ("6 Gy", 1)]
    )
    def test_other_schedule_is_info(self, total: str, n: int) -> None:
        """Any other course (e.g. Uno's 39 Gy/13) is an info finding listing the schedules."""
        f = only(check(rt(total, n)), "radiotherapy.schedule-nonstandard")
        assert f.severity == "info"
        assert "8 Gy/1, 20 Gy/5, 24 Gy/6, 30 Gy/10" in f.message
        assert f.source == ("astro-2017",)

    def test_not_checked_never(self) -> None:
        """The schedule check always runs on a radiotherapy step (never not checked)."""
        assert outcome(check(rt("39 Gy", 13)), "radiotherapy.schedule-nonstandard") != "not checked"


class TestDosePerFraction:
    def test_eight_gray_passes(self) -> None:
        """8 Gy in one fraction is at the limit, not above it: passed."""
        assert outcome(check(rt("8 Gy", 1)), "radiotherapy.dose-per-fraction") == "passed"

    def test_above_eight_gray_warns(self) -> None:
        """12 Gy × 1 is a warning with the arithmetic shown."""
        f = only(check(rt("12 Gy", 1)), "radiotherapy.dose-per-fraction")
        assert f.severity == "warning"
        assert f.arithmetic == "12 Gy / 1 = 12 Gy/fraction > 8 Gy/fraction"
        assert f.source == ("astro-2017",)

    def test_split_course_passes(self) -> None:
        """24 Gy in 3 fractions is 8 Gy per fraction: passed."""
        assert outcome(check(rt("24 Gy", 3)), "radiotherapy.dose-per-fraction") == "passed"

    def test_runs_without_patient(self) -> None:
        """The check needs nothing from the patient: 18 Gy/2 (9 Gy) is flagged with none."""
        report = check(rt("18 Gy", 2), patient=None)
        assert outcome(report, "radiotherapy.dose-per-fraction") == "flagged"


class TestReirradiation:
    def test_no_prior_passes(self) -> None:
        """A first course to a site passes."""
        assert outcome(check(rt("20 Gy", 5)), "radiotherapy.reirradiation") == "passed"

    def test_prior_dose_reports_cumulative_eqd2(self) -> None:
        """20 Gy/5 after 8 Gy/1: warning with cumulative EQD2(3) 28 + 17.6 = 45.6 Gy."""
        step = rt("20 Gy", 5, prior_dose="8 Gy", prior_fractions=1)
        f = only(check(step), "radiotherapy.reirradiation")
        assert f.severity == "warning"
        assert f.detail["eqd2_3_cumulative_text"] == "45.6 Gy"
        assert f.detail["eqd2_3_cumulative"] == pytest.approx(45.6)
        assert f.detail["eqd2_3_this_course_text"] == "28 Gy"
        assert "Cumulative EQD2 (α/β 3 Gy): 45.6 Gy" in f.message
        assert f.arithmetic.endswith("= 45.6 Gy")

    def test_prior_fractions_missing_says_what_was_not_computed(self) -> None:
        """Without prior_fractions the warning says the cumulative EQD2 could not be computed."""
        f = only(check(rt("20 Gy", 5, prior_dose="8 Gy")), "radiotherapy.reirradiation")
        assert f.severity == "warning"
        assert f.detail["eqd2_3_cumulative"] is None
        assert "could not be computed" in f.message
        assert "prior_fractions" in f.message
        assert "28 Gy EQD2" in f.message

    def test_earlier_step_to_same_site_counts(self) -> None:
        """An earlier radiotherapy step to the same site (any case/spacing) is a prior course."""
        report = check(rt("8 Gy", 1, site="Left Psoas"), rt("20 Gy", 5, site="left  psoas"))
        assert outcome(report, "radiotherapy.reirradiation", 0) == "passed"
        f = only(report, "radiotherapy.reirradiation", 1)
        assert f.detail["eqd2_3_cumulative_text"] == "45.6 Gy"
        assert "step 1" in f.message

    def test_other_site_not_counted(self) -> None:
        """A course to another site is not a re-irradiation."""
        report = check(rt("8 Gy", 1, site="spine"), rt("20 Gy", 5, site="left psoas"))
        assert outcome(report, "radiotherapy.reirradiation", 1) == "passed"


@st.composite
def unrelated_steps(draw: st.DrawFn) -> Any:
    return draw(st.one_of(opioid_steps(), adjuvant_steps()))


class TestProperties:
    @settings(max_examples=25, deadline=None)
    @given(
        n=st.integers(min_value=1, max_value=15),
        per=st.sampled_from([1.8, 2.0, 3.0, 4.0, 8.0, 10.0]),
        extra=unrelated_steps(),
    )
    def test_unrelated_step_never_removes_a_finding(self, n: int, per: float, extra: Any) -> None:
        """Adding a non-radiotherapy step leaves every radiotherapy finding in place."""
        step = rt(f"{per * n} Gy", n, prior_dose="8 Gy")
        before = {(f.code, f.message) for f in check(step).findings if f.code in RT_RULES}
        after = {(f.code, f.message) for f in check(step, extra).findings if f.code in RT_RULES}
        assert before <= after

    @settings(max_examples=25, deadline=None)
    @given(n=st.integers(min_value=1, max_value=10), per=st.integers(min_value=1, max_value=20))
    def test_more_dose_per_fraction_never_removes_warning(self, n: int, per: int) -> None:
        """If a dose per fraction is flagged, a larger one is flagged too."""
        low = check(rt(f"{per * n} Gy", n))
        high = check(rt(f"{(per + 1) * n} Gy", n))
        if outcome(low, "radiotherapy.dose-per-fraction") == "flagged":
            assert outcome(high, "radiotherapy.dose-per-fraction") == "flagged"


class TestReirradiationLinear:
    def test_each_course_counts_every_earlier_course_to_its_site(self) -> None:
        """Three courses to one site and one elsewhere: the third names both earlier ones."""
        report = check(
            rt("8 Gy", 1, site="psoas"),
            rt("8 Gy", 1, site="spine"),
            rt("8 Gy", 1, site="Psoas"),
            rt("20 Gy", 5, site="psoas"),
        )
        assert outcome(report, "radiotherapy.reirradiation", 1) == "passed"
        third = only(report, "radiotherapy.reirradiation", 2)
        assert "step 1" in third.message
        assert "step 2" not in third.message
        last = only(report, "radiotherapy.reirradiation", 3)
        assert "step 1" in last.message
        assert "step 3" in last.message
        assert "step 2" not in last.message
