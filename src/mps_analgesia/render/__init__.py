"""Educator and pharmacist outputs: Markdown, HTML and plain-text summaries of library objects.

``render(obj, format=...)`` writes a Regimen, a Case, a Report, the radiotherapy schedule
table, and — when their modules are present — a Protocol, an instantiated plan, a Conversion,
an OME result and an MPS assessment.  Every output holds only what the object holds (its
fields, its receipt, its messages, its sources) under fixed labels; references are numbered in
the order they are first cited, with DOI links.

``repr_markdown`` and ``repr_html`` are the Jupyter hooks (``_repr_markdown_``,
``_repr_html_``) for those classes.

The package itself is callable, so ``mps_analgesia.render(obj, "html")`` works whether
``mps_analgesia.render`` is read as the package or as the function.

Example
-------
>>> import mps_analgesia as mps
>>> from mps_analgesia.render import render
>>> reg = mps.Regimen([mps.OpioidStep(drug="oxycodone", formulation="modified-release",
...                                   dose="10 mg", every="12 h")], name="Backbone")
>>> text = render(reg, "text")
>>> "1. modified-release oxycodone 10 mg by mouth every 12 hours" in text
True
"""

from __future__ import annotations

import difflib
import sys
import types
from collections.abc import Callable
from typing import Any, Final, Literal, overload

from ..errors import UnknownNameError
from ._doc import Document

__all__ = [
    "FORMATS",
    "LAYOUTS",
    "document",
    "render",
    "render_rt_table",
    "repr_html",
    "repr_markdown",
    "supported_types",
]

#: The output formats :func:`render` writes (``"pdf"`` needs the ``pdf`` extra).
FORMATS: Final = ("markdown", "html", "text", "pdf")
#: The layouts: ``summary`` (everything the object holds) and ``handout`` (one or two A4 pages
#: for a protocol or a plan, in plain words).
LAYOUTS: Final = ("summary", "handout")
_ALIASES: Final = {"md": "markdown", "htm": "html", "txt": "text"}


def _builders() -> list[tuple[type, Callable[[Any], Document]]]:
    """The object types that can be rendered, each with its document builder (lazy imports)."""
    from ..regimen import Case, Regimen
    from ..report import Finding, NotChecked, Report
    from ..steps import STEP_KINDS
    from . import _build, _objects

    out: list[tuple[type, Callable[[Any], Document]]] = [
        (Report, _build.report_document),
        (Regimen, _build.regimen_document),
        (Case, _build.case_document),
        (Finding, _build.finding_document),
        (NotChecked, _build.not_checked_document),
    ]
    out.extend((cls, _build.step_document) for cls in dict.fromkeys(STEP_KINDS.values()))
    out.extend(_objects.optional_builders())
    return out


def supported_types() -> tuple[str, ...]:
    """The names of the classes :func:`render` accepts (depends on the modules present).

    Example
    -------
    >>> "Report" in supported_types()
    True
    """
    return tuple(t.__name__ for t, _ in _builders())


def _layout(layout: str) -> str:
    key = str(layout).strip().lower()
    if key not in LAYOUTS:
        raise UnknownNameError(
            "layout",
            str(layout),
            difflib.get_close_matches(key, LAYOUTS, n=2, cutoff=0.3),
            reason=f"unknown layout {layout!r} (use one of {', '.join(LAYOUTS)})",
        )
    return key


def document(obj: Any, layout: str = "summary") -> Document:
    """The format-neutral document of ``obj`` in ``layout`` (what every format writes).

    Raises :class:`~mps_analgesia.errors.UnknownNameError` for an object it cannot render, or
    a layout the object does not have.
    """
    if isinstance(obj, Document):
        return obj
    if _layout(layout) == "handout":
        from ._handout import handout_document

        return handout_document(obj)
    for cls, build in _builders():
        if isinstance(obj, cls):
            return build(obj)
    raise UnknownNameError(
        "renderable object",
        type(obj).__name__,
        (),
        reason=f"cannot render a {type(obj).__name__}: render() takes one of "
        + ", ".join(supported_types()),
    )


def _format(fmt: str) -> str:
    key = _ALIASES.get(str(fmt).strip().lower(), str(fmt).strip().lower())
    if key not in FORMATS:
        raise UnknownNameError(
            "format",
            str(fmt),
            difflib.get_close_matches(key, FORMATS, n=2, cutoff=0.3),
            reason=f"unknown format {fmt!r} (use one of {', '.join(FORMATS)})",
        )
    return key


def _write(doc: Document, fmt: str) -> Any:
    key = _format(fmt)
    if key == "pdf":
        from .pdf import to_pdf

        return to_pdf(doc)
    if key == "markdown":
        from .markdown import to_markdown

        return to_markdown(doc)
    if key == "html":
        from .html import to_html

        return to_html(doc)
    from .text import to_text

    return to_text(doc)


@overload
def render(
    obj: Any, format: Literal["pdf"], layout: str = "summary"
) -> bytes: ...  # pragma: no cover


@overload
def render(
    obj: Any, format: str = "markdown", layout: str = "summary"
) -> str: ...  # pragma: no cover


def render(obj: Any, format: str = "markdown", layout: str = "summary") -> Any:
    """Write ``obj`` as ``"markdown"``, ``"html"`` (one self-contained page), ``"text"`` or
    ``"pdf"`` (bytes; the ``pdf`` extra), in the ``"summary"`` or ``"handout"`` layout.

    The summary (the default) shows everything the object holds.  The handout, for a protocol
    or an instantiated plan, is one or two A4 pages in plain words: tables for dosing,
    monitoring and anticoagulation intervals, the flowchart, numbered references, the
    intended-use statement, the data editions and the date.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> report = mps.validate(mps.Regimen([mps.AdjuvantStep(drug="acetaminophen",
    ...     role="nociceptive", dose="1250 mg", every="6 h")]), mps.Patient())
    >>> "dose.max-daily" in render(report, "markdown")
    True
    >>> handout = render(mps.load_protocol("takase-2015-methadone-adjuvant"), "text",
    ...                  layout="handout")
    >>> "Dosing" in handout and "takase-2015-methadone-adjuvant" not in handout
    True
    >>> from mps_analgesia.errors import UnknownNameError
    >>> try:
    ...     render(report, "docx")
    ... except UnknownNameError as exc:
    ...     print(str(exc).split(";")[0])
    unknown format 'docx' (use one of markdown, html, text, pdf)
    """
    fmt = _format(format)
    return _write(document(obj, layout), fmt)


def render_rt_table(format: str = "markdown") -> Any:
    """The shipped radiotherapy schedules with BED and EQD2, in ``format``.

    Example
    -------
    >>> "20 Gy/5" in render_rt_table("text")
    True
    """
    from .rt_table import rt_table_document

    return _write(rt_table_document(), format)


def repr_markdown(obj: Any) -> str:
    """The Jupyter ``_repr_markdown_`` of a renderable object."""
    from .markdown import to_markdown

    return to_markdown(document(obj))


def repr_html(obj: Any) -> str:
    """The Jupyter ``_repr_html_`` of a renderable object: an HTML fragment with scoped style."""
    from .html import to_html

    return to_html(document(obj), standalone=False)


class _CallableModule(types.ModuleType):
    """This package is also the ``render`` function: ``mps_analgesia.render(obj, "html")``.

    The package ``mps_analgesia.render`` and the public function ``mps.render`` share a name;
    once the package is imported, ``mps_analgesia.render`` is the package, so the package itself
    is made callable and does what :func:`render` does.
    """

    def __call__(self, obj: Any, format: str = "markdown", layout: str = "summary") -> Any:
        return render(obj, format, layout)


sys.modules[__name__].__class__ = _CallableModule
