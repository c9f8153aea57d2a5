"""HTTP for the hook: the one place with timeouts, deadlines, size caps, secret scrubbing, retries and logging.

``SyncTransport`` uses a ``requests.Session`` (keep-alive); ``AsyncTransport`` an ``httpx.AsyncClient`` for
triggers. Both send a dialect's ``ApiRequest`` and hand back the decoded JSON object or one typed error:

1. each attempt has a total deadline (connect, headers and whole body): ``attempt_seconds`` of the settings, and
   never past the caller's deadline;
2. the body is streamed and decoded within ``max_response_bytes`` (error answers: their first 64 KiB);
3. the connection's secrets are scrubbed from header values and the body, before anything decodes them;
4. the dialect decodes the answer (JSON object, vendor error, retryable or not);
5. ``RetryPolicy`` decides whether and how long to wait before the next attempt; no wait ends past the deadline.
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
from airflow_provider_ft.hooks._body import ACCEPTED_ENCODINGS, ERROR_BODY_LIMIT, BodyReader, Scrubber
from airflow_provider_ft.hooks._multipart import MultipartBody
from airflow_provider_ft.retry import RetryPolicy
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

    @property
    def attempt_seconds(self) -> float:
        """The total deadline of one attempt: one ``timeout`` to connect plus one to send the whole answer."""
        return 2 * self.timeout

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
        return self.dialect.decode(request, response)

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

        from airflow_provider_ft.hooks._deadline import mount_deadlines

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
        retrying = tenacity.Retrying(**self._retrying(request, deadline))
        try:
            return retrying(self._send_once, request, deadline)
        except FineTuningApiError as error:
            raise error.after_attempts(retrying.statistics.get("attempt_number", 1)) from error.__cause__

    def _send_once(self, request: ApiRequest, deadline: float | None) -> dict[str, Any]:
        from airflow_provider_ft.hooks._deadline import request_deadline

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
    """asyncio transport over one ``httpx.AsyncClient``; never blocks the event loop.

    Building a client must be cheap too: a triggerer starts hundreds of them in one loop. Each would otherwise
    build its own SSL context, loading the CA bundle (~20 ms of CPU) inside the event loop; they share one.
    Large bodies are scrubbed and decoded in a worker thread; decompression goes in small steps.
    """

    def __init__(self, settings: ClientSettings, *, keepalive_expiry: float | None = None) -> None:
        import httpx

        super().__init__(settings)
        self._request_error: type[Exception] = httpx.HTTPError
        limits = httpx.Limits(keepalive_expiry=keepalive_expiry) if keepalive_expiry else httpx.Limits()
        self.client: httpx.AsyncClient = httpx.AsyncClient(
            headers=settings.headers(),
            timeout=httpx.Timeout(settings.timeout),
            follow_redirects=False,
            verify=_shared_ssl_context(),
            limits=limits,
        )
        _library_log_scrubber().add(settings.scrubber)

    async def aclose(self) -> None:
        _library_log_scrubber().remove(self.settings.scrubber)
        await self.client.aclose()

    async def send(self, request: ApiRequest, deadline: float | None = None) -> dict[str, Any]:
        """Send ``request`` with retries; the decoded JSON object, or one typed error.

        :param request: what to send
        :param deadline: ``time.monotonic()`` by which the call must be over, retries and waits included
        """
        retrying = tenacity.AsyncRetrying(**self._retrying(request, deadline))
        try:
            return await retrying(self._send_once, request, deadline)
        except FineTuningApiError as error:
            raise error.after_attempts(retrying.statistics.get("attempt_number", 1)) from error.__cause__

    async def _send_once(self, request: ApiRequest, deadline: float | None) -> dict[str, Any]:
        budget = max(self._attempt_deadline(request, deadline) - time.monotonic(), 0.0)
        try:
            async with asyncio.timeout(budget):
                status, headers, body = await self._exchange(request)
        except TimeoutError:
            raise self._deadline_error(request) from None
        except self._request_error as error:
            raise self._transport_error(request, type(error).__name__, f"{type(error).__name__}: {error}") from None
        except FineTuningApiError as error:
            raise self._refused(request, error) from None
        if len(body) > _LARGE_BODY:
            return await asyncio.to_thread(self._decode, request, status, headers, body)
        return self._decode(request, status, headers, body)

    async def _exchange(self, request: ApiRequest) -> tuple[int, dict[str, str], bytes]:
        if request.upload is not None:
            raise NotImplementedError("uploads are sent by the blocking transport (from a worker), not in a trigger")
        async with self.client.stream(
            request.method, self.settings.url(request), params=list(request.params), json=request.json_body
        ) as answer:
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
