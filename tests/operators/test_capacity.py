"""``CreateFineTuningJobOperator`` on an account at its job limit (``wait_for_capacity``), over real HTTP.

The emulator answers a create past the limit as the vendor documents it (OpenAI's daily limit, Azure OpenAI's
``quotaExceeded``); DashScope and Together AI document no such answer, so a 429 there stays what it always was.
The account is full with a job of another task, which ends (or, on OpenAI, ages out of the day) when the task
first decides to wait: no test depends on timing.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft._compat import TaskDeferred
from airflow_provider_ft.capacity import CapacityWait
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningCapacityError, FineTuningConfigError
from airflow_provider_ft.identity import TaskIdentity
from airflow_provider_ft.operators.create import CreateFineTuningJobOperator
from airflow_provider_ft.transport import ratelimit
from airflow_provider_ft.triggers.capacity import CapacityWaitTrigger
from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
from airflow_provider_ft_emulator import FineTuningEmulator, RecordedRequest
from airflow_provider_ft_emulator.faults import Fault
from tests.airflow_versions import xcom
from tests.conftest import CONN_TYPES, FAST_RETRIES, ConnectionFactory, Vendor, seed_job_of
from tests.operators.conftest import SUCCEEDED, TaskInstance
from tests.operators.test_create import CREATE_PATHS, GOOD_RECORD, MODELS, context, operator

#: The vendors that document an answer for an account at its job limit, and those that do not.
LIMITED = ("azure", "openai")
UNDOCUMENTED = ("dashscope", "together")
DAY = 24 * 3600.0
ENOUGH = 120.0  # seconds of wait_for_capacity no test comes near
TEST_DAGS = Path(__file__).resolve().parent / "dags"
CREATED = {"openai": 200, "azure": 201}


@pytest.fixture(params=LIMITED)
def limited_vendor(
    request: pytest.FixtureRequest, emulator: FineTuningEmulator, make_connection: ConnectionFactory
) -> Vendor:
    """A vendor that documents its job-limit answer, with a connection to the emulator."""
    vendor = Vendor(request.param, CONN_TYPES[request.param])
    make_connection(vendor.conn_id, vendor.conn_type, host=emulator.url(vendor.name), **FAST_RETRIES)
    return vendor


@pytest.fixture
def training_data(tmp_path: Path) -> Path:
    path = tmp_path / "capacity.jsonl"
    path.write_text(json.dumps(GOOD_RECORD) + "\n")
    return path


def fill_the_account(emulator: FineTuningEmulator, vendor: str) -> str:
    """Put the account at a limit of one job, taken by a job of another task; returns that job's id."""
    if vendor == "openai":
        emulator.limit_jobs(vendor, per_day=1)
        return emulator.seed_job(vendor, model=MODELS[vendor], runs_for=None)
    emulator.limit_jobs(vendor, active=1)
    return emulator.seed_job(vendor, status="running", runs_for=None)


def end_the_job(emulator: FineTuningEmulator, vendor: str, job_id: str) -> None:
    """The other task's job ends (OpenAI: ages out of the day's count), freeing its slot."""
    ended = {"age": 2 * DAY} if vendor == "openai" else {"status": SUCCEEDED[vendor]}
    emulator.seed_job(vendor, job_id=job_id, model=MODELS[vendor], **ended)


def room_at_the_first_wait(
    monkeypatch: pytest.MonkeyPatch, emulator: FineTuningEmulator, vendor: str
) -> list[float | None]:
    """Fill the account; its slot frees when the task first decides how long to wait (``CapacityWait.pause``, in
    the worker in both paths). Returns the pauses the task chose, one per wait."""
    blocker = fill_the_account(emulator, vendor)
    chosen: list[float | None] = []
    choose = CapacityWait.pause

    def choose_then_free_the_slot(wait: CapacityWait, refusal: Any, now: float) -> float | None:
        chosen.append(choose(wait, refusal, now))
        end_the_job(emulator, vendor, blocker)
        return chosen[-1]

    monkeypatch.setattr(CapacityWait, "pause", choose_then_free_the_slot)
    return chosen


def is_create(request: RecordedRequest, vendor: str) -> bool:
    return request.method == "POST" and re.search(CREATE_PATHS[vendor], request.path) is not None


def is_look(request: RecordedRequest) -> bool:
    """A job listing: how the task looks for its job before a create."""
    return request.method == "GET" and request.path.endswith(("/fine_tuning/jobs", "/fine-tunes"))


def creates(emulator: FineTuningEmulator, vendor: str) -> list[RecordedRequest]:
    return [request for request in emulator.requests if is_create(request, vendor)]


def each_create_follows_a_look(emulator: FineTuningEmulator, vendor: str) -> bool:
    """Whether a look for the task's job came before each create, after the create before it."""
    looked = False
    for request in emulator.requests:
        if is_look(request):
            looked = True
        elif is_create(request, vendor):
            if not looked:
                return False
            looked = False
    return True


def waits_logged(capfd: pytest.CaptureFixture[str]) -> list[str]:
    """The wait lines logged: Airflow 3 writes task records to stdout (structlog), Airflow 2 echoes them there."""
    out, err = capfd.readouterr()
    return [line for line in (out + err).splitlines() if "at its job limit" in line]


def limited_operator(vendor: Vendor, training_file: Any, **kwargs: Any) -> CreateFineTuningJobOperator:
    kwargs.setdefault("poll_interval", 0.2)
    kwargs.setdefault("wait_for_completion", False)
    return operator(vendor, training_file, **kwargs)


# -- waiting in the worker ------------------------------------------------------------------------------------


def test_waits_in_the_worker_for_room_then_creates_exactly_one_job(
    emulator: FineTuningEmulator,
    limited_vendor: Vendor,
    training_data: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses = room_at_the_first_wait(monkeypatch, emulator, limited_vendor.name)

    result = limited_operator(limited_vendor, training_data, wait_for_capacity=ENOUGH).execute(context(TaskInstance()))

    assert pauses == [0.2], "one wait, of poll_interval"
    assert result["id"] in {job["id"] for job in emulator.jobs(limited_vendor.name)}
    assert len(emulator.jobs(limited_vendor.name)) == 2, "the other task's and this one's"
    assert [request.status for request in creates(emulator, limited_vendor.name)] == [429, CREATED[limited_vendor.name]]
    assert each_create_follows_a_look(emulator, limited_vendor.name)
    uploads = [request for request in emulator.requests if request.method == "POST" and request.path.endswith("/files")]
    assert len(uploads) == 1, "the file is uploaded once, however many creates are refused"
    [line] = waits_logged(capfd)
    assert "no job was made" in line
    assert "in 0.2 s (wait_for_capacity: waiting for room until " in line
    assert ("daily_rate_limit_exceeded" if limited_vendor.name == "openai" else "quotaExceeded") in line


def test_gives_up_when_wait_for_capacity_is_over_naming_the_limit_without_pausing_the_account(
    emulator: FineTuningEmulator, limited_vendor: Vendor, training_data: Path
) -> None:
    blocker = fill_the_account(emulator, limited_vendor.name)
    task = limited_operator(limited_vendor, training_data, wait_for_capacity=timedelta(seconds=0.6))
    gate = ratelimit.gate_for(task.hook.settings)  # held, so that the task's transports share this one

    with pytest.raises(FineTuningCapacityError, match=r"Gave up waiting for room after \d+ s \(wait_for_capacity\)"):
        task.execute(context(TaskInstance()))

    assert [job["id"] for job in emulator.jobs(limited_vendor.name)] == [blocker]
    assert len(creates(emulator, limited_vendor.name)) >= 2, "tried again while the time allowed lasted"
    assert gate.paused_for(time.monotonic()) == 0.0, "a job limit is no request-rate limit: polls go on"


def test_without_wait_for_capacity_a_job_limit_fails_the_task_as_before(
    emulator: FineTuningEmulator, limited_vendor: Vendor, training_data: Path
) -> None:
    blocker = fill_the_account(emulator, limited_vendor.name)

    with pytest.raises(FineTuningApiError) as raised:
        limited_operator(limited_vendor, training_data).execute(context(TaskInstance()))

    assert raised.value.vendor_code in ("daily_rate_limit_exceeded", "quotaExceeded")
    assert str(raised.value).startswith("Gave up on the"), "tried (and looked for the job) as any 429 is"
    assert len(creates(emulator, limited_vendor.name)) == FAST_RETRIES["max_retries"] + 1
    assert [job["id"] for job in emulator.jobs(limited_vendor.name)] == [blocker]


# -- waiting in the triggerer -------------------------------------------------------------------------------------


def fire(trigger: Any) -> Any:
    async def first() -> Any:
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first())


def test_deferrable_waits_in_the_triggerer_which_sends_nothing_and_creates_from_the_worker(
    emulator: FineTuningEmulator, limited_vendor: Vendor, training_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    room_at_the_first_wait(monkeypatch, emulator, limited_vendor.name)
    ti = TaskInstance()
    task = limited_operator(
        limited_vendor, training_data, wait_for_capacity=ENOUGH, wait_for_completion=True, deferrable=True
    )
    with pytest.raises(TaskDeferred) as for_room:
        task.execute(context(ti))
    trigger = for_room.value.trigger
    assert isinstance(trigger, CapacityWaitTrigger)
    assert for_room.value.method_name == "execute_after_capacity_wait"
    assert "job_id" not in ti.xcoms, "no job yet"
    sent_before = len(emulator.requests)

    event = fire(trigger)

    assert len(emulator.requests) == sent_before, "the trigger sends nothing"
    with pytest.raises(TaskDeferred) as for_the_job:
        task.execute_after_capacity_wait(context(ti), event)
    assert isinstance(for_the_job.value.trigger, FineTuningJobTrigger), "then it waits for the job it created"
    assert for_the_job.value.trigger.job_id == ti.xcoms["job_id"]
    assert [request.status for request in creates(emulator, limited_vendor.name)] == [429, CREATED[limited_vendor.name]]
    assert each_create_follows_a_look(emulator, limited_vendor.name)


def test_a_job_made_for_the_task_meanwhile_is_found_after_the_wait_not_made_again(
    emulator: FineTuningEmulator, limited_vendor: Vendor, training_data: Path
) -> None:
    fill_the_account(emulator, limited_vendor.name)
    ti = TaskInstance()
    task = limited_operator(limited_vendor, training_data, wait_for_capacity=ENOUGH, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context(ti))
    identity = TaskIdentity(ti.dag_id, ti.task_id, ti.run_id, ti.map_index, "")
    made = seed_job_of(emulator, limited_vendor.name, identity, status="running", model=MODELS[limited_vendor.name])

    result = task.execute_after_capacity_wait(context(ti), fire(deferred.value.trigger))

    assert result["id"] == made
    assert len(creates(emulator, limited_vendor.name)) == 1, "only the refused one"


# -- vendors without a documented job-limit answer ----------------------------------------------------------------


@pytest.mark.parametrize("name", UNDOCUMENTED)
def test_a_429_where_the_vendor_documents_no_job_limit_is_no_reason_to_wait(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, training_data: Path, name: str
) -> None:
    vendor = Vendor(name, CONN_TYPES[name])
    make_connection(vendor.conn_id, vendor.conn_type, host=emulator.url(name), **FAST_RETRIES)
    emulator.inject(Fault("status", vendor=name, method="POST", path=CREATE_PATHS[name], status=429, times=100))

    with pytest.raises(FineTuningApiError, match="Gave up on the") as raised:
        limited_operator(vendor, training_data, wait_for_capacity=ENOUGH, deferrable=True).execute(
            context(TaskInstance())
        )

    assert not isinstance(raised.value, FineTuningCapacityError)
    assert len(creates(emulator, name)) == FAST_RETRIES["max_retries"] + 1


# -- the argument ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, "1h", float("nan"), True])
def test_wait_for_capacity_must_be_a_positive_duration(value: object) -> None:
    with pytest.raises(FineTuningConfigError, match="wait_for_capacity"):
        CreateFineTuningJobOperator(task_id="t", model="m", training_file="file-x", wait_for_capacity=value)


def test_wait_for_capacity_takes_a_timedelta_and_is_off_by_default() -> None:
    assert CreateFineTuningJobOperator(task_id="t", model="m", training_file="file-x").wait_for_capacity is None
    task = CreateFineTuningJobOperator(
        task_id="t", model="m", training_file="file-x", wait_for_capacity=timedelta(hours=2)
    )
    assert task.wait_for_capacity == 7200.0


# -- a DAG run -------------------------------------------------------------------------------------------------------


@pytest.mark.dag
@pytest.mark.parametrize("name", LIMITED)
def test_a_dag_run_waits_for_room_in_the_triggerer_and_makes_one_job(
    emulator: FineTuningEmulator,
    make_connection: ConnectionFactory,
    run_dag: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    vendor = Vendor(name, CONN_TYPES[name])
    make_connection(vendor.conn_id, vendor.conn_type, host=emulator.url(name), **FAST_RETRIES)
    blocker = fill_the_account(emulator, name)
    training_file = emulator.seed_file(name, "train.jsonl", (json.dumps(GOOD_RECORD) + "\n").encode())
    waited: list[CapacityWaitTrigger] = []
    wait_in_the_triggerer = CapacityWaitTrigger.run

    def wait_while_the_other_job_ends(trigger: CapacityWaitTrigger) -> Any:
        """The trigger as it is; meanwhile the other task's job ends."""
        waited.append(trigger)
        end_the_job(emulator, name, blocker)
        return wait_in_the_triggerer(trigger)

    monkeypatch.setattr(CapacityWaitTrigger, "run", wait_while_the_other_job_ends)
    dag_run = run_dag(
        TEST_DAGS / "ft_capacity_wait.py",
        "ft_test_capacity_wait",
        run_conf={"conn_id": vendor.conn_id, "model": MODELS[name], "training_file": training_file},
    )

    assert str(dag_run.state) == "success"
    job_id = xcom(dag_run, "train", "job_id")
    assert {job["id"] for job in emulator.jobs(name)} == {blocker, job_id}
    refused = [request for request in creates(emulator, name) if request.status == 429]
    assert len(waited) == len(refused) == 1, "the refusal was waited out in the triggerer"
    assert len(creates(emulator, name)) == 2, "then the job was created, once"
    assert each_create_follows_a_look(emulator, name)
