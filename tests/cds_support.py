"""Shared by the CDS Hooks service tests: a test EHR's keys, signed tokens, a server in a thread.

The test EHR signs its tokens with an EC P-256 key (ES256), like a real CDS client with its
own JWK Set; the service is configured to trust that issuer, with the audience base URL
``SERVICE_URL`` (the address the EHR calls, as behind a reverse proxy).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs
import pytest

jwt = pytest.importorskip("jwt")
ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")
httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from mps_analgesia.cds_hooks import (  # noqa: E402
    ServiceConfig,
    TrustedClient,
    make_server,
)

SERVICE_URL = "https://cds.example.org"
EHR_ISS = "https://ehr.example.org"
EHR_FHIR = "https://ehr.example.org/fhir"
JKU = "https://ehr.example.org/.well-known/jwks.json"


class Signer:
    """A CDS client's signing key and the tokens it makes."""

    def __init__(self, kid: str = "ehr-key-1", iss: str = EHR_ISS) -> None:
        self.kid = kid
        self.iss = iss
        self.private = ec.generate_private_key(ec.SECP256R1())
        public = jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk: dict[str, Any] = {**public, "kid": kid, "use": "sig", "alg": "ES256"}

    def jwks(self, *others: Signer) -> dict[str, Any]:
        """A JWK Set with this key (and the others)."""
        return {"keys": [self.jwk, *(o.jwk for o in others)]}

    def token(
        self,
        path: str = "/cds-services/mps-analgesia",
        *,
        aud: Any = None,
        header: Mapping[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A fresh token for ``path`` (``claims`` override the defaults, None drops one)."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.iss,
            "aud": SERVICE_URL + path if aud is None else aud,
            "exp": now + 300,
            "iat": now,
            "jti": str(uuid.uuid4()),
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        headers = {"kid": self.kid, "typ": "JWT", **(header or {})}
        return str(jwt.encode(payload, self.private, algorithm="ES256", headers=headers))


def config(signer: Signer, **kwargs: Any) -> ServiceConfig:
    """A service configuration trusting ``signer``'s issuer with its JWK Set inline."""
    client = TrustedClient(signer.iss, jwks=signer.jwks(), fhir_servers=[EHR_FHIR])
    return ServiceConfig(url=SERVICE_URL, clients=[client], **kwargs)


class SignedAuth(httpx.Auth):  # type: ignore[misc]
    """httpx auth signing a fresh token for each request's path (as a CDS client does)."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def auth_flow(self, request: Any) -> Iterator[Any]:
        request.headers["Authorization"] = f"Bearer {self.signer.token(request.url.path)}"
        yield request


@contextmanager
def running_server(**kwargs: Any) -> Iterator[str]:
    """The service's own uvicorn server in a thread on a free port of 127.0.0.1."""
    server, sock = make_server("127.0.0.1", 0, log_level="warning", **kwargs)
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def post_json(client: Any, path: str, payload: Any, **kwargs: Any) -> Any:
    """POST ``payload`` as application/json."""
    return client.post(
        path,
        content=json.dumps(payload).encode(),
        headers={"content-type": "application/json", **kwargs.pop("headers", {})},
        **kwargs,
    )


def evolve_limits(cfg: ServiceConfig, **limits: Any) -> ServiceConfig:
    """``cfg`` with some limits changed."""
    return attrs.evolve(cfg, limits=attrs.evolve(cfg.limits, **limits))


# ---- a lean HTTP/1.1 client (keep-alive, no parsing beyond what an answer needs) ------------


def _request_bytes(method: str, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _split_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return status, fields


class LeanClient:
    """One keep-alive connection; ``post`` returns (status, body bytes)."""

    def __init__(self, port: int, timeout: float = 60.0) -> None:
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        self.sock.sendall(_request_bytes("POST", path, body, headers))
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        status, fields = _split_head(head)
        size = int(fields.get("content-length", "0"))
        while len(rest) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            rest += chunk
        self.buffer = rest[size:]
        return status, rest[:size]

    def close(self) -> None:
        self.sock.close()


class AsyncLeanClient:
    """The same over asyncio streams, for many connections from one thread."""

    def __init__(self, reader: Any, writer: Any) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> AsyncLeanClient:
        import asyncio
        import socket

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        self.writer.write(_request_bytes("POST", path, body, headers))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, fields = _split_head(head[:-4])
        data = await self.reader.readexactly(int(fields.get("content-length", "0")))
        return status, data

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


# ---- a replay store named by the configuration (auth.jti_store = "cds_support:file_store") -----


def file_store(config: ServiceConfig) -> Any:
    """A replay store factory as a deployment names one: here a SQLite file from the environment."""
    import os

    from mps_analgesia.cds_hooks import SqliteJtiStore

    return SqliteJtiStore(os.environ["MPS_TEST_JTI_FILE"])


def not_a_store(config: ServiceConfig) -> Any:
    """A factory making something that is not a replay store."""
    return object()
