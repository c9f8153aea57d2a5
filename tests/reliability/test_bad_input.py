"""Bad input through every public entry point: refused before any request, with a message that says what is wrong.

Job ids go through the hook (get, cancel, pause, resume, delete, wait, asyncio get), the cancel, pause, resume and
delete operators, the sensor's poke and the trigger. Broken connections go through the cancel, delete and cleanup
operators, the sensor and the trigger (the hook itself is covered by ``tests/hooks/test_connections.py``). Bad
operator arguments are refused when the DAG file is parsed.
The dialect-level id rules are in ``tests/vendors/test_dialects.py``; the emulator's own answers to malformed
bodies, unknown paths and oversized pages are in ``tests/emulator/``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft.emulator import FineTuningEmulator
from airflow_provider_ft.exceptions import (
    FineTuningConfigError,
    FineTuningError,
    FineTuningTransportError,
    InvalidJobIdError,
)
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.operators.fine_tuning import (
    CancelFineTuningJobOperator,
    CleanupFineTuningJobsOperator,
    DeleteFineTuningJobOperator,
    PauseFineTuningJobOperator,
    ResumeFineTuningJobOperator,
)
from airflow_provider_ft.sensors.fine_tuning import FineTuningJobSensor
from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
from tests.conftest import API_KEY, CONN_TYPES, FAST_RETRIES, ConnectionFactory
from tests.operators.conftest import RecordingTaskInstance
from tests.reliability.conftest import single_event

VENDORS = ("dashscope", "openai")
#: What an entry point reported: the error's class name and message, or ``None`` when it did not fail.
Observed = tuple[str, str] | None


def observe(call: Callable[[], object]) -> Observed:
    try:
        call()
    except FineTuningError as error:
        return type(error).__name__, str(error)
    return None


def from_event(event: dict[str, Any]) -> Observed:
    if event["status"] != "error":
        return None
    return str(event["error"]["type"]), str(event["message"])


# -- entry points ---------------------------------------------------------------------------------------------------


def context() -> Any:
    return {"ti": RecordingTaskInstance()}


def hook_get(conn_id: str, job_id: Any) -> Observed:
    return observe(lambda: FineTuningHook(conn_id).get_job(job_id))


def hook_cancel(conn_id: str, job_id: Any) -> Observed:
    return observe(lambda: FineTuningHook(conn_id).cancel_job(job_id))


def hook_pause(conn_id: str, job_id: Any) -> Observed:
    return observe(lambda: FineTuningHook(conn_id).pause_job(job_id))


def hook_resume(conn_id: str, job_id: Any) -> Observed:
    return observe(lambda: FineTuningHook(conn_id).resume_job(job_id))


def hook_delete(conn_id: str, job_id: Any) -> Observed:
    return observe(lambda: FineTuningHook(conn_id).delete_job(job_id))


def hook_wait(conn_id: str, job_id: Any) -> Observed:
    return observe(lambda: FineTuningHook(conn_id).wait_for_job(job_id, poll_interval=0.01, timeout=1))


def cancel_operator(conn_id: str, job_id: Any) -> Observed:
    operator = CancelFineTuningJobOperator(task_id="cancel", job_id=job_id, conn_id=conn_id)
    return observe(lambda: operator.execute(context()))


def pause_operator(conn_id: str, job_id: Any) -> Observed:
    operator = PauseFineTuningJobOperator(task_id="pause", job_id=job_id, conn_id=conn_id)
    return observe(lambda: operator.execute(context()))


def resume_operator(conn_id: str, job_id: Any) -> Observed:
    operator = ResumeFineTuningJobOperator(task_id="resume", job_id=job_id, conn_id=conn_id)
    return observe(lambda: operator.execute(context()))


def delete_operator(conn_id: str, job_id: Any) -> Observed:
    operator = DeleteFineTuningJobOperator(task_id="delete", job_id=job_id, conn_id=conn_id)
    return observe(lambda: operator.execute(context()))


def cleanup_operator(conn_id: str, job_id: Any) -> Observed:
    operator = CleanupFineTuningJobsOperator(task_id="cleanup", conn_id=conn_id, older_than=timedelta(hours=6))
    return observe(lambda: operator.execute(context()))


def sensor_poke(conn_id: str, job_id: Any) -> Observed:
    sensor = FineTuningJobSensor(task_id="wait", job_id=job_id, conn_id=conn_id, deferrable=False)
    done: list[bool] = []
    observed = observe(lambda: done.append(sensor.poke({}).is_done))
    assert done in ([], [False]), "a poke that could not look at the job must not report it done"
    return observed


async def hook_aget_job(conn_id: str, job_id: Any) -> Observed:
    hook = FineTuningHook(conn_id)
    try:
        async with hook.async_transport() as transport:
            await hook.aget_job(transport, job_id)
    except FineTuningError as error:
        return type(error).__name__, str(error)
    return None


async def trigger_run(conn_id: str, job_id: Any) -> Observed:
    return from_event(await single_event(FineTuningJobTrigger(conn_id, job_id, 0.01, max_consecutive_errors=1)))


@dataclass(frozen=True)
class Entry:
    name: str
    call: Callable[[str, Any], Observed] | Callable[[str, Any], Awaitable[Observed]]
    vendors: tuple[str, ...] = VENDORS

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.call)


# DeleteFineTuningJobOperator refuses OpenAI (no delete API) before it looks at the id: DashScope only. The pause and
# resume operators likewise refuse DashScope (no pause API) first: OpenAI only. The hook checks the id first.
ID_ENTRIES = [
    Entry("hook.get_job", hook_get),
    Entry("hook.cancel_job", hook_cancel),
    Entry("hook.pause_job", hook_pause),
    Entry("hook.resume_job", hook_resume),
    Entry("hook.delete_job", hook_delete),
    Entry("hook.wait_for_job", hook_wait),
    Entry("hook.aget_job", hook_aget_job),
    Entry("cancel operator", cancel_operator),
    Entry("pause operator", pause_operator, vendors=("openai",)),
    Entry("resume operator", resume_operator, vendors=("openai",)),
    Entry("delete operator", delete_operator, vendors=("dashscope",)),
    Entry("sensor poke", sensor_poke),
    Entry("trigger run", trigger_run),
]
CONNECTION_ENTRIES = [
    Entry("cancel operator", cancel_operator),
    Entry("delete operator", delete_operator, vendors=("dashscope",)),
    Entry("cleanup operator", cleanup_operator),
    Entry("sensor poke", sensor_poke),
    Entry("trigger run", trigger_run),
]


# -- job ids --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadId:
    id: str
    value: object
    says: str


BAD_JOB_IDS = [
    BadId("empty", "", "must not be empty or blank"),
    BadId("whitespace", "   ", "must not be empty or blank"),
    BadId("dot-dot-slash", "../x", "cannot have ('/')"),
    BadId("slash", "a/b", "cannot have ('/')"),
    BadId("question-mark", "x?y", "cannot have ('?')"),
    BadId("hash", "x#y", "cannot have ('#')"),
    BadId("percent-encoded-dots", "%2e%2e", "cannot have ('%')"),
    BadId("newline", "ft-1\nx", "cannot have ('\\n')"),
    BadId("nul", "ft-1\x00x", "cannot have ('\\x00')"),
    BadId("10000-characters", "a" * 10_000, "at most 128 characters, got one of 10000"),
    BadId("non-string", 12345, "must be a string, got int"),
    BadId("none", None, "must be a string, got NoneType"),
]


def id_cells(is_async: bool) -> list[Any]:
    return [
        pytest.param(
            entry,
            vendor,
            bad,
            id=f"{entry.name}-{vendor}-{bad.id}",
            marks=pytest.mark.reliability(area="job ids", row=bad.id, column=entry.name, vendor=vendor),
        )
        for entry in ID_ENTRIES
        if entry.is_async is is_async
        for bad in BAD_JOB_IDS
        for vendor in entry.vendors
    ]


@pytest.fixture
def emulator_connection(emulator: FineTuningEmulator, make_connection: ConnectionFactory) -> Callable[[str], str]:
    def make(vendor: str) -> str:
        return make_connection(f"ft_input_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), **FAST_RETRIES)

    return make


def check_refused(observed: Observed, expected: type[FineTuningError], says: str) -> str:
    assert observed is not None, "the bad input was accepted"
    kind, message = observed
    assert kind == expected.__name__, message
    assert says in message, message
    return message


@pytest.mark.parametrize(("entry", "vendor", "bad"), id_cells(is_async=False))
def test_bad_job_id_is_refused_before_any_request(
    emulator: FineTuningEmulator, emulator_connection: Callable[[str], str], entry: Entry, vendor: str, bad: BadId
) -> None:
    observed = entry.call(emulator_connection(vendor), bad.value)
    check_refused(observed, InvalidJobIdError, bad.says)  # type: ignore[arg-type]
    assert emulator.requests == []


@pytest.mark.parametrize(("entry", "vendor", "bad"), id_cells(is_async=True))
async def test_bad_job_id_is_refused_before_any_request_in_asyncio(
    emulator: FineTuningEmulator, emulator_connection: Callable[[str], str], entry: Entry, vendor: str, bad: BadId
) -> None:
    observed = await entry.call(emulator_connection(vendor), bad.value)  # type: ignore[misc]
    check_refused(observed, InvalidJobIdError, bad.says)
    assert emulator.requests == []


# -- connections ----------------------------------------------------------------------------------------------------

UNREACHABLE = "unreachable"
URL_PASSWORD = "hunter2-in-the-url"
WITH_CREDENTIALS = "with credentials"


@dataclass(frozen=True)
class BrokenConnection:
    """A connection that cannot work and the error each entry point must end with.

    ``host`` ``None`` points at the emulator; ``conn_type`` ``None`` is the vendor's own type; ``secret`` must never
    be echoed (the key by default); ``known_bug`` makes the case a strict xfail.
    """

    id: str
    error: type[FineTuningError]
    says: str
    password: str | None = API_KEY
    host: str | None = None
    conn_type: str | None = None
    per_vendor: bool = True
    secret: str | None = None
    known_bug: str | None = None

    @property
    def never_echoed(self) -> str | None:
        return self.secret or (self.password.strip() if self.password else None)


BROKEN_CONNECTIONS = [
    BrokenConnection("missing-key", FineTuningConfigError, "has no API key", password=None),
    BrokenConnection(
        "unknown-conn-type",
        FineTuningConfigError,
        "is not one this provider can use",
        conn_type="http",
        per_vendor=False,
    ),
    BrokenConnection("host-without-scheme", FineTuningConfigError, "full http(s) URL", host="api.example.com/v1"),
    BrokenConnection("key-with-whitespace", FineTuningConfigError, "whitespace", password="sk-broken key-0123456789"),
    BrokenConnection("key-with-newline", FineTuningConfigError, "line break", password="sk-broken-0123456789\n"),
    BrokenConnection("unreachable-host", FineTuningTransportError, "got no usable answer", host=UNREACHABLE),
    BrokenConnection(
        "host-with-credentials",
        FineTuningConfigError,
        "host",
        host=WITH_CREDENTIALS,
        secret=URL_PASSWORD,
    ),
]


def connection_cells(is_async: bool) -> list[Any]:
    return [
        pytest.param(
            entry,
            vendor,
            broken,
            id=f"{entry.name}-{vendor}-{broken.id}",
            marks=[
                pytest.mark.reliability(area="connections", row=broken.id, column=entry.name, vendor=vendor),
                *([pytest.mark.xfail(strict=True, reason=broken.known_bug)] if broken.known_bug else []),
            ],
        )
        for entry in CONNECTION_ENTRIES
        if entry.is_async is is_async
        for broken in BROKEN_CONNECTIONS
        for vendor in (entry.vendors if broken.per_vendor else entry.vendors[:1])
    ]


@pytest.fixture
def broken_connection(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, unused_tcp_port: int
) -> Callable[[str, BrokenConnection], str]:
    def make(vendor: str, broken: BrokenConnection) -> str:
        host = broken.host or emulator.url(vendor)
        if host == UNREACHABLE:
            host = f"http://127.0.0.1:{unused_tcp_port}/v1"
        if host == WITH_CREDENTIALS:
            host = emulator.url(vendor).replace("http://", f"http://ft-user:{URL_PASSWORD}@")
        conn_type = broken.conn_type or CONN_TYPES[vendor]
        extras = {"max_retries": 1, "backoff_base": 0.01}
        return make_connection("ft_broken", conn_type, host=host, password=broken.password, **extras)

    return make


def check_connection_error(observed: Observed, entry: Entry, broken: BrokenConnection) -> None:
    if entry.name == "sensor poke" and broken.error is FineTuningTransportError:
        assert observed is None, "an unreachable host is a transient error for the sensor: it pokes again"
        return
    message = check_refused(observed, broken.error, broken.says)
    assert "'ft_broken'" in message, "the message names the connection"
    if broken.never_echoed:
        assert broken.never_echoed not in message, "the message never echoes a secret"


@pytest.mark.parametrize(("entry", "vendor", "broken"), connection_cells(is_async=False))
def test_broken_connection_fails_clearly_before_any_request(
    emulator: FineTuningEmulator,
    broken_connection: Callable[[str, BrokenConnection], str],
    entry: Entry,
    vendor: str,
    broken: BrokenConnection,
) -> None:
    observed = entry.call(broken_connection(vendor, broken), "ft-0123")
    check_connection_error(observed, entry, broken)  # type: ignore[arg-type]
    assert emulator.requests == []


@pytest.mark.parametrize(("entry", "vendor", "broken"), connection_cells(is_async=True))
async def test_broken_connection_fails_clearly_before_any_request_in_the_trigger(
    emulator: FineTuningEmulator,
    broken_connection: Callable[[str, BrokenConnection], str],
    entry: Entry,
    vendor: str,
    broken: BrokenConnection,
) -> None:
    observed = await entry.call(broken_connection(vendor, broken), "ft-0123")  # type: ignore[misc]
    check_connection_error(observed, entry, broken)
    assert emulator.requests == []


# -- operator arguments, seen by Airflow's DAG parser --------------------------------------------------------------

DAG_FILE = """
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_ft.operators.fine_tuning import CancelFineTuningJobOperator, CleanupFineTuningJobsOperator
from airflow_provider_ft.sensors.fine_tuning import FineTuningJobSensor

with DAG("ft_arguments", schedule=None, start_date=datetime(2025, 1, 1)):
    {task}
"""
CLEANUP = "CleanupFineTuningJobsOperator(task_id='cleanup', older_than={older_than}{more})"


@dataclass(frozen=True)
class BadArgument:
    id: str
    task: str
    says: str


def cleanup_task(older_than: str = "timedelta(hours=6)", **more: object) -> str:
    extra = "".join(f", {name}={value!r}" for name, value in more.items())
    return CLEANUP.format(older_than=older_than, more=extra)


BAD_ARGUMENTS = [
    BadArgument("older_than negative", cleanup_task("timedelta(hours=-1)"), "older_than must be a positive duration"),
    BadArgument("older_than zero", cleanup_task("timedelta(0)"), "older_than must be a positive duration"),
    BadArgument("unknown status name", cleanup_task(statuses=["RUNNING", "STUCK"]), "Unknown job status 'STUCK'"),
    BadArgument("concurrency 0", cleanup_task(concurrency=0), "concurrency must be a whole number of at least 1"),
    BadArgument("concurrency -2", cleanup_task(concurrency=-2), "concurrency must be a whole number of at least 1"),
    BadArgument("max_jobs 0", cleanup_task(max_jobs=0), "max_jobs must be a whole number of at least 1"),
    BadArgument("max_jobs -5", cleanup_task(max_jobs=-5), "max_jobs must be a whole number of at least 1"),
    BadArgument(
        "cancel poll_interval 0",
        "CancelFineTuningJobOperator(task_id='cancel', job_id='ft-1', poll_interval=0)",
        "poll_interval must be a positive number of seconds",
    ),
    BadArgument(
        "sensor poke_interval 0",
        "FineTuningJobSensor(task_id='wait', job_id='ft-1', poke_interval=0)",
        "poke_interval must be a positive number of seconds",
    ),
]


def parse_dag_file(folder: Path, task: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    dag_file = folder / "ft_arguments.py"
    dag_file.write_text(DAG_FILE.format(task=task))
    return DagBag(dag_folder=dag_file, safe_mode=False)


@pytest.mark.reliability(area="operator arguments", row="valid arguments (control)", column="DAG file import")
def test_a_dag_file_with_valid_arguments_imports(tmp_path: Path) -> None:
    bag = parse_dag_file(tmp_path, cleanup_task(concurrency=2, max_jobs=10, statuses=["RUNNING"]))
    assert bag.import_errors == {}
    assert list(bag.dags["ft_arguments"].task_ids) == ["cleanup"]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(
            bad,
            id=bad.id,
            marks=pytest.mark.reliability(area="operator arguments", row=bad.id, column="DAG file import"),
        )
        for bad in BAD_ARGUMENTS
    ],
)
def test_a_bad_operator_argument_fails_the_dag_import(tmp_path: Path, bad: BadArgument) -> None:
    bag = parse_dag_file(tmp_path, bad.task)
    assert bag.dags == {}
    (error,) = bag.import_errors.values()
    assert bad.says in error, error
