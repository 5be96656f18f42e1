"""Cards: one per finding, one per order that could not be read, one for what was not checked.

Every card has a summary under 140 characters cut at a word, a markdown ``detail`` in short
sentences with a receipt table (a value and its unit per row, lists as lines, never a Python
repr), and a ``source`` with a link: the finding's first source where it has a DOI or URL, else
the rule's page in the documentation.  Every string from the request is escaped
(:mod:`._markdown`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

from .. import _catalog
from .._format import number
from ..errors import MpsAnalgesiaError
from ..fhir import CS_FINDING, CS_OVERRIDE, _codes
from ..fhir._medication import may_be_opioid as may_be_opioid
from ..fhir._medication import names_opioid as names_opioid
from ..report import INTENDED_USE, Finding, Report
from ._indicator import CDS_INDICATOR
from ._markdown import cell, escape, plain, summary_text
from ._request import CheckedRequest, Unreadable
from ._request import Order as _Order
from ._suggest import SCHEDULE_BOUND as _SCHEDULE_BOUND
from ._suggest import dose_family as _dose_family

__all__ = ["DOCS_URL", "finding_card", "not_checked_card", "unreadable_card"]

#: The documentation the cards link to when a finding's source has no link of its own.
DOCS_URL: Final = "https://github.com/mps-analgesia/mps-analgesia/blob/main/docs"
#: What each severity asks of the prescriber, closing the summary.
_ACTION: Final = {
    "error": "Change the order or document why",
    "warning": "Review before signing",
    "info": "For information",
}
_SENTENCE_END: Final = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")
#: The finding of the regimen's total oral morphine equivalent.
OME_TOTAL: Final = "opioid.ome-total"
#: UCUM codes written for people in the receipt table.
_UNIT_TEXT: Final = {"/d": "/day", "/h": "/h", "/min": "/min", "{dose}": "doses"}


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


def rule_url(code: str) -> str:
    """The documentation page of the rule that raises ``code``."""
    return f"{DOCS_URL}/rules.md#{code.replace('.', '')}"


def _source(f: Finding, records: Sequence[_catalog.SourceRecord]) -> dict[str, Any]:
    """The card's source: a label and the link of the same thing.

    The finding's first source with its DOI or URL; when it has none, the rule's page in the
    documentation (which lists the sources; the card's detail cites them too).  A label never
    names one source while the link opens another; the further sources are the card's
    ``links``.
    """
    first = records[0] if records else None
    if first is not None and first.url:
        out: dict[str, Any] = {"label": _short(first.citation), "url": first.url}
    else:
        out = {"label": f"mps-analgesia rule {f.code}", "url": rule_url(f.code)}
    out["topic"] = {"system": CS_FINDING, "code": f.code, "display": f.code}
    return out


def _links(records: Sequence[_catalog.SourceRecord]) -> list[dict[str, str]]:
    """A link per further source with a DOI or URL, each labelled with its own citation."""
    return [
        {"label": _short(r.citation), "url": r.url, "type": "absolute"}
        for r in records[1:]
        if r.url
    ]


def _unit_text(unit: str) -> str:
    for code, text in _UNIT_TEXT.items():
        if unit.endswith(code):
            return unit[: -len(code)] + text
    return unit


def _value_text(value: object) -> str:
    """One detail value as text for a person: numbers by the one formatter, no repr."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return number(float(value))
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_value_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(_value_text(v) for v in value) if value else "none"
    return str(value)


def _label(key: str) -> str:
    return key.replace("_", " ")


def receipt_rows(detail: Mapping[str, Any], orders: Sequence[_Order]) -> list[str]:
    """The detail as markdown table rows and list lines (escaped), units next to numbers.

    A float ``<name>`` with its UCUM unit under ``<name>_unit`` is one row; a text next to it
    (``<name>_text``) is preferred as written.  ``steps`` name the orders.  A list of several
    lines (a receipt) is written as lines after the table.
    """
    rows: list[str] = []
    lines: list[str] = []
    keys = list(detail)
    for key in keys:
        value = detail[key]
        if key.endswith("_unit") and key[:-5] in detail:
            continue
        if key.endswith("_text") and key[:-5] in detail:
            continue
        if f"{key}_text" in detail:
            text = _value_text(detail[f"{key}_text"])
        elif isinstance(value, int | float) and not isinstance(value, bool):
            unit = detail.get(f"{key}_unit")
            text = number(float(value)) + (f" {_unit_text(unit)}" if isinstance(unit, str) else "")
        elif key in ("steps", "step", "partner_step", "interacting_step") and value is not None:
            indices = value if isinstance(value, list | tuple) else [value]
            text = ", ".join(
                orders[i].reference
                if isinstance(i, int) and 0 <= i < len(orders)
                else f"step {_value_text(i)}"
                for i in indices
            )
        elif (
            isinstance(value, list | tuple)
            and len(value) > 1
            and all(isinstance(v, str) for v in value)
        ):
            lines += ["", f"**{escape(_label(key)).capitalize()}:**"]
            lines += [f"- {escape(v)}" for v in value]
            continue
        else:
            text = _value_text(value)
        rows.append(f"| {cell(_label(key))} | {cell(text)} |")
    table = ["| | |", "|---|---|", *rows] if rows else []
    return [*table, *lines]


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(" ".join(text.split())) if s]


def _finding_summary(f: Finding) -> str:
    """The first sentence of the finding (its number), then the action, under 140 characters."""
    first = _sentences(f.message)[0] if f.message.strip() else f.code
    first = first.rstrip(".")
    action = _ACTION[f.severity]
    return summary_text(first, action)


def _detail(f: Finding, order: _Order | None, orders: Sequence[_Order]) -> str:
    lines = [
        f"**{f.severity.upper()}** · `{escape(f.code)}` · evidence level {escape(f.level)}",
        "",
    ]
    lines += [escape(s) for s in _sentences(f.message)]
    if order is not None:
        lines += ["", f"**Order:** {escape(order.step.describe())} ({escape(order.reference)})"]
    if f.arithmetic:
        lines += ["", f"**Calculation:** {escape(f.arithmetic)}"]
    if f.detail:
        lines += ["", *receipt_rows(f.detail, orders)]
    cites = [f"- {escape(r.citation)}" + (f" <{r.url}>" if r.url else "") for r in _records(f)]
    if cites:
        lines += ["", "**Sources:**", *cites]
    lines += ["", f"_{INTENDED_USE}_"]
    return "\n".join(lines)


def _incomplete(card: dict[str, Any], unread: Sequence[Unreadable]) -> None:
    """Mark an OME total card incomplete: the orders it leaves out, and a warning for opioids."""
    opioids = [u for u in unread if may_be_opioid(u.name)]
    names = ", ".join(plain(u.name, 40) for u in unread[:3]) + (" …" if len(unread) > 3 else "")
    card["summary"] = summary_text(
        f"Incomplete total: {len(unread)} order{'s' if len(unread) != 1 else ''} not read "
        f"({names}). {card['summary']}",
        "",
    )
    lines = [
        "**Incomplete total.** It leaves out the orders that could not be read:",
        "",
        *(
            f"- {escape(u.reference)} ({escape(u.name)}): {escape(u.message)}"
            + (" May be an opioid." if may_be_opioid(u.name) else "")
            for u in unread
        ),
        "",
    ]
    card["detail"] = "\n".join(lines) + card["detail"]
    if opioids and card["indicator"] == "info":
        card["indicator"] = "warning"


def finding_card(
    f: Finding,
    orders: Sequence[_Order],
    suggestions: Mapping[int, dict[str, Any] | None],
    unread: Sequence[Unreadable] = (),
) -> dict[str, Any]:
    """The card of one finding; an OME total over orders of which some were not read is
    marked incomplete (``unread``: the orders the total may leave out)."""
    order = orders[f.step] if f.step is not None and 0 <= f.step < len(orders) else None
    records = _records(f)
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": _finding_summary(f),
        "detail": _detail(f, order, orders),
        "indicator": CDS_INDICATOR[f.severity],
        "source": _source(f, records),
    }
    if f.code == OME_TOTAL and unread:
        _incomplete(card, unread)
    links = _links(records)
    if links:
        card["links"] = links
    suggestion = suggestions.get(f.step) if f.step is not None and _dose_family(f.code) else None
    if f.code in _SCHEDULE_BOUND:
        card["detail"] = card["detail"].replace(
            f"\n\n_{INTENDED_USE}_",
            "\n\nNo dose is suggested for a renal or hepatic dose limit. Such sources set the "
            "dosing interval with the maximum, and the data hold the maximum only. Check the "
            f"source's dose and interval.\n\n_{INTENDED_USE}_",
        )
    if suggestion is not None:
        card["suggestions"] = [suggestion]
        card["selectionBehavior"] = "at-most-one"
    if f.severity in ("error", "warning"):
        card["overrideReasons"] = _override_reasons()
    return card


_STATE_TEXT: Final = {
    "absent": "Not sent in prefetch",
    "null": "No data on record (sent as null)",
    "empty": "Nothing on record",
    "error": "The EHR could not fetch",
}


def not_checked_card(
    report: Report,
    orders: Sequence[_Order],
    request: CheckedRequest,
    not_fetched: Mapping[str, str],
) -> dict[str, Any] | None:
    """The card naming the checks that could not run and the data that were missing."""
    problems = request.problems
    gaps = {k: v for k, v in request.prefetch.items() if v != "sent"}
    if not report.not_checked and not problems and not request.prefetch_errors:
        return None
    missing = sorted({n.missing for n in report.not_checked})
    n = len(report.not_checked)
    if n:
        head = f"{n} check{'s' if n != 1 else ''} could not run: missing {', '.join(missing)}"
        text = summary_text(head, "Not passed: check by hand")
    else:
        text = summary_text("Some patient data could not be read", "Check them by hand")
    lines = ["Checks that could **not** run. They are not passed.", ""]
    if report.not_checked:
        lines += ["| check | order | missing | why |", "|---|---|---|---|"]
        for nc in report.not_checked:
            where = (
                orders[nc.step].reference
                if nc.step is not None and 0 <= nc.step < len(orders)
                else "regimen"
            )
            lines.append(
                f"| `{escape(nc.rule)}` | {cell(where)} | {cell(nc.missing)} | {cell(nc.reason)} |"
            )
    for state, label in _STATE_TEXT.items():
        keys = [k for k, v in gaps.items() if v == state]
        if keys:
            lines += ["", f"{label}: {', '.join(keys)}."]
    for key, texts in request.prefetch_errors.items():
        lines += ["", f"The EHR reported for prefetch '{escape(key)}':"]
        lines += [f"- {escape(t)}" for t in texts[:10]]
    for key, why in not_fetched.items():
        lines += ["", f"'{escape(key)}' was not fetched from the EHR: {escape(why)}."]
    if problems:
        lines += ["", "Could not be read:"] + [f"- {escape(p)}" for p in problems]
    lines += ["", f"_{INTENDED_USE}_"]
    patient_gap = bool(
        problems or request.prefetch_errors or any(v in ("absent", "error") for v in gaps.values())
    )
    return {
        "uuid": str(uuid.uuid4()),
        "summary": text,
        "detail": "\n".join(lines),
        "indicator": "warning" if patient_gap else "info",
        "source": {
            "label": "mps-analgesia: what a check needs",
            "url": f"{DOCS_URL}/fhir-and-cds-hooks.md",
        },
    }


def unreadable_card(order: Unreadable) -> dict[str, Any]:
    """The card of an order that could not be read: none of its checks ran."""
    name = plain(order.name, 50)
    return {
        "uuid": str(uuid.uuid4()),
        "summary": summary_text(
            f"Order for {name} could not be checked: none of its checks ran",
            "Check it by hand",
        ),
        "detail": f"The order {escape(order.reference)} could not be read, so **none** of its "
        f"checks ran.\n\n{escape(order.message)}\n\n_{INTENDED_USE}_",
        "indicator": "warning",
        "source": {
            "label": "mps-analgesia: reading FHIR orders",
            "url": f"{DOCS_URL}/fhir-and-cds-hooks.md",
        },
    }
