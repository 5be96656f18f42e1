"""The protocol file vocabulary: statuses, evidence levels, start methods, decision actions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

#: Protocol statuses.
STATUSES: Final = ("draft", "endorsed", "superseded")
#: Evidence levels a protocol may declare.  Malignant psoas syndrome has no trials: its evidence
#: is case reports and case series; ``extrapolated`` marks numbers taken from other populations
#: (for example palliative radiotherapy of bone metastases, or psoas blocks for hip surgery).
EVIDENCE_LEVELS: Final = ("case-reports-and-series", "extrapolated")
#: How a step template chooses its starting dose.
START_METHODS: Final = ("fixed", "per_kg", "from_ome", "current")
#: What a monitoring entry may watch.
MONITORING_KINDS: Final = (
    "ecg",
    "pain-score",
    "sedation",
    "bowels",
    "respiration",
    "renal-function",
    "local-anaesthetic-toxicity",
    "bilateral-spread",
    "response",
)
#: What an ``action`` step may compute for the receipt from the plan's steps.
COMPUTE_KINDS: Final = ("breakthrough-dose", "current-ome")
#: The kinds of decision an instantiated plan records.
DECISION_ACTIONS: Final = (
    "eligibility",
    "caution",
    "choice",
    "continued",
    "included",
    "omitted",
    "not-applicable",
    "start-dose",
    "capped",
    "titration",
    "range",
    "duration",
    "sequencing",
    "monitoring",
    "de-escalation",
    "instruction",
    "computed",
    "radiobiology",
    "escalation",
)
#: The ``choices`` keys that compile an opioid de-escalation into a taper step (the prescriber's
#: numbers: no source gives them after a block or radiotherapy).  ``taper_start_day`` optional.
_TAPER_CHOICES: Final = ("taper_percent", "taper_every", "taper_floor", "taper_start_day")
#: Keys of ``choices`` with a fixed meaning (the others name a choice group).
_RESERVED_CHOICES: Final = ("side", "confirm", *_TAPER_CHOICES)
_SIDES: Final = ("left", "right", "bilateral")
_ID: Final = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_VERSION: Final = re.compile(r"^\d+(?:\.\d+){0,2}$")
_TOL: Final = 1e-9
_HOURS_PER_DAY: Final = 24.0  # a unit identity, not a clinical number
#: The canonical unit a parsed quantity of each dimension is kept in.
_CANONICAL: Final[Mapping[str, str]] = {
    "mass": "mg",
    "mass_rate": "mg/day",
    "volume": "mL",
    "volume_rate": "mL/h",
    "volume_per_mass": "mL/kg",
    "mass_per_mass": "mg/kg",
    "time": "h",
    "ome_rate": "MME/day",
    "concentration": "mg/mL",
    "absorbed_dose": "Gy",
    "length": "cm",
    "renal_clearance": "mL/min",
    "egfr": "mL/min/standard_bsa",
}
