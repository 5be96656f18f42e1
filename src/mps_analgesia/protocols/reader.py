"""Reading protocol files (TOML or JSON) into :class:`~mps_analgesia.protocols.Protocol`."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import attrs

from .. import _catalog, _datatext, _files, _format, _units
from .._files import file_keys
from .._files import line_of as _line
from ..errors import (
    DataFileError,
    Problem,
    ProtocolFileError,
    StepError,
    UnitError,
    UnknownNameError,
)
from ..steps import STEP_KINDS
from ._format import _qtext
from ._vocabulary import (
    _CANONICAL,
    _ID,
    _RESERVED_CHOICES,
    _TOL,
    _VERSION,
    COMPUTE_KINDS,
    EVIDENCE_LEVELS,
    MONITORING_KINDS,
    START_METHODS,
    STATUSES,
)
from .checks import _NO_VALUE_OPS, CHECK_FIELDS, CHECK_OPS, Check
from .model import (
    Deescalation,
    DoseRange,
    Duration,
    Escalation,
    Evidence,
    Monitoring,
    Phase,
    Protocol,
    StartRule,
    StepTemplate,
    TitrationRule,
)

# ---- reading protocol files ---------------------------------------------------------------------


class _Reader:
    """Collects every problem of one protocol file with its key path and line."""

    def __init__(self, lines: Mapping[str, int]) -> None:
        self.lines = lines
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message, _line(self.lines, path)))

    def keys(self, data: Mapping[str, Any], path: str, allowed: Iterable[str], what: str) -> None:
        allowed = tuple(allowed)
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.add(f"{path}.{key}" if path else str(key), f"unknown key for {what}{hint}")

    def text(self, data: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str:
        value = data.get(key)
        where = f"{path}.{key}" if path else key
        if value is None:
            if required:
                self.add(where, "is required (text)")
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            self.add(where, f"must be text, not {value!r}")
            return ""
        text = value.strip()
        if "{" in text:  # a {file:key} placeholder names a data value instead of restating it
            try:
                text = _datatext.fill(text)
            except DataFileError as exc:
                self.add(
                    where,
                    f"{exc}; a placeholder is {{file:key}}, e.g. "
                    "{methadone:titration.min_interval}",
                )
        return text

    def ident(self, data: Mapping[str, Any], key: str, path: str, *, required: bool) -> str:
        value = self.text(data, key, path, required=required)
        if value and not _ID.match(value):
            self.add(
                f"{path}.{key}" if path else key,
                f"{value!r} must be lower-case words joined by '-', e.g. 'methadone-start'",
            )
            return ""
        return value

    def choice(
        self, data: Mapping[str, Any], key: str, path: str, allowed: Sequence[str], default: str
    ) -> str:
        value = data.get(key, default)
        if value not in allowed:
            close = difflib.get_close_matches(str(value), list(allowed), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.add(
                f"{path}.{key}" if path else key,
                f"{value!r} is not one of {', '.join(allowed)}{hint}",
            )
            return default
        return str(value)

    def flag(self, data: Mapping[str, Any], key: str, path: str) -> bool:
        value = data.get(key, False)
        if not isinstance(value, bool):
            self.add(f"{path}.{key}", f"must be true or false, not {value!r}")
            return False
        return value

    def strings(self, data: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        value = data.get(key, [])
        where = f"{path}.{key}" if path else key
        if isinstance(value, str) or not isinstance(value, list):
            self.add(where, f"must be a list of texts, e.g. [{value!r}]")
            return ()
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.add(f"{where}[{i}]", f"must be text, not {item!r}")
            else:
                out.append(item.strip())
        return tuple(out)

    def source_ids(
        self, data: Mapping[str, Any], key: str, path: str, *, required: bool
    ) -> tuple[str, ...]:
        ids = self.strings(data, key, path)
        where = f"{path}.{key}" if path else key
        if required and not ids and key not in data:
            self.add(where, "is required: at least one source id from data/sources.toml")
        elif required and not ids:
            self.add(where, "must name at least one source id")
        for i, sid in enumerate(ids):
            self._known_source(sid, f"{where}[{i}]")
        return ids

    def _known_source(self, sid: str, where: str) -> bool:
        known = _catalog.sources()
        if sid in known:
            return True
        close = difflib.get_close_matches(sid, list(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        self.add(where, f"{sid!r} is not a source id in data/sources.toml{hint}")
        return False

    def provenance(self, data: Mapping[str, Any], path: str, *, required: bool) -> tuple[str, str]:
        """``source`` and ``level`` of a table; required when the table carries a number."""
        source = data.get("source")
        level = data.get("level")
        if source is None and level is None and not required:
            return "", ""
        ok_source = ""
        if source is None:
            self.add(f"{path}.source", "is required with a number: the source id it comes from")
        elif not isinstance(source, str):
            self.add(f"{path}.source", f"must be a source id, not {source!r}")
        elif self._known_source(source, f"{path}.source"):
            ok_source = source
        ok_level = ""
        if level is None:
            self.add(f"{path}.level", "is required with a number: V, S or U")
        elif level not in _catalog.LEVELS:
            self.add(f"{path}.level", f"must be V, S or U, not {level!r}")
        else:
            ok_level = str(level)
        return ok_source, ok_level

    def quantity(self, value: Any, where: str, dimensions: Sequence[str]) -> tuple[Any, str] | None:
        """Read a quantity text of one of ``dimensions``: ``(Quantity, dimension)`` or None; a
        ``{data = "file.toml", key = "a.b"}`` reference reads the value of a data file."""
        example = _units.DIMENSIONS[dimensions[0]][1]
        if isinstance(value, Mapping) and "data" in value:
            value = _data_value(self, dict(value), where)
            if value is None:
                return None
        if isinstance(value, (bool, int | float)):
            self.add(where, f"{value!r} has no unit; write e.g. {example!r}")
            return None
        if not isinstance(value, str):
            self.add(where, f"must be a quantity text such as {example!r}, not {value!r}")
            return None
        try:
            _number, info = _units.parse(value)
        except UnitError as exc:
            hint = f"; {exc.suggestion}" if exc.suggestion else ""
            self.add(where, f"{exc.text!r} {exc.reason}{hint}")
            return None
        dimensionality = info.unit.dimensionality
        matching = [d for d in dimensions if _units.DIMENSIONS[d][0] == dimensionality]
        if not matching:
            what = info.dimension.replace("_", " ") or info.text
            wanted = " or ".join(d.replace("_", " ") for d in dimensions)
            self.add(where, f"{value!r} is a {what}, not a {wanted}; write e.g. {example!r}")
            return None
        dim = matching[0]
        q = _units.as_quantity(value, dim)
        if not _units.magnitude_in(q, _CANONICAL[dim]) > 0:
            self.add(where, f"{value!r} must be greater than zero")
            return None
        return q, dim

    def table(self, data: Any, where: str, what: str) -> Mapping[str, Any] | None:
        if not isinstance(data, Mapping):
            self.add(where, f"must be a table ({what}), not {type(data).__name__}")
            return None
        return data

    def array(self, data: Any, where: str, what: str) -> list[Any]:
        if data is None:
            return []
        if not isinstance(data, list):
            self.add(where, f"must be an array of tables ({what})")
            return []
        return data

    def tables(
        self, data: Any, path: str, what: str, example: str, allowed: Iterable[str], kind: str
    ) -> Iterator[tuple[str, Mapping[str, Any], int]]:
        """Each table of the array at ``path``, its keys checked, as ``(key path, table, number
        of problems before its keys were checked)``; an item that is not a table is reported."""
        for i, item in enumerate(self.array(data, path, what)):
            where = f"{path}[{i}]"
            table = self.table(item, where, example)
            if table is None:
                continue
            before = len(self.problems)
            self.keys(table, where, allowed, kind)
            yield where, table, before


def _canon(q: Any, dimension: str) -> float:
    return _units.magnitude_in(q, _CANONICAL[dimension])


def _whole_days(r: _Reader, q: Any, where: str) -> int | None:
    days = _units.magnitude_in(q, "day")
    if abs(days - round(days)) > 1e-9 or round(days) < 1:
        r.add(where, f"{_units.format_quantity(q)} must be a whole number of days (at least 1)")
        return None
    return round(days)


#: The keys of a check, a step template and a protocol: their attrs fields (see _files.file_keys).
_CHECK_KEYS: Final = file_keys(Check)


def _read_check(r: _Reader, data: Any, path: str, *, guards: bool = True) -> Check | None:
    table = r.table(data, path, "a check such as { field = 'qtc', op = '<', value = '450 ms' }")
    if table is None:
        return None
    before = len(r.problems)
    allowed = _CHECK_KEYS if guards else tuple(k for k in _CHECK_KEYS if k != "when")
    r.keys(table, path, allowed, "a check")
    cid = r.ident(table, "id", path, required=False)
    field = table.get("field")
    spec = CHECK_FIELDS.get(field) if isinstance(field, str) else None
    if spec is None:
        close = difflib.get_close_matches(str(field), list(CHECK_FIELDS), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        if field is None:
            r.add(f"{path}.field", f"is required: one of {', '.join(CHECK_FIELDS)}")
        else:
            r.add(f"{path}.field", f"{field!r} is not a field checks can read{hint}")
    text = r.text(table, "text", path, required=True)
    op = table.get("op")
    if spec is not None:
        ops = CHECK_OPS[spec.kind]
        if op not in ops:
            r.add(f"{path}.op", f"{op!r} is not an operator for {spec.name} ({', '.join(ops)})")
    if_unknown = r.choice(table, "if_unknown", path, ("unknown", "met", "not met"), "unknown")
    when: list[Check] = []
    if guards:
        for i, g in enumerate(r.array(table.get("when"), f"{path}.when", "guard checks")):
            guard = _read_check(r, g, f"{path}.when[{i}]", guards=False)
            if guard is not None:
                when.append(guard)
    value = table.get("value")
    threshold: float | None = None
    options: tuple[str, ...] = ()
    needs_number = False
    if spec is not None and isinstance(op, str) and op in CHECK_OPS[spec.kind]:
        vpath = f"{path}.value"
        if op in _NO_VALUE_OPS:
            if value is not None:
                r.add(vpath, f"the operator {op!r} takes no value")
        elif value is None:
            r.add(vpath, f"is required for the operator {op!r}")
        elif spec.kind == "quantity":
            if isinstance(value, dict):  # {data = "file.toml", key = "a.b"}: a value in data
                value = _data_value(r, value, vpath)
            read = r.quantity(value, vpath, (spec.dimension,))
            if read is not None:
                value = read[0]
                threshold = _units.magnitude_in(read[0], spec.unit)
            needs_number = True
        elif spec.kind == "number":
            if isinstance(value, dict):  # {data, key}: a data value in the field's unit
                value = _data_number(r, value, vpath, spec.name)
                if value is None:
                    value = math.nan  # reported; keeps the checks below from adding another
            if isinstance(value, bool) or not isinstance(value, int | float):
                r.add(vpath, f"must be a number, not {value!r}")
            elif not math.isfinite(value):
                if not any(p.path == vpath for p in r.problems):
                    r.add(vpath, "must be a finite number")
            else:
                threshold = float(value)
            needs_number = True
        elif spec.kind == "bool":
            if not isinstance(value, bool):
                r.add(vpath, f"must be true or false, not {value!r}")
        elif op in ("in", "not_in", "contains_any", "contains_none"):
            if isinstance(value, str) or not isinstance(value, list) or not value:
                r.add(vpath, f"must be a list of texts for {op!r}, e.g. [{value!r}]")
            elif not all(isinstance(v, str) and v.strip() for v in value):
                r.add(vpath, "must be a list of texts")
            else:
                options = tuple(" ".join(v.split()).casefold() for v in value)
                value = tuple(value)
        elif not isinstance(value, str):
            r.add(vpath, f"must be text, not {value!r}")
    if spec is not None and spec.kind == "clinical" and not cid:
        r.add(f"{path}.id", "a clinical check needs an id (it is confirmed by that id)")
    source, level = r.provenance(table, path, required=needs_number)
    if len(r.problems) > before or spec is None:
        return None
    if "{value}" in text:  # the check's own value, written in rather than restated
        text = text.replace("{value}", _value_text(value))
    text = _own_values(r, text, f"{path}.text", {"when": when})
    if len(r.problems) > before:
        return None
    return Check(
        field=spec.name,
        op=str(op),
        text=text,
        id=cid or _default_id(spec.name, str(op), value),
        value=value,
        source=source,
        level=level,
        if_unknown=if_unknown,
        when=tuple(when),
        threshold=threshold,
        options=options,
    )


#: A text naming the value of one of its own checks: ``{when[0].value}``, ``{requires[1].value}``.
_OWN_VALUE: Final = re.compile(r"\{(when|requires)\[(\d+)\]\.value\}")


def _own_values(r: _Reader, text: str, where: str, checks: Mapping[str, Sequence[Check]]) -> str:
    """``text`` with each ``{when[i].value}`` (or ``requires``) written from those checks."""

    def one(m: re.Match[str]) -> str:
        group, index = checks.get(m.group(1), ()), int(m.group(2))
        if index >= len(group):
            r.add(where, f"{m.group(0)} names no check: there are {len(group)} {m.group(1)} checks")
            return m.group(0)
        return _value_text(group[index].value)

    return _OWN_VALUE.sub(one, text) if "{" in text else text


def _value_text(value: Any) -> str:
    """A check's value as its text shows it: ``'36 h'``, ``'7 days'``, ``'75'``, ``'a, b'``."""
    if _units.is_quantity(value):
        return _qtext(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return _format.number(float(value))
    if isinstance(value, tuple | list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _data_value(r: Any, ref: dict[str, Any], path: str) -> Any:
    """The quantity text a ``{data = "file.toml", key = "a.b"}`` reference names, so a protocol
    takes a threshold from the data file instead of restating it (``key`` as in
    :mod:`mps_analgesia._datatext`: a table with a value, or the value itself)."""
    if set(ref) != {"data", "key"}:
        r.add(path, 'a reference to a data value is {data = "file.toml", key = "a.b"}')
        return None
    try:
        return _datatext.value_at(str(ref["data"]), str(ref["key"]))
    except DataFileError as exc:
        r.add(path, str(exc))
        return None


#: The unit a data value must have to stand for a number check of each field.
_NUMBER_UNITS: Final = {"age": "year", "bmi": "kg/m2"}


def _data_number(r: Any, ref: dict[str, Any], path: str, field: str) -> float | None:
    """The number of a data value named for a number check (``age``: a value in years)."""
    value = _data_value(r, ref, path)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    number, _sep, unit = str(value).partition(" ")
    wanted = _NUMBER_UNITS.get(field)
    if wanted is None or unit.strip() != wanted:
        r.add(path, f"{value!r} is not a number in {wanted or 'the unit of ' + field}")
        return None
    read = float(number)
    return int(read) if read.is_integer() else read  # 75 reads as the TOML number 75


def _default_id(field: str, op: str, value: Any) -> str:
    text = Check(field=field, op=op, text="", value=value).describe()
    return "-".join(re.sub(r"[^a-z0-9.<>=!]+", " ", text.casefold()).split())


def _read_checks(r: _Reader, data: Any, path: str) -> tuple[Check, ...]:
    out = []
    for i, item in enumerate(r.array(data, path, "checks")):
        check = _read_check(r, item, f"{path}[{i}]")
        if check is not None:
            out.append(check)
    return tuple(out)


_TEMPLATE_KEYS: Final = file_keys(StepTemplate)
_DRUG_KINDS: Final = ("opioid", "methadone_adjuvant", "adjuvant")
_RANGE_DIMS: Final = ("mass", "mass_rate", "volume", "volume_rate")
_PER_KG_TARGET: Final = {"mass_per_mass": "dose", "volume_per_mass": "bolus_volume"}


def _step_fields(kind: str) -> dict[str, attrs.Attribute[Any]]:
    cls = STEP_KINDS.get(kind)
    if cls is None:
        return {}
    # "duration" is the template's sourced course length (it sets the step's stop day)
    skip = ("titration", "duration")
    return {a.name: a for a in attrs.fields(cls) if a.init and a.name not in skip}


def _read_range(r: _Reader, data: Any, path: str) -> DoseRange | None:
    table = r.table(data, path, "{ min = '15 mg/day', max = '30 mg/day', source, level }")
    if table is None:
        return None
    before = len(r.problems)
    r.keys(table, path, file_keys(DoseRange), "a dose range")
    read: dict[str, tuple[Any, str]] = {}
    for key in ("min", "max"):
        if key in table:
            got = r.quantity(table[key], f"{path}.{key}", _RANGE_DIMS)
            if got is not None:
                read[key] = got
    if "min" not in table and "max" not in table:
        r.add(path, "needs a min, a max or both")
    dims = {d for _q, d in read.values()}
    if len(dims) > 1:
        r.add(path, "min and max must be of the same kind (both per dose, or both per day)")
    source, level = r.provenance(table, path, required=True)
    note = r.text(table, "note", path)
    if len(r.problems) > before or not read:
        return None
    dim = dims.pop()
    lo = read.get("min")
    hi = read.get("max")
    if lo is not None and hi is not None and _canon(lo[0], dim) > _canon(hi[0], dim) + _TOL:
        r.add(path, "min is above max")
        return None
    return DoseRange(
        min=lo[0] if lo else None,
        max=hi[0] if hi else None,
        source=source,
        level=level,
        note=note,
        dimension=dim,
        min_value=_canon(lo[0], dim) if lo else None,
        max_value=_canon(hi[0], dim) if hi else None,
    )


def _read_start(
    r: _Reader, data: Any, path: str, kind: str, fields: Mapping[str, Any]
) -> StartRule | None:
    table = r.table(data, path, "{ method = 'per_kg', ... }")
    if table is None:
        return None
    before = len(r.problems)
    r.keys(table, path, file_keys(StartRule), "a start rule")
    method = r.choice(table, "method", path, START_METHODS, "fixed")
    note = r.text(table, "note", path)
    per_kg = None
    per_kg_value = None
    target = r.text(table, "field", path)
    scheme = r.text(table, "scheme", path)
    numbers = method in ("per_kg", "from_ome")
    if method == "per_kg":
        got = r.quantity(table.get("per_kg"), f"{path}.per_kg", tuple(_PER_KG_TARGET))
        if got is not None:
            per_kg, dim = got
            per_kg_value = _canon(per_kg, dim)
            expected = _PER_KG_TARGET[dim]
            if target and target != expected:
                r.add(f"{path}.field", f"a {dim.replace('_', ' ')} amount sets {expected!r}")
            target = expected
            if target not in _step_fields(kind):
                r.add(f"{path}.per_kg", f"a {kind!r} step has no {target!r} to set per kg")
    elif "per_kg" in table:
        r.add(f"{path}.per_kg", "is only used with method = 'per_kg'")
    if method == "from_ome":
        if not scheme:
            r.add(f"{path}.scheme", "is required: the named methadone conversion scheme")
        drug = str(fields.get("drug", "methadone" if kind == "methadone_adjuvant" else ""))
        if kind not in ("methadone_adjuvant", "opioid") or drug.casefold() != "methadone":
            r.add(f"{path}.method", "from_ome starts methadone only (a named methadone scheme)")
        if not any(k in fields for k in ("every", "times_per_day")):
            r.add(path, "from_ome needs the step's schedule ('every' or 'times_per_day')")
    elif scheme:
        r.add(f"{path}.scheme", "is only used with method = 'from_ome'")
    if method == "current" and kind not in _DRUG_KINDS:
        r.add(f"{path}.method", "'current' continues a drug step of the current regimen")
    source, level = r.provenance(table, path, required=numbers)
    if len(r.problems) > before:
        return None
    return StartRule(
        method=method,
        per_kg=per_kg,
        field=target,
        scheme=scheme,
        source=source,
        level=level,
        note=note,
        per_kg_value=per_kg_value,
    )


def _read_titration(r: _Reader, data: Any, path: str, kind: str) -> TitrationRule | None:
    table = r.table(data, path, "{ step = '5 mg', interval = '3 day', ceiling = '80 mg/day' }")
    if table is None:
        return None
    before = len(r.problems)
    r.keys(table, path, file_keys(TitrationRule), "titration")
    if kind not in _DRUG_KINDS:
        r.add(path, f"a {kind!r} step is not titrated")
    step = interval = ceiling = None
    step_dim = ceil_dim = ""
    days = None
    if "step" in table:
        got = r.quantity(table["step"], f"{path}.step", ("mass", "mass_rate"))
        if got is not None:
            step, step_dim = got
    if "interval" in table:
        got = r.quantity(table["interval"], f"{path}.interval", ("time",))
        if got is not None:
            interval = got[0]
            days = _whole_days(r, interval, f"{path}.interval")
    if "ceiling" in table:
        got = r.quantity(table["ceiling"], f"{path}.ceiling", ("mass", "mass_rate"))
        if got is not None:
            ceiling, ceil_dim = got
    if step is not None and interval is None:
        r.add(f"{path}.interval", "is required with a step size (the least time between steps)")
    if step is None and interval is None and ceiling is None:
        r.add(path, "needs a step, an interval or a ceiling")
    source, level = r.provenance(table, path, required=True)
    note = r.text(table, "note", path)
    if len(r.problems) > before:
        return None
    return TitrationRule(
        step=step,
        interval=interval,
        ceiling=ceiling,
        source=source,
        level=level,
        note=note,
        step_value=_canon(step, step_dim) if step is not None else None,
        step_dimension=step_dim,
        interval_days=days,
        ceiling_value=_canon(ceiling, ceil_dim) if ceiling is not None else None,
        ceiling_dimension=ceil_dim,
    )


def _read_monitoring(r: _Reader, data: Any, path: str) -> tuple[Monitoring, ...]:
    out = []
    for where, table, before in r.tables(
        data,
        path,
        "monitoring entries",
        "{ what = 'ecg', when = 'before the first dose' }",
        file_keys(Monitoring),
        "a monitoring entry",
    ):
        what = r.choice(table, "what", where, MONITORING_KINDS, MONITORING_KINDS[0])
        if "what" not in table:
            r.add(f"{where}.what", f"is required: one of {', '.join(MONITORING_KINDS)}")
        when = r.text(table, "when", where, required=True)
        read: dict[str, Any] = {}
        for key, dim in (("from_start", "time"), ("until", "time"), ("at_daily_dose", "mass_rate")):
            if key in table:
                if key != "at_daily_dose" and table[key] in ("0 day", "0 h"):
                    read[key] = (_units.as_quantity(table[key], "time"), 0)
                    continue
                got = r.quantity(table[key], f"{where}.{key}", (dim,))
                if got is not None:
                    days = _whole_days(r, got[0], f"{where}.{key}") if dim == "time" else None
                    read[key] = (got[0], days)
        numbers = any(k in table for k in ("from_start", "until", "at_daily_dose"))
        numbers = numbers and not all(
            table.get(k) in ("0 day", "0 h", None) for k in ("from_start", "until", "at_daily_dose")
        )
        source, level = r.provenance(table, where, required=numbers)
        if len(r.problems) > before:
            continue
        at = read.get("at_daily_dose")
        out.append(
            Monitoring(
                what=what,
                when=when,
                from_start=read["from_start"][0] if "from_start" in read else None,
                until=read["until"][0] if "until" in read else None,
                at_daily_dose=at[0] if at else None,
                source=source,
                level=level,
                from_day=read["from_start"][1] if "from_start" in read else None,
                until_day=read["until"][1] if "until" in read else None,
                at_daily_mg=_canon(at[0], "mass_rate") if at else None,
            )
        )
    return tuple(out)


def _read_deescalation(r: _Reader, data: Any, path: str) -> tuple[Deescalation, ...]:
    out = []
    for where, table, before in r.tables(
        data,
        path,
        "de-escalation rules",
        "{ trigger = '...', action = '...' }",
        file_keys(Deescalation),
        "a de-escalation rule",
    ):
        trigger = r.text(table, "trigger", where, required=True)
        action = r.text(table, "action", where, required=True)
        target = r.text(table, "target", where)
        pct: tuple[float, ...] = ()
        if "reduce_by_percent" in table:
            raw = table["reduce_by_percent"]
            values = raw if isinstance(raw, list) else [raw]
            if not 1 <= len(values) <= 2 or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < 100
                for v in values
            ):
                r.add(
                    f"{where}.reduce_by_percent",
                    "must be a percentage between 0 and 100, or a range of two, e.g. [25, 50]",
                )
            else:
                pct = tuple(float(v) for v in values)
        after = None
        if "after" in table:
            got = r.quantity(table["after"], f"{where}.after", ("time",))
            after = got[0] if got else None
        numbers = bool(pct) or "after" in table
        source, level = r.provenance(table, where, required=numbers)
        note = r.text(table, "note", where)
        if len(r.problems) > before:
            continue
        out.append(
            Deescalation(
                trigger=trigger,
                action=action,
                target=target,
                reduce_by_percent=pct,
                after=after,
                source=source,
                level=level,
                note=note,
            )
        )
    return tuple(out)


def _read_duration(r: _Reader, data: Any, path: str) -> Duration | None:
    table = r.table(data, path, "{ value = '4 day', source, level }")
    if table is None:
        return None
    before = len(r.problems)
    r.keys(table, path, file_keys(Duration), "a duration")
    got = r.quantity(table.get("value"), f"{path}.value", ("time",))
    source, level = r.provenance(table, path, required=True)
    note = r.text(table, "note", path)
    if len(r.problems) > before or got is None:
        return None
    return Duration(value=got[0], source=source, level=level, note=note)


def _message(exc: Exception) -> str:
    if isinstance(exc, UnitError):
        hint = f"; {exc.suggestion}" if exc.suggestion else ""
        return f"{exc.text!r} {exc.reason}{hint}"
    text = str(exc)
    field = getattr(exc, "field", "")
    return text[len(field) + 2 :] if field and text.startswith(field + ": ") else text


def _trial_kwargs(tmpl_fields: Mapping[str, Any], kind: str, start: StartRule) -> dict[str, Any]:
    """The step's fixed values with placeholders for what the start rule computes (for a trial
    construction that catches wrong drugs, routes and schedules when the file is read)."""
    kwargs = dict(tmpl_fields)
    for key, value in list(kwargs.items()):
        if isinstance(value, str) and "{side}" in value:
            kwargs[key] = value.replace("{side}", "left")
    if kind == "psoas_compartment_block":
        kwargs.setdefault("side", "left")
    if start.method == "per_kg":
        kwargs[start.field] = _units.Q(1, "mL" if start.field == "bolus_volume" else "mg")
    elif start.method == "from_ome" and "dose" not in kwargs:
        kwargs["dose"] = _units.Q(1, "mg")
    return kwargs


def _read_step(r: _Reader, data: Any, path: str) -> StepTemplate | None:
    table = r.table(data, path, "a step template with a 'kind'")
    if table is None:
        return None
    kind = table.get("kind")
    known_kinds = (*STEP_KINDS, "action")
    if kind not in known_kinds:
        close = difflib.get_close_matches(str(kind), known_kinds, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        if kind is None:
            r.add(f"{path}.kind", f"is required: one of {', '.join(known_kinds)}")
        else:
            r.add(f"{path}.kind", f"{kind!r} is not a step kind ({', '.join(known_kinds)}){hint}")
        return None
    kind = str(kind)
    before = len(r.problems)
    step_fields = _step_fields(kind)
    r.keys(table, path, (*_TEMPLATE_KEYS, *step_fields), f"a {kind!r} step template")
    sid = r.ident(table, "id", path, required=True)
    phase = r.ident(table, "phase", path, required=True)
    title = r.text(table, "title", path, required=True)
    purpose = r.text(table, "purpose", path, required=kind == "action")
    sources = r.source_ids(table, "sources", path, required=True)
    choice = r.ident(table, "choice", path, required=False)
    default = r.flag(table, "default", path)
    if default and not choice:
        r.add(f"{path}.default", "is only meaningful with a 'choice' group")
    when = _read_checks(r, table.get("when"), f"{path}.when")
    requires = _read_checks(r, table.get("requires"), f"{path}.requires")
    title = _own_values(r, title, f"{path}.title", {"when": when, "requires": requires})
    purpose = _own_values(r, purpose, f"{path}.purpose", {"when": when, "requires": requires})
    if_unknown = r.choice(table, "if_unknown", path, ("include", "exclude"), "exclude")
    fields: dict[str, Any] = {}
    for key, attr in step_fields.items():
        if key not in table:
            continue
        value = table[key]
        dim = attr.metadata.get("dimension")
        if dim is not None:
            got = r.quantity(value, f"{path}.{key}", (dim,))
            if got is not None:
                fields[key] = got[0]
        else:
            fields[key] = value
    start = StartRule()
    if "start" in table:
        got_start = _read_start(r, table["start"], f"{path}.start", kind, fields)
        if got_start is not None:
            start = got_start
    if kind == "action" and "start" in table:
        r.add(f"{path}.start", "an action has no dose")
    is_current = start.method == "current"
    level_required = kind != "action" and not is_current
    level = table.get("level")
    if level is None:
        if level_required:
            r.add(f"{path}.level", "is required: the level (V, S, U) of the step's own values")
        level = ""
    elif level not in _catalog.LEVELS:
        r.add(f"{path}.level", f"must be V, S or U, not {level!r}")
        level = ""
    dose_range = (
        _read_range(r, table["dose_range"], f"{path}.dose_range") if "dose_range" in table else None
    )
    titration = (
        _read_titration(r, table["titration"], f"{path}.titration", kind)
        if "titration" in table
        else None
    )
    monitoring = _read_monitoring(r, table.get("monitoring"), f"{path}.monitoring")
    deescalation = _read_deescalation(r, table.get("deescalation"), f"{path}.deescalation")
    duration = (
        _read_duration(r, table["duration"], f"{path}.duration") if "duration" in table else None
    )
    after = r.strings(table, "after", path)
    together = r.strings(table, "together_with", path)
    compute = ""
    if "compute" in table:
        compute = r.choice(table, "compute", path, COMPUTE_KINDS, "")
        if kind != "action":
            r.add(f"{path}.compute", "only an 'action' step computes for the receipt")
    if len(r.problems) > before:
        return None
    if kind != "action" and not is_current:
        try:
            STEP_KINDS[kind](**_trial_kwargs(fields, kind, start))
        except (StepError, UnitError, UnknownNameError) as exc:
            field = getattr(exc, "field", "") or ""
            r.add(f"{path}.{field}" if field else path, _message(exc))
            return None
        except TypeError as exc:
            r.add(path, f"missing or wrong keys: {exc}")
            return None
    return StepTemplate(
        id=sid,
        phase=phase,
        kind=kind,
        title=title,
        purpose=purpose,
        sources=sources,
        level=str(level),
        choice=choice,
        default=default,
        when=when,
        requires=requires,
        if_unknown=if_unknown,
        dose_range=dose_range,
        start=start,
        titration=titration,
        monitoring=monitoring,
        after=after,
        together_with=together,
        deescalation=deescalation,
        duration=duration,
        compute=compute,
        fields=fields,
    )


_TOP_KEYS: Final = ("$schema", *file_keys(Protocol))


def _read_evidence(r: _Reader, data: Any) -> Evidence | None:
    if data is None:
        r.add("evidence", "is required: { level = 'case-reports-and-series', summary = '...' }")
        return None
    table = r.table(data, "evidence", "{ level, summary, sources }")
    if table is None:
        return None
    before = len(r.problems)
    r.keys(table, "evidence", file_keys(Evidence), "the evidence table")
    level = r.choice(table, "level", "evidence", EVIDENCE_LEVELS, EVIDENCE_LEVELS[0])
    if "level" not in table:
        r.add("evidence.level", f"is required: one of {', '.join(EVIDENCE_LEVELS)}")
    summary = r.text(table, "summary", "evidence", required=True)
    sources = r.source_ids(table, "sources", "evidence", required=True)
    if len(r.problems) > before:
        return None
    return Evidence(level=level, summary=summary, sources=sources)


def _read_escalation(r: _Reader, data: Any) -> tuple[Escalation, ...]:
    out = []
    for where, table, before in r.tables(
        data,
        "escalation",
        "escalation rules",
        "{ when, action, to }",
        file_keys(Escalation),
        "an escalation rule",
    ):
        when = r.text(table, "when", where, required=True)
        action = r.text(table, "action", where, required=True)
        to = r.strings(table, "to", where)
        for j, pid in enumerate(to):
            if not _ID.match(pid):
                r.add(f"{where}.to[{j}]", f"{pid!r} is not a protocol id")
        source, level = r.provenance(table, where, required=False)
        if len(r.problems) > before:
            continue
        out.append(Escalation(when=when, action=action, to=to, source=source, level=level))
    return tuple(out)


@attrs.define(frozen=True)
class _StepRef:
    """What the cross-references of one raw ``[[step]]`` table name (read even when the table
    has other problems, so that every problem is reported at once)."""

    index: int
    id: str
    phase: str
    refs: tuple[tuple[str, int, str], ...]
    targets: tuple[tuple[int, str], ...]
    choice: str
    default: bool
    has_when: bool


def _raw_text(table: Mapping[str, Any], key: str) -> str:
    value = table.get(key)
    return value if isinstance(value, str) and _ID.match(value) else ""


def _step_refs(raw_steps: Sequence[Any]) -> list[_StepRef]:
    out = []
    for i, table in enumerate(raw_steps):
        if not isinstance(table, Mapping):
            continue
        refs: list[tuple[str, int, str]] = []
        for key in ("after", "together_with"):
            values = table.get(key)
            if isinstance(values, list):
                refs.extend((key, j, v) for j, v in enumerate(values) if isinstance(v, str))
        targets: list[tuple[int, str]] = []
        deesc = table.get("deescalation")
        if isinstance(deesc, list):
            for j, d in enumerate(deesc):
                if isinstance(d, Mapping) and isinstance(d.get("target"), str) and d["target"]:
                    targets.append((j, str(d["target"])))
        out.append(
            _StepRef(
                i,
                _raw_text(table, "id"),
                _raw_text(table, "phase"),
                tuple(refs),
                tuple(targets),
                _raw_text(table, "choice"),
                table.get("default") is True,
                bool(table.get("when")),
            )
        )
    return out


def _cross_check(r: _Reader, raw_phases: Sequence[Any], raw_steps: Sequence[Any]) -> None:
    phase_ids = [
        _raw_text(p, "id") for p in raw_phases if isinstance(p, Mapping) and _raw_text(p, "id")
    ]
    steps = _step_refs(raw_steps)
    step_ids = [s.id for s in steps if s.id]
    seen: set[str] = set()
    for s in steps:
        path = f"step[{s.index}]"
        if s.id and s.id in seen:
            r.add(f"{path}.id", f"{s.id!r} is used by another step")
        seen.add(s.id)
        if s.phase and s.phase not in phase_ids:
            close = difflib.get_close_matches(s.phase, phase_ids, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            r.add(f"{path}.phase", f"{s.phase!r} is not a phase id of this protocol{hint}")
        for key, j, ref in s.refs:
            if ref not in step_ids or ref == s.id:
                close = difflib.get_close_matches(ref, step_ids, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                r.add(f"{path}.{key}[{j}]", f"{ref!r} is not another step of this protocol{hint}")
        for j, target in s.targets:
            if target != "opioid" and target not in step_ids:
                r.add(
                    f"{path}.deescalation[{j}].target",
                    f"{target!r} is neither a step id nor 'opioid'",
                )
        if s.choice in _RESERVED_CHOICES:
            r.add(f"{path}.choice", f"{s.choice!r} is reserved; name the group otherwise")
        if s.choice and s.choice in step_ids:
            r.add(f"{path}.choice", f"{s.choice!r} is also a step id; name the group otherwise")
    groups: dict[str, list[_StepRef]] = {}
    for s in steps:
        if s.choice:
            groups.setdefault(s.choice, []).append(s)
    for name, members in groups.items():
        defaults = [s.index for s in members if s.default]
        if len(defaults) > 1:
            r.add(f"step[{defaults[1]}].default", f"the choice group {name!r} has two defaults")
        if len(members) < 2:
            r.add(
                f"step[{members[0].index}].choice", f"the choice group {name!r} has one option only"
            )
        if not defaults and not all(s.has_when for s in members):
            r.add(
                f"step[{members[0].index}].choice",
                f"the choice group {name!r} needs a default (or a 'when' on every option)",
            )
    phase_seen: set[str] = set()
    for j, raw in enumerate(raw_phases):
        ph = _raw_text(raw, "id") if isinstance(raw, Mapping) else ""
        if ph and ph in phase_seen:
            r.add(f"phase[{j}].id", f"{ph!r} is used by another phase")
        phase_seen.add(ph)


def protocol_from_dict(
    data: Mapping[str, Any], *, file: str = "<data>", lines: Mapping[str, int] | None = None
) -> Protocol:
    """Build a :class:`Protocol` from parsed TOML/JSON data; every problem raises at once.

    Raises
    ------
    ProtocolFileError
        With every problem found, each with its key path and (for TOML) its line.

    Example
    -------
    >>> from mps_analgesia.protocols import protocol_from_dict
    >>> protocol_from_dict({"id": "x"})
    Traceback (most recent call last):
      ...
    mps_analgesia.errors.ProtocolFileError: <data>: 7 problems
      <data>: title: is required (text)
      <data>: version: is required (text)
      <data>: status: is required: one of draft, endorsed, superseded
      <data>: evidence: is required: { level = 'case-reports-and-series', summary = '...' }
      <data>: indication: is required (text)
      <data>: phase: is required: at least one [[phase]]
      <data>: step: is required: at least one [[step]]
    """
    r = _Reader(lines or {})
    if not isinstance(data, Mapping):
        raise ProtocolFileError(file, [Problem("", "the file must hold a table (object)")])
    r.keys(data, "", _TOP_KEYS, "a protocol")
    pid = r.ident(data, "id", "", required=True)
    title = r.text(data, "title", "", required=True)
    version = r.text(data, "version", "", required=True)
    if version and not _VERSION.match(version):
        r.add("version", f"{version!r} must look like '1', '1.2' or '1.2.3'")
    status = r.choice(data, "status", "", STATUSES, STATUSES[0])
    if "status" not in data:
        r.add("status", f"is required: one of {', '.join(STATUSES)}")
    superseded_by = r.ident(data, "superseded_by", "", required=status == "superseded")
    evidence = _read_evidence(r, data.get("evidence"))
    indication = r.text(data, "indication", "", required=True)
    summary = r.text(data, "summary", "")
    sources = r.source_ids(data, "sources", "", required=False) if "sources" in data else ()
    ome_table = r.text(data, "ome_table", "") or "cdc-2022"
    phases = []
    if "phase" not in data:
        r.add("phase", "is required: at least one [[phase]]")
    for where, table, before in r.tables(
        data.get("phase"),
        "phase",
        "[[phase]] tables",
        "{ id, title, purpose }",
        file_keys(Phase),
        "a phase",
    ):
        ph_id = r.ident(table, "id", where, required=True)
        ph_title = r.text(table, "title", where, required=True)
        ph_purpose = r.text(table, "purpose", where)
        if len(r.problems) == before:
            phases.append(Phase(id=ph_id, title=ph_title, purpose=ph_purpose))
    eligibility = _read_checks(r, data.get("eligibility"), "eligibility")
    contraindication = _read_checks(r, data.get("contraindication"), "contraindication")
    caution = _read_checks(r, data.get("caution"), "caution")
    steps: list[tuple[int, StepTemplate]] = []
    if "step" not in data:
        r.add("step", "is required: at least one [[step]]")
    for i, item in enumerate(r.array(data.get("step"), "step", "[[step]] tables")):
        tmpl = _read_step(r, item, f"step[{i}]")
        if tmpl is not None:
            steps.append((i, tmpl))
    escalation = _read_escalation(r, data.get("escalation"))
    raw_phases, raw_steps = data.get("phase"), data.get("step")
    _cross_check(
        r,
        raw_phases if isinstance(raw_phases, list) else [],
        raw_steps if isinstance(raw_steps, list) else [],
    )
    if r.problems:
        located = sorted((p for p in r.problems if p.line is not None), key=lambda p: p.line or 0)
        raise ProtocolFileError(file, [*located, *(p for p in r.problems if p.line is None)])
    assert evidence is not None
    return Protocol(
        id=pid,
        title=title,
        version=version,
        status=status,
        evidence=evidence,
        indication=indication,
        summary=summary,
        superseded_by=superseded_by,
        sources=sources,
        ome_table=ome_table,
        phase=tuple(phases),
        eligibility=eligibility,
        contraindication=contraindication,
        caution=caution,
        step=tuple(s for _i, s in steps),
        escalation=escalation,
        path=file,
    )


def loads_protocol(text: str, *, format: str = "toml", file: str = "<string>") -> Protocol:
    """Read a protocol from TOML or JSON text (``format="toml" | "json"``).

    Example
    -------
    >>> from mps_analgesia.protocols import loads_protocol
    >>> loads_protocol('id = "x"\\ntitle = 3')
    Traceback (most recent call last):
      ...
    mps_analgesia.errors.ProtocolFileError: <string>: 7 problems
      <string>:2: title: must be text, not 3
      <string>: version: is required (text)
      <string>: status: is required: one of draft, endorsed, superseded
      <string>: evidence: is required: { level = 'case-reports-and-series', summary = '...' }
      <string>: indication: is required (text)
      <string>: phase: is required: at least one [[phase]]
      <string>: step: is required: at least one [[step]]
    """
    return _files.load_text(
        text, format=format, file=file, error=ProtocolFileError, build=protocol_from_dict
    )
