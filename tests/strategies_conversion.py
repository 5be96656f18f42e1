"""Hypothesis strategies for the equianalgesia tests: steps the OME tables can convert.

The shared valid-step strategies live in ``tests/strategies.py``; these add control over the dose
(so linearity can be tested) and draw only (drug, route) pairs a table has a linear factor for.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from mps_analgesia import conversion
from mps_analgesia.steps import OpioidStep

__all__ = [
    "convertible_oral",
    "daily_omes",
    "linear_targets",
    "scales",
    "table_ids",
]

#: Oral opioids with a single linear factor in every CDC table (methadone excluded: tiered).
_LINEAR_ORAL = ("codeine", "hydrocodone", "hydromorphone", "morphine", "oxycodone", "oxymorphone")


def table_ids() -> st.SearchStrategy[str]:
    """Any OME table id."""
    return st.sampled_from(conversion.ome_tables())


def scales() -> st.SearchStrategy[float]:
    """A positive scale factor for a dose (1/8 to 8)."""
    return st.sampled_from([0.125, 0.25, 0.5, 1.5, 2.0, 3.0, 4.0, 8.0])


@st.composite
def convertible_oral(draw: st.DrawFn, *, mg: float | None = None) -> OpioidStep:
    """A regular oral opioid step with a linear CDC factor, every 4, 6, 8, 12 or 24 hours."""
    drug = draw(st.sampled_from(_LINEAR_ORAL))
    dose = mg if mg is not None else draw(st.integers(1, 400)) / 2
    every = draw(st.sampled_from([4, 6, 8, 12, 24]))
    kwargs: dict[str, Any] = {"drug": drug, "dose": f"{dose} mg", "every": f"{every} h"}
    return OpioidStep(**kwargs)


def daily_omes() -> st.SearchStrategy[float]:
    """A daily OME between 5 and 2000 MME/day."""
    return st.integers(10, 4000).map(lambda n: n / 2)


def linear_targets() -> st.SearchStrategy[tuple[str, str, str]]:
    """(drug, route, formulation) targets with a linear cdc-2022 factor and listed strengths."""
    return st.sampled_from(
        [
            ("morphine", "oral", "modified-release"),
            ("morphine", "oral", "immediate-release"),
            ("oxycodone", "oral", "modified-release"),
            ("oxycodone", "oral", "immediate-release"),
            ("hydromorphone", "oral", "modified-release"),
            ("hydromorphone", "oral", "immediate-release"),
            ("fentanyl", "transdermal", "patch"),
        ]
    )
