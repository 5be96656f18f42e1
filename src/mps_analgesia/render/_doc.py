"""A small document model that every output format is written from.

The builders (:mod:`._build`) turn a library object into a :class:`Document` using only the
object's own data and fixed labels; the format modules (:mod:`.markdown`, :mod:`.html`,
:mod:`.text`) write a :class:`Document` out.  Keeping one model means the three formats always
say the same thing, and references are numbered once, in the order they are first cited.

Inline content is a tuple of :data:`Inline` parts: plain ``str``, :class:`Strong`, :class:`Code`,
:class:`Cite` (source ids, numbered at output), :class:`Link` (an external DOI link) and
:class:`Ref` (a link to an anchor inside the document).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeAlias

import attrs

__all__ = [
    "Block",
    "Cite",
    "Code",
    "Diagram",
    "Document",
    "Fields",
    "Figure",
    "Inline",
    "Item",
    "ItemList",
    "Link",
    "Para",
    "Receipt",
    "Ref",
    "Section",
    "Strong",
    "Table",
    "cited_sources",
    "inline",
]


@attrs.define(frozen=True)
class Strong:
    """Emphasised text (a label or a severity); ``tone`` styles it (``error``, ``ok`` ...)."""

    text: str
    tone: str = ""


@attrs.define(frozen=True)
class Code:
    """Literal text: an id, a finding code, a file name."""

    text: str


@attrs.define(frozen=True)
class Cite:
    """A citation of one or more source ids; numbered ``[1]`` at output."""

    ids: tuple[str, ...]


@attrs.define(frozen=True)
class Link:
    """An external link (only DOI links are written by the builders)."""

    text: str
    href: str


@attrs.define(frozen=True)
class Ref:
    """A link to an anchor inside the same document (``step-2``)."""

    text: str
    anchor: str


Inline: TypeAlias = str | Strong | Code | Cite | Link | Ref
Inlines: TypeAlias = tuple[Inline, ...]


def inline(*parts: Inline | None) -> Inlines:
    """Build inline content, dropping ``None`` and empty strings."""
    return tuple(p for p in parts if p is not None and p != "")


@attrs.define(frozen=True)
class Para:
    """A paragraph."""

    content: Inlines


@attrs.define(frozen=True)
class Fields:
    """Labelled values (a definition list): ``(label, content)`` rows."""

    rows: tuple[tuple[str, Inlines], ...]


@attrs.define(frozen=True)
class Item:
    """A list item: its content, an optional anchor, and indented sub-lines."""

    content: Inlines
    anchor: str = ""
    sub: tuple[Inlines, ...] = ()


@attrs.define(frozen=True)
class ItemList:
    """A bulleted or numbered list (numbered lists keep the object's own numbering)."""

    items: tuple[Item, ...]
    ordered: bool = False
    start: int = 1


@attrs.define(frozen=True)
class Table:
    """A table with a caption, column headers and rows; the first column heads its row."""

    caption: str
    headers: tuple[str, ...]
    rows: tuple[tuple[Inlines, ...], ...]
    row_anchors: tuple[str, ...] = ()
    numeric: tuple[int, ...] = ()


@attrs.define(frozen=True)
class Receipt:
    """The calculation shown: lines of arithmetic with units, written verbatim."""

    lines: tuple[str, ...]
    caption: str = "Calculation"


@attrs.define(frozen=True)
class Diagram:
    """A flow diagram: Mermaid source for Markdown, an SVG drawing of the same graph for HTML."""

    title: str
    mermaid: str
    svg: str
    text: tuple[str, ...] = ()


@attrs.define(frozen=True)
class Figure:
    """An inline SVG picture with a text alternative (HTML only; other formats print ``alt``)."""

    svg: str
    alt: str
    caption: str = ""


@attrs.define(frozen=True)
class Section:
    """A headed section; sections nest (``level`` 2 under the title, 3 below)."""

    title: str
    blocks: tuple[Block, ...]
    anchor: str = ""


Block: TypeAlias = Para | Fields | ItemList | Table | Receipt | Diagram | Figure | Section


@attrs.define(frozen=True)
class Document:
    """A whole output: title, an optional subtitle line, the sections, and the closing note.

    References are not part of the blocks: the format modules number the :class:`Cite` ids in
    the order they first appear and write the numbered reference list at the end.
    """

    title: str
    blocks: tuple[Block, ...]
    subtitle: str = ""
    footer: str = ""
    kind: str = ""


def _walk_inlines(blocks: Iterable[Block]) -> Iterator[Inlines]:
    for block in blocks:
        if isinstance(block, Para):
            yield block.content
        elif isinstance(block, Fields):
            for _label, content in block.rows:
                yield content
        elif isinstance(block, ItemList):
            for item in block.items:
                yield item.content
                yield from item.sub
        elif isinstance(block, Table):
            for row in block.rows:
                yield from row
        elif isinstance(block, Section):
            yield from _walk_inlines(block.blocks)


def cited_sources(doc: Document) -> tuple[str, ...]:
    """The source ids cited in ``doc``, in the order they first appear (the reference numbers).

    Example
    -------
    >>> from mps_analgesia.render._doc import Cite, Document, Para, cited_sources
    >>> doc = Document("t", (Para(("a", Cite(("b-2", "a-1")))), Para((Cite(("a-1",)),))))
    >>> cited_sources(doc)
    ('b-2', 'a-1')
    """
    seen: dict[str, None] = {}
    for content in _walk_inlines(doc.blocks):
        for part in content:
            if isinstance(part, Cite):
                for sid in part.ids:
                    seen.setdefault(sid, None)
    return tuple(seen)


def anchors(doc: Document) -> tuple[str, ...]:
    """Every anchor the document defines (sections, list items, table rows)."""
    out: list[str] = []

    def walk(blocks: Sequence[Block]) -> None:
        for block in blocks:
            if isinstance(block, Section):
                if block.anchor:
                    out.append(block.anchor)
                walk(block.blocks)
            elif isinstance(block, ItemList):
                out.extend(i.anchor for i in block.items if i.anchor)
            elif isinstance(block, Table):
                out.extend(a for a in block.row_anchors if a)

    walk(doc.blocks)
    return tuple(out)
