"""The create operator's job in Airflow's task state store (Airflow 3.3+): written once the create is answered, read
first by every later try, and the vendor-side identity behind it.

The first tests run ``execute`` with a dict-backed stand-in for ``context["task_state_store"]`` (what the operator
reads and writes, and when); the DAG tests run real Airflow with ``dag.test()``: a retry, a write lost between the
create and the store, and a cleared task. On Airflow before 3.3 there is no store: the DAG tests there check that the
retry still re-attaches through the identity, and the stand-in tests are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft.identity import TaskIdentity
from airflow_provider_ft.operators._task_state import JOB_KEY, RememberedJob
from airflow_provider_ft_emulator import FineTuningEmulator, RecordedRequest
from airflow_provider_ft_emulator.faults import Fault
from tests.airflow_versions import HAS_TASK_STATE_STORE, clear_and_run_again
from tests.conftest import FAST_RETRIES, ConnectionFactory, Vendor, seed_job_of
from tests.operators import test_create
from tests.operators.conftest import RUNNING, TaskInstance
from tests.operators.test_create import MODELS, operator, posts

TEST_DAGS = Path(__file__).resolve().parent / "dags"
RETRY_DAG = "ft_test_create_retry"
#: Mount-relative paths of one job (``GET`` reads it) and of the job listing, on every vendor.
JOB_PATH = r"/(fine_tuning/jobs|fine-tunes)/[^/]+$"
LIST_PATH = r"/(fine_tuning/jobs|fine-tunes)$"

needs_store = pytest.mark.skipif(not HAS_TASK_STATE_STORE, reason="the task state store arrived in Airflow 3.3")


class FakeStore:
    """``context["task_state_store"]`` as the operator uses it: ``get`` and ``set`` with a ``retention``.

    :param emulator: whose request count each write records, to tell when the write came
    """

    def __init__(self, emulator: FineTuningEmulator) -> None:
        self.values: dict[str, Any] = {}
        self.retentions: dict[str, timedelta | None] = {}
        self.requests_at_write: list[int] = []
        self._emulator = emulator

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: timedelta | None = None) -> None:
        json.dumps(value)  # the store keeps JSON values
        self.values[key] = value
        self.retentions[key] = retention
        self.requests_at_write.append(len(self._emulator.requests))


class BrokenStore(FakeStore):
    def get(self, key: str, default: Any = None) -> Any:
        raise RuntimeError("the API server is unreachable")

    def set(self, key: str, value: Any, *, retention: timedelta | None = None) -> None:
        raise RuntimeError("the API server is unreachable")


def context(ti: TaskInstance, store: FakeStore | None) -> Any:
    return {"ti": ti, "task_state_store": store}


def identity_of(ti: TaskInstance, namespace: str = "") -> TaskIdentity:
    return TaskIdentity(ti.dag_id, ti.task_id, ti.run_id, ti.map_index, namespace)


def lists(requests: list[RecordedRequest]) -> list[RecordedRequest]:
    """Requests that list jobs (how a try without a remembered job finds its earlier try's)."""
    import re

    return [r for r in requests if r.method == "GET" and re.search(LIST_PATH, r.path)]


def entry(job_id: str, vendor: str, ti: TaskInstance) -> dict[str, str]:
    return RememberedJob(job_id, vendor, identity_of(ti).key).to_value()


# The fast emulator (a created job ends in about 2 s), its connection and a good training file: test_create's.
fast_emulator_server = test_create.fast_emulator_server
fast = test_create.fast
fast_connection = test_create.fast_connection
training_file = test_create.training_file


# -- the record itself ---------------------------------------------------------------------------------------------


def test_an_entry_reads_back_as_it_was_written() -> None:
    written = RememberedJob("ftjob-abc", "openai", "0" * 64)
    assert RememberedJob.from_value(json.loads(json.dumps(written.to_value()))) == written


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("ftjob-abc", "a str, not an object"),
        ({"job_id": "ftjob-abc", "vendor": "openai"}, "no string identity"),
        ({"job_id": 7, "vendor": "openai", "identity": "k"}, "no string job_id"),
        ({"job_id": "../x", "vendor": "openai", "identity": "k"}, "characters a job id cannot have"),
    ],
)
def test_an_entry_of_another_shape_is_refused(value: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RememberedJob.from_value(value)


# -- what the operator reads and writes (a stand-in store; Airflow 3.3+) -------------------------------------------


@needs_store
def test_the_job_is_written_as_soon_as_the_create_is_answered(
    fast: FineTuningEmulator, vendor: Vendor, fast_connection: str, training_file: Path
) -> None:
    from airflow.sdk.execution_time.context import NEVER_EXPIRE

    store, ti = FakeStore(fast), TaskInstance()
    result = operator(vendor, training_file).execute(context(ti, store))

    assert store.values == {JOB_KEY: entry(result["id"], vendor.name, ti)}
    assert store.retentions == {JOB_KEY: NEVER_EXPIRE}, "kept for as long as the DAG run"
    (written_after,) = store.requests_at_write
    create = fast.requests[written_after - 1]
    assert create.method == "POST"
    assert 200 <= create.status < 300
    assert create.path.endswith(("/fine_tuning/jobs", "/fine-tunes")), "the write follows the create's answer"


@needs_store
def test_a_retry_re_attaches_to_the_remembered_job_with_one_read_and_no_listing(
    fast: FineTuningEmulator, vendor: Vendor, fast_connection: str, training_file: Path
) -> None:
    store = FakeStore(fast)
    first = operator(vendor, training_file, wait_for_completion=False).execute(context(TaskInstance(), store))
    fast.clear_requests()

    retry = operator(vendor, training_file).execute(context(TaskInstance(), store))

    assert retry["id"] == first["id"]
    assert retry["status"] == "SUCCEEDED"
    assert lists(fast.requests) == []
    assert posts(fast) == []
    assert {r.method for r in fast.requests} == {"GET"}
    assert len(fast.jobs(vendor.name)) == 1


@needs_store
def test_a_remembered_job_need_not_carry_the_identity(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, training_file: Path
) -> None:
    """A job whose vendor dropped the tag cannot be found by listing; the store still finds it."""
    ti = TaskInstance()
    untagged = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    store = FakeStore(emulator)
    store.values[JOB_KEY] = entry(untagged, vendor.name, ti)

    result = operator(vendor, training_file, wait_for_completion=False).execute(context(ti, store))

    assert result["id"] == untagged
    assert posts(emulator) == []
    assert lists(emulator.requests) == []


@needs_store
def test_a_remembered_job_the_vendor_no_longer_has_falls_back_to_the_identity(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, training_file: Path
) -> None:
    ti = TaskInstance()
    tagged = seed_job_of(emulator, vendor.name, identity_of(ti), status=RUNNING[vendor.name], runs_for=None)
    store = FakeStore(emulator)
    store.values[JOB_KEY] = entry("ftjob-gone" if vendor.name != "dashscope" else "ft-gone", vendor.name, ti)

    result = operator(vendor, training_file, wait_for_completion=False).execute(context(ti, store))

    assert result["id"] == tagged
    assert posts(emulator) == []
    assert len(lists(emulator.requests)) == 1
    assert store.values[JOB_KEY] == entry(tagged, vendor.name, ti), "the store now names the job found"


@needs_store
@pytest.mark.parametrize("other", ["vendor", "identity", "shape"])
def test_an_entry_not_made_for_this_vendor_and_task_instance_is_not_used(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    training_file: Path,
    other: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    ti = TaskInstance()
    stranger = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    mine = seed_job_of(emulator, vendor.name, identity_of(ti), status=RUNNING[vendor.name], runs_for=None)
    store = FakeStore(emulator)
    store.values[JOB_KEY] = {
        "vendor": RememberedJob(stranger, "elsewhere", identity_of(ti).key).to_value(),
        "identity": RememberedJob(stranger, vendor.name, identity_of(ti, namespace="prod").key).to_value(),
        "shape": stranger,
    }[other]
    emulator.clear_requests()

    result = operator(vendor, training_file, wait_for_completion=False).execute(context(ti, store))

    assert result["id"] == mine
    assert [r for r in emulator.requests if r.path.endswith(stranger)] == []
    assert "task state store" in "".join(capfd.readouterr())


@needs_store
def test_a_store_that_fails_is_logged_and_the_identity_still_finds_the_job(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    training_file: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    store = BrokenStore(emulator)
    first = operator(vendor, training_file, wait_for_completion=False).execute(context(TaskInstance(), store))
    retry = operator(vendor, training_file, wait_for_completion=False).execute(context(TaskInstance(), store))

    assert retry["id"] == first["id"]
    assert len(emulator.jobs(vendor.name)) == 1
    logged = "".join(capfd.readouterr())  # Airflow 3's structlog writes the task's records to stdout
    assert "Could not read the task state store (RuntimeError: the API server is unreachable)" in logged
    assert f"Could not write job {first['id']} to the task state store" in logged


def test_without_a_store_nothing_is_read_or_written(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, training_file: Path
) -> None:
    """What Airflow before 3.3 gives (no ``task_state_store`` in the context): the identity alone, as before."""
    first = operator(vendor, training_file, wait_for_completion=False).execute(context(TaskInstance(), None))
    emulator.clear_requests()
    retry = operator(vendor, training_file, wait_for_completion=False).execute({"ti": TaskInstance()})

    assert retry["id"] == first["id"]
    assert len(lists(emulator.requests)) == 1
    assert posts(emulator) == []


# -- real Airflow: a retry, a lost write, a cleared task -----------------------------------------------------------


def run_retry_dag(run_dag: Callable[..., Any], fast: FineTuningEmulator, vendor: Vendor, training_file: Path) -> Any:
    """The retry DAG, whose first try fails on its first read of the job (after the create and the store's write):
    the vendor refuses it with a 400, which is final."""
    fast.inject(Fault("status", vendor=vendor.name, method="GET", path=JOB_PATH, status=400))
    conf = {"conn_id": vendor.conn_id, "model": MODELS[vendor.name], "training_file": str(training_file)}
    return run_dag(TEST_DAGS / "ft_create_retry.py", RETRY_DAG, run_conf=conf)


def second_try(requests: list[RecordedRequest]) -> list[RecordedRequest]:
    """The requests after the one that failed the first try."""
    failed = max(i for i, r in enumerate(requests) if r.fault == "status")
    return requests[failed + 1 :]


def creates(requests: list[RecordedRequest]) -> list[RecordedRequest]:
    return [r for r in requests if r.method == "POST" and r.path.endswith(("/fine_tuning/jobs", "/fine-tunes"))]


def train_state(dag_run: Any) -> tuple[str, int]:
    ti = dag_run.get_task_instance("train")
    return str(ti.state), int(ti.try_number)


@pytest.mark.dag
def test_a_retried_task_re_attaches_to_its_job(
    fast: FineTuningEmulator, vendor: Vendor, fast_connection: str, training_file: Path, run_dag: Callable[..., Any]
) -> None:
    """On 3.3 the retry reads the job from the task state store (no listing); before 3.3 it lists the jobs and finds
    it by its identity. Either way one job, created once."""
    dag_run = run_retry_dag(run_dag, fast, vendor, training_file)

    assert train_state(dag_run) == ("success", 2)
    assert len(creates(fast.requests)) == 1
    assert len(fast.jobs(vendor.name)) == 1
    retry = second_try(fast.requests)
    assert creates(retry) == []
    if HAS_TASK_STATE_STORE:
        assert lists(retry) == []
        assert {r.method for r in retry} == {"GET"}
    else:
        assert len(lists(retry)) == 1


@pytest.mark.dag
@needs_store
def test_a_write_lost_after_the_create_is_made_good_by_the_identity(
    fast: FineTuningEmulator,
    make_connection: ConnectionFactory,
    training_file: Path,
    run_dag: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gap between the create's answer and the store's write (a worker dying there): nothing is written, so the
    retry lists the jobs and re-attaches to the one its identity names."""
    from airflow.sdk.execution_time.context import TaskStateStoreAccessor

    vendor = Vendor("openai", "openaifinetuning")
    make_connection(vendor.conn_id, vendor.conn_type, host=fast.url(vendor.name), **FAST_RETRIES)
    monkeypatch.setattr(TaskStateStoreAccessor, "set", lambda *args, **kwargs: None)

    dag_run = run_retry_dag(run_dag, fast, vendor, training_file)

    assert train_state(dag_run) == ("success", 2)
    retry = second_try(fast.requests)
    assert len(lists(retry)) == 1
    assert creates(retry) == []
    assert len(creates(fast.requests)) == len(fast.jobs(vendor.name)) == 1


@pytest.mark.dag
@needs_store
@pytest.mark.parametrize("clear_on_success", [False, True], ids=["state-kept", "clear_on_success"])
def test_a_cleared_task_re_attaches_to_its_job(
    fast: FineTuningEmulator,
    make_connection: ConnectionFactory,
    training_file: Path,
    run_dag: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    clear_on_success: bool,
) -> None:
    """Airflow 3.3 keeps a task's state when the task is cleared (``clear_task_instances``, behind the UI's and the
    API's clear, leaves the ``task_state_store`` rows alone): the cleared task reads its job from the store. With
    ``[state_store] clear_on_success`` the rows went when the task first succeeded, as they go on Airflow versions
    whose clear discards them: the identity finds the job. Either way, no second job."""
    monkeypatch.setenv("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", str(clear_on_success))
    vendor = Vendor("dashscope", "dashscope")
    make_connection(vendor.conn_id, vendor.conn_type, host=fast.url(vendor.name), **FAST_RETRIES)
    conf = {"conn_id": vendor.conn_id, "model": MODELS[vendor.name], "training_file": str(training_file)}
    dag_file = TEST_DAGS / "ft_create_retry.py"
    dag_run = run_dag(dag_file, RETRY_DAG, run_conf=conf)
    assert train_state(dag_run) == ("success", 1)
    (job,) = fast.jobs(vendor.name)
    fast.clear_requests()

    state = clear_and_run_again(dag_file, dag_run, "train")

    assert state == "success"
    assert [other["job_id"] for other in fast.jobs(vendor.name)] == [job["job_id"]]
    assert creates(fast.requests) == []
    assert len(lists(fast.requests)) == (1 if clear_on_success else 0)
