"""Outgoing HTTPS GETs with a time limit and a size limit (JWK Sets, FHIR prefetch).

One small function over httpx (the ``serve`` extra): https only, no redirects, no proxies from
the environment, the body read in chunks and abandoned past ``max_bytes``.  Tests pass an
``httpx`` transport (``httpx.MockTransport``) instead of the network.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import MpsAnalgesiaError

__all__ = ["FetchError", "get_json"]


class FetchError(MpsAnalgesiaError, OSError):
    """A GET that did not give a JSON document in time and within the size limit."""


def get_json(
    url: str,
    *,
    timeout_s: float,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
    transport: Any = None,
) -> Any:
    """The JSON document at ``url`` (https only), or :class:`FetchError` saying why not."""
    import httpx

    if urlsplit(url).scheme != "https":
        raise FetchError(f"not fetched: {url!r} is not an https URL")
    deadline = time.monotonic() + timeout_s
    try:
        with (
            httpx.Client(
                timeout=timeout_s, follow_redirects=False, trust_env=False, transport=transport
            ) as client,
            client.stream("GET", url, headers=dict(headers or {})) as response,
        ):
            if response.status_code != 200:
                raise FetchError(f"{url} answered HTTP {response.status_code}")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"{url} sent more than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise FetchError(f"{url} took longer than {timeout_s:g} s")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise FetchError(f"{url} could not be fetched ({type(exc).__name__})") from None
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, RecursionError):
        raise FetchError(f"{url} did not send JSON") from None
