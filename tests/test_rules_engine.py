"""The rule engine: declared rules, three outcomes per rule × step, registries, one Report."""

from __future__ import annotations

from typing import Any

import pytest

import mps_analgesia as mps
from mps_analgesia import _catalog
from mps_analgesia.errors import UnknownNameError
from mps_analgesia.rules import (
    PASSED,
    RULE_MODULES,
    Context,
    Missing,
    Rule,
    RuleRegistry,
    default_rules,
    finding,
    rule,
    validate,
)


@rule("test.flag", title="Flags opioids", applies_to=["opioid"], severity="warning")
def _flag(ctx: Context, index: int | None, step: Any) -> Any:
    """Flag every opioid step."""
    return finding("test.flag", "warning", f"{step.drug} flagged", step=index, source=["agar-2004"])


@rule("test.pass", title="Passes opioids", applies_to=["opioid"], severity="info")
def _pass(ctx: Context, index: int | None, step: Any) -> Any:
    return PASSED


@rule("test.weight", title="Needs weight", applies_to=["opioid", "adjuvant"], severity="error")
def _needs_weight(ctx: Context, index: int | None, step: Any) -> Any:
    if ctx.patient.weight_kg is None:
        return Missing("patient.weight", "the dose per kg needs the weight")
    return PASSED


@rule("test.skip", title="Never applies", applies_to=["opioid"], severity="info")
def _skip(ctx: Context, index: int | None, step: Any) -> Any:
    return None


def _regimen() -> mps.Regimen:
    return mps.Regimen(
        [
            mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h"),
            mps.AdjuvantStep(
                drug="ibuprofen", role="anti-inflammatory", dose="400 mg", every="8 h"
            ),
            mps.RadiotherapyStep(total_dose="8 Gy", site="L3"),
        ]
    )


def _registry(*rules: Rule) -> RuleRegistry:
    return RuleRegistry(tuple(rules))


class TestOutcomes:
    def test_three_outcomes_are_counted(self) -> None:
        """Flagged, passed and not checked are each counted per rule × step."""
        report = validate(_regimen(), mps.Patient(), rules=_registry(_flag, _pass, _needs_weight))
        assert [(f.code, f.step) for f in report.findings] == [("test.flag", 0)]
        assert report.passed == (("test.pass", 0),)
        assert [(n.rule, n.step, n.missing) for n in report.not_checked] == [
            ("test.weight", 0, "patient.weight"),
            ("test.weight", 1, "patient.weight"),
        ]
        assert report.counts["flagged"] == 1
        assert report.counts["passed"] == 1
        assert report.counts["not_checked"] == 2

    def test_missing_input_is_not_checked_and_incomplete(self) -> None:
        """A check returning Missing shows in not_checked with its reason; not complete."""
        report = validate(_regimen(), mps.Patient(), rules=_registry(_needs_weight))
        assert not report.complete
        assert report.status == "incomplete"
        assert report.not_checked[0].reason == "the dose per kg needs the weight"
        assert "missing patient.weight" in report.to_text()

    def test_given_input_passes(self) -> None:
        """With the input given, the same check passes and the report is complete."""
        report = validate(_regimen(), mps.Patient(weight="60 kg"), rules=_registry(_needs_weight))
        assert report.complete
        assert report.passed == (("test.weight", 0), ("test.weight", 1))
        assert report.status == "no findings"

    def test_no_patient_means_nothing_known(self) -> None:
        """validate(regimen) without a patient reports patient checks as not checked."""
        report = validate(_regimen(), rules=_registry(_needs_weight))
        assert len(report.not_checked) == 2

    def test_none_is_not_counted(self) -> None:
        """A check returning None (not applicable) is neither passed nor flagged."""
        report = validate(_regimen(), rules=_registry(_skip))
        assert report.counts == {
            "flagged": 0,
            "passed": 0,
            "not_checked": 0,
            "not_applicable": 0,
            "error": 0,
            "warning": 0,
            "info": 0,
        }

    def test_list_results(self) -> None:
        """A list of findings flags each; an empty list counts as passed."""

        @rule("test.list", title="List", applies_to=["opioid", "adjuvant"], severity="info")
        def listing(ctx: Context, index: int | None, step: Any) -> Any:
            if step.kind == "opioid":
                return [
                    finding("test.list", "info", "one", step=index),
                    finding("test.list", "warning", "two", step=index),
                ]
            return []

        report = validate(_regimen(), rules=_registry(listing))
        assert [f.message for f in report.findings] == ["one", "two"]
        assert report.passed == (("test.list", 1),)
        assert report.counts["flagged"] == 1

    def test_applies_to_filters_step_kinds(self) -> None:
        """A step rule sees only the kinds it applies to."""
        seen: list[tuple[int | None, str]] = []

        @rule("test.seen", title="Seen", applies_to=["radiotherapy"], severity="info")
        def see(ctx: Context, index: int | None, step: Any) -> Any:
            seen.append((index, step.kind))
            return PASSED

        validate(_regimen(), rules=_registry(see))
        assert seen == [(2, "radiotherapy")]

    def test_regimen_scope_called_once(self) -> None:
        """A regimen rule is called once with index and step None, and sees the regimen."""
        calls: list[tuple[Any, Any, int]] = []

        @rule("test.regimen", title="Regimen", scope="regimen", severity="info")
        def whole(ctx: Context, index: int | None, step: Any) -> Any:
            calls.append((index, step, len(ctx.regimen)))
            return finding("test.regimen", "info", "whole regimen")

        report = validate(_regimen(), rules=_registry(whole))
        assert calls == [(None, None, 3)]
        assert report.findings[0].step is None
        assert "(regimen)" in report.to_text()

    def test_unverified_finding_from_rule_is_warning(self) -> None:
        """finding(..., level='U') of severity error arrives as a warning."""

        @rule("test.u", title="U", applies_to=["opioid"], severity="error")
        def unverified(ctx: Context, index: int | None, step: Any) -> Any:
            return finding("test.u", "error", "Dubious.", step=index, level="U")

        report = validate(_regimen(), rules=_registry(unverified))
        assert not report.has_errors
        assert report.warnings[0].level == "U"

    def test_editions_of_used_data_files(self) -> None:
        """The report names the editions of sources.toml and every rule's data files."""

        @rule(
            "test.data",
            title="D",
            applies_to=["opioid"],
            severity="info",
            data_files=["drugs.toml"],
        )
        def data(ctx: Context, index: int | None, step: Any) -> Any:
            return PASSED

        report = validate(_regimen(), rules=_registry(data))
        assert report.editions == {
            "sources.toml": _catalog.edition("sources.toml"),
            "drugs.toml": _catalog.edition("drugs.toml"),
        }

    def test_context_cache_is_per_call(self) -> None:
        """Context.steps_of is cached within one validate() call only."""
        contexts: list[Context] = []

        @rule("test.ctx", title="C", scope="regimen", severity="info")
        def ctx_rule(ctx: Context, index: int | None, step: Any) -> Any:
            contexts.append(ctx)
            assert ctx.steps_of("opioid") is ctx.steps_of("opioid")
            return PASSED

        validate(_regimen(), rules=_registry(ctx_rule))
        validate(_regimen(), rules=_registry(ctx_rule))
        assert contexts[0].cache is not contexts[1].cache
        assert [i for i, _ in contexts[0].steps_of("opioid")] == [0]

    def test_options_reach_the_check(self) -> None:
        """validate(options=...) is visible to checks as ctx.options."""

        @rule("test.opt", title="O", scope="regimen", severity="info")
        def opt(ctx: Context, index: int | None, step: Any) -> Any:
            return finding("test.opt", "info", str(ctx.options.get("table")))

        report = validate(_regimen(), rules=_registry(opt), options={"table": "cdc-2022"})
        assert report.findings[0].message == "cdc-2022"


class TestRegistry:
    def test_rule_decorator_declares_a_rule(self) -> None:
        """@rule makes a Rule carrying its declaration and the docstring as description."""
        assert isinstance(_flag, Rule)
        assert (_flag.id, _flag.applies_to, _flag.scope) == ("test.flag", ("opioid",), "step")
        assert _flag.description == "Flag every opioid step."

    def test_disable(self) -> None:
        """disable() returns a registry without the rule; the original is unchanged."""
        reg = _registry(_flag, _pass)
        smaller = reg.disable("test.flag")
        assert smaller.ids == ("test.pass",)
        assert reg.ids == ("test.flag", "test.pass")

    def test_disable_unknown_id_raises(self) -> None:
        """Disabling an unknown rule id raises UnknownNameError with a suggestion."""
        with pytest.raises(UnknownNameError) as info:
            _registry(_flag, _pass).disable("test.flagg")
        assert info.value.suggestions[0] == "test.flag"
        assert "did you mean 'test.flag'" in str(info.value)

    def test_validate_disable(self) -> None:
        """validate(disable=[...]) leaves those rules out for that call."""
        report = validate(_regimen(), rules=_registry(_flag, _pass), disable=["test.flag"])
        assert report.findings == ()
        assert report.passed == (("test.pass", 0),)
        with pytest.raises(UnknownNameError):
            validate(_regimen(), rules=_registry(_flag), disable=["nope"])

    def test_with_rules_adds(self) -> None:
        """with_rules() appends new rules."""
        assert _registry(_flag).with_rules(_pass).ids == ("test.flag", "test.pass")

    def test_with_rules_replaces_same_id(self) -> None:
        """A rule with an existing id replaces the old one."""

        @rule("test.flag", title="Replacement", applies_to=["opioid"], severity="info")
        def replacement(ctx: Context, index: int | None, step: Any) -> Any:
            return PASSED

        reg = _registry(_flag, _pass).with_rules(replacement)
        assert reg.ids == ("test.pass", "test.flag")
        assert reg.get("test.flag").title == "Replacement"
        assert validate(_regimen(), rules=reg).findings == ()

    def test_get_unknown_raises(self) -> None:
        """get() of an unknown id raises UnknownNameError."""
        with pytest.raises(UnknownNameError, match="unknown rule 'x'"):
            _registry(_flag).get("x")

    def test_registry_is_iterable_and_sized(self) -> None:
        """A registry iterates over its rules and has a length."""
        reg = _registry(_flag, _pass)
        assert list(reg) == [_flag, _pass]
        assert len(reg) == 2

    def test_custom_rule_with_default_rules(self) -> None:
        """A custom @rule added to the default rules runs alongside them."""
        rules = default_rules().with_rules(_flag)
        report = validate(_regimen(), rules=rules)
        assert ("test.flag", 0) in [(f.code, f.step) for f in report.findings]
        assert "test.flag" not in default_rules().ids


class TestDefaultRules:
    def test_default_rules_are_loaded_once(self) -> None:
        """default_rules() returns the same shared registry each time."""
        assert default_rules() is default_rules()

    def test_dose_rules_are_in_the_defaults(self) -> None:
        """The first rules, dose.max-single and dose.max-daily, are in the defaults."""
        assert {"dose.max-single", "dose.max-daily"} <= set(default_rules().ids)

    def test_rule_ids_are_unique_and_dotted(self) -> None:
        """Every default rule id is unique and a dotted lower-case code."""
        ids = default_rules().ids
        assert len(ids) == len(set(ids))
        for rid in ids:
            assert rid == rid.lower()
            assert "." in rid

    def test_rule_declarations_are_sound(self) -> None:
        """Every default rule's sources and data files exist, and its kinds are step kinds."""
        for r in default_rules():
            for sid in r.sources:
                assert sid in _catalog.sources(), (r.id, sid)
            for name in r.data_files:
                assert _catalog.edition(name), (r.id, name)
            assert set(r.applies_to) <= set(mps.steps.STEP_KINDS), r.id
            assert r.scope in ("step", "regimen")
            assert r.title

    def test_rule_modules_listed(self) -> None:
        """RULE_MODULES names the clinical areas, dose first."""
        assert RULE_MODULES[0] == "dose"
        assert len(set(RULE_MODULES)) == len(RULE_MODULES)

    def test_validate_is_public(self) -> None:
        """mps.validate is the engine's validate."""
        assert mps.validate is validate


def _check_canonical(detail: Any, where: str) -> None:
    """Every number in a finding's detail is a float with its UCUM unit and display text beside
    it; no value is a number written as text."""
    import re

    quantity_text = re.compile(r"^\s*-?\d+(\.\d+)?\s*[a-zA-Zµ%/]")
    keys = set(detail)
    for key, value in detail.items():
        if key.endswith(("_unit", "_text", "_basis")):
            continue
        if isinstance(value, str):
            assert not quantity_text.match(value), f"{where}: {key}={value!r} is a number as text"
        if isinstance(value, float) or (value is None and f"{key}_unit" in keys):
            base = key.removesuffix("_low").removesuffix("_high")
            assert f"{base}_unit" in keys, f"{where}: {key} has no {base}_unit"
            assert f"{base}_text" in keys, f"{where}: {key} has no {base}_text"


class TestCanonicalDetail:
    """Finding.detail: every number a float under <name>, its UCUM code under <name>_unit."""

    def test_numbers_are_floats_with_ucum_units(self) -> None:
        """Findings of the dose, organ, methadone, radiotherapy and opioid rules follow it."""
        regimens = [
            [
                mps.AdjuvantStep(
                    drug="acetaminophen", role="nociceptive", dose="1250 mg", every="6 h"
                )
            ],
            [mps.OpioidStep(drug="tramadol", dose="100 mg", every="4 h")],
            [mps.MethadoneAdjuvantStep(dose="20 mg", every="8 h")],
            [
                mps.RadiotherapyStep(
                    total_dose="20 Gy",
                    fractions=2,
                    site="psoas",
                    prior_dose="8 Gy",
                    prior_fractions=1,
                )
            ],
            [
                mps.OpioidStep(
                    drug="morphine", formulation="modified-release", dose="60 mg", every="12 h"
                ),
                mps.OpioidStep(drug="morphine", dose="60 mg", prn=True, max_doses_per_24h=4),
            ],
            [mps.OpioidStep(drug="fentanyl", route="transdermal", rate="50 mcg/h")],
            [mps.OpioidStep(drug="buprenorphine", route="transdermal", rate="10 mcg/h")],
        ]
        patient = mps.Patient(
            weight="50 kg",
            age=80,
            qtc="480 ms",
            creatinine_clearance="20 mL/min",
            hepatic_impairment="severe",
            opioid_tolerant=False,
        )
        seen = set()
        for steps in regimens:
            for f in validate(mps.Regimen(steps), patient).findings:
                _check_canonical(f.detail, f.code)
                if any(isinstance(v, float) for v in f.detail.values()):
                    seen.add(f.code)
        assert {
            "dose.max-daily",
            "methadone.qtc-prolonged",
            "radiotherapy.bed-eqd2",
            "radiotherapy.reirradiation",
            "radiotherapy.dose-per-fraction",
            "opioid.ome-total",
            "opioid.breakthrough-dose",
            "renal.dose-adjust",
        } <= seen, seen

    def test_helper_refuses_a_unit_without_a_ucum_code(self) -> None:
        """A unit missing from ucum.toml is a data-file error, never a silent text."""
        from mps_analgesia.errors import DataFileError
        from mps_analgesia.rules._util import measure

        with pytest.raises(DataFileError, match="no UCUM code"):
            measure("x", 1.0, "furlong/fortnight")

    def test_suggested_dose_is_rounded_down_from_the_limit(self) -> None:
        """Acetaminophen 1250 mg × 4: the 4000 mg/day limit gives 1000 mg per dose."""
        step = mps.AdjuvantStep(
            drug="acetaminophen", role="nociceptive", dose="1250 mg", every="6 h"
        )
        (f,) = [f for f in validate(mps.Regimen([step])).findings if f.code == "dose.max-daily"]
        assert (f.detail["suggested_dose"], f.detail["suggested_dose_unit"]) == (1000.0, "mg")
        assert f.detail["suggested_dose_text"] == "1000 mg"


class TestDataTexts:
    """A rule's texts name data values as {file:key}; the declaration writes the value in."""

    def test_placeholders_are_filled_from_the_data(self) -> None:
        """Title, severity and description take the named value, formatted by the one formatter."""
        from mps_analgesia import _datatext

        @mps.rule(
            "local.interval",
            title="Increases at least {methadone:titration.min_interval} apart",
            severity="warning above {methadone:adjuvant_range.upper}",
            description="Range {methadone:adjuvant_range.lower!n}–"
            "{methadone:adjuvant_range.upper}.",
        )
        def check(ctx: Any, index: int | None, step: Any) -> Any:
            return mps.PASSED

        interval = _datatext.value_text(_datatext.value_at("methadone", "titration.min_interval"))
        low = _catalog.data_entry("methadone.toml", "adjuvant_range.lower")["value"].split()[0]
        high = _catalog.data_entry("methadone.toml", "adjuvant_range.upper")["value"]
        assert check.title == f"Increases at least {interval} apart"
        assert check.severity == f"warning above {high}"
        assert check.description == f"Range {low}–{high}."

    def test_an_unknown_key_fails_the_declaration(self) -> None:
        """A placeholder naming no data value is an error when the rule is declared."""
        from mps_analgesia.errors import DataFileError

        with pytest.raises(DataFileError, match=r"methadone\.toml.*no_such"):

            @mps.rule("local.bad", title="At least {methadone:no_such.key}", severity="warning")
            def check(ctx: Any, index: int | None, step: Any) -> Any:
                return mps.PASSED

    def test_text_without_placeholders_is_kept(self) -> None:
        """Braces that are not a placeholder stay as written."""

        @mps.rule("local.braces", title="A {literal} brace", severity="warning")
        def check(ctx: Any, index: int | None, step: Any) -> Any:
            return mps.PASSED

        assert check.title == "A {literal} brace"
