"""A reduced dose for an order, offered as a card's suggestion."""

from __future__ import annotations

import copy
import json
import math
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs

from .. import _units
from ..errors import MpsAnalgesiaError
from ..fhir import to_fhir_quantity
from ..regimen import Regimen
from ..report import Finding
from ._markdown import summary as _summary
from ._request import Order as _Order

if TYPE_CHECKING:
    from ..rules import RuleRegistry

__all__ = ["SCHEDULE_BOUND", "dose_family", "suggestion"]


#: Findings whose sources set the dosing interval together with the maximum: the renal bands
#: (tramadol below CrCl 30: every 12 h; gabapentin below 30: once daily; pregabalin below 15: one
#: dose) and the hepatic limits (tramadol in cirrhosis: 50 mg every 12 h; the acetaminophen limit
#: sets none, but shares the code and is treated alike).  data/organ.toml holds the maxima but
#: not these intervals as values, so a lower dose at the order's own interval cannot be
#: justified from the data: no dose is suggested for an order with such a finding.
SCHEDULE_BOUND: Final = frozenset({"renal.dose-adjust", "hepatic.dose-adjust"})


def _limit(f: Finding, dimension: str, unit: str) -> float | None:
    """The finding's ``limit`` in ``unit``: the canonical float (its UCUM code in
    ``limit_unit``), or, for a caller's own rule, a quantity text of ``dimension``."""
    from .. import _catalog

    value = f.detail.get("limit")
    if isinstance(value, float):
        if f.detail.get("limit_unit") != _catalog.ucum_code(unit):
            return None
        return value if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    try:
        got: float = _units.magnitude_in(_units.as_quantity(value, dimension), unit)
    except MpsAnalgesiaError:
        return None
    return got if math.isfinite(got) else None


def dose_family(code: str) -> bool:
    """Findings a lower dose per administration can resolve (maximum and adjusted doses)."""
    return code.startswith("dose.") or code.endswith(".dose-adjust")


def _num_text(x: float) -> str:
    return f"{x:.6g}"


def _dispensable(step: Any, target_mg: float) -> tuple[float, str] | None:
    """The largest dispensable dose (mg) not above ``target_mg``, and how it is made up.

    With a product of the step's drug, route and formulation in ``data/strengths.toml`` the dose
    is rounded *down* to a sum of its strengths (at most the file's units per dose) or to a
    multiple of its measuring increment.  Without one, no rounding is possible from the data: the
    dose is offered only if ``target_mg`` is itself a whole number of mg (the limit exactly, such
    as 4000 mg/day ÷ 4 = 1000 mg); ``33.3 mg`` or ``233 mg`` is never offered.
    """
    from ..conversion import _products  # read-only: the strengths table conversions round with

    product = _products().get((step.drug, step.route, step.formulation))
    if product is not None:
        if product.unit != "mg":
            return None
        got = product.round_down(target_mg)
        if got is None:
            return None
        amount, parts = got
        if product.increment:
            how = f"in steps of {_num_text(product.increment)} mg ({product.formulation})"
        else:
            how = " + ".join(f"{n} × {_num_text(s)} mg" for s, n in parts)
            how = f"{how} {product.formulation}"
        return amount, how
    whole = round(target_mg)
    if whole < 1 or abs(target_mg - whole) > 1e-9 * max(1.0, target_mg):
        return None
    return float(whole), "the limit itself; no product strengths are on file for this drug"


def suggestion(
    index: int,
    orders: Sequence[_Order],
    findings: Sequence[Finding],
    patient: Any,
    rules: RuleRegistry | None,
) -> dict[str, Any] | None:
    """A reduced dose for order ``index``, computed only from its findings' own limits.

    The target is the lowest limit among the step's dose findings (a per-dose limit as is, a daily
    limit divided by the doses per day); the dose is the target rounded *down* to something that
    can be dispensed (:func:`_dispensable`).  It is offered only if every dose finding on the step
    carries numbers to compute from, none of them also sets the dosing interval
    (:data:`SCHEDULE_BOUND`), and the regimen, re-checked with that dose, has no dose finding
    left on the step.
    """
    order = orders[index]
    step = order.step
    if (
        not order.draft
        or step.kind not in ("opioid", "methadone_adjuvant", "adjuvant")
        or step.is_continuous
        or step.titration
        or not isinstance(order.resource.get("id"), str)
    ):
        return None
    mine = [g for g in findings if g.step == index and dose_family(g.code)]
    if any(g.code in SCHEDULE_BOUND for g in mine):
        return None  # the source sets the interval too; the data cannot say which
    targets = []
    for g in mine:
        steps = g.detail.get("steps")
        if isinstance(steps, list) and steps != [index]:
            return None  # a total over several orders: this order alone cannot fix it
        per_dose = _limit(g, "mass", "mg")
        per_day = _limit(g, "mass_rate", "mg/day")
        if per_dose is not None:
            targets.append(per_dose)
        elif per_day is not None and step.doses_per_day and math.isfinite(step.doses_per_day):
            targets.append(per_day / step.doses_per_day)
        else:
            return None  # a dose finding without numbers to compute from
    if not targets:
        return None
    got = _dispensable(step, min(targets))
    if got is None:
        return None
    value, how = got
    if not value > 0 or value >= step.dose_mg:
        return None
    new_dose = _units.Q(value, "mg")
    try:
        new_step = attrs.evolve(step, dose=new_dose)
    except MpsAnalgesiaError:
        return None
    steps_now = [o.step for o in orders]
    steps_now[index] = new_step
    from ..rules import validate

    try:
        recheck = validate(Regimen(steps_now), patient, rules=rules)
    except ArithmeticError:
        return None
    if any(g.step == index and dose_family(g.code) for g in recheck.findings):
        return None
    resource = copy.deepcopy(dict(order.resource))
    dosages = resource.get("dosageInstruction")
    if not isinstance(dosages, list) or not dosages or not isinstance(dosages[0], dict):
        return None
    first = dosages[0]
    dr = first.get("doseAndRate")
    if not isinstance(dr, list) or not dr or not isinstance(dr[0], dict):
        return None
    dr[0]["doseQuantity"] = to_fhir_quantity(new_dose)
    first["text"] = new_step.describe()
    try:
        json.dumps(resource, allow_nan=False)
    except (TypeError, ValueError):
        return None
    dose_text = _units.format_quantity(new_dose)
    daily = _units.format_quantity(_units.Q(round(new_step.daily_dose_mg, 6), "mg/day"))
    return {
        "label": _summary(f"Change to {dose_text} per dose ({daily}, within the limits found)"),
        "uuid": str(uuid.uuid4()),
        "actions": [
            {
                "type": "update",
                "description": f"{step.drug}: {_units.format_quantity(step.dose)} → {dose_text} "
                f"per dose ({new_step.describe()}); {how}",
                "resource": resource,
            }
        ],
    }
