"""``CapacityWaitTrigger``: sleeps until the next create may be sent, sends nothing, fires one event."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_provider_ft._text import ELLIPSIS
from airflow_provider_ft.capacity import CapacityWait
from airflow_provider_ft.exceptions import FineTuningConfigError, FineTuningError
from airflow_provider_ft.triggers.capacity import MAX_REASON_LENGTH, CapacityWaitTrigger
from airflow_provider_ft_emulator import FineTuningEmulator

WAIT = CapacityWait(since=1_800_000_000.0, until=1_800_000_600.0, recheck=30.0)


def fire(trigger: CapacityWaitTrigger) -> Any:
    async def first() -> Any:
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first())


def test_it_round_trips_through_serialize() -> None:
    trigger = CapacityWaitTrigger(conn_id="ft_openai", wake_at=1_800_000_030.0, wait=WAIT.to_dict(), reason="full")
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_ft.triggers.capacity.CapacityWaitTrigger"
    assert CapacityWaitTrigger(**kwargs).serialize() == (path, kwargs)


def test_it_fires_the_wait_back_to_the_task_and_sends_nothing(
    emulator: FineTuningEmulator, make_connection: Any
) -> None:
    make_connection("ft_openai", "openaifinetuning", host=emulator.url("openai"))
    trigger = CapacityWaitTrigger(conn_id="ft_openai", wake_at=time.time(), wait=WAIT.to_dict(), reason="at\nlimit")
    payload = fire(trigger)
    assert payload["status"] == "capacity"
    assert payload["conn_id"] == "ft_openai"
    assert CapacityWait.from_event(payload) == WAIT
    assert "at\\nlimit" in payload["message"]
    assert emulator.requests == []


def test_a_long_reason_is_cut() -> None:
    trigger = CapacityWaitTrigger(conn_id="c", wake_at=0.0, wait=WAIT.to_dict(), reason="x" * 10_000)
    reason = trigger.serialize()[1]["reason"]
    assert reason.endswith(ELLIPSIS)
    assert len(reason) == MAX_REASON_LENGTH + len(ELLIPSIS)


@pytest.mark.parametrize("wake_at", [None, "soon", float("nan"), True])
def test_a_wake_time_that_is_no_time_is_refused(wake_at: object) -> None:
    with pytest.raises(FineTuningConfigError):
        CapacityWaitTrigger(conn_id="c", wake_at=wake_at, wait=WAIT.to_dict())  # type: ignore[arg-type]


def test_a_wait_that_is_no_wait_is_refused() -> None:
    with pytest.raises(FineTuningError):
        CapacityWaitTrigger(conn_id="c", wake_at=0.0, wait={"since": 1.0})
