"""Formatting of numbers and quantities in protocol receipts and check texts."""

from __future__ import annotations

import re
from typing import Any, Final

from .. import _format, _units


def _qtext(q: Any) -> str:
    """A quantity as clinical text, with days and weeks in the plural: ``'7 days'``."""
    text = _units.format_quantity(q)
    number, _sep, unit = text.partition(" ")
    if unit in ("day", "week") and number != "1":
        return f"{number} {unit}s"
    return text


def _num(x: float) -> str:
    """A number for people, by the one formatter (:func:`mps_analgesia._format.number`):
    ``33.3333 → '33.33'``, ``1374.31 → '1374.3'``."""
    return _format.number(x)


#: A decimal number standing alone in running text (not part of a DOI, version or identifier).
_DECIMAL: Final = re.compile(r"(?<![\w./])(\d+)\.(\d+)(?![\w/]|\.\d)")


def _significant(whole: str, decimals: str) -> int:
    whole = whole.lstrip("0")
    return len(whole) + len(decimals) if whole else len(decimals.lstrip("0"))


def _human(text: str) -> str:
    """Rewrite the long decimals of a text (often from a receipt) for people, as :func:`_num`:
    ``'33.3333 mg' → '33.33 mg'``; numbers of 4 significant digits or one decimal are kept.

    >>> _human("morphine oral 33.3333 mg per dose, 1374.3 mg/day, 0.2 %, doi 10.1089/jpm.2014")
    'morphine oral 33.33 mg per dose, 1374.3 mg/day, 0.2 %, doi 10.1089/jpm.2014'
    """
    if "." not in text:
        return text

    def fix(match: re.Match[str]) -> str:
        whole, decimals = match.group(1), match.group(2)
        if len(decimals) <= 1 or _significant(whole, decimals) <= 4:
            return match.group(0)
        return _num(float(match.group(0)))

    return _DECIMAL.sub(fix, text)
