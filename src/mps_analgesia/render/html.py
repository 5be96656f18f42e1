"""Write a :class:`~._doc.Document` as one self-contained HTML file.

The page needs nothing from the network: the style sheet is inline, pictures are inline SVG, and
the only external addresses are DOI links (``https://doi.org/…``) in the references.  It prints
on A4 (``@page`` and a print style sheet), and it is accessible: a ``lang`` attribute, one
``h1`` and nested section headings, table captions with ``<th scope>``, SVG pictures with a text
alternative, and colours with a contrast of at least 4.5:1 on white.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
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

__all__ = ["STYLE", "to_html"]

#: The inline style sheet (every rule scoped to ``.mps-doc`` so a fragment can sit in a notebook).
STYLE: Final = """
.mps-doc { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #1b1b1b;
  background: #ffffff; line-height: 1.45; max-width: 46rem; margin: 0 auto; padding: 1rem; }
.mps-doc h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
.mps-doc h2 { font-size: 1.25rem; margin: 1.4rem 0 .5rem; border-bottom: 1px solid #8a8a8a;
  padding-bottom: .15rem; }
.mps-doc h3 { font-size: 1.05rem; margin: 1rem 0 .4rem; }
.mps-doc h4 { font-size: 1rem; margin: .8rem 0 .3rem; }
.mps-doc .subtitle { color: #3d3d3d; margin: 0 0 1rem; }
.mps-doc a { color: #0b4f8a; }
.mps-doc code { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: .92em;
  background: #f1f1f1; padding: 0 .2em; }
.mps-doc pre { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: .85rem;
  background: #f4f4f4; border-left: 3px solid #5a5a5a; padding: .5rem .75rem;
  white-space: pre-wrap; overflow-wrap: normal; word-break: normal; overflow-x: auto;
  margin: .3rem 0; }
.mps-doc dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem;
  margin: .5rem 0; }
.mps-doc dt { font-weight: bold; }
.mps-doc dd { margin: 0; }
.mps-doc table { border-collapse: collapse; margin: .5rem 0 1rem; width: 100%; }
.mps-doc caption { text-align: left; font-weight: bold; padding: .2rem 0; }
.mps-doc th, .mps-doc td { border: 1px solid #8a8a8a; padding: .25rem .45rem;
  text-align: left !important; vertical-align: top; }
.mps-doc table { table-layout: auto !important; margin-left: 0 !important; }
.mps-doc td.num, .mps-doc th.num { text-align: right !important; }
.mps-doc thead th { background: #e8e8e8; }
.mps-doc tbody th { font-weight: normal; }
.mps-doc .num { text-align: right; font-variant-numeric: tabular-nums; }
.mps-doc li { margin: .2rem 0; }
.mps-doc li > ul { margin: .1rem 0 .3rem; }
.mps-doc figure { margin: .6rem 0 1rem; }
.mps-doc figcaption { font-weight: bold; margin-bottom: .25rem; }
.mps-doc svg { max-width: 100%; height: auto; }
.mps-doc .tone-error { color: #9b1c1c; }
.mps-doc .tone-warning { color: #7a4300; }
.mps-doc .tone-info { color: #1d4f7a; }
.mps-doc .tone-ok { color: #1e5e2a; }
.mps-doc .tone-unknown { color: #4a4a4a; }
.mps-doc ol.refs li { overflow-wrap: anywhere; }
.mps-doc footer { margin-top: 1.5rem; border-top: 1px solid #8a8a8a; padding-top: .4rem;
  font-style: italic; }
@media print {
  .mps-doc { max-width: none; padding: 0; font-size: 10pt; }
  .mps-doc a { color: #1b1b1b; }
  .mps-doc h2, .mps-doc h3, .mps-doc h4 { break-after: avoid; }
  .mps-doc tr, .mps-doc li, .mps-doc figure, .mps-doc pre, .mps-doc dl { break-inside: avoid; }
  .mps-doc details { display: none; }
}
"""

_PAGE: Final = "@page { size: A4; margin: 16mm 15mm 18mm; }\nbody { margin: 0; }\n"

#: The handout's page: A4 with small margins, page numbers, compact type and tables.
HANDOUT_STYLE: Final = """
@page { size: A4; margin: 11mm 11mm 13mm;
  @bottom-right { content: "page " counter(page) " of " counter(pages); font-size: 7.5pt;
    color: #3d3d3d; font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; } }
.mps-doc.handout { max-width: 54rem; font-size: 10pt; line-height: 1.3; }
.mps-doc.handout h1 { font-size: 1.35rem; }
.mps-doc.handout h2 { font-size: 1.05rem; margin: .7rem 0 .3rem; }
.mps-doc.handout p { margin: .25rem 0; }
.mps-doc.handout ul { margin: .1rem 0 .3rem; padding-left: 1.2rem; }
.mps-doc.handout li { margin: .05rem 0; }
.mps-doc.handout table { margin: .3rem 0 .5rem; font-size: .92em; }
.mps-doc.handout th, .mps-doc.handout td { padding: .12rem .3rem; }
.mps-doc.handout caption { font-size: 1em; }
.mps-doc.handout figure.chart { text-align: center; }
.mps-doc.handout figure.chart svg { max-height: 115mm; width: auto; max-width: 100%; }
.mps-doc.handout #about { font-size: .88em; color: #2b2b2b; }
.mps-doc.handout dl { grid-template-columns: max-content 1fr max-content 1fr; }
.mps-doc.handout ol.refs { font-size: .85em; padding-left: 1.4rem; }
@media print {
  .mps-doc.handout { font-size: 8.6pt; }
  .mps-doc.handout table { break-inside: auto; }
}
"""
_HANDOUT_KINDS: Final = ("handout", "plan-handout")
#: The style of a one-line display (a finding, a check not run, a step) in a notebook.
LINE_STYLE: Final = (
    ".mps-line{font-family:inherit;line-height:1.4;text-align:left}"
    ".mps-line code{font-family:monospace;background:#f1f1f1;padding:0 .2em}"
    ".mps-line .tone-error{color:#9b1c1c}.mps-line .tone-warning{color:#7a4300}"
    ".mps-line .tone-info{color:#1d4f7a}.mps-line .tone-unknown{color:#4a4a4a}"
)


def _e(text: str) -> str:
    return escape(text, quote=True)


def _inlines(content: Inlines, refs: Mapping[str, Reference]) -> str:
    out: list[str] = []
    for part in content:
        if isinstance(part, str):
            out.append(_e(part))
        elif isinstance(part, Strong):
            cls = f' class="tone-{_e(part.tone)}"' if part.tone else ""
            out.append(f"<strong{cls}>{_e(part.text)}</strong>")
        elif isinstance(part, Code):
            out.append(f"<code>{_e(part.text)}</code>")
        elif isinstance(part, Link):
            out.append(f'<a href="{_e(part.href)}">{_e(part.text)}</a>')
        elif isinstance(part, Ref):
            out.append(f'<a href="#{_e(part.anchor)}">{_e(part.text)}</a>')
        elif isinstance(part, Cite):
            nums = [refs[sid] for sid in dict.fromkeys(part.ids)]
            if nums:
                links = ", ".join(
                    f'<a href="#{r.anchor}" aria-label="reference {r.number}">{r.number}</a>'
                    for r in nums
                )
                lead = " " if out else ""
                out.append(f'{lead}<span class="cite">[{links}]</span>')
    return "".join(out)


def _table(block: Table, refs: Mapping[str, Reference]) -> list[str]:
    out = ["<table>"]
    if block.caption:
        out.append(f"<caption>{_e(block.caption)}</caption>")
    num = ' class="num"'
    heads = "".join(
        f'<th scope="col"{num if i in block.numeric else ""}>{_e(h)}</th>'
        for i, h in enumerate(block.headers)
    )
    out.append(f"<thead><tr>{heads}</tr></thead>")
    out.append("<tbody>")
    for r, row in enumerate(block.rows):
        anchor = block.row_anchors[r] if r < len(block.row_anchors) else ""
        rid = f' id="{_e(anchor)}"' if anchor else ""
        cells = []
        for i, cell in enumerate(row):
            num = ' class="num"' if i in block.numeric else ""
            if i == 0:
                cells.append(f'<th scope="row"{num}>{_inlines(cell, refs)}</th>')
            else:
                cells.append(f"<td{num}>{_inlines(cell, refs)}</td>")
        out.append(f"<tr{rid}>{''.join(cells)}</tr>")
    out.append("</tbody>")
    out.append("</table>")
    return out


def _blocks(blocks: tuple[Block, ...], level: int, refs: Mapping[str, Reference]) -> list[str]:
    out: list[str] = []
    h = min(level, 6)
    for block in blocks:
        if isinstance(block, Section):
            sid = f' id="{_e(block.anchor)}"' if block.anchor else ""
            out.append(f"<section{sid}>")
            out.append(f"<h{h}>{_e(block.title)}</h{h}>")
            out.extend(_blocks(block.blocks, level + 1, refs))
            out.append("</section>")
        elif isinstance(block, Para):
            out.append(f"<p>{_inlines(block.content, refs)}</p>")
        elif isinstance(block, Fields):
            out.append("<dl>")
            for label, content in block.rows:
                out.append(f"<dt>{_e(label)}</dt><dd>{_inlines(content, refs)}</dd>")
            out.append("</dl>")
        elif isinstance(block, ItemList):
            tag = "ol" if block.ordered else "ul"
            start = f' start="{block.start}"' if block.ordered and block.start != 1 else ""
            out.append(f"<{tag}{start}>")
            for item in block.items:
                iid = f' id="{_e(item.anchor)}"' if item.anchor else ""
                sub = ""
                if item.sub:
                    sub = (
                        "<ul>"
                        + "".join(f"<li>{_inlines(s, refs)}</li>" for s in item.sub)
                        + "</ul>"
                    )
                out.append(f"<li{iid}>{_inlines(item.content, refs)}{sub}</li>")
            out.append(f"</{tag}>")
        elif isinstance(block, Table):
            out.extend(_table(block, refs))
        elif isinstance(block, Receipt):
            out.append('<figure class="receipt">')
            out.append(f"<figcaption>{_e(block.caption)}</figcaption>")
            out.append("<pre>" + "\n".join(_e(line) for line in block.lines) + "</pre>")
            out.append("</figure>")
        elif isinstance(block, Diagram):
            out.append('<figure class="diagram">')
            out.append(f"<figcaption>{_e(block.title)}</figcaption>")
            out.append(block.svg)
            out.append("<details><summary>Mermaid source</summary>")
            out.append(f"<pre>{_e(block.mermaid)}</pre>")
            out.append("</details>")
            out.append("</figure>")
        elif isinstance(block, Figure):
            out.append('<figure class="chart">')
            if block.caption:
                out.append(f"<figcaption>{_e(block.caption)}</figcaption>")
            out.append(block.svg)
            out.append("</figure>")
    return out


def _body(doc: Document) -> list[str]:
    by_id, ordered = numbered_references(doc)
    out = ["<header>", f"<h1>{_e(doc.title)}</h1>"]
    if doc.subtitle:
        out.append(f'<p class="subtitle">{_e(doc.subtitle)}</p>')
    out.append("</header>")
    out.extend(_blocks(doc.blocks, 2, by_id))
    if ordered:
        out.append('<section id="references">')
        out.append("<h2>References</h2>")
        out.append('<ol class="refs">')
        for ref in ordered:
            doi = f' <a href="{_e(ref.url)}">doi:{_e(ref.doi)}</a>' if ref.url else ""
            out.append(f'<li id="{ref.anchor}">{_e(ref.citation)}{doi}</li>')
        out.append("</ol>")
        out.append("</section>")
    if doc.footer:
        out.append(f"<footer><p>{_e(doc.footer)}</p></footer>")
    return out


def to_html(doc: Document, *, standalone: bool = True) -> str:
    """Write ``doc`` as HTML: a whole page, or (``standalone=False``) a fragment for Jupyter.

    Example
    -------
    >>> from mps_analgesia.render._doc import Document, Para
    >>> page = to_html(Document("Plan", (Para(("text",)),)))
    >>> page.startswith("<!DOCTYPE html>") and '<html lang="en">' in page
    True
    >>> to_html(Document("Plan", ()), standalone=False).startswith('<div class="mps-doc"')
    True
    """
    if doc.kind == "line":  # a finding, a check not run, a step: a few lines, small style
        by_id, _ordered = numbered_references(doc)
        paras = "".join(
            f'<p style="margin:.1rem 0">{_inlines(b.content, by_id)}</p>'
            for b in doc.blocks
            if isinstance(b, Para)
        )
        return f'<div class="mps-doc mps-line" lang="en"><style>{LINE_STYLE}</style>{paras}</div>'
    body = "\n".join(_body(doc))
    handout = doc.kind in _HANDOUT_KINDS
    cls = "mps-doc handout" if handout else "mps-doc"
    style = STYLE + (HANDOUT_STYLE if handout else "")
    if not standalone:
        return f'<div class="{cls}" lang="en">\n<style>{style}</style>\n{body}\n</div>\n'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(doc.title)}</title>\n"
        f"<style>\n{_PAGE}{style}</style>\n"
        f'</head>\n<body>\n<main class="{cls}">\n'
        f"{body}\n"
        "</main>\n</body>\n</html>\n"
    )
