"""Many cases at once: ``validate_many``, ``CaseResult`` and ``mps-analgesia check`` on many."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import mps_analgesia as mps
from mps_analgesia import cli
from mps_analgesia.batch import CaseResult, iter_case_files, validate_many
from mps_analgesia.cli import _check, main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

ERROR_CASE = """\
[patient]
weight = "45 kg"

[[step]]
kind = "psoas_compartment_block"
drug = "ropivacaine"
concentration = "0.5 %"
bolus_volume = "30 mL"
side = "left"
"""

CLEAN_CASE = """\
[[step]]
kind = "radiotherapy"
total_dose = "8 Gy"
fractions = 1
site = "left psoas"
"""

BROKEN_CASE = "x = \n"


@pytest.fixture
def case_dir(tmp_path: Path) -> Path:
    """A directory with a clean case, an error case (nested) and a broken file."""
    (tmp_path / "a-clean.toml").write_text(CLEAN_CASE, encoding="utf-8")
    nested = tmp_path / "nested"
    nested.mkdir()
    (nested / "b-error.toml").write_text(ERROR_CASE, encoding="utf-8")
    (tmp_path / "c-broken.toml").write_text(BROKEN_CASE, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a case", encoding="utf-8")
    hidden = tmp_path / ".hidden"
    hidden.mkdir()
    (hidden / "skip.toml").write_text(BROKEN_CASE, encoding="utf-8")
    return tmp_path


def radiotherapy_case() -> mps.Case:
    step = mps.RadiotherapyStep(total_dose="8 Gy", fractions=1, site="left psoas")
    return mps.Case(mps.Patient(), mps.Regimen([step]))


class TestIterCaseFiles:
    def test_directory_recursive_sorted(self, case_dir: Path) -> None:
        """A directory gives its .toml/.json files, recursively, sorted, hidden dirs skipped."""
        names = [p.relative_to(case_dir).as_posix() for p in iter_case_files([case_dir])]
        assert names == ["a-clean.toml", "c-broken.toml", "nested/b-error.toml"]

    def test_file_paths_pass_through(self, tmp_path: Path) -> None:
        """A file path, even a missing one, is yielded unchanged."""
        missing = tmp_path / "missing.toml"
        assert list(iter_case_files([missing])) == [missing]

    def test_json_files_found(self, tmp_path: Path) -> None:
        """JSON case files are found in a directory too."""
        (tmp_path / "case.JSON").write_text("{}", encoding="utf-8")
        assert [p.name for p in iter_case_files([tmp_path])] == ["case.JSON"]


class TestValidateMany:
    def test_cases_and_paths(self) -> None:
        """Case objects and paths both give a report, in order, named by source."""
        results = list(validate_many([radiotherapy_case(), EXAMPLES / "psoas-block.toml"]))
        assert [r.source for r in results] == ["<case 0>", str(EXAMPLES / "psoas-block.toml")]
        assert all(r.ok for r in results)
        assert results[1].case is not None
        assert results[1].case.name

    def test_broken_file_does_not_stop_the_run(self, case_dir: Path) -> None:
        """A broken file gives an error result and the later files are still checked."""
        results = list(validate_many([case_dir]))
        by_name = {Path(r.source).name: r for r in results}
        assert by_name["c-broken.toml"].ok is False
        assert isinstance(by_name["c-broken.toml"].error, mps.CaseFileError)
        assert by_name["c-broken.toml"].report is None
        assert by_name["b-error.toml"].ok
        assert by_name["b-error.toml"].has_errors

    def test_missing_file_is_an_error_result(self, tmp_path: Path) -> None:
        """A path that does not exist is reported as unreadable, not raised."""
        (result,) = validate_many([tmp_path / "none.toml"])
        assert not result.ok
        assert "cannot be read" in str(result.error)

    def test_lazy(self) -> None:
        """Results are produced one at a time (a generator)."""
        gen = validate_many(iter([radiotherapy_case(), radiotherapy_case()]))
        assert next(gen).source == "<case 0>"
        assert next(gen).source == "<case 1>"

    def test_same_report_as_validate(self) -> None:
        """Each report equals validate() on the same case."""
        case = mps.load_case(EXAMPLES / "mps-multimodal.toml")
        (result,) = validate_many([case])
        assert result.report is not None
        assert result.report.findings == mps.validate(case.regimen, case.patient).findings

    def test_disable_applies_to_every_case(self) -> None:
        """disable= leaves the rule out of every report."""
        results = validate_many([radiotherapy_case()] * 2, disable=["radiotherapy.bed-eqd2"])
        for r in results:
            assert r.report is not None
            assert not [f for f in r.report.findings if f.code == "radiotherapy.bed-eqd2"]

    def test_unknown_disabled_rule_raises_before_any_case(self) -> None:
        """A misspelt rule id fails at once, not as one error per case."""
        with pytest.raises(mps.UnknownNameError):
            next(validate_many([radiotherapy_case()], disable=["radiotherapy.bed-eqd"]))

    def test_non_case_item_is_an_error_result(self) -> None:
        """Something that is neither a Case nor a path gives an error result, not a crash."""
        (result,) = validate_many([42])  # type: ignore[list-item]
        assert not result.ok
        assert "neither a Case nor a path" in str(result.error)


class TestCaseResult:
    def test_report_or_error_exactly_one(self) -> None:
        """A CaseResult holds a report or an error, never both nor neither."""
        with pytest.raises(ValueError, match="exactly one"):
            CaseResult("x")

    def test_to_dict_of_unreadable_file(self, tmp_path: Path) -> None:
        """An unreadable file's dict has the file, status 'unreadable', error and problems."""
        bad = tmp_path / "bad.toml"
        bad.write_text(BROKEN_CASE, encoding="utf-8")
        (result,) = validate_many([bad])
        data = result.to_dict()
        assert data["file"] == str(bad)
        assert data["status"] == "unreadable"
        assert data["problems"][0]["line"] == 1
        assert result.counts == {}

    def test_to_dict_of_report(self) -> None:
        """A checked case's dict is the report's dict plus the file."""
        (result,) = validate_many([radiotherapy_case()])
        assert result.report is not None
        assert result.to_dict() == {"file": "<case 0>", **result.report.to_dict()}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class TestCheckCommand:
    def test_directory_text_with_summary(
        self, case_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """check DIR prints each report, reports the broken file, ends with a summary table."""
        code, out, err = run(["check", str(case_dir)], capsys)
        assert code == 2  # one file was unreadable
        assert "c-broken.toml" in err
        lines = out.splitlines()
        header = next(i for i, line in enumerate(lines) if line.startswith("file "))
        assert lines[header].split() == ["file", "errors", "warnings", "info", "not", "checked"]
        rows = {line.split()[0]: line.split()[1:] for line in lines[header + 1 :]}
        assert rows[str(case_dir / "nested" / "b-error.toml")][0] == "1"
        assert rows[str(case_dir / "c-broken.toml")] == ["unreadable"]
        assert "3 case files checked, 1 unreadable, 1 with error findings" in out

    def test_exit_one_for_error_findings(
        self, case_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Readable files with an error finding exit 1."""
        files = [str(case_dir / "a-clean.toml"), str(case_dir / "nested" / "b-error.toml")]
        code, _, _ = run(["check", *files], capsys)
        assert code == 1

    def test_exit_zero_when_clean(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Files without error findings exit 0."""
        code, out, _ = run(
            ["check", str(EXAMPLES / "radiotherapy.toml"), str(EXAMPLES / "psoas-block.toml")],
            capsys,
        )
        assert code == 0
        assert "2 case files checked, 0 with error findings" in out

    def test_jsonl_streams_one_report_per_line(
        self, case_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--format jsonl writes one JSON object per case; the summary goes to stderr."""
        code, out, err = run(["check", str(case_dir), "--format", "jsonl"], capsys)
        assert code == 2
        docs = [json.loads(line) for line in out.splitlines()]
        assert len(docs) == 3
        assert [Path(d["file"]).name for d in docs] == [
            "a-clean.toml",
            "c-broken.toml",
            "b-error.toml",
        ]
        assert docs[1]["status"] == "unreadable"
        assert docs[2]["counts"]["error"] == 1
        assert "3 case files checked, 1 unreadable, 1 with error findings" in err
        assert "total " in err  # the totals row of the summary
        assert "a-clean.toml" not in err  # only the final summary: no per-file rows
        assert "c-broken.toml" not in err  # its problem is in its JSON line

    def test_json_many_files_is_a_list(
        self, case_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--format json with many files prints one list."""
        code, out, _ = run(["check", str(case_dir), "--format", "json"], capsys)
        data = json.loads(out)
        assert code == 2
        assert isinstance(data, list)
        assert len(data) == 3

    def test_json_single_file_is_one_object(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--format json with one file prints one object, as before (no summary table)."""
        code, out, err = run(
            ["check", str(EXAMPLES / "psoas-block.toml"), "--format", "json"], capsys
        )
        data = json.loads(out)
        assert isinstance(data, dict)
        assert data["file"].endswith("psoas-block.toml")
        assert code == 0
        assert err == ""

    def test_single_file_text_has_no_summary(self, capsys: pytest.CaptureFixture[str]) -> None:
        """check FILE keeps the single-report text output (no summary table)."""
        code, out, _ = run(["check", str(EXAMPLES / "radiotherapy.toml")], capsys)
        assert code == 0
        assert "radiotherapy.bed-eqd2" in out
        assert "case files checked" not in out

    def test_quiet_prints_only_the_summary(
        self, case_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--quiet leaves out the reports and keeps the table."""
        _, out, _ = run(["check", str(case_dir), "--quiet"], capsys)
        assert "Decision support only" not in out
        assert "case files checked" in out

    def test_empty_directory_is_input_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A directory without case files exits 2 and says so."""
        code, _, err = run(["check", str(tmp_path)], capsys)
        assert code == 2
        assert "no .toml or .json case files" in err

    def test_unknown_disabled_rule_is_input_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--disable with an unknown rule id exits 2 with the rule named."""
        code, _, err = run(
            ["check", str(EXAMPLES / "radiotherapy.toml"), "--disable", "nope.rule"], capsys
        )
        assert code == 2
        assert "nope.rule" in err

    def test_no_progress_bar_when_not_a_terminal(
        self, case_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Captured (non-terminal) stderr gets no progress bar escape codes."""
        _, _, err = run(["check", str(case_dir), "--format", "jsonl"], capsys)
        assert "\x1b[K" not in err
        assert "\r" not in err


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class TestProgress:
    def test_bar_drawn_on_a_terminal(self) -> None:
        """On a terminal the bar shows done/total and is erased by clear()."""
        stream = _Tty()
        bar = _check._Progress(stream, 4)
        bar.update(4, "examples/x.toml")
        assert "4/4" in stream.getvalue()
        assert "####" in stream.getvalue()
        bar.clear()
        assert stream.getvalue().endswith("\r\x1b[K")

    def test_silent_when_not_a_terminal(self) -> None:
        """Not a terminal: nothing is written."""
        stream = io.StringIO()
        bar = _check._Progress(stream, 4)
        bar.update(4, "x")
        bar.clear()
        assert stream.getvalue() == ""

    def test_silent_for_a_single_file(self) -> None:
        """One file: no bar even on a terminal."""
        stream = _Tty()
        _check._Progress(stream, 1).update(1, "x")
        assert stream.getvalue() == ""

    def test_check_draws_bar_on_tty_stderr(
        self, case_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """check with a terminal stderr draws a count there (a streamed batch has no total) and
        keeps stdout clean JSON lines."""
        err = _Tty()
        out = io.StringIO()
        args: Any = cli._parser().parse_args(["check", str(case_dir), "--format", "jsonl"])
        code = _check.run(args, out, err)
        assert code == 2
        assert "1 checked  " in err.getvalue()
        for line in out.getvalue().splitlines():
            json.loads(line)


class TestManyFiles:
    def test_hundred_copies(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A hundred copies of the examples are all checked, none unreadable."""
        for i in range(100):
            src = sorted(EXAMPLES.glob("*.toml"))[i % 7]
            shutil.copy(src, tmp_path / f"case{i:03d}.toml")
        results = list(validate_many([tmp_path]))
        assert len(results) == 100
        assert all(r.ok for r in results)


GOOD_NAMES = ("good-1.toml", "sub/good-2.toml")


@pytest.fixture
def bad_dir(tmp_path: Path) -> Path:
    """A folder with two good case files and one of each bad file kind."""
    (tmp_path / "sub").mkdir()
    for name in GOOD_NAMES:
        (tmp_path / name).write_text(CLEAN_CASE, encoding="utf-8")
    (tmp_path / "broken.toml").write_text(BROKEN_CASE, encoding="utf-8")  # not TOML
    (tmp_path / "invalid.json").write_text('{"step": [{"kind": []}]}', encoding="utf-8")
    (tmp_path / "latin1.toml").write_bytes('name = "café"\n'.encode("latin-1"))  # not UTF-8
    (tmp_path / "big.toml").write_text("# padding\n" * 200, encoding="utf-8")  # over the limit
    (tmp_path / "empty.json").write_text("", encoding="utf-8")
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")  # not a table
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    os.mkfifo(tmp_path / "fifo.toml")  # reading it would block forever
    (tmp_path / "zero.toml").symlink_to("/dev/zero")  # reading it would never end
    (tmp_path / "dangling.toml").symlink_to(tmp_path / "nowhere.toml")
    (tmp_path / "loop").symlink_to(tmp_path)  # a directory link: not followed
    return tmp_path


BAD_NAMES = (
    "big.toml",
    "broken.toml",
    "dangling.toml",
    "deep.json",
    "empty.json",
    "fifo.toml",
    "invalid.json",
    "latin1.toml",
    "list.json",
    "zero.toml",
)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and symbolic links (POSIX)")
class TestBatchesNeverStop:
    """Every file gets a result or a problem; the run goes on to the end."""

    def _by_name(self, results: list[CaseResult], root: Path) -> dict[str, CaseResult]:
        return {Path(r.source).relative_to(root).as_posix(): r for r in results}

    @pytest.mark.parametrize("jobs", [1, 2])
    def test_library_reports_every_file(self, bad_dir: Path, jobs: int) -> None:
        """validate_many gives one result per file, the good ones checked, in order."""
        results = list(validate_many([bad_dir], max_bytes=1000, jobs=jobs))
        by_name = self._by_name(results, bad_dir)
        assert sorted(by_name) == sorted(BAD_NAMES + GOOD_NAMES)
        assert [r.source for r in results] == sorted(r.source for r in results)
        for name in GOOD_NAMES:
            assert by_name[name].ok, by_name[name].error
        for name in BAD_NAMES:
            assert not by_name[name].ok, name
            assert isinstance(by_name[name].error, mps.MpsAnalgesiaError), name

    def test_each_kind_says_why(self, bad_dir: Path) -> None:
        """The problem names the kind of file, without reading FIFOs or devices."""
        by_name = self._by_name(list(validate_many([bad_dir], max_bytes=1000)), bad_dir)
        reasons = {name: str(by_name[name].error) for name in BAD_NAMES}
        assert "FIFO" in reasons["fifo.toml"]
        assert "character device" in reasons["zero.toml"]
        assert "bigger than 1000 bytes" in reasons["big.toml"]
        assert "not UTF-8" in reasons["latin1.toml"]
        assert "cannot be read" in reasons["dangling.toml"]

    def test_unexpected_exception_is_a_problem_with_its_type(
        self, bad_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Any exception at the file boundary becomes that file's problem, named by type."""
        from mps_analgesia import io as case_io

        real = case_io.loads_case

        def explode(text: str, **kwargs: Any) -> Any:
            if "café" in text or ("8 Gy" in text and "good-1" in str(kwargs.get("file"))):
                raise TypeError("boom")
            return real(text, **kwargs)

        monkeypatch.setattr(case_io, "loads_case", explode)
        by_name = self._by_name(list(validate_many([bad_dir])), bad_dir)
        assert "unexpected TypeError: boom" in str(by_name["good-1.toml"].error)
        assert by_name["sub/good-2.toml"].ok

    @pytest.mark.parametrize("jobs", ["1", "2"])
    def test_check_goes_to_the_end_with_exit_2(
        self, bad_dir: Path, jobs: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`check DIR` reports every file, the good ones with their report, and exits 2."""
        argv = ["check", str(bad_dir), "--format", "jsonl", "--max-bytes", "1000", "-j", jobs]
        code, out, err = run(argv, capsys)
        assert code == 2
        docs = {
            Path(d["file"]).relative_to(bad_dir).as_posix(): d
            for d in map(json.loads, out.splitlines())
        }
        assert sorted(docs) == sorted(BAD_NAMES + GOOD_NAMES)
        for name in GOOD_NAMES:
            assert docs[name]["status"] != "unreadable"
        for name in BAD_NAMES:
            assert docs[name]["status"] == "unreadable", name
        assert f"{len(docs)} case files checked, {len(BAD_NAMES)} unreadable" in err
        assert "Traceback" not in err

    def test_text_format_lists_each_problem(
        self, bad_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """In text, each bad file's problem goes to stderr and the summary names it."""
        code, out, err = run(["check", str(bad_dir), "--max-bytes", "1000", "-j", "1"], capsys)
        assert code == 2
        for name in BAD_NAMES:
            assert name in err, name
            assert f"{name}" in out  # its row in the summary table
        assert f"{len(BAD_NAMES)} unreadable" in out


class TestClosedPipe:
    def test_head_ends_quietly(self, tmp_path: Path) -> None:
        """`check DIR --format jsonl | head -1`: no BrokenPipe traceback."""
        import subprocess
        import sys

        text = (EXAMPLES / "mps-multimodal.toml").read_text(encoding="utf-8")
        for i in range(80):
            (tmp_path / f"c{i:02d}.toml").write_text(text, encoding="utf-8")
        with subprocess.Popen(
            [sys.executable, "-m", "mps_analgesia", "check", str(tmp_path), "--format", "jsonl"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as proc:
            assert proc.stdout is not None
            assert proc.stderr is not None
            first = proc.stdout.readline()
            proc.stdout.close()
            err = proc.stderr.read().decode()
            code = proc.wait(timeout=120)
        assert json.loads(first)["file"].endswith("c00.toml")
        assert "Traceback" not in err
        assert "BrokenPipe" not in err
        assert code == 0


class TestDeadWorker:
    @pytest.mark.skipif(
        __import__("multiprocessing").get_start_method() != "fork",
        reason="the patched reader reaches the workers only when they are forked",
    )
    def test_a_case_that_kills_its_worker(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A worker that dies costs only the case that killed it; the others are checked."""
        from mps_analgesia import io as case_io

        real = case_io.loads_case

        def deadly(text: str, **kwargs: Any) -> Any:
            if "KILL" in text:
                os._exit(1)
            return real(text, **kwargs)

        monkeypatch.setattr(case_io, "loads_case", deadly)
        for i in range(40):
            text = CLEAN_CASE + ("# KILL\n" if i == 7 else "")
            (tmp_path / f"c{i:02d}.toml").write_text(text, encoding="utf-8")
        results = list(validate_many([tmp_path], jobs=2))
        assert len(results) == 40
        bad = [r for r in results if not r.ok]
        assert [Path(r.source).name for r in bad] == ["c07.toml"]
        assert "worker process died" in str(bad[0].error)
