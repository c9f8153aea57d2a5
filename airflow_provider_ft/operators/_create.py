"""How ``CreateFineTuningJobOperator`` starts its job: the job spec from its arguments, the task instance's job
memory, and the create sent again after each wait for room on an account at its job limit.

Only a running task imports this (``create`` imports it when it submits), never DAG parsing.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING

from airflow_provider_ft import training_files
from airflow_provider_ft._compat import task_state_store
from airflow_provider_ft.capacity import submit_when_there_is_room
from airflow_provider_ft.exceptions import FineTuningCapacityError
from airflow_provider_ft.operators._task_state import JobMemory
from airflow_provider_ft.vendors.wire import JobSpec

if TYPE_CHECKING:
    from airflow_provider_ft._compat import Context
    from airflow_provider_ft.capacity import CapacityWait
    from airflow_provider_ft.core.submit import Submission
    from airflow_provider_ft.identity import TaskIdentity
    from airflow_provider_ft.operators.create import CreateFineTuningJobOperator
    from airflow_provider_ft.vendors.wire import LocalFile

#: The operator's arguments that go to the job as given.
PASSED_AS_GIVEN = ("method", "hyperparameters", "training_type", "suffix", "seed", "metadata")


def job_spec(task: CreateFineTuningJobOperator) -> JobSpec:
    """The job the task asks for; a local training file stands as a placeholder until it is uploaded."""
    is_file_id = task.hook.dialect.is_file_id
    training, validation = task.training_file, task.validation_file
    return JobSpec(
        model=task.model,
        training_file=training if is_file_id(training) else "file-to-upload",
        validation_file=validation if validation is None or is_file_id(validation) else None,
        integrations=list(task.integrations) if task.integrations is not None else None,
        **{name: getattr(task, name) for name in PASSED_AS_GIVEN},
    )


def job_memory(task: CreateFineTuningJobOperator, context: Context, identity: TaskIdentity) -> JobMemory:
    """The task instance's job in Airflow's task state store (3.3+; elsewhere a memory that holds nothing)."""
    return JobMemory(task_state_store(context), task.hook.dialect.name, identity, task.log)


def submit_waiting_for_room(
    task: CreateFineTuningJobOperator,
    spec: JobSpec,
    identity: TaskIdentity,
    checked: Mapping[str, LocalFile],
    waiting: CapacityWait | None,
    memory: JobMemory,
) -> Submission:
    """``submit_job``, again after each wait for room (``capacity.submit_when_there_is_room``); the files are
    uploaded once, however many creates the account refuses."""
    uploaded: list[JobSpec] = []

    def prepare(ready: JobSpec) -> JobSpec:
        if not uploaded:
            files = task._file_arguments()
            uploaded.append(training_files.uploaded(task.hook, ready, files, checked, task.settle_delays, task.log))
        return uploaded[0]

    def submit() -> Submission:
        return task.hook.submit_job(
            spec,
            identity,
            settle_delays=task.settle_delays,
            prepare=prepare,
            remembered=memory.recall(),
            on_created=lambda created: memory.remember(created.id),
            final=() if task.wait_for_capacity is None else (FineTuningCapacityError,),
        )

    return submit_when_there_is_room(
        submit,
        allowed=task.wait_for_capacity,
        waiting=waiting,
        poll_interval=task.poll_interval,
        vendor=task.hook.dialect.display_name,
        log=task.log,
        defer=partial(_defer_for_room, task) if task.deferrable else None,
    )


def _defer_for_room(
    task: CreateFineTuningJobOperator, waiting: CapacityWait, wake_at: float, refusal: FineTuningCapacityError
) -> None:
    """Hand the wait for room to ``CapacityWaitTrigger``; the task resumes in ``execute_after_capacity_wait``."""
    from airflow_provider_ft.triggers.capacity import CapacityWaitTrigger
    from airflow_provider_ft.triggers.events import deferral_timeout

    task.defer(
        trigger=CapacityWaitTrigger(
            conn_id=task.conn_id, wake_at=wake_at, wait=waiting.to_dict(), reason=refusal.message
        ),
        method_name="execute_after_capacity_wait",
        timeout=deferral_timeout(wake_at),
    )
