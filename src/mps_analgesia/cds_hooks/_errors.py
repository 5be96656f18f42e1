"""The error a CDS Hooks request can be answered with instead of cards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import MpsAnalgesiaError

__all__ = ["CdsRequestError"]


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
        """The JSON error body."""
        out: dict[str, Any] = {"error": self.message}
        if self.problems:
            out["problems"] = list(self.problems)
        return out
