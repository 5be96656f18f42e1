"""Bulk audit: a FHIR Bulk Data ``$export`` checked patient by patient, in bounded memory.

:func:`audit_export` reads the export (manifest or NDJSON files, gzip allowed), groups the
resources per patient through deterministic partitions on disk, takes each patient's regimen
active at the as-of time with the latest observations before it, validates it, and writes one
row per patient (:data:`ROW_SCHEMA`).  Corrupt lines are recorded with file and line, never fatal;
nothing about a patient is logged.  Partitions run inline, on local processes or as Dask tasks;
a restart skips the partitions already written.  ``mps-analgesia audit EXPORT_DIR`` is the
command line.

Modules: ``_export`` (reading the export), ``_patient`` (one patient's row), ``_run`` (the
partitions and the engines).
"""

from __future__ import annotations

from ._export import RESOURCE_TYPES, Export, LineProblem, open_export
from ._patient import ROW_SCHEMA, ROW_VERSION, audit_patient
from ._run import PARTITION_BYTES, AuditSummary, audit_export, check_partition, line_problems

__all__ = [
    "PARTITION_BYTES",
    "RESOURCE_TYPES",
    "ROW_SCHEMA",
    "ROW_VERSION",
    "AuditSummary",
    "Export",
    "LineProblem",
    "audit_export",
    "audit_patient",
    "check_partition",
    "line_problems",
    "open_export",
]
