"""Red team: catheter removal and the anticoagulant restart (``block.anticoagulant-restart``).

The restart counts from catheter removal: the block step's ``catheter_removal``, else the end of
its infusion (a single shot: the block).  Rivaroxaban and apixaban: next dose at least 6 h / 5 h
after catheter removal (FDA labels as tabulated with ASRA/ESRA, asra-2018 [V]); prophylactic
enoxaparin at least 4 h (lovenox-label-secondary [S]).  A catheter whose removal is not known is
*not checked*; the day plan shows the removal and the restart.
"""

from __future__ import annotations

from typing import Any

import pytest
from _redteam import Case, check

import mps_analgesia as mps

PCB = mps.PsoasCompartmentBlockStep
CODE = "block.anticoagulant-restart"


def _catheter(**kw: Any) -> PCB:
    base: dict[str, Any] = {
        "drug": "ropivacaine",
        "concentration": "0.2 %",
        "bolus_volume": "20 mL",
        "infusion_rate": "6 mL/h",
        "infusion_duration": "48 h",
        "side": "left",
        "technique": "catheter",
    }
    return PCB(**{**base, **kw})


def _patient(drug: str, dose: str, every: str, last: str = "80 h") -> Any:
    def make() -> mps.Patient:
        return mps.Patient(
            weight="70 kg",
            height="170 cm",
            anticoagulant=mps.Anticoagulant(drug=drug, dose=dose, every=every, last_dose_ago=last),
        )

    return make


CASES = [
    Case(
        "rivaroxaban-restart-2h-after-removal",
        "rivaroxaban 10 mg daily restarted 2 h after removing a 48 h catheter: the label needs "
        "6 h (asra-2018 [V])",
        lambda: [_catheter(anticoagulant_restart="2 h")],
        _patient("rivaroxaban", "10 mg", "24 h"),
        CODE,
        "error",
    ),
    Case(
        "apixaban-restart-3h-after-late-removal",
        "apixaban 5 mg twice daily restarted 3 h after a catheter removed at 72 h: the label "
        "needs 5 h (asra-2018 [V])",
        lambda: [_catheter(catheter_removal="72 h", anticoagulant_restart="3 h")],
        _patient("apixaban", "5 mg", "12 h"),
        CODE,
        "error",
    ),
    Case(
        "open-infusion-removal-unknown",
        "rivaroxaban with a catheter infusion that has no end and no removal time: not checked",
        lambda: [_catheter(infusion_duration=None, anticoagulant_restart="6 h")],
        _patient("rivaroxaban", "10 mg", "24 h"),
        CODE,
        "not_checked",
    ),
    Case(
        "rivaroxaban-restart-6h-after-removal",
        "rivaroxaban 10 mg daily 6 h after catheter removal (FDA label, asra-2018 [V])",
        lambda: [_catheter(anticoagulant_restart="6 h")],
        _patient("rivaroxaban", "10 mg", "24 h"),
        CODE,
        "passed",
    ),
    Case(
        "enoxaparin-prophylaxis-4h-after-removal",
        "prophylactic enoxaparin 40 mg daily 4 h after catheter removal (lovenox label as "
        "summarised, [S])",
        lambda: [_catheter(catheter_removal="50 h", anticoagulant_restart="4 h")],
        _patient("enoxaparin", "40 mg", "24 h", last="30 h"),
        CODE,
        "passed",
    ),
    Case(
        "single-shot-restart-6h",
        "a single-shot block, rivaroxaban 6 h after it: counted from the block",
        lambda: [
            PCB(
                drug="ropivacaine",
                concentration="0.5 %",
                bolus_volume="30 mL",
                side="left",
                anticoagulant_restart="6 h",
            )
        ],
        _patient("rivaroxaban", "10 mg", "24 h"),
        CODE,
        "passed",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_restart_case(case: Case) -> None:
    """The restart check reads the removal time (see the case source)."""
    check(case)


def test_the_finding_names_the_restart_day_and_time() -> None:
    """A block at 09:00 on day 1 with a 48 h infusion: removal day 3 at 09:00; a restart 2 h
    later (day 3, 11:00) is too soon for rivaroxaban, and the finding says when."""
    block = _catheter(start_day=1, at="09:00", anticoagulant_restart="2 h")
    report = mps.validate(mps.Regimen([block]), _patient("rivaroxaban", "10 mg", "24 h")())
    (f,) = [f for f in report.findings if f.code == CODE]
    assert "plan day 3 at 11:00" in f.message
    assert f.detail["restart_day"] == 3
    assert f.detail["restart_time"] == "11:00"


def test_the_day_plan_shows_removal_and_restart() -> None:
    """schedule(): the removal and the planned restart are events of their days."""
    block = _catheter(start_day=1, at="09:00", anticoagulant_restart="6 h")
    plan = mps.schedule(mps.Regimen([block]), 5)
    events = {(d, e.what, e.time) for d, day in enumerate(plan) for e in day.events}
    assert (3, "catheter removed", "09:00") in events
    assert (3, "anticoagulant restart (6 h after catheter removal)", "15:00") in events


def test_an_explicit_removal_time_moves_the_event() -> None:
    """catheter_removal = 60 h after a 09:00 block on day 0: removed day 2 at 21:00."""
    block = _catheter(at="09:00", catheter_removal="60 h")
    plan = mps.schedule(mps.Regimen([block]), 4)
    assert any(e.what == "catheter removed" and e.time == "21:00" for e in plan[2].events)


def test_no_restart_time_no_restart_event() -> None:
    """Without anticoagulant_restart only the removal is on the plan."""
    plan = mps.schedule(mps.Regimen([_catheter(at="09:00")]), 4)
    whats = [e.what for day in plan for e in day.events]
    assert "catheter removed" in whats
    assert not [w for w in whats if w.startswith("anticoagulant restart")]


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"catheter_removal": "24 h"}, "before its 48 h infusion ends"),
        (
            {
                "technique": "single-shot",
                "infusion_rate": None,
                "infusion_duration": None,
                "catheter_removal": "6 h",
            },
            "no catheter to remove",
        ),
    ],
)
def test_an_impossible_removal_is_refused(kw: dict[str, Any], words: str) -> None:
    """A removal before the infusion ends, or on a single shot, is a step error naming why."""
    with pytest.raises(mps.StepError, match=words):
        _catheter(**kw)
