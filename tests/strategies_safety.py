"""Strategies and small helpers for the methadone, organ-function and interaction rule tests.

Kept apart from ``tests/strategies.py`` (owned by the foundation tests) so these tests do not
depend on it.  ``outcome`` tells the three outcomes of a rule × step apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from mps_analgesia import (
    AdjuvantStep,
    Patient,
    PsoasCompartmentBlockStep,
    RadiotherapyStep,
    Regimen,
    Report,
)
from mps_analgesia.rules import Rule, RuleRegistry, validate

__all__ = [
    "check",
    "finding_keys",
    "findings_of",
    "mass_pairs",
    "missing_of",
    "outcome",
    "unrelated_steps",
]


def check(rules: Sequence[Rule], steps: Sequence[Any], patient: Patient | None = None) -> Report:
    """Validate ``steps`` for ``patient`` with only ``rules``."""
    return validate(Regimen(list(steps)), patient, rules=RuleRegistry(tuple(rules)))


def outcome(report: Report, rule_id: str, step: int | None = 0) -> str | None:
    """``"flagged"``, ``"passed"``, ``"not checked"`` or ``None`` (the rule did not apply)."""
    if any(f.code == rule_id and f.step == step for f in report.findings):
        return "flagged"
    if (rule_id, step) in report.passed:
        return "passed"
    if any(n.rule == rule_id and n.step == step for n in report.not_checked):
        return "not checked"
    return None


def missing_of(report: Report, rule_id: str, step: int | None = 0) -> str:
    """The input a rule × step names as missing (``""`` when it is not *not checked*)."""
    for n in report.not_checked:
        if n.rule == rule_id and n.step == step:
            return n.missing
    return ""


def findings_of(report: Report, rule_id: str) -> list[Any]:
    """The findings of one rule."""
    return [f for f in report.findings if f.code == rule_id]


def finding_keys(report: Report) -> list[tuple[Any, ...]]:
    """What a finding says, for comparing two reports: code, severity, step, text, sources."""
    return sorted(
        (f.code, f.severity, f.step, f.message, f.arithmetic, f.source, f.level)
        for f in report.findings
    )


@st.composite
def mass_pairs(draw: st.DrawFn, low: int = 1, high: int = 4000) -> tuple[str, str]:
    """The same mass as ``("12.5 mg", "12500 mcg")``, drawn in tenths of a milligram."""
    tenths = Decimal(draw(st.integers(low, high))) / 10
    return f"{tenths.normalize():f} mg", f"{(tenths * 1000).normalize():f} mcg"


def unrelated_steps() -> st.SearchStrategy[Any]:
    """Steps no methadone, organ or interaction rule looks at: radiotherapy and blocks."""
    return st.one_of(
        st.builds(
            RadiotherapyStep,
            total_dose=st.sampled_from(["8 Gy", "20 Gy", "30 Gy"]),
            fractions=st.sampled_from([1, 5, 10]),
            site=st.just("left psoas"),
        ),
        st.builds(
            PsoasCompartmentBlockStep,
            drug=st.just("ropivacaine"),
            concentration=st.just("0.2 %"),
            bolus_volume=st.sampled_from(["10 mL", "20 mL"]),
            side=st.sampled_from(["left", "right"]),
        ),
        st.builds(
            AdjuvantStep,
            drug=st.just("ketamine"),
            role=st.just("nmda"),
            dose=st.just("10 mg"),
            every=st.just("8 h"),
        ),
    )
