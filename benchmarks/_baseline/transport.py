"""``AsyncTransport`` as it was at commit b8e40c2 (``airflow_provider_ft/hooks/_transport.py``), self-contained.

One ``httpx.AsyncClient`` per transport (so per trigger), one process-wide ``ssl.SSLContext``, the library log
scrubber, tenacity retries that honour ``Retry-After`` per request. The methods of the former ``_Transport`` base
class that the asyncio transport uses are folded in.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import tenacity

from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningTransportError
from airflow_provider_ft.transport.body import ERROR_BODY_LIMIT, BodyReader, Scrubber
from airflow_provider_ft.vendors.wire import ApiRequest, ApiResponse

if TYPE_CHECKING:
    from airflow_provider_ft.transport import ClientSettings

log = logging.getLogger("airflow_provider_ft.transport.base")
#: Bodies larger than this are scrubbed and decoded in a worker thread, off the event loop.
_LARGE_BODY = 512 * 1024
_CHUNK = 64 * 1024
#: ``defaults.UPLOAD_BYTES_PER_SECOND`` at b8e40c2 (uploads never go through this transport anyway).
_UPLOAD_BYTES_PER_SECOND = 512 * 1024


class _LibraryLogScrubber(logging.Filter):
    """Scrubs the secrets of every open asyncio transport from the log records of httpx and httpcore."""

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


class AsyncTransport:
    """asyncio transport over one ``httpx.AsyncClient``; never blocks the event loop."""

    def __init__(self, settings: ClientSettings, *, keepalive_expiry: float | None = None) -> None:
        import httpx

        self.settings = settings
        self.dialect = settings.dialect
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.settings.conn_id!r}, base_url={self.settings.base_url!r})"

    async def aclose(self) -> None:
        _library_log_scrubber().remove(self.settings.scrubber)
        await self.client.aclose()

    async def send(self, request: ApiRequest, deadline: float | None = None) -> dict[str, Any]:
        """Send ``request`` with retries; the decoded JSON object, or one typed error."""
        retrying = tenacity.AsyncRetrying(**self._retrying(request, deadline))
        try:
            result: dict[str, Any] = await retrying(self._send_once, request, deadline)
        except FineTuningApiError as error:
            raise error.after_attempts(retrying.statistics.get("attempt_number", 1)) from error.__cause__
        return result

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

    # -- from ``_Transport`` at b8e40c2 --------------------------------------------------------------------------

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
        now = time.monotonic()
        own = now + self._attempt_seconds(request)
        return own if deadline is None or deadline <= now else min(own, deadline)

    def _attempt_seconds(self, request: ApiRequest) -> float:
        if request.upload is None:
            return self.settings.attempt_seconds
        return self.settings.attempt_seconds + request.upload.source.size / _UPLOAD_BYTES_PER_SECOND

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
        return type(error)(
            f"{self.dialect.display_name} {request.operation} {request.method} {request.path}: {error.message}",
            http_status=error.http_status,
        )


async def _feed(reader: BodyReader, chunk: bytes) -> None:
    """Feed ``chunk`` one decompression step at a time, giving the loop a turn after each step."""
    for _ in reader.steps(chunk):
        await asyncio.sleep(0)


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    import httpx

    return httpx.create_ssl_context()


def _is_retryable(error: BaseException) -> bool:
    return isinstance(error, FineTuningApiError) and error.retryable


def _short_reason(error: BaseException | None) -> str:
    if isinstance(error, FineTuningTransportError):
        return error.reason
    if isinstance(error, FineTuningApiError):
        return f"HTTP {error.http_status}" if error.http_status else type(error).__name__
    return type(error).__name__ if error else "unknown"
