"""Starting doses for a patient who is not opioid tolerant: ``opioid.naive-starting-dose``.

A patient recorded as not opioid tolerant (``patient.opioid_tolerant = false``) starting an
opioid gets the first dose of each ``opioid`` step (its first titration phase) compared with the
published starting dose of that drug, route and formulation (``data/opioid-naive.toml``):

- a starting dose (``kind = "usual-range"``: the oxycodone label's 5–15 mg, OxyContin's 10 mg
  every 12 hours, methadone first-line 9 mg/day, Mercadante 2022) exceeded is a warning, more
  than twice it an error (``data/severity-policy.toml``);
- a label reservation for opioid-tolerant patients (``kind = "contraindication"``: OxyContin
  above its tolerant-only dose per dose or per day, buccal fentanyl at any dose) exceeded is an
  error.

When tolerance is not recorded, a step that a row applies to is *not checked* (record
``opioid_tolerant``); a recorded tolerant patient is not this rule's (nothing is reported), nor
is a drug, route or formulation with no row.  The transdermal fentanyl patch is
``opioid.fentanyl-patch-not-tolerant``'s; adjuvant methadone is
``methadone.adjuvant-without-opioid``'s.

The rows are read once; a step costs a dict lookup and a comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, Final

import attrs

from .. import _catalog, _units
from ..errors import DataFileError, UnitError
from ._engine import PASSED, Context, Missing, Rule, finding, for_drugs, rule
from ._util import above, measure, num

__all__ = ["RULES"]

_FILE: Final = "opioid-naive.toml"
_CODE: Final = "opioid.naive-starting-dose"
_KINDS: Final = ("usual-range", "contraindication")


class _Drugs:
    """The drug ids that have a row (read on first use: the dispatch filter of the rule)."""

    def __contains__(self, drug: object) -> bool:
        return any(key[0] == drug for key in starts())


_DRUGS: Final = _Drugs()


@attrs.define(frozen=True)
class Start:
    """One row: the most per dose and per day at the start, what kind of limit it is."""

    drug: str
    route: str
    formulation: str | None
    dose_mg: float | None
    daily_mg: float | None
    kind: str
    source: str
    level: str
    note: str


def _mg(entry: Mapping[str, Any], key: str, dim: str, unit: str, where: str) -> float | None:
    raw = entry.get(key)
    if raw is None:
        return None
    try:
        q = _units.as_quantity(raw, dim, field=f"{where}.{key}")
    except UnitError as exc:
        raise DataFileError(f"{_FILE}: {exc}") from exc
    value = _units.magnitude_in(q, unit)
    if not value > 0:
        raise DataFileError(f"{_FILE}: {where}.{key} must be above zero")
    return value


@cache
def starts() -> dict[tuple[str, str], tuple[Start, ...]]:
    """(drug, route) → the rows of ``data/opioid-naive.toml`` for it, in file order."""
    out: dict[tuple[str, str], list[Start]] = {}
    for i, entry in enumerate(_catalog.data_file(_FILE).get("starts", ())):
        where = f"starts[{i}]"
        drug = entry.get("drug")
        if not isinstance(drug, str) or _catalog.drug(drug).id != drug:
            raise DataFileError(f"{_FILE}: {where}.drug {drug!r} is not a drug id of drugs.toml")
        if _catalog.drug(drug).drug_class != "opioid":
            raise DataFileError(f"{_FILE}: {where}.drug {drug!r} is not an opioid")
        route = entry.get("route")
        if route not in _catalog.routes():
            raise DataFileError(f"{_FILE}: {where}.route {route!r} is not a route of drugs.toml")
        form = entry.get("formulation")
        if form is not None and form not in _catalog.FORMULATIONS:
            raise DataFileError(
                f"{_FILE}: {where}.formulation {form!r} is not one of {_catalog.FORMULATIONS}"
            )
        kind = entry.get("kind")
        if kind not in _KINDS:
            raise DataFileError(f"{_FILE}: {where}.kind {kind!r} is not one of {_KINDS}")
        dose = _mg(entry, "dose", "mass", "mg", where)
        daily = _mg(entry, "daily", "mass_rate", "mg/day", where)
        if kind == "usual-range" and dose is None and daily is None:
            raise DataFileError(f"{_FILE}: {where}: a starting dose needs 'dose' or 'daily'")
        source = entry.get("source")
        if source not in _catalog.sources():
            raise DataFileError(f"{_FILE}: {where}: 'source' {source!r} is not a source id")
        out.setdefault((drug, str(route)), []).append(
            Start(
                drug,
                str(route),
                None if form is None else str(form),
                dose,
                daily,
                str(kind),
                str(source),
                _catalog.level_of(entry, f"{_FILE}: {where}"),
                str(entry.get("note", "")),
            )
        )
    return {k: tuple(v) for k, v in out.items()}


def _rows(step: Any) -> tuple[Start, ...]:
    rows = starts().get((step.drug, step.route), ())
    return tuple(r for r in rows if r.formulation in (None, step.formulation))


def _exceeded(row: Start, dose: float | None, daily: float | None, prn: bool) -> Any:
    """``(what, value, limit, unit)`` of the first limit of the row exceeded, ``()`` when within
    it, ``None`` for a contraindication at any dose."""
    if row.dose_mg is None and row.daily_mg is None:
        return None
    if row.dose_mg is not None and dose is not None and above(dose, row.dose_mg):
        return (" per dose", dose, row.dose_mg, "mg")
    if row.daily_mg is not None and daily is not None and not prn and above(daily, row.daily_mg):
        return ("", daily, row.daily_mg, "mg/day")
    return ()


def _limit_text(row: Start) -> str:
    parts = []
    if row.dose_mg is not None:
        parts.append(f"{num(row.dose_mg)} mg per dose")
    if row.daily_mg is not None:
        parts.append(f"{num(row.daily_mg)} mg/day")
    return " and ".join(parts)


@rule(
    _CODE,
    title="Starting dose for a patient who is not opioid tolerant",
    applies_to=("opioid",),
    needs=("patient.opioid_tolerant", "step.dose", "step.schedule", "step.titration"),
    sources=(
        "oxycodone-ir-label",
        "oxycontin-label",
        "morphine-ir-label-secondary",
        "dilaudid-label",
        "mercadante-2022",
        "fentora-contraindications",
    ),
    severity="warning above a published starting dose, error more than twice it (usual range, "
    "severity policy); error above a label's reservation for opioid-tolerant patients "
    "(contraindication); not checked when opioid tolerance is not recorded",
    data_files=(_FILE, "severity-policy.toml"),
    description="For a patient recorded as not opioid tolerant, the first dose of each opioid "
    "step (its first titration phase) against the published starting dose of its drug, route "
    "and formulation (data/opioid-naive.toml): immediate-release oxycodone, morphine and "
    "hydromorphone per dose, OxyContin per dose and per day, methadone first-line per day "
    "(Mercadante 2022). Above a starting dose is a warning and more than twice it an error (a "
    "usual range, data/severity-policy.toml); above a label's reservation for opioid-tolerant "
    "patients (OxyContin above "
    "{opioid-naive:starts[drug=oxycodone,formulation=modified-release,kind=contraindication].dose} "
    "per dose or "
    "{opioid-naive:starts[drug=oxycodone,formulation=modified-release,kind=contraindication].daily})"
    " or a contraindication in "
    "non-tolerant patients (buccal fentanyl, at any dose) is an error. The per-day limits are "
    "not applied to as-needed steps. With tolerance not recorded the check is not checked; a "
    "tolerant patient, and a drug, route or formulation without a row, are not this rule's. "
    "The fentanyl patch is opioid.fentanyl-patch-not-tolerant's.",
)
@for_drugs(lambda drug: drug in _DRUGS)
def naive_starting_dose(ctx: Context, index: int | None, step: Any) -> Any:
    """Compare an opioid step's first dose with the starting dose for a non-tolerant patient."""
    tolerant = ctx.patient.opioid_tolerant
    first = step.phases[0]
    # canonical values only (never the step: its note is free text)
    key = (
        step.drug,
        step.route,
        step.formulation,
        bool(step.prn),
        first.dose_mg,
        first.daily_mg,
        bool(step.titration),
        tolerant,
    )
    hit = _OUTCOMES.get(key, _NOT_KEPT)
    if hit is not _NOT_KEPT:
        return hit
    result = _naive_starting_dose(index, step, tolerant)
    if result is None or result is PASSED or isinstance(result, Missing):
        if len(_OUTCOMES) >= 4096:
            _OUTCOMES.clear()
        _OUTCOMES[key] = result
    return result


# canonical (drug, route, formulation, prn, first dose, first daily dose, titrated, tolerance)
# → an outcome that is an immutable value (None, PASSED, Missing); bounded by count.
_OUTCOMES: dict[tuple[Any, ...], Any] = {}
_NOT_KEPT: Final = object()


def _naive_starting_dose(index: int | None, step: Any, tolerant: bool | None) -> Any:
    rows = _rows(step)
    if not rows:
        return None
    if tolerant is True:
        return None
    if tolerant is None:
        return Missing(
            "opioid tolerance",
            f"{step.drug} ({step.route}, {step.formulation}) has a published starting dose for a "
            f"patient who is not opioid tolerant; record patient.opioid_tolerant to check it",
        )
    first = step.phases[0]
    dose = first.dose_mg
    daily = first.daily_mg
    out = []
    for row in rows:
        hit = _exceeded(row, dose, daily, bool(step.prn))
        if hit == ():
            continue
        titrated = " (its first dose, before titration)" if step.titration else ""
        if hit is None:
            out.append(
                finding(
                    _CODE,
                    "error",
                    f"{step.drug} by the {step.route} route in a patient recorded as not opioid "
                    f"tolerant: contraindicated at any dose ({row.note}).",
                    step=index,
                    source=(row.source,),
                    level=row.level,
                    kind="contraindication",
                    detail={
                        "opioid_tolerant": False,
                        "limit": row.note,
                        "limit_kind": row.kind,
                    },
                )
            )
            continue
        what, value, limit, unit = hit
        if row.kind == "contraindication":
            message = (
                f"{step.drug} {num(value)} {unit}{what}{titrated} in a patient recorded as not "
                f"opioid tolerant is above {num(limit)} {unit}, which the label reserves for "
                f"opioid-tolerant patients ({row.note})."
            )
        else:
            message = (
                f"{step.drug} {num(value)} {unit}{what}{titrated} in a patient recorded as not "
                f"opioid tolerant is above the published starting dose, at most "
                f"{_limit_text(row)} ({row.note})."
            )
        out.append(
            finding(
                _CODE,
                "error",
                message,
                step=index,
                source=(row.source,),
                level=row.level,
                kind=row.kind,
                beyond=value / limit,
                arithmetic=f"{num(value)} {unit} > {num(limit)} {unit}",
                detail={
                    "opioid_tolerant": False,
                    **measure("starting_dose", value, unit),
                    **measure("limit", limit, unit),
                    "limit_kind": row.kind,
                },
            )
        )
    stops = [f for f in out if f.detail.get("limit_kind", "contraindication") == "contraindication"]
    # a label reservation for tolerant patients exceeded says more than the starting dose does
    return stops or out or PASSED


RULES: tuple[Rule, ...] = (naive_starting_dose,)
