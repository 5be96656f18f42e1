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

from ._units import Q
from ._version import __version__
from .errors import (
    CaseFileError,
    ConversionError,
    DataFileError,
    DimensionError,
    MpsAnalgesiaError,
    Problem,
    ProtocolError,
    StepError,
    UnitError,
    UnknownDrugError,
    UnknownNameError,
    UnknownRouteError,
)
from .patient import Anticoagulant, Patient
from .regimen import Case, Regimen
from .report import Finding, NotChecked, Report
from .steps import (
    AdjuvantStep,
    MethadoneAdjuvantStep,
    OpioidStep,
    PsoasCompartmentBlockStep,
    RadiotherapyStep,
    Step,
    TitrationPoint,
)


def __getattr__(name: str) -> object:
    """Load the heavier parts (file I/O, rules) on first use, so ``import`` stays cheap."""
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name], __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mps_analgesia' has no attribute {name!r}")


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
    "PASSED": ".rules",
}

__all__ = [
    "PASSED",
    "AdjuvantStep",
    "Anticoagulant",
    "Case",
    "CaseFileError",
    "ConversionError",
    "DataFileError",
    "DimensionError",
    "Finding",
    "MethadoneAdjuvantStep",
    "Missing",
    "MpsAnalgesiaError",
    "NotChecked",
    "OpioidStep",
    "Patient",
    "Problem",
    "ProtocolError",
    "PsoasCompartmentBlockStep",
    "Q",
    "RadiotherapyStep",
    "Regimen",
    "Report",
    "Rule",
    "RuleRegistry",
    "Step",
    "StepError",
    "TitrationPoint",
    "UnitError",
    "UnknownDrugError",
    "UnknownNameError",
    "UnknownRouteError",
    "__version__",
    "case_from_dict",
    "case_to_dict",
    "default_rules",
    "dump_case",
    "dumps_case",
    "finding",
    "load_case",
    "loads_case",
    "rule",
    "validate",
]
