"""Jupyter display hooks shared by every renderable object (rendering loads on first use)."""

from __future__ import annotations

__all__ = ["Renderable"]


class Renderable:
    """Mixin: ``_repr_markdown_`` and ``_repr_html_`` through :mod:`mps_analgesia.render`."""

    __slots__ = ()

    def _repr_markdown_(self) -> str:
        from .render import repr_markdown

        return repr_markdown(self)

    def _repr_html_(self) -> str:
        from .render import repr_html

        return repr_html(self)
