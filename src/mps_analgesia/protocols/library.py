"""Where protocols live: the shipped library and user directories, loaded by id or path."""

from __future__ import annotations

import difflib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from .. import _files
from ..errors import (
    Problem,
    ProtocolFileError,
    UnknownNameError,
)
from .model import Protocol
from .reader import loads_protocol

# ---- where protocols live -----------------------------------------------------------------------


def protocol_dirs() -> tuple[Any, ...]:
    """The directories searched for protocols by id: the package data ``data/protocols/``.

    The shipped protocol files are package data (``src/mps_analgesia/data/protocols/`` in the
    repository, ``mps_analgesia/data/protocols`` inside an installed wheel), so a checkout and
    an installed wheel read the same files.

    Example
    -------
    >>> from mps_analgesia.protocols import protocol_dirs
    >>> len(protocol_dirs()) >= 1
    True
    """
    packaged = resources.files("mps_analgesia") / "data" / "protocols"
    return (packaged,) if packaged.is_dir() else ()


def _shipped() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for d in protocol_dirs():
        for entry in sorted(d.iterdir(), key=lambda e: e.name):
            name = entry.name
            if name.endswith(".toml") and entry.is_file():
                found.setdefault(name[: -len(".toml")], entry)
    return found


@cache
def _load_cached(key: str, text: str, fmt: str) -> Protocol:
    return loads_protocol(text, format=fmt, file=key)


def _load_entry(entry: Any, name: str) -> Protocol:
    if isinstance(entry, Path):
        text = _files.read_file(entry, ProtocolFileError)
    else:  # a packaged resource (inside a wheel or a zip)
        try:
            text = entry.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProtocolFileError(
                name, [Problem("", f"cannot be read: {exc.strerror}")]
            ) from None
        except UnicodeDecodeError:
            raise ProtocolFileError(name, [Problem("", "is not UTF-8 text")]) from None
    return _load_cached(name, text, _files.file_format(name))


def load_protocol(id_or_path: str | Path) -> Protocol:
    """Load a shipped protocol by id, or any protocol file (``.toml`` or ``.json``) by path.

    Raises
    ------
    UnknownNameError
        An id that is not a shipped protocol (with "did you mean" suggestions).
    ProtocolFileError
        A file with problems: every problem, with its key path and line.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.protocols import load_protocol
    >>> load_protocol("psoas-compartment-block").title
    'Psoas compartment block with local anaesthetic'
    """
    text = str(id_or_path)
    is_path = isinstance(id_or_path, Path) or text.endswith((".toml", ".json")) or "/" in text
    if is_path:
        path = Path(text)
        protocol = _load_entry(path, str(path))
        return protocol
    shipped = _shipped()
    entry = shipped.get(text)
    if entry is None:
        close = difflib.get_close_matches(text, list(shipped), n=3, cutoff=0.4)
        raise UnknownNameError("protocol", text, close, "id")
    protocol = _load_entry(entry, f"data/protocols/{text}.toml")
    if protocol.id != text:
        raise ProtocolFileError(
            f"data/protocols/{text}.toml",
            [Problem("id", f"{protocol.id!r} differs from the file name {text!r}", None)],
        )
    return protocol


def list_protocols() -> tuple[Protocol, ...]:
    """Every shipped protocol, sorted by id.

    Example
    -------
    >>> from mps_analgesia.protocols import list_protocols
    >>> [p.id for p in list_protocols()][:2]
    ['agar-2004-mechanism-directed', 'astro-2017-palliative-radiotherapy']
    """
    return tuple(load_protocol(pid) for pid in sorted(_shipped()))
