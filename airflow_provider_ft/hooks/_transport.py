"""HTTP for the hook: one place for timeouts, retries, backoff and mapping failures to typed errors.

``SyncTransport`` uses a ``requests.Session`` (keep-alive); ``AsyncTransport`` an ``httpx.AsyncClient`` for
triggers. Both run the same ``RetryPolicy`` through tenacity and decode answers with the same dialect.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import tenacity

from airflow_provider_ft import __version__
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningError, FineTuningTransportError
from airflow_provider_ft.vendors.base import ApiRequest, ApiResponse, Dialect

if TYPE_CHECKING:
    from airflow_provider_ft.hooks._operations import Operation

T = TypeVar("T")
log = logging.getLogger(__name__)
USER_AGENT = f"airflow-provider-ft/{__version__}"


@dataclass(frozen=True)
class RetryPolicy:
    """When to send a request again and how long to wait first.

    :param max_retries: retries after the first attempt (so ``max_retries + 1`` attempts at most)
    :param backoff_base: first backoff in seconds; doubles each retry
    :param backoff_max: longest backoff in seconds (before jitter)
    :param retry_after_max: longest wait a server's ``Retry-After`` can impose, in seconds
    :param jitter: up to this fraction is added to each backoff at random
    """

    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    retry_after_max: float = 60.0
    jitter: float = 0.25

    def should_retry(self, error: BaseException) -> bool:
        return isinstance(error, FineTuningApiError) and error.retryable

    def wait_seconds(self, attempt: int, error: BaseException | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        retry_after = error.retry_after if isinstance(error, FineTuningApiError) else None
        if retry_after is not None and math.isfinite(retry_after):
            return min(max(float(retry_after), 0.0), self.retry_after_max)
        backoff = self._backoff(attempt)
        return backoff + random.uniform(0, self.jitter * backoff)

    def longest_total_wait(self) -> float:
        """An upper bound of all waits between attempts of one request."""
        return sum(
            max(self.retry_after_max, self._backoff(attempt) * (1 + self.jitter))
            for attempt in range(1, self.max_retries + 1)
        )

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_base * 2.0 ** (attempt - 1), self.backoff_max)


@dataclass(frozen=True)
class ClientSettings:
    """Everything needed to talk to one vendor account, resolved from an Airflow connection."""

    conn_id: str
    dialect: Dialect
    base_url: str
    api_key: str = field(repr=False)
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def url(self, request: ApiRequest) -> str:
        return self.base_url + request.path

    def headers(self) -> dict[str, str]:
        return {**self.dialect.headers(self.api_key), "User-Agent": USER_AGENT}

    def redact(self, text: str) -> str:
        return text.replace(self.api_key, "***") if self.api_key else text


class _Transport:
    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.dialect = settings.dialect

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.settings.conn_id!r}, base_url={self.settings.base_url!r})"

    def _retrying_kwargs(self, request: ApiRequest) -> dict[str, Any]:
        policy = self.settings.retry

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return policy.wait_seconds(state.attempt_number, error)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            waited = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "%s %s %s failed (%s); attempt %d of %d, retrying in %.2f s",
                self.dialect.display_name,
                request.method,
                request.path,
                _short_reason(error),
                state.attempt_number,
                policy.max_retries + 1,
                waited,
            )

        return {
            "stop": tenacity.stop_after_attempt(policy.max_retries + 1),
            "retry": tenacity.retry_if_exception(policy.should_retry),
            "wait": wait,
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def _transport_error(self, request: ApiRequest, error: Exception) -> FineTuningTransportError:
        reason = self.settings.redact(f"{type(error).__name__}: {error}")
        return FineTuningTransportError.because(
            type(error).__name__,
            f"{self.dialect.display_name} {request.operation} {request.method} {request.path} got no usable "
            f"answer from {self.settings.base_url} (connection {self.settings.conn_id!r}): {reason}",
        )


class SyncTransport(_Transport):
    """Blocking transport over one keep-alive ``requests.Session``."""

    def __init__(self, settings: ClientSettings) -> None:
        import requests  # on first use: DAG files that only build operators never pay for it

        super().__init__(settings)
        self._request_error: type[Exception] = requests.RequestException
        self.session: requests.Session = requests.Session()
        self.session.headers.update(settings.headers())

    def close(self) -> None:
        self.session.close()

    def send(self, request: ApiRequest) -> dict[str, Any]:
        """Send ``request`` with retries; the decoded JSON object, or a typed error."""
        retrying = tenacity.Retrying(**self._retrying_kwargs(request))
        try:
            return retrying(self._send_once, request)
        except FineTuningApiError as error:
            error.attempts = retrying.statistics.get("attempt_number", 1)
            raise

    def run(self, operation: Operation[T]) -> T:
        """Drive a protocol operation (see ``_operations``) to its result."""
        try:
            request = next(operation)
            while True:
                try:
                    outcome: dict[str, Any] | FineTuningError = self.send(request)
                except FineTuningError as error:
                    outcome = error
                request = _resume(operation, outcome)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _send_once(self, request: ApiRequest) -> dict[str, Any]:
        try:
            answer = self.session.request(
                request.method,
                self.settings.url(request),
                params=list(request.params),
                json=request.json_body,
                timeout=(self.settings.timeout, self.settings.timeout),
                allow_redirects=False,
            )
            response = _api_response(answer.status_code, answer.headers.items(), answer.content)
        except self._request_error as error:
            raise self._transport_error(request, error) from None
        return self.dialect.decode(request, response)


class AsyncTransport(_Transport):
    """asyncio transport over one ``httpx.AsyncClient``; never blocks the event loop.

    Building a client must be cheap too: a triggerer starts hundreds of them in one loop. Each would otherwise
    build its own SSL context, loading the CA bundle (~20 ms of CPU) inside the event loop; they share one.
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

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(self, request: ApiRequest) -> dict[str, Any]:
        retrying = tenacity.AsyncRetrying(**self._retrying_kwargs(request))
        try:
            return await retrying(self._send_once, request)
        except FineTuningApiError as error:
            error.attempts = retrying.statistics.get("attempt_number", 1)
            raise

    async def run(self, operation: Operation[T]) -> T:
        """Drive a protocol operation (see ``_operations``) to its result."""
        try:
            request = next(operation)
            while True:
                try:
                    outcome: dict[str, Any] | FineTuningError = await self.send(request)
                except FineTuningError as error:
                    outcome = error
                request = _resume(operation, outcome)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _send_once(self, request: ApiRequest) -> dict[str, Any]:
        try:
            answer = await self.client.request(
                request.method,
                self.settings.url(request),
                params=list(request.params),
                json=request.json_body,
            )
            response = _api_response(answer.status_code, answer.headers.items(), answer.content)
        except self._request_error as error:
            raise self._transport_error(request, error) from None
        return self.dialect.decode(request, response)


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    import httpx

    # httpx's own default (certifi, or SSL_CERT_FILE / SSL_CERT_DIR when set), built once per process.
    return httpx.create_ssl_context()


def _resume(operation: Operation[T], outcome: dict[str, Any] | FineTuningError) -> ApiRequest:
    """Hand the operation the answer to its last request (or throw the error in); its next request."""
    if isinstance(outcome, FineTuningError):
        return operation.throw(outcome)
    return operation.send(outcome)


def _api_response(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> ApiResponse:
    return ApiResponse(status, {name.lower(): value for name, value in headers}, body)


def _short_reason(error: BaseException | None) -> str:
    if isinstance(error, FineTuningTransportError):
        return error.reason
    if isinstance(error, FineTuningApiError):
        return f"HTTP {error.http_status}" if error.http_status else type(error).__name__
    return type(error).__name__ if error else "unknown"
