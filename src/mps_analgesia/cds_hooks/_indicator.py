"""The CDS Hooks card indicator of each finding severity (the wire format lives with its boundary).

=========  ======================
severity   CDS Hooks indicator
=========  ======================
error      critical
warning    warning
info       info
=========  ======================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["CDS_INDICATOR"]

#: CDS Hooks card indicator for each severity.
CDS_INDICATOR: Final[Mapping[str, str]] = {
    "error": "critical",
    "warning": "warning",
    "info": "info",
}
