"""Radiobiology: ``bed`` and ``eqd2`` (linear-quadratic model) and the radiotherapy data file."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mps_analgesia as mps
from mps_analgesia import radiotherapy as rt
from mps_analgesia.errors import DimensionError, MpsAnalgesiaError, StepError, UnitError
from mps_analgesia.radiotherapy import bed, eqd2

#: Reference notes §7 worked examples #24-30: (total Gy, fractions, α/β Gy, BED Gy, EQD2 Gy).
#: The notes print the results to 2 decimals (or fewer): the tolerance is half the last digit.
WORKED = [
    # 24: 8 Gy × 1
    ("8 Gy", 1, "10 Gy", 14.4, 12.0, 0.005),
    ("8 Gy", 1, "3 Gy", 29.33, 17.6, 0.005),
    # 25: 20 Gy / 5
    ("20 Gy", 5, "10 Gy", 28.0, 23.33, 0.005),
    ("20 Gy", 5, "3 Gy", 46.67, 28.0, 0.005),
    # 26: 24 Gy / 6
    ("24 Gy", 6, "10 Gy", 33.6, 28.0, 0.005),
    ("24 Gy", 6, "3 Gy", 56.0, 33.6, 0.005),
    # 27: 30 Gy / 10
    ("30 Gy", 10, "10 Gy", 39.0, 32.5, 0.005),
    ("30 Gy", 10, "3 Gy", 60.0, 36.0, 0.005),
    # 28: 50 Gy / 25, α/β 10
    ("50 Gy", 25, "10 Gy", 60.0, 50.0, 0.005),
    # 29: 30 × 1.8 Gy = 54 Gy, α/β 10 (printed 63.7 / 53.1, computed 63.72 / 53.10)
    ("54 Gy", 30, "10 Gy", 63.72, 53.1, 0.005),
]

#: §7 #30, Uno 2024: BED10 of 24 Gy/8, 36 Gy/12, 39 Gy/13 (3 Gy fractions).
UNO = [("24 Gy", 8, 31.2), ("36 Gy", 12, 46.8), ("39 Gy", 13, 50.7)]


class TestWorkedExamples:
    @pytest.mark.parametrize(("total", "n", "ab", "bed_gy", "eqd2_gy", "tol"), WORKED)
    def test_bed_matches_reference(
        self, total: str, n: int, ab: str, bed_gy: float, eqd2_gy: float, tol: float
    ) -> None:
        """BED equals the reference notes' worked example to its printed precision."""
        assert bed(total, n, ab).magnitude == pytest.approx(bed_gy, abs=tol)

    @pytest.mark.parametrize(("total", "n", "ab", "bed_gy", "eqd2_gy", "tol"), WORKED)
    def test_eqd2_matches_reference(
        self, total: str, n: int, ab: str, bed_gy: float, eqd2_gy: float, tol: float
    ) -> None:
        """EQD2 equals the reference notes' worked example to its printed precision."""
        assert eqd2(total, n, ab).magnitude == pytest.approx(eqd2_gy, abs=tol)

    @pytest.mark.parametrize(("total", "n", "bed_gy"), UNO)
    def test_uno_2024_bed10(self, total: str, n: int, bed_gy: float) -> None:
        """The Uno 2024 MPS courses give BED10 31.2 / 46.8 / 50.7 Gy."""
        assert bed(total, n, "10 Gy").magnitude == pytest.approx(bed_gy, abs=0.005)

    def test_single_fraction_exact_values(self) -> None:
        """8 Gy × 1 at α/β 3 gives BED 88/3 Gy and EQD2 17.6 Gy (exact arithmetic)."""
        assert bed("8 Gy", 1, "3 Gy").magnitude == pytest.approx(88 / 3, rel=1e-12)
        assert eqd2("8 Gy", 1, "3 Gy").magnitude == pytest.approx(17.6, rel=1e-12)


class TestInputs:
    def test_result_is_quantity_in_gray(self) -> None:
        """Both functions return a Quantity in Gy."""
        assert str(bed("20 Gy", 5, "10 Gy").units) == "gray"
        assert str(eqd2("20 Gy", 5, "10 Gy").units) == "gray"

    def test_quantities_accepted(self) -> None:
        """Quantities (from mps.Q) give the same result as text."""
        assert bed(mps.Q(20, "Gy"), 5, mps.Q("10 Gy")).magnitude == pytest.approx(28.0)

    def test_integral_float_fractions_accepted(self) -> None:
        """A whole-number float of fractions (5.0) is read as 5."""
        assert eqd2("20 Gy", 5.0, "3 Gy").magnitude == pytest.approx(28.0)  # type: ignore[arg-type]

    @pytest.mark.parametrize("total", [8, 8.0, "8"])
    def test_bare_number_dose_refused(self, total: object) -> None:
        """A dose without a unit is refused with a UnitError (never read as Gy)."""
        with pytest.raises(UnitError, match="unit"):
            bed(total, 1, "10 Gy")

    def test_bare_number_alpha_beta_refused(self) -> None:
        """An α/β without a unit is refused."""
        with pytest.raises(UnitError):
            eqd2("8 Gy", 1, 10)

    def test_wrong_dimension_refused(self) -> None:
        """A dose in mg is a DimensionError naming the field."""
        with pytest.raises(DimensionError, match="total_dose"):
            bed("8 mg", 1, "10 Gy")

    @pytest.mark.parametrize("n", [0, -1, 2.5, True, "5", None, math.nan])
    def test_bad_fractions_refused(self, n: object) -> None:
        """Fractions must be a whole number of at least 1 (bool, text, 2.5, 0 refused)."""
        with pytest.raises(StepError, match="fractions"):
            bed("8 Gy", n, "10 Gy")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("total", "ab", "field"),
        [
            ("0 Gy", "10 Gy", "total_dose"),
            ("8 Gy", "0 Gy", "alpha_beta"),
            ("-2 Gy", "3 Gy", "total_dose"),
        ],
    )
    def test_non_positive_values_refused(self, total: str, ab: str, field: str) -> None:
        """A zero or negative dose or α/β is refused, naming the argument."""
        with pytest.raises(StepError, match=field):
            eqd2(total, 1, ab)

    def test_errors_are_library_errors(self) -> None:
        """Every refusal derives from MpsAnalgesiaError."""
        with pytest.raises(MpsAnalgesiaError):
            bed("8 Gy", 0, "10 Gy")


doses = st.integers(min_value=1, max_value=8000).map(lambda x: x / 100)
fractions = st.integers(min_value=1, max_value=40)
alpha_betas = st.sampled_from([1.5, 2.0, 3.0, 4.5, 10.0, 15.0])


class TestProperties:
    @settings(max_examples=60, deadline=None)
    @given(d=doses, n=fractions, ab=alpha_betas)
    def test_two_gray_fractions_keep_their_dose(self, d: float, n: int, ab: float) -> None:
        """A course in 2 Gy fractions has EQD2 equal to its total dose, at any α/β."""
        total = 2.0 * n
        assert eqd2(f"{total} Gy", n, f"{ab} Gy").magnitude == pytest.approx(total, rel=1e-12)

    @settings(max_examples=60, deadline=None)
    @given(d=doses, n=fractions, ab=alpha_betas)
    def test_bed_exceeds_total_dose(self, d: float, n: int, ab: float) -> None:
        """BED is always above the physical dose, and equals D·(1 + d/(α/β))."""
        total = d * n
        value = bed(f"{total} Gy", n, f"{ab} Gy").magnitude
        assert value > total
        assert value == pytest.approx(total * (1 + (total / n) / ab), rel=1e-9)

    @settings(max_examples=60, deadline=None)
    @given(d=doses, n=fractions, ab=alpha_betas)
    def test_eqd2_is_bed_scaled(self, d: float, n: int, ab: float) -> None:
        """EQD2 = BED / (1 + 2/(α/β))."""
        total, abt = f"{d * n} Gy", f"{ab} Gy"
        assert eqd2(total, n, abt).magnitude == pytest.approx(
            bed(total, n, abt).magnitude / (1 + 2 / ab), rel=1e-12
        )

    @settings(max_examples=40, deadline=None)
    @given(d=doses, n=st.integers(min_value=2, max_value=40), ab=alpha_betas)
    def test_fewer_larger_fractions_raise_bed(self, d: float, n: int, ab: float) -> None:
        """The same total in fewer fractions gives a larger BED (larger dose per fraction)."""
        total = f"{d * n} Gy"
        assert bed(total, n - 1, f"{ab} Gy").magnitude > bed(total, n, f"{ab} Gy").magnitude

    @settings(max_examples=40, deadline=None)
    @given(n=fractions, ab=alpha_betas, d=doses)
    def test_text_and_quantity_agree(self, n: int, ab: float, d: float) -> None:
        """A dose written as text and as a Quantity gives the same BED."""
        total = d * n
        assert bed(f"{total} Gy", n, f"{ab} Gy").magnitude == pytest.approx(
            bed(mps.Q(total, "Gy"), n, mps.Q(ab, "Gy")).magnitude, rel=1e-12
        )


class TestData:
    def test_alpha_beta_values(self) -> None:
        """The data file gives α/β 10 Gy (early) and 3 Gy (late), verified, with sources."""
        values = {a.key: a for a in rt.alpha_beta_values()}
        assert values["early"].gy == 10.0
        assert values["late"].gy == 3.0
        assert {a.value.level for a in values.values()} == {"V"}

    def test_astro_schedules(self) -> None:
        """The ASTRO 2017 schedules are 8/1, 20/5, 24/6 and 30/10, sourced to astro-2017."""
        schedules = rt.astro_schedules()
        assert [(s.total_gy, s.fractions) for s in schedules] == [
            (8.0, 1),
            (20.0, 5),
            (24.0, 6),
            (30.0, 10),
        ]
        assert {s.source for s in schedules} == {"astro-2017"}

    def test_dose_per_fraction_limit(self) -> None:
        """The dose-per-fraction limit is 8 Gy from ASTRO 2017."""
        limit = rt.max_dose_per_fraction()
        assert (limit.value, limit.source, limit.level) == (8.0, "astro-2017", "V")

    def test_alpha_beta_lookup(self) -> None:
        """alpha_beta('late') returns the 3 Gy value; an unknown key is a DataFileError."""
        assert rt.alpha_beta("late").gy == 3.0
        with pytest.raises(mps.DataFileError):
            rt.alpha_beta("nope")


class TestCourseEquivalents:
    @given(
        total=st.floats(min_value=0.5, max_value=80, allow_nan=False),
        n=st.integers(min_value=1, max_value=40),
    )
    @settings(max_examples=50, deadline=None)
    def test_agree_with_bed_and_eqd2(self, total: float, n: int) -> None:
        """Each α/β of the data file gives the same BED and EQD2 as bed() and eqd2()."""
        results = rt.course_equivalents(f"{total} Gy", n)
        assert [c.alpha_beta_gy for c in results] == [a.gy for a in rt.alpha_beta_values()]
        for c, ab in zip(results, rt.alpha_beta_values(), strict=True):
            assert math.isclose(c.bed_gy, bed(f"{total} Gy", n, ab.value.quantity).magnitude)
            assert math.isclose(c.eqd2_gy, eqd2(f"{total} Gy", n, ab.value.quantity).magnitude)
            assert math.isclose(c.dose_per_fraction_gy * n, total)
            assert c.source == ab.value.source

    def test_refuses_bad_input(self) -> None:
        """A bare number or zero fractions is refused, as for bed()."""
        with pytest.raises(UnitError):
            rt.course_equivalents(8, 1)
        with pytest.raises(StepError):
            rt.course_equivalents("8 Gy", 0)
