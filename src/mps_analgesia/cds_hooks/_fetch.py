"""Fetching missing prefetch data from the EHR's FHIR server, for a verified client only.

A prefetch key the client did not send (absent, not ``null``) is fetched when all hold:

- the caller is verified (a signed token; never with ``--insecure-no-auth``);
- the request's ``fhirServer`` is one of the FHIR servers configured for the caller's ``iss``
  (so a token from one EHR never sends the service to another server), and it is https;
- the request carries ``fhirAuthorization`` with a bearer ``access_token``;
- the whole fetch fits the time and size limits (``limits.fhir_timeout_s``, ``fhir_max_bytes``).

Otherwise the key stays missing, and the not-checked card names it and says why it was not
fetched.  The access token is used for these GETs only, never stored or logged.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from ._auth import Caller
from ._config import Limits
from ._discovery import PREFETCH_KEYS, prefetch_templates
from ._http import FetchError, get_json

__all__ = ["complete_prefetch"]

_TOKEN: Final = re.compile(r"\{\{\s*context\.([A-Za-z]+)\s*\}\}")
_FHIR_ID: Final = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def _same_server(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _query(template: str, context: Mapping[str, Any]) -> str | None:
    """The template with its context tokens filled in; ``None`` if a token has no FHIR id."""
    missing = False

    def fill(m: re.Match[str]) -> str:
        nonlocal missing
        value = context.get(m.group(1))
        if isinstance(value, str) and value.startswith("Patient/"):
            value = value.removeprefix("Patient/")
        if not isinstance(value, str) or not _FHIR_ID.match(value):
            missing = True
            return ""
        return value

    out = _TOKEN.sub(fill, template)
    return None if missing else out


def complete_prefetch(
    data: Mapping[str, Any],
    caller: Caller,
    limits: Limits,
    *,
    transport: Any = None,
) -> tuple[Mapping[str, Any], dict[str, str]]:
    """The request with absent prefetch keys fetched where allowed; why the others were not."""
    prefetch = data.get("prefetch")
    prefetch = prefetch if isinstance(prefetch, Mapping) else {}
    absent = [k for k in PREFETCH_KEYS if k not in prefetch]
    if not absent:
        return data, {}
    server = data.get("fhirServer")
    auth = data.get("fhirAuthorization")
    why = ""
    if not caller.verified or caller.client is None:
        why = "the caller is not verified, so no data are fetched for it"
    elif not isinstance(server, str) or not server:
        why = "the request names no fhirServer"
    elif urlsplit(server).scheme != "https":
        why = "the fhirServer is not https"
    elif not any(_same_server(server, s) for s in caller.client.fhir_servers):
        why = "the fhirServer is not one configured for this client"
    elif not isinstance(auth, Mapping) or not isinstance(auth.get("access_token"), str):
        why = "the request has no fhirAuthorization access token"
    if why:
        return data, dict.fromkeys(absent, why)
    assert isinstance(server, str)
    assert isinstance(auth, Mapping)
    context = data.get("context")
    context = context if isinstance(context, Mapping) else {}
    templates = prefetch_templates()
    headers = {"Authorization": f"Bearer {auth['access_token']}", "Accept": "application/fhir+json"}
    deadline = time.monotonic() + limits.fhir_timeout_s
    budget = limits.fhir_max_bytes
    fetched: dict[str, Any] = {}
    not_fetched: dict[str, str] = {}
    for key in absent:
        query = _query(templates[key], context)
        left = deadline - time.monotonic()
        if query is None:
            not_fetched[key] = "the context has no patient id to fetch it with"
            continue
        if left <= 0:
            not_fetched[key] = f"the time limit of {limits.fhir_timeout_s:g} s was reached"
            continue
        try:
            value = get_json(
                f"{server.rstrip('/')}/{query}",
                timeout_s=left,
                max_bytes=budget,
                headers=headers,
                transport=transport,
            )
        except FetchError as exc:
            not_fetched[key] = str(exc)
            continue
        if not isinstance(value, Mapping) or not isinstance(value.get("resourceType"), str):
            not_fetched[key] = "the FHIR server did not send a FHIR resource"
            continue
        fetched[key] = value
    if not fetched:
        return data, not_fetched
    return {**data, "prefetch": {**prefetch, **fetched}}, not_fetched
