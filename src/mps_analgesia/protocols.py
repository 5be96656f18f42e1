"""Protocols as data: reusable MPS analgesia templates, and their instantiation for one patient.

A *protocol* is a reusable template; a *regimen* is what it becomes for one patient.  The shipped
protocols live as TOML files in the repository's ``protocols/`` directory (inside the wheel:
``mps_analgesia/protocols``) and load by id::

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

import difflib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

import attrs

from . import _catalog, _units
from ._repr import Renderable
from .errors import (
    MpsAnalgesiaError,
    Problem,
    ProtocolError,
    ProtocolFileError,
    StepError,
    UnitError,
    UnknownNameError,
)
from .io import _line, _toml_lines
from .patient import Patient
from .regimen import Regimen
from .report import Report
from .steps import STEP_KINDS, Step

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
#: Keys of ``choices`` with a fixed meaning (the others name a choice group).
_RESERVED_CHOICES: Final = ("side", "confirm")
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


# ---- errors -------------------------------------------------------------------------------------


# ---- the check language -------------------------------------------------------------------------


@attrs.define(frozen=True)
class CheckField:
    """A patient or plan fact a check may test: its name, kind, dimension and canonical unit."""

    name: str
    kind: str
    doc: str
    dimension: str = ""
    unit: str = ""


#: The facts a check may test, by name.  ``kind`` decides the operators allowed (:data:`CHECK_OPS`).
CHECK_FIELDS: Final[Mapping[str, CheckField]] = {
    f.name: f
    for f in (
        CheckField("age", "number", "age in years"),
        CheckField("sex", "text", "female, male or other"),
        CheckField("weight", "quantity", "body weight", "mass", "kg"),
        CheckField("height", "quantity", "height", "length", "cm"),
        CheckField("bmi", "number", "body-mass index in kg/m² (needs weight and height)"),
        CheckField("egfr", "quantity", "estimated GFR", "egfr", "mL/min/standard_bsa"),
        CheckField(
            "creatinine_clearance", "quantity", "creatinine clearance", "renal_clearance", "mL/min"
        ),
        CheckField(
            "renal_function",
            "quantity",
            "creatinine clearance when known, else the eGFR read in mL/min (as the rules do)",
            "renal_clearance",
            "mL/min",
        ),
        CheckField("qtc", "quantity", "corrected QT interval", "time", "ms"),
        CheckField("hepatic_impairment", "text", "none, mild, moderate or severe"),
        CheckField("opioid_tolerant", "bool", "opioid tolerant (true/false)"),
        CheckField(
            "medications",
            "names",
            "the patient's other medicines (names); unknown when not recorded, [] = none",
        ),
        CheckField(
            "anticoagulant",
            "presence",
            "an anticoagulant is taken (present) or recorded as 'none' (absent); unknown when "
            "not recorded",
        ),
        CheckField("anticoagulant.drug", "text", "the anticoagulant's name"),
        CheckField("anticoagulant.dose", "quantity", "the anticoagulant dose", "mass", "mg"),
        CheckField("anticoagulant.every", "quantity", "the anticoagulant interval", "time", "h"),
        CheckField(
            "anticoagulant.last_dose_ago",
            "quantity",
            "time since the last anticoagulant dose",
            "time",
            "h",
        ),
        CheckField(
            "current_ome",
            "quantity",
            "daily oral morphine equivalent of the current regimen (the protocol's ome_table)",
            "ome_rate",
            "MME/day",
        ),
        CheckField("current_opioid", "bool", "the current regimen has an opioid step"),
        CheckField(
            "current_strong_opioid", "bool", "the current regimen has a regular strong opioid"
        ),
        CheckField(
            "clinical",
            "clinical",
            "a clinical criterion the library cannot read; met when confirmed with "
            "choices={'confirm': [check id]}",
        ),
    )
}
_COMPARE: Final = ("<", "<=", ">", ">=", "==", "!=")
#: The operators allowed for each kind of field.
CHECK_OPS: Final[Mapping[str, tuple[str, ...]]] = {
    "quantity": (*_COMPARE, "known", "unknown"),
    "number": (*_COMPARE, "known", "unknown"),
    "text": ("==", "!=", "in", "not_in", "known", "unknown"),
    "bool": ("==", "known", "unknown"),
    "names": ("contains_any", "contains_none"),
    "presence": ("present", "absent"),
    "clinical": ("confirmed",),
}
_NO_VALUE_OPS: Final = ("known", "unknown", "present", "absent", "confirmed")
_OUTCOMES: Final = ("met", "not met", "unknown", "not applicable")


def _strs(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _meta(doc: str, **extra: Any) -> dict[str, Any]:
    return {"doc": doc, **extra}


@attrs.define(frozen=True, kw_only=True)
class Check:
    """One declarative check on the patient or the current regimen.

    ``{ field = "qtc", op = "<", value = "450 ms", text = "QTc below 450 ms" }``: the check is
    *met*, *not met* or *unknown* (the fact is missing); with ``when`` guards that are not met it
    is *not applicable*.  ``if_unknown`` turns an unknown into ``met`` or ``not met`` when the
    protocol says so ("QTc known and < 450 ms" is ``if_unknown = "not met"``).  A comparison with
    an absent value (recorded as taking no anticoagulant) is not met; an anticoagulant status or
    medicine list that is not recorded is unknown.

    Built by :func:`load_protocol`; see ``docs/protocols.md``.
    """

    field: str = attrs.field(metadata=_meta("the fact tested", enum="check_fields"))
    op: str = attrs.field(metadata=_meta("the operator", enum="check_ops"))
    text: str = attrs.field(metadata=_meta("the check in plain words"))
    id: str = attrs.field(default="", metadata=_meta("an id (required for clinical checks)"))
    value: Any = attrs.field(
        default=None,
        eq=False,
        metadata=_meta("the value compared with: a quantity text, number, text, list or bool"),
    )
    source: str = attrs.field(default="", metadata=_meta("source id of a number in the check"))
    level: str = attrs.field(default="", metadata=_meta("verification level", enum="levels"))
    if_unknown: str = attrs.field(
        default="unknown", metadata=_meta("outcome when the fact is missing", enum="if_unknown")
    )
    when: tuple[Check, ...] = attrs.field(
        default=(), metadata=_meta("guards: the check applies only when all are met")
    )
    threshold: float | None = attrs.field(default=None, metadata={"schema": False})
    options: tuple[str, ...] = attrs.field(default=(), metadata={"schema": False})

    def evaluate(self, facts: _Facts, group: str = "eligibility") -> CheckResult:
        """The outcome of the check on ``facts`` (see :class:`CheckResult`)."""
        return _evaluate(self, facts, group)

    @property
    def value_text(self) -> str:
        """The value as written (``'450 ms'``), or ``''``."""
        v = self.value
        if v is None:
            return ""
        if _units.is_quantity(v):
            return _units.format_quantity(v)
        if isinstance(v, tuple | list):
            return ", ".join(str(x) for x in v)
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    def describe(self) -> str:
        """``'qtc < 450 ms'``: the check in its declarative form."""
        value = self.value_text
        return f"{self.field} {self.op}{' ' + value if value else ''}"


@attrs.define(frozen=True)
class CheckResult:
    """The outcome of one check: ``met``, ``not met``, ``unknown`` or ``not applicable``.

    ``group`` says what the check is for: ``eligibility``, ``contraindication``, ``caution``, or
    (for a step) ``when`` and ``requires``; ``observed`` is the fact as found (``'480 ms'``,
    ``'unknown'``); ``step`` the step template id for step checks.
    """

    check: Check
    group: str
    outcome: str
    observed: str
    step: str | None = None

    @property
    def message(self) -> str:
        """One sentence: the check, its outcome and what was observed."""
        return f"{self.check.text}: {self.outcome} (observed: {self.observed})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.check.id,
            "group": self.group,
            "step": self.step,
            "check": self.check.describe(),
            "text": self.check.text,
            "outcome": self.outcome,
            "observed": self.observed,
            "source": self.check.source,
            "level": self.check.level,
        }


class _Facts:
    """What checks read: the patient, the current regimen, confirmations; the OME computed once."""

    def __init__(
        self,
        patient: Patient,
        current: Regimen | None,
        confirmed: frozenset[str],
        ome_table: str,
    ) -> None:
        self.patient = patient
        self.current = current
        self.confirmed = confirmed
        self.ome_table = ome_table
        self._ome: tuple[float | None, str] | None = None
        self._tier_ome: tuple[float | None, str, tuple[str, ...]] | None = None

    def ome(self) -> tuple[float | None, str]:
        """The current regimen's daily OME in MME/day (or ``None``) and how it was obtained."""
        if self._ome is None:
            if self.current is None:
                self._ome = (None, "no current regimen was given")
            else:
                self._ome = _daily_ome(self.current, self.ome_table)
        return self._ome

    def tier_ome(self) -> tuple[float | None, str, tuple[str, ...]]:
        """The OME a methadone starting tier is chosen from: ``(MME/day or None, how, receipt)``.

        Only the current opioids other than methadone count, at the doses in force on plan
        day 0: methadone already given is not converted (its factor is an estimate, never a
        basis to dose methadone), and a later titration peak is not yet taken.
        """
        if self._tier_ome is None:
            if self.current is None:
                self._tier_ome = (None, "no current regimen was given", ())
            else:
                self._tier_ome = _tier_ome(self.current, self.ome_table)
        return self._tier_ome

    def get(self, name: str) -> tuple[str, Any, str]:
        """``(state, value, observed text)``; state is ``known``, ``unknown`` or ``absent``."""
        p = self.patient
        spec = CHECK_FIELDS[name]
        if name == "renal_function":
            rf = p.renal_function
            if rf is None:
                return "unknown", None, "unknown"
            return "known", rf[0], f"{_num(rf[0])} mL/min ({rf[1]})"
        if name.startswith("anticoagulant"):
            ac = p.anticoagulant
            if ac is None:
                return "unknown", None, "anticoagulant status not recorded"
            if ac == "none":
                return "absent", None, "no anticoagulant (recorded)"
            if name == "anticoagulant":
                return "known", ac.drug, ac.drug
            attr = name.split(".", 1)[1]
            if attr == "drug":
                return "known", ac.drug, ac.drug
            value = getattr(ac, {"dose": "dose_mg", "every": "every_h"}.get(attr, "last_dose_h"))
            if value is None:
                return "unknown", None, "unknown"
            return "known", value, f"{_num(value)} {spec.unit}"
        if name.startswith("current_"):
            return self._current(name)
        attr = {
            "weight": "weight_kg",
            "height": "height_cm",
            "egfr": "egfr_ml_min_173",
            "creatinine_clearance": "crcl_ml_min",
            "qtc": "qtc_ms",
        }.get(name, name)
        value = getattr(p, attr)
        if name == "medications":
            if value is None:
                return "unknown", None, "not recorded"
            return "known", value, ", ".join(value) or "none (recorded)"
        if value is None:
            return "unknown", None, "unknown"
        if spec.kind == "quantity":
            unit = "mL/min/1.73m2" if name == "egfr" else spec.unit
            return "known", value, f"{_num(value)} {unit}"
        if spec.kind == "bool":
            return "known", value, "true" if value else "false"
        if spec.kind == "number":
            return "known", value, _num(value)
        return "known", value, str(value)

    def _current(self, name: str) -> tuple[str, Any, str]:
        if self.current is None:
            return "unknown", None, "unknown (no current regimen given)"
        if name == "current_ome":
            value, how = self.ome()
            if value is None:
                return "unknown", None, f"unknown ({how})"
            return "known", value, f"{_num(value)} MME/day ({how})"
        steps: list[Any] = [s for s in self.current if s.kind in ("opioid", "methadone_adjuvant")]
        if name == "current_strong_opioid":
            steps = [s for s in steps if not s.prn and _catalog.drug(s.drug).strong_opioid]
        found = bool(steps)
        text = "; ".join(s.describe() for s in steps) if steps else "none"
        return "known", found, text


def _qtext(q: Any) -> str:
    """A quantity as clinical text, with days and weeks in the plural: ``'7 days'``."""
    text = _units.format_quantity(q)
    number, _sep, unit = text.partition(" ")
    if unit in ("day", "week") and number != "1":
        return f"{number} {unit}s"
    return text


def _num(x: float) -> str:
    """A number for people: a whole number as is, else 4 significant digits (one decimal from
    1000 up), never in exponent form: ``33.3333 → '33.33'``, ``1374.31 → '1374.3'``."""
    if abs(x - round(x)) < 1e-9 * max(1.0, abs(x)):
        return str(round(x))
    if abs(x) >= 1000:
        text = f"{x:.1f}"
        return text[:-2] if text.endswith(".0") else text
    text = f"{x:.4g}"
    if "e" in text:  # below 0.0001: 4 significant digits as a plain decimal
        places = 3 - math.floor(math.log10(abs(x)))
        text = f"{x:.{places}f}".rstrip("0")
    return text


#: A decimal number standing alone in running text (not part of a DOI, version or identifier).
_DECIMAL: Final = re.compile(r"(?<![\w./])(\d+)\.(\d+)(?![\w/]|\.\d)")


def _significant(whole: str, decimals: str) -> int:
    whole = whole.lstrip("0")
    return len(whole) + len(decimals) if whole else len(decimals.lstrip("0"))


def _human(text: str) -> str:
    """Rewrite the long decimals of a text (often from a receipt) for people, as :func:`_num`:
    ``'33.3333 mg' → '33.33 mg'``; numbers of 4 significant digits or one decimal are kept.

    >>> _human("morphine oral 33.3333 mg per dose, 1374.3 mg/day, 0.2 %, doi 10.1089/jpm.2014")
    'morphine oral 33.33 mg per dose, 1374.3 mg/day, 0.2 %, doi 10.1089/jpm.2014'
    """
    if "." not in text:
        return text

    def fix(match: re.Match[str]) -> str:
        whole, decimals = match.group(1), match.group(2)
        if len(decimals) <= 1 or _significant(whole, decimals) <= 4:
            return match.group(0)
        return _num(float(match.group(0)))

    return _DECIMAL.sub(fix, text)


def _compare(op: str, a: float, b: float) -> bool:
    tol = _TOL * max(1.0, abs(b))
    if op == "<":
        return a < b - tol
    if op == "<=":
        return a <= b + tol
    if op == ">":
        return a > b + tol
    if op == ">=":
        return a >= b - tol
    if op == "==":
        return abs(a - b) <= tol
    return abs(a - b) > tol  # "!="


def _raw_outcome(check: Check, facts: _Facts) -> tuple[str, str]:
    """The outcome before ``if_unknown`` and guards: ``(outcome, observed)``."""
    spec = CHECK_FIELDS[check.field]
    op = check.op
    if spec.kind == "clinical":
        if check.id in facts.confirmed:
            return "met", "confirmed"
        return "unknown", "not confirmed (pass choices={'confirm': [" + repr(check.id) + "]})"
    state, value, observed = facts.get(check.field)
    if op == "known":
        return ("met" if state == "known" else "not met"), observed
    if op == "unknown":
        return ("met" if state == "unknown" else "not met"), observed
    if state == "unknown":
        return "unknown", observed
    if op == "present":
        return ("met" if state == "known" else "not met"), observed
    if op == "absent":
        return ("met" if state == "absent" else "not met"), observed
    if state == "absent":
        return "not met", observed
    if op == "contains_any":
        hit = [m for m in value if m in check.options]
        return ("met" if hit else "not met"), (", ".join(hit) if hit else observed)
    if op == "contains_none":
        hit = [m for m in value if m in check.options]
        return ("not met" if hit else "met"), (", ".join(hit) if hit else observed)
    if spec.kind in ("quantity", "number"):
        assert check.threshold is not None
        return ("met" if _compare(op, float(value), check.threshold) else "not met"), observed
    if spec.kind == "bool":
        return ("met" if bool(value) is bool(check.value) else "not met"), observed
    text = str(value).casefold()
    if op == "==":
        ok = text == str(check.value).casefold()
    elif op == "!=":
        ok = text != str(check.value).casefold()
    elif op == "in":
        ok = text in check.options
    else:
        ok = text not in check.options
    return ("met" if ok else "not met"), observed


def _evaluate(check: Check, facts: _Facts, group: str, step: str | None = None) -> CheckResult:
    guard_unknown = ""
    for guard in check.when:
        g, observed = _raw_outcome(guard, facts)
        if g == "unknown" and guard.if_unknown != "unknown":
            g = guard.if_unknown
        if g == "not met":
            return CheckResult(
                check, group, "not applicable", f"{guard.describe()}: {observed}", step
            )
        if g == "unknown":
            guard_unknown = f"{guard.describe()}: {observed}"
    outcome, observed = _raw_outcome(check, facts)
    if outcome == "unknown" and check.if_unknown != "unknown":
        outcome = check.if_unknown
    if guard_unknown:
        # A guard could not be read: the result stands only when it is harmless either way.
        good = "met" if group in ("eligibility", "requires", "when") else "not met"
        if outcome != good:
            outcome = "unknown"
            observed = f"{observed}; cannot tell whether it applies ({guard_unknown})"
    return CheckResult(check, group, outcome, observed, step)


# ---- the model ----------------------------------------------------------------------------------


@attrs.define(frozen=True, kw_only=True)
class Evidence:
    """The evidence behind a protocol: a level (:data:`EVIDENCE_LEVELS`), a summary, sources."""

    level: str = attrs.field(metadata=_meta("evidence level", enum="evidence_levels"))
    summary: str = attrs.field(metadata=_meta("what the evidence is, in words"))
    sources: tuple[str, ...] = attrs.field(default=(), metadata=_meta("source ids"))


@attrs.define(frozen=True, kw_only=True)
class Phase:
    """An ordered phase of a protocol (its steps are the templates whose ``phase`` is its id)."""

    id: str = attrs.field(metadata=_meta("phase id"))
    title: str = attrs.field(metadata=_meta("phase title"))
    purpose: str = attrs.field(default="", metadata=_meta("what the phase is for"))


@attrs.define(frozen=True, kw_only=True)
class DoseRange:
    """The range a step's dose must stay in: per dose (mg), per day (mg/day), a bolus volume
    (mL) or an infusion rate (mL/h), with its source and level."""

    min: Any = attrs.field(default=None, eq=False, metadata=_meta("lower end", quantity=True))
    max: Any = attrs.field(default=None, eq=False, metadata=_meta("upper end", quantity=True))
    source: str = attrs.field(default="", metadata=_meta("source id"))
    level: str = attrs.field(default="", metadata=_meta("verification level", enum="levels"))
    note: str = attrs.field(default="", metadata=_meta("how the range was read"))
    dimension: str = attrs.field(default="", metadata={"schema": False})
    min_value: float | None = attrs.field(default=None, metadata={"schema": False})
    max_value: float | None = attrs.field(default=None, metadata={"schema": False})

    @property
    def text(self) -> str:
        """``'15 mg/day to 30 mg/day'``, ``'at most 80 mg/day'``."""
        lo = _units.format_quantity(self.min) if self.min is not None else ""
        hi = _units.format_quantity(self.max) if self.max is not None else ""
        if lo and hi:
            return f"{lo} to {hi}"
        return f"at least {lo}" if lo else f"at most {hi}"


@attrs.define(frozen=True, kw_only=True)
class StartRule:
    """How the starting dose is chosen (:data:`START_METHODS`).

    ``fixed``: the step's own values; ``per_kg``: ``per_kg`` × weight into ``field``;
    ``from_ome``: methadone from the current daily OME by a named ``scheme``; ``current``: the
    patient's current step of this kind continues (no new step).
    """

    method: str = attrs.field(default="fixed", metadata=_meta("method", enum="start_methods"))
    per_kg: Any = attrs.field(
        default=None, eq=False, metadata=_meta("amount per kg", dimension="volume_per_mass")
    )
    field: str = attrs.field(default="", metadata=_meta("step field set by per_kg"))
    scheme: str = attrs.field(default="", metadata=_meta("methadone scheme for from_ome"))
    source: str = attrs.field(default="", metadata=_meta("source id"))
    level: str = attrs.field(default="", metadata=_meta("verification level", enum="levels"))
    note: str = attrs.field(default="", metadata=_meta("note"))
    per_kg_value: float | None = attrs.field(default=None, metadata={"schema": False})


@attrs.define(frozen=True, kw_only=True)
class TitrationRule:
    """Titration: ``step`` (per dose, or per day), the minimum ``interval`` between changes, and
    the ``ceiling`` (per dose or per day).  Without a step size no titration is scheduled: the
    interval and ceiling are then stated as rules."""

    step: Any = attrs.field(default=None, eq=False, metadata=_meta("increase", quantity=True))
    interval: Any = attrs.field(
        default=None, eq=False, metadata=_meta("least time between changes", dimension="time")
    )
    ceiling: Any = attrs.field(default=None, eq=False, metadata=_meta("ceiling", quantity=True))
    source: str = attrs.field(default="", metadata=_meta("source id"))
    level: str = attrs.field(default="", metadata=_meta("verification level", enum="levels"))
    note: str = attrs.field(default="", metadata=_meta("note"))
    step_value: float | None = attrs.field(default=None, metadata={"schema": False})
    step_dimension: str = attrs.field(default="", metadata={"schema": False})
    interval_days: int | None = attrs.field(default=None, metadata={"schema": False})
    ceiling_value: float | None = attrs.field(default=None, metadata={"schema": False})
    ceiling_dimension: str = attrs.field(default="", metadata={"schema": False})


@attrs.define(frozen=True, kw_only=True)
class Monitoring:
    """What to watch (:data:`MONITORING_KINDS`) and when: in words, and where the reference gives
    numbers, from/until a time after the step starts or when the daily dose reaches a value."""

    what: str = attrs.field(metadata=_meta("what to watch", enum="monitoring_kinds"))
    when: str = attrs.field(metadata=_meta("when, in words"))
    from_start: Any = attrs.field(
        default=None, eq=False, metadata=_meta("time after the step starts", dimension="time")
    )
    until: Any = attrs.field(
        default=None, eq=False, metadata=_meta("end of the window after start", dimension="time")
    )
    at_daily_dose: Any = attrs.field(
        default=None, eq=False, metadata=_meta("daily dose that triggers it", dimension="mass_rate")
    )
    source: str = attrs.field(default="", metadata=_meta("source id"))
    level: str = attrs.field(default="", metadata=_meta("verification level", enum="levels"))
    from_day: int | None = attrs.field(default=None, metadata={"schema": False})
    until_day: int | None = attrs.field(default=None, metadata={"schema": False})
    at_daily_mg: float | None = attrs.field(default=None, metadata={"schema": False})


@attrs.define(frozen=True, kw_only=True)
class Deescalation:
    """When and how to step down: a trigger, an action on a target (a step id, or ``opioid`` for
    the regular opioid), and a reduction only when the reference gives one."""

    trigger: str = attrs.field(metadata=_meta("what triggers it"))
    action: str = attrs.field(metadata=_meta("what to do"))
    target: str = attrs.field(default="", metadata=_meta("a step id, or 'opioid'"))
    reduce_by_percent: tuple[float, ...] = attrs.field(
        default=(), metadata=_meta("reduction in percent (one number or a range of two)")
    )
    after: Any = attrs.field(
        default=None, eq=False, metadata=_meta("time after the step starts", dimension="time")
    )
    source: str = attrs.field(default="", metadata=_meta("source id"))
    level: str = attrs.field(default="", metadata=_meta("verification level", enum="levels"))
    note: str = attrs.field(default="", metadata=_meta("note"))

    @property
    def text(self) -> str:
        """The de-escalation rule in one sentence."""
        out = f"{self.trigger}: {self.action}"
        if self.reduce_by_percent:
            pct = "–".join(_num(p) for p in self.reduce_by_percent)
            out += f" (by {pct} %)"
        if self.after is not None:
            out += f" (after {_qtext(self.after)})"
        return out


@attrs.define(frozen=True, kw_only=True)
class Duration:
    """A planned course length (steps themselves have no stop day: the plan states it)."""

    value: Any = attrs.field(eq=False, metadata=_meta("course length", dimension="time"))
    source: str = attrs.field(default="", metadata=_meta("source id"))
    level: str = attrs.field(default="", metadata=_meta("verification level", enum="levels"))
    note: str = attrs.field(default="", metadata=_meta("note"))


@attrs.define(frozen=True, kw_only=True)
class Escalation:
    """When to escalate and to what (other protocol ids)."""

    when: str = attrs.field(metadata=_meta("when to escalate"))
    action: str = attrs.field(metadata=_meta("what to do"))
    to: tuple[str, ...] = attrs.field(default=(), metadata=_meta("protocol ids"))
    source: str = attrs.field(default="", metadata=_meta("source id"))
    level: str = attrs.field(default="", metadata=_meta("verification level", enum="levels"))


@attrs.define(frozen=True, kw_only=True)
class StepTemplate:
    """A step of a protocol, before it meets a patient.

    ``fields`` holds the step's fixed values (keys are the attrs field names of the step class
    of ``kind``; written flat in the ``[[step]]`` table).  ``kind = "action"`` is an instruction
    with no regimen step (for example "arrange radiotherapy").
    """

    id: str = attrs.field(metadata=_meta("step id (unique in the protocol)"))
    phase: str = attrs.field(metadata=_meta("the phase id"))
    kind: str = attrs.field(metadata=_meta("step kind, or 'action'", enum="template_kinds"))
    title: str = attrs.field(metadata=_meta("short title"))
    purpose: str = attrs.field(default="", metadata=_meta("why (required for actions)"))
    sources: tuple[str, ...] = attrs.field(default=(), metadata=_meta("source ids of the step"))
    level: str = attrs.field(
        default="", metadata=_meta("level of the step's own values", enum="levels")
    )
    choice: str = attrs.field(default="", metadata=_meta("choice group it is an option of"))
    default: bool = attrs.field(default=False, metadata=_meta("the group's default option"))
    when: tuple[Check, ...] = attrs.field(default=(), metadata=_meta("applies only when met"))
    requires: tuple[Check, ...] = attrs.field(
        default=(), metadata=_meta("safety requirements: omitted when not met")
    )
    if_unknown: str = attrs.field(
        default="exclude", metadata=_meta("a 'when' that cannot be read", enum="include_exclude")
    )
    dose_range: DoseRange | None = attrs.field(default=None, metadata=_meta("dose range"))
    start: StartRule = attrs.field(factory=StartRule, metadata=_meta("starting dose"))
    titration: TitrationRule | None = attrs.field(default=None, metadata=_meta("titration"))
    monitoring: tuple[Monitoring, ...] = attrs.field(default=(), metadata=_meta("monitoring"))
    after: tuple[str, ...] = attrs.field(default=(), metadata=_meta("starts after these steps"))
    together_with: tuple[str, ...] = attrs.field(
        default=(), metadata=_meta("starts with these steps")
    )
    deescalation: tuple[Deescalation, ...] = attrs.field(
        default=(), metadata=_meta("de-escalation")
    )
    duration: Duration | None = attrs.field(default=None, metadata=_meta("course length"))
    compute: str = attrs.field(
        default="", metadata=_meta("what an action computes for the receipt", enum="compute")
    )
    fields: Mapping[str, Any] = attrs.field(
        factory=dict, eq=False, hash=False, metadata={"schema": False}
    )

    @property
    def is_action(self) -> bool:
        """True for an instruction with no regimen step."""
        return self.kind == "action"

    @property
    def needs_side(self) -> bool:
        """True when the step needs the side of the psoas involvement (``choices['side']``)."""
        if self.kind == "psoas_compartment_block" and self.fields.get("side", "{side}") == "{side}":
            return True
        return any(isinstance(v, str) and "{side}" in v for v in self.fields.values())


@attrs.define(frozen=True, kw_only=True)
class Protocol(Renderable):
    """A reusable protocol: metadata, checks, phases and step templates (see the module doc).

    Example
    -------
    >>> from mps_analgesia.protocols import load_protocol
    >>> p = load_protocol("takase-2015-methadone-adjuvant")
    >>> p.status, p.evidence.level
    ('draft', 'case-reports-and-series')
    """

    id: str = attrs.field(metadata=_meta("protocol id (the file name without .toml)"))
    title: str = attrs.field(metadata=_meta("title"))
    version: str = attrs.field(metadata=_meta("version, e.g. '0.1.0'"))
    status: str = attrs.field(metadata=_meta("status", enum="statuses"))
    evidence: Evidence = attrs.field(metadata=_meta("the evidence"))
    indication: str = attrs.field(metadata=_meta("indication"))
    summary: str = attrs.field(default="", metadata=_meta("summary"))
    superseded_by: str = attrs.field(default="", metadata=_meta("id of the replacing protocol"))
    sources: tuple[str, ...] = attrs.field(default=(), metadata=_meta("key source ids"))
    ome_table: str = attrs.field(
        default="cdc-2022", metadata=_meta("OME table for current_ome and from_ome")
    )
    phase: tuple[Phase, ...] = attrs.field(default=(), metadata=_meta("ordered phases"))
    eligibility: tuple[Check, ...] = attrs.field(default=(), metadata=_meta("must be met"))
    contraindication: tuple[Check, ...] = attrs.field(default=(), metadata=_meta("must not be met"))
    caution: tuple[Check, ...] = attrs.field(default=(), metadata=_meta("reported when met"))
    step: tuple[StepTemplate, ...] = attrs.field(default=(), metadata=_meta("step templates"))
    escalation: tuple[Escalation, ...] = attrs.field(default=(), metadata=_meta("escalation"))
    path: str = attrs.field(default="", eq=False, metadata={"schema": False})

    @property
    def phases(self) -> tuple[Phase, ...]:
        """The ordered phases."""
        return self.phase

    @property
    def steps(self) -> tuple[StepTemplate, ...]:
        """The step templates in phase order (file order within a phase)."""
        order = {ph.id: i for i, ph in enumerate(self.phase)}
        return tuple(sorted(self.step, key=lambda s: order.get(s.phase, len(order))))

    @property
    def contraindications(self) -> tuple[Check, ...]:
        """The contraindication checks."""
        return self.contraindication

    @property
    def cautions(self) -> tuple[Check, ...]:
        """The caution checks."""
        return self.caution

    def steps_of(self, phase_id: str) -> tuple[StepTemplate, ...]:
        """The step templates of one phase, in file order."""
        return tuple(s for s in self.step if s.phase == phase_id)

    def get_step(self, step_id: str) -> StepTemplate:
        """The step template with this id (:class:`UnknownNameError` with suggestions)."""
        for s in self.step:
            if s.id == step_id:
                return s
        ids = [s.id for s in self.step]
        raise UnknownNameError("protocol step", step_id, difflib.get_close_matches(step_id, ids))

    @property
    def choice_groups(self) -> Mapping[str, tuple[str, ...]]:
        """Each choice group with the ids of its options (the default first)."""
        groups: dict[str, list[str]] = {}
        for s in self.step:
            if s.choice:
                groups.setdefault(s.choice, [])
                if s.default:
                    groups[s.choice].insert(0, s.id)
                else:
                    groups[s.choice].append(s.id)
        return {k: tuple(v) for k, v in groups.items()}

    @property
    def source_ids(self) -> tuple[str, ...]:
        """Every source id the protocol cites, in first-use order."""
        seen: dict[str, None] = dict.fromkeys(self.sources)
        seen.update(dict.fromkeys(self.evidence.sources))
        for c in (*self.eligibility, *self.contraindication, *self.caution):
            if c.source:
                seen[c.source] = None
        for s in self.step:
            seen.update(dict.fromkeys(s.sources))
            for item in (s.dose_range, s.start, s.titration, s.duration, *s.monitoring):
                src = getattr(item, "source", "")
                if src:
                    seen[src] = None
            for c in (*s.when, *s.requires):
                if c.source:
                    seen[c.source] = None
            for d in s.deescalation:
                if d.source:
                    seen[d.source] = None
        for e in self.escalation:
            if e.source:
                seen[e.source] = None
        return tuple(seen)

    def instantiate(
        self,
        patient: Patient,
        current_regimen: Regimen | Iterable[Step] | None = None,
        choices: Mapping[str, Any] | None = None,
    ) -> InstantiatedPlan:
        """Make the plan for one patient: a regimen over days and the receipt of decisions.

        Parameters
        ----------
        patient:
            The patient.  Missing values make checks *unknown*, which is reported.
        current_regimen:
            The patient's current steps (kept in the plan, first).  ``None`` means not known
            (checks on it are unknown); an empty regimen means none.  A drug the current
            regimen already gives is never added again: the template's decision keeps the
            current step for review against the template's range, with its daily dose.
        choices:
            ``{"side": "left"}`` (needed by blocks and radiotherapy sites), ``{"confirm":
            [clinical check ids]}``, and for each choice group the id of the option wanted
            (``{"schedule": "rt-20-gy-5"}``); an unchosen group takes its default.

        Raises
        ------
        ProtocolError
            An unknown choice, or a needed choice (the side) that is missing.

        Example
        -------
        >>> import mps_analgesia as mps
        >>> from mps_analgesia.protocols import load_protocol
        >>> p = load_protocol("astro-2017-palliative-radiotherapy")
        >>> plan = p.instantiate(mps.Patient(age=70), mps.Regimen([]),
        ...                      {"side": "left", "schedule": "rt-20-gy-5"})
        >>> [s.describe() for s in plan.regimen if s.kind == "radiotherapy"]
        ['radiotherapy to left psoas: 20 Gy in 5 fractions']
        """
        return _instantiate(self, patient, current_regimen, choices)


# ---- instantiated plans -------------------------------------------------------------------------


@attrs.define(frozen=True)
class Decision:
    """One decision of the receipt: what was decided (:data:`DECISION_ACTIONS`), why, on what.

    ``step`` is the step template id (``None`` for the plan as a whole); ``arithmetic`` shows the
    calculation with units; ``sources`` and ``level`` the evidence it rests on.  Long decimals in
    the message and the arithmetic are written for people (at most 4 significant digits, or one
    decimal): ``33.3333 mg`` reads ``33.33 mg``.
    """

    action: str
    message: str = attrs.field(converter=_human)
    step: str | None = None
    sources: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    level: str = ""
    arithmetic: str = attrs.field(default="", converter=_human)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "action": self.action,
            "step": self.step,
            "message": self.message,
            "arithmetic": self.arithmetic,
            "sources": list(self.sources),
            "level": self.level,
        }


@attrs.define(frozen=True)
class MonitoringItem:
    """A planned check: ``what`` on plan ``day`` (to ``until_day``), or ``None`` when it is
    triggered by an event rather than a date."""

    step: str
    what: str
    when: str
    day: int | None = None
    until_day: int | None = None
    sources: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    level: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "step": self.step,
            "what": self.what,
            "when": self.when,
            "day": self.day,
            "until_day": self.until_day,
            "sources": list(self.sources),
            "level": self.level,
        }


@attrs.define(frozen=True)
class InstantiatedPlan(Renderable):
    """A protocol made for one patient: the regimen, the checks, the decisions (the receipt).

    Attributes
    ----------
    protocol:
        The protocol it came from.
    patient:
        The patient.
    regimen:
        The plan: the current steps first (continued), then the protocol's steps with their
        start days and titration.
    step_ids:
        For each regimen step, the template id it came from (``current[i]`` for current steps).
    checks:
        Every eligibility, contraindication and caution check with its outcome.
    decisions:
        The receipt: every decision with its reason, arithmetic and sources.
    monitoring:
        The planned checks (ECG days, pain scores ...).
    status:
        ``eligible``, ``not eligible`` or ``undetermined`` (a check could not be read).
    choices:
        The choices used (defaults filled in).
    """

    protocol: Protocol
    patient: Patient
    regimen: Regimen
    step_ids: tuple[str, ...]
    checks: tuple[CheckResult, ...]
    decisions: tuple[Decision, ...]
    monitoring: tuple[MonitoringItem, ...]
    status: str
    choices: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    @property
    def eligible(self) -> bool | None:
        """True when eligible, False when not, None when undetermined."""
        return {"eligible": True, "not eligible": False}.get(self.status)

    @property
    def unmet(self) -> tuple[CheckResult, ...]:
        """The eligibility checks not met and the contraindications met."""
        return tuple(
            c
            for c in self.checks
            if (c.group == "eligibility" and c.outcome == "not met")
            or (c.group == "contraindication" and c.outcome == "met")
        )

    @property
    def unknown(self) -> tuple[CheckResult, ...]:
        """The checks that could not be read."""
        return tuple(c for c in self.checks if c.outcome == "unknown")

    def step_for(self, template_id: str) -> Step | None:
        """The regimen step made from a template id, or ``None``."""
        for sid, step in zip(self.step_ids, self.regimen, strict=True):
            if sid == template_id:
                return step
        return None

    def validate(self, **kwargs: Any) -> Report:
        """Check the plan's regimen for the patient with :func:`mps_analgesia.validate`."""
        from .rules import validate

        return validate(self.regimen, self.patient, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the plan and its receipt."""
        from .io import _unstructure

        return {
            "protocol": {
                "id": self.protocol.id,
                "version": self.protocol.version,
                "status": self.protocol.status,
            },
            "status": self.status,
            "choices": {
                k: (list(v) if isinstance(v, tuple) else v) for k, v in self.choices.items()
            },
            "checks": [c.to_dict() for c in self.checks],
            "steps": [
                {"from": sid, "description": s.describe(), **_unstructure(s)}
                for sid, s in zip(self.step_ids, self.regimen, strict=True)
            ],
            "decisions": [d.to_dict() for d in self.decisions],
            "monitoring": [m.to_dict() for m in self.monitoring],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The plan as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_text(self) -> str:
        """A readable receipt: status, steps, decisions, monitoring."""
        p = self.protocol
        lines = [f"{p.title} ({p.id} {p.version}, {p.status})", f"Eligibility: {self.status}"]
        for c in self.checks:
            if c.step is None and c.outcome != "not applicable":
                lines.append(f"  [{c.group}] {c.message}")
        lines.append("Plan:")
        for sid, step in zip(self.step_ids, self.regimen, strict=True):
            start = f"day {step.start_day}: " if step.start_day else ""
            lines.append(f"  {start}{step.describe()}  [{sid}]")
        lines.append("Decisions:")
        for d in self.decisions:
            where = f"{d.step}: " if d.step else ""
            src = (
                f" [{', '.join(d.sources)}{' ' + d.level if d.level else ''}]" if d.sources else ""
            )
            lines.append(f"  - {d.action}: {where}{d.message}{src}")
            if d.arithmetic:
                lines.append(f"      = {d.arithmetic}")
        if self.monitoring:
            lines.append("Monitoring:")
            for m in self.monitoring:
                day = "" if m.day is None else f"day {m.day}"
                if m.until_day is not None:
                    day += f"-{m.until_day}"
                lines.append(f"  - {m.what}: {m.when}{' (' + day + ')' if day else ''}")
        return "\n".join(lines)


# ---- adapters to the equianalgesia module -------------------------------------------------------


def _daily_ome(regimen: Regimen, table: str) -> tuple[float | None, str]:
    """The regimen's regular daily OME (MME/day) by ``table``; ``None`` with the reason."""
    from . import conversion

    try:
        result = conversion.daily_ome(regimen, table=table)
    except MpsAnalgesiaError as exc:
        return None, str(exc)
    if not result.complete:
        return None, result.text
    if result.is_range:
        return None, f"the OME is a range, {result.range.text} ({table} table)"
    return result.low_mme_per_day, f"{table} table"


def _tier_ome(regimen: Regimen, table: str) -> tuple[float | None, str, tuple[str, ...]]:
    """The day-0 OME of the opioids other than methadone (see :meth:`_Facts.tier_ome`)."""
    from . import conversion

    try:
        result = conversion.daily_ome(regimen, table=table, day=0)
    except MpsAnalgesiaError as exc:
        return None, str(exc), ()
    methadone = "methadone"
    lines = [line for line in result.lines if line.drug != methadone]
    missing = [s for s in result.not_converted if s.drug != methadone]
    left_out = sorted(
        {line.step for line in result.lines if line.drug == methadone}
        | {s.step for s in result.not_converted if s.drug == methadone}
    )
    receipt = [line.text for line in lines]
    receipt.extend(f"excluded: {s.text}" for s in result.excluded)
    receipt.extend(
        f"left out: step {i + 1} methadone (methadone already given does not count towards the "
        "tier: its factor is an estimate, not a conversion)"
        for i in left_out
    )
    how = f"{table} table, opioids other than methadone, plan day 0"
    if missing:
        return None, "not converted: " + "; ".join(s.text for s in missing), tuple(receipt)
    low = math.fsum(line.ome_low for line in lines)
    high = math.fsum(line.ome_high for line in lines)
    if abs(high - low) > _TOL * max(1.0, high):
        return (
            None,
            f"the OME is a range, {_num(low)}–{_num(high)} MME/day ({how})",
            tuple(receipt),
        )
    receipt.append(f"tier OME: {_num(low)} MME/day ({how})")
    return low, how, tuple(receipt)


def _methadone_daily(ome: float, scheme: str) -> tuple[float, str, tuple[str, ...], str]:
    """Methadone mg/day from a daily OME by a named scheme: (mg/day, arithmetic, sources, level).

    A scheme that gives a range yields its low end (the lower dose), and the arithmetic says so.
    """
    from . import conversion

    result = conversion.methadone_from_ome(
        _units.quantity_from_magnitude(ome, "MME/day"), scheme=scheme
    )
    daily = result.daily
    arithmetic = "; ".join(result.receipt[1:2])
    if daily.is_range:
        arithmetic += f"; the range {daily.text} is started at its low end"
    return daily.low, arithmetic, (result.source,), result.level


# ---- reading protocol files ---------------------------------------------------------------------


class _Reader:
    """Collects every problem of one protocol file with its key path and line."""

    def __init__(self, lines: Mapping[str, int]) -> None:
        self.lines = lines
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message, _line(self.lines, path)))

    def keys(self, data: Mapping[str, Any], path: str, allowed: Iterable[str], what: str) -> None:
        allowed = tuple(allowed)
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.add(f"{path}.{key}" if path else str(key), f"unknown key for {what}{hint}")

    def text(self, data: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str:
        value = data.get(key)
        where = f"{path}.{key}" if path else key
        if value is None:
            if required:
                self.add(where, "is required (text)")
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            self.add(where, f"must be text, not {value!r}")
            return ""
        return value.strip()

    def ident(self, data: Mapping[str, Any], key: str, path: str, *, required: bool) -> str:
        value = self.text(data, key, path, required=required)
        if value and not _ID.match(value):
            self.add(
                f"{path}.{key}" if path else key,
                f"{value!r} must be lower-case words joined by '-', e.g. 'methadone-start'",
            )
            return ""
        return value

    def choice(
        self, data: Mapping[str, Any], key: str, path: str, allowed: Sequence[str], default: str
    ) -> str:
        value = data.get(key, default)
        if value not in allowed:
            close = difflib.get_close_matches(str(value), list(allowed), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.add(
                f"{path}.{key}" if path else key,
                f"{value!r} is not one of {', '.join(allowed)}{hint}",
            )
            return default
        return str(value)

    def flag(self, data: Mapping[str, Any], key: str, path: str) -> bool:
        value = data.get(key, False)
        if not isinstance(value, bool):
            self.add(f"{path}.{key}", f"must be true or false, not {value!r}")
            return False
        return value

    def strings(self, data: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        value = data.get(key, [])
        where = f"{path}.{key}" if path else key
        if isinstance(value, str) or not isinstance(value, list):
            self.add(where, f"must be a list of texts, e.g. [{value!r}]")
            return ()
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.add(f"{where}[{i}]", f"must be text, not {item!r}")
            else:
                out.append(item.strip())
        return tuple(out)

    def source_ids(
        self, data: Mapping[str, Any], key: str, path: str, *, required: bool
    ) -> tuple[str, ...]:
        ids = self.strings(data, key, path)
        where = f"{path}.{key}" if path else key
        if required and not ids and key not in data:
            self.add(where, "is required: at least one source id from data/sources.toml")
        elif required and not ids:
            self.add(where, "must name at least one source id")
        for i, sid in enumerate(ids):
            self._known_source(sid, f"{where}[{i}]")
        return ids

    def _known_source(self, sid: str, where: str) -> bool:
        known = _catalog.sources()
        if sid in known:
            return True
        close = difflib.get_close_matches(sid, list(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        self.add(where, f"{sid!r} is not a source id in data/sources.toml{hint}")
        return False

    def provenance(self, data: Mapping[str, Any], path: str, *, required: bool) -> tuple[str, str]:
        """``source`` and ``level`` of a table; required when the table carries a number."""
        source = data.get("source")
        level = data.get("level")
        if source is None and level is None and not required:
            return "", ""
        ok_source = ""
        if source is None:
            self.add(f"{path}.source", "is required with a number: the source id it comes from")
        elif not isinstance(source, str):
            self.add(f"{path}.source", f"must be a source id, not {source!r}")
        elif self._known_source(source, f"{path}.source"):
            ok_source = source
        ok_level = ""
        if level is None:
            self.add(f"{path}.level", "is required with a number: V, S or U")
        elif level not in _catalog.LEVELS:
            self.add(f"{path}.level", f"must be V, S or U, not {level!r}")
        else:
            ok_level = str(level)
        return ok_source, ok_level

    def quantity(self, value: Any, where: str, dimensions: Sequence[str]) -> tuple[Any, str] | None:
        """Read a quantity text of one of ``dimensions``: ``(Quantity, dimension)`` or None."""
        example = _units.DIMENSIONS[dimensions[0]][1]
        if isinstance(value, (bool, int | float)):
            self.add(where, f"{value!r} has no unit; write e.g. {example!r}")
            return None
        if not isinstance(value, str):
            self.add(where, f"must be a quantity text such as {example!r}, not {value!r}")
            return None
        try:
            _number, info = _units.parse(value)
        except UnitError as exc:
            hint = f"; {exc.suggestion}" if exc.suggestion else ""
            self.add(where, f"{exc.text!r} {exc.reason}{hint}")
            return None
        dimensionality = info.unit.dimensionality
        matching = [d for d in dimensions if _units.DIMENSIONS[d][0] == dimensionality]
        if not matching:
            what = info.dimension.replace("_", " ") or info.text
            wanted = " or ".join(d.replace("_", " ") for d in dimensions)
            self.add(where, f"{value!r} is a {what}, not a {wanted}; write e.g. {example!r}")
            return None
        dim = matching[0]
        q = _units.as_quantity(value, dim)
        if not _units.magnitude_in(q, _CANONICAL[dim]) > 0:
            self.add(where, f"{value!r} must be greater than zero")
            return None
        return q, dim

    def table(self, data: Any, where: str, what: str) -> Mapping[str, Any] | None:
        if not isinstance(data, Mapping):
            self.add(where, f"must be a table ({what}), not {type(data).__name__}")
            return None
        return data

    def array(self, data: Any, where: str, what: str) -> list[Any]:
        if data is None:
            return []
        if not isinstance(data, list):
            self.add(where, f"must be an array of tables ({what})")
            return []
        return data


def _canon(q: Any, dimension: str) -> float:
    return _units.magnitude_in(q, _CANONICAL[dimension])


def _whole_days(r: _Reader, q: Any, where: str) -> int | None:
    days = _units.magnitude_in(q, "day")
    if abs(days - round(days)) > 1e-9 or round(days) < 1:
        r.add(where, f"{_units.format_quantity(q)} must be a whole number of days (at least 1)")
        return None
    return round(days)


_CHECK_KEYS: Final = ("id", "field", "op", "value", "text", "source", "level", "if_unknown", "when")


def _read_check(r: _Reader, data: Any, path: str, *, guards: bool = True) -> Check | None:
    table = r.table(data, path, "a check such as { field = 'qtc', op = '<', value = '450 ms' }")
    if table is None:
        return None
    before = len(r.problems)
    allowed = _CHECK_KEYS if guards else tuple(k for k in _CHECK_KEYS if k != "when")
    r.keys(table, path, allowed, "a check")
    cid = r.ident(table, "id", path, required=False)
    field = table.get("field")
    spec = CHECK_FIELDS.get(field) if isinstance(field, str) else None
    if spec is None:
        close = difflib.get_close_matches(str(field), list(CHECK_FIELDS), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        if field is None:
            r.add(f"{path}.field", f"is required: one of {', '.join(CHECK_FIELDS)}")
        else:
            r.add(f"{path}.field", f"{field!r} is not a field checks can read{hint}")
    text = r.text(table, "text", path, required=True)
    op = table.get("op")
    if spec is not None:
        ops = CHECK_OPS[spec.kind]
        if op not in ops:
            r.add(f"{path}.op", f"{op!r} is not an operator for {spec.name} ({', '.join(ops)})")
    if_unknown = r.choice(table, "if_unknown", path, ("unknown", "met", "not met"), "unknown")
    when: list[Check] = []
    if guards:
        for i, g in enumerate(r.array(table.get("when"), f"{path}.when", "guard checks")):
            guard = _read_check(r, g, f"{path}.when[{i}]", guards=False)
            if guard is not None:
                when.append(guard)
    value = table.get("value")
    threshold: float | None = None
    options: tuple[str, ...] = ()
    needs_number = False
    if spec is not None and isinstance(op, str) and op in CHECK_OPS[spec.kind]:
        vpath = f"{path}.value"
        if op in _NO_VALUE_OPS:
            if value is not None:
                r.add(vpath, f"the operator {op!r} takes no value")
        elif value is None:
            r.add(vpath, f"is required for the operator {op!r}")
        elif spec.kind == "quantity":
            read = r.quantity(value, vpath, (spec.dimension,))
            if read is not None:
                value = read[0]
                threshold = _units.magnitude_in(read[0], spec.unit)
            needs_number = True
        elif spec.kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                r.add(vpath, f"must be a number, not {value!r}")
            elif not math.isfinite(value):
                r.add(vpath, "must be a finite number")
            else:
                threshold = float(value)
            needs_number = True
        elif spec.kind == "bool":
            if not isinstance(value, bool):
                r.add(vpath, f"must be true or false, not {value!r}")
        elif op in ("in", "not_in", "contains_any", "contains_none"):
            if isinstance(value, str) or not isinstance(value, list) or not value:
                r.add(vpath, f"must be a list of texts for {op!r}, e.g. [{value!r}]")
            elif not all(isinstance(v, str) and v.strip() for v in value):
                r.add(vpath, "must be a list of texts")
            else:
                options = tuple(" ".join(v.split()).casefold() for v in value)
                value = tuple(value)
        elif not isinstance(value, str):
            r.add(vpath, f"must be text, not {value!r}")
    if spec is not None and spec.kind == "clinical" and not cid:
        r.add(f"{path}.id", "a clinical check needs an id (it is confirmed by that id)")
    source, level = r.provenance(table, path, required=needs_number)
    if len(r.problems) > before or spec is None:
        return None
    return Check(
        field=spec.name,
        op=str(op),
        text=text,
        id=cid or _default_id(spec.name, str(op), value),
        value=value,
        source=source,
        level=level,
        if_unknown=if_unknown,
        when=tuple(when),
        threshold=threshold,
        options=options,
    )


def _default_id(field: str, op: str, value: Any) -> str:
    text = Check(field=field, op=op, text="", value=value).describe()
    return "-".join(re.sub(r"[^a-z0-9.<>=!]+", " ", text.casefold()).split())


def _read_checks(r: _Reader, data: Any, path: str) -> tuple[Check, ...]:
    out = []
    for i, item in enumerate(r.array(data, path, "checks")):
        check = _read_check(r, item, f"{path}[{i}]")
        if check is not None:
            out.append(check)
    return tuple(out)


_TEMPLATE_KEYS: Final = (
    "id",
    "phase",
    "kind",
    "title",
    "purpose",
    "sources",
    "level",
    "choice",
    "default",
    "when",
    "requires",
    "if_unknown",
    "dose_range",
    "start",
    "titration",
    "monitoring",
    "after",
    "together_with",
    "deescalation",
    "duration",
    "compute",
)
_DRUG_KINDS: Final = ("opioid", "methadone_adjuvant", "adjuvant")
_RANGE_DIMS: Final = ("mass", "mass_rate", "volume", "volume_rate")
_PER_KG_TARGET: Final = {"mass_per_mass": "dose", "volume_per_mass": "bolus_volume"}


def _step_fields(kind: str) -> dict[str, attrs.Attribute[Any]]:
    cls = STEP_KINDS.get(kind)
    if cls is None:
        return {}
    # "duration" is the template's sourced course length (it sets the step's stop day)
    skip = ("titration", "duration")
    return {a.name: a for a in attrs.fields(cls) if a.init and a.name not in skip}


def _read_range(r: _Reader, data: Any, path: str) -> DoseRange | None:
    table = r.table(data, path, "{ min = '15 mg/day', max = '30 mg/day', source, level }")
    if table is None:
        return None
    before = len(r.problems)
    r.keys(table, path, ("min", "max", "source", "level", "note"), "a dose range")
    read: dict[str, tuple[Any, str]] = {}
    for key in ("min", "max"):
        if key in table:
            got = r.quantity(table[key], f"{path}.{key}", _RANGE_DIMS)
            if got is not None:
                read[key] = got
    if "min" not in table and "max" not in table:
        r.add(path, "needs a min, a max or both")
    dims = {d for _q, d in read.values()}
    if len(dims) > 1:
        r.add(path, "min and max must be of the same kind (both per dose, or both per day)")
    source, level = r.provenance(table, path, required=True)
    note = r.text(table, "note", path)
    if len(r.problems) > before or not read:
        return None
    dim = dims.pop()
    lo = read.get("min")
    hi = read.get("max")
    if lo is not None and hi is not None and _canon(lo[0], dim) > _canon(hi[0], dim) + _TOL:
        r.add(path, "min is above max")
        return None
    return DoseRange(
        min=lo[0] if lo else None,
        max=hi[0] if hi else None,
        source=source,
        level=level,
        note=note,
        dimension=dim,
        min_value=_canon(lo[0], dim) if lo else None,
        max_value=_canon(hi[0], dim) if hi else None,
    )


def _read_start(
    r: _Reader, data: Any, path: str, kind: str, fields: Mapping[str, Any]
) -> StartRule | None:
    table = r.table(data, path, "{ method = 'per_kg', ... }")
    if table is None:
        return None
    before = len(r.problems)
    r.keys(
        table,
        path,
        ("method", "per_kg", "field", "scheme", "source", "level", "note"),
        "a start rule",
    )
    method = r.choice(table, "method", path, START_METHODS, "fixed")
    note = r.text(table, "note", path)
    per_kg = None
    per_kg_value = None
    target = r.text(table, "field", path)
    scheme = r.text(table, "scheme", path)
    numbers = method in ("per_kg", "from_ome")
    if method == "per_kg":
        got = r.quantity(table.get("per_kg"), f"{path}.per_kg", tuple(_PER_KG_TARGET))
        if got is not None:
            per_kg, dim = got
            per_kg_value = _canon(per_kg, dim)
            expected = _PER_KG_TARGET[dim]
            if target and target != expected:
                r.add(f"{path}.field", f"a {dim.replace('_', ' ')} amount sets {expected!r}")
            target = expected
            if target not in _step_fields(kind):
                r.add(f"{path}.per_kg", f"a {kind!r} step has no {target!r} to set per kg")
    elif "per_kg" in table:
        r.add(f"{path}.per_kg", "is only used with method = 'per_kg'")
    if method == "from_ome":
        if not scheme:
            r.add(f"{path}.scheme", "is required: the named methadone conversion scheme")
        drug = str(fields.get("drug", "methadone" if kind == "methadone_adjuvant" else ""))
        if kind not in ("methadone_adjuvant", "opioid") or drug.casefold() != "methadone":
            r.add(f"{path}.method", "from_ome starts methadone only (a named methadone scheme)")
        if not any(k in fields for k in ("every", "times_per_day")):
            r.add(path, "from_ome needs the step's schedule ('every' or 'times_per_day')")
    elif scheme:
        r.add(f"{path}.scheme", "is only used with method = 'from_ome'")
    if method == "current" and kind not in _DRUG_KINDS:
        r.add(f"{path}.method", "'current' continues a drug step of the current regimen")
    source, level = r.provenance(table, path, required=numbers)
    if len(r.problems) > before:
        return None
    return StartRule(
        method=method,
        per_kg=per_kg,
        field=target,
        scheme=scheme,
        source=source,
        level=level,
        note=note,
        per_kg_value=per_kg_value,
    )


def _read_titration(r: _Reader, data: Any, path: str, kind: str) -> TitrationRule | None:
    table = r.table(data, path, "{ step = '5 mg', interval = '3 day', ceiling = '80 mg/day' }")
    if table is None:
        return None
    before = len(r.problems)
    r.keys(table, path, ("step", "interval", "ceiling", "source", "level", "note"), "titration")
    if kind not in _DRUG_KINDS:
        r.add(path, f"a {kind!r} step is not titrated")
    step = interval = ceiling = None
    step_dim = ceil_dim = ""
    days = None
    if "step" in table:
        got = r.quantity(table["step"], f"{path}.step", ("mass", "mass_rate"))
        if got is not None:
            step, step_dim = got
    if "interval" in table:
        got = r.quantity(table["interval"], f"{path}.interval", ("time",))
        if got is not None:
            interval = got[0]
            days = _whole_days(r, interval, f"{path}.interval")
    if "ceiling" in table:
        got = r.quantity(table["ceiling"], f"{path}.ceiling", ("mass", "mass_rate"))
        if got is not None:
            ceiling, ceil_dim = got
    if step is not None and interval is None:
        r.add(f"{path}.interval", "is required with a step size (the least time between steps)")
    if step is None and interval is None and ceiling is None:
        r.add(path, "needs a step, an interval or a ceiling")
    source, level = r.provenance(table, path, required=True)
    note = r.text(table, "note", path)
    if len(r.problems) > before:
        return None
    return TitrationRule(
        step=step,
        interval=interval,
        ceiling=ceiling,
        source=source,
        level=level,
        note=note,
        step_value=_canon(step, step_dim) if step is not None else None,
        step_dimension=step_dim,
        interval_days=days,
        ceiling_value=_canon(ceiling, ceil_dim) if ceiling is not None else None,
        ceiling_dimension=ceil_dim,
    )


def _read_monitoring(r: _Reader, data: Any, path: str) -> tuple[Monitoring, ...]:
    out = []
    for i, item in enumerate(r.array(data, path, "monitoring entries")):
        where = f"{path}[{i}]"
        table = r.table(item, where, "{ what = 'ecg', when = 'before the first dose' }")
        if table is None:
            continue
        before = len(r.problems)
        r.keys(
            table,
            where,
            ("what", "when", "from_start", "until", "at_daily_dose", "source", "level"),
            "a monitoring entry",
        )
        what = r.choice(table, "what", where, MONITORING_KINDS, MONITORING_KINDS[0])
        if "what" not in table:
            r.add(f"{where}.what", f"is required: one of {', '.join(MONITORING_KINDS)}")
        when = r.text(table, "when", where, required=True)
        read: dict[str, Any] = {}
        for key, dim in (("from_start", "time"), ("until", "time"), ("at_daily_dose", "mass_rate")):
            if key in table:
                if key != "at_daily_dose" and table[key] in ("0 day", "0 h"):
                    read[key] = (_units.as_quantity(table[key], "time"), 0)
                    continue
                got = r.quantity(table[key], f"{where}.{key}", (dim,))
                if got is not None:
                    days = _whole_days(r, got[0], f"{where}.{key}") if dim == "time" else None
                    read[key] = (got[0], days)
        numbers = any(k in table for k in ("from_start", "until", "at_daily_dose"))
        numbers = numbers and not all(
            table.get(k) in ("0 day", "0 h", None) for k in ("from_start", "until", "at_daily_dose")
        )
        source, level = r.provenance(table, where, required=numbers)
        if len(r.problems) > before:
            continue
        at = read.get("at_daily_dose")
        out.append(
            Monitoring(
                what=what,
                when=when,
                from_start=read["from_start"][0] if "from_start" in read else None,
                until=read["until"][0] if "until" in read else None,
                at_daily_dose=at[0] if at else None,
                source=source,
                level=level,
                from_day=read["from_start"][1] if "from_start" in read else None,
                until_day=read["until"][1] if "until" in read else None,
                at_daily_mg=_canon(at[0], "mass_rate") if at else None,
            )
        )
    return tuple(out)


def _read_deescalation(r: _Reader, data: Any, path: str) -> tuple[Deescalation, ...]:
    out = []
    for i, item in enumerate(r.array(data, path, "de-escalation rules")):
        where = f"{path}[{i}]"
        table = r.table(item, where, "{ trigger = '...', action = '...' }")
        if table is None:
            continue
        before = len(r.problems)
        r.keys(
            table,
            where,
            (
                "trigger",
                "action",
                "target",
                "reduce_by_percent",
                "after",
                "source",
                "level",
                "note",
            ),
            "a de-escalation rule",
        )
        trigger = r.text(table, "trigger", where, required=True)
        action = r.text(table, "action", where, required=True)
        target = r.text(table, "target", where)
        pct: tuple[float, ...] = ()
        if "reduce_by_percent" in table:
            raw = table["reduce_by_percent"]
            values = raw if isinstance(raw, list) else [raw]
            if not 1 <= len(values) <= 2 or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < 100
                for v in values
            ):
                r.add(
                    f"{where}.reduce_by_percent",
                    "must be a percentage between 0 and 100, or a range of two, e.g. [25, 50]",
                )
            else:
                pct = tuple(float(v) for v in values)
        after = None
        if "after" in table:
            got = r.quantity(table["after"], f"{where}.after", ("time",))
            after = got[0] if got else None
        numbers = bool(pct) or "after" in table
        source, level = r.provenance(table, where, required=numbers)
        note = r.text(table, "note", where)
        if len(r.problems) > before:
            continue
        out.append(
            Deescalation(
                trigger=trigger,
                action=action,
                target=target,
                reduce_by_percent=pct,
                after=after,
                source=source,
                level=level,
                note=note,
            )
        )
    return tuple(out)


def _read_duration(r: _Reader, data: Any, path: str) -> Duration | None:
    table = r.table(data, path, "{ value = '4 day', source, level }")
    if table is None:
        return None
    before = len(r.problems)
    r.keys(table, path, ("value", "source", "level", "note"), "a duration")
    got = r.quantity(table.get("value"), f"{path}.value", ("time",))
    source, level = r.provenance(table, path, required=True)
    note = r.text(table, "note", path)
    if len(r.problems) > before or got is None:
        return None
    return Duration(value=got[0], source=source, level=level, note=note)


def _message(exc: Exception) -> str:
    if isinstance(exc, UnitError):
        hint = f"; {exc.suggestion}" if exc.suggestion else ""
        return f"{exc.text!r} {exc.reason}{hint}"
    text = str(exc)
    field = getattr(exc, "field", "")
    return text[len(field) + 2 :] if field and text.startswith(field + ": ") else text


def _trial_kwargs(tmpl_fields: Mapping[str, Any], kind: str, start: StartRule) -> dict[str, Any]:
    """The step's fixed values with placeholders for what the start rule computes (for a trial
    construction that catches wrong drugs, routes and schedules when the file is read)."""
    kwargs = dict(tmpl_fields)
    for key, value in list(kwargs.items()):
        if isinstance(value, str) and "{side}" in value:
            kwargs[key] = value.replace("{side}", "left")
    if kind == "psoas_compartment_block":
        kwargs.setdefault("side", "left")
    if start.method == "per_kg":
        kwargs[start.field] = _units.Q(1, "mL" if start.field == "bolus_volume" else "mg")
    elif start.method == "from_ome" and "dose" not in kwargs:
        kwargs["dose"] = _units.Q(1, "mg")
    return kwargs


def _read_step(r: _Reader, data: Any, path: str) -> StepTemplate | None:
    table = r.table(data, path, "a step template with a 'kind'")
    if table is None:
        return None
    kind = table.get("kind")
    known_kinds = (*STEP_KINDS, "action")
    if kind not in known_kinds:
        close = difflib.get_close_matches(str(kind), known_kinds, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        if kind is None:
            r.add(f"{path}.kind", f"is required: one of {', '.join(known_kinds)}")
        else:
            r.add(f"{path}.kind", f"{kind!r} is not a step kind ({', '.join(known_kinds)}){hint}")
        return None
    kind = str(kind)
    before = len(r.problems)
    step_fields = _step_fields(kind)
    r.keys(table, path, (*_TEMPLATE_KEYS, *step_fields), f"a {kind!r} step template")
    sid = r.ident(table, "id", path, required=True)
    phase = r.ident(table, "phase", path, required=True)
    title = r.text(table, "title", path, required=True)
    purpose = r.text(table, "purpose", path, required=kind == "action")
    sources = r.source_ids(table, "sources", path, required=True)
    choice = r.ident(table, "choice", path, required=False)
    default = r.flag(table, "default", path)
    if default and not choice:
        r.add(f"{path}.default", "is only meaningful with a 'choice' group")
    when = _read_checks(r, table.get("when"), f"{path}.when")
    requires = _read_checks(r, table.get("requires"), f"{path}.requires")
    if_unknown = r.choice(table, "if_unknown", path, ("include", "exclude"), "exclude")
    fields: dict[str, Any] = {}
    for key, attr in step_fields.items():
        if key not in table:
            continue
        value = table[key]
        dim = attr.metadata.get("dimension")
        if dim is not None:
            got = r.quantity(value, f"{path}.{key}", (dim,))
            if got is not None:
                fields[key] = got[0]
        else:
            fields[key] = value
    start = StartRule()
    if "start" in table:
        got_start = _read_start(r, table["start"], f"{path}.start", kind, fields)
        if got_start is not None:
            start = got_start
    if kind == "action" and "start" in table:
        r.add(f"{path}.start", "an action has no dose")
    is_current = start.method == "current"
    level_required = kind != "action" and not is_current
    level = table.get("level")
    if level is None:
        if level_required:
            r.add(f"{path}.level", "is required: the level (V, S, U) of the step's own values")
        level = ""
    elif level not in _catalog.LEVELS:
        r.add(f"{path}.level", f"must be V, S or U, not {level!r}")
        level = ""
    dose_range = (
        _read_range(r, table["dose_range"], f"{path}.dose_range") if "dose_range" in table else None
    )
    titration = (
        _read_titration(r, table["titration"], f"{path}.titration", kind)
        if "titration" in table
        else None
    )
    monitoring = _read_monitoring(r, table.get("monitoring"), f"{path}.monitoring")
    deescalation = _read_deescalation(r, table.get("deescalation"), f"{path}.deescalation")
    duration = (
        _read_duration(r, table["duration"], f"{path}.duration") if "duration" in table else None
    )
    after = r.strings(table, "after", path)
    together = r.strings(table, "together_with", path)
    compute = ""
    if "compute" in table:
        compute = r.choice(table, "compute", path, COMPUTE_KINDS, "")
        if kind != "action":
            r.add(f"{path}.compute", "only an 'action' step computes for the receipt")
    if len(r.problems) > before:
        return None
    if kind != "action" and not is_current:
        try:
            STEP_KINDS[kind](**_trial_kwargs(fields, kind, start))
        except (StepError, UnitError, UnknownNameError) as exc:
            field = getattr(exc, "field", "") or ""
            r.add(f"{path}.{field}" if field else path, _message(exc))
            return None
        except TypeError as exc:
            r.add(path, f"missing or wrong keys: {exc}")
            return None
    return StepTemplate(
        id=sid,
        phase=phase,
        kind=kind,
        title=title,
        purpose=purpose,
        sources=sources,
        level=str(level),
        choice=choice,
        default=default,
        when=when,
        requires=requires,
        if_unknown=if_unknown,
        dose_range=dose_range,
        start=start,
        titration=titration,
        monitoring=monitoring,
        after=after,
        together_with=together,
        deescalation=deescalation,
        duration=duration,
        compute=compute,
        fields=fields,
    )


_TOP_KEYS: Final = (
    "$schema",
    "id",
    "title",
    "version",
    "status",
    "superseded_by",
    "evidence",
    "indication",
    "summary",
    "sources",
    "ome_table",
    "phase",
    "eligibility",
    "contraindication",
    "caution",
    "step",
    "escalation",
)


def _read_evidence(r: _Reader, data: Any) -> Evidence | None:
    if data is None:
        r.add("evidence", "is required: { level = 'case-reports-and-series', summary = '...' }")
        return None
    table = r.table(data, "evidence", "{ level, summary, sources }")
    if table is None:
        return None
    before = len(r.problems)
    r.keys(table, "evidence", ("level", "summary", "sources"), "the evidence table")
    level = r.choice(table, "level", "evidence", EVIDENCE_LEVELS, EVIDENCE_LEVELS[0])
    if "level" not in table:
        r.add("evidence.level", f"is required: one of {', '.join(EVIDENCE_LEVELS)}")
    summary = r.text(table, "summary", "evidence", required=True)
    sources = r.source_ids(table, "sources", "evidence", required=True)
    if len(r.problems) > before:
        return None
    return Evidence(level=level, summary=summary, sources=sources)


def _read_escalation(r: _Reader, data: Any) -> tuple[Escalation, ...]:
    out = []
    for i, item in enumerate(r.array(data, "escalation", "escalation rules")):
        where = f"escalation[{i}]"
        table = r.table(item, where, "{ when, action, to }")
        if table is None:
            continue
        before = len(r.problems)
        r.keys(table, where, ("when", "action", "to", "source", "level"), "an escalation rule")
        when = r.text(table, "when", where, required=True)
        action = r.text(table, "action", where, required=True)
        to = r.strings(table, "to", where)
        for j, pid in enumerate(to):
            if not _ID.match(pid):
                r.add(f"{where}.to[{j}]", f"{pid!r} is not a protocol id")
        source, level = r.provenance(table, where, required=False)
        if len(r.problems) > before:
            continue
        out.append(Escalation(when=when, action=action, to=to, source=source, level=level))
    return tuple(out)


@attrs.define(frozen=True)
class _StepRef:
    """What the cross-references of one raw ``[[step]]`` table name (read even when the table
    has other problems, so that every problem is reported at once)."""

    index: int
    id: str
    phase: str
    refs: tuple[tuple[str, int, str], ...]
    targets: tuple[tuple[int, str], ...]
    choice: str
    default: bool
    has_when: bool


def _raw_text(table: Mapping[str, Any], key: str) -> str:
    value = table.get(key)
    return value if isinstance(value, str) and _ID.match(value) else ""


def _step_refs(raw_steps: Sequence[Any]) -> list[_StepRef]:
    out = []
    for i, table in enumerate(raw_steps):
        if not isinstance(table, Mapping):
            continue
        refs: list[tuple[str, int, str]] = []
        for key in ("after", "together_with"):
            values = table.get(key)
            if isinstance(values, list):
                refs.extend((key, j, v) for j, v in enumerate(values) if isinstance(v, str))
        targets: list[tuple[int, str]] = []
        deesc = table.get("deescalation")
        if isinstance(deesc, list):
            for j, d in enumerate(deesc):
                if isinstance(d, Mapping) and isinstance(d.get("target"), str) and d["target"]:
                    targets.append((j, str(d["target"])))
        out.append(
            _StepRef(
                i,
                _raw_text(table, "id"),
                _raw_text(table, "phase"),
                tuple(refs),
                tuple(targets),
                _raw_text(table, "choice"),
                table.get("default") is True,
                bool(table.get("when")),
            )
        )
    return out


def _cross_check(r: _Reader, raw_phases: Sequence[Any], raw_steps: Sequence[Any]) -> None:
    phase_ids = [
        _raw_text(p, "id") for p in raw_phases if isinstance(p, Mapping) and _raw_text(p, "id")
    ]
    steps = _step_refs(raw_steps)
    step_ids = [s.id for s in steps if s.id]
    seen: set[str] = set()
    for s in steps:
        path = f"step[{s.index}]"
        if s.id and s.id in seen:
            r.add(f"{path}.id", f"{s.id!r} is used by another step")
        seen.add(s.id)
        if s.phase and s.phase not in phase_ids:
            close = difflib.get_close_matches(s.phase, phase_ids, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            r.add(f"{path}.phase", f"{s.phase!r} is not a phase id of this protocol{hint}")
        for key, j, ref in s.refs:
            if ref not in step_ids or ref == s.id:
                close = difflib.get_close_matches(ref, step_ids, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                r.add(f"{path}.{key}[{j}]", f"{ref!r} is not another step of this protocol{hint}")
        for j, target in s.targets:
            if target != "opioid" and target not in step_ids:
                r.add(
                    f"{path}.deescalation[{j}].target",
                    f"{target!r} is neither a step id nor 'opioid'",
                )
        if s.choice in _RESERVED_CHOICES:
            r.add(f"{path}.choice", f"{s.choice!r} is reserved; name the group otherwise")
        if s.choice and s.choice in step_ids:
            r.add(f"{path}.choice", f"{s.choice!r} is also a step id; name the group otherwise")
    groups: dict[str, list[_StepRef]] = {}
    for s in steps:
        if s.choice:
            groups.setdefault(s.choice, []).append(s)
    for name, members in groups.items():
        defaults = [s.index for s in members if s.default]
        if len(defaults) > 1:
            r.add(f"step[{defaults[1]}].default", f"the choice group {name!r} has two defaults")
        if len(members) < 2:
            r.add(
                f"step[{members[0].index}].choice", f"the choice group {name!r} has one option only"
            )
        if not defaults and not all(s.has_when for s in members):
            r.add(
                f"step[{members[0].index}].choice",
                f"the choice group {name!r} needs a default (or a 'when' on every option)",
            )
    phase_seen: set[str] = set()
    for j, raw in enumerate(raw_phases):
        ph = _raw_text(raw, "id") if isinstance(raw, Mapping) else ""
        if ph and ph in phase_seen:
            r.add(f"phase[{j}].id", f"{ph!r} is used by another phase")
        phase_seen.add(ph)


def protocol_from_dict(
    data: Mapping[str, Any], *, file: str = "<data>", lines: Mapping[str, int] | None = None
) -> Protocol:
    """Build a :class:`Protocol` from parsed TOML/JSON data; every problem raises at once.

    Raises
    ------
    ProtocolFileError
        With every problem found, each with its key path and (for TOML) its line.

    Example
    -------
    >>> from mps_analgesia.protocols import protocol_from_dict
    >>> protocol_from_dict({"id": "x"})
    Traceback (most recent call last):
      ...
    mps_analgesia.errors.ProtocolFileError: <data>: 7 problems
      <data>: title: is required (text)
      <data>: version: is required (text)
      <data>: status: is required: one of draft, endorsed, superseded
      <data>: evidence: is required: { level = 'case-reports-and-series', summary = '...' }
      <data>: indication: is required (text)
      <data>: phase: is required: at least one [[phase]]
      <data>: step: is required: at least one [[step]]
    """
    r = _Reader(lines or {})
    if not isinstance(data, Mapping):
        raise ProtocolFileError(file, [Problem("", "the file must hold a table (object)")])
    r.keys(data, "", _TOP_KEYS, "a protocol")
    pid = r.ident(data, "id", "", required=True)
    title = r.text(data, "title", "", required=True)
    version = r.text(data, "version", "", required=True)
    if version and not _VERSION.match(version):
        r.add("version", f"{version!r} must look like '1', '1.2' or '1.2.3'")
    status = r.choice(data, "status", "", STATUSES, STATUSES[0])
    if "status" not in data:
        r.add("status", f"is required: one of {', '.join(STATUSES)}")
    superseded_by = r.ident(data, "superseded_by", "", required=status == "superseded")
    evidence = _read_evidence(r, data.get("evidence"))
    indication = r.text(data, "indication", "", required=True)
    summary = r.text(data, "summary", "")
    sources = r.source_ids(data, "sources", "", required=False) if "sources" in data else ()
    ome_table = r.text(data, "ome_table", "") or "cdc-2022"
    phases = []
    raw_phases = r.array(data.get("phase"), "phase", "[[phase]] tables")
    if "phase" not in data:
        r.add("phase", "is required: at least one [[phase]]")
    for i, item in enumerate(raw_phases):
        table = r.table(item, f"phase[{i}]", "{ id, title, purpose }")
        if table is None:
            continue
        before = len(r.problems)
        r.keys(table, f"phase[{i}]", ("id", "title", "purpose"), "a phase")
        ph_id = r.ident(table, "id", f"phase[{i}]", required=True)
        ph_title = r.text(table, "title", f"phase[{i}]", required=True)
        ph_purpose = r.text(table, "purpose", f"phase[{i}]")
        if len(r.problems) == before:
            phases.append(Phase(id=ph_id, title=ph_title, purpose=ph_purpose))
    eligibility = _read_checks(r, data.get("eligibility"), "eligibility")
    contraindication = _read_checks(r, data.get("contraindication"), "contraindication")
    caution = _read_checks(r, data.get("caution"), "caution")
    steps: list[tuple[int, StepTemplate]] = []
    if "step" not in data:
        r.add("step", "is required: at least one [[step]]")
    for i, item in enumerate(r.array(data.get("step"), "step", "[[step]] tables")):
        tmpl = _read_step(r, item, f"step[{i}]")
        if tmpl is not None:
            steps.append((i, tmpl))
    escalation = _read_escalation(r, data.get("escalation"))
    raw_steps = data.get("step")
    _cross_check(r, raw_phases, raw_steps if isinstance(raw_steps, list) else [])
    if r.problems:
        located = sorted((p for p in r.problems if p.line is not None), key=lambda p: p.line or 0)
        raise ProtocolFileError(file, [*located, *(p for p in r.problems if p.line is None)])
    assert evidence is not None
    return Protocol(
        id=pid,
        title=title,
        version=version,
        status=status,
        evidence=evidence,
        indication=indication,
        summary=summary,
        superseded_by=superseded_by,
        sources=sources,
        ome_table=ome_table,
        phase=tuple(phases),
        eligibility=eligibility,
        contraindication=contraindication,
        caution=caution,
        step=tuple(s for _i, s in steps),
        escalation=escalation,
        path=file,
    )


def loads_protocol(text: str, *, format: str = "toml", file: str = "<string>") -> Protocol:
    """Read a protocol from TOML or JSON text (``format="toml" | "json"``).

    Example
    -------
    >>> from mps_analgesia.protocols import loads_protocol
    >>> loads_protocol('id = "x"\\ntitle = 3')
    Traceback (most recent call last):
      ...
    mps_analgesia.errors.ProtocolFileError: <string>: 7 problems
      <string>:2: title: must be text, not 3
      <string>: version: is required (text)
      <string>: status: is required: one of draft, endorsed, superseded
      <string>: evidence: is required: { level = 'case-reports-and-series', summary = '...' }
      <string>: indication: is required (text)
      <string>: phase: is required: at least one [[phase]]
      <string>: step: is required: at least one [[step]]
    """
    if format == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProtocolFileError(
                file, [Problem("", f"is not valid JSON: {exc.msg}", exc.lineno)]
            ) from None
        return protocol_from_dict(data, file=file)
    if format != "toml":
        raise ProtocolFileError(file, [Problem("", f"unknown format {format!r}; use toml or json")])
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ProtocolFileError(
            file, [Problem("", f"is not valid TOML: {exc}", int(m.group(1)) if m else None)]
        ) from None
    return protocol_from_dict(data, file=file, lines=_toml_lines(text))


# ---- where protocols live -----------------------------------------------------------------------


def protocol_dirs() -> tuple[Any, ...]:
    """The directories searched for protocols by id: the repository's ``protocols/`` in a
    development checkout, then ``mps_analgesia/protocols`` inside an installed wheel.

    Example
    -------
    >>> from mps_analgesia.protocols import protocol_dirs
    >>> len(protocol_dirs()) >= 1
    True
    """
    out: list[Any] = []
    repo = Path(__file__).resolve().parents[2] / "protocols"
    if repo.is_dir() and (Path(__file__).resolve().parents[2] / "pyproject.toml").is_file():
        out.append(repo)
    packaged = resources.files("mps_analgesia") / "protocols"
    if packaged.is_dir():
        out.append(packaged)
    return tuple(out)


def _shipped() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for d in protocol_dirs():
        for entry in sorted(d.iterdir(), key=lambda e: e.name):
            name = entry.name
            if name.endswith(".toml") and entry.is_file():
                found.setdefault(name[: -len(".toml")], entry)
    return found


@cache
def _load_cached(key: str, text: str, fmt: str) -> Protocol:
    return loads_protocol(text, format=fmt, file=key)


def _load_entry(entry: Any, name: str) -> Protocol:
    try:
        text = entry.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProtocolFileError(name, [Problem("", f"cannot be read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ProtocolFileError(name, [Problem("", "is not UTF-8 text")]) from None
    fmt = "json" if name.lower().endswith(".json") else "toml"
    return _load_cached(name, text, fmt)


def load_protocol(id_or_path: str | Path) -> Protocol:
    """Load a shipped protocol by id, or any protocol file (``.toml`` or ``.json``) by path.

    Raises
    ------
    UnknownNameError
        An id that is not a shipped protocol (with "did you mean" suggestions).
    ProtocolFileError
        A file with problems: every problem, with its key path and line.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.protocols import load_protocol
    >>> load_protocol("psoas-compartment-block").title
    'Psoas compartment block with local anaesthetic'
    """
    text = str(id_or_path)
    is_path = isinstance(id_or_path, Path) or text.endswith((".toml", ".json")) or "/" in text
    if is_path:
        path = Path(text)
        protocol = _load_entry(path, str(path))
        return protocol
    shipped = _shipped()
    entry = shipped.get(text)
    if entry is None:
        close = difflib.get_close_matches(text, list(shipped), n=3, cutoff=0.4)
        raise UnknownNameError("protocol", text, close, "id")
    protocol = _load_entry(entry, f"protocols/{text}.toml")
    if protocol.id != text:
        raise ProtocolFileError(
            f"protocols/{text}.toml",
            [Problem("id", f"{protocol.id!r} differs from the file name {text!r}", None)],
        )
    return protocol


def list_protocols() -> tuple[Protocol, ...]:
    """Every shipped protocol, sorted by id.

    Example
    -------
    >>> from mps_analgesia.protocols import list_protocols
    >>> [p.id for p in list_protocols()][:2]
    ['agar-2004-mechanism-directed', 'astro-2017-palliative-radiotherapy']
    """
    return tuple(load_protocol(pid) for pid in sorted(_shipped()))


# ---- instantiation ------------------------------------------------------------------------------


def _regimen(value: Regimen | Iterable[Step] | None) -> Regimen | None:
    if value is None or isinstance(value, Regimen):
        return value
    try:
        return Regimen(tuple(value))
    except (StepError, TypeError) as exc:
        raise ProtocolError(
            f"current_regimen must be a Regimen or a list of steps: {exc}"
        ) from None


class _Planner:
    """One instantiation: state shared by the steps of a protocol as they are built."""

    def __init__(
        self,
        protocol: Protocol,
        patient: Patient,
        current: Regimen | None,
        choices: Mapping[str, Any] | None,
    ) -> None:
        if not isinstance(patient, Patient):
            raise ProtocolError(
                f"patient must be a Patient, not {type(patient).__name__}; "
                "use mps.Patient(...) or load_case(...).patient"
            )
        self.protocol = protocol
        self.patient = patient
        self.current = current
        self.decisions: list[Decision] = []
        self.checks: list[CheckResult] = []
        self.monitoring: list[MonitoringItem] = []
        self.steps: list[Step] = []
        self.ids: list[str] = []
        self.start_days: dict[str, int] = {}
        self.kept: list[str] = []  # drugs a template would add that the current regimen gives
        self.choices, self.side, confirmed, self.selected = self._read_choices(choices)
        self.facts = _Facts(patient, current, confirmed, protocol.ome_table)

    # ---- choices ----

    def _read_choices(
        self, choices: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], str | None, frozenset[str], dict[str, str]]:
        p = self.protocol
        raw = dict(choices or {})
        groups = p.choice_groups
        known = (*_RESERVED_CHOICES, *groups)
        for key in raw:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ProtocolError(
                    f"choices[{key!r}]: {p.id} has no such choice (choices: "
                    f"{', '.join(known)}){hint}"
                )
        side = raw.get("side")
        if side is not None:
            norm = str(side).strip().lower()
            if norm not in _SIDES:
                raise ProtocolError(f"choices['side']: {side!r} is not one of {', '.join(_SIDES)}")
            side = norm
        needs_side = [s.id for s in p.step if s.needs_side]
        if needs_side and side is None:
            raise ProtocolError(
                f"choices['side'] is required by {p.id} (steps {', '.join(needs_side)}): the side "
                "of the psoas involvement, one of left, right, bilateral"
            )
        confirm = raw.get("confirm", ())
        if isinstance(confirm, str):
            confirm = (confirm,)
        clinical = {
            c.id for c in (*p.eligibility, *p.contraindication, *p.caution) if c.field == "clinical"
        } | {c.id for s in p.step for c in (*s.when, *s.requires) if c.field == "clinical"}
        for cid in confirm:
            if cid not in clinical:
                close = difflib.get_close_matches(str(cid), sorted(clinical), n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ProtocolError(
                    f"choices['confirm']: {cid!r} is not a clinical check of {p.id}{hint}"
                )
        selected: dict[str, str] = {}
        for group, options in groups.items():
            if group in raw:
                chosen = str(raw[group])
                if chosen not in options:
                    raise ProtocolError(
                        f"choices[{group!r}]: {chosen!r} is not an option ({', '.join(options)})"
                    )
                selected[group] = chosen
        used = {**raw, "confirm": tuple(confirm)} if confirm else dict(raw)
        if side is not None:
            used["side"] = side
        return used, side, frozenset(str(c) for c in confirm), selected

    # ---- checks ----

    def evaluate_protocol_checks(self) -> str:
        p = self.protocol
        results: list[CheckResult] = []
        for group, checks in (
            ("eligibility", p.eligibility),
            ("contraindication", p.contraindication),
            ("caution", p.caution),
        ):
            results.extend(_evaluate(c, self.facts, group) for c in checks)
        self.checks.extend(results)
        bad = [
            c
            for c in results
            if (c.group == "eligibility" and c.outcome == "not met")
            or (c.group == "contraindication" and c.outcome == "met")
        ]
        unknown = [c for c in results if c.outcome == "unknown" and c.group != "caution"]
        status = "not eligible" if bad else ("undetermined" if unknown else "eligible")
        for c in bad:
            what = "contraindication present" if c.group == "contraindication" else "not met"
            self.decide(
                "eligibility",
                f"{what}: {c.check.text} (observed: {c.observed})",
                sources=(c.check.source,) if c.check.source else p.evidence.sources,
                level=c.check.level,
            )
        for c in unknown:
            self.decide(
                "eligibility",
                f"could not be checked: {c.check.text} (observed: {c.observed}); check it "
                "before starting",
                sources=(c.check.source,) if c.check.source else (),
                level=c.check.level,
            )
        for c in results:
            if c.group == "caution" and c.outcome in ("met", "unknown"):
                verb = "applies" if c.outcome == "met" else "could not be checked"
                self.decide(
                    "caution",
                    f"{verb}: {c.check.text} (observed: {c.observed})",
                    sources=(c.check.source,) if c.check.source else (),
                    level=c.check.level,
                )
        head = {
            "eligible": "eligible: every eligibility check is met and no contraindication is "
            "present",
            "not eligible": "NOT ELIGIBLE: the plan below is shown for review only; see the "
            "checks not met",
            "undetermined": "eligibility undetermined: some checks could not be read (listed); "
            "the plan holds only once they are",
        }[status]
        self.decisions.insert(0, Decision("eligibility", head, None, p.evidence.sources, ""))
        return status

    # ---- helpers ----

    def decide(
        self,
        action: str,
        message: str,
        step: str | None = None,
        *,
        sources: Iterable[str] = (),
        level: str = "",
        arithmetic: str = "",
    ) -> None:
        self.decisions.append(Decision(action, message, step, _dedupe(sources), level, arithmetic))

    def _step_checks(self, tmpl: StepTemplate, group: str) -> list[CheckResult]:
        checks = tmpl.when if group == "when" else tmpl.requires
        results = [_evaluate(c, self.facts, group, tmpl.id) for c in checks]
        self.checks.extend(results)
        return results

    def _select(self, tmpl: StepTemplate) -> bool:
        if not tmpl.choice:
            return True
        chosen = self.selected.get(tmpl.choice)
        if chosen is not None:
            if chosen == tmpl.id:
                self.decide("choice", f"chosen for {tmpl.choice!r}: {tmpl.title}", tmpl.id)
                return True
            return False
        options = self.protocol.choice_groups[tmpl.choice]
        has_default = any(self.protocol.get_step(o).default for o in options)
        if tmpl.default:
            self.decide(
                "choice",
                f"{tmpl.choice!r} not chosen: the default is used ({tmpl.title}); other options: "
                + ", ".join(o for o in options if o != tmpl.id),
                tmpl.id,
            )
            return True
        return not has_default  # a group selected by 'when' alone

    # ---- the main loop ----

    def run(self) -> InstantiatedPlan:
        p = self.protocol
        status = self.evaluate_protocol_checks()
        if self.current is not None:
            for i, step in enumerate(self.current):
                self.steps.append(step)
                self.ids.append(f"current[{i}]")
                self.decide("continued", f"current step kept: {step.describe()}", f"current[{i}]")
        built_groups: set[str] = set()
        for tmpl in p.steps:
            if not self._select(tmpl):
                continue
            if tmpl.choice and tmpl.choice in built_groups and not tmpl.default:
                continue
            if not self._applies(tmpl):
                continue
            if tmpl.choice:
                built_groups.add(tmpl.choice)
            self._plan_step(tmpl)
        for e in p.escalation:
            to = f" → {', '.join(e.to)}" if e.to else ""
            self.decide(
                "escalation",
                f"when {e.when}: {e.action}{to}",
                sources=(e.source,),
                level=e.level,
            )
        if not any(not sid.startswith("current[") for sid in self.ids):
            if self.kept:
                self.decide(
                    "omitted",
                    "no new step is added: the current regimen already gives what this protocol "
                    f"would add ({', '.join(self.kept)}); see above",
                )
            else:
                self.decide("omitted", "no new step could be planned for this patient (see above)")
        return InstantiatedPlan(
            protocol=p,
            patient=self.patient,
            regimen=Regimen(tuple(self.steps), name=p.title),
            step_ids=tuple(self.ids),
            checks=tuple(self.checks),
            decisions=tuple(self.decisions),
            monitoring=tuple(self.monitoring),
            status=status,
            choices=self.choices,
        )

    def _applies(self, tmpl: StepTemplate) -> bool:
        srcs = tmpl.sources
        for c in self._step_checks(tmpl, "when"):
            if c.outcome in ("not met",):
                self.decide(
                    "not-applicable",
                    f"{tmpl.title}: not for this patient ({c.check.text}; observed: {c.observed})",
                    tmpl.id,
                    sources=(c.check.source,) if c.check.source else srcs,
                    level=c.check.level,
                )
                return False
            if c.outcome == "unknown":
                if tmpl.if_unknown == "exclude":
                    self.decide(
                        "omitted",
                        f"{tmpl.title}: left out because it cannot be checked whether it "
                        f"applies ({c.check.text}; observed: {c.observed})",
                        tmpl.id,
                        sources=(c.check.source,) if c.check.source else srcs,
                        level=c.check.level,
                    )
                    return False
                self.decide(
                    "included",
                    f"{tmpl.title}: included although it cannot be checked whether it applies "
                    f"({c.check.text}; observed: {c.observed}); this is the conservative option",
                    tmpl.id,
                    sources=(c.check.source,) if c.check.source else srcs,
                    level=c.check.level,
                )
        for c in self._step_checks(tmpl, "requires"):
            if c.outcome == "not met":
                self.decide(
                    "omitted",
                    f"{tmpl.title}: omitted, a requirement is not met: {c.check.text} "
                    f"(observed: {c.observed})",
                    tmpl.id,
                    sources=(c.check.source,) if c.check.source else srcs,
                    level=c.check.level,
                )
                return False
            if c.outcome == "unknown":
                self.decide(
                    "caution",
                    f"{tmpl.title}: check before it is given: {c.check.text} "
                    f"(observed: {c.observed})",
                    tmpl.id,
                    sources=(c.check.source,) if c.check.source else srcs,
                    level=c.check.level,
                )
        return True

    def _start_day(self, tmpl: StepTemplate) -> int:
        day = int(tmpl.fields.get("start_day", 0))
        for key, verb in (("together_with", "starts with"), ("after", "comes after")):
            refs = getattr(tmpl, key)
            present = [ref for ref in refs if ref in self.start_days]
            if present:
                day = max([day, *(self.start_days[ref] for ref in present)])
                self.decide("sequencing", f"{verb} {', '.join(present)} (day {day})", tmpl.id)
            elif refs:
                self.decide(
                    "sequencing",
                    f"{verb} {' or '.join(refs)} in the protocol, which is not part of this plan",
                    tmpl.id,
                )
        return day

    def _plan_step(self, tmpl: StepTemplate) -> None:
        if tmpl.is_action:
            day = self._start_day(tmpl)
            self.start_days[tmpl.id] = day
            self.decide(
                "instruction",
                f"{tmpl.title}: {tmpl.purpose}",
                tmpl.id,
                sources=tmpl.sources,
                level=tmpl.level,
            )
            if tmpl.compute:
                self._compute(tmpl)
            self._monitor(tmpl, None, day)
            self._deescalate(tmpl)
            return
        if tmpl.start.method == "current":
            self._continue_current(tmpl)
            return
        given = self._already_given(tmpl)
        if given:
            self._keep_given(tmpl, given)
            return
        mark = len(self.decisions)
        step = _build_step(self, tmpl)
        if step is None:
            return
        self.steps.append(step)
        self.ids.append(tmpl.id)
        self.start_days[tmpl.id] = step.start_day
        msg = f"{tmpl.title}: {step.describe()}"
        if step.start_day:
            msg += f", from day {step.start_day}"
        self.decisions.insert(
            mark,
            Decision("included", msg, tmpl.id, _dedupe(tmpl.sources), tmpl.level),
        )
        if tmpl.dose_range is not None:
            dr = tmpl.dose_range
            self.decide(
                "range",
                f"protocol range: {dr.text}{' (' + dr.note + ')' if dr.note else ''}",
                tmpl.id,
                sources=(dr.source,),
                level=dr.level,
            )
        if tmpl.duration is not None:
            d = tmpl.duration
            note = f": {d.note}" if d.note else ""
            self.decide(
                "duration",
                f"course of {_qtext(d.value)}{note}; stop it then (steps carry "
                "no stop day, so the plan states it)",
                tmpl.id,
                sources=(d.source,),
                level=d.level,
            )
        if step.kind == "radiotherapy":
            self._radiobiology(tmpl, step)
        self._monitor(tmpl, step, step.start_day)
        self._deescalate(tmpl)

    def _radiobiology(self, tmpl: StepTemplate, step: Any) -> None:
        from . import radiotherapy

        for ab in radiotherapy.alpha_beta_values():
            total = step.total_dose
            bed = radiotherapy.bed(total, step.fractions, ab.value.quantity)
            eqd2 = radiotherapy.eqd2(total, step.fractions, ab.value.quantity)
            d = step.dose_per_fraction_gy
            self.decide(
                "radiobiology",
                f"α/β {_num(ab.gy)} Gy ({ab.label}): BED {_num(bed.magnitude)} Gy, EQD2 "
                f"{_num(eqd2.magnitude)} Gy",
                tmpl.id,
                sources=(ab.value.source, "joiner-2009"),
                level=ab.value.level,
                arithmetic=f"BED = {_num(step.total_dose_gy)} Gy × (1 + {_num(d)} Gy / "
                f"{_num(ab.gy)} Gy) = {_num(bed.magnitude)} Gy; EQD2 = BED / (1 + 2 Gy / "
                f"{_num(ab.gy)} Gy) = {_num(eqd2.magnitude)} Gy",
            )

    def _compute(self, tmpl: StepTemplate) -> None:
        from . import conversion

        regimen = Regimen(tuple(self.steps))
        sources: tuple[str, ...] = ()
        try:
            if tmpl.compute == "current-ome":
                if self.current is None:
                    raise ProtocolError("no current regimen was given")
                result: Any = conversion.daily_ome(self.current, table=self.protocol.ome_table)
                message = f"current daily OME: {result.text}"
                sources = result.sources
            else:
                if any(s.kind == "opioid" and getattr(s, "prn", False) for s in self.steps):
                    self.decide(
                        "computed",
                        "the plan already has a breakthrough (PRN) opioid step; it is kept",
                        tmpl.id,
                    )
                    return
                result = conversion.breakthrough_dose(regimen, table=self.protocol.ome_table)
                message = f"breakthrough dose: {result.text}"
                sources = (result.fraction.source, result.factor_source)
        except MpsAnalgesiaError as exc:
            self.decide("computed", f"{tmpl.compute}: not computed: {exc}", tmpl.id)
            return
        self.decide(
            "computed",
            message,
            tmpl.id,
            sources=sources,
            level=str(getattr(result, "level", "") or getattr(result.fraction, "level", "")),
            arithmetic="; ".join(result.receipt),
        )

    def _already_given(self, tmpl: StepTemplate) -> list[tuple[str, Any]]:
        """The current steps that already give the template's drug (a protocol never adds a
        drug the current regimen gives: no second methadone, no second tramadol)."""
        if self.current is None:
            return []
        name = tmpl.fields.get("drug", "methadone" if tmpl.kind == "methadone_adjuvant" else "")
        if not isinstance(name, str) or not name:
            return []
        try:
            drug = _catalog.drug(name).id
        except MpsAnalgesiaError:
            return []
        return [
            (f"current[{i}]", step)
            for i, step in enumerate(self.current)
            if getattr(step, "drug", None) == drug
        ]

    def _keep_given(self, tmpl: StepTemplate, given: Sequence[tuple[str, Any]]) -> None:
        """Record that the template's drug is already given: it is kept for review, not added."""
        drug = given[0][1].drug
        day = min(step.start_day for _sid, step in given)
        self.start_days[tmpl.id] = day
        if drug not in self.kept:
            self.kept.append(drug)
        current = "; ".join(
            f"{step.describe()} [{sid}]{_current_dose_text(step)}" for sid, step in given
        )
        sources: tuple[str, ...] = tmpl.sources
        level = tmpl.level
        review = "for review"
        dr = tmpl.dose_range
        if dr is not None:
            review = f"for review against the protocol range of {dr.text}"
            review += _range_verdict([step for _sid, step in given], dr)
            sources = (*sources, dr.source)
            level = dr.level or level
        self.decide(
            "continued",
            f"{tmpl.title}: {drug} is already present in the current regimen ({current}); no "
            f"second {drug} step is added, and the plan keeps the current {drug} {review}",
            tmpl.id,
            sources=sources,
            level=level,
        )
        self._monitor(tmpl, given[0][1], day)
        self._deescalate(tmpl)

    def _continue_current(self, tmpl: StepTemplate) -> None:
        kinds = (tmpl.kind,)
        matches = [
            (sid, s)
            for sid, s in zip(self.ids, self.steps, strict=True)
            if sid.startswith("current[") and s.kind in kinds and not getattr(s, "prn", False)
        ]
        if matches:
            day = min(s.start_day for _sid, s in matches)
            self.start_days[tmpl.id] = day
            self.decide(
                "continued",
                f"{tmpl.title}: the current "
                + "; ".join(f"{s.describe()} [{sid}]" for sid, s in matches)
                + " continues",
                tmpl.id,
                sources=tmpl.sources,
                level=tmpl.level,
            )
            self._monitor(tmpl, matches[0][1], day)
            self._deescalate(tmpl)
            return
        why = (
            "no current regimen was given"
            if self.current is None
            else f"the current regimen has no regular {tmpl.kind} step"
        )
        self.decide(
            "omitted",
            f"{tmpl.title}: {why}; this protocol continues the current one and gives no starting "
            f"dose of its own{': ' + tmpl.purpose if tmpl.purpose else ''}",
            tmpl.id,
            sources=tmpl.sources,
        )

    def _monitor(self, tmpl: StepTemplate, step: Step | None, start_day: int) -> None:
        for m in tmpl.monitoring:
            day: int | None = None
            until: int | None = None
            when = m.when
            if m.from_day is not None or m.from_start is not None:
                day = start_day + (m.from_day or 0)
            if m.until_day is not None:
                until = start_day + m.until_day
            if m.at_daily_mg is not None:
                reached = _day_reaching(step, m.at_daily_mg) if step is not None else None
                if reached is None:
                    when = f"{when} (not reached in this plan)"
                else:
                    day = reached
            self.monitoring.append(
                MonitoringItem(
                    tmpl.id,
                    m.what,
                    when,
                    day,
                    until,
                    (m.source,) if m.source else tmpl.sources,
                    m.level,
                )
            )

    def _deescalate(self, tmpl: StepTemplate) -> None:
        for d in tmpl.deescalation:
            note = f" {d.note}" if d.note else ""
            self.decide(
                "de-escalation",
                d.text + note,
                tmpl.id,
                sources=(d.source,) if d.source else tmpl.sources,
                level=d.level,
            )


def _regular_totals(steps: Sequence[Any]) -> dict[int, float]:
    """The summed daily dose (mg/day) of regular dosed steps on each day one of them changes."""
    dosed = [s for s in steps if hasattr(s, "daily_dose_mg_on") and not s.prn]
    days = sorted({d for s in dosed for d in (s.start_day, *(p.day for p in s.titration))})
    return {d: math.fsum(s.daily_dose_mg_on(d) for s in dosed) for d in days}


def _current_dose_text(step: Any) -> str:
    """``': 15 mg/day, 30 mg/day from day 7'``: a current drug step's daily dose over time."""
    if not hasattr(step, "daily_dose_mg_on"):
        return ""
    if step.prn:
        return f": at most {_num(step.daily_dose_mg)} mg in 24 h when needed"
    days = (step.start_day, *(p.day for p in step.titration))
    parts = [
        f"{_num(step.daily_dose_mg_on(d))} mg/day" + (f" from day {d}" if d else "") for d in days
    ]
    return ": " + ", ".join(parts)


def _range_verdict(steps: Sequence[Any], dr: DoseRange) -> str:
    """Where current steps stand against a protocol range, in words (``''``: not comparable)."""
    if dr.dimension == "mass_rate":
        totals = _regular_totals(steps)
        if not totals:
            return ""
        first, peak, unit = totals[min(totals)], max(totals.values()), "mg/day"
    elif dr.dimension == "mass":
        doses = [
            dose
            for step in steps
            if hasattr(step, "titration")
            for dose in (step.dose_mg, *(t.dose_mg for t in step.titration))
            if dose is not None
        ]
        if not doses:
            return ""
        first, peak, unit = doses[0], max(doses), "mg per dose"
    else:
        return ""
    if dr.max_value is not None and peak > dr.max_value * (1 + _TOL):
        return (
            f"; at up to {_num(peak)} {unit} it is ABOVE the protocol maximum of "
            f"{_num(dr.max_value)} {unit}: review it"
        )
    if dr.min_value is not None and first < dr.min_value * (1 - _TOL):
        return f"; it starts below the protocol range, at {_num(first)} {unit}"
    span = _num(peak) if math.isclose(first, peak) else f"{_num(first)} to {_num(peak)}"
    return f"; it is within the range ({span} {unit})"


def _dedupe(sources: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for s in sources if s))


def _day_reaching(step: Any, mg_per_day: float) -> int | None:
    if not hasattr(step, "daily_dose_mg_on"):
        return None
    days = [step.start_day, *(p.day for p in getattr(step, "titration", ()))]
    for day in days:
        if step.daily_dose_mg_on(day) >= mg_per_day * (1 - _TOL):
            return int(day)
    return None


def _limits(
    step: Any,
) -> tuple[list[tuple[float, str, str, str]], list[tuple[float, str, str, str]]]:
    """Catalog maxima of a drug step: (per-dose, per-day) lists of (mg, text, source, level)."""
    record = _catalog.drug(step.drug)
    single = [
        (
            lim.value.value,
            lim.value.note or "catalog maximum single dose",
            lim.value.source,
            lim.value.level,
        )
        for lim in record.limits_for("max_single", step.route, step.formulation)
    ]
    daily = [
        (
            lim.value.value,
            lim.value.note or "catalog maximum daily dose",
            lim.value.source,
            lim.value.level,
        )
        for lim in record.limits_for("max_daily", step.route, step.formulation)
    ]
    return single, daily


def _max_dose(step: Any, tmpl: StepTemplate) -> tuple[float, str, tuple[str, ...], str] | None:
    """The largest allowed dose per administration (mg) with its reason, or None (no maximum)."""
    if step.dose_mg is None or step.doses_per_day is None:
        return None
    per_day = step.doses_per_day
    candidates: list[tuple[float, str, tuple[str, ...], str]] = []
    single, daily = _limits(step)
    for mg, note, src, lvl in single:
        candidates.append((mg, f"catalog maximum single dose {_num(mg)} mg ({note})", (src,), lvl))
    for mg, note, src, lvl in daily:
        candidates.append(
            (
                mg / per_day,
                f"catalog maximum {_num(mg)} mg/day ÷ {_num(per_day)} doses/day ({note})",
                (src,),
                lvl,
            )
        )
    dr = tmpl.dose_range
    if dr is not None and dr.max_value is not None:
        if dr.dimension == "mass":
            candidates.append(
                (
                    dr.max_value,
                    f"protocol range maximum {_num(dr.max_value)} mg per dose",
                    (dr.source,),
                    dr.level,
                )
            )
        elif dr.dimension == "mass_rate":
            candidates.append(
                (
                    dr.max_value / per_day,
                    f"protocol range maximum {_num(dr.max_value)} mg/day ÷ "
                    f"{_num(per_day)} doses/day",
                    (dr.source,),
                    dr.level,
                )
            )
    t = tmpl.titration
    if t is not None and t.ceiling_value is not None:
        if t.ceiling_dimension == "mass":
            candidates.append(
                (
                    t.ceiling_value,
                    f"titration ceiling {_num(t.ceiling_value)} mg per dose",
                    (t.source,),
                    t.level,
                )
            )
        else:
            candidates.append(
                (
                    t.ceiling_value / per_day,
                    f"titration ceiling {_num(t.ceiling_value)} mg/day ÷ {_num(per_day)} doses/day",
                    (t.source,),
                    t.level,
                )
            )
    if not candidates:
        return None
    return min(candidates, key=lambda c: c[0])


def _build_step(planner: _Planner, tmpl: StepTemplate) -> Step | None:
    """Build the regimen step of a template for the planner's patient (None: omitted, said why)."""
    cls = STEP_KINDS[tmpl.kind]
    kwargs = dict(tmpl.fields)
    side = planner.side or "left"
    for key, value in list(kwargs.items()):
        if isinstance(value, str) and "{side}" in value:
            kwargs[key] = value.replace("{side}", side)
    if tmpl.kind == "psoas_compartment_block":
        kwargs["side"] = kwargs.get("side", side)
    kwargs["start_day"] = planner._start_day(tmpl)
    start = tmpl.start
    if start.method == "per_kg":
        weight = planner.patient.weight_kg
        if weight is None:
            planner.decide(
                "omitted",
                f"{tmpl.title}: needs the patient's weight for "
                f"{_units.format_quantity(start.per_kg)}; record the weight",
                tmpl.id,
                sources=(start.source,),
                level=start.level,
            )
            return None
        assert start.per_kg_value is not None
        unit = "mL" if start.field == "bolus_volume" else "mg"
        amount = start.per_kg_value * weight
        kwargs[start.field] = _units.quantity_from_magnitude(amount, unit)
        planner.decide(
            "start-dose",
            f"{start.field.replace('_', ' ')} by weight{': ' + start.note if start.note else ''}",
            tmpl.id,
            sources=(start.source,),
            level=start.level,
            arithmetic=f"{_units.format_quantity(start.per_kg)} × {_num(weight)} kg = "
            f"{_num(amount)} {unit}",
        )
    elif start.method == "from_ome":
        got = _from_ome(planner, tmpl, kwargs)
        if got is None:
            return None
    elif start.note:  # a fixed start that says how it is reached (a label build-up, say)
        planner.decide(
            "start-dose",
            f"{tmpl.title}: {start.note}",
            tmpl.id,
            sources=(start.source,) if start.source else tmpl.sources,
            level=start.level,
        )
    try:
        step = cls(**kwargs)
    except (StepError, UnitError, UnknownNameError) as exc:
        planner.decide("omitted", f"{tmpl.title}: cannot be built for this patient: {exc}", tmpl.id)
        return None
    if tmpl.kind in _DRUG_KINDS:
        step = _cap(planner, tmpl, step, kwargs)
        step = _titrate(planner, tmpl, step, kwargs)
    elif tmpl.kind == "psoas_compartment_block":
        step = _cap_block(planner, tmpl, step, kwargs)
    result: Step = step
    return result


def _from_ome(planner: _Planner, tmpl: StepTemplate, kwargs: dict[str, Any]) -> bool | None:
    start = tmpl.start
    ome, how, receipt = planner.facts.tier_ome()
    if ome is None:
        planner.decide(
            "omitted",
            f"{tmpl.title}: the starting dose comes from the current daily OME, which is not "
            f"known ({how})",
            tmpl.id,
            sources=(start.source,),
            level=start.level,
        )
        return None
    try:
        mg_day, arithmetic, sources, _level = _methadone_daily(ome, start.scheme)
    except MpsAnalgesiaError as exc:
        planner.decide(
            "omitted",
            f"{tmpl.title}: no starting dose by the {start.scheme!r} scheme for "
            f"{_num(ome)} MME/day: {exc}",
            tmpl.id,
            sources=(start.source,),
            level=start.level,
        )
        return None
    probe = STEP_KINDS[tmpl.kind](**{**kwargs, "dose": _units.Q(1, "mg")})
    per_day = probe.doses_per_day
    assert per_day is not None
    dose = mg_day / per_day
    kwargs["dose"] = _units.quantity_from_magnitude(dose, "mg")
    planner.decide(
        "start-dose",
        f"from the current {_num(ome)} MME/day ({how}) by the {start.scheme!r} scheme"
        f"{': ' + start.note if start.note else ''}",
        tmpl.id,
        sources=(start.source, *sources),
        level=start.level,
        arithmetic="; ".join(
            (
                *receipt,
                *((arithmetic,) if arithmetic else ()),
                f"{_num(mg_day)} mg/day ÷ {_num(per_day)} doses/day = {_num(dose)} mg per dose",
            )
        ),
    )
    return True


def _cap(planner: _Planner, tmpl: StepTemplate, step: Any, kwargs: dict[str, Any]) -> Any:
    """Lower the starting dose to the smallest maximum (catalog, protocol range, ceiling)."""
    if step.is_continuous:
        return step
    limit = _max_dose(step, tmpl)
    if limit is None or step.dose_mg <= limit[0] * (1 + _TOL):
        return step
    mg, why, sources, level = limit
    kwargs["dose"] = _units.quantity_from_magnitude(mg, "mg")
    planner.decide(
        "capped",
        f"{tmpl.title}: the starting dose is lowered to the maximum allowed ({why})",
        tmpl.id,
        sources=sources,
        level=level,
        arithmetic=f"{_num(step.dose_mg)} mg > {_num(mg)} mg → {_num(mg)} mg per dose",
    )
    return STEP_KINDS[tmpl.kind](**kwargs)


def _cap_block(planner: _Planner, tmpl: StepTemplate, step: Any, kwargs: dict[str, Any]) -> Any:
    dr = tmpl.dose_range
    if dr is None or dr.max_value is None:
        return step
    field, current = (
        ("bolus_volume", step.bolus_ml)
        if dr.dimension == "volume"
        else ("infusion_rate", step.infusion_ml_per_h)
    )
    if current is None or current <= dr.max_value * (1 + _TOL):
        return step
    unit = "mL" if field == "bolus_volume" else "mL/h"
    kwargs[field] = _units.quantity_from_magnitude(dr.max_value, unit)
    planner.decide(
        "capped",
        f"{tmpl.title}: {field.replace('_', ' ')} lowered to the protocol maximum",
        tmpl.id,
        sources=(dr.source,),
        level=dr.level,
        arithmetic=f"{_num(current)} {unit} > {_num(dr.max_value)} {unit} → "
        f"{_num(dr.max_value)} {unit}",
    )
    return STEP_KINDS[tmpl.kind](**kwargs)


def _titrate(planner: _Planner, tmpl: StepTemplate, step: Any, kwargs: dict[str, Any]) -> Any:
    t = tmpl.titration
    if t is None:
        return step
    srcs = (t.source,)
    rules = []
    if t.interval is not None:
        rules.append(
            f"no change sooner than {_qtext(t.interval)} after the start or the previous change"
        )
    if t.ceiling is not None:
        rules.append(f"at most {_units.format_quantity(t.ceiling)}")
    if t.step is not None:
        rules.append(f"steps of {_units.format_quantity(t.step)}")
    note = f" ({t.note})" if t.note else ""
    if t.step_value is None or t.interval_days is None or step.is_continuous:
        planner.decide(
            "titration",
            f"titration rule: {'; '.join(rules)}{note}; the reference gives no step size, so "
            "no increase is scheduled: increase only on review, within these limits",
            tmpl.id,
            sources=srcs,
            level=t.level,
        )
        return step
    per_day = step.doses_per_day
    assert per_day is not None
    assert step.dose_mg is not None
    limit = _max_dose(step, tmpl)
    max_dose = limit[0] if limit is not None else math.inf
    dose = step.dose_mg
    points = []
    day = step.start_day
    for _ in range(100):
        new = dose + (t.step_value if t.step_dimension == "mass" else t.step_value / per_day)
        if new > max_dose * (1 + _TOL):
            break
        day += t.interval_days
        points.append({"day": day, "dose": _units.quantity_from_magnitude(new, "mg")})
        dose = new
    if not points:
        planner.decide(
            "titration",
            f"titration rule: {'; '.join(rules)}{note}; the starting dose is already at the "
            "ceiling, so no increase is scheduled",
            tmpl.id,
            sources=srcs,
            level=t.level,
        )
        return step
    kwargs["titration"] = points
    titrated = STEP_KINDS[tmpl.kind](**kwargs)
    schedule = ", ".join(f"day {p['day']}: {_units.format_quantity(p['dose'])}" for p in points)
    planner.decide(
        "titration",
        f"titration rule: {'; '.join(rules)}{note}.  Scheduled at the earliest allowed days, to "
        "be given only if the pain needs it: " + schedule,
        tmpl.id,
        sources=srcs,
        level=t.level,
        arithmetic=f"{_num(step.dose_mg)} mg + {_units.format_quantity(t.step)} every "
        f"{t.interval_days} days, stopping at {_num(max_dose)} mg per dose"
        + (f" ({limit[1]})" if limit is not None else ""),
    )
    return titrated


def _instantiate(
    protocol: Protocol,
    patient: Patient,
    current_regimen: Regimen | Iterable[Step] | None,
    choices: Mapping[str, Any] | None,
) -> InstantiatedPlan:
    planner = _Planner(protocol, patient, _regimen(current_regimen), choices)
    return planner.run()
