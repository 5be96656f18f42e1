"""dose.max-single and dose.max-daily: catalog limits, summed over steps, shown with arithmetic."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mps_analgesia as mps
from mps_analgesia import _catalog
from mps_analgesia.report import Report
from mps_analgesia.rules import RuleRegistry, dose

#: Only the dose rules, so that other areas' rules do not change these outcomes.
_DOSE_RULES = RuleRegistry(dose.RULES)


def _check(*steps: Any) -> Report:
    return mps.validate(mps.Regimen(list(steps)), mps.Patient(), rules=_DOSE_RULES)


def _apap(dose_text: str = "1 g", every: str = "6 h", **kw: Any) -> mps.AdjuvantStep:
    return mps.AdjuvantStep(
        drug="acetaminophen", role="nociceptive", dose=dose_text, every=every, **kw
    )


def _tramadol(dose_text: str, **kw: Any) -> mps.OpioidStep:
    kw.setdefault("every", "6 h")
    return mps.OpioidStep(drug="tramadol", dose=dose_text, **kw)


def _codes(report: Report, code: str) -> list[tuple[str, int | None]]:
    return [(f.severity, f.step) for f in report.findings if f.code == code]


class TestMaxDaily:
    def test_acetaminophen_at_the_limit_passes(self) -> None:
        """1 g every 6 h is 4000 mg/day, not above 4000 mg/day: passed."""
        report = _check(_apap("1 g"))
        assert _codes(report, "dose.max-daily") == []
        assert ("dose.max-daily", 0) in report.passed

    def test_acetaminophen_above_the_limit_is_an_error(self) -> None:
        """1250 mg every 6 h is an error, with the arithmetic shown."""
        report = _check(_apap("1250 mg"))
        (f,) = [f for f in report.findings if f.code == "dose.max-daily"]
        assert (f.severity, f.step, f.level) == ("error", 0, "S")
        assert f.arithmetic == "1250 mg × 4 doses/day = 5000 mg/day > 4000 mg/day"
        assert f.source == ("acetaminophen-otc-label",)
        assert f.detail["daily_dose"] == 5000.0
        assert f.detail["daily_dose_unit"] == "mg/d"
        assert f.detail["daily_dose_text"] == "5000 mg/day"
        assert (f.detail["limit"], f.detail["limit_unit"]) == (4000.0, "mg/d")
        assert f.detail["limit_text"] == "4000 mg/day"
        # 4000 mg/day ÷ 4 doses = 1000 mg, rounded down to the listed tablets
        assert f.detail["suggested_dose"] == 1000.0
        assert f.detail["suggested_dose_unit"] == "mg"
        assert "acetaminophen totals 5000 mg/day" in f.message
        assert report.has_errors

    def test_regular_and_prn_are_summed(self) -> None:
        """Regular 4 g/day plus PRN 2 × 500 mg is 5000 mg/day over two steps: one finding."""
        report = _check(_apap("1 g"), _apap("500 mg", every="4 h", prn=True, max_doses_per_24h=2))
        (f,) = [f for f in report.findings if f.code == "dose.max-daily"]
        assert f.step == 0
        assert f.arithmetic == (
            "1000 mg × 4 doses/day + 500 mg × 2 doses/day = 5000 mg/day > 4000 mg/day"
        )
        assert "over 2 steps" in f.message
        assert f.detail["steps"] == [0, 1]

    def test_second_step_of_an_exceeded_total_is_not_passed(self) -> None:
        """The step that adds to an exceeded total is reported once, never as passed."""
        report = _check(_apap("1 g"), _apap("500 mg", every="4 h", prn=True, max_doses_per_24h=2))
        assert ("dose.max-daily", 1) not in report.passed
        assert len(_codes(report, "dose.max-daily")) == 1

    def test_synonyms_are_summed(self) -> None:
        """Paracetamol and acetaminophen are one drug for the daily total."""
        synonym = mps.AdjuvantStep(drug="paracetamol", role="nociceptive", dose="1 g", every="12 h")
        report = _check(_apap("1 g"), synonym)
        assert _codes(report, "dose.max-daily") == [("error", 0)]

    def test_other_drugs_are_not_summed(self) -> None:
        """Two drugs each under their limits do not add up."""
        report = _check(_apap("1 g"), _tramadol("100 mg"))
        assert _codes(report, "dose.max-daily") == []
        assert {("dose.max-daily", 0), ("dose.max-daily", 1)} <= set(report.passed)

    def test_tramadol_modified_release_limit(self) -> None:
        """Tramadol ER 350 mg/day is above the ER label's 300 mg/day."""
        report = _check(
            _tramadol("350 mg", every=None, times_per_day=1, formulation="modified-release")
        )
        (f,) = [f for f in report.findings if f.code == "dose.max-daily"]
        assert f.severity == "error"
        assert f.arithmetic == "350 mg × 1 doses/day = 350 mg/day > 300 mg/day"
        assert f.source == ("ultram-er-label",)

    def test_tramadol_ir_daily_limit(self) -> None:
        """Tramadol IR 100 mg every 4 h (600 mg/day) is above 400 mg/day."""
        report = _check(_tramadol("100 mg", every="4 h"))
        assert _codes(report, "dose.max-daily") == [("error", 0)]
        assert _codes(report, "dose.max-single") == []

    def test_titration_peak_is_checked(self) -> None:
        """A titration that climbs above the limit is flagged on its peak."""
        report = _check(_apap("500 mg", titration=[{"day": 3, "dose": "1500 mg"}]))
        (f,) = [f for f in report.findings if f.code == "dose.max-daily"]
        assert "6000 mg/day" in f.message

    def test_no_catalog_limit_is_not_checked(self) -> None:
        """Diclofenac has no maximum in the catalog: not checked, never passed."""
        report = _check(
            mps.AdjuvantStep(drug="diclofenac", role="anti-inflammatory", dose="50 mg", every="8 h")
        )
        assert ("dose.max-single", 0) not in report.passed
        missing = {(n.rule, n.step, n.missing) for n in report.not_checked}
        assert ("dose.max-single", 0, "catalog limit") in missing
        assert not report.complete
        assert "no published maximum single dose for diclofenac" in " ".join(
            report.to_text().split()
        )

    def test_pregabalin_single_dose_is_not_applicable(self) -> None:
        """Pregabalin's label states a daily maximum only (limits-none.toml, [S]): its single
        dose is not applicable, never passed and never not checked."""
        report = _check(
            mps.AdjuvantStep(drug="pregabalin", role="neuropathic", dose="75 mg", every="12 h")
        )
        assert ("dose.max-single", 0) in [(a.rule, a.step) for a in report.not_applicable]
        assert ("dose.max-single", 0) not in report.passed
        assert not [n for n in report.not_checked if n.rule == "dose.max-single"]

    def test_full_agonist_is_not_applicable(self) -> None:
        """Morphine has no ceiling dose: both dose rules are not applicable, never passed."""
        report = _check(mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h"))
        assert report.findings == ()
        assert report.passed == ()
        assert report.not_checked == ()
        assert {(a.rule, a.step, a.source) for a in report.not_applicable} == {
            ("dose.max-single", 0, "fentora-label"),
            ("dose.max-daily", 0, "fentora-label"),
        }
        assert report.counts["not_applicable"] == 2
        assert "no defined maximum dose" in " ".join(report.to_text().split())

    def test_route_restricted_limit(self) -> None:
        """Baclofen's oral limits do not apply to intrathecal baclofen (not checked)."""
        oral = _check(
            mps.AdjuvantStep(drug="baclofen", role="muscle-spasm", dose="25 mg", every="6 h")
        )
        assert _codes(oral, "dose.max-daily") == [("error", 0)]
        assert _codes(oral, "dose.max-single") == [("error", 0)]
        intrathecal = _check(
            mps.AdjuvantStep(
                drug="baclofen", role="muscle-spasm", route="intrathecal", dose="0.1 mg", once=True
            )
        )
        assert intrathecal.findings == ()
        assert {n.rule for n in intrathecal.not_checked} == {"dose.max-single", "dose.max-daily"}

    def test_patch_daily_dose_from_rate(self) -> None:
        """A patch has no single dose (not counted) and its daily dose comes from its rate."""
        report = _check(mps.OpioidStep(drug="fentanyl", route="transdermal", rate="25 mcg/h"))
        assert [n.rule for n in report.not_applicable] == ["dose.max-daily"]
        assert ("dose.max-single", 0) not in report.passed

    def test_methadone_adjuvant_is_checked_by_dose_rules(self) -> None:
        """Adjuvant methadone is in scope of the dose rules (not applicable: no ceiling)."""
        report = _check(mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h"))
        assert {(n.rule, n.step) for n in report.not_applicable} == {
            ("dose.max-single", 0),
            ("dose.max-daily", 0),
        }

    def test_radiotherapy_and_blocks_are_out_of_scope(self) -> None:
        """The dose rules do not apply to blocks or radiotherapy."""
        report = _check(
            mps.RadiotherapyStep(total_dose="8 Gy", site="L3"),
            mps.PsoasCompartmentBlockStep(
                drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL", side="left"
            ),
        )
        dose_rules = {"dose.max-single", "dose.max-daily"}
        assert not [n for n in report.not_checked if n.rule in dose_rules]
        assert not [p for p in report.passed if p[0] in dose_rules]


class TestMaxSingle:
    def test_tramadol_150_mg(self) -> None:
        """Tramadol IR 150 mg per dose is above the Ultram label's 100 mg."""
        report = _check(_tramadol("150 mg"))
        (f,) = [f for f in report.findings if f.code == "dose.max-single"]
        assert (f.severity, f.step, f.level) == ("error", 0, "V")
        assert f.arithmetic == "150 mg > 100 mg"
        assert f.source == ("ultram-label",)
        assert "tramadol 150 mg per dose is above the maximum single dose of 100 mg" in f.message

    def test_tramadol_100_mg_passes(self) -> None:
        """Tramadol IR 100 mg every 6 h passes both dose rules."""
        report = _check(_tramadol("100 mg"))
        assert report.findings == ()
        assert set(report.passed) >= {("dose.max-single", 0), ("dose.max-daily", 0)}

    def test_titrated_single_dose(self) -> None:
        """The largest dose over the titration is compared."""
        report = _check(_tramadol("50 mg", titration=[{"day": 3, "dose": "150 mg"}]))
        (f,) = [f for f in report.findings if f.code == "dose.max-single"]
        assert f.arithmetic == "150 mg > 100 mg"

    def test_dose_in_grams(self) -> None:
        """0.15 g tramadol is 150 mg: the unit does not hide the excess."""
        assert _codes(_check(_tramadol("0.15 g")), "dose.max-single") == [("error", 0)]

    def test_tramadol_er_has_no_single_limit(self) -> None:
        """The catalog has no single-dose limit for ER tramadol: not checked."""
        report = _check(_tramadol("100 mg", every="12 h", formulation="modified-release"))
        assert ("dose.max-single", 0) in {(n.rule, n.step) for n in report.not_checked}


class TestUnverifiedLimit:
    def test_u_limit_gives_a_warning_not_an_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A limit resting on an unverified [U] value gives a warning that says so."""
        step = _tramadol("150 mg")
        real = _catalog.drug("tramadol")
        limits = tuple(
            attrs.evolve(lim, value=attrs.evolve(lim.value, level="U")) for lim in real.limits
        )
        fake = attrs.evolve(real, limits=limits)
        monkeypatch.setattr(_catalog, "drug", lambda name, field="drug": fake)
        report = _check(step)
        assert not report.has_errors
        assert {f.code for f in report.warnings} == {"dose.max-single", "dose.max-daily"}
        for f in report.warnings:
            assert f.level == "U"
            assert "unverified [U] value" in f.message


class TestDeclarations:
    def test_in_default_rules(self) -> None:
        """The default registry runs both dose rules."""
        report = mps.validate(mps.Regimen([_apap("1250 mg")]))
        assert "dose.max-daily" in {f.code for f in report.errors}

    def test_rules_module_exports_both(self) -> None:
        """rules.dose exports its two rules."""
        assert [r.id for r in dose.RULES] == ["dose.max-single", "dose.max-daily"]
        for r in dose.RULES:
            assert r.data_files == ("drugs.toml", "limits-none.toml")
            assert set(r.applies_to) == {"opioid", "methadone_adjuvant", "adjuvant"}

    def test_catalog_limits_have_sources_and_levels(self) -> None:
        """Every catalog limit names a known source and a level."""
        for did in _catalog.drug_ids():
            for lim in _catalog.drug(did).limits:
                assert lim.value.source in _catalog.sources()
                assert lim.value.level in ("V", "S", "U")


# ---- properties --------------------------------------------------------------------------------

_LIMITED = [
    ("acetaminophen", "adjuvant", ("oral", "intravenous")),
    ("tramadol", "opioid", ("oral",)),
    ("gabapentin", "adjuvant", ("oral",)),
    ("pregabalin", "adjuvant", ("oral",)),
    ("baclofen", "adjuvant", ("oral",)),
    ("diazepam", "adjuvant", ("oral",)),
]


@st.composite
def _limited_step_kwargs(draw: st.DrawFn) -> tuple[str, dict[str, Any], float]:
    drug, kind, routes = draw(st.sampled_from(_LIMITED))
    kwargs: dict[str, Any] = {"drug": drug, "route": draw(st.sampled_from(routes))}
    if kind == "adjuvant":
        kwargs["role"] = "nociceptive"
    if kwargs["route"] == "oral":
        kwargs["formulation"] = draw(st.sampled_from(("immediate-release", "modified-release")))
    schedule = draw(st.sampled_from(("every", "times_per_day", "prn")))
    if schedule == "every":
        kwargs["every"] = f"{draw(st.sampled_from((4, 6, 8, 12, 24)))} h"
    elif schedule == "times_per_day":
        kwargs["times_per_day"] = draw(st.integers(1, 6))
    else:
        kwargs.update(prn=True, every="2 h", max_doses_per_24h=draw(st.integers(1, 8)))
    mg = draw(st.integers(1, 30_000)) / 10
    return kind, kwargs, mg


def _build(kind: str, kwargs: dict[str, Any], dose_text: str) -> Any:
    cls = mps.AdjuvantStep if kind == "adjuvant" else mps.OpioidStep
    return cls(dose=dose_text, **kwargs)


def _flags(report: Report) -> set[tuple[str, int | None, str]]:
    return {(f.code, f.step, f.severity) for f in report.findings}


class TestProperties:
    @settings(max_examples=150, deadline=None)
    @given(_limited_step_kwargs(), st.floats(min_value=1.0, max_value=20.0))
    def test_raising_a_dose_never_removes_a_finding(
        self, spec: tuple[str, dict[str, Any], float], factor: float
    ) -> None:
        """Any max-dose finding at a dose is still there at a higher dose."""
        kind, kwargs, mg = spec
        low = _check(_build(kind, kwargs, f"{mg} mg"))
        high = _check(_build(kind, kwargs, f"{mg * factor} mg"))
        assert _flags(low) <= _flags(high)

    @settings(max_examples=150, deadline=None)
    @given(_limited_step_kwargs())
    def test_mcg_and_mg_give_the_same_findings(
        self, spec: tuple[str, dict[str, Any], float]
    ) -> None:
        """The same dose written in mcg, mg or g gives the same findings and outcomes."""
        kind, kwargs, mg = spec
        reports = [
            _check(_build(kind, kwargs, text))
            for text in (f"{mg} mg", f"{round(mg * 1000)} mcg", f"{mg / 1000!r} g")
        ]
        for other in reports[1:]:
            assert _flags(other) == _flags(reports[0])
            assert set(other.passed) == set(reports[0].passed)
            assert {(n.rule, n.step) for n in other.not_checked} == {
                (n.rule, n.step) for n in reports[0].not_checked
            }

    @settings(max_examples=80, deadline=None)
    @given(_limited_step_kwargs(), st.integers(1, 3))
    def test_repeating_a_step_never_lowers_the_total(
        self, spec: tuple[str, dict[str, Any], float], copies: int
    ) -> None:
        """The same step given more times never removes a max-daily finding."""
        kind, kwargs, mg = spec
        one = _check(_build(kind, kwargs, f"{mg} mg"))
        many = _check(*[_build(kind, kwargs, f"{mg} mg") for _ in range(copies + 1)])
        daily = {c for c in _flags(one) if c[0] == "dose.max-daily"}
        assert {(c, s) for c, s, _ in daily} <= {(c, s) for c, s, _ in _flags(many)}
