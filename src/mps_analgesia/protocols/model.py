"""The protocol model: a protocol, its phases, step templates, dose ranges and rules."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .. import _units
from .._repr import Renderable
from ..errors import (
    UnknownNameError,
)
from ..patient import Patient
from ..regimen import Regimen
from ..steps import Step
from ._format import _num, _qtext
from .checks import Check, _meta

if TYPE_CHECKING:
    from ..assess import MpsAssessment, MpsFeatures
    from .plans import InstantiatedPlan


# ---- the model ----------------------------------------------------------------------------------


@attrs.define(frozen=True, kw_only=True)
class Evidence:
    """The evidence behind a protocol: a level (:data:`EVIDENCE_LEVELS`), a summary, sources."""

    level: str = attrs.field(metadata=_meta("evidence level", enum="evidence_levels"))
    summary: str = attrs.field(metadata=_meta("what the evidence is, in words"))
    sources: tuple[str, ...] = attrs.field(default=(), metadata=_meta("source ids"))


@attrs.define(frozen=True, kw_only=True)
class Phase:
    """An ordered phase of a protocol (its steps are the templates whose ``phase`` is its id)."""

    id: str = attrs.field(metadata=_meta("phase id"))
    title: str = attrs.field(metadata=_meta("phase title"))
    purpose: str = attrs.field(default="", metadata=_meta("what the phase is for"))


@attrs.define(frozen=True, kw_only=True)
class DoseRange:
    """The range a step's dose must stay in: per dose (mg), per day (mg/day), a bolus volume
    (mL) or an infusion rate (mL/h), with its source and level."""

    min: Any = attrs.field(default=None, eq=False, metadata=_meta("lower end", quantity=True))
    max: Any = attrs.field(default=None, eq=False, metadata=_meta("upper end", quantity=True))
    source: str = attrs.field(default="", metadata=_meta("source id"))
    level: str = attrs.field(default="", metadata=_meta("verification level", enum="levels"))
    note: str = attrs.field(default="", metadata=_meta("how the range was read"))
    dimension: str = attrs.field(default="", metadata={"schema": False})
    min_value: float | None = attrs.field(default=None, metadata={"schema": False})
    max_value: float | None = attrs.field(default=None, metadata={"schema": False})

    @property
    def text(self) -> str:
        """``'15 mg/day to 30 mg/day'``, ``'at most 80 mg/day'``."""
        lo = _units.format_quantity(self.min) if self.min is not None else ""
        hi = _units.format_quantity(self.max) if self.max is not None else ""
        if lo and hi:
            return f"{lo} to {hi}"
        return f"at least {lo}" if lo else f"at most {hi}"


@attrs.define(frozen=True, kw_only=True)
class StartRule:
    """How the starting dose is chosen (:data:`START_METHODS`).

    ``fixed``: the step's own values; ``per_kg``: ``per_kg`` × weight into ``field``;
    ``from_ome``: methadone from the current daily OME by a named ``scheme``; ``current``: the
    patient's current step of this kind continues (no new step).
    """

    method: str = attrs.field(default="fixed", metadata=_meta("method", enum="start_methods"))
    per_kg: Any = attrs.field(
        default=None, eq=False, metadata=_meta("amount per kg", dimension="volume_per_mass")
    )
    field: str = attrs.field(default="", metadata=_meta("step field set by per_kg"))
    scheme: str = attrs.field(default="", metadata=_meta("methadone scheme for from_ome"))
    source: str = attrs.field(default="", metadata=_meta("source id"))
    level: str = attrs.field(default="", metadata=_meta("verification level", enum="levels"))
    note: str = attrs.field(default="", metadata=_meta("note"))
    per_kg_value: float | None = attrs.field(default=None, metadata={"schema": False})


@attrs.define(frozen=True, kw_only=True)
class TitrationRule:
    """Titration: ``step`` (per dose, or per day), the minimum ``interval`` between changes, and
    the ``ceiling`` (per dose or per day).  Without a step size no titration is scheduled: the
    interval and ceiling are then stated as rules."""

    step: Any = attrs.field(default=None, eq=False, metadata=_meta("increase", quantity=True))
    interval: Any = attrs.field(
        default=None, eq=False, metadata=_meta("least time between changes", dimension="time")
    )
    ceiling: Any = attrs.field(default=None, eq=False, metadata=_meta("ceiling", quantity=True))
    source: str = attrs.field(default="", metadata=_meta("source id"))
    level: str = attrs.field(default="", metadata=_meta("verification level", enum="levels"))
    note: str = attrs.field(default="", metadata=_meta("note"))
    step_value: float | None = attrs.field(default=None, metadata={"schema": False})
    step_dimension: str = attrs.field(default="", metadata={"schema": False})
    interval_days: int | None = attrs.field(default=None, metadata={"schema": False})
    ceiling_value: float | None = attrs.field(default=None, metadata={"schema": False})
    ceiling_dimension: str = attrs.field(default="", metadata={"schema": False})


@attrs.define(frozen=True, kw_only=True)
class Monitoring:
    """What to watch (:data:`MONITORING_KINDS`) and when: in words, and where the reference gives
    numbers, from/until a time after the step starts or when the daily dose reaches a value."""

    what: str = attrs.field(metadata=_meta("what to watch", enum="monitoring_kinds"))
    when: str = attrs.field(metadata=_meta("when, in words"))
    from_start: Any = attrs.field(
        default=None, eq=False, metadata=_meta("time after the step starts", dimension="time")
    )
    until: Any = attrs.field(
        default=None, eq=False, metadata=_meta("end of the window after start", dimension="time")
    )
    at_daily_dose: Any = attrs.field(
        default=None, eq=False, metadata=_meta("daily dose that triggers it", dimension="mass_rate")
    )
    source: str = attrs.field(default="", metadata=_meta("source id"))
    level: str = attrs.field(default="", metadata=_meta("verification level", enum="levels"))
    from_day: int | None = attrs.field(default=None, metadata={"schema": False})
    until_day: int | None = attrs.field(default=None, metadata={"schema": False})
    at_daily_mg: float | None = attrs.field(default=None, metadata={"schema": False})


@attrs.define(frozen=True, kw_only=True)
class Deescalation:
    """When and how to step down: a trigger, an action on a target (a step id, or ``opioid`` for
    the regular opioid), and a reduction only when the reference gives one."""

    trigger: str = attrs.field(metadata=_meta("what triggers it"))
    action: str = attrs.field(metadata=_meta("what to do"))
    target: str = attrs.field(default="", metadata=_meta("a step id, or 'opioid'"))
    reduce_by_percent: tuple[float, ...] = attrs.field(
        default=(), metadata=_meta("reduction in percent (one number or a range of two)")
    )
    after: Any = attrs.field(
        default=None, eq=False, metadata=_meta("time after the step starts", dimension="time")
    )
    source: str = attrs.field(default="", metadata=_meta("source id"))
    level: str = attrs.field(default="", metadata=_meta("verification level", enum="levels"))
    note: str = attrs.field(default="", metadata=_meta("note"))

    @property
    def text(self) -> str:
        """The de-escalation rule in one sentence."""
        out = f"{self.trigger}: {self.action}"
        if self.reduce_by_percent:
            pct = "–".join(_num(p) for p in self.reduce_by_percent)
            out += f" (by {pct} %)"
        if self.after is not None:
            out += f" (after {_qtext(self.after)})"
        return out


@attrs.define(frozen=True, kw_only=True)
class Duration:
    """A planned course length (steps themselves have no stop day: the plan states it)."""

    value: Any = attrs.field(eq=False, metadata=_meta("course length", dimension="time"))
    source: str = attrs.field(default="", metadata=_meta("source id"))
    level: str = attrs.field(default="", metadata=_meta("verification level", enum="levels"))
    note: str = attrs.field(default="", metadata=_meta("note"))


@attrs.define(frozen=True, kw_only=True)
class Escalation:
    """When to escalate and to what (other protocol ids)."""

    when: str = attrs.field(metadata=_meta("when to escalate"))
    action: str = attrs.field(metadata=_meta("what to do"))
    to: tuple[str, ...] = attrs.field(default=(), metadata=_meta("protocol ids"))
    source: str = attrs.field(default="", metadata=_meta("source id"))
    level: str = attrs.field(default="", metadata=_meta("verification level", enum="levels"))


@attrs.define(frozen=True, kw_only=True)
class StepTemplate:
    """A step of a protocol, before it meets a patient.

    ``fields`` holds the step's fixed values (keys are the attrs field names of the step class
    of ``kind``; written flat in the ``[[step]]`` table).  ``kind = "action"`` is an instruction
    with no regimen step (for example "arrange radiotherapy").
    """

    id: str = attrs.field(metadata=_meta("step id (unique in the protocol)"))
    phase: str = attrs.field(metadata=_meta("the phase id"))
    kind: str = attrs.field(metadata=_meta("step kind, or 'action'", enum="template_kinds"))
    title: str = attrs.field(metadata=_meta("short title"))
    purpose: str = attrs.field(default="", metadata=_meta("why (required for actions)"))
    sources: tuple[str, ...] = attrs.field(default=(), metadata=_meta("source ids of the step"))
    level: str = attrs.field(
        default="", metadata=_meta("level of the step's own values", enum="levels")
    )
    choice: str = attrs.field(default="", metadata=_meta("choice group it is an option of"))
    default: bool = attrs.field(default=False, metadata=_meta("the group's default option"))
    when: tuple[Check, ...] = attrs.field(default=(), metadata=_meta("applies only when met"))
    requires: tuple[Check, ...] = attrs.field(
        default=(), metadata=_meta("safety requirements: omitted when not met")
    )
    if_unknown: str = attrs.field(
        default="exclude", metadata=_meta("a 'when' that cannot be read", enum="include_exclude")
    )
    dose_range: DoseRange | None = attrs.field(default=None, metadata=_meta("dose range"))
    start: StartRule = attrs.field(factory=StartRule, metadata=_meta("starting dose"))
    titration: TitrationRule | None = attrs.field(default=None, metadata=_meta("titration"))
    monitoring: tuple[Monitoring, ...] = attrs.field(default=(), metadata=_meta("monitoring"))
    after: tuple[str, ...] = attrs.field(default=(), metadata=_meta("starts after these steps"))
    together_with: tuple[str, ...] = attrs.field(
        default=(), metadata=_meta("starts with these steps")
    )
    deescalation: tuple[Deescalation, ...] = attrs.field(
        default=(), metadata=_meta("de-escalation")
    )
    duration: Duration | None = attrs.field(default=None, metadata=_meta("course length"))
    compute: str = attrs.field(
        default="", metadata=_meta("what an action computes for the receipt", enum="compute")
    )
    fields: Mapping[str, Any] = attrs.field(
        factory=dict, eq=False, hash=False, metadata={"schema": False}
    )

    @property
    def is_action(self) -> bool:
        """True for an instruction with no regimen step."""
        return self.kind == "action"

    @property
    def needs_side(self) -> bool:
        """True when the step needs the side of the psoas involvement (``choices['side']``)."""
        if self.kind == "psoas_compartment_block" and self.fields.get("side", "{side}") == "{side}":
            return True
        return any(isinstance(v, str) and "{side}" in v for v in self.fields.values())


@attrs.define(frozen=True, kw_only=True)
class Protocol(Renderable):
    """A reusable protocol: metadata, checks, phases and step templates (see the module doc).

    Example
    -------
    >>> from mps_analgesia.protocols import load_protocol
    >>> p = load_protocol("takase-2015-methadone-adjuvant")
    >>> p.status, p.evidence.level
    ('draft', 'case-reports-and-series')
    """

    id: str = attrs.field(metadata=_meta("protocol id (the file name without .toml)"))
    title: str = attrs.field(metadata=_meta("title"))
    version: str = attrs.field(metadata=_meta("version, e.g. '0.1.0'"))
    status: str = attrs.field(metadata=_meta("status", enum="statuses"))
    evidence: Evidence = attrs.field(metadata=_meta("the evidence"))
    indication: str = attrs.field(metadata=_meta("indication"))
    summary: str = attrs.field(default="", metadata=_meta("summary"))
    superseded_by: str = attrs.field(default="", metadata=_meta("id of the replacing protocol"))
    sources: tuple[str, ...] = attrs.field(default=(), metadata=_meta("key source ids"))
    ome_table: str = attrs.field(
        default="cdc-2022", metadata=_meta("OME table for current_ome and from_ome")
    )
    phase: tuple[Phase, ...] = attrs.field(default=(), metadata=_meta("ordered phases"))
    eligibility: tuple[Check, ...] = attrs.field(default=(), metadata=_meta("must be met"))
    contraindication: tuple[Check, ...] = attrs.field(default=(), metadata=_meta("must not be met"))
    caution: tuple[Check, ...] = attrs.field(default=(), metadata=_meta("reported when met"))
    step: tuple[StepTemplate, ...] = attrs.field(default=(), metadata=_meta("step templates"))
    escalation: tuple[Escalation, ...] = attrs.field(default=(), metadata=_meta("escalation"))
    path: str = attrs.field(default="", eq=False, metadata={"schema": False})

    @property
    def phases(self) -> tuple[Phase, ...]:
        """The ordered phases."""
        return self.phase

    @property
    def steps(self) -> tuple[StepTemplate, ...]:
        """The step templates in phase order (file order within a phase)."""
        order = {ph.id: i for i, ph in enumerate(self.phase)}
        return tuple(sorted(self.step, key=lambda s: order.get(s.phase, len(order))))

    @property
    def contraindications(self) -> tuple[Check, ...]:
        """The contraindication checks."""
        return self.contraindication

    @property
    def cautions(self) -> tuple[Check, ...]:
        """The caution checks."""
        return self.caution

    def steps_of(self, phase_id: str) -> tuple[StepTemplate, ...]:
        """The step templates of one phase, in file order."""
        return tuple(s for s in self.step if s.phase == phase_id)

    def get_step(self, step_id: str) -> StepTemplate:
        """The step template with this id (:class:`UnknownNameError` with suggestions)."""
        for s in self.step:
            if s.id == step_id:
                return s
        ids = [s.id for s in self.step]
        raise UnknownNameError("protocol step", step_id, difflib.get_close_matches(step_id, ids))

    @property
    def choice_groups(self) -> Mapping[str, tuple[str, ...]]:
        """Each choice group with the ids of its options (the default first)."""
        groups: dict[str, list[str]] = {}
        for s in self.step:
            if s.choice:
                groups.setdefault(s.choice, [])
                if s.default:
                    groups[s.choice].insert(0, s.id)
                else:
                    groups[s.choice].append(s.id)
        return {k: tuple(v) for k, v in groups.items()}

    @property
    def source_ids(self) -> tuple[str, ...]:
        """Every source id the protocol cites, in first-use order."""
        seen: dict[str, None] = dict.fromkeys(self.sources)
        seen.update(dict.fromkeys(self.evidence.sources))
        for c in (*self.eligibility, *self.contraindication, *self.caution):
            if c.source:
                seen[c.source] = None
        for s in self.step:
            seen.update(dict.fromkeys(s.sources))
            for item in (s.dose_range, s.start, s.titration, s.duration, *s.monitoring):
                src = getattr(item, "source", "")
                if src:
                    seen[src] = None
            for c in (*s.when, *s.requires):
                if c.source:
                    seen[c.source] = None
            for d in s.deescalation:
                if d.source:
                    seen[d.source] = None
        for e in self.escalation:
            if e.source:
                seen[e.source] = None
        return tuple(seen)

    def instantiate(
        self,
        patient: Patient,
        current_regimen: Regimen | Iterable[Step] | None = None,
        choices: Mapping[str, Any] | None = None,
        *,
        assessment: MpsAssessment | MpsFeatures | None = None,
    ) -> InstantiatedPlan:
        """Make the plan for one patient: a regimen over days and the receipt of decisions.

        Parameters
        ----------
        patient:
            The patient.  Missing values make checks *unknown*, which is reported.
        current_regimen:
            The patient's current steps (kept in the plan, first).  ``None`` means not known
            (checks on it are unknown); an empty regimen means none.  A drug the current
            regimen already gives is never added again: the template's decision keeps the
            current step for review against the template's range, with its daily dose.
        choices:
            ``{"side": "left"}`` (the side of the psoas involvement, for blocks and
            radiotherapy sites), ``{"confirm": [clinical check ids]}``, and for each choice
            group the id of the option wanted (``{"schedule": "rt-20-gy-5"}``); an unchosen
            group takes its default.  The side may be left out when the case states it: the
            side of a psoas block step of ``current_regimen``, or the ``assessment``'s.
        assessment:
            An :class:`~mps_analgesia.MpsAssessment` (or its :class:`~mps_analgesia.MpsFeatures`)
            whose ``side`` states the side of the psoas involvement.

        Raises
        ------
        ProtocolError
            An unknown choice; a needed side that nothing states; or sides that disagree
            (``choices['side']``, a current block step, the assessment), naming each.

        Example
        -------
        >>> import mps_analgesia as mps
        >>> from mps_analgesia.protocols import load_protocol
        >>> p = load_protocol("astro-2017-palliative-radiotherapy")
        >>> plan = p.instantiate(mps.Patient(age=70), mps.Regimen([]),
        ...                      {"side": "left", "schedule": "rt-20-gy-5"})
        >>> [s.describe() for s in plan.regimen if s.kind == "radiotherapy"]
        ['radiotherapy to left psoas: 20 Gy in 5 fractions']
        """
        from .planner import _instantiate  # the planner sits above the model it plans with

        return _instantiate(self, patient, current_regimen, choices, assessment)
