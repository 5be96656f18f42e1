"""The ``mps-analgesia`` command line.

One module per subcommand, each with ``add_parser(sub)`` (its options) and a handler
``run(args, out, err) -> int`` set as the subparser's ``handler`` default:

============================  ==================================================================
module                        subcommands
============================  ==================================================================
``cli/_check.py``             ``check PATH...`` (case files and directories of them)
``cli/_educator.py``          ``protocols``, ``summarize``, ``plan``, ``convert``, ``assess``
``cli/_schema.py``            ``schema NAME``
``cli/_serve.py``             ``serve`` (the CDS Hooks service)
``cli/_parsing.py``           the parser: suggestions for mistakes, case-insensitive choices
``cli/_text.py``              text typed on the command line read into library calls
``cli/_common.py``            exit codes, reading a TOML/JSON table
============================  ==================================================================

A new option goes into the ``add_parser`` of its subcommand; a new subcommand is a new module
listed in :data:`_COMMANDS`.

Exit codes: 0 done (no error-severity finding), 1 at least one error finding (or a failed
eligibility check), 2 unreadable or invalid input, or a usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, Final, TextIO

from .._version import __version__
from ._check import FORMATS
from ._common import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK
from ._parsing import Parser

__all__ = ["EXIT_FINDINGS", "EXIT_INPUT", "EXIT_OK", "FORMATS", "main"]

#: The subcommand modules, in the order ``--help`` lists them.
_COMMANDS: Final = ("_check", "_educator", "_audit", "_schema", "_serve")


def _parser() -> argparse.ArgumentParser:
    """The whole command line's parser."""
    parser = Parser(
        prog="mps-analgesia",
        description="Decision support for the pain management of malignant psoas syndrome. "
        "It does not prescribe and does not replace clinical judgement.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in _COMMANDS:
        module: Any = importlib.import_module(f"{__name__}.{name}")
        adder = getattr(module, "add_parser", None) or module.add_subcommands
        adder(sub)
    return parser


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    result: int = args.handler(args, out, err)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Example
    -------
    >>> from mps_analgesia.cli import main
    >>> main(["check", "examples/mps-multimodal.toml"])  # doctest: +SKIP
    0
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if exc.code in (0, None) else EXIT_INPUT
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_INPUT
    return _run(args, sys.stdout, sys.stderr)
