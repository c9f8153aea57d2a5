"""``FineTuningJobTrigger``: wait in the triggerer, without a worker slot, for a job to reach a terminal state.

Runs in the triggerer's event loop next to many other triggers (thousands, of every provider), so everything here
is asyncio and cheap: ``asyncio.sleep`` between polls, no blocking call anywhere, the first poll spread over one
interval (the task checked the job just before deferring, so triggers deferred together do not poll together), a
progress line only when the progress changed, and a transport (``FineTuningHook.async_transport()``) whose HTTP
connections, reads and rate-limit state are shared with the other triggers of the same account in this loop.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any

from airflow_provider_ft import _validate, defaults
from airflow_provider_ft._compat import BaseTrigger, TriggerEvent
from airflow_provider_ft._text import printable
from airflow_provider_ft.core.watch import Verdict, Watch, aguard_cancel, budget_message, was_cancelled
from airflow_provider_ft.cost import Price
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningConfigError, describe_error
from airflow_provider_ft.jobs import JobBudget
from airflow_provider_ft.kill import aconfirm_kill

if TYPE_CHECKING:
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
    from airflow_provider_ft.jobs import FineTuningJob, ProgressLog
    from airflow_provider_ft.transport import AsyncTransport

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
#: An unchanged progress line is logged again after this many seconds, so that a long wait still shows it is alive.
PROGRESS_REPEAT_SECONDS = 600.0
#: Longest progress-log cursor taken (an OpenAI event id, a DashScope line count); it is stored with the trigger.
MAX_CURSOR_LENGTH = 200
#: Seconds one cancel may take, connection lookup and retries included.
CANCEL_SECONDS = 20.0
#: Seconds ``on_kill`` may take in all, the reading of the task instance's state and the cancel included: Airflow
#: 3.3's triggerer gives it 30 s (``[triggerer] on_kill_timeout``); the margin leaves room for the log lines.
ON_KILL_SECONDS = 28.0


class FineTuningJobTrigger(BaseTrigger):
    """Poll a fine-tuning job until it is terminal, then fire one event and return.

    The trigger fires exactly one ``TriggerEvent`` whose payload is a dict:

    - ``{"status": "success", "job": <FineTuningJob.to_dict()>, ...}`` when the job reached ``SUCCEEDED``,
      ``FAILED`` or ``CANCELLED`` (whether that outcome is acceptable is for the task to decide);
    - ``{"status": "timeout", "job": <last job seen or None>, "cancelled": <bool>, ...}`` when ``deadline``
      passed first. With ``cancel_on_timeout`` the job is cancelled first and ``job`` is the job after the cancel;
      ``cancelled`` says whether the job now stands cancelled (or cancelling);
    - ``{"status": "budget", "job": <the job after the cancel>, "cancelled": <bool>, ...}`` when a poll found the
      job past ``max_trained_tokens``, ``max_cost`` or ``max_runtime``: a running job is cancelled first, a job that
      has already ended is not (``cancelled`` false); ``message`` names the limit and the figures;
    - ``{"status": "error", "job": <last job seen or None>, "error": {...}, ...}`` when polling cannot go on:
      an error the vendor will not recover from (missing job, bad key, bad connection), or more than
      ``max_consecutive_errors`` polls in a row that failed with a transient error.

    Every payload also has ``job_id``, ``conn_id`` and a readable ``message``. ``error`` is a dict with ``type``
    (the exception's class name, e.g. ``JobNotFoundError``), ``message``, ``http_status``, ``vendor_code``,
    ``request_id`` and ``retryable``.

    Each request is retried by the hook's transport (same policy as the blocking hook). A poll that still fails
    with a transient error (rate limit, 5xx, timeout, lost connection) is logged and polling goes on.

    :param conn_id: the Airflow connection of the vendor account (its type selects the vendor)
    :param job_id: the vendor's job id
    :param poll_interval: seconds between polls; the first poll comes at a random moment of the first interval
        (the deferring task has just checked the job), so that triggers deferred together poll apart
    :param deadline: absolute time (Unix epoch seconds) after which a ``timeout`` event is fired; ``None`` waits
        without limit. It is absolute so that a trigger re-created from ``serialize()`` (after a triggerer restart)
        keeps the same deadline.
    :param max_consecutive_errors: fire an ``error`` event after this many polls in a row failed with a
        transient error; ``None`` (default) keeps polling until the deadline
    :param log_events: after each poll that read the job, log the entries of the vendor's own progress log
        (events; DashScope: log lines) not logged before, one line each, oldest first, in the triggerer's
        log. A failure to read them is logged at WARNING and never ends the wait.
    :param events_after: the progress-log cursor to start from (``None``: the first entry): the sensor passes the
        one its check before deferring reached, so each entry is logged once across the deferral. The cursor then
        moves on in memory: a trigger re-created after a triggerer restart logs again from ``events_after``.
    :param cancel_on_kill: cancel the job in ``on_kill`` when a user kills the deferred task (marks it failed or
        success), once the task instance's state confirms it (see ``on_kill``: a clear, a retry or a triggerer
        that lost the trigger to another one leave the job running). Only Airflow 3.3 and later call a trigger's
        ``on_kill``; on older versions nothing cancels the job when a deferred task is killed.
    :param cancel_on_timeout: when ``deadline`` passes, cancel the job before firing the ``timeout`` event
    :param max_trained_tokens: fire a ``budget`` event (cancelling a running job first) once the vendor reports
        more trained tokens than this; vendors report them mostly once a job has ended
    :param max_runtime: seconds from the job's ``created_at`` (as the vendor reports it) after which a ``budget``
        event is fired, the job cancelled first
    :param max_cost: fire a ``budget`` event (cancelling a running job first) once the trained tokens the vendor
        reports cost more than this at ``price_per_million_tokens``; like ``max_trained_tokens``, mostly once a job
        has ended. The price travels with the trigger (the deferring task read it from the connection), so the
        trigger measures with the price the task was started with
    :param price_per_million_tokens: what ``max_cost`` is measured with; required with it
    :param currency: the price's currency, for messages
    """

    #: The first poll comes at a random moment of this fraction of the first interval (0: at once).
    first_poll_spread: float = 1.0

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
        max_cost: float | None = None,
        price_per_million_tokens: float | None = None,
        currency: str | None = None,
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
        self.budget = _budget(max_trained_tokens, max_runtime, max_cost, price_per_million_tokens, currency)

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
                **_cost_arguments(self.budget),
            },
        )

    def _make_hook(self) -> FineTuningHook:
        from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

        return FineTuningHook(self.conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the job is terminal, the deadline passes or polling cannot go on; fire one event."""
        try:
            await asyncio.sleep(self._first_pause())
            hook = self._make_hook()
            async with hook.async_transport(
                keepalive_expiry=self.poll_interval + KEEPALIVE_MARGIN_SECONDS,
                reuse_seconds=self.poll_interval * (1 - POLL_JITTER),
            ) as client:
                payload = await self._wait(hook, client)
        except Exception as error:
            # An unusable or missing connection, an invalid job id, a job the vendor does not have, a bad key, a
            # bug: the wait ends with an event the task can report, rather than a trigger crash.
            self.log.error("Stopped waiting for job %s: %s", printable(self.job_id, 140), error)
            payload = self._event(ERROR, None, f"Could not wait for fine-tuning job {self.job_id}: {error}", error)
        # The HTTP client is closed before the event is fired: the triggerer may drop this generator right after.
        yield TriggerEvent(payload)  # type: ignore[no-untyped-call]

    async def _wait(self, hook: FineTuningHook, client: AsyncTransport) -> dict[str, Any]:
        deadline = None if self.deadline is None else time.monotonic() + (self.deadline - time.time())
        watch = Watch(self.job_id, self.budget, self.max_consecutive_errors)
        cursor = self.events_after
        progress = _ProgressLine(self.log)
        while True:
            event, cursor = await self._poll(hook, client, watch, progress, cursor, deadline)
            if event is not None:
                return event
            if deadline is not None and deadline - time.monotonic() <= 0:
                after = await self._cancel(hook, client, "the deadline passed") if self.cancel_on_timeout else None
                return self._event(
                    TIMEOUT, after or watch.last_seen, watch.timeout_message(), cancelled=was_cancelled(after)
                )
            await asyncio.sleep(self._pause(deadline))

    async def _poll(
        self,
        hook: FineTuningHook,
        client: AsyncTransport,
        watch: Watch,
        progress: _ProgressLine,
        cursor: str | None,
        deadline: float | None,
    ) -> tuple[dict[str, Any] | None, str | None]:
        """One poll: the event it ends the wait with (``None``: wait on), and the log cursor after it. What it read
        is dropped when it returns: a waiting trigger keeps only what ``watch`` keeps."""
        polled = await hook.apoll_job(client, self.job_id, deadline=deadline)
        if not isinstance(polled, FineTuningApiError):
            if self.log_events:
                cursor = await hook.alog_new_events(client, self.job_id, cursor, self.log, deadline=deadline)
            progress.log(polled)
        look = watch.conclude(polled)
        if look.verdict is Verdict.GAVE_UP and look.error is not None:
            return self._event(ERROR, look.job, watch.gave_up_message(look.error), look.error), cursor
        if look.verdict is Verdict.OVER_BUDGET and look.job is not None:
            return await self._over_budget(hook, client, look.job, look.reason or ""), cursor
        if look.verdict is Verdict.ENDED and look.job is not None:
            return self._event(SUCCESS, look.job, f"Job {look.job.id} reached {look.job.status.value}"), cursor
        return None, cursor

    def _first_pause(self) -> float:
        """Seconds before the first poll: anywhere in the first ``first_poll_spread`` of the interval, never past
        the deadline."""
        pause = random.uniform(0, self.poll_interval * self.first_poll_spread)
        if self.deadline is not None:
            pause = min(pause, self.deadline - time.time())
        return max(pause, 0.0)

    def _pause(self, deadline: float | None) -> float:
        """Seconds until the next poll: the interval, jittered, and never past the deadline."""
        pause = self.poll_interval * random.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
        if deadline is not None:
            pause = min(pause, deadline - time.monotonic())
        return max(pause, 0.0)

    async def _over_budget(
        self, hook: FineTuningHook, client: AsyncTransport, job: FineTuningJob, reason: str
    ) -> dict[str, Any]:
        """The ``budget`` event, after cancelling the job unless it has already ended."""
        after = None if job.is_terminal else await self._cancel(hook, client, f"it passed its budget, {reason}")
        cancelled = was_cancelled(after)
        job = after or job
        return self._event(BUDGET, job, budget_message(self.job_id, reason, job, cancelled), cancelled=cancelled)

    async def _cancel(self, hook: FineTuningHook, client: AsyncTransport, why: str) -> FineTuningJob | None:
        """Cancel the job within ``CANCEL_SECONDS`` (a job that has ended meanwhile is left as it is): the job as it
        stands after, or ``None`` if that failed (logged)."""

        async def cancel() -> FineTuningJob:
            async with asyncio.timeout(CANCEL_SECONDS):
                return await hook.acancel_job(client, self.job_id, deadline=time.monotonic() + CANCEL_SECONDS)

        return await aguard_cancel(cancel, self.log, self.job_id, why)

    async def on_kill(self) -> None:
        """Cancel the job if ``cancel_on_kill`` and the task instance has really ended: Airflow calls this when a user
        kills the deferred task, and also when it only looks so.

        Airflow 3.3 and later call it after cancelling ``run()`` when a user marks the deferred task failed or
        success, or clears it; not when the triggerer stops or restarts, or when the deferral times out. Airflow
        3.3.0 to 3.3.2 (at least) also call it on a triggerer that lost its triggers to another one after missing
        heartbeats for ``[triggerer] triggerer_health_check_threshold`` and then recovered (a VM pause, a swap
        storm; fix proposed in apache/airflow#73454), while the other triggerer waits on the same job.

        So the kill is confirmed first, from the task instance's state now, read from the triggerer's supervisor
        (``airflow_provider_ft.kill``): the job is cancelled only if the task instance has ended (``failed``,
        ``success``, ``skipped``, ``upstream_failed``, ``removed``). A task instance still ``deferred`` means the
        trigger was handed to another triggerer (that only moves the trigger row); one cleared or retried (no state,
        ``scheduled``, ``queued``, ``running``, ...) re-attaches to the job. In both cases, and when the state
        cannot be read within ``kill.TRIGGER_STATE_READ_SECONDS``, the job is left running and the log says why.

        Airflow 2.11 and 3.0 to 3.2 never call a trigger's ``on_kill``: killing the deferred task only cancels
        ``run()`` and the job keeps running; the task's own ``on_kill`` does not run either, since a deferred task
        is on no worker. Cancel it from a teardown task (``CancelFineTuningJobOperator``) there.

        The cancel reads the connection again and opens a client of its own (``run()`` has closed its); the whole
        of ``on_kill`` takes at most ``ON_KILL_SECONDS`` and never raises: a failure is logged as a warning. It is
        not cut short by the cancels the triggerer repeats meanwhile (see ``_outlasting_cancels``).
        """
        job_id = printable(self.job_id, 140)
        if not self.cancel_on_kill:
            self.log.info("The task was killed; fine-tuning job %s is left running (cancel_on_kill is off)", job_id)
            return
        await _outlasting_cancels(self._cancel_if_killed(job_id))

    async def _cancel_if_killed(self, job_id: str) -> None:
        """Confirm the kill and cancel the job, within ``ON_KILL_SECONDS``; log, never raise."""
        started = time.monotonic()
        verdict = await aconfirm_kill(getattr(self, "task_instance", None), self.log, f"fine-tuning job {job_id}")
        if not verdict.cancel:
            return
        try:
            async with asyncio.timeout(min(CANCEL_SECONDS, started + ON_KILL_SECONDS - time.monotonic())):
                hook = self._make_hook()
                async with hook.async_transport() as client:
                    await self._cancel(hook, client, "the task was killed")
        except Exception as error:  # on_kill never raises
            self.log.warning(
                "Could not cancel fine-tuning job %s after the task was killed: %s",
                job_id,
                error or type(error).__name__,
            )

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


def _budget(
    max_trained_tokens: int | None,
    max_runtime: float | None,
    max_cost: float | None,
    price_per_million_tokens: float | None,
    currency: str | None,
) -> JobBudget:
    if max_trained_tokens is not None:
        _validate.whole_number("max_trained_tokens", max_trained_tokens)
    runtime = _validate.optional_seconds("max_runtime", max_runtime)
    most = _validate.optional_amount("max_cost", max_cost)
    try:
        price = None if price_per_million_tokens is None else Price(price_per_million_tokens, currency)
        return JobBudget(max_trained_tokens, runtime, most, price)
    except ValueError as error:
        raise FineTuningConfigError(f"FineTuningJobTrigger: {error}") from None


def _cost_arguments(budget: JobBudget) -> dict[str, Any]:
    """``max_cost`` and its price as trigger arguments; none without ``max_cost``, so that a trigger without one
    serializes as before and a triggerer of an earlier version still takes it."""
    if budget.max_cost is None or budget.price is None:
        return {}
    price = budget.price
    return {
        "max_cost": budget.max_cost,
        "price_per_million_tokens": price.per_million_tokens,
        "currency": price.currency,
    }


async def _outlasting_cancels(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` (bounded on its own) to its end, through the cancels Airflow's triggerer repeats meanwhile.

    Airflow 3.3 (to 3.3.2 at least) cancels a trigger it removes again at every loop of its runner, about once a
    second, until the trigger has ended, ``on_kill`` included (the supervisor sends its ``cancelling_triggers`` with
    every sync, and ``TriggerRunner.cancel_triggers`` cancels each one still running): a cancel at the vendor would be
    cut short whenever reading the state took longer than one loop, as the first request of a triggerer does while
    its supervisor builds its Execution API. ``work`` is shielded and waited for; the cancels that arrive meanwhile
    are withdrawn (``Task.uncancel``). On Python 3.11 ``asyncio.wait_for`` runs ``on_kill`` in a task of its own and
    stops waiting for it at the second cancel: ``work`` then ends on its own, its log lines in the triggerer's log.
    """
    task = asyncio.ensure_future(work)
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # work itself was cancelled (the event loop shutting down): so are we
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()


class _ProgressLine:
    """Logs a job's progress when it changed, or when the same line was last logged ``PROGRESS_REPEAT_SECONDS`` ago."""

    __slots__ = ("_last", "_log", "_logged_at")

    def __init__(self, log: ProgressLog) -> None:
        self._log = log
        self._last = ""
        self._logged_at = -math.inf

    def log(self, job: FineTuningJob) -> None:
        line, now = job.describe_progress(), time.monotonic()
        if line != self._last or now - self._logged_at >= PROGRESS_REPEAT_SECONDS:
            job.log_progress(self._log)
            self._last, self._logged_at = line, now
