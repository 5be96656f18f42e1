"""Organ function and age: drugs to avoid and doses to lower in renal or hepatic impairment and
in old age.

``renal.avoid``: regular morphine below its renal threshold → warning; regular codeine, pethidine
and tramadol modified-release below theirs → error (the sources say avoid / contraindicated: the
thresholds and severity are data, ``organ.toml``).
``renal.dose-adjust``: gabapentin, pregabalin or tramadol above the maximum daily dose of the
patient's renal band → warning; error above a label maximum (tramadol's lowest band).
``hepatic.dose-adjust``: acetaminophen above its hepatic maximum with hepatic impairment (mild or
worse) or a low weight; any tramadol step in severe hepatic impairment (above the label's cirrhosis
dose, as modified-release tablets, or within the cirrhosis dose, which the finding names as the
reference point) → warning.
``age.dose-adjust``: tramadol above its daily maximum in older patients (``data/organ.toml``
[age.tramadol]) → warning.

Renal function is the creatinine clearance when recorded, else the eGFR; each finding names the
one it used.  A daily dose is the drug's total on one plan day over every step that gives it that
day (regular doses and the PRN maximum), as ``dose.max-daily`` reads it: steps that do not overlap
in time are not added up, and a finding names the day(s) over the maximum.  Such a finding is
reported once, on the first step given on those days.  Values come from
``data/organ.toml``.  A check whose patient input is unknown is *not checked*, naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, Final, cast

import attrs

from .. import _catalog
from ..errors import DataFileError
from ..report import Severity
from ._engine import PASSED, Context, Missing, Rule, finding, for_drugs, rule
from ._util import above, below, num, suggested_dose_within_daily
from ._util import measure as measure_of

__all__ = ["RULES"]


_FILE: Final = "organ.toml"
_KINDS: Final = ("opioid", "adjuvant")
_SEVERITIES: Final = ("warning", "error")
_RENAL_UNITS: Final = {"creatinine clearance": "mL/min", "eGFR": "mL/min/1.73 m²"}


# ---- tables ------------------------------------------------------------------------------------


@attrs.define(frozen=True)
class _Avoid:
    drug: str
    below: _catalog.SourcedValue
    regular_only: bool
    formulation: str
    severity: str


@attrs.define(frozen=True)
class _Band:
    limit: float | None  # the band applies below (or up to) this renal value; None: the rest
    inclusive: bool
    max_daily: _catalog.SourcedValue | None
    band: str
    source: str
    level: str
    note: str


@attrs.define(frozen=True)
class _Tables:
    avoid: Mapping[str, tuple[_Avoid, ...]]
    bands: Mapping[str, tuple[_Band, ...]]
    apap_grades: frozenset[str]
    apap_hepatic_max: _catalog.SourcedValue
    apap_low_weight: _catalog.SourcedValue
    apap_low_weight_max: _catalog.SourcedValue
    tramadol_grades: frozenset[str]
    tramadol_max_single: _catalog.SourcedValue
    tramadol_max_daily: _catalog.SourcedValue
    tramadol_ir: str
    tramadol_avoid_formulation: str
    tramadol_avoid_source: str
    tramadol_avoid_level: str
    tramadol_avoid_note: str
    age_over: _catalog.SourcedValue
    age_max: _catalog.SourcedValue
    age_drug: str


def _get(raw: Mapping[str, Any], *path: str) -> Any:
    node: Any = raw
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise DataFileError(f"{_FILE}: {'.'.join(path)} is missing")
        node = node[key]
    return node


def _w(*path: object) -> str:
    return f"{_FILE}: " + ".".join(str(p) for p in path)


def _renal(entry: Mapping[str, Any], key: str, where: str) -> _catalog.SourcedValue:
    return _catalog.sourced(entry, dimension="renal_clearance", unit="mL/min", where=where, key=key)


def _rate(entry: Mapping[str, Any], where: str, key: str = "max_daily") -> _catalog.SourcedValue:
    return _catalog.sourced(entry, dimension="mass_rate", unit="mg/day", where=where, key=key)


def _grades(entry: Mapping[str, Any], where: str) -> frozenset[str]:
    from ..patient import HEPATIC_IMPAIRMENT

    grades = entry.get("grades")
    if not isinstance(grades, list) or not set(grades) <= set(HEPATIC_IMPAIRMENT):
        raise DataFileError(f"{where}.grades must be a list of {', '.join(HEPATIC_IMPAIRMENT)}")
    return frozenset(grades)


@cache
def _tables() -> _Tables:
    raw = _catalog.data_file(_FILE)
    avoid: dict[str, list[_Avoid]] = {}
    for i, entry in enumerate(_get(raw, "renal", "avoid")):
        where = _w("renal", f"avoid[{i}]")
        drug = _catalog.drug(str(entry.get("drug", "")), field=f"{where}.drug").id
        severity = entry.get("severity")
        if severity not in _SEVERITIES:
            raise DataFileError(f"{where}.severity must be warning or error, not {severity!r}")
        avoid.setdefault(drug, []).append(
            _Avoid(
                drug,
                _renal(entry, "below", where),
                bool(entry.get("regular_only", False)),
                str(entry.get("formulation", "")),
                str(severity),
            )
        )
    bands: dict[str, tuple[_Band, ...]] = {}
    for name, rows in _get(raw, "renal", "dose").items():
        drug = _catalog.drug(name, field=_w("renal", "dose", name)).id
        out: list[_Band] = []
        for i, entry in enumerate(rows):
            where = _w("renal", "dose", f"{name}[{i}]")
            if "below" in entry and "up_to" in entry:
                raise DataFileError(f"{where}: give 'below' or 'up_to', not both")
            key = "below" if "below" in entry else "up_to" if "up_to" in entry else ""
            limit = _renal(entry, key, where).value if key else None
            if (limit is None) != (i == len(rows) - 1):
                raise DataFileError(f"{where}: only the last band has no 'below'/'up_to'")
            if out and limit is not None and out[-1].limit is not None and limit < out[-1].limit:
                raise DataFileError(f"{where}: bands must be written lowest first")
            sid = entry.get("source")
            if sid not in _catalog.sources():
                raise DataFileError(f"{where}: 'source' {sid!r} is not an id in sources.toml")
            out.append(
                _Band(
                    limit,
                    key == "up_to",
                    _rate(entry, where) if "max_daily" in entry else None,
                    str(entry.get("band", "")),
                    str(sid),
                    _catalog.level_of(entry, where),
                    str(entry.get("note", "")),
                )
            )
        bands[drug] = tuple(out)
    apap = _get(raw, "hepatic", "acetaminophen")
    low = _get(raw, "hepatic", "acetaminophen_low_weight")
    tram = _get(raw, "hepatic", "tramadol")
    tram_single = _get(tram, "max_single")
    tram_avoid = _get(tram, "avoid")
    if tram_avoid.get("source") not in _catalog.sources():
        raise DataFileError(f"{_w('hepatic.tramadol.avoid')}: unknown source")
    (age_drug, age), *more = _get(raw, "age").items()
    if more:
        raise DataFileError(f"{_w('age')}: one drug only is supported")
    return _Tables(
        {d: tuple(v) for d, v in avoid.items()},
        bands,
        _grades(apap, _w("hepatic.acetaminophen")),
        _rate(apap, _w("hepatic.acetaminophen")),
        _catalog.sourced(
            low,
            dimension="mass",
            unit="kg",
            where=_w("hepatic.acetaminophen_low_weight"),
            key="below_weight",
        ),
        _rate(low, _w("hepatic.acetaminophen_low_weight")),
        _grades(tram, _w("hepatic.tramadol")),
        _catalog.sourced(tram_single, dimension="mass", unit="mg", where=_w("hepatic.tramadol")),
        _rate(_get(tram, "max_daily"), _w("hepatic.tramadol.max_daily"), key="value"),
        str(tram_single.get("formulation", "")),
        str(tram_avoid.get("formulation", "")),
        str(tram_avoid["source"]),
        _catalog.level_of(tram_avoid, _w("hepatic.tramadol.avoid")),
        str(tram_avoid.get("note", "")),
        _catalog.sourced(
            age, dimension="time", unit="year", where=_w("age", age_drug), key="over_age"
        ),
        _rate(age, _w("age", age_drug)),
        _catalog.drug(age_drug).id,
    )


# ---- helpers ---------------------------------------------------------------------------------


@attrs.define(frozen=True)
class _Excess:
    """A drug's days over a daily maximum: the highest day's total and the steps given on it,
    every step given on an over day (``involved``), and the days."""

    total: float
    parts: list[tuple[int, Any]]
    involved: list[int]
    days: list[tuple[int, int | None]]
    timed: bool
    first_day: int

    @property
    def when(self) -> str:
        """``'Day 14: '`` (``''`` for a regimen without time structure)."""
        if not self.timed:
            return ""
        from .dose import _days_text

        text = _days_text(self.days)
        return f"{text[0].upper()}{text[1:]}: "

    def sum_text(self) -> str:
        """``'day 14: 600 mg × 2 doses/day = 1200 mg/day'``: the highest day's sum."""
        from .dose import _explain

        day = self.first_day if self.timed else None
        terms = " + ".join(_explain(s, day) for _, s in self.parts)
        return f"{'day ' + str(self.first_day) + ': ' if self.timed else ''}{terms} = " + (
            f"{num(self.total)} mg/day"
        )

    def detail(self) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": self.involved}
        if self.timed:
            out["days"] = [[a, b] for a, b in self.days]
        return out


def _excess(ctx: Context, drug: str, limit: float) -> _Excess | None:
    """The drug's totals per plan day (``dose.max-daily``'s stretches) above ``limit``, or
    ``None`` when no single day is above it."""
    from .dose import _day_totals, _merge

    stretches, _parts = _day_totals(ctx, drug)
    over = [st for st in stretches if above(st[2], limit)]
    if not over:
        return None
    timed = not (len(stretches) == 1 and stretches[0][0] == 0 and stretches[0][1] is None)
    first_day, _last, total, given = max(over, key=lambda st: st[2])
    return _Excess(
        total,
        list(given),
        sorted({i for st in over for i, _ in st[3]}),
        _merge([(st[0], st[1]) for st in over]),
        timed,
        first_day,
    )


def _single_doses(step: Any) -> list[float]:
    doses = [step.dose_mg] if step.dose_mg is not None else []
    doses.extend(p.dose_mg for p in step.titration if p.dose_mg is not None)
    return doses


def _over(parts: list[tuple[int, Any]]) -> str:
    return "" if len(parts) == 1 else f" over {len(parts)} steps"


def _renal_text(value: float, measure: str) -> str:
    return f"{measure} {num(value)} {_RENAL_UNITS[measure]}"


def _eq(measure: str) -> str:
    if measure == "creatinine clearance":
        return ""
    return ", read against creatinine clearance thresholds as no creatinine clearance is recorded"


# ---- renal -------------------------------------------------------------------------------------


@rule(
    "renal.avoid",
    title="Opioids to avoid in renal impairment",
    applies_to=_KINDS,
    needs=("patient.creatinine_clearance or patient.egfr",),
    sources=("fast-fact-161", "sps-renal-opioids", "ultram-er-label"),
    severity="warning (morphine); error (codeine, pethidine, tramadol modified-release)",
    data_files=(_FILE,),
    description="Regular morphine with a creatinine clearance (or, without one, an eGFR) below "
    "{organ:renal.avoid[drug=morphine].below} is a warning (caution or avoid); regular codeine "
    "below {organ:renal.avoid[drug=codeine].below} (avoid, Fast Fact #161) and pethidine below "
    "{organ:renal.avoid[drug=pethidine].below} (avoid in renal impairment) are errors; tramadol "
    "modified-release below {organ:renal.avoid[drug=tramadol].below} is an error (Ultram ER label: "
    "not for such patients).",
)
@for_drugs(lambda drug: bool(_tables().avoid.get(drug)))
def renal_avoid(ctx: Context, index: int | None, step: Any) -> Any:
    """Flag a drug the renal avoid list names when renal function is below its threshold."""
    entries = _tables().avoid.get(step.drug)
    if not entries:
        return None
    entries = tuple(
        e
        for e in entries
        if (not e.formulation or e.formulation == step.formulation)
        and not (e.regular_only and step.prn)
    )
    if not entries:
        return None
    renal = ctx.patient.renal_function
    if renal is None:
        return _NO_RENAL
    value, measure = renal
    unit = _RENAL_UNITS[measure]
    out = []
    for e in entries:
        threshold = e.below.value
        if not below(value, threshold):
            continue
        what = ("regular " if e.regular_only else "") + step.drug
        if e.formulation:
            what += f" {e.formulation}"
        out.append(
            finding(
                "renal.avoid",
                cast(Severity, e.severity),
                f"{what.capitalize()} with {_renal_text(value, measure)}, below "
                f"{num(threshold)} {unit}{_eq(measure)}: avoid ({e.below.note}).",
                step=index,
                source=(e.below.source,),
                level=e.below.level,
                arithmetic=f"{measure} {num(value)} {unit} < {num(threshold)} {unit}",
                detail={
                    "renal_measure": measure,
                    **measure_of("renal_value", value, unit),
                    **measure_of("threshold", threshold, unit),
                },
            )
        )
    return out or PASSED


def _band(bands: tuple[_Band, ...], value: float) -> _Band:
    for b in bands:
        if b.limit is None:
            return b
        if below(value, b.limit) or (b.inclusive and not above(value, b.limit)):
            return b
    return bands[-1]


@cache
def _band_kinds() -> dict[str, str]:
    """What each renal band maximum is for the severity policy, by its place in organ.toml
    (``limit_kind``; default ``guideline-caution``, a warning)."""
    out: dict[str, str] = {}
    for name, rows in _get(_catalog.data_file(_FILE), "renal", "dose").items():
        for i, entry in enumerate(rows):
            out[_w("renal", "dose", f"{name}[{i}]")] = str(
                entry.get("limit_kind", "guideline-caution")
            )
    return out


def _band_kind(where: str) -> str:
    return _band_kinds().get(where, "guideline-caution")


@rule(
    "renal.dose-adjust",
    title="Renal dose bands (gabapentin, pregabalin, tramadol)",
    applies_to=_KINDS,
    needs=("patient.creatinine_clearance or patient.egfr", "step.dose", "step.schedule"),
    sources=("gabapentin-label", "pregabalin-cdhb", "ultram-label"),
    severity="error above a label maximum of the band (tramadol below "
    "{organ:renal.dose.tramadol[limit_kind=label-maximum].below}, [V]); warning for the other "
    "bands (severity policy: limit_kind in organ.toml)",
    data_files=(_FILE,),
    description="The total daily dose of gabapentin, pregabalin or tramadol on any one plan day "
    "(summed over the steps given that day; the finding names the days) above the maximum of "
    "the patient's renal band (gabapentin label table [S], pregabalin Canterbury DHB sheet [S], "
    "tramadol below {organ:renal.dose.tramadol[limit_kind=label-maximum].below}: "
    "{organ:renal.dose.tramadol[limit_kind=label-maximum].max_daily} [V]).",
)
@for_drugs(lambda drug: drug in _tables().bands)
def renal_dose_adjust(ctx: Context, index: int | None, step: Any) -> Any:
    """Compare the drug's total daily dose with the maximum of the patient's renal band."""
    bands = _tables().bands.get(step.drug)
    if bands is None:
        return None
    renal = ctx.patient.renal_function
    if renal is None:
        return _NO_RENAL
    value, measure = renal
    band = _band(bands, value)
    limit = band.max_daily
    ex = None if limit is None else _excess(ctx, step.drug, limit.value)
    if ex is None or limit is None:
        return PASSED
    if ex.involved[0] != index:
        return None  # reported on the first step given on the days over the limit
    total = ex.total
    return finding(
        "renal.dose-adjust",
        "warning",
        f"{ex.when}{step.drug.capitalize()} totals {num(total)} mg/day{_over(ex.parts)}, above "
        f"the maximum of {num(limit.value)} mg/day for {band.band}: the patient's "
        f"{_renal_text(value, measure)}{_eq(measure)} ({limit.note}).",
        step=index,
        source=(limit.source,),
        level=limit.level,
        kind=_band_kind(limit.where),
        beyond=total / limit.value if limit.value > 0 else None,
        arithmetic=f"{ex.sum_text()} > {num(limit.value)} mg/day ({band.band})",
        detail={
            **measure_of("daily_dose", total, "mg/day"),
            **measure_of("limit", limit.value, "mg/day"),
            "band": band.band,
            "renal_measure": measure,
            **measure_of("renal_value", value, _RENAL_UNITS[measure]),
            **ex.detail(),
        },
    )


# ---- hepatic -------------------------------------------------------------------------------------


def _acetaminophen(ctx: Context, index: int | None, step: Any) -> Any:
    t = _tables()
    hepatic = ctx.patient.hepatic_impairment
    weight = ctx.patient.weight_kg
    out = []
    mine = []  # the findings reported on this step (the first one given on the days over)
    missing = []
    ex = None
    if hepatic is None:
        missing.append("hepatic impairment")
    elif hepatic in t.apap_grades:
        lim = t.apap_hepatic_max
        ex = _excess(ctx, step.drug, lim.value)
        if ex is not None:
            f = finding(
                "hepatic.dose-adjust",
                "warning",
                f"{ex.when}Acetaminophen totals {num(ex.total)} mg/day{_over(ex.parts)} with "
                f"{hepatic} hepatic impairment, above {num(lim.value)} mg/day ({lim.note}).",
                step=ex.involved[0],
                source=(lim.source,),
                level=lim.level,
                arithmetic=f"{ex.sum_text()} > {num(lim.value)} mg/day",
                detail={
                    **measure_of("daily_dose", ex.total, "mg/day"),
                    **measure_of("limit", lim.value, "mg/day"),
                    "hepatic_impairment": hepatic,
                    **ex.detail(),
                },
            )
            out.append(f)
            if ex.involved[0] == index:
                mine.append(f)
    threshold = t.apap_low_weight
    if weight is None:
        missing.append("weight")
    elif below(weight, threshold.value):
        lim = t.apap_low_weight_max
        ex = _excess(ctx, step.drug, lim.value)
        if ex is not None:
            f = finding(
                "hepatic.dose-adjust",
                "warning",
                f"{ex.when}Acetaminophen totals {num(ex.total)} mg/day{_over(ex.parts)} at "
                f"{num(weight)} kg (below {num(threshold.value)} kg), above {num(lim.value)} "
                f"mg/day. The {num(threshold.value)} kg threshold and this maximum are "
                f"unverified [U]: {lim.note}.",
                step=ex.involved[0],
                source=(lim.source,),
                level=lim.level,
                arithmetic=f"weight {num(weight)} kg < {num(threshold.value)} kg; "
                f"{ex.sum_text()} > {num(lim.value)} mg/day",
                detail={
                    **measure_of("daily_dose", ex.total, "mg/day"),
                    **measure_of("limit", lim.value, "mg/day"),
                    **measure_of("weight", weight, "kg"),
                    **ex.detail(),
                },
            )
            out.append(f)
            if ex.involved[0] == index:
                mine.append(f)
    if out:
        return mine or None
    if missing:
        return _apap_missing(tuple(missing))
    return PASSED


@cache
def _apap_missing(missing: tuple[str, ...]) -> Missing:
    why = {
        "hepatic impairment": "the hepatic impairment grade (none, mild, moderate, severe) "
        "is not recorded",
        "weight": f"the weight is not recorded (a lower maximum applies below "
        f"{num(_tables().apap_low_weight.value)} kg)",
    }
    return Missing(" and ".join(missing), "; ".join(why[m] for m in missing))


_NO_HEPATIC: Final = Missing("hepatic impairment", "the hepatic impairment grade is not recorded")
_NO_AGE: Final = Missing("age", "the patient's age is not recorded")
_NO_RENAL: Final = Missing(
    "renal function", "neither a creatinine clearance nor an eGFR is recorded"
)


def _tramadol(ctx: Context, index: int | None, step: Any) -> Any:
    t = _tables()
    hepatic = ctx.patient.hepatic_impairment
    if hepatic is None:
        return _NO_HEPATIC
    if hepatic not in t.tramadol_grades:
        return PASSED
    out = []
    if step.formulation == t.tramadol_avoid_formulation:
        out.append(
            finding(
                "hepatic.dose-adjust",
                "warning",
                f"Tramadol {step.formulation} in {hepatic} hepatic impairment: avoid "
                f"({t.tramadol_avoid_note}).",
                step=index,
                source=(t.tramadol_avoid_source,),
                level=t.tramadol_avoid_level,
                detail={"hepatic_impairment": hepatic, "formulation": step.formulation},
            )
        )
        return out
    single = t.tramadol_max_single
    daily = t.tramadol_max_daily
    if t.tramadol_ir and step.formulation != t.tramadol_ir:
        return _tramadol_in_impairment(step, index, hepatic, single, daily)
    doses = _single_doses(step)
    if doses and above(max(doses), single.value):
        dose = max(doses)
        out.append(
            finding(
                "hepatic.dose-adjust",
                "warning",
                f"Tramadol {num(dose)} mg per dose in {hepatic} hepatic impairment, above "
                f"{num(single.value)} mg ({single.note}).",
                step=index,
                source=(single.source,),
                level=single.level,
                arithmetic=f"{num(dose)} mg > {num(single.value)} mg",
                detail={
                    **measure_of("dose", dose, "mg"),
                    **measure_of("limit", single.value, "mg"),
                },
            )
        )
    ex = _excess(ctx, step.drug, daily.value)
    if ex is not None and ex.involved[0] == index:
        out.append(
            finding(
                "hepatic.dose-adjust",
                "warning",
                f"{ex.when}Tramadol totals {num(ex.total)} mg/day{_over(ex.parts)} in {hepatic} "
                f"hepatic impairment, above {num(daily.value)} mg/day ({daily.note}).",
                step=index,
                source=(daily.source,),
                level=daily.level,
                arithmetic=f"{ex.sum_text()} > {num(daily.value)} mg/day",
                detail={
                    **measure_of("daily_dose", ex.total, "mg/day"),
                    **measure_of("limit", daily.value, "mg/day"),
                    **ex.detail(),
                },
            )
        )
    return out or _tramadol_in_impairment(step, index, hepatic, single, daily)


def _tramadol_in_impairment(
    step: Any,
    index: int | None,
    hepatic: str,
    single: _catalog.SourcedValue,
    daily: _catalog.SourcedValue,
) -> Any:
    """The warning every tramadol step gets in severe hepatic impairment when no limit is
    exceeded: the label's cirrhosis dose is named as the reference point, never as a pass."""
    doses = _single_doses(step)
    given = [f"{num(max(doses))} mg per dose"] if doses else []
    given.append(f"{num(step.daily_dose_mg)} mg/day{' at most (PRN)' if step.prn else ''}")
    what = f" ({', '.join(given)})"
    return finding(
        "hepatic.dose-adjust",
        "warning",
        f"Tramadol{what} in {hepatic} hepatic impairment: the reference point is the label's "
        f"cirrhosis dose, at most {num(single.value)} mg per dose and {num(daily.value)} mg/day "
        f"({single.note}).",
        step=index,
        source=(single.source,),
        level=single.level,
        detail={
            "hepatic_impairment": hepatic,
            **measure_of("reference_single", single.value, "mg"),
            **measure_of("reference_daily", daily.value, "mg/day"),
            "formulation": step.formulation,
        },
    )


@rule(
    "hepatic.dose-adjust",
    title="Hepatic impairment and low weight (acetaminophen, tramadol)",
    applies_to=_KINDS,
    needs=("patient.hepatic_impairment", "patient.weight"),
    sources=(
        "acetaminophen-liver-secondary",
        "acetaminophen-low-weight-note",
        "ultram-label",
        "ultram-er-label",
    ),
    severity="warning",
    data_files=(_FILE,),
    description="Acetaminophen above {organ:hepatic.acetaminophen.max_daily} on any one plan day "
    "with hepatic "
    "impairment (mild or worse) [S] or a weight below "
    "{organ:hepatic.acetaminophen_low_weight.below_weight} [U: the threshold is not in the "
    "reference notes]; any tramadol step in severe hepatic impairment: as modified-release tablets "
    "(not for Child-Pugh C), above the label's cirrhosis dose ({organ:hepatic.tramadol.max_single} "
    "a dose, {organ:hepatic.tramadol.max_daily}), or, within it, a warning naming that dose as the "
    "reference point [V].",
)
@for_drugs(lambda drug: drug in ("acetaminophen", "tramadol"))
def hepatic_dose_adjust(ctx: Context, index: int | None, step: Any) -> Any:
    """Check acetaminophen and tramadol against the hepatic (and low-weight) maxima."""
    if step.drug == "acetaminophen":
        return _acetaminophen(ctx, index, step)
    if step.drug == "tramadol":
        return _tramadol(ctx, index, step)
    return None


# ---- age -----------------------------------------------------------------------------------


@rule(
    "age.dose-adjust",
    title="Tramadol over {organ:age.tramadol.over_age}",
    applies_to=_KINDS,
    needs=("patient.age", "step.dose", "step.schedule"),
    sources=("tramadol-elderly-secondary",),
    severity="warning",
    data_files=(_FILE,),
    description="Tramadol above {organ:age.tramadol.max_daily} (total over its steps on any one "
    "plan day; the finding names the days) in a patient "
    "over {organ:age.tramadol.over_age} [S, secondary summaries of the label].",
)
@for_drugs(lambda drug: drug == _tables().age_drug)
def age_dose_adjust(ctx: Context, index: int | None, step: Any) -> Any:
    """Compare tramadol's total daily dose with the maximum above the age of data/organ.toml."""
    t = _tables()
    if step.drug != t.age_drug:
        return None
    age = ctx.patient.age
    if age is None:
        return _NO_AGE
    over = t.age_over
    if not above(age, over.value):
        return PASSED
    limit = t.age_max
    ex = _excess(ctx, step.drug, limit.value)
    if ex is None:
        return PASSED
    if ex.involved[0] != index:
        return None  # reported on the first step given on the days over the limit
    total = ex.total
    return finding(
        "age.dose-adjust",
        "warning",
        f"{ex.when}{step.drug.capitalize()} totals {num(total)} mg/day{_over(ex.parts)} at "
        f"{num(age)} years, above {num(limit.value)} mg/day over {num(over.value)} years "
        f"({limit.note}).",
        step=index,
        source=(limit.source,),
        level=limit.level,
        arithmetic=f"age {num(age)} > {num(over.value)} years; {ex.sum_text()} > "
        f"{num(limit.value)} mg/day",
        detail={
            **measure_of("daily_dose", total, "mg/day"),
            **measure_of("limit", limit.value, "mg/day"),
            **measure_of("age", age, "year", f"{num(age)} years"),
            **ex.detail(),
            **(suggested_dose_within_daily(step, limit.value) if len(ex.parts) == 1 else {}),
        },
    )


RULES: tuple[Rule, ...] = (renal_avoid, renal_dose_adjust, hepatic_dose_adjust, age_dose_adjust)
