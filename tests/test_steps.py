"""Typed protocol steps: construction, refusals with the field named, derived doses, equality."""

from __future__ import annotations

import math
from typing import Any

import pint
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mps_analgesia._units import Q, magnitude_in
from mps_analgesia.errors import (
    DimensionError,
    MpsAnalgesiaError,
    StepError,
    UnitError,
    UnknownDrugError,
    UnknownNameError,
    UnknownRouteError,
)
from mps_analgesia.steps import (
    ADJUVANT_ROLES,
    STEP_KINDS,
    AdjuvantStep,
    MethadoneAdjuvantStep,
    OpioidStep,
    PsoasCompartmentBlockStep,
    RadiotherapyStep,
    TaperStep,
    TitrationPoint,
)
from strategies import (
    adjuvant_steps,
    any_steps,
    block_steps,
    methadone_adjuvant_steps,
    opioid_steps,
    radiotherapy_steps,
)


def _opioid(**kw: Any) -> OpioidStep:
    base: dict[str, Any] = {"drug": "morphine", "dose": "10 mg", "every": "4 h"}
    base.update(kw)
    return OpioidStep(**base)


def _adjuvant(**kw: Any) -> AdjuvantStep:
    base: dict[str, Any] = {
        "drug": "acetaminophen",
        "role": "nociceptive",
        "dose": "1 g",
        "every": "6 h",
    }
    base.update(kw)
    return AdjuvantStep(**base)


def _block(**kw: Any) -> PsoasCompartmentBlockStep:
    base: dict[str, Any] = {
        "drug": "ropivacaine",
        "concentration": "0.2 %",
        "bolus_volume": "20 mL",
        "side": "left",
    }
    base.update(kw)
    return PsoasCompartmentBlockStep(**base)


class TestConstruction:
    def test_opioid_regular(self) -> None:
        """A modified-release oxycodone step every 12 h gives 20 mg/day."""
        step = OpioidStep(
            drug="oxycodone", formulation="modified-release", dose="10 mg", every="12 h"
        )
        assert (step.kind, step.route, step.drug_class) == ("opioid", "oral", "opioid")
        assert step.daily_dose == Q("20 mg/day")
        assert (step.dose_mg, step.every_h, step.doses_per_day) == (10.0, 12.0, 2.0)
        assert step.is_regular
        assert not step.is_continuous
        assert step.is_long_acting

    def test_opioid_prn_with_maximum(self) -> None:
        """A PRN step's daily dose is capped by its maximum doses per 24 h."""
        step = _opioid(drug="oxycodone", dose="5 mg", every="2 h", prn=True, max_doses_per_24h=6)
        assert step.doses_per_day == 6.0
        assert step.daily_dose_mg == 30.0
        assert not step.is_regular
        assert not step.is_long_acting

    def test_opioid_prn_without_interval(self) -> None:
        """A PRN step with only a 24-hour maximum is dosed at that maximum."""
        step = _opioid(every=None, prn=True, max_doses_per_24h=4)
        assert step.daily_dose_mg == 40.0

    def test_opioid_patch(self) -> None:
        """A fentanyl patch is a rate; its formulation defaults to patch on the skin."""
        patch = OpioidStep(drug="fentanyl", route="transdermal", rate="25 mcg/h")
        assert patch.formulation == "patch"
        assert patch.is_continuous
        assert patch.is_long_acting
        assert patch.daily_dose_mg == pytest.approx(0.6)
        assert patch.rate_mg_per_h == pytest.approx(0.025)

    def test_times_per_day_and_once(self) -> None:
        """times_per_day and once are schedules too."""
        assert _opioid(every=None, times_per_day=3).daily_dose_mg == 30.0
        assert _opioid(every=None, once=True).daily_dose_mg == 10.0

    def test_methadone_adjuvant(self) -> None:
        """Adjuvant methadone defaults to methadone and keeps its titration."""
        step = MethadoneAdjuvantStep(
            dose="5 mg", every="8 h", titration=[{"day": 7, "dose": "7.5 mg"}]
        )
        assert (step.kind, step.drug) == ("methadone_adjuvant", "methadone")
        assert step.titration == (TitrationPoint(day=7, dose="7.5 mg"),)

    def test_adjuvant_synonym_and_role(self) -> None:
        """Paracetamol is acetaminophen; the role is normalised ('Muscle spasm' → muscle-spasm)."""
        assert _adjuvant(drug="Paracetamol").drug == "acetaminophen"
        step = AdjuvantStep(drug="baclofen", role="Muscle spasm", dose="5 mg", every="8 h")
        assert step.role == "muscle-spasm"

    @pytest.mark.parametrize("role", ADJUVANT_ROLES)
    def test_every_role_is_accepted(self, role: str) -> None:
        """Every listed adjuvant role constructs."""
        assert _adjuvant(role=role).role == role

    def test_block_dose_in_units(self) -> None:
        """Block doses are concentration × volume: 0.2 % × 20 mL = 40 mg, + 12 mg/h."""
        block = _block(infusion_rate="6 mL/h", infusion_duration="48 h", technique="catheter")
        assert (block.bolus_mg, block.infusion_mg_per_h, block.max_24h_mg) == (40.0, 12.0, 328.0)
        assert block.infusion_total_mg == 576.0
        assert block.bolus_dose == Q("40 mg")
        assert block.max_24h_dose == Q("328 mg")

    def test_block_short_infusion_and_open_infusion(self) -> None:
        """A 12-hour infusion counts 12 h in 24 h; an open one has no total."""
        short = _block(infusion_rate="6 mL/h", infusion_duration="12 h", technique="catheter")
        assert short.max_24h_mg == 40.0 + 12.0 * 12
        open_ = _block(bolus_volume=None, infusion_rate="6 mL/h", technique="Catheter")
        assert open_.infusion_total_mg is None
        assert open_.bolus_mg == 0.0

    def test_block_concentration_in_mg_per_ml(self) -> None:
        """A concentration in mg/mL works as well as a percentage."""
        assert _block(concentration="2 mg/mL").bolus_mg == 40.0

    def test_radiotherapy(self) -> None:
        """20 Gy in 5 fractions is 4 Gy/fraction, a dose per fraction, not a plain Gy."""
        rt = RadiotherapyStep(
            total_dose="20 Gy", fractions=5, site="left psoas", prior_dose="8 Gy", prior_fractions=1
        )
        assert rt.dose_per_fraction == Q("4 Gy/fraction")
        assert (rt.total_dose_gy, rt.prior_dose_gy, rt.dose_per_fraction_gy) == (20.0, 8.0, 4.0)

    def test_quantities_are_accepted_as_values(self) -> None:
        """A Quantity, of ours or another registry, is as good as text."""
        other = pint.UnitRegistry()
        step = _opioid(dose=other.Quantity(10, "mg"), every=Q(4, "h"))
        assert step.dose_mg == 10.0

    def test_step_kinds_table(self) -> None:
        """STEP_KINDS maps each kind to its class."""
        assert {
            "opioid": OpioidStep,
            "methadone_adjuvant": MethadoneAdjuvantStep,
            "adjuvant": AdjuvantStep,
            "psoas_compartment_block": PsoasCompartmentBlockStep,
            "radiotherapy": RadiotherapyStep,
            "taper": TaperStep,
        } == STEP_KINDS

    @pytest.mark.parametrize(
        ("step", "text"),
        [
            (
                OpioidStep(drug="oxycodone", dose="10 mg", every="12 h"),
                "oxycodone 10 mg oral every 12 h",
            ),
            (
                OpioidStep(
                    drug="oxycodone", dose="5 mg", every="2 h", prn=True, max_doses_per_24h=6
                ),
                "oxycodone 5 mg oral every 2 h when needed, at most 6 doses in 24 h",
            ),
            (
                OpioidStep(drug="fentanyl", route="transdermal", rate="25 mcg/h"),
                "fentanyl 25 mcg/h transdermal patch",
            ),
            (
                AdjuvantStep(
                    drug="dexamethasone", role="anti-inflammatory", dose="8 mg", once=True
                ),
                "dexamethasone 8 mg oral once",
            ),
            (
                AdjuvantStep(
                    drug="dexamethasone", role="anti-inflammatory", dose="8 mg", times_per_day=1
                ),
                "dexamethasone 8 mg oral once a day",
            ),
            (
                AdjuvantStep(drug="gabapentin", role="neuropathic", dose="200 mg", times_per_day=2),
                "gabapentin 200 mg oral 2 times a day",
            ),
            (
                RadiotherapyStep(total_dose="8 Gy", site="L3"),
                "radiotherapy to L3: 8 Gy in 1 fraction",
            ),
        ],
    )
    def test_describe(self, step: Any, text: str) -> None:
        """describe() gives one plain-language line."""
        assert step.describe() == text


def _raises(exc: type[BaseException], field: str, message: str, build: Any) -> None:
    with pytest.raises(exc) as info:
        build()
    err = info.value
    assert getattr(err, "field", None) == field, str(err)
    assert message in str(err), str(err)
    assert str(err).startswith(f"{field}: "), str(err)
    assert isinstance(err, MpsAnalgesiaError)


class TestRefusals:
    @pytest.mark.parametrize(
        ("dose", "message"),
        [
            ("-5 mg", "must be greater than zero, not -5 mg"),
            ("0 mg", "must be greater than zero, not 0 mg"),
            ("0 g", "must be greater than zero, not 0 g"),
        ],
    )
    def test_negative_or_zero_dose(self, dose: str, message: str) -> None:
        """A negative or zero dose is refused on 'dose'."""
        _raises(StepError, "dose", message, lambda: _opioid(dose=dose))

    @pytest.mark.parametrize("field", ["every", "rate"])
    def test_zero_interval_or_rate(self, field: str) -> None:
        """A zero interval or rate is refused on its field."""
        if field == "every":
            _raises(StepError, "every", "greater than zero", lambda: _opioid(every="0 h"))
        else:
            _raises(
                StepError,
                "rate",
                "greater than zero",
                lambda: OpioidStep(drug="fentanyl", route="transdermal", rate="0 mcg/h"),
            )

    @pytest.mark.parametrize("dose", ["nan mg", "inf mg", "-inf mg"])
    def test_nan_and_infinite_dose_text(self, dose: str) -> None:
        """NaN and infinite doses are not numbers."""
        _raises(UnitError, "dose", "does not start with a number", lambda: _opioid(dose=dose))

    @pytest.mark.parametrize("value", [math.nan, math.inf])
    def test_nan_and_infinite_quantity(self, value: float) -> None:
        """A NaN or infinite Quantity (of another registry) is refused on 'dose'."""
        other = pint.UnitRegistry()
        _raises(
            UnitError,
            "dose",
            "is not a finite number",
            lambda: _opioid(dose=other.Quantity(value, "mg")),
        )

    def test_bare_number_dose(self) -> None:
        """A bare number dose says which unit is expected."""
        _raises(UnitError, "dose", "'30' has no unit; write e.g. '30 mg'", lambda: _opioid(dose=30))

    def test_dose_in_ml(self) -> None:
        """A dose in mL is a volume, not a mass."""
        _raises(
            DimensionError,
            "dose",
            "'5 mL' is a volume, not a mass",
            lambda: _opioid(dose="5 mL"),
        )

    def test_every_in_mg(self) -> None:
        """An interval in mg is refused on 'every'."""
        _raises(DimensionError, "every", "is a mass, not a time", lambda: _opioid(every="4 mg"))

    def test_patch_rate_per_day(self) -> None:
        """A patch written per day ('0.6 mg/day') is refused: patches are labelled per hour."""
        _raises(
            StepError,
            "rate",
            "patches are labelled per hour; '0.6 mg/day' looks like a daily dose",
            lambda: OpioidStep(drug="fentanyl", route="transdermal", rate="0.6 mg/day"),
        )

    def test_patch_given_as_dose(self) -> None:
        """A patch given as a dose + interval is refused: it is dosed as a rate."""
        _raises(
            StepError,
            "rate",
            "a transdermal patch is dosed as a rate",
            lambda: OpioidStep(drug="fentanyl", route="transdermal", dose="25 mcg", every="72 h"),
        )

    def test_patch_rate_in_mg(self) -> None:
        """A patch strength in mg (a mass, not a rate) is a dimension error."""
        _raises(
            DimensionError,
            "rate",
            "is a mass, not a mass rate",
            lambda: OpioidStep(drug="fentanyl", route="transdermal", rate="25 mcg"),
        )

    def test_rate_with_dose(self) -> None:
        """A continuous step cannot also have a dose."""
        _raises(
            StepError,
            "dose",
            "a continuous step has a rate only",
            lambda: OpioidStep(drug="morphine", route="subcutaneous", rate="1 mg/h", dose="5 mg"),
        )

    def test_continuous_prn(self) -> None:
        """A continuous step cannot be PRN."""
        _raises(
            StepError,
            "rate",
            "cannot be 'once' or 'prn'",
            lambda: OpioidStep(drug="morphine", route="subcutaneous", rate="1 mg/h", prn=True),
        )

    def test_block_volume_without_concentration(self) -> None:
        """A block volume without a concentration cannot give a dose."""
        _raises(
            StepError,
            "concentration",
            "is required to compute the dose from a volume",
            lambda: _block(concentration=None),
        )

    def test_block_without_volume(self) -> None:
        """A block needs a bolus volume or an infusion rate."""
        _raises(
            StepError,
            "bolus_volume",
            "needs a bolus_volume, an infusion_rate or both",
            lambda: _block(bolus_volume=None),
        )

    def test_block_concentration_as_mass(self) -> None:
        """A concentration written as a mass is a dimension error."""
        _raises(
            DimensionError,
            "concentration",
            "'2 mg' is a mass, not a concentration",
            lambda: _block(concentration="2 mg"),
        )

    def test_block_infusion_without_catheter(self) -> None:
        """An infusion needs a catheter."""
        _raises(
            StepError,
            "infusion_rate",
            "an infusion needs a catheter",
            lambda: _block(infusion_rate="6 mL/h"),
        )

    def test_block_duration_without_infusion(self) -> None:
        """An infusion duration without an infusion rate is refused."""
        _raises(
            StepError,
            "infusion_duration",
            "without an infusion_rate",
            lambda: _block(infusion_duration="48 h"),
        )

    def test_block_with_an_opioid(self) -> None:
        """A block drug must be a local anaesthetic."""
        _raises(
            UnknownDrugError,
            "drug",
            "morphine is not a local anaesthetic",
            lambda: _block(drug="morphine"),
        )

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("side", "leftt", "'leftt' is not one of left, right, bilateral; did you mean 'left'?"),
            ("technique", "needle", "is not one of single-shot, catheter"),
            ("adrenaline", "yes", "must be true or false"),
        ],
    )
    def test_block_choices(self, field: str, value: str, message: str) -> None:
        """Block sides, techniques and flags are checked with suggestions."""
        _raises(StepError, field, message, lambda: _block(**{field: value}))

    def test_unknown_drug_did_you_mean(self) -> None:
        """'fentanil' is refused with 'did you mean fentanyl?'."""
        with pytest.raises(UnknownDrugError) as info:
            _opioid(drug="fentanil")
        err = info.value
        assert err.field == "drug"
        assert err.suggestions[0] == "fentanyl"
        assert str(err) == "drug: unknown drug 'fentanil'; did you mean 'fentanyl'?"
        assert isinstance(err, LookupError)
        assert isinstance(err, UnknownNameError)

    def test_unknown_route_did_you_mean(self) -> None:
        """'oarl' is refused with 'did you mean oral?'."""
        with pytest.raises(UnknownRouteError) as info:
            _opioid(route="oarl")
        assert info.value.field == "route"
        assert str(info.value) == "route: unknown route 'oarl'; did you mean 'oral'?"

    def test_route_the_drug_does_not_have(self) -> None:
        """An oral fentanyl patch is refused: fentanyl has no oral route."""
        with pytest.raises(UnknownRouteError) as info:
            OpioidStep(drug="fentanyl", route="oral", formulation="patch", rate="25 mcg/h")
        assert info.value.field == "route"
        assert "fentanyl has no oral route" in str(info.value)
        assert "transdermal" in info.value.suggestions

    def test_patch_by_a_non_transdermal_route(self) -> None:
        """A 'patch' by a route that has no patches is a formulation/route mismatch."""
        _raises(
            StepError,
            "formulation",
            "a patch is transdermal; fentanyl by the buccal route cannot be one",
            lambda: OpioidStep(
                drug="fentanyl", route="buccal", formulation="patch", rate="5 mcg/h"
            ),
        )

    def test_formulation_route_mismatch(self) -> None:
        """Modified-release does not exist by the subcutaneous route."""
        _raises(
            StepError,
            "formulation",
            "'modified-release' does not exist by the subcutaneous route "
            "(allowed: immediate-release)",
            lambda: _opioid(route="subcutaneous", formulation="modified-release"),
        )

    def test_unknown_formulation(self) -> None:
        """An unknown formulation is refused with the known ones listed."""
        _raises(
            StepError,
            "formulation",
            "'slow' is not one of immediate-release, modified-release, patch",
            lambda: _opioid(formulation="slow"),
        )

    def test_adjuvant_without_role(self) -> None:
        """An adjuvant needs a role."""
        _raises(
            StepError,
            "role",
            "is required: one of nociceptive, neuropathic",
            lambda: _adjuvant(role=""),
        )

    def test_adjuvant_unknown_role(self) -> None:
        """An unknown role is refused with the roles listed."""
        _raises(StepError, "role", "'pain' is not one of", lambda: _adjuvant(role="pain"))

    @pytest.mark.parametrize(
        ("build", "message"),
        [
            (
                lambda: _opioid(drug="acetaminophen"),
                "acetaminophen is not an opioid; use an 'adjuvant' step",
            ),
            (
                lambda: _opioid(drug="ropivacaine", route="epidural"),
                "ropivacaine is not an opioid; use a 'psoas_compartment_block' step",
            ),
            (
                lambda: _adjuvant(drug="morphine"),
                "morphine is not an adjuvant; use an 'opioid' step",
            ),
            (
                lambda: _adjuvant(drug="lidocaine", route="intravenous"),
                "lidocaine is not an adjuvant; use a 'psoas_compartment_block' step",
            ),
            (
                lambda: MethadoneAdjuvantStep(drug="oxycodone", dose="5 mg", every="8 h"),
                "a methadone_adjuvant step is methadone, not oxycodone",
            ),
        ],
    )
    def test_wrong_class_for_kind(self, build: Any, message: str) -> None:
        """A drug of the wrong class for the step kind is refused, naming the right kind."""
        _raises(UnknownDrugError, "drug", message, build)

    def test_methadone_adjuvant_not_prn(self) -> None:
        """Adjuvant methadone is regular, never PRN."""
        _raises(
            StepError,
            "prn",
            "given regularly",
            lambda: MethadoneAdjuvantStep(dose="5 mg", every="8 h", prn=True),
        )

    @pytest.mark.parametrize(
        ("titration", "field", "message"),
        [
            (
                [{"day": 14, "dose": "10 mg"}, {"day": 7, "dose": "7.5 mg"}],
                "titration[1].day",
                "day 7 must come after day 14",
            ),
            ([{"day": 0, "dose": "10 mg"}], "titration[0].day", "day 0 must come after day 0"),
            (
                [{"day": 7, "dose": "7.5"}],
                "titration[0].dose",
                "'7.5' has no unit; write e.g. '7.5 mg'",
            ),
            ([{"day": 7, "dose": "-1 mg"}], "titration[0].dose", "must be greater than zero"),
            ([{"day": 7, "dos": "7.5 mg"}], "titration[0]", "unknown key"),
            ([{"day": 7}], "titration[0].dose", "needs a dose or a rate"),
            ([{"day": 7, "rate": "1 mg/h"}], "titration[0].dose", "this step titrates its dose"),
            ([7], "titration[0]", "must be a {day, dose} table"),
            ("day 7", "titration", "must be a list"),
        ],
    )
    def test_bad_titration(self, titration: Any, field: str, message: str) -> None:
        """Titration points out of order or malformed are refused with their index."""
        _raises(
            StepError,
            field,
            message,
            lambda: MethadoneAdjuvantStep(dose="5 mg", every="8 h", titration=titration),
        )

    def test_titration_before_start_day(self) -> None:
        """A titration day must come after the step's start day."""
        _raises(
            StepError,
            "titration[0].day",
            "day 3 must come after day 5",
            lambda: _opioid(start_day=5, titration=[{"day": 3, "dose": "20 mg"}]),
        )

    def test_continuous_step_titrates_its_rate(self) -> None:
        """A patch titrated with a dose is refused."""
        _raises(
            StepError,
            "titration[0].rate",
            "a continuous step titrates its rate",
            lambda: OpioidStep(
                drug="fentanyl",
                route="transdermal",
                rate="25 mcg/h",
                titration=[{"day": 3, "dose": "1 mg"}],
            ),
        )

    @pytest.mark.parametrize("value", [2.5, "2", True, 0, math.nan])
    def test_times_per_day_not_a_whole_number(self, value: Any) -> None:
        """times_per_day must be a whole number of at least 1."""
        with pytest.raises(StepError) as info:
            _opioid(every=None, times_per_day=value)
        assert info.value.field == "times_per_day"
        assert "must be" in info.value.reason

    def test_max_doses_without_prn(self) -> None:
        """max_doses_per_24h applies to PRN steps only."""
        _raises(
            StepError,
            "max_doses_per_24h",
            "applies to PRN steps only",
            lambda: _opioid(max_doses_per_24h=6),
        )

    def test_two_schedules(self) -> None:
        """every and times_per_day together are refused."""
        _raises(
            StepError,
            "times_per_day",
            "give one of every, times_per_day, once",
            lambda: _opioid(times_per_day=2),
        )

    def test_no_schedule(self) -> None:
        """A dose without any schedule is refused on 'every'."""
        _raises(StepError, "every", "give a schedule", lambda: _opioid(every=None))

    def test_no_dose(self) -> None:
        """A drug step without a dose (or rate) is refused."""
        _raises(StepError, "dose", "is required", lambda: _opioid(dose=None))

    @pytest.mark.parametrize(("flag", "value"), [("prn", "yes"), ("once", 1)])
    def test_flags_must_be_booleans(self, flag: str, value: Any) -> None:
        """prn and once are true or false."""
        _raises(StepError, flag, "must be true or false", lambda: _opioid(**{flag: value}))

    def test_negative_start_day(self) -> None:
        """A start day cannot be negative."""
        _raises(StepError, "start_day", "must be at least 0", lambda: _opioid(start_day=-1))

    @pytest.mark.parametrize(
        ("kwargs", "exc", "field", "message"),
        [
            (
                {"total_dose": "20 mg"},
                DimensionError,
                "total_dose",
                "is a mass, not an absorbed dose",
            ),
            (
                {"total_dose": "4 Gy/fraction"},
                DimensionError,
                "total_dose",
                "is a dose per fraction, not an absorbed dose",
            ),
            ({"total_dose": None}, StepError, "total_dose", "is required"),
            ({"fractions": 0}, StepError, "fractions", "must be at least 1"),
            ({"fractions": 2.5}, StepError, "fractions", "must be a whole number"),
            ({"site": "  "}, StepError, "site", "is required"),
            ({"total_dose": "-8 Gy"}, StepError, "total_dose", "greater than zero"),
            ({"prior_fractions": 1}, StepError, "prior_fractions", "without a prior_dose"),
            ({"prior_dose": "0 Gy"}, StepError, "prior_dose", "greater than zero"),
        ],
    )
    def test_radiotherapy_refusals(
        self, kwargs: dict[str, Any], exc: type[Exception], field: str, message: str
    ) -> None:
        """Radiotherapy steps are checked field by field."""
        base: dict[str, Any] = {"total_dose": "20 Gy", "fractions": 5, "site": "left psoas"}
        base.update(kwargs)
        _raises(exc, field, message, lambda: RadiotherapyStep(**base))


class TestDerivedDoses:
    def _titrated(self) -> MethadoneAdjuvantStep:
        return MethadoneAdjuvantStep(
            dose="5 mg",
            every="8 h",
            start_day=2,
            titration=[{"day": 7, "dose": "7.5 mg"}, {"day": 14, "dose": "10 mg"}],
        )

    def test_daily_dose_is_largest_over_titration(self) -> None:
        """daily_dose is the peak daily dose over the titration, as a Quantity."""
        step = self._titrated()
        assert step.daily_dose == Q("30 mg/day")
        assert step.daily_dose_mg == 30.0

    @pytest.mark.parametrize(
        ("day", "expected"),
        [(0, 0.0), (1, 0.0), (2, 15.0), (6, 15.0), (7, 22.5), (13, 22.5), (14, 30.0), (99, 30.0)],
    )
    def test_daily_dose_on(self, day: int, expected: float) -> None:
        """daily_dose_on(day) follows start_day and titration."""
        step = self._titrated()
        assert step.daily_dose_mg_on(day) == expected
        assert step.daily_dose_on(day) == Q(expected, "mg/day")

    @pytest.mark.parametrize(
        ("day", "expected"), [(1, None), (2, "5 mg"), (7, "7.5 mg"), (20, "10 mg")]
    )
    def test_dose_on(self, day: int, expected: str | None) -> None:
        """dose_on(day) is the dose per administration then, None before the start."""
        dose = self._titrated().dose_on(day)
        assert (dose is None) if expected is None else (dose == Q(expected))

    def test_titration_can_lower_the_dose(self) -> None:
        """A lower titrated dose does not lower the peak daily dose."""
        step = _opioid(titration=[{"day": 3, "dose": "5 mg"}])
        assert step.daily_dose_mg == 60.0
        assert step.daily_dose_mg_on(3) == 30.0

    def test_patch_rate_titration(self) -> None:
        """A patch titrated to 50 mcg/h peaks at 1.2 mg/day, and dose_on gives the rate."""
        patch = OpioidStep(
            drug="fentanyl",
            route="transdermal",
            rate="25 mcg/h",
            titration=[{"day": 3, "rate": "50 mcg/h"}],
        )
        assert patch.daily_dose_mg == pytest.approx(1.2)
        assert patch.daily_dose_mg_on(2) == pytest.approx(0.6)
        assert patch.dose_on(3) == Q("50 mcg/h")


class TestEquality:
    def test_same_dose_in_other_units_is_equal(self) -> None:
        """A step built from '1 g' equals one built from '1000 mg', with the same hash."""
        a = _adjuvant(dose="1 g")
        b = _adjuvant(dose="1000 mg")
        assert a == b
        assert hash(a) == hash(b)

    def test_interval_in_minutes_is_equal(self) -> None:
        """'6 h' and '360 min' make equal steps."""
        assert _adjuvant(every="6 h") == _adjuvant(every="360 min")

    def test_different_doses_differ(self) -> None:
        """Steps with different doses are not equal."""
        assert _adjuvant(dose="1 g") != _adjuvant(dose="500 mg")

    def test_synonyms_are_equal(self) -> None:
        """A step written with a synonym equals one written with the drug id."""
        assert _adjuvant(drug="paracetamol") == _adjuvant(drug="acetaminophen")

    def test_steps_are_frozen(self) -> None:
        """Steps are immutable."""
        import attrs

        step = _opioid()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            step.dose = "20 mg"  # type: ignore[misc]

    @pytest.mark.parametrize(
        "build",
        [
            lambda: _opioid(titration=[{"day": 3, "dose": "20 mg"}]),
            lambda: _block(),
            lambda: RadiotherapyStep(total_dose="8 Gy", site="L3"),
            lambda: TitrationPoint(day=3, dose="2 mg"),
            lambda: MethadoneAdjuvantStep(dose="5 mg", every="8 h"),
        ],
    )
    def test_steps_are_hashable(self, build: Any) -> None:
        """Every step class hashes (so steps can sit in sets and dict keys)."""
        assert len({build(), build()}) == 1


class TestProperties:
    @settings(max_examples=120, deadline=None)
    @given(any_steps())
    def test_generated_steps_are_hashable_and_rebuild_equal(self, step: Any) -> None:
        """Any valid step is hashable and equals a copy rebuilt from its own fields."""
        import attrs

        kwargs = {a.name: getattr(step, a.name) for a in attrs.fields(type(step)) if a.init}
        again = type(step)(**kwargs)
        assert again == step
        assert hash(again) == hash(step)

    @settings(max_examples=100, deadline=None)
    @given(
        st.one_of(opioid_steps(), adjuvant_steps(), methadone_adjuvant_steps()), st.integers(0, 90)
    )
    def test_daily_dose_bounds_every_day(self, step: Any, day: int) -> None:
        """daily_dose is never below the daily dose of any single day."""
        assert step.daily_dose_mg_on(day) <= step.daily_dose_mg * (1 + 1e-12)
        assert step.daily_dose_mg > 0

    @settings(max_examples=60, deadline=None)
    @given(opioid_steps())
    def test_daily_dose_is_in_mg_per_day(self, step: OpioidStep) -> None:
        """The daily_dose Quantity agrees with the canonical float."""
        assert magnitude_in(step.daily_dose, "mg/day") == pytest.approx(step.daily_dose_mg)

    @settings(max_examples=60, deadline=None)
    @given(block_steps())
    def test_block_24h_dose_covers_bolus(self, block: PsoasCompartmentBlockStep) -> None:
        """The most in 24 h is at least the bolus."""
        assert block.max_24h_mg >= block.bolus_mg

    @settings(max_examples=60, deadline=None)
    @given(radiotherapy_steps())
    def test_fraction_dose_times_fractions_is_total(self, rt: RadiotherapyStep) -> None:
        """dose per fraction × fractions = total dose."""
        assert rt.dose_per_fraction_gy * rt.fractions == pytest.approx(rt.total_dose_gy)

    @settings(max_examples=80, deadline=None)
    @given(
        st.sampled_from(["morphine", "oxycodone", "tramadol"]),
        st.floats(min_value=-1e6, max_value=0.0).filter(lambda v: v == 0 or v <= -1e-12),
    )
    def test_non_positive_doses_always_refused(self, drug: str, value: float) -> None:
        """Any zero or negative dose is refused on 'dose', never stored."""
        with pytest.raises(StepError) as info:
            _opioid(drug=drug, dose=Q(value, "mg"))
        assert info.value.field == "dose"

    @settings(max_examples=80, deadline=None)
    @given(st.text(max_size=12))
    def test_unknown_drug_names_never_construct(self, name: str) -> None:
        """Any drug name not in the catalog raises UnknownDrugError, nothing else."""
        from mps_analgesia import _catalog

        try:
            _catalog.drug(name)
        except UnknownDrugError:
            with pytest.raises(UnknownDrugError):
                _opioid(drug=name)


def test_block_side_is_required_never_assumed() -> None:
    """A block without a side is refused: the library never guesses left or right."""
    with pytest.raises(StepError, match="side: is required"):
        PsoasCompartmentBlockStep(drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL")


class TestOverTime:
    """Every step kind has a start day, an end and a dose on each day."""

    def test_stop_day_ends_the_step(self) -> None:
        """After its stop day a drug step gives nothing and has no dose."""
        step = _opioid(start_day=2, stop_day=5)
        assert [step.daily_dose_mg_on(d) for d in (1, 2, 5, 6)] == [0.0, 60.0, 60.0, 0.0]
        assert step.dose_on(6) is None
        assert step.last_day == 5

    def test_duration_in_whole_days_sets_the_last_day(self) -> None:
        """duration = 7 days from day 3 is days 3 to 9."""
        assert _opioid(start_day=3, duration="7 day").last_day == 9
        assert _opioid(duration="48 h").last_day == 1

    @pytest.mark.parametrize(
        ("kw", "field", "message"),
        [
            ({"stop_day": 3, "duration": "2 day"}, "duration", "not both"),
            ({"start_day": 4, "stop_day": 3}, "stop_day", "comes before start_day"),
            ({"duration": "36 h"}, "duration", "whole days"),
            ({"at": ["08:00"]}, "at", "1 time of day given for 6 doses a day"),
            ({"at": ["8 am"]}, "at", "is not a time of day"),
            ({"at": ["20:00", "08:00"]}, "at", "in order"),
            ({"prn": True, "at": ["08:00"], "every": "4 h", "max_doses_per_24h": 6}, "at", "PRN"),
            (
                {"stop_day": 5, "titration": [{"day": 7, "dose": "20 mg"}]},
                "titration[0].day",
                "after the step stops",
            ),
        ],
    )
    def test_bad_time_structure_is_refused(self, kw: Any, field: str, message: str) -> None:
        """Stop days, durations and times of day that cannot be right name their field."""
        _raises(StepError, field, message, lambda: _opioid(**kw))

    def test_times_of_day_match_the_doses(self) -> None:
        """Four times a day every 6 h; normalised to HH:MM."""
        step = _opioid(every="6 h", at=["6:00", "12:00", "18:00", "23:30"])
        assert step.at == ("06:00", "12:00", "18:00", "23:30")

    def test_titration_changes_dose_and_frequency(self) -> None:
        """5 mg every 8 h, then 10 mg every 12 h from day 7: 15 then 20 mg/day."""
        step = MethadoneAdjuvantStep(
            dose="5 mg",
            every="8 h",
            titration=[{"day": 7, "dose": "10 mg", "every": "12 h"}],
        )
        assert [step.daily_dose_mg_on(d) for d in (0, 6, 7)] == [15.0, 15.0, 20.0]
        assert step.daily_dose_mg == 20.0
        assert step.phases[1].every_h == 12.0

    def test_titration_may_change_the_frequency_alone(self) -> None:
        """10 mg every 12 h, then the same dose every 8 h from day 5."""
        step = _opioid(every="12 h", titration=[{"day": 5, "every": "8 h"}])
        assert [step.daily_dose_mg_on(d) for d in (4, 5)] == [20.0, 30.0]
        assert step.dose_on(5) == step.dose

    def test_frequency_change_on_a_prn_step_is_refused(self) -> None:
        """A PRN step's titration changes its dose only."""
        _raises(
            StepError,
            "titration[0].every",
            "cannot change its frequency",
            lambda: _opioid(prn=True, titration=[{"day": 3, "every": "2 h"}]),
        )

    def test_once_is_given_on_its_start_day_only(self) -> None:
        """A single dose on day 4 has no dose on day 5."""
        step = _opioid(once=True, every=None, start_day=4)
        assert step.last_day == 4
        assert step.daily_dose_mg_on(5) == 0.0

    def test_block_infusion_reaches_into_a_third_day_without_a_time(self) -> None:
        """A 48 h catheter from day 1 with no time of day may run on days 1-3."""
        block = _block(
            technique="catheter", infusion_rate="6 mL/h", infusion_duration="48 h", start_day=1
        )
        assert block.last_day == 3
        assert [block.local_anaesthetic_mg_on(d) for d in range(5)] == [0, 328, 288, 288, 0]
        assert block.dose_on(0) is None
        assert magnitude_in(block.dose_on(1), "mg") == 328

    def test_block_with_a_time_of_day_splits_by_calendar_day(self) -> None:
        """Bolus at 10:00 on day 1, 48 h at 12 mg/h: 40 + 14 h, 24 h, 10 h."""
        block = _block(
            technique="catheter",
            infusion_rate="6 mL/h",
            infusion_duration="48 h",
            start_day=1,
            at=["10:00"],
        )
        assert [block.local_anaesthetic_mg_on(d) for d in range(1, 5)] == [208, 288, 120, 0]
        assert sum(block.local_anaesthetic_mg_on(d) for d in range(5)) == pytest.approx(
            block.bolus_mg + (block.infusion_total_mg or 0)
        )

    def test_open_infusion_runs_to_its_stop_day(self) -> None:
        """A catheter without a duration runs to stop_day (the day it comes out)."""
        block = _block(technique="catheter", infusion_rate="6 mL/h", stop_day=4)
        assert block.last_day == 4
        assert block.local_anaesthetic_mg_on(4) == 288
        assert block.local_anaesthetic_mg_on(5) == 0

    def test_block_stop_day_with_a_duration_is_refused(self) -> None:
        """stop_day and infusion_duration would both end the block."""
        _raises(
            StepError,
            "stop_day",
            "give one of the two",
            lambda: _block(
                technique="catheter", infusion_rate="6 mL/h", infusion_duration="48 h", stop_day=3
            ),
        )

    def test_radiotherapy_fractions_consecutive_without_a_date(self) -> None:
        """20 Gy in 5 from day 2: days 2-6, 4 Gy each."""
        rt = RadiotherapyStep(total_dose="20 Gy", fractions=5, site="left psoas", start_day=2)
        assert rt.fraction_days() == (2, 3, 4, 5, 6)
        assert magnitude_in(rt.dose_on(4), "Gy") == 4
        assert rt.dose_on(7) is None

    def test_radiotherapy_fractions_skip_the_weekend_with_a_date(self) -> None:
        """From Friday 2026-12-04: Fri, Mon, Tue, Wed, Thu."""
        import datetime

        rt = RadiotherapyStep(total_dose="20 Gy", fractions=5, site="left psoas")
        assert rt.fraction_days(datetime.date(2026, 12, 4)) == (0, 3, 4, 5, 6)

    @given(st.integers(0, 6), st.integers(1, 10), st.integers(0, 20))
    def test_weekday_fractions_never_on_a_weekend(self, offset: int, n: int, start: int) -> None:
        """Whatever the start, every fraction falls on Monday to Friday, n of them, in order."""
        import datetime

        day0 = datetime.date(2026, 11, 30) + datetime.timedelta(days=offset)
        rt = RadiotherapyStep(total_dose="8 Gy", fractions=n, site="x", start_day=start)
        days = rt.fraction_days(day0)
        assert len(days) == n
        assert list(days) == sorted(set(days))
        assert days[0] >= start
        assert all((day0 + datetime.timedelta(days=d)).weekday() < 5 for d in days)
