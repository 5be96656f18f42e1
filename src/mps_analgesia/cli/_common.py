"""What every subcommand shares: the exit codes and reading a TOML/JSON table."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, TextIO

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_INPUT",
    "EXIT_OK",
    "STDIN",
    "add_table_options",
    "fail",
    "load_case_arg",
    "read_table",
    "stdin_text",
    "table_arg",
]

#: The file argument that means standard input.
STDIN: Final = "-"

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


def stdin_text() -> tuple[str, str]:
    """Standard input as text, and its format: JSON when it starts with ``{``, else TOML."""
    import sys

    from ..errors import CaseFileError, Problem

    try:
        text = sys.stdin.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseFileError("<stdin>", [Problem("", f"cannot be read: {exc}")]) from None
    return text, "json" if text.lstrip().startswith("{") else "toml"


def load_case_arg(arg: str | Path) -> Any:
    """The case of a file argument: a case file, or ``-`` for standard input."""
    from ..batch import read_case_file
    from ..io import loads_case

    if str(arg) == STDIN:
        text, fmt = stdin_text()
        return loads_case(text, format=fmt, file="<stdin>")
    return read_case_file(arg)


def read_table(path: Path) -> dict[str, Any]:
    """Read a TOML or JSON file (``-``: standard input) into a dict (a CaseFileError with the
    reason if it cannot)."""
    import json
    import tomllib

    from ..errors import CaseFileError, Problem

    is_json = path.suffix.lower() == ".json"
    try:
        if str(path) == STDIN:
            text, fmt = stdin_text()
            is_json = fmt == "json"
        else:
            text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = Problem("", f"cannot read the file: {exc.strerror}")
        raise CaseFileError(str(path), [problem]) from None
    try:
        data = json.loads(text) if is_json else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise CaseFileError(str(path), [Problem("", f"not valid TOML/JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise CaseFileError(str(path), [Problem("", "the file must hold a table (an object)")])
    return data


def add_table_options(parser: Any, what: str) -> None:
    """``--table ID`` and ``--table-file PATH`` (a local conversion table file) for ``what``."""
    parser.add_argument(
        "--table",
        default=None,
        metavar="ID",
        help=f"the OME conversion table {what} (an id: cdc-2022, palliative ...; default "
        "cdc-2022); with --table-file, the table of that file to use when it defines several",
    )
    parser.add_argument(
        "--table-file",
        default=None,
        metavar="PATH",
        help="a local conversion table file (TOML or JSON, the shipped tables' format) to use "
        "instead of a shipped table; reports name it and its edition",
    )


def table_arg(args: Any) -> Any:
    """The table the options name: ``None`` (the default), an id, or a loaded local table.

    A bad table file raises :class:`~mps_analgesia.errors.TableFileError` listing every problem.
    """
    path = getattr(args, "table_file", None)
    table = getattr(args, "table", None)
    if path is None:
        return table
    from ..conversion import load_table

    return load_table(path, table_id=table)
