"""Watching a job, written once for every wait: the hook's ``wait_for_job``, the sensor's poke and the trigger's poll.

``Watch.conclude`` is the one poll step, pure: what one look at the job means (wait on, ended, over budget, give up).
``guard_cancel``/``aguard_cancel`` are the one "cancel, log, never raise" of the guards (budget, timeout, kill), and
``budget_message`` the one message of a passed cost guard. The callers own the I/O, the logging of progress and
the Airflow side (exceptions, events, deferral).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningApiError
from airflow_provider_ft.jobs import FineTuningJob, JobBudget, JobStatus


class Verdict(enum.Enum):
    WAIT = "wait"
    ENDED = "ended"
    OVER_BUDGET = "over budget"
    GAVE_UP = "gave up"


@dataclass(frozen=True, slots=True)
class Look:
    """What one look at the job concluded: the verdict, the job seen (if read), why (over budget), or the error."""

    verdict: Verdict
    job: FineTuningJob | None = None
    reason: str | None = None
    error: FineTuningApiError | None = None


class Watch:
    """The state a wait keeps between polls: its guards, the transient failures in a row, the job last seen.

    :param job_id: the job waited for
    :param budget: the cost guards checked on each job read
    :param max_errors: give up after this many polls in a row failed with a transient error (``None``: never)
    """

    __slots__ = ("budget", "errors", "job_id", "last_seen", "max_errors")

    def __init__(self, job_id: str, budget: JobBudget, max_errors: int | None = None) -> None:
        self.job_id = job_id
        self.budget = budget
        self.max_errors = max_errors
        self.errors = 0
        self.last_seen: FineTuningJob | None = None

    def conclude(self, polled: FineTuningJob | FineTuningApiError) -> Look:
        """What a poll that read the job (or failed with a transient error the caller logged) means."""
        if isinstance(polled, FineTuningApiError):
            self.errors += 1
            if self.max_errors is not None and self.errors >= self.max_errors:
                return Look(Verdict.GAVE_UP, self.last_seen, error=polled)
            return Look(Verdict.WAIT, self.last_seen, error=polled)
        # Kept between polls without the vendor's whole answer: only the normalized fields are ever reported.
        self.errors, self.last_seen = 0, replace(polled, raw={})
        reason = self.budget.exceeded(polled, datetime.now(UTC))
        if reason is not None:
            return Look(Verdict.OVER_BUDGET, polled, reason=reason)
        return Look(Verdict.ENDED if polled.is_terminal else Verdict.WAIT, polled)

    def gave_up_message(self, error: FineTuningApiError) -> str:
        failed = f"{self.errors} polls in a row failed, the last with: {error}"
        return f"Gave up waiting for fine-tuning job {self.job_id}: {failed}"

    def timeout_message(self) -> str:
        seen = f"; last seen: {self.last_seen.describe_progress()}" if self.last_seen is not None else ""
        return f"Fine-tuning job {self.job_id} did not reach a terminal state before the deadline{seen}"


def until(deadline: float | None) -> float | None:
    """Seconds left to a ``time.monotonic()`` deadline (``None``: no deadline); never below zero."""
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


def was_cancelled(job: FineTuningJob | None) -> bool:
    """Whether a cancel left ``job`` stopped or stopping (not a job that had finished some other way first)."""
    return job is not None and job.status in (JobStatus.CANCELLED, JobStatus.CANCELLING)


def budget_message(job_id: str, reason: str, job: FineTuningJob | None, cancelled: bool) -> str:
    """The message of a passed cost guard: which limit (``reason``) and what became of the job."""
    if cancelled:
        outcome = "it was cancelled"
    elif job is not None and job.is_terminal:
        outcome = f"it had already ended {job.status.value}"
    else:
        outcome = "it could not be cancelled and may still be running"
    return f"Fine-tuning job {printable(job_id, 140)} passed its budget, {reason}; {outcome}"


def guard_cancel(cancel: Callable[[], FineTuningJob], log: Any, job_id: str, why: str) -> FineTuningJob | None:
    """Cancel for a guard (``why``): the job as it stands after, or ``None`` if that failed (logged, never raised)."""
    try:
        job = cancel()
    except Exception as error:  # a guard's cancel that fails is reported; the task's own outcome stands
        _cancel_failed(log, job_id, why, error)
        return None
    log_cancel_outcome(log, job_id, why, job)
    return job


async def aguard_cancel(
    cancel: Callable[[], Awaitable[FineTuningJob]], log: Any, job_id: str, why: str
) -> FineTuningJob | None:
    """``guard_cancel`` for the triggerer."""
    try:
        job = await cancel()
    except Exception as error:  # a guard's cancel that fails is reported; the wait's own outcome stands
        _cancel_failed(log, job_id, why, error)
        return None
    log_cancel_outcome(log, job_id, why, job)
    return job


def _cancel_failed(log: Any, job_id: str, why: str, error: BaseException) -> None:
    log.warning(
        "Could not cancel fine-tuning job %s (%s): %s", printable(job_id, 140), why, error or type(error).__name__
    )


def log_cancel_outcome(log: Any, job_id: str, why: str, job: FineTuningJob) -> None:
    job_id = printable(job_id, 140)
    if was_cancelled(job):
        log.info("Cancelled fine-tuning job %s (%s): it is %s", job_id, why, job.status.value)
    else:
        log.info("Fine-tuning job %s was not cancelled (%s): it had already ended %s", job_id, why, job.status.value)
