"""Running the service: a listening socket, a uvicorn server, worker processes, TLS.

``serve(workers=N)`` runs N processes on one listening socket (uvicorn's supervisor restarts a
worker that dies; the others keep answering).  They share the ``jti`` replay store (:mod:`._jti`:
the configuration's ``auth.jti_store``, else a SQLite file in a private temporary directory),
so a token replayed to another worker is refused too.
Timeouts: a request head must arrive within ``limits.header_timeout_s`` (the connection is
closed otherwise), its body too (408), and an idle keep-alive connection is closed after
``limits.timeout_keep_alive_s``.  ``certfile``/``keyfile`` serve HTTPS directly; behind a
reverse proxy, let the proxy terminate TLS (see the documentation).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import tempfile
from typing import TYPE_CHECKING, Any, Final

import attrs

from ..fhir import to_bundle
from ..regimen import Regimen
from ._app import _require_serve_extra, announce, create_app
from ._config import ServiceConfig, load_config
from ._handle import handle
from ._jti import SHARED_FILE_VARIABLE, JtiStore

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..rules import RuleRegistry

__all__ = ["listening_socket", "make_server", "serve", "worker_app"]

log = logging.getLogger("mps_analgesia.cds_hooks")

#: The environment variable carrying ``serve``'s settings to its worker processes.
_WORKER_SETTINGS: Final = "_MPS_CDS_WORKER_SETTINGS"
#: The uvicorn factory each worker process of ``serve(workers=N)`` imports (the benchmark of
#: the server's own overhead names one that answers with fixed cards).
_worker_app_path = f"{__name__}:worker_app"


def listening_socket(host: str = "127.0.0.1", port: int = 8080) -> socket.socket:
    """A bound TCP socket with ``TCP_NODELAY`` set, for uvicorn to serve on.

    ``TCP_NODELAY`` matters: uvicorn writes a response's head and body separately, and with
    Nagle's algorithm on, the body then waits for the client's delayed ACK (about 40 ms on
    Linux) — ten times the time it takes to check the orders.  ``port=0`` picks a free port.

    Example
    -------
    >>> from mps_analgesia.cds_hooks import listening_socket
    >>> sock = listening_socket("127.0.0.1", 0)
    >>> sock.getsockname()[1] > 0
    True
    >>> sock.close()
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _uvicorn_config(
    app: Any,
    config: ServiceConfig,
    *,
    log_level: str,
    certfile: str | None,
    keyfile: str | None,
    workers: int = 1,
    factory: bool = False,
) -> Any:
    import uvicorn

    from ._protocol import protocol_path

    limits = config.limits
    loop = "uvloop" if _has("uvloop") else "asyncio"
    out = uvicorn.Config(
        app,
        factory=factory,
        log_level=log_level,
        lifespan="off",
        http=protocol_path(),
        loop=loop,
        workers=workers,
        timeout_keep_alive=max(1, round(limits.timeout_keep_alive_s)),
        limit_concurrency=max(limits.max_concurrency * 16, 256),
        backlog=2048,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        server_header=False,
        access_log=log_level in ("debug", "trace"),
    )
    out.mps_header_timeout_s = limits.header_timeout_s  # type: ignore[attr-defined]
    return out


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _setup_logging(log_level: str) -> None:
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(log_level.upper() if log_level != "trace" else "DEBUG")


def make_server(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    config: ServiceConfig | None = None,
    rules: RuleRegistry | None = None,
    log_level: str = "info",
    insecure_no_auth: bool = False,
    certfile: str | None = None,
    keyfile: str | None = None,
    transport: Any = None,
    jti_store: JtiStore | None = None,
) -> tuple[Any, socket.socket]:
    """A uvicorn ``Server`` for the service and the socket to run it on (not started).

    Authentication is on: ``config`` (default :func:`load_config` from the environment) must
    name the trusted clients, unless ``insecure_no_auth=True`` (local testing; logged).  Start
    the server with ``server.run(sockets=[sock])`` (blocking; in a thread for tests) and stop
    it with ``server.should_exit = True``.  ``jti_store`` is the replay store (see
    :func:`create_app`).

    Example
    -------
    >>> from mps_analgesia.cds_hooks import make_server
    >>> server, sock = make_server("127.0.0.1", 0, insecure_no_auth=True, log_level="error")
    >>> server.started
    False
    >>> sock.close()
    """
    _require_serve_extra()
    import uvicorn

    _setup_logging(log_level)
    if config is None:
        config = load_config(insecure_no_auth=True if insecure_no_auth else None)
    elif insecure_no_auth:
        config = attrs.evolve(config, insecure_no_auth=True)
    app = create_app(config, rules=rules, transport=transport, jti_store=jti_store)
    sock = listening_socket(host, port)
    uconfig = _uvicorn_config(app, config, log_level=log_level, certfile=certfile, keyfile=keyfile)
    _warm_up(rules)
    return uvicorn.Server(uconfig), sock


def _warm_up(rules: RuleRegistry | None) -> None:
    """Load the data tables and rules once, so the first real request is as fast as the rest."""
    from ..steps import AdjuvantStep

    step = AdjuvantStep(drug="acetaminophen", role="nociceptive", dose="1 g", every="6 h")
    bundle = to_bundle(Regimen([step]))
    orders = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationRequest"]
    handle(
        {
            "hook": "order-sign",
            "context": {"draftOrders": {"resourceType": "Bundle", "entry": orders}},
        },
        rules=rules,
    )


def worker_app() -> Starlette:
    """The application of one worker process of ``serve(workers=N)`` (a uvicorn factory)."""
    settings = json.loads(os.environ.get(_WORKER_SETTINGS, "{}"))
    _setup_logging(settings.get("log_level", "info"))
    config = load_config(
        settings.get("config"),
        insecure_no_auth=True if settings.get("insecure") else None,
        table_file=settings.get("table_file"),
    )
    app = create_app(config)
    _warm_up(None)
    return app


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    config_file: str | None = None,
    insecure_no_auth: bool = False,
    workers: int = 1,
    certfile: str | None = None,
    keyfile: str | None = None,
    log_level: str = "info",
    table_file: str | None = None,
) -> None:
    """Run the CDS Hooks service with uvicorn until interrupted; authentication is on.

    ``config_file`` is the TOML configuration (default: ``MPS_CDS_CONFIG`` and the
    environment); ``insecure_no_auth`` turns authentication off for local testing (logged at
    start); ``workers`` runs that many processes; ``certfile``/``keyfile`` serve HTTPS;
    ``table_file`` a local OME conversion table (over the configuration's ``table_file``).

    Example
    -------
    >>> from mps_analgesia.cds_hooks import serve
    >>> serve("127.0.0.1", 8080, config_file="cds.toml", workers=2)  # doctest: +SKIP
    """
    _require_serve_extra()

    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if bool(certfile) != bool(keyfile):
        raise ValueError("give both --certfile and --keyfile for HTTPS, or neither")
    _setup_logging(log_level)
    config = load_config(
        config_file,
        insecure_no_auth=True if insecure_no_auth else None,
        table_file=table_file,
    )
    if workers == 1:
        server, sock = make_server(
            host, port, config=config, log_level=log_level, certfile=certfile, keyfile=keyfile
        )
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()
        return
    from uvicorn.supervisors import Multiprocess

    announce(config)
    with tempfile.TemporaryDirectory(prefix="mps-cds-") as private:
        os.environ[SHARED_FILE_VARIABLE] = os.path.join(private, "jti.sqlite3")
        os.environ[_WORKER_SETTINGS] = json.dumps(
            {
                "config": config_file,
                "insecure": insecure_no_auth,
                "log_level": log_level,
                "table_file": table_file,
            }
        )
        uconfig = _uvicorn_config(
            _worker_app_path,
            config,
            log_level=log_level,
            certfile=certfile,
            keyfile=keyfile,
            workers=workers,
            factory=True,
        )
        sock = listening_socket(host, port)
        try:
            Multiprocess(uconfig, sockets=[sock]).run()
        finally:
            sock.close()
            os.environ.pop(SHARED_FILE_VARIABLE, None)
            os.environ.pop(_WORKER_SETTINGS, None)
