"""The hook's operations as pure protocol steps, shared by the blocking and the asyncio transports.

Each operation is a generator: it yields the ``ApiRequest`` to send, receives the decoded JSON payload (or has
the transport's typed error thrown into it) and returns its result. No I/O happens here.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any, TypeVar

from airflow_provider_ft.exceptions import FineTuningApiError, JobNotFoundError
from airflow_provider_ft.jobs import FineTuningJob
from airflow_provider_ft.vendors.base import ApiRequest, Dialect, JobPage

T = TypeVar("T")
Operation = Generator[ApiRequest, dict[str, Any], T]


def get_job(dialect: Dialect, job_id: object) -> Operation[FineTuningJob]:
    payload = yield dialect.get_job(job_id)
    return dialect.parse_job(payload)


def list_page(dialect: Dialect, cursor: str | None, page_size: int, filters: Mapping[str, Any]) -> Operation[JobPage]:
    payload = yield dialect.list_page(cursor, page_size, filters)
    page = dialect.parse_page(payload, cursor, page_size)
    if page.next_cursor is not None and page.next_cursor == cursor:
        raise FineTuningApiError(f"{dialect.display_name} returned the same page twice (cursor {cursor!r})")
    return page


def cancel_job(dialect: Dialect, job_id: object) -> Operation[FineTuningJob]:
    """Cancel a job and return it as it stands afterwards.

    A job that is already terminal is not an error: the vendor refuses the cancel, the job is fetched and
    returned as it is. This also makes a cancel that is retried after a lost answer succeed.
    """
    request = dialect.cancel_job(job_id)
    try:
        payload = yield request
    except FineTuningApiError as error:
        if not dialect.refuses_in_current_state(error):
            raise
        job = yield from get_job(dialect, job_id)
        if not job.is_terminal:
            raise
        return job
    cancelled = dialect.parse_cancel(payload)
    if cancelled is None:
        cancelled = yield from get_job(dialect, job_id)
    return cancelled


def delete_job(dialect: Dialect, job_id: object) -> Operation[None]:
    """Delete a job. A 404 on a retried attempt means an earlier attempt deleted it: that is success."""
    request = dialect.delete_job(job_id)
    try:
        yield request
    except JobNotFoundError as error:
        if error.attempts <= 1:
            raise
