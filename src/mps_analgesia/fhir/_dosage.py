"""Reading one MedicationRequest or ServiceRequest into a step."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from .. import _catalog, _units
from ..errors import MpsAnalgesiaError, StepError
from ..products import Ingredient
from ..steps import (
    STEP_KINDS,
    PsoasCompartmentBlockStep,
    RadiotherapyStep,
    Step,
    TitrationPoint,
)
from ._base import (
    _PERIOD_UNITS_IN,
    CS_STEP_KIND,
    X_ADRENALINE,
    X_BOLUS_VOLUME,
    X_CONCENTRATION,
    X_DOSE_FORM,
    X_FORMULATION,
    X_FRACTIONS,
    X_INFUSION_DURATION,
    X_INFUSION_RATE,
    X_LOCAL_ANAESTHETIC,
    X_PLAN_DAY,
    X_PRIOR_DOSE,
    X_PRIOR_FRACTIONS,
    X_ROLE,
    X_SCHEDULE,
    X_SIDE,
    X_SITE,
    X_START_DAY,
    X_STEP_KIND,
    X_TECHNIQUE,
    X_TOTAL_DOSE,
    _codes,
    _codes_in,
    _drug_from_concept,
    _ext_value,
    _extensions,
    _finite_number,
    _list,
    _numeric_problem,
    _route_from_concept,
    _shown,
)
from ._medication import Medication, _count_word, product_amount, resolve_medication
from ._quantity import _ANNOTATION, from_fhir_quantity
from ._timing import _as_date, _bounds_days, _when, read_timing


def _first_dose_and_rate(dosage: Mapping[str, Any]) -> Mapping[str, Any]:
    dr = dosage.get("doseAndRate")
    if isinstance(dr, list) and dr and isinstance(dr[0], Mapping):
        return dr[0]
    return {}


def _every_from_timing(timing: object) -> Any:
    if not isinstance(timing, Mapping):
        return None
    repeat = timing.get("repeat")
    if not isinstance(repeat, Mapping):
        return None
    period, unit = repeat.get("period"), repeat.get("periodUnit")
    freq = repeat.get("frequency", 1)
    if period is None or unit is None:
        return None
    if not isinstance(unit, str) or unit not in _PERIOD_UNITS_IN:
        raise StepError("timing.repeat.periodUnit", f"{unit!r} is not s, min, h, d or wk")
    if isinstance(freq, bool) or not isinstance(freq, int) or freq < 1:
        raise StepError(
            "timing.repeat.frequency", f"must be a whole number >= 1, not {_shown(freq)}"
        )
    if freq > 2**53:  # beyond exact float integers: no division by it means anything
        raise StepError("timing.repeat.frequency", f"{_shown(freq)} is too large to compute with")
    if isinstance(period, bool) or not isinstance(period, int | float):
        raise StepError("timing.repeat.period", f"must be a number, not {_shown(period)}")
    value = _finite_number(period, "timing.repeat.period")
    if freq != 1:
        value = value / freq
    return _units.Q(value, _PERIOD_UNITS_IN[unit])


def _whole(x: float, field: str) -> int:
    if not math.isfinite(x):
        raise StepError(field, "gives no finite number of doses per 24 h")
    n = round(x)
    if n < 1 or abs(x - n) > 1e-6 * max(1.0, abs(x)):
        raise StepError(field, f"gives {x:g} doses per 24 h, which is not a whole number")
    return int(n)


def _max_doses(
    ratio: object,
    dose: Any,
    med: Medication | None = None,
    field: str = "maxDosePerPeriod",
) -> int:
    if not isinstance(ratio, Mapping):
        raise StepError(field, "must be a Ratio {numerator, denominator}")
    num, den = ratio.get("numerator"), ratio.get("denominator")
    if not isinstance(num, Mapping) or not isinstance(den, Mapping):
        raise StepError(field, "needs a numerator and a denominator")
    hours = _units.magnitude_in(from_fhir_quantity(den, "time", field=f"{field}.denominator"), "h")
    value = num.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise StepError(f"{field}.numerator", f"must be a positive number, not {_shown(value)}")
    value = _finite_number(value, f"{field}.numerator.value")
    code = num.get("code")
    is_count = (
        code is None
        or code == "1"
        or (isinstance(code, str) and _ANNOTATION.sub("", code).strip() in ("", "1"))
    )
    word = _count_word(num) if is_count else None
    if is_count and word not in (None, "1", "dose", "doses", "administration"):
        # a count of the product's units (8 {tablet} per 24 h), not of doses
        if med is None or med.product is None or med.ingredient is None or dose is None:
            raise StepError(
                f"{field}.numerator",
                f"a maximum in {word!r} needs the product's strength: send it in doses "
                "({dose}) or mg",
            )
        _what, amount = product_amount(num, med, med.ingredient, field=f"{field}.numerator")
        per_period = _units.magnitude_in(amount, "mg") / _units.magnitude_in(dose, "mg")
    elif is_count:
        per_period = float(value)
    else:
        amount = from_fhir_quantity(num, "mass", field=f"{field}.numerator")
        if dose is None:
            raise StepError(field, "a maximum in mg needs a dose per administration")
        per_period = _units.magnitude_in(amount, "mg") / _units.magnitude_in(dose, "mg")
    return _whole(per_period * 24.0 / hours, field)


def _sorted_dosages(res: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = res.get("dosageInstruction")
    if not isinstance(raw, list) or not raw:
        raise StepError("dosageInstruction", "is required: the dose and schedule of the order")
    dosages = [d for d in raw if isinstance(d, Mapping)]
    if len(dosages) != len(raw):
        raise StepError("dosageInstruction", "every entry must be a Dosage object")
    return sorted(dosages, key=lambda d: _int_or(d.get("sequence"), 0))


def _phase_days(
    dosages: Sequence[Mapping[str, Any]], start_day: int, start_date: _dt.date | None = None
) -> list[int]:
    """Each phase's plan day: its plan-day extension, else (with the regimen's ``start_date``)
    its ``boundsPeriod.start``, else the previous phase's day plus that phase's bounds."""
    days = []
    day = start_day
    for i, d in enumerate(dosages):
        plan_day = _ext_value(_extensions(d), X_PLAN_DAY, "valueInteger")
        period_day = _period_start_day(d, i, start_date) if i > 0 else None
        if isinstance(plan_day, int) and not isinstance(plan_day, bool):
            if period_day is not None and period_day != plan_day:
                raise StepError(
                    f"dosageInstruction[{i}].timing.repeat.boundsPeriod.start",
                    f"gives plan day {period_day}, but the plan-day extension says day "
                    f"{plan_day}: send one start",
                )
            day = plan_day
        elif period_day is not None:
            day = period_day
        days.append(day)
        timing = d.get("timing")
        repeat = timing.get("repeat") if isinstance(timing, Mapping) else None
        bounds = repeat.get("boundsDuration") if isinstance(repeat, Mapping) else None
        lasts = (
            _bounds_days(repeat, f"dosageInstruction[{i}].timing.repeat")
            if isinstance(repeat, Mapping) and bounds is None
            else None
        )
        if bounds is not None:
            length = from_fhir_quantity(bounds, "time", field=f"dosageInstruction[{i}].bounds")
            day = day + round(_units.magnitude_in(length, "day"))
        elif lasts is not None:
            day = day + lasts
        elif i + 1 < len(dosages):
            nxt = _ext_value(_extensions(dosages[i + 1]), X_PLAN_DAY, "valueInteger")
            if (
                not isinstance(nxt, int)
                and _period_start_day(dosages[i + 1], i + 1, start_date) is None
            ):
                raise StepError(
                    f"dosageInstruction[{i}].timing.repeat.boundsDuration",
                    "successive dosage instructions need a boundsDuration (how long each lasts) "
                    "or, with the plan's start date, a boundsPeriod",
                )
    return days


def _period_start_day(d: Mapping[str, Any], i: int, start_date: _dt.date | None) -> int | None:
    """The plan day a later phase's ``boundsPeriod.start`` gives (``None`` without one or
    without the regimen's ``start_date``)."""
    timing = d.get("timing")
    repeat = timing.get("repeat") if isinstance(timing, Mapping) else None
    bounds = repeat.get("boundsPeriod") if isinstance(repeat, Mapping) else None
    if start_date is None or not isinstance(bounds, Mapping) or bounds.get("start") is None:
        return None
    field = f"dosageInstruction[{i}].timing.repeat.boundsPeriod.start"
    day = (_as_date(_when(bounds["start"], field)) - start_date).days
    if day < 0:
        raise StepError(field, f"is before the regimen's start date {start_date.isoformat()}")
    return day


def _int_or(value: object, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return default


def medication_index(resources: Iterable[object]) -> dict[str, Mapping[str, Any]]:
    """The Medication resources among ``resources`` (or Bundle entries), by reference.

    Each is found under ``Medication/<id>`` and, for a Bundle entry, under its ``fullUrl`` (a
    transaction Bundle refers to ``urn:uuid:…``).
    """
    out: dict[str, Mapping[str, Any]] = {}
    for item in resources:
        if not isinstance(item, Mapping):
            continue
        res: object = item
        full_url = None
        if "resource" in item and "resourceType" not in item:
            res, full_url = item.get("resource"), item.get("fullUrl")
        if not isinstance(res, Mapping) or res.get("resourceType") != "Medication":
            continue
        rid = res.get("id")
        if isinstance(rid, str) and rid:
            out[f"Medication/{rid}"] = res
        if isinstance(full_url, str) and full_url:
            out[full_url] = res
    return out


def medication_of(
    res: Mapping[str, Any], medications: Mapping[str, Mapping[str, Any]] | None = None
) -> Mapping[str, Any] | None:
    """The medication CodeableConcept of a request or statement, references resolved.

    ``medicationCodeableConcept`` as sent; else ``medicationReference``: ``#id`` names a
    Medication contained in the resource, any other reference one in ``medications`` (see
    :func:`medication_index`), and the Medication's ``code`` is the concept (its ``form`` is
    added as ``_form`` for the dose form).  ``None`` when neither element is sent;
    :class:`StepError` for a reference that cannot be resolved.
    """
    concept = res.get("medicationCodeableConcept")
    if concept is not None:
        return concept if isinstance(concept, Mapping) else None
    ref = res.get("medicationReference")
    if ref is None:
        return None
    target = ref.get("reference") if isinstance(ref, Mapping) else None
    if not isinstance(target, str) or not target.strip():
        display = ref.get("display") if isinstance(ref, Mapping) else None
        if isinstance(display, str) and display.strip():
            return {"text": display}
        raise StepError("medicationReference", "has no reference to a Medication")
    medication: Mapping[str, Any] | None = None
    if target.startswith("#"):
        for contained in _list(res.get("contained")):
            if (
                isinstance(contained, Mapping)
                and contained.get("resourceType") == "Medication"
                and contained.get("id") == target[1:]
            ):
                medication = contained
                break
    else:
        medication = (medications or {}).get(target)
        if medication is None and "/Medication/" in target:
            medication = (medications or {}).get("Medication/" + target.rsplit("/", 1)[-1])
    if medication is None:
        where = "contained in the order" if target.startswith("#") else "in the Bundle"
        raise StepError(
            "medicationReference",
            f"{target!r} is not a Medication {where}: send the Medication with the order "
            "(contained or as a Bundle entry) or a medicationCodeableConcept",
        )
    code = medication.get("code")
    if not isinstance(code, Mapping):
        raise StepError(f"medicationReference({target})", "the Medication has no code")
    out = dict(code)
    form = medication.get("form")
    if isinstance(form, Mapping):
        out["_form"] = form
    return out


_ORDERED: Final = "ordered"


def _dose_and_rate(dosage: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    """The one doseAndRate entry to read: the only one, the ``ordered`` one, or equal ones."""
    raw = dosage.get("doseAndRate")
    if raw is None:
        return {}
    if not isinstance(raw, list) or not all(isinstance(e, Mapping) for e in raw):
        raise StepError(f"{path}.doseAndRate", "must be a list of objects")
    entries: list[Mapping[str, Any]] = list(raw)
    if len(entries) <= 1:
        return entries[0] if entries else {}
    ordered = [e for e in entries if any(c == _ORDERED for _s, c, _d in _codes_in(e.get("type")))]
    if len(ordered) == 1:
        return ordered[0]
    if all(e == entries[0] for e in entries):
        return entries[0]
    raise StepError(
        f"{path}.doseAndRate",
        f"{len(raw)} different doses or rates and none marked type 'ordered': the order is "
        "ambiguous",
    )


def _rate_of(
    entry: Mapping[str, Any], med: Medication, ingredient: Ingredient | None, path: str
) -> Any:
    """The mass rate of a rateQuantity or rateRatio (a volume rate through the concentration)."""
    if entry.get("rateRange") is not None:
        raise StepError(f"{path}.rateRange", "a rate range cannot be checked: send one rate")
    if entry.get("rateRatio") is not None:
        ratio = entry["rateRatio"]
        if not isinstance(ratio, Mapping):
            raise StepError(f"{path}.rateRatio", "must be a Ratio {numerator, denominator}")
        den = from_fhir_quantity(
            ratio.get("denominator"), "time", field=f"{path}.rateRatio.denominator"
        )
        hours = _units.magnitude_in(den, "h")
        if not hours > 0:
            raise StepError(f"{path}.rateRatio.denominator", "must be a positive time")
        what, amount = _dose_or_rate(
            ratio.get("numerator"), med, ingredient, f"{path}.rateRatio.numerator", volume=True
        )
        if what != "dose":
            raise StepError(f"{path}.rateRatio.numerator", "must be an amount (mg, mL, units)")
        return _units.Q(_units.magnitude_in(amount, "mg") / hours, "mg/h")
    q = entry["rateQuantity"]
    if isinstance(q, Mapping) and isinstance(q.get("code"), str):
        read = from_fhir_quantity(q, field=f"{path}.rateQuantity")
        dimension = _units.lookup_unit(_units.format_unit(read.units)).dimension
        if dimension == "volume_rate":
            if med.product is None or ingredient is None or ingredient.per != "mL":
                raise StepError(
                    f"{path}.rateQuantity",
                    "a rate in mL/h needs the product's concentration: send the product code "
                    "or the rate in mg/h",
                )
            ml_h = _units.magnitude_in(read, "mL/h")
            return _units.Q(ml_h * ingredient.amount_mg, "mg/h")
    return from_fhir_quantity(q, "mass_rate", field="rate")


def _dose_or_rate(
    q: object,
    med: Medication,
    ingredient: Ingredient | None,
    field: str,
    *,
    volume: bool = False,
) -> tuple[str, Any]:
    """``("dose", mass)`` or ``("rate", rate)`` of a doseQuantity, through the product if any."""
    if med.product is not None and ingredient is not None:
        return product_amount(q, med, ingredient, field=field)
    return "dose", from_fhir_quantity(q, "mass", field=field)


def _route_of(dosage: Mapping[str, Any], med: Medication, path: str) -> str:
    """The route: the element, else the product's dose form, else the drug's only route."""
    element = dosage.get("route")
    route = _route_from_concept(element)
    if element is not None and route is None:
        raise StepError(
            f"{path}.route",
            "the route has no SNOMED CT code or text this library reads: send a known code "
            "or the route as text",
        )
    if route is not None:
        return route
    if med.product is not None:
        if med.product.route is None:
            raise StepError(
                f"{path}.route",
                f"{med.product.name!r} ({med.product.rxnorm_dose_form}) does not say its route: "
                "send dosageInstruction.route (e.g. intravenous or subcutaneous)",
            )
        return med.product.route
    routes = _catalog.drug(med.drug).routes
    if len(routes) == 1:
        return routes[0]
    raise StepError(
        f"{path}.route",
        f"is required: {med.drug} has several routes ({', '.join(routes)}) and the order names "
        "none (it is not read as oral)",
    )


@attrs.define
class _Phase:
    """One Dosage read: the amounts per ingredient, the schedule, the bounds."""

    amounts: list[dict[str, Any]]
    schedule: dict[str, Any]
    duration_days: int | None
    continuous: bool


def _read_phase(
    d: Mapping[str, Any],
    path: str,
    med: Medication,
    ingredients: Sequence[Ingredient | None],
) -> _Phase:
    entry = _dose_and_rate(d, path)
    amounts: list[dict[str, Any]] = [{} for _ in ingredients]
    rate_given = entry.get("rateQuantity") is not None or entry.get("rateRatio") is not None
    rate_given = rate_given or entry.get("rateRange") is not None
    dose_given = entry.get("doseQuantity") is not None or entry.get("doseRange") is not None
    timing = read_timing(d.get("timing"), f"{path}.timing")
    if rate_given and dose_given and not timing.kwargs:
        raise StepError(
            f"{path}.doseAndRate",
            "a dose and a rate with no timing: is it a bolus or an infusion? Send one",
        )
    if rate_given and not dose_given:
        if med.partners:
            raise StepError(
                f"{path}.doseAndRate",
                "a rate of a combination product does not say of which ingredient",
            )
        amounts[0]["rate"] = _rate_of(entry, med, ingredients[0], f"{path}.doseAndRate")
        return _Phase(amounts, {}, timing.duration_days, True)
    if entry.get("doseRange") is not None:
        rng = entry["doseRange"]
        if not isinstance(rng, Mapping) or rng.get("low") is None or rng.get("high") is None:
            raise StepError(f"{path}.doseAndRate.doseRange", "needs a low and a high")
        for n, ingredient in enumerate(ingredients):
            lo = _dose_or_rate(rng["low"], med, ingredient, f"{path}.doseRange.low")
            hi = _dose_or_rate(rng["high"], med, ingredient, f"{path}.doseRange.high")
            if lo[0] != "dose" or hi[0] != "dose":
                raise StepError(f"{path}.doseRange", "a range of patches cannot be read")
            amounts[n]["dose"] = lo[1]
            if _units.magnitude_in(hi[1], "mg") != _units.magnitude_in(lo[1], "mg"):
                amounts[n]["dose_high"] = hi[1]
    elif entry.get("doseQuantity") is not None:
        for n, ingredient in enumerate(ingredients):
            what, q = _dose_or_rate(entry["doseQuantity"], med, ingredient, "dose")
            amounts[n][what] = q
    else:
        raise StepError(f"{path}.doseAndRate", "needs a doseQuantity, doseRange or a rate")
    if "rate" in amounts[0]:  # a count of patches
        return _Phase(amounts, {}, timing.duration_days, True)
    schedule = dict(timing.kwargs)
    hint = _ext_value(_extensions(d), X_SCHEDULE, "valueCode")
    if hint == "once":
        schedule = {"once": True}
    elif hint == "every" and "times_per_day" in schedule:
        per_day = schedule.pop("times_per_day")
        schedule["every"] = _units.Q(24.0 / per_day, "h")
    elif hint == "times-per-day" and "every" in schedule:
        every_h = _units.magnitude_in(schedule.pop("every"), "h")
        schedule["times_per_day"] = _whole(24.0 / every_h, f"{path}.timing")
    prn = d.get("asNeededBoolean")
    if prn is not None and not isinstance(prn, bool):
        raise StepError(f"{path}.asNeededBoolean", f"must be true or false, not {_shown(prn)}")
    if prn is True or d.get("asNeededCodeableConcept") is not None:
        schedule["prn"] = True
    if d.get("maxDosePerPeriod") is not None and schedule.get("prn"):
        schedule["max_doses_per_24h"] = _max_doses(
            d["maxDosePerPeriod"],
            amounts[0].get("dose_high", amounts[0]["dose"]),
            med,
            f"{path}.maxDosePerPeriod",
        )
    return _Phase(amounts, schedule, timing.duration_days, False)


def _groups(dosages: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Dosages grouped by ``sequence`` (same or absent: concurrent), in sequence order."""
    groups: dict[int | None, list[Mapping[str, Any]]] = {}
    for d in dosages:
        seq = d.get("sequence")
        groups.setdefault(
            seq if isinstance(seq, int) and not isinstance(seq, bool) else None, []
        ).append(d)
    keys = sorted(groups, key=lambda k: (k is not None, k or 0))
    return [groups[k] for k in keys]


def _bounds_start_day(
    first: Mapping[str, Any], start_date: _dt.date | None, extension_day: int | None
) -> int | None:
    """The start day the first dosage's ``boundsPeriod.start`` gives, counted from the regimen's
    ``start_date`` (plan day 0); ``None`` without either (the plan-day reading)."""
    timing = first.get("timing")
    repeat = timing.get("repeat") if isinstance(timing, Mapping) else None
    bounds = repeat.get("boundsPeriod") if isinstance(repeat, Mapping) else None
    if start_date is None or not isinstance(bounds, Mapping) or bounds.get("start") is None:
        return None
    field = "dosageInstruction[0].timing.repeat.boundsPeriod.start"
    begins = _as_date(_when(bounds["start"], field))
    day = (begins - start_date).days
    if day < 0:
        raise StepError(
            field,
            f"{begins.isoformat()} is before the regimen's start date {start_date.isoformat()} "
            "(plan day 0): give the plan an earlier start",
        )
    if extension_day is not None and extension_day != day:
        raise StepError(
            field,
            f"gives plan day {day} ({begins.isoformat()}), but the start-day extension says "
            f"day {extension_day}: send one start",
        )
    return day


def _steps_from_medication_request(
    res: Mapping[str, Any],
    medications: Mapping[str, Mapping[str, Any]] | None = None,
    start_date: _dt.date | None = None,
) -> tuple[Step, ...]:
    exts = _extensions(res)
    med = resolve_medication(medication_of(res, medications), field="medication")
    drug = med.drug
    record = _catalog.drug(drug)
    kind = _ext_value(exts, X_STEP_KIND, "valueCode")
    if kind is None:
        if record.drug_class == "local_anaesthetic":
            raise StepError(
                "medication",
                f"{drug} is a local anaesthetic: send the block as a ServiceRequest with the "
                "psoas_compartment_block step kind",
            )
        kind = "opioid" if record.drug_class == "opioid" else "adjuvant"
    if kind not in ("opioid", "methadone_adjuvant", "adjuvant"):
        raise StepError("extension.step-kind", f"{kind!r} is not a drug step kind")
    dosages = _sorted_dosages(res)
    groups = _groups(dosages)
    has_plan_days = any(X_PLAN_DAY in _extensions(d) for d in dosages)
    if len(groups) == 1 and len(groups[0]) > 1 and not has_plan_days:
        # concurrent instructions (a regular dose and a PRN one): one order, several steps
        out: list[Step] = []
        for d in groups[0]:
            one = dict(res, dosageInstruction=[dict(d, sequence=1)])
            out.extend(_steps_from_medication_request(one, medications, start_date))
        return tuple(out)
    if len(groups) > 1 and any(len(g) > 1 for g in groups) and not has_plan_days:
        raise StepError(
            "dosageInstruction",
            "concurrent dosage instructions (the same sequence) inside a sequence of changes "
            "cannot be read: send one order per concurrent instruction",
        )
    first = dosages[0]
    extension_day = _ext_value(exts, X_START_DAY, "valueInteger")
    start_day = _int_or(extension_day, 0)
    bounds_day = _bounds_start_day(
        first, start_date, extension_day if isinstance(extension_day, int) else None
    )
    if bounds_day is not None:
        start_day = bounds_day
    kwargs: dict[str, Any] = {"drug": drug, "start_day": start_day}
    kwargs["route"] = _route_of(first, med, "dosageInstruction[0]")
    formulation = _ext_value(exts, X_FORMULATION, "valueCode")
    if formulation is None and med.product is not None:
        formulation = med.product.formulation
    if formulation is not None:
        kwargs["formulation"] = formulation
    dose_form = _ext_value(exts, X_DOSE_FORM, "valueCode")
    if dose_form is None and med.product is not None:
        dose_form = med.product.dose_form
    if dose_form is not None:
        kwargs["dose_form"] = dose_form
    if kind == "adjuvant":
        role = _ext_value(exts, X_ROLE, "valueCode")
        if role is None:
            role = _codes().get("default_roles", {}).get(record.drug_class)
        if role is None:
            raise StepError(
                "extension.adjuvant-role", f"the role of {drug} is not given and has no default"
            )
        kwargs["role"] = role
    notes = res.get("note")
    if isinstance(notes, list) and notes and isinstance(notes[0], Mapping):
        text = notes[0].get("text")
        if isinstance(text, str):
            kwargs["note"] = text
    ingredients: list[Ingredient | None] = [med.ingredient, *med.partners]
    phase0 = _read_phase(first, "dosageInstruction[0]", med, ingredients)
    kwargs.update(phase0.schedule)
    continuous = phase0.continuous
    titrations: list[list[TitrationPoint]] = [[] for _ in ingredients]
    previous = {k: phase0.schedule.get(k) for k in ("every", "times_per_day", "at")}
    last = phase0
    if len(dosages) > 1:
        days = _phase_days(dosages, start_day, start_date)
        for i, d in enumerate(dosages[1:], start=1):
            path = f"dosageInstruction[{i}]"
            phase = _read_phase(d, path, med, ingredients)
            last = phase
            if phase.continuous != continuous:
                raise StepError(
                    f"{path}.doseAndRate",
                    "a titration phase must give a dose where the first gives a dose, and "
                    "a rate where it gives a rate",
                )
            changes: dict[str, Any] = {}
            frequency = {k: phase.schedule.get(k) for k in ("every", "times_per_day", "at")}
            if frequency != previous:
                changes = {k: v for k, v in frequency.items() if v is not None}
                previous = frequency
            for n in range(len(ingredients)):
                amount = {k: v for k, v in phase.amounts[n].items() if k in ("dose", "rate")}
                if "dose_high" in phase.amounts[n]:
                    amount["dose"] = phase.amounts[n]["dose_high"]  # checks use the high end
                titrations[n].append(TitrationPoint(day=days[i], **amount, **changes))
    if last.duration_days is not None and not kwargs.get("once"):
        last_start = (
            _phase_days(dosages, start_day, start_date)[-1] if len(dosages) > 1 else start_day
        )
        kwargs["stop_day"] = last_start + last.duration_days - 1
    steps: list[Step] = []
    for n, ingredient in enumerate(ingredients):
        step_kwargs = dict(kwargs, **phase0.amounts[n])
        if titrations[n]:
            step_kwargs["titration"] = titrations[n]
        cls = STEP_KINDS[kind]
        if n > 0:
            assert ingredient is not None
            assert ingredient.drug is not None
            assert med.product is not None
            partner = _catalog.drug(ingredient.drug)
            role = _codes().get("default_roles", {}).get(partner.drug_class)
            if role is None:
                raise StepError(
                    "medication",
                    f"{ingredient.name} in {med.product.name!r} has no adjuvant role to check "
                    "it under",
                )
            step_kwargs.update(drug=partner.id, role=role)
            step_kwargs.pop("dose_form", None) if partner.drug_class == "opioid" else None
            step_kwargs["note"] = f"in {med.product.name}" + (
                f"; {kwargs['note']}" if kwargs.get("note") else ""
            )
            cls = STEP_KINDS["adjuvant"]
        steps.append(cls(**step_kwargs))
    return tuple(steps)


def _step_from_service_request(res: Mapping[str, Any]) -> Step:
    exts = _extensions(res)
    kind = _ext_value(exts, X_STEP_KIND, "valueCode")
    if kind is None:
        for system, code, _d in _codes_in(res.get("code")):
            if system == CS_STEP_KIND:
                kind = code
    if kind not in ("psoas_compartment_block", "radiotherapy"):
        raise StepError(
            "code", "this ServiceRequest is not a psoas compartment block or a radiotherapy course"
        )
    start_day = _int_or(_ext_value(exts, X_START_DAY, "valueInteger"), 0)
    kwargs: dict[str, Any] = {"start_day": start_day}
    notes = res.get("note")
    if isinstance(notes, list) and notes and isinstance(notes[0], Mapping):
        text = notes[0].get("text")
        if isinstance(text, str):
            kwargs["note"] = text

    def q(url: str, key: str, dimension: str, field: str) -> None:
        value = _ext_value(exts, url, key)
        if value is not None:
            kwargs[field] = from_fhir_quantity(value, dimension, field=field)

    if kind == "psoas_compartment_block":
        kwargs["drug"] = _drug_from_concept(
            _ext_value(exts, X_LOCAL_ANAESTHETIC, "valueCodeableConcept"), field="drug"
        )
        q(X_CONCENTRATION, "valueQuantity", "concentration", "concentration")
        q(X_BOLUS_VOLUME, "valueQuantity", "volume", "bolus_volume")
        q(X_INFUSION_RATE, "valueQuantity", "volume_rate", "infusion_rate")
        q(X_INFUSION_DURATION, "valueDuration", "time", "infusion_duration")
        for url, key, field in (
            (X_ADRENALINE, "valueBoolean", "adrenaline"),
            (X_SIDE, "valueCode", "side"),
            (X_TECHNIQUE, "valueCode", "technique"),
        ):
            value = _ext_value(exts, url, key)
            if value is not None:
                kwargs[field] = value
        block: Step = PsoasCompartmentBlockStep(**kwargs)
        return block
    q(X_TOTAL_DOSE, "valueQuantity", "absorbed_dose", "total_dose")
    q(X_PRIOR_DOSE, "valueQuantity", "absorbed_dose", "prior_dose")
    for url, key, field in (
        (X_FRACTIONS, "valueInteger", "fractions"),
        (X_PRIOR_FRACTIONS, "valueInteger", "prior_fractions"),
        (X_SITE, "valueString", "site"),
    ):
        value = _ext_value(exts, url, key)
        if value is not None:
            kwargs[field] = value
    if "site" not in kwargs:
        sites = res.get("bodySite")
        if isinstance(sites, list) and sites and isinstance(sites[0], Mapping):
            kwargs["site"] = sites[0].get("text", "")
    course: Step = RadiotherapyStep(**kwargs)
    return course


def steps_from_resource(
    resource: Mapping[str, Any],
    *,
    medications: Mapping[str, Mapping[str, Any]] | None = None,
    start_date: _dt.date | None = None,
) -> tuple[Step, ...]:
    """The steps of one MedicationRequest or ServiceRequest: one, or one per ingredient.

    ``start_date`` is the regimen's plan day 0 (:attr:`Regimen.start_date
    <mps_analgesia.regimen.Regimen.start_date>`): with it, the first dosage's
    ``timing.repeat.boundsPeriod.start`` gives the step's ``start_day`` (a start before day 0,
    or one that disagrees with the start-day extension, is a named problem) and its ``end`` the
    stop day.  Without it (the plan-day reading) the start day is the start-day extension's,
    else day 0, and a closed ``boundsPeriod`` gives only how many days the step lasts.

    A combination product (``acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet``)
    gives its opioid step and then an adjuvant step for each other ingredient (note
    ``in <product>``), so that its acetaminophen counts toward the acetaminophen daily maximum.
    Every other order gives one step, as :func:`step_from_resource`.

    Example
    -------
    >>> from mps_analgesia.fhir import steps_from_resource
    >>> order = {"resourceType": "MedicationRequest", "status": "draft", "intent": "order",
    ...     "medicationCodeableConcept": {"text":
    ...         "acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet"},
    ...     "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 6,
    ...                                                  "periodUnit": "h"}},
    ...         "doseAndRate": [{"doseQuantity": {"value": 2, "system":
    ...                          "http://unitsofmeasure.org", "code": "{tablet}"}}]}]}
    >>> [(s.drug, s.daily_dose_mg) for s in steps_from_resource(order)]
    [('oxycodone', 40.0), ('acetaminophen', 2600.0)]
    """
    rtype = resource.get("resourceType")
    if rtype not in ("MedicationRequest", "ServiceRequest"):
        raise StepError(
            "resourceType", f"{_shown(rtype)} is not a MedicationRequest or ServiceRequest"
        )
    try:
        if rtype == "MedicationRequest":
            steps = _steps_from_medication_request(resource, medications, start_date)
        else:
            steps = (_step_from_service_request(resource),)
        return tuple(_finite_step(s) for s in steps)
    except MpsAnalgesiaError:
        raise
    except ArithmeticError as exc:
        raise _numeric_problem(exc) from None


def step_from_resource(
    resource: Mapping[str, Any],
    *,
    medications: Mapping[str, Mapping[str, Any]] | None = None,
    start_date: _dt.date | None = None,
) -> Step:
    """Build one step from a MedicationRequest or ServiceRequest resource (``start_date``: as
    for :func:`steps_from_resource`).

    A MedicationRequest gives an opioid, methadone-adjuvant or adjuvant step (the kind from the
    project's ``step-kind`` extension, else from the drug's class); a ServiceRequest gives a psoas
    compartment block or a radiotherapy course.  The medication may be a catalog drug, an RxNorm
    ingredient or product code, an RxNorm normalized name or a bracketed brand; a product's dose
    may be a count of its units.  Raises a :class:`MpsAnalgesiaError` saying what is missing or
    wrong; a combination product, which gives several steps, is refused here: read it with
    :func:`steps_from_resource`.  ``medications`` resolves a ``medicationReference`` to a
    Medication outside the resource (see :func:`medication_index`); a contained one is found
    without it.

    Example
    -------
    >>> from mps_analgesia.fhir import step_from_resource
    >>> order = {"resourceType": "MedicationRequest", "status": "draft", "intent": "order",
    ...     "medicationCodeableConcept": {"coding": [
    ...         {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "10689"}]},
    ...     "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 6,
    ...                                                  "periodUnit": "h"}},
    ...         "route": {"text": "oral"},
    ...         "doseAndRate": [{"doseQuantity": {"value": 100, "system":
    ...                          "http://unitsofmeasure.org", "code": "mg"}}]}]}
    >>> step_from_resource(order).daily_dose_mg
    400.0
    """
    steps = steps_from_resource(resource, medications=medications, start_date=start_date)
    if len(steps) != 1:
        raise StepError(
            "medication",
            f"this combination product gives {len(steps)} steps "
            f"({', '.join(getattr(s, 'drug', s.kind) for s in steps)}): read it with "
            "steps_from_resource",
        )
    return steps[0]


# Numbers a step derives (besides its float fields) that the checks compute with.
_STEP_DERIVED: Final = ("bolus_mg", "infusion_mg_per_h", "infusion_total_mg", "max_24h_mg")
_MAX_EXACT_INT: Final = 2**53  # integers beyond this are not exact floats


def _finite_step(step: Step) -> Step:
    """``step`` if every number it holds or derives is finite; :class:`StepError` if not.

    ``1e308 mg`` every 6 h is a finite dose but an infinite daily dose: refused here, so that no
    check ever computes with infinity.
    """
    values: list[tuple[str, object]] = [
        (f.name, getattr(step, f.name)) for f in attrs.fields(type(step))
    ]
    values += [(name, getattr(step, name)) for name in _STEP_DERIVED if hasattr(step, name)]
    if isinstance(step, RadiotherapyStep):
        values.append(("dose_per_fraction", step.dose_per_fraction_gy))
    for i, point in enumerate(getattr(step, "titration", None) or ()):
        values += [
            (f"titration[{i}].dose", point.dose_mg),
            (f"titration[{i}].rate", point.rate_mg_per_h),
        ]
    for name, value in values:
        if isinstance(value, bool):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise StepError(name, "is too large to compute with (it overflows to infinity)")
        if isinstance(value, int) and abs(value) > _MAX_EXACT_INT:
            raise StepError(name, f"{_shown(value)} is too large to compute with")
    return step
