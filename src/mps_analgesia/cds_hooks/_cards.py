"""Cards: one per finding, one per order that could not be read, one for what was not checked."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .. import _catalog
from ..errors import MpsAnalgesiaError, Problem
from ..fhir import CS_FINDING, CS_OVERRIDE, _codes
from ..report import INTENDED_USE, Finding, Report
from ._indicator import CDS_INDICATOR
from ._markdown import summary as _summary
from ._request import Order as _Order
from ._request import Unreadable
from ._suggest import SCHEDULE_BOUND as _SCHEDULE_BOUND
from ._suggest import dose_family as _dose_family

__all__ = ["finding_card", "not_checked_card", "unreadable_card"]


def _override_reasons() -> list[dict[str, str]]:
    return [
        {"system": CS_OVERRIDE, "code": str(r["code"]), "display": str(r["display"])}
        for r in _codes().get("override_reasons", ())
    ]


def _records(f: Finding) -> list[_catalog.SourceRecord]:
    """The bibliography records of the finding's sources, in its order, each once."""
    out: list[_catalog.SourceRecord] = []
    for sid in dict.fromkeys(f.source):
        try:
            out.append(_catalog.source(sid))
        except MpsAnalgesiaError:
            continue
    return out


def _short(citation: str) -> str:
    return citation if len(citation) <= 80 else citation[:79].rstrip() + "…"


def _source(f: Finding) -> dict[str, Any]:
    """The card's source: label and link both from the finding's first source.

    The link is that source's DOI, or absent when it has none: a label never names one source
    while the link opens another (the further sources are the card's ``links``).
    """
    out: dict[str, Any] = {"label": "mps-analgesia"}
    records = _records(f)
    if records:
        out["label"] = f"mps-analgesia · {_short(records[0].citation)}"
        if records[0].url:
            out["url"] = records[0].url
    out["topic"] = {"system": CS_FINDING, "code": f.code, "display": f.code}
    return out


def _links(f: Finding) -> list[dict[str, str]]:
    """A link per further source with a DOI, each labelled with its own citation."""
    return [
        {"label": _short(r.citation), "url": r.url, "type": "absolute"}
        for r in _records(f)[1:]
        if r.url
    ]


def _detail(f: Finding, order: _Order | None) -> str:
    lines = [f"**{f.severity.upper()}** · `{f.code}` · evidence level {f.level}", "", f.message]
    if f.arithmetic:
        lines += ["", f"**Calculation:** {f.arithmetic}"]
    if f.detail:
        lines += ["", "| value | |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in f.detail.items()]
    if order is not None:
        lines += ["", f"**Order:** {order.step.describe()} ({order.reference})"]
    cites = []
    for sid in f.source:
        try:
            record = _catalog.source(sid)
        except MpsAnalgesiaError:
            continue
        cites.append(f"- {record.citation}" + (f" {record.url}" if record.url else ""))
    if cites:
        lines += ["", "**Sources:**", *cites]
    lines += ["", f"_{INTENDED_USE}_"]
    return "\n".join(lines)


def finding_card(
    f: Finding, orders: Sequence[_Order], suggestions: Mapping[int, dict[str, Any] | None]
) -> dict[str, Any]:
    order = orders[f.step] if f.step is not None and 0 <= f.step < len(orders) else None
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": _summary(f.message),
        "detail": _detail(f, order),
        "indicator": CDS_INDICATOR[f.severity],
        "source": _source(f),
    }
    links = _links(f)
    if links:
        card["links"] = links
    suggestion = suggestions.get(f.step) if f.step is not None and _dose_family(f.code) else None
    if f.code in _SCHEDULE_BOUND:
        card["detail"] = card["detail"].replace(
            f"\n\n_{INTENDED_USE}_",
            "\n\nNo dose is suggested for a renal or hepatic dose limit: such sources set the "
            "dosing interval with the maximum (tramadol below CrCl 30 mL/min: every 12 h; "
            "gabapentin at 15-29: once daily), and the data hold the maximum only. Check the "
            f"source's dose and interval.\n\n_{INTENDED_USE}_",
        )
    if suggestion is not None:
        card["suggestions"] = [suggestion]
        card["selectionBehavior"] = "at-most-one"
    if f.severity in ("error", "warning"):
        card["overrideReasons"] = _override_reasons()
    return card


def not_checked_card(
    report: Report,
    orders: Sequence[_Order],
    absent: Sequence[str],
    empty: Sequence[str],
    problems: Sequence[Problem],
) -> dict[str, Any] | None:
    if not report.not_checked and not problems:
        return None
    missing = sorted({n.missing for n in report.not_checked})
    n = len(report.not_checked)
    if n:
        summary = f"{n} check(s) could not run: missing {', '.join(missing)}"
    else:
        summary = "Some patient data could not be read; the checks that need them did not run"
    lines = ["Checks that could **not** run (they are not passed):", ""]
    if report.not_checked:
        lines += ["| check | order | missing | why |", "|---|---|---|---|"]
        for nc in report.not_checked:
            where = orders[nc.step].reference if nc.step is not None else "regimen"
            lines.append(f"| `{nc.rule}` | {where} | {nc.missing} | {nc.reason} |")
    if absent:
        lines += ["", f"Not sent in prefetch: {', '.join(absent)}."]
    if empty:
        lines += ["", f"Nothing on record for: {', '.join(empty)}."]
    if problems:
        lines += ["", "Could not be read:"] + [f"- {p}" for p in problems]
    lines += ["", f"_{INTENDED_USE}_"]
    patient_gap = bool(absent or empty or problems)
    return {
        "uuid": str(uuid.uuid4()),
        "summary": _summary(summary),
        "detail": "\n".join(lines),
        "indicator": "warning" if patient_gap else "info",
        "source": {"label": "mps-analgesia"},
    }


def unreadable_card(order: Unreadable) -> dict[str, Any]:
    ref, name, message = order.reference, order.name, order.message
    return {
        "uuid": str(uuid.uuid4()),
        "summary": _summary(f"Order for {name} could not be checked: {message}"),
        "detail": f"The order {ref} could not be read, so **none** of its checks ran.\n\n"
        f"{message}\n\n_{INTENDED_USE}_",
        "indicator": "warning",
        "source": {"label": "mps-analgesia"},
    }
