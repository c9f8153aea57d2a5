"""One request/response exchange at the raw ASGI level, with the means to misbehave on purpose."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow_provider_ft.emulator.recording import LogEntry
from airflow_provider_ft.emulator.state import Vendor
from airflow_provider_ft.emulator.transport import Connections

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_TYPE = b"application/json"


class Exchange:
    """Wraps ``send``/``receive`` of one request: records the answered status and adds ``x-request-id``."""

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        body: bytes,
        vendor: Vendor | None,
        request_id: str,
        entry: LogEntry,
        connections: Connections,
    ) -> None:
        self.scope = scope
        self.vendor = vendor
        self.request_id = request_id
        self.entry = entry
        self._receive = receive
        self._send = send
        self._body = body
        self._body_sent = False
        self._connections = connections
        self._swallow = False
        self.started = False

    async def receive(self) -> Message:
        """Replays the already-read request body, then delegates (so disconnects still arrive)."""
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self._body, "more_body": False}
        return await self._receive()

    async def send(self, message: Message) -> None:
        """Forward ``message``, noting the status and adding ``x-request-id`` to the response head."""
        if self._swallow:
            return
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(name.lower() == b"x-request-id" for name, _ in headers):
                headers.append((b"x-request-id", self.request_id.encode()))
            message = {**message, "headers": headers}
            self.entry.status = int(message["status"])
            self.started = True
        await self._send(message)

    def swallow_responses(self) -> None:
        """From now on discard whatever the application sends (the work is done, the answer is lost)."""
        self._swallow = True

    async def respond(
        self, status: int, body: bytes, content_type: bytes = JSON_TYPE, headers: dict[str, str] | None = None
    ) -> None:
        """Send a complete response with a correct ``content-length``."""
        raw = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        await self.send({"type": "http.response.start", "status": status, "headers": raw})
        await self.send({"type": "http.response.body", "body": body, "more_body": False})

    async def respond_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        """Send ``data`` as a JSON response."""
        await self.respond(status, encode_json(data), JSON_TYPE, headers)

    async def respond_partially(self, status: int, body: bytes, sent: int) -> None:
        """Announce ``len(body)`` bytes, send only the first ``sent``, then close the connection."""
        head = [(b"content-type", JSON_TYPE), (b"content-length", str(len(body)).encode())]
        await self.send({"type": "http.response.start", "status": status, "headers": head})
        await self.send({"type": "http.response.body", "body": body[:sent], "more_body": True})
        await self.drop(flush=True)

    async def drop(self, *, flush: bool = False) -> None:
        """Close the TCP connection: abort it (nothing more is sent) or, with ``flush``, after queued bytes."""
        if not self.started:
            self.entry.status = 0
        transport = self._connections.transport_for(self.scope.get("client"))
        if transport is None:  # the client already went away
            return
        if flush:
            transport.close()
        else:
            transport.abort()
        await self._wait_disconnect()

    async def hold(self, timeout: float) -> None:
        """Keep the request open until the client leaves, the server shuts down, or ``timeout`` passes."""
        waiters = [
            asyncio.ensure_future(self._wait_disconnect(timeout)),
            asyncio.ensure_future(self.wait_shutdown(timeout)),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def wait_shutdown(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking early (``True``) when the server shuts down."""
        return await self._connections.wait_shutdown(timeout)

    async def _wait_disconnect(self, timeout: float = 2.0) -> None:
        # Also lets uvicorn notice a transport we closed, so it neither answers 500 nor logs an error.
        try:
            async with asyncio.timeout(timeout):
                while (await self._receive())["type"] != "http.disconnect":
                    pass
        except TimeoutError:
            pass


def encode_json(data: Any) -> bytes:
    """Compact UTF-8 JSON, as the vendors send it."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
