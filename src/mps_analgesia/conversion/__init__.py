"""Equianalgesia: oral morphine equivalents, opioid rotation, methadone and breakthrough doses.

Every number returned here names its table (and the table's edition), its formula and any
reduction, and carries a *receipt*: for each step, daily dose × factor = OME, with the source id
and verification level of the factor.  The clinical values are data files, never code:

==============================  =================================================================
``data/ome-cdc-2022.toml``      ``cdc-2022`` (default): CDC 2022 MME factors
``data/ome-cdc-2016.toml``      ``cdc-2016``: hydromorphone 4, methadone tiered by dose
``data/ome-palliative.toml``    ``palliative``, ``palliative-duragesic``, ``palliative-uk``,
                                ``palliative-nougg`` (IV morphine 2:1), ``palliative-scotland``
                                (its 12 mcg/h patch row): route-specific ratios (SC/IV morphine,
                                parenteral hydromorphone and oxycodone) and transdermal-fentanyl
                                *bands* (ranges)
``data/ome-anzca-2021.toml``    ``anzca-2021``: ANZCA PS01(PM) factors [S]
``data/rotation.toml``          reductions for incomplete cross-tolerance; opioid tolerance
``data/methadone-schemes.toml`` switching schemes to methadone (one way only)
``data/breakthrough.toml``      breakthrough (rescue) fractions
``data/strengths.toml``         product strengths to round suggestions *down* (unverified [U])
==============================  =================================================================

A hospital's own table file, in the same format, is read by :func:`load_table` (module
:mod:`.tables`); the :class:`ConversionTable` it returns is taken by every ``table=`` parameter
in place of an id (a string is always an id, never a path).

Formulas (``dose_unit`` is mg/day except transdermal fentanyl, whose factor is per mcg/h):

- OME (MME/day) = daily dose in ``dose_unit`` × factor; a range-valued factor or a fentanyl band
  gives a range, and a range stays a range in every result;
- equianalgesic dose = OME ÷ factor of the target (or the fentanyl band holding the OME);
- reduced range = equianalgesic × (1 − high reduction) … equianalgesic × (1 − low reduction),
  from the LOW end of the equianalgesic dose when that is a range (an uncertain equivalence);
- suggestion = the largest combination of available strengths not above the top of the
  reduced range (rounded down, never up).

MME is a metric, not a dosing tool: CDC says the calculated MME must not choose the dose of a new
opioid; rotation therefore always shows a reduction, and converting *from* methadone by a linear
factor is refused.  Below the public functions everything is canonical floats; pint Quantities
are built only when a result's Quantity properties are read.

The package, one idea per module: :mod:`.results` (the result records), :mod:`.ome` (daily OME),
:mod:`.rotation` (equianalgesic rotation), :mod:`.methadone` (switching to methadone),
:mod:`.breakthrough` (rescue doses).  The tables themselves are read by ``_catalog`` (the only
reader of ``data/``).
"""

from __future__ import annotations

from .. import _catalog
from .._catalog import mme_thresholds as mme_thresholds
from .._catalog import tolerance_threshold as tolerance_threshold
from ._common import DEFAULT_TABLE as DEFAULT_TABLE
from ._common import PRN_POLICIES, span
from .breakthrough import breakthrough_dose
from .breakthrough import breakthrough_window as breakthrough_window
from .methadone import methadone_from_ome, methadone_schemes
from .ome import compare_tables, daily_ome, ome_tables, table_by_id
from .ome import ome_of_steps as ome_of_steps
from .ome import single_dose_ome as single_dose_ome
from .results import (
    BreakthroughDose,
    BreakthroughFraction,
    Conversion,
    MethadoneConversion,
    OmeLine,
    OmeResult,
    QuantityRange,
    Reduction,
    Schedule,
    SkippedStep,
    TableComparison,
)
from .rotation import convert_opioid
from .tables import load_table, loads_table

ConversionTable = _catalog.ConversionTable

__all__ = [
    "PRN_POLICIES",
    "BreakthroughDose",
    "BreakthroughFraction",
    "Conversion",
    "ConversionTable",
    "MethadoneConversion",
    "OmeLine",
    "OmeResult",
    "QuantityRange",
    "Reduction",
    "Schedule",
    "SkippedStep",
    "TableComparison",
    "breakthrough_dose",
    "compare_tables",
    "convert_opioid",
    "daily_ome",
    "load_table",
    "loads_table",
    "methadone_from_ome",
    "methadone_schemes",
    "ome_tables",
]

# Private names older callers reach for, kept so their imports keep working (prefer
# ``_catalog.conversion_tables``, ``_catalog.conversion_table`` and ``_catalog.product``).
_tables = _catalog.conversion_tables
_table = table_by_id
_products = _catalog.products
_span = span
_Table = _catalog.ConversionTable
_Entry = _catalog.TableEntry
_Product = _catalog.Product
