"""Checks and protocol values in plain words, for the handout layout (no ids, no rule syntax).

``anticoagulant.last_dose_ago >= 36 h`` becomes "at least 36 hours since the last anticoagulant
dose"; a list of names becomes "any of …".  Numbers and units come from the check's own value,
written by the one formatter; nothing is invented.
"""

from __future__ import annotations

from typing import Any, Final

from .. import _units
from ._dosage import duration, quantity

__all__ = ["FIELD_WORDS", "condition", "value_words"]

#: How each fact a check may test is named in a sentence.
FIELD_WORDS: Final[dict[str, str]] = {
    "age": "age (years)",
    "sex": "sex",
    "weight": "body weight",
    "height": "height",
    "bmi": "body-mass index",
    "egfr": "eGFR",
    "creatinine_clearance": "creatinine clearance",
    "renal_function": "renal function (creatinine clearance, else eGFR)",
    "qtc": "QTc",
    "hepatic_impairment": "hepatic impairment",
    "opioid_tolerant": "opioid tolerant",
    "medications": "the other medicines",
    "anticoagulant": "an anticoagulant",
    "anticoagulant.drug": "the anticoagulant",
    "anticoagulant.dose": "the anticoagulant dose",
    "anticoagulant.every": "the anticoagulant interval",
    "anticoagulant.last_dose_ago": "the time since the last anticoagulant dose",
    "current_ome": "the current daily oral morphine equivalent",
    "current_opioid": "an opioid in the current regimen",
    "current_strong_opioid": "a regular strong opioid in the current regimen",
}
_COMPARE: Final = {
    "<": "below",
    "<=": "at most",
    ">": "above",
    ">=": "at least",
    "==": "",
    "!=": "not",
}
#: The other operators as sentences (``{field}``, ``{value}``; ``{no_field}`` is the field
#: without its leading article).
_OPERATOR_WORDS: Final = {
    "in": "{field} is {value}",
    "not_in": "{field} is none of {value}",
    "contains_any": "{field} include {value}",
    "contains_none": "{field} include none of {value}",
    "known": "{field} is recorded",
    "unknown": "{field} is not recorded",
    "present": "{field} is taken",
    "absent": "no {no_field} is taken",
}


def value_words(value: Any) -> str:
    """A check's value in words: a time as ``'36 hours'``, other quantities as clinical text.

    Example
    -------
    >>> from mps_analgesia import Q
    >>> value_words(Q("36 h")), value_words(Q("5 day")), value_words(["a", "b", "c"])
    ('36 hours', '5 days', 'a, b or c')
    """
    if value is None:
        return ""
    if _units.is_quantity(value):
        if value.dimensionality == _units.DIMENSIONS["time"][0]:
            return duration(value)
        return quantity(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple | list):
        names = [str(v) for v in value]
        if len(names) <= 1:
            return "".join(names)
        return ", ".join(names[:-1]) + f" or {names[-1]}"
    if isinstance(value, float):
        from .. import _format

        return _format.number(value)
    return str(value)


def condition(check: Any) -> str:
    """A check as a sentence, from its field, operator and value (never its id).

    Example
    -------
    >>> import mps_analgesia as mps
    >>> p = mps.load_protocol("psoas-compartment-block")
    >>> condition(p.eligibility[1])
    'the time since the last anticoagulant dose is at least 36 hours'
    >>> condition(p.eligibility[1].when[0])
    'the anticoagulant is apixaban or eliquis'
    """
    field = FIELD_WORDS.get(check.field, check.field.replace("_", " ").replace(".", " "))
    op = check.op
    value = value_words(check.value)
    if op in _COMPARE:
        if isinstance(check.value, bool):
            return field if check.value == (op == "==") else f"not {field}"
        words = _COMPARE[op]
        return f"{field} is {words + ' ' if words else ''}{value}"
    sentence = _OPERATOR_WORDS.get(op)
    if sentence is not None:
        # "none of" reads its list with commas: "none of a, b, c", not "none of a, b or c"
        listed = value.replace(" or ", ", ") if "none of" in sentence else value
        return sentence.format(field=field, no_field=field.removeprefix("an "), value=listed)
    if op == "confirmed":
        return f"confirmed by the clinician: {check.text}"
    return str(check.text)
