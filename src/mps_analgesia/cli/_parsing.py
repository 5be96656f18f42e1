"""The argument parser of the command line: argparse with suggestions for mistakes.

argparse (the standard library) is enough here: :class:`Parser` adds what people expect from the
tools they like, without a runtime dependency:

- a mistyped subcommand, option or choice gets a suggestion (``chek`` → ``check``, ``--fromat``
  → ``--format``, ``--format jsn`` → ``json``), found with :mod:`difflib`;
- format names (and other fixed choices) are case-insensitive (``--format JSON``) through
  :func:`lower`, applied before argparse checks the choice;
- every usage error exits 2, the "invalid input" code.

Example
-------
>>> from mps_analgesia.cli._parsing import Parser
>>> p = Parser(prog="demo")
>>> sub = p.add_subparsers(dest="command", parser_class=Parser)
>>> c = sub.add_parser("check")
>>> _ = c.add_argument("--format", type=lower, choices=("text", "json"), default="text")
>>> p.parse_args(["check", "--format", "JSON"]).format
'json'
>>> suggest("chek", ["check", "schema"])
"; did you mean 'check'?"
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

__all__ = ["Parser", "add_format", "lower", "suggest"]


def lower(text: str) -> str:
    """The argument in lower case: fixed choices are matched case-insensitively."""
    return text.lower()


def suggest(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'X'?"`` for the closest candidate, or ``""`` when none is close."""
    names = [str(c) for c in candidates]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(word.lower(), [n.lower() for n in names], n=1)
        close = [n for n in names if close and n.lower() == close[0]][:1]
    return f"; did you mean {close[0]!r}?" if close else ""


def add_format(
    parser: argparse.ArgumentParser, choices: Sequence[str], default: str, help: str
) -> None:
    """``--format`` with case-insensitive ``choices``."""
    parser.add_argument(
        "--format", type=lower, choices=tuple(choices), default=default, metavar="FORMAT", help=help
    )


class Parser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` that suggests the closest name on a mistake."""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is not None and value not in choices:
            names = list(choices)
            shown = ", ".join(repr(str(c)) for c in names)
            what = "command" if isinstance(action, argparse._SubParsersAction) else "choice"
            message = f"invalid {what}: {value!r}{suggest(str(value), names)} (choose from {shown})"
            raise argparse.ArgumentError(action, message)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self._unknown(parsed, extras)
        return parsed, extras

    def _unknown(self, parsed: argparse.Namespace, extras: list[str]) -> NoReturn:
        """An option no parser knows: name it with the closest option of the command."""
        parser: argparse.ArgumentParser = self
        command = getattr(parsed, "command", None)
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and command in action.choices:
                parser = action.choices[command]
        options = [s for p in {self, parser} for a in p._actions for s in a.option_strings]
        first = extras[0]
        if first.startswith("-"):
            name = first.split("=", 1)[0]
            parser.error(f"unknown option {name!r}{suggest(name, options)}")
        parser.error(f"unexpected argument{'s' if len(extras) > 1 else ''}: {' '.join(extras)}")

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")
