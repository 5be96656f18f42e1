"""Jupyter display hooks shared by every renderable object (rendering loads on first use)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Renderable"]

#: Text writers of results that are written as tables (the day plan's day table), by (kind,
#: format).  Results ask here and never import the renderers; the package registers, once,
#: where each writer is loaded from (``mps_analgesia/__init__.py``), and it loads on first use.
_WRITERS: dict[tuple[str, str], Callable[[], Callable[[Any], str]]] = {}


def _register_writer(kind: str, fmt: str, load: Callable[[], Callable[[Any], str]]) -> None:
    """Register where the writer of ``kind`` as ``fmt`` is loaded from."""
    _WRITERS[(kind, fmt)] = load


def _write(kind: str, fmt: str, obj: Any) -> str:
    """Write ``obj`` (a result of ``kind``) as ``fmt`` with its registered writer."""
    return _WRITERS[(kind, fmt)]()(obj)


class Renderable:
    """Mixin: ``_repr_markdown_`` and ``_repr_html_`` through :mod:`mps_analgesia.render`."""

    __slots__ = ()

    def _repr_markdown_(self) -> str:
        from .render import repr_markdown

        return repr_markdown(self)

    def _repr_html_(self) -> str:
        from .render import repr_html

        return repr_html(self)
