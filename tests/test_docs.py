"""The documentation: generated pages are current, references are complete, examples run, the
site builds with ``mkdocs build --strict``."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import pytest

import mps_analgesia as mps
from mps_analgesia import _catalog, _docgen, _units
from mps_analgesia.patient import Anticoagulant, Patient
from mps_analgesia.steps import STEP_KINDS, TitrationPoint

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: Pages whose ``python`` code blocks are executed, in order, from the repository root.
RUNNABLE_PAGES = sorted(
    [
        ROOT / "README.md",
        DOCS / "getting-started.md",
        DOCS / "day-plan.md",
        *DOCS.glob("tutorials/*.md"),
    ]
)
README_COMMANDS = (
    "python3 -m venv .venv && .venv/bin/pip install . && "
    ".venv/bin/mps-analgesia check examples/mps-multimodal.toml\n"
    'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest\n'
)

_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ ]*$",
    re.MULTILINE | re.DOTALL,
)

_TABLE = re.compile(r"^\[", re.MULTILINE)


#: Put before a ```text block to have it compared with the output of the python block above.
_OUTPUT_MARK = "<!-- output -->"


def _dedent(m: re.Match[str]) -> str:
    indent = len(m.group("indent"))
    return "".join(line[indent:] for line in m.group("body").splitlines(True))


def code_blocks(path: Path, lang: str) -> list[str]:
    """The fenced code blocks of one language in a Markdown file, dedented, in order."""
    text = path.read_text(encoding="utf-8")
    return [_dedent(m) for m in _FENCE.finditer(text) if m.group("lang") == lang]


def _page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


#: Every generated page: the reference pages, then one page per shipped protocol.
GENERATED = (
    *_docgen.GENERATED_PAGES,
    *(f"{_docgen.PROTOCOL_PAGES_DIR}/{p.id}.md" for p in mps.list_protocols()),
)


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    """The generator's output today (computed once for the module)."""
    return _docgen.generated_pages()


class TestGeneratedPages:
    @pytest.mark.parametrize("name", GENERATED)
    def test_committed_page_equals_generator_output(
        self, name: str, generated: dict[str, str]
    ) -> None:
        """Each generated page in docs/ (protocol pages included) is what the generator writes
        from the code, the data files and protocols/ today."""
        path = DOCS / name
        expected = generated[name]
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        assert current == expected, (
            f"docs/{name} is out of date with the rule registry, the data files or the "
            f"protocols: run `{_docgen.REGENERATE}` and commit the result"
        )

    def test_hand_written_data_values_are_current(self) -> None:
        """Every data span of a hand-written page (``<!--{file:key}-->value<!--/-->``) shows the
        value the data holds today, and names a real data key."""
        pages = _docgen.hand_written_pages(DOCS)
        assert DOCS.parent / "README.md" in pages
        stale = [
            path.name
            for path in pages
            if _docgen.fill_data_spans(t := path.read_text(encoding="utf-8"), str(path)) != t
        ]
        assert not stale, f"data values out of date in {stale}: run `{_docgen.REGENERATE}`"

    def test_check_mode_reports_a_stale_data_span(self, tmp_path: Path) -> None:
        """A hand-written page whose data span no longer shows the data fails `--check`, and
        writing the pages rewrites the value (and only it)."""
        _docgen.write_all(tmp_path)
        page = tmp_path / "notes.md"
        page.write_text("at least <!--{methadone:titration.min_interval}-->5 days<!--/-->\n")
        assert _docgen.main([str(tmp_path), "--check"]) == 1
        assert _docgen.write_all(tmp_path) == [page]
        assert page.read_text() == (
            "at least <!--{methadone:titration.min_interval}-->7 days<!--/-->\n"
        )
        assert _docgen.main([str(tmp_path), "--check"]) == 0

    def test_a_data_span_naming_no_data_key_fails(self) -> None:
        """A span whose placeholder names no data value is an error naming the page."""
        from mps_analgesia.errors import DataFileError

        with pytest.raises(DataFileError, match="no key"):
            _docgen.fill_data_spans("<!--{methadone:no.such.key}-->1<!--/-->", "page.md")
        with pytest.raises(ValueError, match=r"page\.md"):
            _docgen.fill_data_spans("<!--{not a placeholder}-->1<!--/-->", "page.md")

    def test_generator_writes_exactly_these_pages(self, generated: dict[str, str]) -> None:
        """The generator writes the reference pages and a page for each shipped protocol, and
        no generated protocol page is left over in docs/protocols/."""
        assert tuple(generated) == GENERATED
        on_disk = sorted(str(p.relative_to(DOCS)) for p in (DOCS / "protocols").glob("*.md"))
        assert on_disk == sorted(n for n in GENERATED if n.startswith("protocols/"))

    def test_protocol_page_is_the_rendered_summary(self, generated: dict[str, str]) -> None:
        """A protocol page is the Markdown summary: the title, the Mermaid flow, the references
        with DOI links, and the generated-page header naming its protocol file."""
        page = generated["protocols/takase-2015-methadone-adjuvant.md"]
        assert page.startswith("<!-- Generated by `python -m mps_analgesia._docgen docs/`")
        assert "`data/protocols/takase-2015-methadone-adjuvant.toml`" in page.splitlines()[0]
        protocol = mps.load_protocol("takase-2015-methadone-adjuvant")
        assert f"\n# {protocol.title}\n" in page
        assert "```mermaid\nflowchart TD" in page
        assert "https://doi.org/10.1089/jpm.2014.0387" in page

    def test_every_generated_page_is_in_the_site_navigation(self) -> None:
        """mkdocs.yml lists each shipped protocol page (under "Shipped protocols") and every
        tutorial, so a new protocol cannot be left out of the site."""
        text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
        assert "  - Shipped protocols:\n" in text
        section = text.split("  - Shipped protocols:\n", 1)[1]
        for name in GENERATED:
            if name.startswith("protocols/"):
                assert f": {name}\n" in section, f"{name} is not in the mkdocs.yml nav"
        for page in DOCS.glob("tutorials/*.md"):
            assert f": tutorials/{page.name}\n" in text, f"{page.name} is not in the nav"

    def test_every_finding_code_is_in_the_finding_code_page(self) -> None:
        """Every rule id of the default registry appears as a code in docs/finding-codes.md."""
        text = (DOCS / "finding-codes.md").read_text(encoding="utf-8")
        missing = [rid for rid in mps.default_rules().ids if f"`{rid}`" not in text]
        assert not missing, f"not in docs/finding-codes.md: {missing}; run `{_docgen.REGENERATE}`"

    def test_every_rule_has_a_section_in_the_rule_page(self) -> None:
        """docs/rules.md has a heading for every rule of the default registry."""
        text = (DOCS / "rules.md").read_text(encoding="utf-8")
        missing = [rid for rid in mps.default_rules().ids if f"\n## {rid}\n" not in text]
        assert not missing

    def test_an_added_rule_changes_the_generated_pages(self) -> None:
        """A new rule appears in the rule and finding-code pages (so stale pages fail above)."""

        @mps.rule("local.example", title="Example", applies_to=["opioid"], severity="info")
        def example(ctx: Any, index: Any, step: Any) -> Any:
            return mps.PASSED

        rules = mps.default_rules().with_rules(example)
        assert "## local.example" in _docgen.rules_markdown(rules)
        assert "`local.example`" in _docgen.finding_codes_markdown(rules)
        assert "local.example" not in _docgen.rules_markdown()

    def test_undocumented_json_key_fails_the_generator(self) -> None:
        """A report key without a description stops generation with a message to fix it."""
        with pytest.raises(KeyError, match="does not describe"):
            _docgen._described(["new_key"], {}, "Report.to_dict()")

    def test_check_mode_reports_stale_pages_then_passes_after_writing(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`--check` exits 1 on a folder without the pages and 0 once they are written."""
        assert _docgen.main([str(tmp_path), "--check"]) == 1
        assert _docgen.REGENERATE in capsys.readouterr().err
        assert _docgen.main([str(tmp_path)]) == 0
        assert _docgen.main([str(tmp_path), "--check"]) == 0
        written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.md"))
        assert written == sorted(GENERATED)

    def test_a_page_of_a_removed_protocol_is_stale_and_removed(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A generated protocol page whose protocol is gone fails `--check` and is deleted on
        regeneration; a hand-written page in the folder is left alone."""
        _docgen.write_all(tmp_path)
        gone = tmp_path / "protocols" / "retired-protocol.md"
        gone.write_text(_docgen.protocol_markdown(mps.load_protocol("psoas-compartment-block")))
        mine = tmp_path / "protocols" / "notes.md"
        mine.write_text("# My notes\n")
        assert _docgen.main([str(tmp_path), "--check"]) == 1
        assert "retired-protocol.md is no longer a shipped protocol" in capsys.readouterr().err
        assert _docgen.write_all(tmp_path) == [gone]
        assert not gone.exists()
        assert mine.exists()

    def test_slug_matches_mkdocs_headings(self) -> None:
        """Anchors are computed as MkDocs' toc extension computes them."""
        toc = pytest.importorskip("markdown.extensions.toc", reason="markdown is not installed")
        for text in ("dose.max-daily", "cdc-2022", "Published maximum doses"):
            assert _docgen._slug(text) == toc.slugify(text, "-")


def _walk_sources(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else key
            if key == "source" and isinstance(item, str):
                yield here, item
            elif key == "sources" and isinstance(item, list):
                yield from ((f"{here}[{i}]", str(s)) for i, s in enumerate(item))
            else:
                yield from _walk_sources(item, here)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk_sources(item, f"{path}[{i}]")


def _data_files() -> list[Any]:
    folder = resources.files("mps_analgesia") / "data"
    return sorted((p for p in folder.iterdir() if p.name.endswith(".toml")), key=lambda p: p.name)


class TestSources:
    def test_every_source_in_a_data_file_is_in_the_bibliography(self) -> None:
        """Every `source`/`sources` id in every data/*.toml file is an id in sources.toml."""
        known = set(_catalog.sources())
        unknown = []
        for path in _data_files():
            if path.name == "sources.toml":
                continue
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            for where, sid in _walk_sources(data, ""):
                if sid not in known:
                    unknown.append(f"{path.name}: {where} = {sid!r}")
        assert not unknown, "source ids missing from sources.toml:\n" + "\n".join(unknown)

    def test_the_walk_finds_the_drug_limit_sources(self) -> None:
        """The walk above sees the sources of drugs.toml (so it cannot pass vacuously)."""
        data = tomllib.loads(
            (resources.files("mps_analgesia") / "data" / "drugs.toml").read_text(encoding="utf-8")
        )
        found = dict(_walk_sources(data, ""))
        assert found["drugs.tramadol.limits[0].source"] == "ultram-label"

    def test_every_rule_source_is_in_the_bibliography(self) -> None:
        """Every source id a rule declares exists in sources.toml."""
        known = set(_catalog.sources())
        unknown = [(r.id, s) for r in mps.default_rules() for s in r.sources if s not in known]
        assert not unknown

    def test_every_data_file_has_an_edition(self) -> None:
        """Every data file has a [meta] table with an edition (logged with each report)."""
        for path in _data_files():
            meta = tomllib.loads(path.read_text(encoding="utf-8")).get("meta", {})
            assert meta.get("edition"), f"{path.name} has no [meta] edition"

    def test_sources_page_lists_every_source(self) -> None:
        """docs/sources.md has a heading for every bibliography entry."""
        text = _docgen.sources_markdown()
        assert all(f"\n### {sid}\n" in text for sid in _catalog.sources())


class TestHandWrittenReference:
    def test_case_file_page_documents_every_key(self) -> None:
        """docs/case-files.md names every step kind and every key of steps and the patient."""
        text = (DOCS / "case-files.md").read_text(encoding="utf-8")
        classes = [*STEP_KINDS.values(), Patient, Anticoagulant, TitrationPoint]
        keys = {a.name for cls in classes for a in attrs.fields(cls) if a.init}
        missing = sorted(k for k in keys | set(STEP_KINDS) if f"`{k}`" not in text)
        assert not missing, f"keys not documented in docs/case-files.md: {missing}"

    def test_units_page_lists_every_refused_abbreviation(self) -> None:
        """docs/units.md lists every unit the parser refuses."""
        text = (DOCS / "units.md").read_text(encoding="utf-8")
        missing = sorted(token for token in _units._REFUSED if f"`{token}`" not in text)
        assert not missing

    @pytest.mark.parametrize("page", ["case-files.md", "getting-started.md"])
    def test_case_file_examples_load(self, page: str) -> None:
        """Every TOML example with a table, and every JSON example, is a valid case."""
        examples = [(b, "toml") for b in code_blocks(DOCS / page, "toml") if _TABLE.search(b)]
        examples += [(b, "json") for b in code_blocks(DOCS / page, "json")]
        assert examples
        for text, fmt in examples:
            mps.loads_case(text, format=fmt)


class TestRunnableExamples:
    @pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=_page_id)
    def test_python_blocks_run(self, page: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The page's python blocks run in order, in one namespace, from the repository root;
        a text block marked `<!-- output -->` equals what the python block before it printed."""
        text = page.read_text(encoding="utf-8")
        fences = list(_FENCE.finditer(text))
        assert any(m.group("lang") == "python" for m in fences), f"{_page_id(page)}: no python"
        monkeypatch.chdir(ROOT)
        namespace: dict[str, Any] = {"__name__": "__docs__"}
        printed: str | None = None
        end = 0
        for n, m in enumerate(fences, start=1):
            body = _dedent(m)
            if m.group("lang") == "python":
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    exec(compile(body, f"{_page_id(page)} (block {n})", "exec"), namespace)
                printed = out.getvalue()
            elif text[end : m.start()].rstrip().endswith(_OUTPUT_MARK):
                assert printed is not None, f"{_page_id(page)} block {n}: no python block before"
                assert body == printed, f"{_page_id(page)} block {n} is not what the code prints"
            end = m.end()

    def test_output_blocks_are_compared(self) -> None:
        """The pages mark some output blocks, so the comparison above is exercised."""
        marked = [p for p in RUNNABLE_PAGES if _OUTPUT_MARK in p.read_text(encoding="utf-8")]
        assert len(marked) >= 2


class TestReadme:
    def test_readme_opens_with_the_two_install_commands(self) -> None:
        """The README's first code block is exactly the install-and-check and test commands."""
        text = (ROOT / "README.md").read_text(encoding="utf-8")
        first = _FENCE.search(text)
        assert first is not None
        assert first.group("lang") == "sh"
        assert first.group("body") == README_COMMANDS
        before = text[: first.start()].strip().splitlines()
        assert len(before) <= 1
        assert all(line.startswith("# ") for line in before)


class TestSite:
    def test_mkdocs_build_strict(self, tmp_path: Path) -> None:
        """`mkdocs build --strict` succeeds (no broken link, anchor or nav entry)."""
        if importlib.util.find_spec("mkdocs") is None:
            pytest.skip('mkdocs is not installed: pip install -e ".[docs]"')
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "mkdocs",
                "build",
                "--strict",
                "--config-file",
                str(ROOT / "mkdocs.yml"),
                "--site-dir",
                str(tmp_path / "site"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert (tmp_path / "site" / "index.html").exists()
        _assert_nothing_from_a_cdn(tmp_path / "site")
        api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
        for name in mps.__all__:
            assert f'id="{name.lower()}"' in api or f">{name}<" in api, (
                f"{name} not in the API page"
            )


def _assert_nothing_from_a_cdn(site: Path) -> None:
    """No page loads a script, style sheet or font from another host (links are allowed)."""
    loads = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]+\"")
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        for match in loads.finditer(text):
            tag = match.group(0)
            where = f"{page.relative_to(site)} loads {tag}"
            assert tag.startswith("<link"), where
            assert "stylesheet" not in tag, where
