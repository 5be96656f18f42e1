"""The service's configuration: who may call it, and the limits it runs within.

Read from a TOML file (``serve --config PATH``, or the file named by ``MPS_CDS_CONFIG``) or
from the environment; every problem is reported at once with its key path.  A file::

    [service]
    url = "https://cds.example.org"            # the base URL the EHR calls (the JWT audience)
    cors_origins = ["https://ehr.example.org"] # browser origins allowed (never "*")
    audit_log = "/var/log/mps-analgesia/feedback.jsonl"
    table_file = "hospital-ome.toml"           # a local OME conversion table (default cdc-2022)

    [limits]                                   # all optional; the defaults are shown
    max_body_bytes = 2000000
    max_concurrency = 64                       # requests admitted at once per process
    threads = 2                                # of them, checked at once (the GIL: see _app)
    queue_timeout_s = 5.0                      # waiting for a free slot, then 503
    timeout_keep_alive_s = 5.0                 # idle keep-alive connections are closed
    header_timeout_s = 10.0                    # the request head and body must arrive in time
    fhir_timeout_s = 3.0                       # fetching prefetch from the EHR's FHIR server
    fhir_max_bytes = 1000000

    [auth]
    leeway_s = 30                              # clock skew allowed on exp and iat
    max_token_age_s = 300                      # iat older than this: refused (the jti window)
    jwks_cache_s = 300                         # a fetched JWK Set is re-read after this
    jti_store = "/var/lib/mps-analgesia/jti.sqlite3"  # the replay store (see _jti): a file
                                               # shared by this host's workers, or a
                                               # "package.module:factory" for several hosts

    [[auth.clients]]                           # one per trusted CDS client (EHR)
    iss = "https://ehr.example.org"
    jwks_file = "ehr-jwks.json"                # a JWK Set out of band (re-read when it changes)
    jku = ["https://ehr.example.org/.well-known/jwks.json"]  # or JWK Set URLs it may name
    fhir_servers = ["https://ehr.example.org/fhir"]          # where its prefetch may be fetched

The environment: ``MPS_CDS_CONFIG`` (the file), ``MPS_CDS_SERVICE_URL`` (``service.url``),
``MPS_CDS_CLIENTS`` (the ``auth.clients`` list as JSON), ``MPS_CDS_CORS_ORIGINS``
(comma-separated), ``MPS_CDS_AUDIT_LOG``, ``MPS_CDS_TABLE_FILE`` (``service.table_file``),
``MPS_CDS_JTI_STORE`` (``auth.jti_store``).
Variables override the file.  The conversion table is server configuration only: a request
never names a table or a file.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import attrs

from ..errors import Problem, _FileProblems

__all__ = [
    "ALGORITHMS",
    "Limits",
    "ServiceConfig",
    "ServiceConfigError",
    "TrustedClient",
    "load_config",
]

#: The signing algorithms accepted: asymmetric only (CDS Hooks 2.0 forbids ``none`` and HMAC).
ALGORITHMS: Final = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


class ServiceConfigError(_FileProblems, ValueError):
    """A service configuration with problems; every problem is listed with its key path."""


#: ``auth.jti_store`` naming a factory rather than a file: ``package.module:callable``.
_FACTORY: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")


def _https(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(parts.netloc)


@attrs.define(frozen=True)
class TrustedClient:
    """A CDS client (an EHR) the service trusts: its issuer and where its keys are.

    ``jwks`` is its JWK Set given out of band (inline or read from ``jwks_file``); ``jku`` the
    JWK Set URLs its tokens may name; ``fhir_servers`` the FHIR base URLs tied to it, the only
    ones the service fetches missing prefetch data from on its behalf (https only).
    """

    iss: str
    jwks: Mapping[str, Any] | None = None
    jwks_file: str | None = None
    jku: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    fhir_servers: tuple[str, ...] = attrs.field(default=(), converter=tuple)


@attrs.define(frozen=True)
class Limits:
    """Resource limits of one server process."""

    max_body_bytes: int = 2_000_000
    max_concurrency: int = 64
    #: threads checking orders per process (under the GIL more only take turns; see _app)
    threads: int = 2
    queue_timeout_s: float = 5.0
    timeout_keep_alive_s: float = 5.0
    header_timeout_s: float = 10.0
    fhir_timeout_s: float = 3.0
    fhir_max_bytes: int = 1_000_000


@attrs.define(frozen=True)
class ServiceConfig:
    """Everything the service is configured with (never from a request).

    ``insecure_no_auth`` turns authentication off: for local testing only; the server logs it
    at start and every answer is then from an unverified caller.

    Example
    -------
    >>> from mps_analgesia.cds_hooks import ServiceConfig, TrustedClient
    >>> ehr = TrustedClient("https://ehr.example.org", jwks={"keys": []})
    >>> config = ServiceConfig(url="https://cds.example.org", clients=[ehr])
    >>> config.audience("/cds-services/mps-analgesia")
    'https://cds.example.org/cds-services/mps-analgesia'
    """

    url: str | None = None
    clients: tuple[TrustedClient, ...] = attrs.field(default=(), converter=tuple)
    insecure_no_auth: bool = False
    cors_origins: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    audit_log: str | None = None
    limits: Limits = attrs.field(factory=Limits)
    algorithms: tuple[str, ...] = attrs.field(default=ALGORITHMS, converter=tuple)
    leeway_s: float = 30.0
    max_token_age_s: float = 300.0
    jwks_cache_s: float = 300.0
    #: A local OME conversion table file (``serve --table-file``); ``None``: the default table.
    table_file: str | None = None
    #: The replay store (:mod:`._jti`): a SQLite file for this host's workers, or a
    #: ``package.module:factory`` making a store shared by several hosts; ``None``: in
    #: memory for one process, a private file for ``serve(workers=N)``.
    jti_store: str | None = None

    def __attrs_post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ServiceConfigError("<config>", problems)

    def ome_table(self) -> Any:
        """The local conversion table of :attr:`table_file` (read from the file), or ``None``.

        Raises :class:`~mps_analgesia.errors.TableFileError` listing the file's problems.
        """
        if self.table_file is None:
            return None
        from ..conversion import load_table

        return load_table(self.table_file)

    def audience(self, path: str) -> str:
        """The ``aud`` a token must carry to call ``path`` (the endpoint's URL)."""
        return (self.url or "").rstrip("/") + path

    def client(self, iss: str) -> TrustedClient | None:
        """The trusted client with this issuer, or ``None``."""
        for c in self.clients:
            if c.iss == iss:
                return c
        return None


def _problems(config: ServiceConfig) -> list[Problem]:
    out: list[Problem] = []
    if not config.insecure_no_auth:
        if not config.url:
            out.append(
                Problem(
                    "service.url",
                    "the service's base URL is needed to check each token's audience "
                    "(or run with --insecure-no-auth for local testing)",
                )
            )
        if not config.clients:
            out.append(
                Problem(
                    "auth.clients",
                    "no trusted CDS client: add one [[auth.clients]] with its iss and JWK Set "
                    "(or run with --insecure-no-auth for local testing)",
                )
            )
    if config.url is not None:
        parts = urlsplit(config.url)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.query:
            out.append(Problem("service.url", f"not a base URL: {config.url!r}"))
    seen: set[str] = set()
    for i, c in enumerate(config.clients):
        where = f"auth.clients[{i}]"
        if not c.iss:
            out.append(Problem(f"{where}.iss", "an issuer is required"))
        if c.iss in seen:
            out.append(Problem(f"{where}.iss", f"issuer {c.iss!r} is listed twice"))
        seen.add(c.iss)
        if c.jwks is None and c.jwks_file is None and not c.jku:
            out.append(Problem(where, "give its keys: jwks, jwks_file or jku"))
        if c.jwks is not None and not isinstance(c.jwks.get("keys"), list):
            out.append(Problem(f"{where}.jwks", "a JWK Set is an object with a 'keys' list"))
        out.extend(
            Problem(f"{where}.jku[{j}]", f"a JWK Set URL must be https: {u!r}")
            for j, u in enumerate(c.jku)
            if not _https(u)
        )
        out.extend(
            Problem(f"{where}.fhir_servers[{j}]", f"a FHIR server URL must be https: {u!r}")
            for j, u in enumerate(c.fhir_servers)
            if not _https(u)
        )
    for i, origin in enumerate(config.cors_origins):
        parts = urlsplit(origin)
        if origin == "*" or parts.scheme not in ("https", "http") or not parts.netloc:
            out.append(
                Problem(f"service.cors_origins[{i}]", f"an origin like https://host: {origin!r}")
            )
    if config.table_file is not None:
        out.extend(_table_problems(config.table_file))
    if config.jti_store is not None and (
        not isinstance(config.jti_store, str) or not config.jti_store
    ):
        out.append(Problem("auth.jti_store", "a SQLite file's path, or a 'package.module:factory'"))
    bad = [a for a in config.algorithms if a not in ALGORITHMS]
    if bad:
        out.append(
            Problem("auth.algorithms", f"not an asymmetric signing algorithm: {', '.join(bad)}")
        )
    for name in ("leeway_s", "max_token_age_s", "jwks_cache_s"):
        value = getattr(config, name)
        if not isinstance(value, int | float) or not value >= 0:
            out.append(Problem(f"auth.{name}", f"must be a number ≥ 0, not {value!r}"))
    if isinstance(config.limits.threads, float):
        out.append(
            Problem("limits.threads", f"must be a whole number, not {config.limits.threads!r}")
        )
    for field in attrs.fields(Limits):
        value = getattr(config.limits, field.name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            out.append(Problem(f"limits.{field.name}", f"must be a number > 0, not {value!r}"))
    return out


def _table_problems(table_file: object) -> list[Problem]:
    """The problems of the configured table file, each under ``service.table_file``."""
    from ..conversion import load_table
    from ..errors import TableFileError

    if not isinstance(table_file, str) or not table_file:
        return [Problem("service.table_file", "must be the path of a conversion table file")]
    try:
        load_table(table_file)
    except TableFileError as exc:
        return [
            Problem(
                "service.table_file",
                f"{exc.file}{f':{p.line}' if p.line is not None else ''}: {p}",
            )
            for p in exc.problems
        ]
    return []


_SECTIONS: Final[Mapping[str, frozenset[str]]] = {
    "service": frozenset({"url", "cors_origins", "audit_log", "table_file"}),
    "limits": frozenset(f.name for f in attrs.fields(Limits)),
    "auth": frozenset(
        {"leeway_s", "max_token_age_s", "jwks_cache_s", "algorithms", "clients", "jti_store"}
    ),
}
_CLIENT_KEYS: Final = frozenset(f.name for f in attrs.fields(TrustedClient))


def _read_clients(
    value: object, where: str, base: Path | None, problems: list[Problem]
) -> list[TrustedClient]:
    if not isinstance(value, list):
        problems.append(Problem(where, "must be a list of tables"))
        return []
    out = []
    for i, row in enumerate(value):
        path = f"{where}[{i}]"
        if not isinstance(row, Mapping):
            problems.append(Problem(path, "must be a table"))
            continue
        unknown = sorted(set(row) - _CLIENT_KEYS)
        problems.extend(Problem(f"{path}.{k}", "unknown key") for k in unknown)
        kwargs = {k: v for k, v in row.items() if k in _CLIENT_KEYS}
        if not isinstance(kwargs.get("iss"), str):
            problems.append(Problem(f"{path}.iss", "an issuer (a string) is required"))
            continue
        for key in ("jku", "fhir_servers"):
            v = kwargs.get(key, [])
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                problems.append(Problem(f"{path}.{key}", "must be a list of URLs"))
                kwargs[key] = []
        jwks_file = kwargs.get("jwks_file")
        if jwks_file is not None:
            if not isinstance(jwks_file, str):
                problems.append(Problem(f"{path}.jwks_file", "must be a file name"))
                kwargs.pop("jwks_file")
            else:
                file = Path(jwks_file)
                if base is not None and not file.is_absolute():
                    file = base / file
                kwargs["jwks_file"] = str(file)
                try:
                    json.loads(file.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    problems.append(Problem(f"{path}.jwks_file", f"cannot read a JWK Set: {exc}"))
        jwks = kwargs.get("jwks")
        if isinstance(jwks, str):
            try:
                kwargs["jwks"] = json.loads(jwks)
            except ValueError as exc:
                problems.append(Problem(f"{path}.jwks", f"not JSON: {exc}"))
                kwargs.pop("jwks")
        elif jwks is not None and not isinstance(jwks, Mapping):
            problems.append(Problem(f"{path}.jwks", "must be a JWK Set (an object or JSON)"))
            kwargs.pop("jwks")
        out.append(TrustedClient(**kwargs))
    return out


def _from_mapping(
    data: Mapping[str, Any], base: Path | None, problems: list[Problem]
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for section, value in data.items():
        if section not in _SECTIONS:
            problems.append(Problem(section, "unknown section (service, limits, auth)"))
            continue
        if not isinstance(value, Mapping):
            problems.append(Problem(section, "must be a table"))
            continue
        for key in sorted(set(value) - _SECTIONS[section]):
            problems.append(Problem(f"{section}.{key}", "unknown key"))
        if section == "limits":
            known = {k: v for k, v in value.items() if k in _SECTIONS["limits"]}
            kwargs["limits"] = known
            continue
        for key, v in value.items():
            if key not in _SECTIONS[section]:
                continue
            if key == "clients":
                kwargs["clients"] = _read_clients(v, "auth.clients", base, problems)
            elif key in ("audit_log", "table_file") and isinstance(v, str) and base is not None:
                kwargs[key] = str(base / v) if not Path(v).is_absolute() else v
            elif key == "jti_store" and isinstance(v, str) and v and base is not None:
                kwargs[key] = v if _FACTORY.match(v) or Path(v).is_absolute() else str(base / v)
            else:
                kwargs[key] = v
    return kwargs


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> ServiceConfig:
    """The service configuration from a TOML file and the environment; ``overrides`` last.

    ``path`` defaults to ``MPS_CDS_CONFIG`` when that is set.  Raises
    :class:`ServiceConfigError` listing every problem.

    Example
    -------
    >>> from mps_analgesia.cds_hooks import load_config
    >>> load_config(environ={}, insecure_no_auth=True).insecure_no_auth
    True
    >>> load_config(environ={})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mps_analgesia.cds_hooks._config.ServiceConfigError: <config>: 2 problems
    ...
    """
    env = os.environ if environ is None else environ
    problems: list[Problem] = []
    kwargs: dict[str, Any] = {}
    file_name = str(path) if path is not None else env.get("MPS_CDS_CONFIG")
    if file_name:
        try:
            data = tomllib.loads(Path(file_name).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ServiceConfigError(file_name, [Problem("", f"cannot read: {exc}")]) from None
        kwargs = _from_mapping(data, Path(file_name).resolve().parent, problems)
    if env.get("MPS_CDS_SERVICE_URL"):
        kwargs["url"] = env["MPS_CDS_SERVICE_URL"]
    if env.get("MPS_CDS_CLIENTS"):
        try:
            clients = json.loads(env["MPS_CDS_CLIENTS"])
        except ValueError as exc:
            problems.append(Problem("MPS_CDS_CLIENTS", f"not JSON: {exc}"))
        else:
            kwargs["clients"] = _read_clients(clients, "MPS_CDS_CLIENTS", None, problems)
    if env.get("MPS_CDS_CORS_ORIGINS"):
        kwargs["cors_origins"] = [o.strip() for o in env["MPS_CDS_CORS_ORIGINS"].split(",")]
    if env.get("MPS_CDS_AUDIT_LOG"):
        kwargs["audit_log"] = env["MPS_CDS_AUDIT_LOG"]
    if env.get("MPS_CDS_TABLE_FILE"):
        kwargs["table_file"] = env["MPS_CDS_TABLE_FILE"]
    if env.get("MPS_CDS_JTI_STORE"):
        kwargs["jti_store"] = env["MPS_CDS_JTI_STORE"]
    limits = dict(kwargs.pop("limits", {}))
    limits.update(overrides.pop("limits", {}) or {})
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    try:
        config = ServiceConfig(limits=Limits(**limits), **kwargs)
    except ServiceConfigError as exc:
        problems.extend(exc.problems)
    except (TypeError, ValueError) as exc:
        problems.append(Problem("", str(exc)))
    if problems:
        raise ServiceConfigError(file_name or "<config>", problems)
    return config


def insecure(**kwargs: Any) -> ServiceConfig:
    """A configuration without authentication, for local testing (``--insecure-no-auth``)."""
    return ServiceConfig(insecure_no_auth=True, **kwargs)
