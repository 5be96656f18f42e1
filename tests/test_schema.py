"""JSON Schemas generated from the attrs models, for case files and protocol files."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mps_analgesia.errors import UnknownNameError
from mps_analgesia.schema import DIALECT, json_schema, schema_text

jsonschema = pytest.importorskip("jsonschema")

REPO = Path(__file__).resolve().parents[1]
PROTOCOLS = sorted((REPO / "src" / "mps_analgesia" / "data" / "protocols").glob("*.toml"))
EXAMPLES = sorted((REPO / "examples").glob("*.toml"))


def _validator(name: str) -> Any:
    return jsonschema.Draft202012Validator(json_schema(name))


class TestSchemas:
    @pytest.mark.parametrize("name", ["case", "protocol"])
    def test_is_a_valid_draft_2020_12_schema(self, name: str) -> None:
        """Each generated schema is itself a valid JSON Schema of draft 2020-12."""
        schema = json_schema(name)
        assert schema["$schema"] == DIALECT
        jsonschema.Draft202012Validator.check_schema(schema)

    @pytest.mark.parametrize("name", ["case", "protocol"])
    def test_schema_text_is_the_same_schema(self, name: str) -> None:
        """schema_text() prints the same schema as JSON."""
        assert json.loads(schema_text(name)) == json_schema(name)

    def test_unknown_name(self) -> None:
        """Only 'case' and 'protocol' exist; a typo gets a suggestion."""
        with pytest.raises(UnknownNameError, match="protocol"):
            json_schema("protocols")


class TestCaseSchema:
    @pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
    def test_shipped_examples_validate(self, path: Path) -> None:
        """Every shipped example case is valid against the case schema."""
        errors = list(_validator("case").iter_errors(tomllib.loads(path.read_text())))
        assert errors == []

    def test_quantity_fields_come_from_the_attrs_metadata(self) -> None:
        """A quantity field carries its example and dimension from the step's metadata."""
        defs = json_schema("case")["$defs"]
        dose = defs["OpioidStep"]["properties"]["dose"]
        assert dose["examples"] == ["10 mg"]
        assert "mass" in dose["description"]
        assert "the dose per administration" in dose["description"]
        weight = defs["Patient"]["properties"]["weight"]
        assert weight["examples"] == ["52 kg"]

    def test_steps_are_told_apart_by_kind(self) -> None:
        """Each step class has its kind as a constant and its own drug names."""
        defs = json_schema("case")["$defs"]
        assert defs["OpioidStep"]["properties"]["kind"] == {
            "const": "opioid",
            "description": "the step kind: opioid",
        }
        opioid_drugs = defs["OpioidStep"]["properties"]["drug"]["enum"]
        assert "morphine" in opioid_drugs
        assert "gabapentin" not in opioid_drugs
        assert "paracetamol" in defs["AdjuvantStep"]["properties"]["drug"]["enum"]
        assert defs["PsoasCompartmentBlockStep"]["required"] == ["kind", "drug"]

    @pytest.mark.parametrize(
        "step",
        [
            {"kind": "opioid", "drug": "morphine", "dose": 10, "every": "4 h"},
            {"kind": "opioid", "drug": "morphine", "dose": "10 mg", "colour": "red"},
            {"kind": "injection", "drug": "morphine"},
            {"kind": "adjuvant", "drug": "gabapentin", "role": "sleep"},
        ],
    )
    def test_bad_steps_fail(self, step: dict[str, Any]) -> None:
        """A bare number, an unknown key, an unknown kind or an unknown role is invalid."""
        assert list(_validator("case").iter_errors({"step": [step]}))


class TestProtocolSchema:
    @pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.name)
    def test_shipped_protocols_validate(self, path: Path) -> None:
        """Every shipped protocol is valid against the protocol schema."""
        errors = list(_validator("protocol").iter_errors(tomllib.loads(path.read_text())))
        assert errors == []

    def test_template_fields_and_step_fields(self) -> None:
        """A step template of a kind has the template keys and that kind's step fields."""
        defs = json_schema("protocol")["$defs"]
        block = defs["StepTemplate_psoas_compartment_block"]["properties"]
        assert {"start", "dose_range", "monitoring", "bolus_volume", "concentration"} <= set(block)
        assert "role" not in block
        action = defs["StepTemplate_action"]["properties"]
        assert "dose" not in action
        assert defs["Check"]["properties"]["op"]["enum"][:2] == ["!=", "<"]
        assert "current_ome" in defs["Check"]["properties"]["field"]["enum"]

    @pytest.mark.parametrize(
        ("where", "change"),
        [
            ("top", {"colour": "blue"}),
            ("top", {"status": "approved"}),
            ("step", {"kind": "injection"}),
            ("step", {"sources": ["no-such-source"]}),
            ("step", {"level": "X"}),
        ],
    )
    def test_bad_protocols_fail(self, where: str, change: dict[str, Any]) -> None:
        """An unknown key, status, kind, source id or level is invalid."""
        data = tomllib.loads(
            (
                REPO
                / "src"
                / "mps_analgesia"
                / "data"
                / "protocols"
                / "psoas-compartment-block.toml"
            ).read_text()
        )
        if where == "top":
            data.update(change)
        else:
            data["step"][1].update(change)
        assert list(_validator("protocol").iter_errors(data))
