"""Trusting CDS clients (CDS Hooks 2.0): the JWT bearer token on every request, verified.

A request is answered only when its ``Authorization: Bearer <JWT>`` token

- names an asymmetric ``alg`` the service accepts (never ``none``, never HMAC) and a ``kid``;
- is issued (``iss``) by a client on the allow-list (:class:`~._config.TrustedClient`);
- is signed by the key ``kid`` of that client's JWK Set: the one configured (inline or a file,
  re-read when the file changes: key rotation) or the one at the ``jku`` URL of the token's
  header, which must be on that client's ``jku`` allow-list (fetched over https, cached for
  ``jwks_cache_s``, fetched again at most every few seconds when an unknown ``kid`` appears);
- has the endpoint's URL as ``aud`` (:meth:`~._config.ServiceConfig.audience`), an ``exp``
  in the future, an ``iat`` not in the future and not older than ``max_token_age_s`` (both
  with ``leeway_s``), and a ``jti`` not seen before within that window (replay).

Anything else is :class:`AuthError` (HTTP 401).  The token and its claims are never logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from ..errors import MpsAnalgesiaError
from ._config import ServiceConfig, TrustedClient
from ._http import FetchError, get_json
from ._jti import MAX_REMEMBERED_JTI, JtiStore, MemoryJtiStore, SqliteJtiStore, make_store

__all__ = ["MAX_REMEMBERED_JTI", "AuthError", "Caller", "ReplayGuard", "Verifier"]

#: A JWK Set URL is fetched again for an unknown ``kid`` at most this often (seconds).
_REFETCH_MIN_S: Final = 10.0
_JWKS_MAX_BYTES: Final = 256_000
_JWKS_TIMEOUT_S: Final = 3.0

#: A JWS in compact form: three base64url segments (the signature's may be empty: ``alg: none``).
_COMPACT: Final = re.compile(
    r"^([A-Za-z0-9_-]+)={0,2}\.([A-Za-z0-9_-]+)={0,2}\.[A-Za-z0-9_-]*={0,2}$"
)


class AuthError(MpsAnalgesiaError, PermissionError):
    """A request whose caller could not be verified: answered with ``status`` (401 or 503)."""

    def __init__(self, message: str, status: int = 401) -> None:
        self.message = message
        self.status = status
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


@attrs.define(frozen=True)
class Caller:
    """A verified CDS client: its configuration and the token's identifying claims."""

    client: TrustedClient | None
    iss: str | None = None
    jti: str | None = None
    tenant: str | None = None

    @property
    def verified(self) -> bool:
        """Whether the caller proved who it is (false only with ``--insecure-no-auth``)."""
        return self.client is not None


#: The caller of an unauthenticated service (``--insecure-no-auth``): never verified.
UNVERIFIED: Final = Caller(None)


def ReplayGuard(path: str | None = None, max_entries: int = MAX_REMEMBERED_JTI) -> JtiStore:
    """A replay store: :class:`~._jti.SqliteJtiStore` on ``path``, else in memory."""
    return SqliteJtiStore(path) if path is not None else MemoryJtiStore(max_entries)


class _KeySet:
    """The keys of one JWK Set by ``kid``, with when it was read."""

    def __init__(self, jwks: object, read_at: float, stamp: object = None) -> None:
        import jwt

        self.read_at = read_at
        self.stamp = stamp
        #: kid → (the public key, the JWK's own ``alg`` or ``None``)
        self.keys: dict[str, tuple[Any, str | None]] = {}
        rows = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(rows, list):
            raise AuthError("the client's JWK Set has no 'keys' list")
        for row in rows:
            if not isinstance(row, Mapping) or not isinstance(row.get("kid"), str):
                continue
            if row.get("use") not in (None, "sig"):
                continue
            try:
                alg = row.get("alg")
                self.keys[row["kid"]] = (
                    jwt.PyJWK(dict(row)).key,
                    alg if isinstance(alg, str) else None,
                )
            except (jwt.PyJWTError, TypeError, ValueError):
                continue  # an unusable key is skipped; its kid then fails to verify


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWT, not verified: only to choose the key.

    One pass over the token (PyJWT's own unverified reading parses it again per call); the
    signature and every claim are then verified by :func:`jwt.decode`.
    """
    match = _COMPACT.match(token)
    if match is None:
        raise AuthError("the token is not a JWT")
    try:
        parts = [
            json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
            for segment in match.groups()
        ]
    except (binascii.Error, ValueError, RecursionError):
        raise AuthError("the token is not a JWT") from None
    header, claims = parts
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AuthError("the token is not a JWT")
    return header, claims


class Verifier:
    """Verifies the bearer token of each request against a :class:`~._config.ServiceConfig`."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        transport: Any = None,
        clock: Callable[[], float] = time.time,
        replay: JtiStore | None = None,
    ) -> None:
        self.config = config
        self._transport = transport
        self._clock = clock
        self._lock = threading.Lock()
        self._configured: dict[str, _KeySet] = {}
        self._fetched: dict[str, _KeySet] = {}
        self._last_fetch: dict[str, float] = {}
        #: the replay store: every process answering the service must share one (see _jti)
        self.replay = replay if replay is not None else make_store(config)
        for c in config.clients:
            if c.jwks is not None:
                self._configured[c.iss] = _KeySet(c.jwks, clock())

    # ---- keys -----------------------------------------------------------------------------

    def _file_keys(self, client: TrustedClient) -> _KeySet:
        assert client.jwks_file is not None
        import json

        try:
            stat = os.stat(client.jwks_file)
        except OSError:
            raise AuthError("the client's JWK Set file cannot be read") from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._configured.get(client.iss)
            if cached is not None and cached.stamp == stamp:
                return cached
        try:
            with open(client.jwks_file, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            raise AuthError("the client's JWK Set file cannot be read") from None
        keys = _KeySet(data, self._clock(), stamp)
        with self._lock:
            self._configured[client.iss] = keys
        return keys

    def _url_keys(self, url: str, kid: str) -> _KeySet:
        now = self._clock()
        with self._lock:
            cached = self._fetched.get(url)
            last = self._last_fetch.get(url, -1e300)
        fresh = cached is not None and now - cached.read_at < self.config.jwks_cache_s
        if cached is not None and fresh and kid in cached.keys:
            return cached
        if cached is not None and now - last < _REFETCH_MIN_S:
            return cached  # an unknown kid does not make us fetch more than every few seconds
        with self._lock:
            self._last_fetch[url] = now
        try:
            data = get_json(
                url,
                timeout_s=_JWKS_TIMEOUT_S,
                max_bytes=_JWKS_MAX_BYTES,
                transport=self._transport,
            )
        except FetchError as exc:
            if cached is not None and fresh:
                return cached
            raise AuthError(f"the JWK Set could not be fetched: {exc}") from None
        keys = _KeySet(data, now)
        with self._lock:
            self._fetched[url] = keys
        return keys

    def _key(self, client: TrustedClient, header: Mapping[str, Any]) -> Any:
        kid = header["kid"]
        jku = header.get("jku")
        if jku is not None:
            if not isinstance(jku, str) or jku not in client.jku:
                raise AuthError("the token's jku is not on the client's allow-list")
            keys = self._url_keys(jku, kid)
        elif client.jwks_file is not None:
            keys = self._file_keys(client)
        elif client.iss in self._configured:
            keys = self._configured[client.iss]
        elif client.jku:
            keys = self._url_keys(client.jku[0], kid)
        else:  # pragma: no cover - the configuration requires one source of keys
            raise AuthError("no keys are configured for the client")
        got = keys.keys.get(kid)
        if got is None:
            raise AuthError("the token's kid is not in the client's JWK Set")
        key, alg = got
        if alg is not None and alg != header["alg"]:
            raise AuthError("the token's alg is not its key's alg")
        return key

    # ---- the token ------------------------------------------------------------------------

    def verify(self, authorization: str | None, path: str) -> Caller:
        """The verified caller of a request to ``path`` with this ``Authorization`` header.

        Raises :class:`AuthError` (401) for a missing, malformed, unsigned, wrongly signed,
        expired, future, too old, replayed or wrongly-audienced token.
        """
        if self.config.insecure_no_auth:
            return UNVERIFIED
        import jwt

        if not authorization:
            raise AuthError("an Authorization: Bearer token is required")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("the Authorization header must be 'Bearer <JWT>'")
        if len(token) > 16_384:
            raise AuthError("the token is too long")
        header, unverified = _peek(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.config.algorithms:
            raise AuthError("the token's alg is not accepted (an asymmetric signature is needed)")
        if not isinstance(header.get("kid"), str) or not header["kid"]:
            raise AuthError("the token has no kid")
        if header.get("typ") not in (None, "JWT", "jwt"):
            raise AuthError("the token's typ is not JWT")
        iss = unverified.get("iss")
        client = self.config.client(iss) if isinstance(iss, str) else None
        if client is None:
            raise AuthError("the token's issuer is not a trusted CDS client")
        key = self._key(client, header)
        audiences = [self.config.audience(path)]
        if path.endswith("/feedback"):
            audiences.append(self.config.audience(path.removesuffix("/feedback")))
        leeway = self.config.leeway_s
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audiences,
                issuer=client.iss,
                leeway=leeway,
                options={"require": ["iss", "aud", "exp", "iat", "jti"], "verify_nbf": True},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("the token's aud is not this endpoint's URL") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("the token is not valid yet (iat or nbf in the future)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"the token has no {exc.claim} claim") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise AuthError("the token's signature or claims are invalid") from None
        now = self._clock()
        iat, exp, jti = claims["iat"], claims["exp"], claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise AuthError("the token's jti must be a non-empty string")
        if now - iat > self.config.max_token_age_s + leeway:
            raise AuthError("the token was issued too long ago (iat)")
        until = min(float(exp), float(iat) + self.config.max_token_age_s) + leeway
        if not self.replay.first_use(client.iss, jti, until, now):
            raise AuthError("the token was already used (jti replayed)")
        tenant = claims.get("tenant")
        return Caller(client, client.iss, jti, tenant if isinstance(tenant, str) else None)
