"""The errors a CDS Hooks request can be answered with instead of cards.

Every answer that is not cards is a 4xx or 5xx whose body is OperationOutcome-shaped::

    {"resourceType": "OperationOutcome",
     "issue": [{"severity": "error", "code": "invalid", "diagnostics": "..."}, ...],
     "error": "...", "problems": ["..."]}

``error`` (the first diagnostic) and ``problems`` (the others) are kept for clients of earlier
versions.  No answer is ever a 200 without ``cards``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from ..errors import MpsAnalgesiaError

__all__ = ["CdsRequestError", "outcome"]

#: The FHIR ``IssueType`` of each status the service answers with.
ISSUE_CODE: Final = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    408: "timeout",
    413: "too-long",
    415: "not-supported",
    422: "processing",
    500: "exception",
    503: "transient",
}


def outcome(status: int, message: str, problems: Sequence[str] = ()) -> dict[str, Any]:
    """The OperationOutcome-shaped body of an error answer.

    Example
    -------
    >>> from mps_analgesia.cds_hooks import outcome
    >>> body = outcome(415, "the body must be application/json")
    >>> body["resourceType"], body["issue"][0]["code"], body["error"]
    ('OperationOutcome', 'not-supported', 'the body must be application/json')
    """
    code = ISSUE_CODE.get(status, "processing" if status < 500 else "exception")
    severity = "error" if status < 500 else "fatal"
    issues = [{"severity": severity, "code": code, "diagnostics": message}]
    issues += [{"severity": "error", "code": code, "diagnostics": p} for p in problems]
    out: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": issues, "error": message}
    if problems:
        out["problems"] = list(problems)
    return out


class CdsRequestError(MpsAnalgesiaError, ValueError):
    """A CDS Hooks request that cannot be answered: ``status`` is the HTTP status to send."""

    def __init__(self, status: int, message: str, problems: Sequence[str] = ()) -> None:
        self.status = status
        self.message = message
        self.problems = tuple(problems)
        super().__init__(status, message, self.problems)

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, Any]:
        """The JSON error body (OperationOutcome-shaped)."""
        return outcome(self.status, self.message, self.problems)
