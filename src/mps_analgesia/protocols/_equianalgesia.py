"""Adapters from the protocol checks and planner to the equianalgesia module."""

from __future__ import annotations

import math

from .. import _units
from ..errors import (
    MpsAnalgesiaError,
)
from ..regimen import Regimen
from ._format import _num
from ._vocabulary import _TOL

# ---- adapters to the equianalgesia module -------------------------------------------------------


def _daily_ome(regimen: Regimen, table: str) -> tuple[float | None, str]:
    """The regimen's regular daily OME (MME/day) by ``table``; ``None`` with the reason."""
    from .. import conversion

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
    from .. import conversion

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
    from .. import conversion

    result = conversion.methadone_from_ome(
        _units.quantity_from_magnitude(ome, "MME/day"), scheme=scheme
    )
    daily = result.daily
    arithmetic = "; ".join(result.receipt[1:2])
    if daily.is_range:
        arithmetic += f"; the range {daily.text} is started at its low end"
    return daily.low, arithmetic, (result.source,), result.level
