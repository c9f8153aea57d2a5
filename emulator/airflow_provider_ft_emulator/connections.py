"""The socket registry below ASGI: counts accepted TCP connections and lets faults reach the socket.

ASGI gives an application no way to close a connection without answering. The emulator therefore runs
uvicorn with a subclass of its HTTP protocol that registers each connection's transport under the peer
address, which is also what ASGI puts in ``scope["client"]``; a fault can then look the transport up and
abort it (no response bytes) or close it after a partial response.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, cast


class SocketRegistry:
    """Transports by peer address, the accepted-connection count, and the server's shutdown signal."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._transports: dict[tuple[str, int], asyncio.Transport] = {}
        self._opened = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None

    @property
    def opened(self) -> int:
        """TCP connections accepted so far."""
        with self._lock:
            return self._opened

    def bind_loop(self) -> None:
        """Attach to the running event loop (called from the server thread before serving)."""
        self._loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()

    def connection_made(self, transport: asyncio.Transport) -> tuple[str, int] | None:
        """Count and register a new connection; returns the peer key it was registered under."""
        peer = _peer(transport)
        with self._lock:
            self._opened += 1
            if peer is not None:
                self._transports[peer] = transport
        return peer

    def connection_lost(self, peer: tuple[str, int] | None, transport: asyncio.Transport) -> None:
        """Forget a closed connection."""
        with self._lock:
            if peer is not None and self._transports.get(peer) is transport:
                del self._transports[peer]

    def transport_for(self, client: tuple[str, int] | None) -> asyncio.Transport | None:
        """The transport serving the ASGI ``scope["client"]`` peer, if known."""
        if client is None:
            return None
        with self._lock:
            return self._transports.get((client[0], client[1]))

    async def wait_shutdown(self, timeout: float) -> bool:
        """Sleep ``timeout`` seconds or until the server shuts down; ``True`` if shutdown came first."""
        if self._shutdown is None:
            await asyncio.sleep(timeout)
            return False
        try:
            await asyncio.wait_for(self._shutdown.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def shutting_down(self) -> bool:
        """Whether the server has been told to stop (read from the server's loop)."""
        return self._shutdown is not None and self._shutdown.is_set()

    def signal_shutdown(self) -> None:
        """Wake every waiter of :meth:`wait_shutdown` (thread-safe)."""
        loop, event = self._loop, self._shutdown
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)


def _peer(transport: asyncio.BaseTransport) -> tuple[str, int] | None:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), int(peer[1])
    return None


def _base_protocol() -> type[asyncio.Protocol]:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools is optional for uvicorn
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol
    return HttpToolsProtocol


def protocol_class(registry: SocketRegistry) -> type[asyncio.Protocol]:
    """A uvicorn HTTP protocol class that reports its connections to ``registry``."""
    base: Any = _base_protocol()

    def connection_made(self: Any, transport: asyncio.Transport) -> None:
        self.emulator_peer = registry.connection_made(transport)
        base.connection_made(self, transport)

    def connection_lost(self: Any, exc: Exception | None) -> None:
        registry.connection_lost(getattr(self, "emulator_peer", None), self.transport)
        base.connection_lost(self, exc)

    namespace = {"connection_made": connection_made, "connection_lost": connection_lost}
    return cast("type[asyncio.Protocol]", type("EmulatorHTTPProtocol", (base,), namespace))
