"""Tests of the one number formatter (``_format.number``)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from mps_analgesia._format import number


def _reference(x: float) -> str:
    """The formatter as first written (the general path only), to hold the fast path to it."""
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if math.isnan(x):
        return "NaN"
    if abs(x - round(x)) < 1e-9 * max(1.0, abs(x)):
        return str(round(x))
    if abs(x) >= 1000:
        text = f"{x:.1f}"
        return text[:-2] if text.endswith(".0") else text
    text = f"{x:.4g}"
    if "e" in text:
        places = 3 - math.floor(math.log10(abs(x)))
        text = f"{x:.{places}f}".rstrip("0")
    return text


class TestNumber:
    @given(st.floats(allow_nan=True, allow_infinity=True))
    def test_same_text_as_the_general_path(self, x: float) -> None:
        """Every float, huge, tiny, whole, infinite or NaN, prints as the general path prints it."""
        assert number(x) == _reference(x)

    @given(st.floats(min_value=-1e6, max_value=1e6))
    def test_same_text_for_doses(self, x: float) -> None:
        """Dose-sized floats (the fast path) print as the general path prints them."""
        assert number(x) == _reference(x)

    def test_worked_examples(self) -> None:
        """Whole numbers plain, 4 significant digits, one decimal from 1000, no exponent."""
        assert [number(v) for v in (30.0, 2 / 3, 69.993, 1374.31, 0.00001234, -0.0, 1e15)] == [
            "30",
            "0.6667",
            "69.99",
            "1374.3",
            "0.00001234",
            "0",
            "1000000000000000",
        ]
