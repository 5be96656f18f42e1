"""FHIR R4 in and out: a regimen and patient as a Bundle, a Report as DetectedIssues.

Plain dicts in, plain dicts out: no FHIR model library is needed at run time.

- :func:`to_bundle` writes a ``collection`` Bundle: the Patient; Observations for weight, height,
  eGFR, creatinine clearance and QTc (LOINC); MedicationStatements for the other medicines and
  the anticoagulant; a MedicationRequest per drug step (RxNorm ingredient, SNOMED CT route,
  ``dosageInstruction`` with ``timing.repeat``, ``doseAndRate`` in UCUM, ``asNeeded`` and
  ``maxDosePerPeriod`` for PRN, titration as successive dosage instructions bounded by
  ``timing.repeat.boundsDuration``); a ServiceRequest for a psoas compartment block or a
  radiotherapy course (doses in extensions); and a CarePlan that keeps the order and name.
- :func:`from_bundle` reads such a Bundle back (lossless for what :func:`to_bundle` wrote) and also
  reads orders written by other systems, as far as the standard elements say enough.
- :func:`report_to_fhir` turns a :class:`~mps_analgesia.report.Report` into DetectedIssue
  resources.

Fields with no standard home travel in extensions under :data:`EXTENSION_BASE`; every one is
listed in ``docs/fhir-and-cds-hooks.md``.  Units go through a closed UCUM table
(``data/ucum.toml``): micrograms are ``ug`` (``mcg`` is refused, it is not a UCUM microgram),
annotations such as ``{tbl}`` are refused where a mass is needed, and any unknown code is refused
with a message.

Modules (private; import from ``mps_analgesia.fhir``): ``_base`` (bases, extension URLs, code
systems, code tables), ``_quantity`` (UCUM), ``_write`` (regimen → Bundle), ``_dosage`` (one
request → a step), ``_patient`` (Patient, Observations, MedicationStatements → Patient),
``_bundle`` (a Bundle → patient and regimen), ``_orders`` (a CDS Hooks order-sign request →
patient and orders, read once) and ``_issues``
(Report → DetectedIssue).
"""

# The names below that are not in __all__ are re-exported for the code that used them as
# ``mps_analgesia.fhir.<name>`` before the split (constants, and helpers the CDS service uses).

from __future__ import annotations

from ._base import (
    _CANONICAL as _CANONICAL,
)
from ._base import (
    CODE_SYSTEM_BASE,
    EXTENSION_BASE,
    PROJECT_BASE,
    UCUM,
)
from ._base import (
    CS_DRUG as CS_DRUG,
)
from ._base import (
    CS_FINDING as CS_FINDING,
)
from ._base import (
    CS_MEASURE as CS_MEASURE,
)
from ._base import (
    CS_NOT_CHECKED as CS_NOT_CHECKED,
)
from ._base import (
    CS_OVERRIDE as CS_OVERRIDE,
)
from ._base import (
    CS_ROUTE as CS_ROUTE,
)
from ._base import (
    CS_STEP_KIND as CS_STEP_KIND,
)
from ._base import (
    LOINC as LOINC,
)
from ._base import (
    RXNORM as RXNORM,
)
from ._base import (
    SNOMED as SNOMED,
)
from ._base import (
    X_ADRENALINE as X_ADRENALINE,
)
from ._base import (
    X_AGE as X_AGE,
)
from ._base import (
    X_BOLUS_VOLUME as X_BOLUS_VOLUME,
)
from ._base import (
    X_CONCENTRATION as X_CONCENTRATION,
)
from ._base import (
    X_FORMULATION as X_FORMULATION,
)
from ._base import (
    X_FRACTIONS as X_FRACTIONS,
)
from ._base import (
    X_HEPATIC as X_HEPATIC,
)
from ._base import (
    X_INFUSION_DURATION as X_INFUSION_DURATION,
)
from ._base import (
    X_INFUSION_RATE as X_INFUSION_RATE,
)
from ._base import (
    X_LAST_DOSE_AGO as X_LAST_DOSE_AGO,
)
from ._base import (
    X_LEVEL as X_LEVEL,
)
from ._base import (
    X_LOCAL_ANAESTHETIC as X_LOCAL_ANAESTHETIC,
)
from ._base import (
    X_MED_ROLE as X_MED_ROLE,
)
from ._base import (
    X_MEDICATIONS_RECORDED as X_MEDICATIONS_RECORDED,
)
from ._base import (
    X_NO_ANTICOAGULANT as X_NO_ANTICOAGULANT,
)
from ._base import (
    X_NOT_CHECKED as X_NOT_CHECKED,
)
from ._base import (
    X_PLAN_DAY as X_PLAN_DAY,
)
from ._base import (
    X_PRIOR_DOSE as X_PRIOR_DOSE,
)
from ._base import (
    X_PRIOR_FRACTIONS as X_PRIOR_FRACTIONS,
)
from ._base import (
    X_ROLE as X_ROLE,
)
from ._base import (
    X_SCHEDULE as X_SCHEDULE,
)
from ._base import (
    X_SIDE as X_SIDE,
)
from ._base import (
    X_SITE as X_SITE,
)
from ._base import (
    X_START_DAY as X_START_DAY,
)
from ._base import (
    X_STEP_KIND as X_STEP_KIND,
)
from ._base import (
    X_TECHNIQUE as X_TECHNIQUE,
)
from ._base import (
    X_TOLERANT as X_TOLERANT,
)
from ._base import (
    X_TOTAL_DOSE as X_TOTAL_DOSE,
)
from ._base import (
    _codes as _codes,
)
from ._base import (
    _codes_in as _codes_in,
)
from ._base import (
    _drug_from_concept as _drug_from_concept,
)
from ._base import (
    _medication_name as _medication_name,
)
from ._bundle import _bundle_entries as _bundle_entries
from ._bundle import case_from_bundle, case_to_bundle, from_bundle
from ._dosage import medication_index, medication_of, step_from_resource, steps_from_resource
from ._issues import FHIR_SEVERITY, report_to_fhir
from ._orders import OrderSignRead, ReadOrder, UnreadOrder, read_order_sign
from ._patient import patient_from_resources
from ._quantity import _ucum_by_library as _ucum_by_library
from ._quantity import from_fhir_quantity, to_fhir_quantity
from ._write import to_bundle

__all__ = [
    "CODE_SYSTEM_BASE",
    "EXTENSION_BASE",
    "FHIR_SEVERITY",
    "PROJECT_BASE",
    "UCUM",
    "OrderSignRead",
    "ReadOrder",
    "UnreadOrder",
    "case_from_bundle",
    "case_to_bundle",
    "from_bundle",
    "from_fhir_quantity",
    "medication_index",
    "medication_of",
    "patient_from_resources",
    "read_order_sign",
    "report_to_fhir",
    "step_from_resource",
    "steps_from_resource",
    "to_bundle",
    "to_fhir_quantity",
]
