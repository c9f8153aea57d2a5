"""The reliability report: the outcome of each test marked ``reliability``, written as JSON at the end of the session.

When the environment variable ``FT_RELIABILITY_REPORT`` names a file, the outcome of each test that ran is written
there; ``scripts/reliability_report.py`` turns it into the README's Reliability section. A plugin of the whole suite
(``tests/conftest.py``), so that with pytest-xdist the controller, which receives every worker's reports but loads
no conftest below ``tests/``, writes it: the marker travels in each report's user properties.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

REPORT_ENV = "FT_RELIABILITY_REPORT"


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
#: The user property that carries a test's ``reliability`` marker to the process that writes the report (with
#: pytest-xdist, the workers run the tests and the controller receives their reports).
_CASE = "reliability_case"


def _record_for(report: pytest.TestReport) -> CaseRecord | None:
    properties = dict(report.user_properties)
    info = properties.get(_CASE)
    if info is None:
        return None
    record = _records.get(report.nodeid)
    if record is None:
        record = CaseRecord(
            nodeid=report.nodeid,
            area=str(info["area"]),
            row=str(info["row"]),
            column=str(info.get("column") or "-"),
            vendor=info.get("vendor"),
            label=str(info.get("label") or info["row"]),
            expect=str(info.get("expect") or ""),
        )
        _records[report.nodeid] = record
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


#: The suite whose tests the report counts (as the conftest of that folder did when the report lived there).
_SUITE = Path(__file__).parent


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not os.environ.get(REPORT_ENV) or _SUITE not in Path(item.path).parents:
        return
    if not any(name == _CASE for name, _ in item.user_properties):
        marker = item.get_closest_marker("reliability")
        info: dict[str, Any] = dict(marker.kwargs) if marker else {"area": "unclassified", "row": item.name}
        item.user_properties.append((_CASE, {key: str(value) for key, value in info.items() if value is not None}))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not os.environ.get(REPORT_ENV):
        return
    record = _record_for(report)
    if record is None:
        return
    record.duration += report.duration
    outcome = _phase_outcome(report)
    if outcome is not None and record.outcome in ("passed", "xfailed", "xpassed"):
        record.outcome = outcome
    if hasattr(report, "wasxfail"):
        record.properties["xfail_reason"] = report.wasxfail
    if report.when == "teardown":
        record.properties.update((name, value) for name, value in report.user_properties if name != _CASE)


#: Where each test stands in the collection: the report lists records in that order, whichever process ran them.
_collection_order: dict[str, int] = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    _remember_order(item.nodeid for item in session.items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: object, ids: list[str]) -> None:
    _remember_order(ids)


def _remember_order(nodeids: Iterable[str]) -> None:
    if not _collection_order:
        _collection_order.update((nodeid, index) for index, nodeid in enumerate(nodeids))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get(REPORT_ENV)
    if not target or hasattr(session.config, "workerinput"):  # an xdist worker: the controller writes it
        return
    import airflow

    document = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "airflow": airflow.__version__,
        "exitstatus": int(exitstatus),
        "tests": [asdict(record) for record in sorted(_records.values(), key=_place)],
    }
    Path(target).write_text(json.dumps(document, indent=1, default=str))


def _place(record: CaseRecord) -> int:
    return _collection_order.get(record.nodeid, len(_collection_order))
