"""Instantiated plans: the regimen a protocol gives one patient, with its decisions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from .._plain import unstructure
from .._repr import Renderable
from ..patient import Patient
from ..regimen import Regimen
from ..report import Report
from ..steps import Step
from ._format import _human
from .checks import CheckResult, _strs
from .model import Protocol

# ---- instantiated plans -------------------------------------------------------------------------


@attrs.define(frozen=True)
class Decision:
    """One decision of the receipt: what was decided (:data:`DECISION_ACTIONS`), why, on what.

    ``step`` is the step template id (``None`` for the plan as a whole); ``arithmetic`` shows the
    calculation with units; ``sources`` and ``level`` the evidence it rests on.  Long decimals in
    the message and the arithmetic are written for people (at most 4 significant digits, or one
    decimal): ``33.3333 mg`` reads ``33.33 mg``.
    """

    action: str
    message: str = attrs.field(converter=_human)
    step: str | None = None
    sources: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    level: str = ""
    arithmetic: str = attrs.field(default="", converter=_human)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "action": self.action,
            "step": self.step,
            "message": self.message,
            "arithmetic": self.arithmetic,
            "sources": list(self.sources),
            "level": self.level,
        }


@attrs.define(frozen=True)
class MonitoringItem:
    """A planned check: ``what`` on plan ``day`` (to ``until_day``), or ``None`` when it is
    triggered by an event rather than a date."""

    step: str
    what: str
    when: str
    day: int | None = None
    until_day: int | None = None
    sources: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    level: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "step": self.step,
            "what": self.what,
            "when": self.when,
            "day": self.day,
            "until_day": self.until_day,
            "sources": list(self.sources),
            "level": self.level,
        }


@attrs.define(frozen=True)
class InstantiatedPlan(Renderable):
    """A protocol made for one patient: the regimen, the checks, the decisions (the receipt).

    Attributes
    ----------
    protocol:
        The protocol it came from.
    patient:
        The patient.
    regimen:
        The plan: the current steps first (continued), then the protocol's steps with their
        start days and titration.
    step_ids:
        For each regimen step, the template id it came from (``current[i]`` for current steps).
    checks:
        Every eligibility, contraindication and caution check with its outcome.
    decisions:
        The receipt: every decision with its reason, arithmetic and sources.
    monitoring:
        The planned checks (ECG days, pain scores ...).
    status:
        ``eligible``, ``not eligible`` or ``undetermined`` (a check could not be read).
    choices:
        The choices used (defaults filled in).
    """

    protocol: Protocol
    patient: Patient
    regimen: Regimen
    step_ids: tuple[str, ...]
    checks: tuple[CheckResult, ...]
    decisions: tuple[Decision, ...]
    monitoring: tuple[MonitoringItem, ...]
    status: str
    choices: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    @property
    def eligible(self) -> bool | None:
        """True when eligible, False when not, None when undetermined."""
        return {"eligible": True, "not eligible": False}.get(self.status)

    @property
    def unmet(self) -> tuple[CheckResult, ...]:
        """The eligibility checks not met and the contraindications met."""
        return tuple(
            c
            for c in self.checks
            if (c.group == "eligibility" and c.outcome == "not met")
            or (c.group == "contraindication" and c.outcome == "met")
        )

    @property
    def unknown(self) -> tuple[CheckResult, ...]:
        """The checks that could not be read."""
        return tuple(c for c in self.checks if c.outcome == "unknown")

    def step_for(self, template_id: str) -> Step | None:
        """The regimen step made from a template id, or ``None``."""
        for sid, step in zip(self.step_ids, self.regimen, strict=True):
            if sid == template_id:
                return step
        return None

    def validate(self, **kwargs: Any) -> Report:
        """Check the plan's regimen for the patient with :func:`mps_analgesia.validate`."""
        from ..rules import validate

        return validate(self.regimen, self.patient, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the plan and its receipt."""
        return {
            "protocol": {
                "id": self.protocol.id,
                "version": self.protocol.version,
                "status": self.protocol.status,
            },
            "status": self.status,
            "choices": {
                k: (list(v) if isinstance(v, tuple) else v) for k, v in self.choices.items()
            },
            "checks": [c.to_dict() for c in self.checks],
            "steps": [
                {"from": sid, "description": s.describe(), **unstructure(s)}
                for sid, s in zip(self.step_ids, self.regimen, strict=True)
            ],
            "decisions": [d.to_dict() for d in self.decisions],
            "monitoring": [m.to_dict() for m in self.monitoring],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The plan as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_text(self) -> str:
        """A readable receipt: status, steps, decisions, monitoring."""
        p = self.protocol
        lines = [f"{p.title} ({p.id} {p.version}, {p.status})", f"Eligibility: {self.status}"]
        for c in self.checks:
            if c.step is None and c.outcome != "not applicable":
                lines.append(f"  [{c.group}] {c.message}")
        lines.append("Plan:")
        for sid, step in zip(self.step_ids, self.regimen, strict=True):
            start = f"day {step.start_day}: " if step.start_day else ""
            lines.append(f"  {start}{step.describe()}  [{sid}]")
        lines.append("Decisions:")
        for d in self.decisions:
            where = f"{d.step}: " if d.step else ""
            src = (
                f" [{', '.join(d.sources)}{' ' + d.level if d.level else ''}]" if d.sources else ""
            )
            lines.append(f"  - {d.action}: {where}{d.message}{src}")
            if d.arithmetic:
                lines.append(f"      = {d.arithmetic}")
        if self.monitoring:
            lines.append("Monitoring:")
            for m in self.monitoring:
                day = "" if m.day is None else f"day {m.day}"
                if m.until_day is not None:
                    day += f"-{m.until_day}"
                lines.append(f"  - {m.what}: {m.when}{' (' + day + ')' if day else ''}")
        return "\n".join(lines)
