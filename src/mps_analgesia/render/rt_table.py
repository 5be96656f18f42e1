"""The shipped palliative radiotherapy schedules with their BED and EQD2.

The schedules and α/β values come from ``data/radiotherapy.toml`` through
:mod:`mps_analgesia.radiotherapy`; BED and EQD2 are computed by its :func:`bed` and :func:`eqd2`.
One column pair (BED, EQD2) per α/β value in the data file.
"""

from __future__ import annotations

from ..report import INTENDED_USE
from ._doc import Block, Document, Para, Table, inline

__all__ = ["alpha_beta_line", "rt_table", "rt_table_blocks", "rt_table_document"]


def _gy(value_gy: float) -> str:
    from ._build import num

    return f"{num(value_gy)} Gy"


def rt_table() -> Table:
    """The schedules as a table: schedule, dose per fraction, BED and EQD2 per α/β, source.

    The α/β values (in Gy) head the columns; the line under the table names them.

    Example
    -------
    >>> table = rt_table()
    >>> table.headers[:4]
    ('Schedule', 'Per fraction', 'BED (α/β 10)', 'EQD2 (α/β 10)')
    >>> [row[0][0] for row in table.rows]
    ['8 Gy/1', '20 Gy/5', '24 Gy/6', '30 Gy/10']
    >>> row = table.rows[0]; row[2][0], row[3][0], row[4][0], row[5][0]
    ('14.4 Gy', '12 Gy', '29.33 Gy', '17.6 Gy')
    """
    from .. import radiotherapy
    from ._build import cite, num

    abs_ = radiotherapy.alpha_beta_values()
    headers = ["Schedule", "Per fraction"]
    for ab in abs_:
        headers += [f"BED (α/β {num(ab.gy)})", f"EQD2 (α/β {num(ab.gy)})"]
    headers.append("Source")
    rows = []
    for s in radiotherapy.astro_schedules():
        results = radiotherapy.course_equivalents(s.total_dose, s.fractions)
        row = [inline(s.text), inline(_gy(results[0].dose_per_fraction_gy))]
        for c in results:
            row.append(inline(_gy(c.bed_gy)))
            row.append(inline(_gy(c.eqd2_gy)))
        row.append(inline(f"[{s.level}]", cite([s.source])))
        rows.append(tuple(row))
    return Table(
        "Palliative radiotherapy schedules with BED and EQD2",
        tuple(headers),
        tuple(rows),
        numeric=tuple(range(1, len(headers) - 1)),
    )


def alpha_beta_line() -> Para:
    """The formulas and the α/β values used, with the α/β values' sources."""
    from .. import radiotherapy
    from ._build import cite, num

    abs_ = radiotherapy.alpha_beta_values()
    labels = "; ".join(f"α/β {num(ab.gy)} Gy: {ab.label}" for ab in abs_)
    return Para(
        inline(
            "BED = D × (1 + d ÷ (α/β)); EQD2 = BED ÷ (1 + 2 Gy ÷ (α/β)); "
            "D total dose, d dose per fraction. ",
            labels,
            cite(ab.value.source for ab in abs_),
            ".",
        )
    )


def rt_table_blocks() -> tuple[Block, ...]:
    """The table and the line naming the formulas and α/β values with their sources."""
    return (rt_table(), alpha_beta_line())


def rt_table_document() -> Document:
    """The radiotherapy table as a whole document (for ``render_rt_table``)."""
    from .. import _catalog

    return Document(
        "Palliative radiotherapy schedules",
        rt_table_blocks(),
        subtitle=f"Data table radiotherapy.toml {_catalog.edition('radiotherapy.toml')}",
        footer=INTENDED_USE,
        kind="radiotherapy-table",
    )
