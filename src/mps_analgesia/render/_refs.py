"""Reference numbering shared by the output formats."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

import attrs

from .. import _catalog
from ._doc import Document, cited_sources

__all__ = ["Reference", "numbered_references"]

# Characters a DOI keeps as they are in its https://doi.org/ link (others are %-escaped).
_DOI_SAFE = "/:;._-()"


@attrs.define(frozen=True)
class Reference:
    """A numbered reference: number, source id, citation text and DOI link (or ``""``)."""

    number: int
    id: str
    citation: str
    doi: str = ""
    url: str = ""

    @property
    def anchor(self) -> str:
        """The in-document anchor of this reference (``ref-1``)."""
        return f"ref-{self.number}"


def numbered_references(doc: Document) -> tuple[Mapping[str, Reference], tuple[Reference, ...]]:
    """Number the sources cited in ``doc`` in order of first citation.

    Returns the references by source id and in order.  A source id that is not in the
    bibliography is listed under its id with a fixed note, never dropped.
    """
    bib = _catalog.all_sources()  # with the sources of the local tables loaded
    ordered = []
    for n, sid in enumerate(cited_sources(doc), start=1):
        rec = bib.get(sid)
        if rec is None:
            ordered.append(Reference(n, sid, f"Source id '{sid}' (not in the bibliography)."))
        else:
            url = f"https://doi.org/{quote(rec.doi, safe=_DOI_SAFE)}" if rec.doi else ""
            ordered.append(Reference(n, sid, rec.citation, rec.doi, url))
    return {r.id: r for r in ordered}, tuple(ordered)
