"""``CreateFineTuningJobOperator`` against the emulator over loopback: files, exactly once, watching, stopping.

``execute`` runs with a task instance that records XComs and carries the ids the job's identity is made of, so a
second ``execute`` with the same ids is a retry (or a cleared task) of the same task instance.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft._compat import TaskDeferred
from airflow_provider_ft.exceptions import (
    FineTuningBudgetExceeded,
    FineTuningConfigError,
    FineTuningJobFailed,
    FineTuningTimeout,
    TrainingFileError,
)
from airflow_provider_ft.operators.create import CreateFineTuningJobOperator
from airflow_provider_ft_emulator import FineTuningEmulator
from airflow_provider_ft_emulator.faults import Fault
from tests.conftest import (
    API_KEY,
    FAST_RETRIES,
    PASSED_GUARDS,
    ConnectionFactory,
    PassedGuard,
    TaskStateAnswer,
    Vendor,
    report_tokens_while_running,
)
from tests.operators.conftest import CANCELLED, RUNNING, SUCCEEDED, TaskInstance

MODELS = {
    "dashscope": "qwen-turbo",
    "openai": "gpt-4o-mini-2024-07-18",
    "azure": "gpt-4o-mini-2024-07-18",
    "together": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
}
UPLOAD_PATHS = {"dashscope": r"/files$", "openai": r"/files$", "azure": r"/files$", "together": r"/files/upload$"}
UPLOADS = ("/files", "/files/upload")
CREATE_PATHS = {
    "dashscope": r"/fine-tunes$",
    "openai": r"/fine_tuning/jobs$",
    "azure": r"/fine_tuning/jobs$",
    "together": r"/fine-tunes$",
}
GOOD_RECORD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
#: Emulated seconds per real second of the fast emulator: a created job (5 s queued, 600 s running) takes 2 s.
FAST = 300.0


def context(ti: TaskInstance) -> Any:
    return {"ti": ti}


@pytest.fixture(scope="module")
def fast_emulator_server() -> Iterator[FineTuningEmulator]:
    with FineTuningEmulator(api_key=API_KEY, time_scale=FAST) as server:
        yield server


@pytest.fixture
def fast(fast_emulator_server: FineTuningEmulator) -> Iterator[FineTuningEmulator]:
    fast_emulator_server.reset()
    yield fast_emulator_server
    fast_emulator_server.reset()


@pytest.fixture
def fast_connection(fast: FineTuningEmulator, vendor: Vendor, make_connection: ConnectionFactory) -> str:
    return make_connection(vendor.conn_id, vendor.conn_type, host=fast.url(vendor.name), **FAST_RETRIES)


@pytest.fixture
def training_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(GOOD_RECORD) + "\n" for _ in range(3)))
    return path


def operator(vendor: Vendor, training_file: Any, **kwargs: Any) -> CreateFineTuningJobOperator:
    kwargs.setdefault("poll_interval", 0.1)
    kwargs.setdefault("settle_delays", (0.0, 0.05))
    kwargs.setdefault("log_events", False)
    return CreateFineTuningJobOperator(
        task_id="train", conn_id=vendor.conn_id, model=MODELS[vendor.name], training_file=training_file, **kwargs
    )


def posts(emulator: FineTuningEmulator) -> list[str]:
    return [request.path for request in emulator.requests if request.method == "POST"]


# -- files and exactly once --------------------------------------------------------------------------------


def test_uploads_the_file_creates_one_job_and_waits_for_its_model(
    fast: FineTuningEmulator, vendor: Vendor, fast_connection: str, training_file: Path
) -> None:
    ti = TaskInstance()
    result = operator(vendor, training_file).execute(context(ti))

    assert result["status"] == "SUCCEEDED"
    assert result["fine_tuned_model"]
    assert ti.xcoms == {
        "job_id": result["id"],
        "fine_tuned_model": result["fine_tuned_model"],
        "fine_tuning_job_ref": {"conn_id": fast_connection, "job_id": result["id"]},
    } | {key: value for key, value in ti.xcoms.items() if key == "fine_tuning_job_url"}
    jobs, files = fast.jobs(vendor.name), fast.files(vendor.name)
    assert [job["job_id"] if vendor.name == "dashscope" else job["id"] for job in jobs] == [result["id"]]
    assert len(files) == 1
    assert files[0]["size" if vendor.name == "dashscope" else "bytes"] == training_file.stat().st_size


def test_a_retry_re_attaches_to_the_job_without_a_second_create_or_upload(
    fast: FineTuningEmulator, vendor: Vendor, fast_connection: str, training_file: Path
) -> None:
    first = operator(vendor, training_file, wait_for_completion=False).execute(context(TaskInstance()))
    fast.clear_requests()

    retry = operator(vendor, training_file).execute(context(TaskInstance()))

    assert retry["id"] == first["id"]
    assert retry["status"] == "SUCCEEDED"
    assert posts(fast) == []
    assert len(fast.jobs(vendor.name)) == 1
    assert len(fast.files(vendor.name)) == 1


def test_another_task_instance_gets_its_own_job_and_reuses_the_identical_upload(
    fast: FineTuningEmulator, vendor: Vendor, fast_connection: str, training_file: Path
) -> None:
    one = operator(vendor, training_file, wait_for_completion=False).execute(context(TaskInstance()))
    other = operator(vendor, training_file, wait_for_completion=False).execute(context(TaskInstance(map_index=1)))

    assert one["id"] != other["id"]
    assert len(fast.jobs(vendor.name)) == 2
    assert len(fast.files(vendor.name)) == 1


def test_a_create_whose_answer_was_lost_makes_exactly_one_job(
    fast: FineTuningEmulator, vendor: Vendor, fast_connection: str, training_file: Path
) -> None:
    fast.inject(Fault("lose_response", vendor=vendor.name, method="POST", path=CREATE_PATHS[vendor.name]))

    result = operator(vendor, training_file).execute(context(TaskInstance()))

    assert result["status"] == "SUCCEEDED"
    assert len(fast.jobs(vendor.name)) == 1
    creates = [path for path in posts(fast) if path.endswith(("/fine-tunes", "/fine_tuning/jobs"))]
    assert len(creates) == 1  # the lost one; found by the look that followed, never sent again


def test_an_upload_whose_answer_was_lost_is_found_and_not_repeated(
    fast: FineTuningEmulator, vendor: Vendor, fast_connection: str, training_file: Path
) -> None:
    fast.inject(Fault("lose_response", vendor=vendor.name, method="POST", path=UPLOAD_PATHS[vendor.name]))

    operator(vendor, training_file, wait_for_completion=False).execute(context(TaskInstance()))

    assert len(fast.files(vendor.name)) == 1
    assert [path for path in posts(fast) if path.endswith(UPLOADS)] == [posts(fast)[0]]


def test_a_job_id_and_a_file_id_are_used_as_they_are(
    fast: FineTuningEmulator, vendor: Vendor, fast_connection: str, training_file: Path
) -> None:
    file_id = fast.seed_file(vendor.name, "train.jsonl", training_file.read_bytes())
    fast.clear_requests()

    result = operator(vendor, file_id, wait_for_completion=False).execute(context(TaskInstance()))

    assert [path for path in posts(fast) if path.endswith(UPLOADS)] == []
    job = fast.job(vendor.name, result["id"])
    assert job is not None
    assert file_id in json.dumps(job)


# -- bad input: refused before any request --------------------------------------------------------------------

BAD_LINES = {
    "not JSON": (b"{not json\n", "line 2 is not JSON"),
    "blank": (b"\n", "line 2 is blank"),
    "no messages": (
        b'{"question": "x", "answer": "y"}\n',
        "line 2 is not a usable record: the record has no 'messages'",
    ),
    "bad role": (b'{"messages": [{"role": "robot", "content": "x"}]}\n', "role 'robot'"),
    "an array": (b"[1, 2]\n", "is a JSON array, not an object"),
    "not UTF-8": (b'{"messages": "\xff"}\n', "line 2 is not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_a_bad_training_file_names_its_line_and_sends_nothing(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, tmp_path: Path, case: str
) -> None:
    content, expected = BAD_LINES[case]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(json.dumps(GOOD_RECORD).encode() + b"\n" + content)

    with pytest.raises(TrainingFileError, match=r"bad\.jsonl") as raised:
        operator(vendor, path).execute(context(TaskInstance()))

    assert expected in str(raised.value)
    assert emulator.requests == []


def test_a_missing_local_file_sends_nothing(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    with pytest.raises(TrainingFileError, match="is not a file"):
        operator(vendor, "/no/such/train.jsonl").execute(context(TaskInstance()))
    assert emulator.requests == []


OTHER_VENDORS_OPTIONS = {
    "dashscope": {"seed": 7, "metadata": {"team": "a"}},
    "openai": {"training_type": "sft"},
    "azure": {"suffix": "mine", "metadata": {"team": "a"}},
    "together": {"suffix": "mine", "metadata": {"team": "a"}},
}


def test_options_of_the_other_vendor_are_refused_before_any_request(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, training_file: Path
) -> None:
    options = OTHER_VENDORS_OPTIONS[vendor.name]
    with pytest.raises(FineTuningConfigError, match=f"takes no {', '.join(options)}"):
        operator(vendor, training_file, **options).execute(context(TaskInstance()))
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metadata": {"airflow_ti": "mine"}}, "not starting with 'airflow_'"),
        ({"metadata": {f"k{i}": "v" for i in range(12)}}, "at most 11 pairs"),
        ({"suffix": "x" * 65}, "suffix must be"),
        ({"method": "reinforcement"}, "needs its grader"),
        ({"method": {"type": "supervised"}, "hyperparameters": {"n_epochs": 2}}, "inside the method"),
        ({"seed": -1}, "seed must be"),
    ],
)
def test_openai_arguments_are_checked_before_any_request(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, training_file: Path, options: Any, message: str
) -> None:
    vendor = Vendor("openai", "openaifinetuning")
    make_connection(vendor.conn_id, vendor.conn_type, host=emulator.url("openai"), **FAST_RETRIES)
    with pytest.raises(FineTuningConfigError, match=message):
        operator(vendor, training_file, **options).execute(context(TaskInstance()))
    assert emulator.requests == []


def test_the_job_carries_the_method_metadata_and_identity(
    fast: FineTuningEmulator, make_connection: ConnectionFactory, training_file: Path
) -> None:
    vendor = Vendor("openai", "openaifinetuning")
    make_connection(vendor.conn_id, vendor.conn_type, host=fast.url("openai"), **FAST_RETRIES)
    result = operator(
        vendor,
        training_file,
        wait_for_completion=False,
        method="supervised",
        hyperparameters={"n_epochs": 2},
        suffix="mine",
        seed=42,
        metadata={"team": "search"},
    ).execute(context(TaskInstance()))

    job = fast.job("openai", result["id"])
    assert job is not None
    assert job["method"] == {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}
    assert (job["user_provided_suffix"], job["seed"]) == ("mine", 42)
    assert job["metadata"]["team"] == "search"
    assert job["metadata"]["airflow_task_id"] == "train"
    assert len(job["metadata"]["airflow_ti"]) == 64


# -- stopping: timeout, budget, kill ------------------------------------------------------------------------


def test_a_timeout_cancels_the_job_before_failing(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, training_file: Path
) -> None:
    ti = TaskInstance()
    with pytest.raises(FineTuningTimeout, match="was cancelled"):
        operator(vendor, training_file, timeout=0.5).execute(context(ti))
    job = emulator.job(vendor.name, ti.xcoms["job_id"])
    assert job is not None
    assert job["status"] in (CANCELLED[vendor.name], "CANCELING")


def test_a_timeout_leaves_the_job_running_when_asked_to(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, training_file: Path
) -> None:
    ti = TaskInstance()
    with pytest.raises(FineTuningTimeout, match="still runs"):
        operator(vendor, training_file, timeout=0.5, cancel_on_timeout=False).execute(context(ti))
    job = emulator.job(vendor.name, ti.xcoms["job_id"])
    assert job is not None
    assert job["status"] not in (CANCELLED[vendor.name], "CANCELING")


def test_max_runtime_cancels_the_job_and_names_the_limit(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, training_file: Path
) -> None:
    ti = TaskInstance()
    with pytest.raises(FineTuningBudgetExceeded, match="max_runtime") as raised:
        operator(vendor, training_file, max_runtime=1.0, poll_interval=0.3).execute(context(ti))
    job = emulator.job(vendor.name, ti.xcoms["job_id"])
    assert job is not None
    assert job["status"] in (CANCELLED[vendor.name], "CANCELING")
    assert raised.value.job is not None
    assert raised.value.job["id"] == ti.xcoms["job_id"]


@pytest.mark.parametrize("guard", PASSED_GUARDS, ids=lambda guard: guard.name)
def test_a_token_guard_fails_a_job_that_ended_over_it(
    fast: FineTuningEmulator,
    vendor: Vendor,
    make_connection: ConnectionFactory,
    training_file: Path,
    guard: PassedGuard,
) -> None:
    make_connection(
        vendor.conn_id, vendor.conn_type, host=fast.url(vendor.name), **FAST_RETRIES, **guard.connection_extras
    )
    with pytest.raises(FineTuningBudgetExceeded, match=f"{guard.name}: the job "):
        operator(vendor, training_file, **guard.arguments).execute(context(TaskInstance()))
    assert [job["status"] for job in fast.jobs(vendor.name)] == [SUCCEEDED[vendor.name]]


@pytest.mark.parametrize("guard", PASSED_GUARDS, ids=lambda guard: guard.name)
def test_a_token_guard_passed_while_running_cancels_the_job_once(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    make_connection: ConnectionFactory,
    training_file: Path,
    guard: PassedGuard,
) -> None:
    host = emulator.url(vendor.name)
    make_connection(vendor.conn_id, vendor.conn_type, host=host, **FAST_RETRIES, **guard.connection_extras)
    started = operator(vendor, training_file, wait_for_completion=False).execute(context(TaskInstance()))
    report_tokens_while_running(emulator, vendor.name, started["id"], 50_000)

    with pytest.raises(FineTuningBudgetExceeded, match=f"{guard.name}: .*; it was cancelled") as raised:
        operator(vendor, training_file, **guard.arguments).execute(context(TaskInstance()))  # re-attaches

    assert raised.value.job is not None
    assert raised.value.job["status"] == "CANCELLED"
    cancels = [path for path in posts(emulator) if path.endswith("/cancel")]
    assert len(cancels) == 1
    assert cancels[0].endswith(f"/{started['id']}/cancel")
    job = emulator.job(vendor.name, started["id"])
    assert job is not None
    assert job["status"] == CANCELLED[vendor.name]


def test_max_cost_without_a_price_fails_before_any_request(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, training_file: Path
) -> None:
    with pytest.raises(FineTuningConfigError, match=rf"max_cost needs a price: connection '{vendor.conn_id}'"):
        operator(vendor, training_file, max_cost=10).execute(context(TaskInstance()))
    assert emulator.requests == []


def test_a_bad_price_fails_a_task_with_max_cost_before_any_request(
    emulator: FineTuningEmulator, vendor: Vendor, make_connection: ConnectionFactory, training_file: Path
) -> None:
    host = emulator.url(vendor.name)
    make_connection(vendor.conn_id, vendor.conn_type, host=host, price_per_million_tokens="free")
    with pytest.raises(FineTuningConfigError, match="extra 'price_per_million_tokens' must be"):
        operator(vendor, training_file, max_cost=10).execute(context(TaskInstance()))
    assert emulator.requests == []


@pytest.mark.parametrize("max_cost", [0, -5, math.nan, math.inf, True, "10"])
def test_max_cost_is_checked_when_the_dag_is_parsed(max_cost: object) -> None:
    with pytest.raises(FineTuningConfigError, match="max_cost must be a finite number above 0"):
        CreateFineTuningJobOperator(task_id="train", model="m", training_file="file-1", max_cost=max_cost)


def test_killing_the_task_cancels_the_job(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, training_file: Path, task_state: TaskStateAnswer
) -> None:
    task = operator(vendor, training_file, poll_interval=0.2, timeout=30)
    ti = TaskInstance()

    def kill_once_the_job_exists() -> None:
        # Airflow calls on_kill from another thread of the task's process (its signal handler or the runner).
        deadline = time.monotonic() + 10
        while "job_id" not in ti.xcoms and time.monotonic() < deadline:
            time.sleep(0.05)
        task.on_kill()

    killer = threading.Thread(target=kill_once_the_job_exists)
    killer.start()
    with pytest.raises(FineTuningJobFailed, match="CANCELLED"):  # the wait ends once the job is cancelled
        task.execute(context(ti))
    killer.join(15)

    job = emulator.job(vendor.name, ti.xcoms["job_id"])
    assert job is not None
    assert job["status"] in (CANCELLED[vendor.name], "CANCELING")


def test_a_kill_while_the_create_is_answered_finds_the_job_by_its_identity_and_cancels_it(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, training_file: Path, task_state: TaskStateAnswer
) -> None:
    # The create is carried out, then its answer drips: the kill comes before the task knows the job's id.
    drip = Fault("drip", vendor=vendor.name, method="POST", path=CREATE_PATHS[vendor.name], interval=0.2)
    emulator.inject(drip)
    task = operator(vendor, training_file, poll_interval=0.2, timeout=30)
    ti = TaskInstance()

    def kill_once_the_job_exists() -> None:
        deadline = time.monotonic() + 10
        while not emulator.jobs(vendor.name) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "job_id" not in ti.xcoms, "the kill comes while the create's answer is still on its way"
        task.on_kill()

    killer = threading.Thread(target=kill_once_the_job_exists)
    killer.start()
    with pytest.raises(FineTuningJobFailed, match="CANCELLED"):
        task.execute(context(ti))
    killer.join(15)

    (job,) = emulator.jobs(vendor.name)
    assert job["status"] in (CANCELLED[vendor.name], "CANCELING")
    assert len([path for path in posts(emulator) if path.endswith("/cancel")]) == 1


def test_killing_the_task_leaves_the_job_when_asked_to(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, training_file: Path
) -> None:
    task = operator(vendor, training_file, wait_for_completion=False, cancel_on_kill=False)
    ti = TaskInstance()
    task.execute(context(ti))
    task.on_kill()
    job = emulator.job(vendor.name, ti.xcoms["job_id"])
    assert job is not None
    assert job["status"] not in (CANCELLED[vendor.name], "CANCELING")


# -- deferrable ------------------------------------------------------------------------------------------------


def test_deferrable_hands_the_wait_and_the_guards_to_the_trigger(
    fast: FineTuningEmulator, vendor: Vendor, fast_connection: str, training_file: Path
) -> None:
    ti = TaskInstance()
    task = operator(vendor, training_file, deferrable=True, timeout=60, max_runtime=3600, log_events=True)

    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context(ti))

    trigger = deferred.value.trigger
    _, kwargs = trigger.serialize()
    assert kwargs["job_id"] == ti.xcoms["job_id"]
    assert (kwargs["cancel_on_kill"], kwargs["cancel_on_timeout"]) == (True, True)
    assert (kwargs["max_runtime"], kwargs["max_trained_tokens"]) == (3600.0, None)
    assert "max_cost" not in kwargs

    async def fire() -> Any:
        async for event in trigger.run():
            return event

    event = asyncio.run(fire())
    result = task.execute_complete(context(ti), event.payload)
    assert result["status"] == "SUCCEEDED"
    assert ti.xcoms["fine_tuned_model"] == result["fine_tuned_model"]


def test_deferrable_hands_max_cost_and_the_price_to_the_trigger(
    emulator: FineTuningEmulator, vendor: Vendor, make_connection: ConnectionFactory, training_file: Path
) -> None:
    host = emulator.url(vendor.name)
    make_connection(vendor.conn_id, vendor.conn_type, host=host, price_per_million_tokens="2.5", currency="EUR")
    with pytest.raises(TaskDeferred) as deferred:
        operator(vendor, training_file, deferrable=True, max_cost=40).execute(context(TaskInstance()))
    _, kwargs = deferred.value.trigger.serialize()
    assert (kwargs["max_cost"], kwargs["price_per_million_tokens"], kwargs["currency"]) == (40.0, 2.5, "EUR")


def test_a_job_already_running_from_an_earlier_try_is_waited_for_not_recreated(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, training_file: Path
) -> None:
    started = operator(vendor, training_file, wait_for_completion=False).execute(context(TaskInstance()))
    emulator.clear_requests()

    with pytest.raises(TaskDeferred):
        operator(vendor, training_file, deferrable=True).execute(context(TaskInstance()))

    assert posts(emulator) == []
    job = emulator.job(vendor.name, started["id"])
    assert job is not None
    assert job["status"] in (RUNNING[vendor.name], "PENDING", "QUEUING", "validating_files", "queued", "pending")


def test_each_progress_entry_is_logged_once_across_the_deferral(
    fast: FineTuningEmulator,
    vendor: Vendor,
    fast_connection: str,
    training_file: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from tests.hooks.test_events import expected_lines, logged, progress_lines

    caplog.set_level(logging.INFO)
    ti = TaskInstance()
    with pytest.raises(TaskDeferred) as deferred:
        operator(vendor, training_file, deferrable=True, log_events=True).execute(context(ti))
    before_deferring = progress_lines(logged(caplog, capfd))
    caplog.clear()

    async def fire() -> Any:
        async for event in deferred.value.trigger.run():
            return event

    assert asyncio.run(fire()).payload["status"] == "success"
    in_the_triggerer = progress_lines(logged(caplog, capfd))
    assert before_deferring, "the entries so far were logged before deferring"
    assert in_the_triggerer, "and the rest in the triggerer"
    assert before_deferring + in_the_triggerer == expected_lines(fast_connection, ti.xcoms["job_id"])
