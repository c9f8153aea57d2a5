"""Secrets: a canary API key never shows up where a DAG run leaves text, and the hook registers it for masking.

The example DAGs run with ``dag.test()`` against an emulator that accepts only the canary key, with faults that make
calls fail and retry (429, 503) and make one task fail with an API error. Then every place the run left text in is
scanned for the canary: task log files, stdout/stderr, log records, the exceptions the provider's tasks raised,
XCom values, rendered template fields, the DagRun conf, the raw metadata database, and the emulator's request log.

Airflow 3.3's ``dag.test()`` runs tasks in-process and does not redact their log lines (the leaky control DAG below
shows it). Zero hits therefore means the provider never writes the key, not that something masked it afterwards.
"""

from __future__ import annotations

import json
import re
import secrets
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft.exceptions import FineTuningError
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.operators.fine_tuning import (
    CancelFineTuningJobOperator,
    CleanupFineTuningJobsOperator,
    DeleteFineTuningJobOperator,
)
from airflow_provider_ft.sensors.fine_tuning import FineTuningJobSensor
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.conftest import FAST_RETRIES, ConnectionFactory

pytestmark = pytest.mark.dag

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
ATTEMPTS = int(FAST_RETRIES["max_retries"]) + 1
ALWAYS = 1_000
DAYS = timedelta(days=1)
VENDOR_ERROR = "Training loss diverged at step 120"
SPIED = [
    (CleanupFineTuningJobsOperator, "execute"),
    (CancelFineTuningJobOperator, "execute"),
    (DeleteFineTuningJobOperator, "execute"),
    (FineTuningJobSensor, "execute"),
    (FineTuningJobSensor, "execute_complete"),
]


def new_canary() -> str:
    return f"sk-canary-{secrets.token_hex(16)}"


@pytest.fixture(scope="module")
def canary() -> str:
    return new_canary()


@pytest.fixture(scope="module")
def canary_server(canary: str) -> Iterator[FineTuningEmulator]:
    """An emulator that accepts the canary key and nothing else."""
    with FineTuningEmulator(api_key=canary) as server:
        yield server


@pytest.fixture
def canary_emulator(
    canary_server: FineTuningEmulator, canary: str, make_connection: ConnectionFactory
) -> Iterator[FineTuningEmulator]:
    """``dashscope_default`` and ``openai_default`` with the canary as their key, pointing at the emulator."""
    canary_server.reset()
    make_connection(
        "dashscope_default", "dashscope", host=canary_server.url("dashscope"), password=canary, **FAST_RETRIES
    )
    make_connection(
        "openai_default", "openaifinetuning", host=canary_server.url("openai"), password=canary, **FAST_RETRIES
    )
    yield canary_server
    canary_server.reset()


@pytest.fixture
def raised(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Full texts (with causes and tracebacks) of the exceptions the provider's tasks raise while the test runs."""
    seen: list[str] = []
    for owner, name in SPIED:
        original = getattr(owner, name)

        def spy(self: Any, *args: Any, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            try:
                return _original(self, *args, **kwargs)
            except BaseException as error:
                seen.append("".join(traceback.format_exception(error)))
                raise

        monkeypatch.setattr(owner, name, spy)
    return seen


# -- the scan -------------------------------------------------------------------------------------------------------


@dataclass
class Scan:
    """Looks for a secret (whole, or its random part) in texts, counting the places looked at."""

    secret: str
    places: Counter[str] = field(default_factory=Counter)
    hits: list[str] = field(default_factory=list)

    def look(self, place: str, items: Iterable[object]) -> None:
        self.places[place] += 0  # a place with nothing in it was still looked at
        needles = (self.secret, self.secret.removeprefix("sk-canary-"))
        for item in items:
            self.places[place] += 1
            text = item if isinstance(item, str) else json.dumps(item, default=str, sort_keys=True)
            if any(needle in text for needle in needles):
                self.hits.append(f"{place}: {text[:200]!r}")


def run_rows(dag_run: Any) -> dict[str, list[Any]]:
    """XCom values and rendered template fields of the run, as stored in the metadata database."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        xcoms = session.scalars(
            select(XComModel.value).where(XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id)
        ).all()
        rendered = session.scalars(
            select(RenderedTaskInstanceFields.rendered_fields).where(
                RenderedTaskInstanceFields.dag_id == dag_run.dag_id,
                RenderedTaskInstanceFields.run_id == dag_run.run_id,
            )
        ).all()
    return {"XCom values": list(xcoms), "rendered template fields": list(rendered)}


def database_files(airflow_home: Path) -> list[str]:
    """The SQLite metadata database (and its write-ahead log), every table at once, as raw text."""
    return [path.read_bytes().decode("latin-1") for path in sorted(airflow_home.glob("airflow.db*")) if path.is_file()]


@pytest.fixture
def scan_run(
    canary: str,
    airflow_home: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    raised: list[str],
    record_property: Callable[[str, object], None],
) -> Callable[[Any, FineTuningEmulator], Scan]:
    """Scan every place a DAG run left text in; the counts go to the report."""

    def scan(dag_run: Any, emulator: FineTuningEmulator) -> Scan:
        found = Scan(canary)
        log_files = [path for path in (airflow_home / "logs").rglob("*") if path.is_file()]
        found.look("task log files", (path.read_text(errors="replace") for path in log_files))
        out, err = capfd.readouterr()
        found.look("stdout and stderr", [out, err])
        found.look("log records", (f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records))
        found.look("exception texts", raised)
        for place, values in run_rows(dag_run).items():
            found.look(place, values)
        found.look("DagRun conf", [dag_run.conf or {}])
        found.look("metadata database (raw)", database_files(airflow_home))
        requests = emulator.requests
        assert requests, "the run talked to the emulator"
        assert all(request.authorized for request in requests), "every request carried the canary key"
        assert not any("authorization" in request.headers for request in requests)
        found.look("emulator request log", (asdict(request) for request in requests))
        record_property("scanned", dict(found.places))
        record_property("hits", len(found.hits))
        return found

    return scan


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def answered(emulator: FineTuningEmulator, status: int) -> int:
    return sum(request.status == status for request in emulator.requests)


def only(path: str) -> str:
    return re.escape(path) + "$"


# -- the example DAGs -----------------------------------------------------------------------------------------------


@pytest.mark.reliability(area="secrets", row="ft_cleanup_stale_jobs", column="example DAG run")
def test_cleanup_dag_never_leaks_the_key(
    canary_emulator: FineTuningEmulator,
    run_dag: Callable[..., Any],
    scan_run: Callable[[Any, FineTuningEmulator], Scan],
    raised: list[str],
) -> None:
    emulator = canary_emulator
    for vendor, word in (("dashscope", "RUNNING"), ("openai", "running")):
        emulator.seed_jobs(vendor, 2, status=word, age=2 * DAYS, runs_for=None)
    broken, deletable = emulator.seed_jobs("dashscope", 2, status="FAILED", age=30 * DAYS)
    emulator.inject(Fault(kind="status", status=429, method="GET", headers={"retry-after-ms": "20"}, times=2))
    emulator.inject(Fault(kind="status", status=503, method="POST", times=2))
    emulator.inject(Fault(kind="status", status=500, method="DELETE", path=only(broken), times=ALWAYS))

    dag_run = run_dag(EXAMPLES / "ft_cleanup_stale_jobs.py", "ft_cleanup_stale_jobs")

    assert task_states(dag_run) == {
        "cancel_stale_dashscope_jobs": "success",
        "cancel_stale_openai_jobs": "success",
        "delete_old_finished_dashscope_jobs": "failed",
    }
    assert emulator.job("dashscope", deletable) is None
    assert answered(emulator, 429) == 2
    assert answered(emulator, 503) == 2
    assert answered(emulator, 500) == ATTEMPTS
    assert any("FineTuningError" in text and broken in text for text in raised)
    assert scan_run(dag_run, emulator).hits == []


@pytest.mark.reliability(area="secrets", row="ft_pipeline_teardown", column="example DAG run")
def test_teardown_dag_never_leaks_the_key(
    canary_emulator: FineTuningEmulator,
    run_dag: Callable[..., Any],
    scan_run: Callable[[Any, FineTuningEmulator], Scan],
    raised: list[str],
    vendor_consoles: str,  # the job links are made (the emulator taken for the vendor's host), and scanned too
) -> None:
    emulator = canary_emulator
    dashscope_job = emulator.seed_job("dashscope", status="RUNNING", runs_for=None)
    openai_job = emulator.seed_job("openai", status="running", runs_for=None)
    emulator.inject(Fault(kind="status", status=429, method="GET", headers={"Retry-After": "0"}, times=1))
    emulator.inject(Fault(kind="status", status=503, method="DELETE", times=2))
    emulator.inject(Fault(kind="status", status=503, vendor="openai", method="POST", times=ALWAYS))

    conf = {"dashscope_job_id": dashscope_job, "openai_job_id": openai_job, "fail": False}
    dag_run = run_dag(EXAMPLES / "ft_pipeline_teardown.py", "ft_pipeline_teardown", run_conf=conf)

    states = task_states(dag_run)
    assert (states["evaluate"], states["delete_dashscope_job"]) == ("success", "success")
    assert states["cancel_openai_job"] == "failed"
    assert emulator.job("dashscope", dashscope_job) is None
    assert answered(emulator, 429) == 1
    assert answered(emulator, 503) == 2 + ATTEMPTS
    assert any("FineTuningApiError" in text and "HTTP 503" in text for text in raised)
    assert scan_run(dag_run, emulator).hits == []


@pytest.mark.reliability(area="secrets", row="ft_wait_for_job", column="example DAG run")
def test_wait_dag_never_leaks_the_key(
    canary_emulator: FineTuningEmulator,
    run_dag: Callable[..., Any],
    scan_run: Callable[[Any, FineTuningEmulator], Scan],
    raised: list[str],
    vendor_consoles: str,  # the job links are made (the emulator taken for the vendor's host), and scanned too
) -> None:
    emulator = canary_emulator
    job_id = emulator.seed_job("openai", status="failed", error=VENDOR_ERROR)
    # The sensor's first look fails on every attempt, so it defers; the trigger's first poll gets through.
    emulator.inject(Fault(kind="status", status=503, method="GET", path=only(job_id), times=ATTEMPTS))

    conf = {"job_id": job_id, "conn_id": "openai_default"}
    dag_run = run_dag(EXAMPLES / "ft_wait_for_job.py", "ft_wait_for_job", run_conf=conf)

    assert task_states(dag_run) == {
        "wait_for_job": "success",
        "route": "success",
        "report_failure": "success",
        "publish_model": "skipped",
    }
    assert answered(emulator, 503) == ATTEMPTS
    assert any("TaskDeferred" in text for text in raised), "the sensor waited in the trigger"
    assert scan_run(dag_run, emulator).hits == []


LEAKY_DAG = """
import logging
from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

with DAG("ft_leaky_control", schedule=None, start_date=datetime(2025, 1, 1)) as dag:

    @task
    def leak() -> str:
        hook = FineTuningHook("dashscope_default")
        assert len(list(hook.list_jobs())) == 1
        key = hook.settings.api_key
        logging.getLogger("leaky").warning("the key is %s", key)
        return "key=" + key

    leak()
"""


@pytest.mark.reliability(
    area="secrets", row="control: a task that leaks the key (hits expected)", column="control DAG run"
)
def test_the_scan_finds_a_key_that_a_task_leaks(
    canary_emulator: FineTuningEmulator,
    run_dag: Callable[..., Any],
    scan_run: Callable[[Any, FineTuningEmulator], Scan],
    tmp_path: Path,
) -> None:
    dag_file = tmp_path / "ft_leaky_control.py"
    dag_file.write_text(LEAKY_DAG)
    canary_emulator.seed_job("dashscope")

    dag_run = run_dag(dag_file, "ft_leaky_control")

    hit_places = {hit.split(":", 1)[0] for hit in scan_run(dag_run, canary_emulator).hits}
    assert {"stdout and stderr", "XCom values"} <= hit_places


@pytest.mark.reliability(area="secrets", row="password in the host URL", column="transport error")
def test_a_password_in_the_host_url_never_shows_in_an_error(
    make_connection: ConnectionFactory, unused_tcp_port: int
) -> None:
    password = new_canary()
    host = f"http://ft-user:{password}@127.0.0.1:{unused_tcp_port}/v1"
    conn_id = make_connection("ft_userinfo", "dashscope", host=host, max_retries=0)
    with pytest.raises(FineTuningError) as raised:
        FineTuningHook(conn_id).get_job("ft-0123")
    assert password not in str(raised.value)


# -- masking --------------------------------------------------------------------------------------------------------


@dataclass
class RecordingComms:
    """Stands in for the task runner's channel to its supervisor, which masks the task's log lines."""

    sent: list[Any] = field(default_factory=list)

    def send(self, message: Any) -> None:
        self.sent.append(message)

    async def asend(self, message: Any) -> None:
        self.sent.append(message)

    def masked(self) -> list[Any]:
        return [message.value for message in self.sent if type(message).__name__ == "MaskSecret"]


@pytest.fixture
def supervisor(monkeypatch: pytest.MonkeyPatch) -> RecordingComms:
    from airflow.sdk.execution_time import task_runner

    comms = RecordingComms()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    return comms


def redacted(text: str) -> str:
    from airflow.sdk._shared.secrets_masker import redact

    return str(redact(text))


def airflow_connection(conn_id: str, conn_type: str, key: str) -> Any:
    from airflow.sdk import Connection

    return Connection(conn_id=conn_id, conn_type=conn_type, password=key)


@pytest.mark.reliability(area="secrets", row="key registered with the masker", column="hook.settings")
def test_reading_the_connection_registers_the_key_with_the_masker(
    make_connection: ConnectionFactory, supervisor: RecordingComms
) -> None:
    key = new_canary()
    conn_id = make_connection("ft_masked", "dashscope", password=key)
    assert redacted(f"Bearer {key}") == f"Bearer {key}", "not known to the masker before the hook reads it"
    FineTuningHook(conn_id).settings  # noqa: B018
    assert key not in redacted(f"Bearer {key}")
    assert key in supervisor.masked(), "the supervisor, which masks a real task's logs, is told too"


@pytest.mark.reliability(
    area="secrets", row="key registered with the masker", column="hook, connection not masked by Airflow"
)
def test_the_hook_registers_the_key_itself(monkeypatch: pytest.MonkeyPatch, supervisor: RecordingComms) -> None:
    # Airflow 3.3 masks connection secrets it looks up itself; a connection handed to the hook another way is not.
    key = new_canary()
    handed_over = classmethod(lambda cls, conn_id: airflow_connection(conn_id, "dashscope", key))
    monkeypatch.setattr(FineTuningHook, "get_connection", handed_over)
    FineTuningHook("ft_handed_over").settings  # noqa: B018
    assert key not in redacted(f"Bearer {key}")
    assert supervisor.masked() == [key]


@pytest.mark.reliability(area="secrets", row="key registered with the masker", column="hook.async_transport")
async def test_the_asyncio_path_registers_the_key_itself(
    monkeypatch: pytest.MonkeyPatch, supervisor: RecordingComms
) -> None:
    key = new_canary()

    async def handed_over(cls: type[FineTuningHook], conn_id: str) -> Any:
        return airflow_connection(conn_id, "openaifinetuning", key)

    monkeypatch.setattr(FineTuningHook, "aget_connection", classmethod(handed_over))
    assert redacted(key) == key
    async with FineTuningHook("ft_handed_over").async_transport():
        pass
    assert key not in redacted(f"Bearer {key}")
    assert supervisor.masked() == [key]
