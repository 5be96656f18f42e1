"""Builders for the objects of the conversion, protocol and assessment modules.

Those modules are imported on use, so rendering a Regimen or a Report never depends on them.
Every sentence comes from the object or is a fixed label; receipts are shown verbatim.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any, Final

from .. import _units
from ..errors import MpsAnalgesiaError
from ..report import INTENDED_USE
from ._doc import (
    Block,
    Code,
    Document,
    Fields,
    Inlines,
    Item,
    ItemList,
    Para,
    Receipt,
    Section,
    Strong,
    Table,
    inline,
)

__all__ = [
    "assessment_document",
    "conversion_document",
    "ome_blocks_for",
    "ome_by_day",
    "ome_document",
    "optional_builders",
    "plan_document",
    "plan_has_errors",
    "protocol_document",
    "protocol_flow",
    "protocol_listing",
    "receipt_document",
]

_OPIOID_KINDS: Final = ("opioid", "methadone_adjuvant")
#: The OME table used when none is named (the conversion module's default).
DEFAULT_OME_TABLE: Final = "cdc-2022"
#: The tone of a check outcome, by the check's group (a met contraindication is bad news).
_OUTCOME_TONE: Final = {
    ("eligibility", "met"): "ok",
    ("eligibility", "not met"): "error",
    ("contraindication", "met"): "error",
    ("contraindication", "not met"): "ok",
    ("caution", "met"): "warning",
}
_START_WORDS: Final = {
    "fixed": "the step's own values",
    "current": "the patient's current step continues",
}
_FOOT: Final = INTENDED_USE


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"mps_analgesia.{name}")
    except ModuleNotFoundError:
        return None


def _missing(module: str, what: str) -> MpsAnalgesiaError:
    return MpsAnalgesiaError(
        f"{what} is not available in this installation (mps_analgesia.{module} is missing)"
    )


def _q(value: Any) -> str:
    """A value as text: time in words (``'7 days'``), other quantities as clinical text."""
    if not _units.is_quantity(value):
        return str(value)
    if value.dimensionality == _units.DIMENSIONS["time"][0]:
        from ._dosage import duration

        return duration(value)
    return _units.format_quantity(value)


#: Display words for the monitoring kinds of the protocol model.
_WATCH: Final = {"ecg": "ECG", "pain-score": "pain score", "local-anaesthetic-toxicity":
                 "local anaesthetic toxicity", "bilateral-spread": "bilateral spread",
                 "renal-function": "renal function"}  # fmt: skip


def _watch(what: str) -> str:
    return _WATCH.get(what, what)


def _cite(*groups: Iterable[str] | str) -> Any:
    from ._build import cite

    ids: list[str] = []
    for g in groups:
        if isinstance(g, str):
            ids.append(g)
        else:
            ids.extend(g)
    return cite(ids)


def _level(level: str) -> str:
    return f" [{level}]" if level else ""


# ---- OME ----------------------------------------------------------------------------------------


def ome_by_day(regimen: Any, end: int, table: str | None = None) -> list[float] | None:
    """The total daily OME (MME/day) on each day ``0..end``, or ``None`` if it cannot be drawn.

    ``None`` when the regimen has no opioid, the conversion module is absent, a step is not
    converted on some day (a partial total is not the total), or a total is a range.
    """
    conversion = _module("conversion")
    if conversion is None or not any(s.kind in _OPIOID_KINDS for s in regimen.steps):
        return None
    values: list[float] = []
    kwargs = {"table": table} if table else {}
    try:
        for day in range(end + 1):
            result = conversion.daily_ome(regimen, day=day, **kwargs)
            if result.not_converted or result.is_range:
                return None
            values.append(result.low_mme_per_day)
    except MpsAnalgesiaError:
        return None
    return values


def ome_blocks_for(regimen: Any, table: str | None = None) -> list[Block]:
    """The daily OME section of a regimen (empty without an opioid step or the module)."""
    conversion = _module("conversion")
    if conversion is None or not any(s.kind in _OPIOID_KINDS for s in regimen.steps):
        return []
    try:
        result = conversion.daily_ome(regimen, **({"table": table} if table else {}))
    except MpsAnalgesiaError:
        return []
    return [Section("Daily oral morphine equivalent", _ome_blocks(result), "ome")]


def _ome_blocks(result: Any) -> tuple[Block, ...]:
    total: Inlines
    if result.not_converted and not result.lines:
        total = inline(
            Strong("not converted", "warning"),
            ": no step could be converted; ",
            "; ".join(s.text for s in result.not_converted),
        )
    elif result.not_converted:
        total = inline(
            Strong("not complete", "warning"),
            f": the converted steps give {result.range.text}; not converted: ",
            "; ".join(s.text for s in result.not_converted),
        )
    else:
        total = inline(Strong(result.range.text))
    title = f"{result.table} ({result.title}), edition {result.edition}"
    rows: list[tuple[str, Inlines]] = [
        ("Total", total),
        ("Table", inline(title if result.title else f"{result.table}, edition {result.edition}")),
        ("PRN steps", inline(Code(result.prn))),
    ]
    if result.lines:
        rows.append(("Evidence", inline(f"weakest level {result.level}")))
    blocks: list[Block] = [Fields(tuple(rows)), Receipt(tuple(result.receipt))]
    srcs = [*result.sources, *(s.source for s in result.not_converted if s.source)]
    if srcs:
        blocks.append(Para(inline("Sources of the factors", _cite(srcs), ".")))
    if result.note:
        blocks.append(Para(inline(f"Table note: {result.note}")))
    return tuple(blocks)


def ome_document(result: Any) -> Document:
    """A daily OME result: the total, the table, the PRN policy and the receipt."""
    return Document(
        "Daily oral morphine equivalent",
        _ome_blocks(result),
        subtitle=result.text,
        footer=_FOOT,
        kind="ome",
    )


# ---- conversions and other receipts -------------------------------------------------------------


def conversion_document(conv: Any) -> Document:
    """An opioid rotation: from, to, calculated, reduction, reduced range, suggestion, receipt."""
    red = conv.reduction
    rows: list[tuple[str, Inlines]] = [
        ("From", inline(conv.source_ome.text)),
        ("To", inline(f"{conv.to_drug} {conv.to_route} {conv.to_formulation}")),
        ("Table", inline(f"{conv.table}, edition {conv.edition}")),
        ("Calculated equianalgesic dose", inline(conv.calculated.text)),
        ("Reduction", inline(red.text, _cite([red.source] if red.source else []))),
        ("Reduced range", inline(Strong(conv.reduced.text))),
    ]
    if conv.schedule is not None:
        s = conv.schedule
        rows.append(("Suggested", inline(s.text, _cite([s.source] if s.source else []))))
    else:
        rows.append(("Suggested", inline("none (see the notes)")))
    srcs: list[str] = []
    if conv.ome is not None:
        srcs.extend(conv.ome.sources)
    srcs.append(conv.target_source)
    blocks: list[Block] = [
        Fields(tuple(rows)),
        Receipt(tuple(conv.receipt)),
        Para(inline("Sources of the factors", _cite(srcs), ".")),
    ]
    return Document(
        "Opioid conversion",
        tuple(blocks),
        subtitle=conv.text,
        footer=_FOOT,
        kind="conversion",
    )


def receipt_document(obj: Any) -> Document:
    """Any result with ``text`` and ``receipt`` (methadone switch, breakthrough dose ...)."""
    srcs: list[str] = [str(getattr(obj, n, "") or "") for n in ("source", "factor_source")]
    ome = getattr(obj, "ome", None)
    if ome is not None and hasattr(ome, "sources"):
        srcs.extend(ome.sources)
    for name in ("fraction", "reduction", "schedule", "suggested"):
        part: Any = getattr(obj, name, None)
        source: Any = getattr(part, "source", None)
        if source:
            srcs.append(str(source))
    blocks: list[Block] = [Receipt(tuple(obj.receipt))]
    cites = _cite([s for s in srcs if s])
    if cites is not None:
        blocks.append(Para(inline("Sources", cites, ".")))
    titles = {
        "MethadoneConversion": "Switch to methadone",
        "BreakthroughDose": "Breakthrough dose",
    }
    name = type(obj).__name__
    return Document(titles.get(name, name), tuple(blocks), subtitle=obj.text, footer=_FOOT)


def comparison_document(cmp: Any) -> Document:
    """The same regimen under several OME tables, side by side, with each receipt."""
    rows = []
    for r in cmp.results:
        missing = ", ".join(f"step {s.step + 1} {s.drug}" for s in r.not_converted)
        rows.append(
            (
                inline(Code(r.table)),
                inline(r.total_text),
                inline(r.edition),
                inline(missing or "none"),
                inline(_cite(r.sources) or ""),
            )
        )
    blocks: list[Block] = [
        Table(
            f"Daily OME by table (PRN steps: {cmp.prn})",
            ("Table", "OME", "Edition", "Not converted", "Sources"),
            tuple(rows),
        )
    ]
    for r in cmp.results:
        blocks.append(Section(f"Receipt: {r.table}", (Receipt(tuple(r.receipt)),)))
    return Document("OME tables compared", tuple(blocks), footer=_FOOT, kind="comparison")


# ---- protocols ----------------------------------------------------------------------------------


def _check_item(check: Any, prefix: str = "") -> Item:
    extra = ""
    if getattr(check, "if_unknown", "unknown") != "unknown":
        extra = f" (when unknown: {check.if_unknown})"
    content = inline(
        prefix,
        check.text,
        " (",
        Code(check.describe()),
        ")",
        extra,
        _level(check.level),
        _cite([check.source] if check.source else []),
    )
    sub = tuple(
        inline(
            "only when: ",
            g.text,
            " (",
            Code(g.describe()),
            ")",
            _level(g.level),
            _cite([g.source] if g.source else []),
        )
        for g in check.when
    )
    return Item(content, "", sub)


def _checks_section(title: str, checks: Sequence[Any], anchor: str) -> Section | None:
    if not checks:
        return None
    return Section(title, (ItemList(tuple(_check_item(c) for c in checks)),), anchor)


def _template_dosage(tmpl: Any) -> str | None:
    """The dosage line of a template whose fixed values make a whole step, else ``None``."""
    if tmpl.is_action or tmpl.start.method != "fixed":
        return None
    from ..steps import STEP_KINDS
    from ._dosage import dosage

    cls = STEP_KINDS.get(tmpl.kind)
    if cls is None:
        return None
    try:
        return dosage(cls(**dict(tmpl.fields)))
    except (MpsAnalgesiaError, TypeError):
        return None


def _fields_text(fields: Mapping[str, Any]) -> str:
    return "; ".join(f"{k} = {_q(v)}" for k, v in fields.items())


def _start_text(start: Any) -> str:
    m = start.method
    if m == "per_kg":
        return f"{_q(start.per_kg)} × body weight, for {start.field}"
    if m == "from_ome":
        return f"from the current daily oral morphine equivalent by the scheme {start.scheme}"
    if m == "breakthrough":
        return f"{start.fraction} of the regular daily dose of the current opioid"
    return _START_WORDS.get(m, str(m))


def _titration_text(t: Any) -> str:
    parts = []
    if t.step is not None:
        parts.append(f"steps of {_q(t.step)}")
    if t.interval is not None:
        parts.append(f"at least {_q(t.interval)} between changes")
    if t.ceiling is not None:
        parts.append(f"ceiling {_q(t.ceiling)}")
    return ", ".join(parts)


def _monitoring_text(m: Any) -> str:
    text = f"{_watch(m.what)}: {m.when}"
    extra = []
    if m.from_start is not None:
        extra.append(f"from {_q(m.from_start)} after the start")
    if m.until is not None:
        extra.append(f"until {_q(m.until)}")
    if m.at_daily_dose is not None:
        extra.append(f"at {_q(m.at_daily_dose)}")
    return text + (f" ({', '.join(extra)})" if extra else "")


def _template_section(tmpl: Any, protocol: Any) -> Section:
    rows: list[tuple[str, Inlines]] = []
    line = _template_dosage(tmpl)
    kind = "instruction (no regimen step)" if tmpl.is_action else tmpl.kind
    rows.append(("Kind", inline(kind)))
    if line is not None:
        rows.append(("Dose", inline(line)))
    elif tmpl.fields:
        rows.append(("Fixed values", inline(_fields_text(tmpl.fields))))
    if tmpl.purpose:
        rows.append(("Purpose", inline(tmpl.purpose)))
    if tmpl.choice:
        others = protocol.choice_groups.get(tmpl.choice, ())
        label = f"an option of '{tmpl.choice}' ({', '.join(others)})"
        rows.append(("Choice", inline(label + (", the default" if tmpl.default else ""))))
    if (not tmpl.is_action and tmpl.start.method != "fixed") or tmpl.start.note:
        s = tmpl.start
        rows.append(
            (
                "Starting dose",
                inline(
                    _start_text(s),
                    f"; {s.note}" if s.note else "",
                    _level(s.level),
                    _cite([s.source] if s.source else []),
                ),
            )
        )
    if tmpl.dose_range is not None:
        r = tmpl.dose_range
        rows.append(
            (
                "Dose range",
                inline(
                    r.text,
                    f"; {r.note}" if r.note else "",
                    _level(r.level),
                    _cite([r.source] if r.source else []),
                ),
            )
        )
    if tmpl.titration is not None:
        t = tmpl.titration
        rows.append(
            (
                "Titration",
                inline(
                    _titration_text(t),
                    f"; {t.note}" if t.note else "",
                    _level(t.level),
                    _cite([t.source] if t.source else []),
                ),
            )
        )
    if tmpl.after:
        rows.append(("After", inline(", ".join(tmpl.after))))
    if tmpl.together_with:
        rows.append(("Together with", inline(", ".join(tmpl.together_with))))
    if tmpl.duration is not None:
        d = tmpl.duration
        rows.append(
            (
                "Duration",
                inline(
                    _q(d.value),
                    f"; {d.note}" if d.note else "",
                    _level(d.level),
                    _cite([d.source] if d.source else []),
                ),
            )
        )
    if tmpl.sources or tmpl.level:
        rows.append(
            ("Sources", inline(f"level {tmpl.level}" if tmpl.level else "", _cite(tmpl.sources)))
        )
    blocks: list[Block] = [Fields(tuple(rows))]
    checks = [
        *(("Applies when", c) for c in tmpl.when),
        *(("Requires", c) for c in tmpl.requires),
    ]
    if checks:
        blocks.append(ItemList(tuple(_check_item(c, f"{label}: ") for label, c in checks)))
    if tmpl.monitoring:
        blocks.append(
            Section(
                "Monitoring",
                (
                    ItemList(
                        tuple(
                            Item(
                                inline(
                                    _monitoring_text(m),
                                    _level(m.level),
                                    _cite([m.source] if m.source else []),
                                )
                            )
                            for m in tmpl.monitoring
                        )
                    ),
                ),
            )
        )
    if tmpl.deescalation:
        blocks.append(
            Section(
                "De-escalation",
                (
                    ItemList(
                        tuple(
                            Item(
                                inline(
                                    d.text,
                                    f" (target: {d.target})" if d.target else "",
                                    f"; {d.note}" if d.note else "",
                                    _level(d.level),
                                    _cite([d.source] if d.source else []),
                                )
                            )
                            for d in tmpl.deescalation
                        )
                    ),
                ),
            )
        )
    return Section(tmpl.title, tuple(blocks), f"template-{tmpl.id}")


def _eligibility_question(protocol: Any) -> str:
    """``'2 eligibility checks met and 2 contraindications absent?'`` (each part when present)."""
    parts = []
    n = len(protocol.eligibility)
    if n:
        parts.append(f"{n} eligibility check{'s' if n != 1 else ''} met")
    n = len(protocol.contraindications)
    if n:
        parts.append(f"{n} contraindication{'s' if n != 1 else ''} absent")
    return " and ".join(parts) + "?"


def protocol_flow(protocol: Any) -> Any:
    """The protocol as a flow graph: start, eligibility decision, phases, steps, choices, when."""
    from .mermaid import Edge, Flow, Node

    nodes: list[Node] = [Node("start", "Start", "terminal")]
    edges: list[Edge] = []
    phases = tuple((f"phase-{ph.id}", ph.title) for ph in protocol.phases)
    first = phases[0][0] if phases else ""
    if protocol.eligibility or protocol.contraindications:
        nodes.append(Node("eligibility", _eligibility_question(protocol), "decision"))
        nodes.append(Node("not-eligible", "Not eligible", "terminal", beside="eligibility"))
        edges.append(Edge("start", "eligibility"))
        edges.append(Edge("eligibility", "not-eligible", "no"))
        if first:
            edges.append(Edge("eligibility", first, "yes"))
    elif first:
        edges.append(Edge("start", first))
    choice_nodes: dict[str, str] = {}
    for ph in protocol.phases:
        pid = f"phase-{ph.id}"
        if not protocol.steps_of(ph.id):  # a phase with no step: show what it is for
            nodes.append(Node(f"purpose-{ph.id}", ph.purpose or ph.title, "step", pid))
        for tmpl in protocol.steps_of(ph.id):
            sid = f"step-{tmpl.id}"
            cid = ""
            if tmpl.choice:
                cid = choice_nodes.get(tmpl.choice, "")
                if not cid:
                    cid = choice_nodes[tmpl.choice] = f"choice-{tmpl.choice}"
                    nodes.append(Node(cid, f"Choose {tmpl.choice}", "decision", pid))
            entry = sid
            if tmpl.when:
                wid = f"when-{tmpl.id}"
                label = "; ".join(c.text for c in tmpl.when)
                label = label if label.endswith("?") else f"{label}?"
                nodes.append(Node(wid, label, "decision", pid))
                edges.append(Edge(wid, sid, "yes"))
                entry = wid
            if cid:
                edges.append(Edge(cid, entry, "default" if tmpl.default else "option"))
                entry = cid
            nodes.append(Node(sid, tmpl.title, "step", pid))
            for other in tmpl.after:
                edges.append(Edge(f"step-{other}", entry, "after"))
            for other in tmpl.together_with:
                edges.append(Edge(f"step-{other}", entry, "together with"))
    known = {n.id for n in nodes} | {p for p, _ in phases}
    for a, b in itertools.pairwise(phases):
        edges.append(Edge(a[0], b[0], "then"))
    edges = [e for e in edges if e.source in known and e.target in known]
    return Flow(tuple(nodes), tuple(dict.fromkeys(edges)), phases)


def _evidence_row(protocol: Any) -> Inlines:
    ev = protocol.evidence
    return inline(
        Strong(ev.level.replace("-", " ")),
        f": {ev.summary}" if ev.summary else "",
        _cite(ev.sources),
    )


def _protocol_head(protocol: Any) -> list[tuple[str, Inlines]]:
    status: Inlines = inline(Strong(protocol.status))
    if protocol.superseded_by:
        status = inline(Strong(protocol.status), f" by {protocol.superseded_by}")
    rows: list[tuple[str, Inlines]] = [
        ("Protocol", inline(Code(protocol.id), f" version {protocol.version}")),
        ("Status", status),
        ("Evidence", _evidence_row(protocol)),
        ("Indication", inline(protocol.indication)),
    ]
    if protocol.sources:
        rows.append(("Key sources", inline(_cite(protocol.sources))))
    return rows


def protocol_document(protocol: Any) -> Document:
    """A protocol: metadata, evidence, checks, flow diagram, phases with step templates."""
    from .mermaid import diagram

    blocks: list[Block] = [Fields(tuple(_protocol_head(protocol)))]
    if protocol.summary:
        blocks.append(Para(inline(protocol.summary)))
    for title, checks, anchor in (
        ("Eligibility", protocol.eligibility, "eligibility"),
        ("Contraindications", protocol.contraindications, "contraindications"),
        ("Cautions", protocol.cautions, "cautions"),
    ):
        section = _checks_section(title, checks, anchor)
        if section is not None:
            blocks.append(section)
    blocks.append(Section("Flow", (diagram(protocol_flow(protocol), "Protocol flow"),), "flow"))
    for n, ph in enumerate(protocol.phases, start=1):
        inner: list[Block] = []
        if ph.purpose:
            inner.append(Para(inline(ph.purpose)))
        inner.extend(_template_section(t, protocol) for t in protocol.steps_of(ph.id))
        blocks.append(Section(f"Phase {n}: {ph.title}", tuple(inner), f"phase-{ph.id}"))
    if protocol.escalation:
        items = tuple(
            Item(
                inline(
                    f"{e.when}: {e.action}",
                    f" (see {', '.join(e.to)})" if e.to else "",
                    _level(e.level),
                    _cite([e.source] if e.source else []),
                )
            )
            for e in protocol.escalation
        )
        blocks.append(Section("Escalation", (ItemList(items),), "escalation"))
    if any(t.kind == "radiotherapy" for t in protocol.steps):
        from .rt_table import rt_table_blocks

        blocks.append(Section("Radiotherapy schedules", rt_table_blocks(), "radiotherapy"))
    return Document(
        protocol.title,
        tuple(blocks),
        subtitle=f"Protocol {protocol.id} · version {protocol.version} · {protocol.status}",
        footer=_FOOT,
        kind="protocol",
    )


def protocol_listing(protocols: Sequence[Any]) -> Document:
    """The table of protocols: id, status, evidence level, title."""
    rows = tuple(
        (
            inline(Code(p.id)),
            inline(p.version),
            inline(p.status),
            inline(p.evidence.level.replace("-", " ")),
            inline(p.title),
        )
        for p in protocols
    )
    blocks: tuple[Block, ...] = (
        # no caption: the document's title already says "Protocols"
        (Table("", ("Id", "Version", "Status", "Evidence", "Title"), rows),)
        if rows
        else (Para(inline("No protocols found.")),)
    )
    return Document("Protocols", blocks, footer=_FOOT, kind="protocol-list")


# ---- instantiated plans -------------------------------------------------------------------------


def _plan_report(plan: Any) -> Any | None:
    try:
        return plan.validate()
    except MpsAnalgesiaError:
        return None


def plan_has_errors(plan: Any) -> bool:
    """True when the plan's validation has an error finding or an eligibility check failed."""
    if getattr(plan, "eligible", None) is False:
        return True
    report = _plan_report(plan)
    return bool(report is not None and report.has_errors)


def plan_checkpoints(plan: Any) -> list[Any]:
    """The dated ECG checks of an instantiated plan, one checkpoint per day."""
    from .timeline import Checkpoint

    seen: dict[int, None] = {}
    for m in plan.monitoring:
        if m.what == "ecg" and m.day is not None:
            seen.setdefault(m.day, None)
    return [Checkpoint(day, "ECG") for day in sorted(seen)]


def plan_document(plan: Any) -> Document:
    """An instantiated plan: eligibility, steps, timeline, monitoring, decisions, validation."""
    from ._build import finding_blocks, not_checked_blocks, patient_fields, steps_blocks
    from .timeline import timeline_document_figure

    protocol = plan.protocol
    head = _protocol_head(protocol)
    head.insert(2, ("Eligibility", inline(Strong(plan.status, _status_tone(plan.status)))))
    if plan.choices:
        text = ", ".join(
            f"{k} = {', '.join(v) if isinstance(v, tuple | list) else v}"
            for k, v in plan.choices.items()
        )
        head.append(("Choices", inline(text)))
    blocks: list[Block] = [Fields(tuple(head))]
    fields = patient_fields(plan.patient)
    if fields is not None:
        blocks.append(Section("Patient", (fields,), "patient"))
    rows = tuple(
        (
            inline(c.group),
            inline(c.check.text, " (", Code(c.check.describe()), ")"),
            inline(Strong(c.outcome, _outcome_tone(c.group, c.outcome))),
            inline(c.observed),
            inline(
                f"[{c.check.level}]" if c.check.level else "",
                _cite([c.check.source] if c.check.source else []),
            ),
        )
        for c in plan.checks
    )
    if rows:
        blocks.append(
            Section(
                "Checks",
                (
                    Table(
                        "Checks on the patient",
                        ("Group", "Check", "Outcome", "Observed", "Source"),
                        rows,
                    ),
                ),
                "checks",
            )
        )
    origins = tuple(
        "current regimen, continued" if sid.startswith("current") else f"from protocol step {sid}"
        for sid in plan.step_ids
    )
    blocks.append(Section("Steps", steps_blocks(plan.regimen.steps, origins=origins), "steps"))
    checkpoints = plan_checkpoints(plan)
    figure = timeline_document_figure(
        plan.regimen, checkpoints=checkpoints, table=protocol.ome_table
    )
    if figure is not None:
        blocks.append(Section("Timeline", (figure,), "timeline"))
    blocks.extend(ome_blocks_for(plan.regimen, protocol.ome_table))
    if plan.monitoring:
        items = []
        for m in plan.monitoring:
            day = ""
            if m.day is not None:
                day = (
                    f" (day {m.day}"
                    + (f" to {m.until_day}" if m.until_day is not None else "")
                    + ")"
                )
            items.append(
                Item(
                    inline(
                        Strong(_watch(m.what)),
                        f" [{m.step}]: {m.when}{day}",
                        _level(m.level),
                        _cite(m.sources),
                    )
                )
            )
        blocks.append(Section("Monitoring", (ItemList(tuple(items)),), "monitoring"))
    if plan.decisions:
        items = []
        for d in plan.decisions:
            where = f" [{d.step}]" if d.step else ""
            sub = (inline("calculation: ", Code(d.arithmetic)),) if d.arithmetic else ()
            items.append(
                Item(
                    inline(
                        Strong(d.action), f"{where}: {d.message}", _level(d.level), _cite(d.sources)
                    ),
                    "",
                    sub,
                )
            )
        blocks.append(Section("Decisions", (ItemList(tuple(items)),), "decisions"))
    report = _plan_report(plan)
    if report is not None:
        status = inline(Strong(report.status, _report_tone(report.status)), ": ", report.summary())
        inner: list[Block] = [Para(status), *finding_blocks(report, have_steps=True)]
        if report.not_checked:
            inner.append(Section("Not checked", not_checked_blocks(report, True)))
        blocks.append(Section("Checks of the plan", tuple(inner), "validation"))
    return Document(
        protocol.title,
        tuple(blocks),
        subtitle=f"Plan for one patient from protocol {protocol.id} version {protocol.version}",
        footer=_FOOT,
        kind="plan",
    )


def _outcome_tone(group: str, outcome: str) -> str:
    if outcome == "unknown":
        return "unknown"
    return _OUTCOME_TONE.get((group, outcome), "")


def _status_tone(status: str) -> str:
    return {"eligible": "ok", "not eligible": "error", "undetermined": "unknown"}.get(status, "")


def _report_tone(status: str) -> str:
    from ._build import STATUS_TONE

    return STATUS_TONE.get(status, "")


# ---- assessment ---------------------------------------------------------------------------------


def _yes_no(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def assessment_document(assessment: Any) -> Document:
    """An MPS assessment: the features, each definition's criteria and outcome, the differential."""
    import attrs

    feats = assessment.features
    feature_rows = tuple(
        (
            inline(str(a.metadata.get("doc", a.name))),
            inline(Code(a.name)),
            inline(_yes_no(getattr(feats, a.name))),
        )
        for a in attrs.fields(type(feats))
    )
    blocks: list[Block] = [
        Para(inline(Strong(assessment.note))),
        Section(
            "Features",
            (Table("Clinical features recorded", ("Feature", "Name", "Value"), feature_rows),),
            "features",
        ),
    ]
    for d in assessment.definitions:
        rows: list[tuple[str, Inlines]] = [
            ("Outcome", inline(Strong(d.status, _DEFINITION_TONE.get(d.status, "")))),
            ("Rule", inline(d.rule)),
            (
                "Source",
                inline(f"[{d.level}]" if d.level else "", _cite([d.source] if d.source else [])),
            ),
        ]
        if d.note:
            rows.append(("Note", inline(d.note)))
        if d.also:
            rows.append(("Also", inline(d.also)))
        criteria = tuple(
            (
                inline(c.text),
                inline("one or more of" if c.role == "any" else c.role),
                inline(Strong(c.status, _CRITERION_TONE.get(c.status, ""))),
                inline("; ".join(f"{name} = {_yes_no(value)}" for name, value in c.features)),
            )
            for c in d.criteria
        )
        blocks.append(
            Section(
                d.title,
                (
                    Fields(tuple(rows)),
                    Table("Criteria", ("Criterion", "Role", "Status", "Features read"), criteria),
                ),
                f"definition-{d.id}",
            )
        )
    diff: list[Block] = [Para(inline("Information for the clinician, not a diagnosis."))]
    for item in assessment.differential:
        items = tuple(
            Item(
                inline(
                    Code(f.feature),
                    f" = {f.observed}: {f.bearing}",
                    _level(f.level),
                    _cite([f.source] if f.source else []),
                )
            )
            for f in item.findings
        )
        diff.append(Section(item.entity, (ItemList(items),)))
    blocks.append(Section("Differential of the psoas lesion", tuple(diff), "differential"))
    side = f" · side: {feats.side}" if getattr(feats, "side", None) else ""
    return Document(
        "Malignant psoas syndrome: published definitions",
        tuple(blocks),
        subtitle=f"Assessment of the recorded features{side} · criteria table {assessment.edition}",
        footer=_FOOT,
        kind="assessment",
    )


_DEFINITION_TONE: Final = {"satisfied": "ok", "not satisfied": "info", "undetermined": "unknown"}
_CRITERION_TONE: Final = {"met": "ok", "not met": "info", "unknown": "unknown"}


# ---- registry -----------------------------------------------------------------------------------


def optional_builders() -> list[tuple[type, Callable[[Any], Document]]]:
    """The builders of the optional modules that are present."""
    out: list[tuple[type, Callable[[Any], Document]]] = []
    conversion = _module("conversion")
    if conversion is not None:
        out.append((conversion.OmeResult, ome_document))
        out.append((conversion.Conversion, conversion_document))
        out.append((conversion.TableComparison, comparison_document))
        for name in ("MethadoneConversion", "BreakthroughDose"):
            cls = getattr(conversion, name, None)
            if cls is not None:
                out.append((cls, receipt_document))
    protocols = _module("protocols")
    if protocols is not None:
        out.append((protocols.Protocol, protocol_document))
        out.append((protocols.InstantiatedPlan, plan_document))
    assess = _module("assess")
    if assess is not None:
        out.append((assess.MpsAssessment, assessment_document))
    return out
