"""FHIR ``Quantity`` in and out through the closed UCUM table (``data/ucum.toml``)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import cache
from typing import Any, Final

import attrs

from .. import _catalog, _units
from .._memo import Memo
from ..errors import MpsAnalgesiaError, UnitError
from ._base import (
    _CANONICAL,
    _UCUM_FILE,
    UCUM,
    X_ORIGINAL_TEXT,
    _finite_number,
    _num,
    _shown,
)

# ---- UCUM ---------------------------------------------------------------------------------------


@attrs.define(frozen=True)
class _UcumRow:
    library: str
    ucum: str
    display: str
    emit: bool = True


@cache
def _ucum_rows() -> tuple[_UcumRow, ...]:
    raw = _catalog.data_file(_UCUM_FILE).get("units", ())
    return tuple(
        _UcumRow(str(r["library"]), str(r["ucum"]), str(r["display"]), bool(r.get("emit", True)))
        for r in raw
    )


@cache
def _ucum_by_library() -> Mapping[str, _UcumRow]:
    return {r.library: r for r in _ucum_rows() if r.emit}


@cache
def _ucum_by_code() -> Mapping[str, _UcumRow]:
    return {r.ucum: r for r in _ucum_rows()}


@cache
def _ucum_refused() -> Mapping[str, str]:
    return {str(k): str(v) for k, v in _catalog.data_file(_UCUM_FILE).get("refused", {}).items()}


_ANNOTATION = re.compile(r"\{[^{}]*\}")
_LETTERS = re.compile(r"\[[^\]]*\]|[A-Za-z%]+")


def _library_unit(code: str, *, field: str = "") -> str:
    """The library unit text for a UCUM code; :class:`UnitError` for a refused or unknown code."""
    if not isinstance(code, str) or not code.strip():
        raise UnitError(repr(code), "is not a UCUM code", "send e.g. code 'mg'", field)
    row = _ucum_by_code().get(code)
    if row is not None:
        return row.library
    refused = _ucum_refused()
    if code in refused:
        raise UnitError(code, "is refused as a UCUM code", refused[code], field)
    for token in _LETTERS.findall(code):
        if token in refused:
            raise UnitError(
                code, f"contains the refused UCUM unit {token!r}", refused[token], field
            )
    if "{" in code:
        bare = _ANNOTATION.sub("", code).strip()
        if bare in ("", "1"):
            raise UnitError(
                code,
                "is a UCUM annotation with no unit: a count of tablets or doses has no mass, so "
                "the dose cannot be checked",
                "send the dose as a mass, e.g. code 'mg'",
                field,
            )
        if not bare.endswith(("/", ".")) and "/." not in bare:
            row = _ucum_by_code().get(bare)
            if row is not None:
                return row.library
    known = ", ".join(sorted({r.ucum for r in _ucum_rows() if r.emit}))
    raise UnitError(
        code,
        "is not a UCUM code this library accepts",
        f"use one of: {known}",
        field,
    )


def to_fhir_quantity(q: Any) -> dict[str, Any]:
    """A FHIR ``Quantity`` (value, unit, UCUM system and code) for a library Quantity.

    The value is kept in the quantity's own unit when that unit has a UCUM row (so it round-trips
    exactly); otherwise it is converted to the canonical unit of its dimension.  ``%`` (w/v) goes
    out as mg/mL, never as UCUM's dimensionless ``%``.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.fhir import to_fhir_quantity
    >>> to_fhir_quantity(mps.Q("25 mcg/h"))
    {'value': 25, 'unit': 'µg/h', 'system': 'http://unitsofmeasure.org', 'code': 'ug/h'}
    >>> to_fhir_quantity(mps.Q("0.2 %"))["code"]
    'mg/mL'
    """
    q = _units.Q(q)
    text = _units.format_unit(q.units)
    row = _ucum_by_library().get(text)
    value = float(q.magnitude)
    if row is None:
        dimension = _units.lookup_unit(text).dimension
        target = _CANONICAL.get(dimension)
        if target is None:
            raise UnitError(
                _units.format_quantity(q),
                "has no UCUM code in data/ucum.toml",
                "convert it to mg, mL, h, mg/h, mL/h, mg/mL or Gy",
            )
        value = _units.magnitude_in(q, target)
        row = _ucum_by_library()[target]
        # the spelling as written ("0.2 %") travels with the converted value, so that it reads
        # back as written; a reader that does not know the extension uses the value
        return {
            "extension": [{"url": X_ORIGINAL_TEXT, "valueString": _units.format_quantity(q)}],
            "value": _num(value),
            "unit": row.display,
            "system": UCUM,
            "code": row.ucum,
        }
    return {"value": _num(value), "unit": row.display, "system": UCUM, "code": row.ucum}


def _as_written(obj: Mapping[str, Any], q: Any) -> Any:
    """The quantity as first written (``0.2 %``) when the original-text extension says the same
    amount as the value; else ``q``."""
    extensions = obj.get("extension")
    if not isinstance(extensions, list):  # absent, or not FHIR's list: read the value alone
        return q
    for ext in extensions:
        if not isinstance(ext, Mapping) or ext.get("url") != X_ORIGINAL_TEXT:
            continue
        text = ext.get("valueString")
        if not isinstance(text, str) or len(text) > 100:
            return q
        try:
            written = _units.Q(text)
            same = _units.magnitude_in(written, _units.format_unit(q.units))
        except (MpsAnalgesiaError, ArithmeticError, TypeError):  # TypeError: pint's dimensionality
            return q
        x = float(q.magnitude)
        if math.isfinite(same) and abs(same - x) <= 1e-9 * max(1.0, abs(x)):
            return written
        return q
    return q


#: Read Quantities by ``(value type, value, system, code, unit, dimension)`` for the plain shape
#: (no extension, no comparator), bounded in bytes; only a success is kept.  Quantities are never
#: changed in place, so one read can be handed out again.
_QUANTITIES: Final = Memo("fhir.quantity", max_bytes=256 * 1024)
#: What one memoized Quantity costs beyond its key.
_QUANTITY_BYTES: Final = 200
_KEYED: Final = frozenset({"value", "system", "code", "unit"})


def from_fhir_quantity(obj: object, dimension: str | None = None, *, field: str = "") -> Any:
    """Read a FHIR ``Quantity`` (memoized for the plain shape; see :func:`_from_fhir_quantity`).

    Example
    -------
    >>> from mps_analgesia.fhir import from_fhir_quantity
    >>> q = {"value": 5, "system": "http://unitsofmeasure.org", "code": "mg"}
    >>> from_fhir_quantity(q, "mass") is from_fhir_quantity(dict(q), "mass")
    True
    """
    if obj.__class__ is dict and obj.keys() <= _KEYED:
        value = obj.get("value")
        system = obj.get("system")
        code = obj.get("code")
        unit = obj.get("unit")
        vc = value.__class__
        if (
            (vc is float or vc is int)
            and value  # 0 and -0.0 are kept apart by reading them each time
            and (system is None or system.__class__ is str)
            and (code is None or code.__class__ is str)
            and (unit is None or unit.__class__ is str)
        ):
            key = (vc.__name__, value, system, code, unit, dimension)
            hit = _QUANTITIES.get(key)
            if hit is not None:
                return hit
            return _QUANTITIES.put(
                key, _from_fhir_quantity(obj, dimension, field=field), _QUANTITY_BYTES
            )
    return _from_fhir_quantity(obj, dimension, field=field)


def _from_fhir_quantity(obj: object, dimension: str | None = None, *, field: str = "") -> Any:
    """Read a FHIR ``Quantity`` into a library Quantity, refusing unsafe or unknown units.

    With ``system`` UCUM (or absent) the ``code`` is looked up in the UCUM table; without a code,
    the display ``unit`` is read as clinical text (where ``mcg`` *is* microgram).  ``dimension``
    (a name of :data:`mps_analgesia._units.DIMENSIONS`) checks what the value is.

    Example
    -------
    >>> from mps_analgesia.fhir import from_fhir_quantity
    >>> from_fhir_quantity({"value": 25, "system": "http://unitsofmeasure.org", "code": "ug/h"})
    <Quantity(25.0, 'microgram / hour')>
    >>> from_fhir_quantity({"value": 25, "system": "http://unitsofmeasure.org", "code": "mcg/h"})
    Traceback (most recent call last):
    ...
    mps_analgesia.errors.UnitError: 'mcg/h' contains the refused UCUM unit 'mcg'; 'mcg' is not a \
UCUM microgram (UCUM has no 'mc' prefix; a UCUM parser reads 'mcg' as milli-centi-gram, 10 \
micrograms); send micrograms as code 'ug'
    """
    if not isinstance(obj, Mapping):
        raise UnitError(_shown(obj), "is not a FHIR Quantity", "send {value, system, code}", field)
    value = _finite_number(obj.get("value"), field, "send Quantity.value as a number")
    for key in ("comparator",):
        if obj.get(key) is not None:
            raise UnitError(
                f"{obj.get(key)}{_num(value)}",
                "has a comparator; an exact dose is needed",
                "send the value without a comparator",
                field,
            )
    system = obj.get("system")
    code = obj.get("code")
    if code is not None:
        if system not in (None, UCUM):
            raise UnitError(
                str(code),
                f"is a code of {system!r}, not of UCUM",
                f"send the unit with system {UCUM!r}",
                field,
            )
        library = _library_unit(code, field=field)
    else:
        unit = obj.get("unit")
        if not isinstance(unit, str) or not unit.strip():
            raise UnitError(repr(value), "has no unit", "send a UCUM code, e.g. 'mg'", field)
        library = _units.lookup_unit(unit).text
    q = _as_written(obj, _units.Q(value, library))
    if dimension is not None:
        q = _units.as_quantity(q, dimension, field=field)
    return q
