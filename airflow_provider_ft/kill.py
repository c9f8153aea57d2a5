"""Whether a kill is real: what ``on_kill`` reads before it cancels a job, and what it concludes.

Airflow calls ``on_kill`` in cases where the task instance was not killed at all, and a cancel there throws away a
job that a live try of the same task instance still waits on:

- Airflow 3.3.0 to 3.3.2 call a trigger's ``on_kill`` on a triggerer that missed its heartbeats (a VM pause, a
  swap storm, a long collection), lost its triggers to another triggerer and then recovered: the runner cancels
  every trigger no longer assigned to it as a user action (``TriggerRunnerSupervisor.update_triggers``), although
  the other triggerer now waits on the same job (fix proposed in apache/airflow#73454);
- a worker frozen past ``[scheduler] task_instance_heartbeat_timeout`` and then resumed: the scheduler has failed
  the try and its retry re-attached to the job; the resumed try's supervisor is told it no longer runs (HTTP 409
  or 410 to its heartbeat on Airflow 3, "state externally set" on 2.11), SIGTERMs it, and its ``on_kill`` runs.

The one signal that tells these apart from a user's kill, readable from a worker and from a triggerer alike, is
the task instance's state now, read from Airflow (the Task SDK's supervisor on Airflow 3, as
``RuntimeTaskInstance.get_task_states``; the metadata database on 2.11). A reassignment only moves the trigger row
(``Trigger.assign_unassigned`` changes its ``triggerer_id``): the task instance stays ``deferred``. A retry or a
clear starts another try (``up_for_retry``, ``scheduled``, ``queued``, ``running``, ``deferred``, ``restarting`` or
no state): that try re-attaches to the job, so the job is its. A user who marks the task failed or success ends the
task instance: nothing will wait on the job any more, and it is cancelled.

``judge_kill`` is the decision, pure; ``confirm_kill`` (blocking, for a task's ``on_kill``) and ``aconfirm_kill``
(asyncio, for a trigger's) read the state, judge and log the verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_ft.identity import TaskInstanceRef
    from airflow_provider_ft.jobs import ProgressLog

#: States of a task instance that has ended: no try of it will wait on the job any more.
ENDED_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
#: States in which a try of the task instance runs, waits on a trigger, or is about to run (``None``: cleared).
LIVE_STATES = frozenset(
    {None, "scheduled", "queued", "running", "deferred", "up_for_retry", "up_for_reschedule", "restarting"}
)
#: Seconds a task's ``on_kill`` waits for the state. On Airflow 3 the task has 5 s between its supervisor's SIGTERM
#: and its SIGKILL, the cancel included; the supervisor asks the API server, which answers in milliseconds.
TASK_STATE_READ_SECONDS = 3.0
#: Seconds a trigger's ``on_kill`` waits for the state. A triggerer's supervisor answers through an Execution API it
#: builds in its own process on the first request that needs it (seconds: the imports, the app); Airflow 3.3
#: gives ``on_kill`` 30 s in all (``[triggerer] on_kill_timeout``), the cancel included.
TRIGGER_STATE_READ_SECONDS = 15.0


@dataclass(frozen=True)
class Unread:
    """The task instance's state could not be read.

    :param why: what went wrong, for the log
    """

    why: str


@dataclass(frozen=True)
class KillVerdict:
    """What ``on_kill`` concluded.

    :param cancel: cancel the job
    :param reason: why, for the log (the state read, or why it could not be read)
    :param known: the state was read; ``False`` when the job is left running because the kill could not be confirmed
    """

    cancel: bool
    reason: str
    known: bool = True


def judge_kill(state: str | Unread | None, *, execution_timeout: bool = False) -> KillVerdict:
    """Whether ``on_kill`` may cancel the job, from the task instance's state read just now.

    Only a task instance that has ended (``ENDED_STATES``: a user marked it failed, success or skipped, or the
    scheduler failed it with no retry left) has its job cancelled. While a try of it is live or about to run, the job
    is that try's. A state that could not be read, or one this provider does not know, leaves the job running.

    :param state: the state (``None``: no state, as after a clear), or ``Unread``
    :param execution_timeout: ``on_kill`` was called by this try's own ``execution_timeout`` (the task process
        raised ``AirflowTaskTimeout``): a ``running`` state is then this try, which is being killed
    """
    if isinstance(state, Unread):
        return KillVerdict(False, f"could not confirm that the task was killed ({state.why})", known=False)
    if state in ENDED_STATES:
        return KillVerdict(True, f"the task instance is {state}")
    if state == "running" and execution_timeout:
        return KillVerdict(True, "the task's execution_timeout passed")
    if state == "deferred":
        return KillVerdict(
            False, "the task instance is deferred: its trigger went to another triggerer, or a new try waits on the job"
        )
    if state in LIVE_STATES:
        return KillVerdict(False, f"the task instance is {state or 'cleared'}: a try of it waits on the same job")
    return KillVerdict(False, f"could not confirm that the task was killed (unknown state {state!r:.40})", known=False)


def state_of(found: Any, ti: TaskInstanceRef) -> str | Unread | None:
    """The state of ``ti`` in an answer of ``GetTaskStates`` (``{run_id: {task_id or task_id_mapindex: state}}``).

    :param found: the answer
    :param ti: the task instance asked about
    """
    map_index = -1 if ti.map_index is None else int(ti.map_index)
    key = ti.task_id if map_index < 0 else f"{ti.task_id}_{map_index}"
    states = found.get(ti.run_id) if isinstance(found, dict) else None
    if not isinstance(states, dict) or key not in states:
        return Unread(f"Airflow has no task instance {ti.dag_id}.{key} in run {ti.run_id}")
    state = states[key]
    state = getattr(state, "value", state)  # a TaskInstanceState
    if state is not None and not isinstance(state, str):
        return Unread(f"Airflow answered with a state of type {type(state).__name__}")
    return state


def read_state(ti: TaskInstanceRef | None, timeout: float) -> str | Unread | None:
    """The task instance's state now, as Airflow has it, or ``Unread``; never raises, returns within ``timeout``.

    :param ti: the task instance (``None``: unknown, as for a trigger not created by a triggerer)
    :param timeout: seconds to wait for the answer
    """
    if ti is None:
        return _NOT_KNOWN
    answer: list[str | Unread | None] = []
    answered = threading.Event()

    def deliver(found: str | Unread | None) -> None:
        answer.append(found)
        answered.set()

    _read_in_a_thread(ti, deliver)
    return answer[0] if answered.wait(timeout) else _no_answer(timeout)


async def aread_state(ti: TaskInstanceRef | None, timeout: float) -> str | Unread | None:
    """``read_state`` for a trigger: the event loop stays free while Airflow answers.

    :param ti: the trigger's task instance (``BaseTrigger.task_instance``)
    :param timeout: seconds to wait for the answer
    """
    if ti is None:
        return _NOT_KNOWN
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str | Unread | None] = loop.create_future()

    def settle(found: str | Unread | None) -> None:
        if not answer.done():
            answer.set_result(found)

    def deliver(found: str | Unread | None) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop has closed meanwhile
            loop.call_soon_threadsafe(settle, found)

    _read_in_a_thread(ti, deliver)
    try:
        async with asyncio.timeout(timeout):
            return await answer
    except TimeoutError:
        return _no_answer(timeout)


_NOT_KNOWN = Unread("the task instance is not known here")


def _no_answer(timeout: float) -> Unread:
    return Unread(f"Airflow did not answer within {timeout:g} s")


def _read_in_a_thread(ti: TaskInstanceRef, deliver: Callable[[str | Unread | None], None]) -> None:
    """Ask Airflow for the state in a daemon thread and hand the answer (or ``Unread``) to ``deliver``.

    A thread of its own: ``on_kill`` may run in a signal handler that interrupted the task while it held the
    connection to its supervisor, and a reading that cannot get it then must neither hang the task nor keep the
    process from exiting; in a triggerer, the event loop goes on meanwhile.
    """
    from airflow_provider_ft import _compat

    def read() -> None:
        try:
            found = state_of(_compat.task_instance_states(ti), ti)
        except Exception as error:  # no Task SDK runtime, no database, a refused request: not a confirmation
            found = Unread(f"{type(error).__name__}: {error}"[:300])
        deliver(found)

    threading.Thread(target=read, name="ft-read-task-state", daemon=True).start()


def confirm_kill(ti: TaskInstanceRef | None, log: ProgressLog, job: str, timeout: float | None = None) -> KillVerdict:
    """Read the task instance's state and judge a task's ``on_kill``; log the verdict and why.

    Call it from ``on_kill`` itself: it tells this try's ``execution_timeout`` (``AirflowTaskTimeout`` being
    handled by the caller) from a SIGTERM.

    :param ti: the task instance being killed
    :param log: the task's logger
    :param job: the job, as the log names it
    :param timeout: seconds to wait for the state (default ``TASK_STATE_READ_SECONDS``)
    """
    from airflow_provider_ft._compat import handling_task_timeout

    state = read_state(ti, TASK_STATE_READ_SECONDS if timeout is None else timeout)
    verdict = judge_kill(state, execution_timeout=handling_task_timeout())
    _log_verdict(log, job, verdict)
    return verdict


async def aconfirm_kill(
    ti: TaskInstanceRef | None, log: ProgressLog, job: str, timeout: float | None = None
) -> KillVerdict:
    """``confirm_kill`` for a trigger's ``on_kill``.

    :param ti: the trigger's task instance (``BaseTrigger.task_instance``)
    :param log: the trigger's logger
    :param job: the job, as the log names it
    :param timeout: seconds to wait for the state (default ``TRIGGER_STATE_READ_SECONDS``)
    """
    verdict = judge_kill(await aread_state(ti, TRIGGER_STATE_READ_SECONDS if timeout is None else timeout))
    _log_verdict(log, job, verdict)
    return verdict


def _log_verdict(log: ProgressLog, job: str, verdict: KillVerdict) -> None:
    if verdict.cancel:
        log.info("The task was killed (%s); cancelling %s", verdict.reason, job)
    else:
        (log.info if verdict.known else log.warning)("Not cancelling %s: %s", job, verdict.reason)
