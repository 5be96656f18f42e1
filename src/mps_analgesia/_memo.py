"""Bounded memos keyed on canonical values: what a cache may hold, and how much.

A memo maps a key made only of canonical values (strings from closed vocabularies, numbers,
booleans, ``None``, and tuples of them) to a value computed from it.  It never holds an object
that carries free text (a step's ``note``, a medication name typed by a user): a key with any
other type, or with a string longer than :data:`MAX_KEY_TEXT` characters, is not stored, and a
value is stored only when the caller says what it costs or it is made of the same canonical
values.  Each memo is bounded in bytes (an estimate that counts the key, the value and the dict
slot), not in entries: when an entry would take it over its bound, the memo is emptied first.

Every memo registers itself, so a test can walk them all (:func:`memos`): after a crafted regimen
with huge free-text fields, no memo holds its text, and every memo is within its bound.

Example
-------
>>> from mps_analgesia._memo import Memo
>>> memo = Memo("example", max_bytes=4096)
>>> memo.put(("oxycodone", "oral", 30.0), 45.0)
45.0
>>> memo.get(("oxycodone", "oral", 30.0))
45.0
>>> memo.put(("a note typed by someone " * 10,), 1.0)  # free text: computed, never kept
1.0
>>> len(memo), memo.nbytes <= memo.max_bytes
(1, True)
"""

from __future__ import annotations

import sys
import threading
import weakref
from typing import Any, Final, TypeVar

__all__ = ["MAX_KEY_TEXT", "IdentityMemo", "Memo", "key_size", "memos", "value_size"]

#: The longest string a key may hold: closed-vocabulary ids and codes are shorter; anything
#: longer is treated as free text and never memoized.
MAX_KEY_TEXT: Final = 64

#: What one dict slot costs beyond its key and value (hash, two pointers, growth slack).
ENTRY_OVERHEAD: Final = 48

_SCALARS: Final = (str, int, float, bool, type(None))
_FLOAT_SIZE: Final = sys.getsizeof(0.0)
_TUPLE_SIZE: Final = sys.getsizeof(())
_STR_SIZE: Final = sys.getsizeof("")
_INT_SIZE: Final = sys.getsizeof(2**40)
_POINTER: Final = 8

V = TypeVar("V")


def key_size(key: object, max_text: int = MAX_KEY_TEXT) -> int | None:
    """The bytes a canonical key takes, or ``None`` when it is not canonical.

    Canonical: a str of at most ``max_text`` (:data:`MAX_KEY_TEXT`) characters, an int, float,
    bool or ``None``, or a tuple of canonical values.

    Example
    -------
    >>> key_size(("morphine", 30.0)) is not None, key_size(("morphine", object()))
    (True, None)
    """
    cls = key.__class__
    if cls is tuple:
        total = _TUPLE_SIZE + _POINTER * len(key)  # type: ignore[arg-type]
        for item in key:  # type: ignore[attr-defined]
            c = item.__class__
            if c is str:
                if len(item) > max_text:
                    return None
                # interned vocabulary strings are shared, but count them as if they were not
                total += _STR_SIZE + len(item) if item.isascii() else sys.getsizeof(item)
            elif c is float:
                total += _FLOAT_SIZE
            elif c is int or c is bool or item is None:
                total += _INT_SIZE
            else:
                size = key_size(item, max_text) if c is tuple else None
                if size is None:
                    return None
                total += size
        return total
    if cls is str:
        return None if len(key) > max_text else sys.getsizeof(key)  # type: ignore[arg-type]
    if cls is float:
        return _FLOAT_SIZE
    if cls is int or cls is bool or key is None:
        return _INT_SIZE
    return None


def value_size(value: object, *, max_text: int = MAX_KEY_TEXT) -> int | None:
    """The bytes a value made of canonical values takes (``None`` when it is not one).

    Like :func:`key_size`, with lists, frozensets and dicts of canonical values allowed too.
    """
    cls = value.__class__
    if cls in (tuple, list, frozenset):
        total = sys.getsizeof(value)
        for item in value:  # type: ignore[attr-defined]
            size = value_size(item, max_text=max_text)
            if size is None:
                return None
            total += size
        return total
    if cls is dict:
        total = sys.getsizeof(value)
        for k, v in value.items():  # type: ignore[attr-defined]
            ks, vs = value_size(k, max_text=max_text), value_size(v, max_text=max_text)
            if ks is None or vs is None:
                return None
            total += ks + vs
        return total
    if cls is str and len(value) > max_text:  # type: ignore[arg-type]
        return None
    if isinstance(value, _SCALARS):
        return sys.getsizeof(value)
    return None


_REGISTRY: list[Memo | IdentityMemo] = []


class Memo:
    """A dict from canonical keys to values, bounded in bytes (see the module docstring).

    ``get`` is a plain dict lookup; ``put`` stores the value when the key is canonical and
    returns it either way, so ``memo.get(key) or memo.put(key, compute())`` is the usual shape.
    ``size`` (bytes) tells ``put`` what a value that is not itself canonical costs (a frozen
    record of canonical values, say); without it the value must be canonical to be stored.
    ``max_text`` is the longest string a key may hold (longer: free text, not stored).
    """

    __slots__ = ("_lock", "data", "max_bytes", "max_text", "name", "nbytes")

    def __init__(self, name: str, max_bytes: int, *, max_text: int = MAX_KEY_TEXT) -> None:
        self.name = name
        self.max_bytes = int(max_bytes)
        self.max_text = int(max_text)
        self.nbytes = 0
        self.data: dict[Any, Any] = {}
        self._lock = threading.Lock()
        _REGISTRY.append(self)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Memo({self.name!r}, {len(self.data)} entries, {self.nbytes}/{self.max_bytes} B)"

    def get(self, key: Any, default: Any = None) -> Any:
        """The value stored under ``key``, else ``default``."""
        return self.data.get(key, default)

    def put(self, key: Any, value: V, size: int | None = None, *, key_bytes: int = 0) -> V:
        """Store ``value`` under a canonical ``key`` (bounded); return ``value``.

        ``key_bytes``: the key's size, given by a caller whose key is canonical by construction
        (fields of validated records that hold closed-vocabulary ids and numbers only), to
        spare checking it on a path where every key is new; it is then not checked.
        """
        ks = key_bytes or key_size(key, self.max_text)
        if ks is None:
            return value
        vs = value_size(value) if size is None else size
        if vs is None:
            return value
        cost = ks + vs + ENTRY_OVERHEAD
        if cost > self.max_bytes:
            return value
        with self._lock:
            if key in self.data:
                return value
            if self.nbytes + cost > self.max_bytes:
                self.data.clear()
                self.nbytes = 0
            self.data[key] = value
            self.nbytes += cost
        return value

    def clear(self) -> None:
        """Empty the memo."""
        with self._lock:
            self.data.clear()
            self.nbytes = 0


#: What a weak reference costs.
_WEAKREF_SIZE: Final = 80
#: What an IdentityMemo entry costs beyond its value and extra key: the reference, the entry
#: tuple and the dict slot.
_IDENTITY_ENTRY: Final = _WEAKREF_SIZE + ENTRY_OVERHEAD * 2


class IdentityMemo:
    """Values kept per live object, by identity, bounded in bytes: for results that depend on
    one immutable object (a step) and would otherwise be keyed on it.

    It holds a weak reference to the object, never the object (nor the free text it may carry):
    an entry is never found once its object is gone, and goes when the memo is emptied at its
    bound (or when a new object at the same address is kept).  ``extra`` is
    a canonical key of the other values the result depends on (the patient's weight, say); an
    entry is found only for the very object with an equal ``extra``.  No object is hashed or
    compared, so a lookup costs the same for a step never seen before.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia._memo import IdentityMemo
    >>> memo = IdentityMemo("example", max_bytes=4096)
    >>> step = mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h", note="x" * 1000)
    >>> memo.put(step, "passed", extra=(70.0,))
    'passed'
    >>> memo.get(step, extra=(70.0,)), memo.get(step, extra=(80.0,))
    ('passed', None)
    """

    __slots__ = ("_lock", "data", "max_bytes", "name", "nbytes")

    def __init__(self, name: str, max_bytes: int) -> None:
        self.name = name
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self.data: dict[int, tuple[Any, Any, Any, int]] = {}
        self._lock = threading.Lock()
        _REGISTRY.append(self)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return (
            f"IdentityMemo({self.name!r}, {len(self.data)} entries, "
            f"{self.nbytes}/{self.max_bytes} B)"
        )

    def get(self, obj: object, default: Any = None, *, extra: Any = None) -> Any:
        """The value kept for this very object (and an equal ``extra``), else ``default``."""
        hit = self.data.get(id(obj))
        if hit is not None and hit[0]() is obj and hit[1] == extra:
            return hit[2]
        return default

    def put(self, obj: object, value: V, size: int | None = None, *, extra: Any = None) -> V:
        """Keep ``value`` for ``obj`` (``size``: its bytes, when it is not canonical)."""
        if extra is None and size is not None:  # the common case, without the size walks
            cost = size + _IDENTITY_ENTRY
        else:
            es = 0 if extra is None else key_size(extra)
            vs = value_size(value) if size is None else size
            if es is None or vs is None:
                return value
            cost = es + vs + _IDENTITY_ENTRY
        if cost > self.max_bytes:
            return value
        try:
            # no callback (it would cost more than the entry): a dead entry is never found
            # again, as its reference gives None, and goes when the memo is emptied
            ref = weakref.ref(obj)
        except TypeError:  # an object without weak references is not kept
            return value
        data, key = self.data, id(obj)
        with self._lock:
            old = data.get(key)
            if old is not None:
                self.nbytes -= old[3]
            if self.nbytes + cost > self.max_bytes:
                data.clear()
                self.nbytes = 0
            data[key] = (ref, extra, value, cost)
            self.nbytes += cost
        return value

    def grow(self, obj: object, nbytes: int) -> None:
        """Count ``nbytes`` more for the value kept for ``obj`` (a mutable value that grew);
        over the bound, the memo is emptied."""
        with self._lock:
            hit = self.data.get(id(obj))
            if hit is None or hit[0]() is not obj:
                return
            if self.nbytes + nbytes > self.max_bytes:
                self.data.clear()
                self.nbytes = 0
                return
            self.data[id(obj)] = (hit[0], hit[1], hit[2], hit[3] + nbytes)
            self.nbytes += nbytes

    def clear(self) -> None:
        """Empty the memo."""
        with self._lock:
            self.data.clear()
            self.nbytes = 0


def memos() -> tuple[Memo | IdentityMemo, ...]:
    """Every memo made so far (for tests and diagnostics)."""
    return tuple(_REGISTRY)
