"""The handout layout: one or two A4 pages a clinician or educator hands out.

A protocol handout says who the protocol is for in plain words, then tables: dosing (step, drug,
dose, route, when, titration), starting doses by the current oral morphine equivalent,
anticoagulation intervals before a block, and monitoring; the flowchart as a picture with a
text alternative; escalation; numbered references; the intended-use statement, the data
editions and the date.  It shows no ids and no rule syntax: checks are written as sentences
(:mod:`._words`).  A plan handout is the same for one patient: the checks with their outcome,
the steps, a day table, monitoring, decisions and the plan's own findings.

Every number comes from the object or the data, written by the one formatter.  The date is
today's, or ``SOURCE_DATE_EPOCH`` when set (reproducible builds, and the golden files).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

from .. import _catalog, _format
from ..report import INTENDED_USE, SEVERITIES
from ._build import cite, patient_fields
from ._doc import Block, Document, Figure, Inlines, Item, ItemList, Para, Section, Strong, Table
from ._doc import inline as _inline
from ._dosage import ROUTE_WORDS, dosage
from ._words import condition, value_words

__all__ = [
    "handout_date",
    "handout_document",
    "plan_handout",
    "protocol_handout",
    "supports_handout",
]

_INTERVAL_FIELD: Final = "anticoagulant.last_dose_ago"
_KIND_WORDS: Final = {
    "opioid": "opioid",
    "methadone_adjuvant": "methadone (added to the current opioid)",
    "adjuvant": "adjuvant",
    "psoas_compartment_block": "psoas compartment block",
    "radiotherapy": "radiotherapy",
    "action": "",
}
_WATCH: Final = {
    "ecg": "ECG",
    "pain-score": "Pain score",
    "local-anaesthetic-toxicity": "Local anaesthetic toxicity",
    "bilateral-spread": "Bilateral spread",
    "renal-function": "Renal function",
}
_OUTCOME_WORDS: Final = {
    "met": "yes",
    "not met": "no",
    "unknown": "not known",
    "not applicable": "does not apply",
}


def handout_date() -> str:
    """The handout's date: ``SOURCE_DATE_EPOCH`` when set, else today (ISO ``YYYY-MM-DD``)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return _dt.datetime.fromtimestamp(int(epoch), tz=_dt.UTC).date().isoformat()
    return _dt.date.today().isoformat()


def _watch(what: str) -> str:
    return _WATCH.get(what, what.replace("-", " ").capitalize())


def _cited(*parts: Any, sources: Iterable[str] = ()) -> Inlines:
    return _inline(*parts, cite(sources))


def _check_line(check: Any) -> Inlines:
    """A check as the author's plain words, its guards as 'only when …', and its source."""
    guards = [g.text or condition(g) for g in check.when]
    text = check.text or condition(check)
    if guards:
        text += f" (only when {'; '.join(guards)})"
    return _cited(text, sources=[check.source] if check.source else ())


def _check_list(checks: Sequence[Any]) -> ItemList:
    return ItemList(tuple(Item(_check_line(c)) for c in checks))


def _is_interval(check: Any) -> bool:
    guarded = any(g.field == "anticoagulant.drug" for g in check.when)
    return check.field == _INTERVAL_FIELD or (check.field == "clinical" and guarded)


# ---- protocol -----------------------------------------------------------------------------------


def _titles(protocol: Any, ids: Iterable[str]) -> str:
    out = []
    for sid in ids:
        try:
            out.append(protocol.get_step(sid).title.lower())
        except Exception:  # an unknown id is shown by the reader's own checks, not here
            continue
    return ", ".join(out)


def _drug(tmpl: Any) -> str:
    drug = tmpl.fields.get("drug")
    if drug:
        return str(drug)
    if tmpl.kind == "methadone_adjuvant":
        return "methadone"
    if tmpl.start.method == "current":
        return "the current opioid"
    return _KIND_WORDS.get(tmpl.kind, tmpl.kind) or "(no drug)"


def _route(tmpl: Any) -> str:
    if tmpl.kind == "psoas_compartment_block":
        return "psoas compartment (perineural)"
    if tmpl.kind == "radiotherapy":
        site = tmpl.fields.get("site")
        site_words = str(site).replace("{side}", "affected") if site else ""
        return f"external beam{', ' + site_words if site_words else ''}"
    if tmpl.start.method == "current":
        return "as now"
    route = tmpl.fields.get("route", "oral" if tmpl.kind != "action" else "")
    return ROUTE_WORDS.get(str(route), str(route)) if route else ""


def _dose(tmpl: Any) -> Inlines:
    f = tmpl.fields
    s = tmpl.start
    parts: list[str] = []
    sources: list[str] = []
    if s.method == "per_kg":
        parts.append(f"{value_words(s.per_kg)} × body weight")
        if "concentration" in f:
            parts.append(f"of {value_words(f['concentration'])}")
    elif s.method == "from_ome":
        parts.append("from the current daily oral morphine equivalent (table below)")
    elif s.method == "breakthrough":
        parts.append("a fraction of the regular daily dose of the current opioid")
    elif s.method == "current":
        parts.append("unchanged")
    elif tmpl.kind == "radiotherapy" and "total_dose" in f:
        n = f.get("fractions")
        parts.append(f"{value_words(f['total_dose'])}" + (f" in {n} fractions" if n else ""))
    else:
        for key in ("dose", "rate", "concentration", "bolus_volume"):
            if key in f:
                parts.append(value_words(f[key]))
    if s.source:
        sources.append(s.source)
    r = tmpl.dose_range
    if r is not None:
        parts.append(f"(range {r.text})")
        if r.source:
            sources.append(r.source)
    if "infusion_rate" in f:
        text = f"then {value_words(f['infusion_rate'])}"
        if "infusion_duration" in f:
            text += f" for {value_words(f['infusion_duration'])}"
        parts.append(text)
    return _cited(" ".join(parts) or "—", sources=sources)


def _when(tmpl: Any, protocol: Any, phase_titles: dict[str, str]) -> str:
    parts = [phase_titles.get(tmpl.phase, "")]
    every = tmpl.fields.get("every")
    if every is not None:
        parts.append(f"every {value_words(every)}")
    times = tmpl.fields.get("times_per_day")
    if times:
        parts.append({1: "once a day", 2: "twice a day"}.get(times, f"{times} times a day"))
    if tmpl.fields.get("prn"):
        parts.append("when needed")
    if tmpl.together_with:
        parts.append(f"together with {_titles(protocol, tmpl.together_with)}")
    if tmpl.after:
        parts.append(f"after {_titles(protocol, tmpl.after)}")
    if tmpl.when:
        parts.append("only when " + "; ".join(c.text or condition(c) for c in tmpl.when))
    if tmpl.choice and tmpl.default:
        parts.append("the usual choice")
    elif tmpl.choice and not tmpl.when:
        parts.append("an alternative")
    if tmpl.duration is not None:
        parts.append(f"for {value_words(tmpl.duration.value)}")
    return "; ".join(p for p in parts if p)


def _titration(tmpl: Any) -> Inlines:
    t = tmpl.titration
    if t is None:
        return _inline("—")
    parts = []
    if t.interval is not None:
        parts.append(f"no change within {value_words(t.interval)}")
    if t.step is not None:
        parts.append(f"steps of {value_words(t.step)}")
    if t.ceiling is not None:
        parts.append(f"at most {value_words(t.ceiling)}")
    return _cited("; ".join(parts) or "see the notes", sources=[t.source] if t.source else ())


def _dosing_table(protocol: Any) -> Table:
    phase_titles = {ph.id: ph.title for ph in protocol.phases}
    rows = tuple(
        (
            _inline(tmpl.title),
            _inline(_drug(tmpl)),
            _dose(tmpl),
            _inline(_route(tmpl)),
            _inline(_when(tmpl, protocol, phase_titles)),
            _titration(tmpl),
        )
        for tmpl in protocol.steps
        if not tmpl.is_action
    )
    return Table("Dosing", ("Step", "Drug", "Dose", "Route", "When", "Titration"), rows)


def _actions(protocol: Any) -> ItemList | None:
    """The steps that are instructions, not doses, as a list under the dosing table."""
    items = tuple(
        Item(_cited(Strong(f"{t.title}: "), _titled(t.purpose), sources=t.sources))
        for t in protocol.steps
        if t.is_action
    )
    return ItemList(items) if items else None


def _titled(text: str) -> str:
    """``text`` with the ids of shipped protocols written as their titles."""
    for pid, title in _protocol_titles().items():
        if pid in text:
            text = text.replace(f"the {pid} protocol", f"the protocol “{title}”")
            text = text.replace(pid, f"“{title}”")
    return text


def _protocol_titles() -> dict[str, str]:
    from ._objects import _module

    protocols = _module("protocols")
    if protocols is None:
        return {}
    try:
        return {p.id: p.title for p in protocols.list_protocols()}
    except Exception:  # a broken protocol file is reported by its reader, not by a handout
        return {}


def _tier_table(scheme_id: str) -> tuple[Table, Para] | None:
    schemes, _edition = _catalog.switching_schemes()
    scheme = schemes.get(scheme_id)
    if scheme is None or scheme.kind != "fixed":
        return None
    rows = []
    for t in scheme.tiers:
        text = t.text("mg/day oral morphine equivalent").removeprefix("tier ")
        dose = f"{_format.number(t.daily)} mg/day"
        if t.times_per_day:
            dose += f" ({_format.number(t.dose)} mg {t.times_per_day} times a day)"
        rows.append((_inline(text), _inline(dose)))
    caption = "Starting dose by the current daily oral morphine equivalent"
    return Table(caption, ("Current opioid", "Methadone"), tuple(rows)), Para(
        _cited(f"Tiers: {scheme.title}.", sources=[scheme.source])
    )


def _interval_table(protocol: Any) -> Table | None:
    checks = [c for c in protocol.eligibility if _is_interval(c)]
    if not checks:
        return None
    rows = []
    for c in checks:
        drug_guard = next(g for g in c.when if g.field == "anticoagulant.drug")
        names = [str(v) for v in (drug_guard.value or ())]
        drug = names[0] if names else drug_guard.text
        dose = [g.text or condition(g) for g in c.when if g.field == "anticoagulant.dose"]
        other = [
            g.text or condition(g)
            for g in c.when
            if g.field not in ("anticoagulant.drug", "anticoagulant.dose")
        ]
        if c.field == _INTERVAL_FIELD:
            wait: Inlines = _inline(Strong(value_words(c.value)))
        else:
            wait = _inline(c.text)
        rows.append(
            (
                _inline(drug),
                _inline("; ".join([*dose, *other]) or "any dose"),
                _cited(*wait, sources=[c.source] if c.source else ()),
            )
        )
    return Table(
        "Anticoagulants: the least time since the last dose before the block",
        ("Anticoagulant", "Dose or condition", "Wait at least"),
        tuple(rows),
    )


def _monitoring_table(protocol: Any) -> Table | None:
    rows: list[tuple[Inlines, ...]] = []
    watched = [t for t in protocol.steps if t.monitoring]
    for tmpl in watched:
        for m in tmpl.monitoring:
            when = m.when
            extra = []
            if m.at_daily_dose is not None:
                extra.append(f"at {value_words(m.at_daily_dose)}")
            rows.append(
                (
                    _inline(_watch(m.what)),
                    _cited(
                        when + (f" ({', '.join(extra)})" if extra else ""),
                        sources=[m.source] if m.source else (),
                    ),
                    _inline(tmpl.title),
                )
            )
    if not rows:
        return None
    if len(watched) == 1:  # one step: the column would repeat its title
        return Table(
            f"Monitoring: {watched[0].title.lower()}", ("What", "When"), tuple(r[:2] for r in rows)
        )
    return Table("", ("What", "When", "Step"), tuple(rows))  # the section is headed already


def _editions(files: Iterable[str]) -> str:
    out = []
    for name in dict.fromkeys(files):
        try:
            out.append(f"{name} {_catalog.edition(name)}")
        except Exception:  # a file this installation lacks is left out, not guessed
            continue
    return "; ".join(out)


def _protocol_files(protocol: Any) -> list[str]:
    files = ["drugs.toml", "sources.toml"]
    if protocol.ome_table:
        files.append(f"ome-{protocol.ome_table}.toml")
    kinds = {t.kind for t in protocol.steps}
    if any(t.start.method == "from_ome" for t in protocol.steps):
        files.append("methadone-schemes.toml")
    if "radiotherapy" in kinds:
        files.append("radiotherapy.toml")
    if "psoas_compartment_block" in kinds:
        files += ["local_anaesthetics.toml", "anticoagulants.toml"]
    return files


def _about(version_line: str, files: Iterable[str]) -> Section:
    from .. import __version__

    rows = [
        Para(_inline(Strong("Intended use. "), INTENDED_USE)),
        Para(
            _inline(
                f"{version_line} · mps_analgesia {__version__} · data: {_editions(files)} · "
                f"printed {handout_date()}"
            )
        ),
    ]
    return Section("About this handout", tuple(rows), "about")


def _flow_figure(protocol: Any) -> Figure:
    from ._objects import protocol_flow
    from .mermaid import flow_text, to_svg

    flow = protocol_flow(protocol)
    return Figure(to_svg(flow, title="Flowchart"), "\n".join(flow_text(flow)))


def protocol_handout(protocol: Any) -> Document:
    """A protocol as a handout (see the module docstring)."""
    ev = protocol.evidence
    first: list[Block] = [
        Para(_inline(Strong("For: "), protocol.indication)),
        Para(
            _cited(
                Strong("Evidence: "),
                ev.level.replace("-", " "),
                f". {ev.summary}" if ev.summary else "",
                sources=ev.sources,
            )
        ),
    ]
    eligible = [c for c in protocol.eligibility if not _is_interval(c)]
    who: list[Block] = []
    if eligible:
        who += [Para(_inline(Strong("Use when all of these hold:"))), _check_list(eligible)]
    if protocol.contraindications:
        who += [Para(_inline(Strong("Do not use when:"))), _check_list(protocol.contraindications)]
    if protocol.cautions:
        who += [Para(_inline(Strong("Take care when:"))), _check_list(protocol.cautions)]
    blocks: list[Block] = [*first]
    if who:
        blocks.append(Section("Who it is for", tuple(who), "who"))
    tables: list[Block] = [_dosing_table(protocol)]
    actions = _actions(protocol)
    if actions is not None:
        tables.append(actions)
    for tmpl in protocol.steps:
        if tmpl.start.method == "from_ome" and tmpl.start.scheme:
            tiers = _tier_table(tmpl.start.scheme)
            if tiers is not None:
                tables.extend(tiers)
    interval = _interval_table(protocol)
    if interval is not None:
        tables.append(interval)
    if any(t.kind == "radiotherapy" for t in protocol.steps):
        from .rt_table import rt_table_blocks

        tables.extend(rt_table_blocks())
    blocks.append(Section("Treatment", tuple(tables), "treatment"))
    monitoring = _monitoring_table(protocol)
    if monitoring is not None:
        blocks.append(Section("Monitoring", (monitoring,), "monitoring"))
    blocks.append(Section("Flowchart", (_flow_figure(protocol),), "flow"))
    if protocol.escalation:
        items = tuple(
            Item(
                _cited(
                    f"{_titled(e.when)}: {_titled(e.action)}",
                    sources=[e.source] if e.source else (),
                )
            )
            for e in protocol.escalation
        )
        blocks.append(Section("When it is not enough", (ItemList(items),), "escalation"))
    blocks.append(
        _about(
            f"Protocol version {protocol.version} ({protocol.status})", _protocol_files(protocol)
        )
    )
    return Document(protocol.title, tuple(blocks), subtitle="", footer="", kind="handout")


# ---- plan ---------------------------------------------------------------------------------------


def _plan_checks(plan: Any) -> Table | None:
    rows = []
    for c in plan.checks:
        if c.outcome == "not applicable":
            continue
        group = {"eligibility": "needed", "contraindication": "must not hold"}.get(c.group, c.group)
        rows.append(
            (
                _inline(c.check.text or condition(c.check)),
                _inline(group),
                _inline(Strong(_OUTCOME_WORDS.get(c.outcome, c.outcome))),
                _cited(c.observed, sources=[c.check.source] if c.check.source else ()),
            )
        )
    if not rows:
        return None
    return Table("Checks on this patient", ("Check", "Kind", "Holds", "Recorded"), tuple(rows))


def _step_rows(plan: Any) -> Table:
    protocol = plan.protocol
    rows = []
    for sid, step in zip(plan.step_ids, plan.regimen.steps, strict=False):
        try:
            title = protocol.get_step(sid).title
        except Exception:
            title = "current regimen, continued"
        rows.append((_inline(title), _inline(dosage(step))))
    return Table("Steps for this patient", ("Step", "Dose"), tuple(rows))


def _day_table(plan: Any) -> Table | None:
    """The day plan (:func:`mps_analgesia.schedule`) of the plan's regimen, days that are alike
    joined into one row (``days 1–6``), with the dated checks of the plan."""
    from ..errors import MpsAnalgesiaError
    from ..schedule import schedule
    from .dayplan import _columns, plan_rows

    checks: dict[int, list[str]] = {}
    last = 0
    for m in plan.monitoring:
        if m.day is not None:
            checks.setdefault(m.day, []).append(_watch(m.what))
            last = max(last, m.day)
    try:
        days = schedule(plan.regimen, table=plan.protocol.ome_table)
        if len(days) <= last:
            days = schedule(plan.regimen, last + 1, table=plan.protocol.ome_table)
    except MpsAnalgesiaError:
        return None
    rows = plan_rows(days)
    cols = [c for c in _columns(days, rows) if c != 0]
    groups: list[tuple[int, int, tuple[str, ...]]] = []
    for n, row in enumerate(rows[1:]):
        cells = (*(row[c] for c in cols), ", ".join(dict.fromkeys(checks.get(n, []))))
        if groups and groups[-1][2] == cells and not cells[-1]:
            groups[-1] = (groups[-1][0], n, cells)
        else:
            groups.append((n, n, cells))
    if not groups:
        return None
    out = tuple(
        (_inline(f"day {a}" if a == b else f"days {a}–{b}"), *(_inline(c) for c in cells))
        for a, b, cells in groups
    )
    headers = ("Day", *(rows[0][c][:1].upper() + rows[0][c][1:] for c in cols), "Checked")
    return Table(f"Day by day (OME table {plan.protocol.ome_table})", headers, out)


def _plan_findings(plan: Any) -> Block | None:
    from ._objects import _plan_report

    report = _plan_report(plan)
    if report is None:
        return None
    items = [
        Item(_cited(Strong(f.severity.upper(), f.severity), " ", f.message, sources=f.source))
        for f in sorted(report.findings, key=lambda f: SEVERITIES.index(f.severity))
    ]
    items += [
        Item(_inline(Strong("NOT CHECKED", "unknown"), f" missing {n.missing}: {n.reason}"))
        for n in report.not_checked
    ]
    if not items:
        return Para(_inline("The checks that ran found nothing to flag."))
    return ItemList(tuple(items))


#: Decisions that only say what the steps table already shows (a step kept, included, ordered).
_BOOKKEEPING: Final = ("continued", "included", "sequencing")
_CURRENT_INDEX: Final = re.compile(r"\s*\[current\[\d+\]\]")


def _step_words(plan: Any, text: str) -> str:
    """``text`` with the plan's step ids written as step titles (no ids on a handout)."""
    text = _CURRENT_INDEX.sub("", text)
    for tmpl in sorted(plan.protocol.steps, key=lambda t: -len(t.id)):
        if "-" in tmpl.id or "_" in tmpl.id:
            text = text.replace(f"'{tmpl.id}'", tmpl.title.lower())
            text = text.replace(tmpl.id, tmpl.title.lower())
    for group in plan.protocol.choice_groups:
        text = text.replace(f"'{group}'", group)
    return _titled(text)


def plan_handout(plan: Any) -> Document:
    """An instantiated plan as the patient's handout for the team (see the module docstring)."""
    protocol = plan.protocol
    blocks: list[Block] = [
        Para(_inline(Strong("Plan from: "), protocol.title)),
        Para(_inline(Strong("Eligibility: "), Strong(plan.status))),
    ]
    fields = patient_fields(plan.patient)
    if fields is not None:
        blocks.append(Section("Patient", (fields,), "patient"))
    checks = _plan_checks(plan)
    if checks is not None:
        blocks.append(Section("Checks", (checks,), "checks"))
    treatment: list[Block] = [_step_rows(plan)]
    days = _day_table(plan)
    if days is not None:
        treatment.append(days)
    blocks.append(Section("Treatment", tuple(treatment), "treatment"))
    if plan.monitoring:
        rows = tuple(
            (
                _inline(_watch(m.what)),
                _cited(
                    m.when
                    + (
                        f" (day {m.day}" + (f" to {m.until_day}" if m.until_day else "") + ")"
                        if m.day is not None
                        else ""
                    ),
                    sources=m.sources,
                ),
            )
            for m in plan.monitoring
        )
        blocks.append(Section("Monitoring", (Table("Monitoring", ("What", "When"), rows),)))
    decisions = [d for d in plan.decisions if d.action not in _BOOKKEEPING]
    if decisions:
        items = tuple(
            Item(_cited(Strong(d.action), f": {_step_words(plan, d.message)}", sources=d.sources))
            for d in decisions
        )
        blocks.append(Section("Decisions", (ItemList(items),), "decisions"))
    findings = _plan_findings(plan)
    if findings is not None:
        blocks.append(Section("Checks of the plan", (findings,), "validation"))
    files = _protocol_files(protocol)
    from ._objects import _plan_report

    report = _plan_report(plan)
    if report is not None and report.editions:
        files = [*files, *sorted(report.editions)]
    blocks.append(_about(f"Protocol version {protocol.version} ({protocol.status})", files))
    return Document(f"{protocol.title}: plan for one patient", tuple(blocks), kind="plan-handout")


def supports_handout(obj: Any) -> bool:
    """True when ``obj`` has a handout layout (a protocol or an instantiated plan)."""
    return _handout_builder(obj) is not None


def _handout_builder(obj: Any) -> Any:
    from ._objects import _module

    protocols = _module("protocols")
    if protocols is None:
        return None
    if isinstance(obj, protocols.Protocol):
        return protocol_handout
    if isinstance(obj, protocols.InstantiatedPlan):
        return plan_handout
    return None


def handout_document(obj: Any) -> Document:
    """The handout of ``obj`` (a protocol or an instantiated plan)."""
    build = _handout_builder(obj)
    if build is None:
        from ..errors import UnknownNameError

        raise UnknownNameError(
            "layout",
            "handout",
            ("summary",),
            reason=f"a {type(obj).__name__} has no handout layout: the handout is written for "
            "a Protocol or an InstantiatedPlan (use layout='summary')",
        )
    doc: Document = build(obj)
    return doc
