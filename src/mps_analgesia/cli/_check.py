"""``mps-analgesia check PATH...``: check case files and directories of them.

It prints a readable report per case (``--format text``, the default), one JSON document
(``--format json``: an object for a single file, a list otherwise), or one JSON report per line as
each case is checked (``--format jsonl``).  With more than one case file it ends with a summary
table (on standard output for text, on standard error for the JSON formats) and, when standard
error is a terminal, shows a progress bar there while it runs.

Exit codes: 0 no error-severity finding, 1 at least one, 2 unreadable or invalid input (any
file).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from ..errors import MpsAnalgesiaError
from ._common import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK
from ._parsing import add_format

if TYPE_CHECKING:
    from ..batch import CaseResult

__all__ = ["FORMATS", "add_parser", "run"]

FORMATS: Final = ("text", "json", "jsonl")


def add_parser(sub: Any) -> None:
    """Add ``check`` to the subcommands."""
    check = sub.add_parser(
        "check",
        help="check case files and print a report",
        description="Check case files (TOML or JSON), or every case file under a directory. "
        "Exit 0: no error finding; 1: at least one error finding; 2: unreadable or invalid "
        "input.",
    )
    check.add_argument(
        "cases",
        nargs="+",
        metavar="PATH",
        help="case files (.toml or .json) or directories (searched recursively)",
    )
    add_format(
        check,
        FORMATS,
        "text",
        "text for people (default); json: one document; jsonl: one JSON report per line, "
        "written as each case is checked",
    )
    check.add_argument(
        "--disable",
        action="append",
        default=[],
        metavar="RULE",
        help="leave a rule out (repeatable), e.g. --disable dose.max-single",
    )
    check.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="text format: print only the summary table, not each report",
    )
    check.set_defaults(handler=run)


class _Progress:
    """A one-line progress bar on a terminal; does nothing when the stream is not a terminal."""

    _INTERVAL: Final = 0.1  # seconds between redraws

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = total
        isatty = getattr(stream, "isatty", None)
        self.active = total > 1 and callable(isatty) and bool(isatty())
        self._last = 0.0
        self._shown = False

    def update(self, done: int, label: str) -> None:
        if not self.active:
            return
        now = time.monotonic()
        if done < self.total and now - self._last < self._INTERVAL:
            return
        self._last = now
        import shutil

        width = shutil.get_terminal_size((80, 20)).columns
        bar_width = 24
        filled = bar_width * done // self.total
        head = f"[{'#' * filled}{'.' * (bar_width - filled)}] {done}/{self.total} "
        room = max(0, width - len(head) - 1)
        if len(label) > room:
            label = "…" + label[len(label) - room + 1 :] if room > 1 else ""
        self.stream.write("\r\x1b[K" + head + label)
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the bar (before other output is written, and at the end)."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


#: One summary row: the file, its report counts (``None`` when unreadable), error findings.
_Row = tuple[str, dict[str, int] | None, bool]


def _summary(results: Sequence[_Row]) -> str:
    """The summary table: one row per case file, then the totals."""
    headers = ("errors", "warnings", "info", "not checked")
    keys = ("error", "warning", "info", "not_checked")
    name_width = max([len("file"), len("total"), *(len(r[0]) for r in results)])
    widths = [len(h) for h in headers]
    lines = [
        f"{'file':<{name_width}}  "
        + "  ".join(f"{h:>{w}}" for h, w in zip(headers, widths, strict=True))
    ]
    totals = dict.fromkeys(keys, 0)
    unreadable = 0
    for source, counts, _ in results:
        if counts is None:
            unreadable += 1
            lines.append(f"{source:<{name_width}}  unreadable")
            continue
        for k in keys:
            totals[k] += counts[k]
        cells = "  ".join(f"{counts[k]:>{w}}" for k, w in zip(keys, widths, strict=True))
        lines.append(f"{source:<{name_width}}  {cells}")
    cells = "  ".join(f"{totals[k]:>{w}}" for k, w in zip(keys, widths, strict=True))
    lines.append(f"{'total':<{name_width}}  {cells}")
    n = len(results)
    tail = f"{n} case file{'s' if n != 1 else ''} checked"
    if unreadable:
        tail += f", {unreadable} unreadable"
    with_errors = sum(1 for r in results if r[2])
    tail += f", {with_errors} with error findings"
    lines.append(tail)
    return "\n".join(lines)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``check``; returns the exit code."""
    from ..batch import iter_case_files, validate_many

    worst = EXIT_OK
    paths: list[Path] = []
    for raw in args.cases:
        found = list(iter_case_files([raw]))
        if not found:
            print(f"{raw}: no .toml or .json case files found in this directory\n", file=err)
            worst = EXIT_INPUT
        paths.extend(found)
    if not paths:
        return EXIT_INPUT
    single = len(args.cases) == 1 and len(paths) == 1 and not Path(args.cases[0]).is_dir()
    progress = _Progress(err, len(paths))
    collected: list[_Row] = []  # small rows, not reports: a big batch stays small in memory
    documents: list[dict[str, Any]] = []
    try:
        for done, result in enumerate(validate_many(paths, disable=args.disable), start=1):
            counts = result.report.counts if result.report is not None else None
            collected.append((result.source, counts, result.has_errors))
            progress.clear()
            worst = _emit(args, result, out, err, documents, worst)
            progress.update(done, result.source)
    except MpsAnalgesiaError as exc:  # e.g. an unknown rule id in --disable
        progress.clear()
        print(f"{exc}\n", file=err)
        return EXIT_INPUT
    finally:
        progress.clear()
    if args.format == "json":
        payload: Any = documents[0] if single else documents
        print(json.dumps(payload, indent=2, ensure_ascii=False), file=out)
    if len(collected) > 1:
        table = _summary(collected)
        if args.format == "text":
            print(table, file=out)
        else:
            print(table, file=err)
    return worst


def _emit(
    args: argparse.Namespace,
    result: CaseResult,
    out: TextIO,
    err: TextIO,
    documents: list[dict[str, Any]],
    worst: int,
) -> int:
    """Write one result in the chosen format; return the updated exit code."""
    if result.report is None:
        worst = EXIT_INPUT
        if args.format == "text":
            print(f"{result.error}\n", file=err)
    elif result.report.has_errors and worst == EXIT_OK:
        worst = EXIT_FINDINGS
    if args.format == "json":
        documents.append(result.to_dict())
    elif args.format == "jsonl":
        out.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        out.flush()
    elif result.report is not None and not args.quiet:
        assert result.case is not None
        title = f"{result.source}: {len(result.case.regimen)} step(s)"
        print(result.report.to_text(title=title), file=out)
        print(file=out)
    return worst
