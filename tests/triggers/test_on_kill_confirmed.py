"""What ``on_kill`` concludes from the task instance's state (``airflow_provider_ft.kill``), and the trigger's
``on_kill`` acting on each answer Airflow can give, against the emulator over loopback HTTP.

Airflow 3.3.0 to 3.3.2 call a trigger's ``on_kill`` on a triggerer that recovers after its triggers went to another
one (apache/airflow#73454); the task instance is then still ``deferred``. Under real Airflow processes that case,
and a user's kill after it, are ``tests/system/test_freeze_system.py``; here each answer is given to ``on_kill``
by standing in for the supervisor's (``tests.conftest.TaskStateAnswer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ft import _compat, kill
from airflow_provider_ft.kill import ENDED_STATES, LIVE_STATES, Unread, judge_kill, read_state, state_of
from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
from tests.operators.conftest import TaskInstance
from tests.triggers.test_job_trigger_lifecycle import (
    FAST_POLL,
    GUARD_SECONDS,
    RUNNING,
    USER_ACTION,
    cancels_of,
    kill_while_polling,
    logged,
    of_a_task,
    soon,
    vendor_status,
)

if TYPE_CHECKING:
    from airflow_provider_ft_emulator import FineTuningEmulator
    from tests.conftest import TaskStateAnswer, Vendor

CANCELLED_WORD = {"dashscope": "CANCELED", "openai": "cancelled", "azure": "cancelled", "together": "cancelled"}
#: Every state of a task instance in Airflow 2.11 to 3.3 (``TaskInstanceState``), and no state (cleared).
AIRFLOW_STATES = [
    None,
    "removed",
    "scheduled",
    "queued",
    "running",
    "success",
    "restarting",
    "failed",
    "up_for_retry",
    "up_for_reschedule",
    "upstream_failed",
    "skipped",
    "deferred",
]


# -- the decision -------------------------------------------------------------------------------------------------


def test_every_airflow_state_is_judged_either_ended_or_live() -> None:
    assert set(AIRFLOW_STATES) == ENDED_STATES | LIVE_STATES
    assert not ENDED_STATES & LIVE_STATES


@pytest.mark.parametrize("state", sorted(ENDED_STATES))
def test_a_task_instance_that_has_ended_has_its_job_cancelled(state: str) -> None:
    verdict = judge_kill(state)
    assert (verdict.cancel, verdict.known) == (True, True)
    assert verdict.reason == f"the task instance is {state}"


@pytest.mark.parametrize("state", sorted(LIVE_STATES, key=str))
def test_while_a_try_is_live_or_to_come_the_job_is_left_to_it(state: str | None) -> None:
    verdict = judge_kill(state)
    assert (verdict.cancel, verdict.known) == (False, True)
    assert verdict.reason.startswith(f"the task instance is {state or 'cleared'}")


def test_a_task_instance_still_deferred_is_a_trigger_handed_to_another_triggerer() -> None:
    assert "its trigger went to another triggerer" in judge_kill("deferred").reason


@pytest.mark.parametrize("state", [Unread("no supervisor"), "paused_by_a_future_airflow", ""])
def test_a_state_not_read_or_not_known_leaves_the_job_and_says_so(state: str | Unread) -> None:
    verdict = judge_kill(state)
    assert (verdict.cancel, verdict.known) == (False, False)
    assert verdict.reason.startswith("could not confirm that the task was killed")


@pytest.mark.parametrize(
    ("state", "cancel"),
    [("running", True), ("failed", True), ("up_for_retry", False), ("queued", False), ("deferred", False)],
)
def test_the_tasks_own_execution_timeout_kills_its_running_try_only(state: str, cancel: bool) -> None:
    # A frozen worker whose alarm fires once the retry already holds the task instance must not cancel its job.
    assert judge_kill(state, execution_timeout=True).cancel is cancel
    assert judge_kill(Unread("x"), execution_timeout=True).cancel is False


# -- reading Airflow's answer -------------------------------------------------------------------------------------


class State(enum.StrEnum):
    """Stands in for Airflow's ``TaskInstanceState``, a string enum."""

    FAILED = "failed"


@pytest.mark.parametrize(
    ("answer", "map_index", "expected"),
    [
        ({"manual__2026-12-02": {"train": "deferred", "other": "failed"}}, -1, "deferred"),
        ({"manual__2026-12-02": {"train": None}}, None, None),
        ({"manual__2026-12-02": {"train": State.FAILED}}, -1, "failed"),
        # Airflow's key for a mapped task instance: GetTaskStates answers "<task_id>_<map_index>".
        ({"manual__2026-12-02": {"train_3": "failed", "train": "running"}}, 3, "failed"),
    ],
)
def test_the_state_is_read_for_the_task_instance_asked_about(
    answer: dict[str, Any], map_index: int | None, expected: str | None
) -> None:
    assert state_of(answer, TaskInstance(map_index=map_index)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"manual__2026-12-02": {}},
        {"manual__2026-12-02": {"train_0": "failed"}},
        {"another_run": {"train": "failed"}},
        {"manual__2026-12-02": {"train": 3}},
        {"manual__2026-12-02": ["train"]},
        None,
    ],
    ids=["empty", "no-task", "another-map-index", "another-run", "odd-state", "odd-run", "none"],
)
def test_an_answer_without_the_task_instance_is_not_a_state(answer: Any) -> None:
    assert isinstance(state_of(answer, TaskInstance()), Unread)


def test_an_error_of_airflow_is_a_state_not_read(task_state: TaskStateAnswer) -> None:
    task_state.error = RuntimeError("the supervisor went away")
    found = read_state(TaskInstance(), 5)
    assert found == Unread("RuntimeError: the supervisor went away")


def test_a_trigger_without_a_task_instance_reads_no_state(task_state: TaskStateAnswer) -> None:
    assert isinstance(read_state(None, 5), Unread)
    assert task_state.asked == []


def test_a_reading_that_does_not_answer_is_given_up_within_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    answered = threading.Event()

    def hangs(ti: Any) -> dict[str, Any]:
        answered.wait(30)
        return {}

    monkeypatch.setattr(_compat, "task_instance_states", hangs)
    started = time.monotonic()
    found = read_state(TaskInstance(), 0.2)
    took = time.monotonic() - started
    answered.set()
    assert found == Unread("Airflow did not answer within 0.2 s")
    assert took < 5


def test_outside_a_task_or_triggerer_process_airflow_cannot_be_asked() -> None:
    # No supervisor to ask (Airflow 3), no such task instance in the metadata database (2.11): never a state.
    assert isinstance(read_state(TaskInstance(), 10), Unread)


# -- the trigger's on_kill with each answer --------------------------------------------------------------------


async def killed(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> tuple[str, str]:
    """Kill a trigger (``cancel_on_kill``) while it polls a running job, as Airflow 3.3's triggerer does: the job's
    id and what was logged."""
    caplog.set_level(logging.INFO)
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    trigger = of_a_task(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon(), cancel_on_kill=True))
    await kill_while_polling(trigger, emulator, job_id)
    return job_id, logged(caplog, capfd)


@pytest.mark.parametrize(
    ("state", "cancel"),
    [("deferred", False), ("up_for_retry", False), (None, False), ("failed", True), ("success", True)],
)
async def test_a_trigger_cancels_the_job_only_once_the_task_instance_has_ended(
    state: str | None,
    cancel: bool,
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    task_state: TaskStateAnswer,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # "deferred": what a triggerer that recovered after its trigger went to another one reads (Airflow 3.3.2); a
    # retry or a clear (no state) waits on the same job; a user who marked the task failed or success ended it.
    task_state.state = state
    job_id, text = await killed(emulator, vendor, connection, caplog, capfd)
    assert [(ti.dag_id, ti.task_id, ti.run_id) for ti in task_state.asked] == [
        ("ft_test_create", "train", "manual__2026-12-02")
    ]
    if cancel:
        assert cancels_of(emulator, job_id) == 1
        assert vendor_status(emulator, vendor, job_id) == CANCELLED_WORD[vendor.name]
        assert f"The task was killed (the task instance is {state}); cancelling fine-tuning job {job_id}" in text
        assert f"Cancelled fine-tuning job {job_id} (the task was killed)" in text
    else:
        assert cancels_of(emulator, job_id) == 0
        assert vendor_status(emulator, vendor, job_id) == RUNNING[vendor.name]
        assert f"Not cancelling fine-tuning job {job_id}: the task instance is {state or 'cleared'}" in text


@pytest.mark.parametrize(
    ("airflow", "why"),
    [("fails", "ConnectionResetError: Supervisor closed"), ("hangs", "Airflow did not answer within 0.3 s")],
)
async def test_a_trigger_that_cannot_confirm_the_kill_leaves_the_job_within_its_bound(
    airflow: str,
    why: str,
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    task_state: TaskStateAnswer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    answered = threading.Event()
    if airflow == "fails":
        task_state.error = ConnectionResetError("Supervisor closed")
    else:
        monkeypatch.setattr(_compat, "task_instance_states", lambda ti: answered.wait(30) and {})
        monkeypatch.setattr(kill, "TRIGGER_STATE_READ_SECONDS", 0.3)  # 15 s in production, under on_kill's 30 s
    try:
        job_id, text = await killed(emulator, vendor, connection, caplog, capfd)
    finally:
        answered.set()
    assert cancels_of(emulator, job_id) == 0
    assert f"Not cancelling fine-tuning job {job_id}: could not confirm that the task was killed ({why})" in text


# -- the cancels Airflow 3.3's triggerer repeats while on_kill runs ----------------------------------------------


async def run_trigger(trigger: FineTuningJobTrigger) -> None:
    """What Airflow 3.3.2's ``TriggerRunner.run_trigger`` does with a trigger: run it; on a cancel with the user-action
    message, call ``on_kill`` under ``asyncio.wait_for`` (a cancel of that wait is swallowed), then re-raise."""
    try:
        async for _ in trigger.run():
            pass
    except asyncio.CancelledError as cancel:
        if cancel.args and cancel.args[0] == USER_ACTION:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(trigger.on_kill(), timeout=30)
        raise


async def test_on_kill_outlasts_the_cancels_the_triggerer_repeats(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Airflow 3.3.2's runner cancels a trigger it is removing again at each of its loops (about once a second) until
    # the trigger has ended, on_kill included; a triggerer's first reading takes seconds (its supervisor builds its
    # Execution API first). A cancel cut short there left the job running in the user-kill scenario.
    def slow_answer(ti: Any) -> dict[str, Any]:
        time.sleep(0.5)
        return {ti.run_id: {ti.task_id: "failed"}}

    monkeypatch.setattr(_compat, "task_instance_states", slow_answer)
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    trigger = of_a_task(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon(), cancel_on_kill=True))
    runner = asyncio.create_task(run_trigger(trigger))
    async with asyncio.timeout(GUARD_SECONDS):
        while not any(request.path.endswith("/" + job_id) for request in emulator.requests):
            await asyncio.sleep(0.01)
        while not runner.done():  # TriggerRunner.cancel_triggers, at each loop, for as long as the trigger runs
            runner.cancel(USER_ACTION)
            await asyncio.sleep(0.05)
        while cancels_of(emulator, job_id) == 0:  # on Python 3.11 on_kill may end after the runner's task
            await asyncio.sleep(0.01)
    assert runner.cancelled()
    assert cancels_of(emulator, job_id) == 1
    assert vendor_status(emulator, vendor, job_id) == CANCELLED_WORD[vendor.name]
