"""``CleanupFineTuningJobsOperator``: a scheduled sweep that cancels or deletes stale fine-tuning jobs.

What is stale, the argument checks and the summary are pure and live in ``_cleanup``; this module does the I/O:
it streams the listing, acts on the matches from a few worker threads (one hook each) and waits out rate limits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_ft import _validate
from airflow_provider_ft._compat import BaseOperator
from airflow_provider_ft.defaults import DEFAULT_CONN_ID
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningError, JobNotFoundError
from airflow_provider_ft.jobs import JobStatus

# The selection rules and the summary (``_cleanup``) are imported where they are used, not here: a DAG file that
# imports the operators pays for them only when it makes a cleanup task (issue 13, import cost).
if TYPE_CHECKING:
    from airflow_provider_ft._compat import Context, OperatorLineage
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
    from airflow_provider_ft.jobs import ProgressLog
    from airflow_provider_ft.operators._cleanup import CleanupCriteria, JobOutcome, Selection, StaleJob
    from airflow_provider_ft.retry import RetryPolicy

T = TypeVar("T")

DEFAULT_RATE_LIMIT_PATIENCE = 600.0
CLEANUP_SUMMARY_XCOM_KEY = "cleanup_summary"
#: Jobs per listing page: the most the paged listings take (OpenAI ``limit``, DashScope ``page_size``: 1 to 100), so
#: a sweep of thousands of jobs waits for as few pages as it can.
LIST_PAGE_SIZE = 100


def _make_hook(conn_id: str) -> FineTuningHook:
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

    return FineTuningHook(conn_id, page_size=LIST_PAGE_SIZE)


class CleanupFineTuningJobsOperator(BaseOperator):
    """Cancel or delete stale fine-tuning jobs: a scheduled sweep with filters, a safety cap and a dry run.

    Reads the listing page by page, 100 jobs a page (filters the vendor supports are applied server-side too),
    keeping only what the summary needs of each job that matches (``select_stale_jobs``). As soon as more than
    ``max_jobs`` match, it stops listing, acts on none and fails saying so. Otherwise it acts on each match with
    at most ``concurrency`` calls at a time, going on past a job that fails. A cancel is sent without reading the
    job first (the listing has just shown it unfinished); one the vendor refuses because the job has finished
    since is confirmed with a read and the job skipped. Returns a summary to XCom (also pushed under the key
    ``cleanup_summary``, even when the task fails)::

        {"action", "dry_run", "seen", "matched", "acted", "skipped", "failed",
         "acted_ids": [...], "skipped_ids": {id: reason}, "failures": {id: error}}

    ``seen`` counts the jobs listed. A job is *skipped* when it was matched but not acted on: in a dry run,
    when it finished or vanished before it was reached, when rate limits outlasted ``rate_limit_patience``, or
    when the cap was exceeded. In that last case the listing stopped at the first match past ``max_jobs``, so
    ``seen`` counts the jobs read until then and ``matched`` is ``max_jobs + 1`` (a lower bound: how many more
    would have matched is unknown); all of them are skipped. After trying every job the task fails if any job
    failed, naming them. A rate limit (HTTP 429) only slows the sweep down; it never counts as a failed job.

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
    :param rate_limit_patience: seconds to keep trying one call (the listing, or one job's cancel or delete)
        while the vendor still answers 429 after the hook's own retries, waiting as the connection's retry policy
        says; after that the job is skipped (and left for the next run), not failed, and a listing fails the task.
        A listing tried again starts from its first page, with its counts reset.
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
        from airflow_provider_ft.operators._cleanup import check_action, check_older_than

        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.action = check_action(action)
        self.older_than = check_older_than(older_than)
        self.statuses = statuses if statuses is None or isinstance(statuses, str) else list(statuses)
        self.name_pattern = name_pattern
        self.model = model
        self.metadata = metadata
        self.max_jobs = _validate.whole_number("max_jobs", max_jobs)
        self.is_dry_run = bool(dry_run)
        self.concurrency = _validate.whole_number("concurrency", concurrency)
        self.rate_limit_patience = _validate.seconds("rate_limit_patience", rate_limit_patience, allow_zero=True)
        self._checked_criteria(allow_templates=True)
        self._summary: Mapping[str, Any] | None = None  # for lineage

    @cached_property
    def hook(self) -> FineTuningHook:
        return _make_hook(self.conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_ft.operators._cleanup import build_summary

        criteria = self._checked_criteria(allow_templates=False)
        if self.action == "delete":
            self.hook.dialect.ensure_can_delete()
        now = datetime.now(UTC)
        try:
            selection = self._select(criteria, now)
        finally:
            self.hook.close()
        outcomes = self._act_on_matches(selection)
        summary = build_summary(self.action, self.is_dry_run, selection, outcomes)
        self._summary = summary
        self._report(summary, selection.matched, outcomes, now)
        context["ti"].xcom_push(key=CLEANUP_SUMMARY_XCOM_KEY, value=summary)
        self._raise_for_problems(summary, selection)
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage when the sweep ends (also when it fails): the jobs it cancelled or deleted, and those it
        skipped or failed on, as a run facet.

        :param task_instance: the finished task instance (unused: the operator holds its summary)
        """
        from airflow_provider_ft.lineage import ActionLineage, Vendor, action_operator_lineage

        summary = self._summary or {}
        lineage = ActionLineage(
            vendor=Vendor.of(self.hook.settings_if_read),
            action=self.action,
            job_ids=summary.get("acted_ids", []),
            dry_run=self.is_dry_run,
            skipped=summary.get("skipped_ids", {}),
            failed=summary.get("failures", {}),
        )
        return action_operator_lineage(lineage)

    def _checked_criteria(self, *, allow_templates: bool) -> CleanupCriteria:
        """The (rendered) filters, checked; at parse time Jinja strings are left for execute to check."""
        from airflow_provider_ft.operators._cleanup import CleanupCriteria

        return CleanupCriteria.from_arguments(
            action=self.action,
            older_than=self.older_than,
            statuses=self.statuses,
            name_pattern=self.name_pattern,
            model=self.model,
            metadata=self.metadata,
            allow_templates=allow_templates,
        )

    def _select(self, criteria: CleanupCriteria, now: datetime) -> Selection:
        """Stream the listing through the selection, stopping once more than ``max_jobs`` matched."""
        from airflow_provider_ft.operators._cleanup import select_stale_jobs

        dialect = self.hook.dialect
        filters = criteria.server_filters(dialect.list_filters)
        if criteria.metadata and "metadata" not in dialect.list_filters:
            self.log.warning("%s jobs have no metadata: with a metadata filter no job can match", dialect.display_name)

        def list_and_select() -> Selection:
            return select_stale_jobs(self.hook.list_jobs(**filters), criteria, now, max_jobs=self.max_jobs)

        selection = call_patiently(
            list_and_select, policy=self.hook.settings.retry, patience=self.rate_limit_patience, log=self.log
        )
        if selection.over_limit:
            self.log.warning(
                "Stopped listing on %s after %d jobs: more than max_jobs=%d matched",
                self.conn_id,
                selection.seen,
                self.max_jobs,
            )
        else:
            self.log.info(
                "Listed %d jobs on %s (server-side filters: %s)", selection.seen, self.conn_id, filters or "none"
            )
        return selection

    def _act_on_matches(self, selection: Selection) -> dict[str, JobOutcome]:
        """What happens to each matched job, by id: nothing over the cap or in a dry run, else the action."""
        from airflow_provider_ft.operators._cleanup import JobOutcome

        if selection.over_limit:
            reason = f"not acted on: more than max_jobs={self.max_jobs} matched"
            return {job.id: JobOutcome("skipped", reason) for job in selection.matched}
        if self.is_dry_run:
            return {job.id: JobOutcome("skipped", f"dry run: would {self.action}") for job in selection.matched}
        return self._act_on_each_concurrently(selection.matched)

    def _act_on_each_concurrently(self, matched: Sequence[StaleJob]) -> dict[str, JobOutcome]:
        if not matched:
            return {}
        hooks = HookPerThread(self.hook.fork)  # the connection was read once, in this thread
        try:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(matched))) as pool:
                results = pool.map(lambda job: self._act_on(hooks.get(), job), matched)
                return {job.id: outcome for job, outcome in zip(matched, results, strict=True)}
        finally:
            hooks.close()

    def _act_on(self, hook: FineTuningHook, job: StaleJob) -> JobOutcome:
        from airflow_provider_ft.operators._cleanup import JobOutcome

        act = _cancel if self.action == "cancel" else _delete
        try:
            outcome = call_patiently(
                lambda: act(hook, job.id), policy=hook.settings.retry, patience=self.rate_limit_patience, log=self.log
            )
        except JobNotFoundError:
            outcome = JobOutcome("skipped", "no longer exists")
        except FineTuningApiError as error:
            outcome = _skipped_for_rate_limit(error, self.rate_limit_patience) or JobOutcome("failed", str(error))
        except Exception as error:
            outcome = JobOutcome("failed", f"{type(error).__name__}: {error}")
        self.log.info("Job %s: %s", job.id, outcome.describe())
        return outcome

    def _report(
        self,
        summary: Mapping[str, Any],
        matched: Sequence[StaleJob],
        outcomes: Mapping[str, JobOutcome],
        now: datetime,
    ) -> None:
        from airflow_provider_ft.operators._cleanup import format_table

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

    def _raise_for_problems(self, summary: Mapping[str, Any], selection: Selection) -> None:
        from airflow_provider_ft.operators._cleanup import PAST_TENSE

        if selection.over_limit:
            raise FineTuningError(
                f"Refusing to {self.action} any job: more than max_jobs={self.max_jobs} matched (listing stopped "
                f"after {selection.seen} jobs), so none was touched. Narrow the filters (older_than, statuses, "
                "name_pattern, model, metadata) or raise max_jobs."
            )
        failures: Mapping[str, str] = summary["failures"]
        if failures:
            listed = "; ".join(f"{job_id}: {message}" for job_id, message in failures.items())
            raise FineTuningError(
                f"Could not {self.action} {len(failures)} of {summary['matched']} matched jobs "
                f"({summary['acted']} {PAST_TENSE[self.action]}): {listed}"
            )


def _cancel(hook: FineTuningHook, job_id: str) -> JobOutcome:
    from airflow_provider_ft.operators._cleanup import JobOutcome

    job = hook.cancel_job(job_id, seen_unfinished=True)  # the listing has just shown it unfinished
    if job.is_terminal and job.status is not JobStatus.CANCELLED:
        return JobOutcome("skipped", f"already {job.status.value}")
    return JobOutcome("acted", f"cancelled ({job.status.value})")


def _delete(hook: FineTuningHook, job_id: str) -> JobOutcome:
    from airflow_provider_ft.operators._cleanup import JobOutcome

    hook.delete_job(job_id)
    return JobOutcome("acted", "deleted")


def _skipped_for_rate_limit(error: FineTuningApiError, patience: float) -> JobOutcome | None:
    from airflow_provider_ft.operators._cleanup import JobOutcome

    if not error.rate_limited:
        return None
    return JobOutcome("skipped", f"rate limited for over {patience:g} s; left for the next run ({error})")


def call_patiently(call: Callable[[], T], *, policy: RetryPolicy, patience: float, log: ProgressLog) -> T:
    """``call()``, made again while it fails with a rate limit (after the hook's own retries), for ``patience`` s.

    Each wait is what ``policy`` says (the vendor's ``Retry-After`` up to the policy's ``retry_after_max``, else
    its backoff), cut short at the deadline; a rate limit after it, or any other error, is raised.

    :param call: the call to make
    :param policy: the connection's retry policy (``hook.settings.retry``)
    :param patience: seconds after which a rate limit is raised instead of waited out (0: at once)
    :param log: where to log each wait
    """
    deadline = time.monotonic() + patience
    attempt = 0
    while True:
        try:
            return call()
        except FineTuningApiError as error:
            remaining = deadline - time.monotonic()
            if not error.rate_limited or remaining <= 0:
                raise
            attempt += 1
            wait = min(policy.wait_seconds(attempt, error.retry_after), remaining)
            log.warning("Still rate limited after the connection's retries (%s); waiting %.2f s", error, wait)
            time.sleep(wait)


class HookPerThread:
    """One hook, so one HTTP session, per worker thread (a ``requests.Session`` is not guaranteed thread-safe).

    :param make: builds a new hook (``FineTuningHook.fork``: no thread reads the Airflow connection itself)
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
