"""Red-team cases: dangerous regimens that must trip a rule, published regimens that must not.

Each case names its source (the reference notes' section or the label found with the search
tool, as cited in ``data/sources.toml``).  Only published doses are used; where a full text was
not retrieved (Takase 2015 per-patient doses, Agar 2004, Stevens 2010), the case uses the dose
the reference notes give at the level they give it, never a reconstructed one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import pytest

import mps_analgesia as mps

Op = mps.OpioidStep
M = mps.MethadoneAdjuvantStep
A = mps.AdjuvantStep
P = mps.Patient
RT = mps.RadiotherapyStep


@attrs.define(frozen=True)
class Case:
    """A regimen, a patient, and what a pharmacist insists on for one rule.

    ``expect``: ``error`` / ``warning`` / ``info`` (a finding of that code and severity),
    ``clean`` (no finding of that code, and the check ran or did not apply), ``not_checked``,
    ``not_applicable``, ``no_error`` (no error of that code).
    """

    id: str
    source: str
    steps: Callable[[], Sequence[Any]]
    patient: Callable[[], mps.Patient]
    code: str
    expect: str


def _tolerant() -> mps.Patient:
    return P(opioid_tolerant=True, qtc="430 ms", medications=[], anticoagulant="none")


def _outcome(report: mps.Report, code: str) -> set[str]:
    out = {f.severity for f in report.findings if f.code == code}
    if any(n.rule == code for n in report.not_checked):
        out.add("not_checked")
    if any(a.rule == code for a in report.not_applicable):
        out.add("not_applicable")
    if any(r == code for r, _ in report.passed):
        out.add("passed")
    return out


DANGEROUS: list[Case] = [
    Case(
        "fentanyl-patch-mg-for-mcg",
        "issue 12: a patch written 25 mg/h; largest patch 100 mcg/h (RxNorm, omtk-rxnorm-2020)",
        lambda: [Op(drug="fentanyl", route="transdermal", formulation="patch", rate="25 mg/h")],
        _tolerant,
        "dose.implausible",
        "error",
    ),
    Case(
        "buccal-fentanyl-100-mg",
        "issue 12: buccal fentanyl 100 mg; largest buccal unit 1.2 mg (RxNorm)",
        lambda: [Op(drug="fentanyl", route="buccal", dose="100 mg", every="4 h", prn=True)],
        _tolerant,
        "dose.implausible",
        "error",
    ),
    Case(
        "sc-fentanyl-25-mg-per-h",
        "issue 12: SC fentanyl 25 mg/h (mg for mcg); reference rate the largest patch",
        lambda: [Op(drug="fentanyl", route="subcutaneous", rate="25 mg/h")],
        _tolerant,
        "dose.implausible",
        "error",
    ),
    Case(
        "oral-morphine-1000x",
        "mg written for mcg a thousandfold: 10 g oral morphine vs the largest 200 mg unit (RxNorm)",
        lambda: [Op(drug="morphine", dose="10000 mg", every="4 h")],
        _tolerant,
        "dose.implausible",
        "error",
    ),
    Case(
        "oxycodone-unit-slip",
        "oxycodone 1 g per dose: 12.5x the largest 80 mg tablet (RxNorm)",
        lambda: [
            Op(drug="oxycodone", formulation="modified-release", dose="1000 mg", every="12 h")
        ],
        _tolerant,
        "dose.implausible",
        "error",
    ),
    Case(
        "tramadol-10x-label-single",
        "tramadol 1500 mg per dose: more than 10x the Ultram label's 100 mg (ultram-label)",
        lambda: [Op(drug="tramadol", dose="1500 mg", every="12 h")],
        _tolerant,
        "dose.implausible",
        "error",
    ),
    Case(
        "methadone-adjuvant-40-q8h",
        "issue 12: methadone 40 mg every 8 h as adjuvant, 4x the Takase top of 30 mg/day [S]",
        lambda: [
            Op(drug="oxycodone", formulation="modified-release", dose="20 mg", every="12 h"),
            M(dose="40 mg", every="8 h"),
        ],
        _tolerant,
        "methadone.adjuvant-range",
        "error",
    ),
    Case(
        "two-adjuvant-steps-60",
        "issue 12: two methadone_adjuvant steps adding to 60 mg/day (Takase range 15-30 [S])",
        lambda: [
            Op(drug="oxycodone", formulation="modified-release", dose="40 mg", every="12 h"),
            M(dose="10 mg", every="8 h"),
            M(dose="10 mg", every="8 h"),
        ],
        _tolerant,
        "methadone.total-daily",
        "warning",
    ),
    Case(
        "three-adjuvant-steps-90",
        "three adjuvant steps of 30 mg/day each: 3x the Takase top, an error by policy",
        lambda: [
            Op(drug="oxycodone", formulation="modified-release", dose="40 mg", every="12 h"),
            M(dose="10 mg", every="8 h"),
            M(dose="10 mg", every="8 h"),
            M(dose="10 mg", every="8 h"),
        ],
        _tolerant,
        "methadone.total-daily",
        "error",
    ),
    Case(
        "main-plus-adjuvant-methadone",
        "issue 12: main methadone 10 mg q8h plus adjuvant 5 mg q8h = 45 mg/day > 30 [S]",
        lambda: [Op(drug="methadone", dose="10 mg", every="8 h"), M(dose="5 mg", every="8 h")],
        _tolerant,
        "methadone.total-daily",
        "warning",
    ),
    Case(
        "adjuvant-methadone-opioid-naive",
        "issue 12: adjuvant methadone, no opioid, opioid-naive (Methapain label, Japan, [V])",
        lambda: [M(dose="5 mg", every="8 h")],
        lambda: P(opioid_tolerant=False, qtc="430 ms", medications=[]),
        "methadone.adjuvant-without-opioid",
        "error",
    ),
    Case(
        "adjuvant-methadone-weak-opioid-naive",
        "adjuvant methadone on tramadol only, opioid-naive: no strong opioid (Methapain label)",
        lambda: [Op(drug="tramadol", dose="50 mg", every="6 h"), M(dose="5 mg", every="8 h")],
        lambda: P(opioid_tolerant=False, qtc="430 ms", medications=[]),
        "methadone.adjuvant-without-opioid",
        "error",
    ),
    Case(
        "adjuvant-methadone-tolerance-unknown",
        "adjuvant methadone alone, tolerance not recorded: a warning (Methapain label)",
        lambda: [M(dose="5 mg", every="8 h")],
        lambda: P(qtc="430 ms", medications=[]),
        "methadone.adjuvant-without-opioid",
        "warning",
    ),
    Case(
        "adjuvant-methadone-prn-only",
        "adjuvant methadone with only a PRN oxycodone: nothing regular to add to",
        lambda: [
            Op(drug="oxycodone", dose="5 mg", every="4 h", prn=True),
            M(dose="5 mg", every="8 h"),
        ],
        lambda: P(opioid_tolerant=False, qtc="430 ms", medications=[]),
        "methadone.adjuvant-without-opioid",
        "error",
    ),
    Case(
        "nalmefene-with-methadone",
        "issue 12: nalmefene with methadone (Methapain label: contraindicated, [V])",
        lambda: [
            Op(drug="oxycodone", formulation="modified-release", dose="20 mg", every="12 h"),
            M(dose="5 mg", every="8 h"),
        ],
        lambda: P(opioid_tolerant=True, qtc="430 ms", medications=["nalmefene"]),
        "methadone.interaction",
        "error",
    ),
    Case(
        "morphine-rescue-100-on-60",
        "issue 12: 100 mg morphine rescue on 60 mg/day (10x the 1/6 rule, japan-morphine-label)",
        lambda: [
            Op(drug="morphine", dose="10 mg", every="4 h"),
            Op(drug="morphine", dose="100 mg", every="4 h", prn=True),
        ],
        _tolerant,
        "opioid.breakthrough-dose",
        "error",
    ),
    Case(
        "morphine-rescue-15-on-60",
        "15 mg rescue on 60 mg/day: 25 %, above 1/6 but within twice it: a warning",
        lambda: [
            Op(drug="morphine", dose="10 mg", every="4 h"),
            Op(drug="morphine", dose="15 mg", every="4 h", prn=True),
        ],
        _tolerant,
        "opioid.breakthrough-dose",
        "warning",
    ),
    Case(
        "tramadol-400-crcl-20",
        "issue 12: tramadol 400 mg/day at CrCl 20 (Ultram label: below 30, max 200 mg/day [V])",
        lambda: [Op(drug="tramadol", dose="100 mg", every="6 h")],
        lambda: P(creatinine_clearance="20 mL/min", medications=[]),
        "renal.dose-adjust",
        "error",
    ),
    Case(
        "codeine-egfr-20",
        "issue 12: codeine at eGFR 20 (Fast Fact #161: avoid if GFR < 30 [V])",
        lambda: [Op(drug="codeine", dose="30 mg", every="6 h")],
        lambda: P(egfr="20 mL/min/1.73m2", medications=[]),
        "renal.avoid",
        "error",
    ),
    Case(
        "pethidine-egfr-45",
        "issue 12: pethidine at eGFR 45 (SPS: avoid in renal impairment [V]; KDIGO G3a)",
        lambda: [Op(drug="pethidine", dose="50 mg", every="4 h")],
        lambda: P(egfr="45 mL/min/1.73m2", medications=[]),
        "renal.avoid",
        "error",
    ),
    Case(
        "pethidine-egfr-20",
        "pethidine in severe renal impairment (SPS, Fast Fact #161 [V])",
        lambda: [Op(drug="pethidine", dose="50 mg", every="4 h")],
        lambda: P(egfr="20 mL/min/1.73m2", medications=[]),
        "renal.avoid",
        "error",
    ),
    Case(
        "tramadol-er-crcl-20",
        "tramadol ER at CrCl 20 (Ultram ER label: not for CrCl < 30 [V])",
        lambda: [Op(drug="tramadol", formulation="modified-release", dose="100 mg", every="24 h")],
        lambda: P(creatinine_clearance="20 mL/min", medications=[]),
        "renal.avoid",
        "error",
    ),
    Case(
        "ibuprofen-12-g",
        "issue 12: ibuprofen 12 g/day (prescription label maximum 3200 mg/day [S])",
        lambda: [A(drug="ibuprofen", role="anti-inflammatory", dose="4000 mg", every="8 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "error",
    ),
    Case(
        "ibuprofen-4-g",
        "ibuprofen 800 mg five times a day = 4000 mg/day > 3200 [S]",
        lambda: [A(drug="ibuprofen", role="anti-inflammatory", dose="800 mg", times_per_day=5)],
        lambda: P(medications=[]),
        "dose.max-daily",
        "error",
    ),
    Case(
        "naproxen-2-g",
        "naproxen 1000 mg twice daily = 2000 mg/day > 1500 (naproxen label [S])",
        lambda: [A(drug="naproxen", role="anti-inflammatory", dose="1000 mg", every="12 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "error",
    ),
    Case(
        "duloxetine-180",
        "duloxetine 90 mg twice daily = 180 mg/day > 120 (duloxetine label [S])",
        lambda: [A(drug="duloxetine", role="neuropathic", dose="90 mg", every="12 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "error",
    ),
    Case(
        "amitriptyline-400",
        "amitriptyline 400 mg/day > 300 (label, hospitalised maximum [S])",
        lambda: [A(drug="amitriptyline", role="neuropathic", dose="400 mg", every="24 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "error",
    ),
    Case(
        "amitriptyline-200",
        "amitriptyline 200 mg/day: above the outpatient 150 mg/day (label [S]): a warning",
        lambda: [A(drug="amitriptyline", role="neuropathic", dose="200 mg", every="24 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "no_error",
    ),
    Case(
        "dexamethasone-48",
        "dexamethasone 48 mg/day: 3x the largest usual palliative dose, 16 mg/day [S]",
        lambda: [A(drug="dexamethasone", role="anti-inflammatory", dose="48 mg", every="24 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "error",
    ),
    Case(
        "ketamine-oral-1200",
        "oral ketamine 400 mg three times a day: 4x the usual 300 mg/day top [S]",
        lambda: [A(drug="ketamine", role="nmda", dose="400 mg", every="8 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "error",
    ),
    Case(
        "acetaminophen-5-g",
        "acetaminophen 1250 mg four times a day = 5 g/day > 4 g (OTC label [S])",
        lambda: [A(drug="acetaminophen", role="nociceptive", dose="1250 mg", every="6 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "error",
    ),
    Case(
        "acetaminophen-2-g-single",
        "acetaminophen 2 g per dose: above the label's 1 g per dose (unverified: a warning)",
        lambda: [A(drug="acetaminophen", role="nociceptive", dose="2000 mg", every="12 h")],
        lambda: P(medications=[]),
        "dose.max-single",
        "warning",
    ),
]

PUBLISHED: list[Case] = [
    Case(
        "methapain-15-tier",
        "Methapain label starting tier 5 mg three times a day (15 mg/day) [V]; Takase range [S]",
        lambda: [
            Op(drug="oxycodone", formulation="modified-release", dose="40 mg", every="12 h"),
            M(dose="5 mg", every="8 h"),
        ],
        _tolerant,
        "methadone.adjuvant-range",
        "clean",
    ),
    Case(
        "methapain-30-tier",
        "Methapain label tier 10 mg three times a day (30 mg/day) [V]; the Takase top [S]",
        lambda: [
            Op(drug="oxycodone", formulation="modified-release", dose="60 mg", every="12 h"),
            M(dose="10 mg", every="8 h"),
        ],
        _tolerant,
        "methadone.adjuvant-range",
        "clean",
    ),
    Case(
        "methapain-30-tier-total",
        "one adjuvant step of 30 mg/day: the total rule does not double-report it",
        lambda: [
            Op(drug="oxycodone", formulation="modified-release", dose="60 mg", every="12 h"),
            M(dose="10 mg", every="8 h"),
        ],
        _tolerant,
        "methadone.total-daily",
        "clean",
    ),
    Case(
        "methapain-with-oxycodone-prerequisite",
        "adjuvant methadone added to regular oxycodone: the prerequisite is met (Takase 2015)",
        lambda: [
            Op(drug="oxycodone", formulation="modified-release", dose="40 mg", every="12 h"),
            M(dose="5 mg", every="8 h"),
        ],
        lambda: P(qtc="430 ms", medications=[]),
        "methadone.adjuvant-without-opioid",
        "clean",
    ),
    Case(
        "methapain-tolerant-switch",
        "adjuvant methadone in a patient recorded opioid tolerant (>= 60 mg/day OME, label)",
        lambda: [M(dose="5 mg", every="8 h")],
        _tolerant,
        "methadone.adjuvant-without-opioid",
        "clean",
    ),
    Case(
        "mercadante-first-line",
        "Mercadante 2022 [V]: methadone first-line, opioid-naive, 6 mg/day (2 mg every 8 h)",
        lambda: [Op(drug="methadone", dose="2 mg", every="8 h")],
        lambda: P(opioid_tolerant=False, qtc="430 ms", medications=[]),
        "methadone.adjuvant-without-opioid",
        "clean",
    ),
    Case(
        "mercadante-first-line-implausible",
        "Mercadante 2022 [V]: 3 mg every 8 h (9 mg/day) is no unit slip",
        lambda: [Op(drug="methadone", dose="3 mg", every="8 h")],
        lambda: P(opioid_tolerant=False, qtc="430 ms", medications=[]),
        "dose.implausible",
        "clean",
    ),
    Case(
        "mercadante-first-line-dose",
        "a full agonist has no ceiling dose: dose.max-daily is not applicable (fentora-label)",
        lambda: [Op(drug="methadone", dose="2 mg", every="8 h")],
        lambda: P(opioid_tolerant=False, qtc="430 ms", medications=[]),
        "dose.max-daily",
        "not_applicable",
    ),
    Case(
        "sato-add-on-5",
        "Sato 2024 [V]: low-dose add-on methadone 5 mg/day: below the Takase range, only info",
        lambda: [
            Op(drug="oxycodone", formulation="modified-release", dose="40 mg", every="12 h"),
            M(dose="2.5 mg", every="12 h"),
        ],
        _tolerant,
        "methadone.adjuvant-range",
        "info",
    ),
    Case(
        "morphine-rescue-1-6",
        "1/6 rescue: 10 mg morphine on 60 mg/day (Japanese morphine label [V]; reference #23)",
        lambda: [
            Op(drug="morphine", dose="10 mg", every="4 h"),
            Op(drug="morphine", dose="10 mg", every="4 h", prn=True),
        ],
        _tolerant,
        "opioid.breakthrough-dose",
        "clean",
    ),
    Case(
        "oxycodone-rescue-with-adjuvant-methadone",
        "issue 12: a 1/6 oxycodone rescue next to adjuvant methadone (left out of the basis)",
        lambda: [
            Op(drug="oxycodone", formulation="modified-release", dose="30 mg", every="12 h"),
            Op(drug="oxycodone", dose="10 mg", every="4 h", prn=True),
            M(dose="5 mg", every="8 h"),
        ],
        _tolerant,
        "opioid.breakthrough-dose",
        "clean",
    ),
    Case(
        "cdc-oxycodone-er",
        "CDC 2022 worked example: oxycodone ER 10 mg twice a day (30 MME) [V]",
        lambda: [Op(drug="oxycodone", formulation="modified-release", dose="10 mg", every="12 h")],
        _tolerant,
        "dose.implausible",
        "clean",
    ),
    Case(
        "cdc-oxycodone-er-max",
        "oxycodone has no ceiling dose: not applicable, not 'not checked' (issue 12)",
        lambda: [Op(drug="oxycodone", formulation="modified-release", dose="10 mg", every="12 h")],
        _tolerant,
        "dose.max-daily",
        "not_applicable",
    ),
    Case(
        "fentanyl-patch-25",
        "TD fentanyl 25 mcg/h (NOUGG band 60-134 mg/day morphine [V]) in a tolerant patient",
        lambda: [Op(drug="fentanyl", route="transdermal", formulation="patch", rate="25 mcg/h")],
        _tolerant,
        "dose.implausible",
        "clean",
    ),
    Case(
        "fentanyl-patch-100",
        "TD fentanyl 100 mcg/h, the largest patch (RxNorm)",
        lambda: [Op(drug="fentanyl", route="transdermal", formulation="patch", rate="100 mcg/h")],
        _tolerant,
        "dose.implausible",
        "clean",
    ),
    Case(
        "fentanyl-patch-300",
        "TD fentanyl 300 mcg/h (the Duragesic table continues to 300 mcg/h [V]): no slip",
        lambda: [Op(drug="fentanyl", route="transdermal", formulation="patch", rate="300 mcg/h")],
        _tolerant,
        "dose.implausible",
        "clean",
    ),
    Case(
        "fentanyl-buccal-100-mcg",
        "Fentora 100 mcg, its smallest strength (fentora-label)",
        lambda: [Op(drug="fentanyl", route="buccal", dose="100 mcg", every="4 h", prn=True)],
        _tolerant,
        "dose.implausible",
        "clean",
    ),
    Case(
        "fentanyl-buccal-800-mcg",
        "Fentora 800 mcg, its largest strength (fentora-label)",
        lambda: [Op(drug="fentanyl", route="buccal", dose="800 mcg", every="4 h", prn=True)],
        _tolerant,
        "dose.implausible",
        "clean",
    ),
    Case(
        "syringe-driver-morphine-30",
        "end-of-life syringe driver: oral morphine 60 mg/day -> SC 30 mg/24 h (UK guideline, "
        "reference #11 [S]; 2:1 [V]) = 1.25 mg/h",
        lambda: [Op(drug="morphine", route="subcutaneous", rate="1.25 mg/h")],
        _tolerant,
        "dose.implausible",
        "clean",
    ),
    Case(
        "syringe-driver-morphine-max",
        "a syringe driver of morphine has no ceiling dose: not applicable",
        lambda: [Op(drug="morphine", route="subcutaneous", rate="1.25 mg/h")],
        _tolerant,
        "dose.max-daily",
        "not_applicable",
    ),
    Case(
        "ultracet-maximum",
        "Ultracet maximum: 8 tablets = tramadol 300 mg + acetaminophen 2600 mg/day [V]",
        lambda: [
            Op(drug="tramadol", dose="75 mg", every="6 h"),
            A(drug="acetaminophen", role="nociceptive", dose="650 mg", every="6 h"),
        ],
        lambda: P(medications=[], creatinine_clearance="90 mL/min"),
        "dose.max-daily",
        "no_error",
    ),
    Case(
        "ultracet-crcl-20",
        "Ultracet below CrCl 30: 2 tablets every 12 h = tramadol 150 mg/day [V]",
        lambda: [Op(drug="tramadol", dose="75 mg", every="12 h")],
        lambda: P(medications=[], creatinine_clearance="20 mL/min"),
        "renal.dose-adjust",
        "clean",
    ),
    Case(
        "tramadol-crcl-20-label",
        "tramadol 100 mg every 12 h at CrCl 20: the label's 200 mg/day [V]",
        lambda: [Op(drug="tramadol", dose="100 mg", every="12 h")],
        lambda: P(medications=[], creatinine_clearance="20 mL/min"),
        "renal.dose-adjust",
        "clean",
    ),
    Case(
        "gabapentin-crcl-20",
        "gabapentin 700 mg/day at CrCl 20 (label band 200-700 [S]; reference #38)",
        lambda: [A(drug="gabapentin", role="neuropathic", dose="700 mg", every="24 h")],
        lambda: P(medications=[], creatinine_clearance="20 mL/min"),
        "renal.dose-adjust",
        "clean",
    ),
    Case(
        "pregabalin-crcl-45",
        "pregabalin 150 mg twice daily at CrCl 45 (band 75-300 [S]; reference #39)",
        lambda: [A(drug="pregabalin", role="neuropathic", dose="150 mg", every="12 h")],
        lambda: P(medications=[], creatinine_clearance="45 mL/min"),
        "renal.dose-adjust",
        "clean",
    ),
    Case(
        "baclofen-label-max",
        "baclofen 20 mg four times a day = 80 mg/day, the label maximum [S]",
        lambda: [A(drug="baclofen", role="muscle-spasm", dose="20 mg", every="6 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "clean",
    ),
    Case(
        "diazepam-spasm",
        "diazepam 10 mg four times a day for spasm (Valium label [S])",
        lambda: [A(drug="diazepam", role="muscle-spasm", dose="10 mg", every="6 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "clean",
    ),
    Case(
        "dexamethasone-16-scc",
        "dexamethasone 16 mg/day for spinal cord compression (West Midlands [S])",
        lambda: [A(drug="dexamethasone", role="anti-inflammatory", dose="8 mg", every="12 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "clean",
    ),
    Case(
        "dexamethasone-8-nerve",
        "dexamethasone 8 mg/day for nerve compression pain (West Midlands [S])",
        lambda: [A(drug="dexamethasone", role="anti-inflammatory", dose="8 mg", every="24 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "clean",
    ),
    Case(
        "dexamethasone-rt-flare",
        "dexamethasone 8 mg before RT and daily (RT flare prophylaxis [S])",
        lambda: [A(drug="dexamethasone", role="anti-inflammatory", dose="8 mg", every="24 h")],
        lambda: P(medications=[]),
        "dose.implausible",
        "clean",
    ),
    Case(
        "ketamine-oral-usual",
        "oral ketamine 100 mg three times a day = 300 mg/day, the usual top [S]",
        lambda: [A(drug="ketamine", role="nmda", dose="100 mg", every="8 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "clean",
    ),
    Case(
        "ketamine-oral-start",
        "oral ketamine 25 mg four times a day, the usual start [S]",
        lambda: [A(drug="ketamine", role="nmda", dose="25 mg", every="6 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "clean",
    ),
    Case(
        "ibuprofen-uk-palliative",
        "ibuprofen 400 mg three times a day (UK palliative guide [S])",
        lambda: [A(drug="ibuprofen", role="anti-inflammatory", dose="400 mg", every="8 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "clean",
    ),
    Case(
        "ibuprofen-who-step-1",
        "ibuprofen 800 mg every 8 h (WHO step 1 regimen, cancerpain.org.uk [S])",
        lambda: [A(drug="ibuprofen", role="anti-inflammatory", dose="800 mg", every="8 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "clean",
    ),
    Case(
        "naproxen-label",
        "naproxen 500 mg twice daily (label [S])",
        lambda: [A(drug="naproxen", role="anti-inflammatory", dose="500 mg", every="12 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "clean",
    ),
    Case(
        "duloxetine-60",
        "duloxetine 60 mg once daily (label dose for neuropathic pain [S])",
        lambda: [A(drug="duloxetine", role="neuropathic", dose="60 mg", every="24 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "clean",
    ),
    Case(
        "amitriptyline-75",
        "amitriptyline 75 mg/day, the outpatient start (label [S])",
        lambda: [A(drug="amitriptyline", role="neuropathic", dose="75 mg", every="24 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "clean",
    ),
    Case(
        "acetaminophen-1-g-qid",
        "acetaminophen 1 g four times a day = 4 g/day (label [S])",
        lambda: [A(drug="acetaminophen", role="nociceptive", dose="1000 mg", every="6 h")],
        lambda: P(medications=[]),
        "dose.max-single",
        "clean",
    ),
    Case(
        "acetaminophen-1-g-qid-daily",
        "acetaminophen 1 g four times a day = 4 g/day: at, not above, the label maximum",
        lambda: [A(drug="acetaminophen", role="nociceptive", dose="1000 mg", every="6 h")],
        lambda: P(medications=[]),
        "dose.max-daily",
        "clean",
    ),
    Case(
        "letrozole-stays-not-checked",
        "issue 12: an unknown medicine (letrozole) stays not checked, never not applicable",
        lambda: [
            Op(drug="oxycodone", formulation="modified-release", dose="10 mg", every="12 h"),
            M(dose="5 mg", every="8 h"),
        ],
        lambda: P(opioid_tolerant=True, qtc="430 ms", medications=["letrozole"]),
        "methadone.interaction",
        "not_checked",
    ),
    Case(
        "codeine-egfr-60",
        "codeine at eGFR 60 (Fast Fact #161 avoids below 30 only)",
        lambda: [Op(drug="codeine", dose="30 mg", every="6 h")],
        lambda: P(egfr="60 mL/min/1.73m2", medications=[]),
        "renal.avoid",
        "clean",
    ),
    Case(
        "pethidine-normal-renal",
        "pethidine with eGFR 90: the renal avoid rule does not fire",
        lambda: [Op(drug="pethidine", dose="50 mg", every="4 h")],
        lambda: P(egfr="90 mL/min/1.73m2", medications=[]),
        "renal.avoid",
        "clean",
    ),
]

for _frac in [(8.0, 1), (20.0, 5), (24.0, 6), (30.0, 10)]:
    PUBLISHED.append(
        Case(
            f"astro-{_frac[0]:g}-gy-{_frac[1]}",
            "ASTRO 2017 [V]: one of the four equivalent regimens for painful bone metastases",
            lambda f=_frac: [RT(total_dose=f"{f[0]:g} Gy", fractions=f[1], site="L3")],
            lambda: P(),
            "radiotherapy.bed-eqd2",
            "no_error",
        )
    )

for _mps_rt in [(39.0, 13), (24.0, 8), (36.0, 12)]:
    PUBLISHED.append(
        Case(
            f"uno-{_mps_rt[0]:g}-gy-{_mps_rt[1]}",
            "Uno 2024 MPS radiotherapy [V]: 39 Gy/13 planned, relief by 24 Gy/8, stopped 36/12",
            lambda f=_mps_rt: [RT(total_dose=f"{f[0]:g} Gy", fractions=f[1], site="psoas")],
            lambda: P(),
            "radiotherapy.bed-eqd2",
            "no_error",
        )
    )


def _run(case: Case) -> set[str]:
    report = mps.validate(mps.Regimen(list(case.steps())), case.patient())
    return _outcome(report, case.code)


@pytest.mark.parametrize("case", DANGEROUS, ids=lambda c: c.id)
def test_dangerous_regimen_trips_its_rule(case: Case) -> None:
    """A dangerous regimen gives the finding a pharmacist insists on (see the case source)."""
    got = _run(case)
    if case.expect == "no_error":
        assert "error" not in got, (case.source, got)
        assert got & {"warning", "info"}, (case.source, got)
    else:
        assert case.expect in got, (case.source, got)
        if case.expect == "warning":
            assert "error" not in got, (case.source, got)


@pytest.mark.parametrize("case", PUBLISHED, ids=lambda c: c.id)
def test_published_regimen_raises_no_false_alarm(case: Case) -> None:
    """A published regimen followed as published raises no false alarm (see the case source)."""
    got = _run(case)
    if case.expect == "clean":
        assert not got & {"error", "warning", "info"}, (case.source, got)
    elif case.expect == "no_error":
        assert "error" not in got, (case.source, got)
    else:
        assert case.expect in got, (case.source, got)
        assert not got & {"error", "warning"} - {case.expect}, (case.source, got)


def test_multimodal_example_has_no_false_warning() -> None:
    """The shipped examples/mps-multimodal.toml (a Takase regimen with a textbook 1/6
    oxycodone rescue) raises no warning and no error (issue 12)."""
    case = mps.load_case("examples/mps-multimodal.toml")
    report = mps.validate(case.regimen, case.patient)
    assert not report.errors, [f.code for f in report.findings]
    assert not report.warnings, [f.code for f in report.findings]
    assert not [
        n for n in report.not_checked if n.missing == "catalog limit" and "oxycodone" in n.reason
    ]


def test_not_applicable_is_never_passed_and_never_a_card() -> None:
    """A not-applicable check is listed apart: not passed, not a finding, in JSON, no FHIR."""
    reg = mps.Regimen(
        [Op(drug="oxycodone", formulation="modified-release", dose="10 mg", every="12 h")]
    )
    report = mps.validate(reg, _tolerant())
    na = {(a.rule, a.step) for a in report.not_applicable}
    assert ("dose.max-daily", 0) in na
    assert not na & set(report.passed)
    data = report.to_dict()
    assert data["counts"]["not_applicable"] == len(report.not_applicable)
    assert {(d["rule"], d["step"]) for d in data["not_applicable"]} == na
    issues = report.to_fhir()
    assert not [i for i in issues if "no defined maximum" in str(i)]


# ---- blocks and anticoagulation ------------------------------------------------------------------

PCB = mps.PsoasCompartmentBlockStep


def _block_patient(**kw: Any) -> Callable[[], mps.Patient]:
    def make() -> mps.Patient:
        base: dict[str, Any] = {"weight": "70 kg", "anticoagulant": "none", "medications": []}
        base.update(kw)
        return P(**base)

    return make


def _ac(drug: str, **kw: Any) -> mps.Anticoagulant:
    return mps.Anticoagulant(drug=drug, **kw)


BLOCKS: list[tuple[Case, str]] = [
    (
        Case(
            "lidocaine-infusion-48h",
            "issue 12: lidocaine 1 % 20 mL + 10 mL/h for 48 h (~2.6 g/24 h): no 24-h limit in "
            "data, so not checked (lidocaine-label gives bolus limits only)",
            lambda: [
                PCB(
                    drug="lidocaine",
                    concentration="1 %",
                    bolus_volume="20 mL",
                    infusion_rate="10 mL/h",
                    infusion_duration="48 h",
                    side="left",
                    technique="catheter",
                )
            ],
            _block_patient(),
            "block.local-anaesthetic-max",
            "not_checked",
        ),
        "dangerous",
    ),
    (
        Case(
            "bilateral-ropivacaine-60kg",
            "issue 12: left and right psoas blocks, 2 x 150 mg ropivacaine at 60 kg (3 mg/kg "
            "[S] = 180 mg)",
            lambda: [
                PCB(drug="ropivacaine", concentration="0.5 %", bolus_volume="30 mL", side="left"),
                PCB(drug="ropivacaine", concentration="0.5 %", bolus_volume="30 mL", side="right"),
            ],
            _block_patient(weight="60 kg"),
            "block.cumulative-dose",
            "error",
        ),
        "dangerous",
    ),
    (
        Case(
            "bilateral-lidocaine-adrenaline",
            "two lidocaine-with-adrenaline boluses of 49 mL 1 % (490 mg each, reference #32) on "
            "one day: 980 mg > 500 mg (lidocaine-label [V])",
            lambda: [
                PCB(
                    drug="lidocaine",
                    concentration="1 %",
                    bolus_volume="49 mL",
                    adrenaline=True,
                    side="left",
                ),
                PCB(
                    drug="lidocaine",
                    concentration="1 %",
                    bolus_volume="49 mL",
                    adrenaline=True,
                    side="right",
                ),
            ],
            _block_patient(),
            "block.cumulative-dose",
            "error",
        ),
        "dangerous",
    ),
    (
        Case(
            "mixed-agents-same-day",
            "ropivacaine and bupivacaine on the same day: mixing agents is not checked (no "
            "source for summed fractions)",
            lambda: [
                PCB(drug="ropivacaine", concentration="0.5 %", bolus_volume="20 mL", side="left"),
                PCB(drug="bupivacaine", concentration="0.25 %", bolus_volume="20 mL", side="right"),
            ],
            _block_patient(),
            "block.cumulative-dose",
            "not_checked",
        ),
        "dangerous",
    ),
    (
        Case(
            "enoxaparin-70-bid-12h",
            "issue 12: enoxaparin 70 mg twice daily at 72 kg is therapeutic (1 mg/kg BID): 12 h "
            "before a deep plexus block is too soon (asra-2010: 24 h [V])",
            lambda: [
                PCB(drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL", side="left")
            ],
            _block_patient(
                weight="72 kg",
                anticoagulant=_ac("enoxaparin", dose="70 mg", every="12 h", last_dose_ago="12 h"),
            ),
            "block.anticoagulation",
            "error",
        ),
        "dangerous",
    ),
    (
        Case(
            "warfarin-6-days-no-inr",
            "issue 12: warfarin stopped 6 days ago without an INR: not checked, not passed "
            "(asra-2010: about 5 days and a normal INR)",
            lambda: [
                PCB(drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL", side="left")
            ],
            _block_patient(anticoagulant=_ac("warfarin", last_dose_ago="6 day")),
            "block.anticoagulation",
            "not_checked",
        ),
        "dangerous",
    ),
    (
        Case(
            "warfarin-inr-2",
            "warfarin stopped 6 days ago with INR 2.0: above the normal 1.5 (asra-2010 [V])",
            lambda: [
                PCB(drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL", side="left")
            ],
            _block_patient(anticoagulant=_ac("warfarin", last_dose_ago="6 day"), inr=2.0),
            "block.anticoagulation",
            "error",
        ),
        "dangerous",
    ),
    (
        Case(
            "rivaroxaban-20-at-30h",
            "rivaroxaban 20 mg once daily, 30 h before the block: high dose needs 72 h [V]",
            lambda: [
                PCB(drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL", side="left")
            ],
            _block_patient(
                anticoagulant=_ac("rivaroxaban", dose="20 mg", every="24 h", last_dose_ago="30 h")
            ),
            "block.anticoagulation",
            "error",
        ),
        "dangerous",
    ),
    (
        Case(
            "chelly-single-shot",
            "Chelly: 30 mL ropivacaine 0.5 % = 150 mg (reference #34 [V]) at 70 kg",
            lambda: [
                PCB(drug="ropivacaine", concentration="0.5 %", bolus_volume="30 mL", side="left")
            ],
            _block_patient(),
            "block.local-anaesthetic-max",
            "clean",
        ),
        "published",
    ),
    (
        Case(
            "chelly-infusion",
            "Chelly: 20 mL ropivacaine 0.2 % then 8 mL/h for 24 h (reference #35 [V]): 424 mg "
            "< 675 mg",
            lambda: [
                PCB(
                    drug="ropivacaine",
                    concentration="0.2 %",
                    bolus_volume="20 mL",
                    infusion_rate="8 mL/h",
                    infusion_duration="24 h",
                    side="left",
                    technique="catheter",
                )
            ],
            _block_patient(),
            "block.local-anaesthetic-max",
            "clean",
        ),
        "published",
    ),
    (
        Case(
            "capdevila-load",
            "Capdevila 2002: 0.4 mL/kg ropivacaine 0.2 % at 70 kg = 28 mL = 56 mg (#36 [V])",
            lambda: [
                PCB(drug="ropivacaine", concentration="0.2 %", bolus_volume="28 mL", side="left")
            ],
            _block_patient(),
            "block.local-anaesthetic-max",
            "clean",
        ),
        "published",
    ),
    (
        Case(
            "lidocaine-adrenaline-490",
            "lidocaine with adrenaline 49 mL of 1 % = 490 mg at 70 kg (#32 [V])",
            lambda: [
                PCB(
                    drug="lidocaine",
                    concentration="1 %",
                    bolus_volume="49 mL",
                    adrenaline=True,
                    side="left",
                )
            ],
            _block_patient(),
            "block.local-anaesthetic-max",
            "clean",
        ),
        "published",
    ),
    (
        Case(
            "bilateral-small-ropivacaine",
            "left and right blocks of 20 mL ropivacaine 0.2 % (Chelly's 15-20 mL [V]): 80 mg",
            lambda: [
                PCB(drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL", side="left"),
                PCB(drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL", side="right"),
            ],
            _block_patient(),
            "block.cumulative-dose",
            "clean",
        ),
        "published",
    ),
    (
        Case(
            "apixaban-low-40h",
            "apixaban 2.5 mg twice daily, 40 h before the block (low dose: 36 h [V])",
            lambda: [
                PCB(drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL", side="left")
            ],
            _block_patient(
                anticoagulant=_ac("apixaban", dose="2.5 mg", every="12 h", last_dose_ago="40 h")
            ),
            "block.anticoagulation",
            "clean",
        ),
        "published",
    ),
    (
        Case(
            "enoxaparin-prophylactic-14h",
            "enoxaparin 40 mg once daily (prophylactic, Lovenox label [S]) 14 h before: >= 12 h",
            lambda: [
                PCB(drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL", side="left")
            ],
            _block_patient(
                anticoagulant=_ac("enoxaparin", dose="40 mg", every="24 h", last_dose_ago="14 h")
            ),
            "block.anticoagulation",
            "clean",
        ),
        "published",
    ),
    (
        Case(
            "warfarin-6-days-inr-normal",
            "warfarin stopped 6 days ago, INR 1.1: the ASRA interval and a normal INR",
            lambda: [
                PCB(drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL", side="left")
            ],
            _block_patient(anticoagulant=_ac("warfarin", last_dose_ago="6 day"), inr=1.1),
            "block.anticoagulation",
            "clean",
        ),
        "published",
    ),
    (
        Case(
            "aspirin-alone",
            "aspirin alone: no contraindication for neuraxial techniques (asra-2010 [V])",
            lambda: [
                PCB(drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL", side="left")
            ],
            _block_patient(anticoagulant=_ac("aspirin")),
            "block.anticoagulation",
            "clean",
        ),
        "published",
    ),
]


@pytest.mark.parametrize(("case", "group"), BLOCKS, ids=lambda c: getattr(c, "id", ""))
def test_block_case(case: Case, group: str) -> None:
    """A block regimen gives what a pharmacist insists on (see the case source)."""
    if group == "dangerous":
        test_dangerous_regimen_trips_its_rule(case)
    else:
        test_published_regimen_raises_no_false_alarm(case)


def test_rescue_for_names_the_regular_opioid() -> None:
    """A morphine rescue for a fentanyl patch (rescue_for) is judged against the patch's OME:
    10 mg oral morphine on 25 mcg/h (60 MME/day, CDC 2022 [V]) is 1/6, no finding."""
    reg = mps.Regimen(
        [
            Op(drug="fentanyl", route="transdermal", rate="25 mcg/h"),
            Op(drug="morphine", dose="10 mg", every="4 h", prn=True, rescue_for="fentanyl"),
        ]
    )
    report = mps.validate(reg, _tolerant())
    assert ("opioid.breakthrough-dose", 1) in report.passed


def test_breakthrough_dose_leaves_adjuvant_methadone_out() -> None:
    """breakthrough_dose() of the multimodal example: 1/6 of oxycodone 60 mg/day = 10 mg, not
    25.7 mg (adjuvant methadone is not a basis: CDC 2022's factor is not for dosing)."""
    from mps_analgesia.conversion import breakthrough_dose

    case = mps.load_case("examples/mps-multimodal.toml")
    b = breakthrough_dose(case.regimen, drug="oxycodone")
    assert b.dose.text == "10 mg"
    assert any("adjuvant methadone left out" in n for n in b.notes)
    with_methadone = breakthrough_dose(case.regimen, include_adjuvant_methadone=True)
    assert with_methadone.dose.high > b.dose.high


@pytest.mark.parametrize(
    ("restart", "expect"),
    [(None, "not_checked"), ("2 h", "error"), ("6 h", "passed"), ("12 h", "passed")],
)
def test_rivaroxaban_restart_after_catheter_removal(restart: str | None, expect: str) -> None:
    """Rivaroxaban 10 mg once daily: the next dose at least 6 h after catheter removal (FDA
    label as tabulated with ASRA/ESRA, asra-2018 [V]); no planned restart is not checked."""
    kw = {} if restart is None else {"anticoagulant_restart": restart}
    block = PCB(drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL", side="left", **kw)
    patient = _block_patient(
        anticoagulant=_ac("rivaroxaban", dose="10 mg", every="24 h", last_dose_ago="30 h")
    )()
    report = mps.validate(mps.Regimen([block]), patient)
    assert expect in _outcome(report, "block.anticoagulant-restart")
