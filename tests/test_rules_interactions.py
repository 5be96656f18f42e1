"""The interaction rules, the medicine-name resolver and the interaction data file."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mps_analgesia import AdjuvantStep, MethadoneAdjuvantStep, OpioidStep, Patient, _catalog
from mps_analgesia.rules import default_rules
from mps_analgesia.rules import interactions as rules_interactions
from mps_analgesia.rules.interactions import resolve_medication, tables
from strategies_safety import (
    check,
    finding_keys,
    findings_of,
    mass_pairs,
    missing_of,
    outcome,
    unrelated_steps,
)

RULES = rules_interactions.RULES
BENZO = "interaction.opioid-benzodiazepine"
SERO = "interaction.serotonergic"
DUP = "interaction.duplicate-class"


def oxycodone() -> OpioidStep:
    return OpioidStep(drug="oxycodone", dose="5 mg", every="4 h")


def tramadol(dose: str = "50 mg") -> OpioidStep:
    return OpioidStep(drug="tramadol", dose=dose, every="6 h")


def adjuvant(drug: str, role: str = "neuropathic", dose: str = "10 mg") -> AdjuvantStep:
    return AdjuvantStep(drug=drug, role=role, dose=dose, every="12 h")


class TestRegistry:
    def test_rule_ids_are_the_public_codes(self) -> None:
        """The module declares the three interaction codes, all in the default registry."""
        ids = [r.id for r in RULES]
        assert ids == [BENZO, SERO, DUP]
        assert set(ids) <= set(default_rules().ids)


class TestOpioidBenzodiazepine:
    def test_benzodiazepine_step_warns(self) -> None:
        """Oxycodone with a diazepam step: a [U] warning naming both, with its sources."""
        report = check(RULES, [oxycodone(), adjuvant("diazepam", "muscle-spasm", "5 mg")])
        (f,) = findings_of(report, BENZO)
        assert f.severity == "warning"
        assert f.level == "U"
        assert f.source == ("fda-2016-opioid-benzodiazepine", "cdc-2022")
        assert "oxycodone (step 1)" in f.message
        assert "diazepam (step 2)" in f.message
        assert "unverified [U]" in f.message
        assert f.step is None
        assert f.detail["benzodiazepine_steps"] == [1]

    def test_benzodiazepine_medication_warns(self) -> None:
        """Adjuvant methadone with lorazepam among the medicines warns."""
        step = MethadoneAdjuvantStep(dose="5 mg", every="8 h")
        (f,) = findings_of(check(RULES, [step], Patient(medications=["Lorazepam 1 mg"])), BENZO)
        assert f.detail["benzodiazepines"] == ["lorazepam 1 mg (patient medication)"]

    def test_no_benzodiazepine_passes(self) -> None:
        """An opioid with paracetamol: passed."""
        report = check(RULES, [oxycodone()], Patient(medications=["paracetamol"]))
        assert outcome(report, BENZO, None) == "passed"

    def test_no_opioid_is_not_applicable(self) -> None:
        """A benzodiazepine without an opioid is outside the rule."""
        report = check(RULES, [adjuvant("diazepam", "muscle-spasm", "5 mg")])
        assert outcome(report, BENZO, None) is None

    def test_unknown_medicine_is_not_checked(self) -> None:
        """An unknown medicine cannot be ruled out: not checked, naming it."""
        report = check(RULES, [oxycodone()], Patient(medications=["zopiclone"]))
        assert outcome(report, BENZO, None) == "not checked"
        assert missing_of(report, BENZO, None) == "medication classes"

    def test_medications_not_recorded_is_not_checked(self) -> None:
        """An opioid with the medicines not recorded: not checked, naming 'medications'."""
        for patient in (Patient(), None):
            report = check(RULES, [oxycodone()], patient)
            assert outcome(report, BENZO, None) == "not checked"
            assert missing_of(report, BENZO, None) == "medications"

    def test_recorded_no_medications_passes(self) -> None:
        """An opioid with medications = [] (recorded: takes none): passed."""
        report = check(RULES, [oxycodone()], Patient(medications=[]))
        assert outcome(report, BENZO, None) == "passed"

    def test_step_finding_with_unrecorded_medications_says_so(self) -> None:
        """A benzodiazepine step still warns; the message says the medicines are not recorded."""
        steps = [oxycodone(), adjuvant("diazepam", "muscle-spasm", "5 mg")]
        (f,) = findings_of(check(RULES, steps), BENZO)
        assert "medicines are not recorded" in f.message
        (g,) = findings_of(check(RULES, steps, Patient(medications=[])), BENZO)
        assert "not recorded" not in g.message


class TestSerotonergic:
    def test_tramadol_with_duloxetine_step(self) -> None:
        """Tramadol with a duloxetine step: a [U] warning on serotonin syndrome."""
        report = check(RULES, [tramadol(), adjuvant("duloxetine", dose="30 mg")])
        (f,) = findings_of(report, SERO)
        assert f.severity == "warning"
        assert f.level == "U"
        assert f.source == ("ultram-label",)
        assert "serotonin syndrome" in f.message
        assert "SNRI" in f.message
        assert f.detail["partner_step"] == 1

    @pytest.mark.parametrize(
        ("medicine", "label"),
        [("sertraline", "SSRI"), ("phenelzine", "MAOI"), ("nortriptyline 25 mg", "TCA")],
    )
    def test_methadone_with_a_serotonergic_medicine(self, medicine: str, label: str) -> None:
        """Methadone with an SSRI, MAOI or TCA among the medicines warns, naming the class."""
        step = MethadoneAdjuvantStep(dose="5 mg", every="8 h")
        (f,) = findings_of(check(RULES, [step], Patient(medications=[medicine])), SERO)
        assert label in f.message
        assert f.source == ("methadone-us-label",)

    def test_one_finding_per_opioid_and_partner(self) -> None:
        """Tramadol and methadone with amitriptyline give two findings."""
        steps = [
            tramadol(),
            MethadoneAdjuvantStep(dose="5 mg", every="8 h"),
            adjuvant("amitriptyline"),
        ]
        assert sorted(f.detail["opioid"] for f in findings_of(check(RULES, steps), SERO)) == [
            "methadone",
            "tramadol",
        ]

    def test_no_partner_passes(self) -> None:
        """Tramadol with gabapentin, no other medicines recorded: passed."""
        steps = [tramadol(), adjuvant("gabapentin", dose="300 mg")]
        report = check(RULES, steps, Patient(medications=[]))
        assert outcome(report, SERO, None) == "passed"

    def test_medications_not_recorded_is_not_checked(self) -> None:
        """Tramadol with the medicines not recorded: not checked, naming 'medications'."""
        report = check(RULES, [tramadol(), adjuvant("gabapentin", dose="300 mg")], Patient())
        assert outcome(report, SERO, None) == "not checked"
        assert missing_of(report, SERO, None) == "medications"
        (nc,) = [n for n in report.not_checked if n.rule == SERO]
        assert "tramadol" in nc.reason
        assert "medications = []" in nc.reason

    def test_not_recorded_does_not_apply_without_tramadol_or_methadone(self) -> None:
        """Oxycodone with the medicines not recorded: the serotonergic rule does not apply."""
        assert outcome(check(RULES, [oxycodone()]), SERO, None) is None

    def test_other_opioids_are_not_concerned(self) -> None:
        """Oxycodone with duloxetine is outside the rule."""
        report = check(RULES, [oxycodone(), adjuvant("duloxetine", dose="30 mg")])
        assert outcome(report, SERO, None) is None

    def test_unknown_medicine_is_not_checked(self) -> None:
        """Tramadol with an unknown medicine: not checked."""
        report = check(RULES, [tramadol()], Patient(medications=["mirtazapine"]))
        assert outcome(report, SERO, None) == "not checked"


class TestDuplicateClass:
    def test_two_nsaids(self) -> None:
        """Ibuprofen and naproxen as steps: a [U] warning."""
        steps = [
            adjuvant("ibuprofen", "anti-inflammatory", "400 mg"),
            adjuvant("naproxen", "anti-inflammatory", "250 mg"),
        ]
        (f,) = findings_of(check(RULES, steps), DUP)
        assert f.severity == "warning"
        assert f.level == "U"
        assert f.source == ("nsaid-class-label",)
        assert f.detail["drugs"] == ["ibuprofen", "naproxen"]
        assert "Two NSAIDs" in f.message

    def test_two_gabapentinoids(self) -> None:
        """Gabapentin and pregabalin as steps: a warning from the duplication note."""
        steps = [adjuvant("gabapentin", dose="300 mg"), adjuvant("pregabalin", dose="75 mg")]
        (f,) = findings_of(check(RULES, steps), DUP)
        assert f.source == ("therapeutic-duplication-note",)
        assert "unverified [U]" in f.message

    def test_same_drug_regular_and_prn_passes(self) -> None:
        """Ibuprofen regular and PRN is one drug: passed."""
        steps = [
            adjuvant("ibuprofen", "anti-inflammatory", "400 mg"),
            AdjuvantStep(
                drug="ibuprofen",
                role="anti-inflammatory",
                dose="200 mg",
                every="6 h",
                prn=True,
                max_doses_per_24h=2,
            ),
        ]
        assert outcome(check(RULES, steps, Patient(medications=[])), DUP, None) == "passed"

    def test_no_class_step_is_not_applicable(self) -> None:
        """A regimen with neither NSAIDs nor gabapentinoids is outside the rule."""
        assert outcome(check(RULES, [oxycodone()]), DUP, None) is None

    def test_nsaid_step_and_nsaid_medication_warns(self) -> None:
        """An ibuprofen step with diclofenac among the medicines: a warning naming both."""
        step = adjuvant("ibuprofen", "anti-inflammatory", "400 mg")
        (f,) = findings_of(check(RULES, [step], Patient(medications=["diclofenac"])), DUP)
        assert f.severity == "warning"
        assert f.detail["drugs"] == ["ibuprofen", "diclofenac"]
        assert f.detail["steps"] == [0]
        assert f.detail["medications"] == ["diclofenac (patient medication)"]
        assert "ibuprofen (step 1)" in f.message
        assert "diclofenac (patient medication)" in f.message

    def test_gabapentinoid_step_and_medication_warns(self) -> None:
        """A gabapentin step with pregabalin among the medicines warns."""
        step = adjuvant("gabapentin", dose="300 mg")
        (f,) = findings_of(check(RULES, [step], Patient(medications=["Pregabalin 75 mg"])), DUP)
        assert f.detail["class"] == "gabapentinoid"

    def test_same_drug_as_step_and_medication_passes(self) -> None:
        """An ibuprofen step with ibuprofen among the medicines is one drug: passed."""
        step = adjuvant("ibuprofen", "anti-inflammatory", "400 mg")
        report = check(RULES, [step], Patient(medications=["ibuprofen"]))
        assert outcome(report, DUP, None) == "passed"

    def test_medications_only_is_not_applicable(self) -> None:
        """Two NSAIDs among the medicines and none as a step: outside the rule."""
        report = check(RULES, [oxycodone()], Patient(medications=["ibuprofen", "naproxen"]))
        assert outcome(report, DUP, None) is None

    def test_medications_not_recorded_is_not_checked(self) -> None:
        """An NSAID step with the medicines not recorded: not checked, naming 'medications'."""
        report = check(RULES, [adjuvant("ibuprofen", "anti-inflammatory", "400 mg")])
        assert outcome(report, DUP, None) == "not checked"
        assert missing_of(report, DUP, None) == "medications"

    def test_unknown_medicine_is_not_checked(self) -> None:
        """An NSAID step with an unknown medicine: it cannot be ruled out, not checked."""
        step = adjuvant("ibuprofen", "anti-inflammatory", "400 mg")
        report = check(RULES, [step], Patient(medications=["letrozole"]))
        assert missing_of(report, DUP, None) == "medication classes"


class TestResolver:
    @pytest.mark.parametrize(
        ("name", "drug", "cls"),
        [
            ("Sertraline", "sertraline", "ssri"),
            ("sertraline 50 mg tablets", "sertraline", "ssri"),
            ("paracetamol", "acetaminophen", "acetaminophen"),
            ("St John's Wort", "st john's wort", None),
            ("valium", None, None),
        ],
    )
    def test_names(self, name: str, drug: str | None, cls: str | None) -> None:
        """Names resolve case-insensitively, strengths dropped, catalog synonyms used."""
        known, unknown = resolve_medication(name)
        if drug is None:
            assert known == ()
            assert unknown == (name.lower(),)
        else:
            assert known[0][0] == drug
            assert (cls in known[0][1]) if cls else known[0][1] == frozenset()

    def test_combinations_are_split(self) -> None:
        """'lopinavir + ritonavir' splits into its two components."""
        known, _ = resolve_medication("lopinavir + ritonavir")
        assert [k[0] for k in known] == ["lopinavir", "ritonavir"]


class TestDataFile:
    def test_every_entry_has_a_known_source_and_level(self) -> None:
        """Each class and interaction entry names a bibliography id and a V/S/U level."""
        t = tables()
        entries: list[Any] = [*t.classes.values(), *t.methadone]
        for e in entries:
            assert e.source in _catalog.sources()
            assert e.level in ("V", "S", "U")
        for e in (t.opioid_benzodiazepine, *t.serotonergic_opioids.values()):
            assert all(s in _catalog.sources() for s in e.sources)

    def test_classic_inducers_are_unverified(self) -> None:
        """Rifampicin, carbamazepine, phenytoin and phenobarbital are [U], as in the reference."""
        inducer = next(e for e in tables().methadone if e.role == "CYP inducer")
        assert inducer.level == "U"
        assert {"rifampicin", "carbamazepine", "phenytoin", "phenobarbital"} <= inducer.drugs

    def test_catalog_classes_are_known(self) -> None:
        """Every catalog drug of an interaction class resolves to that class."""
        for did in _catalog.drug_ids():
            record = _catalog.drug(did)
            if record.drug_class in tables().classes:
                assert record.drug_class in tables().names[did][1]


class TestProperties:
    @settings(max_examples=40, deadline=None)
    @given(
        mass_pairs(1, 1000),
        st.lists(st.sampled_from(["sertraline", "lorazepam", "letrozole", "naproxen"]), max_size=3),
        st.sampled_from(["tramadol", "oxycodone", "methadone"]),
    )
    def test_mg_and_mcg_give_the_same_findings(
        self, dose: tuple[str, str], meds: list[str], drug: str
    ) -> None:
        """A dose written in mg or in mcg gives the same interaction findings."""
        reports = [
            check(
                RULES,
                [
                    OpioidStep(drug=drug, dose=d, every="8 h"),
                    adjuvant("amitriptyline", dose=d),
                    adjuvant("ibuprofen", "anti-inflammatory", d),
                ],
                Patient(medications=meds),
            )
            for d in dose
        ]
        assert finding_keys(reports[0]) == finding_keys(reports[1])

    @settings(max_examples=40, deadline=None)
    @given(
        st.lists(
            st.sampled_from(
                [
                    tramadol(),
                    oxycodone(),
                    adjuvant("diazepam", "muscle-spasm", "5 mg"),
                    adjuvant("duloxetine", dose="30 mg"),
                    adjuvant("gabapentin", dose="300 mg"),
                    adjuvant("pregabalin", dose="75 mg"),
                    adjuvant("naproxen", "anti-inflammatory", "250 mg"),
                    adjuvant("ibuprofen", "anti-inflammatory", "400 mg"),
                ]
            ),
            max_size=5,
        ),
        st.lists(st.sampled_from(["sertraline", "lorazepam", "letrozole"]), max_size=2),
        unrelated_steps(),
    )
    def test_an_unrelated_step_never_removes_a_finding(
        self, steps: list[Any], meds: list[str], extra: Any
    ) -> None:
        """Appending a radiotherapy, block or ketamine step keeps every interaction finding."""
        before = check(RULES, steps, Patient(medications=meds))
        after = check(RULES, [*steps, extra], Patient(medications=meds))
        assert set(finding_keys(before)) <= set(finding_keys(after))
