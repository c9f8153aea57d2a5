"""HTTP for the hook: the one place with timeouts, deadlines, size caps, secret scrubbing, retries and logging.

``SyncTransport`` uses a ``requests.Session`` (keep-alive); ``AsyncTransport`` (for triggers) the asyncio clients of
``_shared``. Both send a dialect's ``ApiRequest`` and hand back the decoded JSON object or one typed error:

1. each attempt has a total deadline (connect, headers and whole body): ``attempt_seconds`` of the settings, and
   never past the caller's deadline;
2. the body is streamed and decoded within ``max_response_bytes`` (error answers: their first 64 KiB);
3. the connection's secrets are scrubbed from header values and the body, before anything decodes them;
4. the dialect decodes the answer (JSON object, vendor error, retryable or not);
5. ``RetryPolicy`` decides whether and how long to wait before the next attempt; no wait ends past the deadline;
6. every attempt first takes its turn at the account's ``RateGate`` (``_ratelimit``), shared by all transports of
   the process on that account, and reports how it went: one 429 pauses the account, not one request.

``AsyncTransport`` also shares, per event loop and account, its HTTP clients and identical reads (``_shared``);
its client is ``_h11.H11Client`` (httpx when a proxy is set: see there why).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import tenacity

from airflow_provider_ft import __version__, defaults
from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningTransportError
from airflow_provider_ft.retry import RetryPolicy, parse_spent_budget
from airflow_provider_ft.transport import h11client as _h11
from airflow_provider_ft.transport import ratelimit as _ratelimit
from airflow_provider_ft.transport import shared as _shared
from airflow_provider_ft.transport.body import ACCEPTED_ENCODINGS, ERROR_BODY_LIMIT, BodyReader, Scrubber
from airflow_provider_ft.transport.multipart import MultipartBody
from airflow_provider_ft.vendors.base import Dialect
from airflow_provider_ft.vendors.wire import ApiRequest, ApiResponse

log = logging.getLogger(__name__)
USER_AGENT = f"airflow-provider-ft/{__version__}"
#: Bodies larger than this are scrubbed and decoded in a worker thread, off the event loop.
_LARGE_BODY = 512 * 1024
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ClientSettings:
    """Everything needed to talk to one vendor account, resolved from an Airflow connection.

    :param conn_id: the Airflow connection it came from (for messages)
    :param dialect: the vendor's API
    :param base_url: URL the dialect's paths are relative to
    :param api_key: the key (never in a repr, a log line or an error)
    :param timeout: seconds for the connection to open and for each read
    :param retry: how often and how patiently to try a request
    :param max_response_bytes: most bytes one answer may decode to
    :param max_pages: most pages one listing may take
    :param namespace: what keeps this deployment's job identities apart from another's on the same account
    :param max_requests_per_second: a ceiling on the requests of the whole account in this process (``None``: none)
    """

    conn_id: str
    dialect: Dialect
    base_url: str
    api_key: str = field(repr=False)
    timeout: float = defaults.TIMEOUT
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_response_bytes: int = defaults.MAX_RESPONSE_BYTES
    max_pages: int = defaults.MAX_PAGES
    namespace: str = ""
    max_requests_per_second: float | None = None

    @property
    def attempt_seconds(self) -> float:
        """The total deadline of one attempt: one ``timeout`` to connect plus one to send the whole answer."""
        return 2 * self.timeout

    @functools.cached_property
    def account_key(self) -> str:
        """Which account these settings talk to (``_ratelimit.account_key``), worked out once."""
        return _ratelimit.account_key(self)

    @functools.cached_property
    def scrubber(self) -> Scrubber:
        return Scrubber([self.api_key])

    def url(self, request: ApiRequest) -> str:
        return self.base_url + request.path

    def headers(self) -> dict[str, str]:
        return {**self.dialect.headers(self.api_key), "User-Agent": USER_AGENT, "Accept-Encoding": ACCEPTED_ENCODINGS}


class _Transport:
    """What both transports share: the retry loop's rules, the answer's checks, and the errors they raise."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.dialect = settings.dialect
        self.gate = _ratelimit.gate_for(settings)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.settings.conn_id!r}, base_url={self.settings.base_url!r})"

    def _retrying(self, request: ApiRequest, deadline: float | None) -> dict[str, Any]:
        policy = self.settings.retry

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            retry_after = error.retry_after if isinstance(error, FineTuningApiError) else None
            return policy.wait_seconds(state.attempt_number, retry_after)

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number > policy.max_retries:
                return True
            return deadline is not None and time.monotonic() + state.upcoming_sleep >= deadline

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s %s %s failed (%s); attempt %d of %d, retrying in %.2f s",
                self.dialect.display_name,
                request.method,
                request.path,
                _short_reason(error),
                state.attempt_number,
                policy.max_retries + 1,
                state.upcoming_sleep,
            )

        return {
            "stop": stop,
            "retry": tenacity.retry_if_exception(lambda error: request.retry_safe and _is_retryable(error)),
            "wait": wait,
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def _attempt_deadline(self, request: ApiRequest, deadline: float | None) -> float:
        """When this attempt must be over: its own budget, cut at the caller's deadline. A caller whose deadline has
        already passed still gets one look (a last check before reporting a timeout), within the attempt's budget."""
        now = time.monotonic()
        own = now + self._attempt_seconds(request)
        return own if deadline is None or deadline <= now else min(own, deadline)

    def _attempt_seconds(self, request: ApiRequest) -> float:
        """An attempt's budget: ``attempt_seconds``, plus an upload's size at the slowest upload rate allowed."""
        if request.upload is None:
            return self.settings.attempt_seconds
        return self.settings.attempt_seconds + request.upload.source.size / defaults.UPLOAD_BYTES_PER_SECOND

    def _reader(self, status: int, headers: Mapping[str, str]) -> BodyReader:
        is_error = not 200 <= status < 300
        limit = ERROR_BODY_LIMIT if is_error else self.settings.max_response_bytes
        return BodyReader(headers.get("content-encoding"), limit, truncate=is_error, status=status)

    def _decode(self, request: ApiRequest, status: int, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        scrubber = self.settings.scrubber
        response = ApiResponse(status, scrubber.headers(headers), scrubber.body(body))
        spent = parse_spent_budget(response.headers)
        if spent is not None:
            self.gate.spent(time.monotonic(), min(spent, self.settings.retry.retry_after_max))
        return self.dialect.decode(request, response)

    def _turn(self, request: ApiRequest, deadline: float | None, *, first: bool) -> _ratelimit.Turn:
        """The account gate's answer for this attempt; refused at once if its wait would end past ``deadline``.
        A long first wait of an attempt is logged (not each look after it)."""
        now = time.monotonic()
        turn = self.gate.take_turn(now)
        if turn.wait and deadline is not None and now + turn.wait > deadline:
            raise self._held_back(request, self.gate.paused_for(now) or turn.wait)
        if first and turn.wait > 1.0:
            log.info(
                "%s %s %s waits %.1f s: the account is rate limited (shared by every request on it)",
                self.dialect.display_name,
                request.method,
                request.path,
                turn.wait,
            )
        return turn

    def _report(self, error: BaseException | None, *, probed: bool) -> None:
        """Tell the account's gate how the attempt went."""
        if isinstance(error, FineTuningTransportError):
            self.gate.unanswered(probed=probed)
        elif isinstance(error, FineTuningApiError) and error.rate_limited:
            wait = self.settings.retry.wait_seconds(1, error.retry_after)
            self.gate.refused(time.monotonic(), wait, probed=probed)
        else:
            self.gate.passed(probed=probed)

    def _held_back(self, request: ApiRequest, wait: float) -> FineTuningApiError:
        return FineTuningApiError(
            f"{self.dialect.display_name} {request.operation} {request.method} {request.path} was not sent: the "
            f"account of connection {self.settings.conn_id!r} is rate limited for another {wait:.1f} s (a request "
            "on it was refused with a rate limit) and the call's deadline comes first",
            retryable=True,
            rate_limited=True,
            retry_after=wait,
        )

    def _transport_error(self, request: ApiRequest, reason: str, detail: str) -> FineTuningTransportError:
        return FineTuningTransportError(
            f"{self.dialect.display_name} {request.operation} {request.method} {request.path} got no usable answer "
            f"from {self.settings.base_url} (connection {self.settings.conn_id!r}): "
            f"{printable(self.settings.scrubber.text(detail), 300)}",
            reason=reason,
        )

    def _deadline_error(self, request: ApiRequest) -> FineTuningTransportError:
        seconds = self._attempt_seconds(request)
        return self._transport_error(request, "deadline", f"the answer was not complete within {seconds:g} s")

    def _refused(self, request: ApiRequest, error: FineTuningApiError) -> FineTuningApiError:
        """An error of the answer itself (too large, badly encoded), named after the request."""
        return type(error)(
            f"{self.dialect.display_name} {request.operation} {request.method} {request.path}: {error.message}",
            http_status=error.http_status,
        )


class SyncTransport(_Transport):
    """Blocking transport over one keep-alive ``requests.Session``."""

    def __init__(self, settings: ClientSettings) -> None:
        import requests  # on first use: DAG files that only build operators never pay for it
        import urllib3

        from airflow_provider_ft.transport.deadline import mount_deadlines

        super().__init__(settings)
        # A body read from the raw stream raises urllib3's errors, not requests' wrappers of them.
        self._request_errors = (requests.RequestException, urllib3.exceptions.HTTPError)
        self.session: requests.Session = requests.Session()
        self.session.headers.update(settings.headers())
        self.session.auth = _bearer_only  # a ~/.netrc entry for the host must not replace the API key
        mount_deadlines(self.session)

    def close(self) -> None:
        self.session.close()

    def send(self, request: ApiRequest, deadline: float | None = None) -> dict[str, Any]:
        """Send ``request`` with retries; the decoded JSON object, or one typed error.

        :param request: what to send
        :param deadline: ``time.monotonic()`` by which the call must be over, retries and waits included
        """
        try:
            return self._send_once(request, deadline)
        except FineTuningApiError as error:
            failed = [error]  # the retry loop is built only for a request that failed once (most never do)

        def attempt() -> dict[str, Any]:
            if failed:
                raise failed.pop()  # the first attempt's failure, handed to the retry loop as its attempt 1
            return self._send_once(request, deadline)

        retrying = tenacity.Retrying(**self._retrying(request, deadline))
        try:
            return retrying(attempt)
        except FineTuningApiError as error:
            raise error.after_attempts(retrying.statistics.get("attempt_number", 1)) from error.__cause__

    def _send_once(self, request: ApiRequest, deadline: float | None) -> dict[str, Any]:
        first = True
        while True:
            turn, first = self._turn(request, deadline, first=first), False
            if turn.wait:
                time.sleep(turn.wait)
            if turn.final:
                break
        try:
            answer = self._attempt(request, deadline)
        except FineTuningApiError as error:
            self._report(error, probed=turn.probe)
            raise
        except BaseException:  # interrupted (a task timeout, a kill): the probe's answer will not come
            self.gate.unanswered(probed=turn.probe)
            raise
        self._report(None, probed=turn.probe)
        return answer

    def _attempt(self, request: ApiRequest, deadline: float | None) -> dict[str, Any]:
        from airflow_provider_ft.transport.deadline import request_deadline

        with request_deadline(self._attempt_deadline(request, deadline)) as attempt:
            try:
                status, headers, body = self._exchange(request, attempt.remaining)
            except self._request_errors as error:
                if attempt.expired:
                    raise self._deadline_error(request) from None
                raise self._transport_error(request, type(error).__name__, f"{type(error).__name__}: {error}") from None
            except FineTuningApiError as error:
                raise self._refused(request, error) from None
            if attempt.expired:
                # The socket was shut down mid-answer; what was read so far can look complete (a head cut short).
                raise self._deadline_error(request)
        return self._decode(request, status, headers, body)

    def _exchange(self, request: ApiRequest, remaining: Callable[[], float]) -> tuple[int, dict[str, str], bytes]:
        timeout = max(min(self.settings.timeout, remaining()), 0.001)
        body, headers = _upload_body(request)
        with self.session.request(
            request.method,
            self.settings.url(request),
            params=list(request.params),
            json=request.json_body,
            data=body,
            headers=headers,
            timeout=(timeout, timeout),
            allow_redirects=False,
            stream=True,
        ) as answer:
            headers = {name.lower(): value for name, value in answer.headers.items()}
            reader = self._reader(answer.status_code, headers)
            for chunk in answer.raw.stream(_CHUNK, decode_content=False):
                reader.feed(chunk)
                if reader.full:
                    break
            return answer.status_code, headers, reader.finish()


class _LibraryLogScrubber(logging.Filter):
    """Scrubs the secrets of every open asyncio transport from the log records of httpx and httpcore.

    At DEBUG httpcore logs each response head whole, header values included: a server that echoes the key in a
    header would otherwise have it written by a library. Below DEBUG no record reaches the filter.
    """

    LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy")

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._scrubbers: list[Scrubber] = []
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)

    def add(self, scrubber: Scrubber) -> None:
        with self._lock:
            self._scrubbers.append(scrubber)

    def remove(self, scrubber: Scrubber) -> None:
        with self._lock:
            if scrubber in self._scrubbers:
                self._scrubbers.remove(scrubber)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            scrubbers = list(self._scrubbers)
        if scrubbers:
            message = record.getMessage()
            for scrubber in scrubbers:
                message = scrubber.text(message)
            record.msg, record.args = message, None
        return True


@functools.cache
def _library_log_scrubber() -> _LibraryLogScrubber:
    return _LibraryLogScrubber()


class AsyncTransport(_Transport):
    """asyncio transport; never blocks the event loop.

    Triggers start by the thousand in one loop, so a transport is cheap: the HTTP clients (``_h11.H11Client``, or
    ``httpx.AsyncClient`` behind a proxy, one connection each, one process-wide SSL context) belong to the
    account's ``SharedAccount`` in this loop, taken on the first request and given back by ``aclose()``. Reads
    (``GET``) are coalesced there: one in flight is joined, and an answer at most ``reuse_seconds`` old is taken as
    it is when several transports read it. Large bodies are scrubbed and decoded in a worker thread;
    decompression goes in small steps.

    :param settings: the account and its limits
    :param keepalive_expiry: seconds an idle connection is kept (default: httpx's 5 s)
    :param reuse_seconds: how old an answer to the same read may be to be used again (0: only reads in flight)
    """

    def __init__(
        self, settings: ClientSettings, *, keepalive_expiry: float | None = None, reuse_seconds: float = 0.0
    ) -> None:
        import httpx

        super().__init__(settings)
        self._request_errors: tuple[type[Exception], ...] = (httpx.HTTPError, _h11.HTTPClientError, *_h11.WIRE_ERRORS)
        self._timeout = httpx.Timeout(settings.timeout)
        self._keepalive_expiry = keepalive_expiry
        self.reuse_seconds = reuse_seconds
        self._account: _shared.SharedAccount | None = None
        _library_log_scrubber().add(settings.scrubber)

    async def aclose(self) -> None:
        _library_log_scrubber().remove(self.settings.scrubber)
        account, self._account = self._account, None
        if account is not None:
            await _shared.release(account)

    @property
    def account(self) -> _shared.SharedAccount:
        """The account's shared clients and reads in the running loop (taken on first use)."""
        if self._account is None:
            self._account = _shared.acquire(self.settings.account_key, self._new_client)
        return self._account

    def _new_client(self) -> _shared.StreamClient:
        """h11 over asyncio streams; httpx when the environment sets a proxy for the base URL (h11 has none)."""
        base_url = self.settings.base_url
        if _h11.proxy_for(base_url) is None:
            return _h11.H11Client(
                base_url,
                self.settings.headers(),
                ssl_context=_shared_ssl_context() if base_url.startswith("https:") else None,
                keepalive_expiry=self._keepalive_expiry or _h11.DEFAULT_KEEPALIVE_SECONDS,
            )
        import httpx

        keepalive = {"keepalive_expiry": self._keepalive_expiry} if self._keepalive_expiry else {}
        return httpx.AsyncClient(
            headers=self.settings.headers(),
            timeout=self._timeout,
            follow_redirects=False,
            verify=_shared_ssl_context(),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, **keepalive),
        )

    async def send(self, request: ApiRequest, deadline: float | None = None) -> dict[str, Any]:
        """Send ``request`` with retries; the decoded JSON object, or one typed error.

        A ``GET`` identical to one in flight on the same account in this loop waits for that one's answer instead
        (within ``deadline``, or one attempt's time when that has passed).

        :param request: what to send
        :param deadline: ``time.monotonic()`` by which the call must be over, retries and waits included
        """
        account = self.account
        if request.method != "GET":
            account.reads.forget()
            try:
                return await self._send_retrying(request, deadline)
            finally:
                account.reads.forget()
        key = (request.path, tuple(request.params), self.settings.max_response_bytes)
        bound = None if deadline is None else max(deadline, time.monotonic() + self._attempt_seconds(request))
        try:
            return await account.reads.read(
                key,
                lambda: self._send_retrying(request, deadline),
                reader=self,
                max_age=self.reuse_seconds,
                bound=bound,
            )
        except TimeoutError:
            raise self._deadline_error(request) from None

    async def _send_retrying(self, request: ApiRequest, deadline: float | None) -> dict[str, Any]:
        try:
            return await self._send_once(request, deadline)
        except FineTuningApiError as error:
            failed = [error]  # as in SyncTransport.send: the retry loop only for a request that failed once

        async def attempt() -> dict[str, Any]:
            if failed:
                raise failed.pop()
            return await self._send_once(request, deadline)

        retrying = tenacity.AsyncRetrying(**self._retrying(request, deadline))
        try:
            return await retrying(attempt)
        except FineTuningApiError as error:
            raise error.after_attempts(retrying.statistics.get("attempt_number", 1)) from error.__cause__

    async def _send_once(self, request: ApiRequest, deadline: float | None) -> dict[str, Any]:
        first = True
        while True:
            turn, first = self._turn(request, deadline, first=first), False
            if turn.wait:
                await asyncio.sleep(turn.wait)
            if turn.final:
                break
        try:
            answer = await self._attempt(request, deadline)
        except FineTuningApiError as error:
            self._report(error, probed=turn.probe)
            raise
        except BaseException:  # cancelled: the probe's answer will not come
            self.gate.unanswered(probed=turn.probe)
            raise
        self._report(None, probed=turn.probe)
        return answer

    async def _attempt(self, request: ApiRequest, deadline: float | None) -> dict[str, Any]:
        budget = max(self._attempt_deadline(request, deadline) - time.monotonic(), 0.0)
        try:
            async with asyncio.timeout(budget):
                status, headers, body = await self._exchange(request)
        except TimeoutError:
            raise self._deadline_error(request) from None
        except self._request_errors as error:
            raise self._transport_error(request, type(error).__name__, f"{type(error).__name__}: {error}") from None
        except FineTuningApiError as error:
            raise self._refused(request, error) from None
        if len(body) > _LARGE_BODY:
            return await asyncio.to_thread(self._decode, request, status, headers, body)
        return self._decode(request, status, headers, body)

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
            headers = {name.lower(): value for name, value in answer.headers.items()}
            reader = self._reader(answer.status_code, headers)
            async for chunk in answer.aiter_raw(_CHUNK):
                await _feed(reader, chunk)
                if reader.full:
                    break
            return answer.status_code, headers, reader.finish()


def _upload_body(request: ApiRequest) -> tuple[MultipartBody | None, dict[str, str] | None]:
    """The streamed multipart body of an upload and its ``Content-Type``, or nothing for other requests."""
    if request.upload is None:
        return None, None
    body = MultipartBody(request.upload)
    return body, {"Content-Type": body.content_type}


def _bearer_only(prepared: Any) -> Any:
    """``requests`` auth that leaves the request as built (the key is already in the session's headers)."""
    return prepared


async def _feed(reader: BodyReader, chunk: bytes) -> None:
    """Feed ``chunk`` one decompression step at a time, giving the loop a turn after each step."""
    for _ in reader.steps(chunk):
        await asyncio.sleep(0)


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    import httpx

    # httpx's own default (certifi, or SSL_CERT_FILE / SSL_CERT_DIR when set), built once per process.
    return httpx.create_ssl_context()


def _is_retryable(error: BaseException) -> bool:
    return isinstance(error, FineTuningApiError) and error.retryable


def _short_reason(error: BaseException | None) -> str:
    if isinstance(error, FineTuningTransportError):
        return error.reason
    if isinstance(error, FineTuningApiError):
        return f"HTTP {error.http_status}" if error.http_status else type(error).__name__
    return type(error).__name__ if error else "unknown"
