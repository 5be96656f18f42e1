"""A griffe extension for the API reference: read the docstrings' ``Example`` section as numpy's
``Examples`` (the library writes the singular; griffe's numpy parser knows only the plural), so
the examples are shown as code, not read as Markdown."""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example\n(\s*)-------\n", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename each ``Example`` section heading to ``Examples`` before the docstring is parsed."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        doc = getattr(obj, "docstring", None)
        if doc is not None and "Example\n" in doc.value:
            doc.value = _EXAMPLE.sub(r"\1Examples\n\2--------\n", doc.value)
