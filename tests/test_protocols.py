"""Protocols as data: loading, the check language, instantiation, and bad protocol files."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mps_analgesia as mps
from mps_analgesia import _catalog
from mps_analgesia.errors import ProtocolError, UnknownNameError
from mps_analgesia.protocols import (
    CHECK_FIELDS,
    CHECK_OPS,
    Check,
    InstantiatedPlan,
    Protocol,
    ProtocolFileError,
    list_protocols,
    load_protocol,
    loads_protocol,
    protocol_dirs,
    protocol_from_dict,
)
from mps_analgesia.protocols.checks import _Facts
from strategies import patients

REPO = Path(__file__).resolve().parents[1]
PROTOCOL_DIR = REPO / "src" / "mps_analgesia" / "data" / "protocols"
REFERENCE = REPO.parent / "shared" / "reference" / "clinical-facts.md"  # beside the clone

SHIPPED = (
    "agar-2004-mechanism-directed",
    "astro-2017-palliative-radiotherapy",
    "psoas-compartment-block",
    "stevens-2010-polymodal",
    "takase-2015-methadone-adjuvant",
    "yoshioka-2025-nociceptive",
)


def _mr(drug: str, dose: str) -> mps.OpioidStep:
    return mps.OpioidStep(drug=drug, formulation="modified-release", dose=dose, every="12 h")


# ---- the four reference patients ---------------------------------------------------------------
#: name -> (patient, current regimen).  Each records its other medicines and anticoagulant
#: status (none, or apixaban), so the checks that read them can run.
PATIENTS: dict[str, tuple[mps.Patient, mps.Regimen]] = {
    # a frail 45 kg 78-year-old with eGFR 25, on no opioid
    "frail": (
        mps.Patient(
            age=78,
            sex="female",
            weight="45 kg",
            egfr="25 mL/min/1.73m2",
            medications=[],
            anticoagulant="none",
        ),
        mps.Regimen([]),
    ),
    # an 80 kg opioid-tolerant adult on 200 mg/day oral morphine
    "tolerant": (
        mps.Patient(
            age=60,
            sex="male",
            weight="80 kg",
            egfr="90 mL/min/1.73m2",
            qtc="420 ms",
            opioid_tolerant=True,
            medications=[],
            anticoagulant="none",
        ),
        mps.Regimen([_mr("morphine", "100 mg")]),
    ),
    # a patient with QTc 480 ms (on oxycodone, 120 MME/day)
    "qtc480": (
        mps.Patient(
            age=65,
            sex="female",
            weight="60 kg",
            egfr="70 mL/min/1.73m2",
            qtc="480 ms",
            opioid_tolerant=True,
            medications=[],
            anticoagulant="none",
        ),
        mps.Regimen([_mr("oxycodone", "40 mg")]),
    ),
    # a patient on apixaban 5 mg twice daily, last dose 14 h ago (on oxycodone, 60 MME/day)
    "apixaban": (
        mps.Patient(
            age=70,
            sex="male",
            weight="70 kg",
            egfr="60 mL/min/1.73m2",
            qtc="430 ms",
            opioid_tolerant=True,
            medications=[],
            anticoagulant={
                "drug": "apixaban",
                "dose": "5 mg",
                "every": "12 h",
                "last_dose_ago": "14 h",
            },
        ),
        mps.Regimen([_mr("oxycodone", "20 mg")]),
    ),
}

_BM = ("warning", "opioid.breakthrough-missing")
#: protocol -> patient -> (status, errors and warnings expected from validate()).
#: The regular opioids of the fixtures have no PRN step, so opioid.breakthrough-missing is
#: expected wherever a regular strong opioid is continued.
EXPECTED: dict[str, dict[str, tuple[str, set[tuple[str, str]]]]] = {
    "agar-2004-mechanism-directed": {
        "frail": ("eligible", set()),
        "tolerant": ("eligible", {_BM}),
        "qtc480": ("eligible", {_BM}),
        "apixaban": ("eligible", {_BM}),
    },
    "astro-2017-palliative-radiotherapy": {
        "frail": ("eligible", set()),
        "tolerant": ("eligible", {_BM}),
        "qtc480": ("eligible", {_BM}),
        "apixaban": ("eligible", {_BM}),
    },
    "psoas-compartment-block": {
        "frail": ("eligible", set()),
        "tolerant": ("eligible", {_BM}),
        "qtc480": ("eligible", {_BM}),
        # apixaban 5 mg 14 h ago: the 72 h interval is not met, and validate() says so too
        "apixaban": ("not eligible", {("error", "block.anticoagulation"), _BM}),
    },
    "stevens-2010-polymodal": {
        "frail": ("eligible", set()),
        "tolerant": ("eligible", {_BM}),
        "qtc480": ("eligible", {_BM}),
        # the block is left out (requires not met), so no anticoagulation error remains
        "apixaban": ("eligible", {_BM}),
    },
    "takase-2015-methadone-adjuvant": {
        # no opioid: 0 MME/day is below 60, and no starting dose exists below 60
        "frail": ("not eligible", set()),
        "tolerant": ("eligible", {_BM}),
        # QTc 480 ms: the plan is shown for review and validate() warns
        "qtc480": ("not eligible", {("warning", "methadone.qtc-prolonged"), _BM}),
        "apixaban": ("eligible", {_BM}),
    },
    "yoshioka-2025-nociceptive": {
        "frail": ("eligible", set()),
        # already on a regular strong opioid: not eligible; tramadol PRN next to it
        "tolerant": ("not eligible", {("warning", "opioid.breakthrough-dose")}),
        "qtc480": ("not eligible", set()),
        "apixaban": ("not eligible", {("warning", "opioid.breakthrough-dose")}),
    },
}


def _unguarded_clinical(protocol: Protocol) -> bool:
    return any(c.field == "clinical" and not c.when for c in protocol.eligibility)


def _clinical_ids(protocol: Protocol) -> list[str]:
    checks = [*protocol.eligibility, *protocol.contraindication, *protocol.caution]
    checks += [c for s in protocol.step for c in (*s.when, *s.requires)]
    return sorted({c.id for c in checks if c.field == "clinical"})


def _choices(protocol: Protocol, **extra: Any) -> dict[str, Any]:
    choices: dict[str, Any] = {"confirm": _clinical_ids(protocol), **extra}
    if any(s.needs_side for s in protocol.step):
        choices.setdefault("side", "left")
    return choices


def _plan(pid: str, patient_name: str, **extra: Any) -> InstantiatedPlan:
    protocol = load_protocol(pid)
    patient, regimen = PATIENTS[patient_name]
    return protocol.instantiate(patient, regimen, _choices(protocol, **extra))


def step_id(plan: InstantiatedPlan, step: Any) -> str:
    """The template id a plan step came from."""
    return next(sid for sid, s in zip(plan.step_ids, plan.regimen, strict=True) if s is step)


def _codes(report: Any) -> set[tuple[str, str]]:
    return {(f.severity, f.code) for f in report.findings if f.severity != "info"}


# ---- loading ------------------------------------------------------------------------------------


class TestShippedProtocols:
    def test_the_six_protocols_are_listed(self) -> None:
        """list_protocols() returns exactly the six shipped protocols, sorted by id."""
        assert tuple(p.id for p in list_protocols()) == SHIPPED

    @pytest.mark.parametrize("pid", SHIPPED)
    def test_loads_by_id_and_path(self, pid: str) -> None:
        """Each protocol loads by id and by path, and its id is its file name."""
        by_id = load_protocol(pid)
        by_path = load_protocol(PROTOCOL_DIR / f"{pid}.toml")
        assert by_id.id == pid == by_path.id
        assert by_id == by_path

    @pytest.mark.parametrize("pid", SHIPPED)
    def test_metadata(self, pid: str) -> None:
        """Each protocol is a draft with an evidence statement and sources that exist."""
        p = load_protocol(pid)
        assert p.status == "draft"
        assert re.fullmatch(r"\d+\.\d+\.\d+", p.version)
        assert p.evidence.level in ("case-reports-and-series", "extrapolated")
        assert "case report" in p.evidence.summary.lower()
        assert p.indication
        assert set(p.source_ids) <= set(_catalog.sources())
        assert all(s.sources for s in p.step)

    @pytest.mark.parametrize("pid", SHIPPED)
    def test_escalation_targets_exist(self, pid: str) -> None:
        """Every protocol named as an escalation target is a shipped protocol."""
        for e in load_protocol(pid).escalation:
            assert set(e.to) <= set(SHIPPED), e.to

    @pytest.mark.skipif(not REFERENCE.is_file(), reason="reference notes not available")
    @pytest.mark.parametrize("pid", SHIPPED)
    def test_every_quantity_number_is_in_the_reference(self, pid: str) -> None:
        """Every number written with a unit in a protocol file appears in the reference notes
        (or is the stated product of reference numbers)."""
        reference = REFERENCE.read_text(encoding="utf-8")
        derived = {"650": "2 Ultracet tablets × 325 mg acetaminophen (label: 2 tablets per dose)"}
        text = (PROTOCOL_DIR / f"{pid}.toml").read_text(encoding="utf-8")
        numbers = set(re.findall(r'"(\d+(?:\.\d+)?) (?:mg|mL|h|day|week|ms|Gy|MME|%)', text))
        missing = sorted(
            n
            for n in numbers
            if n not in derived and not re.search(rf"(?<![\d.]){re.escape(n)}", reference)
        )
        assert missing == []

    def test_protocol_dirs_finds_the_package_data(self) -> None:
        """The shipped protocols are package data under data/protocols/."""
        assert [Path(str(d)) for d in protocol_dirs()] == [PROTOCOL_DIR]

    def test_installed_wheel_layout(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Installed from a wheel, protocols load from mps_analgesia/data/protocols."""
        from importlib import resources

        package = tmp_path / "site-packages" / "mps_analgesia"
        (package / "data" / "protocols").mkdir(parents=True)
        source = PROTOCOL_DIR / "psoas-compartment-block.toml"
        target = package / "data" / "protocols" / source.name
        target.write_text(source.read_text(), encoding="utf-8")
        monkeypatch.setattr(resources, "files", lambda _name: package)
        assert [Path(str(d)) for d in protocol_dirs()] == [package / "data" / "protocols"]
        assert [p.id for p in list_protocols()] == ["psoas-compartment-block"]

    def test_unknown_id_suggests(self) -> None:
        """An unknown id raises UnknownNameError with a close suggestion."""
        with pytest.raises(UnknownNameError, match="takase-2015-methadone-adjuvant"):
            load_protocol("takase-2015-methadone")

    def test_json_protocol_loads(self, tmp_path: Path) -> None:
        """A protocol written as JSON loads like its TOML source."""
        data = tomllib.loads((PROTOCOL_DIR / "psoas-compartment-block.toml").read_text())
        path = tmp_path / "block.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        assert load_protocol(path) == load_protocol("psoas-compartment-block")

    def test_missing_file_is_reported(self, tmp_path: Path) -> None:
        """A path that cannot be read raises ProtocolFileError, not OSError."""
        with pytest.raises(ProtocolFileError, match="cannot be read"):
            load_protocol(tmp_path / "nope.toml")


class TestDocumentation:
    def test_the_format_page_names_every_key_field_and_operator(self) -> None:
        """docs/protocols.md documents every check field, operator, start method, monitoring
        kind, template key and shipped protocol."""
        from mps_analgesia.protocols import MONITORING_KINDS, START_METHODS
        from mps_analgesia.protocols.reader import _TEMPLATE_KEYS

        text = (REPO / "docs" / "protocols.md").read_text(encoding="utf-8")
        ops = {op for ops in CHECK_OPS.values() for op in ops}
        names = {*CHECK_FIELDS, *ops, *START_METHODS, *MONITORING_KINDS, *_TEMPLATE_KEYS, *SHIPPED}
        missing = sorted(n for n in names if f"`{n}`" not in text)
        assert missing == []

    def test_the_examples_of_the_format_page_run(self) -> None:
        """Every >>> example of docs/protocols.md gives the output printed there."""
        import doctest

        result = doctest.testfile(
            str(REPO / "docs" / "protocols.md"),
            module_relative=False,
            optionflags=doctest.ELLIPSIS,
            verbose=False,
        )
        assert result.attempted >= 3
        assert result.failed == 0


# ---- bad files ----------------------------------------------------------------------------------

BAD = """\
id = "Bad Protocol"
title = "A bad protocol"
version = "one"
status = "drafted"
indication = "testing"
colour = "blue"

[evidence]
level = "case-reports-and-series"
summary = "none"
sources = ["no-such-source"]

[[phase]]
id = "only"
title = "Only"

[[eligibility]]
field = "qtc"
op = "<"
value = "450"
text = "QTc below 450"

[[eligibility]]
field = "qtcc"
op = "<"
value = "450 ms"
text = "typo"
source = "aps-cpdd-2014"
level = "V"

[[step]]
id = "patch"
phase = "only"
kind = "opioid"
title = "An oral patch"
drug = "fentanyl"
route = "oral"
rate = "25 mcg/h"
sources = ["stevens-2010"]
level = "V"

[[step]]
id = "dose"
phase = "missing-phase"
kind = "adjuvant"
title = "A dose without provenance"
drug = "gabapentin"
role = "neuropathic"
dose = "300 mg"
every = "8 h"
sources = ["stevens-2010"]
level = "X"
dose_range = { min = "900 mg/day", max = "3600 mg/day" }
after = ["nowhere"]
"""


class TestBadProtocolFiles:
    def test_every_problem_is_reported_with_path_and_line(self) -> None:
        """A bad file raises one ProtocolFileError listing every problem with key path and line."""
        with pytest.raises(ProtocolFileError) as info:
            loads_protocol(BAD, file="bad.toml")
        found = {(p.path, p.line) for p in info.value.problems}
        expected = {
            ("id", 1),
            ("version", 3),
            ("status", 4),
            ("colour", 6),
            ("evidence.sources[0]", 11),
            ("eligibility[0].source", 17),
            ("eligibility[0].level", 17),
            ("eligibility[0].value", 20),
            ("eligibility[1].field", 24),
            ("step[0].route", 37),
            ("step[1].phase", 44),
            ("step[1].level", 52),
            ("step[1].dose_range.source", 53),
            ("step[1].dose_range.level", 53),
            ("step[1].after[0]", 54),
        }
        assert found == expected, str(info.value)
        text = str(info.value)
        assert text.startswith("bad.toml: 15 problems")
        assert "'450' has no unit" in text
        assert "did you mean 'qtc'?" in text
        assert "fentanyl has no oral route" in text

    def test_invalid_toml_gives_the_line(self) -> None:
        """Text that is not TOML is reported with its line."""
        with pytest.raises(ProtocolFileError) as info:
            loads_protocol('id = "x"\ntitle = \n')
        assert info.value.problems[0].line == 2

    def test_invalid_json(self) -> None:
        """Text that is not JSON is reported, not raised as JSONDecodeError."""
        with pytest.raises(ProtocolFileError, match="not valid JSON"):
            loads_protocol("{", format="json")

    def test_not_a_table(self) -> None:
        """Data that is not a table is refused."""
        with pytest.raises(ProtocolFileError, match="must hold a table"):
            protocol_from_dict(["x"])  # type: ignore[arg-type]

    def test_choice_groups_need_one_default(self) -> None:
        """Two defaults in a group, or none without 'when', are problems."""
        base = tomllib.loads((PROTOCOL_DIR / "psoas-compartment-block.toml").read_text())
        base["step"][2]["default"] = True
        with pytest.raises(ProtocolFileError, match="has two defaults"):
            protocol_from_dict(base)
        base["step"][1]["default"] = False
        base["step"][2]["default"] = False
        with pytest.raises(ProtocolFileError, match="needs a default"):
            protocol_from_dict(base)

    def test_from_ome_needs_methadone_and_a_schedule(self) -> None:
        """A from_ome start on another drug, or without a schedule, is refused."""
        base = tomllib.loads((PROTOCOL_DIR / "takase-2015-methadone-adjuvant.toml").read_text())
        step = base["step"][1]
        del step["every"]
        with pytest.raises(ProtocolFileError, match="needs the step's schedule"):
            protocol_from_dict(base)
        step["every"] = "8 h"
        step["kind"] = "opioid"
        step["drug"] = "morphine"
        with pytest.raises(ProtocolFileError, match="starts methadone only"):
            protocol_from_dict(base)

    def test_clinical_check_needs_an_id(self) -> None:
        """A clinical check without an id cannot be confirmed, so it is refused."""
        base = tomllib.loads((PROTOCOL_DIR / "yoshioka-2025-nociceptive.toml").read_text())
        del base["eligibility"][0]["id"]
        with pytest.raises(ProtocolFileError, match="clinical check needs an id"):
            protocol_from_dict(base)

    def test_titration_interval_in_whole_days(self) -> None:
        """A titration interval that is not a whole number of days is refused."""
        base = tomllib.loads((PROTOCOL_DIR / "agar-2004-mechanism-directed.toml").read_text())
        baclofen = next(s for s in base["step"] if s["id"] == "baclofen")
        baclofen["titration"]["interval"] = "36 h"
        with pytest.raises(ProtocolFileError, match="whole number of days"):
            protocol_from_dict(base)


# ---- the check language -------------------------------------------------------------------------


def _check(**kw: Any) -> Check:
    data = {"text": "t", **kw}
    if "value" in data and not isinstance(data["value"], bool | list):
        data.setdefault("source", "aps-cpdd-2014")
        data.setdefault("level", "V")
    proto = tomllib.loads((PROTOCOL_DIR / "psoas-compartment-block.toml").read_text())
    proto["eligibility"] = [data]
    return protocol_from_dict(proto).eligibility[0]


def _facts(patient: mps.Patient, current: mps.Regimen | None = None) -> _Facts:
    return _Facts(patient, current, frozenset({"confirmed-id"}), "cdc-2022")


class TestCheckLanguage:
    def test_every_field_has_operators(self) -> None:
        """Each check field's kind has an operator list."""
        assert {f.kind for f in CHECK_FIELDS.values()} <= set(CHECK_OPS)

    @pytest.mark.parametrize(
        ("qtc", "outcome"), [("420 ms", "met"), ("450 ms", "not met"), (None, "unknown")]
    )
    def test_comparison_met_not_met_unknown(self, qtc: str | None, outcome: str) -> None:
        """qtc < 450 ms is met, not met, or unknown when no QTc is recorded."""
        check = _check(field="qtc", op="<", value="450 ms")
        assert check.evaluate(_facts(mps.Patient(qtc=qtc))).outcome == outcome

    def test_if_unknown_turns_unknown_into_not_met(self) -> None:
        """'QTc known and < 450 ms' is written with if_unknown = 'not met'."""
        check = _check(field="qtc", op="<", value="450 ms", if_unknown="not met")
        assert check.evaluate(_facts(mps.Patient())).outcome == "not met"

    def test_units_are_converted(self) -> None:
        """A threshold in seconds compares with a QTc in ms."""
        check = _check(field="qtc", op=">=", value="0.5 s")
        assert check.evaluate(_facts(mps.Patient(qtc="500 ms"))).outcome == "met"

    def test_recorded_no_anticoagulant_is_absent(self) -> None:
        """anticoagulant = 'none': its fields are absent, so comparisons are not met."""
        none = mps.Patient(anticoagulant="none")
        check = _check(field="anticoagulant.last_dose_ago", op=">=", value="72 h")
        result = check.evaluate(_facts(none))
        assert (result.outcome, result.observed) == ("not met", "no anticoagulant (recorded)")
        absent = _check(field="anticoagulant", op="absent")
        assert absent.evaluate(_facts(none)).outcome == "met"
        present = _check(field="anticoagulant", op="present")
        assert present.evaluate(_facts(none)).outcome == "not met"

    def test_unrecorded_anticoagulant_is_unknown(self) -> None:
        """With no anticoagulant status recorded, every anticoagulant check is unknown."""
        check = _check(field="anticoagulant.last_dose_ago", op=">=", value="72 h")
        result = check.evaluate(_facts(mps.Patient()))
        assert (result.outcome, result.observed) == (
            "unknown",
            "anticoagulant status not recorded",
        )
        for op in ("absent", "present"):
            assert _check(field="anticoagulant", op=op).evaluate(_facts(mps.Patient())).outcome == (
                "unknown"
            )

    def test_unrecorded_medications_are_unknown(self) -> None:
        """Medicines not recorded: contains_any and contains_none are unknown; [] is known."""
        for op in ("contains_any", "contains_none"):
            check = _check(field="medications", op=op, value=["amiodarone"])
            result = check.evaluate(_facts(mps.Patient()))
            assert (result.outcome, result.observed) == ("unknown", "not recorded")
        recorded = _check(field="medications", op="contains_none", value=["amiodarone"])
        result = recorded.evaluate(_facts(mps.Patient(medications=[])))
        assert (result.outcome, result.observed) == ("met", "none (recorded)")

    def test_guard_not_met_makes_check_not_applicable(self) -> None:
        """A 'when' guard that is not met makes the check not applicable."""
        guard = {"field": "anticoagulant.drug", "op": "==", "value": "apixaban", "text": "g"}
        check = _check(field="anticoagulant.last_dose_ago", op=">=", value="72 h", when=[guard])
        patient = mps.Patient(anticoagulant={"drug": "warfarin", "last_dose_ago": "1 h"})
        assert check.evaluate(_facts(patient)).outcome == "not applicable"

    def test_unknown_guard_is_harmless_only_when_met(self) -> None:
        """An unreadable guard keeps a result only when it is harmless either way: a met
        eligibility check, or an unmet contraindication; otherwise the result is unknown."""
        guard = {
            "field": "anticoagulant.dose",
            "op": ">",
            "value": "2.5 mg",
            "text": "g",
            "source": "asra-2018",
            "level": "V",
        }
        check = _check(field="anticoagulant.last_dose_ago", op=">=", value="72 h", when=[guard])
        late = mps.Patient(anticoagulant={"drug": "apixaban", "last_dose_ago": "80 h"})
        early = mps.Patient(anticoagulant={"drug": "apixaban", "last_dose_ago": "10 h"})
        assert check.evaluate(_facts(late)).outcome == "met"
        assert check.evaluate(_facts(early)).outcome == "unknown"
        assert check.evaluate(_facts(late), "contraindication").outcome == "unknown"
        assert check.evaluate(_facts(early), "contraindication").outcome == "not met"

    def test_medications_and_text(self) -> None:
        """contains_any, contains_none and 'in' compare names case-insensitively."""
        patient = mps.Patient(medications=["Amiodarone"], hepatic_impairment="mild")
        facts = _facts(patient)
        assert (
            _check(field="medications", op="contains_any", value=["amiodarone"])
            .evaluate(facts)
            .outcome
            == "met"
        )
        assert (
            _check(field="medications", op="contains_none", value=["sotalol"])
            .evaluate(facts)
            .outcome
            == "met"
        )
        assert (
            _check(field="hepatic_impairment", op="in", value=["Mild"]).evaluate(facts).outcome
            == "met"
        )

    def test_current_regimen_facts(self) -> None:
        """current_ome is computed from the current regimen; unknown without one."""
        check = _check(field="current_ome", op=">=", value="60 MME/day")
        on_morphine = mps.Regimen([_mr("morphine", "30 mg")])
        assert check.evaluate(_facts(mps.Patient(), on_morphine)).outcome == "met"
        assert check.evaluate(_facts(mps.Patient(), mps.Regimen([]))).outcome == "not met"
        assert check.evaluate(_facts(mps.Patient(), None)).outcome == "unknown"
        strong = _check(field="current_strong_opioid", op="==", value=True)
        assert strong.evaluate(_facts(mps.Patient(), on_morphine)).outcome == "met"

    def test_renal_function_prefers_creatinine_clearance(self) -> None:
        """renal_function reads the creatinine clearance before the eGFR."""
        check = _check(field="renal_function", op="<", value="30 mL/min")
        patient = mps.Patient(creatinine_clearance="25 mL/min", egfr="40 mL/min/1.73m2")
        result = check.evaluate(_facts(patient))
        assert result.outcome == "met"
        assert "creatinine clearance" in result.observed

    def test_clinical_checks_need_confirmation(self) -> None:
        """A clinical check is unknown until its id is confirmed."""
        check = _check(field="clinical", op="confirmed", id="confirmed-id")
        other = _check(field="clinical", op="confirmed", id="other-id")
        facts = _facts(mps.Patient())
        assert check.evaluate(facts).outcome == "met"
        assert other.evaluate(facts).outcome == "unknown"

    def test_bad_operator_for_field(self) -> None:
        """An operator the field kind does not have is a problem naming the allowed ones."""
        with pytest.raises(ProtocolFileError, match="not an operator for qtc"):
            _check(field="qtc", op="contains_any", value=["x"])


# ---- instantiation for the reference patients -------------------------------------------------


class TestReferencePatients:
    @pytest.mark.parametrize("patient_name", list(PATIENTS))
    @pytest.mark.parametrize("pid", SHIPPED)
    def test_instantiates_and_validates_as_expected(self, pid: str, patient_name: str) -> None:
        """Each protocol instantiates for each reference patient with exactly the expected
        eligibility and errors/warnings from validate()."""
        plan = _plan(pid, patient_name)
        status, expected = EXPECTED[pid][patient_name]
        assert plan.status == status, plan.to_text()
        report = plan.validate()
        assert _codes(report) == expected, report.to_text()
        if status == "eligible":
            assert not report.has_errors
        json.dumps(plan.to_dict())  # the receipt is JSON-ready

    @pytest.mark.parametrize(
        ("pid", "field"),
        [
            ("psoas-compartment-block", "anticoagulant"),
            ("takase-2015-methadone-adjuvant", "medications"),
        ],
    )
    def test_unrecorded_status_leaves_eligibility_undetermined(self, pid: str, field: str) -> None:
        """The 'tolerant' patient with the anticoagulant status or the medicines not recorded:
        eligibility is undetermined, never eligible."""
        patient, regimen = PATIENTS["tolerant"]
        patient = attrs.evolve(patient, **{field: None})
        protocol = load_protocol(pid)
        plan = protocol.instantiate(patient, regimen, _choices(protocol))
        assert plan.status == "undetermined", plan.to_text()
        assert "not recorded" in plan.to_text()

    @pytest.mark.parametrize("pid", SHIPPED)
    def test_unconfirmed_clinical_checks_leave_eligibility_undetermined(self, pid: str) -> None:
        """Without confirmations, a protocol with clinical checks is never 'eligible'."""
        protocol = load_protocol(pid)
        patient, regimen = PATIENTS["tolerant"]
        choices = {"side": "right"} if any(s.needs_side for s in protocol.step) else {}
        plan = protocol.instantiate(patient, regimen, choices)
        if _unguarded_clinical(protocol):
            assert plan.status in ("undetermined", "not eligible")
            assert plan.eligible is not True
            assert any("could not be checked" in d.message for d in plan.decisions)

    def test_current_steps_come_first(self) -> None:
        """The current regimen is kept, first, with ids current[i]."""
        plan = _plan("takase-2015-methadone-adjuvant", "tolerant")
        assert plan.step_ids == ("current[0]", "methadone")
        assert plan.regimen[0] == PATIENTS["tolerant"][1][0]
        assert plan.step_for("methadone") is plan.regimen[1]
        assert plan.step_for("nothing") is None


class TestTakase:
    @pytest.mark.parametrize(
        ("dose", "expected_mg"),
        [("50 mg", 5.0), ("100 mg", 10.0), ("60 mg", 5.0), ("81 mg", 10.0)],
    )
    def test_starting_dose_from_the_label_tiers(self, dose: str, expected_mg: float) -> None:
        """Morphine 100/200/120/162 mg/day → methadone 15/30/15/30 mg/day, three times a day."""
        protocol = load_protocol("takase-2015-methadone-adjuvant")
        patient = mps.Patient(qtc="420 ms")
        plan = protocol.instantiate(patient, [_mr("morphine", dose)])
        step = plan.step_for("methadone")
        assert step is not None
        assert step.kind == "methadone_adjuvant"
        assert step.dose_mg == pytest.approx(expected_mg)
        assert step.every_h == pytest.approx(8.0)
        start = next(d for d in plan.decisions if d.action == "start-dose")
        assert "methapain-label" in start.sources
        assert "mg per dose" in start.arithmetic

    def test_label_tier_above_the_range_is_capped(self) -> None:
        """Above 390 MME/day the label gives 45 mg/day; the Takase range caps it at 30."""
        protocol = load_protocol("takase-2015-methadone-adjuvant")
        plan = protocol.instantiate(mps.Patient(qtc="420 ms"), [_mr("morphine", "250 mg")])
        step = plan.step_for("methadone")
        assert step is not None
        assert step.daily_dose_mg == pytest.approx(30.0)
        capped = [d for d in plan.decisions if d.action == "capped"]
        assert capped
        assert capped[0].sources == ("palliverse-2015",)
        assert capped[0].level == "S"

    def test_below_60_mme_no_methadone(self) -> None:
        """Below 60 MME/day the plan is not eligible and methadone is omitted, with the reason."""
        protocol = load_protocol("takase-2015-methadone-adjuvant")
        plan = protocol.instantiate(mps.Patient(qtc="420 ms"), [_mr("morphine", "20 mg")])
        assert plan.status == "not eligible"
        assert plan.step_for("methadone") is None
        omitted = [d for d in plan.decisions if d.action == "omitted" and d.step == "methadone"]
        assert omitted
        assert "60 mg/day" in omitted[0].message

    def test_no_current_regimen_is_unknown_not_zero(self) -> None:
        """Without a current regimen the OME is unknown: undetermined, methadone omitted."""
        protocol = load_protocol("takase-2015-methadone-adjuvant")
        plan = protocol.instantiate(mps.Patient(qtc="420 ms"))
        assert plan.status == "undetermined"
        assert plan.step_for("methadone") is None
        assert any(c.check.id == "ome-at-least-60" for c in plan.unknown)

    def test_no_increase_scheduled_without_a_step_size(self) -> None:
        """The label's step size is [U], so no titration point is scheduled; the rule is stated."""
        plan = _plan("takase-2015-methadone-adjuvant", "qtc480")
        step = plan.step_for("methadone")
        assert step is not None
        assert step.titration == ()
        rule = next(d for d in plan.decisions if d.action == "titration")
        assert "7 days" in rule.message

    def test_ecg_schedule(self) -> None:
        """ECG at baseline, days 14-28, and on the day the dose reaches 30 mg/day."""
        plan = _plan("takase-2015-methadone-adjuvant", "tolerant")
        ecg = [(m.when, m.day, m.until_day) for m in plan.monitoring if m.what == "ecg"]
        assert ecg[0][1:] == (0, None)
        assert ecg[1][1:] == (14, 28)
        assert ecg[2][1] == 0  # 30 mg/day from the start
        assert ecg[3][1] is None
        assert "not reached" in ecg[3][0]

    def test_contraindicated_qtc(self) -> None:
        """QTc above 500 ms is a contraindication: not eligible, and validate() errors."""
        protocol = load_protocol("takase-2015-methadone-adjuvant")
        patient = mps.Patient(qtc="510 ms")
        plan = protocol.instantiate(patient, [_mr("morphine", "100 mg")])
        assert plan.status == "not eligible"
        assert "qtc-above-500" in {c.check.id for c in plan.unmet}
        assert ("error", "methadone.qtc-contraindicated") in _codes(plan.validate())

    def test_current_methadone_is_kept_not_added_again(self) -> None:
        """Regression: a regimen already holding adjuvant methadone (the methadone-adjuvant
        example) gets no second methadone step; the decision keeps the current one for review
        against 15-30 mg/day and gives its daily dose."""
        case = mps.load_case(REPO / "examples" / "methadone-adjuvant.toml")
        protocol = load_protocol("takase-2015-methadone-adjuvant")
        plan = protocol.instantiate(case.patient, case.regimen)
        methadone = [s for s in plan.regimen if getattr(s, "drug", "") == "methadone"]
        assert len(methadone) == 1
        assert plan.step_ids == ("current[0]", "current[1]")
        assert plan.step_for("methadone") is None
        kept = next(d for d in plan.decisions if d.step == "methadone")
        assert kept.action == "continued"
        assert "methadone is already present" in kept.message
        assert "15 mg/day to 30 mg/day" in kept.message
        assert "15 mg/day, 30 mg/day from day 7" in kept.message
        assert "within the range" in kept.message
        assert not [d for d in plan.decisions if d.action == "start-dose"]
        ecg = [m for m in plan.monitoring if m.what == "ecg"]
        assert [m.day for m in ecg][:3] == [0, 14, 7]  # 30 mg/day is reached on day 7

    def test_current_methadone_as_an_opioid_step_is_kept(self) -> None:
        """Methadone written as an opioid step counts too; a dose above the range is flagged
        for review in the decision."""
        protocol = load_protocol("takase-2015-methadone-adjuvant")
        current = [
            _mr("morphine", "100 mg"),
            mps.OpioidStep(drug="methadone", dose="15 mg", every="8 h"),
        ]
        plan = protocol.instantiate(mps.Patient(qtc="420 ms"), current)
        assert [getattr(s, "drug", "") for s in plan.regimen].count("methadone") == 1
        kept = next(d for d in plan.decisions if d.step == "methadone")
        assert "ABOVE the protocol maximum of 30 mg/day" in kept.message
        assert "45 mg/day" in kept.message

    def test_tier_ome_is_day_0_and_leaves_methadone_out(self) -> None:
        """The tier's OME counts the opioids other than methadone at their day-0 doses: a
        titration to 400 mg/day of morphine on day 3 still starts from the 200 MME/day tier."""
        protocol = load_protocol("takase-2015-methadone-adjuvant")
        morphine = mps.OpioidStep(
            drug="morphine",
            formulation="modified-release",
            dose="100 mg",
            every="12 h",
            titration=[{"day": 3, "dose": "200 mg"}],
        )
        plan = protocol.instantiate(mps.Patient(qtc="420 ms"), [morphine])
        step = plan.step_for("methadone")
        assert step is not None
        assert step.daily_dose_mg == pytest.approx(30.0)  # tier >160-390, not the 45 of >390
        start = next(d for d in plan.decisions if d.action == "start-dose")
        assert "200 MME/day" in start.message
        assert "plan day 0" in start.message
        assert "tier OME: 200 MME/day" in start.arithmetic

    def test_tier_ome_receipt_names_the_methadone_left_out(self) -> None:
        """_Facts.tier_ome converts only the non-methadone opioids and says which step it
        left out; the whole-regimen OME still counts methadone."""
        current = mps.Regimen(
            [_mr("morphine", "100 mg"), mps.MethadoneAdjuvantStep(dose="10 mg", every="8 h")]
        )
        facts = _facts(mps.Patient(), current)
        value, how, receipt = facts.tier_ome()
        assert value == pytest.approx(200.0)
        assert "opioids other than methadone" in how
        assert any(line.startswith("left out: step 2 methadone") for line in receipt)
        whole, _how = facts.ome()
        assert whole is not None
        assert whole > 200.0


class TestNoDrugAddedTwice:
    def test_tramadol_already_given_is_not_added(self) -> None:
        """Yoshioka: a patient already on tramadol gets no second tramadol step."""
        protocol = load_protocol("yoshioka-2025-nociceptive")
        current = [mps.OpioidStep(drug="tramadol", dose="50 mg", every="6 h")]
        patient = mps.Patient(age=60, creatinine_clearance="80 mL/min")
        plan = protocol.instantiate(patient, current, {"confirm": _clinical_ids(protocol)})
        drugs = [s.drug for s in plan.regimen]
        assert drugs.count("tramadol") == 1
        assert "acetaminophen" in drugs
        kept = [d for d in plan.decisions if d.action == "continued" and d.step == "tramadol"]
        assert kept
        assert "200 mg/day" in kept[0].message

    def test_gabapentin_already_given_is_not_added(self) -> None:
        """Agar: current gabapentin is kept for review against the band's range."""
        protocol = load_protocol("agar-2004-mechanism-directed")
        current = [
            mps.AdjuvantStep(drug="gabapentin", role="neuropathic", dose="600 mg", every="8 h")
        ]
        patient = mps.Patient(creatinine_clearance="90 mL/min")
        plan = protocol.instantiate(patient, current, {"confirm": _clinical_ids(protocol)})
        assert [s.drug for s in plan.regimen].count("gabapentin") == 1
        kept = next(d for d in plan.decisions if d.step == "gabapentin-crcl-60")
        assert "900 mg/day to 3600 mg/day" in kept.message
        assert "1800 mg/day" in kept.message

    @pytest.mark.parametrize("pid", SHIPPED)
    def test_no_protocol_adds_a_drug_twice(self, pid: str) -> None:
        """Given a current regimen that already holds every drug the protocol would add for
        the patient, the protocol adds none of them again and keeps each one for review."""
        first = _plan(pid, "tolerant")
        added = [
            s
            for sid, s in zip(first.step_ids, first.regimen, strict=True)
            if not sid.startswith("current[") and hasattr(s, "drug")
        ]
        assert added, "the protocol adds no drug for this patient: nothing to test"
        patient, regimen = PATIENTS["tolerant"]
        current = mps.Regimen([*regimen, *added])
        protocol = load_protocol(pid)
        plan = protocol.instantiate(patient, current, _choices(protocol))
        given = {getattr(s, "drug", None) for s in current}
        again = [
            s.drug
            for sid, s in zip(plan.step_ids, plan.regimen, strict=True)
            if not sid.startswith("current[") and getattr(s, "drug", None) in given
        ]
        assert again == []
        kept = [d for d in plan.decisions if "is already present" in d.message]
        assert len(kept) >= len({s.drug for s in added})


class TestBlock:
    def test_single_shot_volume_by_weight(self) -> None:
        """0.4 mL/kg of ropivacaine 0.2 % for 45 kg is 18 mL (36 mg)."""
        plan = _plan("psoas-compartment-block", "frail")
        step = plan.step_for("single-shot")
        assert step is not None
        assert step.bolus_ml == pytest.approx(18.0)
        assert step.bolus_mg == pytest.approx(36.0)
        assert step.side == "left"
        start = next(d for d in plan.decisions if d.action == "start-dose")
        assert start.arithmetic == "0.4 mL/kg × 45 kg = 18 mL"

    def test_catheter_option(self) -> None:
        """The catheter option gives the bolus, then 6 mL/h for 48 h."""
        plan = _plan("psoas-compartment-block", "tolerant", technique="catheter", side="right")
        step = plan.step_for("catheter")
        assert step is not None
        assert (step.bolus_ml, step.infusion_ml_per_h, step.infusion_h) == (32.0, 6.0, 48.0)
        assert step.side == "right"
        assert plan.step_for("single-shot") is None

    def test_no_weight(self) -> None:
        """Without a weight: not eligible, and the block is omitted saying why."""
        protocol = load_protocol("psoas-compartment-block")
        plan = protocol.instantiate(mps.Patient(), mps.Regimen([]), {"side": "left"})
        assert plan.status == "not eligible"
        assert len(plan.regimen) == 0
        assert any("weight" in d.message for d in plan.decisions if d.action == "omitted")

    def test_apixaban_interval(self) -> None:
        """Apixaban 5 mg 14 h ago fails the 72 h check; 80 h ago passes."""
        plan = _plan("psoas-compartment-block", "apixaban")
        assert {c.check.id for c in plan.unmet} == {"apixaban-high-dose-72-h"}
        protocol = load_protocol("psoas-compartment-block")
        later = mps.Patient(
            weight="70 kg",
            anticoagulant={"drug": "apixaban", "dose": "5 mg", "last_dose_ago": "80 h"},
        )
        assert protocol.instantiate(later, None, {"side": "left"}).status == "eligible"

    def test_stevens_omits_the_block_with_the_reason(self) -> None:
        """In the polymodal protocol an unmet interval leaves the block out, citing ASRA."""
        plan = _plan("stevens-2010-polymodal", "apixaban")
        assert plan.step_for("psoas-block") is None
        omitted = [d for d in plan.decisions if d.action == "omitted" and d.step == "psoas-block"]
        assert "72 h" in omitted[0].message
        assert omitted[0].sources == ("asra-2018",)

    def test_side_is_required(self) -> None:
        """A protocol with a block refuses to guess the side."""
        protocol = load_protocol("psoas-compartment-block")
        with pytest.raises(ProtocolError, match=r"choices\['side'\] is required"):
            protocol.instantiate(mps.Patient(weight="60 kg"))
        with pytest.raises(ProtocolError, match="not one of left, right, bilateral"):
            protocol.instantiate(mps.Patient(weight="60 kg"), None, {"side": "up"})


SIDE_PROTOCOLS = (
    "astro-2017-palliative-radiotherapy",
    "psoas-compartment-block",
    "stevens-2010-polymodal",
)


def _current_block(side: str) -> mps.PsoasCompartmentBlockStep:
    return mps.PsoasCompartmentBlockStep(
        drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL", side=side
    )


class TestSideFromTheCase:
    def test_exactly_three_protocols_need_a_side(self) -> None:
        """The three shipped protocols with a block or an RT site are the ones that need it."""
        needing = {p.id for p in list_protocols() if any(s.needs_side for s in p.step)}
        assert needing == set(SIDE_PROTOCOLS)

    @pytest.mark.parametrize("pid", SIDE_PROTOCOLS)
    def test_side_from_the_current_block(self, pid: str) -> None:
        """No side choice is needed when the current regimen's block states it; it is used."""
        protocol = load_protocol(pid)
        current = mps.Regimen([_current_block("right")])
        choices = {"confirm": _clinical_ids(protocol)}
        plan = protocol.instantiate(mps.Patient(weight="70 kg", age=70), current, choices)
        assert plan.choices["side"] == "right"
        said = [
            d for d in plan.decisions if d.action == "choice" and "psoas involvement" in d.message
        ]
        assert "right" in said[0].message
        assert "current regimen step [0]" in said[0].message
        new = [
            s for sid, s in zip(plan.step_ids, plan.regimen, strict=True) if sid[:8] != "current["
        ]
        sides = {getattr(s, "side", None) for s in new} | {
            getattr(s, "site", "").split()[0] for s in new if s.kind == "radiotherapy"
        }
        assert "left" not in sides
        assert "right" in sides or pid != "astro-2017-palliative-radiotherapy"

    @pytest.mark.parametrize("pid", SIDE_PROTOCOLS)
    def test_side_from_an_assessment(self, pid: str) -> None:
        """An MpsAssessment (or its features) whose side is known states the side."""
        protocol = load_protocol(pid)
        assessment = mps.assess_mps(mps.MpsFeatures(psoas_involvement=True, side="bilateral"))
        plan = protocol.instantiate(
            mps.Patient(weight="70 kg"), mps.Regimen([]), assessment=assessment
        )
        assert plan.choices["side"] == "bilateral"
        again = protocol.instantiate(
            mps.Patient(weight="70 kg"), mps.Regimen([]), assessment=assessment.features
        )
        assert again.choices["side"] == "bilateral"

    def test_the_radiotherapy_site_takes_the_stated_side(self) -> None:
        """The RT protocol's site reads the side the current block states."""
        protocol = load_protocol("astro-2017-palliative-radiotherapy")
        plan = protocol.instantiate(
            mps.Patient(age=70), mps.Regimen([_current_block("right")]), {"schedule": "rt-20-gy-5"}
        )
        rt = plan.step_for("rt-20-gy-5")
        assert rt is not None
        assert rt.site.startswith("right")

    @pytest.mark.parametrize(
        ("choices", "current", "features", "named"),
        [
            ({"side": "left"}, ["right"], None, "choices['side']: left"),
            ({}, ["left", "right"], None, "current regimen step [1]"),
            ({}, ["left"], "right", "the MPS assessment's features: right"),
            ({"side": "bilateral"}, [], "left", "choices['side']: bilateral"),
        ],
    )
    def test_conflicting_sides_are_an_error(
        self, choices: dict[str, Any], current: list[str], features: str | None, named: str
    ) -> None:
        """Sides that disagree are refused, each source named, never one silently preferred."""
        protocol = load_protocol("psoas-compartment-block")
        regimen = mps.Regimen([_current_block(s) for s in current])
        assessment = mps.MpsFeatures(side=features) if features else None
        with pytest.raises(ProtocolError, match="stated differently") as info:
            protocol.instantiate(
                mps.Patient(weight="70 kg"), regimen, choices, assessment=assessment
            )
        assert named in str(info.value)
        assert "make them agree" in str(info.value)

    def test_agreeing_sides_are_fine(self) -> None:
        """The same side from the choice, the block and the assessment is accepted."""
        protocol = load_protocol("psoas-compartment-block")
        plan = protocol.instantiate(
            mps.Patient(weight="70 kg"),
            mps.Regimen([_current_block("left")]),
            {"side": "Left"},
            assessment=mps.MpsFeatures(side="left"),
        )
        assert plan.choices["side"] == "left"

    def test_nothing_states_it(self) -> None:
        """With no block in the regimen and no side in the assessment the side is asked for."""
        protocol = load_protocol("stevens-2010-polymodal")
        with pytest.raises(ProtocolError, match=r"choices\['side'\] is required.*nothing in"):
            protocol.instantiate(
                mps.Patient(weight="70 kg"),
                mps.Regimen([]),
                assessment=mps.MpsFeatures(psoas_involvement=True),
            )

    def test_a_bad_assessment_is_refused(self) -> None:
        """An assessment of the wrong type is a ProtocolError saying what is wanted."""
        protocol = load_protocol("psoas-compartment-block")
        with pytest.raises(ProtocolError, match="assessment must be an MpsAssessment"):
            protocol.instantiate(mps.Patient(), None, assessment={"side": "left"})  # type: ignore[arg-type]


TAPER = {"taper_percent": 25, "taper_every": "7 day", "taper_floor": "60 mg/day"}
OPIOID_DEESCALATION = (
    "agar-2004-mechanism-directed",
    "astro-2017-palliative-radiotherapy",
    "psoas-compartment-block",
    "stevens-2010-polymodal",
    "takase-2015-methadone-adjuvant",
)


def _taper_decisions(plan: InstantiatedPlan) -> list[str]:
    return [d.message for d in plan.decisions if d.action == "de-escalation"]


class TestTaperFromDeescalation:
    """The protocols' de-escalation of the opioid becomes a taper step only with stated numbers."""

    def test_the_protocols_with_an_opioid_deescalation(self) -> None:
        """Five shipped protocols reduce the opioid after a block or radiotherapy; none gives a
        percentage (so none can be compiled without the prescriber's numbers)."""
        records = {
            p.id: [d for s in p.step for d in s.deescalation if d.target == "opioid"]
            for p in list_protocols()
        }
        assert {pid for pid, found in records.items() if found} == set(OPIOID_DEESCALATION)
        assert all(not d.reduce_by_percent for found in records.values() for d in found)

    @pytest.mark.parametrize("pid", OPIOID_DEESCALATION)
    def test_without_the_numbers_no_taper_and_the_plan_says_why(self, pid: str) -> None:
        """No taper step is invented; the receipt says the reduction is a clinical choice and
        how to state it."""
        plan = _plan(pid, "tolerant")
        assert not [s for s in plan.regimen if s.kind == "taper"]
        (said,) = [m for m in _taper_decisions(plan) if "not compiled" in m]
        assert "reduce the regular opioid" in said  # the protocol's record, then why not
        assert "clinical choice to state" in said
        assert "taper_percent, taper_every, taper_floor" in said

    def test_after_radiotherapy(self) -> None:
        """20 Gy in 5 from day 0 ends on day 4: morphine 200 → 150 mg/day on day 5, 112.5 on
        day 12; the rescue dose is recomputed from the reduced dose each day."""
        protocol = load_protocol("astro-2017-palliative-radiotherapy")
        patient, current = PATIENTS["tolerant"]
        rescue_step = mps.OpioidStep(
            drug="morphine",
            formulation="immediate-release",
            dose="30 mg",
            every="2 h",
            prn=True,
            max_doses_per_24h=6,
        )
        current = mps.Regimen([*current, rescue_step])
        plan = protocol.instantiate(
            patient, current, _choices(protocol, schedule="rt-20-gy-5", **TAPER)
        )
        (taper,) = [s for s in plan.regimen if s.kind == "taper"]
        assert plan.step_for("current-opioid.taper") is taper
        assert (taper.drug, taper.after, taper.reduce_by_percent) == (
            "morphine",
            "radiotherapy",
            25,
        )
        (said,) = [m for m in _taper_decisions(plan) if "compiled into a taper" in m]
        assert "first reduction is on day 5" in said
        assert "clinical choice" in said
        days = mps.schedule(plan.regimen, days=20)
        oxy = [days[d].regular_totals_mg["morphine"] for d in (4, 5, 11, 12, 19)]
        assert oxy == pytest.approx([200, 150, 150, 112.5, 84.375])
        rescue = {d: days[d].rescues[0].recomputed_mg for d in (4, 5, 12)}
        assert rescue == pytest.approx({4: 200 / 6, 5: 25.0, 12: 18.75})
        assert [days[d].rescues[0].above for d in (4, 5)] == [False, True]
        findings = {f.code: f for f in plan.validate().findings}
        assert "taper.clinical-choice" in findings
        assert findings["taper.rescue-above-fraction"].message.startswith("Day 5")

    def test_after_the_block(self) -> None:
        """In the block protocol the taper starts the day after the block ends."""
        plan = _plan("psoas-compartment-block", "tolerant", technique="catheter", **TAPER)
        (taper,) = [s for s in plan.regimen if s.kind == "taper"]
        block = plan.step_for("catheter")
        assert block is not None
        assert taper.after == "psoas_compartment_block"
        assert taper.first_day(plan.regimen.steps) == block.last_day + 1

    def test_without_a_block_or_radiotherapy_a_start_day_is_needed(self) -> None:
        """Takase's plan has neither: the taper needs taper_start_day, then starts that day."""
        plan = _plan("takase-2015-methadone-adjuvant", "tolerant", **TAPER)
        assert not [s for s in plan.regimen if s.kind == "taper"]
        assert any("taper_start_day" in m for m in _taper_decisions(plan))
        plan = _plan("takase-2015-methadone-adjuvant", "tolerant", **TAPER, taper_start_day=21)
        (taper,) = [s for s in plan.regimen if s.kind == "taper"]
        assert (taper.after, taper.start_day) == (None, 21)
        days = mps.schedule(plan.regimen, days=22)
        assert days[21].regular_totals_mg["morphine"] == pytest.approx(150.0)
        assert days[20].regular_totals_mg["morphine"] == pytest.approx(200.0)

    def test_one_taper_per_regular_opioid(self) -> None:
        """Two regular opioids are each tapered; the PRN opioid is not a taper target."""
        protocol = load_protocol("psoas-compartment-block")
        patient, _ = PATIENTS["tolerant"]
        current = mps.Regimen([_mr("morphine", "100 mg"), _mr("oxycodone", "20 mg")])
        plan = protocol.instantiate(patient, current, _choices(protocol, **TAPER))
        assert sorted(s.drug for s in plan.regimen if s.kind == "taper") == [
            "morphine",
            "oxycodone",
        ]

    def test_the_numbers_go_together(self) -> None:
        """A percentage without an interval and a floor is refused, naming what is missing."""
        protocol = load_protocol("astro-2017-palliative-radiotherapy")
        patient, current = PATIENTS["tolerant"]
        with pytest.raises(ProtocolError, match="'taper_every', 'taper_floor' missing"):
            protocol.instantiate(patient, current, {"side": "left", "taper_percent": 25})

    @pytest.mark.parametrize(
        ("extra", "match"),
        [
            ({"taper_percent": 150}, "reduce_by_percent"),
            ({"taper_percent": "a lot"}, "not a number of percent"),
            ({"taper_every": "1.5 day"}, "whole days"),
            ({"taper_floor": "20 mg"}, "floor"),
            ({"taper_start_day": "soon"}, "not a whole plan day"),
        ],
    )
    def test_bad_numbers_are_refused(self, extra: dict[str, Any], match: str) -> None:
        """A bad taper number is a ProtocolError naming the field."""
        protocol = load_protocol("astro-2017-palliative-radiotherapy")
        patient, current = PATIENTS["tolerant"]
        with pytest.raises(ProtocolError, match=match):
            protocol.instantiate(patient, current, {"side": "left", **TAPER, **extra})

    def test_percent_text_is_read(self) -> None:
        """The command line gives text: '25 %' and '21' are read as numbers."""
        plan = _plan(
            "takase-2015-methadone-adjuvant",
            "tolerant",
            **{**TAPER, "taper_percent": "25 %"},
            taper_start_day="21",
        )
        (taper,) = [s for s in plan.regimen if s.kind == "taper"]
        assert (taper.reduce_by_percent, taper.start_day) == (25.0, 21)

    def test_a_protocol_without_opioid_deescalation_refuses_the_numbers(self) -> None:
        """Taper choices for a protocol with nothing to compile are an error, not ignored."""
        protocol = load_protocol("yoshioka-2025-nociceptive")
        patient, current = PATIENTS["tolerant"]
        with pytest.raises(ProtocolError, match="no de-escalation of the opioid"):
            protocol.instantiate(patient, current, TAPER)


class TestRadiotherapy:
    def test_default_schedule_and_bed(self) -> None:
        """The default is 8 Gy × 1, with BED 14.4/29.33 Gy and EQD2 12/17.6 Gy."""
        plan = _plan("astro-2017-palliative-radiotherapy", "tolerant")
        rt = plan.step_for("rt-8-gy-1")
        assert rt is not None
        assert rt.site == "left psoas"
        bio = [d.message for d in plan.decisions if d.action == "radiobiology"]
        assert bio == [
            "α/β 10 Gy (tumour / early-responding tissue): BED 14.4 Gy, EQD2 12 Gy",
            "α/β 3 Gy (late-responding normal tissue (spinal cord, kidney, etc.)): BED 29.33 Gy, "
            "EQD2 17.6 Gy",
        ]

    @pytest.mark.parametrize(
        ("schedule", "bed10", "eqd2_3"),
        [("rt-20-gy-5", "28", "28"), ("rt-24-gy-6", "33.6", "33.6"), ("rt-30-gy-10", "39", "36")],
    )
    def test_other_schedules(self, schedule: str, bed10: str, eqd2_3: str) -> None:
        """Each ASTRO schedule can be chosen; BED and EQD2 match the reference examples."""
        plan = _plan("astro-2017-palliative-radiotherapy", "frail", schedule=schedule)
        assert plan.step_for(schedule) is not None
        bio = [d.message for d in plan.decisions if d.action == "radiobiology"]
        assert f"BED {bed10} Gy" in bio[0]
        assert f"EQD2 {eqd2_3} Gy" in bio[1]

    def test_flare_prophylaxis_with_radiotherapy(self) -> None:
        """Dexamethasone 8 mg once a day starts with the radiotherapy; the course is stated as
        the reference gives it: before radiotherapy + daily for 4 days = 5 days."""
        plan = _plan("astro-2017-palliative-radiotherapy", "frail")
        dex = plan.step_for("flare-dexamethasone")
        assert dex is not None
        assert dex.dose_mg == 8.0
        assert dex.doses_per_day == 1.0
        assert dex.start_day == plan.regimen[0].start_day
        duration = next(d for d in plan.decisions if d.action == "duration")
        assert duration.level == "S"
        assert duration.message.startswith(
            "course of 5 days: 8 mg before radiotherapy + daily for 4"
        )

    def test_unknown_choice(self) -> None:
        """An unknown choice key or option is refused with the options."""
        protocol = load_protocol("astro-2017-palliative-radiotherapy")
        with pytest.raises(ProtocolError, match="did you mean 'schedule'"):
            protocol.instantiate(mps.Patient(), None, {"side": "left", "schedul": "x"})
        with pytest.raises(ProtocolError, match="rt-8-gy-1"):
            protocol.instantiate(mps.Patient(), None, {"side": "left", "schedule": "x"})
        with pytest.raises(ProtocolError, match="not a clinical check"):
            protocol.instantiate(mps.Patient(), None, {"side": "left", "confirm": ["x"]})


class TestAgarAndYoshioka:
    def test_baclofen_titration_within_the_catalog(self) -> None:
        """Baclofen 5 mg three times a day, +5 mg every 3 days, stops at the 20 mg maximum."""
        plan = _plan("agar-2004-mechanism-directed", "tolerant")
        step = plan.step_for("baclofen")
        assert step is not None
        assert [(p.day, p.dose_mg) for p in step.titration] == [(3, 10.0), (6, 15.0), (9, 20.0)]
        assert step.daily_dose_mg == pytest.approx(60.0)

    @pytest.mark.parametrize(
        ("renal", "template", "daily"),
        [
            ({"creatinine_clearance": "90 mL/min"}, "gabapentin-crcl-60", 900.0),
            ({"creatinine_clearance": "45 mL/min"}, "gabapentin-crcl-30-59", 400.0),
            ({"egfr": "25 mL/min/1.73m2"}, "gabapentin-crcl-15-29", 200.0),
            ({"creatinine_clearance": "10 mL/min"}, "gabapentin-crcl-below-15", 100.0),
        ],
    )
    def test_gabapentin_by_renal_band(
        self, renal: dict[str, str], template: str, daily: float
    ) -> None:
        """The gabapentin option follows the label's renal band."""
        protocol = load_protocol("agar-2004-mechanism-directed")
        plan = protocol.instantiate(mps.Patient(**renal), mps.Regimen([]))
        gaba = [sid for sid in plan.step_ids if sid.startswith("gabapentin")]
        assert gaba == [template]
        step = plan.step_for(template)
        assert step is not None
        assert step.daily_dose_mg == pytest.approx(daily)

    def test_gabapentin_build_up_is_not_overstated(self) -> None:
        """CrCl 60 or more: 300 mg three times a day starts on plan day 2 (label day 3); the
        label's 300 and 600 mg of days 1-2 are stated in a decision, and no day before day 2
        carries the full 900 mg/day."""
        protocol = load_protocol("agar-2004-mechanism-directed")
        plan = protocol.instantiate(mps.Patient(creatinine_clearance="90 mL/min"), [])
        step = plan.step_for("gabapentin-crcl-60")
        assert step is not None
        assert step.start_day == 2
        assert step.dose_mg == 300.0
        assert [step.daily_dose_mg_on(d) for d in (0, 1, 2)] == [0.0, 0.0, 900.0]
        start = next(
            d for d in plan.decisions if d.action == "start-dose" and d.step == step_id(plan, step)
        )
        assert "300 mg on day 1, 600 mg on day 2, 900 mg on day 3" in start.message
        assert start.sources == ("gabapentin-label",)
        assert start.level == "S"

    def test_breakthrough_decision_numbers_are_for_people(self) -> None:
        """The breakthrough decision writes 1/6 of 200 MME/day as 33.33 mg, not 33.3333 mg."""
        plan = _plan("agar-2004-mechanism-directed", "tolerant")
        computed = next(d for d in plan.decisions if d.action == "computed")
        assert "33.33 mg per dose" in computed.message
        assert "33.3333" not in computed.message + computed.arithmetic

    def test_gabapentin_left_out_without_renal_function(self) -> None:
        """Without a renal measure no band can be chosen: gabapentin is left out, saying why."""
        protocol = load_protocol("agar-2004-mechanism-directed")
        plan = protocol.instantiate(mps.Patient(), mps.Regimen([]))
        assert not any(sid.startswith("gabapentin") for sid in plan.step_ids)
        assert any(
            d.action == "omitted" and "cannot be checked" in d.message for d in plan.decisions
        )

    def test_breakthrough_dose_is_computed(self) -> None:
        """The breakthrough action computes 1/6 of 200 mg/day morphine, rounded down."""
        plan = _plan("agar-2004-mechanism-directed", "tolerant")
        computed = next(d for d in plan.decisions if d.action == "computed")
        assert "suggested 30 mg" in computed.message
        assert "japan-morphine-label" in computed.sources

    def test_yoshioka_renal_variant_when_unknown(self) -> None:
        """Renal function unknown: the conservative (renal) Ultracet dosing is used."""
        protocol = load_protocol("yoshioka-2025-nociceptive")
        plan = protocol.instantiate(mps.Patient(age=70), mps.Regimen([]))
        assert plan.step_ids == ("tramadol-renal", "acetaminophen-renal")
        tramadol = plan.regimen[0]
        assert tramadol.daily_dose_mg == pytest.approx(150.0)
        assert plan.regimen[1].daily_dose_mg == pytest.approx(1300.0)

    def test_yoshioka_label_doses(self) -> None:
        """Normal renal function: 2 tablets when needed, at most 8 a day (300 mg + 2600 mg)."""
        protocol = load_protocol("yoshioka-2025-nociceptive")
        patient = mps.Patient(age=60, creatinine_clearance="80 mL/min")
        plan = protocol.instantiate(patient, mps.Regimen([]), {"confirm": _clinical_ids(protocol)})
        assert plan.status == "eligible"
        assert [s.daily_dose_mg for s in plan.regimen] == [300.0, 2600.0]
        assert plan.protocol.escalation[0].to[0] == "agar-2004-mechanism-directed"


class TestPlanObject:
    def test_patient_must_be_a_patient(self) -> None:
        """A dict instead of a Patient is refused with how to fix it."""
        protocol = load_protocol("psoas-compartment-block")
        with pytest.raises(ProtocolError, match="must be a Patient"):
            protocol.instantiate({"weight": "60 kg"}, None, {"side": "left"})  # type: ignore[arg-type]

    def test_text_and_dict(self) -> None:
        """to_text shows the status and the receipt; to_json round-trips through json."""
        plan = _plan("takase-2015-methadone-adjuvant", "tolerant")
        text = plan.to_text()
        assert "Eligibility: eligible" in text
        assert "methadone 10 mg oral every 8 h" in text
        data = json.loads(plan.to_json())
        assert data["steps"][1]["from"] == "methadone"
        assert data["status"] == "eligible"


# ---- never above a catalog maximum (hypothesis) -----------------------------------------------


def _catalog_ok(step: Any) -> bool:
    if step.kind not in ("opioid", "methadone_adjuvant", "adjuvant"):
        return True
    record = _catalog.drug(step.drug)
    singles = [step.dose_mg, *(p.dose_mg for p in step.titration)]
    for lim in record.limits_for("max_single", step.route, step.formulation):
        if any(d is not None and d > lim.value.value * (1 + 1e-9) for d in singles):
            return False
    for lim in record.limits_for("max_daily", step.route, step.formulation):
        if step.daily_dose_mg > lim.value.value * (1 + 1e-9):
            return False
    return True


def _current_step(kind: str, dose: int) -> Any:
    if kind == "methadone-adjuvant":
        return mps.MethadoneAdjuvantStep(dose=f"{1 + dose % 20} mg", every="8 h")
    if kind == "methadone":
        return mps.OpioidStep(drug="methadone", dose=f"{1 + dose % 40} mg", every="8 h")
    if kind == "tramadol":
        return mps.OpioidStep(drug="tramadol", dose=f"{1 + dose % 100} mg", every="6 h")
    if kind == "fentanyl-patch":
        return mps.OpioidStep(drug="fentanyl", route="transdermal", rate=f"{1 + dose % 200} mcg/h")
    return _mr(kind, f"{dose} mg")


@st.composite
def _current(draw: st.DrawFn) -> mps.Regimen | None:
    kinds = ("morphine", "oxycodone", "methadone-adjuvant", "methadone", "tramadol")
    shape = draw(st.sampled_from(["none", "empty", "steps"]))
    if shape == "none":
        return None
    if shape == "empty":
        return mps.Regimen([])
    chosen = draw(
        st.lists(st.sampled_from((*kinds, "fentanyl-patch")), min_size=1, max_size=3, unique=True)
    )
    doses = draw(
        st.lists(
            st.integers(min_value=1, max_value=1500), min_size=len(chosen), max_size=len(chosen)
        )
    )
    return mps.Regimen([_current_step(k, d) for k, d in zip(chosen, doses, strict=True)])


class TestNeverAboveCatalogMaximum:
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        pid=st.sampled_from(SHIPPED),
        patient=patients(),
        current=_current(),
        side=st.sampled_from(["left", "right", "bilateral"]),
        pick=st.randoms(use_true_random=False),
    )
    def test_no_dose_above_a_catalog_maximum(
        self, pid: str, patient: mps.Patient, current: mps.Regimen | None, side: str, pick: Any
    ) -> None:
        """Whatever the patient, current regimen (methadone, tramadol and a fentanyl patch
        included) and choices, no planned dose is above a catalog maximum, validate() finds no
        dose.max-* error on the protocol's steps, and no drug of the current regimen is added
        again."""
        protocol = load_protocol(pid)
        choices: dict[str, Any] = {"side": side} if any(s.needs_side for s in protocol.step) else {}
        for group, options in protocol.choice_groups.items():
            if pick.random() < 0.5:
                choices[group] = pick.choice(options)
        plan = protocol.instantiate(patient, current, choices)
        new = [
            (i, s)
            for i, (sid, s) in enumerate(zip(plan.step_ids, plan.regimen, strict=True))
            if not sid.startswith("current[")
        ]
        assert all(_catalog_ok(s) for _i, s in new)
        given = {getattr(s, "drug", None) for s in (current or ())} - {None}
        assert [s.drug for _i, s in new if getattr(s, "drug", None) in given] == []
        report = plan.validate()
        new_indices = {i for i, _s in new}
        bad = [
            f for f in report.findings if f.code.startswith("dose.max") and f.step in new_indices
        ]
        assert bad == []


class TestDataPlaceholders:
    """Protocol texts name data values as {file:key}; the reader writes the value in."""

    @staticmethod
    def _takase() -> str:
        from importlib import resources

        folder = resources.files("mps_analgesia") / "data" / "protocols"
        return (folder / "takase-2015-methadone-adjuvant.toml").read_text(encoding="utf-8")

    def test_a_placeholder_reads_the_data_value(self) -> None:
        """The Takase indication names the Methapain minimum OME; the protocol shows its value."""
        from mps_analgesia import _catalog

        text = self._takase()
        assert "{methadone:adjuvant_prerequisite.min_ome}" in text
        value = _catalog.data_entry("methadone.toml", "adjuvant_prerequisite.min_ome")["value"]
        indication = loads_protocol(text).indication
        assert f"at least {value} oral morphine equivalent" in indication
        assert "{" not in indication

    def test_a_placeholder_naming_no_data_value_is_a_problem_with_its_line(self) -> None:
        """A placeholder with an unknown key is reported at its key path and line."""
        text = self._takase().replace(
            "{methadone:adjuvant_prerequisite.min_ome}", "{methadone:no_such.key}", 1
        )
        with pytest.raises(ProtocolFileError) as info:
            loads_protocol(text, file="takase.toml")
        (problem,) = info.value.problems
        assert problem.path == "indication"
        assert problem.line == 11
        assert "no_such.key" in problem.message

    def test_a_number_check_reads_a_data_value_in_its_unit(self) -> None:
        """Yoshioka's over-75 caution takes its age from data/organ.toml, as a whole number."""
        from mps_analgesia import _datatext, load_protocol

        (check,) = [
            c for c in load_protocol("yoshioka-2025-nociceptive").caution if c.id == "over-75"
        ]
        over = _datatext.value_at("organ", "age.tramadol.over_age")
        assert check.value == float(str(over).split()[0])
        assert isinstance(check.value, int)

    def test_a_data_value_in_another_unit_is_a_problem(self) -> None:
        """A number check naming a data value that is not in the field's unit is refused."""
        from importlib import resources

        folder = resources.files("mps_analgesia") / "data" / "protocols"
        text = (folder / "yoshioka-2025-nociceptive.toml").read_text(encoding="utf-8")
        text = text.replace('key = "age.tramadol.over_age"', 'key = "age.tramadol.max_daily"')
        with pytest.raises(ProtocolFileError, match=r"is not a number in year"):
            loads_protocol(text, file="yoshioka.toml")

    def test_a_check_text_names_its_own_value_and_its_guards(self) -> None:
        """``{value}`` and ``{when[i].value}`` in a check text are written from the check."""
        protocol = load_protocol("psoas-compartment-block")
        (check,) = [c for c in protocol.eligibility if c.id == "apixaban-high-dose-72-h"]
        assert check.text.startswith("Apixaban above 2.5 mg per dose: at least 72 h since")
        assert "{" not in check.text

    def test_a_text_naming_a_missing_guard_is_a_problem(self) -> None:
        """``{when[5].value}`` on a check with two guards is reported at the check's text."""
        from importlib import resources

        folder = resources.files("mps_analgesia") / "data" / "protocols"
        text = (folder / "psoas-compartment-block.toml").read_text(encoding="utf-8")
        text = text.replace("Apixaban above {when[1].value}", "Apixaban above {when[5].value}", 1)
        with pytest.raises(ProtocolFileError, match=r"names no check: there are 2 when checks"):
            loads_protocol(text, file="block.toml")
