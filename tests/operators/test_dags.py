"""DAGs end to end with ``dag.test()`` against the emulator: templated ids, teardown, the example DAGs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft.links import FineTuningJobLink
from airflow_provider_ft_emulator import FineTuningEmulator
from tests.airflow_versions import asset_events_of, extra_link, xcom
from tests.conftest import API_KEY, FAST_RETRIES, ConnectionFactory, Vendor
from tests.operators.conftest import CANCELLED, RUNNING, acted_ids, status_of

pytestmark = pytest.mark.dag

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "example_dags"
TEST_DAGS = Path(__file__).resolve().parent / "dags"
DAYS = timedelta(days=1)
HOURS = timedelta(hours=1)


@pytest.fixture
def default_connections(emulator: FineTuningEmulator, make_connection: ConnectionFactory) -> None:
    """``dashscope_default`` and ``openai_default``, as the example DAGs use them, pointing at the emulator."""
    make_connection("dashscope_default", "dashscope", host=emulator.url("dashscope"), **FAST_RETRIES)
    make_connection("openai_default", "openaifinetuning", host=emulator.url("openai"), **FAST_RETRIES)


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def test_cancel_takes_its_job_id_from_xcom(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    run_dag: Callable[..., Any],
    vendor_consoles: str,
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    other = emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    dag_run = run_dag(
        TEST_DAGS / "ft_cancel_from_xcom.py",
        "ft_test_cancel_from_xcom",
        run_conf={"job_id": job_id, "conn_id": connection},
    )
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert status_of(emulator, vendor.name, job_id) == CANCELLED[vendor.name]
    assert status_of(emulator, vendor.name, other) == RUNNING[vendor.name]
    assert xcom(dag_run, "cancel", "return_value")["id"] == job_id
    link = extra_link(dag_run, "cancel", FineTuningJobLink())
    assert link == xcom(dag_run, "cancel", "fine_tuning_job_url")
    assert link == f"{vendor_consoles}/{vendor.name}/{job_id}"


def test_a_connection_to_another_host_than_the_vendors_gets_no_job_link(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, run_dag: Callable[..., Any]
) -> None:
    """The emulator (a gateway, a proxy) is not the vendor: its console is not the vendor's, so no link is shown."""
    connection = make_connection("oa_elsewhere", "openaifinetuning", host=emulator.url("openai"), **FAST_RETRIES)
    job_id = emulator.seed_job("openai", status="running")
    run_conf = {"job_id": job_id, "conn_id": connection}
    dag_run = run_dag(TEST_DAGS / "ft_cancel_from_xcom.py", "ft_test_cancel_from_xcom", run_conf=run_conf)
    assert str(dag_run.state) == "success", task_states(dag_run)
    # get_link answers "": the UI shows no button (Airflow's links route serves an empty URL as none, ``or None``)
    assert not extra_link(dag_run, "cancel", FineTuningJobLink())
    assert xcom(dag_run, "cancel", "fine_tuning_job_url") is None


def test_cleanup_example_dag(
    emulator: FineTuningEmulator, default_connections: None, run_dag: Callable[..., Any]
) -> None:
    ds, oa = "dashscope", "openai"
    cancelled = {
        ds: [
            emulator.seed_job(ds, status="RUNNING", age=2 * DAYS, runs_for=None),
            emulator.seed_job(ds, status="PENDING", age=12 * HOURS),
        ],
        oa: [
            emulator.seed_job(oa, status="running", age=2 * DAYS, runs_for=None),
            emulator.seed_job(oa, status="paused", age=10 * HOURS),
        ],
    }
    deleted = [
        emulator.seed_job(ds, status="SUCCEEDED", age=30 * DAYS),
        emulator.seed_job(ds, status="FAILED", age=8 * DAYS),
    ]
    left_alone = {
        ds: {
            emulator.seed_job(ds, status="RUNNING", age=1 * HOURS, runs_for=None): "RUNNING",
            emulator.seed_job(ds, status="SUCCEEDED", age=3 * DAYS): "SUCCEEDED",
        },
        oa: {
            emulator.seed_job(oa, status="running", age=1 * HOURS, runs_for=None): "running",
            emulator.seed_job(oa, status="succeeded", age=30 * DAYS): "succeeded",
        },
    }

    dag_run = run_dag(EXAMPLES / "ft_cleanup_stale_jobs.py", "ft_cleanup_stale_jobs")

    assert str(dag_run.state) == "success", task_states(dag_run)
    for vendor, ids in cancelled.items():
        assert {status_of(emulator, vendor, job_id) for job_id in ids} == {CANCELLED[vendor]}
    assert all(emulator.job(ds, job_id) is None for job_id in deleted)
    for vendor, jobs in left_alone.items():
        assert {job_id: status_of(emulator, vendor, job_id) for job_id in jobs} == jobs
    assert acted_ids(emulator.requests) == {*cancelled[ds], *cancelled[oa], *deleted}
    summary = xcom(dag_run, "delete_old_finished_dashscope_jobs", "return_value")
    assert set(summary["acted_ids"]) == set(deleted)


@pytest.mark.parametrize("fail", [False, True], ids=["pipeline-succeeds", "pipeline-fails"])
def test_pipeline_teardown_example_dag(
    emulator: FineTuningEmulator, default_connections: None, run_dag: Callable[..., Any], fail: bool
) -> None:
    dashscope_job = emulator.seed_job("dashscope", status="RUNNING", runs_for=None)
    openai_job = emulator.seed_job("openai", status="running", runs_for=None)
    bystanders = {
        "dashscope": emulator.seed_job("dashscope", status="RUNNING", runs_for=None),
        "openai": emulator.seed_job("openai", status="running", runs_for=None),
        "azure": emulator.seed_job("azure", status="running", runs_for=None),
    }

    dag_run = run_dag(
        EXAMPLES / "ft_pipeline_teardown.py",
        "ft_pipeline_teardown",
        run_conf={"dashscope_job_id": dashscope_job, "openai_job_id": openai_job, "fail": fail},
    )

    states = task_states(dag_run)
    assert str(dag_run.state) == ("failed" if fail else "success"), states
    assert states["evaluate"] == ("failed" if fail else "success")
    assert states["delete_dashscope_job"] == states["cancel_openai_job"] == "success"
    assert emulator.job("dashscope", dashscope_job) is None
    assert status_of(emulator, "openai", openai_job) == "cancelled"
    for vendor, job_id in bystanders.items():
        assert status_of(emulator, vendor, job_id) == RUNNING[vendor]


@pytest.fixture(scope="module")
def fast_emulator_server() -> Iterator[FineTuningEmulator]:
    """Jobs created through this emulator run 605 emulated seconds in about 2 real ones."""
    with FineTuningEmulator(api_key=API_KEY, time_scale=300.0) as server:
        yield server


@pytest.fixture
def fast_default_connections(
    fast_emulator_server: FineTuningEmulator, make_connection: ConnectionFactory
) -> Iterator[FineTuningEmulator]:
    fast_emulator_server.reset()
    make_connection("dashscope_default", "dashscope", host=fast_emulator_server.url("dashscope"), **FAST_RETRIES)
    make_connection("openai_default", "openaifinetuning", host=fast_emulator_server.url("openai"), **FAST_RETRIES)
    make_connection(
        "azure_openai_default", "azureopenaifinetuning", host=fast_emulator_server.url("azure"), **FAST_RETRIES
    )
    make_connection("together_default", "togetherfinetuning", host=fast_emulator_server.url("together"), **FAST_RETRIES)
    yield fast_emulator_server
    fast_emulator_server.reset()


def train_and_publish(tmp_path: Path) -> Path:
    """The example DAG as shipped but for its poll interval (30 s), which the test shortens."""
    source = (EXAMPLES / "ft_train_and_publish.py").read_text()
    assert "POLL_INTERVAL = 30.0" in source
    copy = tmp_path / "ft_train_and_publish.py"
    copy.write_text(source.replace("POLL_INTERVAL = 30.0", "POLL_INTERVAL = 0.2"))
    return copy


def test_train_and_publish_example_dag(
    fast_default_connections: FineTuningEmulator, run_dag: Callable[..., Any], tmp_path: Path
) -> None:
    emulator = fast_default_connections
    dag_run = run_dag(train_and_publish(tmp_path), "ft_train_and_publish", register_assets=True)

    assert str(dag_run.state) == "success", task_states(dag_run)
    for vendor in ("dashscope", "openai"):
        job = xcom(dag_run, f"train_{vendor}", "return_value")
        assert job["status"] == "SUCCEEDED"
        assert xcom(dag_run, f"train_{vendor}", "fine_tuned_model") == job["fine_tuned_model"]
        assert xcom(dag_run, f"evaluate_{vendor}", "return_value") == job["fine_tuned_model"]
        assert len(emulator.files(vendor)) == 1
    assert emulator.jobs("dashscope") == []  # deleted by its teardown
    assert [job["status"] for job in emulator.jobs("openai")] == ["succeeded"]  # left as it is
    events = dict(asset_events_of(dag_run))
    for vendor in ("dashscope", "openai"):
        extra = events[f"fine-tuned-model://{vendor}/ft_train_and_publish"]
        assert extra["fine_tuned_model"] == xcom(dag_run, f"train_{vendor}", "fine_tuned_model")


#: The example DAG's lanes, as shipped.
SHIPPED_LANES = """LANES = {
    "dashscope": {"conn_id": "dashscope_default", "model": "qwen-turbo"},
    "openai": {"conn_id": "openai_default", "model": "gpt-4o-mini-2024-07-18"},
}"""
#: One lane of a vendor the shipped DAG (written for DashScope and OpenAI) does not have: the lane, the word of a
#: succeeded job, and what every request of that vendor's lane carries in its query.
OTHER_LANES = {
    "azure": (
        'LANES = {"azure": {"conn_id": "azure_openai_default", "model": "gpt-4o-mini-2024-07-18"}}',
        "succeeded",
        {"api-version": "2024-10-21"},
    ),
    "together": (
        'LANES = {"together": {"conn_id": "together_default", '
        '"model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"}}',
        "completed",
        {},
    ),
}


@pytest.mark.parametrize("vendor", sorted(OTHER_LANES))
def test_train_and_publish_example_dag_on_one_more_vendor(
    fast_default_connections: FineTuningEmulator, run_dag: Callable[..., Any], tmp_path: Path, vendor: str
) -> None:
    """The lifecycle DAG unchanged but for its lanes: one lane of ``vendor`` (upload, create, deferred wait, asset
    event, teardown: a cancel, as for every lane but DashScope's, which leaves the finished job as it is)."""
    emulator = fast_default_connections
    lane, succeeded, query = OTHER_LANES[vendor]
    dag_file = train_and_publish(tmp_path)
    source = dag_file.read_text()
    assert SHIPPED_LANES in source
    dag_file.write_text(source.replace(SHIPPED_LANES, lane))

    dag_run = run_dag(dag_file, "ft_train_and_publish", register_assets=True)

    assert str(dag_run.state) == "success", task_states(dag_run)
    job = xcom(dag_run, f"train_{vendor}", "return_value")
    assert job["status"] == "SUCCEEDED"
    assert xcom(dag_run, f"evaluate_{vendor}", "return_value") == job["fine_tuned_model"]
    assert len(emulator.files(vendor)) == 1
    assert [(j["id"], j["status"]) for j in emulator.jobs(vendor)] == [(job["id"], succeeded)]
    assert emulator.jobs(vendor)[0]["suffix"].startswith("af-"), "created with its identity in the suffix"
    assert all(r.query.items() >= query.items() for r in emulator.requests if r.vendor == vendor)
    events = dict(asset_events_of(dag_run))
    assert events[f"fine-tuned-model://{vendor}/ft_train_and_publish"]["fine_tuned_model"] == job["fine_tuned_model"]


def test_train_and_publish_example_dag_with_a_bad_record_sends_nothing(
    fast_default_connections: FineTuningEmulator, run_dag: Callable[..., Any], tmp_path: Path
) -> None:
    emulator = fast_default_connections
    dag_run = run_dag(
        train_and_publish(tmp_path), "ft_train_and_publish", run_conf={"bad_record": True}, register_assets=True
    )

    states = task_states(dag_run)
    assert str(dag_run.state) == "failed", states
    assert states["train_dashscope"] == states["train_openai"] == "failed"
    assert states["teardown_dashscope"] == states["teardown_openai"] == "success"
    assert [request.path for request in emulator.requests if request.method == "POST"] == []
    assert emulator.jobs("dashscope") == emulator.jobs("openai") == []
    assert asset_events_of(dag_run) == []


def test_train_and_publish_example_dag_tears_down_after_a_failed_evaluation(
    fast_default_connections: FineTuningEmulator, run_dag: Callable[..., Any], tmp_path: Path
) -> None:
    emulator = fast_default_connections
    dag_run = run_dag(
        train_and_publish(tmp_path), "ft_train_and_publish", run_conf={"fail_evaluation": True}, register_assets=True
    )

    states = task_states(dag_run)
    assert str(dag_run.state) == "failed", states
    assert states["train_dashscope"] == states["train_openai"] == "success"
    assert states["evaluate_dashscope"] == states["evaluate_openai"] == "failed"
    assert states["teardown_dashscope"] == states["teardown_openai"] == "success"
    assert emulator.jobs("dashscope") == []


#: The connections of ``ft_leave_running_on_timeout``: conn id, connection type and the emulator's vendor.
LEAVE_RUNNING_CONNECTIONS = {
    "dashscope": ("dashscope_default", "dashscope"),
    "openai": ("openai_default", "openaifinetuning"),
    "azure": ("azure_openai_default", "azureopenaifinetuning"),
    "together": ("together_default", "togetherfinetuning"),
}


def test_leave_running_on_timeout_example_dag_fails_its_tasks_and_keeps_the_jobs(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, run_dag: Callable[..., Any], tmp_path: Path
) -> None:
    """The example DAG as shipped but for its wait (an hour) and poll interval: every task gives up on its job while
    the job is still queued (5 s in the emulator), fails, and leaves the job to go on: one job per vendor, none
    cancelled."""
    for vendor, (conn_id, conn_type) in LEAVE_RUNNING_CONNECTIONS.items():
        make_connection(conn_id, conn_type, host=emulator.url(vendor), **FAST_RETRIES)
    source = (EXAMPLES / "ft_leave_running_on_timeout.py").read_text()
    shipped = ("WAIT = timedelta(hours=1)", "POLL_INTERVAL = 60.0")
    assert all(line in source for line in shipped)
    dag_file = tmp_path / "ft_leave_running_on_timeout.py"
    dag_file.write_text(
        source.replace(shipped[0], "WAIT = timedelta(seconds=1)").replace(shipped[1], "POLL_INTERVAL = 0.2")
    )

    dag_run = run_dag(dag_file, "ft_leave_running_on_timeout")

    states = task_states(dag_run)
    assert str(dag_run.state) == "failed", states
    assert states == {
        "prepare_training_data": "success",
        **{f"start_{vendor}": "failed" for vendor in LEAVE_RUNNING_CONNECTIONS},
    }
    for vendor in LEAVE_RUNNING_CONNECTIONS:
        jobs = emulator.jobs(vendor)
        assert len(jobs) == 1, vendor
        assert jobs[0]["status"] != CANCELLED[vendor], vendor
        assert not any(request.path.endswith("/cancel") for request in emulator.requests if request.vendor == vendor)
