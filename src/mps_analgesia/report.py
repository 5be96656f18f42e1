"""Findings and reports: what ``validate()`` returns.

A :class:`Report` never says a bare "ok".  It holds the findings (each with its severity, the
rule's sources, the verification level of the value it rests on, and the arithmetic shown), the
checks that passed, the checks that could *not* run and why, and the editions of the data tables
used.  A regimen whose safety checks could not run never reads as clean.

Severities map to what prescribing systems speak:

=========  ======================  ============================
severity   CDS Hooks indicator     FHIR DetectedIssue.severity
=========  ======================  ============================
error      critical                high
warning    warning                 moderate
info       info                    low
=========  ======================  ============================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import FunctionType
from typing import Any, Final, Literal, cast

import attrs

from ._repr import Renderable

__all__ = [
    "SEVERITIES",
    "Finding",
    "NotApplicable",
    "NotChecked",
    "Report",
    "Severity",
    "UnreadOrder",
]

Severity = Literal["error", "warning", "info"]
#: Severities, most severe first.
SEVERITIES: Final[tuple[Severity, ...]] = ("error", "warning", "info")


#: Each wire format's word for a severity (the CDS Hooks card indicator, the FHIR
#: ``DetectedIssue.severity``) belongs to its boundary.  Results do not import their boundaries:
#: the package registers, once, where each map is loaded from (see ``mps_analgesia/__init__.py``),
#: and a map is loaded the first time it is asked for.
_WIRE_MAPS: dict[str, Callable[[], Mapping[str, str]]] = {}
_WIRE_NAMES: Final = {"FHIR_SEVERITY": "fhir", "CDS_INDICATOR": "cds"}


def _register_wire_severity(name: str, load: Callable[[], Mapping[str, str]]) -> None:
    """Register how the boundary ``name`` (``"cds"``, ``"fhir"``) maps a severity to its word."""
    _WIRE_MAPS[name] = load


def _wire_severity(name: str, severity: Severity) -> str:
    """The boundary ``name``'s word for ``severity``.

    Example
    -------
    >>> from mps_analgesia.report import _wire_severity
    >>> _wire_severity("cds", "error"), _wire_severity("fhir", "warning")
    ('critical', 'moderate')
    """
    return _WIRE_MAPS[name]()[severity]


def __getattr__(name: str) -> Any:
    """The wire-format maps moved to their boundaries; the old import paths still work."""
    if name in _WIRE_NAMES:
        return _WIRE_MAPS[_WIRE_NAMES[name]]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


class LazyDetail(Mapping[str, Any]):
    """A finding's detail computed on first access (receipts are costly to format).

    Rules on the ``validate()`` hot path pass a function instead of a dict; nothing is formatted
    unless someone reads the detail.  It behaves as a read-only mapping.
    """

    __slots__ = ("_data", "_make")

    def __init__(self, make: Callable[[], Mapping[str, Any]]) -> None:
        self._make: Callable[[], Mapping[str, Any]] | None = make
        self._data: dict[str, Any] | None = None

    def _get(self) -> dict[str, Any]:
        if self._data is None:
            assert self._make is not None
            self._data = dict(self._make())
            self._make = None
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return repr(self._get())

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as the computed dict, so reports cross to and from worker processes.
        return (dict, (self._get(),))


def _detail(
    value: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None,
) -> Mapping[str, Any]:
    if value is None:
        return {}
    cls = value.__class__
    if cls is dict:  # the common case, without the ABC isinstance checks below
        return dict(cast("dict[str, Any]", value)) if value else {}
    if cls is LazyDetail:
        return cast(LazyDetail, value)
    if cls is FunctionType:  # a plain function or lambda: never a LazyDetail
        return LazyDetail(cast("Callable[[], Mapping[str, Any]]", value))
    if isinstance(value, LazyDetail):
        return value
    if callable(value):
        return LazyDetail(value)
    return dict(value) if value else {}


@attrs.define(frozen=True, kw_only=False)
class Finding(Renderable):
    """One flagged check.

    Attributes
    ----------
    code:
        The stable dotted finding code, equal to the rule id (``dose.max-daily``).
    severity:
        ``error``, ``warning`` or ``info``.
    message:
        One sentence a pharmacist can act on.
    step:
        The 0-based index of the step in the regimen, or ``None`` for the regimen as a whole.
    source:
        The source ids (``data/sources.toml``) the rule and its value rest on.
    detail:
        The numbers involved, as text with units (``{"daily_dose": "5000 mg/day", ...}``).
        A rule may pass a function returning the mapping; it is then computed on first access.
    arithmetic:
        The calculation shown, e.g. ``"1250 mg × 4 doses/day = 5000 mg/day > 4000 mg/day"``.
    level:
        The verification level of the value behind the finding: ``V``, ``S`` or ``U``.  A finding
        resting on a ``U`` value is never an error.
    """

    code: str
    severity: Severity
    message: str
    step: int | None = None
    source: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    detail: Mapping[str, Any] = attrs.field(factory=dict, converter=_detail, hash=False)
    arithmetic: str = ""
    level: str = "V"

    def __attrs_post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")
        if self.level == "U" and self.severity == "error":
            object.__setattr__(self, "severity", "warning")
            object.__setattr__(
                self,
                "message",
                self.message + " (This rests on an unverified [U] value, so it is a warning, "
                "not an error.)",
            )

    @property
    def cds_indicator(self) -> str:
        """The CDS Hooks card indicator: ``critical``, ``warning`` or ``info``."""
        return _wire_severity("cds", self.severity)

    @property
    def fhir_severity(self) -> str:
        """The FHIR ``DetectedIssue.severity``: ``high``, ``moderate`` or ``low``."""
        return _wire_severity("fhir", self.severity)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the finding."""
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "step": self.step,
            "source": list(self.source),
            "level": self.level,
            "arithmetic": self.arithmetic,
            "detail": dict(self.detail),
            "cds_indicator": self.cds_indicator,
            "fhir_severity": self.fhir_severity,
        }


@attrs.define(frozen=True)
class NotChecked(Renderable):
    """A check that could not run: the rule, the step, and the input that was missing."""

    rule: str
    step: int | None
    missing: str
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "rule": self.rule,
            "step": self.step,
            "missing": self.missing,
            "reason": self.reason,
        }


@attrs.define(frozen=True)
class NotApplicable:
    """A check for which no limit exists: a sourced statement, not a missing input.

    For example, a full opioid agonist has no ceiling dose, so ``dose.max-daily`` is *not
    applicable* to oxycodone.  It is never counted as passed, and it is no problem: no CDS card,
    no DetectedIssue.  A medicine the library does not know stays *not checked*.
    """

    rule: str
    step: int | None
    reason: str
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"rule": self.rule, "step": self.step, "reason": self.reason, "source": self.source}


#: The finding code of the warning that an order which could not be read may be an opioid.
UNREAD_OPIOID: Final = "order.unread-opioid"
#: The finding code of the regimen's daily OME total (the rule ``opioid.ome-total``): a report
#: with unread orders marks it incomplete.
_OME_TOTAL: Final = "opioid.ome-total"


@attrs.define(frozen=True)
class UnreadOrder:
    """An order that could not be read (a boundary, such as FHIR, could not make a step of it).

    None of its checks ran, and any total over the orders (the daily OME) leaves it out, so a
    report that carries one is never *complete*.

    Attributes
    ----------
    reference:
        Where the order came from (``MedicationRequest/abc``).
    name:
        The medicine's name as sent, or the reference when it had none.
    message:
        Why it could not be read.
    draft:
        True for an order being signed, False for an active order on record.
    may_be_opioid:
        True when its name names an opioid, or no drug the library knows (so it could be one):
        then the report carries an ``order.unread-opioid`` warning.
    """

    reference: str
    name: str
    message: str
    draft: bool = True
    may_be_opioid: bool = True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (keys equal to the attribute names)."""
        return {
            "reference": self.reference,
            "name": self.name,
            "message": self.message,
            "draft": self.draft,
            "may_be_opioid": self.may_be_opioid,
        }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _incomplete_total(f: Finding, unread: tuple[UnreadOrder, ...]) -> Finding:
    """The OME total finding marked incomplete: it leaves the unread orders out."""
    refs = ", ".join(u.reference for u in unread)
    message = (
        f"Incomplete total: it leaves out {_plural(len(unread), 'order')} that could not be read "
        f"({refs}). {f.message}"
    )
    detail = {**dict(f.detail), "unread_orders": [u.reference for u in unread]}
    severity: Severity = (
        "warning" if f.severity == "info" and any(u.may_be_opioid for u in unread) else f.severity
    )
    return attrs.evolve(f, message=message, detail=detail, severity=severity)


def _unread_opioid_finding(unread: tuple[UnreadOrder, ...]) -> Finding:
    names = "; ".join(f"{u.reference} ({u.name}): {u.message}" for u in unread)
    return Finding(
        UNREAD_OPIOID,
        "warning",
        f"{_plural(len(unread), 'order')} that could not be read may be an opioid: none of "
        f"{'their' if len(unread) != 1 else 'its'} checks ran and the daily OME leaves "
        f"{'them' if len(unread) != 1 else 'it'} out. Check by hand: {names}.",
        detail={"unread_orders": [u.reference for u in unread]},
    )


@attrs.define(frozen=True)
class Report(Renderable):
    """The result of :func:`mps_analgesia.validate`: findings, passes, checks not run, editions.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> step = mps.AdjuvantStep(drug="acetaminophen", role="nociceptive",
    ...                         dose="1250 mg", every="6 h")
    >>> report = mps.validate(mps.Regimen([step]), mps.Patient())
    >>> [f.code for f in report.errors]
    ['dose.max-daily']
    >>> report.errors[0].arithmetic
    '1250 mg × 4 doses/day = 5000 mg/day > 4000 mg/day'
    """

    findings: tuple[Finding, ...] = ()
    passed: tuple[tuple[str, int | None], ...] = ()
    not_checked: tuple[NotChecked, ...] = ()
    editions: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    regimen: Any = attrs.field(default=None, eq=False, repr=False)
    not_applicable: tuple[NotApplicable, ...] = ()
    unread_orders: tuple[UnreadOrder, ...] = ()

    def with_unread_orders(self, unread: Iterable[UnreadOrder]) -> Report:
        """This report over orders of which ``unread`` could not be read: never understated.

        The result carries them in :attr:`unread_orders` (so it is not :attr:`complete`, and its
        :attr:`status` is at least ``incomplete``); its ``opioid.ome-total`` finding says the total
        is incomplete and names them (a warning when one may be an opioid); and when any may be
        an opioid, an ``order.unread-opioid`` warning names each.  No unread orders: the report
        itself.

        Example
        -------
        >>> import mps_analgesia as mps
        >>> from mps_analgesia.report import UnreadOrder
        >>> step = mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h")
        >>> unread = UnreadOrder("MedicationRequest/b", "oxycodone 5 MG Oral Tablet",
        ...                      "no dose", draft=True)
        >>> report = mps.validate(mps.Regimen([step])).with_unread_orders([unread])
        >>> report.complete, report.status, report.findings[-1].code
        (False, 'warnings', 'order.unread-opioid')
        >>> total = [f for f in report.findings if f.code == "opioid.ome-total"][0]
        >>> total.severity, total.message.split(": ")[0], total.detail["unread_orders"]
        ('warning', 'Incomplete total', ['MedicationRequest/b'])
        """
        orders = tuple(unread)
        if not orders:
            return self
        findings = [
            _incomplete_total(f, orders) if f.code == _OME_TOTAL else f for f in self.findings
        ]
        opioids = tuple(u for u in orders if u.may_be_opioid)
        if opioids:
            findings.append(_unread_opioid_finding(opioids))
        return attrs.evolve(
            self, findings=tuple(findings), unread_orders=(*self.unread_orders, *orders)
        )

    @property
    def steps(self) -> tuple[str, ...]:
        """A plain-language line for each step of the checked regimen."""
        if self.regimen is None:
            return ()
        return tuple(step.describe() for step in self.regimen)

    def _of(self, severity: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == severity)

    @property
    def errors(self) -> tuple[Finding, ...]:
        """The error-severity findings."""
        return self._of("error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """The warning-severity findings."""
        return self._of("warning")

    @property
    def infos(self) -> tuple[Finding, ...]:
        """The info-severity findings."""
        return self._of("info")

    @property
    def has_errors(self) -> bool:
        """True when at least one finding is an error."""
        return any(f.severity == "error" for f in self.findings)

    @property
    def complete(self) -> bool:
        """True only when every applicable check ran (nothing is *not checked*) and every order
        was read (no :attr:`unread_orders`)."""
        return not self.not_checked and not self.unread_orders

    @property
    def counts(self) -> dict[str, int]:
        """How many checks were flagged, passed, not checked and not applicable, and findings by
        severity."""
        flagged = {(f.code, f.step) for f in self.findings}
        return {
            "flagged": len(flagged),
            "passed": len(self.passed),
            "not_checked": len(self.not_checked),
            "not_applicable": len(self.not_applicable),
            "error": len(self.errors),
            "warning": len(self.warnings),
            "info": len(self.infos),
        }

    @property
    def status(self) -> str:
        """``errors``, ``warnings``, ``incomplete`` (checks not run, or orders not read) or
        ``no findings``.

        Never "ok": even ``no findings`` means only that every check that could run, ran.
        """
        if self.has_errors:
            return "errors"
        if self.warnings:
            return "warnings"
        if self.not_checked or self.unread_orders:
            return "incomplete"
        return "no findings"

    def summary(self) -> str:
        """One line: findings by severity, checks passed and not checked."""
        c = self.counts
        na = f", {c['not_applicable']} not applicable" if c["not_applicable"] else ""
        unread = f"; {len(self.unread_orders)} order(s) not read" if self.unread_orders else ""
        return (
            f"{c['error']} error(s), {c['warning']} warning(s), {c['info']} info; "
            f"{c['passed']} check(s) passed, {c['not_checked']} not checked{na}{unread}"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole report."""
        return {
            "status": self.status,
            "counts": self.counts,
            "findings": [f.to_dict() for f in self.findings],
            "not_checked": [n.to_dict() for n in self.not_checked],
            "not_applicable": [n.to_dict() for n in self.not_applicable],
            "unread_orders": [u.to_dict() for u in self.unread_orders],
            "passed": [{"rule": r, "step": s} for r, s in self.passed],
            "editions": dict(self.editions),
            "steps": list(self.steps),
            "intended_use": INTENDED_USE,
        }

    def to_fhir(
        self,
        *,
        patient_reference: str = "Patient/patient",
        references: Mapping[int, str] | None = None,
        include_not_checked: bool = True,
    ) -> list[dict[str, Any]]:
        """The findings as FHIR R4 ``DetectedIssue`` resources (plain dicts).

        With ``include_not_checked`` each check that could not run is also a low-severity
        DetectedIssue, so an incomplete check never reads as clean.  ``references`` maps step
        indexes to the MedicationRequest/ServiceRequest references they implicate.

        Example
        -------
        >>> import mps_analgesia as mps
        >>> step = mps.AdjuvantStep(drug="acetaminophen", role="nociceptive",
        ...                         dose="1000 mg", every="4 h")
        >>> issues = mps.validate(mps.Regimen([step])).to_fhir(include_not_checked=False)
        >>> issues[0]["resourceType"], issues[0]["severity"]
        ('DetectedIssue', 'high')
        """
        from .fhir import report_to_fhir

        return report_to_fhir(
            self,
            patient_reference=patient_reference,
            references=references,
            include_not_checked=include_not_checked,
        )

    def to_json(self, *, indent: int | None = 2) -> str:
        """The report as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def __str__(self) -> str:
        """The text report (``render(report, "text")``), as ``print(report)`` shows it."""
        return self.to_text()

    def to_records(self) -> list[dict[str, Any]]:
        """One row per finding (most severe first), one per check that did not run, then one per
        order that could not be read (``outcome`` ``not read``, ``code`` its reference).

        Each row has the same keys, for a table or a DataFrame: ``outcome`` (``finding``,
        ``not checked`` or ``not read``), ``severity``, ``code``, ``step`` (1-based, ``None``
        for the regimen), ``message``, ``missing``, ``sources`` and ``level``.

        Example
        -------
        >>> import mps_analgesia as mps
        >>> report = mps.validate(mps.Regimen([mps.AdjuvantStep(drug="acetaminophen",
        ...     role="nociceptive", dose="1250 mg", every="6 h")]), mps.Patient())
        >>> row = report.to_records()[0]
        >>> row["outcome"], row["severity"], row["code"], row["step"]
        ('finding', 'error', 'dose.max-daily', 1)
        """
        rows: list[dict[str, Any]] = []
        order = {s: i for i, s in enumerate(SEVERITIES)}
        for f in sorted(self.findings, key=lambda f: order.get(f.severity, len(order))):
            rows.append(
                {
                    "outcome": "finding",
                    "severity": f.severity,
                    "code": f.code,
                    "step": None if f.step is None else f.step + 1,
                    "message": f.message,
                    "missing": "",
                    "sources": ", ".join(f.source),
                    "level": f.level,
                }
            )
        for n in self.not_checked:
            rows.append(
                {
                    "outcome": "not checked",
                    "severity": "",
                    "code": n.rule,
                    "step": None if n.step is None else n.step + 1,
                    "message": n.reason,
                    "missing": n.missing,
                    "sources": "",
                    "level": "",
                }
            )
        for u in self.unread_orders:
            rows.append(
                {
                    "outcome": "not read",
                    "severity": "",
                    "code": u.reference,
                    "step": None,
                    "message": f"{u.name}: {u.message}",
                    "missing": "",
                    "sources": "",
                    "level": "",
                }
            )
        return rows

    def to_frame(self) -> Any:
        """:meth:`to_records` as a pandas DataFrame (the ``frame`` extra: pandas)."""
        return records_frame(self.to_records())

    def to_text(self, *, title: str = "") -> str:
        """The report as plain text: ``render(report, "text")``, under ``title`` when given.

        A thin delegate to the renderers (the layer above), as ``mps-analgesia check`` prints it.
        """
        from .render import render

        text = render(self, "text")
        return f"{title}\n\n{text}" if title else text


#: The intended-use statement printed with every report.
INTENDED_USE: Final = (
    "Decision support only: mps_analgesia does not prescribe and does not replace clinical "
    "judgement."
)


#: The columns of :meth:`Report.to_records`, in order.
RECORD_COLUMNS: Final = (
    "outcome", "severity", "code", "step", "message", "missing", "sources", "level",
)  # fmt: skip


def records_frame(
    rows: Iterable[Mapping[str, Any]], columns: Iterable[str] = RECORD_COLUMNS
) -> Any:
    """Rows as a pandas DataFrame; a library error naming the ``frame`` extra without pandas."""
    try:
        import pandas  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        from .errors import MpsAnalgesiaError

        raise MpsAnalgesiaError(
            "to_frame() needs pandas: pip install 'mps-analgesia[frame]' (or use to_records())"
        ) from None
    frame = pandas.DataFrame(list(rows), columns=list(columns))
    if "step" in frame:  # 1-based step numbers, missing for the regimen: never 3.0 or NaN
        frame["step"] = frame["step"].astype("Int64")
    return frame
