"""The values a dialect and a transport hand each other: a request to send, an answer received, a page of jobs,
and the error a success answer of the wrong shape becomes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_ft.jobs import FineTuningJob, JobEvent


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
class EventPage:
    """One page of a job's progress log: its entries oldest first, and the cursor of the next page (``None``: no
    more pages in the direction the vendor pages in)."""

    events: list[JobEvent]
    next_cursor: str | None = None


@dataclass(frozen=True)
class ErrorDetails:
    """The code, message and request id a vendor put in an error body."""

    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
