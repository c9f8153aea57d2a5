"""How ``CreateFineTuningJobOperator`` starts its job: the job spec from its arguments, the task instance's job
memory, and the create sent again after each wait for room on an account at its job limit.

Only a running task imports this (``create`` imports it when it submits), never DAG parsing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow_provider_ft._compat import task_state_store
from airflow_provider_ft._text import printable
from airflow_provider_ft.capacity import submit_when_there_is_room
from airflow_provider_ft.exceptions import FineTuningCapacityError
from airflow_provider_ft.operators._task_state import JobMemory
from airflow_provider_ft.vendors.wire import JobSpec

if TYPE_CHECKING:
    from airflow_provider_ft._compat import Context
    from airflow_provider_ft.capacity import CapacityWait
    from airflow_provider_ft.core.submit import Submission
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
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
            uploaded.append(with_files_uploaded(task.hook, ready, files, checked, task.settle_delays, task.log))
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


def local_files(hook: FineTuningHook, spec: JobSpec, files: Mapping[str, Any]) -> dict[str, LocalFile]:
    """The file arguments that are no vendor file id, each checked record by record for ``spec``'s data format
    (``TrainingFileError`` names a bad line); nothing is sent.

    :param hook: the hook of the job's connection (its dialect decides the record format and what a file id is)
    :param spec: the job
    :param files: the file arguments by name (``training_file``, ``validation_file``), ``None`` for none
    """
    return {
        name: hook.check_training_file(_readable(source), spec, what=name)
        for name, source in files.items()
        if source is not None and not hook.dialect.is_file_id(source)
    }


def with_files_uploaded(
    hook: FineTuningHook,
    spec: JobSpec,
    files: Mapping[str, Any],
    checked: Mapping[str, LocalFile],
    settle_delays: Sequence[float],
    log: Any,
) -> JobSpec:
    """``spec`` with both files as vendor ids, uploading the ``checked`` ones (or using identical uploads again).

    :param hook: the hook of the job's connection
    :param spec: the job
    :param files: the file arguments by name
    :param checked: the local ones, checked (``local_files``)
    :param settle_delays: seconds to wait before each look for an upload whose answer was lost
    :param log: where to say what became of each file
    """
    ids = {name: value for name, value in files.items() if name not in checked}
    for name, local in checked.items():
        remote, sent = hook.upload_file(local, settle_delays=settle_delays)
        verb = "Uploaded" if sent else "Found an identical upload (same content) of"
        log.info(
            "%s %s (%d records, %d bytes): %s file %s",
            verb,
            printable(local.name, 200),
            local.lines,
            local.size,
            hook.dialect.display_name,
            remote.id,
        )
        ids[name] = remote.id
    return replace(spec, training_file=ids["training_file"], validation_file=ids["validation_file"])


def _readable(source: Any) -> Any:
    """A file argument as something to read: object-storage URLs become ``ObjectStoragePath``."""
    if isinstance(source, str) and "://" in source:
        from airflow_provider_ft._compat import object_storage_path

        return object_storage_path(source)
    return source
