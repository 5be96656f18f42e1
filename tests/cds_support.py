"""Shared by the CDS Hooks service tests: a test EHR's keys, signed tokens, a server in a thread.

The test EHR signs its tokens with an EC P-256 key (ES256), like a real CDS client with its
own JWK Set; the service is configured to trust that issuer, with the audience base URL
``SERVICE_URL`` (the address the EHR calls, as behind a reverse proxy).
"""

from __future__ import annotations

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
