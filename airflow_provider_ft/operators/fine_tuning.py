"""Operators that cancel, delete and clean up fine-tuning jobs on any vendor the hook supports.

They are thin: the hook knows the vendors; these decide what to call, log it, and return JSON to XCom.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_ft._compat import BaseOperator, default_deferrable
from airflow_provider_ft.exceptions import (
    FineTuningApiError,
    FineTuningConfigError,
    FineTuningError,
    FineTuningTimeout,
    JobNotFoundError,
)
from airflow_provider_ft.jobs import FineTuningJob, JobStatus
from airflow_provider_ft.links import FineTuningJobLink
from airflow_provider_ft.operators._cleanup import (
    PAST_TENSE,
    CleanupCriteria,
    JobOutcome,
    build_summary,
    format_table,
    is_template,
    parse_action,
    parse_metadata,
    parse_older_than,
    parse_optional_text,
    parse_positive_int,
    parse_statuses,
    select_stale_jobs,
)
from airflow_provider_ft.vendors.base import validate_job_id

if TYPE_CHECKING:
    from airflow_provider_ft._compat import Context
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

T = TypeVar("T")

DEFAULT_CONN_ID = "dashscope_default"
DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_RATE_LIMIT_PATIENCE = 600.0
CLEANUP_SUMMARY_XCOM_KEY = "cleanup_summary"
_MAX_BACKOFF = 30.0


def _make_hook(conn_id: str) -> FineTuningHook:
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

    return FineTuningHook(conn_id)


def _check_wait_arguments(poll_interval: float, timeout: float | None) -> None:
    if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float) or poll_interval <= 0:
        raise FineTuningConfigError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        raise FineTuningConfigError(f"timeout must be a positive number of seconds or None, got {timeout!r}")


class _JobOperator(BaseOperator):
    """What the single-job operators share: the job id, the connection, the hook and the console link."""

    template_fields: Sequence[str] = ("job_id", "conn_id")
    operator_extra_links = (FineTuningJobLink(),)

    def __init__(self, *, job_id: str, conn_id: str, ignore_if_missing: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.conn_id = conn_id
        self.ignore_if_missing = ignore_if_missing

    @cached_property
    def hook(self) -> FineTuningHook:
        return _make_hook(self.conn_id)

    def _start(self, context: Context) -> str:
        """Validate the rendered job id and store the console link; the job id."""
        job_id = validate_job_id(self.job_id)
        FineTuningJobLink.persist(context, self.hook.console_url(job_id))
        return job_id

    def _wait(self, job_id: str, poll_interval: float, timeout: float | None) -> FineTuningJob:
        self.log.info("Waiting for job %s to reach a terminal state (poll every %s s)", job_id, poll_interval)
        return self.hook.wait_for_job(job_id, poll_interval=poll_interval, timeout=timeout)

    def _missing(self, job_id: str, error: JobNotFoundError) -> None:
        if not self.ignore_if_missing:
            raise error
        self.log.info("Job %s does not exist; nothing to do (ignore_if_missing=True)", job_id)


class CancelFineTuningJobOperator(_JobOperator):
    """Cancel a fine-tuning job; its state afterwards (``FineTuningJob.to_dict()``) goes to XCom.

    Idempotent, so safe as a teardown task and on retries: a job that is already finished is logged and
    returned as it is, without a cancel request. Works with every vendor of the connection.

    :param job_id: the vendor's job id (templated, e.g. from a setup task's XCom)
    :param conn_id: the fine-tuning connection (templated); its type selects the vendor
    :param wait_for_termination: wait until the job is terminal (vendors cancel asynchronously)
    :param poll_interval: seconds between polls while waiting
    :param timeout: seconds to wait at most (``None``: no limit); ``FineTuningTimeout`` after that
    :param deferrable: wait in the triggerer (``FineTuningJobTrigger``) instead of the worker, freeing the worker
        slot (default: ``[operators] default_deferrable``); only matters with ``wait_for_termination``
    :param ignore_if_missing: a job that does not exist is a logged success returning ``None``, not
        ``JobNotFoundError``
    """

    def __init__(
        self,
        *,
        job_id: str,
        conn_id: str = DEFAULT_CONN_ID,
        wait_for_termination: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = None,
        deferrable: bool | None = None,
        ignore_if_missing: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(job_id=job_id, conn_id=conn_id, ignore_if_missing=ignore_if_missing, **kwargs)
        _check_wait_arguments(poll_interval, timeout)
        self.wait_for_termination = wait_for_termination
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def execute(self, context: Context) -> dict[str, Any] | None:
        job_id = self._start(context)
        try:
            job = self._cancel(job_id)
        except JobNotFoundError as error:
            self._missing(job_id, error)
            return None
        if self.wait_for_termination and not job.is_terminal:
            job = self._wait_until_terminal(job)
        return job.to_dict()

    def _cancel(self, job_id: str) -> FineTuningJob:
        job = self.hook.get_job(job_id)
        if job.is_terminal:
            self.log.info("Job %s is already %s; nothing to cancel", job_id, job.status.value)
            return job
        job = self.hook.cancel_job(job_id)
        self.log.info("Asked %s to cancel: %s", self.hook.dialect.display_name, job.describe_progress())
        return job

    def _wait_until_terminal(self, job: FineTuningJob) -> FineTuningJob:
        """Wait in the worker, or defer to ``FineTuningJobTrigger`` (the task resumes in ``execute_complete``)."""
        if not self.deferrable:
            return self._wait(job.id, self.poll_interval, self.timeout)
        from airflow_provider_ft.triggers.events import deferral_timeout
        from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger

        deadline = None if self.timeout is None else time.time() + self.timeout
        self.log.info("Deferring until job %s is terminal: %s", job.id, job.describe_progress())
        self.defer(
            trigger=FineTuningJobTrigger(
                conn_id=self.conn_id, job_id=job.id, poll_interval=self.poll_interval, deadline=deadline
            ),
            method_name="execute_complete",
            timeout=deferral_timeout(deadline),
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Finish after the trigger fired: the terminal job, or the trigger's timeout or error raised.

        :param context: the task's context
        :param event: the trigger's payload (``status``: ``success``, ``timeout`` or ``error``; ``job``; ``message``)
        """
        from airflow_provider_ft.triggers.events import terminal_job_from_event

        job = terminal_job_from_event(event, job_id=self.job_id, timeout_error=FineTuningTimeout)
        self.log.info("Job %s is %s", job.get("id"), job.get("status"))
        return job


class DeleteFineTuningJobOperator(_JobOperator):
    """Delete a fine-tuning job (DashScope); ``{"id", "deleted", "reason"}`` goes to XCom.

    A vendor whose API cannot delete jobs (OpenAI) fails with ``UnsupportedOperationError`` before any request
    is sent: use ``CancelFineTuningJobOperator`` there. Safe as a teardown task with ``cancel_if_running`` and
    ``ignore_if_missing``.

    :param job_id: the vendor's job id (templated, e.g. from a setup task's XCom)
    :param conn_id: the fine-tuning connection (templated); its type selects the vendor
    :param cancel_if_running: a job that is not finished is cancelled and waited for, then deleted (vendors
        refuse to delete a job that is still running)
    :param ignore_if_missing: a job that does not exist is a logged success (``deleted`` false, reason
        ``"not found"``), not ``JobNotFoundError``
    :param poll_interval: seconds between polls while waiting for a cancelled job to stop
    :param timeout: seconds to wait for it at most (``None``: no limit); ``FineTuningTimeout`` after that
    """

    def __init__(
        self,
        *,
        job_id: str,
        conn_id: str = DEFAULT_CONN_ID,
        cancel_if_running: bool = False,
        ignore_if_missing: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(job_id=job_id, conn_id=conn_id, ignore_if_missing=ignore_if_missing, **kwargs)
        _check_wait_arguments(poll_interval, timeout)
        self.cancel_if_running = cancel_if_running
        self.poll_interval = poll_interval
        self.timeout = timeout

    def execute(self, context: Context) -> dict[str, Any]:
        self.hook.dialect.ensure_can_delete()
        job_id = self._start(context)
        try:
            if self.cancel_if_running:
                self._stop(job_id)
            self._delete(job_id)
        except JobNotFoundError as error:
            self._missing(job_id, error)
            return {"id": job_id, "deleted": False, "reason": "not found"}
        self.log.info("Deleted job %s", job_id)
        return {"id": job_id, "deleted": True, "reason": None}

    def _stop(self, job_id: str) -> None:
        job = self.hook.get_job(job_id)
        if job.is_terminal:
            return
        self.log.info("Job %s is %s; cancelling it before deleting it", job_id, job.status.value)
        if not self.hook.cancel_job(job_id).is_terminal:
            self._wait(job_id, self.poll_interval, self.timeout)

    def _delete(self, job_id: str) -> None:
        try:
            self.hook.delete_job(job_id)
        except FineTuningApiError as error:
            if not self.hook.dialect.refuses_in_current_state(error):
                raise
            raise FineTuningError(
                f"{self.hook.dialect.display_name} refused to delete job {job_id}, most likely because it is not "
                f"finished; set cancel_if_running=True to cancel it first ({error})"
            ) from error


class CleanupFineTuningJobsOperator(BaseOperator):
    """Cancel or delete stale fine-tuning jobs: a scheduled sweep with filters, a safety cap and a dry run.

    Lists every job first (filters the vendor supports are applied server-side too), selects the stale ones
    with ``select_stale_jobs``, then acts on each with at most ``concurrency`` calls at a time, going on past a
    job that fails. Returns a summary to XCom (also pushed under the key ``cleanup_summary``, even when the task
    fails)::

        {"action", "dry_run", "seen", "matched", "acted", "skipped", "failed",
         "acted_ids": [...], "skipped_ids": {id: reason}, "failures": {id: error}}

    ``seen`` counts the jobs listed. A job is *skipped* when it was matched but not acted on: in a dry run,
    when it finished or vanished before it was reached, or when rate limits outlasted ``rate_limit_patience``.
    After trying every job the task fails if any job failed, naming them. A rate limit (HTTP 429) only slows
    the sweep down; it never counts as a failed job.

    :param conn_id: the fine-tuning connection (templated); its type selects the vendor
    :param action: ``"cancel"`` or ``"delete"`` (deleting needs a vendor that can, e.g. DashScope)
    :param older_than: act only on jobs created longer ago than this
    :param statuses: normalized status names to act on (templated; a list, or a comma-separated string).
        Default for ``cancel``: QUEUED, RUNNING, PAUSED; for ``delete``: SUCCEEDED, FAILED, CANCELLED. Cancel
        accepts only unfinished statuses and delete only finished ones.
    :param name_pattern: shell-style pattern (``fnmatch``: ``*``, ``?``, ``[seq]``; case-sensitive) the whole
        job name must match (templated); jobs without a name never match a pattern
    :param model: the exact base model of the jobs to act on (templated)
    :param metadata: key/value pairs a job's metadata must all contain (templated; OpenAI has job metadata,
        jobs of vendors without it never match)
    :param max_jobs: safety cap: if more jobs match, act on none and fail saying so
    :param dry_run: only report what would be done; no cancel or delete request is sent (stored as
        ``is_dry_run``: ``BaseOperator.dry_run`` is a method)
    :param concurrency: most calls in flight at once (each worker thread has its own HTTP session)
    :param rate_limit_patience: seconds to keep retrying one job's call while the vendor answers 429 after the
        hook's own retries; after that the job is skipped (and left for the next run), not failed
    """

    template_fields: Sequence[str] = ("conn_id", "statuses", "name_pattern", "model", "metadata")

    def __init__(
        self,
        *,
        older_than: timedelta,
        conn_id: str = DEFAULT_CONN_ID,
        action: str = "cancel",
        statuses: Iterable[str | JobStatus] | str | None = None,
        name_pattern: str | None = None,
        model: str | None = None,
        metadata: Mapping[str, str] | None = None,
        max_jobs: int = 100,
        dry_run: bool = False,
        concurrency: int = 4,
        rate_limit_patience: float = DEFAULT_RATE_LIMIT_PATIENCE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.action = parse_action(action)
        self.older_than = parse_older_than(older_than)
        self.statuses = statuses if statuses is None or isinstance(statuses, str) else list(statuses)
        self.name_pattern = name_pattern
        self.model = model
        self.metadata = metadata
        self.max_jobs = parse_positive_int("max_jobs", max_jobs)
        self.is_dry_run = bool(dry_run)
        self.concurrency = parse_positive_int("concurrency", concurrency)
        if (
            isinstance(rate_limit_patience, bool)
            or not isinstance(rate_limit_patience, int | float)
            or not rate_limit_patience >= 0
        ):
            raise FineTuningConfigError(
                f"rate_limit_patience must be a number of seconds (0 or more), got {rate_limit_patience!r}"
            )
        self.rate_limit_patience = float(rate_limit_patience)
        self._criteria(allow_templates=True)

    @cached_property
    def hook(self) -> FineTuningHook:
        return _make_hook(self.conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        criteria = self._criteria(allow_templates=False)
        if self.action == "delete":
            self.hook.dialect.ensure_can_delete()
        try:
            jobs = self._list(criteria)
        finally:
            self.hook.close()
        now = datetime.now(UTC)
        matched = select_stale_jobs(jobs, criteria, now)
        outcomes = self._outcomes(matched)
        summary = build_summary(self.action, self.is_dry_run, len(jobs), matched, outcomes)
        self._report(summary, matched, outcomes, now)
        context["ti"].xcom_push(key=CLEANUP_SUMMARY_XCOM_KEY, value=summary)
        self._raise_for_problems(summary, len(matched))
        return summary

    def _criteria(self, *, allow_templates: bool) -> CleanupCriteria:
        """Validate the (rendered) filters; at parse time Jinja strings are left for execute to check."""

        def unless_template(parse: Callable[[object], T], value: object, fallback: T) -> T:
            return fallback if allow_templates and is_template(value) else parse(value)

        return CleanupCriteria(
            statuses=unless_template(lambda v: parse_statuses(v, self.action), self.statuses, frozenset()),
            older_than=self.older_than,
            name_pattern=unless_template(lambda v: parse_optional_text("name_pattern", v), self.name_pattern, None),
            model=unless_template(lambda v: parse_optional_text("model", v), self.model, None),
            metadata=unless_template(parse_metadata, self.metadata, ()),
        )

    def _list(self, criteria: CleanupCriteria) -> list[FineTuningJob]:
        filters = criteria.server_filters(self.hook.dialect.list_filters)
        if criteria.metadata and "metadata" not in self.hook.dialect.list_filters:
            self.log.warning(
                "%s jobs have no metadata: with a metadata filter no job can match", self.hook.dialect.display_name
            )
        jobs = call_patiently(lambda: list(self.hook.list_jobs(**filters)), self.rate_limit_patience, self.log)
        self.log.info("Listed %d jobs on %s (server-side filters: %s)", len(jobs), self.conn_id, filters or "none")
        return jobs

    def _outcomes(self, matched: Sequence[FineTuningJob]) -> dict[str, JobOutcome]:
        if len(matched) > self.max_jobs:
            reason = f"not acted on: {len(matched)} jobs matched, more than max_jobs={self.max_jobs}"
            return {job.id: JobOutcome("skipped", reason) for job in matched}
        if self.is_dry_run:
            return {job.id: JobOutcome("skipped", f"dry run: would {self.action}") for job in matched}
        return self._act_on_all(matched)

    def _act_on_all(self, matched: Sequence[FineTuningJob]) -> dict[str, JobOutcome]:
        if not matched:
            return {}
        hooks = HookPerThread(lambda: _make_hook(self.conn_id))
        try:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(matched))) as pool:
                results = pool.map(lambda job: self._act_on(hooks.get(), job), matched)
                return {job.id: outcome for job, outcome in zip(matched, results, strict=True)}
        finally:
            hooks.close()

    def _act_on(self, hook: FineTuningHook, job: FineTuningJob) -> JobOutcome:
        act = _cancel if self.action == "cancel" else _delete
        try:
            outcome = call_patiently(lambda: act(hook, job.id), self.rate_limit_patience, self.log)
        except JobNotFoundError:
            outcome = JobOutcome("skipped", "no longer exists")
        except FineTuningApiError as error:
            outcome = _rate_limited(error, self.rate_limit_patience) or JobOutcome("failed", str(error))
        except Exception as error:
            outcome = JobOutcome("failed", f"{type(error).__name__}: {error}")
        self.log.info("Job %s: %s", job.id, outcome.describe())
        return outcome

    def _report(
        self,
        summary: Mapping[str, Any],
        matched: Sequence[FineTuningJob],
        outcomes: Mapping[str, JobOutcome],
        now: datetime,
    ) -> None:
        mode = " (dry run)" if self.is_dry_run else ""
        self.log.info(
            "Cleanup %s%s on %s: seen %d, matched %d, acted %d, skipped %d, failed %d\n%s",
            self.action,
            mode,
            self.conn_id,
            summary["seen"],
            summary["matched"],
            summary["acted"],
            summary["skipped"],
            summary["failed"],
            format_table(matched, outcomes, now) if matched else "(no job matched)",
        )

    def _raise_for_problems(self, summary: Mapping[str, Any], matched: int) -> None:
        if matched > self.max_jobs:
            raise FineTuningError(
                f"Refusing to {self.action} {matched} jobs: more than max_jobs={self.max_jobs} matched, so none was "
                "touched. Narrow the filters (older_than, statuses, name_pattern, model, metadata) or raise max_jobs."
            )
        failures: Mapping[str, str] = summary["failures"]
        if failures:
            listed = "; ".join(f"{job_id}: {message}" for job_id, message in failures.items())
            raise FineTuningError(
                f"Could not {self.action} {len(failures)} of {summary['matched']} matched jobs "
                f"({summary['acted']} {PAST_TENSE[self.action]}): {listed}"
            )


def _cancel(hook: FineTuningHook, job_id: str) -> JobOutcome:
    job = hook.cancel_job(job_id)
    if job.is_terminal and job.status is not JobStatus.CANCELLED:
        return JobOutcome("skipped", f"already {job.status.value}")
    return JobOutcome("acted", f"cancelled ({job.status.value})")


def _delete(hook: FineTuningHook, job_id: str) -> JobOutcome:
    hook.delete_job(job_id)
    return JobOutcome("acted", "deleted")


def _is_rate_limit(error: BaseException) -> bool:
    return isinstance(error, FineTuningApiError) and error.rate_limited


def _rate_limited(error: FineTuningApiError, patience: float) -> JobOutcome | None:
    if not _is_rate_limit(error):
        return None
    return JobOutcome("skipped", f"rate limited for over {patience:g} s; left for the next run ({error})")


def call_patiently(call: Callable[[], T], patience: float, log: Any) -> T:
    """``call()``, called again while it fails with HTTP 429 (after the hook's own retries), for ``patience`` s.

    Waits what the vendor asks (``Retry-After``), else a doubling backoff. Any other error is raised at once.

    :param call: the call to make
    :param patience: seconds after which a 429 is raised instead of waited out
    :param log: where to log each wait
    """
    deadline = time.monotonic() + patience
    attempt = 0
    while True:
        try:
            return call()
        except FineTuningApiError as error:
            remaining = deadline - time.monotonic()
            if not _is_rate_limit(error) or remaining <= 0:
                raise
            attempt += 1
            wait = min(error.retry_after or min(2.0**attempt, _MAX_BACKOFF), remaining)
            log.warning("Rate limited (%s); waiting %.1f s before trying again", error, wait)
            time.sleep(wait)


class HookPerThread:
    """One hook, so one HTTP session, per worker thread (a ``requests.Session`` is not guaranteed thread-safe).

    :param make: builds a new hook
    """

    def __init__(self, make: Callable[[], FineTuningHook]) -> None:
        self._make = make
        self._local = threading.local()
        self._lock = threading.Lock()
        self._hooks: list[FineTuningHook] = []

    def get(self) -> FineTuningHook:
        """This thread's hook, made on first use."""
        hook: FineTuningHook | None = getattr(self._local, "hook", None)
        if hook is None:
            hook = self._make()
            self._local.hook = hook
            with self._lock:
                self._hooks.append(hook)
        return hook

    def close(self) -> None:
        """Close every hook made so far."""
        with self._lock:
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook.close()
