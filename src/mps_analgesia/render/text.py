"""Write a :class:`~._doc.Document` as plain text (wrapped at :data:`WIDTH` columns).

Tables that fit are written as aligned columns; wider ones as one block of ``Header: value``
lines per row.  Citations are ``[1]``; the numbered references close the text.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from typing import Final

from ._doc import (
    Block,
    Cite,
    Code,
    Diagram,
    Document,
    Fields,
    Figure,
    Inlines,
    ItemList,
    Link,
    Para,
    Receipt,
    Ref,
    Section,
    Strong,
    Table,
)
from ._refs import Reference, numbered_references

__all__ = ["WIDTH", "to_text"]

#: The width plain text is wrapped to.
WIDTH: Final = 92


def _inlines(content: Inlines, refs: Mapping[str, Reference]) -> str:
    out: list[str] = []
    for part in content:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, Strong | Code | Ref):
            out.append(part.text)
        elif isinstance(part, Link):
            out.append(f"{part.text} <{part.href}>")
        elif isinstance(part, Cite):
            nums = [str(refs[sid].number) for sid in dict.fromkeys(part.ids)]
            lead = " " if out else ""
            out.append(f"{lead}[{', '.join(nums)}]" if nums else "")
    return "".join(out)


_QUANTITY = re.compile(r"(\d) (?=[A-Za-zµ%])")
_NBSP: Final = "\u00a0"


def _wrap(text: str, indent: str = "", first: str | None = None) -> list[str]:
    """Wrap ``text``, never between a number and its unit."""
    lines = textwrap.wrap(
        _QUANTITY.sub("\\1" + _NBSP, text),
        WIDTH,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_on_hyphens=False,
        break_long_words=False,
    ) or [(indent if first is None else first).rstrip()]
    return [line.replace(_NBSP, " ") for line in lines]


def _table(block: Table, refs: Mapping[str, Reference], indent: str) -> list[str]:
    rows = [[_inlines(c, refs) for c in row] for row in block.rows]
    headers = list(block.headers)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    out = [f"{indent}{block.caption}:"] if block.caption else []
    if len(indent) + sum(widths) + 2 * (len(widths) - 1) <= WIDTH:

        def line(cells: list[str]) -> str:
            parts = [
                c.rjust(widths[i]) if i in block.numeric else c.ljust(widths[i])
                for i, c in enumerate(cells)
            ]
            return (indent + "  ".join(parts)).rstrip()

        out.append(line(headers))
        out.append(indent + "  ".join("-" * w for w in widths))
        out.extend(line(r) for r in rows)
        return out
    label = max(len(h) for h in headers) + 1
    for r in rows:
        for i, cell in enumerate(r):
            head = f"{indent}{(headers[i] + ':').ljust(label)} "
            out.extend(_wrap(cell, " " * len(head), head))
        out.append("")
    if out and out[-1] == "":
        out.pop()
    return out


def _blocks(blocks: tuple[Block, ...], depth: int, refs: Mapping[str, Reference]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Section):
            title = block.title.upper() if depth == 0 else block.title
            out.append(title)
            out.append(("=" if depth == 0 else "-") * len(title))
            out.append("")
            out.extend(_blocks(block.blocks, depth + 1, refs))
            continue
        if isinstance(block, Para):
            out.extend(_wrap(_inlines(block.content, refs)))
        elif isinstance(block, Fields):
            width = max(len(label) for label, _ in block.rows) + 2
            for label, content in block.rows:
                head = f"{label}:".ljust(width)
                out.extend(_wrap(_inlines(content, refs), " " * width, head))
        elif isinstance(block, ItemList):
            for n, item in enumerate(block.items, start=block.start):
                marker = f"{n}. " if block.ordered else "- "
                out.extend(_wrap(_inlines(item.content, refs), " " * len(marker), marker))
                pad = " " * len(marker)
                for sub in item.sub:
                    out.extend(_wrap(_inlines(sub, refs), pad + "  ", pad + "- "))
        elif isinstance(block, Table):
            out.extend(_table(block, refs, ""))
        elif isinstance(block, Receipt):
            out.append(f"{block.caption}:")
            out.extend(f"    {line}" for line in block.lines)
        elif isinstance(block, Diagram):
            out.append(f"{block.title}:")
            out.extend(f"    {line}" for line in block.text)
        elif isinstance(block, Figure) and "\n" in block.alt:  # a text alternative in lines
            if block.caption:
                out.append(f"{block.caption}:")
            out.extend(f"    {line}" for line in block.alt.splitlines())
        elif isinstance(block, Figure):
            out.extend(_wrap(f"[{block.caption or 'Figure'}] {block.alt}"))
        out.append("")
    return out


def to_text(doc: Document) -> str:
    """Write ``doc`` as plain text.

    Example
    -------
    >>> from mps_analgesia.render._doc import Document, Fields
    >>> print(to_text(Document("Plan", (Fields((("Status", ("draft",)),)),))))
    Plan
    ####
    <BLANKLINE>
    Status: draft
    <BLANKLINE>
    """
    by_id, ordered = numbered_references(doc)
    if doc.kind == "line":  # a finding, a check not run, a step: its lines only
        return "".join(_inlines(b.content, by_id) + "\n" for b in doc.blocks if isinstance(b, Para))
    out = [doc.title, "#" * len(doc.title), ""]
    if doc.subtitle:
        out += [*_wrap(doc.subtitle), ""]
    out += _blocks(doc.blocks, 0, by_id)
    if ordered:
        out += ["REFERENCES", "==========", ""]
        for ref in ordered:
            head = f"[{ref.number}] "
            text = ref.citation + (f" {ref.url}" if ref.url else "")
            out.extend(_wrap(text, " " * len(head), head))
        out.append("")
    if doc.footer:
        out += _wrap(doc.footer)
        out.append("")
    return "\n".join(out)
