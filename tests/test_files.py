"""The shared file toolkit: one guarded reader for case files and protocol files (issue 14)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import mps_analgesia as mps
from mps_analgesia import _files, _limits
from mps_analgesia.errors import ArgumentError, CaseFileError, ProtocolFileError

CASE = """name = "Test case"
description = "kept through load and dump"

[patient]
age = 70

[[step]]
kind = "opioid"
drug = "morphine"
dose = "10 mg"
every = "4 h"
"""


def _problems(exc: pytest.ExceptionInfo[CaseFileError]) -> list[tuple[str, int | None]]:
    return [(p.path, p.line) for p in exc.value.problems]


class TestGuards:
    @pytest.mark.parametrize("loader", [mps.loads_case, mps.loads_protocol])
    def test_json_duplicate_keys_are_refused(self, loader: object) -> None:
        """JSON keeps the last of two equal keys; we refuse the file, naming the key."""
        text = '{"name": "a", "name": "b"}'
        with pytest.raises((CaseFileError, ProtocolFileError), match="given twice"):
            loader(text, format="json")  # type: ignore[operator]

    def test_json_duplicate_dose_is_refused(self) -> None:
        """ "dose": "10 mg", "dose": "1000 mg" is not silently 1000 mg."""
        text = json.dumps({"patient": {}, "step": [{"kind": "opioid"}]}).replace(
            '"kind": "opioid"',
            '"kind": "opioid", "drug": "morphine", "dose": "10 mg", "dose": "1000 mg", '
            '"every": "4 h"',
        )
        with pytest.raises(CaseFileError, match="'dose' is given twice"):
            mps.loads_case(text, format="json")

    @pytest.mark.parametrize("fmt", ["toml", "json"])
    @pytest.mark.parametrize("depth", [_limits.MAX_DEPTH + 5, 2000, 100_000])
    def test_deep_nesting_is_refused(self, fmt: str, depth: int) -> None:
        """TOML or JSON nested 2,000 deep is a CaseFileError, not a RecursionError."""
        deep = "[" * depth + "]" * depth
        text = f'{{"description": {deep}}}' if fmt == "json" else f"description = {deep}\n"
        with pytest.raises(CaseFileError, match="deeper"):
            mps.loads_case(text, format=fmt)

    @pytest.mark.parametrize("digits", [13, 400, 5000])
    @pytest.mark.parametrize("fmt", ["toml", "json"])
    def test_huge_integers_are_refused(self, digits: int, fmt: str) -> None:
        """400- and 5,000-digit integers are problems with their key path."""
        number = "9" * digits
        text = (
            f'{{"patient": {{"age": {number}}}}}'
            if fmt == "json"
            else f"[patient]\nage = {number}\n"
        )
        with pytest.raises(CaseFileError, match=r"digits|integer") as info:
            mps.loads_case(text, format=fmt)
        assert "Traceback" not in str(info.value)

    @pytest.mark.parametrize("fmt", ["toml", "json"])
    @pytest.mark.parametrize("number", ["1e-400", "1e400"])
    def test_float_under_and_overflow_are_refused(self, fmt: str, number: str) -> None:
        """A file number that would read as 0 or infinity is refused."""
        text = (
            f'{{"patient": {{"age": {number}}}}}'
            if fmt == "json"
            else f"[patient]\nage = {number}\n"
        )
        with pytest.raises(CaseFileError, match=r"too small|too large"):
            mps.loads_case(text, format=fmt)

    def test_json_nan_is_refused(self) -> None:
        """JSON's NaN extension is not a number."""
        with pytest.raises(CaseFileError, match="NaN"):
            mps.loads_case('{"patient": {"age": NaN}}', format="json")

    def test_lone_surrogate_is_refused(self) -> None:
        """A "\\ud800" escape is no text: refused, so whatever loaded can be written."""
        with pytest.raises(CaseFileError, match="surrogate"):
            mps.loads_case('{"name": "\\ud800", "patient": {}}', format="json")

    def test_text_that_is_too_long_is_refused(self) -> None:
        """A text longer than the file limit is refused before parsing."""
        with pytest.raises(CaseFileError, match="longer than"):
            mps.loads_case(" " * (_limits.MAX_FILE_BYTES + 1))

    @pytest.mark.parametrize("text", [None, b"x", 5, ["a"]])
    def test_non_text_is_refused(self, text: object) -> None:
        """loads_case of bytes or a list is a CaseFileError, not a TypeError."""
        with pytest.raises(CaseFileError, match="must be text"):
            mps.loads_case(text)  # type: ignore[arg-type]

    def test_unknown_format_is_refused(self) -> None:
        """format='yaml' is a problem, as before."""
        with pytest.raises(CaseFileError, match="unknown format"):
            mps.loads_case(CASE, format="yaml")


class TestReadFile:
    def test_regular_file_reads(self, tmp_path: Path) -> None:
        """A small UTF-8 case file reads."""
        p = tmp_path / "c.toml"
        p.write_text(CASE, encoding="utf-8")
        assert _files.read_file(p, CaseFileError) == CASE

    def test_fifo_is_refused_without_blocking(self, tmp_path: Path) -> None:
        """A FIFO named x.toml is refused, never opened for a blocking read."""
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this platform")
        p = tmp_path / "x.toml"
        os.mkfifo(p)
        with pytest.raises(CaseFileError, match="FIFO"):
            mps.load_case(p)

    def test_device_link_is_refused(self, tmp_path: Path) -> None:
        """A symlink to /dev/zero is refused without reading."""
        if not Path("/dev/zero").exists():
            pytest.skip("no /dev/zero")
        p = tmp_path / "zero.toml"
        p.symlink_to("/dev/zero")
        with pytest.raises(CaseFileError, match="device"):
            mps.load_case(p)

    def test_directory_is_refused(self, tmp_path: Path) -> None:
        """A directory named like a case file is refused."""
        p = tmp_path / "d.toml"
        p.mkdir()
        with pytest.raises(CaseFileError, match="directory"):
            mps.load_case(p)

    def test_big_file_is_refused(self, tmp_path: Path) -> None:
        """A file bigger than the limit is refused by its size."""
        p = tmp_path / "big.toml"
        p.write_bytes(b"#" * 2000)
        with pytest.raises(CaseFileError, match="bigger than"):
            _files.read_file(p, CaseFileError, max_bytes=1000)

    def test_not_utf8_is_refused(self, tmp_path: Path) -> None:
        """Latin-1 bytes are a problem naming the byte."""
        p = tmp_path / "l.toml"
        p.write_bytes(b"name = '\xe9'\n")
        with pytest.raises(CaseFileError, match="UTF-8"):
            mps.load_case(p)

    def test_protocol_file_goes_through_the_same_guard(self, tmp_path: Path) -> None:
        """load_protocol of a directory is a ProtocolFileError from the same guard."""
        p = tmp_path / "p.toml"
        p.mkdir()
        with pytest.raises(ProtocolFileError, match="directory"):
            mps.load_protocol(p)

    @pytest.mark.parametrize("path", [None, 5, ["a.toml"]])
    def test_load_case_of_a_non_path(self, path: object) -> None:
        """load_case(None) is a CaseFileError."""
        with pytest.raises(CaseFileError, match="not a file path"):
            mps.load_case(path)  # type: ignore[arg-type]


class TestLines:
    def test_quoted_keys_report_their_line(self) -> None:
        """'"dose" = ...' is the key dose, on its own line."""
        text = CASE.replace('dose = "10 mg"', '"dose" = "10 L"')
        with pytest.raises(CaseFileError) as info:
            mps.loads_case(text)
        assert _problems(info) == [("step[0].dose", 10)]

    def test_multiline_strings_do_not_shift_lines(self) -> None:
        """Lines inside a multi-line string are not keys; later keys keep their line."""
        text = CASE.replace(
            'description = "kept through load and dump"',
            'description = """\nage = 3\n[[step]]\n"""',
        )
        text = text.replace('dose = "10 mg"', 'dose = "10 L"')
        with pytest.raises(CaseFileError) as info:
            mps.loads_case(text)
        assert _problems(info) == [("step[0].dose", 13)]

    def test_key_lines_example(self) -> None:
        """key_lines maps sections, dotted and quoted keys."""
        lines = _files.key_lines('a = 1\n[p]\n"b c" = 2\nd.e = 3\n[[s]]\nx = 1\n[[s]]\nx = 2\n')
        assert lines == {
            "a": 1,
            "p": 2,
            "p.b c": 3,
            "p.d.e": 4,
            "s[0]": 5,
            "s[0].x": 6,
            "s[1]": 7,
            "s[1].x": 8,
        }


class TestCaseFields:
    @pytest.mark.parametrize(
        ("change", "path"),
        [
            ("name = [1, 2]", "name"),
            ("description = 5", "description"),
            ("name = {}", "name"),
        ],
    )
    def test_top_level_text_is_type_checked(self, change: str, path: str) -> None:
        """name = [1, 2] is a problem, not the text '[1, 2]'."""
        text = change + "\n" + CASE.split("\n", 2)[2]
        with pytest.raises(CaseFileError) as info:
            mps.loads_case(text)
        assert [p.path for p in info.value.problems] == [path]

    @pytest.mark.parametrize("kind", ["[]", "{}", "3", "true"])
    def test_kind_of_any_type_is_a_problem(self, kind: str) -> None:
        """kind = [] is a problem on step[0].kind, not a TypeError."""
        text = CASE.replace('kind = "opioid"', f"kind = {kind}")
        with pytest.raises(CaseFileError) as info:
            mps.loads_case(text)
        assert [p.path for p in info.value.problems] == ["step[0].kind"]

    @pytest.mark.parametrize("value", ["{}", "{ a = 1 }"])
    def test_medications_table_is_not_a_list(self, value: str) -> None:
        """medications = {} is not 'takes none'."""
        text = CASE.replace("age = 70", f"age = 70\nmedications = {value}")
        with pytest.raises(CaseFileError, match="medications"):
            mps.loads_case(text)

    @pytest.mark.parametrize("fmt", ["toml", "json"])
    def test_name_and_description_round_trip(self, fmt: str) -> None:
        """description and name are kept through load and dump."""
        case = mps.loads_case(CASE)
        assert (case.name, case.description) == ("Test case", "kept through load and dump")
        again = mps.loads_case(mps.dumps_case(case, format=fmt), format=fmt)
        assert (again.name, again.description) == (case.name, case.description)

    def test_case_name_only_on_the_case_is_written(self) -> None:
        """Case.name is written even when the regimen has none."""
        case = mps.Case(mps.Patient(age=60), mps.Regimen([]), name="only here")
        assert mps.loads_case(mps.dumps_case(case)).name == "only here"

    def test_surrogate_in_python_built_case_is_written(self) -> None:
        """A string with a lone surrogate made in Python can still be written (escaped)."""
        case = mps.Case(mps.Patient(age=60), mps.Regimen([]), name="a\ud800b")
        for fmt in ("toml", "json"):
            text = mps.dumps_case(case, format=fmt)
            text.encode("utf-8")


class TestEntryPoints:
    @pytest.mark.parametrize("value", [[], "x", {}, None, 5])
    def test_validate_checks_its_regimen(self, value: object) -> None:
        """validate(<not a Regimen>) is an ArgumentError (a TypeError), not AttributeError."""
        with pytest.raises(ArgumentError, match="regimen: must be a Regimen"):
            mps.validate(value)  # type: ignore[arg-type]

    @pytest.mark.parametrize("value", [[], "x", {}, 5])
    def test_validate_checks_its_patient(self, value: object) -> None:
        """validate(regimen, <not a Patient>) is an ArgumentError."""
        with pytest.raises(ArgumentError, match="patient"):
            mps.validate(mps.Regimen([]), value)  # type: ignore[arg-type]

    def test_argument_error_is_both(self) -> None:
        """ArgumentError is an MpsAnalgesiaError and a TypeError."""
        assert issubclass(ArgumentError, mps.MpsAnalgesiaError)
        assert issubclass(ArgumentError, TypeError)
