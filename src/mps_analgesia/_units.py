"""The only module that touches pint: the library registry, ``Q()``, the cached parser.

The registry is built from ``data/units.txt`` (a closed clinical vocabulary), never from pint's
full default.  Text is parsed with a regular expression and an ``lru_cache``-d unit lookup;
clinical spellings (``mg/24h``, ``mg/d``, ``mcg/hr``, ``mg/m2``, ``%``, ``mL/min/1.73 m²``) are
rewritten to their clinical meaning and unsafe abbreviations (``U``, ``IU``, ``units``, ``cc``,
``gr``, ``amp``) are refused with a suggestion.

Below the boundary the library keeps canonical floats (``dose_mg``, ``rate_mcg_per_h``) obtained
with :func:`magnitude_in`, whose unit-to-unit factors are cached, so rules compare plain floats.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
import sys
import threading
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

import attrs

from . import _limits
from .errors import DimensionError, UnitError

if TYPE_CHECKING:
    import pint

    #: The pint Quantity class of the library registry (loaded on first use, see ``_load``).
    Quantity: Any
    #: Named dimensions the library checks: (dimensionality, example for messages).
    DIMENSIONS: dict[str, tuple[Any, str]]

__all__ = [
    "DIMENSIONS",
    "Q",
    "Quantity",
    "UnitInfo",
    "as_quantity",
    "format_quantity",
    "format_unit",
    "is_quantity",
    "lookup_unit",
    "magnitude_in",
    "parse",
    "quantity_from_magnitude",
    "registry",
]


def _build_registry() -> pint.UnitRegistry[Any]:
    import pint

    path = resources.files("mps_analgesia") / "data" / "units.txt"
    with resources.as_file(path) as p:
        return pint.UnitRegistry(str(p), cache_folder=None, on_redefinition="raise")


# pint (and numpy, which pint imports when it is installed) costs most of the import time, so the
# registry is built on first use, not at ``import mps_analgesia``.  ``_REGISTRY``, ``Quantity``
# and ``DIMENSIONS`` are filled in by ``_load()``; module attribute access (``_units.Quantity``,
# ``from ._units import DIMENSIONS``) goes through ``__getattr__`` below and loads them.
_REGISTRY: Any = None
_QUANTITY: Any = None
_DIMENSIONS: dict[str, tuple[Any, str]] = {}

#: Each named dimension the library checks: its defining unit and an example for messages.
_DIMENSION_UNITS: Final[dict[str, tuple[str, str]]] = {
    "mass": ("mg", "30 mg"),
    "volume": ("mL", "20 mL"),
    "time": ("h", "12 h"),
    "length": ("cm", "165 cm"),
    "mass_rate": ("mg/h", "25 mcg/h"),
    "volume_rate": ("mL/h", "6 mL/h"),
    "concentration": ("mg/mL", "0.2 %"),
    "absorbed_dose": ("Gy", "20 Gy"),
    "dose_per_fraction": ("Gy/fraction", "4 Gy/fraction"),
    "renal_clearance": ("mL/min", "55 mL/min"),
    "egfr": ("mL/min/standard_bsa", "58 mL/min/1.73m2"),
    "ome_rate": ("MME/day", "60 MME/day"),
    "ome": ("MME", "60 MME"),
    "mass_per_mass": ("mg/kg", "3 mg/kg"),
    "mass_per_area": ("mg/m**2", "500 mg/m2"),
    "volume_per_mass": ("mL/kg", "0.4 mL/kg"),
}


_LOAD_LOCK: Final = threading.Lock()


def _load() -> Any:
    """Build the registry once (on first use, by one thread) and return it."""
    global _REGISTRY, _QUANTITY
    if _REGISTRY is None:
        with _LOAD_LOCK:
            if _REGISTRY is None:
                reg = _build_registry()
                _DIMENSIONS.update(
                    (name, (reg.parse_units(unit).dimensionality, example))
                    for name, (unit, example) in _DIMENSION_UNITS.items()
                )
                _QUANTITY = reg.Quantity
                _REGISTRY = reg
                _register_pickling(reg)
    return _REGISTRY


def _register_pickling(reg: Any) -> None:
    """Pickle the registry's quantities against this registry, not pint's application one.

    Batches send cases and reports to worker processes; pint's own pickling would look the units
    up in its default registry, which does not know ours (``percent_wv``, ``MME`` ...).
    """
    import copyreg

    copyreg.pickle(reg.Quantity, _reduce_quantity)


def _reduce_quantity(q: Any) -> tuple[Any, ...]:
    return (_unpickle_quantity, (q.magnitude, tuple(q._units.items())))


def _unpickle_quantity(magnitude: Any, units: tuple[tuple[str, float], ...]) -> Any:
    import pint

    return _load().Quantity(magnitude, pint.util.UnitsContainer(dict(units)))


def __getattr__(name: str) -> Any:
    """``Quantity`` (the registry's Quantity class) and ``DIMENSIONS``, loaded on first use."""
    if name == "Quantity":
        _load()
        return _QUANTITY
    if name == "DIMENSIONS":
        _load()
        return _DIMENSIONS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def registry() -> pint.UnitRegistry[Any]:
    """Return the library's one pint registry.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> mps.Q("15 mg/day").to("mcg/h").magnitude
    625.0
    """
    reg: pint.UnitRegistry[Any] = _load()
    return reg


# ---- unsafe abbreviations ----------------------------------------------------------------------
# ISMP / Joint Commission "do not use" abbreviations and pint's silent misreadings.
_REFUSED: Final[dict[str, str]] = {
    "U": "'U' is a do-not-use abbreviation (misread as 0, 4 or cc); write the dose in mg or mcg",
    "u": "'u' is a do-not-use abbreviation (misread as 0, 4 or cc); write the dose in mg or mcg",
    "IU": "'IU' is a do-not-use abbreviation (misread as IV or 10); write the dose in mg or mcg",
    "unit": "bare 'unit' is not a measurable amount here; write the dose in mg or mcg",
    "units": "bare 'units' is not a measurable amount here; write the dose in mg or mcg",
    "cc": "'cc' is a do-not-use abbreviation (misread as U or 00); write 'mL'",
    "gr": "'gr' is ambiguous (grain = 64.8 mg, or gram?); write 'g' or 'mg'",
    "grain": "grains are not used here; write the dose in 'mg'",
    "amp": "an ampoule is not a dose; write the dose in mg, or the volume in mL",
    "amps": "an ampoule is not a dose; write the dose in mg, or the volume in mL",
    "ampoule": "an ampoule is not a dose; write the dose in mg, or the volume in mL",
    "ampoules": "an ampoule is not a dose; write the dose in mg, or the volume in mL",
    "µ": "a bare 'µ' is ambiguous; write 'mcg'",
}
# The same, whatever the case ("Units", "CC", "Amp"): a capital letter does not make them safe.
_REFUSED_FOLDED: Final[dict[str, str]] = {k.casefold(): v for k, v in _REFUSED.items()}

# ---- the grammar of a quantity text -------------------------------------------------------------
# A quantity text is a number, optional spaces, then a unit: one unit name, optionally divided by
# one or more unit names ("mg", "mcg/h", "mg/kg/h", "mL/min/1.73m2").  Every unit name is one of
# the documented spellings in ``_SPELLINGS``; there is no multiplication and no power other than
# the square metre of "mg/m2", so nothing pint would silently multiply, raise or drop reaches it.
# The text is read in one pass over at most ``MAX_QUANTITY_TEXT`` characters (linear time).

# ASCII digits only: float() also reads other scripts' digits ("١", "５"), which we refuse.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)(?:[eE][+-]?[0-9]+)?")
_TOKEN = re.compile(r"[A-Za-zµμ%]+")
_NO_UNIT: Final = "has no unit"
#: White space other than the ASCII space that is read as a space: the no-break spaces.
_SPACE_LIKE: Final = frozenset("\u00a0\u2007\u202f")


def _plural(*names: str) -> tuple[str, ...]:
    return names + tuple(n + "s" for n in names)


#: Every accepted unit spelling (case-sensitive) and the registry name it is read as.
_SPELLINGS: Final[dict[str, str]] = {
    **dict.fromkeys(("g", *_plural("gram")), "gram"),
    **dict.fromkeys(("kg", *_plural("kilogram")), "kilogram"),
    **dict.fromkeys(("mg", *_plural("milligram")), "milligram"),
    **dict.fromkeys(("mcg", "ug", "µg", "μg", *_plural("microgram")), "microgram"),
    **dict.fromkeys(("ng", *_plural("nanogram")), "nanogram"),
    **dict.fromkeys(("L", "l", *_plural("liter", "litre")), "liter"),
    **dict.fromkeys(("dL", "dl", *_plural("deciliter", "decilitre")), "deciliter"),
    **dict.fromkeys(("mL", "ml", *_plural("milliliter", "millilitre")), "milliliter"),
    **dict.fromkeys(("uL", "µL", "μL", *_plural("microliter", "microlitre")), "microliter"),
    **dict.fromkeys(("m", *_plural("meter", "metre")), "meter"),
    **dict.fromkeys(("cm", *_plural("centimeter", "centimetre")), "centimeter"),
    **dict.fromkeys(("mm", *_plural("millimeter", "millimetre")), "millimeter"),
    **dict.fromkeys(("dm", *_plural("decimeter", "decimetre")), "decimeter"),
    **dict.fromkeys(("s", "sec", *_plural("second")), "second"),
    **dict.fromkeys(("ms", *_plural("millisecond")), "millisecond"),
    **dict.fromkeys(("min", *_plural("minute")), "minute"),
    **dict.fromkeys(("h", "hr", "hrs", *_plural("hour")), "hour"),
    **dict.fromkeys(("d", *_plural("day")), "day"),
    **dict.fromkeys(("wk", *_plural("week")), "week"),
    **dict.fromkeys(("yr", *_plural("year")), "year"),
    **dict.fromkeys(("Gy", "gray"), "gray"),
    **dict.fromkeys(("fx", *_plural("fraction")), "fraction"),
    **dict.fromkeys(("MME", "OME"), "morphine_milligram_equivalent"),
    "%": "percent_wv",
    **dict.fromkeys(("m2", "m²", "m^2"), "meter**2"),
    **dict.fromkeys(("cm2", "cm²", "cm^2"), "centimeter**2"),
}
#: Denominators written with a number: "/24h" is per day, "/1.73m2" per standard body surface.
_NUMBERED_DENOMINATORS: Final[dict[str, str]] = {
    **{f"24{s}{h}": "day" for h in ("h", "hr", "hrs", "hour", "hours") for s in ("", " ")},
    **{f"1.73{s}{m}": "standard_bsa" for m in ("m2", "m²", "m^2") for s in ("", " ")},
}
_SIDE_BY_SIDE: Final = (
    "has units side by side, which would silently multiply them",
    "join units with '/' (e.g. 'mg/kg') or write one unit",
)

#: Preferred clinical symbol for each unit name, used when a quantity is written back as text.
_SYMBOL: Final[dict[str, str]] = {
    "gram": "g",
    "kilogram": "kg",
    "milligram": "mg",
    "microgram": "mcg",
    "nanogram": "ng",
    "meter": "m",
    "centimeter": "cm",
    "millimeter": "mm",
    "decimeter": "dm",
    "liter": "L",
    "deciliter": "dL",
    "milliliter": "mL",
    "microliter": "uL",
    "second": "s",
    "millisecond": "ms",
    "minute": "min",
    "hour": "h",
    "day": "day",
    "week": "week",
    "year": "year",
    "gray": "Gy",
    "fraction": "fraction",
    "morphine_milligram_equivalent": "MME",
    "percent_wv": "%",
    "standard_bsa": "1.73m2",
}


@attrs.define(frozen=True)
class UnitInfo:
    """A looked-up unit: the pint unit, its dimension name (or ``""``) and its clinical text."""

    unit: Any = attrs.field(eq=False)
    dimension: str
    text: str


#: Unit spellings people write that are not ours: the hint names the one to write.
_NOT_OURS: Final[dict[str, str]] = {
    "gm": "'gm' is not a unit here (gram or milligram?); write 'g' or 'mg'",
    "gms": "'gms' is not a unit here (grams or milligrams?); write 'g' or 'mg'",
    "lb": "pounds are not used here; write the weight in 'kg'",
    "lbs": "pounds are not used here; write the weight in 'kg'",
    "pound": "pounds are not used here; write the weight in 'kg'",
    "pounds": "pounds are not used here; write the weight in 'kg'",
    "hr": "write 'h' for hours",
    "hrs": "write 'h' for hours",
}

# Dosing-frequency abbreviations written where an interval belongs (``every = "q4h"``).  Those on
# the ISMP List of Error-Prone Abbreviations, Symbols, and Dose Designations (Institute for Safe
# Medication Practices, 2021) are refused with ISMP's reason; the others (q4h, bd, tds ...) are
# not on that list and are read as their interval where an interval is written (``every``);
# elsewhere (a dose, a bare ``Q()``) the hint gives the interval to write.
_FREQUENCY: Final[dict[str, str]] = {
    **{
        f"q{n}h": f"'q{n}h' means every {n} hours: write '{n} h'"
        for n in (1, 2, 3, 4, 6, 8, 12, 24)
    },
    "bd": "'bd' (twice daily) is a frequency, not an interval: write '12 h'",
    "bid": "'bid' (twice daily) is a frequency, not an interval: write '12 h'",
    "tds": "'tds' (three times daily) is a frequency, not an interval: write '8 h'",
    "tid": "'tid' (three times daily) is a frequency, not an interval: write '8 h'",
    "qds": "'qds' (four times daily) is a frequency, not an interval: write '6 h'",
    "qid": "'qid' (four times daily) is a frequency, not an interval: write '6 h'",
    "od": "'od' is on ISMP's list of error-prone abbreviations (mistaken as 'right eye'): "
    "write '24 h' (once daily)",
    "qd": "'qd' is on ISMP's list of error-prone abbreviations (mistaken as 'qid'): write "
    "'24 h' (daily)",
    "qod": "'qod' is on ISMP's list of error-prone abbreviations (mistaken as 'qd' or 'qid'): "
    "write '48 h' (every other day)",
    "qhs": "'qhs' is on ISMP's list of error-prone abbreviations (mistaken as 'qhr'): write the "
    "interval, e.g. '24 h', and the time in the note",
    "qn": "'qn' is on ISMP's list of error-prone abbreviations (mistaken as 'qh'): write "
    "'24 h' (nightly)",
    "q1d": "'q1d' is on ISMP's list of error-prone abbreviations (mistaken as 'qid'): write "
    "'24 h' (daily)",
}


#: The abbreviations NOT on ISMP's list, read as the interval they name where an interval is
#: written (``every``): hours between doses.  Those on the list stay refused (above).
_ACCEPTED_INTERVALS: Final[dict[str, int]] = {
    **{f"q{n}h": n for n in (1, 2, 3, 4, 6, 8, 12, 24)},
    **dict.fromkeys(("bd", "bid"), 12),
    **dict.fromkeys(("tds", "tid"), 8),
    **dict.fromkeys(("qds", "qid"), 6),
}


def _interval_hours(text: str) -> int | None:
    """Hours between doses for an accepted interval abbreviation (``q4h`` → 4), else ``None``."""
    return _ACCEPTED_INTERVALS.get(text.strip().lower().replace(".", "").replace(" ", ""))


def _frequency_hint(text: str) -> str:
    """The hint for a frequency abbreviation (``q4h``, ``bd``, ``q.d.``), or ``""``."""
    key = text.strip().lower().replace(".", "").replace(" ", "")
    return _FREQUENCY.get(key, "")


def _suggest(token: str) -> str:
    if token.lower() in _NOT_OURS:
        return _NOT_OURS[token.lower()]
    known = sorted(set(_SYMBOL.values()) | {"mcg", "ug", "mL", "h", "day", "Gy", "MME"})
    same = [k for k in known if k.lower() == token.lower()]
    if same:  # '10 MG': the case is wrong, not the unit
        return f"did you mean {same[0]!r}? (units are case-sensitive)"
    close = difflib.get_close_matches(token, known, n=2, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "write a unit such as 'mg', 'mcg/h', 'mL', 'h', 'Gy' or 'MME/day'"


def _dimension_name(dimensionality: Any) -> str:
    for name, (dim, _example) in _DIMENSIONS.items():
        if dim == dimensionality:
            return name
    return ""


@lru_cache(maxsize=512)
def lookup_unit(text: str) -> UnitInfo:
    """Look up a unit written in clinical spelling; cached, so a seen unit costs a dict lookup.

    Only the documented spellings are read (see ``docs/units.md``); internal registry names
    (``percent_wv``, ``standard_bsa``), multiplication, powers and units that cancel
    (``kg/kg``) are refused.  Raises :class:`UnitError` for an unknown or unsafe unit, quoting
    the text.

    Example
    -------
    >>> from mps_analgesia._units import lookup_unit
    >>> lookup_unit("mg/24h").text
    'mg/day'
    """
    if not isinstance(text, str):
        raise UnitError(repr(text), "is not a unit text", "write e.g. 'mg'")
    raw = _clean(text, text, "")
    if len(raw) > _limits.MAX_QUANTITY_TEXT:
        raise UnitError(raw[:40] + "...", "is too long to be a unit", "write e.g. 'mg'")
    raw = " ".join(raw.split())
    if not raw:
        raise UnitError(text, _NO_UNIT, "write e.g. '30 mg'")
    for token in _TOKEN.findall(raw):
        refused = _REFUSED.get(token) or _REFUSED_FOLDED.get(token.casefold())
        if refused:
            raise UnitError(text, f"uses the refused unit {token!r}", refused)
    parts = [p.strip() for p in raw.split("/")]
    names: list[str] = []
    for index, part in enumerate(parts):
        name = _SPELLINGS.get(part)
        if name is None and index:
            name = _NUMBERED_DENOMINATORS.get(part)
        if name is None:
            raise UnitError(text, *_why_unreadable(part, raw))
        names.append(name)
    reg = _load()
    work = "/".join(names)
    try:
        unit = reg.parse_units(work)
    except Exception as exc:  # every name above is in the registry: a library bug
        raise UnitError(text, "is not a unit that can be read", _suggest(raw)) from exc
    if not unit._units:
        raise UnitError(
            text,
            "has units that cancel, leaving a bare number",
            "write the quantity in the unit the field expects, e.g. '30 mg'",
        )
    info = UnitInfo(unit, _dimension_name(unit.dimensionality), "")
    return attrs.evolve(info, text=format_unit(unit))


def _why_unreadable(part: str, raw: str) -> tuple[str, str]:
    """The reason and suggestion for a unit part that is no documented spelling."""
    if not part:
        return "is not a unit that can be read", _suggest(raw)
    if " " in part:
        return _SIDE_BY_SIDE
    if any(c in part for c in "*·×⋅"):
        return (
            "multiplies units, which no dose field takes",
            "divide with '/' (e.g. 'mg/kg') or write one unit",
        )
    if "^" in part or any(c.isdigit() for c in part) or any(c in part for c in "²³¹⁰⁴⁵⁶⁷⁸⁹⁻"):
        return "has a power or a number in its unit", "write e.g. 'mg/m2' or 'mg/kg'"
    if _TOKEN.fullmatch(part) is None:
        return "is not a unit that can be read", _suggest(raw)
    return f"has an unknown unit {part!r}", _suggest(part)


def _clean(text: str, shown: str, field: str) -> str:
    """``text`` with no-break spaces read as spaces; control and format characters refused."""
    if text.isascii() and text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in _SPACE_LIKE:
            out.append(" ")
        elif ch == " " or ch.isprintable():
            out.append(ch)
        else:
            raise UnitError(
                shown,
                f"contains the control or invisible character {ch!a}",
                "write the quantity with plain spaces, e.g. '30 mg'",
                field,
            )
    return "".join(out)


def format_unit(unit: Any) -> str:
    """Write a pint unit in the library's clinical spelling (``mg/day``, ``mL/min/1.73m2``)."""
    num: list[str] = []
    den: list[str] = []
    for name, exp in unit._units.items():
        sym = _SYMBOL.get(name, name)
        power = abs(exp)
        if power == 1:
            part = sym
        elif power == 2 and sym in ("m", "cm"):
            part = f"{sym}2"  # the clinical spelling of area: mg/m2
        else:
            part = f"{sym}**{power:g}"
        (num if exp > 0 else den).append(part)
    out = "*".join(num) if num else "1"
    for d in den:
        out += "/" + d
    return out


def parse(text: str, *, field: str = "") -> tuple[float, UnitInfo]:
    """Parse ``"15 mg/day"`` into ``(15.0, UnitInfo)``; refuse garbage, NaN, infinities.

    A text with no unit raises :class:`UnitError` saying a unit is needed; a number too large
    or too small to mean a dose (outside :data:`~mps_analgesia._limits.MAX_MAGNITUDE` and
    :data:`~mps_analgesia._limits.MIN_MAGNITUDE`) is refused, never rounded to 0 or infinity.
    """
    if not isinstance(text, str):
        raise UnitError(_shown(text), "is not a quantity text", "write e.g. '30 mg'", field)
    if len(text) > _limits.MAX_QUANTITY_TEXT:
        raise UnitError(
            text[:40] + "...",
            f"is longer than {_limits.MAX_QUANTITY_TEXT} characters",
            "write e.g. '30 mg'",
            field,
        )
    clean = _clean(text, text, field).strip(" ")
    m = _NUMBER.match(clean)
    if m is None:
        hours = _interval_hours(clean)
        if hours is not None and field.split(".")[-1] in ("every", "interval"):
            # an interval written as a common abbreviation not on ISMP's list: 'q4h' is 4 h
            return float(hours), lookup_unit("h")
        frequency = _frequency_hint(clean)
        if frequency:
            raise UnitError(text, "is a dosing frequency, not a quantity", frequency, field)
        example = "'4 h'" if field.split(".")[-1] in ("every", "interval") else "'30 mg'"
        raise UnitError(text, "does not start with a number", f"write e.g. {example}", field)
    number = m.group()
    unit_text = clean[m.end() :].strip(" ")
    if "," in number:
        raise UnitError(text, "uses a decimal comma", f"write {number.replace(',', '.')!r}", field)
    value = float(number)
    reason = _out_of_range(value, number)
    if reason:
        raise UnitError(text, reason, "write e.g. '30 mg'", field)
    if not unit_text:
        raise UnitError(text, _NO_UNIT, "write e.g. '30 mg'", field)
    try:
        info = lookup_unit(unit_text)
    except UnitError as exc:
        raise UnitError(text, exc.reason, exc.suggestion, field) from None
    return value, info


def _out_of_range(value: float, number: str = "") -> str:
    """Why ``value`` cannot be a quantity's magnitude, or ``""``."""
    if math.isnan(value):
        return "is not a finite number"
    if abs(value) > _limits.MAX_MAGNITUDE:
        return f"is larger than {_limits.MAX_MAGNITUDE:g} (no dose, volume or time is)"
    if value == 0.0:
        mantissa = number.split("e")[0].split("E")[0]
        if any(c in "123456789" for c in mantissa):
            return "is too small to be represented (it would silently read as 0)"
        return ""
    if abs(value) < _limits.MIN_MAGNITUDE:
        return f"is smaller than {_limits.MIN_MAGNITUDE:g} (no dose, volume or time is)"
    return ""


def _shown(value: object) -> str:
    """A short, safe display of a value of any type for a message."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _new_quantity(value: float, units: Any) -> Any:
    """Make a Quantity without pint's generic argument checks (the inputs are already checked).

    About 20 times cheaper than ``Quantity(value, units)``; used on the parsing hot path.
    """
    q = object.__new__(_QUANTITY)
    q._magnitude = value
    q._units = units
    return q


def _number(value: object, shown: str, hint: str) -> float:
    """``value`` as a float magnitude, refusing non-numbers, non-finite and out-of-range values."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UnitError(shown, "is not a number", hint)
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        raise UnitError(shown, f"is larger than {_limits.MAX_MAGNITUDE:g}", hint) from None
    if math.isinf(number):
        raise UnitError(shown, "is not a finite number", hint)
    reason = _out_of_range(number, "1" if number == 0 and value != 0 else "")
    if reason:
        raise UnitError(shown, reason, hint)
    return number


def Q(value: object, unit: str | None = None) -> Any:
    """Make a Quantity of the library registry from text, a number and a unit, or a Quantity.

    ``Q("15 mg/day")`` parses text; ``Q(25, "mcg/h")`` takes a number and a unit;
    ``Q(other_quantity)`` converts a Quantity made with another pint registry (through its
    unit and dimension; pint's dimensionless ``percent`` is refused, since ``%`` here is w/v).

    Example
    -------
    >>> import mps_analgesia as mps
    >>> mps.Q("15 mg/24h")
    <Quantity(15.0, 'milligram / day')>
    >>> mps.Q(25, "mcg/h").to("mg/day").magnitude
    0.6
    """
    if unit is None:
        if isinstance(value, str):
            number, info = parse(value)
            return _new_quantity(number, info.unit._units)
        if is_quantity(value):
            return _rehome(value)
        raise UnitError(_shown(value), "a bare number has no unit", "use Q('30 mg') or Q(30, 'mg')")
    if not isinstance(unit, str):
        raise UnitError(_shown(unit), "is not a unit text", "use Q(30, 'mg')")
    number = _number(value, _shown(value), "use Q(30, 'mg')")
    return _new_quantity(number, lookup_unit(unit).unit._units)


def is_quantity(value: object) -> bool:
    """True for a pint Quantity of any registry."""
    pint = sys.modules.get("pint")  # no pint imported yet: no pint Quantity can exist
    return (pint is not None and isinstance(value, pint.Quantity)) or (
        hasattr(value, "magnitude") and hasattr(value, "units") and hasattr(value, "to")
    )


#: pint's base units of the dimensions a foreign Quantity may be converted through.
_FOREIGN_BASE: Final[dict[str, str]] = {"[mass]": "gram", "[length]": "meter", "[time]": "second"}
#: Unit names that mean the same in any pint registry built from pint's default definitions.
_SAME_EVERYWHERE: Final = frozenset(
    {
        "gram", "kilogram", "milligram", "microgram", "nanogram",
        "liter", "deciliter", "milliliter", "microliter",
        "meter", "centimeter", "millimeter", "decimeter",
        "second", "millisecond", "minute", "hour", "day", "week", "year", "gray",
    }
)  # fmt: skip


def _rehome(value: Any) -> Any:
    """Bring a Quantity of any registry into ours, through its unit names and dimensions.

    A unit name our registry shares with pint's defaults (``milligram``, ``hour``, ``gray``) is
    taken as is; any other unit whose dimension is made of mass, length and time (``pound``,
    ``gallon``) is converted through pint's base units.  Dimensionless units (pint's
    ``percent``, ``ppm``) and other dimensions are refused: ``%`` here means % w/v.
    """
    reg = _load()
    if getattr(value, "_REGISTRY", None) is reg:  # fast path: no repr unless it is refused
        try:
            ours_mag = _number(value.magnitude, "", "")
        except UnitError:
            pass
        else:
            if value.magnitude.__class__ is float:
                return value
            return _new_quantity(ours_mag, value._units)
    shown = _shown(value)
    mag = _number(getattr(value, "magnitude", None), shown, "use Q('30 mg') or Q(30, 'mg')")
    if getattr(value, "_REGISTRY", None) is reg:
        return value if value.magnitude.__class__ is float else _new_quantity(mag, value._units)
    try:
        items = list(value._units.items())
        foreign = value._REGISTRY
    except Exception:
        return Q(f"{mag!r} {value.units:~}")
    factor = 1.0
    ours: dict[str, float] = {}
    for name, exp in items:
        try:
            symbol = str(foreign.get_symbol(name))
        except Exception:
            symbol = name
        for spelled in (name, symbol):
            refused = _REFUSED.get(spelled) or _REFUSED_FOLDED.get(spelled.casefold())
            if refused:
                raise UnitError(shown, f"uses the refused unit {spelled!r}", refused)
        if name in _SAME_EVERYWHERE:
            ours[name] = ours.get(name, 0) + exp
            continue
        try:
            one = foreign.Quantity(1.0, name)
            dims = dict(one.dimensionality)
        except Exception:
            dims = {}
        if not dims or any(d not in _FOREIGN_BASE for d in dims):
            raise UnitError(
                shown,
                f"has the unit {name!r}, which is refused: it has no meaning here"
                + (
                    " (it is dimensionless where it was made; '%' here means % w/v)"
                    if not dims
                    else ""
                ),
                "write the quantity as text, e.g. '0.2 %', '2 mg/mL' or '30 mg'",
            )
        base = "*".join(f"{_FOREIGN_BASE[d]}**{p}" for d, p in dims.items())
        factor *= float(one.to(base).magnitude) ** exp
        for d, p in dims.items():
            key = _FOREIGN_BASE[d]
            ours[key] = ours.get(key, 0) + p * exp
    ours = {k: v for k, v in ours.items() if v}
    if not ours:
        raise UnitError(shown, "has units that cancel, leaving a bare number", "write e.g. '30 mg'")
    expr = "*".join(f"{k}**{v:g}" for k, v in ours.items())
    unit = reg.parse_units(expr)
    number = _number(mag * factor, shown, "use Q('30 mg') or Q(30, 'mg')")
    q = _new_quantity(number, unit._units)
    name = _dimension_name(unit.dimensionality)
    if name and factor != 1.0:  # converted through base units: write it in the usual unit
        q = q.to(_DIMENSION_UNITS[name][0])
    return q


def _an(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def as_quantity(value: object, dimension: str, *, field: str = "", example: str = "") -> Any:
    """Read a field value (text or Quantity) as a Quantity of ``dimension``.

    A bare number is refused with the expected unit; a wrong dimension raises
    :class:`DimensionError` naming the field and an example of what is expected.  ``example``
    (``"440 ms"``) gives the field's usual unit; without it the dimension's example is used.

    Example
    -------
    >>> from mps_analgesia._units import as_quantity
    >>> as_quantity("0.5 g", "mass", field="dose").to("mg").magnitude
    500.0
    >>> as_quantity("440", "time", field="qtc", example="440 ms")
    Traceback (most recent call last):
    ...
    mps_analgesia.errors.UnitError: qtc: '440' has no unit; write e.g. '440 ms'
    """
    if _REGISTRY is None:
        _load()
    example = example or _DIMENSIONS[dimension][1]
    unit_hint = example.split(" ", 1)[-1]
    if isinstance(value, str):
        try:
            number, info = parse(value, field=field)
        except UnitError as exc:
            if exc.reason != _NO_UNIT:
                raise
            given = value.strip()
            raise UnitError(value, _NO_UNIT, f"write e.g. '{given} {unit_hint}'", field) from None
        q = _new_quantity(number, info.unit._units)
    elif is_quantity(value):
        try:
            q = _rehome(value)
        except UnitError as exc:
            raise UnitError(exc.text, exc.reason, exc.suggestion, field) from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        raise UnitError(repr(value), _NO_UNIT, f"write e.g. '{value!r} {unit_hint}'", field)
    else:
        raise UnitError(repr(value), "is not a quantity", f"write e.g. {example!r}", field)
    if q.dimensionality != _DIMENSIONS[dimension][0]:
        got = _dimension_name(q.dimensionality) or str(q.dimensionality)
        raise DimensionError(
            format_quantity(q),
            f"is {_an(got.replace('_', ' '))}, not {_an(dimension.replace('_', ' '))}",
            f"write e.g. {example!r}",
            field,
        )
    return q


@lru_cache(maxsize=1024)
def _factor(units: Any, target: str) -> float:
    return float(_load().Quantity(1.0, units).to(target).magnitude)


def magnitude_in(q: Any, target: str) -> float:
    """The magnitude of ``q`` in the ``target`` unit, with the conversion factor cached."""
    return float(q.magnitude) * _factor(q._units, target)


def quantity_from_magnitude(value: float, unit: str) -> Any:
    """Make a Quantity from a canonical float and its unit name (no text parsing)."""
    return _new_quantity(float(value), lookup_unit(unit).unit._units)


def _fmt_number(x: float) -> str:
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    text = f"{x:.6g}"
    if "e" in text or float(text) != x:
        text = repr(x)
    return text


def format_quantity(q: Any) -> str:
    """Write a Quantity as clinical text that :func:`Q` reads back: ``'15 mg/day'``."""
    return f"{_fmt_number(float(q.magnitude))} {format_unit(q.units)}"
