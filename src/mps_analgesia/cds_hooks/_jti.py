"""Where the ``jti`` of every accepted token is kept for its window: the replay store.

A token is accepted once: :class:`~._auth.Verifier` asks the store to record its issuer and
``jti`` until the token can no longer be used (``exp`` or ``iat + max_token_age_s``, plus the
leeway), and refuses the token if the store already holds it.  Every process that can answer
a request must therefore ask the *same* store, or a token replayed to another process is
accepted there.  Which store that is depends on how the service runs:

=============================  ================================================================
one process                    :class:`MemoryJtiStore` (the default of ``create_app()`` and
                               ``make_server()``)
``serve(workers=N)``, one      :class:`SqliteJtiStore` on a file every worker opens: a private
host                           temporary file by default, or ``auth.jti_store = "PATH"`` (kept
                               across restarts; on a local disk, never a network file system)
several hosts behind a load    a store every host reaches, written for it: any object with the
balancer                       :class:`JtiStore` method, named in the configuration as
                               ``auth.jti_store = "package.module:factory"``
=============================  ================================================================

A shared store for several hosts needs one atomic "insert if absent, with an expiry" — in
Redis ``SET iss\\0jti 1 NX PXAT until_ms`` (true when it was set), in PostgreSQL ``INSERT ...
ON CONFLICT DO NOTHING`` on a primary key with a periodic ``DELETE`` of expired rows — and must
refuse (raise :class:`~._auth.AuthError` with status 503) rather than accept when it cannot be
reached: an unreachable store must never turn into "not seen before".
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sqlite3
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from ._config import _FACTORY

if TYPE_CHECKING:
    from ._config import ServiceConfig

__all__ = ["MAX_REMEMBERED_JTI", "JtiStore", "MemoryJtiStore", "SqliteJtiStore", "make_store"]

#: The most ``jti`` values one in-memory store remembers; past that, new tokens are refused (503).
MAX_REMEMBERED_JTI: Final = 500_000
#: The environment variable through which ``serve(workers=N)`` gives its workers one file.
SHARED_FILE_VARIABLE: Final = "MPS_CDS_REPLAY_DB"
#: Expired entries of a SQLite store are deleted once per this many inserts (per process).
_PRUNE_EVERY: Final = 1000


@runtime_checkable
class JtiStore(Protocol):
    """The replay store's one method: record a token's ``jti``, or say it was seen already.

    ``first_use(iss, jti, until, now)`` records ``(iss, jti)`` until the time ``until`` (in
    seconds since the epoch) and returns true, or returns false when that pair is recorded
    and not yet expired at ``now``.  It must be atomic across every process that answers the
    service (two concurrent calls with one pair: exactly one true), safe to call from several
    threads, and raise :class:`~._auth.AuthError` (status 503) when it cannot answer.

    Example
    -------
    >>> from mps_analgesia.cds_hooks import JtiStore, MemoryJtiStore
    >>> store = MemoryJtiStore()
    >>> isinstance(store, JtiStore)
    True
    >>> store.first_use("https://ehr.example.org", "a1", until=1300.0, now=1000.0)
    True
    >>> store.first_use("https://ehr.example.org", "a1", until=1300.0, now=1001.0)
    False
    """

    def first_use(self, iss: str, jti: str, until: float, now: float) -> bool:
        """Record ``jti`` of ``iss`` until ``until``; false if it is recorded already."""
        ...  # pragma: no cover - a protocol


def _refused(message: str) -> Exception:
    from ._auth import AuthError

    return AuthError(message, 503)


class MemoryJtiStore:
    """The ``jti`` values of one process, in memory, bounded; for a single-process service.

    Entries leave in expiry order (tokens arrive in about the order they expire); past
    ``max_entries`` unexpired entries, a new token is refused (503), never forgotten early.
    """

    def __init__(self, max_entries: int = MAX_REMEMBERED_JTI) -> None:
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._max = max_entries

    def first_use(self, iss: str, jti: str, until: float, now: float) -> bool:
        """Record ``jti`` of ``iss`` until ``until``; false if it is recorded already."""
        key = (iss, jti)
        with self._lock:
            while self._seen:
                oldest_key, oldest = next(iter(self._seen.items()))
                if oldest > now:
                    break
                del self._seen[oldest_key]
            if key in self._seen:
                if self._seen[key] > now:
                    return False
                del self._seen[key]  # expired, behind an entry that expires later
            if len(self._seen) >= self._max:
                raise _refused("too many recent tokens to check for replay; retry later")
            self._seen[key] = until
            return True


class SqliteJtiStore:
    """The ``jti`` values in a SQLite file shared by every process of one host.

    Each thread has its own connection; an insert is one short write transaction in WAL mode
    (writers wait for each other up to ``timeout_s``, readers never wait).  ``synchronous =
    OFF``: the file survives a crash of the service, not of the operating system (then the
    tokens of the last few minutes could be accepted once more).  The file must be on a local
    disk: SQLite's locking is not reliable on network file systems, so it is no store for
    several hosts.
    """

    def __init__(self, path: str | os.PathLike[str], timeout_s: float = 5.0) -> None:
        self.path = os.fspath(path)
        self._timeout_s = timeout_s
        self._local = threading.local()
        self._inserts = 0
        try:
            self._db().execute(
                "CREATE TABLE IF NOT EXISTS jti (k TEXT PRIMARY KEY, exp REAL NOT NULL)"
            )
        except sqlite3.Error as exc:
            raise _refused(f"the replay store {self.path} cannot be opened ({exc})") from None

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, timeout=self._timeout_s, isolation_level=None, check_same_thread=True
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            self._local.db = db
        return db

    def first_use(self, iss: str, jti: str, until: float, now: float) -> bool:
        """Record ``jti`` of ``iss`` until ``until``; false if it is recorded already."""
        key = f"{iss}\x00{jti}"
        try:
            db = self._db()
            try:
                db.execute("INSERT INTO jti (k, exp) VALUES (?, ?)", (key, until))
            except sqlite3.IntegrityError:
                # recorded: usable again only if expired (an entry not yet pruned); one
                # statement, so two processes cannot both take an expired entry
                taken = db.execute(
                    "UPDATE jti SET exp = ? WHERE k = ? AND exp <= ?", (until, key, now)
                )
                return taken.rowcount == 1
        except sqlite3.Error as exc:
            raise _refused(f"the replay check is unavailable ({exc})") from None
        self._inserts += 1
        if self._inserts % _PRUNE_EVERY == 0:
            with contextlib.suppress(sqlite3.Error):
                db.execute("DELETE FROM jti WHERE exp <= ?", (now,))
        return True


def make_store(config: ServiceConfig, environ: dict[str, str] | None = None) -> JtiStore:
    """The replay store of a service process, as its configuration and ``serve`` name it.

    ``auth.jti_store`` naming a factory (``package.module:callable``) → ``callable(config)``;
    naming a file → :class:`SqliteJtiStore` on it; unset → the file ``serve(workers=N)``
    gives its workers (:data:`SHARED_FILE_VARIABLE`), else :class:`MemoryJtiStore`.
    """
    env = os.environ if environ is None else environ
    named = config.jti_store
    if named is not None and _FACTORY.match(named):
        module, _, name = named.partition(":")
        store = getattr(importlib.import_module(module), name)(config)
        if not isinstance(store, JtiStore):
            raise TypeError(f"auth.jti_store {named!r} made {type(store).__name__}, not a JtiStore")
        return store
    if named is not None:
        return SqliteJtiStore(named)
    shared = env.get(SHARED_FILE_VARIABLE)
    return SqliteJtiStore(shared) if shared else MemoryJtiStore()
