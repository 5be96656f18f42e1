"""The HTTP adapter: a Starlette application around :func:`handle`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from ._discovery import SELECT_SERVICE_ID, SERVICE_ID, discovery_document
from ._handle import handle

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..rules import RuleRegistry

__all__ = ["MAX_BODY_BYTES", "create_app"]

#: The largest request body read (bytes); a larger one is answered with 413.
MAX_BODY_BYTES: Final = 2_000_000


def _require_serve_extra() -> None:
    try:
        import starlette  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the CDS Hooks service needs the 'serve' extra: pip install 'mps-analgesia[serve]'"
        ) from exc


def _dumps(payload: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(payload, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError):
        return b'{"error": "the response could not be written as JSON"}'


def create_app(
    *, rules: RuleRegistry | None = None, max_body_bytes: int = MAX_BODY_BYTES
) -> Starlette:
    """The CDS Hooks service as a Starlette ASGI application.

    ``rules`` replaces the default rule registry (for example ``default_rules().disable(...)``).

    Example
    -------
    >>> from mps_analgesia.cds_hooks import create_app
    >>> sorted(r.path for r in create_app().routes)  # doctest: +NORMALIZE_WHITESPACE
    ['/cds-services', '/cds-services/{service_id}', '/cds-services/{service_id}/feedback']
    """
    _require_serve_extra()
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    def json_response(status: int, payload: Mapping[str, Any]) -> Response:
        return Response(_dumps(payload), status_code=status, media_type="application/json")

    async def read_body(request: Request) -> bytes | None:
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def discovery(request: Request) -> Response:
        return json_response(200, discovery_document())

    async def service(request: Request) -> Response:
        service_id = request.path_params.get("service_id")
        if service_id not in (SERVICE_ID, SELECT_SERVICE_ID):
            return json_response(404, {"error": f"no CDS service {service_id!r}"})
        try:
            body = await read_body(request)
        except Exception:
            return json_response(400, {"error": "the request body could not be read"})
        if body is None:
            return json_response(413, {"error": f"the request body is over {max_body_bytes} bytes"})
        status, payload = handle(body, rules=rules)
        return json_response(status, payload)

    async def feedback(request: Request) -> Response:
        service_id = request.path_params.get("service_id")
        if service_id not in (SERVICE_ID, SELECT_SERVICE_ID):
            return json_response(404, {"error": f"no CDS service {service_id!r}"})
        try:
            body = await read_body(request)
            data = json.loads(body) if body is not None else None
        except Exception:
            return json_response(400, {"error": "the feedback body is not valid JSON"})
        if not isinstance(data, Mapping):
            return json_response(400, {"error": "the feedback body must be a JSON object"})
        return json_response(200, {})

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 400
        detail = exc.detail if isinstance(exc, HTTPException) else "bad request"
        return json_response(status, {"error": str(detail)})

    async def any_error(request: Request, exc: Exception) -> Response:
        return json_response(
            422, {"error": f"the request could not be processed ({type(exc).__name__})"}
        )

    routes = [
        Route("/cds-services", discovery, methods=["GET"]),
        Route("/cds-services/{service_id}", service, methods=["POST"]),
        Route("/cds-services/{service_id}/feedback", feedback, methods=["POST"]),
    ]
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=["*"],
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["*"],
        )
    ]
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: http_error, Exception: any_error},
    )
