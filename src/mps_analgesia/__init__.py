"""mps_analgesia: decision support for the pain management of malignant psoas syndrome (MPS).

Typed protocol steps (attrs) with unit-aware dose checks (pint).  It is decision support, not a
prescriber: every number it uses is traceable to a published source, and what it cannot check it
reports as *not checked*, never as passed.

Example
-------
>>> import mps_analgesia as mps
>>> regimen = mps.Regimen([
...     mps.OpioidStep(drug="oxycodone", formulation="modified-release",
...                    dose="10 mg", every="12 h"),
... ])
>>> report = mps.validate(regimen, mps.Patient(age=70, weight="60 kg"))
>>> report.status in ("errors", "warnings", "incomplete", "no findings")
True
"""

from collections.abc import Callable
from typing import Any

from ._repr import _register_writer
from ._units import Q
from ._version import __version__
from .errors import (
    ArgumentError,
    CaseFileError,
    ConversionError,
    DataFileError,
    DimensionError,
    MpsAnalgesiaError,
    Problem,
    ProtocolError,
    ProtocolFileError,
    StepError,
    TableFileError,
    UnitError,
    UnknownDrugError,
    UnknownNameError,
    UnknownProductError,
    UnknownRouteError,
)
from .patient import NO_ANTICOAGULANT, Anticoagulant, AnticoagulantStatus, Patient
from .regimen import Case, Regimen
from .report import (
    Finding,
    NotApplicable,
    NotChecked,
    Report,
    UnreadOrder,
    _register_wire_severity,
)
from .steps import (
    AdjuvantStep,
    MethadoneAdjuvantStep,
    OpioidStep,
    PsoasCompartmentBlockStep,
    RadiotherapyStep,
    Step,
    TaperStep,
    TitrationPoint,
)


def _load_map(module: str, name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(module, __name__), name)


def _loader(module: str, name: str) -> Callable[[], Any]:
    return lambda: _load_map(module, name)


# The boundaries own their severity words; results ask for them through this registration, so
# no result imports a boundary and ``import mps_analgesia`` loads neither.
_register_wire_severity("cds", lambda: _load_map(".cds_hooks._indicator", "CDS_INDICATOR"))
_register_wire_severity("fhir", lambda: _load_map(".fhir._issues", "FHIR_SEVERITY"))

# Likewise the day plan's day table, written by the renderers.
for _fmt in ("text", "markdown", "html"):
    _register_writer("day-table", _fmt, _loader(".render.dayplan", f"plan_{_fmt}"))
del _fmt


def __getattr__(name: str) -> object:
    """Load the heavier parts (file I/O, rules, conversion, protocols ...) on first use.

    ``import mps_analgesia`` stays cheap; ``mps.validate`` or ``mps.fhir`` import their module
    the first time they are touched.
    """
    import importlib

    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        value = getattr(module, name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'mps_analgesia' has no attribute {name!r}")
    globals()[name] = value
    return value


#: Submodules reachable as attributes (``mps.fhir.to_bundle``); ``render`` is a callable module.
_SUBMODULES = (
    "fhir",
    "cds_hooks",
    "render",
    "conversion",
    "protocols",
    "radiotherapy",
    "products",
)

_LAZY = {
    "load_case": ".io",
    "loads_case": ".io",
    "dump_case": ".io",
    "dumps_case": ".io",
    "case_from_dict": ".io",
    "case_to_dict": ".io",
    "validate": ".rules",
    "default_rules": ".rules",
    "rule": ".rules",
    "finding": ".rules",
    "Rule": ".rules",
    "RuleRegistry": ".rules",
    "Missing": ".rules",
    "NoLimit": ".rules",
    "PASSED": ".rules",
    "daily_ome": ".conversion",
    "compare_tables": ".conversion",
    "data_editions": "._catalog",
    "convert_opioid": ".conversion",
    "methadone_from_ome": ".conversion",
    "breakthrough_dose": ".conversion",
    "ome_tables": ".conversion",
    "load_table": ".conversion",
    "loads_table": ".conversion",
    "ConversionTable": ".conversion",
    "methadone_schemes": ".conversion",
    "PRN_POLICIES": ".conversion",
    "OmeResult": ".conversion",
    "OmeLine": ".conversion",
    "SkippedStep": ".conversion",
    "QuantityRange": ".conversion",
    "TableComparison": ".conversion",
    "Conversion": ".conversion",
    "Reduction": ".conversion",
    "MethadoneConversion": ".conversion",
    "BreakthroughDose": ".conversion",
    "BreakthroughFraction": ".conversion",
    "bed": ".radiotherapy",
    "eqd2": ".radiotherapy",
    "validate_many": ".batch",
    "CaseResult": ".batch",
    "load_protocol": ".protocols",
    "list_protocols": ".protocols",
    "loads_protocol": ".protocols",
    "protocol_from_dict": ".protocols",
    "Protocol": ".protocols",
    "InstantiatedPlan": ".protocols",
    "Decision": ".protocols",
    "assess_mps": ".assess",
    "MpsFeatures": ".assess",
    "MpsAssessment": ".assess",
    "json_schema": ".schema",
    "schedule": ".schedule",
    "Day": ".schedule",
    "DayDose": ".schedule",
    "DayEvent": ".schedule",
    "DayPlan": ".schedule",
    "RtFraction": ".schedule",
}

__all__ = [
    "NO_ANTICOAGULANT",
    "PASSED",
    "PRN_POLICIES",
    "AdjuvantStep",
    "Anticoagulant",
    "AnticoagulantStatus",
    "ArgumentError",
    "BreakthroughDose",
    "BreakthroughFraction",
    "Case",
    "CaseFileError",
    "CaseResult",
    "Conversion",
    "ConversionError",
    "ConversionTable",
    "DataFileError",
    "Day",
    "DayDose",
    "DayEvent",
    "DayPlan",
    "Decision",
    "DimensionError",
    "Finding",
    "InstantiatedPlan",
    "MethadoneAdjuvantStep",
    "MethadoneConversion",
    "Missing",
    "MpsAnalgesiaError",
    "MpsAssessment",
    "MpsFeatures",
    "NoLimit",
    "NotApplicable",
    "NotChecked",
    "OmeLine",
    "OmeResult",
    "OpioidStep",
    "Patient",
    "Problem",
    "Protocol",
    "ProtocolError",
    "ProtocolFileError",
    "PsoasCompartmentBlockStep",
    "Q",
    "QuantityRange",
    "RadiotherapyStep",
    "Reduction",
    "Regimen",
    "Report",
    "RtFraction",
    "Rule",
    "RuleRegistry",
    "SkippedStep",
    "Step",
    "StepError",
    "TableComparison",
    "TableFileError",
    "TaperStep",
    "TitrationPoint",
    "UnitError",
    "UnknownDrugError",
    "UnknownNameError",
    "UnknownProductError",
    "UnknownRouteError",
    "UnreadOrder",
    "__version__",
    "assess_mps",
    "bed",
    "breakthrough_dose",
    "case_from_dict",
    "case_to_dict",
    "compare_tables",
    "convert_opioid",
    "daily_ome",
    "data_editions",
    "default_rules",
    "dump_case",
    "dumps_case",
    "eqd2",
    "fhir",
    "finding",
    "json_schema",
    "list_protocols",
    "load_case",
    "load_protocol",
    "load_table",
    "loads_case",
    "loads_protocol",
    "loads_table",
    "methadone_from_ome",
    "methadone_schemes",
    "ome_tables",
    "protocol_from_dict",
    "render",
    "rule",
    "schedule",
    "validate",
    "validate_many",
]
