"""Local conversion tables (``mps.load_table``): the file format, every problem, end to end."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mps_analgesia as mps
from mps_analgesia import _catalog
from mps_analgesia.conversion import loads_table
from strategies_fuzz import mutated_table_texts

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tables" / "hospital-ome.toml"

HEAD = """
[meta]
edition = "Ward 7 chart 2026-12"

[tables.ward-7]
title = "Ward 7"
source = "cdc-2022"
level = "V"
"""

ENTRY = """
[[tables.ward-7.entries]]
drug = "morphine"
routes = ["oral"]
factor = 1.0
dose_unit = "mg/day"
source = "cdc-2022"
level = "V"
"""


def _load(text: str, **kwargs: Any) -> mps.ConversionTable:
    return loads_table(textwrap.dedent(text), file="ward-7.toml", **kwargs)


def _problems(text: str, **kwargs: Any) -> list[tuple[str, str, int | None]]:
    with pytest.raises(mps.TableFileError) as info:
        _load(text, **kwargs)
    assert info.value.file == "ward-7.toml"
    return [(p.path, p.message, p.line) for p in info.value.problems]


def _morphine_iv(dose: str = "5 mg") -> mps.OpioidStep:
    return mps.OpioidStep(drug="morphine", route="intravenous", dose=dose, every="4 h")


class TestReading:
    def test_a_minimal_table(self) -> None:
        """A file with one table reads into a local ConversionTable with its edition."""
        table = _load(HEAD + ENTRY)
        assert (table.id, table.edition, table.file, table.local) == (
            "ward-7",
            "Ward 7 chart 2026-12",
            "ward-7.toml",
            True,
        )
        assert table.lookup("morphine", "oral") is not None
        assert table.lookup("morphine", "intravenous") is None

    def test_the_example_file(self) -> None:
        """The shipped example extends 'palliative' and replaces IV morphine and tramadol."""
        table = mps.load_table(EXAMPLE)
        palliative = _catalog.conversion_table("palliative")
        assert table.lookup("morphine", "intravenous").factor_low == 2.0  # type: ignore[union-attr]
        assert palliative.lookup("morphine", "intravenous").factor_low == 3.0  # type: ignore[union-attr]
        # the rest is the parent's
        assert table.lookup("oxycodone", "oral") == palliative.lookup("oxycodone", "oral")
        assert table.path == str(EXAMPLE)
        assert _catalog.source("example-hospital-2026").citation.startswith("Example Hospital")

    def test_json_file(self, tmp_path: Path) -> None:
        """A .json file in the same shape is read too."""
        import tomllib

        data = tomllib.loads(HEAD + ENTRY)
        path = tmp_path / "ward-7.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        assert mps.load_table(path).id == "ward-7"

    def test_several_tables_need_a_choice(self) -> None:
        """A file of two tables needs table_id; with it, the child extends the parent."""
        text = (
            HEAD
            + ENTRY
            + """
[tables.ward-8]
extends = "ward-7"
source = "cdc-2022"
level = "V"

[[tables.ward-8.entries]]
drug = "tramadol"
routes = ["oral"]
factor = 0.2
dose_unit = "mg/day"
source = "cdc-2022"
level = "V"
"""
        )
        [(path, message, _)] = _problems(text)
        assert path == "tables"
        assert "name the one to use" in message
        child = _load(text, table_id="ward-8")
        assert child.lookup("morphine", "oral") is not None
        assert child.lookup("tramadol", "oral") is not None
        [(path, message, _)] = _problems(text, table_id="ward-9")
        assert "no table 'ward-9'" in message
        assert "ward-8" in message


class TestProblems:
    """Every problem class, each with its key path and line; all of them at once."""

    @pytest.mark.parametrize(
        ("text", "path", "words"),
        [
            (
                HEAD.replace('[meta]\nedition = "Ward 7 chart 2026-12"\n', "") + ENTRY,
                "meta",
                "[meta]",
            ),
            (
                HEAD.replace('edition = "Ward 7 chart 2026-12"', 'edition = ""') + ENTRY,
                "meta.edition",
                "edition",
            ),
            (HEAD.replace("[meta]", "[meta]\nversion = 2") + ENTRY, "meta.version", "unknown key"),
            (HEAD + ENTRY + "\n[extra]\nx = 1\n", "extra", "unknown key"),
            ('[meta]\nedition = "1"\n', "tables", "defines no table"),
            (
                HEAD + ENTRY.replace("factor = 1.0", "facotr = 1.0"),
                "tables.ward-7.entries[0].facotr",
                "did you mean 'factor'",
            ),
            (
                HEAD + ENTRY.replace('drug = "morphine"', 'drug = "morphin"'),
                "tables.ward-7.entries[0].drug",
                "unknown drug",
            ),
            (
                HEAD + ENTRY.replace('["oral"]', '["oarl"]'),
                "tables.ward-7.entries[0].routes",
                "unknown route",
            ),
            (
                HEAD + ENTRY.replace('["oral"]', "[]"),
                "tables.ward-7.entries[0].routes",
                "non-empty list",
            ),
            (
                HEAD + ENTRY.replace("factor = 1.0", "factor = 0"),
                "tables.ward-7.entries[0].factor",
                "greater than zero",
            ),
            (
                HEAD + ENTRY.replace("factor = 1.0", 'factor = "1.0"'),
                "tables.ward-7.entries[0].factor",
                "must be a number",
            ),
            (
                HEAD + ENTRY.replace("factor = 1.0", "factor = [2.0, 1.0]"),
                "tables.ward-7.entries[0].factor",
                "low above high",
            ),
            (
                HEAD + ENTRY.replace("factor = 1.0", ""),
                "tables.ward-7.entries[0]",
                "exactly one of",
            ),
            (
                HEAD + ENTRY.replace('"mg/day"', '"mg"'),
                "tables.ward-7.entries[0].dose_unit",
                "not a mass per time",
            ),
            (
                HEAD + ENTRY.replace('dose_unit = "mg/day"', 'dose_unit = "mg/dya"'),
                "tables.ward-7.entries[0].dose_unit",
                "",
            ),
            (HEAD.replace('level = "V"', 'level = "X"') + ENTRY, "tables.ward-7", "V, S, U"),
            (
                HEAD + ENTRY.replace('source = "cdc-2022"', 'source = "cdc-2023"'),
                "tables.ward-7.entries[0]",
                "'cdc-2023' is not an id",
            ),
            (
                HEAD + ENTRY + 'dose_forms = ["buccal-flim"]\n',
                "tables.ward-7.entries[0].dose_forms",
                "dose forms",
            ),
            (HEAD + ENTRY + ENTRY, "tables.ward-7.entries[1]", "given twice"),
            (
                HEAD.replace('level = "V"', 'level = "V"\nextends = "ward-0"') + ENTRY,
                "tables.ward-7.extends",
                "no table 'ward-0'",
            ),
            (
                HEAD.replace("ward-7", "cdc-2022") + ENTRY.replace("ward-7", "cdc-2022"),
                "tables.cdc-2022",
                "id of a shipped table",
            ),
            (
                HEAD
                + ENTRY.replace("factor = 1.0", 'bands = "none-such"\n').replace(
                    '"mg/day"', '"mcg/h"'
                ),
                "tables.ward-7.entries[0].bands",
                "no band set",
            ),
            (
                HEAD + ENTRY + '\n[sources.cdc-2022]\ncitation = "mine"\n',
                "sources.cdc-2022",
                "shipped bibliography",
            ),
            (
                HEAD + ENTRY + "\n[sources.mine]\nkind = 'local'\n",
                "sources.mine.citation",
                "citation",
            ),
            (
                HEAD
                + ENTRY.replace(
                    "factor = 1.0",
                    "tiers = [{ up_to = '20 mg/day', factor = 4 }, { at_least = '10 mg/day', factor = 8 }]",  # noqa: E501
                ),
                "tables.ward-7.entries[0]",
                "overlap",
            ),
        ],
    )
    def test_each_problem(self, text: str, path: str, words: str) -> None:
        """Each kind of mistake is one problem naming its key path (with its line) and why."""
        problems = _problems(textwrap.dedent(text))
        assert any(p == path and words in m for p, m, _ in problems), problems
        for p, _, line in problems:
            if p not in ("", "tables", "meta"):
                assert line is not None, p

    def test_every_problem_at_once(self) -> None:
        """Three mistakes in three entries are three problems, each on its own line."""
        text = (
            HEAD
            + ENTRY.replace('"morphine"', '"morphin"')
            + ENTRY.replace("factor = 1.0", "factor = -1").replace('"morphine"', '"oxycodone"')
            + ENTRY.replace('["oral"]', '["oarl"]').replace('"morphine"', '"tramadol"')
        )
        problems = _problems(text)
        assert [p for p, _, _ in problems] == [
            "tables.ward-7.entries[0].drug",
            "tables.ward-7.entries[1].factor",
            "tables.ward-7.entries[2].routes",
        ]
        lines = [line for _, _, line in problems]
        assert lines == sorted(lines)
        assert len(set(lines)) == 3
        text_of_error = str(mps.TableFileError("ward-7.toml", []))
        assert text_of_error.startswith("ward-7.toml: 0 problems")

    def test_the_error_is_a_case_file_error(self) -> None:
        """TableFileError is a CaseFileError and a ValueError (callers catch either)."""
        assert issubclass(mps.TableFileError, mps.CaseFileError)
        assert issubclass(mps.TableFileError, ValueError)

    def test_bad_toml_and_guards(self) -> None:
        """Bad TOML and the reader's guards are problems too, with their line."""
        [(_, message, line)] = _problems(HEAD + "factor = = 1\n")
        assert "not valid TOML" in message
        assert line is not None
        [(_, message, _)] = _problems(HEAD + ENTRY.replace("1.0", "1e400"))
        assert "too large" in message

    def test_unreadable_files(self, tmp_path: Path) -> None:
        """A missing file, a directory or non-UTF-8 bytes are refused, naming the file."""
        for path, words in (
            (tmp_path / "missing.toml", "cannot be read"),
            (tmp_path, "a directory"),
        ):
            with pytest.raises(mps.TableFileError, match=words):
                mps.load_table(path)
        bad = tmp_path / "latin1.toml"
        bad.write_bytes(b"[meta]\nedition = '\xe9'\n")
        with pytest.raises(mps.TableFileError, match="not UTF-8"):
            mps.load_table(bad)

    def test_a_loop_of_extends(self) -> None:
        """Tables that extend each other in a loop are refused, not followed forever."""
        text = """
[meta]
edition = "1"
[tables.a]
extends = "b"
source = "cdc-2022"
level = "V"
[tables.b]
extends = "a"
source = "cdc-2022"
level = "V"
"""
        problems = _problems(text, table_id="a")
        assert any("loop" in m for _, m, _ in problems)


class TestHashAndEdition:
    def test_hash_is_that_of_editions_toml(self) -> None:
        """A local table's hash is computed as data/editions.toml computes the shipped ones."""
        import tomllib

        text = HEAD + ENTRY
        assert _load(text).content_hash == _catalog.hash_of(tomllib.loads(text))
        for table in _catalog.conversion_tables().values():
            assert table.content_hash == _catalog.recorded_editions()[table.file][1]
            assert not table.local

    def test_wording_does_not_count_values_do(self) -> None:
        """Comments, notes and descriptions leave the hash alone; a value, source or level not."""
        base = _load(HEAD + ENTRY).content_hash
        worded = (
            HEAD.replace("[meta]", "# a comment\n[meta]\ndescription = 'x'")
            + ENTRY
            + ('note = "new wording"\n')
        )
        assert _load(worded).content_hash == base
        for changed in (
            ENTRY.replace("factor = 1.0", "factor = 1.5"),
            ENTRY.replace('level = "V"', 'level = "S"'),
            ENTRY.replace('source = "cdc-2022"', 'source = "cdc-2016"'),
        ):
            assert _load(HEAD + changed).content_hash != base

    def test_a_recorded_hash_must_match(self) -> None:
        """[meta] content, when given, must be the hash of the values: else a new edition."""
        table = _load(HEAD + ENTRY)
        recorded = HEAD.replace("[meta]", f'[meta]\ncontent = "{table.content_hash}"')
        assert _load(recorded + ENTRY).content_hash == table.content_hash
        problems = _problems(recorded + ENTRY.replace("factor = 1.0", "factor = 1.5"))
        [(path, message, line)] = problems
        assert path == "meta.content"
        assert "new [meta] edition" in message
        assert line == 3


class TestIdOrTable:
    def test_every_table_parameter_takes_a_table(self) -> None:
        """daily_ome, convert_opioid, breakthrough_dose, compare_tables take the table."""
        table = mps.load_table(EXAMPLE)
        step = _morphine_iv()
        ome = mps.daily_ome(step, table=table)
        assert (ome.table, ome.edition, ome.low_mme_per_day) == (
            "example-hospital",
            table.edition,
            60.0,
        )
        assert mps.daily_ome(step, table="palliative").low_mme_per_day == 90.0
        conv = mps.convert_opioid(step, to_drug="morphine", to_route="oral", table=table)
        assert conv.table == "example-hospital"
        assert conv.calculated.text == "60 mg/day"
        prn = mps.breakthrough_dose(mps.Regimen([step]), table=table)
        assert prn.ome.table == "example-hospital"
        cmp = mps.compare_tables(step, ["palliative", table])
        assert [r.table for r in cmp.results] == ["palliative", "example-hospital"]
        assert [r.table for r in mps.compare_tables(step, table).results] == ["example-hospital"]

    def test_a_string_is_always_an_id(self) -> None:
        """A path given as a string is an unknown id, never read as a file."""
        with pytest.raises(mps.UnknownNameError, match="unknown OME table"):
            mps.daily_ome(_morphine_iv(), table=str(EXAMPLE))
        mps.load_table(EXAMPLE)
        with pytest.raises(mps.UnknownNameError):  # loading does not register the id
            mps.daily_ome(_morphine_iv(), table="example-hospital")

    def test_validate_option_and_the_report(self) -> None:
        """ome_table takes the table; the report names it, its file and edition everywhere."""
        table = mps.load_table(EXAMPLE)
        regimen = mps.Regimen([_morphine_iv()])
        report = mps.validate(regimen, options={"ome_table": table})
        ome = next(f for f in report.findings if f.code == "opioid.ome-total")
        assert "60 MME/day (example-hospital" in ome.message
        assert ome.detail["table"] == "example-hospital"
        assert ome.detail["edition"] == table.edition
        key = "local:hospital-ome.toml"
        assert report.editions[key] == f"{table.edition}; content {table.content_hash}"
        assert json.loads(report.to_json())["editions"][key] == report.editions[key]
        text = mps.render(report, format="text")
        assert "local:hospital-ome@2026-12" in text
        from mps_analgesia.fhir import report_to_fhir

        [issue] = [i for i in report_to_fhir(report) if i["code"]["text"] == "opioid.ome-total"]
        assert "example-hospital" in issue["detail"]
        assert key not in mps.validate(regimen).editions


def _case(tmp_path: Path) -> Path:
    path = tmp_path / "iv-morphine.toml"
    path.write_text(
        textwrap.dedent(
            """
            [patient]
            age = 70

            [[step]]
            kind = "opioid"
            drug = "morphine"
            route = "intravenous"
            dose = "5 mg"
            every = "4 h"
            """
        ),
        encoding="utf-8",
    )
    return path


class TestCommandLine:
    def test_check_with_a_table_file(self, tmp_path: Path, capsys: Any) -> None:
        """check --table-file: the report's OME and editions come from the local table."""
        from mps_analgesia.cli import main

        case = _case(tmp_path)
        assert main(["check", str(case), "--table-file", str(EXAMPLE), "--format", "json"]) == 0
        report = json.loads(capsys.readouterr().out)
        [ome] = [f for f in report["findings"] if f["code"] == "opioid.ome-total"]
        assert "60 MME/day (example-hospital" in ome["message"]
        assert "local:hospital-ome.toml" in report["editions"]
        assert main(["check", str(case), "--table", "palliative", "--format", "json"]) == 0
        assert "90 MME/day (palliative" in capsys.readouterr().out

    def test_convert_and_summarize(self, tmp_path: Path, capsys: Any) -> None:
        """convert and summarize take --table-file too."""
        from mps_analgesia.cli import main

        args = ["convert", "30 mg/day intravenous morphine", "--to", "morphine"]
        assert main([*args, "--table-file", str(EXAMPLE)]) == 0
        out = capsys.readouterr().out
        assert "example-hospital" in out
        assert "60 mg/day" in out
        assert main(["summarize", str(_case(tmp_path)), "--table-file", str(EXAMPLE)]) == 0
        out = capsys.readouterr().out
        assert "example-hospital" in out
        assert "local:hospital-ome@2026-12" in out

    def test_a_bad_table_file_lists_every_problem(self, tmp_path: Path, capsys: Any) -> None:
        """A table file with problems: exit 2, every problem with its line on stderr."""
        from mps_analgesia.cli import main

        bad = tmp_path / "bad.toml"
        bad.write_text(HEAD + ENTRY.replace("1.0", "-1").replace('"oral"', '"oarl"'), "utf-8")
        assert main(["check", str(_case(tmp_path)), "--table-file", str(bad)]) == 2
        err = capsys.readouterr().err
        assert "bad.toml: 2 problems" in err
        assert f"{bad}:12: tables.ward-7.entries[0].routes: unknown route 'oarl'" in err
        assert f"{bad}:13: tables.ward-7.entries[0].factor: must be greater than zero" in err

    def test_the_table_option_is_an_id_with_a_file(self, tmp_path: Path, capsys: Any) -> None:
        """With --table-file, --table picks one of the file's tables (never a shipped one)."""
        from mps_analgesia.cli import main

        case = str(_case(tmp_path))
        assert main(["check", case, "--table-file", str(EXAMPLE), "--table", "palliative"]) == 2
        assert "no table 'palliative'" in capsys.readouterr().err


def _order_sign(step: mps.OpioidStep) -> dict[str, Any]:
    from mps_analgesia.fhir import to_bundle

    bundle = to_bundle(mps.Regimen([step]))
    orders = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationRequest"]
    return {
        "hook": "order-sign",
        "hookInstance": "h2-local-table",
        "context": {"draftOrders": {"resourceType": "Bundle", "entry": orders}},
    }


class TestService:
    def test_handle_with_the_server_table(self) -> None:
        """handle(options=) is how the service passes its configured table; the card names it."""
        from mps_analgesia.cds_hooks import handle

        table = mps.load_table(EXAMPLE)
        status, body = handle(_order_sign(_morphine_iv()), options={"ome_table": table})
        assert status == 200
        [card] = [c for c in body["cards"] if "morphine equivalent" in c["summary"].lower()]
        assert "example-hospital" in card["detail"]
        assert "60" in card["summary"]
        _, default = handle(_order_sign(_morphine_iv()))
        assert "example-hospital" not in json.dumps(default)

    def test_configuration(self, tmp_path: Path) -> None:
        """table_file comes from [service], MPS_CDS_TABLE_FILE or serve --table-file; a bad
        file stops the service from starting, naming each problem."""
        from mps_analgesia.cds_hooks import ServiceConfigError, load_config

        (tmp_path / "tables").mkdir()
        (tmp_path / "tables" / "ours.toml").write_text(EXAMPLE.read_text("utf-8"), "utf-8")
        cfg = tmp_path / "cds.toml"
        cfg.write_text('[service]\ntable_file = "tables/ours.toml"\n', "utf-8")
        config = load_config(cfg, environ={}, insecure_no_auth=True)
        assert config.table_file == str(tmp_path / "tables" / "ours.toml")
        assert config.ome_table().id == "example-hospital"
        env = {"MPS_CDS_TABLE_FILE": str(EXAMPLE)}
        assert load_config(environ=env, insecure_no_auth=True).table_file == str(EXAMPLE)
        assert load_config(environ={}, insecure_no_auth=True).ome_table() is None
        bad = tmp_path / "bad.toml"
        bad.write_text(HEAD + ENTRY.replace('"morphine"', '"morphin"'), "utf-8")
        with pytest.raises(ServiceConfigError) as info:
            load_config(environ={}, insecure_no_auth=True, table_file=str(bad))
        [problem] = info.value.problems
        assert problem.path == "service.table_file"
        assert f"{bad}:11: tables.ward-7.entries[0].drug" in problem.message

    def test_over_http(self) -> None:
        """The running service answers with the configured local table (end to end)."""
        pytest.importorskip("uvicorn")
        httpx = pytest.importorskip("httpx")
        from cds_support import post_json, running_server
        from mps_analgesia.cds_hooks import ServiceConfig

        config = ServiceConfig(insecure_no_auth=True, table_file=str(EXAMPLE))
        with running_server(config=config) as base, httpx.Client(base_url=base) as client:
            answer = post_json(client, "/cds-services/mps-analgesia", _order_sign(_morphine_iv()))
        assert answer.status_code == 200
        assert "example-hospital" in answer.text


class TestPeerValues:
    """The peers' values the shipped tables now express, each with its source."""

    def test_pethidine(self) -> None:
        """Pethidine: ANZCA parenteral 0.4 [S], CDC/CMS analytic file oral 0.1 [V]."""
        iv = mps.OpioidStep(drug="pethidine", route="intravenous", dose="50 mg", every="4 h")
        oral = mps.OpioidStep(drug="pethidine", dose="50 mg", every="4 h")
        [line] = mps.daily_ome(iv, table="anzca-2021").lines
        assert (line.factor_low, line.source, line.level) == (0.4, "anzca-2021", "S")
        [line] = mps.daily_ome(oral, table="cdc-2016").lines
        assert (line.factor_low, line.source, line.level) == (0.1, "cdc-mme-data-file", "V")
        assert not mps.daily_ome(oral, table="anzca-2021").lines  # no oral factor: not converted
        assert not mps.daily_ome(iv, table="cdc-2016").lines

    def test_uk_codeine(self) -> None:
        """palliative-uk: oral codeine 240 mg/day is 24 MME/day (divide by 10)."""
        step = mps.OpioidStep(drug="codeine", dose="60 mg", every="6 h")
        result = mps.daily_ome(step, table="palliative-uk")
        assert result.low_mme_per_day == pytest.approx(24.0)
        assert result.lines[0].source == "scottish-palliative-guidelines"
        assert mps.daily_ome(step, table="palliative").low_mme_per_day == pytest.approx(36.0)

    def test_iv_morphine_two_to_one(self) -> None:
        """palliative-nougg: IV morphine 2:1 (NOUGG [V]); palliative keeps the European 3:1."""
        assert mps.daily_ome(_morphine_iv(), table="palliative-nougg").low_mme_per_day == 60.0
        assert mps.daily_ome(_morphine_iv(), table="palliative").low_mme_per_day == 90.0

    def test_the_12_mcg_patch(self) -> None:
        """palliative-scotland gives the 12 mcg/h patch 30-60 MME/day; an OME on a shared end
        point takes the lower patch; outside the rows, no patch."""
        patch = mps.OpioidStep(drug="fentanyl", route="transdermal", rate="12 mcg/h")
        assert mps.daily_ome(patch, table="palliative-scotland").range.text == "30–60 MME/day"
        assert not mps.daily_ome(patch, table="palliative").lines  # NOUGG: no 12 mcg/h band

        def to_patch(ome: str) -> str:
            conv = mps.convert_opioid(
                ome,
                to_drug="fentanyl",
                to_route="transdermal",
                table="palliative-scotland",
                reduction="none",
            )
            return conv.calculated.text

        assert [to_patch(f"{v} MME/day") for v in (30, 45, 60, 61, 90, 91)] == [
            "12 mcg/h",
            "12 mcg/h",
            "12 mcg/h",
            "25 mcg/h",
            "25 mcg/h",
            "37 mcg/h",
        ]
        with pytest.raises(mps.ConversionError, match="below 30 MME/day"):
            to_patch("20 MME/day")

    def test_band_rows_may_touch_not_overlap(self) -> None:
        """A band set's rows may share an end point; rows that overlap are refused."""
        bands = """
[band_sets.b]
source = "cdc-2022"
level = "V"
rows = [
  { rate = "12 mcg/h", low = "30 MME/day", high = "60 MME/day" },
  { rate = "25 mcg/h", low = "LOW MME/day", high = "90 MME/day" },
]
"""
        entry = ENTRY.replace('drug = "morphine"', 'drug = "fentanyl"')
        entry = entry.replace('["oral"]', '["transdermal"]').replace('"mg/day"', '"mcg/h"')
        entry = entry.replace("factor = 1.0", 'bands = "b"')
        table = _load(HEAD + entry + bands.replace("LOW", "60"))
        assert len(table.lookup("fentanyl", "transdermal").bands) == 2  # type: ignore[union-attr]
        problems = _problems(HEAD + entry + bands.replace("LOW", "59"))
        assert any("without overlap" in m for _, m, _ in problems)


class TestElsewhere:
    def test_day_plan_with_a_local_table(self) -> None:
        """schedule(table=) takes the table; its JSON names the table by id."""
        table = mps.load_table(EXAMPLE)
        plan = mps.schedule(mps.Regimen([_morphine_iv()]), 2, table=table)
        assert plan[0].ome_regular.table == "example-hospital"
        assert json.loads(plan.to_json())["ome_table"] == "example-hospital"

    def test_timeline_with_a_local_table(self) -> None:
        """The timeline's OME series is labelled with the local table's id."""
        from mps_analgesia.render.timeline import timeline_text

        table = mps.load_table(EXAMPLE)
        lines = timeline_text(mps.Regimen([_morphine_iv()]), table=table)
        assert "total OME (example-hospital) 60 MME/day" in lines[0]

    def test_a_local_source_is_cited_by_its_citation(self) -> None:
        """A source the local file defines is listed with its citation in rendered references."""
        text = HEAD + ENTRY.replace('source = "cdc-2022"', 'source = "ward-7-chart"')
        text += '\n[sources.ward-7-chart]\ncitation = "Ward 7 opioid chart, 2026."\n'
        table = _load(text)
        assert _catalog.source("ward-7-chart").citation == "Ward 7 opioid chart, 2026."
        ome = mps.daily_ome(mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h"), table)
        assert ome.lines[0].source == "ward-7-chart"
        rendered = mps.render(ome, format="text")
        assert "Ward 7 opioid chart, 2026." in rendered
        assert "not in the bibliography" not in rendered


class TestFuzz:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        mutated_table_texts(), st.sampled_from([None, "local-palliative-uk", "example-hospital"])
    )
    def test_a_mutated_table_file_loads_or_is_refused(
        self, text_format: tuple[str, str], table_id: str | None
    ) -> None:
        """A mutated table file gives a ConversionTable or a TableFileError, nothing else."""
        text, fmt = text_format
        try:
            table = loads_table(text, format=fmt, file="fuzz", table_id=table_id)
        except mps.TableFileError as error:
            problems = error.problems
        else:
            problems = ()
            assert table.local
            assert table.content_hash.startswith("sha256:")
        assert all(p.message for p in problems)
