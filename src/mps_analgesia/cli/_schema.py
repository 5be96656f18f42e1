"""``mps-analgesia schema NAME``: print the JSON Schema of a file format."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from ._common import EXIT_OK
from ._parsing import add_format, lower

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Add ``schema`` to the subcommands."""
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of a case or protocol file",
        description="Print a JSON Schema generated from the model, for editor completion and "
        "checking of case and protocol files.",
    )
    from ._json import OUTPUT_SCHEMAS

    schema.add_argument(
        "name",
        type=lower,
        choices=("case", "protocol", "audit-row", *OUTPUT_SCHEMAS),
        help="which file format: case, protocol, audit-row (a row of mps-analgesia audit), or "
        "output-COMMAND for the --format json output of a subcommand (output-check ...)",
    )
    add_format(schema, ("json",), "json", "json (the only format of a schema)")
    schema.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Print the schema; returns the exit code."""
    if args.name == "audit-row":
        import json

        from ..audit import ROW_SCHEMA

        out.write(json.dumps(ROW_SCHEMA, indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    if args.name.startswith("output-"):
        import json

        from ._json import output_schema

        out.write(json.dumps(output_schema(args.name), indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    from ..schema import schema_text

    out.write(schema_text(args.name))
    return EXIT_OK
