"""``FineTuningJobSensor``: wait for a fine-tuning job to reach a terminal state (poke, reschedule or deferrable).

Kept light at import time (DAG parsing imports it): the hook is imported when first used and the trigger module
only by a task about to defer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_ft import _validate, defaults
from airflow_provider_ft._compat import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    default_deferrable,
)
from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import (
    FineTuningApiError,
    FineTuningBudgetExceeded,
    FineTuningError,
    FineTuningJobFailed,
    JobNotFoundError,
)
from airflow_provider_ft.jobs import JobBudget, JobStatus
from airflow_provider_ft.links import FineTuningJobLink
from airflow_provider_ft.triggers.events import not_found_message, terminal_job_from_event

if TYPE_CHECKING:
    from airflow_provider_ft._compat import Context
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
    from airflow_provider_ft.identity import TaskInstanceRef
    from airflow_provider_ft.jobs import FineTuningJob


_FAILED_STATUSES = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})


class FineTuningJobSensor(BaseSensorOperator):
    """Wait until a fine-tuning job (DashScope, OpenAI, Azure OpenAI, Together AI) reaches a terminal state
    (``SUCCEEDED``, ``FAILED``, ``CANCELLED``) and return the final job, as ``FineTuningJob.to_dict()``, to XCom.

    Each check logs one progress line (status, trained tokens, estimated finish, fine-tuned model, as the vendor
    reports them). A ``PAUSED`` job (OpenAI pause, DashScope ``SUSPENDED``) is not terminal: each check logs that it
    is paused and makes no progress until it is resumed, and the sensor keeps waiting (``timeout`` still holds).
    A job whose status the provider does not know (``UNKNOWN``) is not terminal either: the sensor warns and keeps
    waiting. An error the vendor may recover from (rate limit, 5xx, lost connection) that outlasts the
    hook's own retries is logged and the job is checked again at the next poke; a missing job
    (``JobNotFoundError``), a rejected key or an invalid job id fails the task at once.

    Modes:

    - ``mode="poke"`` (default): checks every ``poke_interval`` seconds, holding a worker slot.
    - ``mode="reschedule"``: frees the worker slot between checks.
    - ``deferrable=True``: checks once in the worker, finishes at once if the job is already terminal, else hands
      the wait to ``FineTuningJobTrigger`` in the triggerer and resumes in ``execute_complete``.

    ``timeout`` holds in every mode and fails the task with ``AirflowSensorTimeout`` (not retried; skipped with
    ``soft_fail``). In deferrable mode it becomes an absolute deadline of the trigger, counted from the start of
    the task's try, so a trigger re-created after a triggerer restart keeps it.

    :param job_id: the vendor's job id (templated)
    :param conn_id: the Airflow connection of the vendor account; its type selects the vendor (templated)
    :param poke_interval: seconds between checks (must be positive; also the trigger's poll interval)
    :param timeout: seconds to wait at most before failing with ``AirflowSensorTimeout``
        (default ``[sensors] default_timeout``, 7 days)
    :param mode: ``poke`` or ``reschedule`` (ignored when ``deferrable``)
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``
    :param log_events: log the entries of the vendor's own progress log (events; DashScope: log lines),
        one line each, oldest first, each once: in ``poke`` mode after each check (the cursor is kept on the
        sensor), and in deferrable mode by the check before deferring and then in the triggerer, which starts
        where that check stopped. In ``reschedule`` mode they are not logged (each check
        starts afresh, so it would repeat them). A failure to read them is logged at WARNING and never fails the
        task.
    :param fail_on_failure: if ``True`` (default) a job that ends ``FAILED`` or ``CANCELLED`` fails the task with
        ``FineTuningJobFailed``, carrying the vendor's error message and the job (``.job``); if ``False`` any
        terminal state succeeds (for teardown and reporting flows), and downstream tasks read the status from XCom
    :param cancel_on_kill: cancel the job when the task is killed (marked failed or success, or its
        ``execution_timeout`` passes) while it waits. Off by default: the sensor did not start the job. In ``poke``
        mode the task's ``on_kill`` cancels it; in ``reschedule`` mode only a kill during a check can (between
        checks no process runs, and nothing is called); in deferrable mode the trigger's ``on_kill`` does, which
        only Airflow 3.3 and later call: on older versions a job whose deferred task is killed keeps running
        (cancel it from a teardown task with ``CancelFineTuningJobOperator``). Either ``on_kill`` first reads the
        task instance's state from Airflow and cancels only if it has ended: a retry or a clear waits on the same
        job, and a frozen worker or triggerer that resumes after its work went elsewhere is no kill (see
        ``airflow_provider_ft.kill``)
    :param cancel_on_timeout: cancel the job when ``timeout`` passes, before the task fails with
        ``AirflowSensorTimeout`` (or is skipped with ``soft_fail``); in deferrable mode the trigger cancels it
    :param max_trained_tokens: cost guard: once the vendor reports more trained tokens than this, cancel the job
        (unless it has already ended) and fail with ``FineTuningBudgetExceeded``. Both vendors report them mostly
        once a job has ended, so this mostly fails a job that ended over budget
    :param max_cost: cost guard: once the job's trained tokens cost more than this at the connection's price
        (extras ``price_per_million_tokens`` and ``currency``), cancel the job (unless it has already ended) and fail
        with ``FineTuningBudgetExceeded``. Measured on the same tokens, so it too mostly fails a job that ended over
        budget; a connection without a price fails the first check, before the job is read
    :param max_runtime: cost guard: seconds (or a ``timedelta``) from the job's creation, as the vendor reports it,
        after which a job still running is cancelled and the task fails with ``FineTuningBudgetExceeded``
    """

    template_fields: Sequence[str] = ("job_id", "conn_id")
    operator_extra_links = (FineTuningJobLink(),)
    ui_color = "#e8dff5"

    def __init__(
        self,
        *,
        job_id: str,
        conn_id: str = defaults.DEFAULT_CONN_ID,
        poke_interval: timedelta | float = 60,
        timeout: timedelta | float | None = None,
        mode: str = "poke",
        deferrable: bool | None = None,
        fail_on_failure: bool = True,
        log_events: bool = True,
        cancel_on_kill: bool = False,
        cancel_on_timeout: bool = False,
        max_trained_tokens: int | None = None,
        max_cost: float | None = None,
        max_runtime: timedelta | float | None = None,
        **kwargs: Any,
    ) -> None:
        if timeout is not None:  # None: the base class's default ([sensors] default_timeout) or a default_args one
            kwargs["timeout"] = timeout
        super().__init__(poke_interval=_validate.seconds("poke_interval", poke_interval), mode=mode, **kwargs)
        self.job_id = job_id
        self.conn_id = conn_id
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)
        self.fail_on_failure = fail_on_failure
        self.log_events = bool(log_events)
        self.cancel_on_kill = _validate.flag("cancel_on_kill", cancel_on_kill)
        self.cancel_on_timeout = _validate.flag("cancel_on_timeout", cancel_on_timeout)
        self.max_trained_tokens = (
            None if max_trained_tokens is None else _validate.whole_number("max_trained_tokens", max_trained_tokens)
        )
        self.max_cost = _validate.optional_amount("max_cost", max_cost)
        self.max_runtime = _validate.optional_seconds("max_runtime", max_runtime)
        self._deadline: float | None = None
        self._events_cursor: str | None = None
        self._task_instance: TaskInstanceRef | None = None

    @cached_property
    def hook(self) -> FineTuningHook:
        """The hook for ``conn_id`` (created on first use, after templates are rendered)."""
        from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

        return FineTuningHook(self.conn_id)

    # -- poke and reschedule ------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        # Bounds the retries of each check too: no request is retried, and no Retry-After obeyed, past it.
        self._deadline = time.monotonic() + self.timeout
        self._task_instance = context["ti"]  # on_kill reads its state
        try:
            self._persist_link(context)
            if self.deferrable:
                return self._execute_deferrable(context)
            return self._execute_checks(context)
        finally:
            self.hook.close()  # its HTTP session; the hook itself costs nothing to make

    def _execute_checks(self, context: Context) -> Any:
        """Poke or reschedule; with ``cancel_on_timeout``, cancel the job when the sensor times out."""
        try:
            return super().execute(context)
        except (AirflowSensorTimeout, AirflowSkipException) as error:
            # The base class raises AirflowSensorTimeout on timeout, or with soft_fail an AirflowSkipException of
            # its own; a skip it raises for an error of poke() has that error as its cause.
            timed_out = isinstance(error, AirflowSensorTimeout) or error.__cause__ is None
            if self.cancel_on_timeout and timed_out:
                self._cancel("the sensor timed out")
            raise

    @property
    def budget(self) -> JobBudget:
        """The cost guards (``max_trained_tokens``, ``max_cost`` at the connection's price, ``max_runtime``)."""
        return self.hook.budget(
            max_trained_tokens=self.max_trained_tokens, max_runtime=self.max_runtime, max_cost=self.max_cost
        )

    def on_kill(self) -> None:
        """Cancel the job if ``cancel_on_kill`` and the kill is confirmed (the task was killed while it checked or
        waited between pokes): as the create operator's ``on_kill``, only once the task instance has ended, or on
        this try's own ``execution_timeout``; a retry, a clear, or a frozen worker that resumes after the retry took
        over, leave the job running."""
        if not self.cancel_on_kill:
            return
        from airflow_provider_ft.kill import confirm_kill

        if confirm_kill(self._task_instance, self.log, f"fine-tuning job {printable(self.job_id, 140)}").cancel:
            self._cancel("the task was killed")

    def _cancel(self, why: str) -> FineTuningJob | None:
        """Cancel the job: the job as it stands after, or ``None`` if that failed (logged, never raised). Uses a hook
        of its own (the connection as already read): ``on_kill`` may interrupt a check in progress."""
        from airflow_provider_ft.core.watch import guard_cancel

        def cancel() -> FineTuningJob:
            hook = self.hook.fork()
            try:
                return hook.cancel_job(self.job_id)
            finally:
                hook.close()

        return guard_cancel(cancel, self.log, self.job_id, why)

    def _persist_link(self, context: Context) -> None:
        """Store the job's console URL for the extra link (again on each run: a reschedule clears XComs)."""
        try:
            url = self.hook.console_url(self.job_id)
        except FineTuningError as error:
            # An unusable connection: the first check raises it with the full story, the link is just left out.
            self.log.debug("No console link for job %s: %s", self.job_id, error)
            return
        FineTuningJobLink.persist(context, url, conn_id=self.conn_id, job_id=self.job_id)

    def poke(self, context: Context) -> PokeReturnValue:
        """Check the job once: done (with the final job as XCom value) when it is terminal."""
        job = self._check(log_events=self.log_events and self.mode == "poke")
        if job is None or not job.is_terminal:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._finish(job.to_dict()))

    def _check(self, *, log_events: bool) -> FineTuningJob | None:
        """The job as it stands, or ``None`` if it could not be read this time (a transient error); the vendor's new
        progress entries (``log_events``), then the progress line, are logged; a passed cost guard cancels the job
        (unless it has ended) and fails with ``FineTuningBudgetExceeded``."""
        from airflow_provider_ft.core.watch import Verdict, Watch, budget_message, was_cancelled

        budget = self.budget  # a max_cost without a price on the connection fails here, before the job is read
        try:
            polled = self.hook.poll_job(self.job_id, deadline=self._deadline)
        except JobNotFoundError as error:
            raise JobNotFoundError(
                not_found_message(self.job_id, self.conn_id, error.message),
                http_status=error.http_status,
                vendor_code=error.vendor_code,
                request_id=error.request_id,
            ) from error
        if isinstance(polled, FineTuningApiError):
            return None
        if log_events:
            self._events_cursor = self.hook.log_new_events(
                self.job_id, self._events_cursor, self.log, deadline=self._deadline
            )
        polled.log_progress(self.log)
        look = Watch(self.job_id, budget).conclude(polled)
        if look.verdict is Verdict.OVER_BUDGET:
            reason = look.reason or ""
            after = None if polled.is_terminal else self._cancel(f"it passed its budget, {reason}")
            job = after or polled
            message = budget_message(self.job_id, reason, job, was_cancelled(after))
            raise FineTuningBudgetExceeded(message, job=job.to_dict())
        return polled

    def _finish(self, job: dict[str, Any]) -> dict[str, Any]:
        """Apply ``fail_on_failure`` to a terminal job and return it (the task's XCom value)."""
        status = JobStatus.parse(str(job.get("status")))
        job_id = job.get("id") or self.job_id
        if status in _FAILED_STATUSES:
            reason = printable(job.get("error") or "the vendor gave no reason", 500)
            ended = "was cancelled" if status is JobStatus.CANCELLED else "failed"
            word = printable(job.get("vendor_status") or status.value, 64)
            message = f"Fine-tuning job {printable(job_id, 140)} {ended} ({word}): {reason}"
            if self.fail_on_failure:
                raise FineTuningJobFailed(message, job=job)
            self.log.warning("%s; succeeding anyway because fail_on_failure is False", message)
        else:
            self.log.info("Fine-tuning job %s %s", printable(job_id, 140), status.value)
        return job

    # -- deferrable ------------------------------------------------------------------------------------------

    def _execute_deferrable(self, context: Context) -> Any:
        from airflow_provider_ft.triggers.events import defer_watching

        deadline = time.time() + self.timeout
        job = self._check(log_events=self.log_events)
        if job is not None and job.is_terminal:
            return self._finish(job.to_dict())
        defer_watching(
            self, self.job_id, poll_interval=self.poke_interval, deadline=deadline, events_after=self._events_cursor
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after ``FineTuningJobTrigger`` fired: the final job, or a clear error.

        A ``timeout`` event raises ``AirflowSensorTimeout`` (as the sensor does in the other modes; the message says
        whether the trigger cancelled the job); a ``budget`` event raises ``FineTuningBudgetExceeded``; an ``error``
        event raises the error the trigger met (``JobNotFoundError``, ``FineTuningApiError``, ...).
        """
        job = terminal_job_from_event(
            event,
            job_id=self.job_id,
            timeout_error=lambda message: AirflowSensorTimeout(
                f"Sensor has timed out after {self.timeout} s: {message}"
            ),
        )
        self.log.info("%s", event.get("message") if event else f"Job {job.get('id')} is {job.get('status')}")
        return self._finish(job)
