"""``FineTuningJobTrigger`` as it was at commit b8e40c2 (``airflow_provider_ft/triggers/fine_tuning.py``).

Unchanged but for where its client comes from: ``benchmarks._baseline.transport.AsyncTransport`` (the transport of
that commit) instead of ``FineTuningHook.async_transport()``, so that the package's later changes to its trigger and
transport do not reach this baseline. Its docstrings are shortened.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_ft import _validate, defaults
from airflow_provider_ft._compat import BaseTrigger, TriggerEvent
from airflow_provider_ft._text import printable
from airflow_provider_ft.core.watch import budget_message, log_cancel_outcome, was_cancelled
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningConfigError, describe_error
from airflow_provider_ft.jobs import JobBudget
from benchmarks._baseline.transport import AsyncTransport

if TYPE_CHECKING:
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
    from airflow_provider_ft.jobs import FineTuningJob

SUCCESS, TIMEOUT, ERROR, BUDGET = (
    defaults.EVENT_SUCCESS,
    defaults.EVENT_TIMEOUT,
    defaults.EVENT_ERROR,
    defaults.EVENT_BUDGET,
)

#: Polls are spread by up to this fraction of the interval, so that triggers deferred together do not poll in step.
POLL_JITTER = 0.1
#: An idle connection is kept this much longer than the poll interval, so that the next poll reuses it.
KEEPALIVE_MARGIN_SECONDS = 5.0
#: Longest progress-log cursor taken (an OpenAI event id, a DashScope line count); it is stored with the trigger.
MAX_CURSOR_LENGTH = 200
#: Seconds one cancel may take, connection lookup and retries included. Airflow 3.3's triggerer gives ``on_kill``
#: 30 s (``[triggerer] on_kill_timeout``); the margin leaves room for the log lines.
CANCEL_SECONDS = 20.0


class FineTuningJobTrigger(BaseTrigger):
    """Poll a fine-tuning job until it is terminal, then fire one event and return (see the package's trigger)."""

    def __init__(
        self,
        conn_id: str,
        job_id: str,
        poll_interval: float = 60.0,
        deadline: float | None = None,
        max_consecutive_errors: int | None = None,
        log_events: bool = True,
        events_after: str | None = None,
        cancel_on_kill: bool = False,
        cancel_on_timeout: bool = False,
        max_trained_tokens: int | None = None,
        max_runtime: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        poll_interval = _validate.seconds("poll_interval", poll_interval)
        if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, int | float)):
            raise FineTuningConfigError(f"deadline must be Unix epoch seconds or None, got {deadline!r}")
        if deadline is not None and not math.isfinite(deadline):
            raise FineTuningConfigError(f"deadline must be Unix epoch seconds or None, got {deadline!r}")
        if max_consecutive_errors is not None:
            _validate.whole_number("max_consecutive_errors", max_consecutive_errors)
        self.conn_id = conn_id
        self.job_id = job_id
        self.poll_interval = float(poll_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.max_consecutive_errors = max_consecutive_errors
        self.log_events = bool(log_events)
        if events_after is not None and (not isinstance(events_after, str) or len(events_after) > MAX_CURSOR_LENGTH):
            raise FineTuningConfigError(f"events_after must be a cursor string or None, got {events_after!r:.80}")
        self.events_after = events_after
        self.cancel_on_kill = _validate.flag("cancel_on_kill", cancel_on_kill)
        self.cancel_on_timeout = _validate.flag("cancel_on_timeout", cancel_on_timeout)
        self.budget = JobBudget(
            max_trained_tokens=(
                None if max_trained_tokens is None else _validate.whole_number("max_trained_tokens", max_trained_tokens)
            ),
            max_runtime=_validate.optional_seconds("max_runtime", max_runtime),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r}, job_id={self.job_id!r}, deadline={self.deadline!r})"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and keyword arguments that re-create this trigger (plain JSON values only)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "job_id": self.job_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "max_consecutive_errors": self.max_consecutive_errors,
                "log_events": self.log_events,
                "events_after": self.events_after,
                "cancel_on_kill": self.cancel_on_kill,
                "cancel_on_timeout": self.cancel_on_timeout,
                "max_trained_tokens": self.budget.max_trained_tokens,
                "max_runtime": self.budget.max_runtime,
            },
        )

    def _make_hook(self) -> FineTuningHook:
        from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

        return FineTuningHook(self.conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the job is terminal, the deadline passes or polling cannot go on; fire one event."""
        try:
            hook = self._make_hook()
            async with async_transport(hook, self.poll_interval + KEEPALIVE_MARGIN_SECONDS) as client:
                payload = await self._wait(hook, client)
        except Exception as error:
            # An unusable or missing connection, an invalid job id, a job the vendor does not have, a bad key, a
            # bug: the wait ends with an event the task can report, rather than a trigger crash.
            self.log.error("Stopped waiting for job %s: %s", printable(self.job_id, 140), error)
            payload = self._event(ERROR, None, f"Could not wait for fine-tuning job {self.job_id}: {error}", error)
        # The HTTP client is closed before the event is fired: the triggerer may drop this generator right after.
        yield TriggerEvent(payload)  # type: ignore[no-untyped-call]

    async def _wait(self, hook: FineTuningHook, client: Any) -> dict[str, Any]:
        deadline = None if self.deadline is None else time.monotonic() + (self.deadline - time.time())
        last_job: FineTuningJob | None = None
        failures = 0
        cursor = self.events_after
        while True:
            polled = await hook.apoll_job(client, self.job_id, deadline=deadline)
            if isinstance(polled, FineTuningApiError):
                failures += 1
                if self.max_consecutive_errors is not None and failures >= self.max_consecutive_errors:
                    message = f"Gave up waiting for fine-tuning job {self.job_id}: {failures} polls in a row failed"
                    return self._event(ERROR, last_job, f"{message}, the last with: {polled}", polled)
            else:
                failures, last_job = 0, polled
                polled.log_progress(self.log)
                if self.log_events:
                    cursor = await hook.alog_new_events(client, self.job_id, cursor, self.log, deadline=deadline)
                reason = self.budget.exceeded(polled, datetime.now(UTC))
                if reason is not None:
                    return await self._over_budget(hook, client, polled, reason)
                if polled.is_terminal:
                    return self._event(SUCCESS, polled, f"Job {polled.id} reached {polled.status.value}")
            if deadline is not None and deadline - time.monotonic() <= 0:
                return await self._timed_out(hook, client, last_job)
            await asyncio.sleep(self._pause(deadline))

    def _pause(self, deadline: float | None) -> float:
        """Seconds until the next poll: the interval, jittered, and never past the deadline."""
        pause = self.poll_interval * random.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
        if deadline is not None:
            pause = min(pause, deadline - time.monotonic())
        return max(pause, 0.0)

    async def _timed_out(self, hook: FineTuningHook, client: Any, last_job: FineTuningJob | None) -> dict[str, Any]:
        """The ``timeout`` event, after cancelling the job if ``cancel_on_timeout``."""
        after = await self._cancel(hook, client, "the deadline passed") if self.cancel_on_timeout else None
        message = self._timeout_message(last_job)
        return self._event(TIMEOUT, after or last_job, message, cancelled=was_cancelled(after))

    async def _over_budget(self, hook: FineTuningHook, client: Any, job: FineTuningJob, reason: str) -> dict[str, Any]:
        """The ``budget`` event, after cancelling the job unless it has already ended."""
        after = None if job.is_terminal else await self._cancel(hook, client, f"it passed its budget, {reason}")
        cancelled = was_cancelled(after)
        job = after or job
        return self._event(BUDGET, job, budget_message(self.job_id, reason, job, cancelled), cancelled=cancelled)

    async def _cancel(self, hook: FineTuningHook, client: Any, why: str) -> FineTuningJob | None:
        """Cancel the job within ``CANCEL_SECONDS``: the job as it stands after, or ``None`` if that failed (logged).

        A job that has ended meanwhile is left as it is (``acancel_job`` reads it first).
        """
        job_id = printable(self.job_id, 140)
        try:
            async with asyncio.timeout(CANCEL_SECONDS):
                job = await hook.acancel_job(client, self.job_id, deadline=time.monotonic() + CANCEL_SECONDS)
        except Exception as error:  # any failure is logged: none may end the wait
            self.log.warning("Could not cancel fine-tuning job %s (%s): %s", job_id, why, error or type(error).__name__)
            return None
        log_cancel_outcome(self.log, job_id, why, job)
        return job

    async def on_kill(self) -> None:
        """Cancel the job if ``cancel_on_kill`` (Airflow 3.3+ calls this when a user kills the deferred task)."""
        job_id = printable(self.job_id, 140)
        if not self.cancel_on_kill:
            self.log.info("The task was killed; fine-tuning job %s is left running (cancel_on_kill is off)", job_id)
            return
        try:
            async with asyncio.timeout(CANCEL_SECONDS):
                hook = self._make_hook()
                async with async_transport(hook) as client:
                    await self._cancel(hook, client, "the task was killed")
        except Exception as error:  # on_kill never raises
            self.log.warning(
                "Could not cancel fine-tuning job %s after the task was killed: %s",
                job_id,
                error or type(error).__name__,
            )

    def _timeout_message(self, last_job: FineTuningJob | None) -> str:
        seen = f"; last seen: {last_job.describe_progress()}" if last_job is not None else ""
        return f"Fine-tuning job {self.job_id} did not reach a terminal state before the deadline{seen}"

    def _event(
        self,
        status: str,
        job: FineTuningJob | None,
        message: str,
        error: BaseException | None = None,
        *,
        cancelled: bool | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "status": status,
            "job_id": self.job_id,
            "conn_id": self.conn_id,
            "job": job.to_dict() if job is not None else None,
            "message": message,
        }
        if error is not None:
            payload["error"] = describe_error(error)
        if cancelled is not None:
            payload["cancelled"] = cancelled
        return payload


@asynccontextmanager
async def async_transport(hook: FineTuningHook, keepalive_expiry: float | None = None) -> AsyncIterator[Any]:
    """``FineTuningHook.async_transport()`` of b8e40c2, over the copied transport.

    Typed ``Any``: the hook's ``apoll_job`` and the like take any object with ``async send(request, deadline)``.
    """
    from airflow_provider_ft._compat import aget_connection
    from airflow_provider_ft.transport import settings_from_connection

    settings = settings_from_connection(await aget_connection(hook, hook.conn_id))
    transport = AsyncTransport(settings, keepalive_expiry=keepalive_expiry)
    try:
        yield transport
    finally:
        await transport.aclose()
