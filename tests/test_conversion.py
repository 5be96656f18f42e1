"""Equianalgesia: daily OME, table comparison, rotation, methadone schemes, breakthrough doses.

Worked examples are numbered as in shared/reference/clinical-facts.md §7.
"""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import mps_analgesia as mps
from mps_analgesia import conversion
from mps_analgesia.conversion import (
    PRN_POLICIES,
    BreakthroughFraction,
    OmeResult,
    QuantityRange,
    Reduction,
    breakthrough_dose,
    compare_tables,
    convert_opioid,
    daily_ome,
    methadone_from_ome,
    methadone_schemes,
    ome_tables,
)
from mps_analgesia.errors import (
    ConversionError,
    DimensionError,
    MpsAnalgesiaError,
    UnitError,
    UnknownDrugError,
    UnknownNameError,
    UnknownRouteError,
)
from strategies import opioid_steps, regimens
from strategies_conversion import (
    convertible_oral,
    daily_omes,
    linear_targets,
    scales,
    table_ids,
)

Step = mps.OpioidStep


def oral(drug: str, dose: str, every: str = "12 h", **kw: Any) -> mps.OpioidStep:
    return Step(drug=drug, dose=dose, every=every, **kw)


def patch(rate: str) -> mps.OpioidStep:
    return Step(drug="fentanyl", route="transdermal", rate=rate)


def mme(result: OmeResult) -> float:
    return float(result.total.to("MME/day").magnitude)


MORPHINE_60 = oral("morphine", "30 mg", formulation="modified-release")
OXY_PRN = Step(drug="oxycodone", dose="5 mg", every="4 h", prn=True, max_doses_per_24h=4)
BUP_PATCH = Step(drug="buprenorphine", route="transdermal", rate="10 mcg/h")


# ---- daily OME --------------------------------------------------------------------------------


class TestWorkedExamplesOme:
    def test_1_hydrocodone_5mg_qid_is_20_mme(self) -> None:
        """§7 #1: hydrocodone 5 mg four times a day = 20 mg/day = 20 MME (CDC 2022 and 2016)."""
        step = Step(drug="hydrocodone", dose="5 mg", times_per_day=4)
        assert mme(daily_ome(step)) == pytest.approx(20)
        assert mme(daily_ome(step, "cdc-2016")) == pytest.approx(20)

    def test_2_oxycodone_er_10mg_bid_is_30_mme(self) -> None:
        """§7 #2: oxycodone ER 10 mg twice a day = 20 mg/day = 30 MME."""
        step = oral("oxycodone", "10 mg", formulation="modified-release")
        result = daily_ome(step)
        assert mme(result) == pytest.approx(30)
        assert (
            result.receipt[0] == "step 1 oxycodone oral: 20 mg/day × 1.5 = 30 MME/day [cdc-2022 V]"
        )

    def test_3_fentanyl_25_mcg_h_is_60_mme(self) -> None:
        """§7 #3: a 25 mcg/h patch × 2.4 = 60 MME/day (the CDS's 0.025 mg/h × 7200 × 1/3)."""
        result = daily_ome(patch("25 mcg/h"))
        assert mme(result) == pytest.approx(60)
        assert "25 mcg/h × 2.4 = 60 MME/day" in result.receipt[0]

    def test_4_fentanyl_12_mcg_h_is_28_8_mme(self) -> None:
        """§7 #4: 12 mcg/h (the CDS test input 0.012 mg/h) is 28.8 MME/day."""
        assert mme(daily_ome(patch("0.012 mg/h"))) == pytest.approx(28.8)
        assert mme(daily_ome(patch("12 mcg/h"))) == pytest.approx(28.8)

    def test_5_fentanyl_75_mcg_h_is_180_not_504(self) -> None:
        """§7 #5: 75 mcg/h × 2.4 = 180 MME/day, never the 504 of a ×7.2-per-patch formula."""
        value = mme(daily_ome(patch("75 mcg/h")))
        assert value == pytest.approx(180)
        assert value != pytest.approx(504)

    @pytest.mark.parametrize(
        ("mg_per_day", "factor", "expected"),
        [(10, 4, 40), (30, 8, 240), (50, 10, 500), (70, 12, 840)],
    )
    def test_6_methadone_cdc_2016_tiers(self, mg_per_day: int, factor: int, expected: int) -> None:
        """§7 #6: CDC 2016 methadone tiers 10/30/50/70 mg/day → factor 4/8/10/12."""
        step = Step(drug="methadone", dose=f"{mg_per_day} mg", once=True)
        result = daily_ome(step, "cdc-2016")
        assert mme(result) == pytest.approx(expected)
        assert result.lines[0].factor_low == factor
        assert result.lines[0].basis == "tier"

    def test_7_methadone_20_mg_2022_vs_2016(self) -> None:
        """§7 #7: methadone 20 mg/day = 94 MME (2022, ×4.7) vs 80 MME (2016 tier ×4)."""
        step = oral("methadone", "10 mg")
        assert mme(daily_ome(step)) == pytest.approx(94)
        assert mme(daily_ome(step, "cdc-2016")) == pytest.approx(80)

    def test_8_tramadol_400_mg_2022_vs_2016(self) -> None:
        """§7 #8: tramadol 400 mg/day = 80 MME (CDC 2022, 0.2) vs 40 (CDC 2016 data file, 0.1)."""
        step = oral("tramadol", "100 mg", every="6 h")
        assert mme(daily_ome(step)) == pytest.approx(80)
        assert mme(daily_ome(step, "cdc-2016")) == pytest.approx(40)
        assert mme(daily_ome(step, "palliative-uk")) == pytest.approx(40)


class TestMethadoneTiers:
    @pytest.mark.parametrize(
        ("mg_per_day", "factor"),
        [(20, 4), (20.5, 8), (40, 8), (40.25, 10), (60, 10), (60.5, 12), (200, 12)],
    )
    def test_open_intervals_for_non_integer_doses(self, mg_per_day: float, factor: int) -> None:
        """Non-integer doses follow the CDC file's open intervals (>20 ≤40 → 8 ...)."""
        step = Step(drug="methadone", dose=f"{mg_per_day} mg", once=True)
        assert daily_ome(step, "cdc-2016").lines[0].factor_low == factor

    def test_tier_is_chosen_by_the_total_methadone_dose(self) -> None:
        """Two methadone steps of 15 mg/day each take the 21–40 tier (8) from their 30 mg total."""
        reg = mps.Regimen(
            [oral("methadone", "7.5 mg"), mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h")]
        )
        result = daily_ome(reg, "cdc-2016")
        assert [line.factor_low for line in result.lines] == [8, 8]
        assert mme(result) == pytest.approx(240)
        assert "30 mg/day methadone total" in result.lines[0].text

    def test_methadone_receipt_says_estimate_not_ratio(self) -> None:
        """A methadone line says its factor is an estimate, not a conversion ratio."""
        for table in ("cdc-2022", "cdc-2016", "palliative"):
            line = daily_ome(oral("methadone", "10 mg"), table).lines[0]
            assert line.estimate
            assert "estimate, not a conversion ratio" in line.text

    def test_methadone_adjuvant_counts_towards_the_total(self) -> None:
        """methadone_adjuvant steps count through the table: 5 mg q8h → 15 mg/day × 4.7."""
        reg = mps.Regimen([MORPHINE_60, mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h")])
        result = daily_ome(reg)
        assert mme(result) == pytest.approx(60 + 70.5)
        assert result.lines[1].kind == "methadone_adjuvant"
        assert "(adjuvant)" in result.lines[1].text


class TestNotConverted:
    def test_buprenorphine_under_cdc_is_not_converted_never_zero(self) -> None:
        """Buprenorphine has no CDC factor: listed as not converted with why, total refused."""
        result = daily_ome(mps.Regimen([BUP_PATCH]))
        assert not result.complete
        assert result.text.startswith("not converted (cdc-2022, regular_only); NOT converted")
        assert result.not_converted[0].drug == "buprenorphine"
        assert "partial agonist" in result.not_converted[0].reason
        assert result.not_converted[0].source == "cdc-mme-data-file"
        with pytest.raises(ConversionError, match="not converted"):
            _ = result.total

    def test_partial_total_is_kept_apart_from_the_total(self) -> None:
        """With buprenorphine beside morphine the converted part is on .range, not .total."""
        result = daily_ome(mps.Regimen([BUP_PATCH, MORPHINE_60]))
        assert result.range.text == "60 MME/day"
        assert "NOT converted" in result.text
        with pytest.raises(ConversionError):
            _ = result.total

    def test_nothing_converted_never_prints_zero(self) -> None:
        """Buprenorphine alone: to_dict()'s total is null, the text and receipt say 'not
        converted', and no '0 MME/day' appears anywhere."""
        result = daily_ome(mps.Regimen([BUP_PATCH]))
        data = result.to_dict()
        assert (data["total"], data["low_mme_per_day"], data["high_mme_per_day"]) == (
            None,
            None,
            None,
        )
        assert result.total_text == "not converted"
        assert result.receipt[-1].startswith("total: not converted")
        everything = json.dumps(data) + result.text + "\n".join(result.receipt)
        assert "0 MME/day" not in everything
        assert "0 MME/day" not in mps.render(result, "text")

    @pytest.mark.parametrize(
        "steps",
        [
            [BUP_PATCH],
            [Step(drug="buprenorphine", route="sublingual", dose="0.4 mg", every="8 h")],
            # parenteral pethidine: neither CDC table converts it (cdc-2016 has oral pethidine)
            [Step(drug="pethidine", route="intravenous", dose="50 mg", every="4 h")],
            [BUP_PATCH, Step(drug="pethidine", route="intravenous", dose="50 mg", every="4 h")],
        ],
        ids=["bup-patch", "bup-sublingual", "pethidine", "bup-and-pethidine"],
    )
    @pytest.mark.parametrize("table", ["cdc-2022", "cdc-2016"])
    def test_all_unconverted_has_no_range_low_high_or_total(
        self, steps: list[Any], table: str
    ) -> None:
        """No step converted: .range, .low, .high and .total each raise ConversionError saying
        there is no total; none of them reads 0 MME/day."""
        result = daily_ome(mps.Regimen(steps), table=table)
        assert not result.converted
        for name in ("range", "low", "high", "total"):
            with pytest.raises(ConversionError, match="no opioid step could be converted"):
                getattr(result, name)

    def test_partly_converted_range_still_reads(self) -> None:
        """One step converted: .range/.low/.high give the converted part (60), .total raises."""
        result = daily_ome(mps.Regimen([BUP_PATCH, MORPHINE_60]))
        assert (result.low.magnitude, result.high.magnitude) == (60.0, 60.0)
        with pytest.raises(ConversionError, match="not converted"):
            _ = result.total

    def test_partial_total_says_partial(self) -> None:
        """Buprenorphine beside morphine: each printed total says it is partial."""
        result = daily_ome(mps.Regimen([BUP_PATCH, MORPHINE_60]))
        assert result.to_dict()["total"] == "60 MME/day (partial: 1 step not converted)"
        assert result.text.startswith("60 MME/day (partial) (cdc-2022")
        assert result.receipt[-1].endswith("(partial: some steps not converted)")

    def test_no_opioid_total_is_zero(self) -> None:
        """A regimen with no opioid step has a true total of 0 MME/day, not 'not converted'."""
        result = daily_ome(mps.Regimen([]))
        assert result.to_dict()["total"] == "0 MME/day"
        assert result.total_text == "0 MME/day"

    def test_anzca_converts_buprenorphine(self) -> None:
        """ANZCA gives buprenorphine patches a factor (2 per mcg/h)."""
        assert mme(daily_ome(BUP_PATCH, "anzca-2021")) == pytest.approx(20)

    def test_subcutaneous_morphine_needs_a_palliative_table(self) -> None:
        """CDC factors are oral: SC morphine is not converted by cdc-2022 but is by palliative."""
        sc = Step(drug="morphine", route="subcutaneous", rate="1.25 mg/h")
        assert "no factor for morphine by the subcutaneous route" in (
            daily_ome(sc).not_converted[0].reason
        )
        assert mme(daily_ome(sc, "palliative")) == pytest.approx(60)
        assert mme(daily_ome(sc, "anzca-2021")) == pytest.approx(90)

    def test_patch_rate_outside_the_band_rows_is_not_converted(self) -> None:
        """A 150 mcg/h patch has no NOUGG row: not converted with the rows listed."""
        result = daily_ome(patch("150 mcg/h"), "palliative")
        assert "not a row of the NOUGG" in result.not_converted[0].reason
        with pytest.raises(ConversionError, match="no opioid step could be converted"):
            _ = result.range  # no total: never 0 MME/day

    def test_open_band_gives_no_ome(self) -> None:
        """The Duragesic 12 mcg/h row (<44 mg/day) is open below: no OME is invented."""
        result = daily_ome(patch("12 mcg/h"), "palliative-duragesic")
        assert "open below" in result.not_converted[0].reason


class TestRanges:
    def test_fentanyl_band_stays_a_range(self) -> None:
        """Under the NOUGG bands 25 mcg/h is 60–134 MME/day, never collapsed to one number."""
        result = daily_ome(patch("25 mcg/h"), "palliative")
        assert result.is_range
        assert (result.low_mme_per_day, result.high_mme_per_day) == (60, 134)
        assert result.range.text == "60–134 MME/day"
        with pytest.raises(ConversionError, match="range"):
            _ = result.total
        assert result.low.magnitude == 60
        assert result.high.magnitude == 134

    def test_duragesic_column_differs(self) -> None:
        """The Duragesic rotation column gives 25 mcg/h → 45–134 MME/day."""
        assert daily_ome(patch("25 mcg/h"), "palliative-duragesic").range.text == "45–134 MME/day"

    def test_range_factor_plus_point_gives_a_range(self) -> None:
        """UK oxycodone 1.5–2:1 plus morphine: 20 mg/day oxycodone + 60 morphine = 90–100."""
        reg = mps.Regimen([oral("oxycodone", "10 mg"), MORPHINE_60])
        assert daily_ome(reg, "palliative-uk").range.text == "90–100 MME/day"

    def test_buccal_fentanyl_range_of_the_cdc_file(self) -> None:
        """CDC file: buccal fentanyl 0.13–0.18 per mcg (tablet vs film) → 100 mcg = 13–18 MME."""
        step = Step(drug="fentanyl", route="buccal", dose="100 mcg", once=True)
        assert daily_ome(step, "cdc-2016").range.text == "13–18 MME/day"


class TestPrnPolicy:
    def test_regular_only_excludes_prn_and_says_so(self) -> None:
        """regular_only leaves PRN steps out, lists them as excluded and records the policy."""
        result = daily_ome(mps.Regimen([MORPHINE_60, OXY_PRN]))
        assert result.prn == "regular_only"
        assert mme(result) == pytest.approx(60)
        assert result.excluded[0].step == 1
        assert any("prn=regular_only" in line for line in result.receipt)

    def test_with_prn_maximum_adds_the_24h_maximum(self) -> None:
        """with_prn_maximum adds 4 × 5 mg oxycodone = 20 mg/day × 1.5 = 30 MME/day."""
        result = daily_ome(mps.Regimen([MORPHINE_60, OXY_PRN]), prn="with_prn_maximum")
        assert result.prn == "with_prn_maximum"
        assert mme(result) == pytest.approx(90)
        assert "(PRN maximum)" in result.lines[1].text

    def test_unknown_policy_is_refused_with_suggestions(self) -> None:
        """An unknown PRN policy is an UnknownNameError naming the two policies."""
        with pytest.raises(UnknownNameError, match="regular_only") as info:
            daily_ome(MORPHINE_60, prn="regular")
        assert "regular_only" in info.value.suggestions

    def test_policies_are_the_two_named_choices(self) -> None:
        """The PRN definitions are exactly regular_only and with_prn_maximum."""
        assert PRN_POLICIES == ("regular_only", "with_prn_maximum")


class TestDailyOmeInputs:
    def test_unknown_table_never_gives_a_number(self) -> None:
        """An unknown table id raises UnknownNameError with close names."""
        with pytest.raises(UnknownNameError) as info:
            daily_ome(MORPHINE_60, table="cdc2022")
        assert "cdc-2022" in info.value.suggestions

    def test_non_opioid_step_is_refused(self) -> None:
        """An adjuvant step alone is not an opioid: ConversionError, not 0."""
        step = mps.AdjuvantStep(drug="acetaminophen", role="nociceptive", dose="1 g", every="6 h")
        with pytest.raises(ConversionError, match="not an opioid"):
            daily_ome(step)

    def test_other_objects_are_refused(self) -> None:
        """A string or a number is not a step."""
        for bad in ("morphine 30 mg", 30):
            with pytest.raises(ConversionError):
                daily_ome(bad)

    def test_non_opioid_steps_in_a_regimen_are_ignored(self) -> None:
        """Adjuvants, blocks and radiotherapy do not count and are not 'not converted'."""
        reg = mps.Regimen(
            [
                MORPHINE_60,
                mps.AdjuvantStep(drug="acetaminophen", role="nociceptive", dose="1 g", every="6 h"),
                mps.RadiotherapyStep(total_dose="8 Gy", site="left psoas"),
            ]
        )
        result = daily_ome(reg)
        assert result.complete
        assert len(result.lines) == 1

    def test_day_uses_the_dose_in_force(self) -> None:
        """day= uses the titration in force that day; default is the largest daily dose."""
        step = mps.MethadoneAdjuvantStep(
            dose="5 mg", every="8 h", titration=[{"day": 7, "dose": "10 mg"}]
        )
        assert mme(daily_ome(step, day=0)) == pytest.approx(15 * 4.7)
        assert mme(daily_ome(step, day=7)) == pytest.approx(30 * 4.7)
        assert mme(daily_ome(step)) == pytest.approx(30 * 4.7)
        with pytest.raises(ConversionError):
            daily_ome(step, day=-1)

    def test_a_list_of_steps_is_a_regimen(self) -> None:
        """A plain list of steps is read as a regimen."""
        assert mme(daily_ome([MORPHINE_60, patch("25 mcg/h")])) == pytest.approx(120)

    def test_empty_regimen_is_zero_and_complete(self) -> None:
        """No opioid at all is 0 MME/day, complete (nothing was left unconverted)."""
        result = daily_ome(mps.Regimen([]))
        assert result.complete
        assert mme(result) == 0

    def test_result_records_table_and_edition(self) -> None:
        """The result names its table and the data file's edition."""
        result = daily_ome(MORPHINE_60, "cdc-2016")
        assert result.table == "cdc-2016"
        assert "2016" in result.edition
        assert result.edition in result.receipt[-1]

    def test_to_dict_is_json_ready(self) -> None:
        """to_dict() round-trips through json."""
        data = daily_ome(mps.Regimen([BUP_PATCH, MORPHINE_60])).to_dict()
        assert json.loads(json.dumps(data))["complete"] is False

    def test_tables_are_listed_default_first(self) -> None:
        """ome_tables() lists cdc-2022 first and every documented table."""
        tables = ome_tables()
        assert tables[0] == "cdc-2022"
        assert set(tables) >= {
            "cdc-2016",
            "palliative",
            "palliative-duragesic",
            "palliative-uk",
            "anzca-2021",
        }


class TestCompareTables:
    def test_side_by_side_in_the_order_asked(self) -> None:
        """compare_tables gives one result per table, in order, with the same PRN policy."""
        reg = mps.Regimen([oral("hydromorphone", "4 mg", every="4 h")])
        cmp = compare_tables(reg, ["cdc-2022", "cdc-2016", "palliative-uk"])
        assert cmp.tables == ("cdc-2022", "cdc-2016", "palliative-uk")
        assert [r.range.text for r in cmp] == ["120 MME/day", "96 MME/day", "180 MME/day"]
        assert cmp["cdc-2016"].range.high == pytest.approx(96)
        assert "not converted" not in cmp.to_text()

    def test_default_is_every_table(self) -> None:
        """Without a list, every table is shown."""
        assert compare_tables(MORPHINE_60).tables == ome_tables()

    def test_not_converted_shown_per_table(self) -> None:
        """Buprenorphine is not converted under CDC but is under ANZCA: the text says which."""
        text = compare_tables([BUP_PATCH], ["cdc-2022", "anzca-2021"]).to_text()
        assert "cdc-2022    not converted (step 1 buprenorphine)" in text
        assert " 0 MME/day" not in text
        assert "anzca-2021  20 MME/day" in text
        partial = compare_tables([BUP_PATCH, MORPHINE_60], ["cdc-2022"]).to_text()
        assert "60 MME/day (partial; not converted: step 1 buprenorphine)" in partial

    def test_unknown_table_in_the_list_is_refused(self) -> None:
        """One unknown id refuses the whole comparison."""
        with pytest.raises(UnknownNameError):
            compare_tables(MORPHINE_60, ["cdc-2022", "who-2018"])
        with pytest.raises(UnknownNameError):
            compare_tables(MORPHINE_60, ["cdc-2022"])["cdc-2016"]

    def test_empty_list_is_refused(self) -> None:
        """An empty list of tables is an error, not an empty answer."""
        with pytest.raises(ConversionError):
            compare_tables(MORPHINE_60, [])


# ---- rotation ---------------------------------------------------------------------------------


class TestWorkedExamplesRotation:
    def test_11_oral_morphine_60_to_subcutaneous_is_30(self) -> None:
        """§7 #11: oral morphine 60 mg/day → SC 30 mg/day (2:1); same drug, no reduction."""
        c = convert_opioid(
            MORPHINE_60, to_drug="morphine", to_route="subcutaneous", table="palliative"
        )
        assert c.calculated.quantity.magnitude == pytest.approx(30)
        assert c.reduction.high == 0
        assert "same drug" in c.reduction.note
        assert c.schedule is not None
        assert c.schedule.amount == 30
        assert c.schedule.amount_unit == "mg/day"

    def test_12_oral_morphine_30_to_oxycodone_by_the_uk_ratio(self) -> None:
        """§7 #12: 30 mg morphine → oxycodone 15 mg by the UK ÷2 end of its 1.5–2:1 range."""
        c = convert_opioid(
            "30 MME/day", to_drug="oxycodone", table="palliative-uk", reduction="none"
        )
        assert c.calculated.is_range
        assert c.calculated.low == pytest.approx(15)
        assert c.calculated.high == pytest.approx(20)
        assert c.reduced.text == "15 mg/day"

    def test_13_morphine_200_to_hydromorphone_4_to_1(self) -> None:
        """§7 #13: 200 mg/day at 4:1 (CDC 2016) = 50 mg, less 33–50 % = 25–33.5 mg/day."""
        c = convert_opioid(
            "200 MME/day", to_drug="hydromorphone", table="cdc-2016", reduction=(0.33, 0.5)
        )
        assert c.calculated.quantity.magnitude == pytest.approx(50)
        assert (c.reduced.low, c.reduced.high) == pytest.approx((25, 33.5))

    def test_13_with_cdc_2022_5_to_1(self) -> None:
        """§7 #13 note: with CDC 2022's 5:1 the calculated dose is 40 mg (reduced 20–26.8)."""
        c = convert_opioid("200 MME/day", to_drug="hydromorphone", reduction=(0.33, 0.5))
        assert c.calculated.quantity.magnitude == pytest.approx(40)
        assert (c.reduced.low, c.reduced.high) == pytest.approx((20, 26.8))

    @pytest.mark.parametrize(("ome", "expected"), [(100, 25), (200, 50)])
    def test_21_22_morphine_to_patch_by_the_bands(self, ome: int, expected: int) -> None:
        """§7 #21/#22: 100 → 25 mcg/h, 200 → 50 mcg/h (NOUGG and Duragesic rotation bands)."""
        for table in ("palliative", "palliative-duragesic"):
            c = convert_opioid(
                f"{ome} MME/day",
                to_drug="fentanyl",
                to_route="transdermal",
                table=table,
                reduction="none",
            )
            assert c.calculated.quantity.magnitude == pytest.approx(expected)
            assert c.schedule is not None
            assert c.schedule.amount == expected

    def test_21_morphine_100_to_patch_by_cdc_with_the_default_reduction(self) -> None:
        """§7 #21 by CDC 2.4: 100/2.4 = 41.7 mcg/h, less 25–50 % → 25 mcg/h, rounded down."""
        c = convert_opioid("100 MME/day", to_drug="fentanyl", to_route="transdermal")
        assert c.calculated.quantity.magnitude == pytest.approx(100 / 2.4)
        assert c.schedule is not None
        assert c.schedule.amount == 25
        assert c.to_formulation == "patch"


class TestRotation:
    def test_default_reduction_is_25_to_50_with_its_source(self) -> None:
        """Changing drug applies the default 25–50 % reduction and names its source."""
        c = convert_opioid(MORPHINE_60, to_drug="oxycodone")
        assert (c.reduction.low, c.reduction.high) == (0.25, 0.5)
        assert c.reduction.source == "stanford-opioid-tool"
        assert c.calculated.quantity.magnitude == pytest.approx(40)
        assert (c.reduced.low, c.reduced.high) == pytest.approx((20, 30))
        assert any("stanford-opioid-tool" in line for line in c.receipt)

    def test_suggestion_is_in_available_strengths(self) -> None:
        """Oxycodone MR every 12 h: 30 mg/day top → 15 mg every 12 h."""
        c = convert_opioid(MORPHINE_60, to_drug="oxycodone")
        assert c.schedule is not None
        assert (c.schedule.amount, c.schedule.every_h) == (15, 12)
        assert c.schedule.daily_value == 30
        assert c.schedule.level == "U"
        assert "local formularies differ" in "\n".join(c.receipt)

    def test_suggestion_is_capped_at_the_catalog_maximum(self) -> None:
        """150 MME/day to tramadol IR: reduced 375–562.5 mg/day reaches above the 400 mg/day
        catalog maximum: the receipt names the cap and its source."""
        c = convert_opioid(mps.Q("150 MME/day"), to_drug="tramadol")
        assert c.can_carry
        assert c.max_daily is not None
        assert c.max_daily.text == "400 mg/day"
        receipt = "\n".join(c.receipt)
        assert "capped at the catalog maximum daily dose of 400 mg/day" in receipt
        assert "[ultram-label V]" in receipt

    def test_dose_the_target_cannot_carry(self) -> None:
        """300 MME/day to tramadol: the whole reduced range (750–1125 mg/day) is above the
        400 mg/day maximum: no schedule, and the text and receipt say tramadol cannot carry it."""
        c = convert_opioid(mps.Q("300 MME/day"), to_drug="tramadol")
        assert not c.can_carry
        assert c.schedule is None
        assert "tramadol cannot carry this dose" in c.text
        receipt = "\n".join(c.receipt)
        assert "whole reduced range (750–1125 mg/day) is above the catalog maximum" in receipt
        assert "Ultram label" in receipt

    def test_below_the_maximum_no_cap_note(self) -> None:
        """100 MME/day to tramadol (250–375 mg/day) stays under 400 mg/day: no cap note."""
        c = convert_opioid(mps.Q("100 MME/day"), to_drug="tramadol")
        assert c.can_carry
        assert not any("capped" in n or "cannot carry" in n for n in c.notes)

    def test_capped_schedule_stays_at_or_below_the_maximum(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With a catalog maximum for oxycodone MR (patched in), the suggested schedule is
        rounded down from the cap, never above it."""
        record = mps._catalog.drug("oxycodone")
        sv = mps._catalog.SourcedValue(40.0, "mg/day", "ultram-label", "V", "test limit")
        limit = mps._catalog.Limit("max_daily", sv)
        monkeypatch.setattr(conversion.rotation, "_max_daily", lambda *_: limit)
        c = convert_opioid(mps.Q("120 MME/day"), to_drug="oxycodone")  # reduced 40–60 mg/day
        assert c.schedule is not None
        assert c.schedule.daily_value is not None
        assert c.schedule.daily_value <= 40
        assert any("capped at the catalog maximum daily dose of 40 mg/day" in n for n in c.notes)
        assert record.id == "oxycodone"

    def test_named_and_custom_reductions(self) -> None:
        """'msd-2023' takes 50 %; a pair is the caller's own; 'none' takes nothing."""
        assert (
            convert_opioid(MORPHINE_60, to_drug="oxycodone", reduction="msd-2023").reduced.text
            == "20 mg/day"
        )
        custom = convert_opioid(MORPHINE_60, to_drug="oxycodone", reduction=(0.1, 0.2))
        assert custom.reduction.name == "custom"
        assert custom.reduction.source == ""
        assert (
            convert_opioid(MORPHINE_60, to_drug="oxycodone", reduction="none").reduced.text
            == "40 mg/day"
        )
        assert (
            convert_opioid(MORPHINE_60, to_drug="oxycodone", reduction=0.3).reduced.text
            == "28 mg/day"
        )

    @pytest.mark.parametrize("bad", [None, 1.0, -0.1, (0.5, 0.25), "half", True, [0.1]])
    def test_bad_reduction_is_refused(self, bad: Any) -> None:
        """None, out-of-range fractions, reversed pairs and unknown names are errors."""
        with pytest.raises(MpsAnalgesiaError):
            convert_opioid(MORPHINE_60, to_drug="oxycodone", reduction=bad)

    def test_to_methadone_is_sent_to_the_schemes(self) -> None:
        """convert_opioid refuses methadone as a target and names methadone_from_ome."""
        with pytest.raises(ConversionError, match="methadone_from_ome"):
            convert_opioid(MORPHINE_60, to_drug="methadone")

    @pytest.mark.parametrize(
        "source",
        [
            oral("methadone", "10 mg", every="8 h"),
            mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h"),
            mps.Regimen([MORPHINE_60, oral("methadone", "5 mg", every="8 h")]),
        ],
    )
    def test_from_methadone_is_refused_with_why(self, source: Any) -> None:
        """Converting FROM methadone by a linear factor is refused, explaining the non-linearity."""
        with pytest.raises(ConversionError, match="FROM methadone") as info:
            convert_opioid(source, to_drug="morphine")
        assert "Ripamonti" in str(info.value)

    def test_from_an_ome_result_with_methadone_is_refused(self) -> None:
        """An OmeResult holding methadone cannot be rotated either."""
        with pytest.raises(ConversionError, match="FROM methadone"):
            convert_opioid(daily_ome(oral("methadone", "10 mg")), to_drug="morphine")

    def test_adjuvant_methadone_stays_out_of_the_rotation(self) -> None:
        """Rotating a regimen converts its opioid, not the adjuvant methadone, and says so."""
        reg = mps.Regimen([MORPHINE_60, mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h")])
        c = convert_opioid(reg, to_drug="oxycodone")
        assert c.source_ome.text == "60 MME/day"
        assert any("adjuvant methadone is not rotated" in n for n in c.notes)

    def test_prn_step_alone_is_refused(self) -> None:
        """A PRN step is not rotated on its own: use breakthrough_dose()."""
        with pytest.raises(ConversionError, match="breakthrough_dose"):
            convert_opioid(OXY_PRN, to_drug="morphine")

    def test_regimen_without_regular_opioid_is_refused(self) -> None:
        """A regimen of PRN steps only has nothing to convert under regular_only."""
        with pytest.raises(ConversionError, match="nothing to convert"):
            convert_opioid(mps.Regimen([OXY_PRN]), to_drug="morphine")
        with pytest.raises(ConversionError, match="no opioid step"):
            convert_opioid(mps.Regimen([]), to_drug="morphine")

    def test_incomplete_source_is_refused(self) -> None:
        """Buprenorphine under CDC leaves the source incomplete: no number."""
        with pytest.raises(ConversionError, match="does not convert every step"):
            convert_opioid(mps.Regimen([BUP_PATCH, MORPHINE_60]), to_drug="oxycodone")

    def test_unknown_target_drug_suggests(self) -> None:
        """A misspelt drug is an UnknownDrugError with suggestions, listed once each."""
        with pytest.raises(UnknownDrugError) as info:
            convert_opioid(MORPHINE_60, to_drug="oxycodon")
        assert info.value.suggestions[0] == "oxycodone"
        assert len(set(info.value.suggestions)) == len(info.value.suggestions)

    def test_unknown_or_impossible_route(self) -> None:
        """An unknown route, or one the drug does not have, is an UnknownRouteError."""
        with pytest.raises(UnknownRouteError):
            convert_opioid(MORPHINE_60, to_drug="oxycodone", to_route="oarl")
        with pytest.raises(UnknownRouteError, match="no transdermal route"):
            convert_opioid(MORPHINE_60, to_drug="oxycodone", to_route="transdermal")

    def test_route_the_table_cannot_convert(self) -> None:
        """cdc-2022 has no SC factor: ConversionError naming what it can convert to."""
        with pytest.raises(ConversionError, match="table='palliative'"):
            convert_opioid(MORPHINE_60, to_drug="morphine", to_route="subcutaneous")

    def test_buprenorphine_target_under_cdc(self) -> None:
        """The CDC tables give buprenorphine no factor, so it is not a target."""
        with pytest.raises(ConversionError, match="partial agonist"):
            convert_opioid(MORPHINE_60, to_drug="buprenorphine", to_route="transdermal")

    def test_non_opioid_target(self) -> None:
        """Acetaminophen has no equianalgesic dose."""
        with pytest.raises(ConversionError, match="not an opioid"):
            convert_opioid(MORPHINE_60, to_drug="paracetamol")

    def test_bad_formulation(self) -> None:
        """A patch cannot be oral."""
        with pytest.raises(ConversionError, match="does not exist"):
            convert_opioid(MORPHINE_60, to_drug="oxycodone", to_formulation="patch")

    def test_source_in_mg_is_refused(self) -> None:
        """A daily dose in mg/day is not an OME: DimensionError pointing to MME/day."""
        with pytest.raises(DimensionError, match="MME/day"):
            convert_opioid("60 mg/day", to_drug="oxycodone")
        with pytest.raises(UnitError):
            convert_opioid("60 units/day", to_drug="oxycodone")
        with pytest.raises(ConversionError):
            convert_opioid("0 MME/day", to_drug="oxycodone")
        with pytest.raises(ConversionError):
            convert_opioid(60, to_drug="oxycodone")

    def test_ome_quantity_and_result_sources(self) -> None:
        """A Quantity and an OmeResult of the same table convert like the step."""
        by_step = convert_opioid(MORPHINE_60, to_drug="oxycodone")
        by_q = convert_opioid(mps.Q("60 MME/day"), to_drug="oxycodone")
        by_result = convert_opioid(daily_ome(MORPHINE_60), to_drug="oxycodone")
        assert by_step.calculated == by_q.calculated == by_result.calculated
        with pytest.raises(ConversionError, match="computed with"):
            convert_opioid(daily_ome(MORPHINE_60, "cdc-2016"), to_drug="oxycodone")

    def test_band_below_or_above_is_refused(self) -> None:
        """Below 60 or above 404 MME/day the NOUGG bands give no patch."""
        for ome in ("50 MME/day", "450 MME/day"):
            with pytest.raises(ConversionError, match="NOUGG"):
                convert_opioid(ome, to_drug="fentanyl", to_route="transdermal", table="palliative")

    def test_between_band_rows_takes_the_lower_row(self) -> None:
        """134.5 MME/day lies between 60–134 and 135–179: the lower row (25 mcg/h)."""
        c = convert_opioid(
            "134.5 MME/day",
            to_drug="fentanyl",
            to_route="transdermal",
            table="palliative",
            reduction="none",
        )
        assert c.calculated.quantity.magnitude == 25

    def test_patch_to_morphine_keeps_the_band_range(self) -> None:
        """25 mcg/h under NOUGG is 60–134 MME/day, so oral morphine is a range too."""
        c = convert_opioid(patch("25 mcg/h"), to_drug="morphine", table="palliative")
        assert c.calculated.text == "60–134 mg/day"
        assert c.reduced.text == "30–45 mg/day"  # reduced from the low end of the range
        assert any("low end" in n for n in c.notes)

    def test_no_product_gives_no_schedule_but_a_note(self) -> None:
        """Tapentadol has no strengths listed: no schedule, and the notes say why."""
        c = convert_opioid(MORPHINE_60, to_drug="tapentadol")
        assert c.schedule is None
        assert any("strengths.toml lists no tapentadol" in n for n in c.notes)

    def test_below_the_smallest_strength_is_never_rounded_up(self) -> None:
        """5 MME/day to a patch is below 12 mcg/h: no schedule rather than a bigger patch."""
        c = convert_opioid("5 MME/day", to_drug="fentanyl", to_route="transdermal")
        assert c.schedule is None
        assert any("never rounded up" in n for n in c.notes)

    def test_suggestion_below_the_reduced_range_is_explained(self) -> None:
        """When no strength fits inside the reduced range the suggestion below it is explained."""
        c = convert_opioid(
            "36 MME/day", to_drug="fentanyl", to_route="transdermal", reduction=(0.2, 0.2)
        )
        assert c.reduced.text == "12 mcg/h"
        c = convert_opioid(
            "50 MME/day", to_drug="fentanyl", to_route="transdermal", reduction=(0.1, 0.1)
        )
        assert c.schedule is not None
        assert c.schedule.amount == 12
        assert any("below the reduced range" in n for n in c.notes)

    def test_schedule_round_trips_to_a_step(self) -> None:
        """schedule.to_step() builds the suggested step; its OME matches the suggestion."""
        c = convert_opioid(MORPHINE_60, to_drug="oxycodone")
        assert c.schedule is not None
        step = c.schedule.to_step()
        assert step.daily_dose_mg == pytest.approx(30)
        patch_c = convert_opioid(MORPHINE_60, to_drug="fentanyl", to_route="transdermal")
        assert patch_c.schedule is not None
        assert patch_c.schedule.to_step().rate_mg_per_h == pytest.approx(0.012)

    def test_text_and_receipt(self) -> None:
        """The one-line text names the table; the receipt shows every step of the arithmetic."""
        c = convert_opioid(MORPHINE_60, to_drug="oxycodone")
        assert c.text.endswith("(cdc-2022)")
        receipt = "\n".join(c.receipt)
        assert "60 MME/day ÷ 1.5 = 40 mg/day" in receipt
        assert "40 mg/day × (1 − 0.5) … × (1 − 0.25) = 20–30 mg/day" in receipt


# ---- methadone --------------------------------------------------------------------------------


class TestMethadoneFromOme:
    @pytest.mark.parametrize(("ome", "daily", "dose"), [(100, 15, 5), (200, 30, 10), (400, 45, 15)])
    def test_15_methapain_label_tiers(self, ome: int, daily: int, dose: int) -> None:
        """§7 #15: Methapain 100/200/400 → 15/30/45 mg/day as 5/10/15 mg three times a day."""
        m = methadone_from_ome(f"{ome} MME/day")
        assert m.daily.quantity.magnitude == daily
        assert m.schedule is not None
        assert (m.schedule.amount, m.schedule.every_h) == (dose, 8)
        assert m.reduction is None
        assert m.ratio is None

    def test_15_methapain_below_60_is_not_recommended(self) -> None:
        """§7 #15: 50 mg/day OME → switch not recommended: an error, never a dose."""
        with pytest.raises(ConversionError, match="60 mg/day"):
            methadone_from_ome("50 MME/day")

    @pytest.mark.parametrize(
        ("ome", "daily"), [(60, 15), (160, 15), (160.5, 30), (390, 30), (390.5, 45)]
    )
    def test_methapain_boundaries(self, ome: float, daily: int) -> None:
        """60–160 → 15; >160–390 → 30; >390 → 45 (bounds as printed on the label)."""
        assert methadone_from_ome(f"{ome} MME/day").daily.high == daily

    def test_16_ccdhb_200(self) -> None:
        """§7 #16: CCDHB 200 mg/day at 8:1 = 25 mg, less 25–50 % = 12.5–18.75 mg/day."""
        m = methadone_from_ome("200 MME/day", scheme="ccdhb-2009")
        assert m.calculated.quantity.magnitude == pytest.approx(25)
        assert (m.daily.low, m.daily.high) == pytest.approx((12.5, 18.75))
        assert m.reduction is not None
        assert m.reduction.source == "ccdhb-2009"

    def test_ccdhb_above_600_is_refused(self) -> None:
        """The CCDHB table stops at 600 mg/day."""
        with pytest.raises(ConversionError, match="600"):
            methadone_from_ome("700 MME/day", scheme="ccdhb-2009")

    def test_17_msd_250(self) -> None:
        """§7 #17: MSD 250 OMME/day at 8:1 = 31.25 mg, less 75–90 % = 3.125–7.8125 mg/day."""
        m = methadone_from_ome("250 MME/day", scheme="msd-2023")
        assert m.calculated.quantity.magnitude == pytest.approx(31.25)
        assert (m.daily.low, m.daily.high) == pytest.approx((3.125, 7.8125))
        assert m.reduction is not None
        assert (m.reduction.low, m.reduction.high) == (0.75, 0.9)
        assert m.schedule is None  # 2.6 mg per dose is below a 5 mg tablet, never rounded up

    @pytest.mark.parametrize(
        ("ome", "ratio"),
        [(29.5, 2), (30, 4), (99, 4), (99.5, 8), (100, 8), (299.5, 12), (500, 15), (999.5, 20)],
    )
    def test_msd_gaps_take_the_next_tier_up(self, ome: float, ratio: int) -> None:
        """A value between printed integer tiers takes the higher ratio (the lower dose)."""
        m = methadone_from_ome(f"{ome} MME/day", scheme="msd-2023")
        assert m.ratio is not None
        assert m.ratio.low == ratio

    def test_18_chatham_fixed_30_above_1200(self) -> None:
        """§7 #18: above 1200 mg/day OME, a fixed 30 mg/day maximum; at 1200 it does not apply."""
        m = methadone_from_ome("1500 MME/day", scheme="chatham-2013")
        assert m.daily.quantity.magnitude == 30
        with pytest.raises(ConversionError, match="1200"):
            methadone_from_ome("1200 MME/day", scheme="chatham-2013")

    def test_chatham_note_on_other_schemes_above_1200(self) -> None:
        """Another scheme above 1200 MME/day carries Chatham's caution."""
        m = methadone_from_ome("1300 MME/day", scheme="msd-2023")
        assert any("chatham-2013" in n for n in m.notes)

    @pytest.mark.parametrize(("ome", "daily"), [(0, 6), (40, 9), (59.5, 9)])
    def test_19_mercadante_first_line(self, ome: float, daily: int) -> None:
        """§7 #19: first-line methadone 6 mg/day when naive, 9 mg/day below 60 mg/day OME."""
        assert methadone_from_ome(f"{ome} MME/day", scheme="mercadante-2022").daily.high == daily

    def test_mercadante_at_60_is_refused(self) -> None:
        """Mercadante's starting doses stop below 60 mg/day OME."""
        with pytest.raises(ConversionError):
            methadone_from_ome("60 MME/day", scheme="mercadante-2022")

    def test_14_ripamonti_median_within_the_ratio_tiers(self) -> None:
        """§7 #14: Ripamonti's median 145 → 21 mg/day (6.9:1) sits between MSD's 4:1 and 8:1."""
        m = methadone_from_ome("145 MME/day", scheme="msd-2023", reduction="none")
        assert m.calculated.quantity.magnitude == pytest.approx(145 / 8)
        assert m.ratio is not None
        assert m.ratio.low == 8  # Ripamonti's observed 145:21 (6.9:1) is below the 8:1 tier

    def test_from_ome_result_and_range(self) -> None:
        """An OmeResult is accepted; a band range spanning tiers gives a range."""
        m = methadone_from_ome(daily_ome(oral("morphine", "100 mg")))
        assert m.daily.quantity.magnitude == 30
        spanning = methadone_from_ome(daily_ome(patch("75 mcg/h"), "palliative"), scheme="msd-2023")
        assert spanning.ratio is not None
        assert spanning.ratio.text == "8–12"
        assert spanning.daily.is_range

    def test_methadone_in_the_ome_is_refused(self) -> None:
        """An OME that includes methadone cannot be converted to methadone."""
        with pytest.raises(ConversionError, match="FROM methadone"):
            methadone_from_ome(daily_ome(oral("methadone", "10 mg")))

    def test_incomplete_ome_is_refused(self) -> None:
        """An incomplete OmeResult is refused."""
        with pytest.raises(ConversionError, match="incomplete"):
            methadone_from_ome(daily_ome([BUP_PATCH]))

    def test_unknown_scheme_and_bad_input(self) -> None:
        """Unknown scheme, a mass, a bare number: errors, never a number."""
        with pytest.raises(UnknownNameError) as info:
            methadone_from_ome("200 MME/day", scheme="msd")
        assert "msd-2023" in info.value.suggestions
        with pytest.raises(DimensionError):
            methadone_from_ome("200 mg/day")
        with pytest.raises(ConversionError):
            methadone_from_ome(200)
        with pytest.raises(ConversionError):
            methadone_from_ome(MORPHINE_60)

    def test_fixed_scheme_takes_no_reduction(self) -> None:
        """A reduction on a fixed starting-dose scheme is refused."""
        with pytest.raises(ConversionError, match="no reduction"):
            methadone_from_ome("200 MME/day", reduction=(0.5, 0.5))

    def test_receipt_says_one_way(self) -> None:
        """The receipt names the scheme, the tier and that conversion is one way."""
        receipt = "\n".join(methadone_from_ome("250 MME/day", scheme="msd-2023").receipt)
        assert "msd-2023" in receipt
        assert "÷ 8 = 31.25 mg/day" in receipt
        assert "one way only" in receipt

    def test_schemes_listed(self) -> None:
        """Every named scheme is listed."""
        assert set(methadone_schemes()) >= {
            "methapain-label",
            "msd-2023",
            "ccdhb-2009",
            "chatham-2013",
            "mercadante-2022",
        }


# ---- breakthrough -----------------------------------------------------------------------------


class TestBreakthroughDose:
    def test_23_one_sixth_of_60_is_10_mg(self) -> None:
        """§7 #23: oral morphine 60 mg/day → 10 mg (1/6, Japanese label)."""
        b = breakthrough_dose(mps.Regimen([MORPHINE_60]))
        assert b.dose.quantity.magnitude == pytest.approx(10)
        assert b.fraction.source == "japan-morphine-label"
        assert b.suggested is not None
        assert b.suggested.amount == 10
        assert (b.drug, b.route, b.formulation) == ("morphine", "oral", "immediate-release")

    def test_23_ten_to_twenty_percent_is_6_to_12_mg(self) -> None:
        """§7 #23: 10–20 % (NCCN 2011) of 60 mg/day = 6–12 mg, suggested 10 mg (rounded down)."""
        b = breakthrough_dose([MORPHINE_60], "10-20%")
        assert (b.dose.low, b.dose.high) == pytest.approx((6, 12))
        assert b.fraction.source == "nccn-2011-breakthrough"
        assert b.suggested is not None
        assert b.suggested.amount == 10

    def test_custom_fractions(self) -> None:
        """A number, a Fraction or a pair is the caller's choice."""
        from fractions import Fraction

        assert breakthrough_dose([MORPHINE_60], 0.125).dose.text == "7.5 mg"
        assert breakthrough_dose([MORPHINE_60], Fraction(1, 12)).dose.text == "5 mg"
        assert breakthrough_dose([MORPHINE_60], ("1/10", "1/6")).dose.text == "6–10 mg"

    @pytest.mark.parametrize("bad", [0, 1.5, "1/7", (0.2, 0.1), None, True])
    def test_bad_fraction_is_refused(self, bad: Any) -> None:
        """Zero, above 1, unknown names and reversed pairs are errors."""
        with pytest.raises(MpsAnalgesiaError):
            breakthrough_dose([MORPHINE_60], bad)

    def test_main_opioid_is_the_largest_regular_one(self) -> None:
        """With oxycodone 90 and morphine 60 MME/day the rescue is oxycodone, from 150 MME/day."""
        reg = mps.Regimen([MORPHINE_60, oral("oxycodone", "30 mg", formulation="modified-release")])
        b = breakthrough_dose(reg)
        assert (b.drug, b.main_step) == ("oxycodone", 1)
        assert b.dose.quantity.magnitude == pytest.approx(150 / 6 / 1.5)
        assert b.suggested is not None
        assert b.suggested.amount <= b.dose.high

    def test_patch_needs_a_named_drug(self) -> None:
        """A fentanyl patch has no immediate-release form: name drug= and route=."""
        with pytest.raises(ConversionError, match="drug="):
            breakthrough_dose([patch("25 mcg/h")])
        b = breakthrough_dose([patch("25 mcg/h")], drug="morphine")
        assert b.dose.quantity.magnitude == pytest.approx(10)
        assert b.route == "oral"

    def test_adjuvant_methadone_is_left_out_by_default(self) -> None:
        """Adjuvant methadone is not a basis by default (CDC 2022: its factor is not for
        dosing); counted on request, the notes say its factor is an estimate."""
        reg = mps.Regimen([MORPHINE_60, mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h")])
        b = breakthrough_dose(reg)
        assert b.ome.range.high == pytest.approx(60.0)
        assert any("adjuvant methadone left out" in n for n in b.notes)
        counted = breakthrough_dose(reg, include_adjuvant_methadone=True)
        assert counted.ome.range.high == pytest.approx(130.5)
        assert any("estimate" in n for n in counted.notes)

    def test_no_regular_opioid_or_incomplete(self) -> None:
        """No regular opioid, or an unconvertible one, gives an error, never a dose."""
        with pytest.raises(ConversionError, match="no regular opioid"):
            breakthrough_dose([OXY_PRN])
        with pytest.raises(ConversionError, match="does not convert"):
            breakthrough_dose([BUP_PATCH])
        with pytest.raises(ConversionError, match="adjuvant methadone"):
            breakthrough_dose([mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h")])

    def test_subcutaneous_rescue_by_the_palliative_table(self) -> None:
        """A SC morphine infusion of 30 mg/day → SC rescue 1/6 of 60 MME ÷ 2 = 5 mg."""
        sc = Step(drug="morphine", route="subcutaneous", rate="30 mg/day")
        b = breakthrough_dose([sc], table="palliative")
        assert b.dose.quantity.magnitude == pytest.approx(5)
        assert b.suggested is not None
        assert b.suggested.amount == 5

    def test_receipt(self) -> None:
        """The receipt shows the OME, the fraction and its source, and the rounding."""
        receipt = "\n".join(breakthrough_dose([MORPHINE_60]).receipt)
        assert "60 MME/day × 1/6 [japan-morphine-label V]" in receipt
        assert "rounded down from 10 mg" in receipt

    def test_fraction_text(self) -> None:
        """Fractions print as 1/6 or as a percentage range."""
        assert BreakthroughFraction("x", 1 / 6, 1 / 6).text.startswith("1/6")
        assert BreakthroughFraction("x", 0.1, 0.2).text.startswith("10–20 %")


# ---- value objects ----------------------------------------------------------------------------


class TestValueObjects:
    def test_quantity_range_refuses_to_collapse(self) -> None:
        """A range's .quantity raises; its ends are Quantities."""
        r = QuantityRange(60.0, 134.0, "MME/day")
        with pytest.raises(ConversionError):
            _ = r.quantity
        assert str(r) == "60–134 MME/day"
        assert r.high_quantity.magnitude == 134

    def test_reduction_validates(self) -> None:
        """A Reduction outside [0, 1) or reversed is refused."""
        with pytest.raises(ConversionError):
            Reduction("x", 0.5, 0.25)
        with pytest.raises(ConversionError):
            Reduction("x", 0.0, 1.0)
        assert Reduction("x", 0.25, 0.5, "s", "S").text.startswith("25–50 %")


# ---- properties -------------------------------------------------------------------------------


class TestProperties:
    @settings(max_examples=40, deadline=None)
    @given(step=convertible_oral(), k=scales(), table=st.sampled_from(["cdc-2022", "cdc-2016"]))
    def test_linear_drugs_are_linear_in_dose(
        self, step: mps.OpioidStep, k: float, table: str
    ) -> None:
        """OME(k × dose) = k × OME(dose) for a drug with a linear factor."""
        scaled = Step(drug=step.drug, dose=f"{step.dose_mg * k} mg", every=step.every)
        assert mme(daily_ome(scaled, table)) == pytest.approx(k * mme(daily_ome(step, table)))

    @settings(max_examples=40, deadline=None)
    @given(step=convertible_oral(), table=table_ids())
    def test_mg_and_mcg_give_the_same_ome(self, step: mps.OpioidStep, table: str) -> None:
        """A dose in mg and the same dose in mcg give the same OME."""
        in_mcg = Step(drug=step.drug, dose=f"{step.dose_mg * 1000} mcg", every=step.every)
        a, b = daily_ome(step, table), daily_ome(in_mcg, table)
        assert a.converted == b.converted
        assert a.low_mme_per_day == pytest.approx(b.low_mme_per_day)
        assert a.high_mme_per_day == pytest.approx(b.high_mme_per_day)
        assert a.complete == b.complete

    @settings(max_examples=60, deadline=None)
    @given(
        ome=daily_omes(),
        target=linear_targets(),
        low=st.sampled_from([0.0, 0.1, 0.25, 0.5]),
        extra=st.sampled_from([0.0, 0.25, 0.4]),
    )
    def test_rotation_never_suggests_more_than_calculated(
        self, ome: float, target: tuple[str, str, str], low: float, extra: float
    ) -> None:
        """The reduced range and the suggestion never exceed the calculated equianalgesic dose."""
        drug, route, form = target
        c = convert_opioid(
            f"{ome} MME/day",
            to_drug=drug,
            to_route=route,
            to_formulation=form,
            reduction=(low, low + extra),
        )
        assert c.reduced.high <= c.calculated.low * (1 + 1e-9)
        assert c.reduced.low <= c.reduced.high
        if c.schedule is not None:
            daily = c.schedule.daily_value
            assert daily is not None
            assert daily <= c.reduced.high * (1 + 1e-9)
            assert daily <= c.calculated.high * (1 + 1e-9)

    @settings(max_examples=60, deadline=None)
    @given(
        target=st.floats(0.01, 2000, allow_nan=False),
        key=st.sampled_from(sorted(conversion._products())),
    )
    def test_rounding_never_rounds_up(self, target: float, key: tuple[str, str, str]) -> None:
        """round_down never returns more than its target, and returns the best fit below it."""
        product = conversion._products()[key]
        got = product.round_down(target)
        if got is None:
            smallest = product.increment or product.sums[0]
            assert target < smallest * (1 + 1e-9)
            return
        amount, composition = got
        assert amount <= target * (1 + 1e-9)
        assert sum(s * n for s, n in composition) == pytest.approx(amount)

    @settings(max_examples=40, deadline=None)
    @given(
        step=convertible_oral(),
        target=linear_targets(),
        reduction=st.sampled_from(["auto", "none", "msd-2023", (0.1, 0.3)]),
        table=table_ids(),
    )
    def test_a_to_b_to_a_never_increases_the_dose(
        self, step: mps.OpioidStep, target: tuple[str, str, str], reduction: Any, table: str
    ) -> None:
        """Rotating A → B → A (suggestions as steps) never ends above A's daily dose."""
        drug, route, form = target
        try:
            there = convert_opioid(
                step,
                to_drug=drug,
                to_route=route,
                to_formulation=form,
                reduction=reduction,
                table=table,
            )
        except ConversionError:
            return  # the table cannot do it (e.g. bands out of range): no number, nothing to test
        assume(there.schedule is not None)
        assert there.schedule is not None
        try:
            back = convert_opioid(
                there.schedule.to_step(),
                to_drug=step.drug,
                to_route=step.route,
                reduction=reduction,
                table=table,
            )
        except ConversionError:
            return
        if back.schedule is not None:
            assert back.schedule.daily_value is not None
            assert back.schedule.daily_value <= step.daily_dose_mg * (1 + 1e-9)
        assert back.calculated.low <= step.daily_dose_mg * (1 + 1e-9)

    @settings(max_examples=40, deadline=None)
    @given(step=opioid_steps(), table=table_ids())
    def test_any_valid_opioid_step_gives_a_line_or_a_reason(
        self, step: mps.OpioidStep, table: str
    ) -> None:
        """Every valid opioid step is converted with a finite OME or listed with a reason."""
        result = daily_ome(step, table, "with_prn_maximum")
        for line in result.lines:
            assert math.isfinite(line.ome_low)
            assert line.ome_low > 0
            assert line.ome_low <= line.ome_high
        for skipped in result.not_converted:
            assert skipped.reason
        assert len(result.lines) + len(result.not_converted) <= 1

    @settings(max_examples=25, deadline=None)
    @given(regimen=regimens(max_size=5))
    def test_compare_tables_of_any_regimen(self, regimen: mps.Regimen) -> None:
        """Any valid regimen compares under every table without an exception."""
        cmp = compare_tables(regimen)
        assert len(cmp) == len(ome_tables())

    @settings(max_examples=40, deadline=None)
    @given(
        name=st.text(min_size=1, max_size=12).filter(
            lambda s: s.strip().casefold() not in {"morphine", "oxycodone"}
        )
    )
    def test_unknown_drug_route_or_unit_never_yields_a_number(self, name: str) -> None:
        """Garbage for a drug, route, unit, table or scheme raises an error, never a number."""
        with pytest.raises(MpsAnalgesiaError):
            convert_opioid("60 MME/day", to_drug=name + "zz")
        with pytest.raises(MpsAnalgesiaError):
            convert_opioid("60 MME/day", to_drug="morphine", to_route=name + "zz")
        with pytest.raises(MpsAnalgesiaError):
            convert_opioid(f"60 {name}zz", to_drug="morphine")
        with pytest.raises(MpsAnalgesiaError):
            daily_ome(MORPHINE_60, table=name + "zz")
        with pytest.raises(MpsAnalgesiaError):
            methadone_from_ome("200 MME/day", scheme=name + "zz")
        with pytest.raises(MpsAnalgesiaError):
            breakthrough_dose([MORPHINE_60], name + "zz")


# ---- documentation ----------------------------------------------------------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "equianalgesia.md"


def _factor_matrix() -> str:
    """The factor table of docs/equianalgesia.md, written from the data files."""
    tables = conversion._tables()
    ids = list(tables)
    keys = sorted(
        {k for t in tables.values() for k in t.entries}
        | {(d, "*") for t in tables.values() for d in t.any_route}
    )
    lines = [
        "| drug | route | " + " | ".join(f"`{i}`" for i in ids) + " |",
        "|---|---|" + "---|" * len(ids),
    ]
    for drug, route in keys:
        cells = []
        for i in ids:
            t = tables[i]
            e = t.entries.get((drug, route)) if route != "*" else t.any_route.get(drug)
            if e is None:
                cells.append("—")
                continue
            per = "" if e.dose_unit == "mg/day" else f" per {e.dose_unit}"
            if e.kind == "factor":
                cells.append(f"{conversion._span(e.factor_low, e.factor_high)}{per} [{e.level}]")
            elif e.kind == "tiers":
                cells.append(f"4 / 8 / 10 / 12 by dose [{e.level}]")
            elif e.kind == "bands":
                cells.append(f"{e.band_title.split(' (')[0].split(',')[0]} bands [{e.level}]")
            else:
                cells.append(f"*not converted* [{e.level}]")
        where = "any" if route == "*" else route
        lines.append(f"| {drug} | {where} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


class TestDocumentation:
    def test_worked_examples_in_the_docs_run(self) -> None:
        """Every >>> example of docs/equianalgesia.md gives the output printed there."""
        result = doctest.testfile(
            str(DOC), module_relative=False, optionflags=doctest.ELLIPSIS, verbose=False
        )
        assert result.attempted > 20
        assert result.failed == 0

    def test_factor_table_in_the_docs_matches_the_data(self) -> None:
        """The factor table of the docs page is the one the data files give today."""
        assert _factor_matrix() in DOC.read_text(encoding="utf-8")
