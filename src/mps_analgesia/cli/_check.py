"""``mps-analgesia check PATH...``: check case files and directories of them.

It prints a readable report per case (``--format text``, the default), one JSON document
(``--format json``: an object for a single file, a list otherwise), or one JSON report per line as
each case is checked (``--format jsonl``).  With more than one case file, text ends with a summary
table (one row per file, then the totals); the JSON formats write only the totals, on standard
error.  When standard error is a terminal, a progress line shows there while it runs.

Cases are checked on every core by default (``--jobs N``; ``--jobs 1`` inline), streamed (inputs
are never listed first: memory stays flat in the number of files), and written in input order
(``--unordered``: as they are done).  Every file gets a result or a problem; a closed pipe
(``check ... | head -1``) ends the run quietly.

Exit codes: 0 no error-severity finding, 1 at least one, 2 unreadable or invalid input (any
file).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from ..errors import MpsAnalgesiaError
from ._common import (
    EXIT_FINDINGS,
    EXIT_INPUT,
    EXIT_OK,
    STDIN,
    add_table_options,
    fail,
    load_case_arg,
    table_arg,
)
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
        help="case files (.toml or .json) or directories (searched recursively); - reads one "
        "case from standard input",
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
    check.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="text format: also print each data table's full edition and description (the "
        "report's compact 'Data tables' line names every table and edition either way)",
    )
    check.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="worker processes (default: every core); 1 checks inline, in this process",
    )
    check.add_argument(
        "--unordered",
        action="store_true",
        help="write results as they are done, not in input order (and walk directories unsorted)",
    )
    add_table_options(check, "for the daily OME and the checks that use it")
    check.add_argument(
        "--max-bytes",
        type=int,
        default=None,
        metavar="N",
        help="size limit of one case file in bytes (default 1 MiB); bigger files are refused",
    )
    check.set_defaults(handler=run)


class _Progress:
    """A one-line progress display on a terminal; does nothing when the stream is not one.

    With a ``total`` it draws a bar (``[####....] 3/8 file``); without one (a streamed batch,
    whose size is not known in advance) a count (``37 checked  file``).
    """

    _INTERVAL: Final = 0.1  # seconds between redraws

    def __init__(self, stream: TextIO, total: int | None, *, many: bool = True) -> None:
        self.stream = stream
        self.total = total
        isatty = getattr(stream, "isatty", None)
        wanted = total > 1 if total is not None else many
        self.active = wanted and callable(isatty) and bool(isatty())
        self._last = 0.0
        self._shown = False

    def update(self, done: int, label: str) -> None:
        if not self.active:
            return
        now = time.monotonic()
        last = self.total is not None and done >= self.total
        if not last and now - self._last < self._INTERVAL:
            return
        self._last = now
        import shutil

        width = shutil.get_terminal_size((80, 20)).columns
        if self.total:
            bar_width = 24
            filled = bar_width * min(done, self.total) // self.total
            head = f"[{'#' * filled}{'.' * (bar_width - filled)}] {done}/{self.total} "
        else:
            head = f"{done} checked  "
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


_KEYS: Final = ("error", "warning", "info", "not_checked")
_HEADERS: Final = ("errors", "warnings", "info", "not checked")


class _Summary:
    """The summary: totals in memory, the per-file rows spooled to a temporary file.

    A batch of a million files keeps a few numbers in memory; the table is written at the end.
    """

    def __init__(self, rows: bool) -> None:
        self.totals = dict.fromkeys(_KEYS, 0)
        self.files = 0
        self.unreadable = 0
        self.with_errors = 0
        self.width = len("total")
        # closed by close(), at the end of the run
        self._spool: Any = tempfile.TemporaryFile("w+", encoding="utf-8") if rows else None  # noqa: SIM115

    def add(self, source: str, counts: dict[str, int] | None, has_errors: bool) -> None:
        self.files += 1
        self.width = max(self.width, len(source))
        if counts is None:
            self.unreadable += 1
        else:
            for k in _KEYS:
                self.totals[k] += counts[k]
        self.with_errors += has_errors
        if self._spool is not None:
            cells = None if counts is None else [counts[k] for k in _KEYS]
            self._spool.write(json.dumps([source, cells]) + "\n")

    def _line(self, name: str, cells: list[int] | None, width: int) -> str:
        if cells is None:
            return f"{name:<{width}}  unreadable"
        widths = [len(h) for h in _HEADERS]
        return f"{name:<{width}}  " + "  ".join(
            f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)
        )

    def lines(self) -> Iterator[str]:
        """The table (rows when spooled, then the totals) and the closing sentence."""
        width = max(self.width, len("file"))
        widths = [len(h) for h in _HEADERS]
        yield f"{'file':<{width}}  " + "  ".join(
            f"{h:>{w}}" for h, w in zip(_HEADERS, widths, strict=True)
        )
        if self._spool is not None:
            self._spool.seek(0)
            for raw in self._spool:
                source, cells = json.loads(raw)
                yield self._line(source, cells, width)
        yield self._line("total", [self.totals[k] for k in _KEYS], width)
        n = self.files
        tail = f"{n} case file{'s' if n != 1 else ''} checked"
        if self.unreadable:
            tail += f", {self.unreadable} unreadable"
        yield tail + f", {self.with_errors} with error findings"

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()


#: What a worker sends back for one case: file, counts (None: unreadable), error findings,
#: text for standard output, text for standard error.
_Done = tuple[str, "dict[str, int] | None", bool, str, str]


def _report_text(report: Any, title: str, verbose: bool) -> str:
    """The text report; the editions' full descriptions only with ``--verbose`` (the compact
    ``id@edition`` line names every table either way)."""
    if verbose:
        return str(report.to_text(title=title))
    from ..render._build import report_document
    from ..render.text import to_text

    return f"{title}\n\n{to_text(report_document(report, full_editions=False))}"


def _render(fmt: str, quiet: bool, verbose: bool, result: CaseResult) -> _Done:
    """One result turned into its output (in the worker, so only text crosses processes)."""
    counts = result.report.counts if result.report is not None else None
    out = err = ""
    if fmt == "json":
        out = json.dumps(result.to_dict(), indent=2, ensure_ascii=False)
    elif fmt == "jsonl":
        out = json.dumps(result.to_dict(), ensure_ascii=False) + "\n"
    elif result.report is None:
        err = f"{result.error}\n\n"
    elif not quiet:
        assert result.case is not None
        title = f"{result.source}: {len(result.case.regimen)} step(s)"
        out = _report_text(result.report, title, verbose) + "\n\n"
    if fmt != "text" and result.report is None:
        err = ""
    return (result.source, counts, result.has_errors, out, err)


def _inputs(raws: list[str], err: TextIO, problems: list[str], ordered: bool) -> Iterator[Any]:
    """The case files of the arguments, streamed; an empty directory is a problem; ``-`` is
    a case on standard input."""
    from ..batch import CaseResult, Named, iter_case_files

    for raw in raws:
        if raw == STDIN:
            try:
                yield Named("<stdin>", load_case_arg(STDIN))
            except MpsAnalgesiaError as exc:
                yield Named("<stdin>", CaseResult("<stdin>", error=exc))
            continue
        found = False
        for path in iter_case_files([raw], ordered=ordered):
            found = True
            yield path
        if not found:
            problems.append(f"{raw}: no .toml or .json case files found in this directory\n")


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``check``; returns the exit code."""
    from ..batch import MAX_CASE_BYTES, check_many, resolve_jobs

    single = len(args.cases) == 1 and not Path(args.cases[0]).is_dir()
    try:
        jobs = 1 if single else resolve_jobs(args.jobs)
    except ValueError as exc:
        return fail(err, exc)
    max_bytes = args.max_bytes if args.max_bytes is not None else MAX_CASE_BYTES
    try:
        table = table_arg(args)
    except MpsAnalgesiaError as exc:  # a table file with problems: every one is listed
        return fail(err, exc)
    problems: list[str] = []
    post = functools.partial(_render, args.format, args.quiet, args.verbose)
    try:
        results = check_many(
            _inputs(args.cases, err, problems, not args.unordered),
            post,
            disable=args.disable,
            jobs=jobs,
            ordered=not args.unordered,
            max_bytes=max_bytes,
            options={"ome_table": table} if table is not None else None,
        )
    except MpsAnalgesiaError as exc:  # e.g. an unknown rule id in --disable
        print(f"{exc}\n", file=err)
        return EXIT_INPUT
    summary = _Summary(rows=args.format == "text")
    progress = _Progress(err, None, many=not single)
    worst = EXIT_OK
    try:
        worst = _write(args, results, summary, progress, out, err, single)
    except BrokenPipeError:  # the reader went away (``check ... | head -1``): stop quietly
        results.close()
        summary.close()
        _quiet_stdout(out)
        return EXIT_OK
    finally:
        progress.clear()
    for problem in problems:
        print(problem, file=err)
    if problems or summary.unreadable:
        worst = EXIT_INPUT
    if summary.files == 0:
        summary.close()
        return EXIT_INPUT
    if summary.files > 1 or not single:
        stream = out if args.format == "text" else err
        for line in summary.lines():
            print(line, file=stream)
    summary.close()
    return worst


def _write(
    args: argparse.Namespace,
    results: Generator[_Done, None, None],
    summary: _Summary,
    progress: _Progress,
    out: TextIO,
    err: TextIO,
    single: bool,
) -> int:
    worst = EXIT_OK
    first = True
    for source, counts, has_errors, text, problem in results:
        summary.add(source, counts, has_errors)
        if has_errors:
            worst = EXIT_FINDINGS
        progress.clear()
        if problem:
            err.write(problem)
        if args.format == "json" and not single:
            out.write(("[\n" if first else ",\n") + _indent(text))
        elif text:
            out.write(text if args.format != "json" else text + "\n")
        if args.format == "jsonl":
            out.flush()
        first = False
        progress.update(summary.files, source)
    if args.format == "json" and not single:
        out.write("[]\n" if first else "\n]\n")
    out.flush()
    return worst


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.split("\n"))


def _quiet_stdout(out: TextIO) -> None:
    """After a closed pipe: point standard output at /dev/null so the exit flush is silent."""
    if out is sys.stdout:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # pragma: no cover - no file descriptor
            pass
