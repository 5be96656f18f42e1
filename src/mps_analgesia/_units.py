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
import re
import sys
import threading
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

import attrs

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

# ---- clinical spellings ------------------------------------------------------------------------
# Whole-denominator rewrites, applied to the text after white space is folded.
_PER_DAY = re.compile(r"/\s*(?:24\s*(?:h|hr|hrs|hour|hours)|d|days?)\b")
_BSA = re.compile(r"/\s*1\.73\s*m(?:2|²|\*\*2|\^2)")
_SQUARE = re.compile(r"\b(m|cm)(?:2|²|\^2)\b")
_HOURS = re.compile(r"\b(?:hrs|hours)\b")
_TOKEN = re.compile(r"[A-Za-zµμ%]+")
# ASCII digits only: float() also reads other scripts' digits ("١", "５"), which we refuse.
_NUMBER = re.compile(
    r"^\s*([+-]?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)(?:[eE][+-]?[0-9]+)?)\s*(.*?)\s*$", re.DOTALL
)
# What may reach pint after the rewrites: unit names joined by '*' or '/', each with an optional
# one-digit power.  pint's own tokenizer would silently drop or misread other characters
# ("mg#", "h!", "6%@", "g^22").
_UNIT_EXPR = re.compile(r"(?:1/)?[A-Za-z_]+(?:\*\*-?[0-9])?(?:[*/][A-Za-z_]+(?:\*\*-?[0-9])?)*")
_NO_UNIT: Final = "has no unit"

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


def _suggest(token: str) -> str:
    known = sorted(set(_SYMBOL.values()) | {"mcg", "ug", "mL", "h", "day", "Gy", "MME"})
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

    Raises :class:`UnitError` for an unknown or unsafe unit, quoting the text.

    Example
    -------
    >>> from mps_analgesia._units import lookup_unit
    >>> lookup_unit("mg/24h").text
    'mg/day'
    """
    raw = " ".join(text.split())
    if not raw:
        raise UnitError(text, _NO_UNIT, "write e.g. '30 mg'")
    for token in _TOKEN.findall(raw):
        refused = _REFUSED.get(token) or _REFUSED_FOLDED.get(token.casefold())
        if refused:
            raise UnitError(text, f"uses the refused unit {token!r}", refused)
    work = raw.replace("μ", "u").replace("µ", "u")
    work = _BSA.sub("/standard_bsa", work)
    work = _PER_DAY.sub("/day", work)
    work = _SQUARE.sub(r"\1**2", work)
    work = _HOURS.sub("h", work)
    work = work.replace("%", "percent_wv").replace("·", "*").replace("×", "*").replace("^", "**")
    work = work.replace(" /", "/").replace("/ ", "/").replace(" *", "*").replace("* ", "*")
    if " " in work:
        raise UnitError(
            text,
            "has units side by side, which would silently multiply them",
            "join units with '/' (e.g. 'mg/kg') or write one unit",
        )
    if not _UNIT_EXPR.fullmatch(work):
        raise UnitError(text, "is not a unit that can be read", _suggest(raw))
    reg = _load()
    import pint

    try:
        unit = reg.parse_units(work)
    except (pint.errors.PintError, AttributeError, TypeError, ValueError, SyntaxError) as exc:
        bad = [t for t in _TOKEN.findall(work) if not _known(reg, t)]
        token = bad[0] if bad else raw
        raise UnitError(text, f"has an unknown unit {token!r}", _suggest(token)) from exc
    except Exception as exc:  # pint's tokenizer can raise almost anything on garbage
        raise UnitError(text, "is not a unit that can be read", _suggest(raw)) from exc
    info = UnitInfo(unit, _dimension_name(unit.dimensionality), "")
    return attrs.evolve(info, text=format_unit(unit))


def _known(reg: Any, token: str) -> bool:
    """``token in reg``, which pint answers by parsing: 'NAN' or 'inf' raise there."""
    try:
        return bool(token in reg)
    except Exception:
        return False


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

    A text with no unit raises :class:`UnitError` saying a unit is needed.
    """
    if not isinstance(text, str):
        raise UnitError(repr(text), "is not a quantity text", "write e.g. '30 mg'", field)
    m = _NUMBER.match(text)
    if m is None:
        raise UnitError(text, "does not start with a number", "write e.g. '30 mg'", field)
    number, unit_text = m.groups()
    if "," in number:
        raise UnitError(text, "uses a decimal comma", f"write {number.replace(',', '.')!r}", field)
    value = float(number)
    if not math.isfinite(value):
        raise UnitError(text, "is not a finite number", "write e.g. '30 mg'", field)
    if not unit_text:
        raise UnitError(text, _NO_UNIT, "write e.g. '30 mg'", field)
    try:
        info = lookup_unit(unit_text)
    except UnitError as exc:
        raise UnitError(text, exc.reason, exc.suggestion, field) from None
    return value, info


def _new_quantity(value: float, units: Any) -> Any:
    """Make a Quantity without pint's generic argument checks (the inputs are already checked).

    About 20 times cheaper than ``Quantity(value, units)``; used on the parsing hot path.
    """
    q = object.__new__(_QUANTITY)
    q._magnitude = value
    q._units = units
    return q


def Q(value: object, unit: str | None = None) -> Any:
    """Make a Quantity of the library registry from text, a number and a unit, or a Quantity.

    ``Q("15 mg/day")`` parses text; ``Q(25, "mcg/h")`` takes a number and a unit;
    ``Q(other_quantity)`` converts a Quantity made with another pint registry.

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
        raise UnitError(repr(value), "a bare number has no unit", "use Q('30 mg') or Q(30, 'mg')")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnitError(repr(value), "is not a number", "use Q(30, 'mg')")
    number = float(value)
    if not math.isfinite(number):
        raise UnitError(repr(value), "is not a finite number", "use Q(30, 'mg')")
    return _new_quantity(number, lookup_unit(unit).unit._units)


def is_quantity(value: object) -> bool:
    """True for a pint Quantity of any registry."""
    pint = sys.modules.get("pint")  # no pint imported yet: no pint Quantity can exist
    return (pint is not None and isinstance(value, pint.Quantity)) or (
        hasattr(value, "magnitude") and hasattr(value, "units") and hasattr(value, "to")
    )


def _rehome(value: Any) -> Any:
    """Bring a Quantity of any registry into ours (by its unit text), checking its magnitude."""
    reg = _load()
    mag = value.magnitude
    if isinstance(mag, bool) or not isinstance(mag, int | float):
        raise UnitError(repr(value), "has a magnitude that is not a single number")
    if not math.isfinite(mag):
        raise UnitError(repr(value), "is not a finite number")
    if getattr(value, "_REGISTRY", None) is reg:
        return value
    unit_text = str(value.units)
    try:
        unit = reg.parse_units(unit_text)
    except Exception:
        info = lookup_unit(f"{value.units:~}")
        unit = info.unit
    if getattr(value, "dimensionless", unit.dimensionless) != unit.dimensionless:
        # pint's percent is dimensionless (0.01); ours is % w/v (10 mg/mL): never swap them.
        raise UnitError(
            str(value),
            "is dimensionless where it was made, but here it would be a concentration "
            "('%' means % w/v)",
            "write the concentration as text, e.g. '0.2 %' or '2 mg/mL'",
        )
    return _new_quantity(float(mag), unit._units)


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
