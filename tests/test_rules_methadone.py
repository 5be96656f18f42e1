"""The methadone rules: adjuvant range, QTc gates, ECG schedule, titration pace, interactions."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mps_analgesia as mps
from mps_analgesia import AdjuvantStep, MethadoneAdjuvantStep, OpioidStep, Patient
from mps_analgesia.rules import default_rules
from mps_analgesia.rules import methadone as rules_methadone
from strategies_safety import check, finding_keys, findings_of, mass_pairs, outcome, unrelated_steps

RULES = rules_methadone.RULES
QTC_OK = Patient(qtc="420 ms")


def adjuvant(dose: str = "5 mg", every: str = "8 h", **kw: Any) -> MethadoneAdjuvantStep:
    return MethadoneAdjuvantStep(dose=dose, every=every, **kw)


class TestRegistry:
    def test_rule_ids_are_the_public_codes(self) -> None:
        """The module declares exactly the methadone codes, all in the default registry."""
        ids = [r.id for r in RULES]
        assert ids == [
            "methadone.adjuvant-range",
            "methadone.qtc-contraindicated",
            "methadone.qtc-prolonged",
            "methadone.ecg-required",
            "methadone.titration-interval",
            "methadone.titration-step",
            "methadone.ecg-recheck",
            "methadone.interaction",
            "methadone.total-daily",
            "methadone.adjuvant-without-opioid",
        ]
        assert set(ids) <= set(default_rules().ids)

    def test_rules_declare_sources_and_data_files(self) -> None:
        """Every rule names its sources and reads methadone.toml."""
        for r in RULES:
            assert r.sources, r.id
            assert "methadone.toml" in r.data_files, r.id


class TestAdjuvantRange:
    def test_above_30_mg_per_day_is_a_warning(self) -> None:
        """15 mg every 8 h = 45 mg/day is above the Takase range: a warning with the arithmetic."""
        report = check(RULES, [adjuvant("15 mg")], QTC_OK)
        (f,) = findings_of(report, "methadone.adjuvant-range")
        assert f.severity == "warning"
        assert "45 mg/day" in f.message
        assert "15–30 mg/day" in f.message
        assert f.arithmetic == "15 mg × 3 doses/day = 45 mg/day > 30 mg/day"
        assert f.source == ("palliverse-2015", "takase-2015")
        assert f.level == "S"

    def test_the_peak_of_the_titration_is_checked(self) -> None:
        """A titration to 12.5 mg every 8 h on day 7 is flagged, naming the day."""
        step = adjuvant(titration=[{"day": 7, "dose": "12.5 mg"}])
        (f,) = findings_of(check(RULES, [step], QTC_OK), "methadone.adjuvant-range")
        assert f.severity == "warning"
        assert "37.5 mg/day" in f.message
        assert "day 7" in f.message

    def test_within_the_range_passes(self) -> None:
        """10 mg every 8 h (30 mg/day) and 5 mg every 8 h (15 mg/day) are within the range."""
        for dose in ("10 mg", "5 mg"):
            report = check(RULES, [adjuvant(dose)], QTC_OK)
            assert outcome(report, "methadone.adjuvant-range") == "passed"

    def test_below_15_mg_per_day_is_info(self) -> None:
        """2.5 mg every 8 h = 7.5 mg/day is below the range: information, not a warning."""
        (f,) = findings_of(check(RULES, [adjuvant("2.5 mg")], QTC_OK), "methadone.adjuvant-range")
        assert f.severity == "info"
        assert "is 7.5 mg/day" in f.message
        assert f.arithmetic == "2.5 mg × 3 doses/day = 7.5 mg/day < 15 mg/day"
        assert f.level == "S"

    def test_the_lower_check_uses_the_final_dose(self) -> None:
        """Starting low and titrating into the range passes; the final dose is what counts."""
        step = adjuvant("2.5 mg", titration=[{"day": 7, "dose": "5 mg"}])
        assert outcome(check(RULES, [step], QTC_OK), "methadone.adjuvant-range") == "passed"

    def test_a_titration_ending_low_says_so(self) -> None:
        """A titration ending at 7.5 mg/day is flagged as its final, target dose."""
        step = adjuvant(titration=[{"day": 7, "dose": "7.5 mg"}, {"day": 14, "dose": "2.5 mg"}])
        (f,) = findings_of(check(RULES, [step], QTC_OK), "methadone.adjuvant-range")
        assert f.severity == "info"
        assert "final, target dose" in f.message
        assert "day 14" in f.message

    def test_main_opioid_methadone_is_not_an_adjuvant(self) -> None:
        """Methadone as the main opioid is outside the adjuvant range rule."""
        step = OpioidStep(drug="methadone", dose="20 mg", every="8 h")
        assert outcome(check(RULES, [step], QTC_OK), "methadone.adjuvant-range") is None

    def test_needs_no_patient_data(self) -> None:
        """The range check runs without any patient data (it cannot be 'not checked')."""
        assert outcome(check(RULES, [adjuvant()]), "methadone.adjuvant-range") == "passed"


class TestQtc:
    @pytest.mark.parametrize("qtc", ["510 ms", "0.51 s"])
    def test_above_500_ms_is_an_error(self, qtc: str) -> None:
        """QTc above 500 ms (in ms or s) is a contraindication: an error, level V."""
        report = check(RULES, [adjuvant()], Patient(qtc=qtc))
        (f,) = findings_of(report, "methadone.qtc-contraindicated")
        assert f.severity == "error"
        assert f.level == "V"
        assert f.source == ("aps-cpdd-2014",)
        assert f.arithmetic == "QTc 510 ms > 500 ms"
        assert "do not use methadone" in f.message
        assert outcome(report, "methadone.qtc-prolonged") == "passed"

    @pytest.mark.parametrize("qtc", ["450 ms", "470 ms", "500 ms"])
    def test_450_to_500_ms_is_a_warning(self, qtc: str) -> None:
        """QTc from 450 to 500 ms is prolonged: a warning, and not a contraindication."""
        report = check(RULES, [adjuvant()], Patient(qtc=qtc))
        (f,) = findings_of(report, "methadone.qtc-prolonged")
        assert f.severity == "warning"
        assert f.level == "V"
        assert "≤ QTc" in f.arithmetic
        assert "alternative opioid" in f.message
        assert outcome(report, "methadone.qtc-contraindicated") == "passed"

    def test_normal_qtc_passes_both(self) -> None:
        """QTc 449 ms passes both QTc rules."""
        report = check(RULES, [adjuvant()], Patient(qtc="449 ms"))
        assert outcome(report, "methadone.qtc-contraindicated") == "passed"
        assert outcome(report, "methadone.qtc-prolonged") == "passed"

    def test_no_qtc_is_not_checked(self) -> None:
        """Without a QTc both QTc rules are not checked, naming the QTc."""
        report = check(RULES, [adjuvant()], Patient(age=60, medications=[]))
        for rule_id in ("methadone.qtc-contraindicated", "methadone.qtc-prolonged"):
            assert outcome(report, rule_id) == "not checked"
        assert {n.missing for n in report.not_checked} == {"qtc"}

    def test_applies_to_main_opioid_methadone_only(self) -> None:
        """Methadone as main opioid is gated; oxycodone is not."""
        steps = [
            OpioidStep(drug="oxycodone", dose="5 mg", every="4 h"),
            OpioidStep(drug="methadone", dose="5 mg", every="8 h"),
        ]
        report = check(RULES, steps, Patient(qtc="520 ms"))
        assert outcome(report, "methadone.qtc-contraindicated", 0) is None
        assert outcome(report, "methadone.qtc-contraindicated", 1) == "flagged"


class TestEcgRequired:
    def test_no_qtc_warns_with_the_schedule(self) -> None:
        """Without a QTc: a warning whose detail carries the VA/DoD ECG schedule."""
        step = adjuvant(titration=[{"day": 7, "dose": "7.5 mg"}, {"day": 14, "dose": "10 mg"}])
        (f,) = findings_of(check(RULES, [step]), "methadone.ecg-required")
        assert f.severity == "warning"
        assert f.level == "V"
        assert f.source == ("va-dod-opioid-cpg",)
        schedule = f.detail["ecg_schedule"]
        assert any("baseline" in s for s in schedule)
        assert any("2-4 weeks" in s for s in schedule)
        assert any("30-40 mg/day" in s for s in schedule)
        assert any("100 mg/day" in s for s in schedule)
        assert f.detail["checkpoints_reached"] == ["30 mg/day on day 14"]
        assert "day 14" in f.message
        for entry in schedule:  # the message carries every entry of data/methadone.toml
            assert entry in f.message
        assert "(VA/DoD Table D-4)" in f.message

    def test_schedule_text_comes_from_the_data_file(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The message is built from the [ecg] entries: another schedule gives another text."""
        real = rules_methadone._values()
        changed = attrs.evolve(real, ecg_schedule=("ECG weekly", "ECG at night"), ecg_note="X")
        monkeypatch.setattr(rules_methadone, "_values", lambda: changed)
        (f,) = findings_of(check(RULES, [adjuvant()]), "methadone.ecg-required")
        assert "ECG schedule for methadone (X): ECG weekly; ECG at night." in f.message
        assert "baseline" not in f.message

    def test_qtc_recorded_passes(self) -> None:
        """With a QTc recorded the rule passes."""
        assert outcome(check(RULES, [adjuvant()], QTC_OK), "methadone.ecg-required") == "passed"

    def test_not_for_other_opioids(self) -> None:
        """Oxycodone needs no methadone ECG."""
        step = OpioidStep(drug="oxycodone", dose="5 mg", every="4 h")
        assert outcome(check(RULES, [step]), "methadone.ecg-required") is None


class TestTitrationInterval:
    def test_increase_before_day_7_is_a_warning(self) -> None:
        """An increase 5 days after the start is flagged, with the days shown."""
        step = adjuvant(titration=[{"day": 5, "dose": "7.5 mg"}])
        (f,) = findings_of(check(RULES, [step], QTC_OK), "methadone.titration-interval")
        assert f.severity == "warning"
        assert f.level == "V"
        assert f.arithmetic == "day 5 − day 0 = 5 days < 7 days"
        assert f.source == ("methapain-label", "va-2016-methadone")
        assert "after the start" in f.message
        assert "15 to 22.5 mg/day" in f.message

    def test_weekly_increases_pass(self) -> None:
        """Increases on days 7 and 14 pass."""
        step = adjuvant(titration=[{"day": 7, "dose": "7.5 mg"}, {"day": 14, "dose": "10 mg"}])
        assert outcome(check(RULES, [step], QTC_OK), "methadone.titration-interval") == "passed"

    def test_interval_counts_from_the_previous_increase(self) -> None:
        """Day 7 then day 10: the second increase is 3 days after the previous one."""
        step = adjuvant(titration=[{"day": 7, "dose": "7.5 mg"}, {"day": 10, "dose": "10 mg"}])
        (f,) = findings_of(check(RULES, [step], QTC_OK), "methadone.titration-interval")
        assert "after the previous increase (day 7)" in f.message
        assert f.arithmetic == "day 10 − day 7 = 3 days < 7 days"

    def test_a_decrease_does_not_reset_the_clock(self) -> None:
        """Up on day 7, down on day 9, up on day 12: 5 days after the last increase."""
        step = adjuvant(
            titration=[
                {"day": 7, "dose": "7.5 mg"},
                {"day": 9, "dose": "5 mg"},
                {"day": 12, "dose": "7.5 mg"},
            ]
        )
        (f,) = findings_of(check(RULES, [step], QTC_OK), "methadone.titration-interval")
        assert f.detail["day"] == 12
        assert f.detail["previous_day"] == 7

    def test_counts_from_the_start_day(self) -> None:
        """A step starting on day 3 and rising on day 9 is flagged (6 days)."""
        step = adjuvant(start_day=3, titration=[{"day": 9, "dose": "7.5 mg"}])
        (f,) = findings_of(check(RULES, [step], QTC_OK), "methadone.titration-interval")
        assert f.arithmetic == "day 9 − day 3 = 6 days < 7 days"

    def test_a_continuous_infusion_titrates_its_rate(self) -> None:
        """A subcutaneous infusion whose rate rises on day 2 is flagged."""
        step = OpioidStep(
            drug="methadone",
            route="subcutaneous",
            rate="0.5 mg/h",
            titration=[{"day": 2, "rate": "0.75 mg/h"}],
        )
        (f,) = findings_of(check(RULES, [step], QTC_OK), "methadone.titration-interval")
        assert "12 to 18 mg/day" in f.message

    def test_no_titration_passes(self) -> None:
        """A fixed dose has no increase: passed."""
        assert outcome(check(RULES, [adjuvant()], QTC_OK), "methadone.titration-interval") == (
            "passed"
        )


class TestInteraction:
    def test_inducer_medication_warns_and_says_unverified(self) -> None:
        """Rifampicin among the medicines warns; the entry is [U] and the finding says so."""
        report = check(RULES, [adjuvant()], Patient(qtc="420 ms", medications=["Rifampicin"]))
        (f,) = findings_of(report, "methadone.interaction")
        assert f.severity == "warning"
        assert f.level == "U"
        assert "unverified [U]" in f.message
        assert "CYP inducer" in f.message
        assert f.source == ("methadone-us-label",)

    def test_tricyclic_step_is_a_cyp_inhibitor(self) -> None:
        """An amitriptyline step reduces methadone clearance [S, GlobalRPh]."""
        steps = [
            adjuvant(),
            AdjuvantStep(drug="amitriptyline", role="neuropathic", dose="10 mg", once=True),
        ]
        (f,) = findings_of(check(RULES, steps, QTC_OK), "methadone.interaction")
        assert f.level == "S"
        assert f.source == ("globalrph-methadone",)
        assert f.detail["interacting_step"] == 1
        assert "amitriptyline (step 2)" in f.message

    def test_dexamethasone_lowers_potassium(self) -> None:
        """A dexamethasone step is flagged as a hypokalaemia risk (Japanese label, V)."""
        steps = [
            adjuvant(),
            AdjuvantStep(drug="dexamethasone", role="anti-inflammatory", dose="8 mg", once=True),
        ]
        (f,) = findings_of(check(RULES, steps, QTC_OK), "methadone.interaction")
        assert f.level == "V"
        assert f.source == ("methapain-label",)
        assert "hypokalaemia" in f.message

    def test_partial_agonist_step(self) -> None:
        """A buprenorphine patch with methadone may precipitate withdrawal."""
        steps = [adjuvant(), OpioidStep(drug="buprenorphine", route="transdermal", rate="5 mcg/h")]
        (f,) = findings_of(check(RULES, steps, QTC_OK), "methadone.interaction")
        assert "withdrawal" in f.message
        assert f.level == "V"

    def test_combination_medicine_is_split(self) -> None:
        """'lopinavir/ritonavir' gives one finding per component."""
        patient = Patient(qtc="420 ms", medications=["lopinavir/ritonavir"])
        found = findings_of(check(RULES, [adjuvant()], patient), "methadone.interaction")
        assert sorted(f.detail["interacting"] for f in found) == [
            "lopinavir/ritonavir (lopinavir; patient medication)",
            "lopinavir/ritonavir (ritonavir; patient medication)",
        ]

    def test_qt_prolonging_class_by_name_with_strength(self) -> None:
        """'Haloperidol 1 mg' is an antipsychotic: flagged for QT."""
        patient = Patient(qtc="420 ms", medications=["Haloperidol 1 mg"])
        (f,) = findings_of(check(RULES, [adjuvant()], patient), "methadone.interaction")
        assert "antipsychotic" in f.message

    def test_no_interacting_drug_passes(self) -> None:
        """Oxycodone and paracetamol do not interact with methadone in the table: passed."""
        steps = [adjuvant(), OpioidStep(drug="oxycodone", dose="5 mg", every="4 h")]
        patient = Patient(qtc="420 ms", medications=["paracetamol"])
        assert outcome(check(RULES, steps, patient), "methadone.interaction") == "passed"

    def test_unknown_medicine_is_not_checked(self) -> None:
        """A medicine the library does not know cannot be ruled out: not checked, named."""
        patient = Patient(qtc="420 ms", medications=["letrozole"])
        report = check(RULES, [adjuvant()], patient)
        assert outcome(report, "methadone.interaction") == "not checked"
        (n,) = [n for n in report.not_checked if n.rule == "methadone.interaction"]
        assert n.missing == "medication classes"
        assert "letrozole" in n.reason

    def test_medications_not_recorded_is_not_checked(self) -> None:
        """Methadone with the medicines not recorded: not checked, naming 'medications'."""
        report = check(RULES, [adjuvant()], QTC_OK)
        assert outcome(report, "methadone.interaction") == "not checked"
        (n,) = [n for n in report.not_checked if n.rule == "methadone.interaction"]
        assert n.missing == "medications"

    def test_recorded_no_medications_passes(self) -> None:
        """Methadone alone with medications = [] (takes none): passed."""
        patient = Patient(qtc="420 ms", medications=[])
        assert outcome(check(RULES, [adjuvant()], patient), "methadone.interaction") == "passed"

    def test_not_recorded_needs_methadone(self) -> None:
        """Without methadone the rule does not apply, recorded medicines or not."""
        step = OpioidStep(drug="oxycodone", dose="5 mg", every="4 h")
        assert outcome(check(RULES, [step]), "methadone.interaction") is None

    def test_unknown_medicine_listed_with_a_finding(self) -> None:
        """With a finding, the unclassified medicines are listed in its detail."""
        patient = Patient(qtc="420 ms", medications=["letrozole", "fluconazole"])
        (f,) = findings_of(check(RULES, [adjuvant()], patient), "methadone.interaction")
        assert f.detail["unclassified_medications"] == ["letrozole"]


class TestProperties:
    @settings(max_examples=40, deadline=None)
    @given(
        mass_pairs(1, 400),
        st.sampled_from(["6 h", "8 h", "12 h"]),
        st.one_of(st.none(), mass_pairs(1, 400)),
        st.integers(1, 14),
        st.sampled_from([None, "420 ms", "470 ms", "510 ms"]),
    )
    def test_mg_and_mcg_give_the_same_findings(
        self,
        dose: tuple[str, str],
        every: str,
        later: tuple[str, str] | None,
        day: int,
        qtc: str | None,
    ) -> None:
        """A methadone dose written in mg or in mcg gives the same findings."""
        reports = []
        for unit in (0, 1):
            titration = [{"day": day, "dose": later[unit]}] if later else []
            step = adjuvant(dose[unit], every, titration=titration)
            reports.append(check(RULES, [step], Patient(qtc=qtc, medications=["sertraline"])))
        assert finding_keys(reports[0]) == finding_keys(reports[1])

    @settings(max_examples=40, deadline=None)
    @given(
        mass_pairs(1, 300),
        st.sampled_from([None, "470 ms", "510 ms"]),
        st.lists(st.sampled_from(["rifampicin", "haloperidol", "letrozole"]), max_size=2),
        unrelated_steps(),
    )
    def test_an_unrelated_step_never_removes_a_finding(
        self, dose: tuple[str, str], qtc: str | None, meds: list[str], extra: Any
    ) -> None:
        """Appending a radiotherapy, block or ketamine step keeps every methadone finding."""
        steps: list[Any] = [adjuvant(dose[0], titration=[{"day": 3, "dose": "10 mg"}])]
        before = check(RULES, steps, Patient(qtc=qtc, medications=meds))
        after = check(RULES, [*steps, extra], Patient(qtc=qtc, medications=meds))
        assert set(finding_keys(before)) <= set(finding_keys(after))


class TestInteractionLinear:
    def test_one_finding_per_interacting_party_naming_every_methadone_step(self) -> None:
        """Main and adjuvant methadone with fluconazole: one finding per entry, not per step."""
        steps = [
            mps.OpioidStep(drug="methadone", dose="5 mg", every="8 h"),
            mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h"),
        ]
        patient = mps.Patient(medications=["fluconazole"], qtc="420 ms")
        report = mps.validate(mps.Regimen(steps), patient)
        found = [f for f in report.findings if f.code == "methadone.interaction"]
        assert found
        assert {f.step for f in found} == {0}
        assert all(f.detail["methadone_steps"] == [0, 1] for f in found)
        assert len({f.detail["entry"] for f in found}) == len(found)
