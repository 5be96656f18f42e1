"""Texts that state a data value name it by where it lives: ``{file:key}`` is filled from data.

A rule title or description, a protocol text or a hand-written documentation page does not
restate a clinical number; it names the value (``{methadone:titration.min_interval}``) and the
number is written in from ``data/`` when the text is made: when a rule is declared, a protocol
read or a page regenerated.  Changing a threshold is then one data line.

A placeholder is ``{file:key}`` or ``{file:key!n}``:

- ``file`` is a data file with or without ``.toml`` (``methadone``, ``radiotherapy.toml``);
- ``key`` is a dotted path (``qtc.prolonged_from``); ``name[i]`` picks an array item
  (``ecg.checkpoints[1]``) and ``name[field=value,...]`` the one item with those fields
  (``renal.avoid[drug=morphine].below``); a table with a ``value`` stands for that value;
- ``!n`` writes the number alone (``15`` of ``15 mg/day``), for ranges: ``{a!n}–{b}``.

A number is written by the one formatter; days, weeks and years are put in the plural
(``7 day`` reads ``7 days``).  Any other brace is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from . import _catalog, _format
from .errors import DataFileError

__all__ = ["PLACEHOLDER", "fill", "value_at", "value_text"]

#: A placeholder: ``{file:key}`` or ``{file:key!n}``.
_SELECT: Final = r"(?:\[(?:\d+|[A-Za-z_]+=[A-Za-z0-9_.\-]+(?:,[A-Za-z_]+=[A-Za-z0-9_.\-]+)*)\])?"
_NAME: Final = r"[A-Za-z0-9_\-]+"
PLACEHOLDER: Final = re.compile(
    rf"\{{(?P<file>[a-z0-9][a-z0-9_-]*(?:\.toml)?):(?P<key>{_NAME}{_SELECT}(?:\.{_NAME}{_SELECT})*)"
    r"(?:!(?P<conversion>n))?\}"
)
_PART: Final = re.compile(rf"({_NAME})(?:\[([^\]]+)\])?")
_QUANTITY: Final = re.compile(r"\s*(\d+(?:\.\d+)?(?:/\d+)?)\s*(.*?)\s*")
_PLURAL: Final = frozenset({"day", "week", "month", "year", "hour", "minute"})


def _item(name: str, key: str, items: Any, selector: str) -> Any:
    """The array item ``[i]`` or the one item whose fields match ``[field=value,...]``."""
    if not isinstance(items, list):
        raise DataFileError(f"{name}: {key!r} does not name an array")
    if selector.isdigit():
        if int(selector) >= len(items):
            raise DataFileError(f"{name}: {key!r} has no item {selector}")
        return items[int(selector)]
    wanted = dict(part.split("=", 1) for part in selector.split(","))
    found = [
        item
        for item in items
        if isinstance(item, Mapping) and all(str(item.get(k)) == v for k, v in wanted.items())
    ]
    if len(found) != 1:
        raise DataFileError(
            f"{name}: {key!r} names {len(found)} items, not one: make the selector "
            f"[{selector}] name one"
        )
    return found[0]


def value_at(name: str, key: str) -> str | int | float:
    """The value at ``key`` of data file ``name`` (``.toml`` may be left out): a table with a
    ``value`` stands for it; ``name[i]`` and ``name[field=value]`` pick an array item.

    Example
    -------
    >>> value_at("radiotherapy", "schedules[0].fractions")  # ASTRO 2017's single fraction
    1
    """
    if not name.endswith(".toml"):
        name += ".toml"
    node: Any = _catalog.data_file(name)
    for part in key.split("."):
        m = _PART.fullmatch(part)
        if m is None or not isinstance(node, Mapping) or m.group(1) not in node:
            raise DataFileError(f"{name}: has no key {key!r}")
        node = node[m.group(1)]
        if m.group(2) is not None:
            node = _item(name, key, node, m.group(2))
    if isinstance(node, Mapping):
        if "value" not in node:
            raise DataFileError(f"{name}: {key!r} is a table without a value")
        node = node["value"]
    if isinstance(node, bool) or not isinstance(node, str | int | float):
        raise DataFileError(f"{name}: {key!r} is not a number or a quantity")
    result: str | int | float = node
    return result


def value_text(value: str | float, *, number_only: bool = False) -> str:
    """A data value as text: its number by the one formatter, days and years in the plural.

    Example
    -------
    >>> value_text("7 day"), value_text("75 year"), value_text("10 mg/day"), value_text(10.0)
    ('7 days', '75 years', '10 mg/day', '10')
    >>> value_text("1/6"), value_text("1 day"), value_text("15 mg/day", number_only=True)
    ('1/6', '1 day', '15')
    """
    if not isinstance(value, str):
        return _format.number(float(value))
    m = _QUANTITY.fullmatch(value)
    if m is None:
        raise DataFileError(f"{value!r} is not a number with a unit")
    number, unit = m.group(1), m.group(2)
    if "/" not in number:
        number = _format.number(float(number))
    if number_only or not unit:
        return number
    if unit in _PLURAL and number != "1":
        unit += "s"
    return f"{number} {unit}"


def fill(text: str) -> str:
    """``text`` with each ``{file:key}`` placeholder replaced by the value it names.

    An unknown file or key raises :class:`~mps_analgesia.errors.DataFileError` naming both.

    Example
    -------
    >>> interval = value_at("methadone", "titration.min_interval")  # e.g. '7 day'
    >>> fill("at least {methadone:titration.min_interval} apart") == (
    ...     f"at least {value_text(interval)} apart"
    ... )
    True
    >>> fill("{radiotherapy:schedules[0].fractions} fraction; {not a key}")
    '1 fraction; {not a key}'
    """
    if "{" not in text:
        return text

    def one(m: re.Match[str]) -> str:
        value = value_at(m.group("file"), m.group("key"))
        return value_text(value, number_only=m.group("conversion") == "n")

    return PLACEHOLDER.sub(one, text)
