"""Red team: unit slips in a psoas compartment block's concentration, volume and rate.

``dose.implausible`` compares a block step's concentration with the most concentrated marketed
solution of its agent (``data/limits-plausible.toml`` ``[[concentrations]]``, guard multiple 2),
its bolus volume and infusion rate with the largest published ones (``[block]``: 30 mL,
Chelly; 14 mL/h, Naropin/MIMS; guard multiple 10).  Dangerous slips must give an error that
names the slip; published regimens (the reference notes §3.1) must not be flagged.
"""

from __future__ import annotations

from typing import Any

import pytest
from _redteam import Case, check, run

import mps_analgesia as mps

PCB = mps.PsoasCompartmentBlockStep
CODE = "dose.implausible"


def _patient() -> mps.Patient:
    return mps.Patient(weight="70 kg", height="170 cm", anticoagulant="none")


def _block(drug: str = "ropivacaine", **kw: Any) -> PCB:
    kw.setdefault("side", "left")
    if "infusion_rate" in kw:
        kw.setdefault("technique", "catheter")
    return PCB(drug=drug, **kw)


DANGEROUS = [
    Case(
        "ropivacaine-7.5-percent",
        "ropivacaine 7.5 mg/mL written as 7.5 % (75 mg/mL); the most concentrated marketed "
        "ropivacaine is 10 mg/mL (US label, ropivacaine-us-label [S])",
        lambda: [_block(concentration="7.5 %", bolus_volume="20 mL")],
        _patient,
        CODE,
        "error",
    ),
    Case(
        "bupivacaine-5-percent",
        "bupivacaine 5 mg/mL written as 5 % (50 mg/mL); marketed 2.5-7.5 mg/mL "
        "(bupivacaine-strengths-label [S])",
        lambda: [_block("bupivacaine", concentration="5 %", bolus_volume="20 mL")],
        _patient,
        CODE,
        "error",
    ),
    Case(
        "levobupivacaine-2.5-percent",
        "levobupivacaine 2.5 mg/mL written as 2.5 % (25 mg/mL); Chirocaine 2.5-7.5 mg/ml "
        "(chirocaine-smpc-emc [S])",
        lambda: [_block("levobupivacaine", concentration="2.5 %", bolus_volume="20 mL")],
        _patient,
        CODE,
        "error",
    ),
    Case(
        "lidocaine-10-percent",
        "lidocaine 10 mg/mL written as 10 % (100 mg/mL); lidocaine for nerve block 0.5-2 % "
        "(lidocaine-strengths-label [S])",
        lambda: [_block("lidocaine", concentration="10 %", bolus_volume="20 mL")],
        _patient,
        CODE,
        "error",
    ),
    Case(
        "bolus-20-litres",
        "a 20 mL bolus written 20 L; the largest published PCB bolus is 30 mL (Chelly [V])",
        lambda: [_block(concentration="0.2 %", bolus_volume="20 L")],
        _patient,
        CODE,
        "error",
    ),
    Case(
        "infusion-6-ml-per-min",
        "a 6 mL/h catheter infusion written 6 mL/min (360 mL/h); the largest published rate is "
        "14 mL/h (Naropin, MIMS [V]; PCB 6-8 mL/h, Chelly [V])",
        lambda: [
            _block(
                concentration="0.2 %",
                bolus_volume="20 mL",
                infusion_rate="6 mL/min",
                infusion_duration="48 h",
            )
        ],
        _patient,
        CODE,
        "error",
    ),
    Case(
        "infusion-8-litres-per-hour",
        "an 8 mL/h infusion written 8 L/h (Chelly [V] 6-8 mL/h)",
        lambda: [_block(concentration="0.2 %", infusion_rate="8 L/h", infusion_duration="24 h")],
        _patient,
        CODE,
        "error",
    ),
]

PUBLISHED = [
    Case(
        "chelly-single-shot",
        "30 mL ropivacaine 0.5 % single shot (Chelly, reference notes §3.1 [V])",
        lambda: [_block(concentration="0.5 %", bolus_volume="30 mL")],
        _patient,
        CODE,
        "passed",
    ),
    Case(
        "chelly-catheter",
        "15-20 mL ropivacaine 0.2 % then 6-8 mL/h 0.2 % (Chelly §3.1 [V])",
        lambda: [
            _block(
                concentration="0.2 %",
                bolus_volume="20 mL",
                infusion_rate="8 mL/h",
                infusion_duration="48 h",
            )
        ],
        _patient,
        CODE,
        "passed",
    ),
    Case(
        "capdevila-load",
        "Capdevila 0.4 mL/kg ropivacaine 0.2 % at 70 kg = 28 mL (§7 example 36 [V])",
        lambda: [_block(concentration="2 mg/mL", bolus_volume="28 mL")],
        _patient,
        CODE,
        "passed",
    ),
    Case(
        "mannion-levobupivacaine",
        "Mannion 0.4 mL/kg levobupivacaine 0.5 % at 70 kg = 28 mL (§7 example 37 [V])",
        lambda: [_block("levobupivacaine", concentration="0.5 %", bolus_volume="28 mL")],
        _patient,
        CODE,
        "passed",
    ),
    Case(
        "kim-levobupivacaine-0.25",
        "levobupivacaine (Chirocaine) 0.25 % for psoas pain (Kim 2012 [V]; volume not given, "
        "a 20 mL bolus used)",
        lambda: [_block("levobupivacaine", concentration="0.25 %", bolus_volume="20 mL")],
        _patient,
        CODE,
        "passed",
    ),
    Case(
        "bupivacaine-label-cap-volume",
        "bupivacaine plain label cap 175 mg = 70 mL of 0.25 % (§7 example 33 [S])",
        lambda: [_block("bupivacaine", concentration="0.25 %", bolus_volume="70 mL")],
        _patient,
        CODE,
        "passed",
    ),
    Case(
        "lidocaine-1-percent-issue",
        "lidocaine 1 % 20 mL bolus + 10 mL/h (issue 12: not a unit slip, the 24-h total is "
        "another rule's)",
        lambda: [
            _block(
                "lidocaine",
                concentration="1 %",
                bolus_volume="20 mL",
                infusion_rate="10 mL/h",
                infusion_duration="48 h",
            )
        ],
        _patient,
        CODE,
        "passed",
    ),
    Case(
        "lidocaine-adrenaline-49-ml",
        "lidocaine 1 % with adrenaline 49 mL = 490 mg at 70 kg (§7 example 32 [V])",
        lambda: [_block("lidocaine", concentration="1 %", bolus_volume="49 mL", adrenaline=True)],
        _patient,
        CODE,
        "passed",
    ),
]


@pytest.mark.parametrize("case", DANGEROUS, ids=lambda c: c.id)
def test_block_unit_slip_is_an_error(case: Case) -> None:
    """A slipped concentration, volume or rate is an error (see the case source)."""
    check(case)


@pytest.mark.parametrize("case", PUBLISHED, ids=lambda c: c.id)
def test_published_block_is_not_a_slip(case: Case) -> None:
    """A published block regimen passes the guard (see the case source)."""
    check(case)


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"concentration": "7.5 %", "bolus_volume": "20 mL"}, "was 7.5 mg/mL written as 7.5 %"),
        ({"concentration": "0.2 %", "bolus_volume": "20 L"}, "was 20 mL written as 20 L"),
        (
            {"concentration": "0.2 %", "infusion_rate": "6 mL/min", "infusion_duration": "24 h"},
            "was 6 mL/h written as 6 mL/min",
        ),
    ],
)
def test_the_finding_names_the_slip(kw: dict[str, str], words: str) -> None:
    """The message says which slip is likely, and the finding is the library's guard."""
    report = run(Case("x", "", lambda: [_block(**kw)], _patient, CODE, "error"))
    found = [f for f in report.findings if f.code == CODE]
    assert len(found) == 1
    assert words in found[0].message
    assert "library-policy" in found[0].source
    assert found[0].severity == "error"


def test_two_slips_in_one_block_are_two_findings() -> None:
    """A block with a slipped concentration and a slipped volume reports both."""
    report = run(
        Case(
            "x",
            "",
            lambda: [_block(concentration="7.5 %", bolus_volume="20 L")],
            _patient,
            CODE,
            "error",
        )
    )
    assert len([f for f in report.findings if f.code == CODE]) == 2


def test_twice_the_most_concentrated_is_the_edge() -> None:
    """Exactly twice the most concentrated ropivacaine (20 mg/mL) passes; just above is flagged
    (the guard's multiple, data/severity-policy.toml [guards.block-concentration])."""
    check(
        Case(
            "at",
            "",
            lambda: [_block(concentration="20 mg/mL", bolus_volume="5 mL")],
            _patient,
            CODE,
            "passed",
        )
    )
    check(
        Case(
            "above",
            "",
            lambda: [_block(concentration="20.5 mg/mL", bolus_volume="5 mL")],
            _patient,
            CODE,
            "error",
        )
    )
