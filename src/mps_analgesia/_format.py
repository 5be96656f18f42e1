"""The one number formatter: how every number the library prints is written.

Receipts, finding messages, renderers and cards format a canonical float through :func:`number`
(and a range through :func:`span`), so the same value never prints two ways.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["close", "number", "span"]

_REL: Final = 1e-9
#: Below this size a float is finite and ``round`` is cheap: the fast path of :func:`number`.
_BIG: Final = 1e15


def number(x: float) -> str:
    """A number for people: a whole number as is, else 4 significant digits (one decimal from
    1000 up), never in exponent form.

    Example
    -------
    >>> number(30.0), number(2 / 3), number(69.993), number(1374.31), number(0.00001234)
    ('30', '0.6667', '69.99', '1374.3', '0.00001234')
    >>> number(float("inf"))
    '∞'
    """
    if not -_BIG < x < _BIG:  # infinite, NaN or huge: the general path
        if math.isinf(x):
            return "∞" if x > 0 else "-∞"
        if math.isnan(x):
            return "NaN"
    whole = round(x)
    size = -x if x < 0 else x
    if abs(x - whole) < _REL * (size if size > 1.0 else 1.0):
        return str(whole)
    if size >= 1000:
        text = f"{x:.1f}"
        return text[:-2] if text.endswith(".0") else text
    text = f"{x:.4g}"
    if "e" in text:  # below 0.0001: 4 significant digits as a plain decimal
        places = 3 - math.floor(math.log10(size))
        text = f"{x:.{places}f}".rstrip("0")
    return text


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
