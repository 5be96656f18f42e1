"""Reading product-coded orders (issue 13): a 6-order order-sign request read once into steps.

Run with::

    python -m pytest benchmarks/bench_fhir_read.py --benchmark-only -q

Every round reads orders with never-seen doses (the dose value changes each call), so the
measure is not a memo hit.  The baselines in the same run are ``json.loads`` of the same request
body, the least any service does with it, and the same read with the reader's memos (medication
per coding, schedule per canonical Timing, Quantity per value and unit) switched off.  No budget
is asserted here (the issue's 0.3 ms is for the whole ``handle()``, in ``bench_cds_hooks.py``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mps_analgesia.fhir import _medication, _quantity, _timing, read_order_sign

UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ORAL = {"text": "oral"}
_PRODUCTS = [
    (
        "1049502",
        {"value": 1, "code": "{tablet}"},
        {"frequency": 1, "period": 12, "periodUnit": "h"},
    ),
    ("245134", {"value": 1, "code": "{patch}"}, {"frequency": 1, "period": 72, "periodUnit": "h"}),
    ("1049640", {"value": 2, "code": "{tablet}"}, {"frequency": 1, "period": 6, "periodUnit": "h"}),
    ("892589", {"value": 5, "code": "mL"}, {"frequency": 1, "period": 4, "periodUnit": "h"}),
    ("825411", {"value": 1, "code": "{tablet}"}, {"frequency": 1, "period": 6, "periodUnit": "h"}),
    ("864718", {"value": 1, "code": "{tablet}"}, {"frequency": 3, "period": 1, "periodUnit": "d"}),
]
_counter = itertools.count(1)


def _request() -> dict[str, Any]:
    n = next(_counter)
    entries = []
    for i, (code, dose, repeat) in enumerate(_PRODUCTS):
        dose = dict(dose, system=UCUM, value=dose["value"] + (n % 997) / 1000.0 * (i != 1))
        if i == 1:  # a patch count stays whole
            dose["value"] = 1
        entries.append(
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": f"o{i}",
                    "status": "draft",
                    "intent": "order",
                    "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code}]},
                    "dosageInstruction": [
                        {
                            "timing": {"repeat": repeat},
                            "route": ORAL if i != 1 else {"text": "transdermal"},
                            "doseAndRate": [{"doseQuantity": dose}],
                        }
                    ],
                }
            }
        )
    return {"draftOrders": {"resourceType": "Bundle", "entry": entries}}


def test_read_six_product_orders(benchmark: Any) -> None:
    """read_order_sign of six product-coded orders with never-seen doses."""
    result = benchmark.pedantic(
        read_order_sign, setup=lambda: ((_request(),), {}), rounds=300, warmup_rounds=10
    )
    assert len(result.orders) == 6
    assert result.unread == ()


def test_baseline_json_loads(benchmark: Any) -> None:
    """Baseline: json.loads of the same request body."""
    body = json.dumps(_request())
    benchmark(json.loads, body)


@contextmanager
def memos_off() -> Iterator[None]:
    """The FHIR reader without its memos (the baseline): each bounded to 0 bytes, emptied."""
    memos = (_medication._MEDICATIONS, _timing._SCHEDULES, _quantity._QUANTITIES)
    sizes = [m.max_bytes for m in memos]
    for m in memos:
        m.clear()
        m.max_bytes = 0
    try:
        yield
    finally:
        for m, size in zip(memos, sizes, strict=True):
            m.max_bytes = size


def test_read_six_product_orders_without_memos(benchmark: Any) -> None:
    """Baseline: the same read with the reader's memos off."""
    with memos_off():
        result = benchmark.pedantic(
            read_order_sign, setup=lambda: ((_request(),), {}), rounds=300, warmup_rounds=10
        )
    assert len(result.orders) == 6
