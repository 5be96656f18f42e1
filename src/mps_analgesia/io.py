"""Case files: TOML and JSON in and out, every problem reported at once with its key path and line.

The shape (TOML; JSON is the same structure)::

    [patient]
    age = 78
    weight = "52 kg"
    medications = []          # recorded: takes none (leave the key out when not recorded)
    anticoagulant = "none"    # recorded: takes none; or a table { drug, dose, every, ... }

    [[step]]
    kind = "opioid"
    drug = "oxycodone"
    dose = "10 mg"
    every = "12 h"

Every quantity is a string with its unit; a bare number where a unit is needed is an error that
says which unit is expected.  Keys equal the attrs field names of the step classes.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from . import _catalog, _files, _units
from .errors import CaseFileError, MpsAnalgesiaError, Problem, StepError, UnitError
from .errors import UnknownNameError as _UnknownName
from .patient import NO_ANTICOAGULANT, Anticoagulant, Patient
from .regimen import Case, Regimen, _start_date, _time_zone
from .steps import STEP_KINDS, Step, TitrationPoint

__all__ = [
    "case_from_dict",
    "case_to_dict",
    "dump_case",
    "dumps_case",
    "load_case",
    "loads_case",
]

_TOP_KEYS: Final = ("name", "description", "start_date", "time_zone", "patient", "step")


# ---- line numbers for TOML (kept for callers of the old private names) --------------------

_toml_lines = _files.key_lines
_line = _files.line_of


# ---- reading -----------------------------------------------------------------------------------


class _Collector:
    def __init__(self, lines: Mapping[str, int]) -> None:
        self.lines = lines
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message, _line(self.lines, path)))


def _init_fields(cls: type) -> dict[str, attrs.Attribute[Any]]:
    return {a.name: a for a in attrs.fields(cls) if a.init}


def _message(exc: Exception) -> str:
    if isinstance(exc, UnitError):
        hint = f"; {exc.suggestion}" if exc.suggestion else ""
        return f"{exc.text!r} {exc.reason}{hint}"
    if isinstance(exc, StepError | _UnknownName):
        text = str(exc)
        field = getattr(exc, "field", "")
        return text[len(field) + 2 :] if field and text.startswith(field + ": ") else text
    return str(exc)


def _check_fields(
    cls: type, data: Mapping[str, Any], path: str, out: _Collector, *, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Check keys and quantity values of one table; return the kwargs that read cleanly."""
    fields = _init_fields(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in skip:
            continue
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            out.add(f"{path}.{key}", f"unknown key for {_what(cls)}{hint}")
            continue
        dim = fields[key].metadata.get("dimension")
        if dim is not None and value is not None:
            example = fields[key].metadata.get("example", "")
            try:
                q = _units.as_quantity(value, dim, field=key, example=example)
            except UnitError as exc:
                out.add(f"{path}.{key}", _message(exc))
                continue
            magnitude = float(q.magnitude)
            if key in _ZERO_ALLOWED and magnitude < 0:
                out.add(f"{path}.{key}", f"cannot be negative ({value!r})")
                continue
            if key not in _ZERO_ALLOWED and not magnitude > 0:
                out.add(f"{path}.{key}", f"must be greater than zero, not {value!r}")
                continue
            kwargs[key] = q
            continue
        problem = _precheck(cls, key, value)
        if problem:
            out.add(f"{path}.{key}", problem)
            continue
        kwargs[key] = value
    return kwargs


#: Patient fields checked one by one before the patient is built.
_PATIENT_SCALARS: Final = ("age", "sex", "hepatic_impairment", "opioid_tolerant")
#: Quantity fields that may be zero (a last dose given just now).
_ZERO_ALLOWED: Final = ("last_dose_ago",)


def _precheck(cls: type, key: str, value: Any) -> str:
    """Check one choice or name field on its own, so that every bad field of a table is reported
    (not only the first the constructor meets).  Returns the problem, or ``""``."""
    from . import _catalog, patient, steps

    choices: dict[str, tuple[str, ...]] = {
        "formulation": _catalog.FORMULATIONS,
        "role": steps.ADJUVANT_ROLES,
        "side": steps.BLOCK_SIDES,
        "technique": steps.BLOCK_TECHNIQUES,
    }
    try:
        if key == "drug" and cls is not Anticoagulant and isinstance(value, str):
            _catalog.drug(value, field=key)
        elif key == "route" and isinstance(value, str):
            _catalog.route_formulations(steps._norm_choice(value))
        elif key in choices and isinstance(value, str) and cls is not Patient:
            steps._choice(key, value, choices[key])
        elif cls is Patient and key in _PATIENT_SCALARS and value is not None:
            patient.Patient(**{key: value})  # the patient's own check, one field at a time
    except (StepError, _UnknownName) as exc:
        return _message(exc)
    return ""


def _what(cls: type) -> str:
    kind = getattr(cls, "kind", "")
    if not kind:
        return cls.__name__
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind!r} step"


def _build(cls: type, kwargs: dict[str, Any], path: str, out: _Collector) -> Any:
    try:
        return cls(**kwargs)
    except (StepError, UnitError, _UnknownName) as exc:
        field = getattr(exc, "field", "") or ""
        out.add(f"{path}.{field}" if field else path, _message(exc))
    except TypeError as exc:
        out.add(path, f"missing or wrong keys: {exc}")
    except MpsAnalgesiaError as exc:
        out.add(path, str(exc))
    return None


def _read_titration(value: Any, path: str, out: _Collector) -> list[TitrationPoint] | None:
    if not isinstance(value, list):
        out.add(path, "must be a list of {day, dose} tables")
        return None
    points = []
    ok = True
    for j, item in enumerate(value):
        ipath = f"{path}[{j}]"
        if not isinstance(item, Mapping):
            out.add(ipath, "must be a table such as { day = 7, dose = '7.5 mg' }")
            ok = False
            continue
        before = len(out.problems)
        kwargs = _check_fields(TitrationPoint, item, ipath, out)
        if len(out.problems) > before:
            ok = False
            continue
        point = _build(TitrationPoint, kwargs, ipath, out)
        if point is None:
            ok = False
        else:
            points.append(point)
    return points if ok else None


def _read_step(data: Any, path: str, out: _Collector) -> Step | None:
    if not isinstance(data, Mapping):
        out.add(path, "must be a table with a 'kind'")
        return None
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in STEP_KINDS:
        close = difflib.get_close_matches(str(kind), list(STEP_KINDS), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(STEP_KINDS)
        if kind is None:
            out.add(f"{path}.kind", f"is required: one of {known}")
        else:
            out.add(f"{path}.kind", f"{kind!r} is not a step kind ({known}){hint}")
        return None
    cls = STEP_KINDS[kind]
    before = len(out.problems)
    kwargs = _check_fields(cls, data, path, out, skip=("kind",))
    if len(out.problems) > before and isinstance(kwargs.get("drug"), str):
        # The step cannot be built, so check its drug name on its own: report that too.
        try:
            _catalog.drug(kwargs["drug"], field="drug")
        except _UnknownName as exc:
            out.add(f"{path}.drug", _message(exc))
    if "titration" in kwargs:
        points = _read_titration(kwargs["titration"], f"{path}.titration", out)
        if points is not None:
            kwargs["titration"] = points
    if len(out.problems) > before:
        return None
    step: Step | None = _build(cls, kwargs, path, out)
    return step


def _read_patient(data: Any, out: _Collector) -> Patient | None:
    if data is None:
        return Patient()
    if not isinstance(data, Mapping):
        out.add("patient", "must be a table")
        return None
    before = len(out.problems)
    kwargs = _check_fields(Patient, data, "patient", out)
    anticoag = kwargs.get("anticoagulant")
    if isinstance(anticoag, Mapping):
        akw = _check_fields(Anticoagulant, anticoag, "patient.anticoagulant", out)
        if len(out.problems) == before:
            kwargs["anticoagulant"] = _build(Anticoagulant, akw, "patient.anticoagulant", out)
    elif anticoag is not None and not (
        isinstance(anticoag, str) and anticoag.strip().lower() == NO_ANTICOAGULANT
    ):
        out.add(
            "patient.anticoagulant",
            "must be a table { drug, dose, every, last_dose_ago }, or 'none' when the patient "
            "is recorded as taking no anticoagulant",
        )
    if len(out.problems) > before:
        return None
    patient: Patient | None = _build(Patient, kwargs, "patient", out)
    return patient


def case_from_dict(
    data: Mapping[str, Any], *, file: str = "<data>", lines: Mapping[str, int] | None = None
) -> Case:
    """Build a :class:`Case` from parsed TOML/JSON data; all problems raise one CaseFileError.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> case = mps.case_from_dict({"patient": {"weight": "60 kg"},
    ...     "step": [{"kind": "opioid", "drug": "morphine", "dose": "10 mg", "every": "4 h"}]})
    >>> case.regimen[0].daily_dose_mg
    60.0
    """
    out = _Collector(lines or {})
    if not isinstance(data, Mapping):
        raise CaseFileError(file, [Problem("", "the file must hold a table (object)")])
    for key in data:
        if key not in _TOP_KEYS:
            close = difflib.get_close_matches(key, _TOP_KEYS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            out.add(key, f"unknown top-level key (expected {', '.join(_TOP_KEYS)}){hint}")
    patient = _read_patient(data.get("patient"), out)
    raw_steps = data.get("step", [])
    steps: list[Step] = []
    if not isinstance(raw_steps, list):
        out.add("step", "must be an array of tables ([[step]] in TOML)")
    else:
        for i, raw in enumerate(raw_steps):
            step = _read_step(raw, f"step[{i}]", out)
            if step is not None:
                steps.append(step)
    calendar: dict[str, Any] = {}
    for key, check in (("start_date", _start_date), ("time_zone", _time_zone)):
        if data.get(key) is not None:
            try:
                calendar[key] = check(data[key])
            except StepError as exc:
                out.add(key, exc.reason)
    if "time_zone" in calendar and "start_date" not in calendar:
        out.add("time_zone", "is given without a start_date (the date of plan day 0)")
    texts: dict[str, str] = {}
    for key in ("name", "description"):
        value = data.get(key, "")
        if isinstance(value, str):
            texts[key] = value
        else:
            out.add(key, f"must be text, not {_shown_type(value)}")
    if out.problems:
        # file order: by line where lines are known (a stable sort keeps the rest in key order)
        problems = sorted(out.problems, key=lambda p: (p.line is None, p.line or 0))
        raise CaseFileError(file, problems)
    assert patient is not None
    name = texts["name"]
    regimen = Regimen(steps, name=name, **calendar)
    return Case(patient, regimen, name=name, description=texts["description"])


def _shown_type(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def loads_case(text: str, *, format: str = "toml", file: str = "<string>") -> Case:
    """Read a case from TOML or JSON text (``format="toml" | "json"``).

    The text is read by the shared file toolkit (:mod:`mps_analgesia._files`): size, depth,
    integer and string limits, duplicate keys refused; every problem is raised at once.
    """
    return _files.load_text(
        text, format=format, file=file, error=CaseFileError, build=case_from_dict
    )


def load_case(path: str | Path) -> Case:
    """Read a case file (``.toml`` or ``.json``).

    Every problem is reported at once in a :class:`CaseFileError`, each with its key path
    (``step[2].dose``) and, for TOML, its line.  Only a regular file of at most
    :data:`~mps_analgesia._limits.MAX_FILE_BYTES` is read.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> case = mps.load_case("examples/mps-multimodal.toml")
    >>> case.patient.age, len(case.regimen) > 3
    (62.0, True)
    """
    if not isinstance(path, str | os.PathLike):
        raise CaseFileError(repr(path)[:60], [Problem("", "is not a file path (str or Path)")])
    p = Path(path)
    text = _files.read_file(p, CaseFileError)
    case = loads_case(text, format=_files.file_format(p), file=str(p))
    if not case.name:
        case = attrs.evolve(case, name=p.stem)
    return case


# ---- writing -----------------------------------------------------------------------------------


def _unstructure(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kind = getattr(type(obj), "kind", "")
    if kind:
        out["kind"] = kind
    for a in attrs.fields(type(obj)):
        if not a.init:
            continue
        value = getattr(obj, a.name)
        default = a.default
        factory = getattr(default, "factory", None)
        if callable(factory) and hasattr(default, "takes_self"):
            default = factory()
        is_default = value is None or (not _units.is_quantity(value) and value == default)
        if is_default and a.name != "drug":
            continue
        if _units.is_quantity(value):
            out[a.name] = _units.format_quantity(value)
        elif attrs.has(type(value)):
            out[a.name] = _unstructure(value)
        elif isinstance(value, tuple):
            out[a.name] = [_unstructure(v) if attrs.has(type(v)) else v for v in value]
        elif isinstance(value, float) and value == int(value):
            out[a.name] = int(value)
        else:
            out[a.name] = value
    return out


def case_to_dict(case: Case) -> dict[str, Any]:
    """The case as plain data (strings with units), the same shape the loaders read."""
    data: dict[str, Any] = {}
    name = case.name or case.regimen.name
    if name:
        data["name"] = name
    if case.description:
        data["description"] = case.description
    if case.regimen.start_date is not None:
        data["start_date"] = case.regimen.start_date.isoformat()
    if case.regimen.time_zone is not None:
        data["time_zone"] = case.regimen.time_zone
    data["patient"] = _unstructure(case.patient)
    data["step"] = [_unstructure(s) for s in case.regimen]
    return data


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are TOML's, except that TOML also forbids a raw DEL character.
        text = json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
        return _SURROGATE.sub(_escape, text)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def dumps_case(case: Case, *, format: str = "toml") -> str:
    """Write a case as TOML or JSON text that :func:`loads_case` reads back equal."""
    data = case_to_dict(case)
    if format == "json":
        return _SURROGATE.sub(_escape, json.dumps(data, indent=2, ensure_ascii=False)) + "\n"
    lines: list[str] = []
    for key in ("name", "description"):
        if key in data:
            lines.append(f"{key} = {_toml_value(data[key])}")
    for key in ("start_date", "time_zone"):
        if key in data:
            lines.append(f"{key} = {_toml_value(data[key])}")
    if len(lines):
        lines.append("")
    lines.append("[patient]")
    lines.extend(f"{k} = {_toml_value(v)}" for k, v in data["patient"].items())
    for step in data["step"]:
        lines.append("")
        lines.append("[[step]]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in step.items())
    return "\n".join(lines) + "\n"


def dump_case(case: Case, path: str | Path | None = None, *, format: str | None = None) -> str:
    """Write a case to ``path`` (TOML, or JSON for ``.json``) and return the text.

    With no path, only the text is returned (TOML unless ``format="json"``).
    ``load_case(dump_case(case, f))`` gives back an equal case.
    """
    fmt = format or ("json" if path is not None and str(path).lower().endswith(".json") else "toml")
    text = dumps_case(case, format=fmt)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
