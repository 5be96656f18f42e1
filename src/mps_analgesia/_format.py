"""The one number formatter: how every number the library prints is written.

Receipts, finding messages, renderers and cards format a canonical float through :func:`number`
(and a range through :func:`span`), so the same value never prints two ways.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["close", "number", "span"]

_REL: Final = 1e-9


def number(x: float) -> str:
    """A number for display: whole numbers plain, others to 6 significant digits.

    Example
    -------
    >>> number(30.0), number(2 / 3), number(float("inf"))
    ('30', '0.666667', '∞')
    """
    if math.isinf(x):
        return "∞"
    if abs(x - round(x)) < _REL * max(1.0, abs(x)):
        return str(round(x))
    return f"{x:.6g}"


def close(a: float, b: float) -> bool:
    """True when two canonical floats are equal up to rounding noise."""
    return abs(a - b) <= _REL * max(1.0, abs(a), abs(b))


def span(low: float, high: float, unit: str = "") -> str:
    """A value that may be a range: ``'60–134 MME/day'``, or ``'60 MME/day'`` for a point.

    Example
    -------
    >>> span(60.0, 134.0, "MME/day"), span(5.0, 5.0)
    ('60–134 MME/day', '5')
    """
    text = number(low) if close(low, high) else f"{number(low)}–{number(high)}"
    return f"{text} {unit}" if unit else text
