"""Many cases at once: :func:`validate_many` yields one :class:`CaseResult` per case.

Cases may be :class:`~mps_analgesia.regimen.Case` objects or paths to case files; a directory
stands for every ``*.toml`` and ``*.json`` file under it (recursively, in sorted order).  Every
input gives a result: a file that cannot be read, is not a regular file, is too big or is invalid
gives a result with its ``error``, and so does any unexpected exception (named with its type);
the run goes on.  One broken file never stops a batch.

Inputs are streamed: directories are walked as the results are produced (one directory listing
in memory at a time, none with ``ordered=False``), and with ``jobs > 1`` at most a few chunks of
cases are in flight, so memory stays flat in the number of inputs.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs

from .errors import CaseFileError, MpsAnalgesiaError, Problem, expect
from .regimen import Case
from .report import Report

if TYPE_CHECKING:
    from .rules import RuleRegistry

__all__ = [
    "CASE_SUFFIXES",
    "MAX_CASE_BYTES",
    "CaseResult",
    "iter_case_files",
    "read_case_file",
    "to_frame",
    "to_records",
    "validate_many",
]

#: The file suffixes read as case files when a directory is given.
CASE_SUFFIXES: Final = (".toml", ".json")
#: The default size limit of one case file, in bytes (a case file is a few kilobytes).
MAX_CASE_BYTES: Final = 1 << 20

_T = TypeVar("_T")


@attrs.define(frozen=True)
class CaseResult:
    """The outcome for one case of a batch: its report, or the error that stopped it.

    Attributes
    ----------
    source:
        Where the case came from: the file path, or ``"<case N>"`` (0-based position) for a
        :class:`~mps_analgesia.regimen.Case` given directly.
    case:
        The case that was checked, or ``None`` when it could not be read.
    report:
        The :class:`~mps_analgesia.report.Report`, or ``None`` when the case could not be read
        or checked.
    error:
        The :class:`~mps_analgesia.errors.MpsAnalgesiaError` that stopped this case (an unreadable
        or invalid file, an unknown rule id, an unexpected exception wrapped with its type ...),
        or ``None``.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.batch import validate_many
    >>> result = next(validate_many(["no/such/case.toml"]))
    >>> result.ok, result.report is None, type(result.error).__name__
    (False, True, 'CaseFileError')
    """

    source: str
    case: Case | None = None
    report: Report | None = None
    error: MpsAnalgesiaError | None = attrs.field(default=None, eq=False)

    def __attrs_post_init__(self) -> None:
        if (self.report is None) == (self.error is None):
            raise ValueError("a CaseResult holds a report or an error (exactly one)")

    @property
    def ok(self) -> bool:
        """True when the case was read and checked (whatever the findings)."""
        return self.report is not None

    def to_records(self) -> list[dict[str, Any]]:
        """The report's rows (:meth:`Report.to_records`) with ``source`` first; a case that
        could not be read is one ``error`` row with the reason."""
        if self.report is None:
            message = str(self.error) if self.error is not None else "not checked"
            return [
                {"source": self.source, "outcome": "error", "severity": "", "code": "",
                 "step": None, "message": message, "missing": "", "sources": "", "level": ""}
            ]  # fmt: skip
        return [{"source": self.source, **row} for row in self.report.to_records()]

    @property
    def has_errors(self) -> bool:
        """True when the report has an error-severity finding (False for an unreadable case)."""
        return self.report is not None and self.report.has_errors

    @property
    def counts(self) -> dict[str, int]:
        """The report's counts (``error``, ``warning``, ``info``, ``not_checked`` ...); empty
        for a case that could not be read."""
        return self.report.counts if self.report is not None else {}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"file": ..., **report}`` or ``{"file": ..., "error": ...}``."""
        if self.report is not None:
            return {"file": self.source, **self.report.to_dict()}
        out: dict[str, Any] = {
            "file": self.source,
            "status": "unreadable",
            "error": str(self.error),
        }
        if isinstance(self.error, CaseFileError):
            out["problems"] = [
                {"path": p.path, "message": p.message, "line": p.line} for p in self.error.problems
            ]
        return out


#: Files with these endings are features files (``mps-analgesia assess``), not case files.
FEATURES_SUFFIXES: Final = (".features.toml", ".features.json")


def _is_case_file(name: str) -> bool:
    lowered = name.lower()
    return lowered.endswith(CASE_SUFFIXES) and not lowered.endswith(FEATURES_SUFFIXES)


def _walk(directory: Path, ordered: bool) -> Iterator[Path]:
    """The case files under ``directory``, depth first; by name when ``ordered``."""
    try:
        with os.scandir(directory) as listing:
            entries: Iterable[os.DirEntry[str]] = (
                sorted(listing, key=lambda e: e.name) if ordered else list(listing)
            )
    except OSError:
        yield directory  # reading it reports why
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(Path(entry.path), ordered)
        elif _is_case_file(entry.name):
            yield Path(entry.path)


def iter_case_files(
    paths: Iterable[str | os.PathLike[str]], *, ordered: bool = True
) -> Iterator[Path]:
    """Expand paths: a directory gives its ``*.toml``/``*.json`` files (recursively, sorted).

    Features files (``*.features.toml``, ``*.features.json``, for ``assess``) are left out.

    A path that is not a directory is yielded as given (even if it does not exist: reading it
    then reports the problem).  Hidden files and directories (``.git`` ...) are skipped, and
    symbolic links to directories are not followed (no loops).  Paths are produced as the walk
    goes: one directory's listing is in memory at a time; with ``ordered=False`` the files come
    in the order the file system lists them.

    Example
    -------
    >>> from mps_analgesia.batch import iter_case_files
    >>> [p.name for p in iter_case_files(["examples"])][:2]
    ['adjuvants.toml', 'fentanyl-patch.toml']
    """
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            yield path
            continue
        yield from _walk(path, ordered)


def read_case_file(path: str | os.PathLike[str], *, max_bytes: int = MAX_CASE_BYTES) -> Case:
    """Read one case file, refusing what is not a regular file or is bigger than ``max_bytes``.

    A FIFO, a device (a link to ``/dev/zero``), a socket or a directory is refused without
    being read; a file is read up to ``max_bytes`` and refused beyond.

    Raises
    ------
    CaseFileError
        With the reason, and the problems of an invalid case.

    Example
    -------
    >>> from mps_analgesia.batch import read_case_file
    >>> read_case_file("examples/radiotherapy.toml").patient.age is not None
    True
    >>> read_case_file("examples/radiotherapy.toml", max_bytes=10)
    Traceback (most recent call last):
    ...
    mps_analgesia.errors.CaseFileError: examples/radiotherapy.toml: ...is bigger than 10 bytes...
    """
    from . import _files
    from .io import loads_case

    p = Path(path)
    text = _files.read_file(p, CaseFileError, max_bytes=max_bytes)
    fmt = "json" if p.suffix.lower() == ".json" else "toml"
    case = loads_case(text, format=fmt, file=str(p))
    if not case.name:
        case = attrs.evolve(case, name=p.stem)
    return case


def _unexpected(source: str, exc: Exception) -> CaseFileError:
    """Any exception at the file boundary, named with its type (a defect: please report it)."""
    reason = str(exc) or "(no message)"
    if len(reason) > 300:
        reason = reason[:300] + "…"
    return CaseFileError(
        source,
        [Problem("", f"unexpected {type(exc).__name__}: {reason} (a defect of the library)")],
    )


# ---- the work of one case, inline or in a worker process ----------------------------------------


@attrs.define(frozen=True)
class _Settings:
    registry: Any
    options: Mapping[str, Any] | None
    max_bytes: int


_SETTINGS: _Settings | None = None  # in a worker process: set by _init_worker
_Work = tuple[str, Any]  # (source, Case | Path | CaseResult)


def _check(source: str, item: Any, settings: _Settings) -> CaseResult:
    """One case: read it (a path) and validate it; never raises (a result or an error)."""
    from .rules import validate

    if isinstance(item, CaseResult):
        return item
    case: Case | None = item if isinstance(item, Case) else None
    try:
        if case is None:
            case = read_case_file(item, max_bytes=settings.max_bytes)
        report = validate(
            case.regimen, case.patient, rules=settings.registry, options=settings.options
        )
    except MpsAnalgesiaError as exc:
        return CaseResult(source, case, error=exc)
    except Exception as exc:  # the file boundary: one bad file never stops a batch
        return CaseResult(source, case, error=_unexpected(source, exc))
    return CaseResult(source, case, report)


def _init_worker(settings: _Settings, post: Callable[[CaseResult], Any] | None) -> None:
    global _SETTINGS, _POST
    _SETTINGS = settings
    _POST = post


_POST: Callable[[CaseResult], Any] | None = None


def _run_chunk(chunk: list[_Work]) -> list[Any]:
    """In a worker: check a chunk of cases (and post-process each result, e.g. render it)."""
    assert _SETTINGS is not None
    results: list[Any] = []
    for source, item in chunk:
        result = _check(source, item, _SETTINGS)
        if _POST is not None:
            try:
                results.append(_POST(result))
            except Exception as exc:
                results.append(_POST(CaseResult(source, error=_unexpected(source, exc))))
        else:
            results.append(result)
    return results


@attrs.define(frozen=True)
class Named:
    """A case (or the result of one that could not be read) with the name to report it by,
    e.g. ``Named("<stdin>", case)``; accepted by :func:`validate_many` like a path."""

    source: str
    item: Case | CaseResult


def _work(cases: Iterable[Any], ordered: bool) -> Iterator[_Work]:
    """``(source, item)`` for each case, lazily: directories expanded as the walk goes."""
    position = 0
    for item in cases:
        if isinstance(item, Named):
            yield item.source, item.item
            continue
        if isinstance(item, Case):
            yield f"<case {position}>", item
            position += 1
            continue
        position += 1
        if not isinstance(item, str | os.PathLike):
            error = CaseFileError(
                repr(item), [Problem("", f"is neither a Case nor a path ({type(item).__name__})")]
            )
            yield f"<case {position - 1}>", CaseResult(f"<case {position - 1}>", error=error)
            continue
        for path in iter_case_files([item], ordered=ordered):
            yield str(path), path


def _chunks(work: Iterator[_Work], size: int) -> Iterator[list[_Work]]:
    chunk: list[_Work] = []
    for item in work:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def resolve_jobs(jobs: int | None) -> int:
    """``None`` or ``0``: every core the process may use; otherwise ``jobs`` (at least 1)."""
    if not jobs:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not on Linux
            return max(1, os.cpu_count() or 1)
    if jobs < 0:
        raise ValueError(f"jobs must be a positive number, or 0 for every core, not {jobs}")
    return jobs


def _map(
    work: Iterator[_Work],
    settings: _Settings,
    *,
    jobs: int,
    ordered: bool,
    post: Callable[[CaseResult], _T] | None = None,
    chunk_size: int = 16,
) -> Generator[Any, None, None]:
    """Check the work inline (``jobs == 1``) or on ``jobs`` worker processes.

    In parallel, at most ``4 × jobs`` chunks are in flight (memory flat in the number of
    inputs); results come in input order, or as they are done with ``ordered=False``.  A worker
    that dies (killed, out of memory, a crash) loses its chunk: each case of it is then checked
    alone in a fresh process, so only a case that kills its worker again gets that problem, and
    a new pool takes the rest of the batch.
    """
    if jobs <= 1:
        for source, item in work:
            result = _check(source, item, settings)
            yield post(result) if post is not None else result
        return
    pool = _Pool(jobs, settings, post)
    window = 4 * jobs
    pending: deque[tuple[Any, list[_Work]]] = deque()
    try:
        for chunk in _chunks(work, chunk_size):
            pending.append((pool.submit(chunk), chunk))
            if len(pending) >= window:
                yield from _drain(pending, ordered, pool)
        while pending:
            yield from _drain(pending, ordered, pool)
    finally:
        for future, _ in pending:
            future.cancel()
        pool.shutdown()


class _Pool:
    """A process pool that is replaced when one of its workers dies."""

    def __init__(self, jobs: int, settings: _Settings, post: Callable[[CaseResult], Any] | None):
        self.jobs = jobs
        self.settings = settings
        self.post = post
        self._executor = self._new(jobs)

    def _new(self, jobs: int) -> Any:
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(
            jobs, initializer=_init_worker, initargs=(self.settings, self.post)
        )

    def submit(self, chunk: list[_Work]) -> Any:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self._executor.submit(_run_chunk, chunk)
        except BrokenProcessPool:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new(self.jobs)
            return self._executor.submit(_run_chunk, chunk)

    def alone(self, item: _Work) -> Any:
        """One case in a fresh one-worker process (after its chunk's worker died)."""
        from concurrent.futures.process import BrokenProcessPool

        source = item[0]
        with self._new(1) as single:
            try:
                return single.submit(_run_chunk, [item]).result()[0]
            except BrokenProcessPool:
                reason = "the worker process died while checking it (killed, or out of memory)"
                error = CaseResult(source, error=CaseFileError(source, [Problem("", reason)]))
            except Exception as exc:  # e.g. a case that cannot be sent to a process
                error = CaseResult(source, error=_unexpected(source, exc))
        return self.post(error) if self.post is not None else error

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def _drain(pending: deque[tuple[Any, list[_Work]]], ordered: bool, pool: _Pool) -> Iterator[Any]:
    """Yield the results of the oldest chunk (ordered), or of every finished chunk."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    if ordered:
        done = [pending.popleft()]
    else:
        finished, _ = wait([f for f, _ in pending], return_when=FIRST_COMPLETED)
        done = [p for p in pending if p[0] in finished]
        for p in done:
            pending.remove(p)
    for future, chunk in done:
        try:
            results = future.result()
        except BrokenProcessPool:  # a worker died: check each case of the chunk alone
            results = [pool.alone(item) for item in chunk]
        except Exception as exc:  # e.g. data that cannot cross to a process
            results = []
            for source, _ in chunk:
                error = CaseResult(source, error=_unexpected(source, exc))
                results.append(pool.post(error) if pool.post is not None else error)
        yield from results


def _settings(
    rules: RuleRegistry | None,
    disable: Iterable[str],
    options: Mapping[str, Any] | None,
    max_bytes: int,
) -> _Settings:
    from .rules import default_rules

    registry = rules if rules is not None else default_rules()
    disabled = tuple(disable)
    if disabled:
        registry = registry.disable(*disabled)  # an unknown id fails here, not once per case
    return _Settings(registry, options, max_bytes)


def validate_many(
    cases: Iterable[Case | str | os.PathLike[str]],
    *,
    rules: RuleRegistry | None = None,
    disable: Iterable[str] = (),
    options: Mapping[str, Any] | None = None,
    jobs: int | None = 1,
    ordered: bool = True,
    max_bytes: int = MAX_CASE_BYTES,
) -> Iterator[CaseResult]:
    """Check many cases, yielding one :class:`CaseResult` per case, in order.

    Parameters
    ----------
    cases:
        :class:`~mps_analgesia.regimen.Case` objects, paths to case files (``.toml``/``.json``),
        or directories (every case file under them, recursively).  Any iterable, consumed
        lazily: a generator of a million paths is never held as a list.
    rules, disable, options:
        As for :func:`mps_analgesia.validate`.  An unknown rule id in ``disable`` raises at once
        (:class:`~mps_analgesia.errors.UnknownNameError`), before any case is read.
    jobs:
        Worker processes: 1 (the default) checks inline, in this process; ``N`` uses ``N``
        processes; ``None`` or 0 every core.  The rule registry, options and cases must cross to
        the workers: with the default (``fork``) start method on Linux they are inherited, but
        where processes are spawned (macOS, Windows, Python's ``forkserver``) they are pickled,
        and a custom registry holding lambdas or functions defined in a notebook cannot be —
        such cases then come back with that error.  Keep ``jobs=1`` for custom rules.
    ordered:
        Results in input order (default); ``False`` gives them as they are done and walks
        directories in the file system's order (no listing sorted).
    max_bytes:
        The size limit of one case file; bigger files are refused unread.

    Yields
    ------
    CaseResult
        With the report, or with the error of a case that could not be read or checked; the run
        goes on.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.batch import validate_many
    >>> case = mps.Case(mps.Patient(), mps.Regimen([
    ...     mps.RadiotherapyStep(total_dose="8 Gy", fractions=1, site="left psoas")]))
    >>> [(r.source, r.ok) for r in validate_many([case, "no/such/case.toml"])]
    [('<case 0>', True), ('no/such/case.toml', False)]
    """
    if isinstance(cases, str | os.PathLike | Case):
        cases = [cases]  # one case or one path: a batch of one, never its characters
    expect(cases, Iterable, "cases", "an iterable of cases, case-file paths or folders")
    settings = _settings(rules, disable, options, max_bytes)
    n_jobs = resolve_jobs(jobs)
    return _results(cases, settings, n_jobs, ordered)


def _results(
    cases: Iterable[Any], settings: _Settings, jobs: int, ordered: bool
) -> Iterator[CaseResult]:
    yield from _map(_work(cases, ordered), settings, jobs=jobs, ordered=ordered)


def check_many(
    paths: Iterable[str | os.PathLike[str]],
    post: Callable[[CaseResult], _T],
    *,
    disable: Iterable[str] = (),
    jobs: int = 1,
    ordered: bool = True,
    max_bytes: int = MAX_CASE_BYTES,
    options: Mapping[str, Any] | None = None,
) -> Generator[_T, None, None]:
    """For the command line: each case's result turned by ``post`` (in the worker, with jobs).

    ``post`` must be a module-level function (it crosses to the workers); what it returns comes
    back instead of the report (a line of text is cheaper to send than a report).
    """
    settings = _settings(None, disable, options, max_bytes)  # an unknown rule id fails here
    return _map(_work(paths, ordered), settings, jobs=jobs, ordered=ordered, post=post)


def to_records(results: Iterable[CaseResult]) -> list[dict[str, Any]]:
    """The rows of every result of a batch (:meth:`CaseResult.to_records`), in order.

    Example
    -------
    >>> from mps_analgesia.batch import to_records, validate_many
    >>> rows = to_records(validate_many(["no/such/case.toml"]))
    >>> rows[0]["source"], rows[0]["outcome"]
    ('no/such/case.toml', 'error')
    """
    return [row for result in results for row in result.to_records()]


def to_frame(results: Iterable[CaseResult]) -> Any:
    """:func:`to_records` as a pandas DataFrame (the ``frame`` extra: pandas)."""
    from .report import RECORD_COLUMNS, records_frame

    return records_frame(to_records(results), ("source", *RECORD_COLUMNS))
