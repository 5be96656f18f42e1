"""Psoas compartment block rules: local anaesthetic maximum dose and anticoagulant timing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mps_analgesia as mps
from mps_analgesia import _catalog
from mps_analgesia.report import Finding, Report
from mps_analgesia.rules import block as block_rules
from strategies import adjuvant_steps, opioid_steps, radiotherapy_steps

LA = "block.local-anaesthetic-max"
AC = "block.anticoagulation"


def block(drug: str = "ropivacaine", conc: str = "0.2 %", volume: str | None = "20 mL", **kw: Any):
    kw.setdefault("side", "left")
    return mps.PsoasCompartmentBlockStep(drug=drug, concentration=conc, bolus_volume=volume, **kw)


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


def findings(report: Report, rule_id: str, step: int = 0) -> list[Finding]:
    return [f for f in report.findings if f.code == rule_id and f.step == step]


def only(report: Report, rule_id: str, step: int = 0) -> Finding:
    found = findings(report, rule_id, step)
    assert len(found) == 1, found
    return found[0]


def patient(**kw: Any) -> mps.Patient:
    return mps.Patient(**kw)


def anticoagulated(drug: str, **kw: Any) -> mps.Patient:
    extra = {
        k: kw.pop(k) for k in list(kw) if k in ("weight", "creatinine_clearance", "egfr", "inr")
    }
    return mps.Patient(anticoagulant=mps.Anticoagulant(drug=drug, **kw), **extra)


class TestRegistry:
    def test_rules_registered(self) -> None:
        """The block rules are in the default registry with their exact ids."""
        assert tuple(r.id for r in block_rules.RULES) == (
            LA,
            AC,
            "block.cumulative-dose",
            "block.anticoagulant-restart",
        )
        assert {LA, AC} <= set(mps.default_rules().ids)

    def test_editions_recorded(self) -> None:
        """The report names the editions of both block data files."""
        editions = check(block(), patient=patient(weight="70 kg")).editions
        assert "local_anaesthetics.toml" in editions
        assert "anticoagulants.toml" in editions


class TestLocalAnaestheticData:
    def test_every_local_anaesthetic_has_limits(self) -> None:
        """Every local anaesthetic of the drug catalog has an entry in local_anaesthetics.toml."""
        table = block_rules._local_anaesthetics()
        catalog = {
            d for d in _catalog.drug_ids() if _catalog.drug(d).drug_class == "local_anaesthetic"
        }
        assert catalog == set(table)

    def test_reference_values(self) -> None:
        """The limits are the reference notes' §3.2 values with their levels."""
        t = block_rules._local_anaesthetics()
        lido = t["lidocaine"]
        assert lido.plain.max_per_kg.value == 4.5
        assert lido.plain.max_single.value == 300
        assert lido.adrenaline.max_per_kg.value == 7
        assert lido.adrenaline.max_single.value == 500
        assert lido.adrenaline.max_per_kg.level == "V"
        bupi = t["bupivacaine"]
        assert (bupi.plain.max_single.value, bupi.adrenaline.max_single.value) == (175, 225)
        assert bupi.max_24h.value == 400
        assert bupi.plain.max_per_kg.level == "U"  # sources conflict (2 vs 2.5 mg/kg)
        ropi = t["ropivacaine"]
        assert ropi.plain.max_per_kg.value == 3
        assert ropi.max_24h.value == 675  # the lower of MIMS Malaysia 675 / Hong Kong 800
        assert "800" in ropi.max_24h.note
        levo = t["levobupivacaine"]
        assert {levo.plain.max_single.level, levo.max_24h.level} == {"U"}

    def test_ideal_body_weight_constants_are_unverified(self) -> None:
        """The Devine constants are data at level U (the formula is not in the reference)."""
        wr = block_rules._weight_rule()
        assert wr.bmi_above.value == 30
        assert wr.bmi_above.level == "S"
        for sv in (wr.base_male, wr.base_female, wr.increment, wr.per_height, wr.reference_height):
            assert sv.level == "U"
            assert sv.source == "devine-1974"


class TestLocalAnaestheticMax:
    # ---- flagged ---------------------------------------------------------------------------------
    def test_above_mg_per_kg_is_error(self) -> None:
        """Ropivacaine 30 mL 0.5 % (150 mg) at 45 kg exceeds 3 mg/kg × 45 kg = 135 mg: error."""
        f = only(check(block(conc="0.5 %", volume="30 mL"), patient=patient(weight="45 kg")), LA)
        assert f.severity == "error"
        assert f.arithmetic == "5 mg/mL × 30 mL = 150 mg > 3 mg/kg × 45 kg = 135 mg"
        assert f.level == "S"
        assert f.detail["weight_used_text"] == "actual weight 45 kg"

    def test_without_height_the_finding_names_the_weight(self) -> None:
        """Without a height the finding says the actual weight was used (BMI unknown)."""
        f = only(check(block(conc="0.5 %", volume="30 mL"), patient=patient(weight="45 kg")), LA)
        assert "actual weight" in f.message
        assert "No height is recorded" in f.message

    def test_lidocaine_with_adrenaline_worked_example(self) -> None:
        """§7 #32: 70 kg, lidocaine with adrenaline 7 mg/kg = 490 mg = 49 mL of 1 %."""
        p = patient(weight="70 kg")
        assert outcome(
            check(block("lidocaine", "1 %", "49 mL", adrenaline=True), patient=p), LA
        ) == ("passed")
        f = only(check(block("lidocaine", "1 %", "50 mL", adrenaline=True), patient=p), LA)
        assert f.severity == "error"
        assert "with adrenaline" in f.message
        assert "490 mg" in f.arithmetic

    def test_adrenaline_changes_the_limit(self) -> None:
        """Lidocaine 400 mg at 100 kg is above the plain cap (300 mg) but not the adrenaline one."""
        p = patient(weight="100 kg")
        plain = only(check(block("lidocaine", "1 %", "40 mL"), patient=p), LA)
        assert plain.arithmetic == "10 mg/mL × 40 mL = 400 mg > 300 mg"
        assert outcome(
            check(block("lidocaine", "1 %", "40 mL", adrenaline=True), patient=p), LA
        ) == ("passed")

    def test_bupivacaine_absolute_cap(self) -> None:
        """§7 #33: bupivacaine plain 175 mg = 70 mL of 0.25 % passes; 71 mL is an error."""
        p = patient(weight="100 kg")
        assert outcome(check(block("bupivacaine", "0.25 %", "70 mL"), patient=p), LA) == "passed"
        f = only(check(block("bupivacaine", "0.25 %", "71 mL"), patient=p), LA)
        assert f.severity == "error"
        assert f.arithmetic == "2.5 mg/mL × 71 mL = 177.5 mg > 175 mg"

    def test_bupivacaine_per_kg_is_only_a_warning(self) -> None:
        """Bupivacaine's mg/kg limit is [U] (sources conflict): exceeding it is a warning."""
        f = only(check(block("bupivacaine", "0.5 %", "30 mL"), patient=patient(weight="70 kg")), LA)
        assert (f.severity, f.level) == ("warning", "U")
        assert "unverified [U]" in f.message

    def test_levobupivacaine_is_warnings_only(self) -> None:
        """§7 #37: Mannion 0.4 mL/kg 0.5 % at 70 kg (140 mg) passes; 155 mg warns ([U] cap)."""
        p = patient(weight="70 kg")
        assert outcome(check(block("levobupivacaine", "0.5 %", "28 mL"), patient=p), LA) == "passed"
        f = only(check(block("levobupivacaine", "0.5 %", "31 mL"), patient=p), LA)
        assert (f.severity, f.level) == ("warning", "U")

    def test_24_hour_cap(self) -> None:
        """Bolus plus 24 h of infusion above the 24-hour cap is an error with the sum shown."""
        step = block(
            conc="0.2 %",
            volume="20 mL",
            infusion_rate="14 mL/h",
            infusion_duration="48 h",
            technique="catheter",
        )
        f = only(check(step, patient=patient(weight="70 kg")), LA)
        assert f.severity == "error"
        assert f.arithmetic == "40 mg bolus + 28 mg/h × 24 h = 712 mg/24 h > 675 mg/24 h"
        assert f.source == ("ropivacaine-mims",)

    def test_short_infusion_counts_its_duration(self) -> None:
        """An infusion shorter than 24 h adds only its own duration."""
        step = block(
            volume="20 mL", infusion_rate="30 mL/h", infusion_duration="10 h", technique="catheter"
        )
        # 40 mg + 60 mg/h × 10 h = 640 mg ≤ 675 mg
        assert outcome(check(step, patient=patient(weight="70 kg")), LA) == "passed"

    # ---- passed ----------------------------------------------------------------------------------
    @pytest.mark.parametrize(
        ("volume", "conc", "weight"),
        [
            ("30 mL", "0.5 %", "70 kg"),  # §7 #34 Chelly: 150 mg ≤ 210 mg
            ("28 mL", "0.2 %", "70 kg"),  # §7 #36 Capdevila: 56 mg
        ],
    )
    def test_reported_regimens_pass(self, volume: str, conc: str, weight: str) -> None:
        """The reported ropivacaine regimens (Chelly, Capdevila) pass at 70 kg."""
        assert outcome(
            check(block(conc=conc, volume=volume), patient=patient(weight=weight)), LA
        ) == ("passed")

    @pytest.mark.parametrize("rate", ["6 mL/h", "8 mL/h"])
    def test_chelly_infusion_passes(self, rate: str) -> None:
        """§7 #35: ropivacaine 0.2 % at 6-8 mL/h for 24 h (288-384 mg) is below the 24-h cap."""
        step = block(
            volume=None, infusion_rate=rate, infusion_duration="24 h", technique="catheter"
        )
        assert outcome(check(step, patient=patient(weight="70 kg")), LA) == "passed"

    def test_infusion_only_needs_no_weight(self) -> None:
        """With no bolus there is nothing to compare per kg: passed even without a weight."""
        step = block(volume=None, infusion_rate="6 mL/h", technique="catheter")
        assert outcome(check(step, patient=patient()), LA) == "passed"

    # ---- not checked -----------------------------------------------------------------------------
    def test_no_weight_is_not_checked(self) -> None:
        """Without a weight the mg/kg limit is not checked, and the reason names the weight."""
        report = check(block(conc="0.5 %", volume="30 mL"), patient=patient())
        assert outcome(report, LA) == "not checked"
        (nc,) = [n for n in report.not_checked if n.rule == LA]
        assert nc.missing == "weight"
        assert "3 mg/kg" in nc.reason
        assert "675 mg per 24 h" in nc.reason

    def test_no_patient_is_not_checked(self) -> None:
        """validate() without a patient leaves the mg/kg check not checked, never passed."""
        assert outcome(check(block(), patient=None), LA) == "not checked"

    def test_cap_exceeded_without_weight_says_mg_per_kg_unchecked(self) -> None:
        """An exceeded absolute cap is flagged without a weight, saying mg/kg was not checked."""
        step = block(conc="0.2 %", volume="20 mL", infusion_rate="14 mL/h", technique="catheter")
        f = only(check(step, patient=patient()), LA)
        assert f.severity == "error"
        assert "mg/kg limit was not checked" in f.message
        assert f.detail["not_checked"] == "mg/kg limit (no weight recorded)"

    # ---- dosing weight ---------------------------------------------------------------------------
    def test_obese_patient_uses_ideal_body_weight_as_warning(self) -> None:
        """BMI > 30: over the limit only at ideal body weight (Devine, [U]) is a warning."""
        p = patient(weight="100 kg", height="160 cm", sex="female")
        # IBW = 45.5 + 2.3 × (160 - 152.4) / 2.54 = 52.38 kg; 4.5 mg/kg → 235.7 mg
        f = only(check(block("lidocaine", "1 %", "25 mL"), patient=p), LA)
        assert (f.severity, f.level) == ("warning", "U")
        assert f.detail["weight_used_text"] == "ideal body weight 52.38 kg"
        assert "ideal body weight" in f.message
        assert "Devine" in f.message
        assert "devine-1974" in f.source

    def test_obese_patient_over_actual_weight_limit_is_error(self) -> None:
        """Ropivacaine 315 mg at 100 kg (BMI 39) exceeds 3 mg/kg even at actual weight: error."""
        p = patient(weight="100 kg", height="160 cm", sex="female")
        findings_ = findings(check(block("ropivacaine", "0.75 %", "42 mL"), patient=p), LA)
        per_kg = [f for f in findings_ if "mg/kg" in f.arithmetic]
        assert per_kg[0].severity == "error"
        assert "even at the actual weight" in per_kg[0].message

    def test_unknown_sex_uses_female_formula(self) -> None:
        """Without a recorded sex the lower (female) ideal body weight is used, and said."""
        p = patient(weight="100 kg", height="160 cm")
        f = only(check(block("lidocaine", "1 %", "25 mL"), patient=p), LA)
        assert "female formula" in f.message

    def test_male_formula(self) -> None:
        """A man's ideal body weight uses the 50 kg base: 50 + 2.3 × 7.6/2.54 = 56.88 kg."""
        p = patient(weight="100 kg", height="160 cm", sex="male")
        f = only(check(block("lidocaine", "1 %", "26 mL"), patient=p), LA)
        assert f.detail["weight_used_text"] == "ideal body weight 56.88 kg"

    def test_normal_bmi_uses_actual_weight(self) -> None:
        """BMI ≤ 30: the actual weight, with no ideal-body-weight caveat."""
        p = patient(weight="45 kg", height="160 cm")
        f = only(check(block(conc="0.5 %", volume="30 mL"), patient=p), LA)
        assert f.detail["weight_used_text"] == "actual weight 45 kg"
        assert "ideal body weight" not in f.message

    def test_adrenaline_without_separate_limit_uses_plain(self) -> None:
        """Ropivacaine has no separate adrenaline limit: the plain one applies, and is said."""
        f = only(
            check(
                block(conc="0.5 %", volume="30 mL", adrenaline=True),
                patient=patient(weight="45 kg"),
            ),
            LA,
        )
        assert "the plain limit applies" in f.message


class TestLocalAnaestheticProperties:
    @settings(max_examples=40, deadline=None)
    @given(
        drug=st.sampled_from(["ropivacaine", "bupivacaine", "levobupivacaine", "lidocaine"]),
        conc=st.sampled_from(["0.2 %", "0.25 %", "0.5 %", "1 %"]),
        volume=st.integers(min_value=1, max_value=120),
        more=st.integers(min_value=1, max_value=60),
        weight=st.one_of(st.none(), st.integers(min_value=30, max_value=150)),
        adrenaline=st.booleans(),
    )
    def test_raising_the_dose_never_removes_a_finding(
        self, drug: str, conc: str, volume: int, more: int, weight: int | None, adrenaline: bool
    ) -> None:
        """A larger bolus keeps every max-dose finding the smaller one had (by severity)."""
        p = patient(weight=None if weight is None else f"{weight} kg")
        low = check(block(drug, conc, f"{volume} mL", adrenaline=adrenaline), patient=p)
        high = check(block(drug, conc, f"{volume + more} mL", adrenaline=adrenaline), patient=p)
        low_f = findings(low, LA)
        if low_f:
            assert findings(high, LA)
            worst = min(("error", "warning", "info").index(f.severity) for f in low_f)
            assert (
                min(("error", "warning", "info").index(f.severity) for f in findings(high, LA))
                <= worst
            )

    @settings(max_examples=30, deadline=None)
    @given(
        mg_per_ml=st.sampled_from([1, 2, 2.5, 5, 7.5, 10]),
        volume=st.integers(min_value=1, max_value=100),
        weight=st.integers(min_value=30, max_value=120),
    )
    def test_mg_mcg_and_percent_give_the_same_findings(
        self, mg_per_ml: float, volume: int, weight: int
    ) -> None:
        """A concentration in mg/mL, mcg/mL or % w/v gives the same findings."""
        p = patient(weight=f"{weight} kg")
        texts = [f"{mg_per_ml} mg/mL", f"{mg_per_ml * 1000} mcg/mL", f"{mg_per_ml / 10} %"]
        results = [
            {
                (f.code, f.severity, f.arithmetic)
                for f in findings(check(block(conc=c, volume=f"{volume} mL"), patient=p), LA)
            }
            for c in texts
        ]
        assert results[0] == results[1] == results[2]

    @settings(max_examples=25, deadline=None)
    @given(extra=st.one_of(opioid_steps(), adjuvant_steps(), radiotherapy_steps()))
    def test_unrelated_step_never_removes_a_finding(self, extra: Any) -> None:
        """Adding a step of another kind leaves the block findings in place."""
        p = mps.Patient(
            weight="45 kg",
            anticoagulant=mps.Anticoagulant(
                drug="apixaban", dose="5 mg", every="12 h", last_dose_ago="30 h"
            ),
        )
        step = block(conc="0.5 %", volume="30 mL")
        before = {
            (f.code, f.message)
            for f in check(step, patient=p).findings
            if f.code.startswith("block.")
        }
        after = {
            (f.code, f.message)
            for f in check(step, extra, patient=p).findings
            if f.code.startswith("block.")
        }
        assert before
        assert before <= after


class TestAnticoagulantData:
    def test_statement_read_in_a_secondary_source(self) -> None:
        """The deep-plexus = neuraxial statement is level S with its textbook source."""
        statement = block_rules._anticoagulants()[1]
        assert statement.level == "S"
        assert statement.source == "accessanesthesiology-pnb"
        assert "psoas compartment" in statement.text

    @pytest.mark.parametrize(
        ("agent", "hours"),
        [
            ("apixaban", [36, 72]),
            ("rivaroxaban", [24, 72]),
            ("enoxaparin", [12, 24]),
            ("heparin iv", [4]),
            ("clopidogrel", [168]),
            ("warfarin", [120]),
            ("ticlopidine", [336]),
        ],
    )
    def test_reference_intervals(self, agent: str, hours: list[float]) -> None:
        """The intervals are the reference notes' §3.3 values (upper end of a range)."""
        found = block_rules._agent_for(agent)
        assert found is not None
        assert [r.interval.value for r in found.regimens] == hours

    def test_names_are_case_insensitive(self) -> None:
        """Brand and generic names map to the agent, in any case."""
        assert block_rules._agent_for("Eliquis").id == "apixaban"
        assert block_rules._agent_for("XARELTO").id == "rivaroxaban"
        assert block_rules._agent_for("dabigatran") is None

    def test_longest_name_prefix_wins(self) -> None:
        """A name with a dose after it maps by its longest known prefix."""
        assert block_rules._agent_for("apixaban 5 mg").id == "apixaban"
        assert block_rules._agent_for("heparin iv infusion").id == "heparin-iv"
        assert block_rules._agent_for("heparin 5000").id == "heparin"


class TestAnticoagulation:
    # ---- flagged ---------------------------------------------------------------------------------
    def test_too_soon_after_high_dose_apixaban_is_error(self) -> None:
        """Apixaban 5 mg BID, 30 h since the last dose: 72 h needed, error."""
        p = anticoagulated("apixaban", dose="5 mg", every="12 h", last_dose_ago="30 h")
        f = only(check(block(), patient=p), AC)
        assert f.severity == "error"
        assert f.arithmetic == "30 h < 72 h (3 days)"
        assert f.level == "S"
        assert set(f.source) == {"accessanesthesiology-pnb", "asra-2018"}

    def test_unknown_timing_is_warning(self) -> None:
        """An anticoagulant with no time of last dose is a warning naming last_dose_ago."""
        p = anticoagulated("apixaban", dose="5 mg", every="12 h")
        f = only(check(block(), patient=p), AC)
        assert f.severity == "warning"
        assert "last_dose_ago" in f.message

    def test_unknown_dose_uses_the_longest_interval(self) -> None:
        """Without the dose the high-dose interval (72 h) applies, and the finding says why."""
        p = anticoagulated("apixaban", last_dose_ago="40 h")
        f = only(check(block(), patient=p), AC)
        assert f.severity == "error"
        assert "72 h" in f.arithmetic
        assert "dose level cannot be told" in f.message

    def test_warfarin_five_days(self) -> None:
        """Warfarin 4 days before the block is an error (5 days, INR mentioned)."""
        f = only(check(block(), patient=anticoagulated("warfarin", last_dose_ago="4 day")), AC)
        assert f.severity == "error"
        assert "INR" in f.message

    def test_rivaroxaban_low_dose_renal(self) -> None:
        """Rivaroxaban 10 mg OD: 24 h, but 30 h with CrCl < 30 or unknown renal function."""
        kw = {"dose": "10 mg", "every": "24 h", "last_dose_ago": "26 h"}
        ok = anticoagulated("rivaroxaban", creatinine_clearance="60 mL/min", **kw)
        assert outcome(check(block(), patient=ok), AC) == "passed"
        low = anticoagulated("rivaroxaban", creatinine_clearance="20 mL/min", **kw)
        f = only(check(block(), patient=low), AC)
        assert f.arithmetic == "26 h < 30 h"
        unknown = anticoagulated("rivaroxaban", **kw)
        assert "not recorded" in only(check(block(), patient=unknown), AC).message

    def test_enoxaparin_frequency_decides_the_dose_level(self) -> None:
        """Enoxaparin 40 mg once daily is prophylactic (12 h); 70 mg twice daily at 72 kg is
        therapeutic (24 h): 12 h after it is an error (issue 12)."""
        p = anticoagulated(
            "enoxaparin", dose="40 mg", every="24 h", last_dose_ago="14 h", weight="70 kg"
        )
        assert outcome(check(block(), patient=p), AC) == "passed"
        p10 = anticoagulated(
            "enoxaparin", dose="40 mg", every="24 h", last_dose_ago="10 h", weight="70 kg"
        )
        assert only(check(block(), patient=p10), AC).severity == "error"
        bid = anticoagulated(
            "enoxaparin", dose="70 mg", every="12 h", last_dose_ago="12 h", weight="72 kg"
        )
        f = only(check(block(), patient=bid), AC)
        assert f.severity == "error"
        assert "therapeutic" in f.message

    def test_warfarin_needs_a_normal_inr(self) -> None:
        """Warfarin stopped 6 days ago: not checked without an INR, passed with 1.2, an error
        with 2.0 (older ASRA: INR normal, at most 1.5)."""
        none = check(block(), patient=anticoagulated("warfarin", last_dose_ago="6 day"))
        assert outcome(none, AC) == "not checked"
        assert [n.missing for n in none.not_checked if n.rule == AC] == ["inr"]
        ok = anticoagulated("warfarin", last_dose_ago="6 day", inr=1.2)
        assert outcome(check(block(), patient=ok), AC) == "passed"
        high = anticoagulated("warfarin", last_dose_ago="6 day", inr=2.0)
        assert only(check(block(), patient=high), AC).severity == "error"

    def test_heparin_without_route_uses_longer_time(self) -> None:
        """'heparin' without a route takes the subcutaneous 6 h; 'heparin iv' 4 h."""
        assert only(
            check(block(), patient=anticoagulated("heparin", last_dose_ago="5 h")), AC
        ).severity == ("error")
        assert outcome(
            check(block(), patient=anticoagulated("heparin iv", last_dose_ago="5 h")), AC
        ) == ("passed")

    def test_later_block_needs_the_drug_held(self) -> None:
        """A block on day 2, 30 h after apixaban now: enough only if held → warning."""
        p = anticoagulated("apixaban", dose="5 mg", every="12 h", last_dose_ago="30 h")
        f = only(check(block(start_day=2), patient=p), AC)
        assert f.severity == "warning"
        assert "30 h + 48 h = 78 h" in f.arithmetic

    def test_untimed_anticoagulant_in_medications_warns(self) -> None:
        """An anticoagulant named among the medications without timing is a warning."""
        p = mps.Patient(medications=["clopidogrel", "sertraline"])
        f = only(check(block(), patient=p), AC)
        assert f.severity == "warning"
        assert "clopidogrel" in f.message

    def test_unknown_recorded_agent_still_reported_with_untimed_medication(self) -> None:
        """A finding on an untimed medication also says the recorded agent was not checked."""
        p = mps.Patient(
            medications=["clopidogrel"],
            anticoagulant=mps.Anticoagulant(drug="dabigatran", last_dose_ago="30 h"),
        )
        f = only(check(block(), patient=p), AC)
        assert "Also not checked: dabigatran" in f.message

    # ---- passed ----------------------------------------------------------------------------------
    @pytest.mark.parametrize(
        ("drug", "kw"),
        [
            ("apixaban", {"dose": "2.5 mg", "every": "12 h", "last_dose_ago": "40 h"}),
            ("apixaban", {"dose": "5 mg", "every": "12 h", "last_dose_ago": "80 h"}),
            ("warfarin", {"last_dose_ago": "6 day", "inr": 1.1}),
            ("enoxaparin", {"dose": "40 mg", "every": "24 h", "last_dose_ago": "26 h"}),
            ("aspirin", {}),
        ],
    )
    def test_long_enough_passes(self, drug: str, kw: dict[str, str]) -> None:
        """A long enough interval (or aspirin alone) passes."""
        assert outcome(check(block(), patient=anticoagulated(drug, **kw)), AC) == "passed"

    def test_recorded_no_anticoagulant_passes(self) -> None:
        """anticoagulant = 'none' (recorded: takes none) passes."""
        p = patient(weight="70 kg", anticoagulant="none", medications=[])
        assert outcome(check(block(), patient=p), AC) == "passed"

    def test_recorded_none_with_an_anticoagulant_among_medications_warns(self) -> None:
        """'none' recorded but apixaban among the medications: the untimed warning still comes."""
        p = patient(anticoagulant="none", medications=["apixaban"])
        f = only(check(block(), patient=p), AC)
        assert (f.severity, "apixaban" in f.message) == ("warning", True)

    # ---- not checked -----------------------------------------------------------------------------
    def test_anticoagulant_not_recorded_is_not_checked(self) -> None:
        """No anticoagulant status recorded: not checked, naming it (never passed)."""
        report = check(block(), patient=patient(weight="70 kg", medications=[]))
        assert outcome(report, AC) == "not checked"
        (nc,) = [n for n in report.not_checked if n.rule == AC]
        assert nc.missing == "anticoagulant status"
        assert "anticoagulant = 'none'" in nc.reason
        assert outcome(check(block()), AC) == "not checked"  # no patient at all

    def test_untimed_medication_wins_over_unrecorded_status_and_says_so(self) -> None:
        """Clopidogrel among the medicines with no status recorded: a warning that also says
        the anticoagulant status was not checked."""
        f = only(check(block(), patient=patient(medications=["clopidogrel"])), AC)
        assert f.severity == "warning"
        assert "Also not checked: the patient's anticoagulant is not recorded" in f.message

    def test_agent_not_in_table_is_not_checked(self) -> None:
        """An anticoagulant missing from the table is not checked, and named."""
        report = check(block(), patient=anticoagulated("dabigatran", last_dose_ago="30 h"))
        assert outcome(report, AC) == "not checked"
        (nc,) = [n for n in report.not_checked if n.rule == AC]
        assert "dabigatran" in nc.reason


class TestAnticoagulationProperties:
    @settings(max_examples=40, deadline=None)
    @given(
        drug=st.sampled_from(["apixaban", "rivaroxaban", "enoxaparin", "warfarin", "clopidogrel"]),
        hours=st.integers(min_value=0, max_value=400),
        extra=st.integers(min_value=1, max_value=200),
    )
    def test_longer_wait_never_worsens(self, drug: str, hours: int, extra: int) -> None:
        """Waiting longer never turns a pass into a finding, nor a warning into an error."""
        rank = {"passed": 0, "warning": 1, "error": 2}

        def severity(h: int) -> int:
            p = anticoagulated(
                drug, dose="5 mg", every="12 h", last_dose_ago=f"{h} h", weight="70 kg"
            )
            found = findings(check(block(), patient=p), AC)
            return max((rank[f.severity] for f in found), default=0)

        assert severity(hours + extra) <= severity(hours)
