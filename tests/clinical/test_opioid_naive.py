"""Red team: starting doses when not opioid tolerant (``opioid.naive-starting-dose``).

Each case's source is the label or study of ``data/opioid-naive.toml`` it rests on; a patient
recorded as not opioid tolerant is ``opioid_tolerant=False``.  Above a published starting dose is
a warning, more than twice it an error (a usual range, the severity policy); a label's
reservation for opioid-tolerant patients exceeded is an error; tolerance not recorded is
*not checked*.
"""

from __future__ import annotations

import pytest
from _redteam import Case, check, run

import mps_analgesia as mps

Op = mps.OpioidStep
CODE = "opioid.naive-starting-dose"


def _naive() -> mps.Patient:
    return mps.Patient(opioid_tolerant=False, qtc="420 ms", medications=[])


def _unknown() -> mps.Patient:
    return mps.Patient(qtc="420 ms", medications=[])


def _tolerant() -> mps.Patient:
    return mps.Patient(opioid_tolerant=True, qtc="420 ms", medications=[])


DANGEROUS = [
    Case(
        "oxycodone-ir-20mg-naive",
        "oxycodone IR 20 mg every 4 h, first opioid: above the label's 5-15 mg "
        "(oxycodone-ir-label [S]) -> warning (within twice the top)",
        lambda: [Op(drug="oxycodone", dose="20 mg", every="4 h")],
        _naive,
        CODE,
        "warning",
    ),
    Case(
        "oxycodone-ir-40mg-naive",
        "oxycodone IR 40 mg every 4 h, first opioid: 2.7x the label's top of 15 mg -> error",
        lambda: [Op(drug="oxycodone", dose="40 mg", every="4 h")],
        _naive,
        CODE,
        "error",
    ),
    Case(
        "oxycontin-60mg-naive",
        "OxyContin 60 mg every 12 h in a non-tolerant patient: a single dose above 40 mg is "
        "only for opioid-tolerant patients (oxycontin-label [S])",
        lambda: [Op(drug="oxycodone", formulation="modified-release", dose="60 mg", every="12 h")],
        _naive,
        CODE,
        "error",
    ),
    Case(
        "oxycontin-40mg-bid-naive",
        "OxyContin 40 mg every 12 h (80 mg/day) as a first opioid: 4x the label's 10 mg start",
        lambda: [Op(drug="oxycodone", formulation="modified-release", dose="40 mg", every="12 h")],
        _naive,
        CODE,
        "error",
    ),
    Case(
        "oxycontin-30mg-tid-naive",
        "OxyContin 30 mg every 8 h (90 mg/day) in a non-tolerant patient: above the label's "
        "80 mg/day reservation for tolerant patients",
        lambda: [Op(drug="oxycodone", formulation="modified-release", dose="30 mg", every="8 h")],
        _naive,
        CODE,
        "error",
    ),
    Case(
        "morphine-ir-100mg-naive",
        "oral morphine 100 mg every 4 h as a first opioid: 3.3x the label's top of 30 mg "
        "(morphine-ir-label-secondary [S])",
        lambda: [Op(drug="morphine", dose="100 mg", every="4 h")],
        _naive,
        CODE,
        "error",
    ),
    Case(
        "morphine-mr-30mg-naive",
        "MR morphine 30 mg every 12 h as a first opioid: above the 15 mg start "
        "(morphine-er-label-secondary [S]) -> warning",
        lambda: [Op(drug="morphine", formulation="modified-release", dose="30 mg", every="12 h")],
        _naive,
        CODE,
        "warning",
    ),
    Case(
        "hydromorphone-24mg-naive",
        "oral hydromorphone 24 mg every 4 h as a first opioid: 2.4x the Dilaudid solution "
        "top of 10 mg (dilaudid-label [S])",
        lambda: [Op(drug="hydromorphone", dose="24 mg", every="4 h")],
        _naive,
        CODE,
        "error",
    ),
    Case(
        "methadone-first-line-10mg-tid",
        "methadone first-line 10 mg every 8 h (30 mg/day) in a non-tolerant patient: 3.3x the "
        "9 mg/day start of Mercadante 2022 [V] -> error",
        lambda: [Op(drug="methadone", dose="10 mg", every="8 h")],
        _naive,
        CODE,
        "error",
    ),
    Case(
        "methadone-first-line-5mg-tid",
        "methadone first-line 5 mg every 8 h (15 mg/day): above Mercadante's 9 mg/day [V], "
        "within twice it -> warning",
        lambda: [Op(drug="methadone", dose="5 mg", every="8 h")],
        _naive,
        CODE,
        "warning",
    ),
    Case(
        "buccal-fentanyl-naive",
        "buccal fentanyl 100 mcg in a non-tolerant patient: contraindicated at any dose "
        "(Fentora label, fentora-contraindications [S])",
        lambda: [Op(drug="fentanyl", route="buccal", dose="100 mcg", every="4 h", prn=True)],
        _naive,
        CODE,
        "error",
    ),
    Case(
        "tolerance-not-recorded",
        "oxycodone IR with opioid tolerance not recorded: not checked, never passed",
        lambda: [Op(drug="oxycodone", dose="5 mg", every="4 h")],
        _unknown,
        CODE,
        "not_checked",
    ),
]

PUBLISHED = [
    Case(
        "oxycodone-ir-5mg",
        "oxycodone IR 5 mg every 4 h as first opioid (label 5-15 mg every 4-6 h [S])",
        lambda: [Op(drug="oxycodone", dose="5 mg", every="4 h")],
        _naive,
        CODE,
        "passed",
    ),
    Case(
        "oxycodone-ir-15mg-q6h",
        "oxycodone IR 15 mg every 6 h: the top of the label's range [S]",
        lambda: [Op(drug="oxycodone", dose="15 mg", every="6 h")],
        _naive,
        CODE,
        "passed",
    ),
    Case(
        "oxycontin-10mg-bid",
        "OxyContin 10 mg every 12 h: the label's start for a non-tolerant patient [S]",
        lambda: [Op(drug="oxycodone", formulation="modified-release", dose="10 mg", every="12 h")],
        _naive,
        CODE,
        "passed",
    ),
    Case(
        "morphine-ir-15mg-q4h",
        "oral morphine 15 mg every 4 h, opioid-naive (label 15-30 mg [S])",
        lambda: [Op(drug="morphine", dose="15 mg", every="4 h")],
        _naive,
        CODE,
        "passed",
    ),
    Case(
        "morphine-ir-30mg-q4h",
        "oral morphine 30 mg every 4 h: the top of the label's starting range [S]",
        lambda: [Op(drug="morphine", dose="30 mg", every="4 h")],
        _naive,
        CODE,
        "passed",
    ),
    Case(
        "morphine-mr-15mg-bid",
        "MR morphine 15 mg every 12 h as the first opioid [S]",
        lambda: [Op(drug="morphine", formulation="modified-release", dose="15 mg", every="12 h")],
        _naive,
        CODE,
        "passed",
    ),
    Case(
        "hydromorphone-2mg-q4h",
        "Dilaudid tablets 2-4 mg every 4-6 h: 2 mg every 4 h [S]",
        lambda: [Op(drug="hydromorphone", dose="2 mg", every="4 h")],
        _naive,
        CODE,
        "passed",
    ),
    Case(
        "hydromorphone-solution-10mg",
        "Dilaudid oral solution 10 mg every 6 h: the top of its 2.5-10 mg range [S]",
        lambda: [Op(drug="hydromorphone", dose="10 mg", every="6 h")],
        _naive,
        CODE,
        "passed",
    ),
    Case(
        "mercadante-naive-6mg",
        "methadone first-line, opioid-naive: 2 mg every 8 h = 6 mg/day (Mercadante 2022 [V])",
        lambda: [Op(drug="methadone", dose="2 mg", every="8 h")],
        _naive,
        CODE,
        "passed",
    ),
    Case(
        "mercadante-low-ome-9mg",
        "methadone first-line on < 60 mg/day OME: 3 mg every 8 h = 9 mg/day (Mercadante [V])",
        lambda: [Op(drug="methadone", dose="3 mg", every="8 h")],
        _naive,
        CODE,
        "passed",
    ),
    Case(
        "mercadante-titrated-later",
        "methadone 2 mg every 8 h titrated to 5 mg from day 7 (VA 2016 [V]: no increase "
        "before 5-7 days): the start is what is checked",
        lambda: [
            Op(
                drug="methadone",
                dose="2 mg",
                every="8 h",
                titration=[{"day": 7, "dose": "5 mg"}],
            )
        ],
        _naive,
        CODE,
        "passed",
    ),
    Case(
        "prn-oxycodone-5mg",
        "PRN oxycodone IR 5 mg every 2 h, at most 6 doses a day (label 5-15 mg [S]; the per-day "
        "limit does not apply to as-needed doses)",
        lambda: [Op(drug="oxycodone", dose="5 mg", every="2 h", prn=True, max_doses_per_24h=6)],
        _naive,
        CODE,
        "passed",
    ),
    Case(
        "tolerant-oxycontin-60mg",
        "OxyContin 60 mg every 12 h in a tolerant patient: not this rule's (label reserves it "
        "for tolerant patients)",
        lambda: [Op(drug="oxycodone", formulation="modified-release", dose="60 mg", every="12 h")],
        _tolerant,
        CODE,
        "clean",
    ),
    Case(
        "tolerant-buccal-fentanyl",
        "buccal fentanyl 100 mcg PRN in an opioid-tolerant cancer patient (Fentora indication)",
        lambda: [
            Op(drug="fentanyl", route="transdermal", rate="25 mcg/h"),
            Op(drug="fentanyl", route="buccal", dose="100 mcg", every="4 h", prn=True),
        ],
        _tolerant,
        CODE,
        "clean",
    ),
]


@pytest.mark.parametrize("case", DANGEROUS, ids=lambda c: c.id)
def test_dangerous_start_trips(case: Case) -> None:
    """A start above the published one in a non-tolerant patient is flagged (see the source)."""
    check(case)


@pytest.mark.parametrize("case", PUBLISHED, ids=lambda c: c.id)
def test_published_start_is_clean(case: Case) -> None:
    """A published starting dose raises nothing (see the source)."""
    check(case)


def test_a_label_reservation_replaces_the_starting_dose_finding() -> None:
    """OxyContin 60 mg in a non-tolerant patient gives one finding, the label's reservation
    for tolerant patients, not a second one about the 10 mg start."""
    report = run(DANGEROUS[2])
    found = [f for f in report.findings if f.code == CODE]
    assert len(found) == 1
    assert "reserves for opioid-tolerant patients" in found[0].message


def test_not_checked_names_what_to_record() -> None:
    """Tolerance not recorded: the not-checked reason says to record opioid_tolerant."""
    report = run(DANGEROUS[-1])
    reasons = [n.reason for n in report.not_checked if n.rule == CODE]
    assert reasons
    assert "opioid_tolerant" in reasons[0]


def test_a_drug_without_a_row_is_not_this_rules() -> None:
    """Tapentadol has no starting dose in data: nothing is reported, not even not checked."""
    report = mps.validate(
        mps.Regimen([Op(drug="tapentadol", dose="50 mg", every="6 h")]), _unknown()
    )
    assert not any(n.rule == CODE for n in report.not_checked)
    assert not any(r == CODE for r, _ in report.passed)


def test_a_fentanyl_patch_in_a_naive_patient_is_the_patch_rules_error() -> None:
    """Fentanyl 25 mcg/h patch, patient recorded as not opioid tolerant: the patch label's
    tolerant-only use (fda-opioid-tolerance [S]) is opioid.fentanyl-patch-not-tolerant's error;
    the starting-dose rule adds nothing of its own (no double finding)."""
    report = mps.validate(
        mps.Regimen([Op(drug="fentanyl", route="transdermal", rate="25 mcg/h")]), _naive()
    )
    assert "error" in {
        f.severity for f in report.findings if f.code == "opioid.fentanyl-patch-not-tolerant"
    }
    assert not [f for f in report.findings if f.code == CODE]
    assert not [n for n in report.not_checked if n.rule == CODE]
