"""Shared pieces of the reliability suite: a server that never answers, triggers, hypothesis counts, the report.

Every test of the suite carries ``@pytest.mark.reliability(area=..., row=..., column=..., vendor=...)``. When the
environment variable ``FT_RELIABILITY_REPORT`` names a file, the outcome of each test that ran is written there as
JSON at the end of the session; ``scripts/reliability_report.py`` turns it into the README's Reliability section.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger

REPORT_ENV = "FT_RELIABILITY_REPORT"
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


# -- the report plugin ------------------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "reliability(area, row, column, vendor=None, label=None, expect=None): a case of the reliability report",
    )


@dataclass
class CaseRecord:
    """One test of the suite as the report shows it."""

    nodeid: str
    area: str
    row: str
    column: str
    vendor: str | None
    label: str
    expect: str
    outcome: str = "passed"
    duration: float = 0.0
    properties: dict[str, Any] = field(default_factory=dict)


_records: dict[str, CaseRecord] = {}


def _record_for(item: pytest.Item) -> CaseRecord:
    record = _records.get(item.nodeid)
    if record is None:
        marker = item.get_closest_marker("reliability")
        info: dict[str, Any] = dict(marker.kwargs) if marker else {"area": "unclassified", "row": item.name}
        record = CaseRecord(
            nodeid=item.nodeid,
            area=str(info["area"]),
            row=str(info["row"]),
            column=str(info.get("column") or "-"),
            vendor=info.get("vendor"),
            label=str(info.get("label") or info["row"]),
            expect=str(info.get("expect") or ""),
        )
        _records[item.nodeid] = record
    return record


def _phase_outcome(report: pytest.TestReport) -> str | None:
    """The test's outcome as this phase decides it (``None``: this phase does not change it)."""
    if report.failed:
        return "failed" if report.when == "call" else "error"
    if report.skipped:
        return "xfailed" if hasattr(report, "wasxfail") else "skipped"
    if report.when == "call" and hasattr(report, "wasxfail"):
        return "xpassed"
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    if os.environ.get(REPORT_ENV):
        record = _record_for(item)
        record.duration += report.duration
        outcome = _phase_outcome(report)
        if outcome is not None and record.outcome in ("passed", "xfailed", "xpassed"):
            record.outcome = outcome
        if hasattr(report, "wasxfail"):
            record.properties["xfail_reason"] = report.wasxfail
        if report.when == "teardown":
            record.properties.update(item.user_properties)
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get(REPORT_ENV)
    if not target:
        return
    import airflow

    document = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "airflow": airflow.__version__,
        "exitstatus": int(exitstatus),
        "tests": [asdict(record) for record in _records.values()],
    }
    Path(target).write_text(json.dumps(document, indent=1, default=str))
