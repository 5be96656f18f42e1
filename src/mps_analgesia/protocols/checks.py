"""The check language of protocol files: fields, operators, checks and their results."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from .. import _catalog, _units
from ..patient import Patient
from ..regimen import Regimen
from ._equianalgesia import _daily_ome, _tier_ome
from ._format import _num
from ._vocabulary import _TOL

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
