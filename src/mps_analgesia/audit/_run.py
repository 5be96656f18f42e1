"""The audit run: partition the export by patient, check each partition, write the rows.

1. **Partition** (one pass over the export): each line goes, unparsed beyond its patient id, to
   partition ``crc32(patient id) mod P`` in a work folder beside the output (``OUT.work/``).
   ``P`` follows from the export's size (about :data:`PARTITION_BYTES` of NDJSON each, or
   ``partitions=``), so a partition's memory does not grow with the export.  Corrupt lines are
   recorded with file and line (``OUT.work/problems.jsonl``) and skipped.
2. **Check** each partition (inline, on ``jobs`` processes, or as Dask tasks): its lines grouped
   by patient, each patient's row computed (:func:`~._patient.audit_patient`), the rows in patient
   id order written to ``OUT.work/out/part-NNNNN.jsonl`` (atomically: written, then renamed).
3. **Join** the parts in partition order into ``OUT`` (JSONL; Parquet for ``.parquet``).

A restart with the same export, as-of time and partitions skips the partitioning when it was
finished and every partition already written: the rows are the same whichever way it ran.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import attrs

from ..errors import CaseFileError, MpsAnalgesiaError, Problem
from ._export import Export, iter_lines, open_export, parse_line, patient_of

__all__ = ["PARTITION_BYTES", "AuditSummary", "audit_export", "partition_of"]

#: About this many bytes of NDJSON per partition (the memory of one partition's check).
PARTITION_BYTES: Final = 1 << 20
_STATE: Final = "state.json"
_ENGINES: Final = ("local", "dask")


@attrs.define(frozen=True)
class AuditSummary:
    """What an audit did: patients, partitions (and how many a restart skipped), problems.

    No patient data: counts only.
    """

    output: str
    as_of: str
    partitions: int
    partitions_skipped: int
    patients: int
    with_errors: int
    with_warnings: int
    unread_orders: int
    corrupt_lines: int
    orphan_resources: int

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def lines(self) -> list[str]:
        """The summary table, for a terminal."""
        rows = [
            ("patients", self.patients),
            ("with error findings", self.with_errors),
            ("with warnings", self.with_warnings),
            ("unread orders", self.unread_orders),
            ("corrupt lines", self.corrupt_lines),
            ("resources without a patient", self.orphan_resources),
            ("partitions", self.partitions),
            ("partitions already written", self.partitions_skipped),
        ]
        width = max(len(r[0]) for r in rows)
        return [f"{name:<{width}}  {value:>9}" for name, value in rows] + [
            f"as of {self.as_of}; rows in {self.output}"
        ]


def partition_of(patient_id: str, partitions: int) -> int:
    """The partition of a patient: ``crc32(id) mod partitions`` (the same on every machine)."""
    return zlib.crc32(patient_id.encode("utf-8")) % partitions


def _default_partitions(export: Export) -> int:
    total = sum(p.stat().st_size for p in export.files)
    # gzip shrinks NDJSON about tenfold: count compressed files at that ratio
    total += sum(9 * p.stat().st_size for p in export.files if p.name.lower().endswith(".gz"))
    return max(1, -(-total // PARTITION_BYTES))


def _part_in(work: Path, k: int) -> Path:
    return work / "in" / f"part-{k:05d}.ndjson"


def _part_out(work: Path, k: int) -> Path:
    return work / "out" / f"part-{k:05d}.jsonl"


def _partition(export: Export, work: Path, partitions: int) -> dict[str, int]:
    """Pass 1: every line to its patient's partition file; corrupt lines recorded."""
    shutil.rmtree(work / "in", ignore_errors=True)
    (work / "in").mkdir(parents=True)
    handles = [open(_part_in(work, k), "wb") for k in range(partitions)]  # noqa: SIM115
    corrupt = orphans = 0
    try:
        with open(work / "problems.jsonl", "w", encoding="utf-8") as problems:
            for path in export.files:
                for number, raw, reason in iter_lines(path):
                    resource = None
                    if raw is not None:
                        resource, reason = parse_line(raw)
                    pid = patient_of(resource) if resource is not None else None
                    if resource is not None and pid is None:
                        reason = "no patient reference (Patient/ID in subject or patient)"
                        orphans += 1
                    elif resource is None:
                        corrupt += 1
                    if pid is None or raw is None:
                        problem = {"file": path.name, "line": number, "reason": reason}
                        problems.write(json.dumps(problem) + "\n")
                        continue
                    out = handles[partition_of(pid, partitions)]
                    out.write(json.dumps(pid).encode() + b"\t" + raw.rstrip(b"\r\n") + b"\n")
    finally:
        for h in handles:
            h.close()
    return {"corrupt_lines": corrupt, "orphan_resources": orphans}


def _patients(path: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The patients of a partition file, in id order, each with its resources."""
    groups: dict[str, list[bytes]] = {}
    with open(path, "rb") as stream:
        for line in stream:
            head, _, body = line.partition(b"\t")
            groups.setdefault(json.loads(head), []).append(body)
    for pid in sorted(groups):
        resources = []
        for body in groups.pop(pid):
            value = json.loads(body)
            resources.append(value)
        yield pid, resources


def check_partition(work: str, k: int, as_of: str) -> dict[str, int]:
    """Pass 2 for partition ``k``: write its rows; return its counts (a task for any engine)."""
    from ._patient import audit_patient

    folder = Path(work)
    when = datetime.fromisoformat(as_of)
    target = _part_out(folder, k)
    tmp = target.with_suffix(".tmp")
    counts = {"patients": 0, "with_errors": 0, "with_warnings": 0, "unread_orders": 0}
    with open(tmp, "w", encoding="utf-8") as out:
        for pid, resources in _patients(_part_in(folder, k)):
            row = audit_patient(pid, resources, when)
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            counts["patients"] += 1
            counts["with_errors"] += row["errors"] > 0
            counts["with_warnings"] += row["warnings"] > 0
            counts["unread_orders"] += row["unread_orders"]
    os.replace(tmp, target)
    _write_atomic(_part_counts(folder, k), json.dumps(counts))
    return counts


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a kill leaves either no file or the whole file.

    A partition counts as done when its counts file exists; written in place, a kill between
    creating and filling it left an empty file that the restart could not read.
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _part_counts(work: Path, k: int) -> Path:
    return work / "out" / f"part-{k:05d}.counts.json"


def _run_local(
    work: Path, todo: list[int], as_of: str, jobs: int, done: Callable[[], None]
) -> None:
    if jobs <= 1:
        for k in todo:
            check_partition(str(work), k, as_of)
            done()
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(jobs) as pool:
        futures = [pool.submit(check_partition, str(work), k, as_of) for k in todo]
        for future in as_completed(futures):
            future.result()
            done()


def _run_dask(
    work: Path, todo: list[int], as_of: str, scheduler: str | None, done: Callable[[], None]
) -> None:
    import importlib

    try:
        distributed: Any = importlib.import_module("distributed")
    except ImportError as exc:
        raise MpsAnalgesiaError(
            "--engine dask needs Dask distributed: pip install 'mps-analgesia[audit]' "
            f"(the import failed: {exc})"
        ) from None
    if not scheduler:
        raise MpsAnalgesiaError("--engine dask needs --scheduler ADDRESS (tcp://host:8786)")
    client_class, as_completed = distributed.Client, distributed.as_completed
    with client_class(scheduler) as client:
        futures = client.map(check_partition, [str(work)] * len(todo), todo, [as_of] * len(todo))
        for future in as_completed(futures):
            future.result()
            done()


def _write_output(work: Path, partitions: int, output: Path) -> None:
    tmp = output.with_name(output.name + ".tmp")
    if output.suffix.lower() == ".parquet":
        _write_parquet(work, partitions, tmp)
    else:
        with open(tmp, "wb") as out:
            for k in range(partitions):
                with open(_part_out(work, k), "rb") as part:
                    shutil.copyfileobj(part, out)
    os.replace(tmp, output)


def _write_parquet(work: Path, partitions: int, target: Path) -> None:
    import importlib

    try:
        pa: Any = importlib.import_module("pyarrow")
        pq: Any = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise MpsAnalgesiaError(
            f"{target.with_suffix('.parquet')}: Parquet output needs pyarrow: "
            "pip install 'mps-analgesia[audit]' (or write JSONL: -o rows.jsonl)"
        ) from None
    nested = ("findings", "unread", "problems")
    writer = None
    try:
        for k in range(partitions):
            with open(_part_out(work, k), encoding="utf-8") as part:
                rows = [json.loads(line) for line in part]
            if not rows:
                continue
            for row in rows:
                for key in nested:
                    row[key] = json.dumps(row[key], ensure_ascii=False)
            table = pa.Table.from_pylist(rows)
            if writer is None:
                writer = pq.ParquetWriter(str(target), table.schema)
            writer.write_table(table.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        pq.write_table(pa.table({"patient": pa.array([], pa.string())}), str(target))


def audit_export(
    export_dir: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    as_of: datetime | None = None,
    jobs: int = 1,
    partitions: int | None = None,
    engine: str = "local",
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AuditSummary:
    """Audit a FHIR Bulk Data export: one row per patient in ``output`` (JSONL or Parquet).

    Parameters
    ----------
    export_dir:
        The ``$export`` folder (its manifest, or its ``*.ndjson[.gz]`` files).
    output:
        The rows file: JSONL, or Parquet for a ``.parquet`` name (the ``audit`` extra).  The work
        folder ``OUTPUT.work/`` beside it holds the partitions; a restart reuses what it finds.
    as_of:
        The time the regimen is taken at (default: the export's ``transactionTime``, else now).
    jobs:
        Worker processes for the local engine (1: inline).
    partitions:
        How many partitions (default: from the export's size).
    engine, scheduler:
        ``"local"``, or ``"dask"`` with the scheduler's address (the work folder must be on a
        file system every worker sees).
    progress:
        Called as ``progress(done, total)`` after each partition.

    Example
    -------
    >>> import tempfile, pathlib
    >>> from mps_analgesia.audit import audit_export
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "p1"}\\n')
    40
    >>> audit_export(folder, folder / "rows.jsonl").patients
    1
    """
    if engine not in _ENGINES:
        raise MpsAnalgesiaError(f"unknown engine {engine!r}: use local or dask")
    export = open_export(export_dir)
    n_parts = partitions or _default_partitions(export)
    if n_parts < 1:
        raise ValueError(f"partitions must be at least 1, not {n_parts}")
    out_path = Path(output)
    work = out_path.with_name(out_path.name + ".work")
    state_file = work / _STATE
    previous = _read_state(state_file)
    fingerprint = export.fingerprint()
    when = as_of or export.transaction_time
    if when is None and previous is not None and previous.get("fingerprint") == fingerprint:
        when = datetime.fromisoformat(str(previous.get("as_of")))  # a restart: the same "now"
    when = when or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    stamp = when.isoformat()
    state = {"fingerprint": fingerprint, "as_of": stamp, "partitions": n_parts}
    if previous is None or {k: previous.get(k) for k in state} != state:
        shutil.rmtree(work, ignore_errors=True)
        (work / "out").mkdir(parents=True)
        stats = _partition(export, work, n_parts)
        _write_atomic(state_file, json.dumps({**state, **stats}))
    else:
        stats = {k: int(previous.get(k, 0)) for k in ("corrupt_lines", "orphan_resources")}
    todo = [k for k in range(n_parts) if not _part_counts(work, k).exists()]
    skipped = n_parts - len(todo)
    finished = [skipped]

    def done() -> None:
        finished[0] += 1
        if progress is not None:
            progress(finished[0], n_parts)

    if engine == "dask":
        _run_dask(work, todo, stamp, scheduler, done)
    else:
        _run_local(work, todo, stamp, jobs, done)
    totals = dict.fromkeys(("patients", "with_errors", "with_warnings", "unread_orders"), 0)
    for k in range(n_parts):
        for key, value in json.loads(_part_counts(work, k).read_text(encoding="utf-8")).items():
            totals[key] += value
    _write_output(work, n_parts, out_path)
    return AuditSummary(
        output=str(out_path),
        as_of=stamp,
        partitions=n_parts,
        partitions_skipped=skipped,
        corrupt_lines=stats["corrupt_lines"],
        orphan_resources=stats["orphan_resources"],
        **totals,
    )


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def line_problems(output: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The corrupt lines of the last run for ``output`` (file, line, reason)."""
    path = Path(output)
    problems = path.with_name(path.name + ".work") / "problems.jsonl"
    if not problems.exists():
        raise CaseFileError(str(problems), [Problem("", "no audit has run for this output")])
    with open(problems, encoding="utf-8") as stream:
        for line in stream:
            yield json.loads(line)
