"""Small helpers and constants shared by the conversion modules (no clinical numbers)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Final

from .. import _catalog, _format
from ..errors import UnknownNameError

#: The two definitions of how PRN (breakthrough) steps count towards a daily OME.
#: ``regular_only``: scheduled doses only; ``with_prn_maximum``: plus each PRN step's maximum
#: over 24 hours.
PRN_POLICIES: Final[tuple[str, ...]] = ("regular_only", "with_prn_maximum")
#: The default OME table.
DEFAULT_TABLE: Final = "cdc-2022"

OPIOID_KINDS: Final = ("opioid", "methadone_adjuvant")
HOURS_PER_DAY: Final = 24.0  # a unit identity, not a clinical number
REL: Final = 1e-9
ESTIMATE: Final = (
    "methadone's factor is an estimate, not a conversion ratio: never use it to dose methadone "
    "or to convert from methadone"
)
FROM_METHADONE: Final = (
    "converting FROM methadone by a linear factor is refused: the morphine:methadone ratio is not "
    "linear (it rises with the prior dose: 2.5:1 to 14.3:1, median 7.75:1, in Ripamonti 1998) "
    "and methadone's long, variable half-life makes any back-conversion unreliable; rotate away "
    "from methadone under specialist guidance"
)

num = _format.number
close = _format.close
span = _format.span


def weakest(levels: Iterable[str]) -> str:
    """The weakest verification level among ``levels`` (``V`` when there are none)."""
    worst = "V"
    for level in levels:
        if level and _catalog.LEVELS.index(level) > _catalog.LEVELS.index(worst):
            worst = level
    return worst


def tag(source: str, level: str) -> str:
    """``'[cdc-2022 V]'``, or ``"[caller's choice]"`` without a source."""
    return f"[{source} {level}]" if source else "[caller's choice]"


def unknown(kind: str, name: object, known: Iterable[str], field: str = "") -> UnknownNameError:
    """An :class:`UnknownNameError` listing the known names and the closest ones."""
    known = list(known)
    near = difflib.get_close_matches(str(name), known, n=3, cutoff=0.4)
    return UnknownNameError(
        kind,
        str(name),
        near,
        field,
        reason=f"unknown {kind} {name!r} (known: {', '.join(known)})",
    )


def norm(value: str) -> str:
    """A name normalised for lookup: lower case, words joined by ``-``."""
    return "-".join(str(value).strip().lower().replace("_", "-").split())
