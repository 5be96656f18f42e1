"""The day table of a :class:`~mps_analgesia.schedule.DayPlan` as data, text, Markdown and HTML.

One row per day: the date (when the plan has one), each drug's daily total, the daily OME
(regular, and with PRN at its maximum), the local anaesthetic of the day, the radiotherapy
fraction and what starts, changes or ends.  It reads the plan; it computes nothing.
"""

from __future__ import annotations

import html
from typing import Any

from .._format import number, span

__all__ = ["plan_html", "plan_markdown", "plan_rows", "plan_text", "plan_to_dict"]

_HEADER = (
    "day",
    "date",
    "doses (mg/day)",
    "OME regular",
    "OME with PRN",
    "block",
    "RT",
    "events",
    "rescue (recomputed from the day's regular dose)",
)


def _ome_text(result: Any) -> str:
    text = span(result.low_mme_per_day, result.high_mme_per_day)
    if not result.complete:
        text += " (incomplete)"
    return text


def _totals_text(day: Any) -> str:
    regular = day.regular_totals_mg
    parts = []
    for drug, mg in day.totals_mg.items():
        if drug in regular and mg != regular[drug]:
            parts.append(
                f"{drug} {number(regular[drug])} (+PRN up to {number(mg - regular[drug])})"
            )
        elif drug in regular:
            parts.append(f"{drug} {number(mg)}")
        else:
            parts.append(f"{drug} PRN up to {number(mg)}")
    return "; ".join(parts)


def _block_text(day: Any) -> str:
    if not day.blocks:
        return ""
    mark = "≤ " if day.local_anaesthetic_upper_bound else ""
    return "; ".join(f"{d} {mark}{number(mg)} mg" for d, mg in day.local_anaesthetic_mg.items())


def _rt_text(day: Any) -> str:
    return "; ".join(f"{number(f.dose_gy)} Gy ({f.number}/{f.of})" for f in day.fractions)


def _events_text(day: Any) -> str:
    return "; ".join(f"{e.what}{' at ' + e.time if e.time else ''}" for e in day.events)


def _rescue_text(day: Any) -> str:
    out = []
    for r in day.rescues:
        mark = " (above)" if r.above else ""
        out.append(
            f"{r.drug} {number(r.dose_mg)} mg; recomputed "
            f"{number(round(r.recomputed_mg, 2))} mg{mark}"
        )
    return "; ".join(out)


def plan_rows(plan: Any) -> list[tuple[str, ...]]:
    """The table rows as texts (header first), the same for every format."""
    rows: list[tuple[str, ...]] = [_HEADER]
    for day in plan:
        rows.append(
            (
                str(day.day),
                "" if day.date is None else f"{day.date.isoformat()} {day.date.strftime('%a')}",
                _totals_text(day),
                _ome_text(day.ome_regular),
                _ome_text(day.ome_with_prn),
                _block_text(day),
                _rt_text(day),
                _events_text(day),
                _rescue_text(day),
            )
        )
    return rows


def _columns(plan: Any, rows: list[tuple[str, ...]]) -> list[int]:
    """The columns worth showing: no date column without a start date, no empty block/RT."""
    keep = []
    for c in range(len(_HEADER)):
        if c == 1 and plan.start_date is None:
            continue
        if c in (5, 6, 7, 8) and not any(r[c] for r in rows[1:]):
            continue
        keep.append(c)
    return keep


def plan_text(plan: Any) -> str:
    """The day table as plain text (one line per day, ``|`` between columns)."""
    rows = plan_rows(plan)
    cols = _columns(plan, rows)
    widths = [max(len(r[c]) for r in rows) for c in cols]
    lines = []
    for n, r in enumerate(rows):
        lines.append(" | ".join(r[c].ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths))
    unit = f"OME: MME/day ({plan.table})"
    return "\n".join([f"Day plan: {plan.regimen.name or 'regimen'}; {unit}", *lines]) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def plan_markdown(plan: Any) -> str:
    """The day table as a Markdown table."""
    rows = plan_rows(plan)
    cols = _columns(plan, rows)
    out = [
        f"OME in MME/day ({plan.table}); local anaesthetic in mg; ≤: the most that day can hold.",
        "",
    ]
    out.append("| " + " | ".join(_md(rows[0][c]) for c in cols) + " |")
    out.append("|" + "|".join("---" for _ in cols) + "|")
    for r in rows[1:]:
        out.append("| " + " | ".join(_md(r[c]) for c in cols) + " |")
    return "\n".join(out) + "\n"


def plan_html(plan: Any) -> str:
    """The day table as an HTML ``<table>`` fragment (escaped)."""
    rows = plan_rows(plan)
    cols = _columns(plan, rows)
    out = ['<table class="mps-dayplan">']
    out.append(
        f"<caption>Day plan; OME in MME/day ({html.escape(plan.table)}); local anaesthetic in mg"
        "</caption>"
    )
    out.append(
        "<thead><tr>"
        + "".join(f'<th scope="col">{html.escape(rows[0][c])}</th>' for c in cols)
        + "</tr></thead>"
    )
    out.append("<tbody>")
    for r in rows[1:]:
        out.append("<tr>" + "".join(f"<td>{html.escape(r[c])}</td>" for c in cols) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out) + "\n"


def plan_to_dict(plan: Any) -> dict[str, Any]:
    """The plan as plain data (kept here for old imports; the day plan writes it itself)."""
    return dict(plan.to_dict())
