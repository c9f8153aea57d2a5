"""What a task that watches its job tells the trigger when it defers: the create operator and the sensor say it here.

Imported by a task about to defer, not at DAG parsing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn, Protocol

from airflow_provider_ft.triggers.events import defer_until_ended

if TYPE_CHECKING:
    from airflow_provider_ft.jobs import JobBudget


class WatchingTask(Protocol):
    """A task that waits for a job to end, logging its progress, cancelling it on a kill or a timeout if asked, and
    holding it to a budget (``CreateFineTuningJobOperator``, ``FineTuningJobSensor``)."""

    conn_id: str
    log_events: bool
    cancel_on_kill: bool
    cancel_on_timeout: bool

    @property
    def budget(self) -> JobBudget: ...


def defer_watching(
    task: WatchingTask, job_id: str, *, poll_interval: float, deadline: float | None, events_after: str | None
) -> NoReturn:
    """Defer ``task`` to ``FineTuningJobTrigger`` (``defer_until_ended``) with its watch settings: ``log_events``,
    ``cancel_on_kill``, ``cancel_on_timeout`` and the cost guards of its ``budget``.

    :param task: the deferring task
    :param job_id: the job to wait for
    :param poll_interval: seconds between polls
    :param deadline: absolute time (Unix seconds) of the trigger's ``timeout`` event, or ``None``
    :param events_after: the progress-log cursor the task's own logging reached (``None``: from the first entry)
    """
    budget = task.budget
    defer_until_ended(
        task,
        job_id=job_id,
        poll_interval=poll_interval,
        deadline=deadline,
        events_after=events_after,
        log_events=task.log_events,
        cancel_on_kill=task.cancel_on_kill,
        cancel_on_timeout=task.cancel_on_timeout,
        max_trained_tokens=budget.max_trained_tokens,
        max_runtime=budget.max_runtime,
    )
