"""Reading the events ``FineTuningJobTrigger`` fires, for the tasks that resume after it.

Kept apart from the trigger module so that a resuming task does not import trigger machinery.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from airflow_provider_ft.defaults import EVENT_BUDGET, EVENT_ERROR, EVENT_STATUSES, EVENT_TIMEOUT
from airflow_provider_ft.exceptions import (
    FineTuningApiError,
    FineTuningBudgetExceeded,
    FineTuningError,
    JobNotFoundError,
)
from airflow_provider_ft.jobs import JobStatus

if TYPE_CHECKING:
    from airflow_provider_ft.jobs import JobBudget

#: The scheduler's own deferral timeout is set this many seconds after the trigger's deadline: it is only a
#: backstop (for a triggerer that is down), the trigger's timeout event normally comes first with a clearer message.
DEFERRAL_TIMEOUT_MARGIN = 60.0


def deferral_timeout(deadline: float | None) -> timedelta | None:
    """The ``timeout`` to give ``defer()`` for a trigger with this absolute ``deadline`` (``None``: no limit)."""
    if deadline is None:
        return None
    return timedelta(seconds=max(deadline - time.time(), 0.0) + DEFERRAL_TIMEOUT_MARGIN)


def defer_until_ended(
    task: Any, *, job_id: str, poll_interval: float, deadline: float | None, **options: Any
) -> NoReturn:
    """Defer ``task`` (an operator or sensor) to ``FineTuningJobTrigger`` until the job ends; it resumes in its
    ``execute_complete``. Every task that waits in the triggerer hands the wait over here.

    :param task: the deferring task (its ``conn_id`` is the trigger's)
    :param job_id: the job to wait for
    :param poll_interval: seconds between polls
    :param deadline: absolute time (Unix seconds) of the trigger's ``timeout`` event, or ``None``
    :param options: the trigger's other arguments (``log_events``, ``cancel_on_kill``, the cost guards, ...)
    """
    from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger

    trigger = FineTuningJobTrigger(
        conn_id=task.conn_id, job_id=job_id, poll_interval=poll_interval, deadline=deadline, **options
    )
    task.defer(trigger=trigger, method_name="execute_complete", timeout=deferral_timeout(deadline))
    raise RuntimeError("defer() returned instead of raising TaskDeferred")


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
        max_cost=budget.max_cost,
        price_per_million_tokens=None if budget.price is None else budget.price.per_million_tokens,
        currency=None if budget.price is None else budget.price.currency,
    )


def terminal_job_from_event(
    event: Mapping[str, Any] | None, *, job_id: str, timeout_error: Callable[[str], BaseException]
) -> dict[str, Any]:
    """The terminal job (``FineTuningJob.to_dict()``) a ``success`` event carries; raise for anything else.

    A ``timeout`` event raises what ``timeout_error`` builds, from the event's message and whether the trigger
    cancelled the job; a ``budget`` event raises ``FineTuningBudgetExceeded`` (with the job after the cancel as
    ``.job``); an ``error`` event raises the error the trigger met (see ``error_from_event``).

    :param event: the trigger's payload
    :param job_id: the job the task waited for (for messages)
    :param timeout_error: builds the exception a ``timeout`` event raises, from the event's message
    """
    if not isinstance(event, Mapping) or event.get("status") not in EVENT_STATUSES:
        raise FineTuningError(
            f"Waiting for fine-tuning job {job_id} ended with an event this task does not understand: {event!r:.300}"
        )
    status = event["status"]
    message = str(event.get("message") or f"waiting for job {job_id} ended with {status}")
    if status == EVENT_TIMEOUT:
        raise timeout_error(f"{message}; {cancel_note(bool(event.get('cancelled')))}")
    if status == EVENT_BUDGET:
        job = event.get("job")
        raise FineTuningBudgetExceeded(message, job=job if isinstance(job, dict) else None)
    if status == EVENT_ERROR:
        raise error_from_event(event)
    job = event.get("job")
    if not isinstance(job, dict) or not is_terminal_status(job.get("status")):
        raise FineTuningError(f"The trigger reported job {job_id} done but sent no terminal job: {event!r:.300}")
    return job


def error_from_event(event: Mapping[str, Any]) -> FineTuningError:
    """The exception an ``error`` event of ``FineTuningJobTrigger`` describes, typed as the trigger met it."""
    message = str(event.get("message") or "waiting for the fine-tuning job failed")
    error = event.get("error")
    if not isinstance(error, dict):
        return FineTuningError(message)
    kind = error.get("type")
    http_status = int(error.get("http_status") or 0)
    if (
        kind != "JobNotFoundError"
        and not http_status
        and kind not in ("FineTuningApiError", "FineTuningTransportError")
    ):
        return FineTuningError(message)
    details: dict[str, Any] = {
        "http_status": http_status,
        "vendor_code": error.get("vendor_code"),
        "request_id": error.get("request_id"),
        "retryable": bool(error.get("retryable")),
    }
    vendor_message = error.get("message") or message
    if kind == "JobNotFoundError":
        return JobNotFoundError(not_found_message(event.get("job_id"), event.get("conn_id"), vendor_message), **details)
    return FineTuningApiError(f"Waiting for fine-tuning job {event.get('job_id')} failed: {vendor_message}", **details)


def cancel_note(cancelled: bool) -> str:
    """What a timeout message adds about the job: cancelled, or possibly still running (and costing)."""
    return "the job was cancelled" if cancelled else "the job was not cancelled and may still be running"


def is_terminal_status(status: object) -> bool:
    try:
        return JobStatus.parse(str(status)).is_terminal
    except ValueError:
        return False


def not_found_message(job_id: object, conn_id: object, vendor_message: object) -> str:
    return (
        f"Fine-tuning job {job_id!r} does not exist for connection {conn_id!r} "
        f"(wrong id, or a connection to another account or workspace): {vendor_message}"
    )
