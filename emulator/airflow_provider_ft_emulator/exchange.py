"""One request/response exchange at the raw ASGI level, with the means to misbehave on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_ft_emulator.connections import SocketRegistry
from airflow_provider_ft_emulator.recording import LogEntry
from airflow_provider_ft_emulator.state import EmulatorState
from airflow_provider_ft_emulator.vocabulary import Vendor

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_TYPE = b"application/json"
#: How long to wait for uvicorn to notice a connection this module closed.
DISCONNECT_WAIT = 2.0


@dataclass
class Captured:
    """The answer the application gave, kept instead of sent."""

    status: int = 0
    headers: Headers = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)

    def headers_without(self, *names: bytes) -> Headers:
        """The headers minus those named (lowercase names)."""
        return [(name, value) for name, value in self.headers if name.lower() not in names]


class Exchange:
    """Wraps ``send``/``receive`` of one request: records the answered status and adds ``x-request-id``.

    :param scope: the ASGI scope
    :param receive: the server's ``receive``
    :param send: the server's ``send``
    :param body: the request body, or the start of it, already read
    :param more_body: whether the rest of the body is still to be received (then it streams through ``receive``)
    :param vendor: whose mount the path is under (``None``: neither)
    :param request_id: the id sent back as ``x-request-id``
    :param presented_key: the bearer token the client sent ("" when none)
    :param entry: this request's entry in the request log
    :param state: the emulator's shared state
    :param sockets: the registry to reach this request's TCP connection through
    """

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        body: bytes,
        more_body: bool = False,
        vendor: Vendor | None,
        request_id: str,
        presented_key: str,
        entry: LogEntry,
        state: EmulatorState,
        sockets: SocketRegistry,
    ) -> None:
        self.scope = scope
        self.vendor = vendor
        self.request_id = request_id
        self.presented_key = presented_key
        self.entry = entry
        self.state = state
        self._receive = receive
        self._send = send
        self._body = body
        self._more_body = more_body
        self._body_sent = False
        self._sockets = sockets
        self._captured: Captured | None = None
        self._disconnect: asyncio.Future[None] | None = None
        self.started = False

    # -- the ASGI side the application sees --------------------------------------------------------------

    async def receive(self) -> Message:
        """Replays the already-read start of the body, then delegates: the rest of the body (counted in the
        request log) and, after it, the disconnect."""
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self._body, "more_body": self._more_body}
        message = await self._receive()
        if message["type"] == "http.request":
            self.entry.body_size += len(message.get("body", b""))
        return message

    async def send(self, message: Message) -> None:
        """Forward ``message``, noting the status and adding ``x-request-id`` to the response head."""
        if self._captured is not None:
            _keep(self._captured, message)
            return
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(name.lower() == b"x-request-id" for name, _ in headers):
                headers.append((b"x-request-id", self.request_id.encode()))
            message = {**message, "headers": headers}
            self.entry.answer_started(int(message["status"]), headers)
            self.started = True
        elif message["type"] == "http.response.body":
            self.entry.answer_sent(message.get("body", b""), last=not message.get("more_body", False))
        await self._send(message)

    def mark_started(self, status: int) -> None:
        """Record that a response head with ``status`` went out by other means than ``send`` (straight to the
        socket)."""
        self.entry.status = status
        self.started = True

    async def capture(self, handle: Callable[[Exchange], Awaitable[None]]) -> Captured:
        """Serve the request normally (the work is done) but keep the answer instead of sending it.

        :param handle: serves the request through the application
        """
        self._captured = captured = Captured()
        try:
            await handle(self)
        finally:
            self._captured = None
        return captured

    # -- answering -----------------------------------------------------------------------------------------

    async def respond(
        self, status: int, body: bytes, content_type: bytes = JSON_TYPE, headers: dict[str, str] | None = None
    ) -> None:
        """Send a complete response with a correct ``content-length``."""
        raw = [(b"content-type", content_type), *encode_headers(headers)]
        await self.respond_raw(status, raw, body)

    async def respond_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        """Send ``data`` as a JSON response."""
        await self.respond(status, encode_json(data), JSON_TYPE, headers)

    async def respond_raw(self, status: int, headers: Headers, body: bytes) -> None:
        """Send ``headers`` as given (plus a ``content-length`` if they have none) and ``body``."""
        if not any(name.lower() == b"content-length" for name, _ in headers):
            headers = [(b"content-length", str(len(body)).encode()), *headers]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body, "more_body": False})

    async def respond_partially(self, status: int, body: bytes, sent: int) -> None:
        """Announce ``len(body)`` bytes, send only the first ``sent``, then close the connection."""
        head = [(b"content-type", JSON_TYPE), (b"content-length", str(len(body)).encode())]
        await self.send({"type": "http.response.start", "status": status, "headers": head})
        await self.send({"type": "http.response.body", "body": body[:sent], "more_body": True})
        await self.drop(flush=True)

    async def stream(self, status: int, headers: Headers, chunks: Iterable[bytes]) -> bool:
        """Send ``chunks`` as a chunked body; stop early (and close) if the client leaves or the server stops.

        Returns whether the whole body was sent. uvicorn's flow control holds each send while the client is not
        reading, so nothing piles up in memory.
        """
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        self._watch_disconnect()
        for chunk in chunks:
            if self.client_gone or self.shutting_down:
                await self.drop()
                return False
            await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0)
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        return True

    def write_to_socket(self, data: bytes) -> bool:
        """Write bytes straight to the TCP connection, below HTTP; ``False`` if it is gone."""
        transport = self._sockets.transport_for(self.scope.get("client"))
        if transport is None or transport.is_closing():
            return False
        transport.write(data)
        return True

    # -- misbehaving ---------------------------------------------------------------------------------------

    async def drop(self, *, flush: bool = False) -> None:
        """Close the TCP connection: abort it (nothing more is sent) or, with ``flush``, after queued bytes."""
        if not self.started:
            self.entry.status = 0
        transport = self._sockets.transport_for(self.scope.get("client"))
        if transport is None:  # the client already went away
            return
        if flush:
            transport.close()
        else:
            transport.abort()
        await self._wait_disconnect()

    async def hold(self, timeout: float) -> None:
        """Keep the request open until the client leaves, the server shuts down, or ``timeout`` passes."""
        await self.linger(timeout)

    async def linger(self, seconds: float) -> bool:
        """Wait ``seconds``; ``False`` if the client left or the server began to stop before that."""
        gone = self._watch_disconnect()
        stopping = asyncio.ensure_future(self._sockets.wait_shutdown(seconds))
        waiters: list[asyncio.Future[Any]] = [gone, stopping]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        return not (gone.done() or self.shutting_down)

    async def wait_shutdown(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking early (``True``) when the server shuts down."""
        return await self._sockets.wait_shutdown(timeout)

    @property
    def client_gone(self) -> bool:
        """Whether the client has disconnected (known once something waited for it)."""
        return self._disconnect is not None and self._disconnect.done()

    @property
    def shutting_down(self) -> bool:
        """Whether the server is stopping."""
        return self._sockets.shutting_down

    def close(self) -> None:
        """Stop watching for the client's disconnect (called when the request is over)."""
        if self._disconnect is not None and not self._disconnect.done():
            self._disconnect.cancel()

    def _watch_disconnect(self) -> asyncio.Future[None]:
        # One reader of the server's receive channel, however many waiters.
        if self._disconnect is None:
            self._disconnect = asyncio.ensure_future(self._until_disconnect())
        return self._disconnect

    async def _until_disconnect(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass

    async def _wait_disconnect(self, timeout: float = DISCONNECT_WAIT) -> None:
        # Also lets uvicorn notice a transport we closed, so it neither answers 500 nor logs an error.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._watch_disconnect()), timeout)


def _keep(captured: Captured, message: Message) -> None:
    if message["type"] == "http.response.start":
        captured.status = int(message["status"])
        captured.headers = [(bytes(name).lower(), bytes(value)) for name, value in message.get("headers", [])]
    elif message["type"] == "http.response.body":
        captured.body += message.get("body", b"")


def encode_headers(headers: dict[str, str] | None) -> Headers:
    """Header pairs for ASGI, names lowercased, both latin-1 encoded."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]


def encode_json(data: Any) -> bytes:
    """Compact UTF-8 JSON, as the vendors send it."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
