"""Hypothesis strategies that fuzz every input boundary (issue 14): mutated case files,
protocol files, FHIR Bundles and quantity texts.

Each strategy starts from real, valid input (the example case files, the shipped protocols, a
Bundle written by ``to_bundle``) and mutates it the way a careless user or an attacker would:
values of the wrong type, huge and tiny numbers, unsafe units, control characters, lone
surrogates, deleted keys.  A boundary must answer every one with a result or an
:class:`~mps_analgesia.errors.MpsAnalgesiaError`, never a bare exception.

- :func:`quantity_noise` (text near a valid quantity)
- :func:`mutated_data` (any JSON-like document, mutated), :func:`mutated_case_texts`,
  :func:`mutated_protocol_texts`, :func:`mutated_bundles`
"""

from __future__ import annotations

import copy
import json
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
PROTOCOLS = sorted((ROOT / "src" / "mps_analgesia" / "data" / "protocols").glob("*.toml"))

VALID_QUANTITIES = (
    "30 mg", "10mg", "0.5 mg", "1e3 mg", "15 mg/day", "25 mcg/h", "5 mcg / hr", "0.2 %",
    "2 mg/mL", "58 mL/min/1.73m2", "440 ms", "4 Gy/fraction", "60 MME/day", "3 mg/kg",
    "500 mg/m2", "15 mg/24h", "52 kg", "12 h",
)  # fmt: skip
_NOISE = st.sampled_from(
    [
        *" \t\n\x00\x1d\x7f\x85\u00a0\u2028\u200b\ufeff·×*^/.,+-eE09%²µμmgLhdUuc#'\"\\١５",
        "**", "^2", "/24h", "percent_wv", "standard_bsa", "e400", "e-400", "9" * 30,
    ]
)  # fmt: skip


@st.composite
def quantity_noise(draw: st.DrawFn) -> str:
    """A valid quantity text with up to four insertions, deletions or swaps."""
    text = draw(st.sampled_from(VALID_QUANTITIES))
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "swap"]))
        if op == "insert":
            text = text[:i] + draw(_NOISE) + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + 1 :]
        else:
            j = draw(st.integers(0, len(text)))
            text = text[:i] + text[j:] + text[i:j]
    return text


#: Values a careless user or an attacker puts where another value belongs.
WRONG_VALUES = st.one_of(
    st.sampled_from(
        [[], {}, [1, 2], {"a": 1}, -1, 0, 1e308, True, "", "1e308 mg", "1e-400 mg", "5 kg/kg",
         "4 percent_wv", "300\x1dmg", "\ud800", "x" * 500, 10**400, int("9" * 13)]
    ),
    quantity_noise(),
    st.text(max_size=8),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)  # fmt: skip


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    items = (
        data.items()
        if isinstance(data, dict)
        else enumerate(data)
        if isinstance(data, list)
        else ()
    )
    for k, v in items:
        out.append((*prefix, k))
        out.extend(_paths(v, (*prefix, k)))
    return out


@st.composite
def mutated_data(draw: st.DrawFn, documents: st.SearchStrategy[Any]) -> Any:
    """A document from ``documents`` with one to three values replaced or deleted."""
    data = copy.deepcopy(draw(documents))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(WRONG_VALUES))  # never share a drawn list
    return data


@cache
def _documents(paths: tuple[Path, ...]) -> tuple[Any, ...]:
    return tuple(tomllib.loads(p.read_text(encoding="utf-8")) for p in paths)


def _toml(data: Any) -> str:
    def inline(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(a)} = {inline(b)}" for a, b in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(inline(x) for x in v) + "]"
        return json.dumps(v) if isinstance(v, str) else repr(v)

    return "\n".join(f"{json.dumps(k)} = {inline(v)}" for k, v in data.items()) + "\n"


def _as_text(data: Any, fmt: str) -> str | None:
    try:
        return json.dumps(data) if fmt == "json" else _toml(data)
    except (ValueError, RecursionError):  # an int too long to print: fuzzed at the text level
        return None


@st.composite
def _mutated_texts(draw: st.DrawFn, paths: tuple[Path, ...]) -> tuple[str, str]:
    fmt = draw(st.sampled_from(["toml", "json"]))
    data = draw(mutated_data(st.sampled_from(_documents(paths))))
    text = _as_text(data, fmt)
    if text is None:
        text = "age = " + "9" * 5000 + "\n" if fmt == "toml" else '{"age": ' + "9" * 5000 + "}"
    extra = draw(st.sampled_from(["", "", "", "deep", "duplicate", "digits"]))
    if extra == "deep":
        deep = "[" * 2000 + "]" * 2000
        text = f"description = {deep}\n" + text if fmt == "toml" else '{"x": ' + deep + "}"
    elif extra == "duplicate" and fmt == "json":
        text = text.replace("{", '{"name": "a", "name": "b", ', 1)
    elif extra == "digits":
        text = "age = " + "9" * 5000 + "\n" + text if fmt == "toml" else text
    return text, fmt


def mutated_case_texts() -> st.SearchStrategy[tuple[str, str]]:
    """``(text, format)`` of an example case file, mutated (TOML or JSON)."""
    return _mutated_texts(tuple(EXAMPLES))


def mutated_protocol_texts() -> st.SearchStrategy[tuple[str, str]]:
    """``(text, format)`` of a shipped protocol file, mutated (TOML or JSON)."""
    return _mutated_texts(tuple(PROTOCOLS))


@cache
def _bundles() -> tuple[Any, ...]:
    import mps_analgesia as mps
    from mps_analgesia.fhir import to_bundle

    out = []
    for p in EXAMPLES:
        case = mps.load_case(p)
        out.append(json.loads(json.dumps(to_bundle(case.regimen, case.patient))))
    return tuple(out)


def mutated_bundles() -> st.SearchStrategy[Any]:
    """A FHIR Bundle written from an example case by ``to_bundle``, mutated."""
    return st.deferred(lambda: mutated_data(st.sampled_from(_bundles())))


def _table_documents() -> tuple[Any, ...]:
    """The example local table and two shipped table files with their ids made local."""
    docs: list[Any] = [tomllib.loads((ROOT / "examples/tables/hospital-ome.toml").read_text())]
    data = ROOT / "src/mps_analgesia/data"
    for name in ("ome-cdc-2016.toml", "ome-palliative.toml"):
        text = (data / name).read_text(encoding="utf-8")
        doc = tomllib.loads(text.replace("tables.", "tables.local-").replace('"pal', '"local-pal'))
        doc.pop("thresholds", None)
        docs.append(doc)
    return tuple(docs)


@st.composite
def _mutated_tables(draw: st.DrawFn) -> tuple[str, str]:
    fmt = draw(st.sampled_from(["toml", "json"]))
    data = draw(mutated_data(st.sampled_from(_table_documents())))
    text = _as_text(data, fmt)
    if text is None:
        text = "x = " + "9" * 5000 + "\n" if fmt == "toml" else '{"x": ' + "9" * 5000 + "}"
    return text, fmt


def mutated_table_texts() -> st.SearchStrategy[tuple[str, str]]:
    """``(text, format)`` of a local conversion table file, mutated (TOML or JSON)."""
    return _mutated_tables()
