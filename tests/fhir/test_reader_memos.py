"""The FHIR reader's memos (medication, timing, Quantity) never change what is read."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mps_analgesia.errors import StepError, UnitError
from mps_analgesia.fhir import _medication, _quantity, _timing, from_fhir_quantity, read_order_sign
from mps_analgesia.fhir._timing import read_timing

UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
MEMOS = (_medication._MEDICATIONS, _timing._SCHEDULES, _quantity._QUANTITIES)


@pytest.fixture
def memos_off() -> Iterator[None]:
    sizes = [m.max_bytes for m in MEMOS]
    for m in MEMOS:
        m.clear()
        m.max_bytes = 0
    yield
    for m, size in zip(MEMOS, sizes, strict=True):
        m.max_bytes = size


def _orders(dose: float, hours: int) -> dict[str, Any]:
    def order(rid: str, code: str, quantity: dict[str, Any]) -> dict[str, Any]:
        return {
            "resourceType": "MedicationRequest",
            "id": rid,
            "status": "draft",
            "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code}]},
            "dosageInstruction": [
                {
                    "timing": {"repeat": {"frequency": 1, "period": hours, "periodUnit": "h"}},
                    "route": {"text": "oral"},
                    "doseAndRate": [{"doseQuantity": dict(quantity, system=UCUM)}],
                }
            ],
        }

    entries = [
        order("a", "1049621", {"value": dose, "code": "{tablet}"}),
        order("b", "7052", {"value": dose * 5, "code": "mg"}),
    ]
    return {"draftOrders": {"resourceType": "Bundle", "entry": [{"resource": e} for e in entries]}}


def _read(context: dict[str, Any]) -> list[Any]:
    return [o.steps for o in read_order_sign(copy.deepcopy(context)).orders]


@settings(max_examples=25, deadline=None)
@given(dose=st.sampled_from([1, 2, 1.5, 0.5, 3]), hours=st.sampled_from([4, 6, 8, 12]))
def test_reads_equal_with_and_without_memos(dose: float, hours: int) -> None:
    """The same orders read twice (a memo hit) and with the memos off give equal steps."""
    context = _orders(dose, hours)
    first, second = _read(context), _read(context)
    sizes = [m.max_bytes for m in MEMOS]
    try:
        for m in MEMOS:
            m.clear()
            m.max_bytes = 0
        bare = _read(context)
    finally:
        for m, size in zip(MEMOS, sizes, strict=True):
            m.max_bytes = size
    assert first == second == bare


def test_a_problem_is_raised_every_time() -> None:
    """A Timing or Quantity that cannot be read is refused each time: failures are not kept."""
    bad_timing = {"repeat": {"frequency": 1, "period": 4, "periodUnit": "hours"}}
    bad_quantity = {"value": 5, "system": UCUM, "code": "mcg"}
    for _ in range(2):
        with pytest.raises(StepError):
            read_timing(bad_timing)
        with pytest.raises(UnitError):
            from_fhir_quantity(bad_quantity, "mass")


def test_types_stay_apart() -> None:
    """frequency 1 is read; frequency true is refused, even after 1 was memoized."""
    assert read_timing({"repeat": {"frequency": 1, "period": 4, "periodUnit": "h"}}).kwargs
    with pytest.raises(StepError, match="whole number"):
        read_timing({"repeat": {"frequency": True, "period": 4, "periodUnit": "h"}})


def test_free_text_names_are_not_kept() -> None:
    """A medication read with a display longer than the memo's text bound is resolved but never
    kept; the same coding with a short display is kept."""
    long = {"coding": [{"system": RXNORM, "code": "7052", "display": "morphine " + "x" * 400}]}
    short = {"coding": [{"system": RXNORM, "code": "7052", "display": "morphine"}]}
    assert _medication.resolve_medication(long).drug == "morphine"
    assert all("x" * 400 not in str(k) for k in _medication._MEDICATIONS.data)
    assert _medication.resolve_medication(short) is _medication.resolve_medication(short)


def test_memos_are_within_their_bounds(memos_off: None) -> None:
    """With the memos off nothing is kept; every memo is within its byte bound."""
    _read(_orders(1, 4))
    assert all(len(m) == 0 for m in MEMOS)
