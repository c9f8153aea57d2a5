"""The asyncio transport, for triggers: thousands in one event loop, none of them blocking it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from typing import Any

from airflow_provider_ft.exceptions import FineTuningApiError
from airflow_provider_ft.transport import h11client, shared
from airflow_provider_ft.transport.base import CHUNK, Transport
from airflow_provider_ft.transport.body import BodyReader, Scrubber
from airflow_provider_ft.transport.settings import ClientSettings
from airflow_provider_ft.transport.timeouts import expiring
from airflow_provider_ft.vendors.wire import ApiRequest

#: Bodies larger than this are scrubbed and decoded in a worker thread, off the event loop.
_LARGE_BODY = 512 * 1024


class AsyncTransport(Transport):
    """asyncio transport; never blocks the event loop, and costs little: triggers start by the thousand in one loop.

    Its HTTP clients (``h11client.H11Client``, or ``httpx.AsyncClient`` behind a proxy; one connection each, one
    SSL context per process) belong to the account's ``SharedAccount`` in this loop, taken on the first request
    and given back by ``aclose()``; so do its reads (``GET``): one in flight is joined, and an answer at most
    ``reuse_seconds`` old is reused when several transports read it. Large bodies are scrubbed and decoded in a
    worker thread, decompressed in small steps.

    :param settings: the account and its limits
    :param keepalive_expiry: seconds an idle connection is kept (default: httpx's 5 s)
    :param reuse_seconds: how old an answer to the same read may be to be used again (0: only reads in flight)
    """

    __slots__ = ("_account", "_keepalive_expiry", "reuse_seconds")

    def __init__(
        self, settings: ClientSettings, *, keepalive_expiry: float | None = None, reuse_seconds: float = 0.0
    ) -> None:
        super().__init__(settings)
        self._request_errors = _request_errors()
        self._keepalive_expiry = keepalive_expiry
        self.reuse_seconds = reuse_seconds
        self._account: shared.SharedAccount | None = None
        _library_log_scrubber().scrubbers.append(settings.scrubber)

    async def aclose(self) -> None:
        with contextlib.suppress(ValueError):
            _library_log_scrubber().scrubbers.remove(self.settings.scrubber)
        account, self._account = self._account, None
        if account is not None:
            await shared.release(account)

    @property
    def account(self) -> shared.SharedAccount:
        """The account's shared clients and reads in the running loop (taken on first use)."""
        if self._account is None:
            self._account = shared.acquire(self.settings.account_key, self._new_client)
        return self._account

    def _new_client(self) -> shared.StreamClient:
        """h11 over asyncio streams; httpx when the environment sets a proxy for the base URL (h11 has none)."""
        base_url = self.settings.base_url
        if h11client.proxy_for(base_url) is None:
            return h11client.H11Client(
                base_url,
                self.settings.headers(),
                ssl_context=_shared_ssl_context() if base_url.startswith("https:") else None,
                keepalive_expiry=self._keepalive_expiry or h11client.DEFAULT_KEEPALIVE_SECONDS,
            )
        import httpx

        keepalive = {"keepalive_expiry": self._keepalive_expiry} if self._keepalive_expiry else {}
        return httpx.AsyncClient(
            headers=self.settings.headers(),
            timeout=httpx.Timeout(self.settings.timeout),
            follow_redirects=False,
            verify=_shared_ssl_context(),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, **keepalive),
        )

    async def send(self, request: ApiRequest, deadline: float | None = None) -> dict[str, Any]:
        """Send ``request``, again while the retry policy allows; the decoded JSON object, or one typed error.

        A ``GET`` identical to one in flight on the same account in this loop waits for that one's answer instead
        (within ``deadline``, or one attempt's time when that has passed).

        :param request: what to send
        :param deadline: ``time.monotonic()`` by which the call must be over, retries and waits included
        """
        account = self.account
        if request.method != "GET":
            account.reads.forget()
            try:
                return await self._send(request, deadline)
            finally:
                account.reads.forget()
        key = (request.path, tuple(request.params), self.settings.max_response_bytes)
        bound = None if deadline is None else max(deadline, time.monotonic() + self._attempt_seconds(request))
        try:
            return await account.reads.read(
                key, lambda: self._send(request, deadline), reader=self, max_age=self.reuse_seconds, bound=bound
            )
        except TimeoutError:
            raise self._deadline_error(request) from None

    async def _send(self, request: ApiRequest, deadline: float | None) -> dict[str, Any]:
        attempt = 1
        while True:
            try:
                return await self._attempt(request, deadline)
            except FineTuningApiError as error:
                wait = self._retry_wait(request, error, attempt, deadline)
            await asyncio.sleep(wait)
            attempt += 1

    async def _attempt(self, request: ApiRequest, deadline: float | None) -> dict[str, Any]:
        turn = self._turn(request, deadline, first=True)
        while not turn.final:
            await asyncio.sleep(turn.wait)
            turn = self._turn(request, deadline, first=False)
        if turn.wait:
            await asyncio.sleep(turn.wait)
        try:
            async with expiring(max(self._attempt_deadline(request, deadline) - time.monotonic(), 0.0)):
                status, headers, body = await self._exchange(request)
        except BaseException as error:  # TimeoutError: the attempt's deadline (the client's own timeouts are others)
            raise self._failed(request, turn.probe, error, expired=isinstance(error, TimeoutError)) from None
        if len(body) > _LARGE_BODY:
            return await asyncio.to_thread(self._answer, request, turn.probe, status, headers, body)
        return self._answer(request, turn.probe, status, headers, body)

    async def _exchange(self, request: ApiRequest) -> tuple[int, dict[str, str], bytes]:
        if request.upload is not None:
            raise NotImplementedError("uploads are sent by the blocking transport (from a worker), not in a trigger")
        async with (
            self.account.pool.client() as client,
            client.stream(
                request.method,
                self.settings.url(request),
                params=list(request.params),
                json=request.json_body,
                timeout=self.settings.timeout,
            ) as answer,
        ):
            headers, reader = self._reader(answer)
            async for chunk in answer.aiter_raw(CHUNK):
                await _feed(reader, chunk)
                if reader.full:
                    break
            return answer.status_code, headers, reader.finish()


async def _feed(reader: BodyReader, chunk: bytes) -> None:
    """Feed ``chunk`` one decompression step at a time, giving the loop a turn after each step."""
    for _ in reader.steps(chunk):
        await asyncio.sleep(0)


@functools.cache
def _request_errors() -> tuple[type[Exception], ...]:
    """What a failed request raises (one tuple per process: thousands of transports wait in one triggerer)."""
    import httpx

    return (httpx.HTTPError, h11client.HTTPClientError, *h11client.WIRE_ERRORS)


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    import httpx

    # httpx's own default (certifi, or SSL_CERT_FILE / SSL_CERT_DIR when set), built once per process.
    return httpx.create_ssl_context()


class _LibraryLogScrubber(logging.Filter):
    """Scrubs the secrets of every open asyncio transport from the records of httpx and httpcore: at DEBUG httpcore
    logs each response head whole, so a server that echoes the key in a header would have a library log it."""

    def __init__(self) -> None:
        super().__init__()
        self.scrubbers: list[Scrubber] = []
        for name in ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy"):
            logging.getLogger(name).addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        scrubbers = list(self.scrubbers)  # a copy: transports of other threads come and go
        if scrubbers:
            message = record.getMessage()
            for scrubber in scrubbers:
                message = scrubber.text(message)
            record.msg, record.args = message, None
        return True


@functools.cache
def _library_log_scrubber() -> _LibraryLogScrubber:
    return _LibraryLogScrubber()
