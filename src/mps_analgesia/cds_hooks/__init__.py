"""A CDS Hooks 2.0 service: ``order-select`` and ``order-sign`` checked by :func:`validate`.

Run it with ``mps-analgesia serve --host 127.0.0.1 --port 8080`` (or :func:`serve`), or mount the
ASGI app from :func:`create_app` in your own server.  It needs the ``serve`` extra (Starlette and
uvicorn); they are imported only when the app is built, so ``import mps_analgesia`` never loads
them.

Endpoints
---------
``GET /cds-services``
    The discovery document: the service ``mps-analgesia`` (hook ``order-sign``) and
    ``mps-analgesia-order-select`` (hook ``order-select``), with prefetch templates for the
    patient, weight, height, eGFR, QTc and the active MedicationRequests.
``POST /cds-services/mps-analgesia`` (and ``/cds-services/mps-analgesia-order-select``)
    Reads ``context.draftOrders`` (a Bundle) and ``prefetch``, builds the patient and the regimen
    (the draft orders first, then the active medication requests), validates, and answers
    ``{"cards": [...]}``.  Both hooks are accepted on both paths.
``POST /cds-services/{id}/feedback``
    Validated against CDS Hooks 2.0 and appended to the audit log (``{}``), or 400.

Every request needs a signed JWT bearer token from a trusted client (CDS Hooks 2.0 "Trusting
CDS clients"; see :mod:`._auth` and :mod:`._config`), unless the service runs with
``--insecure-no-auth`` for local testing.

One request passes once through the layers: :mod:`._request` reads it (FHIR → patient and
steps), :func:`~mps_analgesia.validate` checks it, :mod:`._cards` writes the cards;
:mod:`._app` is the HTTP adapter and :mod:`._server` runs it.

The package's modules
---------------------
``_discovery``  service ids, hooks, prefetch templates, the discovery document
``_request``    reading the request body, the draft orders and the prefetch
``_handle``     one request answered: read, validate, cards
``_cards``      the cards; ``_suggest`` a reduced dose as a suggestion
``_markdown``   summaries and escaping of untrusted text
``_indicator``  the card indicator of each severity
``_config``     the service configuration (file, environment); ``_auth`` JWT verification
``_jti``        the replay store of token ids, shared by every process answering
``_fetch``      missing prefetch fetched from the EHR (verified clients); ``_http`` bounded GETs
``_audit``      feedback validated, the JSON Lines audit log
``_errors``     OperationOutcome-shaped error answers
``_app``        the Starlette application; ``_server`` the uvicorn server and workers;
``_protocol``   uvicorn's HTTP protocols with a request-head deadline
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._app import MAX_BODY_BYTES, create_app
    from ._auth import AuthError
    from ._config import Limits, ServiceConfig, ServiceConfigError, TrustedClient, load_config
    from ._discovery import HOOKS, SELECT_SERVICE_ID, SERVICE_ID, discovery_document
    from ._errors import CdsRequestError, outcome
    from ._handle import handle
    from ._indicator import CDS_INDICATOR
    from ._jti import JtiStore, MemoryJtiStore, SqliteJtiStore
    from ._server import listening_socket, make_server, serve

__all__ = [
    "CDS_INDICATOR",
    "HOOKS",
    "MAX_BODY_BYTES",
    "SELECT_SERVICE_ID",
    "SERVICE_ID",
    "AuthError",
    "CdsRequestError",
    "JtiStore",
    "Limits",
    "MemoryJtiStore",
    "ServiceConfig",
    "ServiceConfigError",
    "SqliteJtiStore",
    "TrustedClient",
    "create_app",
    "discovery_document",
    "handle",
    "listening_socket",
    "load_config",
    "make_server",
    "outcome",
    "serve",
]

#: Where each public name lives; a module is imported on first use, so the card indicator
#: (used by ``Finding.cds_indicator``) never loads the FHIR reader or the HTTP stack.
_LAZY = {
    "CDS_INDICATOR": "._indicator",
    "HOOKS": "._discovery",
    "MAX_BODY_BYTES": "._app",
    "SELECT_SERVICE_ID": "._discovery",
    "SERVICE_ID": "._discovery",
    "AuthError": "._auth",
    "CdsRequestError": "._errors",
    "JtiStore": "._jti",
    "MemoryJtiStore": "._jti",
    "SqliteJtiStore": "._jti",
    "Limits": "._config",
    "ServiceConfig": "._config",
    "ServiceConfigError": "._config",
    "TrustedClient": "._config",
    "load_config": "._config",
    "outcome": "._errors",
    "create_app": "._app",
    "discovery_document": "._discovery",
    "handle": "._handle",
    "listening_socket": "._server",
    "make_server": "._server",
    "serve": "._server",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
