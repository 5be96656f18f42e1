"""Instantiation: a protocol made into a plan for one patient and current regimen."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .. import _catalog, _units
from ..assess import MpsAssessment, MpsFeatures
from ..errors import (
    MpsAnalgesiaError,
    ProtocolError,
    StepError,
    UnitError,
    UnknownNameError,
)
from ..patient import Patient
from ..regimen import Regimen
from ..steps import STEP_KINDS, TAPER_AFTER, OpioidStep, Step, TaperStep
from ._equianalgesia import _methadone_daily
from ._format import _num, _qtext
from ._vocabulary import _RESERVED_CHOICES, _SIDES, _TAPER_CHOICES, _TOL
from .checks import CheckResult, _evaluate, _Facts
from .model import Deescalation, DoseRange, Protocol, StepTemplate
from .plans import Decision, InstantiatedPlan, MonitoringItem
from .reader import _DRUG_KINDS

# ---- instantiation ------------------------------------------------------------------------------


def _features(value: Any) -> MpsFeatures | None:
    """The features of an ``assessment`` argument: an :class:`MpsAssessment`, its features."""
    if value is None or isinstance(value, MpsFeatures):
        return value
    if isinstance(value, MpsAssessment):
        return value.features
    raise ProtocolError(
        f"assessment must be an MpsAssessment (mps.assess_mps(...)) or MpsFeatures, not "
        f"{type(value).__name__}"
    )


def _regimen(value: Regimen | Iterable[Step] | None) -> Regimen | None:
    if value is None or isinstance(value, Regimen):
        return value
    try:
        return Regimen(tuple(value))
    except (StepError, TypeError) as exc:
        raise ProtocolError(
            f"current_regimen must be a Regimen or a list of steps: {exc}"
        ) from None


class _Planner:
    """One instantiation: state shared by the steps of a protocol as they are built."""

    def __init__(
        self,
        protocol: Protocol,
        patient: Patient,
        current: Regimen | None,
        choices: Mapping[str, Any] | None,
        assessment: MpsFeatures | None = None,
    ) -> None:
        if not isinstance(patient, Patient):
            raise ProtocolError(
                f"patient must be a Patient, not {type(patient).__name__}; "
                "use mps.Patient(...) or load_case(...).patient"
            )
        self.protocol = protocol
        self.patient = patient
        self.current = current
        self.assessment = assessment
        self.decisions: list[Decision] = []
        self.checks: list[CheckResult] = []
        self.monitoring: list[MonitoringItem] = []
        self.steps: list[Step] = []
        self.ids: list[str] = []
        self.start_days: dict[str, int] = {}
        self.kept: list[str] = []  # drugs a template would add that the current regimen gives
        self.opioid_deescalations: list[tuple[StepTemplate, Deescalation]] = []
        self.choices, self.side, confirmed, self.selected = self._read_choices(choices)
        self.facts = _Facts(patient, current, confirmed, protocol.ome_table)

    # ---- choices ----

    def _read_choices(
        self, choices: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], str | None, frozenset[str], dict[str, str]]:
        p = self.protocol
        raw = dict(choices or {})
        groups = p.choice_groups
        known = (*_RESERVED_CHOICES, *groups)
        for key in raw:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ProtocolError(
                    f"choices[{key!r}]: {p.id} has no such choice (choices: "
                    f"{', '.join(known)}){hint}"
                )
        side = self._side(raw.get("side"))
        confirm = raw.get("confirm", ())
        if isinstance(confirm, str):
            confirm = (confirm,)
        clinical = {
            c.id for c in (*p.eligibility, *p.contraindication, *p.caution) if c.field == "clinical"
        } | {c.id for s in p.step for c in (*s.when, *s.requires) if c.field == "clinical"}
        for cid in confirm:
            if cid not in clinical:
                close = difflib.get_close_matches(str(cid), sorted(clinical), n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ProtocolError(
                    f"choices['confirm']: {cid!r} is not a clinical check of {p.id}{hint}"
                )
        selected: dict[str, str] = {}
        for group, options in groups.items():
            if group in raw:
                chosen = str(raw[group])
                if chosen not in options:
                    raise ProtocolError(
                        f"choices[{group!r}]: {chosen!r} is not an option ({', '.join(options)})"
                    )
                selected[group] = chosen
        self.taper = self._taper_choices(raw)
        used = {**raw, "confirm": tuple(confirm)} if confirm else dict(raw)
        if side is not None:
            used["side"] = side
        return used, side, frozenset(str(c) for c in confirm), selected

    def _taper_choices(self, raw: Mapping[str, Any]) -> dict[str, Any] | None:
        """The prescriber's taper numbers from ``choices`` (``None`` when none is given).

        ``taper_percent``, ``taper_every`` and ``taper_floor`` go together (one without the
        others is an error naming the missing ones); ``taper_start_day`` is optional.  They are
        checked when the taper step is built.
        """
        given = {k: raw[k] for k in _TAPER_CHOICES if k in raw}
        if not given:
            return None
        p = self.protocol
        if not any(d.target == "opioid" for s in p.step for d in s.deescalation):
            raise ProtocolError(
                f"choices[{next(iter(given))!r}]: {p.id} has no de-escalation of the opioid to "
                "compile into a taper; add a taper step to the regimen instead"
            )
        missing = [k for k in _TAPER_CHOICES[:3] if k not in given]
        if missing:
            raise ProtocolError(
                f"choices: {', '.join(repr(k) for k in missing)} missing: a taper needs "
                "'taper_percent' (the reduction at each step), 'taper_every' (e.g. '7 day') and "
                "'taper_floor' (e.g. '20 mg/day'; '0 mg/day' stops the opioid); no source gives "
                "them, so all three are the prescriber's"
            )
        pct = given["taper_percent"]
        if isinstance(pct, str):
            try:
                pct = float(pct.strip().removesuffix("%").strip())
            except ValueError:
                raise ProtocolError(
                    f"choices['taper_percent']: {given['taper_percent']!r} is not a number of "
                    "percent, e.g. 25"
                ) from None
        start = given.get("taper_start_day")
        if isinstance(start, str) and start.strip().isdigit():
            start = int(start.strip())
        if start is not None and (isinstance(start, bool) or not isinstance(start, int)):
            raise ProtocolError(
                f"choices['taper_start_day']: {given['taper_start_day']!r} is not a whole "
                "plan day, e.g. 7"
            )
        return {
            "reduce_by_percent": pct,
            "every": given["taper_every"],
            "floor": given["taper_floor"],
            "start_day": start,
        }

    def _side(self, chosen: Any) -> str | None:
        """The side of the psoas involvement: chosen, or stated by the case; never guessed.

        The sources are ``choices['side']``, the side of every psoas block step of the current
        regimen, and the assessment's features.  Two that differ are an error naming both; a
        protocol that needs a side and finds none asks for ``choices['side']``.
        """
        p = self.protocol
        stated: list[tuple[str, str]] = []  # (where, side)
        if chosen is not None:
            norm = str(chosen).strip().lower()
            if norm not in _SIDES:
                raise ProtocolError(
                    f"choices['side']: {chosen!r} is not one of {', '.join(_SIDES)}"
                )
            stated.append(("choices['side']", norm))
        for i, step in enumerate(self.current or ()):
            is_block = step.kind == "psoas_compartment_block"
            block_side = getattr(step, "side", None) if is_block else None
            if block_side:
                stated.append((f"current regimen step [{i}] ({step.describe()})", block_side))
        if self.assessment is not None and self.assessment.side is not None:
            stated.append(("the MPS assessment's features", self.assessment.side))
        sides = dict.fromkeys(side for _where, side in stated)
        if len(sides) > 1:
            listed = "; ".join(f"{where}: {side}" for where, side in stated)
            raise ProtocolError(
                f"the side of the psoas involvement is stated differently ({listed}); make them "
                "agree: correct the block step's side, the assessment's features or "
                "choices['side']"
            )
        needs_side = [s.id for s in p.step if s.needs_side]
        if not stated:
            if needs_side:
                raise ProtocolError(
                    f"choices['side'] is required by {p.id} (steps {', '.join(needs_side)}): the "
                    "side of the psoas involvement, one of left, right, bilateral; nothing in the "
                    "case states it (no psoas block in the current regimen, no assessment)"
                )
            return None
        where, side = stated[0]
        if needs_side and chosen is None:
            self.decide(
                "choice",
                f"side of the psoas involvement: {side}, as stated by {where}",
            )
        return side

    # ---- checks ----

    def evaluate_protocol_checks(self) -> str:
        p = self.protocol
        results: list[CheckResult] = []
        for group, checks in (
            ("eligibility", p.eligibility),
            ("contraindication", p.contraindication),
            ("caution", p.caution),
        ):
            results.extend(_evaluate(c, self.facts, group) for c in checks)
        self.checks.extend(results)
        bad = [
            c
            for c in results
            if (c.group == "eligibility" and c.outcome == "not met")
            or (c.group == "contraindication" and c.outcome == "met")
        ]
        unknown = [c for c in results if c.outcome == "unknown" and c.group != "caution"]
        status = "not eligible" if bad else ("undetermined" if unknown else "eligible")
        for c in bad:
            what = "contraindication present" if c.group == "contraindication" else "not met"
            self.decide(
                "eligibility",
                f"{what}: {c.check.text} (observed: {c.observed})",
                sources=(c.check.source,) if c.check.source else p.evidence.sources,
                level=c.check.level,
            )
        for c in unknown:
            self.decide(
                "eligibility",
                f"could not be checked: {c.check.text} (observed: {c.observed}); check it "
                "before starting",
                sources=(c.check.source,) if c.check.source else (),
                level=c.check.level,
            )
        for c in results:
            if c.group == "caution" and c.outcome in ("met", "unknown"):
                verb = "applies" if c.outcome == "met" else "could not be checked"
                self.decide(
                    "caution",
                    f"{verb}: {c.check.text} (observed: {c.observed})",
                    sources=(c.check.source,) if c.check.source else (),
                    level=c.check.level,
                )
        head = {
            "eligible": "eligible: every eligibility check is met and no contraindication is "
            "present",
            "not eligible": "NOT ELIGIBLE: the plan below is shown for review only; see the "
            "checks not met",
            "undetermined": "eligibility undetermined: some checks could not be read (listed); "
            "the plan holds only once they are",
        }[status]
        self.decisions.insert(0, Decision("eligibility", head, None, p.evidence.sources, ""))
        return status

    # ---- helpers ----

    def decide(
        self,
        action: str,
        message: str,
        step: str | None = None,
        *,
        sources: Iterable[str] = (),
        level: str = "",
        arithmetic: str = "",
    ) -> None:
        self.decisions.append(Decision(action, message, step, _dedupe(sources), level, arithmetic))

    def _step_checks(self, tmpl: StepTemplate, group: str) -> list[CheckResult]:
        checks = tmpl.when if group == "when" else tmpl.requires
        results = [_evaluate(c, self.facts, group, tmpl.id) for c in checks]
        self.checks.extend(results)
        return results

    def _select(self, tmpl: StepTemplate) -> bool:
        if not tmpl.choice:
            return True
        chosen = self.selected.get(tmpl.choice)
        if chosen is not None:
            if chosen == tmpl.id:
                self.decide("choice", f"chosen for {tmpl.choice!r}: {tmpl.title}", tmpl.id)
                return True
            return False
        options = self.protocol.choice_groups[tmpl.choice]
        has_default = any(self.protocol.get_step(o).default for o in options)
        if tmpl.default:
            self.decide(
                "choice",
                f"{tmpl.choice!r} not chosen: the default is used ({tmpl.title}); other options: "
                + ", ".join(o for o in options if o != tmpl.id),
                tmpl.id,
            )
            return True
        return not has_default  # a group selected by 'when' alone

    # ---- the main loop ----

    def run(self) -> InstantiatedPlan:
        p = self.protocol
        status = self.evaluate_protocol_checks()
        if self.current is not None:
            for i, step in enumerate(self.current):
                self.steps.append(step)
                self.ids.append(f"current[{i}]")
                self.decide("continued", f"current step kept: {step.describe()}", f"current[{i}]")
        built_groups: set[str] = set()
        for tmpl in p.steps:
            if not self._select(tmpl):
                continue
            if tmpl.choice and tmpl.choice in built_groups and not tmpl.default:
                continue
            if not self._applies(tmpl):
                continue
            if tmpl.choice:
                built_groups.add(tmpl.choice)
            self._plan_step(tmpl)
        self._compile_taper()
        for e in p.escalation:
            to = f" → {', '.join(e.to)}" if e.to else ""
            self.decide(
                "escalation",
                f"when {e.when}: {e.action}{to}",
                sources=(e.source,),
                level=e.level,
            )
        if not any(not sid.startswith("current[") for sid in self.ids):
            if self.kept:
                self.decide(
                    "omitted",
                    "no new step is added: the current regimen already gives what this protocol "
                    f"would add ({', '.join(self.kept)}); see above",
                )
            else:
                self.decide("omitted", "no new step could be planned for this patient (see above)")
        return InstantiatedPlan(
            protocol=p,
            patient=self.patient,
            regimen=Regimen(tuple(self.steps), name=p.title),
            step_ids=tuple(self.ids),
            checks=tuple(self.checks),
            decisions=tuple(self.decisions),
            monitoring=tuple(self.monitoring),
            status=status,
            choices=self.choices,
        )

    def _applies(self, tmpl: StepTemplate) -> bool:
        for c in self._step_checks(tmpl, "when"):
            if c.outcome in ("not met",):
                self._decide_on(c, tmpl, "not-applicable", "not for this patient ({})")
                return False
            if c.outcome == "unknown":
                if tmpl.if_unknown == "exclude":
                    self._decide_on(
                        c,
                        tmpl,
                        "omitted",
                        "left out because it cannot be checked whether it applies ({})",
                    )
                    return False
                self._decide_on(
                    c,
                    tmpl,
                    "included",
                    "included although it cannot be checked whether it applies ({}); "
                    "this is the conservative option",
                )
        for c in self._step_checks(tmpl, "requires"):
            if c.outcome == "not met":
                self._decide_on(
                    c, tmpl, "omitted", "omitted, a requirement is not met: {}", parenthesis=True
                )
                return False
            if c.outcome == "unknown":
                self._decide_on(
                    c, tmpl, "caution", "check before it is given: {}", parenthesis=True
                )
        return True

    def _decide_on(
        self,
        c: CheckResult,
        tmpl: StepTemplate,
        status: str,
        words: str,
        *,
        parenthesis: bool = False,
    ) -> None:
        """Record the decision a step check ``c`` of ``tmpl`` led to, with the check's source
        (else the step's) and level; ``words`` takes the check text and what was observed."""
        observed = (
            f"{c.check.text} (observed: {c.observed})"
            if parenthesis
            else f"{c.check.text}; observed: {c.observed}"
        )
        self.decide(
            status,
            f"{tmpl.title}: {words.format(observed)}",
            tmpl.id,
            sources=(c.check.source,) if c.check.source else tmpl.sources,
            level=c.check.level,
        )

    def _start_day(self, tmpl: StepTemplate) -> int:
        day = int(tmpl.fields.get("start_day", 0))
        for key, verb in (("together_with", "starts with"), ("after", "comes after")):
            refs = getattr(tmpl, key)
            present = [ref for ref in refs if ref in self.start_days]
            if present:
                day = max([day, *(self.start_days[ref] for ref in present)])
                self.decide("sequencing", f"{verb} {', '.join(present)} (day {day})", tmpl.id)
            elif refs:
                self.decide(
                    "sequencing",
                    f"{verb} {' or '.join(refs)} in the protocol, which is not part of this plan",
                    tmpl.id,
                )
        return day

    def _plan_step(self, tmpl: StepTemplate) -> None:
        if tmpl.is_action:
            day = self._start_day(tmpl)
            self.start_days[tmpl.id] = day
            self.decide(
                "instruction",
                f"{tmpl.title}: {tmpl.purpose}",
                tmpl.id,
                sources=tmpl.sources,
                level=tmpl.level,
            )
            if tmpl.compute:
                self._compute(tmpl)
            self._monitor(tmpl, None, day)
            self._deescalate(tmpl)
            return
        if tmpl.start.method == "current":
            self._continue_current(tmpl)
            return
        given = self._already_given(tmpl)
        if given:
            self._keep_given(tmpl, given)
            return
        mark = len(self.decisions)
        step = _build_step(self, tmpl)
        if step is None:
            return
        self.steps.append(step)
        self.ids.append(tmpl.id)
        self.start_days[tmpl.id] = step.start_day
        msg = f"{tmpl.title}: {step.describe()}"
        if step.start_day:
            msg += f", from day {step.start_day}"
        self.decisions.insert(
            mark,
            Decision("included", msg, tmpl.id, _dedupe(tmpl.sources), tmpl.level),
        )
        if tmpl.dose_range is not None:
            dr = tmpl.dose_range
            self.decide(
                "range",
                f"protocol range: {dr.text}{' (' + dr.note + ')' if dr.note else ''}",
                tmpl.id,
                sources=(dr.source,),
                level=dr.level,
            )
        if tmpl.duration is not None:
            d = tmpl.duration
            note = f": {d.note}" if d.note else ""
            self.decide(
                "duration",
                f"course of {_qtext(d.value)}{note}; stop it then (steps carry "
                "no stop day, so the plan states it)",
                tmpl.id,
                sources=(d.source,),
                level=d.level,
            )
        if step.kind == "radiotherapy":
            self._radiobiology(tmpl, step)
        self._monitor(tmpl, step, step.start_day)
        self._deescalate(tmpl)

    def _radiobiology(self, tmpl: StepTemplate, step: Any) -> None:
        from .. import radiotherapy

        for ab in radiotherapy.alpha_beta_values():
            total = step.total_dose
            bed = radiotherapy.bed(total, step.fractions, ab.value.quantity)
            eqd2 = radiotherapy.eqd2(total, step.fractions, ab.value.quantity)
            d = step.dose_per_fraction_gy
            self.decide(
                "radiobiology",
                f"α/β {_num(ab.gy)} Gy ({ab.label}): BED {_num(bed.magnitude)} Gy, EQD2 "
                f"{_num(eqd2.magnitude)} Gy",
                tmpl.id,
                sources=(ab.value.source, "joiner-2009"),
                level=ab.value.level,
                arithmetic=f"BED = {_num(step.total_dose_gy)} Gy × (1 + {_num(d)} Gy / "
                f"{_num(ab.gy)} Gy) = {_num(bed.magnitude)} Gy; EQD2 = BED / (1 + 2 Gy / "
                f"{_num(ab.gy)} Gy) = {_num(eqd2.magnitude)} Gy",
            )

    def _compute(self, tmpl: StepTemplate) -> None:
        from .. import conversion

        regimen = Regimen(tuple(self.steps))
        sources: tuple[str, ...] = ()
        try:
            if tmpl.compute == "current-ome":
                if self.current is None:
                    raise ProtocolError("no current regimen was given")
                result: Any = conversion.daily_ome(self.current, table=self.protocol.ome_table)
                message = f"current daily OME: {result.text}"
                sources = result.sources
            else:
                if any(s.kind == "opioid" and getattr(s, "prn", False) for s in self.steps):
                    self.decide(
                        "computed",
                        "the plan already has a breakthrough (PRN) opioid step; it is kept",
                        tmpl.id,
                    )
                    return
                result = conversion.breakthrough_dose(regimen, table=self.protocol.ome_table)
                message = f"breakthrough dose: {result.text}"
                sources = (result.fraction.source, result.factor_source)
        except MpsAnalgesiaError as exc:
            self.decide("computed", f"{tmpl.compute}: not computed: {exc}", tmpl.id)
            return
        self.decide(
            "computed",
            message,
            tmpl.id,
            sources=sources,
            level=str(getattr(result, "level", "") or getattr(result.fraction, "level", "")),
            arithmetic="; ".join(result.receipt),
        )

    def _already_given(self, tmpl: StepTemplate) -> list[tuple[str, Any]]:
        """The current steps that already give the template's drug (a protocol never adds a
        drug the current regimen gives: no second methadone, no second tramadol)."""
        if self.current is None:
            return []
        name = tmpl.fields.get("drug", "methadone" if tmpl.kind == "methadone_adjuvant" else "")
        if not isinstance(name, str) or not name:
            return []
        try:
            drug = _catalog.drug(name).id
        except MpsAnalgesiaError:
            return []
        return [
            (f"current[{i}]", step)
            for i, step in enumerate(self.current)
            if getattr(step, "drug", None) == drug
        ]

    def _keep_given(self, tmpl: StepTemplate, given: Sequence[tuple[str, Any]]) -> None:
        """Record that the template's drug is already given: it is kept for review, not added."""
        drug = given[0][1].drug
        day = min(step.start_day for _sid, step in given)
        self.start_days[tmpl.id] = day
        if drug not in self.kept:
            self.kept.append(drug)
        current = "; ".join(
            f"{step.describe()} [{sid}]{_current_dose_text(step)}" for sid, step in given
        )
        sources: tuple[str, ...] = tmpl.sources
        level = tmpl.level
        review = "for review"
        dr = tmpl.dose_range
        if dr is not None:
            review = f"for review against the protocol range of {dr.text}"
            review += _range_verdict([step for _sid, step in given], dr)
            sources = (*sources, dr.source)
            level = dr.level or level
        self.decide(
            "continued",
            f"{tmpl.title}: {drug} is already present in the current regimen ({current}); no "
            f"second {drug} step is added, and the plan keeps the current {drug} {review}",
            tmpl.id,
            sources=sources,
            level=level,
        )
        self._monitor(tmpl, given[0][1], day)
        self._deescalate(tmpl)

    def _continue_current(self, tmpl: StepTemplate) -> None:
        kinds = (tmpl.kind,)
        matches = [
            (sid, s)
            for sid, s in zip(self.ids, self.steps, strict=True)
            if sid.startswith("current[") and s.kind in kinds and not getattr(s, "prn", False)
        ]
        if matches:
            day = min(s.start_day for _sid, s in matches)
            self.start_days[tmpl.id] = day
            self.decide(
                "continued",
                f"{tmpl.title}: the current "
                + "; ".join(f"{s.describe()} [{sid}]" for sid, s in matches)
                + " continues",
                tmpl.id,
                sources=tmpl.sources,
                level=tmpl.level,
            )
            self._monitor(tmpl, matches[0][1], day)
            self._deescalate(tmpl)
            return
        why = (
            "no current regimen was given"
            if self.current is None
            else f"the current regimen has no regular {tmpl.kind} step"
        )
        self.decide(
            "omitted",
            f"{tmpl.title}: {why}; this protocol continues the current one and gives no starting "
            f"dose of its own{': ' + tmpl.purpose if tmpl.purpose else ''}",
            tmpl.id,
            sources=tmpl.sources,
        )

    def _monitor(self, tmpl: StepTemplate, step: Step | None, start_day: int) -> None:
        for m in tmpl.monitoring:
            day: int | None = None
            until: int | None = None
            when = m.when
            if m.from_day is not None or m.from_start is not None:
                day = start_day + (m.from_day or 0)
            if m.until_day is not None:
                until = start_day + m.until_day
            if m.at_daily_mg is not None:
                reached = _day_reaching(step, m.at_daily_mg) if step is not None else None
                if reached is None:
                    when = f"{when} (not reached in this plan)"
                else:
                    day = reached
            self.monitoring.append(
                MonitoringItem(
                    tmpl.id,
                    m.what,
                    when,
                    day,
                    until,
                    (m.source,) if m.source else tmpl.sources,
                    m.level,
                )
            )

    def _deescalate(self, tmpl: StepTemplate) -> None:
        for d in tmpl.deescalation:
            if d.target == "opioid" and not self.opioid_deescalations:
                self.opioid_deescalations.append((tmpl, d))  # said when compiled (or not)
                continue
            note = f" {d.note}" if d.note else ""
            self.decide(
                "de-escalation",
                d.text + note,
                tmpl.id,
                sources=(d.source,) if d.source else tmpl.sources,
                level=d.level,
            )

    # ---- de-escalation compiled into a taper ----

    def _compile_taper(self) -> None:
        """Compile the protocol's de-escalation of the regular opioid into taper steps.

        The records carry no percentage, interval or floor (no source gives them after a block
        or radiotherapy), so a taper is built only from the prescriber's ``taper_*`` choices;
        otherwise the receipt says the reduction is a clinical choice to state, and how.  The
        taper follows the block or radiotherapy step of the plan that ends last, or starts on
        ``taper_start_day``.
        """
        if not self.opioid_deescalations:
            return
        tmpl, record = self.opioid_deescalations[0]
        srcs = (record.source,) if record.source else tmpl.sources
        said = record.text + (f" {record.note}" if record.note else "")
        regular = [s for s in self.steps if isinstance(s, OpioidStep) and not s.prn]
        drugs = list(dict.fromkeys(s.drug for s in regular))
        if self.taper is None:
            self.decide(
                "de-escalation",
                f"{said}; not compiled into a taper: the percentage, interval and floor are a "
                "clinical choice to state (choices taper_percent, taper_every, taper_floor; "
                "taper_start_day optional)",
                tmpl.id,
                sources=srcs,
                level=record.level,
            )
            return
        if not drugs:
            self.decide(
                "de-escalation",
                f"{said}; no taper is compiled: the plan has no regular opioid step to reduce",
                tmpl.id,
                sources=srcs,
                level=record.level,
            )
            return
        spec = self.taper
        after = self._taper_trigger(drugs[0], spec)
        if after is None and spec["start_day"] is None:
            self.decide(
                "de-escalation",
                f"{said}; no taper is compiled: the plan has no psoas block or radiotherapy "
                "step for it to follow; give choices['taper_start_day'] to start it on a plan "
                "day",
                tmpl.id,
                sources=srcs,
                level=record.level,
            )
            return
        for drug in drugs:
            step = self._taper_step(drug, spec, after)
            first = step.first_day(self.steps, self.current.start_date if self.current else None)
            base = math.fsum(s.daily_dose_mg_on(first) for s in regular if s.drug == drug)
            self.steps.append(step)
            self.ids.append(f"{tmpl.id}.taper")
            when = (
                f"the day after the last {after.replace('_', ' ')} step ends"
                if after
                else f"plan day {step.start_day}"
            )
            reduced = step.reduced_daily_mg(base, first, first)
            self.decide(
                "de-escalation",
                f"{record.trigger}: compiled into a taper: {step.describe()}; the first "
                f"reduction is on day {first} ({when}).  The percentage, interval and floor "
                "are the prescriber's (choices), not a source's: the reduction is a clinical "
                "choice; the rescue dose is recomputed on each reduced day",
                tmpl.id,
                sources=srcs,
                level=record.level,
                arithmetic=f"day {first}: {_num(base)} mg/day × (1 − "
                f"{_num(step.reduce_by_percent)} %) = {_num(reduced)} mg/day (not below "
                f"{_num(step.floor_mg_per_day)} mg/day)",
            )

    def _taper_trigger(self, drug: str, spec: Mapping[str, Any]) -> str | None:
        """The step kind the taper follows: the block or radiotherapy ending last in the plan
        (``None`` when neither is there)."""
        start = self.current.start_date if self.current is not None else None
        best: tuple[str | None, int] = (None, -1)
        for kind in TAPER_AFTER:
            if not any(s.kind == kind for s in self.steps):
                continue
            first = self._taper_step(drug, spec, kind).first_day(self.steps, start)
            if first > best[1]:
                best = (kind, first)
        return best[0]

    def _taper_step(self, drug: str, spec: Mapping[str, Any], after: str | None) -> TaperStep:
        try:
            return TaperStep(
                drug=drug,
                reduce_by_percent=spec["reduce_by_percent"],
                every=spec["every"],
                floor=spec["floor"],
                start_day=spec["start_day"] or 0,
                after=after,
            )
        except (StepError, UnitError, UnknownNameError) as exc:
            raise ProtocolError(f"choices (taper of {drug}): {exc}") from None


def _regular_totals(steps: Sequence[Any]) -> dict[int, float]:
    """The summed daily dose (mg/day) of regular dosed steps on each day one of them changes."""
    dosed = [s for s in steps if hasattr(s, "daily_dose_mg_on") and not s.prn]
    days = sorted({d for s in dosed for d in (s.start_day, *(p.day for p in s.titration))})
    return {d: math.fsum(s.daily_dose_mg_on(d) for s in dosed) for d in days}


def _current_dose_text(step: Any) -> str:
    """``': 15 mg/day, 30 mg/day from day 7'``: a current drug step's daily dose over time."""
    if not hasattr(step, "daily_dose_mg_on"):
        return ""
    if step.prn:
        return f": at most {_num(step.daily_dose_mg)} mg in 24 h when needed"
    days = (step.start_day, *(p.day for p in step.titration))
    parts = [
        f"{_num(step.daily_dose_mg_on(d))} mg/day" + (f" from day {d}" if d else "") for d in days
    ]
    return ": " + ", ".join(parts)


def _range_verdict(steps: Sequence[Any], dr: DoseRange) -> str:
    """Where current steps stand against a protocol range, in words (``''``: not comparable)."""
    if dr.dimension == "mass_rate":
        totals = _regular_totals(steps)
        if not totals:
            return ""
        first, peak, unit = totals[min(totals)], max(totals.values()), "mg/day"
    elif dr.dimension == "mass":
        doses = [
            dose
            for step in steps
            if hasattr(step, "titration")
            for dose in (step.dose_mg, *(t.dose_mg for t in step.titration))
            if dose is not None
        ]
        if not doses:
            return ""
        first, peak, unit = doses[0], max(doses), "mg per dose"
    else:
        return ""
    if dr.max_value is not None and peak > dr.max_value * (1 + _TOL):
        return (
            f"; at up to {_num(peak)} {unit} it is ABOVE the protocol maximum of "
            f"{_num(dr.max_value)} {unit}: review it"
        )
    if dr.min_value is not None and first < dr.min_value * (1 - _TOL):
        return f"; it starts below the protocol range, at {_num(first)} {unit}"
    span = _num(peak) if math.isclose(first, peak) else f"{_num(first)} to {_num(peak)}"
    return f"; it is within the range ({span} {unit})"


def _dedupe(sources: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for s in sources if s))


def _day_reaching(step: Any, mg_per_day: float) -> int | None:
    if not hasattr(step, "daily_dose_mg_on"):
        return None
    days = [step.start_day, *(p.day for p in getattr(step, "titration", ()))]
    for day in days:
        if step.daily_dose_mg_on(day) >= mg_per_day * (1 - _TOL):
            return int(day)
    return None


def _limits(
    step: Any,
) -> tuple[list[tuple[float, str, str, str]], list[tuple[float, str, str, str]]]:
    """Catalog maxima of a drug step: (per-dose, per-day) lists of (mg, text, source, level)."""
    record = _catalog.drug(step.drug)

    def listed(kind: str, what: str) -> list[tuple[float, str, str, str]]:
        return [
            (lim.value.value, lim.value.note or what, lim.value.source, lim.value.level)
            for lim in record.limits_for(kind, step.route, step.formulation)
        ]

    return (
        listed("max_single", "catalog maximum single dose"),
        listed("max_daily", "catalog maximum daily dose"),
    )


def _max_dose(step: Any, tmpl: StepTemplate) -> tuple[float, str, tuple[str, ...], str] | None:
    """The largest allowed dose per administration (mg) with its reason, or None (no maximum)."""
    if step.dose_mg is None or step.doses_per_day is None:
        return None
    per_day = step.doses_per_day
    candidates: list[tuple[float, str, tuple[str, ...], str]] = []
    single, daily = _limits(step)
    for mg, note, src, lvl in single:
        candidates.append((mg, f"catalog maximum single dose {_num(mg)} mg ({note})", (src,), lvl))
    for mg, note, src, lvl in daily:
        candidates.append(
            (
                mg / per_day,
                f"catalog maximum {_num(mg)} mg/day ÷ {_num(per_day)} doses/day ({note})",
                (src,),
                lvl,
            )
        )
    dr = tmpl.dose_range
    if dr is not None and dr.max_value is not None:
        if dr.dimension == "mass":
            candidates.append(
                (
                    dr.max_value,
                    f"protocol range maximum {_num(dr.max_value)} mg per dose",
                    (dr.source,),
                    dr.level,
                )
            )
        elif dr.dimension == "mass_rate":
            candidates.append(
                (
                    dr.max_value / per_day,
                    f"protocol range maximum {_num(dr.max_value)} mg/day ÷ "
                    f"{_num(per_day)} doses/day",
                    (dr.source,),
                    dr.level,
                )
            )
    t = tmpl.titration
    if t is not None and t.ceiling_value is not None:
        if t.ceiling_dimension == "mass":
            candidates.append(
                (
                    t.ceiling_value,
                    f"titration ceiling {_num(t.ceiling_value)} mg per dose",
                    (t.source,),
                    t.level,
                )
            )
        else:
            candidates.append(
                (
                    t.ceiling_value / per_day,
                    f"titration ceiling {_num(t.ceiling_value)} mg/day ÷ {_num(per_day)} doses/day",
                    (t.source,),
                    t.level,
                )
            )
    if not candidates:
        return None
    return min(candidates, key=lambda c: c[0])


def _build_step(planner: _Planner, tmpl: StepTemplate) -> Step | None:
    """Build the regimen step of a template for the planner's patient (None: omitted, said why)."""
    cls = STEP_KINDS[tmpl.kind]
    kwargs = dict(tmpl.fields)
    side = planner.side or "left"
    for key, value in list(kwargs.items()):
        if isinstance(value, str) and "{side}" in value:
            kwargs[key] = value.replace("{side}", side)
    if tmpl.kind == "psoas_compartment_block":
        kwargs["side"] = kwargs.get("side", side)
    kwargs["start_day"] = planner._start_day(tmpl)
    start = tmpl.start
    if start.method == "per_kg":
        weight = planner.patient.weight_kg
        if weight is None:
            planner.decide(
                "omitted",
                f"{tmpl.title}: needs the patient's weight for "
                f"{_units.format_quantity(start.per_kg)}; record the weight",
                tmpl.id,
                sources=(start.source,),
                level=start.level,
            )
            return None
        assert start.per_kg_value is not None
        unit = "mL" if start.field == "bolus_volume" else "mg"
        amount = start.per_kg_value * weight
        kwargs[start.field] = _units.quantity_from_magnitude(amount, unit)
        planner.decide(
            "start-dose",
            f"{start.field.replace('_', ' ')} by weight{': ' + start.note if start.note else ''}",
            tmpl.id,
            sources=(start.source,),
            level=start.level,
            arithmetic=f"{_units.format_quantity(start.per_kg)} × {_num(weight)} kg = "
            f"{_num(amount)} {unit}",
        )
    elif start.method == "from_ome":
        got = _from_ome(planner, tmpl, kwargs)
        if got is None:
            return None
    elif start.note:  # a fixed start that says how it is reached (a label build-up, say)
        planner.decide(
            "start-dose",
            f"{tmpl.title}: {start.note}",
            tmpl.id,
            sources=(start.source,) if start.source else tmpl.sources,
            level=start.level,
        )
    try:
        step = cls(**kwargs)
    except (StepError, UnitError, UnknownNameError) as exc:
        planner.decide("omitted", f"{tmpl.title}: cannot be built for this patient: {exc}", tmpl.id)
        return None
    if tmpl.kind in _DRUG_KINDS:
        step = _cap(planner, tmpl, step, kwargs)
        step = _titrate(planner, tmpl, step, kwargs)
    elif tmpl.kind == "psoas_compartment_block":
        step = _cap_block(planner, tmpl, step, kwargs)
    result: Step = step
    return result


def _from_ome(planner: _Planner, tmpl: StepTemplate, kwargs: dict[str, Any]) -> bool | None:
    start = tmpl.start
    ome, how, receipt = planner.facts.tier_ome()
    if ome is None:
        planner.decide(
            "omitted",
            f"{tmpl.title}: the starting dose comes from the current daily OME, which is not "
            f"known ({how})",
            tmpl.id,
            sources=(start.source,),
            level=start.level,
        )
        return None
    try:
        mg_day, arithmetic, sources, _level = _methadone_daily(ome, start.scheme)
    except MpsAnalgesiaError as exc:
        planner.decide(
            "omitted",
            f"{tmpl.title}: no starting dose by the {start.scheme!r} scheme for "
            f"{_num(ome)} MME/day: {exc}",
            tmpl.id,
            sources=(start.source,),
            level=start.level,
        )
        return None
    probe = STEP_KINDS[tmpl.kind](**{**kwargs, "dose": _units.Q(1, "mg")})
    per_day = probe.doses_per_day
    assert per_day is not None
    dose = mg_day / per_day
    kwargs["dose"] = _units.quantity_from_magnitude(dose, "mg")
    planner.decide(
        "start-dose",
        f"from the current {_num(ome)} MME/day ({how}) by the {start.scheme!r} scheme"
        f"{': ' + start.note if start.note else ''}",
        tmpl.id,
        sources=(start.source, *sources),
        level=start.level,
        arithmetic="; ".join(
            (
                *receipt,
                *((arithmetic,) if arithmetic else ()),
                f"{_num(mg_day)} mg/day ÷ {_num(per_day)} doses/day = {_num(dose)} mg per dose",
            )
        ),
    )
    return True


def _cap(planner: _Planner, tmpl: StepTemplate, step: Any, kwargs: dict[str, Any]) -> Any:
    """Lower the starting dose to the smallest maximum (catalog, protocol range, ceiling)."""
    if step.is_continuous:
        return step
    limit = _max_dose(step, tmpl)
    if limit is None or step.dose_mg <= limit[0] * (1 + _TOL):
        return step
    mg, why, sources, level = limit
    kwargs["dose"] = _units.quantity_from_magnitude(mg, "mg")
    planner.decide(
        "capped",
        f"{tmpl.title}: the starting dose is lowered to the maximum allowed ({why})",
        tmpl.id,
        sources=sources,
        level=level,
        arithmetic=f"{_num(step.dose_mg)} mg > {_num(mg)} mg → {_num(mg)} mg per dose",
    )
    return STEP_KINDS[tmpl.kind](**kwargs)


def _cap_block(planner: _Planner, tmpl: StepTemplate, step: Any, kwargs: dict[str, Any]) -> Any:
    dr = tmpl.dose_range
    if dr is None or dr.max_value is None:
        return step
    field, current = (
        ("bolus_volume", step.bolus_ml)
        if dr.dimension == "volume"
        else ("infusion_rate", step.infusion_ml_per_h)
    )
    if current is None or current <= dr.max_value * (1 + _TOL):
        return step
    unit = "mL" if field == "bolus_volume" else "mL/h"
    kwargs[field] = _units.quantity_from_magnitude(dr.max_value, unit)
    planner.decide(
        "capped",
        f"{tmpl.title}: {field.replace('_', ' ')} lowered to the protocol maximum",
        tmpl.id,
        sources=(dr.source,),
        level=dr.level,
        arithmetic=f"{_num(current)} {unit} > {_num(dr.max_value)} {unit} → "
        f"{_num(dr.max_value)} {unit}",
    )
    return STEP_KINDS[tmpl.kind](**kwargs)


def _titrate(planner: _Planner, tmpl: StepTemplate, step: Any, kwargs: dict[str, Any]) -> Any:
    t = tmpl.titration
    if t is None:
        return step
    srcs = (t.source,)
    rules = []
    if t.interval is not None:
        rules.append(
            f"no change sooner than {_qtext(t.interval)} after the start or the previous change"
        )
    if t.ceiling is not None:
        rules.append(f"at most {_units.format_quantity(t.ceiling)}")
    if t.step is not None:
        rules.append(f"steps of {_units.format_quantity(t.step)}")
    note = f" ({t.note})" if t.note else ""
    if t.step_value is None or t.interval_days is None or step.is_continuous:
        planner.decide(
            "titration",
            f"titration rule: {'; '.join(rules)}{note}; the reference gives no step size, so "
            "no increase is scheduled: increase only on review, within these limits",
            tmpl.id,
            sources=srcs,
            level=t.level,
        )
        return step
    per_day = step.doses_per_day
    assert per_day is not None
    assert step.dose_mg is not None
    limit = _max_dose(step, tmpl)
    max_dose = limit[0] if limit is not None else math.inf
    dose = step.dose_mg
    points = []
    day = step.start_day
    for _ in range(100):
        new = dose + (t.step_value if t.step_dimension == "mass" else t.step_value / per_day)
        if new > max_dose * (1 + _TOL):
            break
        day += t.interval_days
        points.append({"day": day, "dose": _units.quantity_from_magnitude(new, "mg")})
        dose = new
    if not points:
        planner.decide(
            "titration",
            f"titration rule: {'; '.join(rules)}{note}; the starting dose is already at the "
            "ceiling, so no increase is scheduled",
            tmpl.id,
            sources=srcs,
            level=t.level,
        )
        return step
    kwargs["titration"] = points
    titrated = STEP_KINDS[tmpl.kind](**kwargs)
    schedule = ", ".join(f"day {p['day']}: {_units.format_quantity(p['dose'])}" for p in points)
    planner.decide(
        "titration",
        f"titration rule: {'; '.join(rules)}{note}.  Scheduled at the earliest allowed days, to "
        "be given only if the pain needs it: " + schedule,
        tmpl.id,
        sources=srcs,
        level=t.level,
        arithmetic=f"{_num(step.dose_mg)} mg + {_units.format_quantity(t.step)} every "
        f"{t.interval_days} days, stopping at {_num(max_dose)} mg per dose"
        + (f" ({limit[1]})" if limit is not None else ""),
    )
    return titrated


def _instantiate(
    protocol: Protocol,
    patient: Patient,
    current_regimen: Regimen | Iterable[Step] | None,
    choices: Mapping[str, Any] | None,
    assessment: Any = None,
) -> InstantiatedPlan:
    planner = _Planner(protocol, patient, _regimen(current_regimen), choices, _features(assessment))
    return planner.run()
