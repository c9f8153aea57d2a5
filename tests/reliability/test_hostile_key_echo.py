"""Key echo: a server that quotes the API key back in every field it controls never gets it repeated.

The emulator's ``echo_key`` fault plants the key the client presented in every server-controlled place of an answer:
error messages, codes and request ids, nested objects, job fields (id, status, name, error), the ``x-request-id``
header and two more headers, a ``text/plain`` body, and JSON strings written with ``\\u`` escapes. Each variant hits
every request of every operation, sync and async, on both vendors. Afterwards the key (whole, or its random part)
must appear nowhere the provider leaves text: the exception (``str``, ``repr``, ``args``, attributes, the formatted
chain), every log record of every logger at DEBUG, what was written to stdout/stderr, the results and XCom values,
and the trigger's event. A control per variant proves the emulator did send the key, so zero hits mean something.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import traceback
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_ft.exceptions import FineTuningError
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.operators.cleanup import CleanupFineTuningJobsOperator
from airflow_provider_ft.operators.fine_tuning import CancelFineTuningJobOperator
from airflow_provider_ft.sensors.fine_tuning import FineTuningJobSensor
from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from airflow_provider_ft_emulator.faults import VARIANTS
from tests.conftest import CONN_TYPES, ConnectionFactory, api_url
from tests.operators.conftest import RUNNING, SUCCEEDED, Run
from tests.reliability import lifecycle
from tests.reliability.conftest import single_event

AREA = "key echo"
ECHOES = VARIANTS["echo_key"]
ALWAYS = 1_000
EXTRAS = {"timeout": 2, "max_retries": 1, "backoff_base": 0.01}


@pytest.fixture(scope="module")
def canary() -> str:
    return f"sk-canary-{secrets.token_hex(16)}"


@pytest.fixture(scope="module")
def echo_server(canary: str) -> Iterator[FineTuningEmulator]:
    """An emulator that accepts the canary key, so the answers it echoes carry that key."""
    with FineTuningEmulator(api_key=canary) as server:
        yield server


@dataclass
class Texts:
    """Everything the provider left behind in one case, as text to scan."""

    items: list[tuple[str, str]]

    def add(self, place: str, value: object) -> None:
        text = value if isinstance(value, str) else json.dumps(value, default=repr, sort_keys=True)
        self.items.append((place, text))

    def add_error(self, error: BaseException) -> None:
        self.add("str(error)", str(error))
        self.add("repr(error)", repr(error))
        self.add("error.args", repr(error.args))
        self.add("error attributes", repr(vars(error)))
        self.add("formatted error chain", "".join(traceback.format_exception(error)))

    def hits(self, secret: str) -> list[str]:
        needles = (secret, secret.removeprefix("sk-canary-"))
        return [place for place, text in self.items if any(needle in text for needle in needles)]


@dataclass(frozen=True)
class Case:
    """An operation of the provider: how to run it on a seeded job, leaving its results and errors in ``texts``."""

    id: str
    run: Callable[[str, str, Texts], None]
    vendors: tuple[str, ...] = ("dashscope", "openai")


def calling(call: Callable[[], Any], texts: Texts) -> None:
    try:
        result = call()
    except FineTuningError as error:
        texts.add_error(error)
        return
    texts.add("result", getattr(result, "to_dict", lambda: result)())


def get(conn_id: str, job_id: str, texts: Texts) -> None:
    with closing(FineTuningHook(conn_id)) as hook:
        calling(lambda: hook.get_job(job_id), texts)


def list_jobs(conn_id: str, job_id: str, texts: Texts) -> None:
    with closing(FineTuningHook(conn_id)) as hook:
        calling(lambda: [job.to_dict() for job in hook.list_jobs()], texts)


def cancel(conn_id: str, job_id: str, texts: Texts) -> None:
    with closing(FineTuningHook(conn_id)) as hook:
        calling(lambda: hook.cancel_job(job_id), texts)


def delete(conn_id: str, job_id: str, texts: Texts) -> None:
    with closing(FineTuningHook(conn_id)) as hook:
        calling(lambda: hook.delete_job(job_id), texts)


def wait(conn_id: str, job_id: str, texts: Texts) -> None:
    with closing(FineTuningHook(conn_id)) as hook:
        calling(lambda: hook.wait_for_job(job_id, poll_interval=0.05, timeout=1), texts)


def cancel_operator(conn_id: str, job_id: str, texts: Texts) -> None:
    run = Run()
    operator = CancelFineTuningJobOperator(task_id="cancel", job_id=job_id, conn_id=conn_id)
    calling(lambda: run.execute(operator), texts)
    texts.add("XCom", run.ti.xcoms)


def sensor_poke(conn_id: str, job_id: str, texts: Texts) -> None:
    sensor = FineTuningJobSensor(task_id="wait", job_id=job_id, conn_id=conn_id, poke_interval=0.05)
    try:
        calling(lambda: sensor.poke({}), texts)
    finally:
        sensor.hook.close()


def cleanup(conn_id: str, job_id: str, texts: Texts) -> None:
    run = Run()
    operator = CleanupFineTuningJobsOperator(task_id="cleanup", conn_id=conn_id, older_than=timedelta(hours=1))
    calling(lambda: run.execute(operator), texts)
    texts.add("XCom", run.ti.xcoms)


def aget(conn_id: str, job_id: str, texts: Texts) -> None:
    async def read() -> Any:
        hook = FineTuningHook(conn_id)
        async with hook.async_transport() as transport:
            return await hook.aget_job(transport, job_id)

    calling(lambda: asyncio.run(read()), texts)


def trigger(conn_id: str, job_id: str, texts: Texts) -> None:
    fired = FineTuningJobTrigger(conn_id, job_id, poll_interval=0.05, max_consecutive_errors=2)
    texts.add("trigger event", asyncio.run(single_event(fired)))


CASES = [
    Case("get", get),
    Case("list", list_jobs),
    Case("cancel", cancel),
    Case("delete", delete, vendors=("dashscope", "azure")),
    Case("wait_for_job", wait),
    Case("cancel operator", cancel_operator),
    Case("sensor poke", sensor_poke),
    Case("cleanup", cleanup),
    Case("aget_job (async)", aget),
    Case("trigger (async)", trigger),
]


def cells() -> list[Any]:
    return [
        pytest.param(
            case,
            vendor,
            variant,
            id=f"{case.id}-{vendor}-{variant}",
            marks=pytest.mark.reliability(
                area=AREA, row=variant, column=case.id, vendor=vendor, label=f"`echo_key` {variant}"
            ),
        )
        for variant in ECHOES
        for case in CASES
        for vendor in case.vendors
    ]


@pytest.fixture
def echoing(
    echo_server: FineTuningEmulator, canary: str, make_connection: ConnectionFactory
) -> Callable[[str, str], tuple[str, str]]:
    """Seed a running job, make every answer echo the key in ``variant``; the connection id and the job id."""

    def arm(vendor: str, variant: str) -> tuple[str, str]:
        echo_server.reset()
        conn_id = make_connection(
            f"echo_{vendor}", CONN_TYPES[vendor], host=echo_server.url(vendor), password=canary, **EXTRAS
        )
        job_id = echo_server.seed_job(vendor, status=RUNNING[vendor], age=timedelta(hours=2), runs_for=None)
        echo_server.inject(Fault(kind="echo_key", variant=variant, times=ALWAYS))
        return conn_id, job_id

    return arm


@pytest.mark.parametrize(("case", "vendor", "variant"), cells())
def test_an_echoed_key_is_never_repeated(
    case: Case,
    vendor: str,
    variant: str,
    echoing: Callable[[str, str], tuple[str, str]],
    echo_server: FineTuningEmulator,
    canary: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    conn_id, job_id = echoing(vendor, variant)
    caplog.set_level(logging.DEBUG)
    texts = Texts([])

    case.run(conn_id, job_id, texts)

    echoed = [request for request in echo_server.requests if request.fault == "echo_key"]
    assert echoed, "the server echoed the key at least once"
    for record in caplog.records:
        texts.add(f"log record of {record.name}", record.getMessage())
        texts.add(f"log record of {record.name} (args)", repr(record.args))
    output = capfd.readouterr()
    texts.add("stdout", output.out)
    texts.add("stderr", output.err)
    assert texts.hits(canary) == []


@pytest.mark.parametrize("vendor", sorted(CONN_TYPES))
@pytest.mark.parametrize("variant", ECHOES)
@pytest.mark.reliability(area=AREA, row="the server really sends the key (control)", column="raw HTTP")
def test_control_the_server_really_sends_the_key(
    echo_server: FineTuningEmulator, canary: str, vendor: str, variant: str
) -> None:
    echo_server.reset()
    job_id = echo_server.seed_job(vendor, status=RUNNING[vendor], runs_for=None)
    echo_server.inject(Fault(kind="echo_key", variant=variant))
    path = "/fine-tunes/" if vendor in ("dashscope", "together") else "/fine_tuning/jobs/"
    answer = requests.get(
        f"{api_url(echo_server, vendor)}{path}{job_id}", headers={"Authorization": f"Bearer {canary}"}, timeout=5
    )
    decoded = json.loads(answer.text) if answer.headers["content-type"].startswith("application/json") else None
    sent = answer.text + json.dumps(decoded) + json.dumps(dict(answer.headers))
    assert canary in sent


# -- a usable job whose fields carry the key: the job comes through, scrubbed -----------------------------------------

#: Fields whose value must stay as the vendor sent it for the job to be usable (ids, status words, times, kinds).
KEPT_FIELDS = frozenset(
    {"id", "job_id", "status", "object", "create_time", "end_time", "created_at", "finished_at", "updated_at"}
)


def planted(value: Any, key: str, field: str | None = None) -> Any:
    """``value`` with the key appended to every string a job carries, except in ``KEPT_FIELDS``."""
    if isinstance(value, dict):
        return {name: planted(item, key, name) for name, item in value.items()}
    if isinstance(value, list):
        return [planted(item, key, field) for item in value]
    if isinstance(value, str) and field not in KEPT_FIELDS:
        return f"{value} (upstream saw Bearer {key})"
    return value


def usable_job_results(conn_id: str, job_id: str) -> list[tuple[str, Any]]:
    """What each entry point hands on for a finished job: results, XCom values, the trigger's event."""
    sensor = FineTuningJobSensor(task_id="wait", job_id=job_id, conn_id=conn_id, poke_interval=0.05)
    run = Run()
    try:
        poked = sensor.poke({})
    finally:
        sensor.hook.close()
    with closing(FineTuningHook(conn_id)) as hook:
        got = hook.get_job(job_id).to_dict()
        cancelled = hook.cancel_job(job_id).to_dict()
    returned = run.execute(CancelFineTuningJobOperator(task_id="cancel", job_id=job_id, conn_id=conn_id))
    event = asyncio.run(single_event(FineTuningJobTrigger(conn_id, job_id, poll_interval=0.05)))
    return [
        ("get_job", got),
        ("cancel_job", cancelled),
        ("sensor XCom", poked.xcom_value if not isinstance(poked, bool) else None),
        ("cancel operator XCom", {"return_value": returned, **run.ti.xcoms}),
        ("trigger event", event),
    ]


@pytest.mark.parametrize("vendor", sorted(CONN_TYPES))
@pytest.mark.reliability(area=AREA, row="a usable job with the key in its fields", column="every entry point")
def test_a_usable_job_with_the_key_in_its_fields_comes_through_scrubbed(
    echo_server: FineTuningEmulator,
    canary: str,
    make_connection: ConnectionFactory,
    vendor: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    echo_server.reset()
    conn_id = make_connection(
        f"echo_{vendor}", CONN_TYPES[vendor], host=echo_server.url(vendor), password=canary, **EXTRAS
    )
    job_id = echo_server.seed_job(vendor, status=SUCCEEDED[vendor], runs_for=None)
    path = "/fine-tunes/" if vendor in ("dashscope", "together") else "/fine_tuning/jobs/"
    answer = requests.get(
        f"{api_url(echo_server, vendor)}{path}{job_id}", headers={"Authorization": f"Bearer {canary}"}, timeout=5
    ).json()
    body = json.dumps(planted(answer, canary)).encode()
    echo_server.inject(Fault(kind="body", body=body, times=ALWAYS, headers={"x-request-id": f"req-{canary}"}))
    caplog.set_level(logging.DEBUG)

    results = usable_job_results(conn_id, job_id)

    texts = Texts([])
    for place, value in results:
        texts.add(place, value)
    for record in caplog.records:
        texts.add(f"log record of {record.name}", record.getMessage())
    assert texts.hits(canary) == []
    for place, value in results:
        assert job_id in json.dumps(value), f"{place} carries the job"
        assert "Bearer ***" in json.dumps(value), f"{place} carries the planted fields, scrubbed"


# -- the lifecycle endpoints: a create, an upload, the files listing echo the key -----------------------------------

LIFECYCLE_TARGETS = {
    "submit_job": ("POST", lifecycle.CREATE_PATHS),
    "upload_file": ("POST", lifecycle.UPLOAD_PATHS),
    "upload_file's look": ("GET", lifecycle.FILES_PATH),
}


def lifecycle_cells() -> list[Any]:
    return [
        pytest.param(
            column,
            vendor,
            variant,
            id=f"{column}-{vendor}-{variant}",
            marks=pytest.mark.reliability(
                area=AREA, row=variant, column=column, vendor=vendor, label=f"`echo_key` {variant}"
            ),
        )
        for variant in ECHOES
        for column in LIFECYCLE_TARGETS
        for vendor in sorted(CONN_TYPES)
    ]


@pytest.mark.parametrize(("column", "vendor", "variant"), lifecycle_cells())
def test_an_echoed_key_is_never_repeated_by_a_create_or_an_upload(
    column: str,
    vendor: str,
    variant: str,
    echo_server: FineTuningEmulator,
    canary: str,
    make_connection: ConnectionFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    echo_server.reset()
    conn_id = make_connection(
        f"echo_{vendor}", CONN_TYPES[vendor], host=echo_server.url(vendor), password=canary, **EXTRAS
    )
    file_id = echo_server.seed_file(vendor, "seeded.jsonl", (json.dumps(lifecycle.RECORD) + "\n").encode())
    method, paths = LIFECYCLE_TARGETS[column]
    path = paths[vendor] if isinstance(paths, dict) else paths
    echo_server.inject(Fault(kind="echo_key", variant=variant, method=method, path=path, times=ALWAYS))
    caplog.set_level(logging.DEBUG)
    texts = Texts([])

    with closing(FineTuningHook(conn_id)) as hook:
        if column == "submit_job":
            spec = lifecycle.spec_for(vendor, file_id)
            calling(lambda: hook.submit_job(spec, lifecycle.IDENTITY, settle_delays=(0.0,)).job, texts)
        else:
            local = hook.check_training_file(lifecycle.write_training_file(tmp_path), lifecycle.spec_for(vendor))
            calling(lambda: hook.upload_file(local, settle_delays=(0.0,)), texts)

    assert [request for request in echo_server.requests if request.fault == "echo_key"], "the key was echoed"
    for record in caplog.records:
        texts.add(f"log record of {record.name}", record.getMessage())
        texts.add(f"log record of {record.name} (args)", repr(record.args))
    output = capfd.readouterr()
    texts.add("stdout", output.out)
    texts.add("stderr", output.err)
    assert texts.hits(canary) == []
    assert echo_server.jobs(vendor) == [], "an echoed answer made no job"
    assert len(echo_server.files(vendor)) == 1, "and no file but the seeded one"
