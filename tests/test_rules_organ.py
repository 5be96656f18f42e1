"""The organ-function and age rules: renal avoid list and bands, hepatic and age maxima."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mps_analgesia import AdjuvantStep, OpioidStep, Patient
from mps_analgesia.rules import default_rules
from mps_analgesia.rules import organ as rules_organ
from strategies_safety import (
    check,
    finding_keys,
    findings_of,
    mass_pairs,
    missing_of,
    outcome,
    unrelated_steps,
)

RULES = rules_organ.RULES


def crcl(value: float, **kw: Any) -> Patient:
    return Patient(creatinine_clearance=f"{value} mL/min", **kw)


def opioid(drug: str, dose: str, every: str = "6 h", **kw: Any) -> OpioidStep:
    return OpioidStep(drug=drug, dose=dose, every=every, **kw)


def gabapentinoid(drug: str, dose: str, every: str = "8 h") -> AdjuvantStep:
    return AdjuvantStep(drug=drug, role="neuropathic", dose=dose, every=every)


def apap(dose: str = "1 g", every: str = "6 h", **kw: Any) -> AdjuvantStep:
    return AdjuvantStep(drug="acetaminophen", role="nociceptive", dose=dose, every=every, **kw)


class TestRegistry:
    def test_rule_ids_are_the_public_codes(self) -> None:
        """The module declares the four organ and age codes, all in the default registry."""
        ids = [r.id for r in RULES]
        assert ids == ["renal.avoid", "renal.dose-adjust", "hepatic.dose-adjust", "age.dose-adjust"]
        assert set(ids) <= set(default_rules().ids)


class TestRenalAvoid:
    def test_regular_codeine_below_30_is_an_error(self) -> None:
        """Regular codeine with CrCl 25 mL/min: an error ('avoid', as for pethidine), naming the
        measure used."""
        report = check(RULES, [opioid("codeine", "30 mg")], crcl(25))
        (f,) = findings_of(report, "renal.avoid")
        assert f.severity == "error"
        assert f.level == "V"
        assert f.source == ("fast-fact-161",)
        assert "creatinine clearance 25 mL/min" in f.message
        assert f.arithmetic == "creatinine clearance 25 mL/min < 30 mL/min"
        assert f.detail["renal_measure"] == "creatinine clearance"

    def test_egfr_is_used_without_creatinine_clearance(self) -> None:
        """Without a CrCl the eGFR is used, and the finding says so."""
        report = check(
            RULES, [opioid("morphine", "10 mg", "4 h")], Patient(egfr="20 mL/min/1.73m2")
        )
        (f,) = findings_of(report, "renal.avoid")
        assert "eGFR 20 mL/min/1.73 m²" in f.message
        assert "no creatinine clearance is recorded" in f.message
        assert f.detail["renal_measure"] == "eGFR"

    def test_creatinine_clearance_is_preferred(self) -> None:
        """CrCl 40 with eGFR 20: the CrCl is used, so regular morphine passes."""
        patient = Patient(creatinine_clearance="40 mL/min", egfr="20 mL/min/1.73m2")
        report = check(RULES, [opioid("morphine", "10 mg", "4 h")], patient)
        assert outcome(report, "renal.avoid") == "passed"

    def test_thirty_exactly_passes(self) -> None:
        """CrCl of exactly 30 mL/min is not below 30: passed."""
        assert outcome(check(RULES, [opioid("codeine", "30 mg")], crcl(30)), "renal.avoid") == (
            "passed"
        )

    def test_prn_morphine_is_not_concerned(self) -> None:
        """PRN morphine is outside the rule (regular use only)."""
        step = opioid("morphine", "5 mg", "2 h", prn=True, max_doses_per_24h=4)
        assert outcome(check(RULES, [step], crcl(20)), "renal.avoid") is None

    @pytest.mark.parametrize("prn", [False, True])
    def test_pethidine_is_an_error(self, prn: bool) -> None:
        """Pethidine below 30 mL/min, regular or PRN, is an error."""
        step = opioid("pethidine", "50 mg", prn=prn)
        (f,) = findings_of(check(RULES, [step], crcl(20)), "renal.avoid")
        assert f.severity == "error"
        assert f.source == ("sps-renal-opioids",)

    def test_tramadol_modified_release_below_30(self) -> None:
        """Tramadol ER below 30 mL/min is a warning (Ultram ER label); IR is not concerned."""
        er = opioid("tramadol", "100 mg", "24 h", formulation="modified-release")
        ir = opioid("tramadol", "50 mg")
        report = check(RULES, [er, ir], crcl(20))
        (f,) = findings_of(report, "renal.avoid")
        assert f.step == 0
        assert f.source == ("ultram-er-label",)
        assert outcome(report, "renal.avoid", 1) is None

    def test_unknown_renal_function_is_not_checked(self) -> None:
        """Without CrCl or eGFR: not checked, naming renal function."""
        report = check(RULES, [opioid("codeine", "30 mg")], Patient(age=70))
        assert outcome(report, "renal.avoid") == "not checked"
        assert missing_of(report, "renal.avoid") == "renal function"

    def test_other_opioids_are_not_concerned(self) -> None:
        """Oxycodone is not on the avoid list."""
        step = opioid("oxycodone", "5 mg", "4 h")
        assert outcome(check(RULES, [step], crcl(10)), "renal.avoid") is None


class TestRenalDoseAdjust:
    def test_gabapentin_above_its_band(self) -> None:
        """Gabapentin 900 mg/day at CrCl 20 exceeds 700 mg/day (15-29 band): warning, S."""
        report = check(RULES, [gabapentinoid("gabapentin", "300 mg")], crcl(20))
        (f,) = findings_of(report, "renal.dose-adjust")
        assert f.severity == "warning"
        assert f.level == "S"
        assert f.source == ("gabapentin-label",)
        assert f.arithmetic == (
            "300 mg × 3 doses/day = 900 mg/day > 700 mg/day (creatinine clearance 15-29 mL/min)"
        )
        assert f.detail["band"] == "creatinine clearance 15-29 mL/min"

    @pytest.mark.parametrize(
        ("value", "outcome_"), [(30, "passed"), (29.9, "flagged"), (14, "flagged")]
    )
    def test_gabapentin_band_edges(self, value: float, outcome_: str) -> None:
        """900 mg/day passes from 30 mL/min (1400 band) and is flagged below it."""
        report = check(RULES, [gabapentinoid("gabapentin", "300 mg")], crcl(value))
        assert outcome(report, "renal.dose-adjust") == outcome_

    @pytest.mark.parametrize(
        ("value", "limit"), [(30, "150 mg/day"), (60, "300 mg/day"), (61, "600 mg/day")]
    )
    def test_pregabalin_shared_boundaries_take_the_lower_maximum(
        self, value: float, limit: str
    ) -> None:
        """At 30 and 60 mL/min (shared by two bands) pregabalin gets the lower maximum."""
        report = check(RULES, [gabapentinoid("pregabalin", "400 mg", "12 h")], crcl(value))
        (f,) = findings_of(report, "renal.dose-adjust")
        assert f.detail["limit_text"] == limit
        assert f.detail["limit_unit"] == "mg/d"
        assert f.detail["limit"] == float(limit.split()[0])

    def test_tramadol_below_30_max_200(self) -> None:
        """Tramadol 400 mg/day at CrCl 20: above 200 mg/day, level V."""
        (f,) = findings_of(
            check(RULES, [opioid("tramadol", "100 mg")], crcl(20)), "renal.dose-adjust"
        )
        assert f.level == "V"
        assert f.source == ("ultram-label",)
        assert "200 mg/day" in f.message

    def test_tramadol_within_the_band_passes(self) -> None:
        """Tramadol 200 mg/day at CrCl 20, and 400 mg/day at CrCl 40, pass."""
        assert outcome(
            check(RULES, [opioid("tramadol", "50 mg")], crcl(20)), "renal.dose-adjust"
        ) == ("passed")
        assert outcome(
            check(RULES, [opioid("tramadol", "100 mg")], crcl(40)), "renal.dose-adjust"
        ) == ("passed")

    def test_total_over_regular_and_prn_steps(self) -> None:
        """Regular 200 mg/day plus PRN 100 mg/day is 300 mg/day, reported once on step 1."""
        steps = [
            opioid("tramadol", "50 mg"),
            opioid("tramadol", "50 mg", "6 h", prn=True, max_doses_per_24h=2),
        ]
        report = check(RULES, steps, crcl(20))
        (f,) = findings_of(report, "renal.dose-adjust")
        assert f.step == 0
        assert f.arithmetic.startswith("50 mg × 4 doses/day + 50 mg × 2 doses/day = 300 mg/day")
        assert "over 2 steps" in f.message
        assert outcome(report, "renal.dose-adjust", 1) is None

    def test_unknown_renal_function_is_not_checked(self) -> None:
        """Without CrCl or eGFR: not checked."""
        report = check(RULES, [gabapentinoid("gabapentin", "100 mg")], Patient())
        assert outcome(report, "renal.dose-adjust") == "not checked"


class TestHepaticAcetaminophen:
    def test_hepatic_impairment_above_3_g(self) -> None:
        """4 g/day with mild hepatic impairment: warning, level S."""
        report = check(RULES, [apap()], Patient(hepatic_impairment="mild", weight="70 kg"))
        (f,) = findings_of(report, "hepatic.dose-adjust")
        assert f.severity == "warning"
        assert f.level == "S"
        assert f.source == ("acetaminophen-liver-secondary",)
        assert f.arithmetic == "1000 mg × 4 doses/day = 4000 mg/day > 3000 mg/day"
        assert "mild hepatic impairment" in f.message

    def test_low_weight_is_unverified(self) -> None:
        """4 g/day at 45 kg: warning resting on a [U] threshold, and the message says so."""
        report = check(RULES, [apap()], Patient(hepatic_impairment="none", weight="45 kg"))
        (f,) = findings_of(report, "hepatic.dose-adjust")
        assert f.level == "U"
        assert f.severity == "warning"
        assert "unverified [U]" in f.message
        assert f.source == ("acetaminophen-low-weight-note",)
        assert f.arithmetic.startswith("weight 45 kg < 50 kg; ")

    def test_three_grams_passes(self) -> None:
        """3 g/day with mild impairment at 45 kg is at, not above, both maxima: passed."""
        report = check(
            RULES, [apap(every="8 h")], Patient(hepatic_impairment="mild", weight="45 kg")
        )
        assert outcome(report, "hepatic.dose-adjust") == "passed"

    def test_healthy_liver_and_weight_passes(self) -> None:
        """4 g/day, no hepatic impairment, 70 kg: passed."""
        report = check(RULES, [apap()], Patient(hepatic_impairment="none", weight="70 kg"))
        assert outcome(report, "hepatic.dose-adjust") == "passed"

    @pytest.mark.parametrize(
        ("patient", "missing"),
        [
            (Patient(), "hepatic impairment and weight"),
            (Patient(weight="70 kg"), "hepatic impairment"),
            (Patient(hepatic_impairment="none"), "weight"),
        ],
    )
    def test_unknown_inputs_are_named(self, patient: Patient, missing: str) -> None:
        """Whatever of hepatic status and weight is unknown is named as missing."""
        report = check(RULES, [apap()], patient)
        assert outcome(report, "hepatic.dose-adjust") == "not checked"
        assert missing_of(report, "hepatic.dose-adjust") == missing

    def test_a_known_impairment_flags_without_weight(self) -> None:
        """Moderate impairment at 4 g/day is flagged even when the weight is unknown."""
        report = check(RULES, [apap()], Patient(hepatic_impairment="moderate"))
        assert outcome(report, "hepatic.dose-adjust") == "flagged"

    def test_total_over_steps_reported_once(self) -> None:
        """Regular 3 g plus PRN 1 g is 4 g/day, reported on the first step only."""
        steps = [apap(every="8 h"), apap(every="6 h", prn=True, max_doses_per_24h=1)]
        report = check(RULES, steps, Patient(hepatic_impairment="severe", weight="70 kg"))
        (f,) = findings_of(report, "hepatic.dose-adjust")
        assert f.step == 0
        assert outcome(report, "hepatic.dose-adjust", 1) is None


class TestHepaticTramadol:
    def test_modified_release_in_severe_impairment(self) -> None:
        """Tramadol ER in severe hepatic impairment: warning (not for Child-Pugh C)."""
        step = opioid("tramadol", "100 mg", "24 h", formulation="modified-release")
        (f,) = findings_of(
            check(RULES, [step], Patient(hepatic_impairment="severe")), "hepatic.dose-adjust"
        )
        assert f.source == ("ultram-er-label",)
        assert "Child-Pugh C" in f.message

    def test_immediate_release_above_the_cirrhosis_dose(self) -> None:
        """100 mg every 6 h: above 50 mg per dose and above 100 mg/day, two warnings."""
        report = check(RULES, [opioid("tramadol", "100 mg")], Patient(hepatic_impairment="severe"))
        found = findings_of(report, "hepatic.dose-adjust")
        assert [f.arithmetic for f in found] == [
            "100 mg > 50 mg",
            "100 mg × 4 doses/day = 400 mg/day > 100 mg/day",
        ]
        assert all(f.source == ("ultram-label",) for f in found)

    def test_cirrhosis_dose_still_warns_naming_the_reference(self) -> None:
        """50 mg every 12 h in severe impairment (the label's cirrhosis dose) still warns: any
        tramadol in severe impairment does; the finding names the cirrhosis dose."""
        report = check(
            RULES, [opioid("tramadol", "50 mg", "12 h")], Patient(hepatic_impairment="severe")
        )
        (f,) = findings_of(report, "hepatic.dose-adjust")
        assert (f.severity, f.level, f.source) == ("warning", "V", ("ultram-label",))
        assert "severe hepatic impairment" in f.message
        assert "at most 50 mg per dose and 100 mg/day" in f.message
        assert f.detail["reference_daily"] == 100.0
        assert f.detail["reference_daily_text"] == "100 mg/day"

    @pytest.mark.parametrize(
        "step",
        [
            opioid("tramadol", "25 mg", "12 h"),
            opioid("tramadol", "50 mg", "6 h", prn=True, max_doses_per_24h=1),
            OpioidStep(drug="tramadol", route="intravenous", dose="50 mg", every="12 h"),
        ],
        ids=["low-regular", "prn", "intravenous"],
    )
    def test_any_tramadol_in_severe_impairment_warns(self, step: Any) -> None:
        """A low regular dose, a PRN dose and an intravenous dose each warn."""
        report = check(RULES, [step], Patient(hepatic_impairment="severe"))
        assert outcome(report, "hepatic.dose-adjust") == "flagged"

    def test_moderate_impairment_passes(self) -> None:
        """Tramadol in moderate impairment is outside this rule's severe-only check: passed."""
        report = check(
            RULES, [opioid("tramadol", "100 mg")], Patient(hepatic_impairment="moderate")
        )
        assert outcome(report, "hepatic.dose-adjust") == "passed"

    def test_unknown_hepatic_status_is_not_checked(self) -> None:
        """Without a hepatic grade tramadol is not checked."""
        report = check(RULES, [opioid("tramadol", "50 mg")], Patient(weight="70 kg"))
        assert outcome(report, "hepatic.dose-adjust") == "not checked"
        assert missing_of(report, "hepatic.dose-adjust") == "hepatic impairment"

    def test_other_drugs_are_not_concerned(self) -> None:
        """Oxycodone is outside the hepatic rule."""
        step = opioid("oxycodone", "5 mg", "4 h")
        assert outcome(check(RULES, [step], Patient()), "hepatic.dose-adjust") is None


class TestAge:
    def test_over_75_above_300(self) -> None:
        """Tramadol 400 mg/day at 80 years: warning, level S."""
        (f,) = findings_of(
            check(RULES, [opioid("tramadol", "100 mg")], Patient(age=80)), "age.dose-adjust"
        )
        assert f.severity == "warning"
        assert f.level == "S"
        assert f.source == ("tramadol-elderly-secondary",)
        assert f.arithmetic == "age 80 > 75 years; 100 mg × 4 doses/day = 400 mg/day > 300 mg/day"

    @pytest.mark.parametrize(("age", "dose"), [(75, "100 mg"), (76, "75 mg"), (40, "100 mg")])
    def test_passes(self, age: int, dose: str) -> None:
        """At 75 years (not over), or at 300 mg/day, or younger: passed."""
        report = check(RULES, [opioid("tramadol", dose)], Patient(age=age))
        assert outcome(report, "age.dose-adjust") == "passed"

    def test_unknown_age_is_not_checked(self) -> None:
        """Without an age: not checked, naming age."""
        report = check(RULES, [opioid("tramadol", "50 mg")], Patient())
        assert outcome(report, "age.dose-adjust") == "not checked"
        assert missing_of(report, "age.dose-adjust") == "age"

    def test_other_drugs_are_not_concerned(self) -> None:
        """Age limits apply to tramadol only."""
        assert outcome(check(RULES, [apap()], Patient(age=90)), "age.dose-adjust") is None


FULL_PATIENTS = st.builds(
    Patient,
    age=st.sampled_from([60, 80]),
    weight=st.sampled_from(["45 kg", "70 kg"]),
    creatinine_clearance=st.sampled_from(
        [None, "12 mL/min", "25 mL/min", "45 mL/min", "90 mL/min"]
    ),
    egfr=st.sampled_from([None, "20 mL/min/1.73m2"]),
    hepatic_impairment=st.sampled_from([None, "none", "mild", "severe"]),
)
DRUGS = st.sampled_from(
    [
        ("tramadol", "opioid"),
        ("codeine", "opioid"),
        ("morphine", "opioid"),
        ("pethidine", "opioid"),
        ("gabapentin", "adjuvant"),
        ("pregabalin", "adjuvant"),
        ("acetaminophen", "adjuvant"),
    ]
)


def _step(drug: tuple[str, str], dose: str, every: str) -> Any:
    if drug[1] == "opioid":
        return OpioidStep(drug=drug[0], dose=dose, every=every)
    return AdjuvantStep(drug=drug[0], role="neuropathic", dose=dose, every=every)


class TestProperties:
    @settings(max_examples=60, deadline=None)
    @given(
        DRUGS, mass_pairs(1, 12000), st.sampled_from(["4 h", "6 h", "8 h", "12 h"]), FULL_PATIENTS
    )
    def test_mg_and_mcg_give_the_same_findings(
        self, drug: tuple[str, str], dose: tuple[str, str], every: str, patient: Patient
    ) -> None:
        """A dose written in mg or in mcg gives the same findings."""
        mg = check(RULES, [_step(drug, dose[0], every)], patient)
        mcg = check(RULES, [_step(drug, dose[1], every)], patient)
        assert finding_keys(mg) == finding_keys(mcg)

    @settings(max_examples=60, deadline=None)
    @given(
        DRUGS,
        mass_pairs(1, 12000),
        st.sampled_from(["6 h", "12 h"]),
        FULL_PATIENTS,
        unrelated_steps(),
    )
    def test_an_unrelated_step_never_removes_a_finding(
        self, drug: tuple[str, str], dose: tuple[str, str], every: str, patient: Patient, extra: Any
    ) -> None:
        """Appending a radiotherapy, block or ketamine step keeps every finding."""
        base = [_step(drug, dose[0], every)]
        before = check(RULES, base, patient)
        after = check(RULES, [*base, extra], patient)
        assert set(finding_keys(before)) <= set(finding_keys(after))

    @settings(max_examples=60, deadline=None)
    @given(DRUGS, st.integers(1, 1500), st.integers(1, 1500), FULL_PATIENTS)
    def test_raising_a_dose_never_removes_a_finding(
        self, drug: tuple[str, str], low: int, extra: int, patient: Patient
    ) -> None:
        """A higher dose keeps every finding code and step a lower dose had."""
        small = check(RULES, [_step(drug, f"{low} mg", "8 h")], patient)
        large = check(RULES, [_step(drug, f"{low + extra} mg", "8 h")], patient)
        assert {(f.code, f.step) for f in small.findings} <= {
            (f.code, f.step) for f in large.findings
        }


class TestPerPlanDay:
    """The organ and age maxima read the drug's total on each plan day, as dose.max-daily does:
    steps that never overlap are not added up, and a finding names the day(s) over."""

    def _switch(self, drug: str, dose: str, every: str, first_to: int) -> list[Any]:
        """Two steps of ``drug`` that do not overlap: days 0..first_to, then from the next day."""
        kind = AdjuvantStep if drug != "tramadol" else OpioidStep
        extra: dict[str, Any] = {"role": "neuropathic"} if drug == "pregabalin" else {}
        if drug == "acetaminophen":
            extra = {"role": "nociceptive"}
        return [
            kind(drug=drug, dose=dose, every=every, stop_day=first_to, **extra),
            kind(drug=drug, dose=dose, every=every, start_day=first_to + 1, **extra),
        ]

    def test_renal_band_not_flagged_for_steps_that_never_overlap(self) -> None:
        """Pregabalin 150 mg q12h (300 mg/day) to day 6, then the same from day 7, at CrCl 45:
        each day is at the 300 mg/day band maximum, never above (the sum of peaks was 600)."""
        report = check(RULES, self._switch("pregabalin", "150 mg", "12 h", 6), crcl(45))
        assert findings_of(report, "renal.dose-adjust") == []
        assert outcome(report, "renal.dose-adjust", 0) == "passed"

    def test_renal_band_over_on_day_14_only(self) -> None:
        """Pregabalin 75 mg q12h raised to 200 mg q12h on day 14: flagged, naming day 14."""
        step = AdjuvantStep(
            drug="pregabalin",
            role="neuropathic",
            dose="75 mg",
            every="12 h",
            titration=[{"day": 14, "dose": "200 mg"}],
        )
        report = check(RULES, [step], crcl(45))
        (f,) = findings_of(report, "renal.dose-adjust")
        assert f.message.startswith("From day 14: Pregabalin totals 400 mg/day")
        assert f.detail["days"] == [[14, None]]
        assert f.arithmetic.startswith("day 14: 200 mg × 2 doses/day = 400 mg/day > 300 mg/day")

    def test_renal_band_over_on_the_overlap_day(self) -> None:
        """Two pregabalin steps overlapping on day 7 only: the finding names day 7."""
        steps = [
            AdjuvantStep(
                drug="pregabalin", role="neuropathic", dose="150 mg", every="12 h", stop_day=7
            ),
            AdjuvantStep(
                drug="pregabalin", role="neuropathic", dose="75 mg", every="12 h", start_day=7
            ),
        ]
        report = check(RULES, steps, crcl(45))
        (f,) = findings_of(report, "renal.dose-adjust")
        assert f.message.startswith("Day 7: Pregabalin totals 450 mg/day over 2 steps")
        assert f.detail["steps"] == [0, 1]

    def test_hepatic_acetaminophen_per_day(self) -> None:
        """Acetaminophen 750 mg q6h (3 g/day) before and after a switch is at the hepatic
        maximum each day: not flagged; 1 g q6h from day 3 is, naming day 3 on."""
        patient = Patient(hepatic_impairment="mild", weight="70 kg")
        report = check(RULES, self._switch("acetaminophen", "750 mg", "6 h", 2), patient)
        assert findings_of(report, "hepatic.dose-adjust") == []
        later = apap("750 mg", titration=[{"day": 3, "dose": "1 g"}])
        (f,) = findings_of(check(RULES, [later], patient), "hepatic.dose-adjust")
        assert f.message.startswith("From day 3: Acetaminophen totals 4000 mg/day")

    def test_age_tramadol_per_day(self) -> None:
        """Tramadol 50 mg q6h (200 mg/day) in two consecutive steps at 80 years: clean; two
        overlapping on day 5: flagged on day 5 (400 mg/day)."""
        patient = Patient(age=80)
        report = check(RULES, self._switch("tramadol", "50 mg", "6 h", 4), patient)
        assert findings_of(report, "age.dose-adjust") == []
        steps = [
            opioid("tramadol", "50 mg", stop_day=5),
            opioid("tramadol", "50 mg", start_day=5),
        ]
        (f,) = findings_of(check(RULES, steps, patient), "age.dose-adjust")
        assert f.message.startswith("Day 5: Tramadol totals 400 mg/day over 2 steps")

    def test_static_regimen_reads_as_before(self) -> None:
        """Without time structure the message names no day (the whole regimen is one day)."""
        steps = [gabapentinoid("pregabalin", "150 mg", "12 h")] * 2
        (f,) = findings_of(check(RULES, steps, crcl(45)), "renal.dose-adjust")
        assert f.message.startswith("Pregabalin totals 600 mg/day over 2 steps")
        assert "days" not in f.detail
