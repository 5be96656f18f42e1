"""Rules of the interactions area (filled in by its issue)."""

from __future__ import annotations

from ._engine import Rule

__all__ = ["RULES"]

RULES: tuple[Rule, ...] = ()
