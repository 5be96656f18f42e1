"""The command line: `mps-analgesia check CASE...`, exit codes 0/1/2, text and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mps_analgesia import __version__
from mps_analgesia.cli import main

CLEAN = """\
name = "clean"
[patient]
age = 60
[[step]]
kind = "adjuvant"
drug = "acetaminophen"
role = "nociceptive"
dose = "1 g"
every = "6 h"
"""

ERROR = CLEAN.replace('name = "clean"', 'name = "too much"').replace('"1 g"', '"1250 mg"')

INVALID = """\
[patient]
weight = 52
[[step]]
kind = "opioid"
drug = "fentanil"
dose = "30"
every = "12 h"
"""


@pytest.fixture
def cases(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, text in (("clean", CLEAN), ("error", ERROR), ("invalid", INVALID)):
        path = tmp_path / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        out[name] = path
    return out


class TestExitCodes:
    def test_clean_case_exits_0(
        self, cases: dict[str, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No error finding: exit 0 and a readable report."""
        assert main(["check", str(cases["clean"])]) == 0
        out = capsys.readouterr().out
        assert f"{cases['clean']}: 1 step(s)" in out
        assert "1. acetaminophen 1 g by mouth every 6 hours" in out
        assert "Decision support only" in out

    def test_error_finding_exits_1(
        self, cases: dict[str, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An error-severity finding: exit 1, the finding and its arithmetic printed."""
        assert main(["check", str(cases["error"])]) == 1
        out = capsys.readouterr().out
        assert "ERROR dose.max-daily (step 1)" in out
        assert "1250 mg × 4 doses/day = 5000 mg/day > 4000 mg/day" in out

    def test_invalid_case_exits_2(
        self, cases: dict[str, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An invalid case file: exit 2 and every problem on stderr."""
        assert main(["check", str(cases["invalid"])]) == 2
        err = capsys.readouterr().err
        assert "3 problems" in err
        assert "patient.weight: '52' has no unit; write e.g. '52 kg'" in err
        assert "step[0].drug: unknown drug 'fentanil'; did you mean 'fentanyl'?" in err
        assert "step[0].dose: '30' has no unit; write e.g. '30 mg'" in err

    def test_missing_file_exits_2(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A file that cannot be read: exit 2."""
        assert main(["check", str(tmp_path / "nope.toml")]) == 2
        assert "cannot be read" in capsys.readouterr().err

    def test_worst_of_several_files(
        self, cases: dict[str, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With several files the exit code is the worst: invalid (2) over error (1) over 0."""
        assert main(["check", str(cases["clean"]), str(cases["error"])]) == 1
        assert main(["check", str(cases["error"]), str(cases["invalid"]), str(cases["clean"])]) == 2
        assert main(["check", str(cases["clean"]), str(cases["clean"])]) == 0
        capsys.readouterr()

    def test_disable_a_rule(
        self, cases: dict[str, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--disable leaves a rule out; an unknown rule id is invalid input."""
        assert main(["check", "--disable", "dose.max-daily", str(cases["error"])]) == 0
        assert main(["check", "--disable", "dose.max-dailyy", str(cases["error"])]) == 2
        assert "did you mean 'dose.max-daily'" in capsys.readouterr().err

    def test_no_command_exits_2(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Without a command the help goes to stderr and the exit code is 2."""
        assert main([]) == 2
        assert "usage: mps-analgesia" in capsys.readouterr().err

    def test_bad_arguments_exit_2(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Unknown options and a missing CASE are usage errors: exit 2."""
        assert main(["check"]) == 2
        assert main(["check", "--format", "xml", "x.toml"]) == 2
        assert main(["frobnicate"]) == 2
        capsys.readouterr()


class TestJson:
    def test_json_single_file(
        self, cases: dict[str, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--format json prints one parseable report object with the file name."""
        assert main(["check", "--format", "json", str(cases["error"])]) == 1
        data = json.loads(capsys.readouterr().out)
        assert data["file"] == str(cases["error"])
        assert data["status"] == "errors"
        assert [f["code"] for f in data["findings"] if f["severity"] == "error"] == [
            "dose.max-daily"
        ]
        (daily,) = [f for f in data["findings"] if f["code"] == "dose.max-daily"]
        assert daily["cds_indicator"] == "critical"

    def test_json_several_files(
        self, cases: dict[str, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Several files give a JSON list; an invalid one carries its error text."""
        code = main(["check", "--format", "json", str(cases["clean"]), str(cases["invalid"])])
        assert code == 2
        data = json.loads(capsys.readouterr().out)
        assert [d["file"] for d in data] == [str(cases["clean"]), str(cases["invalid"])]
        assert data[0]["status"] in ("no findings", "incomplete", "warnings")
        assert "fentanil" in data[1]["error"]


class TestInfo:
    def test_version(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--version prints the version and exits 0."""
        assert main(["--version"]) == 0
        assert capsys.readouterr().out.strip() == f"mps-analgesia {__version__}"

    def test_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--help describes the tool and its intended use, exit 0."""
        assert main(["--help"]) == 0
        out = capsys.readouterr().out
        assert "check" in out
        assert "does not replace clinical judgement" in out

    def test_check_help_lists_exit_codes(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`check --help` explains the exit codes."""
        assert main(["check", "--help"]) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert "1: at least one error finding; 2: unreadable or invalid input" in out


class TestModule:
    def test_python_m_runs_the_cli(self, cases: dict[str, Path]) -> None:
        """`python -m mps_analgesia check` runs the same command line, with its exit code."""
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "mps_analgesia",
                "check",
                "--format",
                "json",
                str(cases["error"]),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        assert json.loads(done.stdout)["status"] == "errors"


class TestSuggestions:
    """Mistakes get the closest name; fixed choices are case-insensitive."""

    def test_mistyped_subcommand(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`chek` suggests `check`, exit 2."""
        assert main(["chek", "x.toml"]) == 2
        assert "invalid command: 'chek'; did you mean 'check'?" in capsys.readouterr().err

    def test_mistyped_option(
        self, cases: dict[str, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`--fromat` suggests `--format`, exit 2, nothing checked."""
        assert main(["check", "--fromat", "json", str(cases["clean"])]) == 2
        captured = capsys.readouterr()
        assert "unknown option '--fromat'; did you mean '--format'?" in captured.err
        assert captured.out == ""

    def test_mistyped_choice(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`--format jsn` suggests `json`."""
        assert main(["check", "--format", "jsn", "x.toml"]) == 2
        assert "invalid choice: 'jsn'; did you mean 'json'?" in capsys.readouterr().err

    def test_no_suggestion_when_nothing_is_close(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A word close to nothing gets the list of choices, no guess."""
        assert main(["zzzzzz"]) == 2
        err = capsys.readouterr().err
        assert "did you mean" not in err
        assert "'check'" in err

    @pytest.mark.parametrize("name", ["JSON", "Json", "json"])
    def test_format_names_any_case(
        self, name: str, cases: dict[str, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`--format JSON` is `--format json`."""
        assert main(["check", "--format", name, str(cases["clean"])]) == 0
        assert json.loads(capsys.readouterr().out)["file"] == str(cases["clean"])

    def test_schema_name_any_case(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`schema CASE` is `schema case`."""
        assert main(["schema", "CASE"]) == 0
        assert json.loads(capsys.readouterr().out)["title"]


ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "examples/mps-multimodal.toml")
FEATURES = str(ROOT / "examples/assess/mps.features.toml")

#: Every subcommand with JSON output: (schema name, argv).
JSON_COMMANDS = [
    ("output-check", ["check", EXAMPLE]),
    ("output-check", ["check", EXAMPLE, str(ROOT / "examples/radiotherapy.toml"), "-j", "1"]),
    ("output-protocols", ["protocols"]),
    ("output-summarize", ["summarize", EXAMPLE]),
    ("output-summarize", ["summarize", "psoas-compartment-block"]),
    ("output-summarize", ["summarize", "radiotherapy-schedules"]),
    (
        "output-plan",
        ["plan", "psoas-compartment-block", "--patient", EXAMPLE, "--choice", "side=left"],
    ),
    ("output-convert", ["convert", "60 mg/day oral morphine", "--to", "oxycodone"]),
    ("output-assess", ["assess", FEATURES]),
    ("output-schema", ["schema", "case"]),
    ("output-schema", ["schema", "output-check"]),
]


class TestJsonEverywhere:
    """`--format json` on every subcommand, each output valid against its published schema."""

    @pytest.mark.parametrize(("schema", "argv"), JSON_COMMANDS, ids=lambda v: str(v))
    def test_output_matches_its_schema(
        self, schema: str, argv: list[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The JSON printed validates against `mps-analgesia schema <schema>`."""
        jsonschema = pytest.importorskip("jsonschema")
        assert main(["schema", schema]) == 0
        published = json.loads(capsys.readouterr().out)
        jsonschema.Draft202012Validator.check_schema(published)
        code = main([*argv, "--format", "json"])
        captured = capsys.readouterr()
        assert code in (0, 1), captured.err
        jsonschema.validate(json.loads(captured.out), published)

    def test_a_schema_that_can_fail(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The published schema refuses another command's output (the check is not vacuous)."""
        jsonschema = pytest.importorskip("jsonschema")
        main(["schema", "output-plan"])
        published = json.loads(capsys.readouterr().out)
        main(["protocols", "--format", "json"])
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(json.loads(capsys.readouterr().out), published)

    def test_every_subcommand_offers_json(self) -> None:
        """No subcommand is left without `--format json` (serve prints no result)."""
        from mps_analgesia import cli

        parser = cli._parser()
        sub = next(a for a in parser._actions if a.dest == "command")
        assert isinstance(sub.choices, dict)
        for name, command in sub.choices.items():
            if name == "serve":
                continue
            (fmt,) = [a for a in command._actions if a.dest == "format"]
            assert fmt.choices is not None
            assert "json" in fmt.choices, name


class TestStdin:
    """`-` reads standard input."""

    def _stdin(self, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO(text))

    def test_check_reads_a_case(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`check -` checks the TOML case on standard input."""
        self._stdin(monkeypatch, ERROR)
        assert main(["check", "-", "--format", "json"]) == 1
        data = json.loads(capsys.readouterr().out)
        assert data["file"] == "<stdin>"
        assert data["counts"]["error"] == 1

    def test_check_reads_json(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A JSON case on standard input is read as JSON; an invalid one is exit 2."""
        self._stdin(monkeypatch, '{"patient": {"weight": 52}}')
        assert main(["check", "-"]) == 2
        assert "'52' has no unit" in capsys.readouterr().err

    def test_summarize_plan_assess(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """summarize, plan --patient and assess take `-` too."""
        case_text = Path(EXAMPLE).read_text(encoding="utf-8")
        self._stdin(monkeypatch, case_text)
        assert main(["summarize", "-", "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["file"] == "<stdin>"
        self._stdin(monkeypatch, case_text)
        assert main(
            [
                "plan",
                "psoas-compartment-block",
                "--patient",
                "-",
                "--choice",
                "side=left",
                "--format",
                "json",
            ]
        ) in (
            0,
            1,
        )
        assert json.loads(capsys.readouterr().out)["protocol"]["id"] == "psoas-compartment-block"
        self._stdin(monkeypatch, Path(FEATURES).read_text(encoding="utf-8"))
        assert main(["assess", "-", "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["features"]["side"] == "left"


class TestServe:
    def test_serve_logs_its_url(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`serve` says where the service's discovery endpoint is before it serves."""
        from mps_analgesia.cds_hooks import _server

        calls: list[tuple[str, int]] = []
        monkeypatch.setattr(_server, "serve", lambda host, port, **_: calls.append((host, port)))
        import mps_analgesia.cds_hooks as hooks

        monkeypatch.setattr(hooks, "serve", _server.serve)
        assert main(["serve", "--port", "8123"]) == 0
        assert calls == [("127.0.0.1", 8123)]
        assert "http://127.0.0.1:8123/cds-services" in capsys.readouterr().err


_EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class TestDataTablesLine:
    """The report names every table compactly (id@edition); the full descriptions with -v."""

    def test_compact_by_default_full_with_verbose(self, capsys: pytest.CaptureFixture[str]) -> None:
        """check prints the compact line only; --verbose adds each table's full edition."""
        main(["check", str(_EXAMPLES / "mps-multimodal.toml")])
        compact = capsys.readouterr().out
        main(["check", "--verbose", str(_EXAMPLES / "mps-multimodal.toml")])
        verbose = capsys.readouterr().out
        assert "Data tables: " in compact
        assert "drugs@" in compact
        assert "DATA TABLES USED" not in compact
        assert "DATA TABLES USED" in verbose
        assert "CDC 2022 MME table" in verbose
        assert "CDC 2022 MME table" not in compact


class TestHints:
    """Unit hints by what was meant; frequencies explained; routes listed."""

    @pytest.mark.parametrize(
        ("field", "text", "hint"),
        [
            ("dose", "10 MG", "did you mean 'mg'?"),
            ("dose", "1 gm", "write 'g' or 'mg'"),
            ("dose", "q4h", "write '4 h'"),
            ("every", "q.d.", "ISMP's list of error-prone abbreviations"),
            ("every", "qhs", "ISMP's list of error-prone abbreviations"),
            ("every", "often", "write e.g. '4 h'"),
        ],
    )
    def test_step_hints(self, field: str, text: str, hint: str) -> None:
        """A dose or interval written the way people write it gets the spelling to use."""
        import mps_analgesia as mps

        kwargs = {"drug": "morphine", "dose": "5 mg", "every": "4 h", field: text}
        with pytest.raises(mps.MpsAnalgesiaError) as info:
            mps.OpioidStep(**kwargs)
        assert hint in str(info.value)
        assert "Gy" not in str(info.value)

    @pytest.mark.parametrize(
        ("text", "hours"),
        [
            ("q4h", 4.0),
            ("Q4H", 4.0),
            ("q.4.h", 4.0),
            ("bd", 12.0),
            ("BID", 12.0),
            ("tds", 8.0),
            ("qds", 6.0),
            ("qid", 6.0),
        ],
    )
    def test_interval_abbreviations_are_read(self, text: str, hours: float) -> None:
        """Where an interval is written, an abbreviation not on ISMP's error-prone list is read
        as its interval (q4h is every 4 h, bd every 12 h); the ones on the list are refused."""
        import mps_analgesia as mps

        step = mps.OpioidStep(drug="morphine", dose="5 mg", every=text)
        assert step.every_h == hours

    def test_pounds(self) -> None:
        """'60 lbs' says to write kg (no conversion is guessed)."""
        import mps_analgesia as mps

        with pytest.raises(mps.MpsAnalgesiaError, match="write the weight in 'kg'"):
            mps.Patient(weight="60 lbs")

    def test_unknown_route_lists_the_routes(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown route with no close match lists the accepted routes."""
        argv = ["convert", "60 mg/day oral morphine", "--to", "oxycodone", "--to-route", "xyz"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "unknown route 'xyz' (the routes: " in err
        assert "oral" in err
        assert "transdermal" in err
