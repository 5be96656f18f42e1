"""Switching TO methadone by a named scheme (one way: methadone is never converted back)."""

from __future__ import annotations

from typing import Any

from .. import _catalog, _units
from .._catalog import find_tier
from ..errors import ConversionError
from ._common import (
    FROM_METHADONE,
    HOURS_PER_DAY,
)
from ._common import (
    close as _close,
)
from ._common import (
    norm as _norm,
)
from ._common import (
    num as _num,
)
from ._common import (
    unknown as _unknown,
)
from .results import MethadoneConversion, OmeResult, QuantityRange, Reduction, Schedule
from .rotation import _reduction, _reductions, _suggest

__all__ = ["methadone_from_ome", "methadone_schemes"]


def methadone_schemes() -> tuple[str, ...]:
    """The ids of the methadone switching schemes.

    Example
    -------
    >>> from mps_analgesia.conversion import methadone_schemes
    >>> "methapain-label" in methadone_schemes()
    True
    """
    return tuple(_catalog.switching_schemes()[0])


# ---- methadone ----------------------------------------------------------------------------------


def _ome_range(ome: Any, what: str) -> tuple[float, float]:
    if isinstance(ome, OmeResult):
        if ome.not_converted:
            raise ConversionError(
                f"{what}: the OME is incomplete: " + "; ".join(s.text for s in ome.not_converted)
            )
        if any(line.drug == "methadone" for line in ome.lines):
            raise ConversionError(f"{what}: the OME includes methadone: {FROM_METHADONE}")
        return ome.low_mme_per_day, ome.high_mme_per_day
    if isinstance(ome, QuantityRange):
        if ome.unit != "MME/day":
            raise ConversionError(f"{what}: a range in {ome.unit}, not MME/day")
        return ome.low, ome.high
    if isinstance(ome, str) or _units.is_quantity(ome):
        value = _units.magnitude_in(_units.as_quantity(ome, "ome_rate", field="ome"), "MME/day")
        if value < 0:
            raise ConversionError(f"{what}: a daily OME cannot be negative")
        return value, value
    raise ConversionError(
        f"{what} takes a daily OME ('200 MME/day', a Quantity or an OmeResult), not "
        f"{type(ome).__name__}; for a step or regimen use daily_ome() first"
    )


def methadone_from_ome(
    ome: Any, scheme: str = "methapain-label", *, reduction: Any = "scheme"
) -> MethadoneConversion:
    """Switch TO methadone from a daily oral morphine equivalent by a named scheme.

    Conversion is one way: no function turns methadone back into morphine by a factor.

    Parameters
    ----------
    ome:
        The prior daily OME: ``"200 MME/day"``, a Quantity in MME/day, or an
        :class:`OmeResult` (complete, without methadone).
    scheme:
        ``methapain-label`` (default; Japanese label: 60–160 → 15 mg/day, >160–390 → 30,
        >390 → 45; below 60 not recommended), ``msd-2023`` (tiered ratios then 75–90 % less),
        ``ccdhb-2009`` (tiered ratios then 25–50 % less), ``chatham-2013`` (30 mg/day above
        1200 MME/day), ``mercadante-2022`` (first-line starting doses below 60 MME/day).
    reduction:
        ``"scheme"`` (default: the scheme's own reduction), or any value
        :func:`convert_opioid` accepts, for ratio schemes only.

    Example
    -------
    >>> from mps_analgesia.conversion import methadone_from_ome
    >>> methadone_from_ome("200 MME/day").schedule.text
    'methadone oral immediate-release 10 mg every 8 h (1 × 10 mg) = 30 mg/day'
    >>> methadone_from_ome("250 MME/day", scheme="msd-2023").daily.text
    '3.125–7.812 mg/day'
    """
    schemes, edition = _catalog.switching_schemes()
    if not isinstance(scheme, str) or scheme not in schemes:
        raise _unknown("methadone scheme", scheme, schemes, "scheme")
    sch = schemes[scheme]
    low, high = _ome_range(ome, "methadone_from_ome()")
    tiers = []
    for x in (low, high):
        tier = find_tier(sch.tiers, x)
        if tier is None:
            raise ConversionError(
                f"{scheme}: {sch.refuse_reason} (given {_num(x)} MME/day) "
                f"[{sch.source} {sch.level}]"
            )
        tiers.append(tier)
    t_low, t_high = tiers
    tier_text = t_low.text("MME/day")
    if t_high is not t_low:
        tier_text += " to " + t_high.text("MME/day")
    notes = [n for n in (sch.note,) if n]
    notes.append("one way only: a methadone dose is never converted back to morphine by a factor")
    ratio: QuantityRange | None = None
    red: Reduction | None = None
    schedule: Schedule | None = None
    if sch.kind == "fixed":
        if not (isinstance(reduction, str) and _norm(reduction) in ("scheme", "none")):
            raise ConversionError(f"{scheme} gives a fixed starting dose; it takes no reduction")
        calc = QuantityRange(t_low.daily, t_high.daily, "mg/day")
        daily = calc
        if t_low is t_high and t_low.dose > 0:
            product = _catalog.products().get(("methadone", "oral", "immediate-release"))
            comp: tuple[tuple[float, int], ...] = ()
            if product is not None:
                got = product.round_down(t_low.dose)
                if got is not None and _close(got[0], t_low.dose):
                    comp = got[1]
            schedule = Schedule(
                "methadone",
                "oral",
                "immediate-release",
                t_low.dose,
                "mg",
                HOURS_PER_DAY / t_low.times_per_day,
                comp,
                t_low.dose,
                source=sch.source,
                level=sch.level,
                note=f"the {scheme} split",
            )
    else:
        # OME / ratio rises within a tier and drops at each tier start, so over an OME range
        # the extremes lie at its ends or at a tier start inside it.
        points = [(low, t_low), (high, t_high)]
        points += [(t.lower, t) for t in sch.tiers if low < t.lower <= high]
        doses = [x / t.value for x, t in points]
        ratios = [t.value for _, t in points]
        ratio = QuantityRange(min(ratios), max(ratios), "")
        calc = QuantityRange(min(doses), max(doses), "mg/day")
        if isinstance(reduction, str) and _norm(reduction) == "scheme":
            red = _reductions()[0][sch.reduction]
        else:
            red = _reduction(reduction, same_drug=False)
        # reduced from the low end of the calculated range (conservative, as in rotation)
        daily = QuantityRange(calc.low * (1.0 - red.high), calc.low * (1.0 - red.low), "mg/day")
    if schedule is None:
        schedule, why = _suggest("methadone", "oral", "immediate-release", daily.high, "mg/day")
        if why:
            notes.append(why)
    chatham = schemes.get("chatham-2013")
    if chatham is not None and scheme != "chatham-2013" and find_tier(chatham.tiers, high):
        notes.append(
            f"above {_num(chatham.tiers[0].lower)} MME/day: {chatham.note} "
            f"[{chatham.source} {chatham.level}]"
        )
    return MethadoneConversion(
        scheme,
        sch.title,
        edition,
        sch.kind,
        sch.source,
        sch.level,
        QuantityRange(low, high, "MME/day"),
        ratio,
        calc,
        red,
        daily,
        schedule,
        tier_text,
        tuple(notes),
    )
