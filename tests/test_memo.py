"""Tests of the bounded memos (``_memo``): canonical keys only, bounded in bytes, and no cache
anywhere keeps the free text of a regimen or a patient once they are gone."""

from __future__ import annotations

import functools
import gc
import types
import weakref
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mps_analgesia as mps
from mps_analgesia import _memo
from mps_analgesia._memo import MAX_KEY_TEXT, IdentityMemo, Memo, key_size

canonical = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=MAX_KEY_TEXT),
    lambda inner: st.lists(inner, max_size=4).map(tuple),
    max_leaves=12,
)


class TestKeys:
    @given(canonical)
    def test_canonical_values_have_a_size(self, key: Any) -> None:
        """Strings from a vocabulary, numbers, booleans, None and tuples of them are keys."""
        size = key_size(key)
        assert size is not None
        assert size > 0

    @pytest.mark.parametrize(
        "key",
        [object(), ["a"], {"a": 1}, ("a", ["b"]), "x" * (MAX_KEY_TEXT + 1), ("ok", "y" * 65)],
    )
    def test_other_values_are_not_keys(self, key: Any) -> None:
        """A mutable value, an object or a string longer than a vocabulary word is no key."""
        assert key_size(key) is None

    def test_free_text_key_is_computed_not_kept(self) -> None:
        """put() returns the value for a free-text key and keeps nothing."""
        memo = Memo("test: free text", 1 << 16)
        assert memo.put(("morphine", "a long note " * 20), 1.0) == 1.0
        assert len(memo) == 0
        assert memo.nbytes == 0

    def test_value_not_canonical_needs_a_size(self) -> None:
        """A value that is not canonical is kept only when its size is given."""
        memo = Memo("test: values", 1 << 16)
        record = object()
        memo.put(("a",), record)
        assert memo.get(("a",)) is None
        memo.put(("a",), record, 64)
        assert memo.get(("a",)) is record


class TestBound:
    @given(st.lists(st.tuples(st.text(max_size=20), st.floats(allow_nan=False)), max_size=400))
    def test_bytes_stay_within_the_bound(self, keys: list[tuple[str, float]]) -> None:
        """However many entries are put, the memo's bytes never exceed its bound."""
        memo = Memo("test: bound", 2048)
        for key in keys:
            memo.put(key, key[1])
            assert memo.nbytes <= memo.max_bytes
        assert len(memo) < 2048 // 48

    def test_an_entry_larger_than_the_bound_is_not_kept(self) -> None:
        """A single entry above the bound is computed and returned, never kept."""
        memo = Memo("test: too large", 256)
        assert memo.put(("a",), 1.0, 10_000) == 1.0
        assert len(memo) == 0

    def test_identity_memo_does_not_keep_its_object(self) -> None:
        """An IdentityMemo holds a weak reference: an equal object is not found, and the
        object goes when nothing else holds it."""
        memo = IdentityMemo("test: identity", 1 << 16)
        step = mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h")
        memo.put(step, "passed", 16)
        assert memo.get(step) == "passed"
        assert memo.nbytes > 0
        other = attrs.evolve(step)  # equal, but another object
        assert other == step
        assert memo.get(other) is None
        ref = weakref.ref(step)
        del step
        gc.collect()
        assert ref() is None

    def test_identity_memo_is_bounded(self) -> None:
        """Many live objects: the IdentityMemo's bytes stay within its bound."""
        memo = IdentityMemo("test: identity bound", 4096)
        keep = [mps.Patient(age=float(i % 100)) for i in range(200)]
        for p in keep:
            memo.put(p, 1.0, extra=(p.age,))
            assert memo.nbytes <= memo.max_bytes
        memo.grow(keep[-1], 10_000)
        assert memo.nbytes <= memo.max_bytes


class TestKept:
    def test_outcomes_are_kept_per_object(self) -> None:
        """The rules' kept outcomes belong to the very step or regimen object: the same object
        finds them again, an equal new object starts afresh."""
        from mps_analgesia.rules._engine import Context, kept

        step = mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h")
        regimen = mps.Regimen([step])
        first = Context(regimen, mps.Patient())
        kept(first, 0)["k"] = kept(first, None)["k"] = 1
        again = Context(regimen, mps.Patient())
        assert kept(again, 0) == {"k": 1}
        assert kept(again, None) == {"k": 1}
        fresh = Context(mps.Regimen([step]), mps.Patient())
        assert kept(fresh, 0) == {"k": 1}  # the same step object
        assert kept(fresh, None) == {}  # another regimen object
        other = Context(mps.Regimen([attrs.evolve(step)]), mps.Patient())
        assert kept(other, 0) == {}


_MARKER = "free-text-marker-"


def _holders(marker: str) -> list[str]:
    """The types of the live containers that hold a string containing ``marker``."""
    found = []
    for obj in gc.get_objects():
        items: Any
        if isinstance(obj, dict):
            items = [*obj.keys(), *obj.values()]
        elif isinstance(obj, tuple | list | set | frozenset):
            items = obj
        elif isinstance(obj, types.CellType):
            try:
                items = [obj.cell_contents]
            except ValueError:  # an empty cell
                continue
        elif attrs.has(type(obj)):
            items = [getattr(obj, a.name, None) for a in attrs.fields(type(obj))]
        elif isinstance(obj, functools._lru_cache_wrapper):  # a functools cache: its keys
            items = [k for d in gc.get_referents(obj) if isinstance(d, dict) for k in d]
        else:
            continue
        for item in items:
            if item.__class__ is str and marker in item:
                found.append(type(obj).__name__)
                break
    return found


def _crafted(marker: str) -> tuple[mps.Regimen, mps.Patient]:
    note = marker + "n" * 200_000
    steps = [
        mps.OpioidStep(
            drug="oxycodone",
            formulation="modified-release",
            dose="30 mg",
            every="12 h",
            note=note,
        ),
        mps.OpioidStep(
            drug="oxycodone", dose="10 mg", every="2 h", prn=True, max_doses_per_24h=6, note=note
        ),
        mps.MethadoneAdjuvantStep(
            dose="5 mg", every="8 h", titration=[{"day": 7, "dose": "7.5 mg"}], note=note
        ),
        mps.AdjuvantStep(drug="pregabalin", role="neuropathic", dose="75 mg", every="12 h"),
        mps.AdjuvantStep(drug="acetaminophen", role="nociceptive", dose="1 g", every="6 h"),
        mps.MethadoneAdjuvantStep(dose="2.5 mg", every="12 h", start_day=1, note=note),
        mps.PsoasCompartmentBlockStep(
            drug="ropivacaine",
            concentration="0.2 %",
            bolus_volume="20 mL",
            infusion_rate="6 mL/h",
            infusion_duration="48 h",
            side="left",
            technique="catheter",
            start_day=1,
            note=note,
        ),
        mps.RadiotherapyStep(total_dose="20 Gy", fractions=5, site="left psoas", note=note),
    ]
    patient = mps.Patient(
        age=62,
        weight="60 kg",
        medications=[marker + "m" * 50_000, f"sertraline {marker}" + "s" * 1000, "letrozole"],
        anticoagulant={"drug": f"apixaban {marker}" + "a" * 50_000, "last_dose_ago": "48 h"},
    )
    return mps.Regimen(steps), patient


class TestFreeText:
    def test_no_cache_keeps_the_free_text_of_a_crafted_regimen(self) -> None:
        """After a regimen with huge notes and medicine names is validated (again and again, as
        the same object, as a fresh Regimen, under every OME table) and dropped, no container
        anywhere still holds its text, and every memo is within its bound."""
        marker = f"{_MARKER}{id(self)}-"
        regimen, patient = _crafted(marker)
        for table in mps.conversion.ome_tables():
            for _ in range(3):
                mps.validate(regimen, patient, options={"ome_table": table})
                report = mps.validate(mps.Regimen(list(regimen)), patient)
        assert report.findings  # the checks ran
        for memo in _memo.memos():
            assert memo.nbytes <= memo.max_bytes, memo
        del regimen, patient, report
        gc.collect()
        assert _holders(marker) == []

    def test_the_check_sees_the_text_while_it_is_alive(self) -> None:
        """The search above can fail: it finds the text while the regimen is alive."""
        marker = f"{_MARKER}alive-{id(self)}-"
        regimen, patient = _crafted(marker)
        mps.validate(regimen, patient)
        assert _holders(marker)
        del regimen, patient
