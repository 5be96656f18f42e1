"""Reading a FHIR Bulk Data ``$export``: its manifest or its NDJSON files, gzip allowed.

A bulk export is a folder of NDJSON files (one resource per line), often with the manifest the
server returned (``{"transactionTime": ..., "output": [{"type": ..., "url": ...}]}``).  With a
manifest, its ``output`` files are read (by the last part of each url, in the folder); without one,
every ``*.ndjson`` / ``*.ndjson.gz`` file in the folder.  A line that is not a JSON object is a
:class:`LineProblem` (file and line, never its content: it may hold patient data).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import attrs

from ..errors import CaseFileError, Problem

__all__ = [
    "RESOURCE_TYPES",
    "Export",
    "LineProblem",
    "open_export",
    "patient_of",
]

#: The resource types the audit reads; other types in an export are skipped (and counted).
RESOURCE_TYPES: Final = (
    "Patient",
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
    "ServiceRequest",
)
_SUFFIXES: Final = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")


@attrs.define(frozen=True)
class LineProblem:
    """A line of an export that could not be used: file (name only), line number, reason."""

    file: str
    line: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason}


@attrs.define(frozen=True)
class Export:
    """An export folder: its NDJSON files and its time (the manifest's ``transactionTime``)."""

    folder: Path
    files: tuple[Path, ...]
    transaction_time: datetime | None

    def fingerprint(self) -> list[list[Any]]:
        """Name, size and modification time of each file: a restart checks it is the same."""
        out: list[list[Any]] = []
        for p in self.files:
            st = p.stat()
            out.append([p.name, st.st_size, int(st.st_mtime)])
        return out


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _manifest(folder: Path) -> dict[str, Any] | None:
    for candidate in sorted(folder.glob("*.json")):
        try:
            data = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("output"), list):
            return data
    return None


def open_export(folder: str | os.PathLike[str]) -> Export:
    """Find the files of an export folder (its manifest when there is one).

    Raises
    ------
    CaseFileError
        When the folder does not exist, or holds no NDJSON file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise CaseFileError(str(root), [Problem("", "is not a folder (give the $export folder)")])
    manifest = _manifest(root)
    files: list[Path] = []
    when = None
    if manifest is not None:
        when = _parse_time(manifest.get("transactionTime"))
        for item in manifest["output"]:
            url = item.get("url") if isinstance(item, dict) else None
            if isinstance(url, str) and url:
                path = root / url.rstrip("/").rsplit("/", 1)[-1]
                if path.is_file():
                    files.append(path)
    if not files:
        files = sorted(
            p for p in root.iterdir() if p.is_file() and p.name.lower().endswith(_SUFFIXES)
        )
    if not files:
        raise CaseFileError(
            str(root), [Problem("", "holds no NDJSON file (*.ndjson, *.ndjson.gz) nor manifest")]
        )
    return Export(root, tuple(files), when)


def _open(path: Path) -> Any:
    """The file's bytes (decompressed for ``.gz``); the caller closes it (``with``)."""
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


#: A line longer than this is refused (a resource is a few kilobytes).
MAX_LINE_BYTES: Final = 1 << 20


def iter_lines(path: Path) -> Iterator[tuple[int, bytes | None, str]]:
    """``(line number, raw line or None, reason)`` for each non-empty line of a file.

    A file that cannot be read (a broken gzip stream) ends with one problem line.
    """
    number = 0
    try:
        with _open(path) as stream:
            while True:
                raw = stream.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    return
                number += 1
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                        raw = stream.readline(MAX_LINE_BYTES)
                    yield number, None, f"a line longer than {MAX_LINE_BYTES} bytes"
                    continue
                if raw.strip():
                    yield number, raw, ""
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        yield number + 1, None, f"the file cannot be read further: {type(exc).__name__}"


def parse_line(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """The resource of a line, or ``None`` and the reason (never the line's content)."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return None, f"not JSON ({type(exc).__name__})"
    if not isinstance(value, dict):
        return None, "not a JSON object"
    if not isinstance(value.get("resourceType"), str):
        return None, "no resourceType"
    return value, ""


def patient_of(resource: dict[str, Any]) -> str | None:
    """The patient id a resource belongs to (``Patient.id``, ``subject`` or ``patient``)."""
    if resource.get("resourceType") == "Patient":
        pid = resource.get("id")
        return pid if isinstance(pid, str) and pid else None
    for key in ("subject", "patient"):
        ref = resource.get(key)
        if isinstance(ref, dict):
            text = ref.get("reference")
            if isinstance(text, str) and text.startswith("Patient/") and len(text) > 8:
                return text[8:]
    return None
