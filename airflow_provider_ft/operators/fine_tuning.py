"""Operators that cancel, pause, resume and delete one fine-tuning job on any vendor the hook supports.

They are thin: the hook knows the vendors; these decide what to call, log it, and return JSON to XCom. The
cleanup sweep lives in ``airflow_provider_ft.operators.cleanup`` and is re-exported here for the older import path.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_ft import _validate
from airflow_provider_ft._compat import BaseOperator, default_deferrable
from airflow_provider_ft.defaults import DEFAULT_CONN_ID
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningError, FineTuningTimeout, JobNotFoundError
from airflow_provider_ft.jobs import FineTuningJob, JobStatus
from airflow_provider_ft.links import FineTuningJobLink
from airflow_provider_ft.operators.cleanup import CLEANUP_SUMMARY_XCOM_KEY, CleanupFineTuningJobsOperator
from airflow_provider_ft.operators.create import CreateFineTuningJobOperator
from airflow_provider_ft.vendors.ids import validate_job_id

if TYPE_CHECKING:
    from airflow_provider_ft._compat import Context, OperatorLineage
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

__all__ = [
    "CLEANUP_SUMMARY_XCOM_KEY",
    "CancelFineTuningJobOperator",
    "CleanupFineTuningJobsOperator",
    "CreateFineTuningJobOperator",
    "DeleteFineTuningJobOperator",
    "PauseFineTuningJobOperator",
    "ResumeFineTuningJobOperator",
]

DEFAULT_POLL_INTERVAL = 30.0


class _JobOperator(BaseOperator):
    """What the single-job operators share: the job id, the connection, the hook, the console link and lineage."""

    template_fields: Sequence[str] = ("job_id", "conn_id")
    operator_extra_links = (FineTuningJobLink(),)
    #: What lineage says the operator did to its job.
    lineage_action: ClassVar[str]

    def __init__(self, *, job_id: str, conn_id: str, ignore_if_missing: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.conn_id = conn_id
        self.ignore_if_missing = ignore_if_missing
        self._acted_on: str | None = None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage when the task ends (also when it fails): the job it acted on, as a run facet.

        :param task_instance: the finished task instance (unused: the operator holds what it did)
        """
        from airflow_provider_ft.lineage import ActionLineage, Vendor, action_operator_lineage

        vendor = Vendor.of(self.hook.settings_if_read)
        acted = [self._acted_on] if self._acted_on else []
        return action_operator_lineage(ActionLineage(vendor, self.lineage_action, acted))

    @cached_property
    def hook(self) -> FineTuningHook:
        from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

        return FineTuningHook(self.conn_id)

    def _validate_job_id_and_store_link(self, context: Context) -> str:
        """The rendered job id, validated; its console URL is stored for the task's extra link."""
        job_id = validate_job_id(self.job_id)
        FineTuningJobLink.persist(context, self.hook.console_url(job_id), conn_id=self.conn_id, job_id=job_id)
        return job_id

    def _wait(self, job_id: str, poll_interval: float, timeout: float | None) -> FineTuningJob:
        self.log.info("Waiting for job %s to reach a terminal state (poll every %s s)", job_id, poll_interval)
        return self.hook.wait_for_job(job_id, poll_interval=poll_interval, timeout=timeout)

    def _raise_unless_ignoring_missing(self, job_id: str, error: JobNotFoundError) -> None:
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
        self.wait_for_termination = wait_for_termination
        self.poll_interval = _validate.seconds("poll_interval", poll_interval)
        self.timeout = _validate.optional_seconds("timeout", timeout)
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    lineage_action = "cancel"

    def execute(self, context: Context) -> dict[str, Any] | None:
        job_id = self._validate_job_id_and_store_link(context)
        try:
            job = self._cancel(job_id)
        except JobNotFoundError as error:
            self._raise_unless_ignoring_missing(job_id, error)
            return None
        self._acted_on = job.id
        if self.wait_for_termination and not job.is_terminal:
            job = self._wait_until_terminal(job)
        return job.to_dict()

    def _cancel(self, job_id: str) -> FineTuningJob:
        """``hook.cancel_job``: it returns a job that is already finished as it is, without a cancel request."""
        job = self.hook.cancel_job(job_id)
        if job.is_terminal and job.status is not JobStatus.CANCELLED:
            self.log.info("Job %s is already %s; nothing to cancel", job_id, job.status.value)
        else:
            self.log.info("Cancel on %s: %s", self.hook.dialect.display_name, job.describe_progress())
        return job

    def _wait_until_terminal(self, job: FineTuningJob) -> FineTuningJob:
        """Wait in the worker, or defer to ``FineTuningJobTrigger`` (the task resumes in ``execute_complete``)."""
        if not self.deferrable:
            return self._wait(job.id, self.poll_interval, self.timeout)
        from airflow_provider_ft.triggers.events import defer_until_ended

        self.log.info("Deferring until the job is terminal; now %s", job.describe_progress())
        deadline = None if self.timeout is None else time.time() + self.timeout
        defer_until_ended(self, job_id=job.id, poll_interval=self.poll_interval, deadline=deadline)

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Finish after the trigger fired: the terminal job, or the trigger's timeout or error raised.

        :param context: the task's context
        :param event: the trigger's payload (``status``: ``success``, ``timeout`` or ``error``; ``job``; ``message``)
        """
        from airflow_provider_ft.triggers.events import terminal_job_from_event

        self._acted_on = str(self.job_id)
        job = terminal_job_from_event(event, job_id=self.job_id, timeout_error=FineTuningTimeout)
        self.log.info("Job %s ended %s", job.get("id"), job.get("status"))
        return job


class _PauseOrResume(_JobOperator):
    """Pause or resume a fine-tuning job (OpenAI; Azure OpenAI reads the states but is not asked); its state
    afterwards (``FineTuningJob.to_dict()``) goes to XCom.

    Idempotent, so safe on retries: a job already in the state asked for (paused; resumed, running or finished) is
    logged and returned as it is, without a request. A paused job is not terminal: the sensor keeps waiting and
    reports it paused. A vendor whose API cannot pause jobs fails with ``UnsupportedOperationError`` before any
    request is sent.

    :param job_id: the vendor's job id (templated, e.g. from a setup task's XCom)
    :param conn_id: the fine-tuning connection (templated); its type selects the vendor
    :param ignore_if_missing: a job that does not exist is a logged success returning ``None``, not
        ``JobNotFoundError``
    """

    def __init__(
        self, *, job_id: str, conn_id: str = DEFAULT_CONN_ID, ignore_if_missing: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(job_id=job_id, conn_id=conn_id, ignore_if_missing=ignore_if_missing, **kwargs)

    def execute(self, context: Context) -> dict[str, Any] | None:
        self.hook.dialect.ensure_can_pause()
        job_id = self._validate_job_id_and_store_link(context)
        change = self.hook.pause_job if self.lineage_action == "pause" else self.hook.resume_job
        try:
            job = change(job_id)
        except JobNotFoundError as error:
            self._raise_unless_ignoring_missing(job_id, error)
            return None
        self._acted_on = job_id
        if self._changed(job):
            self.log.info(
                "%s on %s: %s", self.lineage_action.title(), self.hook.dialect.display_name, job.describe_progress()
            )
        else:
            self.log.info("Job %s is %s; nothing to %s", job_id, job.status.value, self.lineage_action)
        return job.to_dict()

    def _changed(self, job: FineTuningJob) -> bool:
        raise NotImplementedError


class PauseFineTuningJobOperator(_PauseOrResume):
    __doc__ = _PauseOrResume.__doc__
    lineage_action = "pause"

    def _changed(self, job: FineTuningJob) -> bool:
        return job.status is JobStatus.PAUSED


class ResumeFineTuningJobOperator(_PauseOrResume):
    __doc__ = _PauseOrResume.__doc__
    lineage_action = "resume"

    def _changed(self, job: FineTuningJob) -> bool:
        return not job.is_terminal


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

    lineage_action = "delete"

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
        self.cancel_if_running = cancel_if_running
        self.poll_interval = _validate.seconds("poll_interval", poll_interval)
        self.timeout = _validate.optional_seconds("timeout", timeout)

    def execute(self, context: Context) -> dict[str, Any]:
        self.hook.dialect.ensure_can_delete()
        job_id = self._validate_job_id_and_store_link(context)
        try:
            if self.cancel_if_running:
                self._cancel_and_wait_unless_finished(job_id)
            self._delete(job_id)
        except JobNotFoundError as error:
            self._raise_unless_ignoring_missing(job_id, error)
            return {"id": job_id, "deleted": False, "reason": "not found"}
        self._acted_on = job_id
        self.log.info("Deleted job %s", job_id)
        return {"id": job_id, "deleted": True, "reason": None}

    def _cancel_and_wait_unless_finished(self, job_id: str) -> None:
        """Cancel the job unless it has finished (``hook.cancel_job`` reads it first), then wait until it stops."""
        job = self.hook.cancel_job(job_id)
        if job.is_terminal:
            self.log.info("Job %s is %s; deleting it", job_id, job.status.value)
            return
        self.log.info("Cancelled before deleting; now %s", job.describe_progress())
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
