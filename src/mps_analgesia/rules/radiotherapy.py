"""Palliative radiotherapy checks (``data/radiotherapy.toml``).

``radiotherapy.bed-eqd2`` (info): every radiotherapy step reports its BED and EQD2 at the α/β
values of the data file (tumour and late-responding tissue).
``radiotherapy.schedule-nonstandard`` (info): the course is not one of the ASTRO 2017 schedules
of the data file.
``radiotherapy.dose-per-fraction`` (warning): more than the largest ASTRO 2017 dose per fraction.
``radiotherapy.reirradiation`` (warning): an earlier dose to the same site (the step's
``prior_dose``, or an earlier radiotherapy step of the regimen to the same site); the cumulative
EQD2 at the late-responding α/β is reported, or the finding says what could not be computed.

A radiotherapy step always carries its total dose and fractions, so these rules never report
*not checked*.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .. import _catalog
from .. import radiotherapy as rt
from ._engine import PASSED, Context, Rule, finding, rule
from ._util import above, measure, num

__all__ = ["RULES"]

_KIND = ("radiotherapy",)
_FILES = ("radiotherapy.toml",)
_LEVELS = ("V", "S", "U")


def _worst(*levels: str) -> str:
    return max(levels, key=_LEVELS.index)


def _course(total_gy: float, fractions: int) -> str:
    return f"{num(total_gy)} Gy in {fractions} fraction{'s' if fractions != 1 else ''}"


@rule(
    "radiotherapy.bed-eqd2",
    title="BED and EQD2 of the course",
    applies_to=_KIND,
    needs=("step.total_dose", "step.fractions"),
    sources=("hall-giaccia-2012", "joiner-2009"),
    severity="info: reported for every radiotherapy step",
    data_files=_FILES,
    description="Reports the biologically effective dose, BED = D·(1 + d/(α/β)), and the "
    "equivalent dose in 2 Gy fractions, EQD2 = BED/(1 + 2/(α/β)), at α/β "
    "{radiotherapy:alpha_beta.early} (tumour, early-responding tissue) and "
    "{radiotherapy:alpha_beta.late} (late-responding normal tissue). Always an info finding.",
)
def bed_eqd2(ctx: Context, index: int | None, step: Any) -> Any:
    """Report BED and EQD2 at each α/β of the data file."""
    message, arithmetic, detail, level = _bed_eqd2_texts(step.total_dose_gy, step.fractions)
    return finding(
        "radiotherapy.bed-eqd2",
        "info",
        message,
        step=index,
        source=("hall-giaccia-2012", "joiner-2009"),
        level=level,
        arithmetic=arithmetic,
        detail=dict(detail),
    )


@lru_cache(maxsize=1024)
def _bed_eqd2_texts(total: float, n: int) -> tuple[str, str, tuple[tuple[str, Any], ...], str]:
    """Message, arithmetic, detail items and level for a course (cached: courses repeat)."""
    d = total / n
    parts, sums = [], []
    detail: dict[str, Any] = {}
    levels = []
    for ab in rt.alpha_beta_values():
        b = rt._bed_gy(total, n, ab.gy)
        e = rt._eqd2_gy(total, n, ab.gy)
        a = num(ab.gy)
        parts.append(f"α/β {a} Gy: BED {num(b)} Gy, EQD2 {num(e)} Gy")
        sums.append(
            f"BED{a} = {num(total)} Gy × (1 + {num(d)}/{a}) = {num(b)} Gy; "
            f"EQD2({a}) = {num(b)}/(1 + 2/{a}) = {num(e)} Gy"
        )
        detail.update(measure(f"bed_{a}", b, "Gy"))
        detail.update(measure(f"eqd2_{a}", e, "Gy"))
        levels.append(ab.value.level)
    detail.update(measure("dose_per_fraction", d, "Gy"))
    message = f"{_course(total, n)} ({num(d)} Gy per fraction): " + "; ".join(parts) + "."
    return message, "; ".join(sums), tuple(detail.items()), _worst(*levels)


@rule(
    "radiotherapy.schedule-nonstandard",
    title="Schedule outside ASTRO 2017",
    applies_to=_KIND,
    needs=("step.total_dose", "step.fractions"),
    sources=("astro-2017",),
    severity="info when the course is not one of the ASTRO 2017 schedules",
    data_files=_FILES,
    description="The course is not one of the four equivalent ASTRO 2017 regimens for painful bone "
    "metastases ({radiotherapy:schedules[0].total_dose}/{radiotherapy:schedules[0].fractions}, "
    "{radiotherapy:schedules[1].total_dose}/{radiotherapy:schedules[1].fractions}, "
    "{radiotherapy:schedules[2].total_dose}/{radiotherapy:schedules[2].fractions}, "
    "{radiotherapy:schedules[3].total_dose}/{radiotherapy:schedules[3].fractions}). Information "
    "only: other schedules are used, for example in malignant psoas syndrome reports.",
)
def schedule_nonstandard(ctx: Context, index: int | None, step: Any) -> Any:
    """Compare the course with the ASTRO 2017 schedules."""
    schedules = rt.astro_schedules()
    total, n = step.total_dose_gy, step.fractions
    for s in schedules:
        if s.fractions == n and not above(total, s.total_gy) and not above(s.total_gy, total):
            return PASSED
    listed = ", ".join(s.text for s in schedules)
    return finding(
        "radiotherapy.schedule-nonstandard",
        "info",
        f"{_course(total, n)} is not one of the ASTRO 2017 palliative schedules ({listed}).",
        step=index,
        source=("astro-2017",),
        level=_worst(*(s.level for s in schedules)),
        arithmetic=f"{num(total)} Gy/{n} ∉ {{{listed}}}",
        detail={
            **measure("total_dose", total, "Gy"),
            "fractions": n,
            "course_text": f"{num(total)} Gy/{n}",
            "schedules": [s.text for s in schedules],
        },
    )


@rule(
    "radiotherapy.dose-per-fraction",
    title="Dose per fraction above {radiotherapy:dose_per_fraction.max}",
    applies_to=_KIND,
    needs=("step.total_dose", "step.fractions"),
    sources=("astro-2017",),
    severity="warning above the limit",
    data_files=_FILES,
    description="A dose per fraction above {radiotherapy:dose_per_fraction.max}, the largest of "
    "the ASTRO 2017 palliative regimens (a single fraction); higher doses per fraction are "
    "stereotactic, which ASTRO 2017 reserves for trials or registries.",
)
def dose_per_fraction(ctx: Context, index: int | None, step: Any) -> Any:
    """Compare the dose per fraction with the data file's maximum."""
    limit = rt.max_dose_per_fraction()
    d = step.dose_per_fraction_gy
    if not above(d, limit.value):
        return PASSED
    return finding(
        "radiotherapy.dose-per-fraction",
        "warning",
        f"{num(d)} Gy per fraction is above {num(limit.value)} Gy, the largest dose per fraction "
        f"of the ASTRO 2017 palliative schedules.",
        step=index,
        source=(limit.source,),
        level=limit.level,
        arithmetic=f"{num(step.total_dose_gy)} Gy / {step.fractions} = {num(d)} Gy/fraction "
        f"> {num(limit.value)} Gy/fraction",
        detail={**measure("dose_per_fraction", d, "Gy"), **measure("limit", limit.value, "Gy")},
    )


def _site(text: str) -> str:
    return " ".join(text.lower().split())


@rule(
    "radiotherapy.reirradiation",
    title="Re-irradiation of a site",
    applies_to=_KIND,
    needs=("step.prior_dose", "step.prior_fractions"),
    sources=("astro-2017", "joiner-2009"),
    severity="warning when the site had an earlier dose",
    data_files=_FILES,
    description="The site was irradiated before: the step's prior_dose, or an earlier radiotherapy "
    "step of the regimen to the same site (same text, ignoring case and spaces). ASTRO 2017 "
    "considers re-irradiation for pain persisting or recurring more than a month after "
    "radiotherapy. The finding reports the cumulative EQD2 at α/β {radiotherapy:alpha_beta.late} "
    "(late-responding tissue such as the lumbosacral plexus); when a prior course's number of "
    "fractions is not recorded, it says that the cumulative EQD2 could not be computed.",
)
def reirradiation(ctx: Context, index: int | None, step: Any) -> Any:
    """Report a prior dose to the same site with the cumulative EQD2 at α/β 3 Gy."""
    priors: list[tuple[str, float, int | None]] = []
    if step.prior_dose_gy is not None:
        priors.append(("prior_dose of this step", step.prior_dose_gy, step.prior_fractions))
    assert index is not None
    earlier: dict[int, tuple[tuple[int, Any], ...]] | None = ctx.cache.get("radiotherapy.sites")
    if earlier is None:
        # one pass over the courses: each step's earlier courses to the same site (linear)
        earlier = {}
        by_site: dict[str, list[tuple[int, Any]]] = {}
        for i, s in ctx.steps_of("radiotherapy"):
            same = by_site.setdefault(_site(s.site), [])
            earlier[i] = tuple(same)
            same.append((i, s))
        ctx.cache["radiotherapy.sites"] = earlier
    for i, other in earlier[index]:
        priors.append((f"step {i + 1}", other.total_dose_gy, other.fractions))
    if not priors:
        return PASSED
    message, arithmetic, detail, sources, level = _reirradiation_texts(
        step.site, step.total_dose_gy, step.fractions, tuple(priors)
    )
    return finding(
        "radiotherapy.reirradiation",
        "warning",
        message,
        step=index,
        source=sources,
        level=level,
        arithmetic=arithmetic,
        detail=dict(detail),
    )


@lru_cache(maxsize=1024)
def _reirradiation_texts(
    site: str, total: float, fractions: int, priors: tuple[tuple[str, float, int | None], ...]
) -> tuple[str, str, tuple[tuple[str, Any], ...], tuple[str, ...], str]:
    """Message, arithmetic, detail items, sources and level of a re-irradiation finding."""
    late = rt.alpha_beta("late")
    ab = late.gy
    current = rt._eqd2_gy(total, fractions, ab)
    terms = [f"this course {_course(total, fractions)}: {num(current)} Gy"]
    described = []
    unknown = []
    cumulative = current
    detail: dict[str, Any] = measure("eqd2_3_this_course", current, "Gy")
    for label, gy, n in priors:
        if n is None:
            unknown.append(f"{num(gy)} Gy ({label})")
            described.append(f"{num(gy)} Gy in an unrecorded number of fractions ({label})")
            continue
        e = rt._eqd2_gy(gy, n, ab)
        cumulative += e
        terms.append(f"{label} {_course(gy, n)}: {num(e)} Gy")
        described.append(f"{_course(gy, n)} ({label})")
    a = num(ab)
    if unknown:
        detail.update(
            eqd2_3_cumulative=None,
            eqd2_3_cumulative_unit=_catalog.ucum_code("Gy"),
            eqd2_3_cumulative_text=None,
            not_computed="cumulative EQD2: prior_fractions missing for " + ", ".join(unknown),
        )
        tail = (
            f" The cumulative EQD2 (α/β {a} Gy) could not be computed: the number of fractions "
            f"of the prior {', '.join(unknown)} is not recorded (add prior_fractions); this "
            f"course alone is {num(current)} Gy EQD2."
        )
        arithmetic = f"EQD2({a}) " + "; ".join(terms) + "; prior fractions unknown"
    else:
        detail.update(measure("eqd2_3_cumulative", cumulative, "Gy"))
        tail = f" Cumulative EQD2 (α/β {a} Gy): {num(cumulative)} Gy."
        arithmetic = f"EQD2({a}) " + " + ".join(terms) + f" = {num(cumulative)} Gy"
    message = (
        f"The site {site!r} was irradiated before ({'; '.join(described)}): this is "
        f"re-irradiation.{tail}"
    )
    sources = ("astro-2017", "joiner-2009", late.value.source)
    return message, arithmetic, tuple(detail.items()), sources, late.value.level


RULES: tuple[Rule, ...] = (bed_eqd2, schedule_nonstandard, dose_per_fraction, reirradiation)
