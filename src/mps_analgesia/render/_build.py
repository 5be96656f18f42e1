"""Build a :class:`~._doc.Document` from a library object.

Every sentence comes from the object (its fields, its receipt lines, its messages) or is a fixed
label written here ("Steps", "Calculation", "Not checked" ...).  Nothing is paraphrased or
invented; what the object does not hold is not shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from .. import _format
from ..report import INTENDED_USE, SEVERITIES, Report
from ._doc import (
    Block,
    Cite,
    Code,
    Document,
    Fields,
    Figure,
    Inline,
    Inlines,
    Item,
    ItemList,
    Para,
    Receipt,
    Ref,
    Section,
    Strong,
    inline,
)
from ._dosage import dosage, duration, quantity

__all__ = [
    "LEVEL_LABELS",
    "STATUS_TONE",
    "cite",
    "num",
    "regimen_document",
    "report_document",
    "step_receipt",
    "steps_blocks",
]

#: Words for the verification levels of the reference notes.
LEVEL_LABELS: Final[dict[str, str]] = {
    "V": "verified",
    "S": "secondary source",
    "U": "unverified",
}
#: The tone (colour) a report status is shown in.
STATUS_TONE: Final[dict[str, str]] = {
    "errors": "error",
    "warnings": "warning",
    "incomplete": "unknown",
    "no findings": "info",
}
_ROLE_LABEL: Final = "role"
_HOURS_PER_DAY: Final = 24.0  # a unit identity, not a clinical number


#: The one number formatter (``_format.number``): whole numbers plain, else 4 significant digits.
num = _format.number


def cite(ids: Iterable[str]) -> Cite | None:
    """A citation of the non-empty ``ids``, or ``None`` when there are none."""
    kept = tuple(dict.fromkeys(i for i in ids if i))
    return Cite(kept) if kept else None


def _mg(value_mg: float) -> str:
    return f"{num(value_mg)} mg"


def _dose_text(q: Any, value_mg: float) -> str:
    text = quantity(q)
    return text if text.endswith(" mg") else f"{text} ({_mg(value_mg)})"


def _drug_receipt(step: Any) -> list[str]:
    lines: list[str] = []
    if step.rate is not None:
        lines.append(
            f"{quantity(step.rate)} × 24 h/day = {num(step.rate_mg_per_h * _HOURS_PER_DAY)} mg/day"
        )
        for p in step.titration:
            if p.rate_mg_per_h is not None:
                lines.append(
                    f"from day {p.day}: {quantity(p.rate)} × 24 h/day = "
                    f"{num(p.rate_mg_per_h * _HOURS_PER_DAY)} mg/day"
                )
        if step.drug == "methadone" and step.titration:
            lines.append(f"peak: {num(step.daily_dose_mg)} mg/day from day {step.peak_day}")
        return lines
    per_day = step.doses_per_day
    if step.every_h is not None:
        count = f"24 h ÷ {quantity(step.every)} = {num(_HOURS_PER_DAY / step.every_h)} doses/day"
        if step.prn and step.max_doses_per_24h is not None:
            count += f", at most {step.max_doses_per_24h} in 24 h → {num(per_day)} doses/day"
        lines.append(count)
    elif step.prn and step.max_doses_per_24h is not None:
        lines.append(f"at most {step.max_doses_per_24h} doses in 24 h")
    label = "most in 24 h" if step.prn else "daily dose"
    lines.append(
        f"{label}: {_dose_text(step.dose, step.dose_mg)} × {num(per_day)} doses/day = "
        f"{num(step.dose_mg * per_day)} mg/day"
    )
    for p in step.titration:
        if p.dose_mg is not None:
            lines.append(
                f"from day {p.day}: {_dose_text(p.dose, p.dose_mg)} × {num(per_day)} doses/day = "
                f"{num(p.dose_mg * per_day)} mg/day"
            )
    if step.drug == "methadone" and step.titration:
        lines.append(f"peak: {num(step.daily_dose_mg)} mg/day from day {step.peak_day}")
    return lines


def _block_receipt(step: Any) -> list[str]:
    c = step.concentration_mg_per_ml
    conc = quantity(step.concentration)
    lines = [] if conc.endswith("mg/mL") else [f"{conc} = {num(c)} mg/mL"]
    if step.bolus_ml is not None:
        lines.append(f"bolus: {num(c)} mg/mL × {num(step.bolus_ml)} mL = {_mg(step.bolus_mg)}")
    if step.infusion_ml_per_h is not None:
        line = (
            f"infusion: {num(c)} mg/mL × {num(step.infusion_ml_per_h)} mL/h = "
            f"{num(step.infusion_mg_per_h)} mg/h"
        )
        if step.infusion_h is not None:
            whole = step.infusion_mg_per_h * step.infusion_h
            line += f"; × {num(step.infusion_h)} h = {_mg(whole)}"
        lines.append(line)
        hours = _HOURS_PER_DAY if step.infusion_h is None else min(_HOURS_PER_DAY, step.infusion_h)
        lines.append(
            f"most in any 24 h: {_mg(step.bolus_mg)} + {num(step.infusion_mg_per_h)} mg/h × "
            f"{num(hours)} h = {_mg(step.max_24h_mg)}"
        )
    return lines


def _rt_receipt(step: Any) -> tuple[list[str], tuple[str, ...]]:
    lines = [
        f"{num(step.total_dose_gy)} Gy ÷ {step.fractions} fraction"
        f"{'s' if step.fractions != 1 else ''} = {num(step.dose_per_fraction_gy)} Gy per fraction"
    ]
    from .. import radiotherapy

    courses = [("", radiotherapy.course_equivalents(step.total_dose, step.fractions))]
    if step.prior_dose is not None and step.prior_fractions is not None:
        prior = radiotherapy.course_equivalents(step.prior_dose, step.prior_fractions)
        courses.append(("prior course ", prior))
    sources: list[str] = []
    for k in range(len(courses[0][1])):
        for label, results in courses:
            c = results[k]
            ab = num(c.alpha_beta_gy)
            lines.append(
                f"{label}BED (α/β {ab} Gy) = {num(c.total_dose_gy)} Gy × (1 + "
                f"{num(c.dose_per_fraction_gy)} Gy ÷ {ab} Gy) = {num(c.bed_gy)} Gy"
            )
            lines.append(
                f"{label}EQD2 (α/β {ab} Gy) = {num(c.bed_gy)} Gy ÷ (1 + "
                f"{num(c.reference_fraction_gy)} Gy ÷ {ab} Gy) = {num(c.eqd2_gy)} Gy"
            )
        sources.append(courses[0][1][k].source)
    return lines, tuple(dict.fromkeys(sources))


def step_receipt(step: Any) -> tuple[list[str], tuple[str, ...]]:
    """The arithmetic behind one step (daily dose, block dose, BED/EQD2) and its sources.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> step_receipt(mps.AdjuvantStep(drug="acetaminophen", role="nociceptive", dose="1 g",
    ...                               every="6 h"))[0]
    ['24 h ÷ 6 h = 4 doses/day', 'daily dose: 1 g (1000 mg) × 4 doses/day = 4000 mg/day']
    """
    kind = getattr(step, "kind", "")
    if kind == "psoas_compartment_block":
        return _block_receipt(step), ()
    if kind == "radiotherapy":
        return _rt_receipt(step)
    return _drug_receipt(step), ()


def _step_sub(step: Any) -> tuple[Inlines, ...]:
    sub: list[Inlines] = []
    kind = getattr(step, "kind", "")
    if kind == "methadone_adjuvant":
        sub.append(inline("methadone added to the current opioid (adjuvant), not a rotation"))
    if kind == "adjuvant":
        sub.append(inline(f"{_ROLE_LABEL}: {step.role}"))
    if kind == "opioid" and step.prn:
        sub.append(inline("breakthrough (PRN) dose"))
    note = getattr(step, "note", "")
    if note:
        sub.append(inline(f"note: {note}"))
    return tuple(sub)


def steps_blocks(
    steps: Sequence[Any], *, anchors: bool = True, origins: Sequence[str] = ()
) -> tuple[Block, ...]:
    """The numbered steps in plain dosage language, then the calculation behind each.

    ``origins`` adds a line per step saying where it came from (a plan's protocol step ids).
    """
    items = tuple(
        Item(
            inline(dosage(s)),
            f"step-{i + 1}" if anchors else "",
            _step_sub(s) + ((inline(origins[i]),) if i < len(origins) else ()),
        )
        for i, s in enumerate(steps)
    )
    blocks: list[Block] = [ItemList(items, ordered=True)]
    receipt: list[str] = []
    sources: list[str] = []
    for i, s in enumerate(steps):
        lines, srcs = step_receipt(s)
        receipt.extend(f"step {i + 1}: {line}" for line in lines)
        sources.extend(srcs)
    if receipt:
        blocks.append(Receipt(tuple(receipt), "Calculation"))
    if sources:
        from .rt_table import alpha_beta_line

        blocks.append(alpha_beta_line())
    return tuple(blocks)


def _timeline_figure(regimen: Any) -> Figure | None:
    from .timeline import timeline_document_figure

    return timeline_document_figure(regimen)


def regimen_document(regimen: Any, *, title: str = "") -> Document:
    """A regimen: its steps in plain language, the calculations, and its timeline."""
    blocks: list[Block] = [Section("Steps", steps_blocks(regimen.steps), "steps")]
    figure = _timeline_figure(regimen)
    if figure is not None:
        blocks.append(Section("Timeline", (figure,), "timeline"))
    blocks.extend(_ome_sections(regimen))
    return Document(
        title or regimen.name or "Regimen",
        tuple(blocks),
        subtitle=f"{len(regimen)} step{'s' if len(regimen) != 1 else ''}",
        footer=INTENDED_USE,
        kind="regimen",
    )


def patient_fields(patient: Any) -> Fields | None:
    """The patient's recorded values as labelled fields (``None`` when nothing is recorded)."""
    rows: list[tuple[str, Inlines]] = []

    def add(label: str, value: Any) -> None:
        if value is None or value == () or value == "":
            return
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, float):
            text = num(value)
        elif isinstance(value, tuple):
            text = ", ".join(value)
        elif isinstance(value, str):
            text = value
        else:
            text = quantity(value)
        rows.append((label, inline(text)))

    add("Age (years)", patient.age)
    add("Sex", patient.sex)
    add("Weight", patient.weight)
    add("Height", patient.height)
    add("eGFR", patient.egfr)
    add("Creatinine clearance", patient.creatinine_clearance)
    add("Hepatic impairment", patient.hepatic_impairment)
    add("QTc", patient.qtc)
    add("Opioid tolerant", patient.opioid_tolerant)
    meds = patient.medications
    if meds is not None:  # not recorded: left out like any unrecorded value
        add("Other medicines", ", ".join(meds) or "none")
    ac = patient.anticoagulant
    if ac == "none":
        rows.append(("Anticoagulant", inline("none")))
    elif ac is not None:
        parts = [ac.drug]
        if ac.dose is not None:
            parts.append(quantity(ac.dose))
        if ac.every is not None:
            parts.append(f"every {duration(ac.every)}")
        if ac.last_dose_ago is not None:
            parts.append(f"(last dose {duration(ac.last_dose_ago)} ago)")
        rows.append(("Anticoagulant", inline(" ".join(parts))))
    return Fields(tuple(rows)) if rows else None


def case_document(case: Any, *, title: str = "") -> Document:
    """A case: the patient's recorded values and the regimen."""
    reg = regimen_document(case.regimen)
    fields = patient_fields(case.patient)
    patient: list[Block] = (
        [Section("Patient", (fields,), "patient")]
        if fields is not None
        else [Section("Patient", (Para(inline("No patient values recorded.")),), "patient")]
    )
    return Document(
        title or case.name or case.regimen.name or "Case",
        (*patient, *reg.blocks),
        subtitle=reg.subtitle,
        footer=INTENDED_USE,
        kind="case",
    )


def _ome_sections(regimen: Any) -> list[Block]:
    """The daily oral morphine equivalent of the regimen, when the conversion module can say."""
    from . import _objects

    return _objects.ome_blocks_for(regimen)


def _where(step: int | None, have_steps: bool) -> Inline:
    if step is None:
        return "regimen"
    return Ref(f"step {step + 1}", f"step-{step + 1}") if have_steps else f"step {step + 1}"


def report_document(report: Report, *, title: str = "", full_editions: bool = True) -> Document:
    """A validation report: status, steps, findings with their calculation, checks not run."""
    have_steps = report.regimen is not None and len(report.regimen) > 0
    c = report.counts
    head: list[tuple[str, Inlines]] = [
        ("Status", (Strong(report.status, STATUS_TONE.get(report.status, "")),)),
        ("Summary", inline(report.summary())),
    ]
    if report.editions:
        head.append(("Data tables", inline(compact_editions(report.editions))))
    blocks: list[Block] = [Fields(tuple(head))]
    # findings first: what needs acting on, then what could not be checked, then the steps
    blocks.append(Section("Findings", finding_blocks(report, have_steps=have_steps), "findings"))
    if report.not_checked:
        blocks.append(Section("Not checked", not_checked_blocks(report, have_steps), "not-checked"))
    if report.unread_orders:
        blocks.append(Section("Orders not read", unread_order_blocks(report), "not-read"))
    if have_steps:
        blocks.append(Section("Steps", steps_blocks(report.regimen.steps), "steps"))
    if report.not_applicable:
        groups: dict[str, dict[str, list[str]]] = {}
        for a in report.not_applicable:
            where = "regimen" if a.step is None else str(a.step + 1)
            groups.setdefault(a.reason, {}).setdefault(a.rule, []).append(where)
        na = "; ".join(
            reason
            + ": "
            + ", ".join(f"{rule} (step {', '.join(steps)})" for rule, steps in rules.items())
            for reason, rules in groups.items()
        )
        blocks.append(
            Section(
                "Not applicable",
                (Para(inline(f"No published limit exists (not counted as passed): {na}.")),),
                "not-applicable",
            )
        )
    if report.passed:
        passed = ", ".join(
            f"{rule} (step {step + 1})" if step is not None else f"{rule} (regimen)"
            for rule, step in report.passed
        )
        blocks.append(
            Section(
                "Passed",
                (Para(inline(f"{c['passed']} check(s) ran and found nothing to flag: {passed}.")),),
                "passed",
            )
        )
    if report.editions and full_editions:  # every edition in full, after the results
        rows = tuple((name, inline(edition)) for name, edition in sorted(report.editions.items()))
        blocks.append(Section("Data tables used", (Fields(rows),), "data-tables"))
    return Document(
        title or (report.regimen.name if report.regimen is not None else "") or "Report",
        tuple(blocks),
        subtitle="Validation report",
        footer=INTENDED_USE,
        kind="report",
    )


_DATE: Final = re.compile(r"\d{4}-\d{2}(?:-\d{2})?")


def compact_editions(editions: Mapping[str, str]) -> str:
    """The data tables as ``name@edition`` (the edition's date when it has one), alphabetised.

    Example
    -------
    >>> compact_editions({"drugs.toml": "2026-11", "ome-cdc-2022.toml": "CDC 2022; file 2026-11"})
    'drugs@2026-11, ome-cdc-2022@2026-11'
    """
    out = []
    for name, edition in sorted(editions.items()):
        dates = _DATE.findall(edition)
        out.append(f"{name.removesuffix('.toml')}@{dates[-1] if dates else edition}")
    return ", ".join(out)


def finding_blocks(report: Report, *, have_steps: bool) -> tuple[Block, ...]:
    """The findings, most severe first, each with its calculation, evidence level and sources."""
    items: list[Item] = []
    for f in sorted(report.findings, key=lambda f: SEVERITIES.index(f.severity)):
        content = inline(
            Strong(f.severity.upper(), f.severity),
            " ",
            Code(f.code),
            " (",
            _where(f.step, have_steps),
            "): ",
            f.message,
            cite(f.source),
        )
        sub: list[Inlines] = []
        if f.arithmetic:
            sub.append(inline("calculation: ", Code(f.arithmetic)))
        if f.source:
            sub.append(inline(f"evidence: {LEVEL_LABELS.get(f.level, f.level)} [{f.level}]"))
        items.append(Item(content, "", tuple(sub)))
    if not items:
        return (Para(inline("No findings from the checks that ran.")),)
    return (ItemList(tuple(items)),)


def not_checked_blocks(report: Report, have_steps: bool) -> tuple[Block, ...]:
    """The checks that could not run, each with the missing input: never shown as passed."""
    nc = tuple(
        Item(
            inline(
                Code(n.rule),
                " (",
                _where(n.step, have_steps),
                f"): missing {n.missing}",
                f": {n.reason}" if n.reason else "",
            )
        )
        for n in report.not_checked
    )
    return (
        Para(inline("An input was missing, so these checks did not run: NOT passed.")),
        ItemList(nc),
    )


def unread_order_blocks(report: Report) -> tuple[Block, ...]:
    """The orders that could not be read: none of their checks ran, and any total over the
    orders (the daily OME) leaves them out, so it is incomplete."""
    items = tuple(
        Item(
            inline(
                Code(u.reference),
                f" ({u.name}): {u.message}",
                "; " if u.may_be_opioid else "",
                Strong("may be an opioid", "warning") if u.may_be_opioid else "",
            )
        )
        for u in report.unread_orders
    )
    return (
        Para(
            inline(
                "These orders could not be read: none of their checks ran, and every total over "
                "the orders leaves them out (INCOMPLETE)."
            )
        ),
        ItemList(items),
    )


# ---- one-line documents: a finding, a check not run, a step (the notebook displays) -----------


def _line(content: Inlines, *more: Inlines) -> Document:
    return Document("", (Para(content), *(Para(m) for m in more)), kind="line")


def finding_document(finding: Any) -> Document:
    """A finding on one line: severity, code, where, message; then its calculation.

    Example
    -------
    >>> from mps_analgesia.render import render
    >>> import mps_analgesia as mps
    >>> f = mps.Finding("dose.max-daily", "error", "5000 mg/day is above the 4000 mg/day maximum",
    ...                 step=0)
    >>> render(f, "text")
    'ERROR dose.max-daily (step 1): 5000 mg/day is above the 4000 mg/day maximum\\n'
    """
    content = inline(
        Strong(finding.severity.upper(), finding.severity),
        " ",
        Code(finding.code),
        " (",
        _where(finding.step, False),
        "): ",
        finding.message,
    )
    more: list[Inlines] = []
    if finding.arithmetic:
        more.append(inline("calculation: ", Code(finding.arithmetic)))
    if finding.source:
        more.append(inline(f"evidence: {LEVEL_LABELS.get(finding.level, finding.level)}"))
    return _line(content, *more)


def not_checked_document(item: Any) -> Document:
    """A check that did not run, on one line: never shown as passed."""
    return _line(
        inline(
            Strong("NOT CHECKED", "unknown"),
            " ",
            Code(item.rule),
            " (",
            _where(item.step, False),
            f"): missing {item.missing}",
            f": {item.reason}" if item.reason else "",
        )
    )


def step_document(step: Any) -> Document:
    """A step on one line in dosage language (titration included), with its daily total.

    Example
    -------
    >>> from mps_analgesia.render import render
    >>> import mps_analgesia as mps
    >>> s = mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h",
    ...                               titration=[{"day": 7, "dose": "7.5 mg"}])
    >>> print(render(s, "text"), end="")
    methadone 5 mg by mouth every 8 hours; 7.5 mg from day 7; peak 22.5 mg/day from day 7
    15 mg/day, 22.5 mg/day from day 7
    """
    lines: list[Inlines] = []
    kind = getattr(step, "kind", "")
    if kind in ("opioid", "methadone_adjuvant", "adjuvant"):
        label = "at most " if step.prn else ""
        text = f"{label}{num(step.daily_dose_mg_on(step.start_day))} mg/day"
        for p in step.titration:
            text += f", {num(step.daily_dose_mg_on(p.day))} mg/day from day {p.day}"
        lines.append(inline(text))
    elif kind == "psoas_compartment_block":
        lines.append(inline(f"at most {_mg(step.max_24h_mg)} in any 24 hours"))
    return _line(inline(Strong(dosage(step))), *lines)
