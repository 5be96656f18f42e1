"""Packaged clinical data, loaded once into frozen records.

Every clinical number lives in a data file under ``mps_analgesia/data/`` with a source id (from
``sources.toml``, the one bibliography) and, where the reference notes give one, a verification
level: ``V`` verified, ``S`` secondary, ``U`` unverified.  This module reads those files (on first
use, so ``import mps_analgesia`` stays cheap), checks their shape, and hands out records whose
values are canonical floats.  A broken data file raises :class:`DataFileError`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any, Final, Literal

import attrs

from . import _units
from .errors import DataFileError, UnitError, UnknownDrugError, UnknownNameError, UnknownRouteError

__all__ = [
    "FORMULATIONS",
    "LEVELS",
    "DrugRecord",
    "Limit",
    "SourceRecord",
    "SourcedValue",
    "data_file",
    "drug",
    "drug_ids",
    "edition",
    "level_of",
    "route_formulations",
    "routes",
    "source",
    "sourced",
    "sources",
]

Level = Literal["V", "S", "U"]
#: Verification levels, strongest first.
LEVELS: Final[tuple[str, ...]] = ("V", "S", "U")
#: Formulations a step may name.
FORMULATIONS: Final[tuple[str, ...]] = ("immediate-release", "modified-release", "patch")


@cache
def data_file(name: str) -> Mapping[str, Any]:
    """Read ``data/<name>`` (TOML) once; raise :class:`DataFileError` if it is missing or broken."""
    import tomllib

    path = resources.files("mps_analgesia") / "data" / name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataFileError(f"data file {name!r} is missing from the package: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataFileError(f"data file {name!r} is not valid TOML: {exc}") from exc
    meta = data.get("meta")
    if not isinstance(meta, dict) or "edition" not in meta:
        raise DataFileError(f"data file {name!r} has no [meta] table with an 'edition'")
    return data


def edition(name: str) -> str:
    """The edition of a data file, logged with every result that used it."""
    return str(data_file(name)["meta"]["edition"])


# ---- sources ----------------------------------------------------------------------------------


@attrs.define(frozen=True)
class SourceRecord:
    """One bibliography entry: id, full citation, DOI when known, and kind."""

    id: str
    citation: str
    kind: str
    doi: str = ""

    @property
    def url(self) -> str:
        """The DOI link, or ``""`` when no DOI is recorded."""
        return f"https://doi.org/{self.doi}" if self.doi else ""


@cache
def sources() -> Mapping[str, SourceRecord]:
    """Every bibliography entry by id."""
    raw = data_file("sources.toml").get("sources", {})
    out: dict[str, SourceRecord] = {}
    for sid, entry in raw.items():
        if not isinstance(entry, dict) or "citation" not in entry:
            raise DataFileError(f"sources.toml: sources.{sid} has no 'citation'")
        out[sid] = SourceRecord(
            sid, str(entry["citation"]), str(entry.get("kind", "")), str(entry.get("doi", ""))
        )
    return out


def source(sid: str) -> SourceRecord:
    """The bibliography entry for a source id; :class:`UnknownNameError` if there is none."""
    try:
        return sources()[sid]
    except KeyError:
        close = difflib.get_close_matches(sid, list(sources()), n=3)
        raise UnknownNameError("source id", sid, close) from None


# ---- sourced values -----------------------------------------------------------------------------


@attrs.define(frozen=True)
class SourcedValue:
    """A clinical number read from a data file: canonical value, its unit, source and level."""

    value: float
    unit: str
    source: str
    level: str
    note: str = ""
    where: str = ""

    @property
    def quantity(self) -> Any:
        """The value as a Quantity of the library registry."""
        return _units.quantity_from_magnitude(self.value, self.unit)

    @property
    def text(self) -> str:
        """The value as clinical text, e.g. ``'4000 mg/day'``."""
        return _units.format_quantity(self.quantity)


def level_of(entry: Mapping[str, Any], where: str) -> str:
    """Read and check the ``level`` key of a data entry (``V``, ``S`` or ``U``)."""
    level = entry.get("level")
    if level not in LEVELS:
        raise DataFileError(f"{where}: 'level' must be one of V, S, U, not {level!r}")
    return str(level)


def _source_of(entry: Mapping[str, Any], where: str) -> str:
    sid = entry.get("source")
    if not isinstance(sid, str) or sid not in sources():
        raise DataFileError(f"{where}: 'source' {sid!r} is not an id in sources.toml")
    return sid


def sourced(
    entry: Mapping[str, Any], *, dimension: str, unit: str, where: str, key: str = "value"
) -> SourcedValue:
    """Read ``entry[key]`` (a quantity text) as a :class:`SourcedValue` in ``unit``.

    ``entry`` must also carry ``source`` and ``level``; ``where`` names the file and key path for
    the error message.
    """
    raw = entry.get(key)
    try:
        q = _units.as_quantity(raw, dimension, field=f"{where}.{key}")
    except UnitError as exc:
        raise DataFileError(f"{where}.{key}: {exc}") from exc
    value = _units.magnitude_in(q, unit)
    if value < 0:
        raise DataFileError(f"{where}.{key}: a clinical limit cannot be negative ({raw!r})")
    return SourcedValue(
        value,
        unit,
        _source_of(entry, where),
        level_of(entry, where),
        str(entry.get("note", "")),
        where,
    )


# ---- drugs ------------------------------------------------------------------------------------


@attrs.define(frozen=True)
class Limit:
    """A published maximum dose: ``max_single`` (mg per dose) or ``max_daily`` (mg per day)."""

    kind: str
    value: SourcedValue
    formulation: str = ""
    route: str = ""

    def applies(self, route: str, formulation: str) -> bool:
        """True when the limit applies to a step given by this route and formulation."""
        return (not self.route or self.route == route) and (
            not self.formulation or self.formulation == formulation
        )


@attrs.define(frozen=True)
class DrugRecord:
    """A drug of the catalog: id, names, class, routes and published limits."""

    id: str
    names: tuple[str, ...]
    drug_class: str
    routes: tuple[str, ...]
    strong_opioid: bool = False
    long_acting: bool = False
    partial_agonist: bool = False
    limits: tuple[Limit, ...] = ()

    def limits_for(self, kind: str, route: str, formulation: str) -> tuple[Limit, ...]:
        """The limits of one kind that apply to a route and formulation."""
        return tuple(
            lim for lim in self.limits if lim.kind == kind and lim.applies(route, formulation)
        )


@cache
def routes() -> Mapping[str, tuple[str, ...]]:
    """Each known route with the formulations it allows."""
    raw = data_file("drugs.toml").get("routes", {})
    return {r: tuple(v.get("formulations", ())) for r, v in raw.items()}


def route_formulations(route: str) -> tuple[str, ...]:
    """The formulations a route allows; :class:`UnknownRouteError` for an unknown route."""
    try:
        return routes()[route]
    except KeyError:
        close = difflib.get_close_matches(route, list(routes()), n=3, cutoff=0.5)
        raise UnknownRouteError("route", route, close) from None


@cache
def _drugs() -> tuple[Mapping[str, DrugRecord], Mapping[str, str]]:
    raw = data_file("drugs.toml").get("drugs", {})
    by_id: dict[str, DrugRecord] = {}
    by_name: dict[str, str] = {}
    for did, entry in raw.items():
        where = f"drugs.toml: drugs.{did}"
        limits = []
        for i, lim in enumerate(entry.get("limits", ())):
            kind = lim.get("kind")
            lw = f"{where}.limits[{i}]"
            if kind == "max_single":
                val = sourced(lim, dimension="mass", unit="mg", where=lw)
            elif kind == "max_daily":
                val = sourced(lim, dimension="mass_rate", unit="mg/day", where=lw)
            else:
                raise DataFileError(f"{lw}: kind must be max_single or max_daily, not {kind!r}")
            limits.append(
                Limit(kind, val, str(lim.get("formulation", "")), str(lim.get("route", "")))
            )
        for r in entry.get("routes", ()):
            if r not in routes():
                raise DataFileError(f"{where}: route {r!r} is not in [routes]")
        record = DrugRecord(
            did,
            tuple(entry.get("names", (did,))),
            str(entry.get("class", "")),
            tuple(entry.get("routes", ())),
            bool(entry.get("strong_opioid", False)),
            bool(entry.get("long_acting", False)),
            bool(entry.get("partial_agonist", False)),
            tuple(limits),
        )
        by_id[did] = record
        for name in (did, *record.names):
            key = name.casefold()
            if by_name.get(key, did) != did:
                raise DataFileError(f"{where}: name {name!r} is also used by {by_name[key]!r}")
            by_name[key] = did
    return by_id, by_name


def drug_ids() -> tuple[str, ...]:
    """The ids of every drug in the catalog."""
    return tuple(_drugs()[0])


def drug(name: str, *, field: str = "drug") -> DrugRecord:
    """Look up a drug by id or synonym (``paracetamol`` → ``acetaminophen``), case-insensitively.

    An unknown name raises :class:`UnknownDrugError` with "did you mean" suggestions.
    """
    by_id, by_name = _drugs()
    if type(name) is str and name in by_id:  # fast path: a drug id, as steps store it
        return by_id[name]
    did = by_name.get(" ".join(str(name).split()).casefold())
    if did is None:
        close = difflib.get_close_matches(str(name).casefold(), list(by_name), n=3, cutoff=0.6)
        ids = list(dict.fromkeys(by_name[c] for c in close))
        raise UnknownDrugError("drug", str(name), ids, field)
    return by_id[did]
