"""Shared fixtures: a throwaway AIRFLOW_HOME, the emulator over loopback, and connections pointing at it.

AIRFLOW_HOME is set here, at import time, because Airflow reads its configuration when first imported.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="ft-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_AIRFLOW_HOME / "dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
# A Fernet key as in production: without one, Airflow warns once per process on the first encrypted field, and
# which test sees that warning (the secrets scan counts log records) would depend on the order the tests run in.
os.environ["AIRFLOW__CORE__FERNET_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
(_AIRFLOW_HOME / "dags").mkdir()

from airflow_provider_ft.identity import TaskIdentity  # noqa: E402
from airflow_provider_ft_emulator import Fault, FineTuningEmulator, recording  # noqa: E402
from airflow_provider_ft_emulator.recording import RecordedRequest  # noqa: E402
from tests.contracts.exchanges import tally  # noqa: E402

API_KEY = "sk-test-0123456789abcdef"
CONN_TYPES = {
    "azure": "azureopenaifinetuning",
    "dashscope": "dashscope",
    "openai": "openaifinetuning",
    "together": "togetherfinetuning",
}
# Fast but real retry settings: the retry tests count attempts, they do not wait for production backoffs.
FAST_RETRIES = {"timeout": 2, "max_retries": 3, "backoff_base": 0.01}


@dataclass(frozen=True)
class Vendor:
    """One API under test: its name in the emulator and the Airflow connection type that selects it."""

    name: str
    conn_type: str

    @property
    def conn_id(self) -> str:
        return f"ft_{self.name}"


def seed_job_of(emulator: FineTuningEmulator, vendor: str, identity: TaskIdentity, **kwargs: Any) -> str:
    """A job tagged as the create operator tags the job of ``identity`` (OpenAI ``metadata["airflow_ti"]``,
    DashScope ``job_name``, Azure OpenAI and Together AI ``suffix``): what an earlier try of that task instance would
    have made."""
    if vendor == "openai":
        return emulator.seed_job(vendor, metadata={"airflow_ti": identity.key}, **kwargs)
    return emulator.seed_job(vendor, name=identity.tag, **kwargs)


@dataclass(frozen=True)
class PassedGuard:
    """A cost guard set so low that any job reporting its trained tokens passes it (the emulator's jobs report
    10,000 or more), and what the connection needs for it.

    :param name: the guard, as messages name it
    :param arguments: the task's arguments that set it
    :param connection_extras: the connection's extras it needs (``max_cost``: a price)
    """

    name: str
    arguments: dict[str, Any]
    connection_extras: dict[str, Any] = field(default_factory=dict)

    @property
    def trigger_arguments(self) -> dict[str, Any]:
        """The guard as ``FineTuningJobTrigger`` takes it: the price travels with the trigger."""
        return {**self.arguments, **self.connection_extras}


PASSED_GUARDS = [
    PassedGuard("max_trained_tokens", {"max_trained_tokens": 1_000}),
    PassedGuard("max_cost", {"max_cost": 0.001}, {"price_per_million_tokens": 1.0, "currency": "USD"}),
]
#: Where each vendor reports a job's trained tokens.
TOKENS_FIELDS = {"dashscope": "usage", "openai": "trained_tokens", "azure": "trained_tokens", "together": "token_count"}


def report_tokens_while_running(emulator: FineTuningEmulator, vendor: str, job_id: str, tokens: int) -> None:
    """The next read of ``job_id`` answers it as it stands with ``tokens`` trained so far: the emulator's jobs report
    their tokens only once they have ended (as OpenAI's and DashScope's do), a guard on them then cannot cancel."""
    job = emulator.job(vendor, job_id)
    assert job is not None
    job[TOKENS_FIELDS[vendor]] = tokens
    body = {"request_id": "emulated-tokens", "output": job} if vendor == "dashscope" else job
    job_path = rf"/{re.escape(job_id)}$"
    emulator.inject(Fault("body", vendor=vendor, method="GET", path=job_path, body=json.dumps(body).encode()))


def api_url(emulator: FineTuningEmulator, vendor: str) -> str:
    """The URL raw HTTP requests to ``vendor``'s jobs go below (Azure OpenAI's v1 API: no api-version to add)."""
    return emulator.url(vendor) + ("/openai/v1" if vendor == "azure" else "")


@pytest.fixture(autouse=True)
def first_poll_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Triggers poll at once instead of at a random moment of their first interval (as in production).

    Tests wait for a trigger's first poll, often with production intervals (the example DAGs'); spreading it is
    tested on its own (tests/triggers/test_shared_polls.py), which sets ``first_poll_spread`` back.
    """
    from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger

    monkeypatch.setattr(FineTuningJobTrigger, "first_poll_spread", 0.0)


@pytest.fixture(autouse=True)
def fresh_rate_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with no account paused: the process-wide rate-limit state is per account, and the tests
    reuse one emulator (one base URL and key), so a 429 of one test would otherwise pause the next one's requests."""
    import weakref

    from airflow_provider_ft.transport import ratelimit

    monkeypatch.setattr(ratelimit, "_gates", weakref.WeakValueDictionary())


@dataclass
class TaskStateAnswer:
    """Stands in for Airflow's answer when an ``on_kill`` asks for its task instance's state
    (``_compat.task_instance_states``, a request to the supervisor): ``state``, or ``error`` raised.

    The real reading, through the Task SDK's supervisor and the metadata database, is tested under ``dag.test()``
    (tests/operators/test_kill_confirmed.py) and under real Airflow processes (tests/system/test_freeze_system.py).
    """

    state: str | None = "failed"
    error: Exception | None = None
    asked: list[Any] = field(default_factory=list)

    def __call__(self, ti: Any) -> dict[str, dict[str, str | None]]:
        self.asked.append(ti)
        if self.error is not None:
            raise self.error
        return {ti.run_id: {ti.task_id: self.state}}


@pytest.fixture
def task_state(monkeypatch: pytest.MonkeyPatch) -> TaskStateAnswer:
    """What ``on_kill`` reads as the task instance's state: ``failed`` (a user's kill) unless the test changes it."""
    from airflow_provider_ft import _compat

    answer = TaskStateAnswer()
    monkeypatch.setattr(_compat, "task_instance_states", answer)
    return answer


@pytest.fixture(scope="session")
def heard_exchanges() -> Iterator[list[RecordedRequest]]:
    """Every exchange any emulator of the process finishes, from now on (emptied by ``published_contracts``)."""
    heard: list[RecordedRequest] = []
    stop = recording.watch(heard.append)
    yield heard
    stop()


@pytest.fixture(autouse=True)
def published_contracts(heard_exchanges: list[RecordedRequest], request: pytest.FixtureRequest) -> Iterator[None]:
    """Each exchange with the emulator during the test is judged against the vendor's published API document
    (tests/contracts/exchanges.py says which, and which half): what does not conform fails the test. A test marked
    ``off_contract`` makes the emulator answer off the documents on purpose: only its requests are judged."""
    heard_exchanges.clear()
    yield
    finished, heard_exchanges[:] = list(heard_exchanges), []
    result = tally(finished, answers=request.node.get_closest_marker("off_contract") is None)
    if result.failed:
        pytest.fail(f"exchanges off the vendors' published API documents:\n{result.report()}", pytrace=False)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[FineTuningEmulator]:
    with FineTuningEmulator(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def emulator(emulator_server: FineTuningEmulator) -> Iterator[FineTuningEmulator]:
    """The session's emulator, emptied before each test."""
    emulator_server.reset()
    yield emulator_server
    emulator_server.reset()


@pytest.fixture(params=sorted(CONN_TYPES), ids=lambda name: name)
def vendor(request: pytest.FixtureRequest) -> Vendor:
    """Runs a test once per vendor."""
    return Vendor(request.param, CONN_TYPES[request.param])


ConnectionFactory = Callable[..., str]


@pytest.fixture
def make_connection(monkeypatch: pytest.MonkeyPatch) -> ConnectionFactory:
    """Define an Airflow connection through an ``AIRFLOW_CONN_*`` variable; returns its conn id."""

    def make(
        conn_id: str,
        conn_type: str,
        *,
        host: str | None = None,
        password: str | None = API_KEY,
        **extra: Any,
    ) -> str:
        definition: dict[str, Any] = {"conn_type": conn_type, "extra": extra}
        if host is not None:
            definition["host"] = host
        if password is not None:
            definition["password"] = password
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(definition))
        return conn_id

    return make


@pytest.fixture
def vendor_consoles(monkeypatch: pytest.MonkeyPatch) -> str:
    """The emulator's host taken for each vendor's own API, so that a job gets a console link
    (``https://console.test/<vendor>/<job id>``); without this fixture a connection to the emulator has none."""
    from airflow_provider_ft.vendors import DIALECTS_BY_CONN_TYPE

    for dialect in set(DIALECTS_BY_CONN_TYPE.values()):
        monkeypatch.setattr(dialect, "console_pages", {"127.0.0.1": f"https://console.test/{dialect.name}/{{job_id}}"})
    return "https://console.test"


@pytest.fixture
def connection(emulator: FineTuningEmulator, vendor: Vendor, make_connection: ConnectionFactory) -> str:
    """A connection of the parametrized vendor pointing at the emulator, with fast retries."""
    return make_connection(vendor.conn_id, vendor.conn_type, host=emulator.url(vendor.name), **FAST_RETRIES)


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """An initialized SQLite metadata database in the throwaway AIRFLOW_HOME (migrated once per session)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, timeout=300)
    return airflow_home


@pytest.fixture
def run_dag(airflow_db: Path) -> Callable[..., Any]:
    """Copy a DAG file into the dags folder, load it from there and run it with ``dag.test()``.

    Returns the DagRun. Each call loads the file afresh, so connections set by the test apply. With
    ``register_assets`` the DAG's outlets are known to the database first, so that their events are recorded.
    """

    def run(dag_file: Path, dag_id: str, *, register_assets: bool = False, **test_kwargs: Any) -> Any:
        target = airflow_db / "dags" / dag_file.name
        shutil.copyfile(dag_file, target)
        module_name = f"_dag_{dag_file.stem}_{uuid.uuid4().hex}"
        spec = importlib.util.spec_from_file_location(module_name, target)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dag = next(value for value in vars(module).values() if getattr(value, "dag_id", None) == dag_id)
        if register_assets:
            from tests.airflow_versions import register_assets_of

            register_assets_of(dag)
        return dag.test(**test_kwargs)

    return run
