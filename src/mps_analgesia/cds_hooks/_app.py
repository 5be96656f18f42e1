"""The HTTP adapter: a Starlette application around :func:`~._handle.handle`.

Per request, in this order: the route (404, 405), the content type (415), the body within the
size and time limits (413, 408), a free slot (503 after ``queue_timeout_s``), then in a worker
thread — off the event loop — the bearer token (401), missing prefetch fetched for a verified
client, :func:`~._handle.handle`, the audit record and the JSON encoding.  Every answer is
cards or an OperationOutcome-shaped error; an unexpected exception is a logged 500 whose log
line names only the exception type and code locations.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ._audit import AuditLog, read_feedback
from ._auth import AuthError, Caller, Verifier
from ._config import ServiceConfig, load_config
from ._discovery import PREFETCH_KEYS, SERVICE_IDS, discovery_document
from ._errors import outcome
from ._fetch import complete_prefetch
from ._handle import handle, internal_error
from ._jti import JtiStore

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from ..rules import RuleRegistry

__all__ = ["MAX_BODY_BYTES", "Service", "create_app"]

log = logging.getLogger("mps_analgesia.cds_hooks")

#: The largest request body read by default (bytes); a larger one is answered with 413.
MAX_BODY_BYTES: Final = 2_000_000
_JSON_TYPES: Final = ("application/json", "application/fhir+json")
_REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
#: Every digit as ``0``: a run of 19 digits is then found by a plain (fast) substring search.
_DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS: Final = b"0" * 19
_AUTH_HEADERS: Final = {"WWW-Authenticate": 'Bearer realm="cds-services", error="invalid_token"'}


def _require_serve_extra() -> None:
    try:
        import starlette  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the CDS Hooks service needs the 'serve' extra: pip install 'mps-analgesia[serve]'"
        ) from exc


_orjson: Any
try:  # the 'serve' extra's fast JSON; the standard library's otherwise, with the same results
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None


def dumps(payload: Mapping[str, Any]) -> bytes:
    """The JSON bytes of an answer (UTF-8; a lone surrogate is written as its ``\\u`` escape).

    With orjson (the ``serve`` extra) about ten times faster than :func:`json.dumps`; what
    orjson refuses (a lone surrogate, an integer over 64 bits) is written by :mod:`json`.  A
    payload never holds NaN or an infinity here: :func:`~._handle.handle` refuses those.
    """
    if _orjson is not None:
        try:
            return bytes(_orjson.dumps(payload))
        except (TypeError, _orjson.JSONEncodeError):
            pass
    return json.dumps(payload, allow_nan=False, ensure_ascii=True, separators=(",", ":")).encode()


def loads(body: bytes) -> Any:
    """The JSON value of a request body, as :func:`json.loads` reads it (faster with orjson).

    orjson refuses what :func:`json.loads` reads leniently (NaN, a lone surrogate, 1e400,
    more than 1,024 levels): that is read again by :mod:`json`.  orjson reads an integer
    beyond 64 bits as a float, so a body with a run of 19 or more digits goes to :mod:`json`
    directly.  The result, or the exception, is always the standard library's.
    """
    if _orjson is not None and _LONG_DIGITS not in body.translate(_DIGITS_AS_ZERO):
        try:
            return _orjson.loads(body)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(body)


_Answer = tuple[int, bytes, Mapping[str, str]]
_T = TypeVar("_T")


class Fetch:
    """A request's missing prefetch, to fetch from the EHR's FHIR server (network I/O)."""

    def __init__(
        self, service: Service, service_id: str, request_id: str, caller: Caller, data: Any
    ) -> None:
        self.service, self.service_id, self.request_id = service, service_id, request_id
        self.caller, self.data = caller, data
        self.not_fetched: dict[str, str] = {}
        self.done = False

    def needed(self) -> bool:
        """Whether fetching may reach the network: a verified caller, prefetch keys absent."""
        if not isinstance(self.data, Mapping) or not isinstance(self.data.get("context"), Mapping):
            return False
        prefetch = self.data.get("prefetch")
        present = prefetch if isinstance(prefetch, Mapping) else {}
        return self.caller.verified and any(k not in present for k in PREFETCH_KEYS)

    def run(self) -> bool:
        """Fetch what is missing and allowed (or say why not); never raises for the network."""
        self.done = True
        if isinstance(self.data, Mapping) and isinstance(self.data.get("context"), Mapping):
            service = self.service
            self.data, self.not_fetched = complete_prefetch(
                self.data, self.caller, service.config.limits, transport=service.transport
            )
        return True


class Service:
    """The service's work for one request, done in a worker thread; never raises."""

    def __init__(
        self,
        config: ServiceConfig,
        rules: RuleRegistry | None = None,
        *,
        transport: Any = None,
        jti_store: JtiStore | None = None,
    ) -> None:
        self.config = config
        self.rules = rules
        self.transport = transport
        self.verifier = Verifier(config, transport=transport, replay=jti_store)
        self.audit = AuditLog(config.audit_log)
        table = config.ome_table()  # server configuration only, never from a request
        self.options = {"ome_table": table} if table is not None else None

    def _error(self, status: int, message: str, problems: Sequence[str] = ()) -> _Answer:
        headers = _AUTH_HEADERS if status == 401 else {}
        return status, dumps(outcome(status, message, problems)), headers

    def _guarded(self, where: str, work: Callable[[], _T]) -> _T | _Answer:
        try:
            return work()
        except AuthError as exc:
            return self._error(exc.status, exc.message)
        except Exception as exc:  # a defect: logged without request data, answered 500
            status, body = internal_error(exc, where)
            return status, dumps(body), {}

    def discovery(self, authorization: str | None) -> _Answer:
        """``GET /cds-services``."""

        def work() -> _Answer:
            self.verifier.verify(authorization, "/cds-services")
            return 200, dumps(discovery_document()), {}

        return self._guarded("discovery", work)

    def service(
        self, service_id: str, authorization: str | None, body: bytes, request_id: str
    ) -> _Answer:
        """``POST /cds-services/{id}``: cards, or an error (all of it in the calling thread)."""
        first = self.service_start(service_id, authorization, body, request_id)
        return first if not isinstance(first, Fetch) else self.service_finish(first)

    def service_start(
        self, service_id: str, authorization: str | None, body: bytes, request_id: str
    ) -> _Answer | Fetch:
        """The token, the body and, unless prefetch must be fetched, the answer.

        A verified caller's request with prefetch keys absent gives a :class:`Fetch`: the
        fetching (network) is done by :meth:`Fetch.run`, in a thread of its own, and then the
        answer by :meth:`service_finish`, so that a slow FHIR server never holds a thread
        that checks orders.
        """

        def work() -> _Answer | Fetch:
            caller = self.verifier.verify(authorization, f"/cds-services/{service_id}")
            data: Any = body
            with contextlib.suppress(ValueError, RecursionError):  # handle() answers 400
                data = loads(body)
            fetch = Fetch(self, service_id, request_id, caller, data)
            if fetch.needed():
                return fetch
            return self._answer(fetch)

        return self._guarded("service", work)

    def service_finish(self, fetch: Fetch) -> _Answer:
        """The answer to a request whose missing prefetch was fetched (:meth:`Fetch.run`)."""
        return self._guarded("service", lambda: self._answer(fetch))

    def _answer(self, fetch: Fetch) -> _Answer:
        if not fetch.done:
            fetch.run()
        status, payload = handle(
            fetch.data, rules=self.rules, not_fetched=fetch.not_fetched, options=self.options
        )
        encoded = dumps(payload)
        if status == 200:
            self.audit.cards(fetch.request_id, fetch.service_id, fetch.caller.iss, payload["cards"])
        return status, encoded, {}

    def feedback(
        self, service_id: str, authorization: str | None, body: bytes, request_id: str
    ) -> _Answer:
        """``POST /cds-services/{id}/feedback``: validated and appended to the audit log."""

        def work() -> _Answer:
            caller: Caller = self.verifier.verify(
                authorization, f"/cds-services/{service_id}/feedback"
            )
            try:
                data = loads(body)
            except (ValueError, RecursionError):
                return self._error(400, "the feedback body is not valid JSON")
            items, problems = read_feedback(data)
            if problems:
                return self._error(400, "the feedback does not follow CDS Hooks 2.0", problems)
            for item in items:
                self.audit.write("feedback", request_id, service=service_id, iss=caller.iss, **item)
            return 200, dumps({}), {}

        return self._guarded("feedback", work)


class _RequestIds:
    """Request ids unique across processes and restarts: a random prefix per process, a count.

    ``uuid.uuid4()`` per request reads ``os.urandom``, which releases the GIL on the event
    loop's thread; taking it back waits for a worker thread's switch interval (5 ms): one
    request id then cost more than verifying the token (measured in issue 15).
    """

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ""
        self._count = itertools.count()

    def next(self) -> str:
        pid = os.getpid()
        if pid != self._pid:  # a new process (a forked worker): a new prefix
            self._pid, self._prefix = pid, uuid.uuid4().hex[:16]
        return f"{self._prefix}{next(self._count):016x}"


_request_ids = _RequestIds()


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else _request_ids.next()


def create_app(
    config: ServiceConfig | None = None,
    *,
    rules: RuleRegistry | None = None,
    insecure_no_auth: bool = False,
    max_body_bytes: int | None = None,
    transport: Any = None,
    jti_store: JtiStore | None = None,
) -> Starlette:
    """The CDS Hooks service as a Starlette ASGI application; authentication is on.

    ``config`` is the :class:`ServiceConfig` (default: :func:`load_config` from the file named
    by ``MPS_CDS_CONFIG`` and the environment, which must name the service URL and the trusted
    clients).  ``insecure_no_auth=True`` turns authentication off, for local testing only; it is
    logged as a warning.  ``rules`` replaces the default rule registry (for example
    ``default_rules().disable(...)``); ``transport`` an httpx transport for outgoing requests
    (tests); ``jti_store`` the replay store (a :class:`JtiStore`; default: the configuration's
    ``auth.jti_store``, else in memory — every process answering the service must share one).

    Example
    -------
    >>> from mps_analgesia.cds_hooks import create_app
    >>> app = create_app(insecure_no_auth=True)
    >>> sorted(r.path for r in app.routes)  # doctest: +NORMALIZE_WHITESPACE
    ['/cds-services', '/cds-services/{service_id}', '/cds-services/{service_id}/feedback']
    """
    _require_serve_extra()
    import anyio
    import anyio.to_thread
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import ClientDisconnect
    from starlette.responses import Response
    from starlette.routing import Route

    if config is None:
        config = load_config(insecure_no_auth=True if insecure_no_auth else None)
    elif insecure_no_auth and not config.insecure_no_auth:
        import attrs

        config = attrs.evolve(config, insecure_no_auth=True)
    if max_body_bytes is not None:
        import attrs

        config = attrs.evolve(
            config, limits=attrs.evolve(config.limits, max_body_bytes=max_body_bytes)
        )
    limits = config.limits
    service = Service(config, rules, transport=transport, jti_store=jti_store)
    announce(config)
    # asyncio (uvicorn): an admission semaphore and a thread pool, made in the event loop; the
    # hop through asyncio's executor costs about a third of anyio's (measured in issue 15)
    slots: list[Any] = []
    anyio_slots: list[Any] = []  # the same as anyio limiters, for another async library

    def respond(answer: _Answer, request_id: str | None = None) -> Response:
        status, body, headers = answer
        out = dict(headers)
        if request_id is not None:
            out["X-Request-ID"] = request_id
        return Response(body, status_code=status, media_type="application/json", headers=out)

    def error(status: int, message: str, request_id: str | None = None) -> Response:
        return respond(service._error(status, message), request_id)

    async def read_body(request: Request) -> bytes | Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in _JSON_TYPES:
            return error(415, "the request body must be application/json")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
            return error(413, f"the request body is over {limits.max_body_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            with anyio.fail_after(limits.header_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limits.max_body_bytes:
                        return error(413, f"the request body is over {limits.max_body_bytes} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            return error(
                408, f"the request body did not arrive within {limits.header_timeout_s:g} s"
            )
        except ClientDisconnect:
            return error(400, "the client disconnected before sending the body")
        return b"".join(chunks)

    async def in_thread(work: Callable[[], _T], network: bool = False) -> _T | None:
        """``work()`` in a worker thread once a slot is free; ``None`` after the queue timeout.

        The checks run in ``limits.threads`` threads (default 2): under the GIL more threads
        check no faster, they take turns, and each release of the GIL (a SQLite write, the
        signature check) waits behind the others to take it back (measured in issue 15).
        Fetching prefetch from the EHR (``network=True``) waits on the network, in up to
        ``max_concurrency`` threads of its own, so a slow FHIR server never holds a thread
        that checks orders.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - another async library (trio)
            return await in_anyio_thread(work)
        if not slots:  # made in the event loop, on first use
            slots.append(asyncio.Semaphore(limits.max_concurrency))
            slots.append(
                concurrent.futures.ThreadPoolExecutor(limits.threads, thread_name_prefix="mps-cds")
            )
            slots.append(
                concurrent.futures.ThreadPoolExecutor(
                    limits.max_concurrency, thread_name_prefix="mps-cds-fetch"
                )
            )
        admit, checks, fetches = slots
        pool = fetches if network else checks
        if admit.locked():
            try:
                await asyncio.wait_for(admit.acquire(), limits.queue_timeout_s)
            except TimeoutError:
                return None
        else:
            await admit.acquire()  # a free slot: taken at once, without a timer
        future = loop.run_in_executor(pool, work)
        # the slot is freed when the work is done, even if this request is cancelled first
        future.add_done_callback(lambda _: admit.release())
        return await future

    async def in_anyio_thread(work: Callable[[], _T]) -> _T | None:
        if not anyio_slots:
            anyio_slots.extend(
                [
                    anyio.CapacityLimiter(limits.max_concurrency),
                    anyio.CapacityLimiter(limits.max_concurrency),
                ]
            )
        admit, threads = anyio_slots
        try:
            with anyio.fail_after(limits.queue_timeout_s):
                await admit.acquire()
        except TimeoutError:
            return None
        try:
            return await anyio.to_thread.run_sync(work, limiter=threads)
        finally:
            admit.release()

    def busy(request_id: str) -> Response:
        response = error(503, "the service is busy; retry shortly", request_id)
        response.headers["Retry-After"] = "1"
        return response

    async def discovery(request: Request) -> Response:
        rid = _request_id(request)
        authorization = request.headers.get("authorization")
        answer = await in_thread(lambda: service.discovery(authorization))
        return busy(rid) if answer is None else respond(answer, rid)

    async def post(request: Request, feedback: bool) -> Response:
        rid = _request_id(request)
        try:
            service_id = request.path_params.get("service_id", "")
            if service_id not in SERVICE_IDS:
                return error(404, "no such CDS service", rid)
            body = await read_body(request)
            if isinstance(body, Response):
                body.headers["X-Request-ID"] = rid
                return body
            authorization = request.headers.get("authorization")
            method = service.feedback if feedback else service.service_start
            answer = await in_thread(lambda: method(service_id, authorization, body, rid))
            if isinstance(answer, Fetch):  # missing prefetch: fetched, then the cards
                fetch = answer
                if await in_thread(fetch.run, network=True) is None:
                    return busy(rid)
                answer = await in_thread(lambda: service.service_finish(fetch))
            return busy(rid) if answer is None else respond(answer, rid)
        except Exception as exc:  # a defect: logged without request data, answered 500
            status, payload = internal_error(exc, "http")
            return respond((status, dumps(payload), {}), rid)

    async def cds_service(request: Request) -> Response:
        return await post(request, feedback=False)

    async def cds_feedback(request: Request) -> Response:
        return await post(request, feedback=True)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 400
        text = {404: "not found", 405: "method not allowed"}.get(status, "bad request")
        return error(status, text)

    routes = [
        Route("/cds-services", discovery, methods=["GET"]),
        Route("/cds-services/{service_id}", cds_service, methods=["POST"]),
        Route("/cds-services/{service_id}/feedback", cds_feedback, methods=["POST"]),
    ]
    middleware = []
    if config.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["authorization", "content-type", "x-request-id"],
                expose_headers=["x-request-id"],
                allow_credentials=False,
                max_age=600,
            )
        )
    return Starlette(
        routes=routes, middleware=middleware, exception_handlers={HTTPException: http_error}
    )


def announce(config: ServiceConfig) -> None:
    """Log, at start, whether callers are authenticated and whom the service trusts."""
    if config.insecure_no_auth:
        log.warning(
            "AUTHENTICATION IS OFF (--insecure-no-auth): any caller is answered. "
            "For local testing only; never expose this server to a network."
        )
    else:
        log.info(
            "authentication on: JWT bearer tokens for %s from %d trusted client(s): %s",
            config.url,
            len(config.clients),
            ", ".join(c.iss for c in config.clients),
        )
    if config.table_file is not None:
        log.info("OME conversion table: the local table file %s", config.table_file)
