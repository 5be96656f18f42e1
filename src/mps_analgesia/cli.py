"""The ``mps-analgesia`` command line.

``mps-analgesia check CASE...`` prints a readable report per case file; ``--format json`` for
machines.  Exit codes: 0 no error-severity finding, 1 at least one, 2 unreadable or invalid input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from ._version import __version__
from .errors import MpsAnalgesiaError

__all__ = ["main"]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mps-analgesia",
        description="Decision support for the pain management of malignant psoas syndrome. "
        "It does not prescribe and does not replace clinical judgement.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser(
        "check",
        help="check case files and print a report",
        description="Check case files (TOML or JSON). Exit 0: no error finding; 1: at least one "
        "error finding; 2: unreadable or invalid input.",
    )
    check.add_argument("cases", nargs="+", metavar="CASE", help="case files (.toml or .json)")
    check.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text for people (default), json for machines",
    )
    check.add_argument(
        "--disable",
        action="append",
        default=[],
        metavar="RULE",
        help="leave a rule out (repeatable), e.g. --disable dose.max-single",
    )
    return parser


def _check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .io import load_case
    from .rules import validate

    worst = EXIT_OK
    results = []
    for path in args.cases:
        try:
            case = load_case(path)
            report = validate(case.regimen, case.patient, disable=args.disable)
        except MpsAnalgesiaError as exc:
            worst = EXIT_INPUT
            if args.format == "json":
                results.append({"file": path, "error": str(exc)})
            else:
                print(f"{exc}\n", file=err)
            continue
        if report.has_errors and worst == EXIT_OK:
            worst = EXIT_FINDINGS
        if args.format == "json":
            results.append({"file": path, **report.to_dict()})
        else:
            print(report.to_text(title=f"{path}: {len(case.regimen)} step(s)"), file=out)
            print(file=out)
    if args.format == "json":
        payload = results[0] if len(results) == 1 else results
        print(json.dumps(payload, indent=2, ensure_ascii=False), file=out)
    return worst


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
    if args.command == "check":
        return _check(args, sys.stdout, sys.stderr)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return EXIT_INPUT  # pragma: no cover
