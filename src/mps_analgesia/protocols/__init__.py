"""Protocols as data: reusable MPS analgesia templates, and their instantiation for one patient.

A *protocol* is a reusable template; a *regimen* is what it becomes for one patient.  The shipped
protocols live as TOML files in the package data directory ``data/protocols/``
(``src/mps_analgesia/data/protocols/`` in the repository) and load by id::

    >>> import mps_analgesia as mps                                  # doctest: +SKIP
    >>> protocol = mps.load_protocol("takase-2015-methadone-adjuvant")   # doctest: +SKIP

A protocol holds its id, title, version, status (draft / endorsed / superseded), the level of its
evidence (for malignant psoas syndrome: case reports and series), its indication, eligibility
checks, contraindications and cautions written as checks on the patient (a small declarative
language: ``{ field = "qtc", op = "<", value = "450 ms" }``), ordered phases, and step templates
with their sources.  A step template carries the fixed values of a step (keys equal the attrs field
names of the step classes), a dose range, how the starting dose is chosen (fixed, per kg, from the
current oral morphine equivalent by a named scheme, as a breakthrough fraction, or the current
step continued), titration rules (step size, minimum interval, ceiling), monitoring, sequencing and
de-escalation.  Every number in a protocol file carries a source id (``data/sources.toml``) and a
verification level (V, S, U).

:meth:`Protocol.instantiate` turns a protocol into an :class:`InstantiatedPlan` for a patient: a
:class:`~mps_analgesia.regimen.Regimen` over days (titration included) and the receipt of every
decision taken with its reason and source.  Eligibility that fails or cannot be checked is
reported, never ignored.  A protocol never adds a drug the current regimen already gives (no
second methadone, say): the current step is kept for review.  A bad protocol file raises
:class:`ProtocolFileError` listing every problem with its key path and line.

The file format is described in ``docs/protocols.md``; ``json_schema("protocol")`` (module
:mod:`mps_analgesia.schema`) gives the JSON Schema for editors.
"""

from __future__ import annotations

from ..errors import ProtocolFileError
from ._vocabulary import (
    COMPUTE_KINDS,
    DECISION_ACTIONS,
    EVIDENCE_LEVELS,
    MONITORING_KINDS,
    START_METHODS,
    STATUSES,
)
from .checks import CHECK_FIELDS, CHECK_OPS, Check, CheckField, CheckResult
from .library import list_protocols, load_protocol, protocol_dirs
from .model import (
    Deescalation,
    DoseRange,
    Duration,
    Escalation,
    Evidence,
    Monitoring,
    Phase,
    Protocol,
    StartRule,
    StepTemplate,
    TitrationRule,
)
from .plans import Decision, InstantiatedPlan, MonitoringItem
from .reader import loads_protocol, protocol_from_dict

__all__ = [
    "CHECK_FIELDS",
    "CHECK_OPS",
    "COMPUTE_KINDS",
    "DECISION_ACTIONS",
    "EVIDENCE_LEVELS",
    "MONITORING_KINDS",
    "START_METHODS",
    "STATUSES",
    "Check",
    "CheckField",
    "CheckResult",
    "Decision",
    "Deescalation",
    "DoseRange",
    "Duration",
    "Escalation",
    "Evidence",
    "InstantiatedPlan",
    "Monitoring",
    "MonitoringItem",
    "Phase",
    "Protocol",
    "ProtocolFileError",
    "StartRule",
    "StepTemplate",
    "TitrationRule",
    "list_protocols",
    "load_protocol",
    "loads_protocol",
    "protocol_dirs",
    "protocol_from_dict",
]
