"""The handout layout and PDF: plain words, no ids, no rule syntax, at most two A4 pages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import mps_analgesia as mps
from mps_analgesia.errors import UnknownNameError
from mps_analgesia.protocols import CHECK_FIELDS, list_protocols, load_protocol
from mps_analgesia.render import LAYOUTS, render
from mps_analgesia.render._handout import handout_date
from mps_analgesia.render._words import condition
from mps_analgesia.report import INTENDED_USE

PROTOCOLS = tuple(list_protocols())
PROTOCOL_IDS = tuple(p.id for p in PROTOCOLS)
#: Operators of the check language that must never reach a handout.
RULE_SYNTAX = re.compile(r"(>=|<=|[^=]==[^=]|!=|\bcontains_any\b|\bcontains_none\b|\bnot_in\b)")

PATIENT = mps.Patient(
    age=60, sex="male", weight="80 kg", height="178 cm", egfr="80 mL/min/1.73m2",
    qtc="430 ms", opioid_tolerant=True, hepatic_impairment="none", medications=[],
    anticoagulant="none",
)  # fmt: skip
REGIMEN = mps.Regimen(
    [
        mps.OpioidStep(drug="morphine", formulation="modified-release", dose="100 mg",
                       every="12 h"),
        mps.OpioidStep(drug="morphine", dose="30 mg", every="2 h", prn=True,
                       max_doses_per_24h=6),
    ]
)  # fmt: skip


def _authored(obj: Any) -> str:
    """Every piece of text a protocol's author wrote (titles, purposes, notes, check texts)."""
    import attrs

    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            out.append(value)
        elif attrs.has(type(value)):
            for a in attrs.fields(type(value)):
                if a.name not in (
                    "id",
                    "kind",
                    "field",
                    "op",
                    "phase",
                    "choice",
                    "after",
                    "together_with",
                    "to",
                    "path",
                    "source",
                    "sources",
                    "target",
                ):
                    walk(getattr(value, a.name))
        elif isinstance(value, tuple | list):
            for v in value:
                walk(v)
        elif isinstance(value, dict) or hasattr(value, "items"):
            for v in value.values():
                walk(v)

    walk(obj)
    return " ".join(out)


def _ids(protocol: Any) -> set[str]:
    """The ids of a protocol (its own, steps, checks, kinds) that its author's words never use."""
    ids = {protocol.id, *(t.id for t in protocol.steps), *(t.kind for t in protocol.steps)}
    for group in (protocol.eligibility, protocol.contraindications, protocol.cautions):
        ids.update(c.id for c in group if c.id)
    authored = _authored(protocol)
    return {i for i in ids if ("-" in i or "_" in i) and i not in authored}


def _plan(protocol_id: str) -> Any:
    return load_protocol(protocol_id).instantiate(PATIENT, REGIMEN, {"side": "left"})


@pytest.fixture(autouse=True)
def _fixed_date(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # 2026-01-01


class TestLayouts:
    def test_layouts(self) -> None:
        """The summary stays the default; the handout is the second layout."""
        assert LAYOUTS == ("summary", "handout")
        p = load_protocol("takase-2015-methadone-adjuvant")
        assert render(p, "markdown") == render(p, "markdown", layout="summary")
        assert render(p, "markdown") != render(p, "markdown", layout="handout")

    def test_unknown_layout_suggests(self) -> None:
        """A mistyped layout is refused with the closest name."""
        with pytest.raises(UnknownNameError, match="handout"):
            render(load_protocol("takase-2015-methadone-adjuvant"), "text", layout="handuot")

    def test_no_handout_for_a_regimen(self) -> None:
        """Only a protocol or a plan has a handout: anything else is refused, never guessed."""
        with pytest.raises(UnknownNameError, match="no handout layout"):
            render(REGIMEN, "text", layout="handout")

    def test_date_from_source_date_epoch(self) -> None:
        """The date printed is SOURCE_DATE_EPOCH's, for reproducible outputs."""
        assert handout_date() == "2026-01-01"
        text = render(load_protocol(PROTOCOL_IDS[0]), "text", layout="handout")
        assert "printed 2026-01-01" in text


@pytest.mark.parametrize("protocol_id", PROTOCOL_IDS)
class TestProtocolHandout:
    def test_no_ids_and_no_rule_syntax(self, protocol_id: str) -> None:
        """No protocol, step, check or kind id and no operator of the check language."""
        protocol = load_protocol(protocol_id)
        for fmt in ("text", "markdown"):
            text = render(protocol, fmt, layout="handout")
            assert not RULE_SYNTAX.search(text), RULE_SYNTAX.search(text)
            for ident in _ids(protocol):
                assert ident not in text, f"{ident!r} in the {fmt} handout"
            for field in CHECK_FIELDS:
                if "_" in field or "." in field:
                    assert field not in text, f"check field {field!r} in the handout"

    def test_holds_the_parts_of_a_handout(self, protocol_id: str) -> None:
        """Indication, dosing table, flowchart, references, intended use, editions and date."""
        protocol = load_protocol(protocol_id)
        html = render(protocol, "html", layout="handout")
        assert protocol.indication.split(",")[0] in html
        assert "<caption>Dosing</caption>" in html
        assert "<svg" in html
        assert "<desc" in html
        assert 'id="references"' in html
        assert INTENDED_USE in html
        assert "drugs.toml" in html
        assert "printed 2026-01-01" in html

    def test_every_step_in_the_handout(self, protocol_id: str) -> None:
        """Each step template appears by its title (a dosing row or an instruction)."""
        protocol = load_protocol(protocol_id)
        text = render(protocol, "text", layout="handout")
        flat = " ".join(text.split())
        for tmpl in protocol.steps:
            assert " ".join(tmpl.title.split()) in flat


class TestBlockHandout:
    def test_anticoagulation_table(self) -> None:
        """The block's anticoagulation intervals are a table: drug, dose, the wait in words."""
        html = render(load_protocol("psoas-compartment-block"), "html", layout="handout")
        assert "<caption>Anticoagulants" in html
        row = re.search(r"<th scope=\"row\">apixaban</th><td>at most 2.5 mg per dose</td>"
                        r"<td><strong>36 hours</strong>", html)  # fmt: skip
        assert row is not None

    def test_tiers_table_from_data(self) -> None:
        """The methadone starting tiers are a table whose numbers come from the scheme data."""
        from mps_analgesia import _catalog, _format

        html = render(load_protocol("takase-2015-methadone-adjuvant"), "html", layout="handout")
        scheme = _catalog.switching_schemes()[0]["methapain-label"]
        for tier in scheme.tiers:
            assert f"{_format.number(tier.daily)} mg/day" in html


class TestConditionWords:
    @pytest.mark.parametrize("protocol_id", PROTOCOL_IDS)
    def test_every_check_has_words(self, protocol_id: str) -> None:
        """Every check and guard of the shipped protocols reads as a sentence without syntax."""
        protocol = load_protocol(protocol_id)
        checks = [*protocol.eligibility, *protocol.contraindications, *protocol.cautions]
        checks += [c for t in protocol.steps for c in (*t.when, *t.requires)]
        for c in [*checks, *(guard for check in checks for guard in check.when)]:
            words = condition(c)
            assert words
            assert not RULE_SYNTAX.search(words)
            if "_" in c.field or "." in c.field:
                assert c.field not in words


@pytest.mark.parametrize(
    "protocol_id", ["takase-2015-methadone-adjuvant", "psoas-compartment-block"]
)
class TestPlanHandout:
    def test_plan_handout(self, protocol_id: str) -> None:
        """The patient's handout: checks with outcomes, steps, day table, no ids, no syntax."""
        plan = _plan(protocol_id)
        text = render(plan, "text", layout="handout")
        assert "Steps for this patient" in text
        assert "Day by day" in text
        assert not RULE_SYNTAX.search(text)
        assert protocol_id not in text
        for ident in _ids(plan.protocol):
            assert ident not in text, f"{ident!r} in the plan handout"


# ---- PDF ----------------------------------------------------------------------------------------


def _engine() -> Any:
    try:
        from mps_analgesia.render.pdf import pdf_engine

        pdf_engine()
        import pypdfium2
    except Exception as exc:  # ImportError, or the Pango system library missing
        pytest.skip(f"PDF engine unavailable (pip install 'mps-analgesia[pdf]'): {exc}")
    return pypdfium2


def _pages(data: bytes) -> list[float]:
    """The share of non-white pixels on each page of a PDF (rasterised at 50 dpi)."""
    pdfium = _engine()
    doc = pdfium.PdfDocument(data)
    out = []
    for i in range(len(doc)):
        image = doc[i].render(scale=50 / 72).to_pil().convert("L")
        counts = image.histogram()  # 256 grey levels
        out.append(sum(counts[:200]) / sum(counts))
    return out


@pytest.mark.parametrize("protocol_id", PROTOCOL_IDS)
def test_protocol_handout_pdf_fits_two_pages(protocol_id: str) -> None:
    """Each shipped protocol's handout prints on one or two A4 pages, none of them blank."""
    _engine()
    data = render(load_protocol(protocol_id), "pdf", layout="handout")
    assert data.startswith(b"%PDF-")
    ink = _pages(data)
    assert 1 <= len(ink) <= 2, f"{protocol_id}: {len(ink)} pages"
    assert all(share > 0.005 for share in ink), ink


def test_plan_handout_pdf() -> None:
    """A plan's handout prints on one or two pages too, none blank."""
    _engine()
    data = render(_plan("takase-2015-methadone-adjuvant"), "pdf", layout="handout")
    ink = _pages(data)
    assert 1 <= len(ink) <= 2, ink
    assert all(share > 0.005 for share in ink), ink


def test_pdf_loads_nothing_from_outside() -> None:
    """The PDF writer refuses every URL: a page that tried to load one would fail to show it."""
    from mps_analgesia.render.pdf import _no_fetch

    with pytest.raises(ValueError, match="loads nothing"):
        _no_fetch("https://example.org/x.css")


class TestCommandLine:
    @pytest.fixture(autouse=True)
    def _capture(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def _run(self, argv: list[str]) -> tuple[int, str, str]:
        from mps_analgesia.cli import main

        code = main(argv)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def test_summarize_handout_pdf(self, tmp_path: Path) -> None:
        """``summarize ID --layout handout --format pdf -o FILE`` writes the PDF."""
        _engine()
        target = tmp_path / "takase.pdf"
        code, _out, err = self._run(
            ["summarize", "takase-2015-methadone-adjuvant", "--layout", "handout",
             "--format", "pdf", "-o", str(target)]
        )  # fmt: skip
        assert code == 0, err
        assert target.read_bytes().startswith(b"%PDF-")

    def test_pdf_needs_a_file(self) -> None:
        """PDF bytes are never written to the terminal: without -o the command says so."""
        code, out, err = self._run(
            ["summarize", "takase-2015-methadone-adjuvant", "--layout", "handout",
             "--format", "pdf"]
        )  # fmt: skip
        assert code == 2
        assert "-o FILE" in err
        assert out == ""

    def test_handout_text(self) -> None:
        """The handout in the terminal: plain text with the dosing table."""
        code, out, _err = self._run(["summarize", "psoas-compartment-block", "--layout", "HANDOUT"])
        assert code == 0
        assert "Dosing" in out
        assert "psoas-compartment-block" not in out
