"""FineTuningJobTrigger against the emulator over loopback HTTP, on both vendors, with pytest-asyncio."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_provider_ft.exceptions import FineTuningConfigError
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.transport import AsyncTransport
from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.airflow_versions import import_string, serde_round_trip

if TYPE_CHECKING:
    from tests.conftest import ConnectionFactory, Vendor

RUNNING = {"dashscope": "RUNNING", "openai": "running", "azure": "running", "together": "running"}
SUCCEEDED = {"dashscope": "SUCCEEDED", "openai": "succeeded", "azure": "succeeded", "together": "completed"}
CANCELLED = {"dashscope": "CANCELED", "openai": "cancelled", "azure": "cancelled", "together": "cancelled"}
FAST_POLL = 0.05
#: Only a trigger that hangs, or blocks the loop, comes near this; it keeps a broken test from stalling the suite.
GUARD_SECONDS = 15


async def fire(trigger: FineTuningJobTrigger) -> list[Any]:
    """Every event the trigger fires, until its generator ends."""
    async with asyncio.timeout(GUARD_SECONDS):
        return [event async for event in trigger.run()]


async def only_event(trigger: FineTuningJobTrigger) -> dict[str, Any]:
    events = await fire(trigger)
    assert len(events) == 1, f"a trigger must fire exactly one event, fired {events!r}"
    payload = events[0].payload
    json.dumps(payload)  # the triggerer stores it: it must be plain JSON
    assert payload["status"] in ("success", "timeout", "error")
    return dict(payload)


def gets_of(emulator: FineTuningEmulator, job_id: str) -> int:
    return sum(1 for request in emulator.requests if request.method == "GET" and request.path.endswith("/" + job_id))


def soon(seconds: float = 10.0) -> float:
    return time.time() + seconds


def attempts_per_poll(conn_id: str) -> int:
    """Requests one poll sends at most: the first attempt and the connection's retries."""
    return FineTuningHook(conn_id).settings.retry.max_retries + 1


# -- serialization --------------------------------------------------------------------------------------------


def test_serialize_round_trips() -> None:
    trigger = FineTuningJobTrigger("ft_conn", "ft-123", poll_interval=12.5, deadline=1_900_000_000.25)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_ft.triggers.fine_tuning.FineTuningJobTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    again = import_string(classpath)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert (again.conn_id, again.job_id, again.poll_interval, again.deadline) == (
        "ft_conn",
        "ft-123",
        12.5,
        1.9e9 + 0.25,
    )


def test_serialize_round_trips_through_airflow_serde() -> None:
    # Exactly what the task runner does on defer (serde) and the triggerer on load.
    trigger = FineTuningJobTrigger("ft_conn", "ftjob-abc", poll_interval=30, deadline=None, max_consecutive_errors=3)
    classpath, kwargs = trigger.serialize()
    again = FineTuningJobTrigger(**serde_round_trip(kwargs))
    assert again.serialize() == (classpath, kwargs)


def test_serialize_keeps_log_events() -> None:
    _, kwargs = FineTuningJobTrigger("ft_conn", "ft-1").serialize()
    assert kwargs["log_events"] is True
    _, kwargs = FineTuningJobTrigger("ft_conn", "ft-1", log_events=False).serialize()
    assert kwargs["log_events"] is False
    assert FineTuningJobTrigger(**serde_round_trip(kwargs)).log_events is False


def test_serialize_keeps_the_events_cursor() -> None:
    _, kwargs = FineTuningJobTrigger("ft_conn", "ft-1", events_after="ftevent-7").serialize()
    assert FineTuningJobTrigger(**serde_round_trip(kwargs)).events_after == "ftevent-7"


@pytest.mark.parametrize("cursor", [7, "x" * 201, ["ftevent-7"]])
def test_an_unusable_events_cursor_is_refused(cursor: object) -> None:
    with pytest.raises(FineTuningConfigError, match="events_after"):
        FineTuningJobTrigger("ft_conn", "ft-1", events_after=cursor)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": -1}, "poll_interval"),
        ({"poll_interval": float("nan")}, "poll_interval"),
        ({"poll_interval": "60"}, "poll_interval"),
        ({"deadline": float("inf")}, "deadline"),
        ({"deadline": "tomorrow"}, "deadline"),
        ({"max_consecutive_errors": 0}, "max_consecutive_errors"),
        ({"max_consecutive_errors": True}, "max_consecutive_errors"),
    ],
)
def test_rejects_unusable_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FineTuningJobTrigger("ft_conn", "ft-1", **kwargs)


async def test_trigger_recreated_from_serialize_runs(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=0.2)
    classpath, kwargs = FineTuningJobTrigger(connection, job_id, FAST_POLL, soon()).serialize()
    recreated = import_string(classpath)(**serde_round_trip(kwargs))
    event = await only_event(recreated)
    assert event["status"] == "success"
    assert event["job"]["status"] == "SUCCEEDED"


# -- outcomes ---------------------------------------------------------------------------------------------------


async def test_success_after_polling(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=0.3)
    event = await only_event(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon()))
    assert event["status"] == "success"
    assert event["job_id"] == job_id
    assert event["conn_id"] == connection
    assert event["job"]["id"] == job_id
    assert event["job"]["vendor"] == vendor.name
    assert event["job"]["status"] == "SUCCEEDED"
    assert event["job"]["fine_tuned_model"]
    assert "error" not in event
    assert gets_of(emulator, job_id) >= 2, "the job was running at first: the trigger must have polled again"
    assert all(request.authorized for request in emulator.requests)


async def test_failed_job_is_a_terminal_event_with_the_vendor_message(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(
        vendor.name, status=RUNNING[vendor.name], runs_for=0.1, outcome="failed", error="Training loss diverged"
    )
    event = await only_event(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon()))
    # The trigger reports the terminal job; whether FAILED is acceptable is the task's decision.
    assert event["status"] == "success"
    assert event["job"]["status"] == "FAILED"
    assert "Training loss diverged" in event["job"]["error"]


async def test_cancelled_job_fires_at_once(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    job_id = emulator.seed_job(vendor.name, status=CANCELLED[vendor.name], runs_for=60)
    event = await only_event(FineTuningJobTrigger(connection, job_id, 60, soon()))
    assert event["status"] == "success"
    assert event["job"]["status"] == "CANCELLED"
    assert gets_of(emulator, job_id) == 1


async def test_timeout_reports_the_last_job_seen(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    event = await only_event(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon(0.4)))
    assert event["status"] == "timeout"
    assert event["job"]["status"] == "RUNNING"
    assert job_id in event["message"]
    assert gets_of(emulator, job_id) >= 2


@pytest.mark.off_contract("a status word no document has, served on purpose")
async def test_unknown_status_keeps_waiting_until_the_deadline(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status="REVIEWING_BY_HUMAN")
    event = await only_event(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon(0.4)))
    assert event["status"] == "timeout"
    assert event["job"]["status"] == "UNKNOWN"
    assert event["job"]["vendor_status"] == "REVIEWING_BY_HUMAN"
    assert gets_of(emulator, job_id) >= 2


async def test_deadline_already_passed_still_looks_once(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    # A trigger re-created after a long triggerer outage: one last look, then the verdict.
    running = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    done = emulator.seed_job(vendor.name, status=SUCCEEDED[vendor.name])
    assert (await only_event(FineTuningJobTrigger(connection, running, 60, time.time() - 30)))["status"] == "timeout"
    assert (await only_event(FineTuningJobTrigger(connection, done, 60, time.time() - 30)))["status"] == "success"
    assert gets_of(emulator, running) == 1
    assert gets_of(emulator, done) == 1


# -- errors -------------------------------------------------------------------------------------------------------


async def test_missing_job_is_an_error_event(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    event = await only_event(FineTuningJobTrigger(connection, "ft-does-not-exist-1", FAST_POLL, soon()))
    assert event["status"] == "error"
    assert event["job"] is None
    assert event["error"]["type"] == "JobNotFoundError"
    assert event["error"]["http_status"] == 404
    assert event["error"]["retryable"] is False
    assert "ft-does-not-exist-1" in event["message"]
    assert len(emulator.requests) == 1, "a missing job is not retried"


async def test_rejected_key_is_an_error_event(
    emulator: FineTuningEmulator, vendor: Vendor, make_connection: ConnectionFactory
) -> None:
    conn_id = make_connection("ft_bad_key", vendor.conn_type, host=emulator.url(vendor.name), password="sk-wrong")
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    event = await only_event(FineTuningJobTrigger(conn_id, job_id, FAST_POLL, soon()))
    assert event["status"] == "error"
    assert event["error"]["http_status"] == 401
    assert "sk-wrong" not in json.dumps(event)
    assert len(emulator.requests) == 1


async def test_missing_connection_is_an_error_event(emulator: FineTuningEmulator) -> None:
    event = await only_event(FineTuningJobTrigger("ft_no_such_connection", "ft-1", FAST_POLL, soon()))
    assert event["status"] == "error"
    assert "ft_no_such_connection" in event["message"]
    assert emulator.requests == []


async def test_invalid_job_id_is_an_error_event(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    event = await only_event(FineTuningJobTrigger(connection, "../admin", FAST_POLL, soon()))
    assert event["status"] == "error"
    assert event["error"]["type"] == "InvalidJobIdError"
    assert emulator.requests == []


async def test_transient_errors_are_retried_across_polls(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=SUCCEEDED[vendor.name])
    # More failures in a row than one poll's retries: the first poll fails, the second gets through.
    emulator.inject(Fault(kind="status", status=503, times=attempts_per_poll(connection) + 2))
    event = await only_event(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon()))
    assert event["status"] == "success"
    assert event["job"]["status"] == "SUCCEEDED"
    assert gets_of(emulator, job_id) == attempts_per_poll(connection) + 3


async def test_lasting_outage_ends_at_the_deadline(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    emulator.inject(Fault(kind="status", status=503, times=100_000))
    event = await only_event(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon(0.5)))
    assert event["status"] == "timeout"
    assert event["job"] is None
    assert gets_of(emulator, job_id) > attempts_per_poll(connection), (
        "transient errors are polled through until the deadline"
    )


async def test_lasting_outage_gives_up_after_max_consecutive_errors(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    emulator.inject(Fault(kind="status", status=503, times=100_000))
    trigger = FineTuningJobTrigger(connection, job_id, FAST_POLL, deadline=None, max_consecutive_errors=2)
    event = await only_event(trigger)
    assert event["status"] == "error"
    assert event["error"]["http_status"] == 503
    assert event["error"]["retryable"] is True
    assert "2 polls in a row" in event["message"]
    assert gets_of(emulator, job_id) == 2 * attempts_per_poll(connection)


async def test_a_hanging_request_cannot_outlive_the_deadline(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    # The connection's read timeout (2 s) x 4 attempts would hold one poll for 8 s; the deadline cuts it short.
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    emulator.inject(Fault(kind="hang", times=100))
    async with asyncio.timeout(4):
        event = await only_event(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon(0.3)))
    assert event["status"] == "timeout"


# -- lifecycle ----------------------------------------------------------------------------------------------------


async def test_one_client_and_one_connection_for_the_whole_wait(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[AsyncTransport] = []
    closed: list[AsyncTransport] = []
    real_init, real_aclose = AsyncTransport.__init__, AsyncTransport.aclose

    def spy_init(self: AsyncTransport, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        opened.append(self)

    async def spy_aclose(self: AsyncTransport) -> None:
        closed.append(self)
        await real_aclose(self)

    monkeypatch.setattr(AsyncTransport, "__init__", spy_init)
    monkeypatch.setattr(AsyncTransport, "aclose", spy_aclose)
    connections_before = emulator.connections_opened
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=0.3)
    await only_event(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon()))
    assert gets_of(emulator, job_id) >= 3
    assert len(opened) == 1
    assert closed == opened, "the HTTP client is closed before the event is fired"
    assert emulator.connections_opened - connections_before == 1, "polls reuse one keep-alive connection"


async def test_cancelled_trigger_stops_quietly_and_closes_its_client(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[AsyncTransport] = []
    real_aclose = AsyncTransport.aclose

    async def spy_aclose(self: AsyncTransport) -> None:
        closed.append(self)
        await real_aclose(self)

    monkeypatch.setattr(AsyncTransport, "aclose", spy_aclose)
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    # What the triggerer does when the task is cleared or the trigger moves to another triggerer.
    task = asyncio.create_task(fire(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon())))
    while gets_of(emulator, job_id) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(closed) == 1


# -- the event loop -------------------------------------------------------------------------------------------------

TRIGGERS = 200
LATENCY = 0.1


async def test_many_triggers_never_block_the_event_loop(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TRIGGERS triggers at once against a slow emulator: every request is in flight together, and none of them
    (nor any wait) goes through a blocking call. How long the loop lags is measured in benchmarks/, not here."""
    job_ids = emulator.seed_jobs(vendor.name, TRIGGERS, status=RUNNING[vendor.name], runs_for=1.0)
    emulator.inject(Fault(kind="latency", delay=LATENCY, times=1_000_000))
    blocking: list[str] = []

    def refuse(name: str) -> Any:
        def called(*args: Any, **kwargs: Any) -> Any:
            blocking.append(name)
            raise AssertionError(f"a trigger called the blocking {name}")

        return called

    monkeypatch.setattr(time, "sleep", refuse("time.sleep"))
    monkeypatch.setattr(requests.Session, "send", refuse("requests.Session.send"))
    in_flight = peak = 0
    real_send = AsyncTransport.send

    async def counted(self: AsyncTransport, *args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await real_send(self, *args, **kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(AsyncTransport, "send", counted)
    events = await asyncio.gather(
        *(fire(FineTuningJobTrigger(connection, job_id, 0.1, soon(60))) for job_id in job_ids)
    )
    for job_id, fired in zip(job_ids, events, strict=True):
        assert len(fired) == 1
        assert fired[0].payload["status"] == "success", fired[0].payload
        assert fired[0].payload["job"]["id"] == job_id
    assert blocking == []
    assert len(emulator.requests) >= TRIGGERS
    assert peak > TRIGGERS // 2, "the triggers' requests were not in flight together"
