"""A timeline of a plan over days, drawn as SVG by hand (no plotting library needed).

One panel per drug shows its daily dose in mg/day (regular doses as a solid line; the PRN
maximum on top of them as a dashed line), titration steps are marked with a dot and the new dose,
a panel shows the total oral morphine equivalent when the conversion module can compute it, and
checkpoints (an ECG, for example) are dashed vertical lines across every panel.  Blocks and
radiotherapy are marked on the day they start.  Day 0 is the first day of the plan.

The same data is given as text (:func:`timeline_text`), which is the picture's text alternative
and what Markdown and plain text show.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from html import escape
from typing import Any, Final

import attrs

from ._doc import Figure

__all__ = ["Checkpoint", "timeline_figure", "timeline_svg", "timeline_text"]

_WIDTH: Final = 720
_LEFT: Final = 170
_RIGHT: Final = 24
_PANEL: Final = 64
_GAP: Final = 22
_TOP: Final = 30
_AXIS: Final = 40
_DRUG_KINDS: Final = ("opioid", "methadone_adjuvant", "adjuvant")
_COLOURS: Final = ("#0b4f8a", "#8a3b0b", "#1e5e2a", "#5b2a86", "#7a4300", "#1d5f6b", "#6b1d4f")
_INK: Final = "#1b1b1b"
_MUTED: Final = "#4a4a4a"
_CHECK: Final = "#9b1c1c"


@attrs.define(frozen=True)
class Checkpoint:
    """A day to mark across the timeline (``Checkpoint(14, "ECG")``)."""

    day: int
    label: str


@attrs.define(frozen=True)
class _Series:
    label: str
    regular: tuple[float, ...]
    prn: tuple[float, ...] | None
    changes: tuple[tuple[int, str, bool], ...]
    unit: str = "mg/day"


def _num(x: float) -> str:
    if abs(x - round(x)) < 1e-9 * max(1.0, abs(x)):
        return str(round(x))
    return f"{x:.4g}"


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _days(regimen: Any, checkpoints: Sequence[Checkpoint]) -> int:
    last: int = max([regimen.last_day, *(c.day for c in checkpoints)])
    return last + 7


def _series(regimen: Any, end: int) -> list[_Series]:
    from ._dosage import quantity

    by_drug: dict[str, list[tuple[int, Any]]] = {}
    for i, step in enumerate(regimen.steps):
        if step.kind in _DRUG_KINDS:
            by_drug.setdefault(step.drug, []).append((i, step))
    out = []
    for drug, steps in by_drug.items():
        regular = [0.0] * (end + 1)
        prn = [0.0] * (end + 1)
        has_prn = False
        changes: list[tuple[int, str, bool]] = []
        for i, step in steps:
            target = prn if step.prn else regular
            has_prn = has_prn or step.prn
            for day in range(end + 1):
                target[day] += step.daily_dose_mg_on(day)
            for point in step.titration:
                new = point.rate if point.rate is not None else point.dose
                changes.append((point.day, f"step {i + 1}: {quantity(new)}", step.prn))
        total = [r + p for r, p in zip(regular, prn, strict=True)]
        numbers = ", ".join(str(i + 1) for i, _ in steps)
        out.append(
            _Series(
                f"{drug} (step{'s' if len(steps) > 1 else ''} {numbers})",
                tuple(regular),
                tuple(total) if has_prn else None,
                tuple(sorted(changes)),
            )
        )
    return out


def _events(regimen: Any) -> list[tuple[int, str]]:
    out = []
    for i, step in enumerate(regimen.steps):
        if step.kind == "psoas_compartment_block":
            out.append((step.start_day, f"step {i + 1}: block"))
        elif step.kind == "radiotherapy":
            out.append((step.start_day, f"step {i + 1}: radiotherapy starts"))
    return sorted(out)


def _ome(regimen: Any, end: int, table: str | None) -> _Series | None:
    """The total OME per day, from the conversion module's ``daily_ome`` (None if unavailable)."""
    from ._objects import DEFAULT_OME_TABLE, ome_by_day

    values = ome_by_day(regimen, end, table)
    if values is None:
        return None
    label = f"total OME ({table or DEFAULT_OME_TABLE})"
    return _Series(label, tuple(values), None, (), "MME/day")


def _path(values: Sequence[float], x: Callable[[float], float], y: Callable[[float], float]) -> str:
    parts = [f"M{_f(x(0))},{_f(y(values[0]))}"]
    for day in range(1, len(values)):
        if values[day] != values[day - 1]:
            parts.append(f"H{_f(x(day))}V{_f(y(values[day]))}")
    parts.append(f"H{_f(x(len(values) - 1))}")
    return "".join(parts)


def timeline_text(
    regimen: Any,
    *,
    checkpoints: Sequence[Checkpoint] = (),
    ome: bool = True,
    table: str | None = None,
) -> tuple[str, ...]:
    """The timeline as lines of text: what is given from which day, and the checkpoints.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> reg = mps.Regimen([mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h",
    ...                    titration=[{"day": 7, "dose": "7.5 mg"}])])
    >>> timeline_text(reg, checkpoints=[Checkpoint(0, "ECG")], ome=False)
    ('day 0: methadone (step 1) 15 mg/day; ECG', 'day 7: methadone (step 1) 22.5 mg/day')
    """
    end = _days(regimen, checkpoints)
    series = _series(regimen, end)
    total = _ome(regimen, end, table) if ome else None
    events: dict[int, list[str]] = {}
    for s in series:
        top = s.prn if s.prn is not None else s.regular
        for day in range(end + 1):
            before = (s.regular[day - 1], top[day - 1]) if day else (0.0, 0.0)
            if (s.regular[day], top[day]) == before:
                continue  # no change (and nothing before a drug starts)
            text = f"{s.label} {_num(s.regular[day])} {s.unit}"
            if s.prn is not None:
                text += f" (with PRN maximum {_num(top[day])} {s.unit})"
            events.setdefault(day, []).append(text)
    if total is not None:
        for day in range(end + 1):
            if day == 0 or total.regular[day] != total.regular[day - 1]:
                events.setdefault(day, []).append(
                    f"{total.label} {_num(total.regular[day])} MME/day"
                )
    for day, label in _events(regimen):
        events.setdefault(day, []).append(label)
    for c in checkpoints:
        events.setdefault(c.day, []).append(c.label)
    return tuple(f"day {day}: " + "; ".join(events[day]) for day in sorted(events))


def timeline_svg(
    regimen: Any,
    *,
    checkpoints: Sequence[Checkpoint] = (),
    title: str = "Timeline of the plan",
    standalone: bool = False,
    ome: bool = True,
    table: str | None = None,
) -> str:
    """Draw the regimen over days as SVG.

    ``standalone=True`` adds the SVG namespace so the text can be saved as an ``.svg`` file;
    inline in HTML the namespace is not needed (and the page then holds no URL but DOI links).

    Example
    -------
    >>> import mps_analgesia as mps
    >>> reg = mps.Regimen([mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h")])
    >>> svg = timeline_svg(reg, checkpoints=[Checkpoint(7, "ECG")], ome=False)
    >>> svg.startswith("<svg") and "morphine" in svg and "ECG" in svg
    True
    """
    end = _days(regimen, checkpoints)
    series = _series(regimen, end)
    total = _ome(regimen, end, table) if ome else None
    panels = [*series, *([total] if total is not None else [])]
    events = _events(regimen)
    n = max(len(panels), 1)
    height = _TOP + n * (_PANEL + _GAP) + _AXIS + 14 * len(events)
    plot_w = _WIDTH - _LEFT - _RIGHT
    text = timeline_text(regimen, checkpoints=checkpoints, ome=ome, table=table)
    digest = hashlib.sha1("\n".join((title, *text)).encode(), usedforsecurity=False)
    uid = f"mps-tl-{digest.hexdigest()[:10]}"

    def x(day: float) -> float:
        return _LEFT + plot_w * day / end

    ns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    out = [
        f'<svg{ns} role="img" viewBox="0 0 {_WIDTH} {height}" width="{_WIDTH}" '
        f'height="{height}" aria-labelledby="{uid}-t {uid}-d" '
        f'font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-size="11">',
        f'<title id="{uid}-t">{escape(title)}</title>',
        f'<desc id="{uid}-d">' + escape(" ".join(text)) + "</desc>",
        f'<rect x="0" y="0" width="{_WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    for p, s in enumerate(panels):
        top = _TOP + p * (_PANEL + _GAP)
        bottom = top + _PANEL
        peak = max([*s.regular, *(s.prn or ())]) or 1.0

        def y(v: float, top: float = top, peak: float = peak) -> float:
            return top + _PANEL - (_PANEL - 6) * v / peak

        colour = _INK if s.unit == "MME/day" else _COLOURS[p % len(_COLOURS)]
        out.append(
            f'<text x="{_LEFT - 8}" y="{_f(top + 12)}" text-anchor="end" fill="{_INK}" '
            f'font-weight="bold">{escape(s.label)}</text>'
        )
        out.append(
            f'<text x="{_LEFT - 8}" y="{_f(top + 26)}" text-anchor="end" fill="{_MUTED}">'
            f"{escape(s.unit)}, peak {_num(peak)}</text>"
        )
        out.append(
            f'<line x1="{_LEFT}" y1="{_f(bottom)}" x2="{_WIDTH - _RIGHT}" y2="{_f(bottom)}" '
            f'stroke="{_MUTED}" stroke-width="1"/>'
        )
        if s.prn is not None:
            out.append(
                f'<path d="{_path(s.prn, x, y)}" fill="none" stroke="{colour}" '
                f'stroke-width="1.5" stroke-dasharray="5 3"/>'
            )
        out.append(
            f'<path d="{_path(s.regular, x, y)}" fill="none" stroke="{colour}" stroke-width="2.5"/>'
        )
        for day, label, on_prn in s.changes:
            if 0 <= day <= end:
                cy = y(s.prn[day] if (on_prn and s.prn is not None) else s.regular[day])
                out.append(
                    f'<circle cx="{_f(x(day))}" cy="{_f(cy)}" r="3.5" fill="{colour}">'
                    f"<title>{escape(f'day {day}: {label}')}</title></circle>"
                )
                out.append(
                    f'<text x="{_f(x(day) + 4)}" y="{_f(cy - 6)}" fill="{_INK}" font-size="10">'
                    f"{escape(label.split(': ', 1)[-1])}</text>"
                )
    axis_y = _TOP + n * (_PANEL + _GAP) - _GAP + 4
    step = 1 if end <= 14 else 7 if end > 35 else 2
    for day in range(0, end + 1, step):
        out.append(
            f'<line x1="{_f(x(day))}" y1="{_f(axis_y)}" x2="{_f(x(day))}" y2="{_f(axis_y + 4)}" '
            f'stroke="{_MUTED}"/>'
        )
        out.append(
            f'<text x="{_f(x(day))}" y="{_f(axis_y + 16)}" text-anchor="middle" '
            f'fill="{_INK}">{day}</text>'
        )
    out.append(
        f'<text x="{_LEFT - 8}" y="{_f(axis_y + 16)}" text-anchor="end" fill="{_INK}">day</text>'
    )
    for k, (day, label) in enumerate(events):
        out.append(
            f'<text x="{_f(x(day))}" y="{_f(axis_y + 32 + 14 * k)}" fill="{_INK}" '
            f'font-size="10">▲ {escape(label)}</text>'
        )
    for k, c in enumerate(checkpoints):
        if 0 <= c.day <= end:
            out.append(
                f'<line x1="{_f(x(c.day))}" y1="{_TOP - 12}" x2="{_f(x(c.day))}" '
                f'y2="{_f(axis_y)}" stroke="{_CHECK}" stroke-width="1.2" stroke-dasharray="3 3">'
                f"<title>{escape(f'day {c.day}: {c.label}')}</title></line>"
            )
            out.append(
                f'<text x="{_f(x(c.day) + 2)}" y="{_TOP - 16 + 9 * (k % 2)}" fill="{_CHECK}" '
                f'font-size="10">{escape(c.label)}</text>'
            )
    out.append("</svg>")
    return "\n".join(out)


def timeline_figure(
    regimen: Any,
    *,
    checkpoints: Sequence[Checkpoint] = (),
    ome: bool = True,
    table: str | None = None,
) -> Figure | None:
    """The timeline as a document figure, or ``None`` for a regimen with no drug step."""
    if not any(s.kind in _DRUG_KINDS for s in regimen.steps):
        return None
    lines = timeline_text(regimen, checkpoints=checkpoints, ome=ome, table=table)
    return Figure(
        timeline_svg(regimen, checkpoints=checkpoints, ome=ome, table=table),
        " ".join(f"{line}." for line in lines),
        "Daily dose of each drug over the days of the plan (day 0 = first day)",
    )
