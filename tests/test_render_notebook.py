"""Notebook displays (Finding, NotChecked, steps), table exports, and the shipped notebook runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import mps_analgesia as mps
from mps_analgesia.batch import to_records, validate_many

ROOT = Path(__file__).parent.parent
NOTEBOOK = ROOT / "docs" / "notebooks" / "pharmacist.ipynb"


def _report() -> mps.Report:
    regimen = mps.Regimen(
        [
            mps.AdjuvantStep(drug="acetaminophen", role="nociceptive", dose="1250 mg", every="6 h"),
            mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h",
                                      titration=[{"day": 7, "dose": "7.5 mg"}]),
        ]
    )  # fmt: skip
    return mps.validate(regimen, mps.Patient())


class TestDisplays:
    def test_finding_is_one_short_line(self) -> None:
        """A finding shows its severity, code, step and message, not an attrs repr."""
        f = _report().findings[0]
        md, html = f._repr_markdown_(), f._repr_html_()
        assert md.startswith(f"**{f.severity.upper()}** `{f.code}`")
        assert "daily_dose_mg" not in md
        assert "Finding(" not in html
        assert len(html) < 2000

    def test_not_checked_is_never_passed(self) -> None:
        """A check that did not run says NOT CHECKED and the missing input."""
        n = _report().not_checked[0]
        assert n._repr_markdown_().startswith("**NOT CHECKED**")
        assert n.missing in n._repr_html_()

    def test_step_line_shows_the_titration(self) -> None:
        """The step line holds the titration and the daily total on each day it changes."""
        step = _report().regimen.steps[1]
        md = step._repr_markdown_()
        assert "7.5 mg from day 7" in md
        assert "15 mg/day, 22.5 mg/day from day 7" in md

    def test_egfr_as_clinicians_write_it(self) -> None:
        """eGFR reads mL/min/1.73 m², never pint's unit names."""
        case = mps.Case(patient=mps.Patient(egfr="58 mL/min/1.73m2"), regimen=mps.Regimen([]))
        html = mps.render(case, "html")
        assert "58 mL/min/1.73 m²" in html
        assert "standard_bsa" not in html

    def test_findings_come_before_the_steps(self) -> None:
        """In a report's HTML, the findings come first, the steps and calculation after."""
        html = _report()._repr_html_()
        assert html.index('id="findings"') < html.index('id="steps"')

    def test_tables_left_aligned_and_words_whole(self) -> None:
        """The style holds up under notebook CSS: left-aligned cells, no word broken."""
        import re

        from mps_analgesia.render.html import STYLE

        assert "text-align: left !important" in STYLE
        pre = re.search(r"\.mps-doc pre \{[^}]*\}", STYLE)
        assert pre is not None
        assert "anywhere" not in pre.group(0)
        assert "word-break: normal" in pre.group(0)

    def test_str_is_the_text_report(self) -> None:
        """print(report) is the text report, not a repr."""
        report = _report()
        assert str(report) == report.to_text()
        assert str(report).startswith("Report\n")
        assert "Report(" not in str(report)


class TestRecords:
    def test_rows_of_a_report(self) -> None:
        """One row per finding then per check not run, every row with the same keys."""
        report = _report()
        rows = report.to_records()
        assert len(rows) == len(report.findings) + len(report.not_checked)
        assert {tuple(r) for r in rows} == {tuple(rows[0])}
        assert [r["outcome"] for r in rows].count("not checked") == len(report.not_checked)

    def test_rows_of_a_batch(self) -> None:
        """A batch's rows name their source; an unreadable case is one error row."""
        rows = to_records(validate_many([ROOT / "examples" / "mps-multimodal.toml", "nope.toml"]))
        assert rows[-1]["source"] == "nope.toml"
        assert rows[-1]["outcome"] == "error"

    def test_frame(self) -> None:
        """to_frame() is the rows as a DataFrame, with whole step numbers."""
        pytest.importorskip("pandas", reason="the frame extra (pandas) is not installed")
        frame = _report().to_frame()
        assert list(frame.columns)[:3] == ["outcome", "severity", "code"]
        assert str(frame["step"].dtype) == "Int64"


def test_the_pharmacist_notebook_runs() -> None:
    """docs/notebooks/pharmacist.ipynb executes top to bottom with no error."""
    for module in ("nbclient", "nbformat", "ipykernel", "pandas"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[test]')")
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any('id="findings"' in h for h in html)
