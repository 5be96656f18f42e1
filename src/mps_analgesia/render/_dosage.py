"""Plain dosage language for steps: ``oxycodone 10 mg by mouth every 12 hours``.

Only the step's own fields are written, with fixed words for routes and time units; nothing is
added that the step does not hold (a patch's change interval, for example, is not a field, so it
is not written).
"""

from __future__ import annotations

from typing import Any, Final

from .. import _format, _units

__all__ = ["ROUTE_WORDS", "dosage", "duration", "quantity"]

#: How each route is written in a dosage line.
ROUTE_WORDS: Final[dict[str, str]] = {
    "oral": "by mouth",
    "subcutaneous": "subcutaneously",
    "intravenous": "intravenously",
    "transdermal": "by transdermal patch",
    "buccal": "buccally",
    "sublingual": "under the tongue",
    "intranasal": "into the nose",
    "rectal": "rectally",
    "epidural": "epidurally",
    "intrathecal": "intrathecally",
    "perineural": "perineurally",
}

_TIME_WORDS: Final[dict[str, tuple[str, str]]] = {
    "s": ("second", "seconds"),
    "min": ("minute", "minutes"),
    "h": ("hour", "hours"),
    "day": ("day", "days"),
    "week": ("week", "weeks"),
}

_TIMES: Final[dict[int, str]] = {1: "once a day", 2: "twice a day"}


#: Units as clinicians write them, where the library's compact spelling differs.
_CLINICAL_UNITS: Final = (("/1.73m2", "/1.73 m²"),)


def quantity(q: Any) -> str:
    """A Quantity as clinical text (``'10 mg'``, ``'0.2 %'``, ``'25 mcg/h'``).

    Example
    -------
    >>> from mps_analgesia import Q
    >>> quantity(Q("58 mL/min/1.73m2"))
    '58 mL/min/1.73 m²'
    """
    text = _units.format_quantity(q)
    for compact, written in _CLINICAL_UNITS:
        text = text.replace(compact, written)
    return text


def duration(q: Any) -> str:
    """A time Quantity in words: ``'12 hours'``, ``'1 day'``; other units as clinical text.

    Example
    -------
    >>> from mps_analgesia import Q
    >>> duration(Q("12 h")), duration(Q("1 day")), duration(Q("30 min"))
    ('12 hours', '1 day', '30 minutes')
    """
    text = _units.format_quantity(q)
    number, _, unit = text.partition(" ")
    words = _TIME_WORDS.get(unit)
    if words is None:
        return text
    return f"{number} {words[0] if number == '1' else words[1]}"


def _route(step: Any) -> str:
    return ROUTE_WORDS.get(step.route, f"by the {step.route} route")


def _schedule(step: Any) -> str:
    if step.every is not None:
        return f"every {duration(step.every)}"
    if step.times_per_day is not None:
        return _TIMES.get(step.times_per_day, f"{step.times_per_day} times a day")
    if step.once:
        return "once"
    return ""


def _drug_step(step: Any) -> str:
    name = step.drug
    if step.formulation == "modified-release":
        name = f"modified-release {name}"
    if step.rate is not None:
        text = f"{name} {quantity(step.rate)}"
        text += " by transdermal patch" if step.formulation == "patch" else f" {_route(step)}"
        text += ", continuously" if step.formulation != "patch" else ""
    else:
        parts = [f"{name} {quantity(step.dose)} {_route(step)}", _schedule(step)]
        if step.prn:
            parts.append("when needed")
        text = " ".join(p for p in parts if p)
        if step.prn and step.max_doses_per_24h is not None:
            n = step.max_doses_per_24h
            text += f", at most {n} dose{'s' if n != 1 else ''} in 24 hours"
    if step.start_day:
        text += f", from day {step.start_day}"
    for point in step.titration:
        new = point.rate if point.rate is not None else point.dose
        text += f"; {quantity(new)} from day {point.day}"
    if step.drug == "methadone" and step.titration:
        # methadone's peak matters (its respiratory depression peaks later than its analgesia)
        text += f"; peak {_format.number(step.daily_dose_mg)} mg/day from day {step.peak_day}"
    return text


def _block(step: Any) -> str:
    conc = quantity(step.concentration)
    mg_ml = _units.format_quantity(
        _units.quantity_from_magnitude(step.concentration_mg_per_ml, "mg/mL")
    )
    drug = f"{step.drug} {conc}"
    if conc != mg_ml:
        drug += f" ({mg_ml})"
    if step.adrenaline:
        drug += " with adrenaline"
    text = f"{step.side} psoas compartment block ({step.technique}): {drug}"
    if step.bolus_volume is not None:
        text += f", {quantity(step.bolus_volume)} bolus"
    if step.infusion_rate is not None:
        text += f", then {quantity(step.infusion_rate)} by catheter"
        if step.infusion_duration is not None:
            text += f" for {duration(step.infusion_duration)}"
    if step.start_day:
        text += f", on day {step.start_day}"
    return text


def _radiotherapy(step: Any) -> str:
    n = step.fractions
    text = (
        f"radiotherapy to {step.site}: {quantity(step.total_dose)} in {n} "
        f"fraction{'s' if n != 1 else ''}"
    )
    if n != 1:
        text += f" of {quantity(step.dose_per_fraction).removesuffix('/fraction')}"
    if step.start_day:
        text += f", from day {step.start_day}"
    if step.prior_dose is not None:
        text += f" (earlier dose to the same site: {quantity(step.prior_dose)}"
        if step.prior_fractions is not None:
            text += f" in {step.prior_fractions} fraction{'s' if step.prior_fractions != 1 else ''}"
        text += ")"
    return text


def dosage(step: Any) -> str:
    """One step in plain dosage language.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> dosage(mps.OpioidStep(drug="oxycodone", dose="10 mg", every="12 h"))
    'oxycodone 10 mg by mouth every 12 hours'
    >>> dosage(mps.OpioidStep(drug="oxycodone", dose="5 mg", every="2 h", prn=True,
    ...                       max_doses_per_24h=6))
    'oxycodone 5 mg by mouth every 2 hours when needed, at most 6 doses in 24 hours'
    >>> dosage(mps.OpioidStep(drug="fentanyl", route="transdermal", rate="25 mcg/h"))
    'fentanyl 25 mcg/h by transdermal patch'
    >>> dosage(mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h",
    ...                                  titration=[{"day": 7, "dose": "7.5 mg"}]))
    'methadone 5 mg by mouth every 8 hours; 7.5 mg from day 7; peak 22.5 mg/day from day 7'
    """
    kind = getattr(step, "kind", "")
    if kind == "psoas_compartment_block":
        return _block(step)
    if kind == "radiotherapy":
        return _radiotherapy(step)
    return _drug_step(step)
