"""Many cases at once: :func:`validate_many` yields one :class:`CaseResult` per case.

Cases may be :class:`~mps_analgesia.regimen.Case` objects or paths to case files; a directory
stands for every ``*.toml`` and ``*.json`` file under it (recursively, in sorted order).  A file
that cannot be read or is invalid gives a result with its ``error`` and the run goes on: one
broken file never stops a batch.  Results are produced lazily, one case at a time, so a run over
ten thousand files holds one case in memory at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from .errors import CaseFileError, MpsAnalgesiaError, Problem
from .regimen import Case
from .report import Report

if TYPE_CHECKING:
    from .rules import RuleRegistry

__all__ = ["CASE_SUFFIXES", "CaseResult", "iter_case_files", "validate_many"]

#: The file suffixes read as case files when a directory is given.
CASE_SUFFIXES: Final = (".toml", ".json")


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
        or invalid file, an unknown rule id ...), or ``None``.

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


def _is_case_file(name: str) -> bool:
    return name.lower().endswith(CASE_SUFFIXES)


def iter_case_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Expand paths: a directory gives its ``*.toml``/``*.json`` files (recursively, sorted).

    A path that is not a directory is yielded as given (even if it does not exist: reading it
    then reports the problem).  Hidden directories (``.git`` ...) are skipped.

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
        found: list[Path] = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(Path(root, f) for f in files if _is_case_file(f))
        yield from sorted(found)


def validate_many(
    cases: Iterable[Case | str | os.PathLike[str]],
    *,
    rules: RuleRegistry | None = None,
    disable: Iterable[str] = (),
    options: Mapping[str, Any] | None = None,
) -> Iterator[CaseResult]:
    """Check many cases, yielding one :class:`CaseResult` per case, in order.

    Parameters
    ----------
    cases:
        :class:`~mps_analgesia.regimen.Case` objects, paths to case files (``.toml``/``.json``),
        or directories (every case file under them, recursively).
    rules, disable, options:
        As for :func:`mps_analgesia.validate`.  An unknown rule id in ``disable`` raises at once
        (:class:`~mps_analgesia.errors.UnknownNameError`), before any case is read.

    Yields
    ------
    CaseResult
        With the report, or with the error of a case that could not be read; the run goes on.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.batch import validate_many
    >>> case = mps.Case(mps.Patient(), mps.Regimen([
    ...     mps.RadiotherapyStep(total_dose="8 Gy", fractions=1, site="left psoas")]))
    >>> [(r.source, r.ok) for r in validate_many([case, "no/such/case.toml"])]
    [('<case 0>', True), ('no/such/case.toml', False)]
    """
    from .io import load_case
    from .rules import default_rules

    registry = rules if rules is not None else default_rules()
    disabled = tuple(disable)
    if disabled:
        registry = registry.disable(*disabled)  # an unknown id fails here, not once per case
    position = 0
    for item in cases:
        if isinstance(item, Case):
            source = f"<case {position}>"
            position += 1
            yield _check(source, item, registry, options)
            continue
        position += 1
        if not isinstance(item, str | os.PathLike):
            yield CaseResult(
                f"<case {position - 1}>",
                error=CaseFileError(
                    repr(item),
                    [Problem("", f"is neither a Case nor a path ({type(item).__name__})")],
                ),
            )
            continue
        for path in iter_case_files([item]):
            name = str(path)
            try:
                case = load_case(path)
            except MpsAnalgesiaError as exc:
                yield CaseResult(name, error=exc)
                continue
            yield _check(name, case, registry, options)


def _check(
    source: str, case: Case, registry: RuleRegistry, options: Mapping[str, Any] | None
) -> CaseResult:
    from .rules import validate

    try:
        report = validate(case.regimen, case.patient, rules=registry, options=options)
    except MpsAnalgesiaError as exc:
        return CaseResult(source, case, error=exc)
    return CaseResult(source, case, report)
