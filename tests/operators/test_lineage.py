"""OpenLineage: the datasets and facets the operators report, emitted through the real OpenLineage provider.

The naming tests are pure and run everywhere. The DAG test needs the OpenLineage provider (a test-only dependency of
the Airflow 3.3 lane): it runs a DAG with ``dag.test()`` in a child process whose Airflow has the provider's file
transport configured (``AIRFLOW__OPENLINEAGE__TRANSPORT``: the provider reads it when Airflow loads its plugins,
once per process), then reads the events back from the file and checks each task's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft.lineage import ActionLineage, CreateLineage, Vendor
from airflow_provider_ft_emulator import FineTuningEmulator
from tests.conftest import API_KEY, CONN_TYPES, FAST_RETRIES, ConnectionFactory

TEST_DAGS = Path(__file__).resolve().parent / "dags"
OPENAI = Vendor("openai", "openai://api.openai.com")
needs_openlineage = pytest.mark.skipif(
    importlib.util.find_spec("airflow.providers.openlineage") is None,
    reason="the OpenLineage provider is a test-only dependency of the Airflow 3.3 lane",
)


# -- naming (pure) -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("/data/train.jsonl", ("file", "/data/train.jsonl")),
        (Path("/data/train.jsonl"), ("file", "/data/train.jsonl")),
        ("file:///data/train.jsonl", ("file", "/data/train.jsonl")),
        ("s3://bucket/ft/train.jsonl", ("s3://bucket", "ft/train.jsonl")),
        ("gs://bucket/train.jsonl", ("gs://bucket", "train.jsonl")),
        ("file-abc123", ("openai://api.openai.com", "files/file-abc123")),
    ],
)
def test_each_data_file_is_named_as_the_user_gave_it(source: Any, expected: tuple[str, str]) -> None:
    lineage = CreateLineage(vendor=OPENAI, model="gpt-4o-mini", files={"training_file": source})
    assert lineage.input_names() == [expected]


def test_a_relative_path_is_named_by_its_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lineage = CreateLineage(vendor=None, model="m", files={"training_file": "train.jsonl", "validation_file": None})
    assert lineage.input_names() == [("file", str(tmp_path / "train.jsonl"))]


def test_a_vendor_file_is_left_out_until_the_vendor_is_known() -> None:
    """At the task's start the connection has not been read (and lineage never reads it): no vendor namespace."""
    lineage = CreateLineage(vendor=None, model="m", files={"training_file": "file-abc", "validation_file": "/v.jsonl"})
    assert lineage.input_names() == [("file", "/v.jsonl")]
    assert lineage.output_name() is None
    assert lineage.job_facet()["jobId"] is None


def test_a_cleanup_reports_what_it_did_to_each_job() -> None:
    lineage = ActionLineage(OPENAI, "cancel", ["a", "b"], skipped={"c": "already SUCCEEDED"}, failed={"d": "boom"})
    assert lineage.action_facet() == {
        "vendor": "openai",
        "action": "cancel",
        "jobIds": ["a", "b"],
        "dryRun": False,
        "skippedJobs": {"c": "already SUCCEEDED"},
        "failedJobs": {"d": "boom"},
    }


# -- what each operator hands the OpenLineage provider --------------------------------------------------------------


def facets(lineage: Any) -> dict[str, Any]:
    """The run facets of an ``OperatorLineage`` as the OpenLineage client serializes them (``None`` left out), without
    the client's own fields (``_producer``, ``_schemaURL``)."""
    from openlineage.client.serde import Serde

    serialized = {name: json.loads(Serde.to_json(facet)) for name, facet in lineage.run_facets.items()}
    return {name: {k: v for k, v in facet.items() if not k.startswith("_")} for name, facet in serialized.items()}


@needs_openlineage
def test_a_create_whose_job_failed_reports_the_job_and_no_model(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, tmp_path: Path
) -> None:
    """The provider asks a failed task for its complete facets (the operators have no failure method of their own)."""
    from airflow_provider_ft.exceptions import FineTuningJobFailed
    from tests.conftest import Vendor as ConnVendor
    from tests.conftest import seed_job_of
    from tests.operators.conftest import TaskInstance
    from tests.operators.test_create import GOOD_RECORD, context, operator
    from tests.operators.test_task_state import identity_of

    vendor = ConnVendor("dashscope", CONN_TYPES["dashscope"])
    make_connection(vendor.conn_id, vendor.conn_type, host=emulator.url(vendor.name), **FAST_RETRIES)
    ti = TaskInstance()
    failed = seed_job_of(emulator, vendor.name, identity_of(ti), status="FAILED", error="bad data")
    training = tmp_path / "train.jsonl"
    training.write_text(json.dumps(GOOD_RECORD) + "\n")
    task = operator(vendor, training, training_type="sft", hyperparameters={"n_epochs": 1})

    with pytest.raises(FineTuningJobFailed):
        task.execute(context(ti))
    lineage = task.get_openlineage_facets_on_complete(None)

    assert lineage.outputs == []
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("file", str(training))]
    job = facets(lineage)["fineTuningJob"]
    assert {k: job.get(k) for k in ("vendor", "jobId", "status", "trainingType", "hyperparameters")} == {
        "vendor": "dashscope",
        "jobId": failed,
        "status": "FAILED",
        "trainingType": "sft",
        "hyperparameters": {"n_epochs": 1},
    }
    assert "fineTunedModel" not in job


@needs_openlineage
@pytest.mark.parametrize(
    ("vendor", "make", "action"),
    [
        ("openai", "PauseFineTuningJobOperator", "pause"),
        ("openai", "ResumeFineTuningJobOperator", "resume"),
        ("dashscope", "DeleteFineTuningJobOperator", "delete"),
    ],
)
def test_each_job_operator_reports_the_job_it_acted_on(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, vendor: str, make: str, action: str
) -> None:
    from airflow_provider_ft.operators import fine_tuning
    from tests.operators.conftest import Run

    conn_id = make_connection(f"ft_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), **FAST_RETRIES)
    status = {"pause": "running", "resume": "paused", "delete": "SUCCEEDED"}[action]
    job_id = emulator.seed_job(vendor, status=status, runs_for=None)
    task = getattr(fine_tuning, make)(task_id=action, job_id=job_id, conn_id=conn_id)

    Run().execute(task)

    assert facets(task.get_openlineage_facets_on_complete(None))["fineTuningAction"] == facets_of_action(
        vendor, action, [job_id]
    )


@needs_openlineage
def test_a_cancel_of_a_job_that_does_not_exist_reports_none(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory
) -> None:
    from airflow_provider_ft.operators.fine_tuning import CancelFineTuningJobOperator
    from tests.operators.conftest import Run

    conn_id = make_connection("ft_openai", CONN_TYPES["openai"], host=emulator.url("openai"), **FAST_RETRIES)
    task = CancelFineTuningJobOperator(task_id="cancel", job_id="ftjob-gone", conn_id=conn_id, ignore_if_missing=True)

    assert Run().execute(task) is None
    assert facets(task.get_openlineage_facets_on_complete(None))["fineTuningAction"] == facets_of_action(
        "openai", "cancel", []
    )


def facets_of_action(vendor: str, action: str, job_ids: list[str]) -> dict[str, Any]:
    return {
        "vendor": vendor,
        "action": action,
        "jobIds": job_ids,
        "dryRun": False,
        "skippedJobs": {},
        "failedJobs": {},
    }


# -- emitted by Airflow's OpenLineage provider (Airflow 3.3 lane) --------------------------------------------------

RUNNER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("ft_lineage_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
run = module.dag.test(run_conf=json.loads(sys.argv[2]))
print("RUN STATE", run.state)
"""
#: Emulated seconds per real second: the created job ends in about 2 s.
FAST = 300.0
DAYS = 86400.0


@pytest.fixture(scope="module")
def fast_server() -> Iterator[FineTuningEmulator]:
    with FineTuningEmulator(api_key=API_KEY, time_scale=FAST) as server:
        yield server


def run_lineage_dag(airflow_db: Path, events: Path, conf: dict[str, str]) -> str:
    """Run the lineage DAG in a child process with OpenLineage's file transport writing to ``events``; its output."""
    target = airflow_db / "dags" / "ft_lineage.py"
    shutil.copyfile(TEST_DAGS / "ft_lineage.py", target)
    transport = {"type": "file", "log_file_path": str(events), "append": True}
    env = {**os.environ, "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport)}
    env["AIRFLOW__OPENLINEAGE__NAMESPACE"] = "ft-tests"
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(target), json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def task_events(events: Path, task_id: str) -> dict[str, dict[str, Any]]:
    """The task's OpenLineage events by type (``START``, ``COMPLETE``, ``FAIL``), as the transport wrote them."""
    found: dict[str, dict[str, Any]] = {}
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event["job"]["name"] == f"ft_test_lineage.{task_id}":
            found[event["eventType"]] = event
    return found


@pytest.mark.dag
@needs_openlineage
def test_the_operators_lineage_as_emitted(
    fast_server: FineTuningEmulator,
    make_connection: ConnectionFactory,
    airflow_db: Path,
    tmp_path: Path,
) -> None:
    from tests.operators.test_create import GOOD_RECORD

    emulator = fast_server
    emulator.reset()
    conn_id = make_connection("ft_lineage", CONN_TYPES["openai"], host=emulator.url("openai"), **FAST_RETRIES)
    training, validation = tmp_path / "train.jsonl", tmp_path / "valid.jsonl"
    for path in (training, validation):
        path.write_text("".join(json.dumps(GOOD_RECORD) + "\n" for _ in range(3)))
    to_cancel = emulator.seed_job("openai", status="running", runs_for=None)
    stale = [emulator.seed_job("openai", status="running", age=2 * DAYS, runs_for=None) for _ in range(2)]
    events = tmp_path / "events.jsonl"
    conf = {
        "conn_id": conn_id,
        "model": "gpt-4o-mini-2024-07-18",
        "training_file": str(training),
        "validation_file": validation.as_uri(),
        "cancel_job": to_cancel,
    }

    output = run_lineage_dag(airflow_db, events, conf)

    assert "RUN STATE success" in output, output[-4000:]
    namespace = "openai://" + emulator.url("openai").split("://", 1)[1].split("/", 1)[0]
    (job,) = [job for job in emulator.jobs("openai") if job["id"] not in {to_cancel, *stale}]

    train = task_events(events, "train")
    assert set(train) >= {"START", "COMPLETE"}
    start, complete = train["START"], train["COMPLETE"]
    data = [{"namespace": "file", "name": str(training)}, {"namespace": "file", "name": str(validation)}]
    assert [{k: d[k] for k in ("namespace", "name")} for d in start["inputs"]] == data
    assert start["outputs"] == []
    started = start["run"]["facets"]["fineTuningJob"]  # the client leaves out what is not known yet (None)
    assert started == started | {"baseModel": "gpt-4o-mini-2024-07-18", "hyperparameters": {"n_epochs": 2}}
    assert "jobId" not in started
    assert [{k: d[k] for k in ("namespace", "name")} for d in complete["inputs"]] == data
    assert [{k: d[k] for k in ("namespace", "name")} for d in complete["outputs"]] == [
        {"namespace": namespace, "name": job["fine_tuned_model"]}
    ]
    facet = complete["run"]["facets"]["fineTuningJob"]
    assert {key: facet[key] for key in ("vendor", "jobId", "baseModel", "status", "fineTunedModel")} == {
        "vendor": "openai",
        "jobId": job["id"],
        "baseModel": "gpt-4o-mini-2024-07-18",
        "status": "SUCCEEDED",
        "fineTunedModel": job["fine_tuned_model"],
    }
    assert facet["hyperparameters"] == {"n_epochs": 2}
    assert facet["trainedTokens"] == job["trained_tokens"] > 0
    assert complete["run"]["facets"]["externalQuery"]["externalQueryId"] == job["id"]
    assert complete["run"]["facets"]["externalQuery"]["source"] == namespace

    # Their inputs are not checked: dag.test() runs every task in one process, whose hook-lineage collector still
    # holds the validation file the create task read through ObjectStoragePath (a task process of its own has not).
    cancel = task_events(events, "cancel")["COMPLETE"]["run"]["facets"]["fineTuningAction"]
    assert {k: cancel[k] for k in ("vendor", "action", "jobIds", "dryRun")} == {
        "vendor": "openai",
        "action": "cancel",
        "jobIds": [to_cancel],
        "dryRun": False,
    }
    cleanup = task_events(events, "cleanup")["COMPLETE"]["run"]["facets"]["fineTuningAction"]
    assert (cleanup["action"], sorted(cleanup["jobIds"]), cleanup["failedJobs"]) == ("cancel", sorted(stale), {})
