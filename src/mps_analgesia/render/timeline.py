"""A timeline of a plan over days, drawn as SVG by hand (no plotting library needed).

Every value comes from the day plan (:func:`mps_analgesia.schedule`): the renderer reads each
:class:`~mps_analgesia.schedule.Day` and computes nothing.  One panel per drug shows its daily
total in mg/day on a labelled, ticked axis (regular doses as a solid line, the PRN maximum on
top of them as a dashed line; a dot and the new daily total where a titration or a taper changes
it), a panel shows the daily oral morphine equivalent in MME/day (regular, and with PRN at its
maximum) when every opioid of every day converts, and a strip under them draws the block (each
day of its bolus and catheter infusion, with the day's local anaesthetic) and the radiotherapy
fractions as bars over their days.  Checkpoints (an ECG, for example) are dashed vertical lines
across every panel.  The day axis is in plan days (day 0 is the first day of the plan), or in
dates when the regimen has a ``start_date``.  A legend names each mark.

The same data is given as text (:func:`timeline_text`), which is the picture's text alternative
and what Markdown and plain text show.

With the optional ``plot`` extra, :func:`timeline_figure` draws the same data (the same
extraction) as a matplotlib figure, and :func:`save_timeline` writes either form to a file
(``.svg`` by the library; ``.svg``, ``.png`` or ``.pdf`` by matplotlib).  matplotlib is imported
only when it is asked for; without it, :class:`PlotUnavailableError` says how to install it.
"""

from __future__ import annotations

import datetime
import difflib
import hashlib
import math
import os
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from .. import _format
from ..errors import MpsAnalgesiaError, UnknownNameError
from ._doc import Figure

if TYPE_CHECKING:  # matplotlib is the optional ``plot`` extra: never imported at package import
    from matplotlib.figure import Figure as MplFigure  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "ENGINES",
    "FILE_TYPES",
    "PLOT_UNAVAILABLE",
    "Checkpoint",
    "PlotUnavailableError",
    "save_timeline",
    "timeline_document_figure",
    "timeline_figure",
    "timeline_svg",
    "timeline_text",
]

_WIDTH: Final = 720
_LEFT: Final = 96
_RIGHT: Final = 24
_PANEL: Final = 64
_GAP: Final = 34
_LEGEND: Final = 14
_TOP: Final = 44  # from the legend to the first panel: room for the checkpoint labels
_AXIS: Final = 52
_BAR_ROW: Final = 30
_DRUG_KINDS: Final = ("opioid", "methadone_adjuvant", "adjuvant")
_COLOURS: Final = ("#0b4f8a", "#8a3b0b", "#1e5e2a", "#5b2a86", "#7a4300", "#1d5f6b", "#6b1d4f")
_INK: Final = "#1b1b1b"
_MUTED: Final = "#4a4a4a"
_GRID: Final = "#d9d9d9"
_CHECK: Final = "#9b1c1c"
_BAR_COLOURS: Final = {"block": "#1d5f6b", "radiotherapy": "#7a4300"}
_OME_TITLE: Final = "total OME"


@attrs.define(frozen=True)
class Checkpoint:
    """A day to mark across the timeline (``Checkpoint(14, "ECG")``)."""

    day: int
    label: str


@attrs.define(frozen=True)
class _Series:
    """One panel: a value per day (``regular``; ``prn`` with PRN at its maximum, or ``None``),
    and the days its value changes (day, label, on the PRN line)."""

    label: str
    regular: tuple[float, ...]
    prn: tuple[float, ...] | None
    changes: tuple[tuple[int, str, bool], ...]
    unit: str = "mg/day"


@attrs.define(frozen=True)
class _Bar:
    """A block or a radiotherapy course drawn as a bar over its days: (day, what that day)."""

    kind: str  # "block" or "radiotherapy"
    label: str
    days: tuple[tuple[int, str], ...]
    summary: str = ""


_num = _format.number


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _window(regimen: Any, checkpoints: Sequence[Checkpoint]) -> int:
    """How many plan days a regimen's timeline shows: through its last change, the last
    checkpoint and a taper's first reductions, then one more week (a display choice)."""
    from ..steps import TaperStep

    last: int = max([regimen.last_day, *(c.day for c in checkpoints)])
    for step in regimen.steps:
        if isinstance(step, TaperStep):
            first = step.first_day(regimen.steps, regimen.start_date)
            last = max(last, first + 3 * step.every_days)
    return last + 8


def _day_plan(obj: Any, checkpoints: Sequence[Checkpoint], table: str | None) -> Any:
    """The day plan to draw: ``obj`` itself when it is one, else ``schedule(obj)``."""
    from ..schedule import DayPlan, schedule
    from ._objects import DEFAULT_OME_TABLE

    if isinstance(obj, DayPlan):
        return obj
    return schedule(obj, _window(obj, checkpoints), table=table or DEFAULT_OME_TABLE)


def _series(plan: Any) -> list[_Series]:
    """One series per drug, in the order of the regimen's steps, read from the day plan."""
    steps_of: dict[str, list[int]] = {}
    for i, step in enumerate(plan.regimen.steps):
        if step.kind in _DRUG_KINDS:
            steps_of.setdefault(step.drug, []).append(i)
    out = []
    for drug, numbers in steps_of.items():
        regular = tuple(d.regular_totals_mg.get(drug, 0.0) for d in plan)
        with_prn = tuple(d.totals_mg.get(drug, 0.0) for d in plan)
        has_prn = any(i.prn and i.drug == drug for d in plan for i in d.items)
        changes: list[tuple[int, str, bool]] = []
        for k in range(1, len(regular)):
            if regular[k - 1] > 0 and not _format.close(regular[k], regular[k - 1]):
                changes.append((k, f"{_num(regular[k])} mg/day", False))
            elif (
                has_prn and with_prn[k - 1] > 0 and not _format.close(with_prn[k], with_prn[k - 1])
            ):
                changes.append((k, f"{_num(with_prn[k])} mg/day", True))
        listed = ", ".join(str(i + 1) for i in numbers)
        out.append(
            _Series(
                f"{drug} (step{'s' if len(numbers) > 1 else ''} {listed})",
                regular,
                with_prn if has_prn else None,
                tuple(changes),
            )
        )
    return out


def _ome(plan: Any) -> tuple[_Series | None, str]:
    """The daily OME panel read from the day plan, or ``None`` with the reason it is left out
    (no opioid; a step not converted on some day, as a partial total is not the total; or a
    total that is a range)."""
    opioid_days = [
        d for d in plan if any(i.kind in ("opioid", "methadone_adjuvant") for i in d.items)
    ]
    if not opioid_days:
        return None, ""
    regular: list[float] = []
    with_prn: list[float] = []
    for d in plan:
        reg, prn = d.ome_regular, d.ome_with_prn
        for result in (reg, prn):
            if result.not_converted:
                names = ", ".join(sorted({s.drug for s in result.not_converted}))
                return None, f"{_OME_TITLE} not drawn: not converted on day {d.day} ({names})"
            if result.is_range:
                return None, f"{_OME_TITLE} not drawn: a range on day {d.day}"
        regular.append(reg.low_mme_per_day)
        with_prn.append(prn.low_mme_per_day)
    has_prn = any(not _format.close(a, b) for a, b in zip(regular, with_prn, strict=True))
    label = f"{_OME_TITLE} ({getattr(plan.table, 'id', plan.table)})"  # a local table: its id
    changes = tuple(
        (k, f"{_num(regular[k])} MME/day", False)
        for k in range(1, len(regular))
        if regular[k - 1] > 0 and not _format.close(regular[k], regular[k - 1])
    )
    return _Series(
        label, tuple(regular), tuple(with_prn) if has_prn else None, changes, "MME/day"
    ), ""


def _bars(plan: Any) -> list[_Bar]:
    """The blocks and radiotherapy courses, each a bar over the days the day plan gives them."""
    blocks: dict[int, list[tuple[int, str]]] = {}
    courses: dict[int, list[tuple[int, str]]] = {}
    doses: dict[int, set[str]] = {}
    for d in plan:
        for b in d.blocks:
            mark = "≤ " if b.upper_bound else ""
            blocks.setdefault(b.step, []).append((d.day, f"{b.drug} {mark}{_num(b.mg)} mg"))
        for f in d.fractions:
            courses.setdefault(f.step, []).append(
                (d.day, f"fraction {f.number} of {f.of}, {_num(f.dose_gy)} Gy")
            )
            doses.setdefault(f.step, set()).add(f"{_num(f.dose_gy)} Gy")
    steps = plan.regimen.steps
    out = []
    for i in sorted({*blocks, *courses}):
        step = steps[i]
        if i in blocks:
            what = "catheter" if step.infusion_ml_per_h is not None else "single shot"
            label = f"step {i + 1}: {step.side} psoas block ({step.drug}, {what})"
            summary = ", ".join(f"{what} on day {day}" for day, what in blocks[i])
            out.append(_Bar("block", label, tuple(blocks[i]), summary))
        else:
            label = f"step {i + 1}: radiotherapy to {step.site}"
            count = len(courses[i])
            each = " or ".join(sorted(doses[i]))
            summary = f"{count} fraction{'s' if count != 1 else ''} of {each}"
            out.append(_Bar("radiotherapy", label, tuple(courses[i]), summary))
    return out


@attrs.define(frozen=True)
class _Data:
    """What every form of the timeline draws: days ``0..end``, the panels, bars, checkpoints."""

    end: int
    series: tuple[_Series, ...]
    total: _Series | None
    bars: tuple[_Bar, ...]
    checkpoints: tuple[Checkpoint, ...]
    dates: tuple[datetime.date | None, ...] = ()
    note: str = ""

    @property
    def panels(self) -> tuple[_Series, ...]:
        """One panel per drug, then the total OME (when there is one)."""
        return (*self.series, *((self.total,) if self.total is not None else ()))

    @property
    def dated(self) -> bool:
        """True when the days have calendar dates (the regimen has a ``start_date``)."""
        return bool(self.dates) and self.dates[0] is not None

    @property
    def has_prn(self) -> bool:
        return any(s.prn is not None for s in self.panels)

    @property
    def has_changes(self) -> bool:
        return any(s.changes for s in self.panels)

    def day_label(self, day: int) -> str:
        """A tick's text: the plan day, or its date (``'10 Dec'``) when the plan is dated."""
        date = self.dates[day] if self.dated and 0 <= day < len(self.dates) else None
        return str(day) if date is None else f"{date.day} {date.strftime('%b')}"

    @property
    def axis_label(self) -> str:
        """The day axis's title."""
        if self.dated:
            first = self.dates[0]
            assert first is not None
            return f"date (plan day 0 = {first.isoformat()})"
        return "plan day (day 0 = first day of the plan)"


def _data(regimen: Any, checkpoints: Sequence[Checkpoint], ome: bool, table: str | None) -> _Data:
    plan = _day_plan(regimen, checkpoints, table)
    total, note = _ome(plan) if ome else (None, "")
    return _Data(
        len(plan) - 1,
        tuple(_series(plan)),
        total,
        tuple(_bars(plan)),
        tuple(c for c in checkpoints if 0 <= c.day < len(plan)),
        tuple(d.date for d in plan),
        note,
    )


def _ticks(peak: float) -> tuple[float, ...]:
    """Round axis values from 0 to at least ``peak``: 1, 2, 2.5 or 5 × 10ⁿ apart, ≤ 5 steps."""
    if peak <= 0:
        return (0.0, 1.0)
    raw = peak / 4
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    count = math.ceil(peak / step - 1e-9)
    return tuple(k * step for k in range(count + 1))


def _day_step(end: int) -> int:
    return 1 if end <= 14 else 7 if end > 35 else 2


def _path(values: Sequence[float], x: Callable[[float], float], y: Callable[[float], float]) -> str:
    """A step line: each day's value held from the start of the day to the start of the next."""
    parts = [f"M{_f(x(0))},{_f(y(values[0]))}"]
    for day in range(1, len(values)):
        if values[day] != values[day - 1]:
            parts.append(f"H{_f(x(day))}V{_f(y(values[day]))}")
    parts.append(f"H{_f(x(len(values)))}")
    return "".join(parts)


def timeline_text(
    regimen: Any,
    *,
    checkpoints: Sequence[Checkpoint] = (),
    ome: bool = True,
    table: str | None = None,
) -> tuple[str, ...]:
    """The timeline as lines of text: what is given from which day, and the checkpoints.

    ``regimen`` is a Regimen or its :class:`~mps_analgesia.schedule.DayPlan`.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> reg = mps.Regimen([mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h",
    ...                    titration=[{"day": 7, "dose": "7.5 mg"}])])
    >>> timeline_text(reg, checkpoints=[Checkpoint(0, "ECG")], ome=False)
    ('day 0: methadone (step 1) 15 mg/day; ECG', 'day 7: methadone (step 1) 22.5 mg/day')
    """
    return _text(_data(regimen, checkpoints, ome, table))


def _text(data: _Data) -> tuple[str, ...]:
    end, total = data.end, data.total
    events: dict[int, list[str]] = {}
    for s in data.series:
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
        top = total.prn if total.prn is not None else total.regular
        for day in range(end + 1):
            before = (total.regular[day - 1], top[day - 1]) if day else (-1.0, -1.0)
            if (total.regular[day], top[day]) != before:
                text = f"{total.label} {_num(total.regular[day])} MME/day"
                if total.prn is not None:
                    text += f" (with PRN maximum {_num(top[day])} MME/day)"
                events.setdefault(day, []).append(text)
    elif data.note:
        events.setdefault(0, []).append(data.note)
    for bar in data.bars:
        first, last = bar.days[0][0], bar.days[-1][0]
        span = f"day {first}" if first == last else f"days {first}–{last}"
        events.setdefault(first, []).append(f"{bar.label} on {span}: {bar.summary}")
    for c in data.checkpoints:
        events.setdefault(c.day, []).append(c.label)
    return tuple(f"day {day}: " + "; ".join(events[day]) for day in sorted(events))


def _legend(data: _Data) -> list[tuple[str, str]]:
    """The legend's entries: (mark, words), only for marks the picture draws."""
    entries = [("solid", "regular daily dose")]
    if data.has_prn:
        entries.append(("dashed", "with PRN at its maximum"))
    if data.has_changes:
        entries.append(("dot", "new daily total (titration, taper)"))
    kinds = {b.kind for b in data.bars}
    if "block" in kinds:
        entries.append(("block", "psoas block: bolus and catheter days"))
    if "radiotherapy" in kinds:
        entries.append(("radiotherapy", "radiotherapy fraction"))
    if data.checkpoints:
        entries.append(("check", "checkpoint"))
    return entries


def timeline_svg(
    regimen: Any,
    *,
    checkpoints: Sequence[Checkpoint] = (),
    title: str = "Timeline of the plan",
    standalone: bool = False,
    ome: bool = True,
    table: str | None = None,
) -> str:
    """Draw the regimen (or its :class:`~mps_analgesia.schedule.DayPlan`) over days as SVG.

    The picture carries its values: each panel has a labelled value axis (mg/day, or MME/day
    for the OME panel) with its ticks, the day axis is labelled in plan days (dates when the
    regimen has a ``start_date``), and there is a legend.  Marks carry ``class`` and
    ``data-*`` attributes (``data-day``, ``data-value``) so the values can be read back.

    ``standalone=True`` adds the SVG namespace so the text can be saved as an ``.svg`` file;
    inline in HTML the namespace is not needed (and the page then holds no URL but DOI links).

    Example
    -------
    >>> import mps_analgesia as mps
    >>> reg = mps.Regimen([mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h")])
    >>> svg = timeline_svg(reg, checkpoints=[Checkpoint(7, "ECG")], ome=False)
    >>> svg.startswith("<svg") and "morphine" in svg and "ECG" in svg and ">mg/day<" in svg
    True
    """
    return _svg(_data(regimen, checkpoints, ome, table), title, standalone)


def _svg(data: _Data, title: str, standalone: bool) -> str:
    end, panels, bars = data.end, data.panels, data.bars
    n = len(panels)
    legend, legend_bottom = _svg_legend(data)
    top0 = legend_bottom + _TOP
    bars_top = top0 + n * (_PANEL + _GAP)
    axis_y = bars_top + len(bars) * _BAR_ROW + 4
    height = axis_y + _AXIS
    plot_w = _WIDTH - _LEFT - _RIGHT
    text = _text(data)
    digest = hashlib.sha1("\n".join((title, *text)).encode(), usedforsecurity=False)
    uid = f"mps-tl-{digest.hexdigest()[:10]}"

    def x(day: float) -> float:
        return _LEFT + plot_w * day / (end + 1)

    ns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    out = [
        f'<svg{ns} role="img" viewBox="0 0 {_WIDTH} {height}" width="{_WIDTH}" '
        f'height="{height}" aria-labelledby="{uid}-t {uid}-d" '
        f'font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-size="11">',
        f'<title id="{uid}-t">{escape(title)}</title>',
        f'<desc id="{uid}-d">' + escape(" ".join(text)) + "</desc>",
        f'<rect x="0" y="0" width="{_WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    out.extend(legend)
    for p, s in enumerate(panels):
        out.extend(_svg_panel(top0 + p * (_PANEL + _GAP), p, s, x))
    for r, bar in enumerate(bars):
        out.extend(_svg_bar(bar, bars_top + r * _BAR_ROW, x))
    out.extend(_svg_day_axis(data, axis_y, x))
    for k, c in enumerate(data.checkpoints):
        out.append(
            f'<line class="checkpoint" data-day="{c.day}" x1="{_f(x(c.day))}" '
            f'y1="{top0 - 24}" x2="{_f(x(c.day))}" y2="{_f(axis_y)}" stroke="{_CHECK}" '
            f'stroke-width="1.2" stroke-dasharray="3 3">'
            f"<title>{escape(f'day {c.day}: {c.label}')}</title></line>"
        )
        out.append(
            f'<text x="{_f(x(c.day) + 2)}" y="{top0 - 27 + 9 * (k % 2)}" fill="{_CHECK}" '
            f'font-size="10">{escape(c.label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _svg_legend(data: _Data) -> tuple[list[str], float]:
    """The legend's marks and words in rows across the top, and the y below its last row."""
    out = ['<g class="legend">']
    cx = float(_LEFT)
    y = _LEGEND
    for mark, words in _legend(data):
        if mark in ("solid", "dashed"):
            dash = ' stroke-dasharray="5 3"' if mark == "dashed" else ""
            width = "2.5" if mark == "solid" else "1.5"
            out.append(
                f'<line x1="{_f(cx)}" y1="{y}" x2="{_f(cx + 18)}" y2="{y}" stroke="{_INK}" '
                f'stroke-width="{width}"{dash}/>'
            )
        elif mark == "dot":
            out.append(f'<circle cx="{_f(cx + 9)}" cy="{y}" r="3.5" fill="{_INK}"/>')
        elif mark == "check":
            out.append(
                f'<line x1="{_f(cx + 9)}" y1="{y - 6}" x2="{_f(cx + 9)}" y2="{y + 6}" '
                f'stroke="{_CHECK}" stroke-width="1.2" stroke-dasharray="3 3"/>'
            )
        else:
            out.append(
                f'<rect x="{_f(cx)}" y="{y - 5}" width="18" height="10" '
                f'fill="{_BAR_COLOURS[mark]}"/>'
            )
        out.append(
            f'<text class="legend-entry" x="{_f(cx + 22)}" y="{y + 4}" fill="{_INK}" '
            f'font-size="10">{escape(words)}</text>'
        )
        cx += 22 + 5.6 * len(words) + 14
        if cx > _WIDTH - 160:
            cx, y = float(_LEFT), y + 14
    out.append("</g>")
    return out, float(y if cx > _LEFT else y - 14) + 6


def _svg_panel(top: float, p: int, s: _Series, x: Callable[[float], float]) -> list[str]:
    bottom = top + _PANEL
    ticks = _ticks(max([*s.regular, *(s.prn or ())]))
    scale = ticks[-1]

    def y(v: float) -> float:
        return bottom - _PANEL * v / scale

    colour = _INK if s.unit == "MME/day" else _COLOURS[p % len(_COLOURS)]
    out = [
        f'<g class="panel" data-label="{escape(s.label)}" data-unit="{escape(s.unit)}">',
        f'<text class="panel-title" x="{_LEFT}" y="{_f(top - 11)}" fill="{_INK}" '
        f'font-weight="bold">{escape(s.label)}</text>',
        f'<text class="axis-label" x="{_f(_LEFT - 52)}" y="{_f(top + _PANEL / 2)}" '
        f'text-anchor="middle" fill="{_MUTED}" transform="rotate(-90 {_f(_LEFT - 52)} '
        f'{_f(top + _PANEL / 2)})">{escape(s.unit)}</text>',
    ]
    for v in ticks:
        out.append(
            f'<line x1="{_LEFT}" y1="{_f(y(v))}" x2="{_WIDTH - _RIGHT}" y2="{_f(y(v))}" '
            f'stroke="{_GRID if v else _MUTED}" stroke-width="1"/>'
        )
        out.append(
            f'<text class="tick-y" data-value="{_num(v)}" x="{_LEFT - 6}" y="{_f(y(v) + 4)}" '
            f'text-anchor="end" fill="{_INK}">{_num(v)}</text>'
        )
    out.append(f'<line x1="{_LEFT}" y1="{top}" x2="{_LEFT}" y2="{_f(bottom)}" stroke="{_MUTED}"/>')
    if s.prn is not None:
        out.append(
            f'<path class="line-prn" data-values="{_values(s.prn)}" d="{_path(s.prn, x, y)}" '
            f'fill="none" stroke="{colour}" stroke-width="1.5" stroke-dasharray="5 3"/>'
        )
    out.append(
        f'<path class="line-regular" data-values="{_values(s.regular)}" '
        f'd="{_path(s.regular, x, y)}" fill="none" stroke="{colour}" stroke-width="2.5"/>'
    )
    for day, label, on_prn in s.changes:
        value = s.prn[day] if (on_prn and s.prn is not None) else s.regular[day]
        cy = y(value)
        out.append(
            f'<circle class="change" data-day="{day}" data-value="{_num(value)}" '
            f'cx="{_f(x(day))}" cy="{_f(cy)}" r="3.5" fill="{colour}">'
            f"<title>{escape(f'day {day}: {label}')}</title></circle>"
        )
        out.append(
            f'<text x="{_f(x(day) + 4)}" y="{_f(cy - 6)}" fill="{_INK}" font-size="10">'
            f"{escape(label)}</text>"
        )
    out.append("</g>")
    return out


def _values(values: Sequence[float]) -> str:
    """A line's value on each day, space-separated (``data-values``: the picture's data)."""
    return " ".join(_num(v) for v in values)


def _svg_bar(bar: _Bar, top: float, x: Callable[[float], float]) -> list[str]:
    colour = _BAR_COLOURS[bar.kind]
    out = [
        f'<g class="bars {bar.kind}" data-label="{escape(bar.label)}">',
        f'<text x="{_LEFT}" y="{_f(top + 9)}" fill="{_INK}" font-size="10">'
        f"{escape(bar.label)}</text>",
    ]
    for day, what in bar.days:
        left, right = x(day), x(day + 1)
        out.append(
            f'<rect class="bar" data-day="{day}" x="{_f(left + 0.5)}" y="{_f(top + 13)}" '
            f'width="{_f(right - left - 1)}" height="11" fill="{colour}">'
            f"<title>{escape(f'day {day}: {what}')}</title></rect>"
        )
    out.append("</g>")
    return out


def _svg_day_axis(data: _Data, axis_y: float, x: Callable[[float], float]) -> list[str]:
    out = [
        '<g class="axis-x">',
        f'<line x1="{_LEFT}" y1="{_f(axis_y)}" x2="{_WIDTH - _RIGHT}" y2="{_f(axis_y)}" '
        f'stroke="{_MUTED}"/>',
    ]
    for day in range(0, data.end + 1, _day_step(data.end)):
        out.append(
            f'<line x1="{_f(x(day))}" y1="{_f(axis_y)}" x2="{_f(x(day))}" y2="{_f(axis_y + 4)}" '
            f'stroke="{_MUTED}"/>'
        )
        out.append(
            f'<text class="tick-x" data-day="{day}" x="{_f(x(day))}" y="{_f(axis_y + 16)}" '
            f'text-anchor="middle" fill="{_INK}">{escape(data.day_label(day))}</text>'
        )
    out.append(
        f'<text class="axis-label" x="{_f(_LEFT + (_WIDTH - _LEFT - _RIGHT) / 2)}" '
        f'y="{_f(axis_y + 36)}" text-anchor="middle" fill="{_INK}">'
        f"{escape(data.axis_label)}</text>"
    )
    out.append("</g>")
    return out


def timeline_document_figure(
    regimen: Any,
    *,
    checkpoints: Sequence[Checkpoint] = (),
    ome: bool = True,
    table: str | None = None,
) -> Figure | None:
    """The timeline as a document figure, or ``None`` for a regimen with nothing over days
    (no drug step, no block, no radiotherapy).

    Example
    -------
    >>> import mps_analgesia as mps
    >>> reg = mps.Regimen([mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h")])
    >>> timeline_document_figure(reg, ome=False).alt
    'day 0: morphine (step 1) 60 mg/day.'
    >>> timeline_document_figure(mps.Regimen([])) is None
    True
    """
    data = _data(regimen, checkpoints, ome, table)
    if not data.panels and not data.bars:
        return None
    return Figure(
        _svg(data, "Timeline of the plan", False),
        " ".join(f"{line}." for line in _text(data)),
        _caption(data),
    )


def _caption(data: _Data) -> str:
    """The figure's caption: what it draws, and how its days are counted."""
    what = [
        *(("the daily dose of each drug",) if data.series else ()),
        *(("the daily OME",) if data.total is not None else ()),
    ]
    kinds = [k for k in ("block", "radiotherapy") if any(b.kind == k for b in data.bars)]
    head = " and ".join(what) if what else "the treatment days"
    bars = f", with the {' and '.join(kinds)} days as bars" if kinds else ""
    days = "dated from the regimen's start date" if data.dated else "day 0 = first day"
    return f"{head[0].upper()}{head[1:]} over the days of the plan{bars} ({days})"


# ---- the matplotlib form (optional extra ``plot``) -----------------------------------------------

#: What :class:`PlotUnavailableError` says.
PLOT_UNAVAILABLE: Final = (
    "matplotlib is not installed; install the 'plot' extra: pip install 'mps-analgesia[plot]'"
)
#: The timeline engines: ``"svg"`` (drawn by the library, no dependency) and ``"matplotlib"``.
ENGINES: Final = ("svg", "matplotlib")
#: The file types each engine writes (by the file's suffix).
FILE_TYPES: Final = {"svg": ("svg",), "matplotlib": ("svg", "png", "pdf")}
_SAVE_METADATA: Final = {"svg": {"Date": None}, "pdf": {"CreationDate": None}, "png": {}}


class PlotUnavailableError(MpsAnalgesiaError, ImportError):
    """matplotlib is needed (for :func:`timeline_figure`) and is not installed.

    It is both an :class:`~mps_analgesia.errors.MpsAnalgesiaError` and an :class:`ImportError`,
    so either ``except`` catches it.  The fix is the ``plot`` extra:
    ``pip install 'mps-analgesia[plot]'``.

    Example
    -------
    >>> str(PlotUnavailableError())
    "matplotlib is not installed; install the 'plot' extra: pip install 'mps-analgesia[plot]'"
    """

    def __init__(self) -> None:
        super().__init__(PLOT_UNAVAILABLE, name="matplotlib")


def _matplotlib() -> tuple[type[MplFigure], Any]:
    """matplotlib's ``Figure`` class and the Agg canvas, imported now (never at package import).

    The figure gets its own Agg canvas, so the global backend (a notebook's, say) is left alone.
    """
    try:
        # the top-level package first: a ``None`` entry in sys.modules stops the import here
        import matplotlib  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
        from matplotlib.backends.backend_agg import (  # type: ignore[import-not-found,unused-ignore]
            FigureCanvasAgg,
        )
        from matplotlib.figure import Figure as _MplFigure  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise PlotUnavailableError from exc
    return _MplFigure, FigureCanvasAgg


def _resolve(
    obj: Any, checkpoints: Sequence[Checkpoint] | None, table: str | None
) -> tuple[Any, tuple[Checkpoint, ...], str | None]:
    """What to draw for ``obj`` (a Regimen, a DayPlan, a Case or an instantiated plan), its
    checkpoints and OME table: a plan brings its dated ECG checks and its protocol's table
    unless given."""
    from ..regimen import Case, Regimen
    from ..schedule import DayPlan
    from ._objects import _module, plan_checkpoints

    if isinstance(obj, Regimen | DayPlan):
        return obj, tuple(checkpoints or ()), table
    if isinstance(obj, Case):
        return obj.regimen, tuple(checkpoints or ()), table
    protocols = _module("protocols")
    if protocols is not None and isinstance(obj, protocols.InstantiatedPlan):
        marks = plan_checkpoints(obj) if checkpoints is None else checkpoints
        return obj.regimen, tuple(marks), table or obj.protocol.ome_table
    kinds = "a Regimen, a DayPlan, a Case or an InstantiatedPlan"
    raise UnknownNameError(
        "timeline object",
        type(obj).__name__,
        reason=f"cannot draw a timeline of a {type(obj).__name__}: give {kinds}",
    )


def _draw(data: _Data, title: str) -> MplFigure:
    figure_class, canvas_class = _matplotlib()
    panels = data.panels
    rows = len(panels) + (1 if data.bars else 0)
    n = max(rows, 1)
    ratios = [1.0] * len(panels) + ([0.25 + 0.22 * len(data.bars)] if data.bars else [])
    fig = figure_class(
        figsize=(9.0, 1.6 + 1.7 * len(panels) + 0.35 * len(data.bars)), layout="constrained"
    )
    canvas_class(fig)
    axes = list(
        fig.subplots(
            n, 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": ratios or [1.0]}
        )[:, 0]
    )
    days = list(range(data.end + 2))  # one more point: the last day is drawn to its end

    def held(values: Sequence[float]) -> list[float]:
        return [*values, values[-1]]

    for p, (ax, s) in enumerate(zip(axes, panels, strict=False)):
        colour = _INK if s.unit == "MME/day" else _COLOURS[p % len(_COLOURS)]
        if s.prn is not None:
            ax.step(
                days,
                held(s.prn),
                where="post",
                color=colour,
                linewidth=1.5,
                linestyle=(0, (5, 3)),
                label=f"{s.label}, with PRN maximum",
            )
        ax.step(days, held(s.regular), where="post", color=colour, linewidth=2.5, label=s.label)
        for day, label, on_prn in s.changes:
            y = s.prn[day] if (on_prn and s.prn is not None) else s.regular[day]
            ax.scatter([day], [y], s=22, color=colour, zorder=3, label=f"day {day}: {label}")
            ax.annotate(
                label, (day, y), xytext=(4, 5), textcoords="offset points", fontsize=8, color=_INK
            )
        ticks = _ticks(max([*s.regular, *(s.prn or ())]))
        ax.set_ylim(0, ticks[-1] * 1.15)
        ax.set_yticks(list(ticks))
        ax.set_yticklabels([_num(v) for v in ticks])
        pad = 20.0 if p == 0 and data.checkpoints else 6.0  # room for the checkpoint labels
        ax.set_title(s.label, loc="left", fontsize=10, fontweight="bold", color=_INK, pad=pad)
        ax.set_ylabel(s.unit, color=_MUTED)
        ax.grid(axis="y", color=_GRID, linewidth=0.8)
    if data.bars:
        ax = axes[len(panels)]
        for r, bar in enumerate(data.bars):
            ax.broken_barh(
                [(day, 1.0) for day, _what in bar.days],
                (r + 0.2, 0.6),
                facecolors=_BAR_COLOURS[bar.kind],
                edgecolor="#ffffff",
                label=bar.label,
            )
        ax.set_ylim(len(data.bars), 0)
        ax.set_yticks([r + 0.5 for r in range(len(data.bars))])
        ax.set_yticklabels([b.label for b in data.bars], fontsize=8)
        if not panels:
            ax.set_title("block and radiotherapy", loc="left", fontsize=10, fontweight="bold")
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        for c in data.checkpoints:
            ax.axvline(
                c.day,
                color=_CHECK,
                linewidth=1.2,
                linestyle=(0, (3, 3)),
                label=c.label,
                zorder=3,  # over the axis line, so a day-0 check shows
            )
    if not rows:
        axes[0].set_yticks([])
    top, bottom = axes[0], axes[-1]
    for k, c in enumerate(data.checkpoints):
        top.annotate(
            c.label,
            (c.day, 1.0),
            xycoords=top.get_xaxis_transform(),
            xytext=(2, 3 + 9 * (k % 2)),
            textcoords="offset points",
            fontsize=8,
            color=_CHECK,
        )
    step = _day_step(data.end)
    bottom.set_xlim(0, data.end + 1)
    ticks_x = list(range(0, data.end + 1, step))
    bottom.set_xticks(ticks_x)
    bottom.set_xticklabels([data.day_label(d) for d in ticks_x])
    bottom.set_xlabel(data.axis_label, color=_INK)
    fig.legend(
        handles=_mpl_legend(data),
        loc="outside upper right",
        ncols=3,
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(title, x=0.01, ha="left", fontsize=12, fontweight="bold", color=_INK)
    return fig


def _mpl_legend(data: _Data) -> list[Any]:
    """The legend's handles, the same entries as the SVG legend."""
    from matplotlib.lines import Line2D  # type: ignore[import-not-found,unused-ignore]
    from matplotlib.patches import Patch  # type: ignore[import-not-found,unused-ignore]

    handles: list[Any] = []
    for mark, words in _legend(data):
        if mark == "solid":
            handles.append(Line2D([], [], color=_INK, linewidth=2.5, label=words))
        elif mark == "dashed":
            handles.append(
                Line2D([], [], color=_INK, linewidth=1.5, linestyle=(0, (5, 3)), label=words)
            )
        elif mark == "dot":
            handles.append(Line2D([], [], color=_INK, marker="o", linestyle="none", label=words))
        elif mark == "check":
            handles.append(
                Line2D([], [], color=_CHECK, linewidth=1.2, linestyle=(0, (3, 3)), label=words)
            )
        else:
            handles.append(Patch(facecolor=_BAR_COLOURS[mark], label=words))
    return handles


def timeline_figure(
    obj: Any,
    *,
    checkpoints: Sequence[Checkpoint] | None = None,
    title: str = "Timeline of the plan",
    ome: bool = True,
    table: str | None = None,
) -> MplFigure:
    """Draw the timeline with matplotlib and return the ``matplotlib.figure.Figure``.

    ``obj`` is a Regimen, its DayPlan, a Case or an instantiated plan.  A plan brings its dated
    ECG checks and its protocol's OME table unless ``checkpoints`` or ``table`` are given.  The
    figure holds the same data as :func:`timeline_svg`, read from the same day plan: one panel
    per drug in mg/day (regular dose solid, PRN maximum dashed, a dot at each new daily total),
    the daily OME in MME/day, the block and radiotherapy days as bars, the checkpoints as dashed
    vertical lines, the day axis in plan days (dates with a ``start_date``) and a legend.

    matplotlib is imported when this is called (the optional ``plot`` extra), and the figure
    draws on its own Agg canvas: the global backend is not changed.  Without matplotlib this
    raises :class:`PlotUnavailableError`.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> reg = mps.Regimen([mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h")])
    >>> try:
    ...     fig = timeline_figure(reg, checkpoints=[Checkpoint(7, "ECG")], ome=False)
    ...     labels = [line.get_label() for line in fig.axes[0].get_lines()]
    ...     ok = labels == ["morphine (step 1)", "ECG"]
    ... except PlotUnavailableError as exc:  # without the 'plot' extra
    ...     ok = "pip install 'mps-analgesia[plot]'" in str(exc)
    >>> ok
    True
    """
    regimen, marks, table = _resolve(obj, checkpoints, table)
    _matplotlib()  # fail before any work when matplotlib is missing
    return _draw(_data(regimen, marks, ome, table), title)


def _engine(engine: str) -> str:
    key = str(engine).strip().lower()
    if key not in ENGINES:
        raise UnknownNameError(
            "timeline engine",
            str(engine),
            difflib.get_close_matches(key, ENGINES, n=1, cutoff=0.3),
            reason=f"unknown timeline engine {engine!r} (use one of {', '.join(ENGINES)})",
        )
    return key


def save_timeline(
    obj: Any,
    path: str | os.PathLike[str],
    *,
    engine: str = "svg",
    checkpoints: Sequence[Checkpoint] | None = None,
    title: str = "Timeline of the plan",
    ome: bool = True,
    table: str | None = None,
) -> Path:
    """Write the timeline of ``obj`` (a Regimen, a DayPlan, a Case or a plan) to ``path``; return
    the path.

    ``engine="svg"`` (the default) writes the library's own SVG (:func:`timeline_svg`, no
    dependency; the file must end in ``.svg``).  ``engine="matplotlib"`` draws
    :func:`timeline_figure` and writes ``.svg``, ``.png`` or ``.pdf`` by the file's suffix
    (:class:`PlotUnavailableError` when matplotlib is not installed).  An unknown engine or a
    file type the engine does not write raises :class:`~mps_analgesia.errors.UnknownNameError`.

    Example
    -------
    >>> import tempfile, mps_analgesia as mps
    >>> reg = mps.Regimen([mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h")])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_timeline(reg, f"{tmp}/timeline.svg", checkpoints=[Checkpoint(0, "ECG")])
    ...     path.read_text(encoding="utf-8").startswith("<svg xmlns=")
    True
    >>> save_timeline(reg, "timeline.png")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mps_analgesia.errors.UnknownNameError: timeline.png: the svg timeline engine writes .svg ...
    """
    key = _engine(engine)
    target = Path(path)
    suffix = target.suffix.lower().lstrip(".")
    if suffix not in FILE_TYPES[key]:
        other = [e for e in ENGINES if suffix in FILE_TYPES[e]]
        hint = f" (use engine={other[0]!r} for .{suffix})" if other else ""
        raise UnknownNameError(
            "timeline file type",
            suffix or target.name,
            reason=f"{target}: the {key} timeline engine writes "
            + ", ".join(f".{t}" for t in FILE_TYPES[key])
            + f" files only{hint}",
        )
    regimen, marks, table = _resolve(obj, checkpoints, table)
    if key == "svg":
        svg = timeline_svg(
            regimen, checkpoints=marks, title=title, standalone=True, ome=ome, table=table
        )
        target.write_text(svg + "\n", encoding="utf-8")
        return target
    _matplotlib()
    import matplotlib  # type: ignore[import-not-found,unused-ignore]

    fig = _draw(_data(regimen, marks, ome, table), title)
    with matplotlib.rc_context({"svg.hashsalt": "mps-analgesia"}):  # stable ids in the SVG
        fig.savefig(target, format=suffix, metadata=_SAVE_METADATA[suffix])
    return target
