"""Hypothesis strategies for valid steps, regimens and patients, shared across test files.

Every strategy builds objects that construct without error, drawn from the packaged drug catalog
(drug, route and formulation combinations it allows), so a new drug in ``data/drugs.toml`` is
picked up without editing this file.  Keep the public names stable: other test files import them.

- :func:`opioid_steps`, :func:`adjuvant_steps`, :func:`methadone_adjuvant_steps`,
  :func:`block_steps`, :func:`radiotherapy_steps`, :func:`any_steps`
- :func:`regimens`, :func:`patients`, :func:`cases`
- :func:`quantity_texts` (text such as ``"12.5 mg"``) and :data:`UNITS_BY_DIMENSION`
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from mps_analgesia import _catalog
from mps_analgesia.patient import HEPATIC_IMPAIRMENT, SEXES, Patient
from mps_analgesia.regimen import Case, Regimen
from mps_analgesia.steps import (
    ADJUVANT_ROLES,
    BLOCK_SIDES,
    BLOCK_TECHNIQUES,
    AdjuvantStep,
    MethadoneAdjuvantStep,
    OpioidStep,
    PsoasCompartmentBlockStep,
    RadiotherapyStep,
)

__all__ = [
    "UNITS_BY_DIMENSION",
    "adjuvant_steps",
    "any_steps",
    "block_steps",
    "cases",
    "free_text",
    "magnitudes",
    "methadone_adjuvant_steps",
    "opioid_steps",
    "patients",
    "quantity_texts",
    "radiotherapy_steps",
    "regimens",
]

#: Unit spellings per dimension that the parser must read (the first one is canonical).
UNITS_BY_DIMENSION: dict[str, tuple[str, ...]] = {
    "mass": ("mg", "g", "mcg", "ug", "µg", "kg", "ng"),
    "volume": ("mL", "L", "ml", "uL", "dL"),
    "time": ("h", "min", "day", "s", "ms", "week", "hr"),
    "length": ("cm", "m", "mm"),
    "mass_rate": ("mg/h", "mcg/h", "mg/day", "mg/24h", "mg/d", "mcg/hr", "g/day", "mg/min"),
    "volume_rate": ("mL/h", "mL/hr", "mL/min", "mL/day", "L/h"),
    "concentration": ("mg/mL", "%", "mcg/mL", "g/L"),
    "absorbed_dose": ("Gy",),
    "dose_per_fraction": ("Gy/fraction", "Gy/fx"),
    "renal_clearance": ("mL/min",),
    "egfr": ("mL/min/1.73m2", "mL/min/1.73 m²"),
    "ome_rate": ("MME/day", "OME/day", "MME/d"),
    "ome": ("MME", "OME"),
    "mass_per_mass": ("mg/kg", "mcg/kg"),
    "mass_per_area": ("mg/m2", "mg/m²"),
    "volume_per_mass": ("mL/kg",),
}


def magnitudes(low: int = 1, high: int = 10_000, scale: int = 10) -> st.SearchStrategy[float]:
    """Positive numbers with at most one decimal place by default (``low/scale .. high/scale``)."""
    return st.integers(low, high).map(lambda n: n / scale)


def _num(x: float) -> str:
    return str(int(x)) if x == int(x) else repr(x)


def quantity_texts(
    dimension: str, low: int = 1, high: int = 10_000, scale: int = 10
) -> st.SearchStrategy[str]:
    """Quantity text of one dimension, e.g. ``"12.5 mg"`` or ``"40 mcg/h"``."""
    return st.builds(
        lambda x, u: f"{_num(x)} {u}",
        magnitudes(low, high, scale),
        st.sampled_from(UNITS_BY_DIMENSION[dimension]),
    )


def free_text(min_size: int = 0) -> st.SearchStrategy[str]:
    """Any text a user could type in a note or site (control characters included)."""
    return st.text(min_size=min_size, max_size=20)


# ---- catalog-driven choices --------------------------------------------------------------------


def _drugs_of(*classes: str, exclude: tuple[str, ...] = ()) -> list[str]:
    return [
        d
        for d in _catalog.drug_ids()
        if _catalog.drug(d).drug_class in classes and d not in exclude
    ]


def _non_opioid_drugs() -> list[str]:
    return [
        d
        for d in _catalog.drug_ids()
        if _catalog.drug(d).drug_class not in ("opioid", "local_anaesthetic")
    ]


@st.composite
def _route_and_formulation(
    draw: st.DrawFn, drug: str, *, allow_patch: bool = True
) -> tuple[str, str]:
    routes = list(_catalog.drug(drug).routes)
    if not allow_patch:
        routes = [r for r in routes if "patch" not in _catalog.route_formulations(r)]
    route = draw(st.sampled_from(routes))
    formulation = draw(st.sampled_from(_catalog.route_formulations(route)))
    return route, formulation


@st.composite
def _schedule(draw: st.DrawFn, *, prn_allowed: bool = True) -> dict[str, Any]:
    """``every`` / ``times_per_day`` / ``once`` / PRN keyword arguments."""
    kind = draw(
        st.sampled_from(
            ("every", "times_per_day", "once", "prn")
            if prn_allowed
            else ("every", "times_per_day", "once")
        )
    )
    if kind == "every":
        hours = draw(st.sampled_from((2, 4, 6, 8, 12, 24)))
        unit_text = draw(st.sampled_from((f"{hours} h", f"{hours * 60} min", f"{hours} hr")))
        return {"every": unit_text}
    if kind == "times_per_day":
        return {"times_per_day": draw(st.integers(1, 6))}
    if kind == "once":
        return {"once": True}
    out: dict[str, Any] = {"prn": True}
    if draw(st.booleans()):
        out["every"] = f"{draw(st.sampled_from((1, 2, 4, 6)))} h"
        if draw(st.booleans()):
            out["max_doses_per_24h"] = draw(st.integers(1, 12))
    else:
        out["max_doses_per_24h"] = draw(st.integers(1, 12))
    return out


def _rate_text() -> st.SearchStrategy[str]:
    # 1 .. 2000 mcg/h, the way patches and infusions are written
    return st.builds(
        lambda n, u: f"{n} {u}", st.integers(1, 2_000), st.sampled_from(("mcg/h", "mcg/hr"))
    )


@st.composite
def _titration(draw: st.DrawFn, start_day: int, *, rate: bool = False) -> list[dict[str, Any]]:
    """Up to three later changes of the dose (or, for a continuous step, of the rate)."""
    days = draw(st.lists(st.integers(start_day + 1, start_day + 60), max_size=3, unique=True))
    key, text = ("rate", _rate_text()) if rate else ("dose", _mass_text())
    return [{"day": day, key: draw(text)} for day in sorted(days)]


def _mass_text() -> st.SearchStrategy[str]:
    # 0.1 .. 1000 mg, written in mg, g or mcg
    return st.builds(
        lambda n, unit: {
            "mg": f"{_num(n / 10)} mg",
            "mcg": f"{n * 100} mcg",
            "g": f"{_num(n / 10_000)} g",
        }[unit],
        st.integers(1, 10_000),
        st.sampled_from(("mg", "mg", "mcg", "g")),
    )


# ---- step strategies -----------------------------------------------------------------------------


@st.composite
def opioid_steps(draw: st.DrawFn) -> OpioidStep:
    """A valid :class:`OpioidStep`: regular, PRN or continuous (patch / infusion)."""
    drug = draw(st.sampled_from(_drugs_of("opioid")))
    route, formulation = draw(_route_and_formulation(drug))
    start_day = draw(st.integers(0, 14))
    kwargs: dict[str, Any] = {
        "drug": drug,
        "route": route,
        "formulation": formulation,
        "start_day": start_day,
    }
    continuous = formulation == "patch" or (
        route in ("subcutaneous", "intravenous") and draw(st.booleans())
    )
    if continuous:
        kwargs["rate"] = draw(_rate_text())
        if draw(st.booleans()):
            kwargs["titration"] = draw(_titration(start_day, rate=True))
        return OpioidStep(**kwargs)
    kwargs["dose"] = draw(_mass_text())
    kwargs.update(draw(_schedule()))
    if draw(st.booleans()):
        kwargs["titration"] = draw(_titration(start_day))
    return OpioidStep(**kwargs)


@st.composite
def methadone_adjuvant_steps(draw: st.DrawFn) -> MethadoneAdjuvantStep:
    """A valid :class:`MethadoneAdjuvantStep` (regular, often titrated)."""
    start_day = draw(st.integers(0, 14))
    route, formulation = draw(_route_and_formulation("methadone", allow_patch=False))
    kwargs: dict[str, Any] = {
        "route": route,
        "formulation": formulation,
        "dose": draw(_mass_text()),
        "start_day": start_day,
    }
    kwargs.update(draw(_schedule(prn_allowed=False)))
    if draw(st.booleans()):
        kwargs["titration"] = draw(_titration(start_day))
    return MethadoneAdjuvantStep(**kwargs)


@st.composite
def adjuvant_steps(draw: st.DrawFn) -> AdjuvantStep:
    """A valid :class:`AdjuvantStep` with a role, drawn from the catalog's non-opioids."""
    drug = draw(st.sampled_from(_non_opioid_drugs()))
    route, formulation = draw(_route_and_formulation(drug, allow_patch=False))
    start_day = draw(st.integers(0, 14))
    kwargs: dict[str, Any] = {
        "drug": drug,
        "route": route,
        "formulation": formulation,
        "role": draw(st.sampled_from(ADJUVANT_ROLES)),
        "dose": draw(_mass_text()),
        "start_day": start_day,
    }
    kwargs.update(draw(_schedule()))
    if draw(st.booleans()):
        kwargs["titration"] = draw(_titration(start_day))
    if draw(st.booleans()):
        kwargs["note"] = draw(free_text())
    return AdjuvantStep(**kwargs)


@st.composite
def block_steps(draw: st.DrawFn) -> PsoasCompartmentBlockStep:
    """A valid :class:`PsoasCompartmentBlockStep` (single shot, or catheter with infusion)."""
    drug = draw(st.sampled_from(_drugs_of("local_anaesthetic")))
    technique = draw(st.sampled_from(BLOCK_TECHNIQUES))
    concentration = draw(
        st.one_of(
            st.sampled_from(("0.1 %", "0.2 %", "0.25 %", "0.375 %", "0.5 %", "1 %")),
            quantity_texts("concentration", 1, 100),
        )
    )
    kwargs: dict[str, Any] = {
        "drug": drug,
        "concentration": concentration,
        "side": draw(st.sampled_from(BLOCK_SIDES)),
        "technique": technique,
        "adrenaline": draw(st.booleans()),
        "start_day": draw(st.integers(0, 14)),
    }
    has_infusion = technique == "catheter" and draw(st.booleans())
    if not has_infusion or draw(st.booleans()):
        kwargs["bolus_volume"] = f"{draw(st.integers(1, 40))} mL"
    if has_infusion:
        kwargs["infusion_rate"] = draw(st.sampled_from(("4 mL/h", "6 mL/h", "8 mL/hr", "0.1 L/h")))
        if draw(st.booleans()):
            kwargs["infusion_duration"] = draw(st.sampled_from(("12 h", "48 h", "2 day", "90 min")))
    return PsoasCompartmentBlockStep(**kwargs)


@st.composite
def radiotherapy_steps(draw: st.DrawFn) -> RadiotherapyStep:
    """A valid :class:`RadiotherapyStep`, sometimes with a prior course to the same site."""
    kwargs: dict[str, Any] = {
        "total_dose": f"{_num(draw(magnitudes(10, 600)))} Gy",
        "fractions": draw(st.integers(1, 30)),
        "site": draw(st.one_of(st.sampled_from(("left psoas", "right psoas", "L3")), free_text(1))),
        "start_day": draw(st.integers(0, 14)),
    }
    if not kwargs["site"].strip():
        kwargs["site"] = "psoas"
    if draw(st.booleans()):
        kwargs["prior_dose"] = f"{_num(draw(magnitudes(10, 300)))} Gy"
        if draw(st.booleans()):
            kwargs["prior_fractions"] = draw(st.integers(1, 10))
    return RadiotherapyStep(**kwargs)


def any_steps() -> st.SearchStrategy[Any]:
    """A valid step of any kind."""
    return st.one_of(
        opioid_steps(),
        methadone_adjuvant_steps(),
        adjuvant_steps(),
        block_steps(),
        radiotherapy_steps(),
    )


def regimens(min_size: int = 0, max_size: int = 7) -> st.SearchStrategy[Regimen]:
    """A :class:`Regimen` of valid steps of mixed kinds."""
    return st.lists(any_steps(), min_size=min_size, max_size=max_size).map(Regimen)


# ---- patients ------------------------------------------------------------------------------------


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


_MEDICINES = (
    "sertraline",
    "letrozole",
    "fluconazole",
    "ondansetron",
    "Citalopram",
    "St John's wort",
)


@st.composite
def patients(draw: st.DrawFn) -> Patient:
    """A valid :class:`Patient`; every value may be missing.

    ``medications`` and ``anticoagulant`` take all three states: not recorded (``None``),
    recorded as none (``[]`` / ``"none"``) and recorded with values.
    """
    anticoagulant = draw(
        _optional(
            st.just("none")
            | st.fixed_dictionaries(
                {"drug": st.sampled_from(("apixaban", "enoxaparin", "rivaroxaban", "warfarin"))},
                optional={
                    "dose": quantity_texts("mass", 1, 500).filter(lambda t: not t.endswith("kg")),
                    "every": st.sampled_from(("12 h", "24 h", "1 day")),
                    "last_dose_ago": st.sampled_from(("0 h", "6 h", "30 h", "2 day", "90 min")),
                },
            )
        )
    )
    return Patient(
        age=draw(_optional(st.one_of(st.integers(18, 100), st.floats(18, 100)))),
        sex=draw(_optional(st.sampled_from(SEXES))),
        weight=draw(_optional(st.builds(lambda n: f"{n} kg", st.integers(30, 150)))),
        height=draw(_optional(st.builds(lambda n: f"{n} cm", st.integers(130, 200)))),
        egfr=draw(_optional(quantity_texts("egfr", 50, 1_200))),
        creatinine_clearance=draw(_optional(quantity_texts("renal_clearance", 50, 1_500))),
        hepatic_impairment=draw(_optional(st.sampled_from(HEPATIC_IMPAIRMENT))),
        qtc=draw(_optional(st.builds(lambda n: f"{n} ms", st.integers(350, 550)))),
        opioid_tolerant=draw(_optional(st.booleans())),
        medications=draw(
            _optional(
                st.lists(
                    st.one_of(st.sampled_from(_MEDICINES), free_text(1).filter(str.strip)),
                    max_size=3,
                )
            )
        ),
        anticoagulant=anticoagulant,
    )


def cases() -> st.SearchStrategy[Case]:
    """A :class:`Case`: a patient and a regimen, with a name or none."""
    return st.builds(
        lambda patient, regimen, name: Case(patient, Regimen(regimen.steps, name=name), name=name),
        patients(),
        regimens(),
        st.one_of(st.just(""), free_text(1)),
    )
