"""A reduced dose for an order, offered as a card's suggestion.

The rules compute the dose (``suggested_dose`` in mg, with its unit, text and basis, on a dose
finding; see the finding-codes page): here it is only written into the order.  Nothing is
parsed, computed or checked again: a suggestion is offered for a draft order when **every** dose
finding on it carries a suggested dose, and the lowest of them is taken (each is within its own
finding's limit, so the lowest is within all of them).
"""

from __future__ import annotations

import copy
import json
import math
import uuid
from collections.abc import Sequence
from typing import Any, Final

import attrs

from .. import _units
from .._format import number
from ..errors import MpsAnalgesiaError
from ..fhir import to_fhir_quantity
from ..report import Finding
from ._markdown import escape, summary_text
from ._request import Order as _Order

__all__ = ["SCHEDULE_BOUND", "dose_family", "suggestion"]

#: Findings whose sources set the dosing interval together with the maximum: the renal bands
#: and the hepatic limits.  The data hold the maxima but not those intervals, so the rules
#: suggest no dose for them, and their cards say why.
SCHEDULE_BOUND: Final = frozenset({"renal.dose-adjust", "hepatic.dose-adjust"})


def dose_family(code: str) -> bool:
    """Findings a lower dose per administration can resolve (maximum and adjusted doses)."""
    return code.startswith("dose.") or code.endswith(".dose-adjust")


def _suggested_mg(f: Finding) -> float | None:
    value = f.detail.get("suggested_dose")
    if not isinstance(value, float) or f.detail.get("suggested_dose_unit") != "mg":
        return None
    return value if math.isfinite(value) and value > 0 else None


def suggestion(
    index: int, orders: Sequence[_Order], findings: Sequence[Finding]
) -> dict[str, Any] | None:
    """The order ``index`` with the rules' suggested dose, as a CDS Hooks suggestion."""
    order = orders[index]
    step = order.step
    if order.parts != 1 or not order.draft or not isinstance(order.resource.get("id"), str):
        return None
    mine = [g for g in findings if g.step == index and dose_family(g.code)]
    doses = [_suggested_mg(g) for g in mine]
    if not doses or any(d is None for d in doses):
        return None  # a dose finding the rules could not resolve with a lower dose
    chosen = min(d for d in doses if d is not None)
    basis = next(
        str(g.detail.get("suggested_dose_basis", ""))
        for g, d in zip(mine, doses, strict=True)
        if d == chosen
    )
    if step.dose_mg is None or not chosen < step.dose_mg:
        return None
    new_dose = _units.Q(chosen, "mg")
    resource = copy.deepcopy(dict(order.resource))
    dosages = resource.get("dosageInstruction")
    if not isinstance(dosages, list) or not dosages or not isinstance(dosages[0], dict):
        return None
    first = dosages[0]
    dr = first.get("doseAndRate")
    if not isinstance(dr, list) or not dr or not isinstance(dr[0], dict):
        return None
    try:
        dr[0]["doseQuantity"] = to_fhir_quantity(new_dose)
        per_day = step.doses_per_day
        daily = f" ({number(chosen * per_day)} mg/day)" if per_day else ""
        described = attrs.evolve(step, dose=new_dose).describe()
    except (MpsAnalgesiaError, ArithmeticError, ValueError):
        return None
    first["text"] = described
    try:
        json.dumps(resource, allow_nan=False)
    except (TypeError, ValueError):
        return None
    dose_text = f"{number(chosen)} mg"
    return {
        "label": summary_text(f"Change to {dose_text} per dose{daily}", ""),
        "uuid": str(uuid.uuid4()),
        "actions": [
            {
                "type": "update",
                "description": escape(
                    f"{step.drug}: {number(step.dose_mg)} mg → {dose_text} per dose; {basis}"
                ),
                "resource": resource,
            }
        ],
    }
