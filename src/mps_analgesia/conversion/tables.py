"""Local conversion tables: a hospital's own OME table file, read into a :class:`ConversionTable`.

A local table file has the format of the shipped ``data/ome-*.toml`` files (their header says
it): a ``[meta]`` table with the file's ``edition``, one or more ``[tables.<id>]`` with their
``[[tables.<id>.entries]]``, optional ``[band_sets.<name>]`` for transdermal-fentanyl bands,
and optional ``[sources.<id>]`` for the hospital's own references (``citation``, ``kind``,
``doi``).  Every entry names its ``source`` (an id of the shipped bibliography or of the file's
``[sources]``) and its ``level`` (``V``, ``S`` or ``U``).  A table may ``extends`` a table of
the same file or a shipped one (its entries, the child's replacing the parent's for the same
drug, route and dose form).

The file is read by the guarded reader (:mod:`mps_analgesia._files`: regular files only, size,
depth and duplicate-key limits) and every problem is reported at once, each with its key path
and line, in a :class:`~mps_analgesia.errors.TableFileError`.  Unknown keys are refused (a
misspelt ``dose_forms`` must not silently widen an entry to every form).  The table's
:attr:`~mps_analgesia._catalog.ConversionTable.content_hash` is computed as
``data/editions.toml`` computes it for the shipped files: the values, units, sources and levels,
not comments, notes or descriptions.  ``[meta] content = "sha256:..."``, when given, must match
it: a file whose values changed without a new edition is refused.

A local table id must differ from every shipped id (a report naming ``cdc-2022`` always means
the shipped table): a colliding id is refused.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from .. import _catalog, _files, _units
from .._catalog import ConversionTable, SourceRecord, TableEntry
from ..errors import DataFileError, MpsAnalgesiaError, Problem, TableFileError

__all__ = ["load_table", "loads_table"]

_TOP_KEYS: Final = ("meta", "tables", "band_sets", "sources")
_META_KEYS: Final = ("edition", "description", "content")
_TABLE_KEYS: Final = ("title", "source", "level", "note", "extends", "entries")
_ENTRY_KEYS: Final = (
    "drug",
    "routes",
    "factor",
    "tiers",
    "bands",
    "not_converted",
    "dose_unit",
    "dose_forms",
    "estimate",
    "source",
    "level",
    "note",
)
_TIER_KEYS: Final = ("above", "at_least", "up_to", "below", "factor")
_BAND_SET_KEYS: Final = ("title", "source", "level", "note", "rows")
_ROW_KEYS: Final = ("rate", "below", "low", "high")
_SOURCE_KEYS: Final = ("citation", "kind", "doi", "note")
_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MAX_EDITION: Final = 200
# the key path a catalog message starts with ("tables.x.entries[0].factor: ...")
_PATH: Final = re.compile(r"^((?:[A-Za-z0-9_\-.]+|\[\d+\])+): ")


class _Problems:
    """Problems of one file, each with its line."""

    def __init__(self, lines: Mapping[str, int]) -> None:
        self.lines = lines
        self.items: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(Problem(path, message, _files.line_of(self.lines, path)))

    def from_catalog(self, exc: DataFileError, fallback: str) -> None:
        """A problem from a catalog parser's message, which starts with its key path."""
        text = str(exc)
        m = _PATH.match(text)
        path = m.group(1) if m else fallback
        message = text[m.end() :] if m else text
        while message.startswith(f"{path}: "):  # a unit error repeats the path
            message = message[len(path) + 2 :]
        self.add(path, message)

    def keys(self, raw: Mapping[str, Any], allowed: tuple[str, ...], path: str, what: str) -> None:
        for key in raw:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                where = f"{path}.{key}" if path else str(key)
                self.add(where, f"unknown key for {what} (expected {', '.join(allowed)}){hint}")


def _table_of(raw: Any, path: str, out: _Problems) -> Mapping[str, Any] | None:
    if not isinstance(raw, Mapping):
        out.add(path, f"must be a table, not {type(raw).__name__}")
        return None
    return raw


def _read_sources(data: Mapping[str, Any], out: _Problems) -> dict[str, SourceRecord]:
    raw = data.get("sources", {})
    found: dict[str, SourceRecord] = {}
    if _table_of(raw, "sources", out) is None:
        return found
    shipped = _catalog.sources()
    for sid, entry in raw.items():
        path = f"sources.{sid}"
        if _table_of(entry, path, out) is None:
            continue
        out.keys(entry, _SOURCE_KEYS, path, "a source")
        if sid in shipped:
            out.add(
                path,
                f"{sid!r} is a source id of the shipped bibliography; cite it as it is "
                "(source = " + repr(sid) + ") or give your source another id",
            )
            continue
        citation = entry.get("citation")
        if not isinstance(citation, str) or not citation.strip():
            out.add(f"{path}.citation", "a source needs a 'citation' (text)")
            continue
        record = SourceRecord(
            str(sid), citation.strip(), str(entry.get("kind", "local")), str(entry.get("doi", ""))
        )
        loaded = _catalog._LOCAL_SOURCES.get(str(sid))
        if loaded is not None and loaded != record:
            out.add(
                path,
                f"the source id {sid!r} is already defined, differently, by another local table "
                "file loaded before; give this source another id",
            )
            continue
        found[str(sid)] = record
    return found


def _read_meta(data: Mapping[str, Any], out: _Problems) -> tuple[str, str]:
    meta = data.get("meta")
    if meta is None:
        out.add("meta", "a table file needs a [meta] table with its 'edition'")
        return "", ""
    if _table_of(meta, "meta", out) is None:
        return "", ""
    out.keys(meta, _META_KEYS, "meta", "[meta]")
    edition = meta.get("edition")
    if not isinstance(edition, str) or not edition.strip():
        out.add("meta.edition", 'give the file\'s edition as text, e.g. edition = "2026-12"')
        edition = ""
    elif len(edition) > _MAX_EDITION:
        out.add("meta.edition", f"is longer than {_MAX_EDITION} characters")
    recorded = meta.get("content", "")
    if not isinstance(recorded, str):
        out.add("meta.content", "must be the text 'sha256:...' of the file's content")
        recorded = ""
    return str(edition).strip(), recorded


def _check_entry(raw: Mapping[str, Any], path: str, out: _Problems) -> bool:
    """Keys, fields and nested shapes of one entry, every problem of it at once; True when
    the catalog parser may read it."""
    before = len(out.items)
    out.keys(raw, _ENTRY_KEYS, path, "an entry")
    _check_fields(raw, path, out)
    ok = len(out.items) == before
    tiers = raw.get("tiers")
    if tiers is not None:
        if not isinstance(tiers, list) or not tiers:
            out.add(f"{path}.tiers", "must be a non-empty list of tiers")
            ok = False
        else:
            for i, tier in enumerate(tiers):
                if _table_of(tier, f"{path}.tiers[{i}]", out) is None:
                    ok = False
                else:
                    out.keys(tier, _TIER_KEYS, f"{path}.tiers[{i}]", "a tier")
    if "bands" in raw and not isinstance(raw["bands"], str):
        out.add(f"{path}.bands", "must name a band set of the file ([band_sets.<name>])")
        ok = False
    return ok


def _check_fields(raw: Mapping[str, Any], path: str, out: _Problems) -> None:
    """The fields the catalog parser would stop at one by one: drug, routes, source, level,
    factor, dose unit and dose forms, each checked on its own."""
    try:
        _catalog.drug(str(raw.get("drug")), field="")
    except MpsAnalgesiaError as exc:
        out.add(f"{path}.drug", str(exc))
    routes = raw.get("routes")
    if not isinstance(routes, list) or not routes:
        out.add(f"{path}.routes", 'needs a non-empty list of routes, e.g. routes = ["oral"]')
    else:
        for r in routes:
            if not isinstance(r, str):
                out.add(f"{path}.routes", f"a route is a name such as 'oral', not {r!r}")
            elif r != "*" and r not in _catalog.routes():
                close = difflib.get_close_matches(str(r), list(_catalog.routes()), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                out.add(f"{path}.routes", f"unknown route {r!r}{hint}")
    for check in (_catalog._source_of, _catalog.level_of):
        try:
            check(raw, path)
        except DataFileError as exc:
            out.from_catalog(exc, path)
    factor = raw.get("factor")
    if factor is not None:
        values = factor if isinstance(factor, list) else [factor]
        if isinstance(factor, list) and len(factor) != 2:
            out.add(f"{path}.factor", "a range is [low, high]")
        else:
            try:
                low, high = (
                    _catalog._positive(v, f"{path}.factor") for v in (values[0], values[-1])
                )
                if low > high:
                    out.add(f"{path}.factor", "low above high")
            except DataFileError as exc:
                out.from_catalog(exc, f"{path}.factor")
    if "not_converted" not in raw:
        unit = raw.get("dose_unit")
        try:
            info = _units.lookup_unit(str(unit))
        except MpsAnalgesiaError as exc:
            out.add(f"{path}.dose_unit", str(exc))
        else:
            if info.dimension != "mass_rate":
                out.add(f"{path}.dose_unit", f"{unit!r} is not a mass per time (mg/day, mcg/h)")
    forms = raw.get("dose_forms", [""])
    known = _catalog.data_file("dose-forms.toml").get("forms", {})
    if not isinstance(forms, list) or not all(
        isinstance(f, str) and (f == "" or f in known) for f in forms
    ):
        out.add(f"{path}.dose_forms", f"{forms!r} are not all dose forms (docs: dose forms)")


def _read_band_sets(
    data: Mapping[str, Any], out: _Problems
) -> dict[str, tuple[str, tuple[_catalog.Band, ...]]]:
    raw_sets = data.get("band_sets", {})
    band_sets: dict[str, tuple[str, tuple[_catalog.Band, ...]]] = {}
    if _table_of(raw_sets, "band_sets", out) is None:
        return band_sets
    for name, raw in raw_sets.items():
        path = f"band_sets.{name}"
        if _table_of(raw, path, out) is None:
            continue
        out.keys(raw, _BAND_SET_KEYS, path, "a band set")
        rows = raw.get("rows")
        if isinstance(rows, list):
            bad = False
            for i, row in enumerate(rows):
                if _table_of(row, f"{path}.rows[{i}]", out) is None:
                    bad = True
                else:
                    out.keys(row, _ROW_KEYS, f"{path}.rows[{i}]", "a band row")
            if bad:
                continue
        try:
            _catalog._source_level(raw, path)
            band_sets[str(name)] = (str(raw.get("title", name)), _catalog._parse_bands(raw, path))
        except DataFileError as exc:
            out.from_catalog(exc, path)
    return band_sets


def _own_entries(
    tid: str,
    raw: Mapping[str, Any],
    band_sets: Mapping[str, tuple[str, tuple[_catalog.Band, ...]]],
    out: _Problems,
) -> list[TableEntry]:
    raw_entries = raw.get("entries", [])
    path = f"tables.{tid}.entries"
    if not isinstance(raw_entries, list):
        out.add(path, "must be an array of tables ([[tables.<id>.entries]] in TOML)")
        return []
    own: list[TableEntry] = []
    seen: dict[tuple[str, str, str], int] = {}
    for i, entry in enumerate(raw_entries):
        where = f"{path}[{i}]"
        if _table_of(entry, where, out) is None or not _check_entry(entry, where, out):
            continue
        try:
            parsed = _catalog._parse_entries(entry, where, band_sets)
        except DataFileError as exc:
            out.from_catalog(exc, where)
            continue
        for e in parsed:
            key = (e.drug, e.route, e.dose_form)
            if key in seen and seen[key] != i:
                form = f" ({e.dose_form})" if e.dose_form else ""
                out.add(
                    where,
                    f"{e.drug} by the {e.route} route{form} is given twice in this table "
                    f"(also entries[{seen[key]}]); which factor is meant?",
                )
                break
            seen[key] = i
        own.extend(parsed)
    return own


def _resolve(
    tid: str,
    chain: tuple[str, ...],
    raw_tables: Mapping[str, Any],
    band_sets: Mapping[str, tuple[str, tuple[_catalog.Band, ...]]],
    done: dict[str, list[TableEntry] | None],
    out: _Problems,
) -> list[TableEntry] | None:
    """The entries of local table ``tid`` (its parent's replaced by its own), None if broken."""
    if tid in done:
        return done[tid]
    raw = raw_tables[tid]
    base: list[TableEntry] | None = []
    parent = raw.get("extends")
    if parent is not None:
        path = f"tables.{tid}.extends"
        if not isinstance(parent, str):
            out.add(path, "must be the id of a table of this file or a shipped table")
            base = None
        elif parent in chain or parent == tid:
            out.add(path, f"tables extend each other in a loop ({' -> '.join((*chain, tid))})")
            base = None
        elif parent in raw_tables and isinstance(raw_tables[parent], Mapping):
            base = _resolve(parent, (*chain, tid), raw_tables, band_sets, done, out)
        elif parent in _catalog.conversion_tables():
            base = list(_catalog.conversion_tables()[parent].all_entries())
        else:
            known = [*raw_tables, *_catalog.conversion_tables()]
            close = difflib.get_close_matches(parent, known, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            out.add(path, f"no table {parent!r} in this file or among the shipped tables{hint}")
            base = None
    own = _own_entries(tid, raw, band_sets, out)
    if base is None:
        done[tid] = None
        return None
    keys = {(e.drug, e.route, e.dose_form) for e in own}
    merged = [e for e in base if (e.drug, e.route, e.dose_form) not in keys] + own
    done[tid] = merged
    return merged


def _build(
    data: Any,
    *,
    file: str,
    lines: Mapping[str, int],
    path: str,
    table_id: str | None,
) -> ConversionTable:
    out = _Problems(lines)
    if not isinstance(data, Mapping):
        raise TableFileError(file, [Problem("", "the file must hold a table (object)")])
    out.keys(data, _TOP_KEYS, "", "a table file")
    edition, recorded = _read_meta(data, out)
    local_sources = _read_sources(data, out)
    token = _catalog._READING_SOURCES.set(local_sources)
    try:
        band_sets = _read_band_sets(data, out)
        raw_tables = data.get("tables")
        if raw_tables is None or (isinstance(raw_tables, Mapping) and not raw_tables):
            out.add("tables", "the file defines no table: add [tables.<id>] with its entries")
            raw_tables = {}
        elif _table_of(raw_tables, "tables", out) is None:
            raw_tables = {}
        shipped = _catalog.conversion_tables()
        valid: dict[str, Mapping[str, Any]] = {}
        for tid, raw in raw_tables.items():
            where = f"tables.{tid}"
            if not _ID.fullmatch(str(tid)):
                out.add(where, "a table id is letters, digits, '.', '_' or '-' (at most 64)")
                continue
            if tid in shipped:
                out.add(
                    where,
                    f"{tid!r} is the id of a shipped table; a local table needs its own id "
                    f"(e.g. 'hospital-{tid}'), so that a report naming {tid!r} always means the "
                    "shipped one",
                )
                continue
            if _table_of(raw, where, out) is None:
                continue
            out.keys(raw, _TABLE_KEYS, where, "a table")
            valid[str(tid)] = raw
        chosen = _choose(valid, raw_tables, table_id, out)
        result: ConversionTable | None = None
        if chosen is not None:
            result = _table(chosen, valid, band_sets, edition, file, path, out)
    finally:
        _catalog._READING_SOURCES.reset(token)
    content = _catalog.hash_of(data)
    if recorded and recorded != content:
        out.add(
            "meta.content",
            f"the file's values, sources or levels changed since this content hash was recorded "
            f"(now {content}): give the file a new [meta] edition and record the new hash",
        )
    if out.items or result is None:
        raise TableFileError(file, out.items or [Problem("", "no table could be read")])
    _catalog._LOCAL_SOURCES.update(local_sources)
    import attrs

    return attrs.evolve(result, content_hash=content)


def _choose(
    valid: Mapping[str, Any], raw_tables: Mapping[str, Any], table_id: str | None, out: _Problems
) -> str | None:
    if table_id is None:
        if len(raw_tables) > 1:
            out.add(
                "tables",
                f"the file defines {len(raw_tables)} tables ({', '.join(map(str, raw_tables))}): "
                "name the one to use (load_table(path, table_id=...), --table ID)",
            )
            return None
        return next(iter(valid), None)
    if table_id not in raw_tables:
        close = difflib.get_close_matches(table_id, list(map(str, raw_tables)), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        out.add("tables", f"the file has no table {table_id!r}{hint}")
        return None
    return table_id if table_id in valid else None


def _table(
    tid: str,
    valid: Mapping[str, Mapping[str, Any]],
    band_sets: Mapping[str, tuple[str, tuple[_catalog.Band, ...]]],
    edition: str,
    file: str,
    path: str,
    out: _Problems,
) -> ConversionTable | None:
    raw = valid[tid]
    try:
        source, level = _catalog._source_level(raw, f"tables.{tid}")
    except DataFileError as exc:
        out.from_catalog(exc, f"tables.{tid}")
        source, level = "", ""
    done: dict[str, list[TableEntry] | None] = {}
    # every table of the file is read, so its problems are all reported at once
    for other in valid:
        if other != tid:
            _resolve(other, (), valid, band_sets, done, out)
    merged = _resolve(tid, (), valid, band_sets, done, out)
    if merged is None:
        return None
    if not merged:
        if not out.items:  # (entries that could not be read are reported already)
            out.add(f"tables.{tid}", "the table has no entries: add [[tables.<id>.entries]]")
        return None
    entries: dict[tuple[str, str], TableEntry] = {}
    any_route: dict[str, TableEntry] = {}
    by_form: dict[tuple[str, str, str], TableEntry] = {}
    for e in merged:
        if e.dose_form:
            by_form[(e.drug, e.route, e.dose_form)] = e
        elif e.route == "*":
            any_route[e.drug] = e
        else:
            entries[(e.drug, e.route)] = e
    return ConversionTable(
        id=tid,
        title=str(raw.get("title", tid)),
        edition=edition,
        file=Path(file).name,
        source=source,
        level=level,
        note=str(raw.get("note", "")),
        entries=entries,
        any_route=any_route,
        by_form=by_form,
        path=path,
    )


def loads_table(
    text: str, *, format: str = "toml", file: str = "<string>", table_id: str | None = None
) -> ConversionTable:
    """Read a conversion table from TOML or JSON text (see :func:`load_table`).

    Example
    -------
    >>> from mps_analgesia.conversion import loads_table
    >>> table = loads_table('''
    ... [meta]
    ... edition = "2026-12"
    ... [tables.ward-7]
    ... title = "Ward 7 table"
    ... source = "cdc-2022"
    ... level = "V"
    ... [[tables.ward-7.entries]]
    ... drug = "morphine"
    ... routes = ["oral"]
    ... factor = 1.0
    ... dose_unit = "mg/day"
    ... source = "cdc-2022"
    ... level = "V"
    ... ''', file="ward-7.toml")
    >>> table.id, table.edition, table.local, table.content_hash[:7]
    ('ward-7', '2026-12', True, 'sha256:')
    """
    if table_id is not None and not isinstance(table_id, str):
        raise TableFileError(file, [Problem("", f"table_id must be text, not {table_id!r}")])
    return _files.load_text(
        text,
        format=format,
        file=file,
        error=TableFileError,
        build=lambda data, *, file, lines: _build(
            data, file=file, lines=lines, path=file, table_id=table_id
        ),
    )


def load_table(path: str | os.PathLike[str], *, table_id: str | None = None) -> ConversionTable:
    """Read a local conversion table file (``.toml``, or ``.json``) into a ``ConversionTable``.

    The file has the format of the shipped ``data/ome-*.toml`` files: ``[meta] edition``, its
    ``[tables.<id>]`` with their entries, each entry with its ``source`` and ``level`` (see
    the *Local conversion tables* page of the documentation).  The table can then be passed
    wherever a table id is taken: ``daily_ome(..., table=t)``, ``convert_opioid``,
    ``breakthrough_dose``, ``compare_tables``, ``validate(..., options={"ome_table": t})``.
    Results and reports name it (its id, its file and its edition) like a shipped table.

    Parameters
    ----------
    path:
        The file.  Only a regular file of at most
        :data:`~mps_analgesia._limits.MAX_FILE_BYTES` is read.
    table_id:
        The table to use when the file defines more than one.

    Raises
    ------
    TableFileError
        Every problem at once, each with its line and key path: an unreadable file, bad TOML,
        no ``[meta] edition``, an unknown key, drug, route, unit, dose form, source or level,
        a factor that is not a positive number, overlapping tiers or bands, a drug and route
        given twice, a table id that is also a shipped table's, a content hash that no longer
        matches.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> table = mps.load_table("examples/hospital-ome-table.toml")  # doctest: +SKIP
    >>> step = mps.OpioidStep(drug="morphine", route="subcutaneous", dose="5 mg", every="4 h")
    >>> mps.daily_ome(step, table=table).total  # doctest: +SKIP
    <Quantity(60.0, 'morphine_milligram_equivalent / day')>
    """
    p = Path(path)
    text = _files.read_file(p, TableFileError)
    return _files.load_text(
        text,
        format=_files.file_format(p),
        file=str(p),
        error=TableFileError,
        build=lambda data, *, file, lines: _build(
            data, file=file, lines=lines, path=str(p), table_id=table_id
        ),
    )
