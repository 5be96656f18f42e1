"""``mps-analgesia audit EXPORT_DIR -o ROWS``: a FHIR Bulk Data export checked per patient.

Writes one row per patient (JSONL, or Parquet for ``.parquet`` with the ``audit`` extra; the
row's JSON Schema: ``mps-analgesia schema audit-row``).  Standard error carries a progress bar
(on a terminal) and the final summary: counts and file names only, never patient data.
Exit codes: 0 done, 1 a patient has an error finding, 2 the export cannot be read.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any, TextIO

from ..errors import MpsAnalgesiaError
from ._common import EXIT_FINDINGS, EXIT_OK, fail
from ._parsing import add_format, lower

__all__ = ["add_parser", "run"]


def _as_of(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or time: write e.g. 2026-11-30 or 2026-11-30T12:00:00Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_parser(sub: Any) -> None:
    """Add ``audit`` to the subcommands."""
    p = sub.add_parser(
        "audit",
        help="audit a FHIR Bulk Data export: one result per patient",
        description="Read a FHIR Bulk Data $export (its manifest, or its NDJSON files: Patient, "
        "Observation, MedicationRequest, MedicationStatement, ServiceRequest; gzip allowed), "
        "take each patient's regimen active at --as-of with the latest observations before it, "
        "validate it and write one row per patient. Corrupt lines are reported with file and "
        "line and skipped. A restart skips the partitions already written. Exit 0: done; 1: a "
        "patient has an error finding; 2: the export cannot be read.",
    )
    p.add_argument("export", metavar="EXPORT_DIR", help="the $export folder")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="the rows: FILE.jsonl (JSON lines), or FILE.parquet (needs the 'audit' extra)",
    )
    p.add_argument(
        "--as-of",
        type=_as_of,
        default=None,
        metavar="DATE",
        help="the time the regimen is taken at (default: the export's transactionTime)",
    )
    p.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="worker processes (default: every core); 1 runs inline",
    )
    p.add_argument(
        "--partitions",
        type=int,
        default=None,
        metavar="N",
        help="how many partitions of patients (default: from the export's size)",
    )
    p.add_argument(
        "--engine",
        type=lower,
        choices=("local", "dask"),
        default="local",
        help="local processes (default), or dask (partitions as tasks; needs --scheduler)",
    )
    p.add_argument(
        "--scheduler", default=None, metavar="ADDRESS", help="the Dask scheduler, tcp://host:8786"
    )
    add_format(p, ("text", "json"), "text", "the summary on stderr: text (default) or json")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the audit; returns the exit code."""
    from ..audit import audit_export, line_problems
    from ..batch import resolve_jobs
    from ._check import _Progress

    try:
        jobs = resolve_jobs(args.jobs)
    except ValueError as exc:
        return fail(err, exc)
    progress = _Progress(err, 0)
    progress.active = progress.active or _tty(err)

    def show(done: int, total: int) -> None:
        progress.total = total
        progress.update(done, "partitions")

    try:
        summary = audit_export(
            args.export,
            args.output,
            as_of=args.as_of,
            jobs=jobs,
            partitions=args.partitions,
            engine=args.engine,
            scheduler=args.scheduler,
            progress=show,
        )
    except (MpsAnalgesiaError, ValueError, OSError) as exc:
        progress.clear()
        return fail(err, exc)
    progress.clear()
    shown = 0
    for problem in line_problems(args.output):
        if shown < 20:
            print(f"{problem['file']}:{problem['line']}: {problem['reason']}", file=err)
        shown += 1
    if shown > 20:
        print(f"... and {shown - 20} more lines skipped", file=err)
    if args.format == "json":
        print(json.dumps(summary.to_dict(), indent=2), file=err)
    else:
        for line in summary.lines():
            print(line, file=err)
    return EXIT_FINDINGS if summary.with_errors else EXIT_OK


def _tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return callable(isatty) and bool(isatty())
