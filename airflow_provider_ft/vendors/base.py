"""What every vendor dialect shares: request and response values, id rules, JSON decoding, error mapping.

A dialect is pure: it builds ``ApiRequest`` values and turns ``ApiResponse`` values into jobs or typed errors.
It never does I/O, so the blocking (requests) and asyncio (httpx) transports share every rule.
"""

from __future__ import annotations

import json
import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import quote

from airflow_provider_ft.exceptions import (
    FineTuningApiError,
    InvalidJobIdError,
    JobNotFoundError,
    UnsupportedOperationError,
)
from airflow_provider_ft.jobs import FineTuningJob, JobStatus

MAX_JOB_ID_LENGTH = 128
_JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9_.\-]+")
_SNIPPET_LENGTH = 160
_warned_statuses: set[tuple[str, str]] = set()
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiRequest:
    """One HTTP request, relative to the connection's base URL.

    :param operation: what the request does, for logs (``get``, ``list``, ``cancel``, ``delete``)
    :param method: HTTP method
    :param path: path below the base URL, starting with ``/``, already quoted
    :param params: query parameters, in order
    :param job_id: the job the request is about, if any (a 404 then means that job does not exist)
    """

    operation: str
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    json_body: dict[str, Any] | None = None
    job_id: str | None = None

    @property
    def is_mutating(self) -> bool:
        return self.method not in ("GET", "HEAD")


@dataclass(frozen=True)
class ApiResponse:
    """An HTTP answer as the transport received it (header names lower-cased)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class JobPage:
    """One page of a job listing and the cursor of the next page (``None`` on the last page)."""

    jobs: list[FineTuningJob]
    next_cursor: str | None = None


@dataclass(frozen=True)
class VendorError:
    """The code, message and request id a vendor put in an error body."""

    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def validate_job_id(job_id: object) -> str:
    """Return ``job_id`` if it is a safe job id, else raise ``InvalidJobIdError`` saying what is wrong.

    Vendors' ids use letters, digits, ``-``, ``_`` and ``.``; anything else could change the URL the request
    goes to (``/``, ``?``, ``#``, ``%``) or the request itself (newlines, NUL), so it is refused before sending.
    """
    if not isinstance(job_id, str):
        raise InvalidJobIdError(f"A job id must be a string, got {type(job_id).__name__} {job_id!r:.40}")
    if not job_id.strip():
        raise InvalidJobIdError("A job id must not be empty or blank")
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise InvalidJobIdError(
            f"A job id is at most {MAX_JOB_ID_LENGTH} characters, got one of {len(job_id)} characters"
        )
    if not _JOB_ID_PATTERN.fullmatch(job_id):
        bad = sorted({char for char in job_id if not _JOB_ID_PATTERN.fullmatch(char)})
        shown = ", ".join(repr(char) for char in bad[:5])
        raise InvalidJobIdError(
            f"Job id {job_id!r:.60} has characters a job id cannot have ({shown}); "
            "ids use only letters, digits, '-', '_' and '.'"
        )
    if ".." in job_id:
        raise InvalidJobIdError(f"Job id {job_id!r:.60} must not contain '..'")
    return job_id


def job_path(prefix: str, job_id: object, suffix: str = "") -> str:
    return f"{prefix}/{quote(validate_job_id(job_id), safe='')}{suffix}"


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, else ``Retry-After`` (seconds or HTTP date)."""
    milliseconds = _finite_seconds(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite_seconds(value)
    if seconds is not None:
        return seconds
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - (now or datetime.now(UTC))).total_seconds(), 0.0)


def _finite_seconds(value: str | None) -> float | None:
    """A non-negative finite number (``nan``, ``inf`` and words are no answer at all)."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return max(number, 0.0) if math.isfinite(number) else None


def body_snippet(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return text if len(text) <= _SNIPPET_LENGTH else text[:_SNIPPET_LENGTH] + "..."


def is_retryable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


class Dialect(ABC):
    """One vendor's fine-tuning API: its paths, headers, envelopes, errors, pagination and status words."""

    name: ClassVar[str]
    display_name: ClassVar[str]
    conn_types: ClassVar[tuple[str, ...]]
    default_conn_id: ClassVar[str]
    default_base_url: ClassVar[str]
    max_page_size: ClassVar[int] = 100
    list_filters: ClassVar[tuple[str, ...]] = ()
    supports_delete: ClassVar[bool] = False
    status_words: ClassVar[Mapping[str, JobStatus]]

    def __init__(self, extras: Mapping[str, Any] | None = None) -> None:
        self.extras: Mapping[str, Any] = extras or {}

    # -- requests ---------------------------------------------------------------------------------------

    def headers(self, api_key: str) -> dict[str, str]:
        """Headers sent with every request: auth, content negotiation, and the vendor's optional ones."""
        return {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            **self.extra_headers(),
        }

    def extra_headers(self) -> dict[str, str]:
        return {}

    @abstractmethod
    def get_job(self, job_id: object) -> ApiRequest: ...

    @abstractmethod
    def list_page(self, cursor: str | None, page_size: int, filters: Mapping[str, Any]) -> ApiRequest: ...

    @abstractmethod
    def cancel_job(self, job_id: object) -> ApiRequest: ...

    def delete_job(self, job_id: object) -> ApiRequest:
        validate_job_id(job_id)
        self.ensure_can_delete()
        raise NotImplementedError(f"{type(self).__name__} says it supports delete but builds no request")

    def ensure_can_delete(self) -> None:
        """Raise ``UnsupportedOperationError`` (no I/O) if this API cannot delete fine-tuning jobs."""
        if not self.supports_delete:
            raise UnsupportedOperationError(
                f"The {self.display_name} API has no way to delete a fine-tuning job; "
                "cancel it instead (CancelFineTuningJobOperator or FineTuningHook.cancel_job)"
            )

    @abstractmethod
    def console_url(self, job_id: str) -> str:
        """Where a person can see the job in the vendor's web console."""

    # -- responses --------------------------------------------------------------------------------------

    @abstractmethod
    def parse_job(self, payload: Mapping[str, Any]) -> FineTuningJob: ...

    @abstractmethod
    def parse_page(self, payload: Mapping[str, Any], cursor: str | None, page_size: int) -> JobPage: ...

    def parse_cancel(self, payload: Mapping[str, Any]) -> FineTuningJob | None:
        """The job after a cancel call, or ``None`` when the answer does not carry it (fetch it then)."""
        return self.parse_job(payload)

    @abstractmethod
    def vendor_error(self, response: ApiResponse, payload: Mapping[str, Any] | None) -> VendorError | None:
        """The error a body reports, or ``None`` when the answer is a success."""

    @abstractmethod
    def refuses_in_current_state(self, error: FineTuningApiError) -> bool:
        """Whether ``error`` says the job's current state does not allow the call (e.g. cancel a finished job)."""

    def decode(self, request: ApiRequest, response: ApiResponse) -> dict[str, Any]:
        """The JSON object a successful answer carries; a typed error for anything else."""
        payload = _json_object(response.body)
        failure = self.vendor_error(response, payload)
        if failure is not None or response.status >= 400:
            raise self._api_error(request, response, failure or VendorError())
        if payload is None:
            # A cut or empty body on a read is most likely a proxy or network hiccup: reading again is harmless.
            raise FineTuningApiError(
                f"{self.display_name} answered {request.method} {request.path} with a body that is not a JSON "
                f"object: {body_snippet(response.body) or '<empty>'!r}",
                http_status=response.status,
                request_id=self.request_id(response, None),
                retryable=not request.is_mutating,
            )
        return payload

    def request_id(self, response: ApiResponse, payload: Mapping[str, Any] | None) -> str | None:
        return response.headers.get("x-request-id")

    def job_status(self, vendor_status: str) -> JobStatus:
        """The normalized status of a vendor word; unknown words are ``UNKNOWN`` (warned about once)."""
        status = self.status_words.get(vendor_status)
        if status is None:
            status = JobStatus.UNKNOWN
            _warn_unknown_status(self.name, vendor_status)
        return status

    def _api_error(self, request: ApiRequest, response: ApiResponse, failure: VendorError) -> FineTuningApiError:
        error_class = FineTuningApiError
        described = failure.message or body_snippet(response.body) or "no error message"
        if response.status == 404 and request.job_id is not None:
            error_class = JobNotFoundError
            described = f"job {request.job_id} not found: {described}"
        return error_class(
            f"{self.display_name} {request.operation} failed: {described}",
            http_status=response.status,
            vendor_code=failure.code,
            request_id=failure.request_id or self.request_id(response, None),
            retryable=is_retryable_status(response.status) or self.is_retryable_code(failure.code),
            retry_after=parse_retry_after(response.headers),
            rate_limited=response.status == 429 or self.is_rate_limit_code(failure.code),
        )

    def is_retryable_code(self, code: str | None) -> bool:
        """Whether an error code in a 2xx body means a passing condition (throttling, server error)."""
        return False

    def is_rate_limit_code(self, code: str | None) -> bool:
        """Whether an error code means a rate or quota limit, whatever the HTTP status."""
        return False


def _json_object(body: bytes) -> dict[str, Any] | None:
    if not body.strip():
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _warn_unknown_status(vendor: str, vendor_status: str) -> None:
    key = (vendor, vendor_status)
    if key not in _warned_statuses:
        _warned_statuses.add(key)
        log.warning(
            "%s reported job status %r, which this provider does not know; treating it as UNKNOWN (not terminal)",
            vendor,
            vendor_status,
        )


def optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
