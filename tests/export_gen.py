"""A seeded generator of synthetic FHIR Bulk Data exports, for the audit's tests and benchmark.

``write_export(folder, n_patients, seed=0, corrupt=0.05)`` writes ``Patient``, ``Observation``,
``MedicationRequest`` (gzip), ``MedicationStatement`` and ``ServiceRequest`` NDJSON files and a
manifest.  Orders are product-coded (RxNorm products: tablets, patches), some stopped before the
export, some authored after the as-of time a test may choose; observations (weight, eGFR, QTc)
come at several times.  A share ``corrupt`` of the lines is damaged (cut JSON, not an object, no
resourceType) and a share of orders are unreadable (an unknown product code, a dose with no unit).

Run as a script: ``python tests/export_gen.py FOLDER N [SEED]``.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import random
import sys
from pathlib import Path
from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
EXPORT_TIME = "2026-11-30T12:00:00+00:00"

#: (RxNorm product code, dose quantity, every hours, as needed)
PRODUCTS = [
    ("1049621", {"value": 1, "unit": "tablet", "system": UCUM, "code": "{tablet}"}, 6, False),
    ("1049621", {"value": 2, "unit": "tablet", "system": UCUM, "code": "{tablet}"}, 4, True),
    ("891881", {"value": 1, "unit": "tablet", "system": UCUM, "code": "{tablet}"}, 12, False),
    ("197696", {"value": 1, "unit": "patch", "system": UCUM, "code": "{patch}"}, 72, False),
]
BAD_ORDERS = [
    ("999999999", {"value": 1, "unit": "tablet", "system": UCUM, "code": "{tablet}"}),  # unknown
    ("1049621", {"value": 30}),  # no unit
]
OBSERVATIONS = [
    ("29463-7", "kg", (40.0, 95.0)),  # weight
    ("69405-9", "mL/min/{1.73_m2}", (15.0, 110.0)),  # eGFR
    ("8636-3", "ms", (400.0, 520.0)),  # QTc
]


def _order(rng: random.Random, pid: str, n: int, bad: bool) -> dict[str, Any]:
    if bad:
        code, dose = rng.choice(BAD_ORDERS)
        every, prn = 6, False
    else:
        code, dose, every, prn = rng.choice(PRODUCTS)
    status = rng.choices(["active", "stopped", "completed", "draft"], [80, 8, 8, 4])[0]
    month = rng.randint(1, 11)
    authored = f"2026-{month:02d}-{rng.randint(1, 28):02d}T08:00:00+00:00"
    dosage: dict[str, Any] = {
        "timing": {"repeat": {"frequency": 1, "period": every, "periodUnit": "h"}},
        "doseAndRate": [{"doseQuantity": dose}],
    }
    if prn:
        dosage["asNeededBoolean"] = True
    order: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": f"{pid}-rx{n}",
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": authored,
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code}]},
        "dosageInstruction": [dosage],
    }
    if status in ("stopped", "completed"):
        order["dispenseRequest"] = {
            "validityPeriod": {"start": authored, "end": f"2026-{month:02d}-28T08:00:00+00:00"}
        }
    return order


def _observation(rng: random.Random, pid: str, n: int) -> dict[str, Any]:
    code, unit, (low, high) = rng.choice(OBSERVATIONS)
    when = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:00:00+00:00"
    return {
        "resourceType": "Observation",
        "id": f"{pid}-obs{n}",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": round(rng.uniform(low, high), 1),
            "unit": unit,
            "system": UCUM,
            "code": unit,
        },
    }


def _damage(rng: random.Random, line: str) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return line[: max(1, len(line) // 2)]  # cut JSON
    if kind == 1:
        return "[1, 2, 3]"  # not an object
    return '{"id": "x"}'  # no resourceType


def write_export(
    folder: str | Path, n_patients: int, *, seed: int = 0, corrupt: float = 0.05
) -> dict[str, int]:
    """Write a synthetic export of ``n_patients`` to ``folder``; returns the line counts."""
    rng = random.Random(seed)
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    counts = {"lines": 0, "corrupt": 0}
    names = {
        "Patient": "Patient.ndjson",
        "Observation": "Observation.ndjson",
        "MedicationRequest": "MedicationRequest.ndjson.gz",
        "MedicationStatement": "MedicationStatement.ndjson",
        "ServiceRequest": "ServiceRequest.ndjson",
    }
    stack = contextlib.ExitStack()
    files: dict[str, Any] = {}
    for kind, name in names.items():
        opener: Any = gzip.open if name.endswith(".gz") else open
        files[kind] = stack.enter_context(opener(root / name, "wt", encoding="utf-8"))

    def emit(kind: str, resource: dict[str, Any]) -> None:
        line = json.dumps(resource, separators=(",", ":"))
        if rng.random() < corrupt:
            line = _damage(rng, line)
            counts["corrupt"] += 1
        files[kind].write(line + "\n")
        counts["lines"] += 1

    try:
        for i in range(n_patients):
            pid = f"pt{i:07d}"
            emit(
                "Patient",
                {
                    "resourceType": "Patient",
                    "id": pid,
                    "gender": rng.choice(["female", "male"]),
                    "birthDate": f"{rng.randint(1930, 1990)}-0{rng.randint(1, 9)}-15",
                },
            )
            for n in range(rng.randint(1, 5)):
                emit("Observation", _observation(rng, pid, n))
            for n in range(rng.randint(0, 4)):
                emit("MedicationRequest", _order(rng, pid, n, rng.random() < 0.05))
            if rng.random() < 0.3:
                emit(
                    "MedicationStatement",
                    {
                        "resourceType": "MedicationStatement",
                        "id": f"{pid}-ms0",
                        "status": "active",
                        "subject": {"reference": f"Patient/{pid}"},
                        "medicationCodeableConcept": {"text": "sertraline"},
                    },
                )
            if rng.random() < 0.05:
                emit(
                    "ServiceRequest",
                    {
                        "resourceType": "ServiceRequest",
                        "id": f"{pid}-sr0",
                        "status": "active",
                        "intent": "order",
                        "subject": {"reference": f"Patient/{pid}"},
                        "code": {"text": "palliative radiotherapy"},
                    },
                )
    finally:
        stack.close()
    manifest = {
        "transactionTime": EXPORT_TIME,
        "request": "https://ehr.example/fhir/$export",
        "requiresAccessToken": True,
        "output": [
            {"type": kind, "url": f"https://ehr.example/files/{name}"}
            for kind, name in names.items()
        ],
        "error": [],
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return counts


if __name__ == "__main__":  # pragma: no cover
    folder, n = sys.argv[1], int(sys.argv[2])
    print(write_export(folder, n, seed=int(sys.argv[3]) if len(sys.argv) > 3 else 0))
