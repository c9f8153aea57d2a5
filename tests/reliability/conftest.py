"""Shared pieces of the reliability suite: a server that never answers, triggers, hypothesis counts.

Every test of the suite carries ``@pytest.mark.reliability(area=..., row=..., column=..., vendor=...)``; the report
of their outcomes is written by ``tests/reliability/report.py``.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger

#: Only a trigger that hangs comes near this; it keeps a broken test from stalling the suite.
TRIGGER_GUARD_SECONDS = 30.0


# -- servers and triggers --------------------------------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Port of a socket that listens but never accepts, reads or answers: connections succeed, answers never come."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


async def single_event(trigger: FineTuningJobTrigger) -> dict[str, Any]:
    """The payload of the one event ``trigger`` fires (it must fire exactly one, of plain JSON)."""
    async with asyncio.timeout(TRIGGER_GUARD_SECONDS):
        events = [event async for event in trigger.run()]
    assert len(events) == 1, f"a trigger fires exactly one event, this one fired {events!r}"
    payload = dict(events[0].payload)
    json.dumps(payload)
    return payload


# -- hypothesis examples ----------------------------------------------------------------------------------------------


@dataclass
class ExampleCounter:
    """Counts the examples of a hypothesis test that ran to their end; the count goes to the report."""

    count: int = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def examples(request: pytest.FixtureRequest) -> Iterator[ExampleCounter]:
    counter = ExampleCounter()
    yield counter
    request.node.user_properties.append(("examples", counter.count))
