"""Write a :class:`~._doc.Document` as Markdown (CommonMark with pipe tables).

Anchors are raw ``<a id="…"></a>`` tags, which MkDocs, GitHub and Jupyter all keep; flow
diagrams are fenced ``mermaid`` blocks; SVG figures are replaced by their text alternative.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

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

__all__ = ["escape", "to_markdown"]

_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def escape(text: str) -> str:
    r"""Escape Markdown's special characters in object text.

    Example
    -------
    >>> escape("a*b_c | [d]")
    'a\\*b\\_c \\| \\[d\\]'
    """
    return _SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _inlines(content: Inlines, refs: Mapping[str, Reference]) -> str:
    out: list[str] = []
    for part in content:
        if isinstance(part, str):
            out.append(escape(part))
        elif isinstance(part, Strong):
            out.append(f"**{escape(part.text)}**")
        elif isinstance(part, Code):
            out.append(_code(part.text))
        elif isinstance(part, Link):
            out.append(f"[{escape(part.text)}]({part.href})")
        elif isinstance(part, Ref):
            out.append(f"[{escape(part.text)}](#{part.anchor})")
        elif isinstance(part, Cite):
            nums = [refs[sid] for sid in dict.fromkeys(part.ids)]
            lead = " " if out else ""
            links = ", ".join(f"[{r.number}](#{r.anchor})" for r in nums)
            out.append(f"{lead}\\[{links}\\]" if nums else "")
    return "".join(out)


def _table(block: Table, refs: Mapping[str, Reference]) -> list[str]:
    lines = [f"*{escape(block.caption)}*", ""] if block.caption else []
    lines.append("| " + " | ".join(escape(h) for h in block.headers) + " |")
    lines.append(
        "|"
        + "|".join("---:" if i in block.numeric else "---" for i in range(len(block.headers)))
        + "|"
    )
    for r, row in enumerate(block.rows):
        cells = [_inlines(cell, refs) for cell in row]
        anchor = block.row_anchors[r] if r < len(block.row_anchors) else ""
        if anchor:
            cells[0] = f'<a id="{anchor}"></a>{cells[0]}'
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _blocks(blocks: tuple[Block, ...], level: int, refs: Mapping[str, Reference]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Section):
            if block.anchor:
                out.append(f'<a id="{block.anchor}"></a>')
                out.append("")
            out.append(f"{'#' * level} {escape(block.title)}")
            out.append("")
            out.extend(_blocks(block.blocks, level + 1, refs))
            continue
        if isinstance(block, Para):
            out.append(_inlines(block.content, refs))
        elif isinstance(block, Fields):
            for label, content in block.rows:
                out.append(f"- **{escape(label)}:** {_inlines(content, refs)}")
        elif isinstance(block, ItemList):
            for n, item in enumerate(block.items, start=block.start):
                marker = f"{n}." if block.ordered else "-"
                anchor = f'<a id="{item.anchor}"></a>' if item.anchor else ""
                out.append(f"{marker} {anchor}{_inlines(item.content, refs)}")
                indent = " " * (len(marker) + 1)
                for sub in item.sub:
                    out.append(f"{indent}- {_inlines(sub, refs)}")
        elif isinstance(block, Table):
            out.extend(_table(block, refs))
        elif isinstance(block, Receipt):
            out.append(f"**{escape(block.caption)}**")
            out.append("")
            out.append("```text")
            out.extend(block.lines)
            out.append("```")
        elif isinstance(block, Diagram):
            # the drawing itself (inline SVG with a text alternative), then its Mermaid source
            out.append(f"*{escape(block.title)}*")
            out.append("")
            out.append('<div class="mps-flow">')
            out.append(block.svg)
            out.append("</div>")
            out.append("")
            out.append("<details><summary>Mermaid source of the flowchart</summary>")
            out.append("")
            out.append("```mermaid")
            out.append(block.mermaid.rstrip("\n"))
            out.append("```")
            out.append("")
            out.append("</details>")
        elif isinstance(block, Figure) and "\n" in block.alt:  # a text alternative in lines
            if block.caption:
                out += [f"*{escape(block.caption)}*", ""]
            out.extend(f"    {line}" for line in block.alt.splitlines())
        elif isinstance(block, Figure):
            out.append(f"*{escape(block.caption or block.alt)}*")
            if block.caption and block.alt != block.caption:
                out.append("")
                out.append(escape(block.alt))
        out.append("")
    return out


def to_markdown(doc: Document) -> str:
    """Write ``doc`` as Markdown, with a numbered reference list at the end.

    Example
    -------
    >>> from mps_analgesia.render._doc import Cite, Document, Para
    >>> print(to_markdown(Document("Title", (Para(("Text", Cite(("stevens-2010",)))),))))
    ... # doctest: +ELLIPSIS
    # Title
    <BLANKLINE>
    Text \\[[1](#ref-1)\\]
    <BLANKLINE>
    ## References
    <BLANKLINE>
    1. <a id="ref-1"></a>Stevens MJ, ... [doi:10.1089/jpm.2009.0193](https://doi.org/10.1089/jpm.2009.0193)
    <BLANKLINE>
    """
    by_id, ordered = numbered_references(doc)
    if doc.kind == "line":  # a finding, a check not run, a step: its lines only
        return "\n\n".join(_inlines(b.content, by_id) for b in doc.blocks if isinstance(b, Para))
    out = [f"# {escape(doc.title)}", ""]
    if doc.subtitle:
        out += [escape(doc.subtitle), ""]
    out += _blocks(doc.blocks, 2, by_id)
    if ordered:
        out += ["## References", ""]
        for ref in ordered:
            line = f'{ref.number}. <a id="{ref.anchor}"></a>{escape(ref.citation)}'
            if ref.url:
                line += f" [doi:{escape(ref.doi)}]({ref.url})"
            out.append(line)
        out.append("")
    if doc.footer:
        out += ["---", "", f"*{escape(doc.footer)}*", ""]
    return "\n".join(out)
