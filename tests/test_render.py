"""Tests for mps_analgesia.render: golden files, HTML structure, dosage language, pictures, CLI.

Golden files live in ``tests/golden/``.  After an intended change of output, regenerate them with

    MPS_UPDATE_GOLDEN=1 python -m pytest -q tests/test_render.py

and read the diff before committing it.
"""

from __future__ import annotations

import argparse
import io
import os
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

import mps_analgesia as mps
from mps_analgesia import _catalog
from mps_analgesia.cli import _educator as commands
from mps_analgesia.errors import MpsAnalgesiaError, UnknownNameError
from mps_analgesia.render import (
    FORMATS as ALL_FORMATS,
)
from mps_analgesia.render import (
    document,
    render,
    render_rt_table,
    repr_html,
    repr_markdown,
    supported_types,
)
from mps_analgesia.render._doc import Cite, Document, Para, cited_sources
from mps_analgesia.render._dosage import dosage
from mps_analgesia.render.mermaid import Edge, Flow, Node, flow_text, to_mermaid, to_svg
from mps_analgesia.render.timeline import Checkpoint, timeline_svg, timeline_text
from strategies import patients, regimens

#: The text formats, each with golden files (PDF is tested in test_render_handout.py).
FORMATS = tuple(f for f in ALL_FORMATS if f != "pdf")

ROOT = Path(__file__).parent.parent
GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
EXT = {"markdown": "md", "html": "html", "text": "txt"}
UPDATE = os.environ.get("MPS_UPDATE_GOLDEN") == "1"


# ---- helpers ------------------------------------------------------------------------------------

_VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}
# SVG elements the pages write empty (<path ... />) are self-closing: html.parser reports them
# through handle_startendtag, so they need no special case.


class _Checker(HTMLParser):
    """Collects what the structural checks need: tag balance, ids, links, headings, tables."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.urls: list[str] = []  # every URL-like attribute value (href, src, url(...))
        self.id_refs: list[str] = []  # ids referenced by aria-labelledby and url(#...)
        self.headings: list[int] = []
        self.th_without_scope = 0
        self.html_lang = ""
        self.svgs_without_name = 0
        self.text: list[str] = []
        self._svg_depth = 0
        self._svg_has_title: list[bool] = []

    def _attrs(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            value = value or ""
            if name == "id":
                self.ids.append(value)
            if name in ("href", "src", "xlink:href", "action", "formaction", "poster", "data"):
                self.urls.append(value)
                if name == "href":
                    self.hrefs.append(value)
            if name == "aria-labelledby":
                self.id_refs.extend(value.split())
            for ref in re.findall(r"url\(([^)]*)\)", value):
                self.urls.append(ref.strip("'\""))
        if tag == "th" and "scope" not in dict(attrs):
            self.th_without_scope += 1
        if tag == "html":
            self.html_lang = dict(attrs).get("lang") or ""
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)
        if tag == "svg":
            named = dict(attrs).get("role") == "img" and bool(dict(attrs).get("aria-labelledby"))
            self._svg_has_title.append(named)
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()
        if tag == "svg" and self._svg_has_title and not self._svg_has_title.pop():
            self.svgs_without_name += 1

    def handle_data(self, data: str) -> None:
        if "style" not in self.stack:
            self.text.append(data)


def check_html(page: str, *, standalone: bool = True) -> _Checker:
    """Parse ``page`` and assert the structural rules every HTML output must keep."""
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert not checker.errors, checker.errors
    assert not checker.stack, f"unclosed tags: {checker.stack}"
    assert len(checker.ids) == len(set(checker.ids)), "duplicate ids"
    ids = set(checker.ids)
    for url in checker.urls:
        if url.startswith("#"):
            assert url[1:] in ids, f"broken internal anchor {url}"
        else:
            assert url.startswith("https://doi.org/"), f"external URL that is not a DOI: {url}"
    for ref in checker.id_refs:
        assert ref in ids, f"aria-labelledby names a missing id {ref}"
    css = " ".join(re.findall(r"<style>(.*?)</style>", page, re.DOTALL))
    assert "@import" not in css
    assert not re.search(r"url\((?!#)", css), "the style sheet loads something"
    assert "<script" not in page.lower()
    assert checker.th_without_scope == 0
    assert checker.svgs_without_name == 0
    if standalone:
        assert checker.html_lang == "en"
        assert checker.headings.count(1) == 1
        assert "@page" in page
        assert "size: A4" in page
        assert "@media print" in page
    for a, b in zip(checker.headings, checker.headings[1:], strict=False):
        assert b <= a + 1, f"heading level jumps from h{a} to h{b}"
    return checker


def reference_ids(obj: Any) -> tuple[str, ...]:
    """The source ids that the object's document cites (each must appear in the references)."""
    return cited_sources(document(obj))


def assert_references(obj: Any, fmt: str, out: str) -> None:
    """Every cited source is listed with its citation text (and DOI link when it has one)."""
    for sid in reference_ids(obj):
        rec = _catalog.sources()[sid]
        citation = rec.citation
        if fmt == "html":
            from html import escape

            citation = escape(citation, quote=True)
        if fmt == "markdown":
            from mps_analgesia.render.markdown import escape as md_escape

            citation = md_escape(citation)
        assert citation in out, sid
        if rec.doi:
            assert f"https://doi.org/{rec.doi}" in out, sid


def golden(name: str, fmt: str, text: str) -> None:
    """Compare ``text`` with ``tests/golden/<name>.<ext>`` (or write it when updating)."""
    path = GOLDEN / f"{name}.{EXT[fmt]}"
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"missing golden file {path}; run with MPS_UPDATE_GOLDEN=1 to create it")
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), (
        f"{path.name} differs; if the change is intended, regenerate with MPS_UPDATE_GOLDEN=1"
    )


def _example(name: str) -> mps.Case:
    return mps.load_case(ROOT / "examples" / f"{name}.toml")


def _report(name: str) -> mps.Report:
    case = _example(name)
    return mps.validate(case.regimen, case.patient)


# ---- golden files -------------------------------------------------------------------------------


class TestGolden:
    """The outputs of the shipped examples match the golden files, format by format."""

    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
    def test_report_of_each_example(self, path: Path, fmt: str) -> None:
        """The validation report of every example renders as its golden file."""
        report = _report(path.stem)
        golden(f"report-{path.stem}", fmt, render(report, fmt))

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_multimodal_case_and_regimen(self, fmt: str) -> None:
        """The multimodal case and its bare regimen render as their golden files."""
        case = _example("mps-multimodal")
        golden("case-mps-multimodal", fmt, render(case, fmt))
        golden("regimen-mps-multimodal", fmt, render(case.regimen, fmt))

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_radiotherapy_table(self, fmt: str) -> None:
        """The table of shipped radiotherapy schedules renders as its golden file."""
        golden("radiotherapy-schedules", fmt, render_rt_table(fmt))


# ---- protocols, plans and conversions --------------------------------------------------------

try:
    from mps_analgesia.protocols import list_protocols, load_protocol

    PROTOCOL_IDS = tuple(p.id for p in list_protocols())
except MpsAnalgesiaError:  # pragma: no cover - a broken shipped protocol fails its own tests
    PROTOCOL_IDS = ()

#: The reference patient plans are made for: an 80 kg opioid-tolerant adult on 200 mg/day
#: oral morphine with a PRN dose (one of the reference patients of the protocol issue), who
#: takes no other medicine and no anticoagulant (both recorded).
PLAN_PATIENT = mps.Patient(
    age=60, sex="male", weight="80 kg", height="178 cm", egfr="80 mL/min/1.73m2",
    qtc="430 ms", opioid_tolerant=True, hepatic_impairment="none", medications=[],
    anticoagulant="none",
)  # fmt: skip
PLAN_REGIMEN = mps.Regimen(
    [
        mps.OpioidStep(drug="morphine", formulation="modified-release", dose="100 mg",
                       every="12 h"),
        mps.OpioidStep(drug="morphine", dose="30 mg", every="2 h", prn=True,
                       max_doses_per_24h=6),
    ]
)  # fmt: skip


def _plan(protocol_id: str) -> Any:
    return load_protocol(protocol_id).instantiate(PLAN_PATIENT, PLAN_REGIMEN, {"side": "left"})


def _conversion() -> Any:
    from mps_analgesia.cli._text import convert_from_text

    return convert_from_text("60 mg/day oral morphine", to_drug="oxycodone")


class TestProtocolOutputs:
    """Each shipped protocol and its plan for the reference patient, in every format."""

    def test_protocols_are_shipped(self) -> None:
        """The six protocols of the protocol issue are found (the goldens cover each)."""
        assert len(PROTOCOL_IDS) >= 6

    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize("protocol_id", PROTOCOL_IDS)
    def test_protocol_golden(self, protocol_id: str, fmt: str) -> None:
        """The protocol summary renders as its golden file."""
        golden(f"protocol-{protocol_id}", fmt, render(load_protocol(protocol_id), fmt))

    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize("protocol_id", PROTOCOL_IDS)
    def test_plan_golden(self, protocol_id: str, fmt: str) -> None:
        """The plan for the reference patient renders as its golden file."""
        golden(f"plan-{protocol_id}", fmt, render(_plan(protocol_id), fmt))

    @pytest.mark.parametrize("protocol_id", PROTOCOL_IDS)
    def test_protocol_page_is_valid_and_cites_every_source(self, protocol_id: str) -> None:
        """The page passes the HTML checks and lists every source id the protocol cites."""
        protocol = load_protocol(protocol_id)
        page = render(protocol, "html")
        check_html(page)
        assert set(protocol.source_ids) <= set(reference_ids(protocol))
        assert_references(protocol, "html", page)
        assert_references(protocol, "markdown", render(protocol, "markdown"))

    @pytest.mark.parametrize("protocol_id", PROTOCOL_IDS)
    def test_protocol_flow_has_every_step_template(self, protocol_id: str) -> None:
        """The Mermaid flow has a node per step template and a subgraph per phase."""
        from mps_analgesia.render._objects import protocol_flow

        protocol = load_protocol(protocol_id)
        src = to_mermaid(protocol_flow(protocol))
        for tmpl in protocol.steps:
            assert re.search(rf"n_step_{re.escape(tmpl.id.replace('-', '_'))}\[", src), tmpl.id
        for phase in protocol.phases:
            assert f'["{phase.title}"]' in src
        md = render(protocol, "markdown")
        assert "```mermaid\nflowchart TD" in md

    def test_eligibility_node_counts_checks_and_contraindications_apart(self) -> None:
        """The decision node says how many eligibility checks must be met and how many
        contraindications must be absent, never adding the two up as "checks"."""
        from mps_analgesia.render._objects import protocol_flow

        takase = to_mermaid(protocol_flow(load_protocol("takase-2015-methadone-adjuvant")))
        assert '{"2 eligibility checks met and 2 contraindications absent?"}' in takase
        agar = to_mermaid(protocol_flow(load_protocol("agar-2004-mechanism-directed")))
        assert '{"1 eligibility check met?"}' in agar

    @pytest.mark.parametrize("protocol_id", PROTOCOL_IDS)
    def test_plan_page_is_valid_and_cites_every_decision(self, protocol_id: str) -> None:
        """The plan page is valid; each decision's sources and the steps are present."""
        plan = _plan(protocol_id)
        page = render(plan, "html")
        check_html(page)
        cited = set(reference_ids(plan))
        for d in plan.decisions:
            assert set(d.sources) <= cited, d
        for m in plan.monitoring:
            assert set(m.sources) <= cited, m
        assert_references(plan, "html", page)
        for i in range(len(plan.regimen)):
            assert f'id="step-{i + 1}"' in page

    def test_plan_timeline_marks_ecg_checkpoints(self) -> None:
        """The methadone plan's timeline marks its dated ECG checks."""
        plan = _plan("takase-2015-methadone-adjuvant")
        days = sorted({m.day for m in plan.monitoring if m.what == "ecg" and m.day is not None})
        assert days
        page = render(plan, "html")
        for day in days:
            assert f"<title>day {day}: ECG</title>" in page

    def test_radiotherapy_protocol_has_the_schedule_table(self) -> None:
        """The ASTRO protocol's summary includes the BED/EQD2 table."""
        text = render(load_protocol("astro-2017-palliative-radiotherapy"), "text")
        assert "BED (α/β 10)" in text
        assert "30 Gy/10" in text


#: The features of the seed case as the assessment tests use them (left psoas on imaging).
SEED_FEATURES = {
    "psoas_involvement": True,
    "involvement_evidence": "imaging",
    "side": "left",
    "painful_hip_flexion": True,
    "neuropathic_pain": True,
    "nociceptive_pain": True,
    "osseous_lumbar_metastasis": False,
    "inflammatory_markers_raised": False,
}


class TestAssessmentOutputs:
    """An MPS assessment renders each definition, its criteria and the differential."""

    def _assessment(self) -> Any:
        from mps_analgesia.assess import assess_mps

        return assess_mps(SEED_FEATURES)

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_assessment_golden(self, fmt: str) -> None:
        """The seed features' assessment renders as its golden file."""
        golden("assessment-seed-case", fmt, render(self._assessment(), fmt))

    def test_every_definition_and_criterion_is_shown(self) -> None:
        """Each definition's outcome and each criterion's status appear; the page is valid."""
        a = self._assessment()
        text = render(a, "text")
        for d in a.definitions:
            assert d.title.upper() in text
            assert f"Outcome: {d.status}" in text
            for c in d.criteria:
                assert c.text[:40] in " ".join(text.split())
        assert a.note in " ".join(text.split())
        page = render(a, "html")
        check_html(page)
        assert_references(a, "html", page)


class TestConversionOutputs:
    """Conversions and OME results render with their receipt and sources."""

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_conversion_golden(self, fmt: str) -> None:
        """'60 mg/day oral morphine' to oxycodone renders as its golden file."""
        golden("conversion-morphine-to-oxycodone", fmt, render(_conversion(), fmt))

    def test_conversion_shows_every_receipt_line(self) -> None:
        """Every receipt line appears verbatim; the page is valid."""
        conv = _conversion()
        text = render(conv, "text")
        for line in conv.receipt:
            assert line in text
        check_html(render(conv, "html"))

    def test_ome_result_shows_table_policy_and_receipt(self) -> None:
        """An OME result shows its total, table, PRN policy and receipt."""
        from mps_analgesia.conversion import daily_ome

        result = daily_ome(_example("mps-multimodal").regimen)
        md = render(result, "markdown")
        assert result.range.text in md
        assert "`regular_only`" in md
        for line in result.receipt:
            assert line in md
        check_html(render(result, "html"))

    def test_regimen_timeline_has_total_ome_panel(self) -> None:
        """A regimen whose steps all convert shows the total OME over days."""
        reg = _example("methadone-adjuvant").regimen
        lines = timeline_text(reg)
        assert any("total OME (cdc-2022)" in ln for ln in lines)

    def test_unconvertible_text_is_an_error_not_a_number(self) -> None:
        """A dose that is not a daily dose, or an unknown drug, raises a library error."""
        from mps_analgesia.cli._text import convert_from_text

        with pytest.raises(MpsAnalgesiaError, match="not a daily dose"):
            convert_from_text("60 mg oral morphine", to_drug="oxycodone")
        with pytest.raises(MpsAnalgesiaError, match="morphin"):
            convert_from_text("60 mg/day oral morphin", to_drug="oxycodone")


# ---- HTML structure -----------------------------------------------------------------------------


class TestHtml:
    """Every HTML page is well formed, self-contained, printable and accessible."""

    @pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
    def test_report_pages_are_valid(self, path: Path) -> None:
        """Each example's report page passes the structural checks and lists its references."""
        report = _report(path.stem)
        page = render(report, "html")
        check_html(page)
        assert_references(report, "html", page)

    def test_case_and_regimen_pages_are_valid(self) -> None:
        """The case and regimen pages pass the structural checks."""
        case = _example("mps-multimodal")
        for obj in (case, case.regimen):
            page = render(obj, "html")
            check_html(page)
            assert_references(obj, "html", page)

    def test_radiotherapy_table_page_is_valid(self) -> None:
        """The radiotherapy table page is valid and cites ASTRO 2017 and the α/β source."""
        page = render_rt_table("html")
        check_html(page)
        assert "Lutz S, Balboni T" in page
        assert "Hall EJ, Giaccia AJ" in page

    def test_checker_catches_an_unbalanced_page(self) -> None:
        """The structural checker rejects a page with a tag closed out of order."""
        with pytest.raises(AssertionError):
            check_html("<html lang='en'><body><p><b>x</p></b></body></html>", standalone=False)

    def test_checker_catches_a_broken_anchor(self) -> None:
        """The structural checker rejects a link to an id that does not exist."""
        with pytest.raises(AssertionError, match="broken internal anchor"):
            check_html('<p><a href="#nowhere">x</a></p>', standalone=False)

    def test_checker_catches_an_external_url(self) -> None:
        """The structural checker rejects any external URL that is not a DOI link."""
        with pytest.raises(AssertionError, match="not a DOI"):
            check_html('<p><img src="https://example.org/x.png"></p>', standalone=False)

    def test_fragment_for_jupyter_is_valid(self) -> None:
        """repr_html gives a fragment (no <html>) with a scoped style that passes the checks."""
        fragment = repr_html(_report("mps-multimodal"))
        assert fragment.startswith('<div class="mps-doc" lang="en">')
        assert "<html" not in fragment
        check_html(fragment, standalone=False)

    def test_object_text_is_escaped(self) -> None:
        """Markup in object text (a step note) is escaped, never written as HTML."""
        step = mps.OpioidStep(
            drug="morphine", dose="10 mg", every="4 h", note='<script>alert("x")</script> & co'
        )
        page = render(mps.Regimen([step]), "html")
        check_html(page)
        assert "&lt;script&gt;" in page
        assert "<script>" not in page

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(regimen=regimens(max_size=5), patient=patients())
    def test_any_regimen_report_renders_valid_html(
        self, regimen: mps.Regimen, patient: mps.Patient
    ) -> None:
        """Any valid regimen's report renders in every format; its HTML passes the checks."""
        report = mps.validate(regimen, patient)
        for fmt in FORMATS:
            out = render(report, fmt)
            assert out.strip()
        page = render(report, "html")
        check_html(page)
        assert_references(report, "html", page)
        for i in range(len(regimen)):
            assert f'id="step-{i + 1}"' in page


# ---- content ------------------------------------------------------------------------------------


class TestContent:
    """What the outputs say, and that they say nothing the object does not hold."""

    def test_dosage_language_regular_and_prn(self) -> None:
        """Regular and PRN steps read as plain dosage language."""
        regular = mps.OpioidStep(drug="oxycodone", dose="10 mg", every="12 h")
        prn = mps.OpioidStep(drug="oxycodone", dose="5 mg", every="2 h", prn=True,
                             max_doses_per_24h=6)  # fmt: skip
        assert dosage(regular) == "oxycodone 10 mg by mouth every 12 hours"
        assert dosage(prn) == (
            "oxycodone 5 mg by mouth every 2 hours when needed, at most 6 doses in 24 hours"
        )

    def test_dosage_language_other_schedules(self) -> None:
        """Times a day, once, a patch, a start day and a titration are written in words."""
        assert dosage(
            mps.AdjuvantStep(drug="gabapentin", role="neuropathic", dose="300 mg", times_per_day=3)
        ) == ("gabapentin 300 mg by mouth 3 times a day")
        assert dosage(
            mps.AdjuvantStep(
                drug="dexamethasone",
                role="anti-inflammatory",
                dose="8 mg",
                times_per_day=1,
                start_day=2,
            )
        ) == ("dexamethasone 8 mg by mouth once a day, from day 2")
        assert dosage(
            mps.OpioidStep(
                drug="fentanyl",
                route="transdermal",
                rate="25 mcg/h",
                titration=[{"day": 3, "rate": "37 mcg/h"}],
            )
        ) == ("fentanyl 25 mcg/h by transdermal patch; 37 mcg/h from day 3")
        assert dosage(
            mps.OpioidStep(drug="morphine", route="subcutaneous", dose="2.5 mg", once=True)
        ) == ("morphine 2.5 mg subcutaneously once")

    def test_dosage_language_block_and_radiotherapy(self) -> None:
        """A block and a radiotherapy course are written with their own fields only."""
        block = mps.PsoasCompartmentBlockStep(
            drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL", side="right"
        )
        assert dosage(block) == (
            "right psoas compartment block (single-shot): ropivacaine 0.2 % (2 mg/mL), 20 mL bolus"
        )
        rt = mps.RadiotherapyStep(total_dose="8 Gy", fractions=1, site="L3 vertebra",
                                  prior_dose="20 Gy", prior_fractions=5)  # fmt: skip
        assert dosage(rt) == (
            "radiotherapy to L3 vertebra: 8 Gy in 1 fraction "
            "(earlier dose to the same site: 20 Gy in 5 fractions)"
        )

    def test_report_shows_finding_receipt_and_reference(self) -> None:
        """A finding is shown with its code, step link, message, arithmetic and source."""
        step = mps.AdjuvantStep(drug="acetaminophen", role="nociceptive", dose="1250 mg",
                                every="6 h")  # fmt: skip
        report = mps.validate(mps.Regimen([step]), mps.Patient())
        finding = report.errors[0]
        md = render(report, "markdown")
        assert "`dose.max-daily`" in md
        assert "[step 1](#step-1)" in md
        assert finding.arithmetic in md
        text = render(report, "text")
        assert "ERROR dose.max-daily (step 1)" in text
        for sid in finding.source:
            assert _catalog.sources()[sid].citation.split(".")[0] in text

    def test_not_checked_is_never_shown_as_passed(self) -> None:
        """Checks that could not run are listed under 'Not checked', with the missing input."""
        report = _report("mps-multimodal")
        assert report.not_checked
        text = render(report, "text")
        assert "NOT CHECKED" in text
        assert "NOT passed" in text
        for n in report.not_checked:
            assert f"{n.rule} (" in text

    def test_every_sentence_is_backed_by_the_object(self) -> None:
        """The text of a one-step regimen is its dosage line, its calculation and fixed labels."""
        reg = mps.Regimen([mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h")])
        text = render(reg, "text")
        body = text.split("STEPS", 1)[1].split("TIMELINE", 1)[0]
        lines = [ln.strip() for ln in body.splitlines() if ln.strip() and set(ln) != {"="}]
        assert lines == [
            "1. morphine 10 mg by mouth every 4 hours",
            "Calculation:",
            "step 1: 24 h ÷ 4 h = 6 doses/day",
            "step 1: daily dose: 10 mg × 6 doses/day = 60 mg/day",
        ]

    def test_references_are_numbered_in_order_of_first_citation(self) -> None:
        """References are numbered by first citation; repeated citations reuse the number."""
        doc = Document(
            "T",
            (
                Para(("a", Cite(("takase-2015",)))),
                Para(("b", Cite(("stevens-2010", "takase-2015")))),
            ),
        )
        md = render(doc, "markdown")
        assert "a \\[[1](#ref-1)\\]" in md
        assert "b \\[[2](#ref-2), [1](#ref-1)\\]" in md
        assert '1. <a id="ref-1"></a>Takase N' in md
        assert "https://doi.org/10.1089/jpm.2014.0387" in md

    def test_radiotherapy_table_values(self) -> None:
        """The table shows BED and EQD2 at α/β 10 and 3 Gy for each ASTRO schedule."""
        text = render_rt_table("text")
        assert re.search(r"8 Gy/1\s+8 Gy\s+14\.4 Gy\s+12 Gy\s+29\.33 Gy\s+17\.6 Gy", text)
        assert re.search(r"30 Gy/10\s+3 Gy\s+39 Gy\s+32\.5 Gy\s+60 Gy\s+36 Gy", text)

    def test_markdown_escapes_object_text(self) -> None:
        """Markdown special characters in object text are escaped."""
        step = mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h", note="*not* | [x]")
        md = render(mps.Regimen([step]), "markdown")
        assert "note: \\*not\\* \\| \\[x\\]" in md

    def test_text_never_splits_a_number_from_its_unit(self) -> None:
        """Wrapped plain text keeps '6 mL/h' and the like on one line."""
        text = render(_example("mps-multimodal"), "text")
        assert "then 6 mL/h by catheter" in " ".join(text.split())
        assert not re.search(r"\d\n\s+(?:mg|mL|Gy|h|hours?|%|mcg)\b", text)

    def test_markdown_has_mermaid_free_regimen_and_jupyter_hook(self) -> None:
        """repr_markdown equals render(..., 'markdown')."""
        reg = _example("mps-multimodal").regimen
        assert repr_markdown(reg) == render(reg, "markdown")


class TestErrors:
    """Bad calls raise library errors that say what to do."""

    def test_unknown_format(self) -> None:
        """An unknown format names the formats that exist."""
        with pytest.raises(UnknownNameError, match="use one of markdown, html, text"):
            render(mps.Regimen([]), "docx")

    def test_package_is_callable_as_render(self) -> None:
        """`mps_analgesia.render(obj, fmt)` works although `render` is also the package name."""
        import mps_analgesia.render as package

        reg = mps.Regimen([])
        assert package(reg, "text") == render(reg, "text")
        assert mps.render(reg, "html") == render(reg, "html")  # type: ignore[operator]

    def test_format_aliases(self) -> None:
        """'md', 'htm' and 'txt' are accepted for the three formats."""
        reg = mps.Regimen([])
        assert render(reg, "md") == render(reg, "markdown")
        assert render(reg, "TXT") == render(reg, "text")

    def test_unsupported_object(self) -> None:
        """An object that cannot be rendered gives an error listing what can."""
        with pytest.raises(MpsAnalgesiaError, match="cannot render a int"):
            render(42)
        assert {"Report", "Regimen", "Case"} <= set(supported_types())


# ---- pictures -----------------------------------------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"


class TestTimeline:
    """The SVG timeline of a plan."""

    def _regimen(self) -> mps.Regimen:
        return _example("mps-multimodal").regimen

    def test_text_lists_each_change_day(self) -> None:
        """The text alternative lists doses from day 0, each titration day and each event."""
        lines = timeline_text(self._regimen(), checkpoints=[Checkpoint(14, "ECG")], ome=False)
        days = [int(re.match(r"day (\d+):", ln).group(1)) for ln in lines]  # type: ignore[union-attr]
        assert days == [0, 1, 2, 7, 14]
        assert "methadone (step 3) 22.5 mg/day" in lines[3]
        assert lines[4].endswith("ECG")

    def test_svg_marks_titration_and_checkpoints(self) -> None:
        """The SVG has a panel per drug, a dot per titration step and a line per checkpoint."""
        svg = timeline_svg(
            self._regimen(), checkpoints=[Checkpoint(0, "ECG"), Checkpoint(14, "ECG")], ome=False
        )
        assert svg.count('<circle class="change"') == 2
        assert svg.count('<line class="checkpoint"') == 2
        for drug in ("oxycodone", "methadone", "pregabalin", "acetaminophen"):
            assert f">{drug} (" in svg
        check_html(svg, standalone=False)

    def _svg(self, obj: Any, **kwargs: Any) -> Any:
        """The standalone SVG parsed as XML (the tests read its values back)."""
        import xml.etree.ElementTree as ET

        text = timeline_svg(obj, standalone=True, **kwargs)
        check_html(text, standalone=False)
        return ET.fromstring(text)

    @staticmethod
    def _panel(root: Any, label: str) -> Any:
        return next(g for g in root.iter(SVG + "g") if g.get("data-label") == label)

    def test_value_axes_are_labelled_with_ticks(self) -> None:
        """Each panel names its unit (mg/day, MME/day) and carries round tick values."""
        root = self._svg(self._regimen())
        methadone = self._panel(root, "methadone (step 3)")
        assert methadone.get("data-unit") == "mg/day"
        ticks = [t.text for t in methadone.iter(SVG + "text") if t.get("class") == "tick-y"]
        assert ticks == ["0", "10", "20", "30"]
        units = [t.text for t in methadone.iter(SVG + "text") if t.get("class") == "axis-label"]
        assert units == ["mg/day"]
        ome = self._panel(root, "total OME (cdc-2022)")
        assert [t.text for t in ome.iter(SVG + "text") if t.get("class") == "axis-label"] == [
            "MME/day"
        ]
        ome_ticks = [t.text for t in ome.iter(SVG + "text") if t.get("class") == "tick-y"]
        assert ome_ticks == ["0", "100", "200", "300", "400"]

    def test_day_axis_in_plan_days_or_dates(self) -> None:
        """The day axis says plan days, or dates from the start date, with a tick per step."""
        root = self._svg(self._regimen())
        axis = next(g for g in root.iter(SVG + "g") if g.get("class") == "axis-x")
        texts = {t.get("class"): t for t in axis.iter(SVG + "text")}
        assert texts["axis-label"].text == "plan day (day 0 = first day of the plan)"
        ticks = [t.text for t in axis.iter(SVG + "text") if t.get("class") == "tick-x"]
        assert ticks[:4] == ["0", "2", "4", "6"]
        dated = mps.Regimen(self._regimen().steps, start_date="2026-12-07")
        axis = next(g for g in self._svg(dated).iter(SVG + "g") if g.get("class") == "axis-x")
        ticks = [t.text for t in axis.iter(SVG + "text") if t.get("class") == "tick-x"]
        assert ticks[:3] == ["7 Dec", "9 Dec", "11 Dec"]
        label = [t.text for t in axis.iter(SVG + "text") if t.get("class") == "axis-label"]
        assert label == ["date (plan day 0 = 2026-12-07)"]

    def test_lines_hold_the_day_plan_values(self) -> None:
        """Each line's values are the day plan's daily totals and OME, day by day."""
        reg = self._regimen()
        root = self._svg(reg)
        days = [
            int(t.get("data-day")) for t in root.iter(SVG + "text") if t.get("class") == "tick-x"
        ]
        plan = mps.schedule(reg, days=days[-1] + 2)
        methadone = self._panel(root, "methadone (step 3)")
        (line,) = [p for p in methadone.iter(SVG + "path") if p.get("class") == "line-regular"]
        values = [float(v) for v in line.get("data-values").split()]
        assert values[0] == 15.0
        assert values[7] == 22.5
        assert values[14] == 30.0
        assert values == [d.regular_totals_mg["methadone"] for d in plan][: len(values)]
        ome = self._panel(root, "total OME (cdc-2022)")
        lines = {p.get("class"): p.get("data-values") for p in ome.iter(SVG + "path")}
        assert lines["line-regular"].split()[:1] == ["160.5"]
        assert lines["line-prn"].split()[:1] == ["250.5"]
        dots = [(c.get("data-day"), c.get("data-value")) for c in methadone.iter(SVG + "circle")]
        assert dots == [("7", "22.5"), ("14", "30")]

    def test_block_and_fractions_are_bars_over_their_days(self) -> None:
        """The catheter block is a bar on days 1-3 with its daily mg, RT one on days 2-6."""
        root = self._svg(self._regimen())
        groups = {g.get("class"): g for g in root.iter(SVG + "g")}
        block = list(groups["bars block"].iter(SVG + "rect"))
        assert [r.get("data-day") for r in block] == ["1", "2", "3"]
        assert block[0].find(SVG + "title").text == "day 1: ropivacaine ≤ 328 mg"
        rt = list(groups["bars radiotherapy"].iter(SVG + "rect"))
        assert [r.get("data-day") for r in rt] == ["2", "3", "4", "5", "6"]
        assert rt[0].find(SVG + "title").text == "day 2: fraction 1 of 5, 4 Gy"
        dated = mps.Regimen(self._regimen().steps, start_date="2026-12-08")  # a Tuesday
        groups = {g.get("class"): g for g in self._svg(dated).iter(SVG + "g")}
        rt_days = [r.get("data-day") for r in groups["bars radiotherapy"].iter(SVG + "rect")]
        assert rt_days == ["2", "3", "6", "7", "8"]  # Thursday, Friday, then Monday on

    def test_legend_names_every_mark(self) -> None:
        """The legend names the lines, the dots, both bars and the checkpoints."""
        root = self._svg(self._regimen(), checkpoints=[Checkpoint(14, "ECG")])
        legend = next(g for g in root.iter(SVG + "g") if g.get("class") == "legend")
        words = [t.text for t in legend.iter(SVG + "text")]
        assert words == [
            "regular daily dose",
            "with PRN at its maximum",
            "new daily total (titration, taper)",
            "psoas block: bolus and catheter days",
            "radiotherapy fraction",
            "checkpoint",
        ]

    def test_taper_is_drawn_as_daily_totals(self) -> None:
        """A taper's reductions are the drug's daily totals, each reduction day a dot."""
        reg = mps.Regimen(
            [
                mps.OpioidStep(drug="oxycodone", dose="30 mg", every="12 h"),
                mps.TaperStep(
                    drug="oxycodone",
                    reduce_by_percent=25,
                    every="7 day",
                    floor="20 mg/day",
                    start_day=7,
                ),
            ]
        )
        root = self._svg(reg, ome=False)
        panel = self._panel(root, "oxycodone (step 1)")
        dots = [(c.get("data-day"), c.get("data-value")) for c in panel.iter(SVG + "circle")]
        assert dots == [("7", "45"), ("14", "33.75"), ("21", "25.31"), ("28", "20")]

    def test_a_day_plan_is_drawn_as_given(self) -> None:
        """Given a DayPlan, the picture has exactly its days (the renderer schedules nothing)."""
        plan = mps.schedule(self._regimen(), days=10)
        root = self._svg(plan, ome=False)
        methadone = self._panel(root, "methadone (step 3)")
        (line,) = [p for p in methadone.iter(SVG + "path") if p.get("class") == "line-regular"]
        assert len(line.get("data-values").split()) == 10
        ticks = [t.get("data-day") for t in root.iter(SVG + "text") if t.get("class") == "tick-x"]
        assert ticks[-1] == "9"

    def test_standalone_svg_has_namespace(self) -> None:
        """A standalone SVG carries the SVG namespace so it opens as a file."""
        svg = timeline_svg(self._regimen(), standalone=True, ome=False)
        assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')

    def test_output_is_deterministic(self) -> None:
        """Drawing the same plan twice gives the same SVG (golden files depend on it)."""
        assert timeline_svg(self._regimen()) == timeline_svg(self._regimen())


class TestMermaid:
    """The protocol flow graph as Mermaid, SVG and text."""

    FLOW = Flow(
        (
            Node("start", "Current opioid", "terminal", "p1"),
            Node("qtc", "QTc < 450 ms?", "decision", "p1"),
            Node("add", 'Add methadone 5 mg "every 8 h"', "step", "p2"),
            Node("stop", "Do not start", "terminal", "p2"),
        ),
        (Edge("start", "qtc"), Edge("qtc", "add", "yes"), Edge("qtc", "stop", "no")),
        (("p1", "Assessment"), ("p2", "Start")),
    )

    def test_mermaid_source(self) -> None:
        """Phases are subgraphs, decisions diamonds, labels quoted and escaped."""
        src = to_mermaid(self.FLOW)
        assert src.startswith("flowchart TD")
        assert 'subgraph p_p1["Assessment"]' in src
        assert 'n_qtc{"QTc #lt; 450 ms?"}' in src
        assert 'n_add["Add methadone 5 mg #quot;every 8 h#quot;"]' in src
        assert 'n_qtc -->|"no"| n_stop' in src

    def test_svg_is_valid_and_self_contained(self) -> None:
        """The SVG drawing passes the HTML checks and draws every node and edge label."""
        svg = to_svg(self.FLOW)
        check_html(svg, standalone=False)
        assert svg.count("<polygon") == 1
        assert ">yes<" in svg
        assert ">no<" in svg

    def test_text_alternative(self) -> None:
        """The text form numbers the nodes and follows the arrows."""
        assert flow_text(self.FLOW) == (
            "Assessment:",
            "  1. Current opioid → 2",
            "  2. QTc < 450 ms? → 3 (yes), 4 (no)",
            "Start:",
            '  3. Add methadone 5 mg "every 8 h"',
            "  4. Do not start",
        )


# ---- command line -------------------------------------------------------------------------------


def _run(argv: list[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="mps-analgesia")
    sub = parser.add_subparsers(dest="command")
    commands.add_subcommands(sub)
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    handler: Callable[[argparse.Namespace, Any, Any], int] = args.handler
    code = handler(args, out, err)
    return code, out.getvalue(), err.getvalue()


class TestCommands:
    """The subcommand handlers, called directly."""

    def test_summarize_case_file_to_html_file(self, tmp_path: Path) -> None:
        """`summarize CASE --format html -o FILE` writes a valid page of the case's report."""
        target = tmp_path / "report.html"
        code, _out, err = _run(
            [
                "summarize",
                str(ROOT / "examples/mps-multimodal.toml"),
                "--format",
                "html",
                "-o",
                str(target),
            ]
        )
        assert code == 0, err
        page = target.read_text(encoding="utf-8")
        check_html(page)
        assert "left psoas compartment block" in page
        assert str(target) in err

    def test_summarize_to_stdout_as_text(self) -> None:
        """Without -o the summary goes to standard output."""
        code, out, _ = _run(["summarize", str(ROOT / "examples/psoas-block.toml")])
        assert code == 0
        assert "psoas compartment block" in out

    def test_summarize_unknown_input(self, tmp_path: Path) -> None:
        """An unknown id or missing file exits 2 with a message, not a traceback."""
        code, out, err = _run(["summarize", "no-such-protocol-or-file"])
        assert code == 2
        assert "no-such-protocol-or-file" in err
        assert not out

    def test_protocols_lists_every_shipped_protocol(self) -> None:
        """`protocols` prints a table with each protocol id."""
        code, out, _ = _run(["protocols"])
        assert code == 0
        for pid in PROTOCOL_IDS:
            assert pid in out
        assert out.count("Protocols") == 1  # the title once, no caption repeating it

    def test_summarize_protocol_by_id(self, tmp_path: Path) -> None:
        """`summarize ID --format html -o FILE` writes the protocol page."""
        target = tmp_path / "takase.html"
        code, _, _ = _run(
            ["summarize", "takase-2015-methadone-adjuvant", "--format", "html", "-o", str(target)]
        )
        assert code == 0
        page = target.read_text(encoding="utf-8")
        check_html(page)
        assert "Adjuvant methadone" in page

    def test_summarize_protocol_file(self) -> None:
        """A protocol file (not an id) is summarised as a protocol, not read as a case."""
        code, out, err = _run(
            [
                "summarize",
                str(
                    ROOT
                    / "src/mps_analgesia/data/protocols/astro-2017-palliative-radiotherapy.toml"
                ),
            ]
        )
        assert code == 0, err
        assert "PHASE 1" in out

    def test_plan_for_a_case_file(self) -> None:
        """`plan ID --patient CASE` shows the plan; exit 0 when it has no error finding."""
        code, out, err = _run(
            [
                "plan",
                "takase-2015-methadone-adjuvant",
                "--patient",
                str(ROOT / "examples/opioid-breakthrough.toml"),
            ]
        )
        assert code in (0, 1), err
        assert "DECISIONS" in out
        assert "CHECKS OF THE PLAN" in out

    def test_plan_with_a_bad_choice(self) -> None:
        """A malformed --choice exits 2 with a message."""
        code, _, err = _run(
            [
                "plan",
                "psoas-compartment-block",
                "--patient",
                str(ROOT / "examples/psoas-block.toml"),
                "--choice",
                "left",
            ]
        )
        assert code == 2
        assert "KEY=VALUE" in err

    def test_convert(self) -> None:
        """`convert "60 mg/day oral morphine" --to oxycodone` prints the conversion."""
        code, out, _ = _run(["convert", "60 mg/day oral morphine", "--to", "oxycodone"])
        assert code == 0
        assert "Reduced range" in out
        assert "step 1 morphine oral: 60 mg/day × 1 = 60 MME/day" in out

    def test_convert_refuses_garbage(self) -> None:
        """An unreadable dose exits 2 and prints no number."""
        code, out, err = _run(["convert", "sixty morphine", "--to", "oxycodone"])
        assert code == 2
        assert not out
        assert err

    def test_assess_features_file(self, tmp_path: Path) -> None:
        """`assess FILE` reads a [features] table and prints each definition's outcome."""
        import json

        path = tmp_path / "features.json"
        path.write_text(json.dumps({"features": SEED_FEATURES}), encoding="utf-8")
        code, out, err = _run(["assess", str(path)])
        assert code == 0, err
        assert "AGAR, BROADBENT & CHYE 2004 (TRIAD)" in out

    def test_assess_unknown_feature(self, tmp_path: Path) -> None:
        """An unknown feature name exits 2 naming the file and suggesting the right name."""
        path = tmp_path / "features.toml"
        path.write_text("psoas_involvment = true\n", encoding="utf-8")
        code, out, err = _run(["assess", str(path)])
        assert code == 2
        assert not out
        assert str(path) in err
        assert "psoas_involvement" in err

    def test_summarize_radiotherapy_table(self) -> None:
        """`summarize radiotherapy-schedules` prints the schedule table."""
        code, out, _ = _run(["summarize", "radiotherapy-schedules", "--format", "markdown"])
        assert code == 0
        assert "| 20 Gy/5 |" in out


# ---- the documentation page -------------------------------------------------------------------

_FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```[ ]*$", re.MULTILINE | re.DOTALL)


class TestDocs:
    """docs/educators-outputs.md: its examples run and print what the page shows."""

    def test_python_blocks_run_and_outputs_match(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Each python block runs in order; a text block marked '<!-- output -->' is its output."""
        import contextlib

        page = ROOT / "docs" / "educators-outputs.md"
        text = page.read_text(encoding="utf-8")
        monkeypatch.chdir(ROOT)
        namespace: dict[str, Any] = {"__name__": "__docs__"}
        printed: str | None = None
        compared = 0
        end = 0
        for n, m in enumerate(_FENCE.finditer(text), start=1):
            if m.group("lang") == "python":
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    exec(compile(m.group("body"), f"{page.name} block {n}", "exec"), namespace)
                printed = out.getvalue()
            elif text[end : m.start()].rstrip().endswith("<!-- output -->"):
                assert m.group("body") == printed, f"{page.name} block {n} is not the output"
                compared += 1
            end = m.end()
        assert compared >= 3
