"""Packaged clinical data: the drug catalog, the bibliography, sourced values and editions."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

import mps_analgesia as mps
from mps_analgesia import _catalog
from mps_analgesia.errors import (
    DataFileError,
    UnknownDrugError,
    UnknownNameError,
    UnknownRouteError,
)

_DATA = resources.files("mps_analgesia") / "data"
_DATA_FILES = sorted(p.name for p in _DATA.iterdir() if p.name.endswith(".toml"))


class TestDataFiles:
    @pytest.mark.parametrize("name", _DATA_FILES)
    def test_every_data_file_has_an_edition(self, name: str) -> None:
        """Every packaged TOML data file reads and has [meta] edition."""
        assert _catalog.edition(name)

    @pytest.mark.parametrize("name", [n for n in _DATA_FILES if n != "sources.toml"])
    def test_every_source_id_and_level_is_known(self, name: str) -> None:
        """Every 'source' in a data file is a sources.toml id; every 'level' is V, S or U."""
        known = _catalog.sources()
        bad: list[str] = []

        def walk(node: Any, path: str) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    where = f"{path}.{key}" if path else key
                    if key == "source":
                        ids = [value] if isinstance(value, str) else value
                        bad.extend(f"{where}: {s!r}" for s in ids if s not in known)
                    elif key == "level" and value not in _catalog.LEVELS:
                        bad.append(f"{where}: level {value!r}")
                    walk(value, where)
            elif isinstance(node, list):
                for i, item in enumerate(node):
                    walk(item, f"{path}[{i}]")

        walk(_catalog.data_file(name), "")
        assert bad == []

    def test_data_file_is_read_once(self) -> None:
        """data_file() caches: the same mapping comes back."""
        assert _catalog.data_file("drugs.toml") is _catalog.data_file("drugs.toml")

    def test_missing_data_file(self) -> None:
        """A missing data file is a DataFileError (a library defect)."""
        with pytest.raises(DataFileError, match="missing from the package"):
            _catalog.data_file("no-such-file.toml")

    def test_units_definitions_are_not_toml(self) -> None:
        """units.txt is pint's definitions format, read by _units, not by data_file."""
        text = (_DATA / "units.txt").read_text(encoding="utf-8")
        assert "percent_wv = 10 * milligram / milliliter" in text
        with pytest.raises(tomllib.TOMLDecodeError):
            tomllib.loads(text)


class TestSources:
    @pytest.mark.parametrize(
        "sid",
        [
            "stevens-gonet-1990",
            "stevens-2010",
            "takase-2015",
            "agar-2004",
            "yoshioka-2025",
            "takamatsu-2018",
            "cdc-2022",
            "aps-cpdd-2014",
            "astro-2017",
            "asra-2018",
        ],
    )
    def test_seed_and_guideline_references(self, sid: str) -> None:
        """The seeds' references and the guidelines used are in the bibliography."""
        record = _catalog.source(sid)
        assert record.id == sid
        assert record.citation

    def test_doi_link(self) -> None:
        """A source with a DOI has a doi.org link; one without has none."""
        assert _catalog.source("stevens-2010").url == "https://doi.org/10.1089/jpm.2009.0193"
        assert _catalog.source("stevens-gonet-1990").url == (
            "https://doi.org/10.1111/j.1440-1673.1990.tb02831.x"
        )
        assert _catalog.source("suraj-2023").url == ""

    def test_unknown_source(self) -> None:
        """An unknown source id raises UnknownNameError with close ids."""
        with pytest.raises(UnknownNameError) as info:
            _catalog.source("takase-2016")
        assert "takase-2015" in info.value.suggestions


class TestSourced:
    def _entry(self, **kw: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "value": "4 g/day",
            "source": "acetaminophen-otc-label",
            "level": "S",
        }
        entry.update(kw)
        return entry

    def test_value_is_canonical(self) -> None:
        """sourced() reads a quantity text into a float in the requested unit."""
        v = _catalog.sourced(self._entry(), dimension="mass_rate", unit="mg/day", where="t")
        assert (v.value, v.unit, v.source, v.level) == (
            4000.0,
            "mg/day",
            "acetaminophen-otc-label",
            "S",
        )
        assert v.text == "4000 mg/day"
        assert v.quantity.to("g/day").magnitude == pytest.approx(4.0)

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"value": 4000}, "t.value: '4000' has no unit"),
            ({"value": "4 mL"}, "is a volume, not a mass rate"),
            ({"value": "-4 g/day"}, "cannot be negative"),
            ({"source": "nope"}, "'source' 'nope' is not an id"),
            ({"level": "X"}, "'level' must be one of V, S, U"),
            ({"level": None}, "'level' must be one of V, S, U"),
        ],
    )
    def test_bad_entries_are_data_file_errors(self, change: dict[str, Any], message: str) -> None:
        """A malformed data entry is a DataFileError that says where and what."""
        with pytest.raises(DataFileError, match=message):
            _catalog.sourced(self._entry(**change), dimension="mass_rate", unit="mg/day", where="t")


class TestDrugs:
    @pytest.mark.parametrize(
        "name",
        [
            "morphine",
            "oxycodone",
            "hydromorphone",
            "fentanyl",
            "buprenorphine",
            "methadone",
            "tramadol",
            "tapentadol",
            "codeine",
            "hydrocodone",
            "oxymorphone",
            "acetaminophen",
            "ibuprofen",
            "naproxen",
            "diclofenac",
            "celecoxib",
            "gabapentin",
            "pregabalin",
            "duloxetine",
            "amitriptyline",
            "ketamine",
            "dexamethasone",
            "baclofen",
            "diazepam",
            "bupivacaine",
            "levobupivacaine",
            "ropivacaine",
            "lidocaine",
        ],
    )
    def test_issue_drugs_are_in_the_catalog(self, name: str) -> None:
        """Every drug the issue names is in the catalog under its own id."""
        assert _catalog.drug(name).id == name

    @pytest.mark.parametrize(
        ("name", "did"),
        [
            ("paracetamol", "acetaminophen"),
            ("APAP", "acetaminophen"),
            ("  Morphine   Sulfate ", "morphine"),
            ("lignocaine", "lidocaine"),
            ("meperidine", "pethidine"),
        ],
    )
    def test_synonyms(self, name: str, did: str) -> None:
        """Synonyms, case and extra spaces find the same drug."""
        assert _catalog.drug(name).id == did

    def test_unknown_drug_suggests(self) -> None:
        """An unknown drug raises UnknownDrugError with close names."""
        with pytest.raises(UnknownDrugError) as info:
            _catalog.drug("oxycodon", field="drug")
        assert info.value.suggestions[0] == "oxycodone"
        assert info.value.field == "drug"

    def test_drug_ids(self) -> None:
        """drug_ids() lists every catalog drug once."""
        ids = _catalog.drug_ids()
        assert len(ids) == len(set(ids))
        assert "morphine" in ids

    def test_routes_of_every_drug_are_known(self) -> None:
        """Every drug's routes are routes of the catalog."""
        for did in _catalog.drug_ids():
            record = _catalog.drug(did)
            assert record.routes, did
            for route in record.routes:
                assert _catalog.route_formulations(route), (did, route)

    def test_patch_is_transdermal_only(self) -> None:
        """Only the transdermal route allows a patch, and it allows nothing else."""
        for route, formulations in _catalog.routes().items():
            assert ("patch" in formulations) == (route == "transdermal"), route
        assert _catalog.route_formulations("transdermal") == ("patch",)

    def test_unknown_route_suggests(self) -> None:
        """An unknown route raises UnknownRouteError with close routes."""
        with pytest.raises(UnknownRouteError) as info:
            _catalog.route_formulations("subcutanous")
        assert info.value.suggestions[0] == "subcutaneous"

    def test_limits_for(self) -> None:
        """Limits are selected by kind, route and formulation."""
        tramadol = _catalog.drug("tramadol")
        ir = tramadol.limits_for("max_daily", "oral", "immediate-release")
        er = tramadol.limits_for("max_daily", "oral", "modified-release")
        assert [lim.value.value for lim in ir] == [400.0]
        assert [lim.value.value for lim in er] == [300.0]
        assert tramadol.limits_for("max_single", "oral", "modified-release") == ()
        baclofen = _catalog.drug("baclofen")
        assert baclofen.limits_for("max_daily", "intrathecal", "immediate-release") == ()
        assert len(baclofen.limits_for("max_daily", "oral", "immediate-release")) == 1

    def test_acetaminophen_limit(self) -> None:
        """Acetaminophen's 4 g/day is in the catalog with its label source."""
        (lim,) = [lim for lim in _catalog.drug("acetaminophen").limits if lim.kind == "max_daily"]
        assert (lim.kind, lim.value.value, lim.value.source) == (
            "max_daily",
            4000.0,
            "acetaminophen-otc-label",
        )

    def test_limit_kinds(self) -> None:
        """Every limit is a max_single in mg or a max_daily in mg/day."""
        for did in _catalog.drug_ids():
            for lim in _catalog.drug(did).limits:
                assert (lim.kind, lim.value.unit) in (("max_single", "mg"), ("max_daily", "mg/day"))
                assert lim.value.value > 0

    def test_opioid_flags(self) -> None:
        """Classes and flags: methadone is long-acting, buprenorphine a partial agonist."""
        assert _catalog.drug("methadone").long_acting
        assert _catalog.drug("buprenorphine").partial_agonist
        assert _catalog.drug("morphine").strong_opioid
        assert not _catalog.drug("tramadol").strong_opioid
        assert _catalog.drug("ropivacaine").drug_class == "local_anaesthetic"


class TestEditions:
    """Editions tied to content: data/editions.toml records each file's edition and hash."""

    def test_data_editions_is_public(self) -> None:
        """mps.data_editions() names every packaged data file with its [meta] edition."""
        editions = mps.data_editions()
        assert set(editions) == set(_catalog.data_file_names())
        assert editions["drugs.toml"] == _catalog.edition("drugs.toml")
        assert "editions.toml" not in editions

    @pytest.mark.parametrize("name", _catalog.data_file_names())
    def test_content_matches_its_recorded_edition(self, name: str) -> None:
        """A table whose values, sources or levels changed needs a new edition."""
        recorded = _catalog.recorded_editions()
        assert name in recorded, (
            f"{name} is not in data/editions.toml: run "
            "`python -m mps_analgesia._docgen --record-editions`"
        )
        edition, digest = recorded[name]
        assert _catalog.content_hash(name) == digest, (
            f"{name}: its content changed since edition {edition!r} was recorded; give it a new "
            "[meta] edition, then run `python -m mps_analgesia._docgen --record-editions`"
        )
        assert _catalog.edition(name) == edition, (
            f"{name}: edition {_catalog.edition(name)!r} is not the recorded {edition!r}: run "
            "`python -m mps_analgesia._docgen --record-editions`"
        )

    def test_hash_ignores_notes_but_not_values(self) -> None:
        """A note's wording does not change the hash; a number, a source or a level does."""
        base = {"meta": {"edition": "x"}, "a": {"value": "5 mg", "source": "s", "level": "V"}}
        reworded = {**base, "a": {**base["a"], "note": "other words"}}
        changed = {**base, "a": {**base["a"], "value": "6 mg"}}
        relevelled = {**base, "a": {**base["a"], "level": "S"}}
        assert _catalog._content(reworded) == _catalog._content(base)
        assert _catalog._content(changed) != _catalog._content(base)
        assert _catalog._content(relevelled) != _catalog._content(base)

    def test_recording_refuses_a_content_change_under_the_same_edition(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """record_editions() will not record new content under an old edition."""
        from mps_analgesia import _docgen
        from mps_analgesia.errors import DataFileError

        real = _catalog.content_hash
        monkeypatch.setattr(
            _catalog,
            "content_hash",
            lambda name: "sha256:changed" if name == "drugs.toml" else real(name),
        )
        with pytest.raises(DataFileError, match=r"drugs\.toml"):
            _docgen.record_editions()


_NUMBER = r"\d+(?:\.\d+)?"
_STATED = re.compile(
    rf"({_NUMBER})(?:\s*[–-]\s*({_NUMBER}))?\s*"
    r"(ms|mg/kg|mg/day|mg|mcg/h|MME/day|Gy|days?|kg|mL/min|years?|h)\b"
)
#: Numbers a rule text may state that are definitions, not clinical values (EQD2 is, by
#: definition, the dose in 2 Gy fractions).
_DEFINITIONS = {("radiotherapy.bed-eqd2", 2.0, "Gy")}


def _canonical(number: str, unit: str) -> tuple[str, float]:
    from mps_analgesia import _units

    unit = {"days": "day", "years": "year"}.get(unit, unit)
    value, info = _units.parse(f"{number} {unit}")
    base = _units.quantity_from_magnitude(value, info.text).to_base_units()
    return info.dimension, round(float(base.magnitude), 9)


def _stated(text: str) -> list[tuple[str, str]]:
    return [(n, m.group(3)) for m in _STATED.finditer(text) for n in m.groups()[:2] if n]


def _data_quantities() -> set[tuple[str, float]]:
    out: set[tuple[str, float]] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            out.update(_canonical(n, u) for n, u in _stated(value))

    for name in _catalog.data_file_names():
        walk(dict(_catalog.data_file(name)))
    return out


def _rule_templates() -> list[tuple[str, str, str]]:
    """(rule id, field, text as written) of every ``@rule(...)`` in the default rule modules:
    ``title``, ``severity`` and ``description`` (the check's docstring when it has none)."""
    import ast

    from mps_analgesia.rules import _engine

    out = []
    folder = Path(_engine.__file__).parent
    for name in _engine.RULE_MODULES:
        tree = ast.parse((folder / f"{name}.py").read_text(encoding="utf-8"))
        # module constants a declaration may use (CODE: Final = "dose.x"; rule(CODE, ...))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)
        }

        def literal(node: ast.expr, constants: dict[str, Any] = constants) -> Any:
            if isinstance(node, ast.Name) and node.id in constants:
                return constants[node.id]
            return ast.literal_eval(node)

        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            for deco in fn.decorator_list:
                if not (isinstance(deco, ast.Call) and getattr(deco.func, "id", "") == "rule"):
                    continue
                rule_id = literal(deco.args[0])
                texts = {
                    k.arg: literal(k.value)
                    for k in deco.keywords
                    if k.arg in ("title", "severity", "description")
                }
                if not texts.get("description"):
                    texts["description"] = (ast.get_docstring(fn, clean=False) or "").strip()
                for what in ("title", "severity", "description"):
                    out.append((rule_id, what, str(texts.get(what, ""))))
    return out


#: Digits that are not a clinical number: years of a source (ASTRO 2017), names (CYP3A4, 2B6,
#: EQD2, Table D-4, Fast Fact #161).
_NAMES = re.compile(
    r"(?<![\d.])(?:19|20)\d\d(?![\d.]|\s*(?:mg|mcg|MME|ms|Gy|day|h\b))"
    r"|\b[A-Za-z]\w*\d\w*|\b\d+(?!mg|mcg|ms|mL|mm|kg|g\b|h\b|hr|day|Gy|MME)[A-Za-z]\w*"
    r"|\b[A-Z]-\d+\b|#\d+"
)
#: A source's own words: “…” followed by its source id in parentheses.
_QUOTE = re.compile(r"“[^”]*”\s*\(([a-z0-9][a-z0-9-]*)\)")
#: Numbers a rule text states by definition, not as clinical values: the formulas of BED and
#: EQD2 (EQD2 is the dose in 2 Gy fractions) and the period of a 24-hour cap.
_RULE_DEFINITIONS: dict[str, tuple[str, ...]] = {
    "radiotherapy.bed-eqd2": ("(1 + d/(α/β))", "(1 + 2/(α/β))", "in 2 Gy fractions"),
    "block.local-anaesthetic-max": ("over any 24 hours", "the 24-hour cap", "a 24-hour cap"),
    "block.cumulative-dose": ("its 24-hour cap",),
}


def _without_allowed_numbers(rule_id: str, text: str) -> str:
    """``text`` without its placeholders, sourced quotations, names and definitions."""
    from mps_analgesia import _datatext

    sources = set(_catalog.sources())
    text = _datatext.PLACEHOLDER.sub("", text)
    text = _QUOTE.sub(lambda m: "" if m.group(1) in sources else m.group(0), text)
    for phrase in _RULE_DEFINITIONS.get(rule_id, ()):
        text = text.replace(phrase, "")
    return _NAMES.sub("", text)


_QTC_THRESHOLD = re.compile(
    rf"(?:above|below|from|over|under|at least|more than|less than|≥|≤|>|<|to)\s*({_NUMBER})\s*"
    rf"(?:[–-]\s*({_NUMBER})\s*)?ms\b"
)


_REGENERATE = "python -m mps_analgesia._docgen docs/"
_UNIT = (
    r"(?:ms|mg/kg|mg/day|mg/d|mg|mcg/h|mcg|MME/day|Gy|days?|weeks?|kg/m2|kg|mL/min|mL|"
    r"years?|h|hours?|g/day|g|%)"
)
_PROSE_THRESHOLD = re.compile(
    r"(?i)(?:above|below|over|under|at least|at most|more than|less than|up to|exceeds?|"
    r"maximum(?: of)?|limit(?: of)?|cap(?: of)?|threshold(?: of)?|within|≥|≤|>=|<=|>|<)"
    rf"\s*{_NUMBER}(?:/\d+)?(?:\s*[–-]\s*{_NUMBER})?\s*{_UNIT}(?![\w/])"
)
#: Figures in hand-written pages that are not clinical values: service and planner speed
#: budgets, and a day as 24 hours.
_NOT_CLINICAL = {
    ("docs/cds-hooks-service.md", "≤ 20 ms"),
    ("docs/day-plan.md", "over 28 days"),
    ("docs/day-plan.md", "under 1 ms"),
    ("docs/equianalgesia.md", "over 24 hours"),
}


def _prose_thresholds(text: str) -> list[tuple[str, int]]:
    """(threshold as written, line) in the prose of a Markdown page: fenced code, inline code,
    data spans and sourced quotations (“…” (source-id)) left out."""
    from mps_analgesia import _docgen

    sources = set(_catalog.sources())
    text = _docgen.DATA_SPAN.sub("", text)
    out = []
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        line = re.sub(r"`[^`]*`", "", line)
        line = _QUOTE.sub(lambda m: "" if m.group(1) in sources else m.group(0), line)
        out += [(m.group(0), number) for m in _PROSE_THRESHOLD.finditer(line)]
    return out


#: A protocol text naming its own check's value, or a guard's or requirement's.
_OWN_VALUE = re.compile(r"\{value\}|\{(?:when|requires)\[\d+\]\.value\}")
#: The prose keys of a protocol file (a ``note`` is the source's words, and stays).
_PROTOCOL_PROSE = {"title", "purpose", "summary", "indication", "text", "when", "action", "trigger"}


def _protocol_prose() -> list[tuple[str, str, str]]:
    """(file, key path, text as written) of every prose value of the shipped protocols."""
    import tomllib

    out = []

    def walk(value: Any, path: str, name: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else key, name)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]", name)
        elif isinstance(value, str) and re.sub(r"\[\d+\]$", "", path).rsplit(".", 1)[-1] in (
            _PROTOCOL_PROSE
        ):
            out.append((name, path, value))

    folder = resources.files("mps_analgesia") / "data" / "protocols"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".toml"):
            walk(tomllib.loads(item.read_text(encoding="utf-8")), "", item.name)
    return out


def _hand_written_texts() -> list[tuple[str, str]]:
    """(where, text) of the hand-written docs, the README and the protocol texts."""
    from mps_analgesia import _docgen

    root = Path(__file__).resolve().parents[1]
    generated = set(_docgen.GENERATED_PAGES)
    out = []
    for page in sorted((root / "docs").rglob("*.md")):
        rel = page.relative_to(root / "docs").as_posix()
        if rel not in generated and not rel.startswith(f"{_docgen.PROTOCOL_PAGES_DIR}/"):
            out.append((f"docs/{rel}", page.read_text(encoding="utf-8")))
    out.append(("README.md", (root / "README.md").read_text(encoding="utf-8")))
    folder = resources.files("mps_analgesia") / "data" / "protocols"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".toml"):
            out.append((f"protocols/{item.name}", item.read_text(encoding="utf-8")))
    return out


class TestOneNumber:
    """A clinical number lives in one place: texts take it from data or say it in words."""

    def test_rule_titles_and_descriptions_state_only_data_values(self) -> None:
        """Every quantity a rule title or description states is a value of the data files."""
        import mps_analgesia as mps_

        values = _data_quantities()
        stale = []
        for r in mps_.default_rules():
            for what in ("title", "description"):
                for number, unit in _stated(getattr(r, what)):
                    if (r.id, float(number), unit) in _DEFINITIONS:
                        continue
                    if _canonical(number, unit) not in values:
                        stale.append(f"{r.id} {what}: {number} {unit}")
        assert not stale, f"stated but not in the data: {stale}"

    def test_rule_texts_state_no_number_of_their_own(self) -> None:
        """A rule title, description or severity names each threshold by its data key
        (``{file:key}``) or says it in words: no number is written in the text itself."""
        stated = []
        for rule_id, what, template in _rule_templates():
            rest = _without_allowed_numbers(rule_id, template)
            for m in re.finditer(r"\d[\d.,/]*", rest):
                around = rest[max(0, m.start() - 30) : m.end() + 20].strip()
                stated.append(f"{rule_id} {what}: {m.group(0)!r} in …{around}…")
        assert not stated, (
            "numbers written into rule texts: name the data value as {file:key} "
            f"(see mps_analgesia._datatext) or say it in words: {stated}"
        )

    def test_rule_templates_cover_every_default_rule(self) -> None:
        """The scan of the rule modules finds every rule of the default registry, and its
        filled texts are the registry's (so the test above reads what users see)."""
        import mps_analgesia as mps_
        from mps_analgesia import _datatext

        rules = {r.id: r for r in mps_.default_rules()}
        seen = {}
        for rule_id, what, template in _rule_templates():
            seen.setdefault(rule_id, set()).add(what)
            assert getattr(rules[rule_id], what) == _datatext.fill(template), (rule_id, what)
        assert set(seen) == set(rules)

    @pytest.mark.parametrize(
        "text",
        [
            "QTc above 500 ms",
            "at least 7 days apart",
            "outside 1/10–1/6 of the daily dose",
            "over 75 years",
            "more than 10 times the largest unit",
        ],
    )
    def test_a_restated_number_fails_the_scan(self, text: str) -> None:
        """A number written into a rule text is caught (the scan above can fail)."""
        assert re.search(r"\d", _without_allowed_numbers("x.y", text))

    def test_placeholders_quotes_and_names_pass_the_scan(self) -> None:
        """Placeholders, a source's quoted words with its id, years and names carry no number."""
        ok = (
            "QTc above {methadone:qtc.contraindicated_above} (APS/CPDD 2014; CYP3A4/2B6/2C19, "
            "VA/DoD Table D-4, Fast Fact #161); the label: “no increase for at least 7 days” "
            "(methapain-label)"
        )
        assert not re.search(r"\d", _without_allowed_numbers("x.y", ok))
        unsourced = "the label: “no increase for at least 7 days” (no-such-source)"
        assert re.search(r"\d", _without_allowed_numbers("x.y", unsourced))

    def test_hand_written_docs_take_thresholds_from_data(self) -> None:
        """A threshold in the prose of a hand-written page or the README (a number with a unit
        after "above", "below", "at most", "≤" …) is a data span the docs generator fills
        (``<!--{file:key}-->…<!--/-->``) or a source's quoted words with its id; code blocks,
        inline code and the few non-clinical figures listed here are left out."""
        stated = []
        for where, text in _hand_written_texts():
            if where.startswith("protocols/"):
                continue
            for number, line in _prose_thresholds(text):
                if (where, number) not in _NOT_CLINICAL:
                    stated.append(f"{where}:{line}: {number!r}")
        assert not stated, (
            "thresholds written into hand-written docs: write them as data spans "
            f"<!--{{file:key}}-->value<!--/--> (then run `{_REGENERATE}`) or in words: {stated}"
        )

    def test_protocol_texts_take_thresholds_from_data_or_their_checks(self) -> None:
        """A threshold in a protocol's prose (titles, purposes, summaries, check texts …) is a
        data placeholder ``{file:key}``, its check's own ``{value}`` (or a guard's
        ``{when[i].value}``) or a source's quoted words; a ``note`` is the source's own words."""
        from mps_analgesia import _datatext

        stated = []
        for name, path, text in _protocol_prose():
            text = _datatext.PLACEHOLDER.sub("", _OWN_VALUE.sub("", text))
            for number, _line in _prose_thresholds(text):
                stated.append(f"protocols/{name} {path}: {number!r}")
        assert not stated, (
            "thresholds written into protocol texts: write {value}, {when[i].value} or "
            f"{{file:key}} instead: {stated}"
        )

    @pytest.mark.parametrize(
        ("text", "found"),
        [
            ("a QTc above 500 ms", ["above 500 ms"]),
            ("| lidocaine | ≤ 300 mg |", ["≤ 300 mg"]),
            ("at least <!--{methadone:titration.min_interval}-->7 days<!--/--> apart", []),
            ("```toml\nqtc = 'above 500 ms'\n```\nand `at most 30 mg/day`", []),
            ("the label: “below 30 mL/min” (ultram-label)", []),
        ],
    )
    def test_the_prose_scan_finds_written_thresholds(self, text: str, found: list[str]) -> None:
        """The scan finds a written threshold and passes spans, code and sourced quotations."""
        assert [n for n, _line in _prose_thresholds(text)] == found

    def test_hand_written_qtc_thresholds_are_the_data_values(self) -> None:
        """A QTc threshold written in a doc, the README or a protocol text is a data value."""
        qtc = {
            _canonical(str(_catalog.data_entry("methadone.toml", k)["value"]).split()[0], "ms")
            for k in ("qtc.contraindicated_above", "qtc.prolonged_from")
        }
        stale = []
        for where, text in _hand_written_texts():
            for line in text.splitlines():
                if "qtc" not in line.casefold():
                    continue
                for m in _QTC_THRESHOLD.finditer(line):
                    for number in m.groups():
                        if number and _canonical(number, "ms") not in qtc:
                            stale.append(f"{where}: {m.group(0)!r}")
        assert not stale, f"QTc thresholds that are not the data values: {stale}"
