"""``CreateFineTuningJobOperator``: upload the data, start the job exactly once, watch it, never leave it orphaned.

Kept light at import time (DAG parsing imports it): the hook, the trigger and the file checks are imported when a
task runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_ft import _validate, defaults
from airflow_provider_ft._compat import BaseOperator, default_deferrable
from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningJobFailed, FineTuningTimeout
from airflow_provider_ft.jobs import FineTuningJob, JobBudget, JobStatus
from airflow_provider_ft.links import FineTuningJobLink

if TYPE_CHECKING:
    from airflow_provider_ft._compat import Context, OperatorLineage
    from airflow_provider_ft.capacity import CapacityWait
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
    from airflow_provider_ft.identity import TaskIdentity
    from airflow_provider_ft.lineage import CreateLineage
    from airflow_provider_ft.vendors.wire import JobSpec

#: XCom keys pushed besides the return value.
JOB_ID_XCOM_KEY = "job_id"
FINE_TUNED_MODEL_XCOM_KEY = "fine_tuned_model"
_ENDED_BADLY = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})


class CreateFineTuningJobOperator(BaseOperator):
    """Start a fine-tuning job on the connection's vendor, exactly once per task instance, and (by default) wait
    until it ends; the final job (``FineTuningJob.to_dict()``) goes to XCom, its ``fine_tuned_model`` under the key
    ``fine_tuned_model``, and the job's id under ``job_id`` as soon as it exists, for teardown tasks. Every rule
    below is told in full, with each vendor's limits, in docs/operators/create.md.

    **Files.** A training or validation file is a vendor file id (``file-...``) or a local path, ``os.PathLike``,
    ``ObjectStoragePath`` or object-storage URL to check record by record on the worker (the first bad line is named,
    nothing is sent) and upload, streamed; an identical upload (same content hash) is used again.

    **Exactly once.** The job carries an identity of the task instance (DAG, task, run, map index and the connection
    extra ``namespace``; not the try number). On Airflow 3.3+ its id is also written to the task state store as soon
    as the create is answered. Each try reads the store first, then looks for a job with the identity, and
    re-attaches (a job found terminal too); a create is never retried blindly.

    **An account at its job limit** (the answers OpenAI and Azure OpenAI document) fails the task, or with
    ``wait_for_capacity`` is waited out, in the worker or in the triggerer, looking for the job before each create.

    **Stopping.** ``cancel_on_kill`` cancels the job when the task is killed (marked failed or success, or its
    ``execution_timeout`` passes), once the task instance's state confirms it has ended (``airflow_provider_ft.kill``:
    a retry, a clear, or a frozen worker or triggerer that recovers leave the job to the live try).
    ``cancel_on_timeout`` cancels it when ``timeout`` ends the wait; the cost guards ``max_trained_tokens``,
    ``max_cost`` and ``max_runtime`` cancel it and fail the task with ``FineTuningBudgetExceeded``.

    :param model: the base model to fine-tune (templated)
    :param training_file: a vendor file id, or a local path / ``ObjectStoragePath`` / URL to check and upload
        (templated)
    :param validation_file: the same for validation data, optional (templated)
    :param conn_id: the fine-tuning connection; its type selects the vendor (templated)
    :param method: OpenAI: ``supervised``, ``dpo`` or ``reinforcement``, or the whole ``method`` object (templated)
    :param hyperparameters: the vendor's hyperparameters (DashScope ``hyper_parameters``) (templated)
    :param training_type: DashScope ``training_type``, e.g. ``sft``, ``efficient_sft``, ``dpo_full`` (templated)
    :param suffix: in the fine-tuned model's name (OpenAI ``suffix``, DashScope ``finetuned_output_suffix``)
        (templated)
    :param seed: OpenAI ``seed``
    :param metadata: OpenAI ``metadata``, at most 11 string pairs (``airflow_*`` keys are this provider's) (templated)
    :param integrations: OpenAI ``integrations`` (e.g. Weights and Biases)
    :param wait_for_completion: wait until the job ends (default); ``False`` returns the job once it exists
    :param wait_for_capacity: seconds (or a ``timedelta``) to wait for room on an account at its job limit, from the
        first refusal; ``None`` (default): such a refusal fails the task
    :param deferrable: wait in the triggerer instead of the worker (default ``[operators] default_deferrable``)
    :param poll_interval: seconds between checks while waiting
    :param timeout: seconds to wait at most (``None``: no limit); ``FineTuningTimeout`` after that
    :param cancel_on_kill: cancel the job when the task is killed (see above)
    :param cancel_on_timeout: cancel the job when ``timeout`` ends the wait
    :param max_trained_tokens: cancel and fail once the vendor reports more trained tokens (mostly once it ended)
    :param max_cost: cancel and fail once the job's trained tokens cost more than this at the connection's price
        (extras ``price_per_million_tokens`` and ``currency``; a connection without one fails the task before any
        job is created). An estimate on the tokens the vendor reports, so, like ``max_trained_tokens``, it mostly
        fails a job that ended over budget; ``max_runtime`` is the guard that stops a job early
    :param max_runtime: cancel and fail once the job has run longer than this (seconds or a ``timedelta``)
    :param log_events: log the vendor's own progress entries as they appear, each once (worker and triggerer)
    :param fail_on_failure: a job that ends ``FAILED`` or ``CANCELLED`` fails the task with ``FineTuningJobFailed``
    :param settle_delays: seconds to wait before each look for a job whose create answer was lost
    """

    template_fields: Sequence[str] = (
        "conn_id",
        "model",
        "training_file",
        "validation_file",
        "method",
        "hyperparameters",
        "training_type",
        "suffix",
        "metadata",
    )
    template_fields_renderers = {"hyperparameters": "json", "metadata": "json", "method": "json"}
    operator_extra_links = (FineTuningJobLink(),)
    ui_color = "#dff5e3"

    def __init__(
        self,
        *,
        model: str,
        training_file: Any,
        validation_file: Any = None,
        conn_id: str = defaults.DEFAULT_CONN_ID,
        method: str | Mapping[str, Any] | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        training_type: str | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        metadata: Mapping[str, str] | None = None,
        integrations: Sequence[Mapping[str, Any]] | None = None,
        wait_for_completion: bool = True,
        wait_for_capacity: timedelta | float | None = None,
        deferrable: bool | None = None,
        poll_interval: timedelta | float = 60.0,
        timeout: timedelta | float | None = None,
        cancel_on_kill: bool = True,
        cancel_on_timeout: bool = True,
        max_trained_tokens: int | None = None,
        max_cost: float | None = None,
        max_runtime: timedelta | float | None = None,
        log_events: bool = True,
        fail_on_failure: bool = True,
        settle_delays: Sequence[float] = defaults.SETTLE_DELAYS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.training_file = training_file
        self.validation_file = validation_file
        self.conn_id = conn_id
        self.method = method
        self.hyperparameters = hyperparameters
        self.training_type = training_type
        self.suffix = suffix
        self.seed = seed
        self.metadata = metadata
        self.integrations = integrations
        self.wait_for_completion = bool(wait_for_completion)
        self.wait_for_capacity = _validate.optional_seconds("wait_for_capacity", wait_for_capacity)
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)
        self.poll_interval = _validate.seconds("poll_interval", poll_interval)
        self.timeout = _validate.optional_seconds("timeout", timeout)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.cancel_on_timeout = bool(cancel_on_timeout)
        self.max_trained_tokens = (
            None if max_trained_tokens is None else _validate.whole_number("max_trained_tokens", max_trained_tokens)
        )
        self.max_cost = _validate.optional_amount("max_cost", max_cost)
        self.max_runtime = _validate.optional_seconds("max_runtime", max_runtime)
        self.log_events = bool(log_events)
        self.fail_on_failure = bool(fail_on_failure)
        self.settle_delays = tuple(
            _validate.seconds("settle_delays", delay, allow_zero=True) for delay in settle_delays
        )
        self._job_id: str | None = None
        self._job: FineTuningJob | None = None  # as last seen, for lineage
        self._submitting: tuple[JobSpec, TaskIdentity] | None = None

    @cached_property
    def hook(self) -> FineTuningHook:
        from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

        return FineTuningHook(self.conn_id)

    @property
    def budget(self) -> JobBudget:
        """The cost guards, ``max_cost`` measured with the connection's price (reads the connection)."""
        return self.hook.budget(
            max_trained_tokens=self.max_trained_tokens, max_runtime=self.max_runtime, max_cost=self.max_cost
        )

    # -- submit ---------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        return self._submit_and_watch(context, None)

    def execute_after_capacity_wait(self, context: Context, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Go on after ``CapacityWaitTrigger`` waited for room: look for the task's job, create it if it is still
        missing (waiting again while the account is at its limit and ``wait_for_capacity`` allows), then watch it.

        :param context: the task's context
        :param event: the trigger's payload (``status`` ``capacity``, and the wait so far)
        """
        from airflow_provider_ft.capacity import CapacityWait

        return self._submit_and_watch(context, CapacityWait.from_event(event))

    def _submit_and_watch(self, context: Context, waiting: CapacityWait | None) -> dict[str, Any]:
        try:
            job = self._submit(context, waiting)
            if not self.wait_for_completion or job.is_terminal:
                return self._finish(context, job)
            if self.deferrable:
                self._defer(job)
            return self._finish(context, self._wait(job))
        finally:
            self.hook.close()

    def _submit(self, context: Context, waiting: CapacityWait | None = None) -> FineTuningJob:
        """The task instance's job: re-attached to, or created once with its files checked and uploaded."""
        from airflow_provider_ft.identity import TaskIdentity
        from airflow_provider_ft.operators._create import job_memory, job_spec, local_files, submit_waiting_for_room

        self.budget  # noqa: B018 - a max_cost without a price on the connection fails here, before anything is sent
        identity = TaskIdentity.of(context["ti"], self.hook.settings.namespace)
        spec = job_spec(self)
        checked = local_files(self.hook, spec, self._file_arguments())  # a bad file sends nothing
        self._submitting = (spec, identity)  # a kill before the job's id is known looks the job up by its identity
        memory = job_memory(self, context, identity)
        submission = submit_waiting_for_room(self, spec, identity, checked, waiting, memory)
        job = submission.job
        self._job_id, self._job = job.id, job
        memory.remember(job.id)  # found by its identity, or a duplicate's older twin: the next try reads this one
        FineTuningJobLink.persist(context, self.hook.console_url(job.id), conn_id=self.conn_id, job_id=job.id)
        context["ti"].xcom_push(key=JOB_ID_XCOM_KEY, value=job.id)
        verb = "Started" if submission.created else "Re-attached to"
        self.log.info("%s %s %s", verb, self.hook.dialect.display_name, job.describe_progress())
        for duplicate in submission.cancelled:
            self.log.warning("Cancelled job %s, a duplicate of job %s for this task instance", duplicate, job.id)
        return job

    def _file_arguments(self) -> dict[str, Any]:
        return {"training_file": self.training_file, "validation_file": self.validation_file}

    # -- watch ----------------------------------------------------------------------------------------------

    def _wait(self, job: FineTuningJob) -> FineTuningJob:
        self.log.info("Waiting for job %s to end (check every %g s)", job.id, self.poll_interval)
        try:
            return self.hook.wait_for_job(
                job.id,
                poll_interval=self.poll_interval,
                timeout=self.timeout,
                log_events=self.log_events,
                budget=self.budget,
            )
        except FineTuningTimeout as error:
            self._cancel_after_timeout(job.id)
            raise FineTuningTimeout(f"{error}{self._timeout_outcome()}") from error

    def _defer(self, job: FineTuningJob) -> None:
        """Hand the wait to ``FineTuningJobTrigger``, after logging the progress entries so far (the trigger logs
        on from there); the task resumes in ``execute_complete``."""
        from airflow_provider_ft.triggers.events import defer_watching

        cursor = self.hook.log_new_events(job.id, None, self.log) if self.log_events else None
        self.log.info("Deferring until job %s ends; now %s", job.id, job.describe_progress())
        deadline = None if self.timeout is None else time.time() + self.timeout
        defer_watching(self, job.id, poll_interval=self.poll_interval, deadline=deadline, events_after=cursor)

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Finish after the trigger fired: the final job, or the trigger's timeout, budget or error raised.

        :param context: the task's context
        :param event: the trigger's payload (``status``: ``success``, ``timeout``, ``budget`` or ``error``)
        """
        from airflow_provider_ft.triggers.events import terminal_job_from_event

        job_id = str((event or {}).get("job_id") or context["ti"].xcom_pull(key=JOB_ID_XCOM_KEY) or "")
        self._job_id = job_id or None
        try:
            payload = terminal_job_from_event(event, job_id=job_id, timeout_error=FineTuningTimeout)
        except FineTuningTimeout:
            if event and not event.get("cancelled"):
                self._cancel_after_timeout(job_id)
            raise
        finally:
            self.hook.close()
        # The event carries a dict: the job is read again for a typed one.
        return self._finish(context, self.hook.get_job(str(payload["id"])))

    # -- finish and stop --------------------------------------------------------------------------------------

    def _finish(self, context: Context, job: FineTuningJob) -> dict[str, Any]:
        """Push the model, record the asset event, and fail for a job that ended badly (``fail_on_failure``)."""
        self._job = job
        if job.status in _ENDED_BADLY and self.fail_on_failure:
            reason = printable(job.error or "the vendor gave no reason", 500)
            raise FineTuningJobFailed(f"Fine-tuning job {job.id} ended {job.status.value}: {reason}", job.to_dict())
        if job.fine_tuned_model:
            context["ti"].xcom_push(key=FINE_TUNED_MODEL_XCOM_KEY, value=job.fine_tuned_model)
        if job.status is JobStatus.SUCCEEDED and self.outlets:
            from airflow_provider_ft._compat import annotate_outlet_events

            extra = {"fine_tuned_model": job.fine_tuned_model, "job_id": job.id, "vendor": job.vendor}
            annotate_outlet_events(context, list(self.outlets), extra)
        self.log.info("Job %s is %s", job.id, job.describe_progress())
        return job.to_dict()

    def on_kill(self) -> None:
        """Cancel the job when the task is killed in the worker (``cancel_on_kill``) and the kill is confirmed
        (``airflow_provider_ft.kill``), on a hook of its own; a kill during the create finds the job by its identity.
        Never raises."""
        if not self.cancel_on_kill or (self._job_id is None and self._submitting is None):
            return
        from airflow_provider_ft.kill import confirm_kill

        task_instance = self._submitting[1] if self._submitting is not None else None
        named = f"fine-tuning job {printable(self._job_id, 140)}" if self._job_id else "the job being created"
        if not confirm_kill(task_instance, self.log, named).cancel:
            return
        hook = self.hook.fork()
        try:
            for job_id in self._jobs_to_stop(hook):
                job = hook.cancel_job(job_id)
                self.log.info("The task was killed; cancelled %s", job.describe_progress())
        except Exception as error:
            self.log.warning("The task was killed but its job could not be cancelled: %s", printable(error, 500))
        finally:
            hook.close()

    def _jobs_to_stop(self, hook: FineTuningHook) -> list[str]:
        if self._job_id is not None:
            return [self._job_id]
        if self._submitting is None:
            return []
        spec, identity = self._submitting
        return [job.id for job in hook.find_jobs(spec, identity) if not job.is_terminal]

    def _cancel_after_timeout(self, job_id: str) -> None:
        if self.cancel_on_timeout and job_id:
            job = self.hook.cancel_job(job_id)
            self.log.warning("The wait timed out; cancelled %s", job.describe_progress())

    def _timeout_outcome(self) -> str:
        return "; the job was cancelled (cancel_on_timeout)" if self.cancel_on_timeout else "; the job still runs"

    # -- lineage ----------------------------------------------------------------------------------------------

    def get_openlineage_facets_on_start(self) -> OperatorLineage[Any, Any]:
        """OpenLineage when the task starts: the data it reads (paths and URLs as given) and the base model."""
        from airflow_provider_ft.lineage import create_operator_lineage

        return create_operator_lineage(self._lineage())

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage when the task ends (also when it fails): the data, the fine-tuned model and the job.

        :param task_instance: the finished task instance (unused: the operator holds what it saw)
        """
        from airflow_provider_ft.lineage import create_operator_lineage

        return create_operator_lineage(self._lineage())

    def _lineage(self) -> CreateLineage:
        from airflow_provider_ft.lineage import CreateLineage, Vendor

        return CreateLineage(
            vendor=Vendor.of(self.hook.settings_if_read),
            model=self.model,
            files=self._file_arguments(),
            hyperparameters=self.hyperparameters,
            method=self.method,
            training_type=self.training_type,
            job_id=self._job_id,
            job=self._job,
        )
