"""The services the CDS Hooks discovery endpoint lists, and their prefetch templates."""

from __future__ import annotations

from typing import Any, Final

from ..fhir import LOINC, _codes

__all__ = [
    "HOOKS",
    "PREFETCH_KEYS",
    "PREFETCH_MEASURES",
    "SELECT_SERVICE_ID",
    "SERVICE_ID",
    "discovery_document",
]

#: The id of the service (hook ``order-sign``; it answers ``order-select`` too).
SERVICE_ID: Final = "mps-analgesia"
#: The id under which the same service is discovered for ``order-select``.
SELECT_SERVICE_ID: Final = "mps-analgesia-order-select"
#: The hooks the service answers.
HOOKS: Final = ("order-select", "order-sign")
#: The service ids a request may be posted to.
SERVICE_IDS: Final = frozenset({SERVICE_ID, SELECT_SERVICE_ID})
#: The prefetch keys holding one Observation each (the newest of its LOINC codes).
PREFETCH_MEASURES: Final = ("weight", "height", "egfr", "qtc")
#: Every prefetch key the service reads, in discovery order.
PREFETCH_KEYS: Final = ("patient", *PREFETCH_MEASURES, "medications")


def _observation_query(measure: str) -> str:
    row = _codes()["observations"][measure]
    codes = [c for c in [row.get("code", ""), *row.get("accept", ())] if c]
    joined = ",".join(f"{LOINC}|{c}" for c in codes)
    return f"Observation?patient={{{{context.patientId}}}}&code={joined}&_sort=-date&_count=1"


def prefetch_templates() -> dict[str, str]:
    """The prefetch template of every key the service reads."""
    out = {"patient": "Patient/{{context.patientId}}"}
    for measure in PREFETCH_MEASURES:
        out[measure] = _observation_query(measure)
    out["medications"] = "MedicationRequest?patient={{context.patientId}}&status=active"
    return out


def discovery_document() -> dict[str, Any]:
    """The CDS Hooks discovery document (``GET /cds-services``).

    Example
    -------
    >>> from mps_analgesia.cds_hooks import discovery_document
    >>> [(s["id"], s["hook"]) for s in discovery_document()["services"]]
    [('mps-analgesia', 'order-sign'), ('mps-analgesia-order-select', 'order-select')]
    >>> sorted(discovery_document()["services"][0]["prefetch"])
    ['egfr', 'height', 'medications', 'patient', 'qtc', 'weight']
    """
    description = (
        "Checks analgesic orders for malignant psoas syndrome (opioids, adjuvant methadone, "
        "adjuvants, psoas compartment block, radiotherapy) against published limits; reports "
        "what could not be checked. Decision support only."
    )
    prefetch = prefetch_templates()
    return {
        "services": [
            {
                "hook": "order-sign",
                "id": SERVICE_ID,
                "title": "MPS analgesia check",
                "description": description,
                "prefetch": prefetch,
                "usageRequirements": "Send the orders as MedicationRequest (drugs) and "
                "ServiceRequest (block, radiotherapy) in context.draftOrders.",
            },
            {
                "hook": "order-select",
                "id": SELECT_SERVICE_ID,
                "title": "MPS analgesia check (on select)",
                "description": description,
                "prefetch": prefetch,
            },
        ]
    }
