"""Small helpers shared by the rule modules: number display and tolerance comparison."""

from __future__ import annotations

from typing import Final

__all__ = ["REL_TOL", "above", "below", "num"]

#: Relative tolerance for comparing converted floats (never compare them with ``==``).
REL_TOL: Final = 1e-9


def above(value: float, limit: float) -> bool:
    """True when ``value`` exceeds ``limit`` by more than rounding noise."""
    return value > limit * (1 + REL_TOL) + 1e-12


def below(value: float, limit: float) -> bool:
    """True when ``value`` is under ``limit`` by more than rounding noise."""
    return value < limit * (1 - REL_TOL) - 1e-12


def num(x: float) -> str:
    """A number for display: whole numbers plain, others to 4 significant digits (at most one
    decimal from 1000 up, never e-notation)."""
    r = round(x)
    if r == x or abs(x - r) < 1e-9 * max(1.0, abs(x)):
        return str(r)
    if abs(x) >= 1000:
        return f"{x:.1f}"
    return f"{x:.4g}"
