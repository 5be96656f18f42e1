"""Units: the clinical registry, ``Q()``, the cached parser and what it refuses."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pint
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import mps_analgesia as mps
from mps_analgesia import _units
from mps_analgesia._limits import MAX_MAGNITUDE, MIN_MAGNITUDE
from mps_analgesia._units import (
    DIMENSIONS,
    Q,
    as_quantity,
    format_quantity,
    format_unit,
    is_quantity,
    lookup_unit,
    magnitude_in,
    parse,
    quantity_from_magnitude,
)
from mps_analgesia.errors import DimensionError, MpsAnalgesiaError, UnitError
from strategies import UNITS_BY_DIMENSION


def _dimension(q: object) -> str:
    return lookup_unit(format_unit(q.units)).dimension  # type: ignore[attr-defined]


class TestClinicalSpellings:
    @pytest.mark.parametrize(
        ("text", "target", "expected", "dimension"),
        [
            ("15 mg/24h", "mg/day", 15.0, "mass_rate"),
            ("15 mg/24 h", "mg/day", 15.0, "mass_rate"),
            ("15 mg/24hr", "mg/day", 15.0, "mass_rate"),
            ("15 mg/24 hours", "mg/day", 15.0, "mass_rate"),
            ("15 mg/d", "mg/day", 15.0, "mass_rate"),
            ("15 mg/day", "mg/h", 0.625, "mass_rate"),
            ("25 mcg/hr", "mcg/h", 25.0, "mass_rate"),
            ("25 mcg/h", "mg/day", 0.6, "mass_rate"),
            ("6 mL/hr", "mL/h", 6.0, "volume_rate"),
            ("500 mg/m2", "mg/m**2", 500.0, "mass_per_area"),
            ("500 mg/m²", "mg/m**2", 500.0, "mass_per_area"),
            ("0.25 %", "mg/mL", 2.5, "concentration"),
            ("0.2 %", "mg/mL", 2.0, "concentration"),
            ("58 mL/min/1.73 m²", "mL/min/standard_bsa", 58.0, "egfr"),
            ("58 mL/min/1.73m2", "mL/min/standard_bsa", 58.0, "egfr"),
            ("440 ms", "ms", 440.0, "time"),
            ("60 MME/day", "MME/day", 60.0, "ome_rate"),
            ("60 OME/day", "MME/day", 60.0, "ome_rate"),
            ("4 Gy/fraction", "Gy/fraction", 4.0, "dose_per_fraction"),
            ("3 mg/kg", "mg/kg", 3.0, "mass_per_mass"),
            ("1 g", "mg", 1000.0, "mass"),
            ("2 hours", "min", 120.0, "time"),
        ],
    )
    def test_spelling_has_its_clinical_meaning(
        self, text: str, target: str, expected: float, dimension: str
    ) -> None:
        """Each clinical spelling parses to its clinical meaning and dimension."""
        q = Q(text)
        assert magnitude_in(q, target) == pytest.approx(expected, rel=1e-12)
        assert _dimension(q) == dimension

    def test_per_24h_is_not_mg_over_24_times_hours(self) -> None:
        """'mg/24h' is a rate per day, not (mg/24)·h as pint's default reads it."""
        assert Q("24 mg/24h") == Q("1 mg/h")
        assert Q("24 mg/24h").dimensionality == DIMENSIONS["mass_rate"][0]

    @pytest.mark.parametrize("spelling", ["mcg", "ug", "µg", "μg"])
    def test_microgram_spellings_are_equal(self, spelling: str) -> None:
        """mcg = ug = µg (micro sign) = μg (Greek mu), all written back as 'mcg'."""
        q = Q(f"250 {spelling}")
        assert magnitude_in(q, "mg") == pytest.approx(0.25)
        assert format_quantity(q) == "250 mcg"

    def test_percent_is_weight_per_volume(self) -> None:
        """0.25 % equals 2.5 mg/mL (% w/v), never pint's dimensionless percent."""
        assert Q("0.25 %") == Q("2.5 mg/mL")
        assert not Q("0.25 %").dimensionless

    def test_gy_per_fraction_never_collapses_to_gy(self) -> None:
        """'fraction' is its own dimension, so Gy/fraction cannot be converted to Gy."""
        per_fraction = Q("4 Gy/fraction")
        assert per_fraction.dimensionality != Q("4 Gy").dimensionality
        with pytest.raises(pint.DimensionalityError):
            per_fraction.to("Gy")
        assert (per_fraction * Q("5 fraction")).to("Gy").magnitude == pytest.approx(20.0)

    def test_mme_cannot_be_added_to_plain_mg(self) -> None:
        """MME/day is its own dimension: adding it to mg/day raises DimensionalityError."""
        with pytest.raises(pint.DimensionalityError):
            Q("60 MME/day") + Q("60 mg/day")
        with pytest.raises(pint.DimensionalityError):
            Q("60 MME").to("mg")

    def test_decimal_point_forms(self) -> None:
        """'.5 mg', '5. mg', '5mg' and '1e3 mg' are plain numbers with units."""
        assert magnitude_in(Q(".5 mg"), "mg") == 0.5
        assert magnitude_in(Q("5. mg"), "mg") == 5.0
        assert magnitude_in(Q("5mg"), "mg") == 5.0
        assert magnitude_in(Q("1e3 mg"), "g") == 1.0

    def test_lookup_unit_is_cached(self) -> None:
        """A unit seen once is looked up from the cache, not parsed again."""
        lookup_unit("mcg/h")
        before = lookup_unit.cache_info().hits
        lookup_unit("mcg/h")
        assert lookup_unit.cache_info().hits == before + 1

    def test_lookup_unit_reports_dimension_and_text(self) -> None:
        """lookup_unit gives the dimension name and the clinical spelling."""
        info = lookup_unit("mg/24h")
        assert (info.dimension, info.text) == ("mass_rate", "mg/day")
        assert lookup_unit("mg/kg").dimension == "mass_per_mass"


class TestRefused:
    @pytest.mark.parametrize(
        ("text", "safe"),
        [
            ("10 U", "mg"),
            ("10 u", "mg"),
            ("10 IU", "mg"),
            ("10 units", "mg"),
            ("10 unit", "mg"),
            ("10 Units", "mg"),
            ("5 cc", "mL"),
            ("5 CC", "mL"),
            ("1 gr", "mg"),
            ("1 grain", "mg"),
            ("1 amp", "mg"),
            ("2 amps", "mL"),
            ("1 ampoule", "mg"),
            ("10 U/h", "mg"),
            ("5 µ", "mcg"),
        ],
    )
    def test_unsafe_abbreviation_is_refused_with_safe_spelling(self, text: str, safe: str) -> None:
        """A do-not-use abbreviation raises UnitError quoting the text and the safe spelling."""
        with pytest.raises(UnitError) as info:
            Q(text)
        err = info.value
        assert err.text == text
        assert repr(text) in str(err)
        assert "refused" in err.reason
        assert f"'{safe}'" in err.suggestion or f" {safe}" in err.suggestion

    def test_refused_unit_also_refused_with_number_and_unit(self) -> None:
        """Q(number, unit) refuses the same abbreviations."""
        with pytest.raises(UnitError, match="do-not-use"):
            Q(10, "IU")

    def test_unknown_unit_gets_a_suggestion(self) -> None:
        """A misspelt unit is refused with a 'did you mean' suggestion."""
        with pytest.raises(UnitError, match=r"unknown unit 'mgg'.*did you mean 'mg'"):
            Q("5 mgg")

    @pytest.mark.parametrize("text", ["30", "30 ", "  30"])
    def test_bare_number_text_is_refused(self, text: str) -> None:
        """A number without its unit is refused and the message says a unit is needed."""
        with pytest.raises(UnitError, match="has no unit"):
            Q(text)

    @pytest.mark.parametrize("value", [30, 30.0, 0])
    def test_bare_number_is_refused(self, value: float) -> None:
        """Q(30) is refused: a dose never enters the library as a bare float."""
        with pytest.raises(UnitError, match="bare number"):
            Q(value)

    @pytest.mark.parametrize("text", ["nan mg", "NaN mg", "inf mg", "-inf mg", "infinity mg"])
    def test_nan_and_infinity_text_is_refused(self, text: str) -> None:
        """NaN and infinities written as text are not numbers."""
        with pytest.raises(UnitError, match="does not start with a number"):
            Q(text)

    def test_overflowing_number_is_refused(self) -> None:
        """'1e400 mg' overflows to infinity and is refused."""
        with pytest.raises(UnitError, match="larger than"):
            Q("1e400 mg")

    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
    def test_nan_and_infinity_numbers_are_refused(self, value: float) -> None:
        """Q(nan, 'mg') and Q(inf, 'mg') raise UnitError."""
        with pytest.raises(UnitError, match="not a finite number"):
            Q(value, "mg")

    @pytest.mark.parametrize("value", [True, "30", None, [30]])
    def test_non_numbers_with_a_unit_are_refused(self, value: object) -> None:
        """Q(value, unit) takes an int or float only (a bool is not a number)."""
        with pytest.raises(UnitError, match="not a number"):
            Q(value, "mg")

    def test_decimal_comma_is_refused(self) -> None:
        """'2,5 mg' is refused (2.5 or 25?) with the decimal-point spelling suggested."""
        with pytest.raises(UnitError, match=r"decimal comma; write '2.5'"):
            Q("2,5 mg")

    @pytest.mark.parametrize("text", ["5 mg h", "10 mg per day", "5 mg kg"])
    def test_units_side_by_side_are_refused(self, text: str) -> None:
        """Units written side by side would silently multiply, so they are refused."""
        with pytest.raises(UnitError, match="side by side"):
            Q(text)

    @pytest.mark.parametrize("text", ["5 NAN", "5 inf", "5 nan/h", "5 Infinity"])
    def test_float_words_as_units_are_refused(self, text: str) -> None:
        """'NAN' or 'inf' where the unit goes raises UnitError (pint would read a float)."""
        with pytest.raises(UnitError, match="unknown unit"):
            Q(text)

    @pytest.mark.parametrize("text", ["١ mg", "５ mg", "۵ mg"])
    def test_non_ascii_digits_are_refused(self, text: str) -> None:
        """Digits of other scripts (which float() would read) never become a number."""
        with pytest.raises(UnitError):
            Q(text)

    @pytest.mark.parametrize(
        "text", ["9 g# x", "6 %@", "8=L", "55 !h", "0&&1", "2 %=^41", "5 (mg)", "5 mg/24", "8 g^22"]
    )
    def test_stray_punctuation_is_refused(self, text: str) -> None:
        """Characters pint's tokenizer would drop or misread make the text unreadable."""
        with pytest.raises(UnitError):
            Q(text)

    def test_error_derives_from_library_root_and_value_error(self) -> None:
        """UnitError is both an MpsAnalgesiaError and a ValueError."""
        with pytest.raises(MpsAnalgesiaError):
            Q("5 cc")
        with pytest.raises(ValueError, match="cc"):
            Q("5 cc")


class TestQ:
    def test_number_and_unit(self) -> None:
        """Q(25, 'mcg/h') equals Q('25 mcg/h') and converts to 0.6 mg/day."""
        assert Q(25, "mcg/h") == Q("25 mcg/h")
        assert magnitude_in(Q(25, "mcg/h"), "mg/day") == pytest.approx(0.6)

    def test_number_is_stored_as_float(self) -> None:
        """An int magnitude becomes a float."""
        assert isinstance(Q(25, "mg").magnitude, float)

    def test_quantity_of_library_registry_is_returned_as_is(self) -> None:
        """Q(q) of our own registry returns the same object."""
        q = Q("5 mg")
        assert Q(q) is q

    @pytest.mark.parametrize(
        ("unit", "target", "expected"),
        [
            ("milligram", "mg", 5.0),
            ("microgram / hour", "mcg/h", 5.0),
            ("gram", "mg", 5000.0),
            ("milliliter / minute", "mL/min", 5.0),
            ("gray", "Gy", 5.0),
            ("millisecond", "ms", 5.0),
        ],
    )
    def test_quantity_from_another_registry_is_accepted(
        self, unit: str, target: str, expected: float
    ) -> None:
        """A Quantity made with another pint.UnitRegistry() comes into ours by its units."""
        other = pint.UnitRegistry()
        q = Q(other.Quantity(5, unit))
        assert q._REGISTRY is _units.registry()
        assert magnitude_in(q, target) == pytest.approx(expected)

    def test_other_registry_unsafe_unit_is_refused(self) -> None:
        """Another registry's enzyme unit (U) or grain comes in only to be refused."""
        other = pint.UnitRegistry()
        with pytest.raises(UnitError, match="refused"):
            Q(other.Quantity(3, "U"))
        with pytest.raises(UnitError, match="refused"):
            Q(other.Quantity(2, "grain"))

    def test_other_registry_dimensionless_percent_is_refused(self) -> None:
        """pint's dimensionless percent never turns into % w/v (which is 10 mg/mL per %)."""
        other = pint.UnitRegistry()
        with pytest.raises(UnitError, match="dimensionless"):
            Q(other.Quantity(5, "percent"))

    def test_other_registry_nan_is_refused(self) -> None:
        """A NaN Quantity of another registry is refused, and as_quantity names the field."""
        other = pint.UnitRegistry()
        with pytest.raises(UnitError, match="not a finite number"):
            Q(other.Quantity(math.nan, "mg"))
        with pytest.raises(UnitError, match=r"^dose: "):
            as_quantity(other.Quantity(math.inf, "mg"), "mass", field="dose")

    def test_is_quantity(self) -> None:
        """is_quantity is true for pint Quantities of any registry and false otherwise."""
        assert is_quantity(Q("1 mg"))
        assert is_quantity(pint.UnitRegistry().Quantity(1, "mg"))
        assert not is_quantity("1 mg")
        assert not is_quantity(1.0)

    def test_quantity_from_magnitude(self) -> None:
        """quantity_from_magnitude builds a Quantity from a canonical float and unit name."""
        q = quantity_from_magnitude(4000, "mg/day")
        assert q == Q("4 g/day")
        assert format_quantity(q) == "4000 mg/day"

    def test_public_q_is_the_units_q(self) -> None:
        """mps.Q is the parser of mps_analgesia._units."""
        assert mps.Q is Q

    def test_registry_is_built_from_the_curated_file(self) -> None:
        """The registry has no SI prefixes or pint defaults beyond units.txt."""
        reg = _units.registry()
        assert "mg" in reg
        for name in ("micronit", "enzyme_unit", "grain", "kilometer", "percent"):
            assert name not in reg

    def test_build_registry_gives_an_equivalent_registry(self) -> None:
        """_build_registry() builds a fresh registry with the same clinical units."""
        reg = _units._build_registry()
        assert reg is not _units.registry()
        assert reg.Quantity(1, "day").to("h").magnitude == 24


class TestParse:
    def test_parse_returns_number_and_unit_info(self) -> None:
        """parse('15 mg/24h') gives (15.0, UnitInfo for mg/day)."""
        number, info = parse("15 mg/24h")
        assert number == 15.0
        assert info.text == "mg/day"

    def test_parse_names_the_field(self) -> None:
        """A parse error carries the field name, shown before the message."""
        with pytest.raises(UnitError) as info:
            parse("30", field="dose")
        assert info.value.field == "dose"
        assert str(info.value) == "dose: '30' has no unit; write e.g. '30 mg'"

    def test_parse_refuses_non_text(self) -> None:
        """parse() of something that is not text raises UnitError."""
        with pytest.raises(UnitError, match="not a quantity text"):
            parse(30)  # type: ignore[arg-type]

    def test_empty_text_is_refused(self) -> None:
        """An empty text does not start with a number."""
        with pytest.raises(UnitError, match="does not start with a number"):
            Q("")


class TestAsQuantity:
    def test_reads_text_of_the_right_dimension(self) -> None:
        """as_quantity('0.5 g', 'mass') gives a mass Quantity."""
        assert magnitude_in(as_quantity("0.5 g", "mass"), "mg") == 500.0

    def test_wrong_dimension_names_field_and_example(self) -> None:
        """A volume for a mass raises DimensionError naming the field and an example."""
        with pytest.raises(DimensionError) as info:
            as_quantity("5 mL", "mass", field="dose")
        assert str(info.value) == "dose: '5 mL' is a volume, not a mass; write e.g. '30 mg'"

    def test_article_before_vowel(self) -> None:
        """The message reads 'not an absorbed dose', not 'not a absorbed dose'."""
        with pytest.raises(DimensionError, match="is a mass, not an absorbed dose"):
            as_quantity("20 mg", "absorbed_dose", field="total_dose")

    def test_bare_number_suggests_the_fields_unit(self) -> None:
        """A bare number is refused with the user's number and the field's usual unit."""
        with pytest.raises(UnitError) as info:
            as_quantity(440, "time", field="qtc", example="440 ms")
        assert str(info.value) == "qtc: '440' has no unit; write e.g. '440 ms'"
        with pytest.raises(UnitError, match=r"'52' has no unit; write e.g. '52 kg'"):
            as_quantity("52", "mass", field="weight", example="52 kg")

    def test_bare_number_without_example_uses_dimension_unit(self) -> None:
        """Without an example, the dimension's own example unit is suggested."""
        with pytest.raises(UnitError, match=r"'30' has no unit; write e.g. '30 mg'"):
            as_quantity("30", "mass", field="dose")

    def test_other_objects_are_refused(self) -> None:
        """Something that is neither text, number nor Quantity is refused."""
        with pytest.raises(UnitError, match="not a quantity"):
            as_quantity(["5 mg"], "mass", field="dose")

    @pytest.mark.parametrize(("dimension", "value"), [(d, v[1]) for d, v in DIMENSIONS.items()])
    def test_every_dimension_example_reads_as_its_dimension(
        self, dimension: str, value: str
    ) -> None:
        """The example of each named dimension parses to that dimension."""
        assert as_quantity(value, dimension).dimensionality == DIMENSIONS[dimension][0]


class TestImport:
    def test_import_does_not_load_heavy_or_boundary_modules(self) -> None:
        """`import mps_analgesia` loads neither cattrs, tomllib, the CLI nor io."""
        code = (
            "import sys, mps_analgesia\n"
            "bad = [m for m in ('cattrs', 'tomllib', 'mps_analgesia.cli', 'mps_analgesia.io')"
            " if m in sys.modules]\n"
            "print(','.join(bad))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == ""

    def test_first_use_from_threads_builds_one_registry(self) -> None:
        """Threads making their first quantities at once all get the one library registry."""
        code = (
            "import threading, mps_analgesia as mps\n"
            "from mps_analgesia import _units\n"
            "out = []\n"
            "threads = [threading.Thread(target=lambda: out.append(mps.Q('5 mg')))"
            " for _ in range(8)]\n"
            "[t.start() for t in threads]\n"
            "[t.join() for t in threads]\n"
            "print(len(out), {q._REGISTRY is _units.registry() for q in out})\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "8 {True}"


# ---- properties --------------------------------------------------------------------------------

_ALL_UNITS = sorted({u for units in UNITS_BY_DIMENSION.values() for u in units})
_positive_floats = st.floats(min_value=MIN_MAGNITUDE, max_value=MAX_MAGNITUDE)


class TestProperties:
    @settings(max_examples=300, deadline=None)
    @given(magnitude=_positive_floats, unit=st.sampled_from(_ALL_UNITS))
    def test_valid_quantity_round_trips_through_text(self, magnitude: float, unit: str) -> None:
        """format_quantity → Q gives back the same magnitude in the same unit."""
        q = Q(magnitude, unit)
        back = Q(format_quantity(q))
        assert back.magnitude == q.magnitude
        assert back.units == q.units

    @settings(max_examples=200, deadline=None)
    @given(magnitude=_positive_floats, unit=st.sampled_from(_ALL_UNITS))
    def test_text_round_trip_is_stable(self, magnitude: float, unit: str) -> None:
        """Writing a parsed quantity again gives the same text."""
        text = format_quantity(Q(magnitude, unit))
        assert format_quantity(Q(text)) == text

    _near_miss = st.lists(
        st.sampled_from(
            [
                *"0123456789 .,/*^()-+eE%µμ²·×#=!&;:'\"@$?<>[]{}|~_",
                *("mg", "mcg", "h", "day", "1.73", "m2", "U", "cc", "kg", "L", "Gy", "MME"),
                *("fraction", "ms", "min"),
            ]
        ),
        max_size=8,
    ).map("".join)

    @settings(max_examples=600, deadline=None)
    @given(st.one_of(st.text(), _near_miss))
    def test_garbage_never_becomes_a_number(self, text: str) -> None:
        """Text either raises UnitError or really is a leading number and a known unit."""
        try:
            q = Q(text)
        except UnitError:
            return
        m = re.fullmatch(
            r"\s*([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*(.*?)\s*", text
        )
        assert m is not None, text
        number, unit_text = m.groups()
        assert q.magnitude == float(number)
        # only letters, unit operators and the clinical spellings may follow the number
        assert re.fullmatch(r"[A-Za-z0-9µμ%²/*^._ ]+", unit_text), unit_text
        assert lookup_unit(unit_text).unit == q.units

    @settings(max_examples=200, deadline=None)
    @given(st.text())
    def test_lookup_unit_raises_only_unit_error(self, text: str) -> None:
        """lookup_unit of any text returns a unit or raises UnitError, nothing else."""
        try:
            info = lookup_unit(text)
        except UnitError:
            return
        assert info.text

    _conversions = st.sampled_from(
        [
            ("mg", "mcg"),
            ("g", "mg"),
            ("mcg/h", "mg/day"),
            ("mg/24h", "mg/h"),
            ("h", "min"),
            ("mL/h", "mL/day"),
            ("%", "mg/mL"),
            ("Gy", "Gy"),
            ("ms", "s"),
            ("kg", "g"),
        ]
    )

    @settings(max_examples=300, deadline=None)
    @given(
        a=st.floats(min_value=1e-6, max_value=1e9),
        ratio=st.floats(min_value=1.0 + 1e-9, max_value=1e3),
        pair=_conversions,
    )
    def test_conversions_are_monotonic(self, a: float, ratio: float, pair: tuple[str, str]) -> None:
        """a < b implies conv(a) < conv(b) for every unit conversion."""
        b = a * ratio
        assume(b > a and math.isfinite(b))
        unit, target = pair
        assert magnitude_in(Q(a, unit), target) < magnitude_in(Q(b, unit), target)


class TestStrictGrammar:
    """Issue 14: the quantity grammar reads only documented spellings, in linear time."""

    @pytest.mark.parametrize(
        "text",
        [
            "0L··1",
            "30 mg·kg",
            "30 mg×kg",
            "30 mg*kg",
            "30 mg kg",
            "5 mg**2",
            "5 mg^2",
            "5 L**1",
            "4 percent_wv",
            "58 mL/min/standard_bsa",
            "5 morphine_milligram_equivalent",
            "5 mg/",
            "5 /h",
            "5 mgs#",
        ],
    )
    def test_undocumented_spelling_is_refused(self, text: str) -> None:
        """Multiplication, powers, internal registry names and stray characters are refused."""
        with pytest.raises(UnitError):
            Q(text)

    @pytest.mark.parametrize(
        "text",
        [
            "300\x1dmg",
            "300\nmg",
            "300\tmg",
            "300\u2028mg",
            "300 mg\x00",
            "3\u200b00 mg",
            "300\x7fmg",
        ],
    )
    def test_control_characters_are_refused(self, text: str) -> None:
        """Control characters and line separators are never read as spaces."""
        with pytest.raises(UnitError, match="control or invisible character"):
            Q(text)

    @pytest.mark.parametrize("space", ["\u00a0", "\u202f", "\u2007"])
    def test_no_break_spaces_read_as_spaces(self, space: str) -> None:
        """'300<NBSP>mg' (as copied from a web page) is 300 mg."""
        assert Q(f"300{space}mg") == Q("300 mg")
        assert Q(f"5{space}mcg{space}/{space}h").units == Q("5 mcg/h").units

    @pytest.mark.parametrize("text", ["1e-400 mg", "0.{}1 mg".format("0" * 80), "1e-13 mg"])
    def test_underflow_is_refused(self, text: str) -> None:
        """A number too small to represent is refused, never silently 0."""
        with pytest.raises(UnitError, match=r"too small|smaller than"):
            Q(text)

    def test_zero_is_still_zero(self) -> None:
        """A written zero is a zero (fields that must be positive refuse it by name)."""
        assert Q("0 mg").magnitude == 0.0
        assert Q("0.000e5 mg").magnitude == 0.0

    @pytest.mark.parametrize("value", [1e308, 10**400, 1e13, -1e13])
    def test_overflow_is_refused(self, value: float) -> None:
        """A magnitude no dose can have is refused as text and as a number."""
        with pytest.raises(UnitError, match=r"larger than|longer than"):
            Q(f"{value} mg")
        with pytest.raises(UnitError, match="larger than"):
            Q(value, "mg")

    @pytest.mark.parametrize("text", ["5 kg/kg", "5 mg/mg", "5 h/hr", "5 mL/ml"])
    def test_units_that_cancel_are_refused(self, text: str) -> None:
        """'5 kg/kg' is not a bare 5."""
        with pytest.raises(UnitError, match="cancel"):
            Q(text)

    def test_mg_per_kg_is_not_cancelling(self) -> None:
        """A mass per mass of different units (mg/kg) is a real dose per weight."""
        assert Q("3 mg/kg").to("mg/kg").magnitude == 3.0

    @pytest.mark.parametrize("n", [1_000, 40_000])
    def test_long_inputs_are_refused_at_once(self, n: int) -> None:
        """A long text (white space, digits) is refused by its length, not parsed (no ReDoS)."""
        for text in ("1" + " " * n + "mg", "1" * n + " mg", "1 " + "m/" * n + "g"):
            with pytest.raises(UnitError, match="longer than"):
                Q(text)

    @pytest.mark.parametrize("unit", [None, 5, ["mg"], b"mg"])
    def test_non_text_unit_is_refused(self, unit: object) -> None:
        """Q(5, <not a str>) is a UnitError, not a TypeError."""
        if unit is None:
            with pytest.raises(UnitError):
                Q(5)
        else:
            with pytest.raises(UnitError):
                Q(5, unit)  # type: ignore[arg-type]

    @pytest.mark.parametrize("value", [[], {}, object(), "5", None])
    def test_non_number_value_is_refused(self, value: object) -> None:
        """Q(<not a number>, 'mg') is a UnitError naming it."""
        with pytest.raises(UnitError):
            Q(value, "mg")


class TestForeignRegistry:
    """Issue 17 item 2: Quantities from any pint registry convert through their units."""

    def test_pound_converts_through_its_dimension(self) -> None:
        """A foreign unit ours lacks (lb) converts through pint's base units."""
        other = pint.UnitRegistry()
        q = Q(other.Quantity(1, "pound"))
        assert magnitude_in(q, "g") == pytest.approx(453.59237)

    def test_foreign_rate_and_volume(self) -> None:
        """mcg/h and gallons come in by dimension."""
        other = pint.UnitRegistry()
        assert magnitude_in(Q(other.Quantity(25, "microgram/hour")), "mcg/h") == pytest.approx(25)
        gal = Q(other.Quantity(1, "gallon"))
        assert magnitude_in(gal, "mL") == pytest.approx(3785.411784)

    def test_foreign_percent_is_refused(self) -> None:
        """pint's dimensionless percent is not our % w/v."""
        other = pint.UnitRegistry()
        with pytest.raises(UnitError, match="w/v"):
            Q(other.Quantity(0.2, "percent"))

    def test_foreign_quantity_is_a_dose(self) -> None:
        """A Quantity from pint.UnitRegistry() works as a dose."""
        other = pint.UnitRegistry()
        step = mps.OpioidStep(
            drug="morphine", route="oral", dose=other.Quantity(10, "mg"), every=other("4 h")
        )
        assert step.daily_dose_mg == pytest.approx(60.0)

    def test_foreign_quantity_overflow_is_refused(self) -> None:
        """A foreign Quantity of 10**400 mg is refused, not an OverflowError."""
        other = pint.UnitRegistry()
        with pytest.raises(UnitError):
            Q(other.Quantity(10**400, "mg"))
