"""A timeline of a plan over days, drawn as SVG by hand (no plotting library needed).

One panel per drug shows its daily dose in mg/day (regular doses as a solid line; the PRN
maximum on top of them as a dashed line), titration steps are marked with a dot and the new dose,
a panel shows the total oral morphine equivalent when the conversion module can compute it, and
checkpoints (an ECG, for example) are dashed vertical lines across every panel.  Blocks and
radiotherapy are marked on the day they start.  Day 0 is the first day of the plan.

The same data is given as text (:func:`timeline_text`), which is the picture's text alternative
and what Markdown and plain text show.

With the optional ``plot`` extra, :func:`timeline_figure` draws the same data (the same
extraction) as a matplotlib figure, and :func:`save_timeline` writes either form to a file
(``.svg`` by the library; ``.svg``, ``.png`` or ``.pdf`` by matplotlib).  matplotlib is imported
only when it is asked for; without it, :class:`PlotUnavailableError` says how to install it.
"""

from __future__ import annotations

import difflib
import hashlib
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


_num = _format.number


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


@attrs.define(frozen=True)
class _Data:
    """What every form of the timeline draws: days ``0..end``, the panels, events, checkpoints."""

    end: int
    series: tuple[_Series, ...]
    total: _Series | None
    events: tuple[tuple[int, str], ...]
    checkpoints: tuple[Checkpoint, ...]

    @property
    def panels(self) -> tuple[_Series, ...]:
        """One panel per drug, then the total OME (when there is one)."""
        return (*self.series, *((self.total,) if self.total is not None else ()))


def _data(regimen: Any, checkpoints: Sequence[Checkpoint], ome: bool, table: str | None) -> _Data:
    end = _days(regimen, checkpoints)
    return _Data(
        end,
        tuple(_series(regimen, end)),
        _ome(regimen, end, table) if ome else None,
        tuple(_events(regimen)),
        tuple(checkpoints),
    )


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
        for day in range(end + 1):
            if day == 0 or total.regular[day] != total.regular[day - 1]:
                events.setdefault(day, []).append(
                    f"{total.label} {_num(total.regular[day])} MME/day"
                )
    for day, label in data.events:
        events.setdefault(day, []).append(label)
    for c in data.checkpoints:
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
    data = _data(regimen, checkpoints, ome, table)
    end, panels, events = data.end, data.panels, data.events
    n = max(len(panels), 1)
    height = _TOP + n * (_PANEL + _GAP) + _AXIS + 14 * len(events)
    plot_w = _WIDTH - _LEFT - _RIGHT
    text = _text(data)
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
    for k, c in enumerate(data.checkpoints):
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


def timeline_document_figure(
    regimen: Any,
    *,
    checkpoints: Sequence[Checkpoint] = (),
    ome: bool = True,
    table: str | None = None,
) -> Figure | None:
    """The timeline as a document figure, or ``None`` for a regimen with no drug step.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> reg = mps.Regimen([mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h")])
    >>> timeline_document_figure(reg, ome=False).alt
    'day 0: morphine (step 1) 60 mg/day.'
    >>> timeline_document_figure(mps.Regimen([])) is None
    True
    """
    if not any(s.kind in _DRUG_KINDS for s in regimen.steps):
        return None
    lines = timeline_text(regimen, checkpoints=checkpoints, ome=ome, table=table)
    return Figure(
        timeline_svg(regimen, checkpoints=checkpoints, ome=ome, table=table),
        " ".join(f"{line}." for line in lines),
        "Daily dose of each drug over the days of the plan (day 0 = first day)",
    )


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
    """The regimen of ``obj`` (a Regimen, a Case or an instantiated plan), its checkpoints and
    OME table: a plan brings its dated ECG checks and its protocol's table unless given."""
    from ..regimen import Case, Regimen
    from ._objects import _module, plan_checkpoints

    if isinstance(obj, Regimen):
        return obj, tuple(checkpoints or ()), table
    if isinstance(obj, Case):
        return obj.regimen, tuple(checkpoints or ()), table
    protocols = _module("protocols")
    if protocols is not None and isinstance(obj, protocols.InstantiatedPlan):
        marks = plan_checkpoints(obj) if checkpoints is None else checkpoints
        return obj.regimen, tuple(marks), table or obj.protocol.ome_table
    kinds = "a Regimen, a Case or an InstantiatedPlan"
    raise UnknownNameError(
        "timeline object",
        type(obj).__name__,
        reason=f"cannot draw a timeline of a {type(obj).__name__}: give {kinds}",
    )


def _draw(data: _Data, title: str) -> MplFigure:
    figure_class, canvas_class = _matplotlib()
    panels = data.panels
    n = max(len(panels), 1)
    fig = figure_class(figsize=(9.0, 1.2 + 1.7 * n + 0.18 * len(data.events)), layout="constrained")
    canvas_class(fig)
    axes = list(fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0])
    days = list(range(data.end + 1))
    for p, (ax, s) in enumerate(zip(axes, panels, strict=False)):
        colour = _INK if s.unit == "MME/day" else _COLOURS[p % len(_COLOURS)]
        if s.prn is not None:
            ax.step(
                days,
                s.prn,
                where="post",
                color=colour,
                linewidth=1.5,
                linestyle=(0, (5, 3)),
                label=f"{s.label}, with PRN maximum",
            )
        ax.step(days, s.regular, where="post", color=colour, linewidth=2.5, label=s.label)
        for day, label, on_prn in s.changes:
            if 0 <= day <= data.end:
                y = s.prn[day] if (on_prn and s.prn is not None) else s.regular[day]
                ax.scatter([day], [y], s=22, color=colour, zorder=3, label=f"day {day}: {label}")
                ax.annotate(
                    label.split(": ", 1)[-1],
                    (day, y),
                    xytext=(4, 5),
                    textcoords="offset points",
                    fontsize=8,
                    color=_INK,
                )
        peak = max([*s.regular, *(s.prn or ())]) or 1.0
        ax.set_ylim(0, peak * 1.2)
        pad = 20.0 if p == 0 and data.checkpoints else 6.0  # room for the checkpoint labels
        ax.set_title(s.label, loc="left", fontsize=10, fontweight="bold", color=_INK, pad=pad)
        ax.set_ylabel(s.unit, color=_MUTED)
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        for c in data.checkpoints:
            if 0 <= c.day <= data.end:
                ax.axvline(
                    c.day,
                    color=_CHECK,
                    linewidth=1.2,
                    linestyle=(0, (3, 3)),
                    label=c.label,
                    zorder=3,  # over the axis line, so a day-0 check shows
                )
    if not panels:
        axes[0].set_yticks([])
    top, bottom = axes[0], axes[-1]
    for k, c in enumerate(data.checkpoints):
        if 0 <= c.day <= data.end:
            top.annotate(
                c.label,
                (c.day, 1.0),
                xycoords=top.get_xaxis_transform(),
                xytext=(2, 3 + 9 * (k % 2)),
                textcoords="offset points",
                fontsize=8,
                color=_CHECK,
            )
    step = 1 if data.end <= 14 else 7 if data.end > 35 else 2
    bottom.set_xlim(0, data.end)
    bottom.set_xticks(range(0, data.end + 1, step))
    bottom.set_xlabel("day (day 0 = first day of the plan)", color=_INK)
    for k, (day, label) in enumerate(data.events):
        bottom.annotate(
            f"▲ {label}",
            (day, 0.0),
            xycoords=bottom.get_xaxis_transform(),
            xytext=(-4, -34 - 12 * k),  # the ▲ under its day
            textcoords="offset points",
            fontsize=8,
            va="top",
            color=_INK,
        )
    fig.suptitle(title, x=0.01, ha="left", fontsize=12, fontweight="bold", color=_INK)
    return fig


def timeline_figure(
    obj: Any,
    *,
    checkpoints: Sequence[Checkpoint] | None = None,
    title: str = "Timeline of the plan",
    ome: bool = True,
    table: str | None = None,
) -> MplFigure:
    """Draw the timeline with matplotlib and return the ``matplotlib.figure.Figure``.

    ``obj`` is a Regimen, a Case or an instantiated plan.  A plan brings its dated ECG checks
    and its protocol's OME table unless ``checkpoints`` or ``table`` are given.  The figure holds
    the same data as :func:`timeline_svg`: one panel per drug (regular dose solid, PRN maximum
    dashed, a dot at each titration step), the total OME, the checkpoints as dashed vertical
    lines, and the start of blocks and radiotherapy under the day axis.

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
    """Write the timeline of ``obj`` (a Regimen, a Case or a plan) to ``path``; return the path.

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
