"""``mps-analgesia schema NAME``: print the JSON Schema of a file format."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from ._common import EXIT_OK
from ._parsing import lower

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Add ``schema`` to the subcommands."""
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of a case or protocol file",
        description="Print a JSON Schema generated from the model, for editor completion and "
        "checking of case and protocol files.",
    )
    schema.add_argument("name", type=lower, choices=("case", "protocol"), help="which file format")
    schema.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Print the schema; returns the exit code."""
    from ..schema import schema_text

    out.write(schema_text(args.name))
    return EXIT_OK
