"""Small hardening: forged log lines, unbounded warnings, and arguments no wait can use.

- A server puts line breaks, carriage returns and terminal escapes in the text it controls (status words, names,
  error messages, models): no log line of the provider carries them raw, so none can forge a line of its own.
- A server sends a new unknown status word on every answer: the provider warns about a bounded number of them.
- ``wait_for_job``, the sensor and the trigger refuse NaN, infinite, zero or negative intervals and timeouts with
  ``FineTuningConfigError`` before any request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from contextlib import closing
from typing import Any

import pytest
import requests

from airflow_provider_ft.exceptions import FineTuningConfigError, FineTuningError, FineTuningJobFailed
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.sensors.fine_tuning import FineTuningJobSensor
from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
from airflow_provider_ft.vendors import base
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.conftest import API_KEY, CONN_TYPES, ConnectionFactory, api_url
from tests.operators.conftest import FAILED, RUNNING
from tests.reliability.conftest import single_event

AREA = "small hardening"
ALWAYS = 1_000
EXTRAS = {"timeout": 2, "max_retries": 1, "backoff_base": 0.01}
PATHS = {
    "dashscope": "/fine-tunes",
    "openai": "/fine_tuning/jobs",
    "azure": "/fine_tuning/jobs",
    "together": "/fine-tunes",
}
#: Text a forged line would start with; it must never begin a line of its own.
FORGED = "FORGED [error] job ft-other: CANCELLED by admin"
CONTROLS = ("\n", "\r", "\x1b", "\x00", "\u2028")
#: Where a server's text goes in each vendor's job (the status word, the name, the model, the error message).
TEXT_FIELDS = {
    "dashscope": ("job_name", "model", "message", "finetuned_output"),
    "openai": ("user_provided_suffix", "model", "fine_tuned_model"),
    "azure": ("suffix", "model", "fine_tuned_model"),
    "together": ("suffix", "model", "model_output_name"),
}
FORGERY = f"\n{FORGED}\r\n\x1b[2K{FORGED}\u2028{FORGED}"


def real_answer(emulator: FineTuningEmulator, vendor: str, job_id: str) -> dict[str, Any]:
    url = f"{api_url(emulator, vendor)}{PATHS[vendor]}/{job_id}"
    answer: dict[str, Any] = requests.get(url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5).json()
    return answer


def forged_answer(vendor: str, answer: dict[str, Any], *, in_status: bool) -> bytes:
    """The job with every text field (and the status word, ``in_status``) ending in a forged log line."""
    job = answer["output"] if vendor == "dashscope" else answer
    for name in (*TEXT_FIELDS[vendor], *(["status"] if in_status else [])):
        job[name] = f"{job.get(name) or 'x'}{FORGERY}"
    if vendor in ("openai", "azure"):
        job["error"] = {"code": "bad\ncode", "message": f"boom{FORGERY}", "param": None}
    if vendor == "together":
        # A failed job's reason is its last error event; the same body answers the events request (its "data").
        event = {"object": "fine-tune-event", "type": "job_error", "level": "error", "message": f"boom{FORGERY}"}
        job["events"] = job["data"] = [event]
    return json.dumps(answer).encode()


def poll_sync(conn_id: str, job_id: str) -> None:
    with closing(FineTuningHook(conn_id)) as hook:
        hook.get_job(job_id).log_progress(hook.log)
        with contextlib.suppress(FineTuningError):  # however the wait ends, its log lines are what is checked
            hook.wait_for_job(job_id, poll_interval=0.05, timeout=0.3)


def sensor_poke(conn_id: str, job_id: str) -> None:
    sensor = FineTuningJobSensor(task_id="wait", job_id=job_id, conn_id=conn_id, poke_interval=0.05)
    try:
        sensor.poke({})
    except FineTuningJobFailed as failed:  # what Airflow logs when the task fails
        logging.getLogger("airflow.task").error("Task failed: %s", failed)
    finally:
        sensor.hook.close()


def trigger_poll(conn_id: str, job_id: str) -> None:
    trigger = FineTuningJobTrigger(conn_id, job_id, poll_interval=0.05, deadline=time.time() + 0.5)
    asyncio.run(single_event(trigger))


FORGING_CALLS: dict[str, Callable[[str, str], None]] = {
    "get_job + wait_for_job": poll_sync,
    "sensor poke": sensor_poke,
    "trigger (async)": trigger_poll,
}


@pytest.mark.parametrize(
    ("status", "vendor", "column"),
    [
        pytest.param(
            status,
            vendor,
            column,
            id=f"{status}-{vendor}-{column}",
            marks=pytest.mark.reliability(
                area=AREA, row=f"control characters in a {status} job's text", column=column, vendor=vendor
            ),
        )
        for status in ("running", "failed", "unknown word")
        for vendor in sorted(CONN_TYPES)
        for column in sorted(FORGING_CALLS)
    ],
)
def test_server_text_cannot_forge_a_log_line(
    emulator: FineTuningEmulator,
    make_connection: ConnectionFactory,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    vendor: str,
    column: str,
    status: str,
) -> None:
    conn_id = make_connection(f"forge_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), **EXTRAS)
    seeded = {"running": RUNNING, "failed": FAILED}.get(status, RUNNING)[vendor]
    job_id = emulator.seed_job(vendor, status=seeded, runs_for=None)
    body = forged_answer(vendor, real_answer(emulator, vendor, job_id), in_status=status == "unknown word")
    emulator.inject(Fault(kind="body", body=body, method="GET", times=ALWAYS))
    caplog.set_level(logging.DEBUG)

    FORGING_CALLS[column](conn_id, job_id)

    output = capfd.readouterr()
    records = [record.getMessage() for record in caplog.records]
    written = (output.out + output.err).splitlines()
    assert any("FORGED" in text for text in records + written), "the server's text was logged, so the check bites"
    for text in records:
        for control in CONTROLS:
            assert control not in text, f"{control!r} reached a log record: {text!r}"
    for line in written:
        assert not line.lstrip().startswith("FORGED"), f"a server forged a line of output: {line!r}"
        assert "\x1b" not in line, f"an escape sequence reached the output: {line!r}"
        assert "\u2028" not in line, f"a line separator reached the output: {line!r}"


@pytest.mark.parametrize("vendor", sorted(CONN_TYPES))
@pytest.mark.reliability(area=AREA, row="a new unknown status word on every answer", column="get_job x 40")
def test_unknown_status_warnings_are_bounded(
    emulator: FineTuningEmulator,
    make_connection: ConnectionFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    vendor: str,
) -> None:
    limit = 5
    warnings = base.UnknownStatusWarnings(limit=limit)
    monkeypatch.setattr(base, "_unknown_statuses", warnings)
    conn_id = make_connection(f"words_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), **EXTRAS)
    job_id = emulator.seed_job(vendor, status=RUNNING[vendor], runs_for=None)
    answer = real_answer(emulator, vendor, job_id)
    job = answer["output"] if vendor == "dashscope" else answer
    words = [f"WORD_{index}" for index in range(40)]
    for word in words:
        job["status"] = word
        emulator.inject(Fault(kind="body", body=json.dumps(answer).encode(), method="GET"))

    with closing(FineTuningHook(conn_id)) as hook:
        statuses = {hook.get_job(job_id).vendor_status for _ in words}

    assert statuses == set(words), "every answer carried a word never seen before"
    warned = [r.getMessage() for r in caplog.records if r.name == base.log.name and r.levelno == logging.WARNING]
    assert len(warned) == limit + 1, warned
    assert "further unknown words" in warned[-1]
    assert len(warnings._seen) == limit


NOT_SECONDS = [math.nan, math.inf, -math.inf, 0, -1, "10", True]


def wait_with(conn_id: str, **arguments: Any) -> None:
    with closing(FineTuningHook(conn_id)) as hook:
        hook.wait_for_job("ft-0123", **arguments)


REFUSERS: dict[str, Callable[[str, object], object]] = {
    "wait_for_job poll_interval": lambda conn_id, value: wait_with(conn_id, poll_interval=value),
    "wait_for_job timeout": lambda conn_id, value: wait_with(conn_id, poll_interval=1, timeout=value),
    "sensor poll_interval": lambda conn_id, value: FineTuningJobSensor(
        task_id="wait", job_id="ft-0123", conn_id=conn_id, poke_interval=value
    ),
    "trigger poll_interval": lambda conn_id, value: FineTuningJobTrigger(conn_id, "ft-0123", poll_interval=value),  # type: ignore[arg-type]
}


@pytest.mark.parametrize(
    ("entry", "value"),
    [
        pytest.param(
            entry,
            value,
            id=f"{entry}-{value!r}",
            marks=pytest.mark.reliability(area=AREA, row=f"{entry} = {value!r}", column="refused before any request"),
        )
        for entry in sorted(REFUSERS)
        for value in NOT_SECONDS
    ],
)
def test_arguments_no_wait_can_use_are_refused_before_any_request(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, entry: str, value: object
) -> None:
    conn_id = make_connection("args_dashscope", "dashscope", host=emulator.url("dashscope"), **EXTRAS)
    with pytest.raises(FineTuningConfigError, match="seconds"):
        REFUSERS[entry](conn_id, value)
    assert emulator.requests == []
