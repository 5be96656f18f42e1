"""Psoas compartment block checks: local anaesthetic dose and anticoagulation.

``block.local-anaesthetic-max``: the bolus (concentration × volume) above the drug's mg/kg limit
or its absolute cap, or bolus plus infusion over any 24 hours above the 24-hour cap
(``data/local_anaesthetics.toml``).  The mg/kg limit applies to the dosing weight: the actual
weight, or the ideal body weight when the BMI is above 30.  Without a weight the mg/kg part is
*not checked* (the absolute caps still are, and a finding on them says the mg/kg part was not).

``block.anticoagulation``: a psoas compartment block is a deep plexus block, so the neuraxial
interval between the last anticoagulant dose and the block applies (``data/anticoagulants.toml``);
a shorter time is an error, an unknown time a warning, and an anticoagulant status that is not
recorded (``patient.anticoagulant is None``; ``"none"`` records that the patient takes none)
*not checked*.

Rules compare canonical floats held by the step and the patient; nothing here touches pint.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any, Final

import attrs

from .. import _catalog, _units
from .._memo import MAX_KEY_TEXT
from ..errors import DataFileError, UnitError
from ..patient import Anticoagulant, Patient
from ._engine import PASSED, Context, Missing, Rule, finding, rule
from ._util import NOT_KEPT, above, below, keep, kept_outcome, measure, num

__all__ = ["RULES"]

_KIND: Final = ("psoas_compartment_block",)
_LA_FILE: Final = "local_anaesthetics.toml"
_AC_FILE: Final = "anticoagulants.toml"
_LEVELS: Final = ("V", "S", "U")
_HOURS_PER_DAY: Final = 24.0  # a unit identity, not a clinical number


def _worst(*levels: str) -> str:
    """The weakest of several verification levels (U over S over V)."""
    return max(levels, key=_LEVELS.index)


# ---- local anaesthetic limits (data) -------------------------------------------------------------


@attrs.define(frozen=True)
class _Limits:
    """The bolus limits of one drug with or without adrenaline."""

    max_per_kg: _catalog.SourcedValue | None = None
    max_single: _catalog.SourcedValue | None = None


@attrs.define(frozen=True)
class _LocalAnaesthetic:
    """One drug's limits: plain, with adrenaline (``None``: plain limits apply), 24-hour."""

    plain: _Limits
    adrenaline: _Limits | None
    max_24h: _catalog.SourcedValue | None


@attrs.define(frozen=True)
class _WeightRule:
    """Which weight the mg/kg limits use: BMI threshold and the ideal-body-weight constants."""

    bmi_above: _catalog.SourcedValue
    formula: str
    base_male: _catalog.SourcedValue
    base_female: _catalog.SourcedValue
    increment: _catalog.SourcedValue
    per_height: _catalog.SourcedValue
    reference_height: _catalog.SourcedValue


def _limits(entry: Any, where: str) -> _Limits:
    if not isinstance(entry, Mapping):
        raise DataFileError(f"{where} must be a table")
    per_kg = entry.get("max_per_kg")
    single = entry.get("max_single")
    unknown = set(entry) - {"max_per_kg", "max_single"}
    if unknown:
        raise DataFileError(f"{where}: unknown keys {sorted(unknown)}")
    return _Limits(
        _catalog.sourced(
            per_kg, dimension="mass_per_mass", unit="mg/kg", where=f"{where}.max_per_kg"
        )
        if per_kg is not None
        else None,
        _catalog.sourced(single, dimension="mass", unit="mg", where=f"{where}.max_single")
        if single is not None
        else None,
    )


@cache
def _local_anaesthetics() -> Mapping[str, _LocalAnaesthetic]:
    data = _catalog.data_file(_LA_FILE)
    out: dict[str, _LocalAnaesthetic] = {}
    for name, entry in data.items():
        if name in ("meta", "dosing_weight"):
            continue
        where = f"{_LA_FILE}: {name}"
        record = _catalog.drug(name)
        if record.id != name or record.drug_class != "local_anaesthetic":
            raise DataFileError(f"{where}: not a local anaesthetic id of drugs.toml")
        if "plain" not in entry:
            raise DataFileError(f"{where}: has no [{name}.plain] table")
        max_24h = entry.get("max_24h")
        out[name] = _LocalAnaesthetic(
            _limits(entry["plain"], f"{where}.plain"),
            _limits(entry["adrenaline"], f"{where}.adrenaline") if "adrenaline" in entry else None,
            _catalog.sourced(max_24h, dimension="mass", unit="mg", where=f"{where}.max_24h")
            if max_24h is not None
            else None,
        )
    return out


@cache
def _weight_rule() -> _WeightRule:
    data = _catalog.data_file(_LA_FILE)
    where = f"{_LA_FILE}: dosing_weight"
    entry = data.get("dosing_weight")
    if not isinstance(entry, Mapping) or not isinstance(entry.get("ideal_body_weight"), Mapping):
        raise DataFileError(f"{where}: [dosing_weight.ideal_body_weight] is missing")
    ibw = entry["ideal_body_weight"]
    bmi_above = entry.get("bmi_above")
    if not isinstance(bmi_above, Mapping):
        raise DataFileError(f"{where}: bmi_above is missing")
    w = f"{where}.ideal_body_weight"

    def mass(key: str) -> _catalog.SourcedValue:
        return _catalog.sourced(ibw.get(key), dimension="mass", unit="kg", where=f"{w}.{key}")

    def length(key: str) -> _catalog.SourcedValue:
        return _catalog.sourced(ibw.get(key), dimension="length", unit="cm", where=f"{w}.{key}")

    rule_ = _WeightRule(
        _catalog.sourced(
            bmi_above,
            dimension="mass_per_area",
            unit="kg/m**2",
            where=f"{where}.bmi_above",
        ),
        str(ibw.get("formula", "")),
        mass("base_male"),
        mass("base_female"),
        mass("increment"),
        length("per_height"),
        length("reference_height"),
    )
    if not rule_.per_height.value > 0:
        raise DataFileError(f"{w}.per_height must be greater than zero")
    return rule_


@attrs.define(frozen=True)
class _DosingWeight:
    """The weight the mg/kg limits were applied to, and how it was chosen."""

    kg: float
    label: str  # "actual weight 70 kg", "ideal body weight 59.3 kg"
    actual_kg: float
    ideal: bool = False
    caveat: str = ""  # a sentence for the finding
    level: str = "V"
    sources: tuple[str, ...] = ()


def _dosing_weight(patient: Patient) -> _DosingWeight | None:
    """Actual weight, or ideal body weight (Devine, [U]) when the BMI is above the threshold."""
    if patient.weight_kg is None:
        return None
    return _dosing_weight_of(patient.weight_kg, patient.height_cm, patient.sex)


@lru_cache(maxsize=256)
def _dosing_weight_of(weight: float, height_cm: float | None, sex: str | None) -> _DosingWeight:
    """The dosing weight for a weight, height and sex (cached: patients repeat in a batch)."""
    actual = f"actual weight {num(weight)} kg"
    wr = _weight_rule()
    bmi = None if height_cm is None else weight / (height_cm / 100.0) ** 2
    if bmi is None:
        return _DosingWeight(
            weight,
            actual,
            weight,
            caveat=f"No height is recorded, so the BMI is unknown and the actual weight was used "
            f"(ideal body weight applies above BMI {num(wr.bmi_above.value)}).",
        )
    if not above(bmi, wr.bmi_above.value):
        return _DosingWeight(weight, actual, weight)
    assert height_cm is not None
    male = sex == "male"
    base = wr.base_male if male else wr.base_female
    ibw = base.value + wr.increment.value * (
        (height_cm - wr.reference_height.value) / wr.per_height.value
    )
    sex_note = ""
    if sex not in ("male", "female"):
        sex_note = (
            " The sex is not recorded as male or female, so the female formula (the lower "
            "weight) was used."
        )
    if not ibw > 0:
        return _DosingWeight(
            weight,
            actual,
            weight,
            caveat=f"The BMI is {num(bmi)} (above {num(wr.bmi_above.value)}) but the "
            f"{wr.formula} ideal body weight formula gives no weight at "
            f"{num(height_cm)} cm, so the actual weight was used.",
        )
    used = min(ibw, weight)
    return _DosingWeight(
        used,
        f"ideal body weight {num(used)} kg",
        weight,
        ideal=True,
        caveat=f"The BMI is {num(bmi)} (above {num(wr.bmi_above.value)}), so the mg/kg limit was "
        f"applied to the ideal body weight ({wr.formula} formula, unverified [U]: not in the "
        f"reference notes).{sex_note}",
        level=_worst(wr.bmi_above.level, base.level, wr.increment.level),
        sources=(wr.bmi_above.source, base.source),
    )


# ---- block.local-anaesthetic-max -----------------------------------------------------------------


def _bolus_text(step: Any) -> str:
    return (
        f"{num(step.concentration_mg_per_ml)} mg/mL × {num(step.bolus_ml)} mL "
        f"= {num(step.bolus_mg)} mg"
    )


def _infusion_hours(step: Any) -> float:
    return _HOURS_PER_DAY if step.infusion_h is None else min(_HOURS_PER_DAY, step.infusion_h)


def _per_kg_findings(
    step: Any, index: int | None, lim: _catalog.SourcedValue, w: _DosingWeight, adr: str
) -> list[Any]:
    bolus = step.bolus_mg
    drug = step.drug
    at_actual = lim.value * w.actual_kg
    if above(bolus, at_actual):
        extra = f" {w.caveat}" if w.caveat and not w.ideal else ""
        if w.ideal:
            extra = (
                f" It is above the limit even at the actual weight; at the ideal body weight "
                f"({num(w.kg)} kg, unverified formula) the limit would be "
                f"{num(lim.value * w.kg)} mg."
            )
        return [
            finding(
                "block.local-anaesthetic-max",
                "error",
                f"{drug} bolus {num(bolus)} mg{adr} is above {num(lim.value)} mg/kg × "
                f"{num(w.actual_kg)} kg (actual weight) = {num(at_actual)} mg "
                f"({lim.note or lim.source}).{extra}",
                step=index,
                source=(lim.source,),
                level=lim.level,
                arithmetic=f"{_bolus_text(step)} > {num(lim.value)} mg/kg × "
                f"{num(w.actual_kg)} kg = {num(at_actual)} mg",
                detail={
                    **measure("bolus", bolus, "mg"),
                    **measure("limit", lim.value, "mg/kg"),
                    **measure(
                        "weight_used", w.actual_kg, "kg", f"actual weight {num(w.actual_kg)} kg"
                    ),
                    **measure("limit_mg", at_actual, "mg"),
                },
            )
        ]
    if w.ideal and above(bolus, lim.value * w.kg):
        at_ideal = lim.value * w.kg
        return [
            finding(
                "block.local-anaesthetic-max",
                "error",
                f"{drug} bolus {num(bolus)} mg{adr} is above {num(lim.value)} mg/kg × "
                f"{num(w.kg)} kg (ideal body weight) = {num(at_ideal)} mg, though not above "
                f"the limit at the actual weight ({num(at_actual)} mg). {w.caveat}",
                step=index,
                source=(lim.source, *w.sources),
                level=_worst(lim.level, w.level),
                arithmetic=f"{_bolus_text(step)} > {num(lim.value)} mg/kg × {num(w.kg)} kg "
                f"= {num(at_ideal)} mg",
                detail={
                    **measure("bolus", bolus, "mg"),
                    **measure("limit", lim.value, "mg/kg"),
                    **measure("weight_used", w.kg, "kg", w.label),
                    **measure("limit_mg", at_ideal, "mg"),
                },
            )
        ]
    return []


@rule(
    "block.local-anaesthetic-max",
    title="Local anaesthetic maximum dose",
    applies_to=_KIND,
    needs=("step.concentration", "step.bolus_volume", "step.infusion_rate", "patient.weight"),
    sources=("lidocaine-label", "bupivacaine-label", "ropivacaine-mims", "la-dose-secondary"),
    severity="error above a limit; warning when the limit, or the ideal body weight it was "
    "applied to, is [U]",
    data_files=(_LA_FILE,),
    description="The bolus (concentration × volume) above the drug's mg/kg limit or its "
    "absolute cap, or the bolus plus the infusion over any 24 hours above the 24-hour cap. "
    "Limits with and without adrenaline differ (a drug with no separate adrenaline limit uses "
    "its plain one). The mg/kg limit applies to the actual weight, or to the ideal body weight "
    "(Devine formula, unverified: a finding that depends on it is a warning) when the BMI is "
    "above {local_anaesthetics:dosing_weight.bmi_above!n}; without a height the actual "
    "weight is used and the finding says so. Without a "
    "weight the mg/kg part is not checked: the rule reports *not checked* (missing weight) "
    "unless an absolute cap is exceeded, and then the finding says the mg/kg part was not "
    "checked. A drug with no mg/kg limit in the table (levobupivacaine) is checked against its "
    "absolute caps only; a 24-hour cap is not given for lidocaine, so a lidocaine infusion "
    "is not checked (the bolus still is). Block steps on the same day are summed by "
    "block.cumulative-dose.",
)
def local_anaesthetic_max(ctx: Context, index: int | None, step: Any) -> Any:
    """Check the bolus against mg/kg and absolute caps, and the 24-hour total against its cap."""
    patient = ctx.patient
    # the outcome depends on the step and the weight, height and sex alone; passes and
    # not-checked outcomes (immutable values) are kept
    # (for this very step object: a weak reference, never the step; bounded in bytes)
    if index is None:
        return _local_anaesthetic_max(ctx, index, step)
    key = ("block.local-anaesthetic-max", patient.weight_kg, patient.height_cm, patient.sex)
    hit = kept_outcome(ctx, index, key)
    if hit is not NOT_KEPT:
        return hit
    result = _local_anaesthetic_max(ctx, index, step)
    if result is PASSED or isinstance(result, Missing):
        keep(ctx, index, key, result)
    return result


def _local_anaesthetic_max(ctx: Context, index: int | None, step: Any) -> Any:
    drug = _local_anaesthetics().get(step.drug)
    if drug is None:
        return Missing(
            "catalog limit", f"{_LA_FILE} has no limits for {step.drug}, so its dose is unchecked"
        )
    limits = drug.plain
    adr = ""
    if step.adrenaline:
        if drug.adrenaline is not None:
            limits, adr = drug.adrenaline, " with adrenaline"
        else:
            adr = " with adrenaline (no separate limit with adrenaline: the plain limit applies)"
    out = []
    bolus = step.bolus_mg
    weight_missing = False
    if bolus > 0:
        cap = limits.max_single
        if cap is not None and above(bolus, cap.value):
            out.append(
                finding(
                    "block.local-anaesthetic-max",
                    "error",
                    f"{step.drug} bolus {num(bolus)} mg{adr} is above the maximum single dose of "
                    f"{num(cap.value)} mg ({cap.note or cap.source}).",
                    step=index,
                    source=(cap.source,),
                    level=cap.level,
                    arithmetic=f"{_bolus_text(step)} > {num(cap.value)} mg",
                    detail={**measure("bolus", bolus, "mg"), **measure("limit", cap.value, "mg")},
                )
            )
        if limits.max_per_kg is not None:
            w = _dosing_weight(ctx.patient)
            if w is None:
                weight_missing = True
            else:
                out.extend(_per_kg_findings(step, index, limits.max_per_kg, w, adr))
    cap24 = drug.max_24h
    if cap24 is not None and above(step.max_24h_mg, cap24.value):
        hours = _infusion_hours(step)
        parts = [f"{num(bolus)} mg bolus"] if bolus > 0 else []
        if step.infusion_mg_per_h > 0:
            parts.append(f"{num(step.infusion_mg_per_h)} mg/h × {num(hours)} h")
        out.append(
            finding(
                "block.local-anaesthetic-max",
                "error",
                f"{step.drug} gives up to {num(step.max_24h_mg)} mg in 24 hours "
                f"({' + '.join(parts)}), above the 24-hour maximum of {num(cap24.value)} mg "
                f"({cap24.note or cap24.source}).",
                step=index,
                source=(cap24.source,),
                level=cap24.level,
                arithmetic=f"{' + '.join(parts)} = {num(step.max_24h_mg)} mg/24 h "
                f"> {num(cap24.value)} mg/24 h",
                detail={
                    **measure("max_24h", step.max_24h_mg, "mg"),
                    **measure("limit", cap24.value, "mg"),
                },
            )
        )
    if out:
        if weight_missing:
            note = " The mg/kg limit was not checked: no weight is recorded."
            out = [
                attrs.evolve(
                    f,
                    message=f.message + note,
                    detail={**f.detail, "not_checked": "mg/kg limit (no weight recorded)"},
                )
                for f in out
            ]
        return out
    if weight_missing:
        assert limits.max_per_kg is not None
        caps = [
            f"{num(c.value)} mg" + (" per 24 h" if c is drug.max_24h else "")
            for c in (limits.max_single, drug.max_24h)
            if c is not None
        ]
        checked = f"; the absolute cap ({', '.join(caps)}) was not exceeded" if caps else ""
        return Missing(
            "weight",
            f"the {num(limits.max_per_kg.value)} mg/kg limit of {step.drug} needs the patient's "
            f"weight{checked}",
        )
    if drug.max_24h is None and step.infusion_mg_per_h > 0:
        return Missing(
            "24-hour limit",
            f"{_LA_FILE} has no 24-hour maximum for {step.drug}, so its infusion (up to "
            f"{num(step.max_24h_mg)} mg in 24 hours with the bolus) was not checked; only the "
            f"bolus was",
        )
    return PASSED


# ---- anticoagulants (data) -----------------------------------------------------------------------


@attrs.define(frozen=True)
class _Match:
    """When a recorded regimen belongs to a dose row."""

    max_dose_mg: float | None = None
    min_every_h: float | None = None
    dose_per_kg_below: float | None = None

    def describe(self) -> str:
        parts = []
        if self.max_dose_mg is not None:
            parts.append(f"at most {num(self.max_dose_mg)} mg per dose")
        if self.min_every_h is not None:
            parts.append(f"every {num(self.min_every_h)} h or less often")
        if self.dose_per_kg_below is not None:
            parts.append(f"below {num(self.dose_per_kg_below)} mg/kg per dose")
        return ", ".join(parts)


@attrs.define(frozen=True)
class _Regimen:
    name: str
    interval: _catalog.SourcedValue  # hours
    matches: tuple[_Match, ...] = ()
    match_level: str = "V"
    renal_below: float | None = None  # mL/min
    renal_interval_h: float | None = None
    inr_at_most: _catalog.SourcedValue | None = None  # the INR also needed (warfarin)
    restart_h: _catalog.SourcedValue | None = None  # least time from catheter removal to restart


@attrs.define(frozen=True)
class _Agent:
    id: str
    names: tuple[str, ...]
    regimens: tuple[_Regimen, ...]

    @property
    def longest(self) -> _Regimen:
        return self.regimens[-1]


@attrs.define(frozen=True)
class _Statement:
    text: str
    source: str
    level: str
    note: str


def _read_match(raw: Any, where: str) -> _Match:
    if not isinstance(raw, Mapping) or not raw:
        raise DataFileError(f"{where} must be a non-empty table")
    unknown = set(raw) - {"dose", "every", "dose_per_kg_below"}
    if unknown:
        raise DataFileError(f"{where}: unknown keys {sorted(unknown)}")
    return _Match(*(_quantity(raw, k, d, u, where) for k, d, u in _MATCH_KEYS))


_MATCH_KEYS: Final = (
    ("dose", "mass", "mg"),
    ("every", "time", "h"),
    ("dose_per_kg_below", "mass_per_mass", "mg/kg"),
)


def _quantity(entry: Mapping[str, Any], key: str, dimension: str, unit: str, where: str) -> Any:
    """A quantity of a row whose source and level are the row's own (None when absent)."""
    if entry.get(key) is None:
        return None
    try:
        q = _units.as_quantity(entry[key], dimension, field=f"{where}.{key}")
    except UnitError as exc:
        raise DataFileError(f"{where}.{key}: {exc}") from exc
    return _units.magnitude_in(q, unit)


def _inr(raw: Any, where: str) -> _catalog.SourcedValue | None:
    """The INR a row also needs (``inr_at_most = {value = 1.5, source, level, note}``)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise DataFileError(f"{where}.inr_at_most must be a table with value, source and level")
    value = raw.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise DataFileError(f"{where}.inr_at_most.value must be a number above zero")
    sid = raw.get("source")
    if sid not in _catalog.sources():
        raise DataFileError(f"{where}.inr_at_most: 'source' {sid!r} is not an id in sources.toml")
    return _catalog.SourcedValue(
        float(value),
        "1",
        str(sid),
        _catalog.level_of(raw, f"{where}.inr_at_most"),
        str(raw.get("note", "")),
        f"{where}.inr_at_most",
    )


def _check_inr(reg: _Regimen, ac: Anticoagulant, patient: Patient, index: int | None) -> Any:
    """After the interval is met: the INR the row also needs (warfarin), or PASSED."""
    gate = reg.inr_at_most
    if gate is None:
        return PASSED
    if patient.inr is None:
        return Missing(
            "inr",
            f"{ac.drug} was stopped long enough, but a deep plexus block also needs a normal INR "
            f"(at most {num(gate.value)}; {gate.note}); record the patient's latest inr",
        )
    if not above(patient.inr, gate.value):
        return PASSED
    return finding(
        "block.anticoagulation",
        "error",
        f"The INR is {num(patient.inr)}, above {num(gate.value)}: a deep plexus block after "
        f"{ac.drug} needs a normal INR ({gate.note}).",
        step=index,
        source=(gate.source,),
        level=gate.level,
        kind="contraindication",
        arithmetic=f"INR {num(patient.inr)} > {num(gate.value)}",
        detail={"anticoagulant": ac.drug, "inr": patient.inr, "inr_at_most": gate.value},
    )


@cache
def _anticoagulants() -> tuple[Mapping[str, _Agent], _Statement]:
    data = _catalog.data_file(_AC_FILE)
    st = data.get("statement")
    if not isinstance(st, Mapping):
        raise DataFileError(f"{_AC_FILE}: [statement] is missing")
    sid = st.get("source")
    if sid not in _catalog.sources():
        raise DataFileError(f"{_AC_FILE}: statement: 'source' {sid!r} is not an id in sources.toml")
    statement = _Statement(
        str(st.get("text", "")),
        str(sid),
        _catalog.level_of(st, f"{_AC_FILE}: statement"),
        str(st.get("note", "")),
    )
    by_name: dict[str, _Agent] = {}
    for aid, entry in data.get("agents", {}).items():
        where = f"{_AC_FILE}: agents.{aid}"
        rows = entry.get("regimen")
        if not isinstance(rows, list) or not rows:
            raise DataFileError(f"{where}: has no [[regimen]] rows")
        regimens = []
        for i, row in enumerate(rows):
            rw = f"{where}.regimen[{i}]"
            interval = _catalog.sourced(row, dimension="time", unit="h", where=rw, key="interval")
            matches = tuple(
                _read_match(m, f"{rw}.match[{j}]") for j, m in enumerate(row.get("match", ()))
            )
            if matches and i == len(rows) - 1:
                raise DataFileError(
                    f"{rw}: the last row applies when the dose is unknown: no match"
                )
            match_level = _catalog.level_of(row, rw)
            if matches:
                match_level = _catalog.level_of({"level": row.get("match_level")}, f"{rw}.match")
            regimens.append(
                _Regimen(
                    str(row.get("name", "")),
                    interval,
                    matches,
                    match_level,
                    _quantity(row, "renal_below", "renal_clearance", "mL/min", rw),
                    _quantity(row, "renal_interval", "time", "h", rw),
                    _inr(row.get("inr_at_most"), rw),
                    _catalog.sourced(
                        row["restart_after_removal"],
                        dimension="time",
                        unit="h",
                        where=f"{rw}.restart_after_removal",
                    )
                    if isinstance(row.get("restart_after_removal"), Mapping)
                    else None,
                )
            )
        for a, b in itertools.pairwise(regimens):
            if b.interval.value < a.interval.value:
                raise DataFileError(f"{where}: rows must be in order of increasing interval")
        agent = _Agent(
            aid,
            tuple(" ".join(n.lower().split()) for n in entry.get("names", (aid,))),
            tuple(regimens),
        )
        for name in (aid, *agent.names):
            if by_name.get(name, agent).id != aid:
                raise DataFileError(f"{where}: name {name!r} is also used by {by_name[name].id}")
            by_name[name] = agent
    return by_name, statement


def _agent_for(name: str) -> _Agent | None:
    """The agent a name denotes: an exact name, else the longest name it starts with
    (``"apixaban 5 mg"`` → apixaban, ``"heparin iv infusion"`` → heparin-iv).  A name of a
    medicine's length is memoized; a longer text is free text, never kept."""
    return _agent_kept(name) if len(name) <= MAX_KEY_TEXT else _agent_of(name)


@lru_cache(maxsize=1024)
def _agent_kept(name: str) -> _Agent | None:
    return _agent_of(name)


def _agent_of(name: str) -> _Agent | None:
    agents = _anticoagulants()[0]
    key = " ".join(name.lower().split())
    hit = agents.get(key)
    if hit is not None:
        return hit
    best = ""
    for n in agents:
        if key.startswith(n + " ") and len(n) > len(best):
            best = n
    return agents[best] if best else None


# ---- block.anticoagulation -----------------------------------------------------------------------


def _matches(m: _Match, ac: Anticoagulant, weight_kg: float | None) -> bool | None:
    """True/False, or None when an input the match needs is not recorded."""
    if m.max_dose_mg is not None:
        if ac.dose_mg is None:
            return None
        if above(ac.dose_mg, m.max_dose_mg):
            return False
    if m.min_every_h is not None:
        if ac.every_h is None:
            return None
        if below(ac.every_h, m.min_every_h):
            return False
    if m.dose_per_kg_below is not None:
        if ac.dose_mg is None or weight_kg is None:
            return None
        if not below(ac.dose_mg / weight_kg, m.dose_per_kg_below):
            return False
    return True


@attrs.define(frozen=True)
class _Choice:
    """The dose row applied to a recorded anticoagulant, and why."""

    regimen: _Regimen
    interval_h: float
    certain: bool  # False: the row was chosen by a [U] classification
    why: str  # a sentence for the finding ("" when nothing needs saying)


def _choose(agent: _Agent, ac: Anticoagulant, patient: Patient) -> _Choice:
    unknown = False
    for reg in agent.regimens[:-1]:
        results = [_matches(m, ac, patient.weight_kg) for m in reg.matches]
        if True in results:
            interval, why = reg.interval.value, ""
            if reg.renal_below is not None and reg.renal_interval_h is not None:
                renal = patient.renal_function
                if renal is None:
                    interval = reg.renal_interval_h
                    why = (
                        f"Renal function is not recorded, so the longer interval for creatinine "
                        f"clearance below {num(reg.renal_below)} mL/min was used."
                    )
                elif below(renal[0], reg.renal_below):
                    interval = reg.renal_interval_h
                    why = (
                        f"The {renal[1]} is {num(renal[0])} mL/min, below "
                        f"{num(reg.renal_below)}, so the interval is longer."
                    )
            return _Choice(reg, interval, reg.match_level != "U", why)
        if None in results:
            unknown = True
    longest = agent.longest
    why = ""
    if unknown:
        missing = []
        if ac.dose_mg is None:
            missing.append("dose")
        if ac.every_h is None:
            missing.append("dosing interval")
        if patient.weight_kg is None:
            missing.append("patient weight")
        what = " and ".join(missing) or "dose"
        verb = "are" if len(missing) > 1 else "is"
        why = (
            f"The {what} {verb} not recorded, so the dose level cannot be told and the "
            f"{longest.name} interval was used."
        )
    return _Choice(longest, longest.interval.value, True, why)


def _hours(h: float) -> str:
    if h >= 48 and abs(h / 24 - round(h / 24)) < 1e-9:
        return f"{num(h)} h ({num(h / 24)} days)"
    return f"{num(h)} h"


def _untimed(agent: _Agent, statement: _Statement, index: int | None, how: str) -> Any:
    reg = agent.longest
    return finding(
        "block.anticoagulation",
        "warning",
        f"{how}; a deep plexus block needs at least {_hours(reg.interval.value)} after the last "
        f"dose of {agent.id} ({reg.name}; {reg.interval.note}). Record the time since the last "
        f"dose (last_dose_ago).",
        step=index,
        source=(statement.source, reg.interval.source),
        level=_worst(statement.level, reg.interval.level),
        arithmetic=f"time since last dose unknown; needed ≥ {_hours(reg.interval.value)}",
        detail={
            "anticoagulant": agent.id,
            **measure("needed", reg.interval.value, "h", _hours(reg.interval.value)),
        },
    )


@rule(
    "block.anticoagulation",
    title="Anticoagulant timing before a deep plexus block",
    applies_to=_KIND,
    needs=("patient.anticoagulant", "patient.anticoagulant.last_dose_ago"),
    sources=("accessanesthesiology-pnb", "asra-2018", "asra-2010"),
    severity="error when the last dose is too recent; warning when its time is unknown or when "
    "the interval rests on an unverified dose classification",
    data_files=(_AC_FILE,),
    description="A psoas compartment block is a deep plexus block, for which ASRA applies the "
    "neuraxial recommendations (read in a secondary textbook summary: level S). The time from "
    "the patient's last anticoagulant dose to the block (plan day of the step) shorter than the "
    "interval of the table is an error; where the table distinguishes dose levels (apixaban, "
    "rivaroxaban, low-molecular-weight heparin) the recorded dose and interval choose the row, "
    "and an unrecorded dose takes the longest. An unknown time of last dose is a warning, as is "
    "an anticoagulant of the table among the patient's medications with no timing recorded. "
    "A block on a later plan day that is far enough from the last dose only if no further "
    "dose is given is a warning. An anticoagulant not in the table is not checked. With no "
    "anticoagulant status recorded the check is not checked (anticoagulant status named); "
    "anticoagulant = 'none' records that the patient takes none, and the check then passes "
    "(unless an anticoagulant of the table is among the medications). The restart of "
    "anticoagulation after catheter removal is block.anticoagulant-restart's. The recorded "
    "dose and its frequency choose the dose row of data/anticoagulants.toml (a twice-daily "
    "therapeutic enoxaparin dose is not read as prophylactic). After warfarin the block also "
    "needs a normal INR (patient.inr against the row's inr_at_most): without a recorded INR "
    "the check is not "
    "checked, never passed.",
)
def anticoagulation(ctx: Context, index: int | None, step: Any) -> Any:
    """Compare the time since the last anticoagulant dose with the deep-plexus interval."""
    statement = _anticoagulants()[1]
    patient = ctx.patient
    status = patient.anticoagulant
    ac = status if isinstance(status, Anticoagulant) else None
    recorded = None if ac is None else _agent_for(ac.drug)
    result: Any = PASSED
    if status is None:
        result = _NO_STATUS
    elif ac is not None:
        if recorded is None:
            result = Missing(
                "anticoagulant interval",
                f"{ac.drug} is not in {_AC_FILE}; its interval before a deep plexus block was "
                f"not checked",
            )
        else:
            result = _check_timing(recorded, ac, patient, statement, index, step.start_day)
    untimed = []
    for med in patient.medications or ():
        agent = _agent_for(med)
        if agent is None or agent is recorded or agent.longest.interval.value <= 0:
            continue
        untimed.append(
            _untimed(
                agent,
                statement,
                index,
                f"{med} is among the patient's medications but no time of its last dose is "
                f"recorded (only one anticoagulant can be recorded with its timing)",
            )
        )
    if not untimed:
        return result
    if isinstance(result, Missing):
        # The engine keeps one outcome per rule and step: a finding wins, so say it there.
        untimed = [
            attrs.evolve(f, message=f"{f.message} Also not checked: {result.reason}.")
            for f in untimed
        ]
    elif result is not PASSED:
        untimed.insert(0, result)
    return untimed


_NO_STATUS: Final = Missing(
    "anticoagulant status",
    "the patient's anticoagulant is not recorded, so the interval before a deep plexus block "
    "was not checked (record anticoagulant = 'none' when the patient takes none)",
)


def _check_timing(
    agent: _Agent,
    ac: Anticoagulant,
    patient: Patient,
    statement: _Statement,
    index: int | None,
    start_day: int,
) -> Any:
    choice = _choose(agent, ac, patient)
    reg = choice.regimen
    needed = choice.interval_h
    if needed <= 0 and choice.certain:
        return PASSED
    sources = (statement.source, reg.interval.source)
    level = _worst(statement.level, reg.interval.level)
    why = f" {choice.why}" if choice.why else ""
    if ac.last_dose_h is None:
        shown = reg if choice.certain else agent.longest
        most = needed if choice.certain else shown.interval.value
        return finding(
            "block.anticoagulation",
            "warning",
            f"The time since the last dose of {ac.drug} is not recorded; a deep plexus block "
            f"needs at least {_hours(most)} ({shown.name}; {shown.interval.note}).{why} "
            f"Record last_dose_ago.",
            step=index,
            source=(statement.source, shown.interval.source),
            level=_worst(statement.level, shown.interval.level),
            arithmetic=f"time since last dose unknown; needed ≥ {_hours(most)}",
            detail={
                "anticoagulant": agent.id,
                **measure("needed", most, "h", _hours(most)),
                "regimen": shown.name,
            },
        )
    now = ac.last_dose_h
    later = _HOURS_PER_DAY * start_day
    at_block = now + later
    longest = agent.longest
    if below(at_block, needed):
        verdict = "too soon"
    elif not choice.certain and below(at_block, longest.interval.value):
        verdict = "tentative"
    elif start_day > 0 and below(now, needed):
        verdict = "if held"
    else:
        return _check_inr(reg, ac, patient, index)
    # Texts are built only for a finding: the passing path stays cheap.
    when = "at the block" if start_day == 0 else f"at the block on plan day {start_day}"
    elapsed = (
        f"{_hours(now)}"
        if start_day == 0
        else f"{_hours(now)} + {num(later)} h = {_hours(at_block)}"
    )
    detail = {
        "anticoagulant": agent.id,
        "regimen": reg.name,
        **measure("since_last_dose", at_block, "h", _hours(at_block)),
        **measure("needed", needed, "h", _hours(needed)),
    }
    if verdict == "too soon":
        return finding(
            "block.anticoagulation",
            "error",
            f"Only {_hours(at_block)} since the last dose of {ac.drug} {when}; a deep plexus "
            f"block (neuraxial rules) needs at least {_hours(needed)} ({reg.name}; "
            f"{reg.interval.note}).{why}",
            step=index,
            source=sources,
            level=level,
            arithmetic=f"{elapsed} < {_hours(needed)}",
            detail=detail,
        )
    if verdict == "tentative":
        return finding(
            "block.anticoagulation",
            "warning",
            f"{_hours(at_block)} since the last dose of {ac.drug} {when} is enough only if the "
            f"dose is {reg.name} ({_hours(needed)}); that reading of the dose is unverified, and "
            f"the {longest.name} needs {_hours(longest.interval.value)} "
            f"({longest.interval.note}).",
            step=index,
            source=(statement.source, reg.interval.source, longest.interval.source),
            level="U",
            arithmetic=f"{_hours(needed)} ≤ {elapsed} < {_hours(longest.interval.value)}",
            detail={
                **detail,
                **measure(
                    "needed_if_higher_dose",
                    longest.interval.value,
                    "h",
                    _hours(longest.interval.value),
                ),
            },
        )
    return finding(
        "block.anticoagulation",
        "warning",
        f"The block on plan day {start_day} is {_hours(at_block)} after the last recorded "
        f"dose of {ac.drug}, enough only if no further dose is given before it: it needs at "
        f"least {_hours(needed)} ({reg.name}; {reg.interval.note}).{why}",
        step=index,
        source=sources,
        level=level,
        arithmetic=f"{elapsed} ≥ {_hours(needed)} only if {ac.drug} is held from now",
        detail=detail,
    )


# ---- block.anticoagulant-restart -----------------------------------------------------------------


@rule(
    "block.anticoagulant-restart",
    title="Anticoagulant restart after catheter removal",
    applies_to=_KIND,
    needs=("patient.anticoagulant", "step.anticoagulant_restart", "step.catheter_removal"),
    sources=("asra-2018", "lovenox-label-secondary"),
    severity="error when the planned restart is sooner than the table's time after catheter "
    "removal",
    data_files=(_AC_FILE,),
    description="For a recorded anticoagulant whose dose row in data/anticoagulants.toml gives "
    "a least time from catheter removal (or the single-shot block) to the next dose "
    "(restart_after_removal: prophylactic enoxaparin, rivaroxaban, high-dose apixaban), the "
    "block step's anticoagulant_restart sooner than it is an error; without a planned restart "
    "time the check is not checked. The restart counts from catheter removal: the step's "
    "catheter_removal, else the end of its infusion (a single-shot block: the block itself); "
    "a catheter whose removal time is not known (an infusion with no end) is not checked. The "
    "finding names the plan day (and clock time) of the restart; the day plan shows the "
    "removal and the restart. Agents or dose rows without a restart time in data are "
    "not this rule's (nothing is reported).",
)
def anticoagulant_restart(ctx: Context, index: int | None, step: Any) -> Any:
    """Compare the planned anticoagulant restart with the least time after catheter removal."""
    status = ctx.patient.anticoagulant
    if not isinstance(status, Anticoagulant):
        return None
    agent = _agent_for(status.drug)
    if agent is None:
        return None
    reg = _choose(agent, status, ctx.patient).regimen
    least = reg.restart_h
    if least is None:
        return None
    removal = step.removal_h
    if removal is None:
        return Missing(
            "catheter removal time",
            f"{status.drug} ({reg.name}) restarts no sooner than {_hours(least.value)} after "
            f"catheter removal ({least.note}), and this catheter's removal time is not known "
            f"(an infusion with no end): record catheter_removal or infusion_duration on the "
            f"block step",
        )
    planned = step.anticoagulant_restart_h
    if planned is None:
        return Missing(
            "anticoagulant restart time",
            f"{status.drug} ({reg.name}) restarts no sooner than {_hours(least.value)} after "
            f"catheter removal ({least.note}); record anticoagulant_restart on the block step",
        )
    if not below(planned, least.value):
        return PASSED
    day, time = step.day_and_time_after(removal + planned)
    after = "catheter removal" if step.technique == "catheter" else "the single-shot block"
    removed = ""
    if step.technique == "catheter":
        r_day, r_time = step.day_and_time_after(removal)
        removed = f" (removal {_hours(removal)} after the block, plan day {r_day}"
        removed += f" at {r_time})" if r_time else ")"
    at = f"plan day {day}" + (f" at {time}" if time else "")
    return finding(
        "block.anticoagulant-restart",
        "error",
        f"{status.drug} is planned {_hours(planned)} after {after}{removed}, on {at}; "
        f"{reg.name} needs at least {_hours(least.value)} ({least.note}).",
        step=index,
        source=(least.source,),
        level=least.level,
        kind="contraindication",
        arithmetic=f"{_hours(planned)} < {_hours(least.value)}",
        detail={
            "anticoagulant": agent.id,
            **measure("planned", planned, "h", _hours(planned)),
            **measure("needed", least.value, "h", _hours(least.value)),
            **measure("removal_after_block", removal, "h", _hours(removal)),
            "restart_day": day,
            "restart_time": time,
        },
    )


# ---- block.cumulative-dose -----------------------------------------------------------------------


def _block_days(step: Any) -> range:
    last = getattr(step, "last_day", None)
    first = step.start_day
    return range(first, (first + 1 if last is None else last) + 1)


@rule(
    "block.cumulative-dose",
    title="Local anaesthetic summed over the block steps of a day",
    applies_to=(),
    needs=("step.concentration", "step.bolus_volume", "step.infusion_rate", "patient.weight"),
    sources=("lidocaine-label", "bupivacaine-label", "ropivacaine-mims", "la-dose-secondary"),
    severity="error above a limit (label maximum); warning when the limit, or the ideal body "
    "weight it was applied to, is [U]",
    scope="regimen",
    data_files=(_LA_FILE,),
    description="With two or more block steps on the same plan day (left and right psoas "
    "blocks, a repeat bolus), the local anaesthetic of each agent is summed over them: the "
    "boluses of the day against the agent's absolute cap and mg/kg limit (the plain limits "
    "when any of the boluses is without adrenaline), and the day's total (boluses plus the "
    "infusion hours of the day) against its 24-hour cap. Mixing agents on one day is not "
    "checked: the reference notes give no source for adding fractions of each agent's "
    "maximum, so a day with two agents is reported as not checked (each agent is still "
    "summed over its own steps).",
)
def cumulative_dose(ctx: Context, index: int | None, step: Any) -> Any:
    """Sum each agent's local anaesthetic over the block steps of each plan day."""
    blocks = ctx.steps_of(_KIND[0])
    if len(blocks) < 2:
        return None
    by_day: dict[int, list[tuple[int, Any]]] = {}
    for i, s in blocks:
        for day in _block_days(s):
            by_day.setdefault(day, []).append((i, s))
    out: list[Any] = []
    mixed: list[str] = []
    weight_missing = False
    checked = False
    for day, group in sorted(by_day.items()):
        if len(group) < 2:
            continue
        agents: dict[str, list[tuple[int, Any]]] = {}
        for i, s in group:
            agents.setdefault(s.drug, []).append((i, s))
        if len(agents) > 1:
            mixed.append(f"day {day}: {', '.join(sorted(agents))}")
        for drug_id, parts in agents.items():
            if len(parts) < 2:
                continue
            checked = True
            drug = _local_anaesthetics().get(drug_id)
            if drug is None:
                continue
            found, no_weight = _day_totals(ctx, day, drug_id, drug, parts)
            out.extend(found)
            weight_missing = weight_missing or no_weight
    if out:
        return out
    if mixed:
        return Missing(
            "mixed local anaesthetics",
            "more than one local anaesthetic on the same plan day ("
            + "; ".join(mixed)
            + "): adding fractions of each agent's maximum has no source in the reference "
            "notes, so the combination is not checked (each agent is checked on its own)",
        )
    if weight_missing:
        return Missing("weight", "the mg/kg limit of the day's summed boluses needs the weight")
    return PASSED if checked else None


def _day_totals(
    ctx: Context, day: int, drug_id: str, drug: _LocalAnaesthetic, parts: list[tuple[int, Any]]
) -> tuple[list[Any], bool]:
    steps_txt = ", ".join(str(i + 1) for i, _ in parts)
    first = parts[0][0]
    boluses = [(i, s) for i, s in parts if s.start_day == day and s.bolus_mg > 0]
    limits = drug.plain
    if drug.adrenaline is not None and all(s.adrenaline for _, s in boluses):
        limits = drug.adrenaline
    out: list[Any] = []
    weight_missing = False
    bolus = sum(s.bolus_mg for _, s in boluses)
    if len(boluses) >= 2:
        terms = " + ".join(f"{num(s.bolus_mg)} mg" for _, s in boluses)
        cap = limits.max_single
        if cap is not None and above(bolus, cap.value):
            out.append(
                finding(
                    "block.cumulative-dose",
                    "error",
                    f"{drug_id} boluses on plan day {day} (steps {steps_txt}) total {num(bolus)} "
                    f"mg, above the maximum of {num(cap.value)} mg ({cap.note or cap.source}).",
                    step=first,
                    source=(cap.source,),
                    level=cap.level,
                    kind="label-maximum",
                    beyond=bolus / cap.value if cap.value > 0 else None,
                    arithmetic=f"{terms} = {num(bolus)} mg > {num(cap.value)} mg",
                    detail={
                        "day": day,
                        "steps": [i for i, _ in boluses],
                        **measure("bolus_total", bolus, "mg"),
                        **measure("limit", cap.value, "mg"),
                    },
                )
            )
        per_kg = limits.max_per_kg
        if per_kg is not None:
            w = _dosing_weight(ctx.patient)
            if w is None:
                weight_missing = True
            elif above(bolus, per_kg.value * w.kg):
                at = per_kg.value * w.kg
                out.append(
                    finding(
                        "block.cumulative-dose",
                        "error",
                        f"{drug_id} boluses on plan day {day} (steps {steps_txt}) total "
                        f"{num(bolus)} mg, above {num(per_kg.value)} mg/kg × {w.label} = "
                        f"{num(at)} mg ({per_kg.note or per_kg.source}).",
                        step=first,
                        source=(per_kg.source, *w.sources),
                        level=_worst(per_kg.level, w.level),
                        kind="label-maximum",
                        beyond=bolus / at if at > 0 else None,
                        arithmetic=f"{terms} = {num(bolus)} mg > {num(per_kg.value)} mg/kg × "
                        f"{num(w.kg)} kg = {num(at)} mg",
                        detail={
                            "day": day,
                            "steps": [i for i, _ in boluses],
                            **measure("bolus_total", bolus, "mg"),
                            **measure("limit_mg", at, "mg"),
                            "weight_used": w.label,
                        },
                    )
                )
    cap24 = drug.max_24h
    if cap24 is not None:
        per_step = [(i, s.local_anaesthetic_mg_on(day)) for i, s in parts]
        total = sum(mg for _, mg in per_step)
        if above(total, cap24.value):
            terms = " + ".join(f"{num(mg)} mg (step {i + 1})" for i, mg in per_step)
            out.append(
                finding(
                    "block.cumulative-dose",
                    "error",
                    f"{drug_id} on plan day {day} totals up to {num(total)} mg over steps "
                    f"{steps_txt}, above the 24-hour maximum of {num(cap24.value)} mg "
                    f"({cap24.note or cap24.source}).",
                    step=first,
                    source=(cap24.source,),
                    level=cap24.level,
                    kind="label-maximum",
                    beyond=total / cap24.value if cap24.value > 0 else None,
                    arithmetic=f"{terms} = {num(total)} mg > {num(cap24.value)} mg/24 h",
                    detail={
                        "day": day,
                        "steps": [i for i, _ in parts],
                        **measure("day_total", total, "mg"),
                        **measure("limit", cap24.value, "mg"),
                    },
                )
            )
    return out, weight_missing


RULES: tuple[Rule, ...] = (
    local_anaesthetic_max,
    anticoagulation,
    cumulative_dose,
    anticoagulant_restart,
)
