"""The opioid rules: breakthrough presence and size, fentanyl patch tolerance, duplicate
long-acting opioids, and the daily OME report."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mps_analgesia import MethadoneAdjuvantStep, OpioidStep, Patient, Regimen
from mps_analgesia.errors import UnknownNameError
from mps_analgesia.rules import RuleRegistry, default_rules, validate
from mps_analgesia.rules import opioid as rules_opioid
from strategies import regimens
from strategies_safety import check, findings_of, missing_of, outcome

RULES = rules_opioid.RULES


def mr(drug: str = "morphine", dose: str = "30 mg", **kw: Any) -> OpioidStep:
    return OpioidStep(drug=drug, formulation="modified-release", dose=dose, every="12 h", **kw)


def prn(drug: str = "morphine", dose: str = "10 mg", route: str = "oral") -> OpioidStep:
    return OpioidStep(drug=drug, route=route, dose=dose, every="2 h", prn=True, max_doses_per_24h=6)


def patch(rate: str = "25 mcg/h") -> OpioidStep:
    return OpioidStep(drug="fentanyl", route="transdermal", rate=rate)


class TestRegistry:
    def test_rule_ids_are_the_public_codes(self) -> None:
        """The module declares exactly the five opioid codes, all in the default registry."""
        ids = [r.id for r in RULES]
        assert ids == [
            "opioid.breakthrough-missing",
            "opioid.breakthrough-dose",
            "opioid.fentanyl-patch-not-tolerant",
            "opioid.duplicate-long-acting",
            "opioid.ome-total",
        ]
        assert set(ids) <= set(default_rules().ids)

    def test_severity_policies(self) -> None:
        """Severities are as the issue sets them."""
        severities = {r.id: r.severity for r in RULES}
        assert severities["opioid.fentanyl-patch-not-tolerant"] == "error"
        assert severities["opioid.ome-total"] == "info"
        assert severities["opioid.breakthrough-missing"] == "warning"

    def test_ome_tables_are_recorded_as_editions(self) -> None:
        """The report lists the OME table editions it consulted."""
        report = check(RULES, [mr()])
        assert "ome-cdc-2022.toml" in report.editions


class TestBreakthroughMissing:
    RULE = "opioid.breakthrough-missing"

    def test_flagged_regular_strong_opioid_without_prn(self) -> None:
        """Regular oxycodone MR and no PRN step → warning on the oxycodone step."""
        report = check(RULES, [mr("oxycodone", "10 mg")])
        assert outcome(report, self.RULE, 0) == "flagged"
        (f,) = findings_of(report, self.RULE)
        assert f.severity == "warning"
        assert "oxycodone (step 1)" in f.message

    def test_passed_with_a_prn_step(self) -> None:
        """A PRN opioid step of any drug satisfies it."""
        report = check(RULES, [mr("oxycodone", "10 mg"), prn("morphine", "5 mg")])
        assert outcome(report, self.RULE, None) == "passed"

    def test_not_applicable_without_a_regular_strong_opioid(self) -> None:
        """Tramadol (not strong) or no opioid at all: the rule does not apply (no outcome).

        This rule needs no input beyond the regimen, so it has no *not checked* outcome.
        """
        tramadol = OpioidStep(drug="tramadol", dose="50 mg", every="6 h")
        assert outcome(check(RULES, [tramadol]), self.RULE, None) is None
        assert outcome(check(RULES, []), self.RULE, None) is None
        assert outcome(check(RULES, [prn()]), self.RULE, None) is None

    def test_adjuvant_methadone_alone_is_not_a_main_opioid(self) -> None:
        """A methadone_adjuvant step is not a regular 'opioid' step for this rule."""
        report = check(RULES, [MethadoneAdjuvantStep(dose="5 mg", every="8 h")])
        assert outcome(report, self.RULE, None) is None


class TestBreakthroughDose:
    RULE = "opioid.breakthrough-dose"

    def test_passed_at_one_sixth(self) -> None:
        """Morphine 60 mg/day with a 10 mg PRN (1/6) passes."""
        report = check(RULES, [mr(), prn("morphine", "10 mg")])
        assert outcome(report, self.RULE, 1) == "passed"

    def test_passed_at_one_tenth(self) -> None:
        """A 6 mg PRN (1/10 of 60) is inside the window, at its edge."""
        report = check(RULES, [mr(), prn("morphine", "6 mg")])
        assert outcome(report, self.RULE, 1) == "passed"

    def test_flagged_too_low(self) -> None:
        """Oxycodone 60 mg/day (90 MME) with a 5 mg oxycodone PRN (7.5 MME = 8.3 %) → too low."""
        report = check(RULES, [mr("oxycodone", "30 mg"), prn("oxycodone", "5 mg")])
        assert outcome(report, self.RULE, 1) == "flagged"
        (f,) = findings_of(report, self.RULE)
        assert f.severity == "warning"
        assert "too low" in f.message
        assert f.arithmetic == "7.5 MME ÷ 90 MME/day = 8.333 % < 10 %"

    def test_flagged_too_high_compared_in_ome(self) -> None:
        """Morphine 60 mg/day with a 10 mg oxycodone PRN (15 MME = 25 %) → too high."""
        report = check(RULES, [mr(), prn("oxycodone", "10 mg")])
        (f,) = findings_of(report, self.RULE)
        assert "too high" in f.message
        assert "> 16.67 %" in f.arithmetic
        assert "cdc-2022" in f.source

    def test_not_checked_when_the_prn_has_no_factor(self) -> None:
        """SC morphine PRN under cdc-2022: not checked, the missing OME named."""
        report = check(RULES, [patch(), prn("morphine", "5 mg", route="subcutaneous")])
        assert outcome(report, self.RULE, 1) == "not checked"
        assert missing_of(report, self.RULE, 1) == "OME of the PRN dose"

    def test_palliative_table_option_makes_it_checkable(self) -> None:
        """With options ome_table='palliative' SC morphine has a factor and the rule runs."""
        regimen = Regimen([mr(), prn("morphine", "5 mg", route="subcutaneous")])
        report = validate(regimen, rules=RuleRegistry(RULES), options={"ome_table": "palliative"})
        assert outcome(report, self.RULE, 1) == "passed"  # 5 mg × 2 = 10 MME = 1/6 of 60

    def test_not_checked_when_a_regular_opioid_is_not_converted(self) -> None:
        """A buprenorphine patch under CDC leaves the regular OME unknown: not checked."""
        bup = OpioidStep(drug="buprenorphine", route="transdermal", rate="10 mcg/h")
        report = check(RULES, [bup, prn("morphine", "5 mg")])
        assert outcome(report, self.RULE, 1) == "not checked"
        assert missing_of(report, self.RULE, 1) == "OME of the regular opioids"

    def test_not_applicable_without_regular_opioid(self) -> None:
        """A PRN with no regular opioid is not a fraction of anything."""
        assert outcome(check(RULES, [prn()]), self.RULE, 0) is None

    def test_range_ome_flags_only_when_outside_for_the_whole_range(self) -> None:
        """Patch 25 mcg/h under NOUGG (60–134): a 10 mg morphine PRN is inside for part of it."""
        regimen = Regimen([patch(), prn("morphine", "10 mg")])
        rules = RuleRegistry(RULES)
        report = validate(
            regimen, Patient(opioid_tolerant=True), rules=rules, options={"ome_table": "palliative"}
        )
        assert outcome(report, self.RULE, 1) == "passed"
        low = Regimen([patch(), prn("morphine", "2 mg")])
        report = validate(
            low, Patient(opioid_tolerant=True), rules=rules, options={"ome_table": "palliative"}
        )
        assert outcome(report, self.RULE, 1) == "flagged"

    @settings(max_examples=30, deadline=None)
    @given(tenths=st.integers(1, 400))
    def test_mg_and_mcg_prn_doses_agree(self, tenths: int) -> None:
        """A PRN dose written in mg or in mcg gets the same outcome."""
        mg = f"{tenths / 10} mg"
        mcg = f"{tenths * 100} mcg"
        a = check(RULES, [mr(), prn("morphine", mg)])
        b = check(RULES, [mr(), prn("morphine", mcg)])
        assert outcome(a, self.RULE, 1) == outcome(b, self.RULE, 1)


class TestFentanylPatchNotTolerant:
    RULE = "opioid.fentanyl-patch-not-tolerant"

    def test_flagged_when_recorded_not_tolerant(self) -> None:
        """opioid_tolerant = False → error with the FDA threshold named."""
        report = check(RULES, [patch()], Patient(opioid_tolerant=False))
        assert outcome(report, self.RULE, 0) == "flagged"
        (f,) = findings_of(report, self.RULE)
        assert f.severity == "error"
        assert f.source == ("fda-opioid-tolerance",)
        assert "60 mg/day" in f.message

    def test_passed_when_recorded_tolerant(self) -> None:
        """opioid_tolerant = True → passed."""
        report = check(RULES, [patch()], Patient(opioid_tolerant=True))
        assert outcome(report, self.RULE, 0) == "passed"

    def test_not_checked_when_unknown_and_nothing_to_judge_by(self) -> None:
        """Tolerance unknown and no other regular opioid → not checked, never passed."""
        report = check(RULES, [patch()], Patient())
        assert outcome(report, self.RULE, 0) == "not checked"
        assert missing_of(report, self.RULE, 0) == "opioid tolerance"
        assert outcome(check(RULES, [patch()]), self.RULE, 0) == "not checked"

    def test_unknown_tolerance_judged_by_other_opioids_passed(self) -> None:
        """Other regular opioids of 60 MME/day or more → passed."""
        report = check(RULES, [patch(), mr()], Patient())
        assert outcome(report, self.RULE, 0) == "passed"

    def test_unknown_tolerance_judged_by_other_opioids_flagged(self) -> None:
        """Other regular opioids of 30 MME/day (< 60) → error with the arithmetic."""
        report = check(RULES, [patch(), mr(dose="15 mg"), prn()], Patient())
        (f,) = findings_of(report, self.RULE)
        assert f.severity == "error"
        assert f.arithmetic == "morphine 30 mg/day → 30 = 30 MME/day < 60 MME/day"

    def test_other_opioid_not_converted_is_not_checked(self) -> None:
        """Other opioids below 60 that include an unconvertible one → not checked."""
        bup = OpioidStep(drug="buprenorphine", route="sublingual", dose="0.2 mg", every="8 h")
        report = check(RULES, [patch(), bup], Patient())
        assert outcome(report, self.RULE, 0) == "not checked"

    def test_adjuvant_methadone_counts_as_another_opioid(self) -> None:
        """15 mg/day adjuvant methadone is 70.5 MME/day by CDC 2022 → passed."""
        report = check(RULES, [patch(), MethadoneAdjuvantStep(dose="5 mg", every="8 h")], Patient())
        assert outcome(report, self.RULE, 0) == "passed"

    def test_other_drugs_are_not_applicable(self) -> None:
        """A buccal fentanyl or an oral opioid is not a patch."""
        buccal = OpioidStep(drug="fentanyl", route="buccal", dose="100 mcg", every="4 h")
        assert outcome(check(RULES, [buccal], Patient()), self.RULE, 0) is None


class TestDuplicateLongActing:
    RULE = "opioid.duplicate-long-acting"

    def test_flagged_two_long_acting_drugs(self) -> None:
        """Oxycodone MR with a fentanyl patch → warning naming both steps."""
        report = check(RULES, [mr("oxycodone", "10 mg"), patch()], Patient(opioid_tolerant=True))
        assert outcome(report, self.RULE, 1) == "flagged"
        (f,) = findings_of(report, self.RULE)
        assert f.severity == "warning"
        assert "oxycodone (step 1) and fentanyl (step 2)" in f.message

    def test_methadone_as_main_opioid_is_long_acting(self) -> None:
        """Regular methadone as the main opioid plus morphine MR → flagged."""
        methadone = OpioidStep(drug="methadone", dose="5 mg", every="8 h")
        report = check(RULES, [methadone, mr()])
        assert findings_of(report, self.RULE)

    def test_passed_one_long_acting(self) -> None:
        """One long-acting opioid with an immediate-release PRN → passed."""
        report = check(RULES, [mr(), prn()])
        assert outcome(report, self.RULE, None) == "passed"

    def test_adjuvant_methadone_is_exempt(self) -> None:
        """Oxycodone MR plus adjuvant methadone is the point of adjuvant methadone → passed."""
        report = check(RULES, [mr("oxycodone"), MethadoneAdjuvantStep(dose="5 mg", every="8 h")])
        assert outcome(report, self.RULE, None) == "passed"

    def test_same_drug_in_two_strengths_is_not_a_duplicate(self) -> None:
        """Oxycodone MR 10 mg and 5 mg steps (one dose of two strengths) → passed."""
        report = check(RULES, [mr("oxycodone", "10 mg"), mr("oxycodone", "5 mg")])
        assert outcome(report, self.RULE, None) == "passed"

    def test_not_applicable_without_opioid(self) -> None:
        """No opioid step: the rule does not apply; it needs nothing else, so no *not checked*."""
        assert outcome(check(RULES, []), self.RULE, None) is None


class TestOmeTotal:
    RULE = "opioid.ome-total"

    def test_info_with_table_and_receipt(self) -> None:
        """Oxycodone 60 mg/day → info 90 MME/day (cdc-2022), at the 90 threshold, info only."""
        report = check(RULES, [mr("oxycodone"), prn("oxycodone")])
        (f,) = findings_of(report, self.RULE)
        assert f.severity == "info"
        assert "90 MME/day (cdc-2022, regular doses only)" in f.message
        assert "90 MME/day threshold" in f.message
        assert "excluded palliative and end-of-life care" in f.message
        assert f.detail["table"] == "cdc-2022"
        assert f.detail["prn"] == "regular_only"
        assert f.arithmetic == "oxycodone 90 = 90 MME/day"

    def test_below_thresholds_no_threshold_sentence(self) -> None:
        """30 MME/day crosses no CDC threshold: no threshold sentence."""
        (f,) = findings_of(check(RULES, [mr(dose="15 mg")]), self.RULE)
        assert "threshold" not in f.message

    def test_table_option_is_used(self) -> None:
        """options ome_table='cdc-2016' changes the table (and methadone's factor)."""
        methadone = OpioidStep(drug="methadone", dose="10 mg", every="12 h")
        report = validate(
            Regimen([methadone]), rules=RuleRegistry(RULES), options={"ome_table": "cdc-2016"}
        )
        (f,) = findings_of(report, self.RULE)
        assert "80 MME/day (cdc-2016" in f.message

    def test_unknown_table_option_is_an_error(self) -> None:
        """A misspelt ome_table option raises rather than silently using the default."""
        with pytest.raises(UnknownNameError):
            validate(Regimen([mr()]), rules=RuleRegistry(RULES), options={"ome_table": "cdc"})

    def test_not_converted_is_reported_not_zero(self) -> None:
        """A buprenorphine patch is reported as not counted, never as 0 MME/day."""
        bup = OpioidStep(drug="buprenorphine", route="transdermal", rate="10 mcg/h")
        (f,) = findings_of(check(RULES, [bup, mr()]), self.RULE)
        assert "NOT counting" in f.message
        assert "buprenorphine" in f.message

    def test_nothing_converted_says_not_converted_never_zero(self) -> None:
        """A buprenorphine patch alone: 'not converted', no total, never '0 MME/day'."""
        bup = OpioidStep(drug="buprenorphine", route="transdermal", rate="10 mcg/h")
        (f,) = findings_of(check(RULES, [bup]), self.RULE)
        assert "not converted" in f.message
        assert "0 MME/day" not in f.message
        assert f.detail["total_low"] is None
        assert f.detail["total_high"] is None
        assert f.detail["total_text"] is None
        assert f.arithmetic == ""

    def test_partial_total_says_partial(self) -> None:
        """A partial total is marked partial in the message and the detail."""
        bup = OpioidStep(drug="buprenorphine", route="transdermal", rate="10 mcg/h")
        (f,) = findings_of(check(RULES, [bup, mr()]), self.RULE)
        assert "(partial)" in f.message
        assert f.detail["total_text"].endswith("(partial)")

    def test_range_reported_as_range(self) -> None:
        """A patch under the NOUGG bands is reported as 60–134 MME/day."""
        report = validate(
            Regimen([patch()]),
            Patient(opioid_tolerant=True),
            rules=RuleRegistry(RULES),
            options={"ome_table": "palliative"},
        )
        (f,) = findings_of(report, self.RULE)
        assert "60–134 MME/day" in f.message
        assert "The range reaches CDC 2016's 90 MME/day threshold" in f.message

    def test_not_applicable_without_regular_opioid(self) -> None:
        """No opioid, or PRN only: no OME finding."""
        assert not findings_of(check(RULES, []), self.RULE)
        assert not findings_of(check(RULES, [prn()]), self.RULE)

    def test_ome_is_computed_once_per_validate(self) -> None:
        """The regimen's OME is cached in ctx.cache and shared by the rules."""
        from mps_analgesia.rules._engine import Context

        ctx = Context(Regimen([mr(), prn()]), Patient())
        rules_opioid.ome_total.check(ctx, None, None)
        first = ctx.cache["opioid.ome:cdc-2022"]
        rules_opioid.breakthrough_dose.check(ctx, 1, ctx.regimen[1])
        assert ctx.cache["opioid.ome:cdc-2022"] is first


class TestAnyRegimen:
    @settings(max_examples=40, deadline=None)
    @given(regimen=regimens(max_size=6))
    def test_rules_never_crash_and_every_outcome_is_one_of_three(self, regimen: Regimen) -> None:
        """Any valid regimen validates under the opioid rules; findings carry their codes."""
        report = validate(regimen, Patient(), rules=RuleRegistry(RULES))
        codes = {r.id for r in RULES}
        assert all(f.code in codes for f in report.findings)
        assert all(n.rule in codes for n in report.not_checked)
