"""uvicorn's HTTP protocols with a deadline for each request's head (slow clients dropped).

uvicorn closes a connection idle after a response (``timeout_keep_alive``), but not one that
opens and then sends nothing, or sends a request head a byte at a time: such a client holds
its connection for ever.  Here a timer is armed when the connection opens and after every
response; if no complete request head has arrived when it fires, the connection is closed.
The body has its own deadline in the application (408).
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any, Final

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["DEFAULT_HEADER_TIMEOUT_S", "H11Deadline", "protocol_path"]

#: Seconds for a request head to arrive when the uvicorn config does not say.
DEFAULT_HEADER_TIMEOUT_S: Final = 10.0


class _Deadline:
    """Closes the connection when no request head is complete within the header timeout."""

    config: Any
    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    _deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        timeout = getattr(self.config, "mps_header_timeout_s", DEFAULT_HEADER_TIMEOUT_S)
        self._deadline = self.loop.call_later(timeout, self._expire, self.cycle)

    def _expire(self, cycle_at_arm: Any) -> None:
        self._deadline = None
        if self.cycle is cycle_at_arm and not self.transport.is_closing():
            self.transport.close()  # no new request head since the timer was armed

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)  # type: ignore[misc]


class H11Deadline(_Deadline, H11Protocol):
    """uvicorn's h11 protocol with the request-head deadline."""


_HAS_HTTPTOOLS: Final = importlib.util.find_spec("httptools") is not None

if _HAS_HTTPTOOLS:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HttpToolsDeadline(_Deadline, HttpToolsProtocol):
        """uvicorn's httptools protocol (faster) with the request-head deadline."""


def protocol_path() -> str:
    """The import path of the fastest protocol available, for ``uvicorn.Config(http=...)``."""
    if _HAS_HTTPTOOLS:
        return f"{__name__}:HttpToolsDeadline"
    return f"{__name__}:H11Deadline"  # pragma: no cover - httptools is optional
