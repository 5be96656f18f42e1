"""Running the service: a listening socket, a uvicorn server, ``serve()``."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from ..fhir import to_bundle
from ..regimen import Regimen
from ._app import _require_serve_extra, create_app
from ._handle import handle

if TYPE_CHECKING:
    from ..rules import RuleRegistry

__all__ = ["listening_socket", "make_server", "serve"]


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


def make_server(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    rules: RuleRegistry | None = None,
    log_level: str = "info",
) -> tuple[Any, socket.socket]:
    """A uvicorn ``Server`` for the service and the socket to run it on (not started).

    Start it with ``server.run(sockets=[sock])`` (blocking; in a thread for tests) and stop it
    with ``server.should_exit = True``.

    Example
    -------
    >>> from mps_analgesia.cds_hooks import make_server
    >>> server, sock = make_server("127.0.0.1", 0)
    >>> server.started
    False
    >>> sock.close()
    """
    _require_serve_extra()
    import uvicorn

    sock = listening_socket(host, port)
    config = uvicorn.Config(create_app(rules=rules), log_level=log_level, lifespan="off")
    _warm_up(rules)
    return uvicorn.Server(config), sock


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


def serve(host: str = "127.0.0.1", port: int = 8080, *, log_level: str = "info") -> None:
    """Run the CDS Hooks service with uvicorn until interrupted.

    Example
    -------
    >>> from mps_analgesia.cds_hooks import serve
    >>> serve("127.0.0.1", 8080)  # doctest: +SKIP
    """
    server, sock = make_server(host, port, log_level=log_level)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
