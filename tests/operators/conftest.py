"""Helpers for the operator tests: running an operator's ``execute`` with a recording task instance."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_ft_emulator import FineTuningEmulator, RecordedRequest
from tests.conftest import API_KEY

RUNNING = {"dashscope": "RUNNING", "openai": "running", "azure": "running", "together": "running"}
QUEUED = {"dashscope": "PENDING", "openai": "queued", "azure": "pending", "together": "queued"}
SUCCEEDED = {"dashscope": "SUCCEEDED", "openai": "succeeded", "azure": "succeeded", "together": "completed"}
FAILED = {"dashscope": "FAILED", "openai": "failed", "azure": "failed", "together": "error"}
CANCELLED = {"dashscope": "CANCELED", "openai": "cancelled", "azure": "cancelled", "together": "cancelled"}
CANCELLING = {"dashscope": "CANCELING"}


@dataclass
class RecordingTaskInstance:
    """Stands in for ``context["ti"]``: keeps what the operator pushes to XCom."""

    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


@dataclass
class TaskInstance(RecordingTaskInstance):
    """``context["ti"]`` of one task instance: the ids a create operator's job identity is made of, and its XComs."""

    dag_id: str = "ft_test_create"
    task_id: str = "train"
    run_id: str = "manual__2026-12-02"
    map_index: int = -1

    def xcom_pull(self, key: str) -> Any:
        return self.xcoms.get(key)


@dataclass
class Run:
    """One call of ``operator.execute`` and what it pushed."""

    ti: RecordingTaskInstance = field(default_factory=RecordingTaskInstance)

    @property
    def context(self) -> Any:
        return {"ti": self.ti}

    def execute(self, operator: Any) -> Any:
        return operator.execute(self.context)


@pytest.fixture
def run() -> Run:
    return Run()


def mutating(requests: list[RecordedRequest]) -> list[RecordedRequest]:
    """The requests that could change a job (anything but GET/HEAD)."""
    return [request for request in requests if request.method not in ("GET", "HEAD")]


def acted_id(request: RecordedRequest) -> str:
    """The job id a cancel (``POST .../<id>/cancel``) or a delete (``DELETE .../<id>``) request acts on."""
    parts = request.path.rstrip("/").split("/")
    return parts[-2] if parts[-1] == "cancel" else parts[-1]


def acted_ids(requests: list[RecordedRequest]) -> set[str]:
    """Job ids of cancel and delete requests."""
    return {acted_id(request) for request in mutating(requests)}


def status_of(emulator: FineTuningEmulator, vendor: str, job_id: str) -> str | None:
    job = emulator.job(vendor, job_id)
    if job is None:
        return None
    return str(job["status"])


@pytest.fixture(scope="module")
def slow_cancel_emulator() -> Iterator[FineTuningEmulator]:
    """An emulator where DashScope stays CANCELING for 1.5 s after a cancel (OpenAI cancels at once)."""
    with FineTuningEmulator(api_key=API_KEY, cancel_delay=1.5) as server:
        yield server


@pytest.fixture
def slow_emulator(slow_cancel_emulator: FineTuningEmulator) -> Iterator[FineTuningEmulator]:
    slow_cancel_emulator.reset()
    yield slow_cancel_emulator
    slow_cancel_emulator.reset()
