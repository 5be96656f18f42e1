"""The limits of every input boundary, declared once.

Every path into the library (a Python call, a case file, a protocol file, a FHIR resource, the
command line) reads its input through the guards in :mod:`mps_analgesia._units` (quantity text
and numbers) and :mod:`mps_analgesia._files` (file size, nesting depth, integers, strings).
Those guards take their bounds from here and nowhere else, so a limit changes in one line.

The limits are not clinical: they bound what a careless or hostile input can cost (time,
memory) and refuse numbers that no prescription can mean but that arithmetic would silently
turn into 0 or infinity (``1e-400 mg``, ``1e308 mg``).  Clinical plausibility is checked by the
rules, from ``data/plausibility.toml``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INT_DIGITS",
    "MAX_ITEMS",
    "MAX_MAGNITUDE",
    "MAX_QUANTITY_TEXT",
    "MAX_STRING",
    "MIN_MAGNITUDE",
]

#: Largest case or protocol file read, in bytes (a large case file is under 100 kB).
MAX_FILE_BYTES: Final = 2_000_000
#: Deepest nesting of tables and arrays in a file (a case file nests 4 deep).
MAX_DEPTH: Final = 32
#: Most items in one array or table of a file.
MAX_ITEMS: Final = 10_000
#: Longest text value in a file, in characters.
MAX_STRING: Final = 100_000
#: Integers read from a file are at most 10**MAX_INT_DIGITS (no count or age needs more).
MAX_INT_DIGITS: Final = 12
#: Longest quantity text (``"15 mg/day"``) read, in characters.
MAX_QUANTITY_TEXT: Final = 100
#: Largest magnitude of a quantity, in its own unit; larger is refused, never rounded.
MAX_MAGNITUDE: Final = 1e12
#: Smallest non-zero magnitude of a quantity, in its own unit; smaller is refused, never 0.
MIN_MAGNITUDE: Final = 1e-12
