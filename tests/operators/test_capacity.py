"""``CreateFineTuningJobOperator`` on an account at its job limit (``wait_for_capacity``), over real HTTP.

The emulator answers a create past the limit as the vendor documents it (OpenAI's daily limit, Azure OpenAI's
``quotaExceeded``); DashScope and Together AI document no such answer, so a 429 there stays what it always was.
A slot frees about a second after the test starts (a job of another task ends, or ages out of the day).
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
from airflow_provider_ft.emulator import FineTuningEmulator, RecordedRequest
from airflow_provider_ft.emulator.faults import Fault
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningCapacityError, FineTuningConfigError
from airflow_provider_ft.hooks import _ratelimit
from airflow_provider_ft.identity import TaskIdentity
from airflow_provider_ft.operators.create import CreateFineTuningJobOperator
from airflow_provider_ft.triggers.capacity import CapacityWaitTrigger
from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
from tests.airflow_versions import xcom
from tests.conftest import CONN_TYPES, FAST_RETRIES, ConnectionFactory, Vendor, seed_job_of
from tests.operators.conftest import SUCCEEDED, TaskInstance
from tests.operators.test_create import CREATE_PATHS, GOOD_RECORD, MODELS, context, operator

#: The vendors that document an answer for an account at its job limit, and those that do not.
LIMITED = ("azure", "openai")
UNDOCUMENTED = ("dashscope", "together")
#: Seconds until the blocking job frees its slot.
FREES_AFTER = 1.0
DAY = 24 * 3600.0
ENOUGH = 120.0  # seconds of wait_for_capacity no test comes near: the slot frees after about one
TEST_DAGS = Path(__file__).resolve().parent / "dags"


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


def fill_the_account(emulator: FineTuningEmulator, vendor: str, frees_after: float | None) -> str:
    """Put the account at a limit of one job, taken by a job of another task; its slot frees after ``frees_after``
    seconds (``None``: not within any test). Returns that job's id."""
    if vendor == "openai":
        emulator.limit_jobs(vendor, per_day=1)
        age = 0.0 if frees_after is None else DAY - frees_after
        return emulator.seed_job(vendor, model=MODELS[vendor], age=age, runs_for=None)
    emulator.limit_jobs(vendor, active=1)
    return emulator.seed_job(vendor, status="running", runs_for=frees_after)


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
    emulator: FineTuningEmulator, limited_vendor: Vendor, training_data: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    blocker = fill_the_account(emulator, limited_vendor.name, FREES_AFTER)

    result = limited_operator(limited_vendor, training_data, wait_for_capacity=ENOUGH).execute(context(TaskInstance()))

    assert {job.get("id") for job in emulator.jobs(limited_vendor.name)} == {blocker, result["id"]}
    sent = creates(emulator, limited_vendor.name)
    refused = [request for request in sent if request.status == 429]
    assert refused, "the account was at its limit at first"
    assert len(sent) == len(refused) + 1, "then one create, accepted"
    assert each_create_follows_a_look(emulator, limited_vendor.name)
    uploads = [request for request in emulator.requests if request.method == "POST" and request.path.endswith("/files")]
    assert len(uploads) == 1, "the file is uploaded once, however many creates are refused"
    lines = waits_logged(capfd)
    assert len(lines) == len(refused), "one line per wait"
    assert all("no job was made" in line and "wait_for_capacity" in line for line in lines)
    assert all(
        ("daily_rate_limit_exceeded" if limited_vendor.name == "openai" else "quotaExceeded") in line for line in lines
    )


def test_gives_up_when_wait_for_capacity_is_over_naming_the_limit_without_pausing_the_account(
    emulator: FineTuningEmulator, limited_vendor: Vendor, training_data: Path
) -> None:
    blocker = fill_the_account(emulator, limited_vendor.name, None)
    task = limited_operator(limited_vendor, training_data, wait_for_capacity=timedelta(seconds=0.6))
    gate = _ratelimit.gate_for(task.hook.settings)  # held, so that the task's transports share this one

    with pytest.raises(FineTuningCapacityError, match=r"Gave up waiting for room after \d+ s \(wait_for_capacity\)"):
        task.execute(context(TaskInstance()))

    assert [job["id"] for job in emulator.jobs(limited_vendor.name)] == [blocker]
    assert len(creates(emulator, limited_vendor.name)) >= 2, "tried again while the time allowed lasted"
    assert gate.paused_for(time.monotonic()) == 0.0, "a job limit is no request-rate limit: polls go on"


def test_without_wait_for_capacity_a_job_limit_fails_the_task_as_before(
    emulator: FineTuningEmulator, limited_vendor: Vendor, training_data: Path
) -> None:
    blocker = fill_the_account(emulator, limited_vendor.name, None)

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
    emulator: FineTuningEmulator, limited_vendor: Vendor, training_data: Path
) -> None:
    fill_the_account(emulator, limited_vendor.name, FREES_AFTER)
    ti = TaskInstance()
    task = limited_operator(
        limited_vendor, training_data, wait_for_capacity=ENOUGH, wait_for_completion=True, deferrable=True
    )
    resume: Any = lambda: task.execute(context(ti))  # noqa: E731
    capacity_waits = 0

    for _ in range(1000):  # a slot frees after about a second: some five deferrals at poll_interval 0.2
        with pytest.raises(TaskDeferred) as deferred:
            resume()
        trigger = deferred.value.trigger
        if isinstance(trigger, FineTuningJobTrigger):
            break
        assert isinstance(trigger, CapacityWaitTrigger)
        assert deferred.value.method_name == "execute_after_capacity_wait"
        capacity_waits += 1
        sent_before = len(emulator.requests)
        event = fire(trigger)
        assert len(emulator.requests) == sent_before, "the trigger sends nothing"
        resume = lambda event=event: task.execute_after_capacity_wait(context(ti), event)  # noqa: E731

    assert capacity_waits >= 1
    assert capacity_waits == len([r for r in creates(emulator, limited_vendor.name) if r.status == 429])
    assert trigger.job_id == ti.xcoms["job_id"], "then it waits for the job it created"
    assert len(emulator.jobs(limited_vendor.name)) == 2
    assert each_create_follows_a_look(emulator, limited_vendor.name)


def test_a_job_made_for_the_task_meanwhile_is_found_after_the_wait_not_made_again(
    emulator: FineTuningEmulator, limited_vendor: Vendor, training_data: Path
) -> None:
    fill_the_account(emulator, limited_vendor.name, None)
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
    blocker = fill_the_account(emulator, name, None)
    training_file = emulator.seed_file(name, "train.jsonl", (json.dumps(GOOD_RECORD) + "\n").encode())
    waited: list[CapacityWaitTrigger] = []
    wait_in_the_triggerer = CapacityWaitTrigger.run

    def wait_while_the_other_job_ends(trigger: CapacityWaitTrigger) -> Any:
        """The trigger as it is; meanwhile the other task's job ends (OpenAI: ages out of the day)."""
        waited.append(trigger)
        ended = {"age": 2 * DAY} if name == "openai" else {"status": SUCCEEDED[name]}
        emulator.seed_job(name, job_id=blocker, model=MODELS[name], **ended)
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
