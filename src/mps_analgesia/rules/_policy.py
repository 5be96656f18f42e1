"""The severity policy: (kind of limit, verification level, how far beyond) → severity.

One table in ``data/severity-policy.toml`` decides the severity of every finding whose rule
declares what its limit is (``finding(..., kind="label-maximum", beyond=ratio)``): a label
maximum or contraindication exceeded is an error, a caution a warning, a usual range exceeded a
warning unless far beyond it, a library plausibility guard an error.  An unverified [U] value
never gives an error (``report.Finding`` enforces that for every finding).

The table is read once and kept as a tuple of rows; :func:`severity` is a short scan of it, so a
rule may call it on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, Final, cast

import attrs

from .. import _catalog
from ..errors import DataFileError
from ..report import SEVERITIES, Severity

__all__ = [
    "FILE",
    "Guard",
    "Kind",
    "PolicyRow",
    "guard",
    "guards",
    "kinds",
    "rows",
    "severity",
]

#: The data file of the policy.
FILE: Final = "severity-policy.toml"


@attrs.define(frozen=True)
class Kind:
    """What a limit may be (``label-maximum``, ``usual-range`` …)."""

    id: str
    title: str
    description: str


@attrs.define(frozen=True)
class PolicyRow:
    """One row of the policy: the first row that matches a limit decides its severity."""

    kind: str
    levels: tuple[str, ...]
    beyond_more_than: float | None
    severity: Severity
    reasoning: str

    def matches(self, kind: str, level: str, beyond: float | None) -> bool:
        """True when the row applies to a limit of this kind and level, ``beyond`` times over."""
        if kind != self.kind or level not in self.levels:
            return False
        if self.beyond_more_than is None:
            return True
        return beyond is not None and beyond > self.beyond_more_than


@attrs.define(frozen=True)
class Guard:
    """A library plausibility guard: its multiple and the reasoning for it."""

    id: str
    multiple: float
    reasoning: str
    compared_with: str = ""


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DataFileError(f"{FILE}: {where}.{key} must be a non-empty text")
    return value


@cache
def _load() -> tuple[dict[str, Kind], tuple[PolicyRow, ...], dict[str, Guard]]:
    data = _catalog.data_file(FILE)
    kinds: dict[str, Kind] = {}
    for kid, entry in data.get("kinds", {}).items():
        kinds[kid] = Kind(
            kid, _text(entry, "title", f"kinds.{kid}"), _text(entry, "description", f"kinds.{kid}")
        )
    out: list[PolicyRow] = []
    for i, row in enumerate(data.get("policy", ())):
        where = f"policy[{i}]"
        kind = row.get("kind")
        if kind not in kinds:
            raise DataFileError(f"{FILE}: {where}.kind {kind!r} is not one of {sorted(kinds)}")
        levels = tuple(row.get("levels", _catalog.LEVELS))
        if not levels or any(lv not in _catalog.LEVELS for lv in levels):
            raise DataFileError(f"{FILE}: {where}.levels must be a list of V, S, U")
        sev = row.get("severity")
        if sev not in SEVERITIES:
            raise DataFileError(f"{FILE}: {where}.severity must be one of {SEVERITIES}")
        beyond = row.get("beyond_more_than")
        if beyond is not None and (
            not isinstance(beyond, int | float) or isinstance(beyond, bool) or beyond < 1
        ):
            raise DataFileError(f"{FILE}: {where}.beyond_more_than must be a number of 1 or more")
        out.append(
            PolicyRow(
                str(kind),
                levels,
                None if beyond is None else float(beyond),
                cast(Severity, sev),
                _text(row, "reasoning", where),
            )
        )
    for kid in kinds:
        for lv in _catalog.LEVELS:
            if not any(r.matches(kid, lv, None) for r in out):
                raise DataFileError(f"{FILE}: no row decides a {kid} limit at level {lv}")
    guards: dict[str, Guard] = {}
    for gid, entry in data.get("guards", {}).items():
        multiple = entry.get("multiple")
        if not isinstance(multiple, int | float) or isinstance(multiple, bool) or multiple <= 1:
            raise DataFileError(f"{FILE}: guards.{gid}.multiple must be a number above 1")
        guards[gid] = Guard(
            gid,
            float(multiple),
            _text(entry, "reasoning", f"guards.{gid}"),
            str(entry.get("compared_with", "")),
        )
    return kinds, tuple(out), guards


def kinds() -> Mapping[str, Kind]:
    """The kinds of limit, by id."""
    return _load()[0]


def rows() -> tuple[PolicyRow, ...]:
    """The policy rows, in the order they are read."""
    return _load()[1]


def guard(guard_id: str) -> Guard:
    """A library plausibility guard by id (``dose-implausible``)."""
    try:
        return _load()[2][guard_id]
    except KeyError:
        raise DataFileError(f"{FILE}: [guards.{guard_id}] is missing") from None


def guards() -> Mapping[str, Guard]:
    """Every library plausibility guard, by id, in the order of the data file."""
    return _load()[2]


def severity(kind: str, level: str, beyond: float | None = None) -> Severity:
    """The severity of a finding on a limit of ``kind`` and ``level``, ``beyond`` times over.

    ``beyond`` is the dose divided by the limit (``None`` when the limit is not a dose, such as
    a contraindication).

    Example
    -------
    >>> from mps_analgesia.rules._policy import severity
    >>> severity("label-maximum", "V"), severity("label-maximum", "U")
    ('error', 'warning')
    >>> severity("usual-range", "S", 1.5), severity("usual-range", "S", 4.0)
    ('warning', 'error')
    """
    table = rows()
    for row in table:
        if row.matches(kind, level, beyond):
            return row.severity
    raise DataFileError(f"{FILE}: no row decides a {kind!r} limit at level {level!r}")
