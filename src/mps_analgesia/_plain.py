"""Records as plain data: the one attrs-to-dict writer shared by case files and plans."""

from __future__ import annotations

from typing import Any

import attrs

from . import _units

__all__ = ["unstructure"]


def unstructure(obj: Any) -> dict[str, Any]:
    """A frozen attrs record as plain data: quantities as text with their units, defaults left
    out (``drug`` always kept), nested records and tuples of records in turn.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> unstructure(mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h"))["dose"]
    '10 mg'
    """
    out: dict[str, Any] = {}
    kind = getattr(type(obj), "kind", "")
    if kind:
        out["kind"] = kind
    for a in attrs.fields(type(obj)):
        if not a.init:
            continue
        value = getattr(obj, a.name)
        default = a.default
        factory = getattr(default, "factory", None)
        if callable(factory) and hasattr(default, "takes_self"):
            default = factory()
        is_default = value is None or (not _units.is_quantity(value) and value == default)
        if is_default and a.name != "drug":
            continue
        if _units.is_quantity(value):
            out[a.name] = _units.format_quantity(value)
        elif attrs.has(type(value)):
            out[a.name] = unstructure(value)
        elif isinstance(value, tuple):
            out[a.name] = [unstructure(v) if attrs.has(type(v)) else v for v in value]
        elif isinstance(value, float) and value == int(value):
            out[a.name] = int(value)
        else:
            out[a.name] = value
    return out
