"""Tests for the timeline chart's engines: the built-in SVG and the optional matplotlib figure.

The matplotlib tests run only when matplotlib is importable (the ``plot`` extra); the tests of
the clear message simulate its absence with ``sys.modules["matplotlib"] = None``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mps_analgesia as mps
from mps_analgesia.cli import _educator as commands
from mps_analgesia.errors import MpsAnalgesiaError, UnknownNameError
from mps_analgesia.io import load_case
from mps_analgesia.protocols import load_protocol
from mps_analgesia.render.timeline import (
    PLOT_UNAVAILABLE,
    Checkpoint,
    PlotUnavailableError,
    save_timeline,
    timeline_figure,
    timeline_svg,
)

ROOT = Path(__file__).parent.parent
CASE = ROOT / "examples" / "opioid-breakthrough.toml"
PROTOCOL = "takase-2015-methadone-adjuvant"
MESSAGE = "matplotlib is not installed; install the 'plot' extra: pip install 'mps-analgesia[plot]'"


def _regimen() -> mps.Regimen:
    """Morphine regular + PRN (one drug, two steps) and methadone titrated on day 7."""
    return mps.Regimen(
        [
            mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h"),
            mps.OpioidStep(
                drug="morphine", dose="5 mg", every="2 h", prn=True, max_doses_per_24h=6
            ),
            mps.MethadoneAdjuvantStep(
                dose="5 mg", every="8 h", titration=[{"day": 7, "dose": "7.5 mg"}]
            ),
        ]
    )


def _plan() -> Any:
    case = load_case(CASE)
    return load_protocol(PROTOCOL).instantiate(case.patient, current_regimen=case.regimen)


def _run(argv: list[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="mps-analgesia")
    commands.add_subcommands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    handler: Callable[[argparse.Namespace, Any, Any], int] = args.handler
    code = handler(args, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """matplotlib looks absent, even when it is installed and already imported."""
    with contextlib.suppress(ImportError):  # a loaded submodule must not slip through
        importlib.import_module("matplotlib.figure")
    monkeypatch.setitem(sys.modules, "matplotlib", None)


# ---- matplotlib absent: the clear message -------------------------------------------------------


class TestPlotUnavailable:
    """Without matplotlib, the matplotlib engine says how to install it."""

    def test_error_is_a_library_error_and_an_import_error(self) -> None:
        """PlotUnavailableError is caught by `except MpsAnalgesiaError` and `except ImportError`."""
        exc = PlotUnavailableError()
        assert isinstance(exc, MpsAnalgesiaError)
        assert isinstance(exc, ImportError)
        assert str(exc) == MESSAGE == PLOT_UNAVAILABLE
        assert exc.name == "matplotlib"

    @pytest.mark.usefixtures("no_matplotlib")
    def test_timeline_figure_raises_the_clear_message(self) -> None:
        """timeline_figure raises PlotUnavailableError with the install hint."""
        with pytest.raises(PlotUnavailableError, match=re.escape(MESSAGE)):
            timeline_figure(_regimen())

    @pytest.mark.usefixtures("no_matplotlib")
    def test_caught_as_import_error(self) -> None:
        """A caller's `except ImportError` catches the missing plot extra."""
        with pytest.raises(ImportError, match=re.escape("pip install 'mps-analgesia[plot]'")):
            timeline_figure(_plan())

    @pytest.mark.usefixtures("no_matplotlib")
    def test_save_with_matplotlib_engine_writes_nothing(self, tmp_path: Path) -> None:
        """save_timeline(engine='matplotlib') raises and leaves no file behind."""
        target = tmp_path / "timeline.png"
        with pytest.raises(PlotUnavailableError):
            save_timeline(_regimen(), target, engine="matplotlib")
        assert not target.exists()

    @pytest.mark.usefixtures("no_matplotlib")
    def test_builtin_svg_needs_no_matplotlib(self, tmp_path: Path) -> None:
        """The default engine writes the SVG without matplotlib."""
        target = save_timeline(_regimen(), tmp_path / "timeline.svg")
        text = target.read_text(encoding="utf-8")
        assert text.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
        assert "methadone (step 3)" in text

    @pytest.mark.usefixtures("no_matplotlib")
    def test_cli_plan_exits_2_with_the_message(self, tmp_path: Path) -> None:
        """`plan --timeline F --timeline-engine matplotlib`: the message, exit 2, no output."""
        target = tmp_path / "plan.png"
        code, out, err = _run(
            [
                "plan",
                PROTOCOL,
                "--patient",
                str(CASE),
                "--timeline",
                str(target),
                "--timeline-engine",
                "matplotlib",
            ]
        )
        assert code == 2
        assert err.strip() == MESSAGE
        assert out == ""
        assert not target.exists()

    @pytest.mark.usefixtures("no_matplotlib")
    def test_cli_summarize_exits_2_with_the_message(self, tmp_path: Path) -> None:
        """`summarize CASE --timeline F --timeline-engine matplotlib`: message, exit 2."""
        target = tmp_path / "case.svg"
        argv = ["summarize", str(CASE), "--timeline", str(target)]
        code, out, err = _run([*argv, "--timeline-engine", "matplotlib"])
        assert (code, out, err.strip()) == (2, "", MESSAGE)
        assert not target.exists()

    def test_package_import_does_not_import_matplotlib(self) -> None:
        """Importing the package, the renderers and the CLI, and rendering a plan, loads no
        matplotlib."""
        script = (
            "import sys, mps_analgesia as mps, mps_analgesia.cli\n"
            "import mps_analgesia.render.timeline, mps_analgesia.cli._educator\n"
            "from mps_analgesia.render import render\n"
            "case = mps.load_case('examples/mps-multimodal.toml')\n"
            "render(case, 'html')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout.strip() == "[]"


# ---- the built-in SVG engine through save_timeline and the CLI ----------------------------------


class TestSaveTimelineSvg:
    """save_timeline with the default engine, and its errors."""

    def test_plan_brings_its_ecg_checkpoints(self, tmp_path: Path) -> None:
        """A plan's file marks its dated ECG checks (days 0 and 14) like the HTML summary."""
        plan = _plan()
        text = save_timeline(plan, tmp_path / "plan.svg").read_text(encoding="utf-8")
        assert "day 0: ECG" in text
        assert "day 14: ECG" in text

    def test_same_drawing_as_timeline_svg(self, tmp_path: Path) -> None:
        """The file is timeline_svg(standalone=True) of the same data."""
        marks = [Checkpoint(3, "ECG")]
        path = save_timeline(_regimen(), tmp_path / "t.svg", checkpoints=marks)
        expected = timeline_svg(_regimen(), checkpoints=marks, standalone=True)
        assert path.read_text(encoding="utf-8") == expected + "\n"

    def test_case_gives_its_regimen(self, tmp_path: Path) -> None:
        """A Case draws its regimen."""
        case = load_case(CASE)
        text = save_timeline(case, tmp_path / "case.svg").read_text(encoding="utf-8")
        assert text == timeline_svg(case.regimen, standalone=True) + "\n"

    def test_png_needs_the_matplotlib_engine(self, tmp_path: Path) -> None:
        """The built-in engine refuses .png and names the engine that writes it."""
        with pytest.raises(UnknownNameError, match=re.escape("engine='matplotlib' for .png")):
            save_timeline(_regimen(), tmp_path / "t.png")
        assert not (tmp_path / "t.png").exists()

    def test_unknown_file_type(self, tmp_path: Path) -> None:
        """A suffix no engine writes is refused with the types the engine writes."""
        with pytest.raises(UnknownNameError, match=r"writes \.svg, \.png, \.pdf files only"):
            save_timeline(_regimen(), tmp_path / "t.jpg", engine="matplotlib")

    def test_unknown_engine(self, tmp_path: Path) -> None:
        """An unknown engine is refused with a suggestion."""
        with pytest.raises(UnknownNameError, match="did you mean 'matplotlib'"):
            save_timeline(_regimen(), tmp_path / "t.svg", engine="matplotlb")

    def test_unknown_object(self, tmp_path: Path) -> None:
        """An object with no days (a protocol) is refused, naming what is accepted."""
        with pytest.raises(
            UnknownNameError, match="a Regimen, a DayPlan, a Case or an InstantiatedPlan"
        ):
            save_timeline(load_protocol(PROTOCOL), tmp_path / "t.svg")


class TestCliTimeline:
    """`--timeline FILE` on summarize and plan, built-in engine."""

    def test_plan_writes_the_svg(self, tmp_path: Path) -> None:
        """`plan ID --patient CASE --timeline F.svg` writes the plan's timeline and the plan."""
        target = tmp_path / "plan.svg"
        code, out, err = _run(["plan", PROTOCOL, "--patient", str(CASE), "--timeline", str(target)])
        assert code in (0, 1), err
        assert "DECISIONS" in out
        assert f"wrote {target}" in err
        text = target.read_text(encoding="utf-8")
        assert (
            text
            == timeline_svg(
                _plan().regimen,
                checkpoints=[Checkpoint(0, "ECG"), Checkpoint(14, "ECG")],
                table=_plan().protocol.ome_table,
                standalone=True,
            )
            + "\n"
        )

    def test_summarize_case_keeps_its_exit_code(self, tmp_path: Path) -> None:
        """`summarize CASE --timeline F.svg` writes the file; the exit code is the report's."""
        plain, _, _ = _run(["summarize", str(CASE)])
        target = tmp_path / "case.svg"
        code, out, _ = _run(["summarize", str(CASE), "--timeline", str(target)])
        assert code == plain
        assert out
        assert target.read_text(encoding="utf-8").startswith("<svg xmlns=")

    @pytest.mark.parametrize("target", [PROTOCOL, commands.RT_TABLE_ID])
    def test_summarize_without_days_exits_2(self, tmp_path: Path, target: str) -> None:
        """A protocol or the RT table has no timeline: exit 2, pointing at `plan`."""
        code, out, err = _run(["summarize", target, "--timeline", str(tmp_path / "t.svg")])
        assert (code, out) == (2, "")
        assert "--timeline needs a case file" in err
        assert "mps-analgesia plan ID --patient CASE" in err

    def test_png_with_builtin_engine_exits_2(self, tmp_path: Path) -> None:
        """`--timeline F.png` without the matplotlib engine: exit 2 with the hint."""
        code, out, err = _run(["summarize", str(CASE), "--timeline", str(tmp_path / "t.png")])
        assert (code, out) == (2, "")
        assert "engine='matplotlib'" in err

    def test_unwritable_file_exits_2(self, tmp_path: Path) -> None:
        """A file that cannot be written: exit 2 with the reason, no traceback."""
        target = tmp_path / "missing-dir" / "t.svg"
        code, out, err = _run(["summarize", str(CASE), "--timeline", str(target)])
        assert (code, out) == (2, "")
        assert "cannot write the timeline" in err

    def test_unknown_engine_is_an_argparse_error(self) -> None:
        """--timeline-engine accepts only svg and matplotlib."""
        with pytest.raises(SystemExit):
            _run(["summarize", str(CASE), "--timeline", "t.svg", "--timeline-engine", "plotly"])


# ---- matplotlib present: the figure -------------------------------------------------------------


@pytest.fixture
def mpl() -> Any:
    """matplotlib, or skip (the optional ``plot`` extra)."""
    return pytest.importorskip("matplotlib")


def _lines(fig: Any) -> list[Any]:
    return [line for ax in fig.axes for line in ax.get_lines()]


@pytest.mark.usefixtures("mpl")
class TestTimelineFigure:
    """timeline_figure draws the same data as the SVG, with matplotlib."""

    def test_returns_a_matplotlib_figure(self) -> None:
        """The result is a matplotlib Figure on an Agg canvas."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = timeline_figure(_regimen())
        assert isinstance(fig, Figure)
        assert isinstance(fig.canvas, FigureCanvasAgg)

    def test_one_line_per_drug(self) -> None:
        """One solid dose line per drug (regular + PRN steps of one drug share it), one OME line."""
        fig = timeline_figure(_regimen(), ome=True)
        labels = [line.get_label() for line in _lines(fig)]
        assert labels.count("morphine (steps 1, 2)") == 1
        assert labels.count("methadone (step 3)") == 1
        assert labels.count("morphine (steps 1, 2), with PRN maximum") == 1
        ome = [x for x in labels if x.startswith("total OME")]
        assert ome == ["total OME (cdc-2022), with PRN maximum", "total OME (cdc-2022)"]
        assert len(fig.axes) == 3  # two drugs and the total

    def test_lines_hold_the_daily_doses(self) -> None:
        """The methadone line steps from 15 to 22.5 mg/day on day 7; the PRN top is 90 mg/day."""
        fig = timeline_figure(_regimen(), ome=False)
        by_label = {line.get_label(): line for line in _lines(fig)}
        methadone = by_label["methadone (step 3)"]
        days, doses = list(methadone.get_xdata()), list(methadone.get_ydata())
        assert doses[days.index(6)] == pytest.approx(15.0)
        assert doses[days.index(7)] == pytest.approx(22.5)
        prn = by_label["morphine (steps 1, 2), with PRN maximum"]
        assert list(prn.get_ydata()) == pytest.approx([90.0] * len(prn.get_ydata()))

    def test_titration_step_is_marked(self) -> None:
        """The titration step is a dot at (day 7, 22.5 mg/day) with its new daily total written."""
        fig = timeline_figure(_regimen(), ome=False)
        ax = next(a for a in fig.axes if a.get_title(loc="left") == "methadone (step 3)")
        points = [tuple(p) for c in ax.collections for p in c.get_offsets()]
        assert points == [(7.0, pytest.approx(22.5))]
        assert "22.5 mg/day" in [t.get_text() for t in ax.texts]

    def test_axes_carry_labels_and_values(self) -> None:
        """Each panel has its unit as y label and round ticks; the day axis is labelled."""
        fig = timeline_figure(_regimen(), ome=True)
        methadone = next(a for a in fig.axes if a.get_title(loc="left") == "methadone (step 3)")
        assert methadone.get_ylabel() == "mg/day"
        assert [t.get_text() for t in methadone.get_yticklabels()] == ["0", "10", "20", "30"]
        ome = next(a for a in fig.axes if a.get_title(loc="left").startswith("total OME"))
        assert ome.get_ylabel() == "MME/day"
        assert fig.axes[-1].get_xlabel() == "plan day (day 0 = first day of the plan)"
        assert [t.get_text() for t in fig.axes[-1].get_xticklabels()][:3] == ["0", "1", "2"]

    def test_dates_label_the_day_axis(self) -> None:
        """With a start date the day axis shows dates and says which date day 0 is."""
        reg = mps.Regimen(_regimen().steps, start_date="2026-12-07")
        fig = timeline_figure(reg, ome=False)
        assert fig.axes[-1].get_xlabel() == "date (plan day 0 = 2026-12-07)"
        assert [t.get_text() for t in fig.axes[-1].get_xticklabels()][:2] == ["7 Dec", "8 Dec"]

    def test_legend_names_the_marks(self) -> None:
        """The figure legend names the solid, dashed and dot marks the panels use."""
        fig = timeline_figure(_regimen(), ome=False)
        (legend,) = fig.legends
        assert [t.get_text() for t in legend.get_texts()] == [
            "regular daily dose",
            "with PRN at its maximum",
            "new daily total (titration, taper)",
        ]

    def test_plan_marks_its_ecg_checkpoints(self) -> None:
        """A plan's dated ECG checks (days 0 and 14) are vertical lines on every panel."""
        fig = timeline_figure(_plan())
        for ax in fig.axes:
            ecg = [line for line in ax.get_lines() if line.get_label() == "ECG"]
            assert sorted(line.get_xdata()[0] for line in ecg) == [0, 14]
        assert [t.get_text() for t in fig.axes[0].texts].count("ECG") == 2

    def test_given_checkpoints_replace_the_plans(self) -> None:
        """checkpoints=[] draws no ECG line, even for a plan."""
        fig = timeline_figure(_plan(), checkpoints=[])
        assert not [line for line in _lines(fig) if line.get_label() == "ECG"]

    def test_block_and_radiotherapy_are_bars_over_their_days(self) -> None:
        """The block covers days 1-3 and the radiotherapy fractions days 2-6, as bars."""
        fig = timeline_figure(load_case(ROOT / "examples" / "mps-multimodal.toml"))
        ax = fig.axes[-1]
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == [
            "step 6: left psoas block (ropivacaine, catheter)",
            "step 7: radiotherapy to left psoas",
        ]
        bars = {c.get_label(): c for c in ax.collections}
        block = bars["step 6: left psoas block (ropivacaine, catheter)"]
        rt = bars["step 7: radiotherapy to left psoas"]
        assert sorted(round(p.vertices[:, 0].min()) for p in block.get_paths()) == [1, 2, 3]
        assert sorted(round(p.vertices[:, 0].min()) for p in rt.get_paths()) == [2, 3, 4, 5, 6]

    def test_no_global_pyplot_state(self) -> None:
        """Drawing does not import pyplot (the caller's backend is left alone)."""
        script = (
            "import sys, mps_analgesia as mps\n"
            "from mps_analgesia.render.timeline import timeline_figure\n"
            "timeline_figure(mps.load_case('examples/mps-multimodal.toml'))\n"
            "print('matplotlib.pyplot' in sys.modules)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == "False"


@pytest.mark.usefixtures("mpl")
class TestSaveTimelineMatplotlib:
    """save_timeline(engine='matplotlib') and the CLI's --timeline-engine matplotlib."""

    @pytest.mark.parametrize(
        ("suffix", "magic"), [("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")]
    )
    def test_writes_by_suffix(self, tmp_path: Path, suffix: str, magic: bytes) -> None:
        """.png, .pdf and .svg are written in their own format."""
        target = save_timeline(_plan(), tmp_path / f"t.{suffix}", engine="matplotlib")
        assert target.read_bytes().startswith(magic)

    def test_svg_is_reproducible(self, tmp_path: Path) -> None:
        """The same plan gives the same SVG bytes (no date, stable ids)."""
        a = save_timeline(_plan(), tmp_path / "a.svg", engine="matplotlib").read_bytes()
        b = save_timeline(_plan(), tmp_path / "b.svg", engine="matplotlib").read_bytes()
        assert a == b

    def test_cli_plan_writes_png(self, tmp_path: Path) -> None:
        """`plan ... --timeline F.png --timeline-engine matplotlib` writes a PNG."""
        target = tmp_path / "plan.png"
        argv = ["plan", PROTOCOL, "--patient", str(CASE), "--timeline", str(target)]
        code, out, err = _run([*argv, "--timeline-engine", "matplotlib"])
        assert code in (0, 1), err
        assert "DECISIONS" in out
        assert target.read_bytes().startswith(b"\x89PNG")
