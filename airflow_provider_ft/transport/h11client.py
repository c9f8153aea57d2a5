"""A small HTTP/1.1 client for the triggers: h11 for the protocol, asyncio streams for the I/O, one connection.

Why not httpx (it still serves a proxied account): a triggerer polls thousands of jobs in one event loop, and
what a poll costs that loop every other trigger waits for. httpx spends ~0.6 ms of CPU per request and allocates
enough to bring CPython's loop-stalling full collections sooner; h11 over asyncio streams costs a fraction of
both (``make bench``, benchmarks 4 and 6). No redirect, cookie or proxy (``proxy_for`` says when httpx must serve);
the request's deadline is its caller's, ``timeout`` bounds the connect and each read, as httpx's does.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import h11

from airflow_provider_ft.transport.timeouts import expiring

#: Seconds an idle connection is kept when the caller does not say (httpx's default).
DEFAULT_KEEPALIVE_SECONDS = 5.0
#: Bytes read from the socket at a time.
READ_SIZE = 64 * 1024
#: The largest response head accepted (status line and headers).
MAX_HEAD_BYTES = 64 * 1024
#: Characters left as they are in a request path (RFC 3986 pchar and "/"), the rest percent-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
#: Errors of the wire: the connection, TLS, or an answer that is not HTTP.
WIRE_ERRORS: tuple[type[Exception], ...] = (OSError, ssl.SSLError, h11.ProtocolError, asyncio.IncompleteReadError)


class HTTPClientError(Exception):
    """The server did not answer with a complete HTTP/1.1 response."""


class ConnectTimeout(HTTPClientError):
    """The connection (TCP, then TLS) was not open within the timeout."""


class ReadTimeout(HTTPClientError):
    """Nothing more of the answer arrived within the timeout."""


def proxy_for(url: str) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) sets for ``url``."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    return None if not proxy or urllib.request.proxy_bypass(parts.hostname or "") else proxy


class Answer:
    """A response head, and its body as it arrives."""

    def __init__(self, client: H11Client, status_code: int, headers: dict[str, str]) -> None:
        self._client, self.status_code, self.headers = client, status_code, headers

    async def aiter_raw(self, chunk_size: int = READ_SIZE) -> AsyncIterator[bytes]:
        """The body as sent (still compressed, if it is), in pieces of at most about ``chunk_size`` bytes."""
        async for data in self._client._body():
            for start in range(0, len(data), chunk_size):
                yield data[start : start + chunk_size]


class H11Client:
    """One keep-alive HTTP/1.1 connection to the origin of ``base_url``, one request at a time.

    :param base_url: any URL of the origin (scheme, host and port are taken from it)
    :param headers: sent with every request (``Host`` is added)
    :param ssl_context: for ``https`` URLs
    :param keepalive_expiry: seconds an idle connection is kept; older ones are closed before the next request
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float = DEFAULT_KEEPALIVE_SECONDS,
    ) -> None:
        parts = urlsplit(base_url)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._tls else 80)
        self._ssl_context = ssl_context if self._tls else None
        self._keepalive_expiry = keepalive_expiry
        host = f"[{self._host}]" if ":" in self._host else self._host
        default_port = self._port == (443 if self._tls else 80)
        self._headers = [("Host", host if default_port else f"{host}:{self._port}"), *headers.items()]
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._protocol = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._idle_since = 0.0
        self._timeout: float | None = None

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        params: Iterable[tuple[str, str]] = (),
        json: Any = None,
        timeout: float | None = None,
    ) -> AsyncIterator[Answer]:
        """Send one request and hand back its answer; the connection is kept if the answer was read to its end.

        A ``GET`` on a kept connection that the server has closed meanwhile is sent once more, on a new one.

        :param timeout: seconds to connect, and to wait for each piece of the answer (``None``: no limit)
        """
        self._timeout = timeout
        reused = self._writer is not None and not self._stale()
        try:
            answer = await self._exchange(method, url, params, json)
        except WIRE_ERRORS:
            self._close()
            if not (reused and method == "GET"):
                raise
            answer = await self._exchange(method, url, params, json)
        try:
            yield answer
        finally:
            self._finish()

    async def aclose(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with suppress(*WIRE_ERRORS):
                await writer.wait_closed()

    async def _exchange(self, method: str, url: str, params: Iterable[tuple[str, str]], body: Any) -> Answer:
        reader, writer = await self._connection()
        headers = list(self._headers)
        payload = b"" if body is None else json.dumps(body).encode()
        if payload:
            headers += [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        elif method in ("POST", "PUT", "PATCH"):
            headers.append(("Content-Length", "0"))
        protocol = self._protocol
        writer.write(protocol.send(h11.Request(method=method, target=_target(url, params), headers=headers)) or b"")
        if payload:
            writer.write(protocol.send(h11.Data(data=payload)) or b"")
        writer.write(protocol.send(h11.EndOfMessage()) or b"")
        await writer.drain()
        while True:
            event = await self._next_event(reader)
            if isinstance(event, h11.Response):
                headers_read: dict[str, str] = {}
                for name, value in event.headers:
                    key, text = name.decode("latin-1").lower(), value.decode("latin-1")
                    headers_read[key] = f"{headers_read[key]}, {text}" if key in headers_read else text
                return Answer(self, event.status_code, headers_read)
            if not isinstance(event, h11.InformationalResponse):
                raise HTTPClientError(f"the server sent {type(event).__name__} instead of a response")

    async def _body(self) -> AsyncIterator[bytes]:
        assert self._reader is not None
        while not isinstance(event := await self._next_event(self._reader), h11.EndOfMessage):
            if not isinstance(event, h11.Data):
                raise HTTPClientError(f"the server sent {type(event).__name__} inside a response body")
            yield bytes(event.data)

    async def _next_event(self, reader: asyncio.StreamReader) -> Any:
        protocol = self._protocol
        while (event := protocol.next_event()) is h11.NEED_DATA:
            try:
                async with expiring(self._timeout):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                raise ReadTimeout(f"no data for {self._timeout:g} s") from None
            protocol.receive_data(data)
        if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            raise HTTPClientError("the server closed the connection before the answer was complete")
        return event

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._stale():
            self._close()
        if self._reader is None or self._writer is None:
            try:
                async with expiring(self._timeout):
                    self._reader, self._writer = await asyncio.open_connection(
                        self._host,
                        self._port,
                        ssl=self._ssl_context,
                        server_hostname=self._host if self._tls else None,
                        limit=READ_SIZE,
                    )
            except TimeoutError:
                raise ConnectTimeout(f"not connected to {self._host}:{self._port} within {self._timeout:g} s") from None
            self._protocol = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        return self._reader, self._writer

    def _stale(self) -> bool:
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            return False
        idle = time.monotonic() - self._idle_since
        return reader.at_eof() or writer.is_closing() or idle > self._keepalive_expiry

    def _finish(self) -> None:
        """After an answer: ready the connection for the next request if both sides are done, else close it."""
        if self._protocol.our_state is h11.DONE and self._protocol.their_state is h11.DONE:
            self._protocol.start_next_cycle()
            self._idle_since = time.monotonic()
        else:
            self._close()

    def _close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()


def _target(url: str, params: Iterable[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, (parts.query, urlencode(list(params)))))
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    return f"{path}?{query}" if query else path
