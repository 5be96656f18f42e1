"""Radiobiology of palliative radiotherapy: BED and EQD2 with the linear-quadratic model.

For a total dose *D* given in *n* fractions of *d = D/n*, and a tissue's α/β:

- biologically effective dose, ``BED = D·(1 + d/(α/β))`` (Hall & Giaccia 2012);
- equivalent dose in 2 Gy fractions, ``EQD2 = BED / (1 + 2/(α/β))`` (Joiner & van der Kogel 2009).

The formulas are code; the α/β values the rules report (10 Gy for tumour and early-responding
tissue, 3 Gy for late-responding normal tissue), the ASTRO 2017 schedules and the dose-per-fraction
limit are data (``data/radiotherapy.toml``), read with :func:`alpha_beta_values` and
:func:`astro_schedules`.  Doses enter and leave as Quantities in Gy, never as bare numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from typing import Any, Final

import attrs

from . import _catalog, _units
from .errors import DataFileError, StepError

__all__ = [
    "DATA_FILE",
    "AlphaBeta",
    "CourseEquivalent",
    "Schedule",
    "alpha_beta",
    "alpha_beta_values",
    "astro_schedules",
    "bed",
    "course_equivalents",
    "eqd2",
    "max_dose_per_fraction",
]

#: The data file this module reads.
DATA_FILE: Final = "radiotherapy.toml"
_REFERENCE_FRACTION_GY: Final = 2.0  # the "2" of EQD2: part of the definition, not a clinical value


def _fractions(value: object) -> int:
    """Check a number of fractions: a whole number, at least 1."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StepError("fractions", f"must be a whole number of fractions, not {value!r}")
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise StepError("fractions", f"must be a whole number of fractions, not {value!r}")
    if int(value) < 1:
        raise StepError("fractions", f"must be at least 1, not {value!r}")
    return int(value)


def _gray(value: object, field: str) -> float:
    """Read a dose (text or Quantity) in Gy; it must be greater than zero."""
    q = _units.as_quantity(value, "absorbed_dose", field=field)
    gy = _units.magnitude_in(q, "Gy")
    if not gy > 0:
        raise StepError(field, f"must be greater than zero, not {_units.format_quantity(q)}")
    return gy


def _bed_gy(total_gy: float, fractions: int, alpha_beta_gy: float) -> float:
    """BED in Gy from canonical floats (the rules' hot path)."""
    return total_gy * (1.0 + (total_gy / fractions) / alpha_beta_gy)


def _eqd2_gy(total_gy: float, fractions: int, alpha_beta_gy: float) -> float:
    """EQD2 in Gy from canonical floats."""
    return _bed_gy(total_gy, fractions, alpha_beta_gy) / (
        1.0 + _REFERENCE_FRACTION_GY / alpha_beta_gy
    )


def bed(total_dose: Any, fractions: int, alpha_beta: Any) -> Any:
    """The biologically effective dose, ``BED = D·(1 + d/(α/β))``, as a Quantity in Gy.

    Parameters
    ----------
    total_dose:
        The total dose *D*, as text (``"20 Gy"``) or a Quantity.
    fractions:
        The number of fractions *n* (a whole number, at least 1); ``d = D/n``.
    alpha_beta:
        The tissue's α/β, as text (``"10 Gy"``) or a Quantity.

    Raises
    ------
    UnitError, DimensionError
        A bare number, or a value that is not an absorbed dose.
    StepError
        A dose or α/β that is not above zero, or a number of fractions that is not a whole
        number of at least 1.

    Example
    -------
    >>> from mps_analgesia.radiotherapy import bed
    >>> round(bed("8 Gy", 1, "10 Gy").magnitude, 2)
    14.4
    >>> bed("20 Gy", 5, "3 Gy").units
    <Unit('gray')>
    """
    total_gy = _gray(total_dose, "total_dose")
    n = _fractions(fractions)
    ab_gy = _gray(alpha_beta, "alpha_beta")
    return _units.quantity_from_magnitude(_bed_gy(total_gy, n, ab_gy), "Gy")


def eqd2(total_dose: Any, fractions: int, alpha_beta: Any) -> Any:
    """The equivalent dose in 2 Gy fractions, ``EQD2 = BED / (1 + 2/(α/β))``, in Gy.

    Takes the same arguments as :func:`bed`.  A course given in 2 Gy fractions has an EQD2 equal
    to its total dose, whatever the α/β.

    Example
    -------
    >>> from mps_analgesia.radiotherapy import eqd2
    >>> round(eqd2("30 Gy", 10, "3 Gy").magnitude, 2)
    36.0
    >>> round(eqd2("50 Gy", 25, "10 Gy").magnitude, 9)
    50.0
    """
    total_gy = _gray(total_dose, "total_dose")
    n = _fractions(fractions)
    ab_gy = _gray(alpha_beta, "alpha_beta")
    return _units.quantity_from_magnitude(_eqd2_gy(total_gy, n, ab_gy), "Gy")


@attrs.define(frozen=True)
class CourseEquivalent:
    """BED and EQD2 of one course at one α/β of the data file (canonical floats in Gy).

    The renderers show these finished numbers; they never compute them again.
    """

    total_dose_gy: float
    fractions: int
    alpha_beta_gy: float
    bed_gy: float
    eqd2_gy: float
    source: str

    @property
    def dose_per_fraction_gy(self) -> float:
        """The dose per fraction *d = D/n* in Gy."""
        return self.total_dose_gy / self.fractions

    @property
    def reference_fraction_gy(self) -> float:
        """The 2 Gy of EQD2 (part of the definition)."""
        return _REFERENCE_FRACTION_GY

    @property
    def bed(self) -> Any:
        """BED as a Quantity in Gy."""
        return _units.quantity_from_magnitude(self.bed_gy, "Gy")

    @property
    def eqd2(self) -> Any:
        """EQD2 as a Quantity in Gy."""
        return _units.quantity_from_magnitude(self.eqd2_gy, "Gy")


def course_equivalents(total_dose: Any, fractions: int) -> tuple[CourseEquivalent, ...]:
    """BED and EQD2 of a course at every α/β of the data file (early first, then late).

    Example
    -------
    >>> from mps_analgesia.radiotherapy import course_equivalents
    >>> [(c.alpha_beta_gy, round(c.bed_gy, 2), round(c.eqd2_gy, 2))
    ...  for c in course_equivalents("8 Gy", 1)]
    [(10.0, 14.4, 12.0), (3.0, 29.33, 17.6)]
    """
    total_gy = _gray(total_dose, "total_dose")
    n = _fractions(fractions)
    return tuple(
        CourseEquivalent(
            total_gy,
            n,
            ab.gy,
            _bed_gy(total_gy, n, ab.gy),
            _eqd2_gy(total_gy, n, ab.gy),
            ab.value.source,
        )
        for ab in alpha_beta_values()
    )


# ---- data ----------------------------------------------------------------------------------------


@attrs.define(frozen=True)
class AlphaBeta:
    """An α/β value from the data file: its key (``early``/``late``), label and sourced value."""

    key: str
    label: str
    value: _catalog.SourcedValue

    @property
    def gy(self) -> float:
        """The α/β in Gy."""
        return self.value.value


@attrs.define(frozen=True)
class Schedule:
    """A reference fractionation schedule: total dose in Gy over a number of fractions."""

    total_gy: float
    fractions: int
    source: str
    level: str

    @property
    def total_dose(self) -> Any:
        """The total dose as a Quantity in Gy."""
        return _units.quantity_from_magnitude(self.total_gy, "Gy")

    @property
    def text(self) -> str:
        """``'20 Gy/5'``."""
        total = int(self.total_gy) if self.total_gy == int(self.total_gy) else self.total_gy
        return f"{total} Gy/{self.fractions}"


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise DataFileError(f"{DATA_FILE}: [{key}] is missing or not a table")
    return value


@cache
def alpha_beta_values() -> tuple[AlphaBeta, ...]:
    """The α/β values every radiotherapy step is reported at (early first, then late).

    Example
    -------
    >>> from mps_analgesia.radiotherapy import alpha_beta_values
    >>> [(a.key, a.gy) for a in alpha_beta_values()]
    [('early', 10.0), ('late', 3.0)]
    """
    data = _catalog.data_file(DATA_FILE)
    out = []
    for key, entry in _table(data, "alpha_beta").items():
        where = f"{DATA_FILE}: alpha_beta.{key}"
        value = _catalog.sourced(entry, dimension="absorbed_dose", unit="Gy", where=where)
        if not value.value > 0:
            raise DataFileError(f"{where}: α/β must be greater than zero")
        out.append(AlphaBeta(key, str(entry.get("label", key)), value))
    return tuple(out)


def alpha_beta(key: str) -> AlphaBeta:
    """The α/β value stored under ``key`` (``early`` or ``late``).

    Example
    -------
    >>> from mps_analgesia.radiotherapy import alpha_beta
    >>> alpha_beta("late").gy, alpha_beta("late").value.source
    (3.0, 'hall-giaccia-2012')
    """
    for ab in alpha_beta_values():
        if ab.key == key:
            return ab
    raise DataFileError(f"{DATA_FILE}: no [alpha_beta.{key}] table")


@cache
def astro_schedules() -> tuple[Schedule, ...]:
    """The ASTRO 2017 palliative schedules (8 Gy/1, 20 Gy/5, 24 Gy/6, 30 Gy/10).

    Example
    -------
    >>> from mps_analgesia.radiotherapy import astro_schedules
    >>> [s.text for s in astro_schedules()]
    ['8 Gy/1', '20 Gy/5', '24 Gy/6', '30 Gy/10']
    """
    data = _catalog.data_file(DATA_FILE)
    raw = data.get("schedules")
    if not isinstance(raw, list) or not raw:
        raise DataFileError(f"{DATA_FILE}: [[schedules]] is missing")
    out = []
    for i, entry in enumerate(raw):
        where = f"{DATA_FILE}: schedules[{i}]"
        total = _catalog.sourced(
            entry, dimension="absorbed_dose", unit="Gy", where=where, key="total_dose"
        )
        try:
            n = _fractions(entry.get("fractions"))
        except StepError as exc:
            raise DataFileError(f"{where}.fractions: {exc.reason}") from None
        out.append(Schedule(total.value, n, total.source, total.level))
    return tuple(out)


@cache
def max_dose_per_fraction() -> _catalog.SourcedValue:
    """The dose per fraction above which ``radiotherapy.dose-per-fraction`` warns (Gy).

    Example
    -------
    >>> from mps_analgesia.radiotherapy import max_dose_per_fraction
    >>> max_dose_per_fraction().text
    '8 Gy'
    """
    entry = _table(_catalog.data_file(DATA_FILE), "dose_per_fraction")
    return _catalog.sourced(
        entry,
        dimension="absorbed_dose",
        unit="Gy",
        where=f"{DATA_FILE}: dose_per_fraction",
        key="max",
    )
