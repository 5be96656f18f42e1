"""The file-reading toolkit shared by case files and protocol files.

One routine, :func:`load_text`, reads TOML or JSON text into a dict and a line map, guards it,
and hands it to a builder that collects every problem at once; case files
(:func:`mps_analgesia.io.loads_case`) and protocol files
(:func:`mps_analgesia.protocols.loads_protocol`) both go through it.  :func:`read_file` reads
a file from disk for them: regular files only (never a FIFO, a device or a directory), at most
:data:`~mps_analgesia._limits.MAX_FILE_BYTES`, UTF-8.

The guards (limits in :mod:`mps_analgesia._limits`):

- size of the text, nesting depth, items per array or table, length of a string;
- duplicate keys refused (JSON would keep the last one silently; TOML refuses them already);
- integers of more than :data:`~mps_analgesia._limits.MAX_INT_DIGITS` digits, JSON's ``NaN``
  and ``Infinity``, and lone surrogates (``"\\ud800"``, which no file can hold) refused.

Every refusal is a problem with its key path and line in the file's error class
(:class:`~mps_analgesia.errors.CaseFileError`, :class:`~mps_analgesia.errors.ProtocolFileError`).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

from . import _limits
from .errors import Problem

__all__ = ["file_format", "file_keys", "key_lines", "line_of", "load_text", "read_file"]

T = TypeVar("T")
#: A file error class: ``error(file, problems)``.
ErrorClass = Callable[[str, list[Problem]], Exception]


# ---- reading a file from disk ---------------------------------------------------------------


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _too_big(size: int, limit: int) -> str:
    return (
        f"is bigger than {limit} bytes ({size} bytes or more): a case or protocol file is a few "
        "kilobytes; raise the limit (max_bytes=, --max-bytes) if this one is meant"
    )


def read_file(
    path: str | os.PathLike[str],
    error: ErrorClass,
    *,
    max_bytes: int = _limits.MAX_FILE_BYTES,
) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes``, or ``error`` saying why not.

    A FIFO, a device (a link to ``/dev/zero``), a socket or a directory is refused without
    being read (opened non-blocking, checked again after opening); a bigger file is refused.
    """
    p = Path(path)
    name = str(p)

    def fail(message: str) -> Exception:
        return error(name, [Problem("", message)])

    try:
        info = os.stat(p)
        if not stat.S_ISREG(info.st_mode):
            raise fail(f"cannot be read: it is {_kind(info.st_mode)}")
        if info.st_size > max_bytes:
            raise fail(_too_big(info.st_size, max_bytes))
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(p, flags)
        with open(fd, "rb") as stream:
            info = os.fstat(stream.fileno())  # the file opened may not be the one stat()ed
            if not stat.S_ISREG(info.st_mode):
                raise fail(f"cannot be read: it is {_kind(info.st_mode)}")
            data = stream.read(max_bytes + 1)
    except OSError as exc:
        raise fail(f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise fail(_too_big(len(data), max_bytes))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"is not UTF-8 text (byte {exc.start})") from None


def file_format(path: str | os.PathLike[str]) -> str:
    """``"json"`` for a ``.json`` file, else ``"toml"``."""
    return "json" if str(path).lower().endswith(".json") else "toml"


# ---- keys from the attrs fields ------------------------------------------------------------


def file_keys(cls: type) -> tuple[str, ...]:
    """The keys a file may give for the attrs class ``cls``: its init fields, in order, except
    those whose metadata says they are derived (``metadata={"schema": False}``).

    The readers and the JSON Schema (:mod:`mps_analgesia.schema`) take their keys from here, so
    a new field is a new file key everywhere at once.
    """
    import attrs

    return tuple(
        a.name for a in attrs.fields(cls) if a.init and a.metadata.get("schema") is not False
    )


# ---- line numbers ---------------------------------------------------------------------------

_BARE_KEY: Final = r"[A-Za-z0-9_\-]+"
_QUOTED_KEY: Final = r"\"(?:[^\"\\]|\\.)*\"|'[^']*'"
_KEY_PART: Final = rf"(?:{_BARE_KEY}|{_QUOTED_KEY})"
_DOTTED: Final = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(rf"^\s*({_DOTTED})\s*=")
_PART = re.compile(_KEY_PART)


def _unquote(part: str) -> str:
    if part.startswith('"'):
        try:
            value = json.loads(part)
        except ValueError:
            return part[1:-1]
        return value if isinstance(value, str) else part[1:-1]
    if part.startswith("'"):
        return part[1:-1]
    return part


def _dotted(text: str) -> str:
    return ".".join(_unquote(m.group()) for m in _PART.finditer(text))


def key_lines(text: str) -> dict[str, int]:
    """Map key paths (``patient.weight``, ``step[2].dose``, ``step[2]``) of TOML to lines.

    Quoted keys (``"dose" = ...``) are unquoted, and the inside of multi-line strings
    (``\"\"\"...\"\"\"``, ``'''...'''``) is skipped, so the lines after them stay right.

    Example
    -------
    >>> key_lines('[patient]\\nnote = \"\"\"\\nage = 3\\n\"\"\"\\n"age" = 70\\n')
    {'patient': 1, 'patient.note': 2, 'patient.age': 5}
    """
    lines: dict[str, int] = {}
    section = ""
    counts: dict[str, int] = {}
    closing = ""
    for n, line in enumerate(text.splitlines(), start=1):
        if closing:
            if _closes(line, closing):
                closing = ""
            continue
        m = _HEADER.match(line)
        if m:
            name = _dotted(m.group(2))
            if m.group(1) == "[[":
                idx = counts.get(name, -1) + 1
                counts[name] = idx
                section = f"{name}[{idx}]"
            else:
                section = name
            lines.setdefault(section, n)
            continue
        k = _KEY.match(line)
        if k:
            key = _dotted(k.group(1))
            path = f"{section}.{key}" if section else key
            lines.setdefault(path, n)
            closing = _opens_multiline(line[k.end() :])
    return lines


def _opens_multiline(value: str) -> str:
    """The closing delimiter when ``value`` opens a multi-line string left open, else ``""``."""
    value = value.lstrip()
    for quote in ('"""', "'''"):
        if value.startswith(quote):
            rest = value[3:]
            return "" if _closes(rest, quote) else quote
    return ""


def _closes(line: str, quote: str) -> bool:
    if quote == "'''":
        return "'''" in line
    i = 0
    while True:
        j = line.find('"""', i)
        if j < 0:
            return False
        backslashes = len(line[:j]) - len(line[:j].rstrip("\\"))
        if backslashes % 2 == 0:
            return True
        i = j + 1


def line_of(lines: Mapping[str, int], path: str) -> int | None:
    """The line of ``path``, or of its nearest enclosing key that has one."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None


# ---- parsing with guards --------------------------------------------------------------------


class _Refused(ValueError):
    """A guard refused the text while it was parsed (duplicate key, huge integer ...)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(path, message)  # both in args: it pickles (to and from batch workers)

    def __str__(self) -> str:
        return self.message


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(key, f"the key {key!r} is given twice (which one is meant?)")
        out[key] = value
    return out


def _json_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > _limits.MAX_INT_DIGITS + 1:  # 10**12 itself has 13 digits
        raise _Refused("", f"has an integer of {digits} digits (at most {_limits.MAX_INT_DIGITS})")
    return int(text)


_BIG_INT: Final = 10**_limits.MAX_INT_DIGITS


def _float(text: str) -> float:
    """A float from file text, refusing what would silently become 0 or infinity."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        if text.strip().lstrip("+-").lower() in ("inf", "infinity"):
            raise _Refused("", f"{text} is not a finite number")
        raise _Refused("", f"has a number too large to compute with ({text[:40]})")
    if value == 0.0 and any(c in "123456789" for c in re.split("[eE]", text)[0]):
        raise _Refused("", f"has a number too small to represent ({text[:40]}), it would read as 0")
    return value


def _json_constant(name: str) -> Any:
    raise _Refused("", f"{name} is not a number (write a finite number)")


def _json_depth(text: str) -> int:
    """The deepest bracket nesting of JSON text, strings skipped (one linear pass)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _parse(text: str, format: str) -> tuple[Any, dict[str, int]]:
    if format == "json":
        if _json_depth(text) > _limits.MAX_DEPTH:
            raise _Refused("", f"nests deeper than {_limits.MAX_DEPTH} levels")
        try:
            data = json.loads(
                text,
                object_pairs_hook=_no_duplicates,
                parse_int=_json_int,
                parse_constant=_json_constant,
                parse_float=_float,
            )
        except json.JSONDecodeError as exc:
            raise _Refused("", f"is not valid JSON: {exc.msg} (line {exc.lineno})") from None
        return data, {}
    import tomllib

    try:
        data = tomllib.loads(text, parse_float=_float)
    except _Refused:
        raise
    except tomllib.TOMLDecodeError as exc:
        raise _Refused("", f"is not valid TOML: {exc}") from None
    except RecursionError:
        raise _Refused("", f"nests deeper than {_limits.MAX_DEPTH} levels") from None
    except ValueError as exc:  # an integer beyond Python's int-from-text limit
        raise _Refused("", f"is not valid TOML: {exc}") from None
    return data, key_lines(text)


def _walk(data: Any, problems: list[tuple[str, str]]) -> None:
    """Check every value below ``data`` against the limits (iteratively: no recursion)."""
    stack: list[tuple[str, Any, int]] = [("", data, 0)]
    while stack:
        path, value, depth = stack.pop()
        if depth > _limits.MAX_DEPTH:
            problems.append((path, f"nests deeper than {_limits.MAX_DEPTH} levels"))
            continue
        if isinstance(value, dict):
            if len(value) > _limits.MAX_ITEMS:
                problems.append((path, f"has more than {_limits.MAX_ITEMS} keys"))
                continue
            for key, item in reversed(value.items()):
                if not _is_text(key):
                    problems.append((path, f"has a key that is not text: {key!a}"))
                    continue
                stack.append((f"{path}.{key}" if path else key, item, depth + 1))
        elif isinstance(value, list):
            if len(value) > _limits.MAX_ITEMS:
                problems.append((path, f"has more than {_limits.MAX_ITEMS} items"))
                continue
            for i in range(len(value) - 1, -1, -1):
                stack.append((f"{path}[{i}]", value[i], depth + 1))
        elif isinstance(value, str):
            if len(value) > _limits.MAX_STRING:
                problems.append((path, f"is longer than {_limits.MAX_STRING} characters"))
            elif not _is_text(value):
                problems.append((path, "contains a lone surrogate (\\ud800-\\udfff), not text"))
        elif isinstance(value, bool):
            pass
        elif isinstance(value, int):
            if abs(value) > _BIG_INT:
                problems.append((path, f"is an integer larger than {_BIG_INT:.0e}"))
        elif isinstance(value, float):
            if not math.isfinite(value):
                problems.append((path, "is not a finite number"))
            elif abs(value) > _limits.MAX_MAGNITUDE:
                problems.append((path, f"is larger than {_limits.MAX_MAGNITUDE:g}"))


def _is_text(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def load_text(
    text: object,
    *,
    format: str,
    file: str,
    error: ErrorClass,
    build: Callable[..., T],
) -> T:
    """Parse TOML or JSON ``text``, guard it, then ``build(data, file=, lines=)``.

    Every problem the guards find is raised at once as ``error(file, problems)``, each with
    its key path and line; the builder collects the problems of the content the same way.
    """
    if format not in ("toml", "json"):
        raise error(file, [Problem("", f"unknown format {format!r}; use toml or json")])
    if not isinstance(text, str):
        raise error(file, [Problem("", f"must be text (str), not {type(text).__name__}")])
    if len(text) > _limits.MAX_FILE_BYTES:
        raise error(file, [Problem("", f"is longer than {_limits.MAX_FILE_BYTES} characters")])
    try:
        data, lines = _parse(text, format)
    except _Refused as exc:
        m = re.search(r"line (\d+)", exc.message)
        raise error(
            file, [Problem(exc.path, exc.message, int(m.group(1)) if m else None)]
        ) from None
    found: list[tuple[str, str]] = []
    _walk(data, found)
    if found:
        raise error(file, [Problem(p, m, line_of(lines, p)) for p, m in found])
    return build(data, file=file, lines=lines)
