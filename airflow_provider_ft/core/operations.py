"""Every multi-step call, written once for the blocking and the asyncio transport (h11-style: data in, requests out).

An operation is a generator: it yields each ``ApiRequest`` it needs (or a ``Pause`` to wait), receives the decoded
JSON object (or has the transport's typed error thrown into it) and returns its result. ``run`` and ``arun`` drive
one to its end; they are the only two loops, one per kind of I/O. Nothing here does I/O itself. ``Pages`` is the one
guard of every listing (jobs, a job's log, files).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningError, JobNotFoundError
from airflow_provider_ft.jobs import FineTuningJob, JobEvent, JobStatus
from airflow_provider_ft.loss import LossPoint
from airflow_provider_ft.vendors.base import Dialect
from airflow_provider_ft.vendors.wire import ApiRequest, JobPage

T = TypeVar("T")
Item = TypeVar("Item")


@dataclass(frozen=True)
class Pause:
    """A step that sends nothing: wait ``seconds`` before going on (a driver sleeps, blocking or not)."""

    seconds: float


Step = ApiRequest | Pause
Operation = Generator[Step, Any, T]
Outcome = dict[str, Any] | FineTuningError | None


def run(operation: Operation[T], send: Callable[[ApiRequest], dict[str, Any]]) -> T:
    """Drive ``operation`` to its result, sending each request it yields with ``send``."""
    step = _start(operation)
    while not isinstance(step, _Done):
        step = _resume(operation, _attempt(_pause if isinstance(step, Pause) else send, step))
    return step.value


async def arun(operation: Operation[T], send: Callable[[ApiRequest], Awaitable[dict[str, Any]]]) -> T:
    """``run`` for an asyncio transport."""
    step = _start(operation)
    while not isinstance(step, _Done):
        pending = asyncio.sleep(step.seconds) if isinstance(step, Pause) else send(step)
        step = _resume(operation, await _aattempt(pending))
    return step.value


@dataclass(frozen=True)
class _Done(Generic[T]):
    value: T


def _start(operation: Operation[T]) -> Step | _Done[T]:
    """The operation's first step, or its result when it needs no request at all."""
    try:
        return next(operation)
    except StopIteration as done:
        return _Done(done.value)


def _pause(step: Pause) -> None:
    time.sleep(step.seconds)


def _attempt(perform: Callable[[Any], dict[str, Any] | None], step: Step) -> Outcome:
    """What a step came to: the answer, or the typed error it failed with."""
    try:
        return perform(step)
    except FineTuningError as error:
        return error


async def _aattempt(pending: Awaitable[dict[str, Any] | None]) -> Outcome:
    try:
        return await pending
    except FineTuningError as error:
        return error


def _resume(operation: Operation[T], outcome: Outcome) -> Step | _Done[T]:
    """Hand the operation the answer to its last step (or throw the error in): its next step, or its result."""
    try:
        if isinstance(outcome, FineTuningError):
            return operation.throw(outcome)
        return operation.send(outcome)
    except StopIteration as done:
        return _Done(done.value)


def get_job(dialect: Dialect, job_id: str) -> Operation[FineTuningJob]:
    payload = yield dialect.get_job(job_id)
    return dialect.parse_job(payload, job_id=job_id)


def list_page(dialect: Dialect, cursor: str | None, page_size: int, filters: Mapping[str, Any]) -> Operation[JobPage]:
    payload = yield dialect.list_page(cursor, page_size, filters)
    return dialect.parse_page(payload, cursor, page_size)


def cancel_job(dialect: Dialect, job_id: str) -> Operation[FineTuningJob]:
    """Cancel a job unless it is already terminal; the job as it stands afterwards.

    A terminal job is returned as it is, without a cancel request. A cancel the vendor refuses because the job
    finished in the meantime (or because an earlier attempt whose answer was lost already cancelled it) is
    confirmed with a read and returns the job as it is.
    """
    job = yield from get_job(dialect, job_id)
    if job.is_terminal:
        return job
    return (yield from cancel_unfinished_job(dialect, job_id))


def cancel_unfinished_job(dialect: Dialect, job_id: str) -> Operation[FineTuningJob]:
    """Cancel a job just seen unfinished (read, or listed by a cleanup): the cancel request straight away, one call
    where the answer carries the job; an answer without it is followed by a read.

    A cancel the vendor refuses because the job finished since (or because an earlier attempt whose answer was lost
    already cancelled it) is confirmed with a read and returns the job as it is.
    """
    try:
        payload = yield dialect.cancel_job(job_id)
    except FineTuningApiError as error:
        if not dialect.refuses_in_current_state(error):
            raise
        job = yield from get_job(dialect, job_id)
        if not job.is_terminal:
            raise
        return job
    cancelled = dialect.parse_cancel(payload, job_id=job_id)
    if cancelled is None:
        cancelled = yield from get_job(dialect, job_id)
    return cancelled


#: States a pause leaves as they are: already paused, or stopping (a cancel under way) or stopped for good.
_NOT_PAUSABLE = frozenset({JobStatus.PAUSED, JobStatus.CANCELLING})


def pause_job(dialect: Dialect, job_id: str) -> Operation[FineTuningJob]:
    """Pause a job unless it is already paused, being cancelled or terminal; the job as it stands afterwards.

    The request is built first, so a bad id or a vendor without pause (``UnsupportedOperationError``) fails before
    any I/O. A job already paused or finished is returned as it is, without a pause request. A pause the vendor
    refuses because the job is paused (an earlier attempt whose answer was lost already paused it) or finished in
    the meantime is confirmed with a read and returns the job as it is.
    """
    request = dialect.pause_job(job_id)
    job = yield from get_job(dialect, job_id)
    if job.is_terminal or job.status in _NOT_PAUSABLE:
        return job
    return (yield from _change_state(dialect, request, job_id, done=_paused_or_beyond))


def resume_job(dialect: Dialect, job_id: str) -> Operation[FineTuningJob]:
    """Resume a paused job; the job as it stands afterwards.

    The request is built first (same checks as ``pause_job``). A job that is not paused is returned as it is,
    without a resume request. A resume the vendor refuses because the job is no longer paused (an earlier attempt
    whose answer was lost already resumed it) is confirmed with a read and returns the job as it is.
    """
    request = dialect.resume_job(job_id)
    job = yield from get_job(dialect, job_id)
    if job.status is not JobStatus.PAUSED:
        return job
    return (yield from _change_state(dialect, request, job_id, done=_not_paused))


def _paused_or_beyond(job: FineTuningJob) -> bool:
    return job.is_terminal or job.status in _NOT_PAUSABLE


def _not_paused(job: FineTuningJob) -> bool:
    return job.status is not JobStatus.PAUSED


def _change_state(
    dialect: Dialect, request: ApiRequest, job_id: str, *, done: Callable[[FineTuningJob], bool]
) -> Operation[FineTuningJob]:
    """Send a request that moves the job to another state; the job it answers.

    A refusal because of the job's current state is read as "already done" only if a fresh read of the job shows
    ``done``; otherwise the refusal is raised.
    """
    try:
        payload = yield request
    except FineTuningApiError as error:
        if not dialect.refuses_in_current_state(error):
            raise
        job = yield from get_job(dialect, job_id)
        if not done(job):
            raise
        return job
    return dialect.parse_job(payload, job_id=job_id)


def loss_metrics(dialect: Dialect, job_id: str) -> Operation[list[LossPoint]]:
    """The job's training figures kept apart from its log (Together AI); none where the log carries them."""
    request = dialect.metrics_request(job_id)
    if request is None:
        return []
    payload = yield request
    return dialect.parse_metrics(payload)


def delete_job(dialect: Dialect, job_id: str) -> Operation[None]:
    """Delete a job. A 404 on a retried attempt means an earlier attempt deleted it: that is success."""
    try:
        payload = yield dialect.delete_job(job_id)
    except JobNotFoundError as error:
        if error.attempts <= 1:
            raise
        return
    dialect.parse_delete(payload)


@dataclass(frozen=True)
class NewEvents:
    """The entries of a job's progress log after a cursor, oldest first, and the cursor to read on from.

    :param events: the new entries, oldest first, each once
    :param cursor: the cursor of the newest entry read (the one given when there was none)
    :param skipped: whether the walk stopped at its page bound before meeting the cursor it was given, so that
        entries between that cursor and ``events`` were not read (only where the log pages from the newest back;
        forward, the rest is read by the next call)
    """

    events: list[JobEvent]
    cursor: str | None
    skipped: bool = False


def new_events(dialect: Dialect, job_id: str, after: str | None, limit: int, max_pages: int) -> Operation[NewEvents]:
    """The entries of the job's progress log after ``after`` (``None``: all), oldest first, in at most
    ``max_pages`` requests.

    A log that pages forward is read from right after ``after`` until its last page, or ``max_pages`` pages (the
    next call reads on). A log that pages from the newest back is read from its newest page until a page holds
    ``after``, or to its oldest page, or ``max_pages`` pages (then ``skipped``). ``Pages`` guards the walk. Requests
    are built first, so a bad job id or cursor fails before any I/O.
    """
    newest_first = dialect.events_newest_first
    dialect.events_page(job_id, after, limit)  # checks the id and the cursor
    cursor = None if newest_first else after
    trail = Pages(f"the {dialect.display_name} log of job {job_id}", max_pages, item="entry")
    pages: list[list[JobEvent]] = []
    met = after is None or not newest_first
    while not trail.full:
        payload = yield dialect.events_page(job_id, cursor, limit)
        page = dialect.parse_events(payload, cursor)
        marks = [entry.cursor for entry in page.events]
        if newest_first and after is not None and after in marks:
            pages.append(page.events[len(marks) - marks[::-1].index(after) :])
            met = True
            break
        pages.append(trail.fresh(page.events, _cursor_of, page.next_cursor))
        if page.next_cursor is None:
            met = True
            break
        cursor = page.next_cursor
    ordered = [entry for entries in (reversed(pages) if newest_first else pages) for entry in entries]
    events: list[JobEvent] = []
    marks_seen: set[str] = set() if after is None else {after}
    for entry in ordered:
        if entry.cursor not in marks_seen:
            marks_seen.add(entry.cursor)
            events.append(entry)
    return NewEvents(events, events[-1].cursor if events else after, skipped=not met)


def _cursor_of(event: JobEvent) -> str:
    return event.cursor


class Pages:
    """The pages a listing has taken so far; ends a listing a broken server would make endless (jobs, a job's log,
    files: every listing goes through one).

    A listing fails with ``FineTuningApiError`` when a cursor comes back that was seen before (a cycle), or when a page
    that promises more brings nothing not seen before; ``full`` says it has taken ``max_pages`` pages.

    :param what: what is listed, for messages (``DashScope jobs``)
    :param max_pages: most pages a listing may take
    :param item: one of what is listed, for messages (``job``)
    """

    def __init__(self, what: str, max_pages: int, *, item: str = "job") -> None:
        self.what = what
        self.item = item
        self.max_pages = max_pages
        self.pages = 0
        self._cursors: set[str | None] = {None}
        self._keys: set[str] = set()

    @property
    def full(self) -> bool:
        return self.pages >= self.max_pages

    def fresh(self, items: Iterable[Item], key: Callable[[Item], str], next_cursor: str | None) -> list[Item]:
        """The items of a page not seen on an earlier page; raises when the listing cannot be trusted to end."""
        self.pages += 1
        fresh = [item for item in items if key(item) not in self._keys]
        self._keys.update(key(item) for item in fresh)
        if next_cursor is None:
            return fresh
        if next_cursor in self._cursors:
            raise self.broken(f"it sent cursor {next_cursor[:60]!r} a second time")
        if not fresh:
            raise self.broken(f"a page that promised more brought no {self.item} not seen before")
        self._cursors.add(next_cursor)
        return fresh

    def take(self, items: Iterable[Item], key: Callable[[Item], str], next_cursor: str | None) -> list[Item]:
        """``fresh``, and an error when a listing that must end whole still promises more after ``max_pages``."""
        fresh = self.fresh(items, key, next_cursor)
        if next_cursor is not None and self.full:
            raise self.broken(f"it still had more after max_pages={self.max_pages} pages (connection extra)")
        return fresh

    def broken(self, reason: str) -> FineTuningApiError:
        return FineTuningApiError(f"Stopped listing {self.what} after {self.pages} pages: {reason}")


def find_in_listing(
    trail: Pages,
    page: Callable[[str | None], Operation[tuple[list[Item], str | None]]],
    key: Callable[[Item], str],
    wanted: Callable[[Item], bool],
    *,
    first: bool = False,
) -> Operation[list[Item]]:
    """The items of a whole listing that are ``wanted``, page by page under ``trail`` (with ``first``: up to the first
    one, and the pages after it are not read).

    :param trail: the listing's guard
    :param page: the operation that reads the page of a cursor: its items and the next cursor
    :param key: an item's identity, to tell items seen before
    :param wanted: which items to keep
    :param first: stop at the first item kept
    """
    found: list[Item] = []
    cursor: str | None = None
    while True:
        items, cursor = yield from page(cursor)
        found.extend(item for item in trail.take(items, key, cursor) if wanted(item))
        if cursor is None or (first and found):
            return found[:1] if first else found
