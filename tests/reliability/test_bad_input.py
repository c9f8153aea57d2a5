"""Bad input through every public entry point: refused before any request, with a message that says what is wrong.

Job ids go through the hook (get, cancel, pause, resume, delete, wait, asyncio get), the cancel, pause, resume and
delete operators, the sensor's poke and the trigger. Broken connections go through the cancel, delete and cleanup
operators, the create operator, the sensor and the trigger (the hook itself is covered by
``tests/hooks/test_connections.py``). Bad operator arguments are refused when the DAG file is parsed. The create
operator's bad training files (missing, empty, a bad line of many kinds, records of another format) and bad job
arguments are refused when it runs, before any request (the emulator records none).
The dialect-level id rules are in ``tests/vendors/test_dialects.py``; the emulator's own answers to malformed
bodies, unknown paths and oversized pages are in ``tests/emulator/``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft.exceptions import (
    FineTuningConfigError,
    FineTuningError,
    FineTuningTransportError,
    InvalidJobIdError,
    TrainingFileError,
)
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.operators.create import CreateFineTuningJobOperator
from airflow_provider_ft.operators.fine_tuning import (
    CancelFineTuningJobOperator,
    CleanupFineTuningJobsOperator,
    DeleteFineTuningJobOperator,
    PauseFineTuningJobOperator,
    ResumeFineTuningJobOperator,
)
from airflow_provider_ft.sensors.fine_tuning import FineTuningJobSensor
from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
from airflow_provider_ft_emulator import FineTuningEmulator
from tests.conftest import API_KEY, CONN_TYPES, FAST_RETRIES, ConnectionFactory
from tests.operators.conftest import RecordingTaskInstance
from tests.reliability import lifecycle
from tests.reliability.conftest import single_event

VENDORS = ("dashscope", "openai", "azure", "together")
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


def create_operator(conn_id: str, job_id: Any) -> Observed:
    operator = CreateFineTuningJobOperator(
        task_id="train", conn_id=conn_id, model="qwen-turbo", training_file="file-abc123", settle_delays=(0.0,)
    )
    return observe(lambda: operator.execute({"ti": lifecycle.task_instance()}))


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
    Entry("delete operator", delete_operator, vendors=("dashscope", "azure", "together")),
    Entry("sensor poke", sensor_poke),
    Entry("trigger run", trigger_run),
]
CONNECTION_ENTRIES = [
    Entry("cancel operator", cancel_operator),
    Entry("delete operator", delete_operator, vendors=("dashscope", "azure", "together")),
    Entry("cleanup operator", cleanup_operator),
    Entry("create operator", create_operator),
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

from airflow_provider_ft.operators.create import CreateFineTuningJobOperator
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


def create_task(argument: str) -> str:
    return f"CreateFineTuningJobOperator(task_id='train', model='qwen-turbo', training_file='file-abc', {argument})"


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
        "create poll_interval 0",
        create_task("poll_interval=0"),
        "poll_interval must be a positive number of seconds",
    ),
    BadArgument(
        "create timeout -1",
        create_task("timeout=-1"),
        "timeout must be",
    ),
    BadArgument(
        "create settle_delays negative",
        create_task("settle_delays=(-1,)"),
        "settle_delays must be",
    ),
    BadArgument(
        "create max_runtime 0",
        create_task("max_runtime=0"),
        "max_runtime must be",
    ),
    BadArgument(
        "create max_trained_tokens -1",
        create_task("max_trained_tokens=-1"),
        "max_trained_tokens must be",
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


# -- the create operator: bad training files and arguments, refused before any request ------------------------------

CREATE_AREA = "create operator input"
CHAT = json.dumps(lifecycle.RECORD)


def lines(*extra: bytes) -> Callable[[Path], Any]:
    """A training file of one good record, then ``extra`` lines."""

    def make(folder: Path) -> Any:
        path = folder / "bad.jsonl"
        path.write_bytes(CHAT.encode() + b"\n" + b"".join(extra))
        return path

    return make


def good_file(folder: Path) -> Any:
    return lifecycle.write_training_file(folder)


@dataclass(frozen=True)
class BadCreate:
    """Arguments of a create operator that must be refused before any request, and what the error must say."""

    id: str
    error: type[FineTuningError]
    says: str
    training_file: Callable[[Path], Any] = good_file
    options: dict[str, Any] = field(default_factory=dict)
    vendors: tuple[str, ...] = VENDORS


def empty_file(folder: Path) -> Any:
    path = folder / "empty.jsonl"
    path.write_bytes(b"")
    return path


BAD_CREATES = [
    BadCreate("missing file", TrainingFileError, "is not a file on this machine", lambda _: "/no/such/train.jsonl"),
    BadCreate("a directory", TrainingFileError, "is not a file on this machine", lambda folder: folder),
    BadCreate("not a path or id (a number)", TrainingFileError, "must be a vendor file id, a path", lambda _: 42),
    BadCreate("empty file", TrainingFileError, "holds no records", empty_file),
    BadCreate("blank line", TrainingFileError, "line 2 is blank", lines(b"\n", CHAT.encode() + b"\n")),
    BadCreate("line not JSON", TrainingFileError, "line 2 is not JSON", lines(b"{not json\n")),
    BadCreate("line not UTF-8", TrainingFileError, "line 2 is not UTF-8", lines(b'{"messages": "\xff"}\n')),
    BadCreate("line a JSON array", TrainingFileError, "is a JSON array, not an object", lines(b"[1, 2]\n")),
    BadCreate(
        "record without messages",
        TrainingFileError,
        "has no 'messages'",
        lines(b'{"prompt": "x"}\n'),
        vendors=("dashscope", "openai", "azure"),
    ),
    BadCreate(
        "instruction record without completion",
        TrainingFileError,
        "'completion' is not a string",
        lines(b'{"prompt": "x"}\n'),
        vendors=("together",),
    ),
    BadCreate("empty messages", TrainingFileError, "not a non-empty array of messages", lines(b'{"messages": []}\n')),
    BadCreate(
        "unknown role", TrainingFileError, "role 'robot'", lines(b'{"messages": [{"role": "robot", "content": "x"}]}\n')
    ),
    BadCreate(
        "message without content",
        TrainingFileError,
        "has no text 'content'",
        lines(b'{"messages": [{"role": "user"}]}\n'),
    ),
    BadCreate(
        "bad validation file",
        TrainingFileError,
        "validation_file bad.jsonl: line 2 is not JSON",
        options={"validation_file": lines(b"{not json\n")},
    ),
    BadCreate(
        "chat records for a DPO job",
        TrainingFileError,
        "has no 'input'",
        options={"method": "dpo"},
        vendors=("openai", "together"),
    ),
    BadCreate(
        "chat records for continued pre-training",
        TrainingFileError,
        "has no 'text'",
        options={"training_type": "cpt"},
        vendors=("dashscope",),
    ),
    BadCreate("empty model", FineTuningConfigError, "model must be a model name", options={"model": ""}),
    BadCreate(
        "model of 1000 characters", FineTuningConfigError, "model must be a model name", options={"model": "m" * 1000}
    ),
    BadCreate(
        "the other vendor's options",
        FineTuningConfigError,
        "takes no seed, metadata",
        options={"seed": 1, "metadata": {"a": "b"}},
        vendors=("dashscope",),
    ),
    BadCreate(
        "the other vendor's options",
        FineTuningConfigError,
        "takes no training_type",
        options={"training_type": "sft"},
        vendors=("openai",),
    ),
    BadCreate(
        "the other vendor's options",
        FineTuningConfigError,
        "takes no training_type, suffix, metadata",
        options={"training_type": "sft", "suffix": "x", "metadata": {"team": "a"}},
        vendors=("azure",),
    ),
    BadCreate(
        "the other vendors' options",
        FineTuningConfigError,
        "takes no suffix, metadata",
        options={"suffix": "x", "metadata": {"team": "a"}},
        vendors=("together",),
    ),
    BadCreate(
        "a hyperparameter Together AI does not take (a secret)",
        FineTuningConfigError,
        "takes no hyperparameter wandb_api_key",
        options={"hyperparameters": {"n_epochs": 2, "wandb_api_key": "k"}},
        vendors=("together",),
    ),
    BadCreate(
        "training_type neither full nor lora",
        FineTuningConfigError,
        "training_type must be 'full' or 'lora'",
        options={"training_type": "sft"},
        vendors=("together",),
    ),
    BadCreate(
        "metadata key airflow_*",
        FineTuningConfigError,
        "not starting with 'airflow_'",
        options={"metadata": {"airflow_ti": "mine"}},
        vendors=("openai",),
    ),
    BadCreate(
        "suffix of 65 characters",
        FineTuningConfigError,
        "suffix must be",
        options={"suffix": "x" * 65},
        vendors=("openai",),
    ),
    BadCreate(
        "seed -1", FineTuningConfigError, "seed must be", options={"seed": -1}, vendors=("openai", "azure", "together")
    ),
    BadCreate(
        "reinforcement without a grader",
        FineTuningConfigError,
        "needs its grader",
        options={"method": "reinforcement"},
        vendors=("openai",),
    ),
    BadCreate(
        "hyperparameters not a mapping",
        FineTuningConfigError,
        "hyperparameters must be a mapping",
        options={"hyperparameters": ["n_epochs", 3]},
        vendors=("dashscope", "together"),
    ),
    BadCreate(
        "blank training_type",
        FineTuningConfigError,
        "training_type must be",
        options={"training_type": " "},
        vendors=("dashscope", "together"),
    ),
]


def create_cells() -> list[Any]:
    return [
        pytest.param(
            bad,
            vendor,
            id=f"{bad.id}-{vendor}",
            marks=pytest.mark.reliability(
                area=CREATE_AREA, row=bad.id, column="create operator", vendor=vendor, expect=f"`{bad.error.__name__}`"
            ),
        )
        for bad in BAD_CREATES
        for vendor in bad.vendors
    ]


@pytest.mark.parametrize(("bad", "vendor"), create_cells())
def test_bad_create_input_is_refused_before_any_request(
    emulator: FineTuningEmulator,
    emulator_connection: Callable[[str], str],
    tmp_path: Path,
    bad: BadCreate,
    vendor: str,
) -> None:
    options = dict(bad.options)
    for name, value in bad.options.items():
        if callable(value):  # a file to write, in a folder of its own
            (tmp_path / name).mkdir()
            options[name] = value(tmp_path / name)
    arguments = {"model": lifecycle.MODELS[vendor], "settle_delays": (0.0,), "log_events": False, **options}
    training = tmp_path / "training"
    training.mkdir()
    operator = CreateFineTuningJobOperator(
        task_id="train", conn_id=emulator_connection(vendor), training_file=bad.training_file(training), **arguments
    )
    observed = observe(lambda: operator.execute({"ti": lifecycle.task_instance()}))
    check_refused(observed, bad.error, bad.says)
    assert API_KEY not in observed[1]  # type: ignore[index]
    assert emulator.requests == [], "refused before any request"
