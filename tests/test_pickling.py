"""Errors cross process boundaries: batch workers send them back to the parent by pickle."""

from __future__ import annotations

import pickle

import pytest

import mps_analgesia as mps

BAD_FILES = [
    ("x = \n", "toml"),  # not TOML
    ("", "json"),  # not JSON
    ('{"name": "a", "name": "b"}', "json"),  # a duplicate key
    ('{"name": ' + "1" * 40 + "}", "json"),  # an integer out of range
    ('{"step": [{"kind": []}]}', "json"),  # a wrong type
]


@pytest.mark.parametrize(("text", "fmt"), BAD_FILES)
def test_a_file_error_survives_pickling(text: str, fmt: str) -> None:
    """The error for each kind of bad file unpickles to an error with the same message (a
    worker's error that cannot be unpickled breaks the whole process pool)."""
    with pytest.raises(mps.MpsAnalgesiaError) as info:
        mps.loads_case(text, format=fmt)
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is type(info.value)
    assert str(copy) == str(info.value)
    if info.value.__context__ is not None:
        context = pickle.loads(pickle.dumps(info.value.__context__))
        assert str(context) == str(info.value.__context__)


class TestBatchArguments:
    def test_not_an_iterable_is_an_argument_error(self) -> None:
        """validate_many(5) says what it needs instead of a bare TypeError."""
        from mps_analgesia.batch import validate_many

        with pytest.raises(mps.ArgumentError, match="cases: must be an iterable"):
            validate_many(5)  # type: ignore[arg-type]

    def test_one_path_is_a_batch_of_one(self) -> None:
        """A single path string is one case file, not a batch of its characters."""
        from mps_analgesia.batch import validate_many

        (result,) = validate_many("no/such/case.toml")  # type: ignore[arg-type]
        assert result.source == "no/such/case.toml"
        assert not result.ok
