"""Fuzz every input boundary and count bare exceptions, silent numbers and hangs.

Run from the repository root (about a minute per 10⁴ file inputs on a quiet machine)::

    python benchmarks/fuzz_boundaries.py --n 100000 --seed 1

Inputs are split between quantity strings (``Q``), case files (TOML and JSON, mutated from the
examples, loaded and validated), protocol files (mutated from the shipped protocols, loaded) and
direct Python calls with values of the wrong type.  An outcome is:

- *refused*: an :class:`~mps_analgesia.errors.MpsAnalgesiaError` (what bad input must give);
- *accepted*: the input was read (for quantity text, checked against a strict oracle: a number
  and a documented unit spelling; a text the oracle refuses but ``Q`` reads is a *silent number*;
  for a file, a value of the wrong JSON type that was read anyway is a *silent* acceptance);
- *bare*: any other exception (a defect), listed by type and first example;
- *hang*: an input that took more than ``--hang`` seconds (default 2 s).

The exit code is 1 when any bare exception, silent number or hang was found.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
import sys
import time
import tomllib
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mps_analgesia as mps
from mps_analgesia import _units
from mps_analgesia.errors import MpsAnalgesiaError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
PROTOCOLS = sorted((ROOT / "src" / "mps_analgesia" / "data" / "protocols").glob("*.toml"))

# ---- quantity strings ----------------------------------------------------------------------

_VALID = [
    "30 mg", "10mg", "0.5 mg", ".5 mg", "1e3 mg", "15 mg/day", "25 mcg/h", "5 mcg / hr",
    "0.2 %", "2 mg/mL", "58 mL/min/1.73m2", "55 mL/min", "440 ms", "4 Gy/fraction", "60 MME/day",
    "3 mg/kg", "500 mg/m2", "0.4 mL/kg", "165 cm", "52 kg", "12 h", "20 Gy", "15 mg/24h",
]  # fmt: skip
_NOISE = [
    *" \t\n\r\x00\x1d\x7f\x85\u00a0\u2028\u2029\u200b\ufeff·×*^/.,+-eE0123456789%²µμ",
    *"mgLlkKhdsUuIcrMO#!@$&()[]{}<>=~'\"\\١５",
    "**",
    "^2",
    "/24h",
    "/1.73m2",
    "percent_wv",
    "standard_bsa",
    "e400",
    "e-400",
    "9" * 30,
]
_SPELLING = "|".join(
    re.escape(s) for s in sorted(_units._SPELLINGS, key=len, reverse=True)
)  # the documented spellings (docs/units.md), longest first
_SP = "[ \u00a0\u2007\u202f]*"
_DENOM = rf"(?:{_SPELLING}|24{_SP}(?:h|hr|hrs|hour|hours)|1\.73{_SP}(?:m2|m²|m\^2))"
_ORACLE = re.compile(
    rf"[ \u00a0\u2007\u202f]*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    rf"[ \u00a0\u2007\u202f]*(?:{_SPELLING})(?:[ \u00a0\u2007\u202f]*/[ \u00a0\u2007\u202f]*"
    rf"{_DENOM})*[ \u00a0\u2007\u202f]*"
)


def _mutate_text(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        i = rng.randint(0, len(text))
        if op < 0.5:
            text = text[:i] + rng.choice(_NOISE) + text[i:]
        elif op < 0.8 and text:
            text = text[:i] + text[i + 1 :]
        elif text:
            j = rng.randint(0, len(text))
            text = text[:i] + text[j:] + text[i:j]
    if rng.random() < 0.02:
        text = "1" + " " * rng.randint(1000, 40000) + "mg"
    return text


def _silent_quantity(text: str, q: Any) -> bool:
    if not _ORACLE.fullmatch(text):
        return True
    m = re.match(r"[ \u00a0\u2007\u202f]*([+-]?[0-9.eE+-]+?)(?=[^0-9.eE+-]|$)", text)
    magnitude = float(m.group(1)) if m else None
    value = float(q.magnitude)
    if magnitude is None or value != magnitude:
        return True
    return value != 0.0 and not (1e-12 <= abs(value) <= 1e12)


# ---- file mutations ------------------------------------------------------------------------

_WRONG: list[Callable[[random.Random], Any]] = [
    lambda r: [],
    lambda r: {},
    lambda r: [1, 2],
    lambda r: {"a": 1},
    lambda r: 10**400,
    lambda r: int("9" * r.choice([13, 400])),
    lambda r: -1,
    lambda r: 0,
    lambda r: 1e308,
    lambda r: True,
    lambda r: "",
    lambda r: "1e308 mg",
    lambda r: "1e-400 mg",
    lambda r: "5 kg/kg",
    lambda r: "4 percent_wv",
    lambda r: "300\x1dmg",
    lambda r: "\ud800",
    lambda r: "x" * r.choice([10, 1000]),
    lambda r: r.choice(_VALID),
    lambda r: _mutate_text(r, r.choice(_VALID)),
]


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if len(prefix) > 12:
        return out
    if isinstance(data, dict):
        for k, v in data.items():
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.append((*prefix, i))
            out.extend(_paths(v, (*prefix, i)))
    return out


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    _get(data, path[:-1])[path[-1]] = value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _mutate_data(rng: random.Random, data: Any) -> tuple[Any, bool]:
    """A mutated copy, and whether a scalar or container changed its JSON type."""
    original = data
    data = copy.deepcopy(data)
    paths = _paths(data)
    type_changed = False
    for _ in range(rng.randint(1, 3)):
        if not paths:
            break
        path = rng.choice(paths)
        try:
            old = _get(data, path)
        except (KeyError, IndexError, TypeError):
            continue
        op = rng.random()
        if op < 0.7:
            new = rng.choice(_WRONG)(rng)
            if _kind(new) != _kind(old) and not (_kind(old) == "number" and new == old):
                type_changed = type_changed or _kind(old) in ("str", "list", "dict", "bool")
            _set(data, path, new)
        elif op < 0.85 and isinstance(_get(data, path[:-1]), dict):
            del _get(data, path[:-1])[path[-1]]
        else:
            _set(data, path, _deep(40))
            type_changed = True
            break
        paths = _paths(data)
    return data, type_changed and _changed_type(original, data)


def _changed_type(original: Any, mutated: Any) -> bool:
    """Whether a value present in both has a different JSON type (str, list, table, bool)."""
    for path in _paths(original):
        try:
            new = _get(mutated, path)
        except (KeyError, IndexError, TypeError):
            continue
        old = _get(original, path)
        if _kind(old) in ("str", "list", "dict", "bool") and _kind(new) != _kind(old):
            return True
    return False


def _deep(n: int) -> Any:
    value: Any = "x"
    for _ in range(n):
        value = [value]
    return value


def _toml(data: Any) -> str:
    """A small TOML writer good enough for mutated files (falls back to JSON-like inline)."""
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    arrays: list[tuple[str, Any]] = []
    for k, v in data.items():
        if isinstance(v, dict) and v:
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            arrays.append((k, v))
        else:
            lines.append(f"{json.dumps(k)} = {_inline(v)}")
    for k, v in tables:
        lines.append(f"[{json.dumps(k)}]")
        lines.extend(f"{json.dumps(a)} = {_inline(b)}" for a, b in v.items())
    for k, v in arrays:
        for item in v:
            lines.append(f"[[{json.dumps(k)}]]")
            lines.extend(f"{json.dumps(a)} = {_inline(b)}" for a, b in item.items())
    return "\n".join(lines) + "\n"


def _inline(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(a)} = {_inline(b)}" for a, b in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    if isinstance(v, float) and v != v:
        return "nan"
    if isinstance(v, str):
        return json.dumps(v)
    return str(v) if not isinstance(v, float) else repr(v).replace("inf", "inf")


def _dump_json(data: Any) -> str:
    return json.dumps(data)


# ---- running -------------------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.bare: Counter[str] = Counter()
        self.first: dict[str, str] = {}
        self.silent: list[str] = []
        self.hangs: list[str] = []

    def run(self, boundary: str, shown: str, call: Callable[[], Any], hang: float) -> Any:
        start = time.perf_counter()
        result: Any = None
        try:
            result = call()
            outcome = "accepted"
        except MpsAnalgesiaError:
            outcome = "refused"
        except RecursionError as exc:
            outcome = "bare"
            self._bare(boundary, exc, shown)
        except Exception as exc:  # the defects this harness counts
            outcome = "bare"
            self._bare(boundary, exc, shown)
        if time.perf_counter() - start > hang:
            self.hangs.append(f"{boundary}: {shown[:120]}")
        self.outcomes[f"{boundary} {outcome}"] += 1
        return result if outcome == "accepted" else None

    def _bare(self, boundary: str, exc: BaseException, shown: str) -> None:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        key = f"{boundary}: {type(exc).__name__} at {where}"
        self.bare[key] += 1
        self.first.setdefault(key, f"{shown[:160]!a} -> {str(exc)[:160]}")


def _case_inputs(rng: random.Random) -> list[Any]:
    out = []
    for p in EXAMPLES:
        try:
            out.append(tomllib.loads(p.read_text(encoding="utf-8")))
        except Exception:
            continue
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="number of inputs (default 20000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hang", type=float, default=2.0, help="seconds that count as a hang")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    tally = Tally()
    cases = _case_inputs(rng)
    protocols = [tomllib.loads(p.read_text(encoding="utf-8")) for p in PROTOCOLS]
    silent_files = 0
    n_q = args.n * 4 // 10
    n_case = args.n * 4 // 10
    n_calls = args.n // 20
    n_proto = args.n - n_q - n_case - n_calls
    for _ in range(n_q):
        text = _mutate_text(rng, rng.choice(_VALID))
        q = tally.run("quantity", text, lambda text=text: mps.Q(text), args.hang)
        if q is not None and _silent_quantity(text, q):
            tally.silent.append(f"quantity: {text!a} -> {q}")
    for i in range(n_case):
        data, type_changed = _mutate_data(rng, rng.choice(cases))
        fmt = "json" if i % 2 else "toml"
        try:
            text = _dump_json(data) if fmt == "json" else _toml(data)
        except (ValueError, RecursionError, UnicodeEncodeError):
            continue
        if fmt == "json" and rng.random() < 0.05:
            text = text.replace("{", '{"name": "dup", "name": "dup2", ', 1)
        if rng.random() < 0.02:
            n = rng.choice([40, 2000, 100_000, 5000])
            deep = "9" * n if n == 5000 else "[" * n + "]" * n
            text = (
                text.replace("{", '{"description": ' + deep + ", ", 1)
                if fmt == "json"
                else "description = " + deep + "\n" + text
            )

        def case_call(text: str = text, fmt: str = fmt) -> Any:
            case = mps.loads_case(text, format=fmt)
            mps.validate(case.regimen, case.patient)
            mps.dumps_case(case, format=fmt)
            return case

        case = tally.run("case", text[:200], case_call, args.hang)
        if case is not None and type_changed:
            silent_files += 1
            if len(tally.silent) < 10_000:
                tally.silent.append(f"case ({fmt}): {text[:300]!a}")
    for i in range(n_proto):
        data, type_changed = _mutate_data(rng, rng.choice(protocols))
        fmt = "json" if i % 2 else "toml"
        try:
            text = _dump_json(data) if fmt == "json" else _toml(data)
        except (ValueError, RecursionError, UnicodeEncodeError):
            continue
        tally.run(
            "protocol",
            text[:200],
            lambda text=text, fmt=fmt: mps.loads_protocol(text, format=fmt),
            args.hang,
        )
    wrong = [None, [], {}, "x", 5, 1.5, b"x", object(), [object()], {"a": 1}]
    calls: list[tuple[str, Callable[[Any], Any]]] = [
        ("validate", lambda v: mps.validate(v)),
        ("validate(patient)", lambda v: mps.validate(mps.Regimen([]), v)),
        ("daily_ome", lambda v: mps.daily_ome(v)),
        ("Q", lambda v: mps.Q(v)),
        ("Q(unit)", lambda v: mps.Q(5, v)),
        ("Patient", lambda v: mps.Patient(age=v)),
        ("OpioidStep", lambda v: mps.OpioidStep(drug=v, dose="5 mg", every="4 h")),
        ("case_from_dict", lambda v: mps.case_from_dict(v)),
        ("loads_case", lambda v: mps.loads_case(v)),
        ("load_case", lambda v: mps.load_case(v)),
    ]
    for i in range(n_calls):
        name, call = calls[i % len(calls)]
        value = rng.choice(wrong)
        tally.run(f"call {name}", repr(value), lambda call=call, value=value: call(value), 5.0)
    print(f"inputs: {sum(tally.outcomes.values())} (seed {args.seed})")
    for key, count in sorted(tally.outcomes.items()):
        print(f"  {key}: {count}")
    print(f"bare exceptions: {sum(tally.bare.values())}")
    for key, count in tally.bare.most_common():
        print(f"  {key}: {count}   e.g. {tally.first[key]}")
    print(f"silent numbers (quantity): {sum(1 for s in tally.silent if s.startswith('quantity'))}")
    for s in [s for s in tally.silent if s.startswith("quantity")][:10]:
        print(f"  {s}")
    print(f"wrong-typed values accepted in case files: {silent_files}")
    for s in [s for s in tally.silent if s.startswith("case")][:5]:
        print(f"  {s}")
    print(f"hangs (> {args.hang} s): {len(tally.hangs)}")
    for s in tally.hangs[:5]:
        print(f"  {s}")
    bad = sum(tally.bare.values()) + len(tally.hangs)
    bad += sum(1 for s in tally.silent if s.startswith("quantity"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
