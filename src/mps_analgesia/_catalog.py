"""Packaged clinical data, loaded once into frozen records.

Every clinical number lives in a data file under ``mps_analgesia/data/`` with a source id (from
``sources.toml``, the one bibliography) and, where the reference notes give one, a verification
level: ``V`` verified, ``S`` secondary, ``U`` unverified.  This module reads those files (on first
use, so ``import mps_analgesia`` stays cheap), checks their shape, and hands out records whose
values are canonical floats.  A broken data file raises :class:`DataFileError`.
"""

from __future__ import annotations

import bisect
import difflib
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from fractions import Fraction
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Final, Literal

import attrs

from . import _format, _units
from .errors import (
    DataFileError,
    MpsAnalgesiaError,
    UnitError,
    UnknownDrugError,
    UnknownNameError,
    UnknownRouteError,
)

__all__ = [
    "EDITIONS_FILE",
    "FORMULATIONS",
    "LEVELS",
    "OME_FILES",
    "Band",
    "ConversionTable",
    "DrugRecord",
    "FractionRecord",
    "Limit",
    "MethadoneScheme",
    "Product",
    "ReductionRecord",
    "SourceRecord",
    "SourcedFraction",
    "SourcedValue",
    "TableEntry",
    "Tier",
    "all_sources",
    "breakthrough_fractions",
    "breakthrough_window",
    "content_hash",
    "conversion_table",
    "conversion_tables",
    "data_editions",
    "data_entry",
    "data_file",
    "data_file_names",
    "drug",
    "drug_ids",
    "edition",
    "find_tier",
    "hash_of",
    "level_of",
    "local_editions",
    "mme_thresholds",
    "product",
    "products",
    "recorded_editions",
    "reductions",
    "route_formulations",
    "routes",
    "source",
    "sourced",
    "sources",
    "switching_schemes",
    "table_name",
    "tolerance_threshold",
    "ucum_code",
]

Level = Literal["V", "S", "U"]
#: Verification levels, strongest first.
LEVELS: Final[tuple[str, ...]] = ("V", "S", "U")
#: Formulations a step may name.
FORMULATIONS: Final[tuple[str, ...]] = ("immediate-release", "modified-release", "patch")
#: The data files holding OME conversion tables, the default table's file first.
OME_FILES: Final[tuple[str, ...]] = (
    "ome-cdc-2022.toml",
    "ome-cdc-2016.toml",
    "ome-palliative.toml",
    "ome-anzca-2021.toml",
)
_REL: Final = 1e-9


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


#: The file beside the data files that records, for each, its edition and content hash.
EDITIONS_FILE: Final = "editions.toml"
#: Free-text keys left out of a content hash (wording, not values, sources or levels).
_PROSE_KEYS: Final = frozenset({"note", "description", "comment"})


def data_file_names() -> tuple[str, ...]:
    """The packaged TOML data files (sorted), without the editions record itself."""
    folder = resources.files("mps_analgesia") / "data"
    return tuple(
        sorted(
            p.name for p in folder.iterdir() if p.name.endswith(".toml") and p.name != EDITIONS_FILE
        )
    )


def _content(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _content(v) for k, v in value.items() if k not in _PROSE_KEYS}
    if isinstance(value, list):
        return [_content(v) for v in value]
    return value


def hash_of(data: Mapping[str, Any]) -> str:
    """The content hash of parsed data-file content, ``[meta]`` left out (:func:`content_hash`)."""
    import hashlib
    import json

    content = {k: v for k, v in data.items() if k != "meta"}
    text = json.dumps(_content(content), sort_keys=True, ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(name: str) -> str:
    """The SHA-256 of a data file's values, sources and levels: the parsed TOML without its
    ``[meta]`` table and without free-text ``note``/``description`` keys, so comments and
    wording do not count, every number, unit, source id and level does.

    Example
    -------
    >>> from mps_analgesia import _catalog
    >>> _catalog.content_hash("drugs.toml").startswith("sha256:")
    True
    """
    return hash_of(data_file(name))


@cache
def recorded_editions() -> Mapping[str, tuple[str, str]]:
    """``file → (edition, content hash)`` as recorded in ``data/editions.toml``."""
    import tomllib

    path = resources.files("mps_analgesia") / "data" / EDITIONS_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DataFileError(f"{EDITIONS_FILE}: cannot be read: {exc}") from exc
    out: dict[str, tuple[str, str]] = {}
    for name, entry in raw.get("files", {}).items():
        out[str(name)] = (str(entry.get("edition", "")), str(entry.get("content", "")))
    return out


def data_editions() -> dict[str, str]:
    """The edition of every packaged data file: ``{file: edition}``.

    Each edition is tied to the file's content: ``data/editions.toml`` records the edition with
    a hash of the values, sources and levels, and the test suite fails when a table's content
    changes without a new edition.  A report's ``editions`` name the same strings.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> mps.data_editions()["drugs.toml"]
    '2026-11'
    """
    return {name: edition(name) for name in data_file_names()}


@cache
def _ucum_codes() -> Mapping[str, str]:
    data = data_file("ucum.toml")
    out: dict[str, str] = {}
    for row in data.get("units", ()):
        if row.get("emit", True):
            out.setdefault(str(row["library"]), str(row["ucum"]))
    for unit, code in data.get("finding_units", {}).items():
        out.setdefault(str(unit), str(code))
    return out


def ucum_code(unit: str) -> str:
    """The UCUM code of a library unit (``'mg/day'`` → ``'mg/d'``), from ``ucum.toml``.

    Example
    -------
    >>> from mps_analgesia import _catalog
    >>> _catalog.ucum_code("mg/day"), _catalog.ucum_code("mcg/h"), _catalog.ucum_code("MME/day")
    ('mg/d', 'ug/h', '{MME}/d')
    """
    try:
        return _ucum_codes()[unit]
    except KeyError:
        raise DataFileError(f"ucum.toml: no UCUM code for the library unit {unit!r}") from None


def data_entry(name: str, key: str) -> Mapping[str, Any]:
    """The table at dotted ``key`` of data file ``name`` (``"qtc.contraindicated_above"``), so
    another file can name a value instead of restating it.

    Example
    -------
    >>> from mps_analgesia import _catalog
    >>> _catalog.data_entry("methadone.toml", "qtc.prolonged_from")["value"]
    '450 ms'
    """
    node: Any = data_file(name)
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise DataFileError(f"{name}: has no key {key!r}")
        node = node[part]
    if not isinstance(node, Mapping):
        raise DataFileError(f"{name}: {key!r} is not a table with a value")
    return node


# ---- sources ------------------------------------------------------------------------------------


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


#: Bibliography entries of the local conversion tables loaded so far (``load_table``), by id.
_LOCAL_SOURCES: dict[str, SourceRecord] = {}
#: Source ids a local table file defines, accepted while that file is being read.
_READING_SOURCES: ContextVar[Mapping[str, SourceRecord]] = ContextVar(
    "_READING_SOURCES", default=MappingProxyType({})
)


def all_sources() -> Mapping[str, SourceRecord]:
    """The bibliography with the sources of the local tables loaded so far (shipped ids first)."""
    if not _LOCAL_SOURCES:
        return sources()
    return {**_LOCAL_SOURCES, **sources()}


def source(sid: str) -> SourceRecord:
    """The bibliography entry for a source id; :class:`UnknownNameError` if there is none.

    A source defined by a local table file (:func:`mps_analgesia.load_table`) is found too.
    """
    try:
        return sources()[sid]
    except KeyError:
        local = _LOCAL_SOURCES.get(sid)
        if local is not None:
            return local
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
    if not isinstance(sid, str) or (sid not in sources() and sid not in _READING_SOURCES.get()):
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


# ---- drugs --------------------------------------------------------------------------------------


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
        # with no close match, the message lists the routes the library knows
        accepted = "" if close else f" (the routes: {', '.join(sorted(routes()))})"
        reason = f"unknown route {route!r}{accepted}"
        raise UnknownRouteError("route", route, close, reason=reason) from None


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


# ---- conversion tables (ome-*.toml) -------------------------------------------------------------


@attrs.define(frozen=True, slots=True)
class Tier:
    """A tier of a tiered factor or scheme: a value for doses between two bounds."""

    lower: float
    lower_inclusive: bool
    upper: float
    upper_inclusive: bool
    value: float = 0.0
    daily: float = 0.0
    dose: float = 0.0
    times_per_day: int = 0

    def contains(self, x: float) -> bool:
        tol = _REL * max(1.0, abs(x))
        ok_low = x >= self.lower - tol if self.lower_inclusive else x > self.lower + tol
        if not ok_low:
            return False
        return x <= self.upper + tol if self.upper_inclusive else x < self.upper - tol

    def text(self, unit: str) -> str:
        low = f"{'≥' if self.lower_inclusive else '>'}{_format.number(self.lower)}"
        high = f"{'≤' if self.upper_inclusive else '<'}{_format.number(self.upper)}"
        if math.isinf(self.upper):
            return f"tier {low} {unit}"
        if self.lower == 0.0 and not self.lower_inclusive:
            return f"tier {high} {unit}"
        return f"tier {low} and {high} {unit}"


def find_tier(tiers: Sequence[Tier], x: float) -> Tier | None:
    """The first tier holding ``x``, or ``None``."""
    for tier in tiers:
        if tier.contains(x):
            return tier
    return None


@attrs.define(frozen=True, slots=True)
class Band:
    """A transdermal-fentanyl band: a patch rate and the OME range it stands for."""

    rate: float  # mcg/h
    low: float | None  # MME/day; None = open below
    high: float  # MME/day, inclusive (exclusive 'below' for an open row)


@attrs.define(frozen=True, slots=True)
class TableEntry:
    """One drug and route of a conversion table: a factor, tiers, bands or 'not converted'."""

    drug: str
    route: str
    kind: str  # factor | tiers | bands | none
    source: str
    level: str
    note: str = ""
    estimate: bool = False
    dose_unit: str = "mg/day"
    to_unit: float = 1.0  # a mg/day value × to_unit = the value in dose_unit
    factor_low: float = 0.0
    factor_high: float = 0.0
    tiers: tuple[Tier, ...] = ()
    bands: tuple[Band, ...] = ()
    band_title: str = ""
    reason: str = ""
    dose_form: str = ""  # "" = any dose form; else the factor of that form only


@attrs.define(frozen=True)
class ConversionTable:
    """An OME conversion table: id, title, edition, file, source and its entries."""

    id: str
    title: str
    edition: str
    file: str
    source: str
    level: str
    note: str
    entries: Mapping[tuple[str, str], TableEntry]
    any_route: Mapping[str, TableEntry]
    #: Factors of one dose form: (drug, route, dose form) → entry, before the route's entry.
    by_form: Mapping[tuple[str, str, str], TableEntry] = attrs.field(factory=dict)
    #: The SHA-256 of the file's values, sources and levels (as in ``data/editions.toml``).
    content_hash: str = ""
    #: The file a local table was read from (:func:`mps_analgesia.load_table`); ``""`` if shipped.
    path: str = ""

    @property
    def local(self) -> bool:
        """True for a table read from a local file, False for a shipped one."""
        return bool(self.path)

    def all_entries(self) -> tuple[TableEntry, ...]:
        """Every entry: by route, for any route, and per dose form."""
        return (*self.entries.values(), *self.any_route.values(), *self.by_form.values())

    def lookup(self, drug: str, route: str, dose_form: str | None = None) -> TableEntry | None:
        if dose_form:
            form_entry = self.by_form.get((drug, route, dose_form))
            if form_entry is not None:
                return form_entry
        entry = self.entries.get((drug, route))
        if entry is None:
            entry = self.any_route.get(drug)
        return entry

    def targets(self) -> tuple[str, ...]:
        return tuple(
            f"{d} {r}"
            for (d, r), e in sorted(self.entries.items())
            if e.kind in ("factor", "bands")
        )


def _source_level(raw: Mapping[str, Any], where: str) -> tuple[str, str]:
    return _source_of(raw, where), level_of(raw, where)


def _magnitude(text: object, dimension: str, unit: str, where: str) -> float:
    try:
        q = _units.as_quantity(text, dimension, field=where)
    except MpsAnalgesiaError as exc:
        raise DataFileError(f"{where}: {exc}") from exc
    return _units.magnitude_in(q, unit)


def _positive(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataFileError(f"{where}: must be a number, not {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise DataFileError(f"{where}: must be greater than zero, not {value!r}")
    return float(value)


def _tier_bounds(
    raw: Mapping[str, Any], where: str, dimension: str, unit: str
) -> tuple[float, bool, float, bool]:
    if "above" in raw and "at_least" in raw:
        raise DataFileError(f"{where}: give 'above' or 'at_least', not both")
    if "up_to" in raw and "below" in raw:
        raise DataFileError(f"{where}: give 'up_to' or 'below', not both")
    lower, lower_incl = 0.0, False
    if "above" in raw:
        lower = _magnitude(raw["above"], dimension, unit, f"{where}.above")
    elif "at_least" in raw:
        lower, lower_incl = _magnitude(raw["at_least"], dimension, unit, f"{where}.at_least"), True
    upper, upper_incl = math.inf, False
    if "up_to" in raw:
        upper, upper_incl = _magnitude(raw["up_to"], dimension, unit, f"{where}.up_to"), True
    elif "below" in raw:
        upper = _magnitude(raw["below"], dimension, unit, f"{where}.below")
    if upper < lower:
        raise DataFileError(f"{where}: upper bound below lower bound")
    return lower, lower_incl, upper, upper_incl


def _check_tiers(tiers: Sequence[Tier], where: str) -> None:
    for a, b in itertools.pairwise(tiers):
        if b.lower < a.upper or (
            _format.close(b.lower, a.upper) and b.lower_inclusive and a.upper_inclusive
        ):
            raise DataFileError(f"{where}: tiers overlap or are out of order")


def _parse_bands(raw: Mapping[str, Any], where: str) -> tuple[Band, ...]:
    rows = raw.get("rows")
    if not isinstance(rows, list) or not rows:
        raise DataFileError(f"{where}: needs a non-empty 'rows' list")
    bands = []
    for i, row in enumerate(rows):
        rw = f"{where}.rows[{i}]"
        rate = _magnitude(row.get("rate"), "mass_rate", "mcg/h", f"{rw}.rate")
        if "below" in row:
            if i != 0:
                raise DataFileError(f"{rw}: only the first row may be open below")
            bands.append(
                Band(rate, None, _magnitude(row["below"], "ome_rate", "MME/day", f"{rw}.below"))
            )
            continue
        low = _magnitude(row.get("low"), "ome_rate", "MME/day", f"{rw}.low")
        high = _magnitude(row.get("high"), "ome_rate", "MME/day", f"{rw}.high")
        prev = bands[-1] if bands else None
        # adjacent rows may share an end point (12 mcg/h 30-60, 25 mcg/h 60-90 mg/day)
        overlap = prev is not None and (prev.rate >= rate or prev.high > low)
        if high < low or overlap:
            raise DataFileError(f"{rw}: rows must rise in rate and in OME without overlap")
        bands.append(Band(rate, low, high))
    return tuple(bands)


def _parse_entries(
    raw: Mapping[str, Any], where: str, band_sets: Mapping[str, tuple[str, tuple[Band, ...]]]
) -> list[TableEntry]:
    drug_name = raw.get("drug")
    try:
        record = drug(str(drug_name))
    except MpsAnalgesiaError as exc:
        raise DataFileError(f"{where}.drug: {exc}") from exc
    entry_routes = raw.get("routes")
    if not isinstance(entry_routes, list) or not entry_routes:
        raise DataFileError(f"{where}: needs a non-empty 'routes' list")
    for r in entry_routes:
        if r != "*" and r not in routes():
            raise DataFileError(f"{where}.routes: unknown route {r!r}")
    source, level = _source_level(raw, where)
    note = str(raw.get("note", ""))
    common: dict[str, Any] = {"source": source, "level": level, "note": note}
    if "not_converted" in raw:
        common.update(kind="none", reason=str(raw["not_converted"]))
    else:
        unit = str(raw.get("dose_unit", ""))
        try:
            info = _units.lookup_unit(unit)
        except MpsAnalgesiaError as exc:
            raise DataFileError(f"{where}.dose_unit: {exc}") from exc
        if info.dimension != "mass_rate":
            raise DataFileError(f"{where}.dose_unit: {unit!r} is not a mass per time")
        to_unit = _units.magnitude_in(_units.quantity_from_magnitude(1.0, "mg/day"), unit)
        common.update(dose_unit=info.text, to_unit=to_unit, estimate=bool(raw.get("estimate")))
        kinds = [k for k in ("factor", "tiers", "bands") if k in raw]
        if len(kinds) != 1:
            raise DataFileError(f"{where}: give exactly one of factor, tiers, bands")
        if "factor" in raw:
            factor = raw["factor"]
            if isinstance(factor, list):
                if len(factor) != 2:
                    raise DataFileError(f"{where}.factor: a range is [low, high]")
                low, high = (_positive(f, f"{where}.factor") for f in factor)
            else:
                low = high = _positive(factor, f"{where}.factor")
            if low > high:
                raise DataFileError(f"{where}.factor: low above high")
            common.update(kind="factor", factor_low=low, factor_high=high)
        elif "tiers" in raw:
            tiers = []
            for i, t in enumerate(raw["tiers"]):
                tw = f"{where}.tiers[{i}]"
                bounds = _tier_bounds(t, tw, "mass_rate", "mg/day")
                tiers.append(Tier(*bounds, value=_positive(t.get("factor"), f"{tw}.factor")))
            _check_tiers(tiers, where)
            common.update(kind="tiers", tiers=tuple(tiers))
        else:
            name = raw["bands"]
            if name not in band_sets:
                raise DataFileError(f"{where}.bands: no band set {name!r}")
            if info.text != "mcg/h":
                raise DataFileError(f"{where}: bands need dose_unit = 'mcg/h'")
            title, bands = band_sets[name]
            common.update(kind="bands", bands=bands, band_title=title)
    forms = raw.get("dose_forms", [""])
    known_forms = data_file("dose-forms.toml").get("forms", {})
    if not isinstance(forms, list) or not all(f == "" or f in known_forms for f in forms):
        raise DataFileError(f"{where}.dose_forms: {forms!r} are not all dose forms")
    return [
        TableEntry(record.id, r, **common, dose_form=str(f)) for r in entry_routes for f in forms
    ]


def _resolve(
    tid: str,
    seen: tuple[str, ...],
    raw_tables: Mapping[str, Any],
    parsed: dict[str, list[TableEntry]],
    band_sets: Mapping[str, tuple[str, tuple[Band, ...]]],
    file: str,
) -> list[TableEntry]:
    """The entries of table ``tid``: its parent's (``extends``) replaced by its own."""
    if tid in parsed:
        return parsed[tid]
    if tid in seen or tid not in raw_tables:
        raise DataFileError(f"{file}: tables.{tid} is missing or extends in a loop")
    raw = raw_tables[tid]
    base: list[TableEntry] = []
    if "extends" in raw:
        base = _resolve(str(raw["extends"]), (*seen, tid), raw_tables, parsed, band_sets, file)
    own: list[TableEntry] = []
    for i, e in enumerate(raw.get("entries", ())):
        own.extend(_parse_entries(e, f"{file}: tables.{tid}.entries[{i}]", band_sets))
    keys = {(e.drug, e.route, e.dose_form) for e in own}
    merged = [e for e in base if (e.drug, e.route, e.dose_form) not in keys] + own
    parsed[tid] = merged
    return merged


@cache
def conversion_tables() -> Mapping[str, ConversionTable]:
    """Every shipped OME conversion table by id, in file order (the default first)."""
    out: dict[str, ConversionTable] = {}
    for file in OME_FILES:
        data = data_file(file)
        edition = str(data["meta"]["edition"])
        band_sets: dict[str, tuple[str, tuple[Band, ...]]] = {}
        for name, raw in data.get("band_sets", {}).items():
            where = f"{file}: band_sets.{name}"
            _source_level(raw, where)
            band_sets[name] = (str(raw.get("title", name)), _parse_bands(raw, where))
        raw_tables = data.get("tables", {})
        parsed: dict[str, list[TableEntry]] = {}
        for tid, raw in raw_tables.items():
            if tid in out:
                raise DataFileError(f"{file}: table id {tid!r} is defined twice")
            source, level = _source_level(raw, f"{file}: tables.{tid}")
            entries: dict[tuple[str, str], TableEntry] = {}
            any_route: dict[str, TableEntry] = {}
            by_form: dict[tuple[str, str, str], TableEntry] = {}
            for e in _resolve(tid, (), raw_tables, parsed, band_sets, file):
                if e.dose_form:
                    by_form[(e.drug, e.route, e.dose_form)] = e
                elif e.route == "*":
                    any_route[e.drug] = e
                else:
                    entries[(e.drug, e.route)] = e
            out[tid] = ConversionTable(
                tid,
                str(raw.get("title", tid)),
                edition,
                file,
                source,
                level,
                str(raw.get("note", "")),
                entries,
                any_route,
                by_form,
                content_hash(file),
            )
    return out


def conversion_table(name: object) -> ConversionTable:
    """The conversion table with this id; :class:`UnknownNameError` (with close ids) if none.

    A :class:`ConversionTable` (a local one from :func:`mps_analgesia.load_table`) is returned
    as it is; a string is always an id, never a path.
    """
    if isinstance(name, ConversionTable):
        return name
    tables = conversion_tables()
    hit = tables.get(name) if isinstance(name, str) else None
    if hit is None:
        known = list(tables)
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.4)
        raise UnknownNameError(
            "OME table",
            str(name),
            close,
            "table",
            reason=f"unknown OME table {name!r} (known: {', '.join(known)})",
        )
    return hit


def local_editions(values: Iterable[object]) -> dict[str, str]:
    """``{"local:<file>": "<edition>; content <hash>"}`` for each local table among ``values``
    (rule options), so a report names a local table's file and edition beside the shipped ones.
    """
    out: dict[str, str] = {}
    for value in values:
        if isinstance(value, ConversionTable) and value.local:
            out[f"local:{value.file}"] = f"{value.edition}; content {value.content_hash}"
    return out


def table_name(table: object) -> str:
    """The id of a table given by id or as a :class:`ConversionTable`."""
    return table.id if isinstance(table, ConversionTable) else str(table)


# ---- products, reductions, schemes, fractions, thresholds ---------------------------------------


@attrs.define(frozen=True)
class Product:
    """A product line of ``strengths.toml``: the strengths a suggestion is rounded down to."""

    drug: str
    route: str
    formulation: str
    unit: str  # mg | mcg/h
    sums: tuple[float, ...]
    compositions: tuple[tuple[tuple[float, int], ...], ...]
    increment: float
    every_h: float | None
    infusion: bool
    source: str
    level: str
    note: str

    def round_down(self, target: float) -> tuple[float, tuple[tuple[float, int], ...]] | None:
        """The largest amount not above ``target`` (with float tolerance), or None."""
        if not target > 0:
            return None
        if self.increment:
            units = math.floor(target / self.increment * (1 + _REL) + 1e-12)
            if units < 1:
                return None
            return units * self.increment, ((self.increment, units),)
        i = bisect.bisect_right(self.sums, target * (1 + _REL) + 1e-12) - 1
        if i < 0:
            return None
        return self.sums[i], self.compositions[i]


@cache
def products() -> Mapping[tuple[str, str, str], Product]:
    """The product lines of ``strengths.toml`` by ``(drug, route, formulation)``."""
    data = data_file("strengths.toml")
    max_units = data.get("rounding", {}).get("max_units_per_dose")
    if isinstance(max_units, bool) or not isinstance(max_units, int) or max_units < 1:
        raise DataFileError("strengths.toml: rounding.max_units_per_dose must be a whole number")
    out: dict[tuple[str, str, str], Product] = {}
    for i, raw in enumerate(data.get("products", ())):
        where = f"strengths.toml: products[{i}]"
        source, level = _source_level(raw, where)
        drug, route, form = str(raw.get("drug")), str(raw.get("route")), str(raw.get("formulation"))
        if form not in FORMULATIONS:
            raise DataFileError(f"{where}.formulation: unknown {form!r}")
        every_h = None
        if "every" in raw:
            every_h = _magnitude(raw["every"], "time", "h", f"{where}.every")
        sums: tuple[float, ...] = ()
        comps: tuple[tuple[tuple[float, int], ...], ...] = ()
        increment = 0.0
        unit = "mg"
        if "increment" in raw:
            increment = _magnitude(raw["increment"], "mass", "mg", f"{where}.increment")
        else:
            texts = raw.get("strengths")
            if not isinstance(texts, list) or not texts:
                raise DataFileError(f"{where}: needs 'strengths' or 'increment'")
            unit = "mcg/h" if form == "patch" else "mg"
            dim = "mass_rate" if form == "patch" else "mass"
            strengths = sorted(_magnitude(t, dim, unit, f"{where}.strengths") for t in texts)
            best: dict[float, tuple[tuple[float, int], ...]] = {}
            for k in range(1, max_units + 1):
                for combo in itertools.combinations_with_replacement(strengths[::-1], k):
                    key = round(sum(combo), 9)
                    if key not in best:
                        counts: dict[float, int] = {}
                        for s in combo:
                            counts[s] = counts.get(s, 0) + 1
                        best[key] = tuple(counts.items())
            sums = tuple(sorted(best))
            comps = tuple(best[s] for s in sums)
        out[(drug, route, form)] = Product(
            drug,
            route,
            form,
            unit,
            sums,
            comps,
            increment,
            every_h,
            raw.get("schedule") == "infusion",
            source,
            level,
            str(raw.get("note", "")),
        )
    return out


def product(drug: str, route: str, formulation: str) -> Product | None:
    """The strengths a ``drug`` by ``route`` in ``formulation`` comes in, or ``None``.

    Example
    -------
    >>> from mps_analgesia import _catalog
    >>> _catalog.product("oxycodone", "oral", "modified-release").unit
    'mg'
    """
    return products().get((drug, route, formulation))


@attrs.define(frozen=True, slots=False)  # a dict class builds twice as fast
class ReductionRecord:
    """A named dose reduction of ``rotation.toml``: take off ``low`` … ``high`` (fractions)."""

    name: str
    low: float
    high: float
    source: str
    level: str
    note: str = ""
    default: bool = False


def _reduction_fraction(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataFileError(f"{where}: a reduction is a fraction between 0 and 1, not {value!r}")
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise DataFileError(
            f"{where}: a reduction is a fraction from 0 up to (not including) 1, not {value!r}; "
            "write 0.25 for 25 %"
        )
    return float(value)


@cache
def reductions() -> tuple[Mapping[str, ReductionRecord], str]:
    """The named reductions of ``rotation.toml`` and the id of the default one."""
    data = data_file("rotation.toml")
    out: dict[str, ReductionRecord] = {}
    default = ""
    for name, raw in data.get("reductions", {}).items():
        where = f"rotation.toml: reductions.{name}"
        source, level = _source_level(raw, where)
        low = _reduction_fraction(raw.get("low"), where)
        high = _reduction_fraction(raw.get("high"), where)
        if low > high:
            raise DataFileError(f"{where}: reduction low {low} is above high {high}")
        out[name] = ReductionRecord(
            name, low, high, source, level, str(raw.get("note", "")), bool(raw.get("default"))
        )
        if raw.get("default"):
            default = name
    if not default:
        raise DataFileError("rotation.toml: no reduction is marked default = true")
    return out, default


@attrs.define(frozen=True)
class MethadoneScheme:
    """A switching scheme to methadone of ``methadone-schemes.toml``."""

    id: str
    title: str
    kind: str
    source: str
    level: str
    note: str
    refuse_reason: str
    reduction: str
    tiers: tuple[Tier, ...]


@cache
def switching_schemes() -> tuple[Mapping[str, MethadoneScheme], str]:
    """The methadone switching schemes by id, and the file's edition."""
    data = data_file("methadone-schemes.toml")
    out: dict[str, MethadoneScheme] = {}
    named_reductions, _default = reductions()
    for sid, raw in data.get("schemes", {}).items():
        where = f"methadone-schemes.toml: schemes.{sid}"
        source, level = _source_level(raw, where)
        kind = raw.get("kind")
        if kind not in ("fixed", "ratio"):
            raise DataFileError(f"{where}.kind: must be 'fixed' or 'ratio', not {kind!r}")
        reduction = str(raw.get("reduction", ""))
        if kind == "ratio" and reduction not in named_reductions:
            raise DataFileError(f"{where}.reduction: {reduction!r} is not in rotation.toml")
        tiers = []
        for i, t in enumerate(raw.get("tiers", ())):
            tw = f"{where}.tiers[{i}]"
            bounds = _tier_bounds(t, tw, "ome_rate", "MME/day")
            if kind == "ratio":
                tiers.append(Tier(*bounds, value=_positive(t.get("ratio"), f"{tw}.ratio")))
            else:
                daily = _magnitude(t.get("daily"), "mass_rate", "mg/day", f"{tw}.daily")
                dose, times = 0.0, 0
                if "dose" in t:
                    dose = _magnitude(t["dose"], "mass", "mg", f"{tw}.dose")
                    times = int(t.get("times_per_day", 0))
                    if times < 1 or not _format.close(dose * times, daily):
                        raise DataFileError(f"{tw}: dose × times_per_day must equal daily")
                tiers.append(Tier(*bounds, daily=daily, dose=dose, times_per_day=times))
        if not tiers:
            raise DataFileError(f"{where}: has no tiers")
        _check_tiers(tiers, where)
        out[sid] = MethadoneScheme(
            sid,
            str(raw.get("title", sid)),
            str(kind),
            source,
            level,
            str(raw.get("note", "")),
            str(raw.get("refuse_reason", "the scheme has no tier for this OME")),
            reduction,
            tuple(tiers),
        )
    return out, str(data["meta"]["edition"])


def _fraction_value(value: object, where: str) -> float:
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError) as exc:
            raise DataFileError(f"{where}: {value!r} is not a fraction") from exc
    return _positive(value, where)


@attrs.define(frozen=True)
class FractionRecord:
    """A named breakthrough fraction of ``breakthrough.toml``: ``low`` … ``high`` of the OME."""

    name: str
    low: float
    high: float
    source: str
    level: str
    note: str = ""


@cache
def breakthrough_fractions() -> tuple[Mapping[str, FractionRecord], str]:
    """The named breakthrough fractions and the id of the default one."""
    data = data_file("breakthrough.toml")
    out: dict[str, FractionRecord] = {}
    default = ""
    for name, raw in data.get("fractions", {}).items():
        where = f"breakthrough.toml: fractions.{name}"
        source, level = _source_level(raw, where)
        low = _fraction_value(raw.get("low"), f"{where}.low")
        high = _fraction_value(raw.get("high"), f"{where}.high")
        for value in (low, high):
            if not value < 1.0:
                raise DataFileError(f"{where}: a breakthrough fraction is below 1, not {value!r}")
        if low > high:
            raise DataFileError(f"{where}: fraction low {low} is above high {high}")
        out[name] = FractionRecord(name, low, high, source, level, str(raw.get("note", "")))
        if raw.get("default"):
            default = name
    if not default:
        raise DataFileError("breakthrough.toml: no fraction is marked default = true")
    return out, default


@attrs.define(frozen=True)
class SourcedFraction:
    """A sourced fraction (no unit): value, source, level and note."""

    value: float
    source: str
    level: str
    note: str


@cache
def breakthrough_window() -> tuple[SourcedFraction, SourcedFraction]:
    """The PRN-dose window of ``opioid.breakthrough-dose``: (low, high) fractions of the OME."""
    data = data_file("breakthrough.toml").get("check_window", {})
    out = []
    for key in ("low", "high"):
        raw = data.get(key)
        where = f"breakthrough.toml: check_window.{key}"
        if not isinstance(raw, dict):
            raise DataFileError(f"{where}: missing")
        source, level = _source_level(raw, where)
        out.append(
            SourcedFraction(
                _fraction_value(raw.get("value"), where), source, level, str(raw.get("note"))
            )
        )
    return out[0], out[1]


@cache
def tolerance_threshold() -> SourcedValue:
    """The opioid-tolerance threshold in MME/day (FDA definition), as a sourced value."""
    raw = data_file("rotation.toml").get("opioid_tolerance", {})
    return sourced(
        raw, dimension="ome_rate", unit="MME/day", where="rotation.toml: opioid_tolerance"
    )


@cache
def mme_thresholds() -> tuple[SourcedValue, ...]:
    """CDC 2016's MME/day thresholds (reassess, avoid), lowest first: information only."""
    raw = data_file("ome-cdc-2016.toml").get("thresholds", {})
    values = [
        sourced(v, dimension="ome_rate", unit="MME/day", where=f"ome-cdc-2016.toml: thresholds.{k}")
        for k, v in raw.items()
    ]
    return tuple(sorted(values, key=lambda v: v.value))
