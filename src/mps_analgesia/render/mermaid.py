"""Protocol flow as a diagram: Mermaid source for Markdown, the same graph drawn as SVG for HTML.

A :class:`Flow` is a small graph: :class:`Node` objects (a step, a decision, a start or end
point) grouped in ordered phases, and :class:`Edge` objects (sequencing, with an optional label
such as "yes" / "no" or "after 7 days").  :func:`to_mermaid` writes it as a Mermaid ``flowchart``
(phases as subgraphs, decisions as diamonds); :func:`to_svg` lays it out in layers and draws it
by hand, so an HTML page shows the diagram with no script and no network request.

The builders make a :class:`Flow` from a protocol's phases, step templates, sequencing and
decision points (:func:`protocol_flow` in :mod:`._objects`); nothing here invents a node.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from html import escape
from typing import Final, Literal

import attrs

from ._doc import Diagram

__all__ = ["Edge", "Flow", "Node", "diagram", "flow_text", "to_mermaid", "to_svg"]

Shape = Literal["step", "decision", "terminal"]

_NODE_W: Final = 210
_H_GAP: Final = 26
_V_GAP: Final = 40
_LINE_H: Final = 14
_WRAP: Final = 30
_MARGIN: Final = 16
_GUTTER: Final = 22  # room left of the nodes for arrows that skip rows
_INK: Final = "#1b1b1b"
_MUTED: Final = "#4a4a4a"
_FILL: Final = {"step": "#eef3f9", "decision": "#fff4e0", "terminal": "#eaf4ec"}
_BAND: Final = ("#f7f7f7", "#ffffff")


@attrs.define(frozen=True)
class Node:
    """A box in the flow: ``id`` (letters, digits, ``-``, ``_``), label, shape and phase.

    ``beside`` names a node of the same phase to draw it next to (a side exit).
    """

    id: str
    label: str
    shape: Shape = "step"
    phase: str = ""
    beside: str = ""  # draw in the same row as this node (a side exit such as "not eligible")


@attrs.define(frozen=True)
class Edge:
    """An arrow from one node id to another, with an optional label."""

    source: str
    target: str
    label: str = ""


@attrs.define(frozen=True)
class Flow:
    """A flow: its nodes (in order), edges, and the phases in order (``(id, title)`` pairs)."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...] = ()
    phases: tuple[tuple[str, str], ...] = ()

    def node(self, node_id: str) -> Node:
        """The node with this id."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)  # pragma: no cover - builders only link existing nodes


_SAFE_ID = re.compile(r"[^A-Za-z0-9_]")


def _mid(node_id: str) -> str:
    return "n_" + _SAFE_ID.sub("_", node_id)


def _pid(phase_id: str) -> str:
    return "p_" + _SAFE_ID.sub("_", phase_id)


def _phase_ids(flow: Flow) -> set[str]:
    return {pid for pid, _ in flow.phases}


def _mtext(text: str) -> str:
    # Mermaid labels in double quotes: quotes and markup characters become entity codes.
    out = text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;")
    return out.replace(">", "#gt;").replace("\n", " ")


def to_mermaid(flow: Flow) -> str:
    """Write ``flow`` as a Mermaid ``flowchart TD``.

    Example
    -------
    >>> f = Flow((Node("a", "Start", "terminal", "p1"), Node("b", "QTc < 450 ms?", "decision",
    ...           "p1")), (Edge("a", "b"),), (("p1", "Assessment"),))
    >>> print(to_mermaid(f))
    flowchart TD
      subgraph p_p1["Assessment"]
        n_a(["Start"])
        n_b{"QTc #lt; 450 ms?"}
      end
      n_a --> n_b
    """
    lines = ["flowchart TD"]
    shapes = {"step": ('["', '"]'), "decision": ('{"', '"}'), "terminal": ('(["', '"])')}

    def node_line(n: Node, indent: str) -> str:
        left, right = shapes[n.shape]
        return f"{indent}{_mid(n.id)}{left}{_mtext(n.label)}{right}"

    placed: set[str] = set()
    for pid, title in flow.phases:
        members = [n for n in flow.nodes if n.phase == pid]
        if not members:
            continue
        lines.append(f'  subgraph {_pid(pid)}["{_mtext(title)}"]')
        for n in members:
            lines.append(node_line(n, "    "))
            placed.add(n.id)
        lines.append("  end")
    for n in flow.nodes:
        if n.id not in placed:
            lines.append(node_line(n, "  "))
    phases = _phase_ids(flow)

    def end(x: str) -> str:
        return _pid(x) if x in phases else _mid(x)

    for e in flow.edges:
        arrow = f' -->|"{_mtext(e.label)}"| ' if e.label else " --> "
        lines.append(f"  {end(e.source)}{arrow}{end(e.target)}")
    return "\n".join(lines)


def flow_text(flow: Flow) -> tuple[str, ...]:
    """The flow as lines of text (the diagram's text alternative)."""
    out: list[str] = []
    titles = dict(flow.phases)
    numbering = {n.id: i + 1 for i, n in enumerate(flow.nodes)}

    def target(e: Edge) -> str:
        name = titles[e.target] if e.target in titles else str(numbering.get(e.target, e.target))
        return name + (f" ({e.label})" if e.label else "")

    for pid in ["", *(p for p, _ in flow.phases)]:
        members = [n for n in flow.nodes if n.phase == pid]
        if pid:
            leaving = [target(e) for e in flow.edges if e.source == pid]
            after = f" → {', '.join(leaving)}" if leaving else ""
            out.append(f"{titles.get(pid, pid)}:{after}")
        indent = "  " if pid else ""
        for n in members:
            nexts = [target(e) for e in flow.edges if e.source == n.id]
            then = f" → {', '.join(nexts)}" if nexts else ""
            mark = "?" if n.shape == "decision" and not n.label.endswith("?") else ""
            out.append(f"{indent}{numbering[n.id]}. {n.label}{mark}{then}")
    return tuple(out)


# ---- SVG layout ---------------------------------------------------------------------------------


def _layers(flow: Flow) -> dict[str, int]:
    """A layer per node: after its predecessors (forward edges only) and after earlier phases."""
    order = {n.id: i for i, n in enumerate(flow.nodes)}
    phase_rank = {pid: i for i, (pid, _) in enumerate(flow.phases)}

    def rank(node_id: str) -> tuple[int, int]:
        return (phase_rank.get(flow.node(node_id).phase, -1), order[node_id])

    forward = [
        e
        for e in flow.edges
        if e.source in order and e.target in order and rank(e.source) < rank(e.target)
    ]
    layer: dict[str, int] = {}
    floor = 0
    groups: list[list[Node]] = [[n for n in flow.nodes if n.phase not in phase_rank]] + [
        [n for n in flow.nodes if n.phase == pid] for pid, _ in flow.phases
    ]
    for members in groups:
        if not members:
            continue
        for n in members:  # nodes are in order, so predecessors in the group come first
            if n.beside in layer:
                layer[n.id] = layer[n.beside]
                continue
            preds = [layer[e.source] for e in forward if e.target == n.id and e.source in layer]
            layer[n.id] = max([floor, *(p + 1 for p in preds)])
        floor = max(layer[n.id] for n in members) + 1
    return layer


def _wrap(label: str, width: int = _WRAP) -> list[str]:
    return textwrap.wrap(label, width, break_long_words=True) or [""]


def _order_rows(rows: list[list[Node]], flow: Flow) -> None:
    """Order each row by the mean column of its predecessors (fewer crossing arrows)."""
    column: dict[str, float] = {}
    for row in rows:

        def key(item: tuple[int, Node]) -> tuple[float, int]:
            k, n = item
            preds = [
                column[e.source] for e in flow.edges if e.target == n.id and e.source in column
            ]
            return (sum(preds) / len(preds) if preds else float(k), k)

        row[:] = [n for _, n in sorted(enumerate(row), key=key)]
        for k, n in enumerate(row):
            column[n.id] = k - (len(row) - 1) / 2


def to_svg(flow: Flow, *, title: str = "Protocol flow") -> str:
    """Draw ``flow`` as an inline SVG (top to bottom; phases as shaded bands).

    Example
    -------
    >>> f = Flow((Node("a", "Start", "terminal"), Node("b", "Check QTc", "step")),
    ...          (Edge("a", "b"),))
    >>> svg = to_svg(f)
    >>> svg.startswith("<svg") and "Check QTc" in svg and "marker" in svg
    True
    """
    layer = _layers(flow)
    n_layers = max(layer.values(), default=-1) + 1
    rows: list[list[Node]] = [[] for _ in range(n_layers)]
    for n in flow.nodes:
        rows[layer[n.id]].append(n)
    _order_rows(rows, flow)
    labels = {
        n.id: _wrap(n.label, _WRAP - 8 if n.shape == "decision" else _WRAP) for n in flow.nodes
    }

    def box_h(n: Node) -> float:
        h = len(labels[n.id]) * _LINE_H + 14
        return h + 10 + 6 * len(labels[n.id]) if n.shape == "decision" else h

    row_h = [max((box_h(n) for n in row), default=0.0) for row in rows]
    widest = max((len(r) for r in rows), default=1)
    width = max(640, 2 * (_MARGIN + _GUTTER) + widest * (_NODE_W + _H_GAP) - _H_GAP)
    titles = dict(flow.phases)
    chars = int((width - 3 * _MARGIN) / 6.5)
    title_lines = {pid: textwrap.wrap(t, chars) or [""] for pid, t in flow.phases}
    row_phase = [row[0].phase if row else "" for row in rows]
    y_top: list[float] = []
    band: dict[str, list[float]] = {}  # phase id -> [top, bottom]
    y = float(_MARGIN)
    for r, h in enumerate(row_h):
        pid = row_phase[r]
        if pid in titles and (r == 0 or row_phase[r - 1] != pid):
            band[pid] = [y, y]
            y += 8 + _LINE_H * len(title_lines[pid]) + 4
        y_top.append(y)
        y += h
        if pid in band:
            band[pid][1] = y + 8
        y += _V_GAP
    height = y - _V_GAP + _MARGIN + 8
    pos: dict[str, tuple[float, float, float]] = {}  # centre x, top y, height
    for r, row in enumerate(rows):
        span = len(row) * _NODE_W + (len(row) - 1) * _H_GAP
        x0 = (width - span) / 2
        for k, n in enumerate(row):
            h = box_h(n)
            cx = x0 + k * (_NODE_W + _H_GAP) + _NODE_W / 2
            pos[n.id] = (cx, y_top[r] + (row_h[r] - h) / 2, h)
    text = "\n".join(flow_text(flow))
    uid = "mps-fl-" + hashlib.sha1((title + text).encode(), usedforsecurity=False).hexdigest()[:10]
    out = [
        f'<svg role="img" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
        f'height="{height:.0f}" aria-labelledby="{uid}-t {uid}-d" '
        'font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-size="11">',
        f'<title id="{uid}-t">{escape(title)}</title>',
        f'<desc id="{uid}-d">{escape(" ".join(flow_text(flow)))}</desc>',
        f'<defs><marker id="{uid}-a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
        f'fill="{_INK}"/></marker></defs>',
        f'<rect x="0" y="0" width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>',
    ]
    for k, (pid, _ptitle) in enumerate(flow.phases):
        if pid not in band:
            continue
        top, bottom = band[pid]
        out.append(
            f'<rect x="4" y="{top:.1f}" width="{width - 8:.0f}" height="{bottom - top:.1f}" '
            f'fill="{_BAND[k % 2]}" stroke="#8a8a8a" stroke-width="0.8" rx="4"/>'
        )
        for j, line in enumerate(title_lines[pid]):
            out.append(
                f'<text x="12" y="{top + 15 + j * _LINE_H:.1f}" fill="{_INK}" '
                f'font-weight="bold" font-size="11">{escape(line)}</text>'
            )
    side = width - 14.0
    for e in flow.edges:
        dash = ""
        anchor = ""  # a label beside an arrow that runs down to the left ends left of it
        if e.source in band and e.target in band:
            sy, ty = band[e.source][1], band[e.target][0]
            d = f"M{side:.1f},{sy:.1f}L{side:.1f},{ty:.1f}"
            lx, ly = side - 40, (sy + ty) / 2 + 4
        elif e.source in pos and e.target in band:
            sx, sy, sh = pos[e.source]
            ty = band[e.target][0]
            d = f"M{sx:.1f},{sy + sh:.1f}L{sx:.1f},{ty:.1f}"
            lx, ly = sx, (sy + sh + ty) / 2
        elif e.source in band and e.target in pos:
            tx, ty, _th = pos[e.target]
            sy = band[e.source][1]
            d = f"M{tx:.1f},{sy:.1f}L{tx:.1f},{ty:.1f}"
            lx, ly = tx, (sy + ty) / 2
        elif e.source in pos and e.target in pos:
            sx, sy, sh = pos[e.source]
            tx, ty, th = pos[e.target]
            if layer[e.target] == layer[e.source] + 1:
                d = f"M{sx:.1f},{sy + sh:.1f}L{tx:.1f},{ty:.1f}"
                lx, ly = (sx + tx) / 2, (sy + sh + ty) / 2
                if tx < sx - 1:
                    anchor = "end"
            elif layer[e.target] > layer[e.source]:  # skips rows: round the left-hand gutter
                gx = 9.0
                y1, y2 = sy + sh + _V_GAP / 3, ty - 8
                d = f"M{sx:.1f},{sy + sh:.1f}V{y1:.1f}H{gx:.1f}V{y2:.1f}H{tx:.1f}V{ty:.1f}"
                lx, ly = gx, (y1 + y2) / 2
            elif layer[e.target] == layer[e.source] and tx > sx:  # a side exit, to the right
                y_mid = sy + sh / 2
                d = f"M{sx + _NODE_W / 2:.1f},{y_mid:.1f}L{tx - _NODE_W / 2:.1f},{y_mid:.1f}"
                lx, ly = (sx + tx) / 2 - 8, y_mid - 5
            else:  # a loop back or a step in the same row: a curve on the right-hand side
                bend = max(sx, tx) + _NODE_W / 2 + 30
                d = f"M{sx + _NODE_W / 2:.1f},{sy + sh / 2:.1f}C{bend:.1f},{sy + sh / 2:.1f} "
                d += f"{bend:.1f},{ty + th / 2:.1f} {tx + _NODE_W / 2:.1f},{ty + th / 2:.1f}"
                lx, ly = bend, (sy + ty + th) / 2
                dash = ' stroke-dasharray="4 3"'
        else:
            continue
        out.append(
            f'<path d="{d}" fill="none" stroke="{_INK}" stroke-width="1.2"{dash} '
            f'marker-end="url(#{uid}-a)"/>'
        )
        if e.label:
            x = lx - 6 if anchor == "end" else lx + 4
            end = ' text-anchor="end"' if anchor == "end" else ""
            out.append(
                f'<text x="{x:.1f}" y="{ly:.1f}" fill="{_MUTED}" font-size="10"{end} '
                f'font-style="italic">{escape(e.label)}</text>'
            )
    for n in flow.nodes:
        cx, top, h = pos[n.id]
        fill = _FILL[n.shape]
        if n.shape == "decision":
            pts = (
                f"{cx:.1f},{top:.1f} {cx + _NODE_W / 2:.1f},{top + h / 2:.1f} "
                f"{cx:.1f},{top + h:.1f} {cx - _NODE_W / 2:.1f},{top + h / 2:.1f}"
            )
            out.append(f'<polygon points="{pts}" fill="{fill}" stroke="{_INK}" stroke-width="1"/>')
        else:
            rx = h / 2 if n.shape == "terminal" else 4
            out.append(
                f'<rect x="{cx - _NODE_W / 2:.1f}" y="{top:.1f}" width="{_NODE_W}" '
                f'height="{h:.1f}" rx="{rx:.1f}" fill="{fill}" stroke="{_INK}" stroke-width="1"/>'
            )
        lines = labels[n.id]
        first = top + h / 2 - (len(lines) - 1) * _LINE_H / 2 + 4
        for j, line in enumerate(lines):
            out.append(
                f'<text x="{cx:.1f}" y="{first + j * _LINE_H:.1f}" text-anchor="middle" '
                f'fill="{_INK}">{escape(line)}</text>'
            )
    out.append("</svg>")
    return "\n".join(out)


def diagram(flow: Flow, title: str) -> Diagram:
    """The flow as a document :class:`~._doc.Diagram` (Mermaid, SVG and text)."""
    return Diagram(title, to_mermaid(flow), to_svg(flow, title=title), flow_text(flow))
