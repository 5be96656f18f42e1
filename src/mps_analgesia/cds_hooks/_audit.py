"""Feedback (CDS Hooks 2.0 §Feedback) validated, and the audit log it is appended to.

The audit log is JSON Lines, one event per line, appended (``O_APPEND``: the lines of several
worker processes never interleave).  It holds no patient data: no names, ids, doses or free
text, only the request id, the service, the verified issuer, the card uuids, finding codes and
indicators, the feedback outcome and override reason code, and times.  A clinician's
``userComment`` is never stored (it may name the patient); only whether there was one.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["AuditLog", "read_feedback"]

#: RFC 3339 §5.6 date-time in UTC (the spec's ``outcomeTimestamp``).
_TIMESTAMP: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]00:00)$", re.IGNORECASE
)
_UUID_LIKE: Final = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_OUTCOMES: Final = ("accepted", "overridden")
_MAX_ITEMS: Final = 100


def _id(value: object) -> bool:
    return isinstance(value, str) and bool(_UUID_LIKE.match(value))


def read_feedback(data: object) -> tuple[list[dict[str, Any]], list[str]]:
    """The feedback items of a request body as audit records, and every problem found.

    Example
    -------
    >>> from mps_analgesia.cds_hooks._audit import read_feedback
    >>> items, problems = read_feedback({"feedback": [{"card": "c1", "outcome": "maybe"}]})
    >>> for p in problems: print(p)
    feedback[0].outcome: must be 'accepted' or 'overridden'
    feedback[0].outcomeTimestamp: required (RFC 3339 UTC, e.g. 2020-12-11T00:00:00Z)
    """
    if not isinstance(data, Mapping):
        return [], ["the feedback body must be a JSON object"]
    rows = data.get("feedback")
    if not isinstance(rows, list) or not rows:
        return [], ["'feedback' must be a non-empty array"]
    if len(rows) > _MAX_ITEMS:
        return [], [f"at most {_MAX_ITEMS} feedback items per request"]
    items: list[dict[str, Any]] = []
    problems: list[str] = []
    for i, row in enumerate(rows):
        where = f"feedback[{i}]"
        if not isinstance(row, Mapping):
            problems.append(f"{where}: must be an object")
            continue
        mine: list[str] = []
        card, outcome = row.get("card"), row.get("outcome")
        if not _id(card):
            mine.append(f"{where}.card: the card's uuid (a string) is required")
        if outcome not in _OUTCOMES:
            mine.append(f"{where}.outcome: must be 'accepted' or 'overridden'")
        stamp = row.get("outcomeTimestamp")
        if not isinstance(stamp, str) or not _TIMESTAMP.match(stamp):
            mine.append(
                f"{where}.outcomeTimestamp: required (RFC 3339 UTC, e.g. 2020-12-11T00:00:00Z)"
            )
        accepted: list[str] = []
        suggestions = row.get("acceptedSuggestions")
        if outcome == "accepted":
            if not isinstance(suggestions, list) or not suggestions:
                mine.append(f"{where}.acceptedSuggestions: required for an accepted outcome")
            else:
                for j, s in enumerate(suggestions):
                    if isinstance(s, Mapping) and _id(s.get("id")):
                        accepted.append(s["id"])
                    else:
                        mine.append(f"{where}.acceptedSuggestions[{j}].id: a uuid is required")
        elif suggestions is not None:
            mine.append(f"{where}.acceptedSuggestions: only for an accepted outcome")
        reason: dict[str, str] | None = None
        commented = False
        override = row.get("overrideReason")
        if override is not None:
            if outcome != "overridden":
                mine.append(f"{where}.overrideReason: only for an overridden outcome")
            elif not isinstance(override, Mapping):
                mine.append(f"{where}.overrideReason: must be an object")
            else:
                coding = override.get("reason")
                if coding is not None:
                    if (
                        not isinstance(coding, Mapping)
                        or not isinstance(coding.get("code"), str)
                        or not isinstance(coding.get("system"), str)
                        or not _id(coding.get("code"))
                    ):
                        mine.append(f"{where}.overrideReason.reason: a Coding (system, code)")
                    else:
                        reason = {"system": coding["system"][:200], "code": coding["code"]}
                comment = override.get("userComment")
                if comment is not None and not isinstance(comment, str):
                    mine.append(f"{where}.overrideReason.userComment: must be a string")
                commented = isinstance(comment, str) and bool(comment.strip())
        problems.extend(mine)
        if not mine:
            item: dict[str, Any] = {
                "card": card,
                "outcome": outcome,
                "outcome_timestamp": stamp,
            }
            if accepted:
                item["accepted_suggestions"] = accepted
            if reason is not None:
                item["override_reason"] = reason
            if commented:
                item["user_comment"] = "given, not stored"
            items.append(item)
    return items, problems


class AuditLog:
    """An append-only JSON Lines file of events; ``None`` path: events are dropped."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            assert self.path is not None
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        return self._fd

    def write(self, event: str, request_id: str, **fields: Any) -> None:
        """Append one event (raises ``OSError`` if the file cannot be written)."""
        if self.path is None:
            return
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event": event,
            "request_id": request_id,
            **fields,
        }
        line = (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode()
        with self._lock:
            os.write(self._open(), line)

    def cards(
        self, request_id: str, service: str, iss: str | None, cards: Sequence[Mapping[str, Any]]
    ) -> None:
        """The cards a request was answered with: uuid, finding code and indicator each."""
        self.write(
            "cards",
            request_id,
            service=service,
            iss=iss,
            cards=[
                {
                    "uuid": c.get("uuid"),
                    "code": c.get("source", {}).get("topic", {}).get("code"),
                    "indicator": c.get("indicator"),
                }
                for c in cards
            ],
        )

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
