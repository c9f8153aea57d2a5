"""``FineTuningJobTrigger``: wait in the triggerer, without a worker slot, for a job to reach a terminal state.

Runs in the triggerer's event loop next to many other triggers, so everything here is asyncio: one
``httpx.AsyncClient`` (through ``FineTuningHook.async_transport()``) for the trigger's lifetime, ``asyncio.sleep``
between polls, and no blocking call anywhere.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow_provider_ft._compat import BaseTrigger, TriggerEvent
from airflow_provider_ft.exceptions import FineTuningApiError
from airflow_provider_ft.triggers.events import describe_error

if TYPE_CHECKING:
    from airflow_provider_ft.hooks._transport import AsyncTransport
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
    from airflow_provider_ft.jobs import FineTuningJob

#: Event ``status`` values: the job reached a terminal state / the deadline passed first / polling gave up.
SUCCESS = "success"
TIMEOUT = "timeout"
ERROR = "error"
EVENT_STATUSES = (SUCCESS, TIMEOUT, ERROR)

#: Polls are spread by up to this fraction of the interval, so that triggers deferred together do not poll in step.
POLL_JITTER = 0.1
#: An idle connection is kept this much longer than the poll interval, so that the next poll reuses it.
KEEPALIVE_MARGIN_SECONDS = 5.0
#: A poll that is still running when the deadline passes is given this many more seconds before it is abandoned.
DEADLINE_GRACE_SECONDS = 5.0


class FineTuningJobTrigger(BaseTrigger):
    """Poll a fine-tuning job until it is terminal, then fire one event and return.

    The trigger fires exactly one ``TriggerEvent`` whose payload is a dict:

    - ``{"status": "success", "job": <FineTuningJob.to_dict()>, ...}`` when the job reached ``SUCCEEDED``,
      ``FAILED`` or ``CANCELLED`` (whether that outcome is acceptable is for the task to decide);
    - ``{"status": "timeout", "job": <last job seen or None>, ...}`` when ``deadline`` passed first;
    - ``{"status": "error", "job": <last job seen or None>, "error": {...}, ...}`` when polling cannot go on:
      an error the vendor will not recover from (missing job, bad key, bad connection), or more than
      ``max_consecutive_errors`` polls in a row that failed with a transient error.

    Every payload also has ``job_id``, ``conn_id`` and a readable ``message``. ``error`` is a dict with ``type``
    (the exception's class name, e.g. ``JobNotFoundError``), ``message``, ``http_status``, ``vendor_code``,
    ``request_id`` and ``retryable``.

    Each request is retried by the hook's transport (same policy as the blocking hook). A poll that still fails
    with a transient error (rate limit, 5xx, timeout, lost connection) is logged and polling goes on.

    :param conn_id: the Airflow connection of the vendor account (its type selects DashScope or OpenAI)
    :param job_id: the vendor's job id
    :param poll_interval: seconds between polls
    :param deadline: absolute time (Unix epoch seconds) after which a ``timeout`` event is fired; ``None`` waits
        without limit. It is absolute so that a trigger re-created from ``serialize()`` (after a triggerer restart)
        keeps the same deadline.
    :param max_consecutive_errors: fire an ``error`` event after this many polls in a row failed with a
        transient error; ``None`` (default) keeps polling until the deadline
    """

    def __init__(
        self,
        conn_id: str,
        job_id: str,
        poll_interval: float = 60.0,
        deadline: float | None = None,
        max_consecutive_errors: int | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float):
            raise ValueError(f"poll_interval must be a number of seconds, got {poll_interval!r}")
        if not math.isfinite(poll_interval) or poll_interval <= 0:
            raise ValueError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
        if deadline is not None and (
            isinstance(deadline, bool) or not isinstance(deadline, int | float) or not math.isfinite(deadline)
        ):
            raise ValueError(f"deadline must be Unix epoch seconds or None, got {deadline!r}")
        if max_consecutive_errors is not None and (
            isinstance(max_consecutive_errors, bool)
            or not isinstance(max_consecutive_errors, int)
            or max_consecutive_errors < 1
        ):
            raise ValueError(
                f"max_consecutive_errors must be a whole number >= 1 or None, got {max_consecutive_errors!r}"
            )
        self.conn_id = conn_id
        self.job_id = job_id
        self.poll_interval = float(poll_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.max_consecutive_errors = max_consecutive_errors

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
            },
        )

    def _make_hook(self) -> FineTuningHook:
        from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

        return FineTuningHook(self.conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the job is terminal, the deadline passes or polling cannot go on; fire one event."""
        payload = await self._wait()
        # The HTTP client is closed before the event is fired: the triggerer may drop this generator right after.
        yield TriggerEvent(payload)  # type: ignore[no-untyped-call]

    async def _wait(self) -> dict[str, Any]:
        last_job: FineTuningJob | None = None
        try:
            hook = self._make_hook()
            async with hook.async_transport(
                keepalive_expiry=self.poll_interval + KEEPALIVE_MARGIN_SECONDS
            ) as transport:
                failures = 0
                while True:
                    job = await self._poll(hook, transport)
                    if job is None:
                        return self._event(TIMEOUT, last_job, self._timeout_message(last_job))
                    if isinstance(job, FineTuningApiError):
                        failures += 1
                        if self.max_consecutive_errors is not None and failures >= self.max_consecutive_errors:
                            message = (
                                f"Gave up waiting for fine-tuning job {self.job_id}: {failures} polls in a row "
                                f"failed, the last with: {job}"
                            )
                            return self._event(ERROR, last_job, message, job)
                        self.log.warning("Could not read job %s this time, will poll again: %s", self.job_id, job)
                    else:
                        failures = 0
                        last_job = job
                        job.log_progress(self.log)
                        if job.is_terminal:
                            return self._event(SUCCESS, job, f"Job {job.id} reached {job.status.value}")
                    pause = self.poll_interval * random.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
                    if self.deadline is not None:
                        remaining = self.deadline - time.time()
                        if remaining <= 0:
                            return self._event(TIMEOUT, last_job, self._timeout_message(last_job))
                        pause = min(pause, remaining)
                    await asyncio.sleep(pause)
        except Exception as error:
            # Anything else (an unusable or missing connection, an invalid job id, a job the vendor does not have,
            # a bad key, a bug) ends the wait with an event the task can report, rather than a trigger crash.
            self.log.error("Stopped waiting for job %s: %s", self.job_id, error)
            return self._event(ERROR, last_job, f"Could not wait for fine-tuning job {self.job_id}: {error}", error)

    async def _poll(self, hook: FineTuningHook, transport: AsyncTransport) -> FineTuningJob | FineTuningApiError | None:
        """The job; a transient error it could not be read with; ``None`` if the deadline passed during the poll.

        Errors the vendor will not recover from are raised.
        """
        budget = None if self.deadline is None else max(self.deadline - time.time(), 0.0) + DEADLINE_GRACE_SECONDS
        limit = asyncio.timeout(budget)
        try:
            async with limit:
                return await hook.aget_job(transport, self.job_id)
        except TimeoutError:
            if limit.expired():
                return None
            raise
        except FineTuningApiError as error:
            if not error.retryable:
                raise
            return error

    def _timeout_message(self, last_job: FineTuningJob | None) -> str:
        seen = f"; last seen: {last_job.describe_progress()}" if last_job is not None else ""
        return f"Fine-tuning job {self.job_id} did not reach a terminal state before the deadline{seen}"

    def _event(
        self,
        status: str,
        job: FineTuningJob | None,
        message: str,
        error: BaseException | None = None,
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
        return payload
