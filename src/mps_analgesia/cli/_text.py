"""Command-line text read into library calls: a dose line for ``convert``, a features table.

The command line is the boundary: it parses what people type here, once, and calls the library
with quantities and mappings (the renderers below it never parse text).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _units
from ..errors import MpsAnalgesiaError

__all__ = ["assess_from_mapping", "convert_from_text"]


def convert_from_text(
    text: str,
    *,
    to_drug: str,
    to_route: str | None = None,
    reduction: str | None = None,
    table: Any = None,
) -> Any:
    """Convert ``"60 mg/day oral morphine"`` (or ``"60 MME/day"``) to ``to_drug``.

    The text is a daily dose with its unit (mg/day, or mcg/h for a patch), then optionally the
    route, then the drug.  ``table`` is a table id or a (local) ``ConversionTable``.
    Raises a library error (never a number) when it cannot be read.
    """
    from .. import conversion
    from ..errors import ConversionError
    from ..steps import OpioidStep

    words = text.split()
    amount = " ".join(words[:2])
    rest = words[2:]
    kwargs: dict[str, Any] = {"to_drug": to_drug}
    if to_route:
        kwargs["to_route"] = to_route
    if table is not None and table != "":
        kwargs["table"] = table
    if reduction:
        kwargs["reduction"] = _reduction_arg(reduction)
    q = _units.as_quantity(amount, _dimension_of(amount), field="DOSE")
    if not rest:
        return conversion.convert_opioid(q, **kwargs)
    if len(rest) > 2:
        raise ConversionError(
            f"{text!r}: write the daily dose, then the route and the drug, "
            "e.g. '60 mg/day oral morphine' or '25 mcg/h transdermal fentanyl'"
        )
    drug = rest[-1]
    route = rest[0] if len(rest) == 2 else ("transdermal" if "/h" in amount else "oral")
    step = OpioidStep(drug=drug, route=route, rate=q)
    return conversion.convert_opioid(step, **kwargs)


def _dimension_of(amount: str) -> str:
    from ..errors import ConversionError

    try:
        q = _units.Q(amount)
    except MpsAnalgesiaError as exc:
        raise ConversionError(f"DOSE: {exc}") from None
    for dim in ("mass_rate", "ome_rate"):
        if q.dimensionality == _units.DIMENSIONS[dim][0]:
            return dim
    raise ConversionError(
        f"DOSE: {amount!r} is not a daily dose: write e.g. '60 mg/day', '25 mcg/h' or '60 MME/day'"
    )


def _reduction_arg(text: str) -> Any:
    """``'25-50 %'`` → (0.25, 0.5); ``'30 %'`` → 0.3; a name or ``none`` as it is."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:[-–]\s*(\d+(?:\.\d+)?))?\s*%\s*", text)
    if m is None:
        return text
    low = float(m.group(1)) / 100
    if m.group(2) is None:
        return low
    return (low, float(m.group(2)) / 100)


def assess_from_mapping(data: Mapping[str, Any], *, file: str = "<data>") -> Any:
    """Assess the MPS features read from a file: a ``[features]`` table, or the top level."""
    from .. import assess
    from ..errors import CaseFileError, Problem, StepError

    features = data.get("features", data)
    if not isinstance(features, Mapping):
        raise CaseFileError(file, [Problem("features", "must be a table of feature = value")])
    try:
        return assess.assess_mps(features)
    except StepError as exc:
        raise CaseFileError(file, [Problem(exc.field, exc.reason)]) from None
