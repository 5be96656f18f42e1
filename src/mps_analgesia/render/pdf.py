"""Write a :class:`~._doc.Document` as PDF (A4) with WeasyPrint, the ``pdf`` extra.

The PDF is the self-contained HTML page (:func:`~.html.to_html`) printed by WeasyPrint: no
network request is made (the page loads nothing; a URL fetcher that refuses every address makes
sure of it).  WeasyPrint needs Pango from the operating system (Debian: ``libpango-1.0-0``,
``libpangoft2-1.0-0``); when it is missing, :func:`to_pdf` raises a library error that says so.
"""

from __future__ import annotations

from typing import Any

from ..errors import MpsAnalgesiaError
from ._doc import Document

__all__ = ["PdfUnavailableError", "pdf_engine", "to_pdf"]


class PdfUnavailableError(MpsAnalgesiaError, ImportError):
    """The PDF engine (WeasyPrint and its system libraries) is not installed."""


def pdf_engine() -> Any:
    """The ``weasyprint`` module, or raise :class:`PdfUnavailableError` saying how to get it."""
    try:
        import weasyprint  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except (ImportError, OSError) as exc:  # OSError: the Pango system library is missing
        raise PdfUnavailableError(
            "PDF output needs WeasyPrint: pip install 'mps-analgesia[pdf]' (and on Debian or "
            f"Ubuntu: apt-get install libpango-1.0-0 libpangoft2-1.0-0); the import failed: {exc}"
        ) from None
    return weasyprint


def _no_fetch(url: str, *args: Any, **kwargs: Any) -> Any:
    raise ValueError(f"the PDF writer loads nothing from outside the page, not {url!r}")


def to_pdf(doc: Document) -> bytes:
    """``doc`` as the bytes of an A4 PDF.

    Example
    -------
    >>> from mps_analgesia.render._doc import Document, Para
    >>> to_pdf(Document("Plan", (Para(("text",)),)))[:5]  # doctest: +SKIP
    b'%PDF-'
    """
    from .html import to_html

    weasyprint = pdf_engine()
    html = weasyprint.HTML(string=to_html(doc), url_fetcher=_no_fetch)
    data: bytes = html.write_pdf()
    return data
