"""``FineTuningHook``: fine-tuning jobs of any supported vendor, chosen by the connection's type."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_ft import _validate, defaults
from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import (
    FineTuningApiError,
    FineTuningBudgetExceeded,
    FineTuningConfigError,
    FineTuningError,
    FineTuningTimeout,
)
from airflow_provider_ft.hooks._connected import ConnectedHook, _operations, _settings_from, _transports
from airflow_provider_ft.jobs import JobBudget

if TYPE_CHECKING:
    from airflow_provider_ft.core import operations
    from airflow_provider_ft.core.submit import Listing, Submission
    from airflow_provider_ft.identity import TaskIdentity
    from airflow_provider_ft.jobs import FineTuningJob, JobEvent, ProgressLog
    from airflow_provider_ft.loss import LossPoint
    from airflow_provider_ft.transport import AsyncTransport
    from airflow_provider_ft.vendors.wire import JobSpec, LocalFile, RemoteFile


class FineTuningHook(ConnectedHook):
    """Get, list, cancel, pause, resume, delete and wait for fine-tuning jobs on DashScope, OpenAI, Azure OpenAI or
    Together AI.

    The vendor follows from the connection's type (``dashscope``, ``openaifinetuning`` or ``openai`` as made for the
    official OpenAI provider, ``azureopenaifinetuning``, ``togetherfinetuning``). The password holds the API key;
    the host, if set, the base URL; every extra is in docs/connections/README.md.

    :param conn_id: the Airflow connection to use (default: ``default_conn_name`` of the class)
    :param page_size: jobs per page when listing (1 to 100)
    """

    conn_name_attr = "conn_id"
    default_conn_name = defaults.DASHSCOPE_CONN_ID
    conn_type = "dashscope"
    hook_name = "Fine-tuning: DashScope"

    def list_jobs(self, **filters: Any) -> Iterator[FineTuningJob]:
        """Every job of the account, newest first, each once, fetched lazily page by page.

        A listing that cannot be trusted to end (a cursor seen before, a page with no new job, more than the
        connection's ``max_pages``) fails with ``FineTuningApiError``.

        :param filters: filters the vendor applies server-side: DashScope ``model``; OpenAI ``metadata`` (a dict)
        """
        self._check_filters(filters)
        trail = _operations().Pages(f"{self.dialect.display_name} jobs", self.settings.max_pages)
        cursor: str | None = None
        while True:
            page = self._run(_operations().list_page(self.dialect, cursor, self.page_size, filters))
            yield from trail.take(page.jobs, _job_id, page.next_cursor)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def pause_job(self, job_id: str) -> FineTuningJob:
        """Pause the job (OpenAI); the job as it stands after the call (``PAUSED``, or as it was).

        Idempotent, so safe for retries: a job that is already paused, being cancelled or terminal is returned as
        it is, and no pause request is sent. A paused job is not terminal; ``resume_job`` carries it on. DashScope
        has no pause: ``UnsupportedOperationError`` before any request.

        :param job_id: the vendor's job id
        """
        job: FineTuningJob = self._run(_operations().pause_job(self.dialect, job_id))
        return job

    def resume_job(self, job_id: str) -> FineTuningJob:
        """Resume a paused job (OpenAI); the job as it stands after the call (queued again, or as it was).

        Idempotent, so safe for retries: a job that is not paused is returned as it is, and no resume request is
        sent. DashScope has no resume: ``UnsupportedOperationError`` before any request.

        :param job_id: the vendor's job id
        """
        job: FineTuningJob = self._run(_operations().resume_job(self.dialect, job_id))
        return job

    def submit_job(
        self,
        spec: JobSpec,
        identity: TaskIdentity,
        *,
        settle_delays: Sequence[float] = defaults.SETTLE_DELAYS,
        prepare: Callable[[JobSpec], JobSpec] | None = None,
        remembered: str | None = None,
        on_created: Callable[[FineTuningJob], None] | None = None,
        final: tuple[type[FineTuningApiError], ...] = (),
    ) -> Submission:
        """The job of task instance ``identity``: the one it already has (from an earlier try, a cleared task or a
        create whose answer was lost), or a new one made as ``spec`` says, exactly once.

        The create request is sent once, never retried blindly: after an answer that may hide a created job (no
        answer, a timeout, 5xx, 408, 409, 429) the job is looked for after each of ``settle_delays`` seconds, and
        created again only if none appeared. Duplicates of one identity are cancelled, keeping the oldest. Every
        argument is checked (``FineTuningConfigError``) before any request.

        :param spec: the job to make
        :param identity: the task instance it is for (``TaskIdentity``)
        :param settle_delays: seconds to wait before each look after a lost answer
        :param prepare: runs once, only when a job is to be created, and gives the spec to send (e.g. with the
            files uploaded by then): a try that re-attaches uploads nothing
        :param remembered: the job id an earlier try of this task instance recorded (the task state store): read
            first, with one request, and used if the vendor still has it; otherwise the jobs are listed as above
        :param on_created: called with the job as soon as the create is answered (to record its id)
        :param final: refusals of the create raised at once, for the caller to handle, instead of being looked for
            and tried again (``FineTuningCapacityError`` when the task waits for room)
        """
        from airflow_provider_ft.core import submit

        operation = submit.submit_job(
            self.dialect,
            spec,
            identity,
            self._listing(),
            settle_delays,
            prepare=prepare,
            remembered=remembered,
            on_created=on_created,
            final=final,
        )
        submission: Submission = self._run(operation)
        return submission

    def find_jobs(self, spec: JobSpec, identity: TaskIdentity) -> list[FineTuningJob]:
        """Every job made for ``identity``, oldest first (how ``submit_job`` finds one again)."""
        from airflow_provider_ft.core.submit import jobs_of

        jobs: list[FineTuningJob] = self._run(jobs_of(self.dialect, spec, identity, self._listing()))
        return jobs

    def _listing(self) -> Listing:
        from airflow_provider_ft.core.submit import Listing

        return Listing(self.page_size, self.settings.max_pages, self.settings.retry.max_retries + 1, self.log)

    def check_training_file(self, source: Any, spec: JobSpec, *, what: str = "training_file") -> LocalFile:
        """Check a local file (path or ``ObjectStoragePath``) record by record for ``spec``'s data format, without
        reading it whole; ``TrainingFileError`` naming the first bad line. Sends nothing.

        :param source: the file
        :param spec: the job it is for (its method or training type decides the record format)
        :param what: the argument it came from, for messages
        """
        from airflow_provider_ft.training_files import check_training_file

        return check_training_file(source, self.dialect.record_check(spec), what=what)

    def upload_file(
        self, source: LocalFile, *, settle_delays: Sequence[float] = defaults.SETTLE_DELAYS
    ) -> tuple[RemoteFile, bool]:
        """The vendor's copy of a checked file (``check_training_file``) and whether this call uploaded it.

        An identical file uploaded before is used again, whatever its name: OpenAI, Azure OpenAI and Together AI
        find it by the first 16 hex digits of the content's SHA-256 in its name, and its size; DashScope by its
        description (``sha256:<hex>``). The body is streamed from the file. Like a create, an upload is sent once
        and looked for after a lost answer.

        :param source: the checked local file
        :param settle_delays: seconds to wait before each look after a lost answer
        """
        from airflow_provider_ft.core.submit import upload_file

        uploaded: tuple[RemoteFile, bool] = self._run(upload_file(self.dialect, source, self._listing(), settle_delays))
        return uploaded

    def delete_job(self, job_id: str) -> None:
        """Delete the job (DashScope). OpenAI has no job deletion: ``UnsupportedOperationError`` before sending."""
        self._run(_operations().delete_job(self.dialect, job_id))

    def new_events(
        self, job_id: str, after: str | None = None, *, max_pages: int | None = None, deadline: float | None = None
    ) -> tuple[list[JobEvent], str | None]:
        """The entries of the job's own progress log written after ``after``, oldest first, and the cursor to pass
        as ``after`` next time (OpenAI: the newest event's id; DashScope: the number of log lines read).

        Each call sends at most ``max_pages`` requests (default: the connection's ``max_pages``). On DashScope a
        longer log is read on by the next call; on OpenAI, whose events page from the newest back, the entries
        older than the newest ``max_pages`` pages are skipped, with a warning. A bad cursor fails with
        ``FineTuningConfigError`` before any request.

        :param job_id: the vendor's job id
        :param after: a cursor this method returned (``None``: from the first entry)
        :param max_pages: most requests this call sends
        :param deadline: ``time.monotonic()`` by which the call must be over, retries included
        """
        operation = self._events_operation(job_id, after, max_pages)
        return self._got_events(job_id, self._run(operation, deadline))

    async def anew_events(
        self,
        transport: AsyncTransport,
        job_id: str,
        after: str | None = None,
        *,
        max_pages: int | None = None,
        deadline: float | None = None,
    ) -> tuple[list[JobEvent], str | None]:
        """``new_events`` over an asyncio transport from ``async_transport()``."""
        batch = await self._arun(transport, self._events_operation(job_id, after, max_pages), deadline)
        return self._got_events(job_id, batch)

    def loss_metrics(self, job_id: str, *, deadline: float | None = None) -> list[LossPoint]:
        """The job's training and validation loss kept apart from its log (Together AI's metrics); ``[]`` where the
        log's entries carry them (read those with ``new_events``).

        :param job_id: the vendor's job id
        :param deadline: ``time.monotonic()`` by which the call must be over, retries included
        """
        points: list[LossPoint] = self._run(_operations().loss_metrics(self.dialect, job_id), deadline)
        return points

    def log_new_events(
        self, job_id: str, after: str | None, log: ProgressLog | None = None, *, deadline: float | None = None
    ) -> str | None:
        """Log each entry after ``after`` as one line and return the cursor to pass next time. A typed failure to
        read the log is logged at WARNING and ``after`` is returned (the next call tries again): the job's status,
        not its log, decides a wait."""
        try:
            events, cursor = self.new_events(job_id, after, deadline=deadline)
        except FineTuningError as error:
            return self._events_unread(job_id, after, error, log)
        self._log_events(job_id, events, log)
        return cursor

    async def alog_new_events(
        self,
        transport: AsyncTransport,
        job_id: str,
        after: str | None,
        log: ProgressLog | None = None,
        *,
        deadline: float | None = None,
    ) -> str | None:
        """``log_new_events`` over an asyncio transport from ``async_transport()``."""
        try:
            events, cursor = await self.anew_events(transport, job_id, after, deadline=deadline)
        except FineTuningError as error:
            return self._events_unread(job_id, after, error, log)
        self._log_events(job_id, events, log)
        return cursor

    def _events_operation(
        self, job_id: str, after: str | None, max_pages: int | None
    ) -> operations.Operation[operations.NewEvents]:
        pages = self.settings.max_pages if max_pages is None else _validate.whole_number("max_pages", max_pages)
        operation: operations.Operation[operations.NewEvents] = _operations().new_events(
            self.dialect, job_id, after, self.dialect.events_page_size, pages
        )
        return operation

    def _got_events(self, job_id: str, batch: operations.NewEvents) -> tuple[list[JobEvent], str | None]:
        if batch.skipped:
            self.log.warning(
                "The %s log of job %s grew by more than max_pages pages since it was last read; the entries "
                "between were not read",
                self.dialect.display_name,
                printable(job_id, 140),
            )
        return batch.events, batch.cursor

    def _log_events(self, job_id: str, events: list[JobEvent], log: ProgressLog | None) -> None:
        for event in events:
            event.log(log or self.log, job_id)

    def _events_unread(self, job_id: str, after: str | None, error: Exception, log: ProgressLog | None) -> str | None:
        (log or self.log).warning(
            "Could not read the progress log of job %s this time, will try again at the next poll: %s",
            printable(job_id, 140),
            printable(error, 1000),
        )
        return after

    def wait_for_job(
        self,
        job_id: str,
        poll_interval: float = 30.0,
        timeout: float | None = None,
        *,
        log_events: bool = True,
        budget: JobBudget | None = None,
    ) -> FineTuningJob:
        """Poll until the job is terminal and return it.

        Errors the vendor may recover from (rate limits, 5xx, lost connections) that outlast the per-call retries
        are logged and polling goes on; anything else is raised. The timeout bounds the polls' retries too.

        :param poll_interval: seconds between polls
        :param timeout: seconds to wait at most (``None``: no limit); ``FineTuningTimeout`` after that
        :param log_events: after each poll that read the job, log the entries of the vendor's own progress log
            (events; DashScope: log lines) not logged before, one line each, oldest first; a failure to read
            them is logged at WARNING and never ends the wait
        :param budget: cost guards checked after each poll that read the job: past one, the job is cancelled
            and ``FineTuningBudgetExceeded`` names the limit
        """
        from airflow_provider_ft.core.watch import Verdict, Watch

        poll_interval = _validate.seconds("poll_interval", poll_interval)
        timeout = _validate.optional_seconds("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        watch = Watch(job_id, budget or JobBudget())
        cursor: str | None = None
        while True:
            polled = self.poll_job(job_id, deadline=deadline)
            if not isinstance(polled, FineTuningApiError):
                if log_events:
                    cursor = self.log_new_events(job_id, cursor, deadline=deadline)
                polled.log_progress(self.log)
            look = watch.conclude(polled)
            if look.verdict is Verdict.OVER_BUDGET:
                self._cancel_over_budget(polled, look.reason or "")
            if look.verdict is Verdict.ENDED and look.job is not None:
                return look.job
            if deadline is not None and time.monotonic() + poll_interval > deadline:
                raise FineTuningTimeout(f"Job {job_id} did not reach a terminal state within {timeout:g} s")
            time.sleep(poll_interval)

    def budget(
        self,
        *,
        max_trained_tokens: int | None = None,
        max_runtime: float | None = None,
        max_cost: float | None = None,
    ) -> JobBudget:
        """The cost guards of a job on this connection, ``max_cost`` measured with the connection's ``price``.

        ``FineTuningConfigError`` for a guard that is not a valid limit, and for ``max_cost`` on a connection that
        gives no price (or a bad one): read before anything is sent, so a task fails before it starts a job.

        :param max_trained_tokens: most tokens the job may train (``None``: no limit)
        :param max_runtime: most seconds from the job's creation (``None``: no limit)
        :param max_cost: most the job may cost, in the connection's ``currency`` (``None``: no limit)
        """
        price = None if max_cost is None else self.price
        if max_cost is not None and price is None:
            raise FineTuningConfigError(
                f"max_cost needs a price: connection {self.conn_id!r} gives none; set its extra "
                "price_per_million_tokens (and currency) to what the vendor charges per million trained tokens"
            )
        try:
            return JobBudget(max_trained_tokens, max_runtime, max_cost, price)
        except ValueError as error:
            raise FineTuningConfigError(str(error)) from None

    def enforce_budget(self, job: FineTuningJob, budget: JobBudget) -> None:
        """If ``job`` has passed a limit of ``budget``, cancel it (unless it has finished) and raise
        ``FineTuningBudgetExceeded`` naming the limit."""
        reason = budget.exceeded(job, datetime.now(UTC))
        if reason is not None:
            self._cancel_over_budget(job, reason)

    def _cancel_over_budget(self, job: Any, reason: str) -> None:
        from airflow_provider_ft.core.watch import budget_message, was_cancelled

        if not job.is_terminal:
            self.log.warning("Job %s passed %s; cancelling it", printable(job.id, 140), reason)
            job = self.cancel_job(job.id)
        message = budget_message(job.id, reason, job, was_cancelled(job))
        raise FineTuningBudgetExceeded(message, job.to_dict())

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call (list one job). The message never contains the API key.

        Airflow's UI and REST API test a connection under a random id, so the messages say what is wrong without
        naming the connection.
        """
        try:
            settings = _settings_from(self.get_connection(self.conn_id), name=None)
            transport = _transports().SyncTransport(settings)
            try:
                _operations().run(_operations().list_page(settings.dialect, None, 1, {}), transport.send)
            finally:
                transport.close()
        except Exception as error:
            message = str(error)
            if self._settings is not None:
                message = self._settings.scrubber.text(message)
            return False, printable(message, 1000)
        return True, f"Connected to {settings.dialect.display_name} at {settings.base_url}"

    def console_url(self, job_id: str) -> str:
        """Where a person can see the job in the vendor's web console; ``""`` when the connection's host is not
        the vendor's API (a gateway, a proxy, the emulator), whose console this provider cannot know.

        :param job_id: the vendor's job id
        """
        return self.dialect.console_url(job_id, self.settings.base_url)

    def _check_filters(self, filters: dict[str, Any]) -> None:
        unknown = set(filters) - set(self.dialect.list_filters)
        if unknown:
            supported = ", ".join(self.dialect.list_filters) or "none"
            raise FineTuningConfigError(
                f"{self.dialect.display_name} cannot filter jobs by {', '.join(sorted(unknown))}; "
                f"it filters by: {supported}"
            )


def _job_id(job: FineTuningJob) -> str:
    return job.id
