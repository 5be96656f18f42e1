"""What every subcommand shares: the exit codes and reading a TOML/JSON table."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, TextIO

__all__ = ["EXIT_FINDINGS", "EXIT_INPUT", "EXIT_OK", "fail", "read_table"]

#: Done, no error-severity finding.
EXIT_OK: Final = 0
#: The output holds an error-severity finding (or an eligibility check that failed).
EXIT_FINDINGS: Final = 1
#: Unreadable or invalid input, or a usage error.
EXIT_INPUT: Final = 2


def fail(err: TextIO, exc: BaseException) -> int:
    """Print the error's message (never a traceback) and return :data:`EXIT_INPUT`."""
    print(str(exc), file=err)
    return EXIT_INPUT


def read_table(path: Path) -> dict[str, Any]:
    """Read a TOML or JSON file into a dict (a CaseFileError with the reason if it cannot)."""
    import json
    import tomllib

    from ..errors import CaseFileError, Problem

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = Problem("", f"cannot read the file: {exc.strerror}")
        raise CaseFileError(str(path), [problem]) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise CaseFileError(str(path), [Problem("", f"not valid TOML/JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise CaseFileError(str(path), [Problem("", "the file must hold a table (an object)")])
    return data
