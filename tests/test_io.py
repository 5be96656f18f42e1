"""Case files: TOML and JSON in and out; every problem at once with its key path and line."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

import mps_analgesia as mps
from mps_analgesia.errors import CaseFileError, MpsAnalgesiaError, Problem
from mps_analgesia.io import (
    case_from_dict,
    case_to_dict,
    dump_case,
    dumps_case,
    load_case,
    loads_case,
)
from strategies import cases

EXAMPLES = sorted(Path(__file__).parent.parent.joinpath("examples").glob("*.toml"))
_ids = [p.name for p in EXAMPLES]

BAD_CASE = """\
name = "five problems"
steps = []

[patient]
age = 78
weigth = "52 kg"
qtc = 440

[[step]]
kind = "opioid"
drug = "fentanil"
dose = "5 mg"
every = "4 h"

[[step]]
kind = "adjuvant"
drug = "acetaminophen"
role = "nociceptive"
dose = "1 g"
every = "6 h"

[[step]]
kind = "opioid"
drug = "morphine"
dose = "30"
every = "12 h"

[[step]]
kind = "opiod"
drug = "morphine"

[[step]]
kind = "methadone_adjuvant"
dose = "5 mg"
every = "8 h"
titration = [{ day = 7, dose = "7.5" }]

[[step]]
kind = "opioid"
drug = "morphine"
dosee = "5 mg"
every = "4 h"
"""


def _problems(exc: CaseFileError) -> dict[str, tuple[str, int | None]]:
    return {p.path: (p.message, p.line) for p in exc.problems}


class TestLoad:
    def test_at_least_one_example_per_modality(self) -> None:
        """The examples cover every step kind."""
        kinds = {s.kind for path in EXAMPLES for s in load_case(path).regimen}
        # a taper has no FHIR form yet, so no shipped example (which all round-trip through
        # FHIR) holds one; docs/case-files.md and tests/data/ show one
        assert kinds == set(mps.steps.STEP_KINDS) - {"taper"}

    @pytest.mark.parametrize("path", EXAMPLES, ids=_ids)
    def test_every_example_loads(self, path: Path) -> None:
        """Every shipped example is a valid case with a name and at least one step."""
        case = load_case(path)
        assert isinstance(case, mps.Case)
        assert case.name
        assert len(case.regimen) >= 1

    def test_multimodal_example(self) -> None:
        """The multimodal example has the seven steps of the plan, in order."""
        case = load_case("examples/mps-multimodal.toml")
        assert [s.kind for s in case.regimen] == [
            "opioid",
            "opioid",
            "methadone_adjuvant",
            "adjuvant",
            "adjuvant",
            "psoas_compartment_block",
            "radiotherapy",
        ]
        assert case.patient.egfr_ml_min_173 == 72.0
        assert case.regimen[1].prn

    @pytest.mark.parametrize("path", EXAMPLES, ids=_ids)
    def test_toml_and_json_are_the_same_structure(self, path: Path, tmp_path: Path) -> None:
        """The same data written as JSON loads to the same case as the TOML file."""
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        target = tmp_path / (path.stem + ".json")
        target.write_text(json.dumps(data), encoding="utf-8")
        assert load_case(target) == load_case(path)

    def test_loads_case_from_text(self) -> None:
        """loads_case reads TOML text and JSON text."""
        toml = "\n".join(
            ["[patient]", "age = 60", "[[step]]", 'kind = "radiotherapy"', 'total_dose = "8 Gy"']
        )
        toml += '\nsite = "L"\n'
        js = json.dumps(
            {
                "patient": {"age": 60},
                "step": [{"kind": "radiotherapy", "total_dose": "8 Gy", "site": "L"}],
            }
        )
        assert loads_case(toml) == loads_case(js, format="json")

    def test_name_defaults_to_file_stem(self, tmp_path: Path) -> None:
        """A case file without a name is named after the file."""
        path = tmp_path / "mrs-x.toml"
        path.write_text("[patient]\nage = 60\n", encoding="utf-8")
        case = load_case(path)
        assert case.name == "mrs-x"
        assert len(case.regimen) == 0

    def test_no_patient_table_means_nothing_known(self) -> None:
        """A case without [patient] has an empty Patient, not an error."""
        case = case_from_dict({"step": []})
        assert case.patient == mps.Patient()

    def test_recorded_none_and_not_recorded_are_read_apart(self) -> None:
        """medications = [] and anticoagulant = 'none' record 'takes none'; leaving the keys
        out leaves them not recorded (None)."""
        recorded = loads_case('[patient]\nmedications = []\nanticoagulant = "none"\n').patient
        assert (recorded.medications, recorded.anticoagulant) == ((), "none")
        unrecorded = loads_case("[patient]\nage = 60\n").patient
        assert (unrecorded.medications, unrecorded.anticoagulant) == (None, None)

    def test_unrecorded_status_is_not_checked_not_passed(self) -> None:
        """Tramadol and a block with no medications/anticoagulant keys: the interaction and
        anticoagulation checks are not checked (they used to read as passed)."""
        text = """
[patient]
weight = "70 kg"

[[step]]
kind = "opioid"
drug = "tramadol"
dose = "50 mg"
every = "6 h"

[[step]]
kind = "psoas_compartment_block"
drug = "ropivacaine"
concentration = "0.2 %"
bolus_volume = "20 mL"
side = "left"
"""
        report = mps.validate(loads_case(text).regimen, loads_case(text).patient)
        missing = {(n.rule, n.missing) for n in report.not_checked}
        assert ("interaction.serotonergic", "medications") in missing
        assert ("interaction.opioid-benzodiazepine", "medications") in missing
        assert ("block.anticoagulation", "anticoagulant status") in missing
        passed = {rule for rule, _ in report.passed}
        assert not passed & {
            "interaction.serotonergic",
            "interaction.opioid-benzodiazepine",
            "block.anticoagulation",
        }
        recorded = text.replace(
            'weight = "70 kg"', 'weight = "70 kg"\nmedications = []\nanticoagulant = "none"'
        )
        again = mps.validate(loads_case(recorded).regimen, loads_case(recorded).patient)
        assert {"interaction.serotonergic", "block.anticoagulation"} <= {
            rule for rule, _ in again.passed
        }

    def test_case_from_dict(self) -> None:
        """case_from_dict builds steps from plain data."""
        case = case_from_dict(
            {"step": [{"kind": "opioid", "drug": "morphine", "dose": "10 mg", "every": "4 h"}]}
        )
        assert case.regimen[0].daily_dose_mg == 60.0


class TestProblems:
    @pytest.fixture
    def error(self, tmp_path: Path) -> CaseFileError:
        path = tmp_path / "bad.toml"
        path.write_text(BAD_CASE, encoding="utf-8")
        with pytest.raises(CaseFileError) as info:
            load_case(path)
        return info.value

    def test_every_problem_is_reported_at_once(self, error: CaseFileError) -> None:
        """All seven problems of the file are in one CaseFileError, in file order."""
        assert [p.path for p in error.problems] == [
            "steps",
            "patient.weigth",
            "patient.qtc",
            "step[0].drug",
            "step[2].dose",
            "step[3].kind",
            "step[4].titration[0].dose",
            "step[5].dosee",
        ]

    def test_issue_example_message(self, error: CaseFileError) -> None:
        """A bare number reads exactly as in the issue: which unit is expected."""
        dose = next(p for p in error.problems if p.path == "step[2].dose")
        assert str(dose) == "step[2].dose: '30' has no unit; write e.g. '30 mg'"
        assert dose.line == 25

    @pytest.mark.parametrize(
        ("path", "message", "line"),
        [
            (
                "steps",
                "unknown top-level key (expected name, description, start_date, time_zone, "
                "patient, step)",
                2,
            ),
            ("patient.weigth", "unknown key for Patient; did you mean 'weight'?", 6),
            ("patient.qtc", "'440' has no unit; write e.g. '440 ms'", 7),
            ("step[0].drug", "unknown drug 'fentanil'; did you mean 'fentanyl'?", 11),
            ("step[3].kind", "'opiod' is not a step kind", 29),
            ("step[4].titration[0].dose", "'7.5' has no unit; write e.g. '7.5 mg'", 36),
            ("step[5].dosee", "unknown key for an 'opioid' step; did you mean 'dose'?", 41),
        ],
    )
    def test_problem_has_path_message_and_line(
        self, error: CaseFileError, path: str, message: str, line: int
    ) -> None:
        """Each problem has its key path, a message with the fix, and its TOML line."""
        got = _problems(error)[path]
        assert message in got[0]
        assert got[1] == line

    def test_unknown_kind_suggests(self, error: CaseFileError) -> None:
        """An unknown kind lists the kinds and suggests the closest."""
        message = _problems(error)["step[3].kind"][0]
        assert "did you mean 'opioid'?" in message
        assert "psoas_compartment_block" in message

    def test_error_text_names_file_and_line(self, error: CaseFileError) -> None:
        """str(CaseFileError) lists every problem as file:line: path: message."""
        text = str(error)
        assert text.startswith(f"{error.file}: 8 problems\n")
        assert f"{error.file}:25: step[2].dose: '30' has no unit; write e.g. '30 mg'" in text

    def test_error_is_library_and_value_error(self, error: CaseFileError) -> None:
        """CaseFileError is an MpsAnalgesiaError and a ValueError."""
        assert isinstance(error, MpsAnalgesiaError)
        assert isinstance(error, ValueError)

    @pytest.mark.parametrize(
        ("data", "path", "message"),
        [
            ({"step": [{"drug": "morphine"}]}, "step[0].kind", "is required: one of opioid"),
            ({"step": [{"kind": "x-ray"}]}, "step[0].kind", "'x-ray' is not a step kind"),
            ({"step": ["morphine"]}, "step[0]", "must be a table with a 'kind'"),
            ({"step": {"kind": "opioid"}}, "step", "must be an array of tables"),
            ({"patient": "old"}, "patient", "must be a table"),
            (
                {"patient": {"anticoagulant": "apixaban"}},
                "patient.anticoagulant",
                "must be a table",
            ),
            (
                {"patient": {"anticoagulant": "no"}},
                "patient.anticoagulant",
                "or 'none' when the patient is recorded as taking no anticoagulant",
            ),
            ({"patient": {"medications": "sertraline"}}, "patient.medications", "[] when"),
            (
                {"patient": {"anticoagulant": {"drug": "apixaban", "dose": "5 mL"}}},
                "patient.anticoagulant.dose",
                "'5 mL' is a volume, not a mass",
            ),
            (
                {"patient": {"anticoagulant": {"drug": " "}}},
                "patient.anticoagulant.drug",
                "is required",
            ),
            (
                {"patient": {"anticoagulant": {"drug": "apixaban", "last_dose_ago": "-1 h"}}},
                "patient.anticoagulant.last_dose_ago",
                "cannot be negative",
            ),
            (
                {"patient": {"anticoagulant": {"drug": "apixaban", "dos": "5 mg"}}},
                "patient.anticoagulant.dos",
                "did you mean 'dose'?",
            ),
            ({"patient": {"age": "old"}}, "patient.age", "must be a number of years"),
            (
                {
                    "step": [
                        {"kind": "opioid", "drug": "acetaminophen", "dose": "1 g", "once": True}
                    ]
                },
                "step[0].drug",
                "acetaminophen is not an opioid; use an 'adjuvant' step",
            ),
            (
                {
                    "step": [
                        {"kind": "opioid", "drug": "fentanyl", "route": "oral", "rate": "25 mcg/h"}
                    ]
                },
                "step[0].route",
                "fentanyl has no oral route",
            ),
            (
                {
                    "step": [
                        {"kind": "opioid", "drug": "fentanyl", "route": "transdermal", "rate": 25}
                    ]
                },
                "step[0].rate",
                "'25' has no unit; write e.g. '25 mcg/h'",
            ),
            (
                {
                    "step": [
                        {
                            "kind": "methadone_adjuvant",
                            "dose": "5 mg",
                            "every": "8 h",
                            "titration": 7,
                        }
                    ]
                },
                "step[0].titration",
                "must be a list",
            ),
            (
                {
                    "step": [
                        {
                            "kind": "methadone_adjuvant",
                            "dose": "5 mg",
                            "every": "8 h",
                            "titration": [7],
                        }
                    ]
                },
                "step[0].titration[0]",
                "must be a table",
            ),
            (
                {
                    "step": [
                        {
                            "kind": "methadone_adjuvant",
                            "dose": "5 mg",
                            "every": "8 h",
                            "titration": [{"day": 7, "dose": "10 mg"}, {"day": 3, "dose": "15 mg"}],
                        }
                    ]
                },
                "step[0].titration[1].day",
                "day 3 must come after day 7",
            ),
            (
                {"step": [{"kind": "radiotherapy", "total_dose": "20 Gy", "fractions": 5}]},
                "step[0].site",
                "is required",
            ),
        ],
    )
    def test_problem_paths(self, data: dict[str, Any], path: str, message: str) -> None:
        """Problems in data name their key path and say how to fix them."""
        with pytest.raises(CaseFileError) as info:
            case_from_dict(data)
        got = _problems(info.value)
        assert path in got, got
        assert message in got[path][0]

    def test_bad_drug_reported_with_other_problems_of_its_step(self) -> None:
        """A step with a bare-number dose and a misspelt drug reports both, in line order."""
        text = '[[step]]\nkind = "opioid"\ndrug = "fentanil"\ndose = "30"\nevery = "12 h"\n'
        with pytest.raises(CaseFileError) as info:
            loads_case(text)
        assert [(p.path, p.line) for p in info.value.problems] == [
            ("step[0].drug", 3),
            ("step[0].dose", 4),
        ]

    def test_not_a_table(self) -> None:
        """A JSON file holding a list is refused."""
        with pytest.raises(CaseFileError, match="must hold a table"):
            loads_case("[1, 2]", format="json")

    def test_invalid_toml(self) -> None:
        """Invalid TOML is one problem with its line."""
        with pytest.raises(CaseFileError) as info:
            loads_case('[patient]\nage = 78\nweight = "52 kg\n', file="x.toml")
        (problem,) = info.value.problems
        assert "is not valid TOML" in problem.message
        assert problem.line == 3
        assert str(info.value).startswith("x.toml: 1 problem\n  x.toml:3: is not valid TOML")

    def test_invalid_json(self, tmp_path: Path) -> None:
        """Invalid JSON is one problem with its line."""
        path = tmp_path / "bad.json"
        path.write_text('{\n  "patient": {\n    "age": 78,\n  }\n}\n', encoding="utf-8")
        with pytest.raises(CaseFileError) as info:
            load_case(path)
        (problem,) = info.value.problems
        assert "is not valid JSON" in problem.message
        assert problem.line == 4

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file raises CaseFileError saying it cannot be read."""
        with pytest.raises(CaseFileError, match="cannot be read") as info:
            load_case(tmp_path / "nope.toml")
        assert info.value.file.endswith("nope.toml")

    def test_not_utf8(self, tmp_path: Path) -> None:
        """A file that is not UTF-8 text is refused."""
        path = tmp_path / "latin1.toml"
        path.write_bytes("[patient]\nsex = 'fémale'\n".encode("latin-1"))
        with pytest.raises(CaseFileError, match="not UTF-8"):
            load_case(path)

    def test_unknown_format(self) -> None:
        """Only toml and json are formats."""
        with pytest.raises(CaseFileError, match="unknown format 'yaml'"):
            loads_case("a: 1", format="yaml")

    def test_problem_str(self) -> None:
        """A Problem prints as 'path: message', or just the message without a path."""
        assert str(Problem("step[0].dose", "bad", 3)) == "step[0].dose: bad"
        assert str(Problem("", "is not valid TOML")) == "is not valid TOML"


class TestDump:
    @pytest.mark.parametrize("fmt", ["toml", "json"])
    @pytest.mark.parametrize("path", EXAMPLES, ids=_ids)
    def test_dump_load_round_trip(self, path: Path, fmt: str, tmp_path: Path) -> None:
        """dump_case(load_case(f)) loads back equal, in TOML and in JSON."""
        case = load_case(path)
        target = tmp_path / f"case.{fmt}"
        text = dump_case(case, target)
        assert target.read_text(encoding="utf-8") == text
        again = load_case(target)
        assert again == case
        assert dumps_case(again, format=fmt) == text

    def test_dump_without_path_returns_text(self) -> None:
        """dump_case(case) returns TOML text; format='json' returns JSON."""
        case = load_case("examples/fentanyl-patch.toml")
        assert dump_case(case).startswith('name = "Transdermal fentanyl"\n')
        assert json.loads(dump_case(case, format="json"))["step"][0]["rate"] == "25 mcg/h"

    def test_case_to_dict_writes_quantities_as_text(self) -> None:
        """Quantities are written as strings with units, keys as the attrs field names."""
        data = case_to_dict(load_case("examples/mps-multimodal.toml"))
        assert data["patient"]["egfr"] == "72 mL/min/1.73m2"
        methadone = data["step"][2]
        assert methadone["kind"] == "methadone_adjuvant"
        assert methadone["titration"] == [
            {"day": 7, "dose": "7.5 mg"},
            {"day": 14, "dose": "10 mg"},
        ]
        block = data["step"][5]
        assert (block["concentration"], block["infusion_rate"]) == ("0.2 %", "6 mL/h")

    @pytest.mark.parametrize("medications", [None, [], ["sertraline"]])
    @pytest.mark.parametrize("anticoagulant", [None, "none", {"drug": "apixaban", "dose": "5 mg"}])
    def test_recorded_and_unrecorded_states_round_trip(
        self, medications: Any, anticoagulant: Any
    ) -> None:
        """Not recorded, recorded as none, and recorded values each load back as written."""
        case = mps.Case(
            mps.Patient(medications=medications, anticoagulant=anticoagulant), mps.Regimen([])
        )
        for fmt in ("toml", "json"):
            text = dumps_case(case, format=fmt)
            again = loads_case(text, format=fmt)
            assert again == case
            assert again.patient.medications == case.patient.medications
            assert again.patient.anticoagulant == case.patient.anticoagulant
        toml = dumps_case(case)
        assert ("medications = []" in toml) is (medications == [])
        assert ('anticoagulant = "none"' in toml) is (anticoagulant == "none")
        assert ("medications" in toml) is (medications is not None)

    def test_control_characters_in_text_round_trip(self) -> None:
        """Notes and sites with control characters (DEL included) survive a TOML round trip."""
        step = mps.RadiotherapyStep(total_dose="8 Gy", site='L3 "left"\x7f\t\n\\')
        case = mps.Case(mps.Patient(), mps.Regimen([step]))
        for fmt in ("toml", "json"):
            assert loads_case(dumps_case(case, format=fmt), format=fmt) == case

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(cases())
    def test_generated_cases_round_trip(self, case: mps.Case) -> None:
        """Any valid case written as TOML or JSON reads back equal."""
        for fmt in ("toml", "json"):
            text = dumps_case(case, format=fmt)
            again = loads_case(text, format=fmt)
            assert again == case
            assert dumps_case(again, format=fmt) == text


class TestEveryProblemAtOnce:
    """Bad choice, range and sign fields are all reported together, not one per table."""

    def test_patient_and_step_field_problems_all_reported(self) -> None:
        """age, weight, hepatic impairment, sex, route, dose and every are each reported."""
        text = (
            '[patient]\nage = 200\nweight = 52\nhepatic_impairment = "sometimes"\nsex = "q"\n\n'
            '[[step]]\nkind = "opioid"\ndrug = "morphine"\nroute = "orall"\n'
            'dose = "-5 mg"\nevery = "4"\n'
        )
        with pytest.raises(mps.CaseFileError) as info:
            mps.loads_case(text)
        paths = [p.path for p in info.value.problems]
        assert paths == [
            "patient.age",
            "patient.weight",
            "patient.hepatic_impairment",
            "patient.sex",
            "step[0].route",
            "step[0].dose",
            "step[0].every",
        ]
        assert [p.line for p in info.value.problems] == [2, 3, 4, 5, 10, 11, 12]

    def test_round_trip_without_a_name_key(self) -> None:
        """A file with no `name` key dumps and loads back equal (the stem is display only)."""
        case = mps.load_case(Path(__file__).parent.parent / "examples" / "psoas-block.toml")
        text = mps.dumps_case(mps.Case(case.patient, mps.Regimen(case.regimen.steps)))
        again = mps.loads_case(text)
        assert again.regimen == mps.Regimen(case.regimen.steps)
        assert again == mps.Case(case.patient, mps.Regimen(case.regimen.steps))
