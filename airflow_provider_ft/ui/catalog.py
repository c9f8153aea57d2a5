"""The vendor side of the Fine-tuning page: each connection's jobs, one job with its log, and the actions, all through
``FineTuningHook`` (its rate-limit gate, deadlines, scrubbing and typed errors apply to every call).

Listings are bounded (the newest ``MAX_JOBS_PER_CONNECTION`` jobs), run side by side (one thread per connection),
kept for ``FRESH_FOR`` seconds, and waited on for at most ``LISTING_WAIT`` seconds: a slow or failing vendor shows
as such on its connection's row, never as a broken page.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningError
from airflow_provider_ft.loss import LossPoint, loss_curve

if TYPE_CHECKING:
    from airflow_provider_ft.cost import Price
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
    from airflow_provider_ft.jobs import FineTuningJob, JobEvent

log = logging.getLogger(__name__)

#: The newest jobs of one connection the page lists.
MAX_JOBS_PER_CONNECTION = 1_000
#: Seconds a listing is shown before the vendor is asked again.
FRESH_FOR = 15.0
#: Seconds a page waits for a connection's listing before showing the row as "no answer yet".
LISTING_WAIT = 20.0
#: Seconds one job page waits for the job and its log, each.
JOB_WAIT = 20.0
#: Most requests one job page sends for the job's log.
EVENT_PAGES = 10
#: Most events one job page shows (the newest).
MAX_EVENTS = 200

Action = Literal["cancel", "pause", "resume"]
ACTIONS: tuple[Action, ...] = ("cancel", "pause", "resume")


@dataclass(frozen=True)
class ConnectionJobs:
    """One connection's listing as the page shows it.

    :param conn_id: the connection
    :param vendor: the vendor's display name (``""`` when the connection could not be read)
    :param namespace: the connection's ``namespace`` extra
    :param jobs: its newest jobs, newest first, without the vendor's raw objects
    :param more: the account has more jobs than were listed
    :param error: why the listing failed or is not there yet (typed, no secret), else ``None``
    :param price: the connection's price, where it gives one
    :param pausable: the vendor can pause and resume jobs
    :param read_at: when the listing was read
    """

    conn_id: str
    vendor: str = ""
    namespace: str = ""
    jobs: tuple[FineTuningJob, ...] = ()
    more: bool = False
    error: str | None = None
    price: Price | None = None
    pausable: bool = False
    read_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class JobDetail:
    """One job with its log, as the job page shows it.

    :param conn: the connection's listing facts (vendor, namespace, price; no jobs)
    :param job: the job
    :param events: its newest log entries, oldest first
    :param curve: the training and validation loss over steps
    :param events_error: why the log could not be read, else ``None``
    :param console_url: the job in the vendor's console, where there is one
    """

    conn: ConnectionJobs
    job: FineTuningJob
    events: tuple[JobEvent, ...]
    curve: tuple[LossPoint, ...]
    events_error: str | None
    console_url: str


class Catalog:
    """Listings of many connections, each read at most once per ``fresh_for`` seconds, side by side.

    The module's ``FRESH_FOR``, ``LISTING_WAIT`` and ``MAX_JOBS_PER_CONNECTION`` apply as they are at each call.

    :param hook_factory: makes the hook of a connection id
    """

    def __init__(self, hook_factory: Callable[[str], FineTuningHook]) -> None:
        self._hook_factory = hook_factory
        self._lock = threading.Lock()
        self._listings: dict[str, tuple[float, Future[ConnectionJobs]]] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fine-tuning-page")

    def listings(self, conn_ids: Iterable[str]) -> list[ConnectionJobs]:
        """The listing of each connection, in the order given; one that is not in within the wait says so."""
        futures = [(conn_id, self._listing(conn_id)) for conn_id in conn_ids]
        deadline = time.monotonic() + LISTING_WAIT
        return [self._result(conn_id, future, deadline) for conn_id, future in futures]

    def forget(self, conn_id: str) -> None:
        """Drop the connection's listing (after an action changed one of its jobs)."""
        with self._lock:
            self._listings.pop(conn_id, None)

    def _listing(self, conn_id: str) -> Future[ConnectionJobs]:
        now = time.monotonic()
        with self._lock:
            held = self._listings.get(conn_id)
            if held is not None and (not held[1].done() or now - held[0] < FRESH_FOR):
                return held[1]
            future = self._pool.submit(self._read, conn_id)
            self._listings[conn_id] = (now, future)
            return future

    def _result(self, conn_id: str, future: Future[ConnectionJobs], deadline: float) -> ConnectionJobs:
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            return ConnectionJobs(conn_id, error=f"no answer within {LISTING_WAIT:g} s; still asking")

    def _read(self, conn_id: str) -> ConnectionJobs:
        hook = self._hook_factory(conn_id)
        try:
            settings = hook.settings
            most = MAX_JOBS_PER_CONNECTION
            listed = list(itertools.islice(hook.list_jobs(), most + 1))
            jobs = tuple(replace(job, raw={}) for job in listed[:most])
            return ConnectionJobs(
                conn_id,
                vendor=settings.dialect.display_name,
                namespace=settings.namespace,
                jobs=jobs,
                more=len(listed) > most,
                price=connection_price(hook),
                pausable=settings.dialect.supports_pause,
            )
        except Exception as error:  # one connection's failure is its row's, never the page's
            return ConnectionJobs(conn_id, vendor=_vendor(hook), error=describe_error(error))
        finally:
            hook.close()


def job_detail(hook: FineTuningHook, job_id: str) -> JobDetail:
    """The job, its newest log entries and its loss curve; a log that cannot be read leaves the job shown."""
    deadline = time.monotonic() + JOB_WAIT
    job = replace(hook.get_job(job_id, deadline=deadline), raw={})
    settings = hook.settings
    conn = ConnectionJobs(
        hook.conn_id,
        settings.dialect.display_name,
        settings.namespace,
        price=connection_price(hook),
        pausable=settings.dialect.supports_pause,
    )
    events: Sequence[JobEvent] = ()
    metrics: Sequence[LossPoint] = ()
    error = None
    try:
        events, _ = hook.new_events(job_id, None, max_pages=EVENT_PAGES, deadline=time.monotonic() + JOB_WAIT)
        metrics = hook.loss_metrics(job_id, deadline=time.monotonic() + JOB_WAIT)
    except FineTuningError as failure:
        error = describe_error(failure)
    return JobDetail(
        conn=conn,
        job=job,
        events=tuple(events[-MAX_EVENTS:]),
        curve=tuple(loss_curve([*events, *metrics])),
        events_error=error,
        console_url=hook.console_url(job.id),
    )


def act(hook: FineTuningHook, job_id: str, action: Action) -> FineTuningJob:
    """Cancel, pause or resume the job; the job as it stands after (each call is idempotent at the vendor)."""
    if action == "cancel":
        return hook.cancel_job(job_id)
    if action == "pause":
        return hook.pause_job(job_id)
    return hook.resume_job(job_id)


def connection_price(hook: FineTuningHook) -> Price | None:
    """The connection's price, ``None`` where it gives none or an unusable one (the page then shows no cost)."""
    try:
        return hook.price
    except FineTuningError:
        return None


def describe_error(error: BaseException) -> str:
    """What the page shows of a failure: a typed error's class and message (they carry no secret), else only that
    something failed (the api-server's log has the rest)."""
    if isinstance(error, FineTuningError):
        return f"{type(error).__name__}: {printable(error, 300)}"
    log.exception("The Fine-tuning page failed on a vendor call")
    return f"{type(error).__name__} (details in the api-server's log)"


def _vendor(hook: FineTuningHook) -> str:
    settings = hook.settings_if_read
    return settings.dialect.display_name if settings is not None else ""
