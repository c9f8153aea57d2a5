"""FineTuningHook.pause_job and resume_job against the emulator over loopback HTTP (OpenAI; DashScope has no pause)."""

from __future__ import annotations

import pytest

from airflow_provider_ft.exceptions import (
    FineTuningApiError,
    InvalidJobIdError,
    JobNotFoundError,
    UnsupportedOperationError,
)
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.jobs import JobStatus
from airflow_provider_ft.vendors.dashscope import DashScopeDialect
from airflow_provider_ft.vendors.openai import OpenAIDialect
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.conftest import FAST_RETRIES, ConnectionFactory

PAUSE_PATH = "/fine_tuning/jobs/{}/pause"
RESUME_PATH = "/fine_tuning/jobs/{}/resume"


@pytest.fixture
def openai(emulator: FineTuningEmulator, make_connection: ConnectionFactory) -> str:
    return make_connection("oa", "openaifinetuning", host=emulator.url("openai"), **FAST_RETRIES)


@pytest.fixture
def dashscope(emulator: FineTuningEmulator, make_connection: ConnectionFactory) -> str:
    return make_connection("ds", "dashscope", host=emulator.url("dashscope"), **FAST_RETRIES)


def posts(emulator: FineTuningEmulator) -> list[str]:
    return [request.path for request in emulator.requests if request.method == "POST"]


# -- the dialects (pure) ----------------------------------------------------------------------------------------------


def test_openai_builds_pause_and_resume_requests() -> None:
    dialect = OpenAIDialect()
    assert dialect.supports_pause
    pause, resume = dialect.pause_job("ftjob-1"), dialect.resume_job("ftjob-1")
    assert (pause.operation, pause.method, pause.path, pause.job_id) == (
        "pause",
        "POST",
        PAUSE_PATH.format("ftjob-1"),
        "ftjob-1",
    )
    assert (resume.operation, resume.method, resume.path) == ("resume", "POST", RESUME_PATH.format("ftjob-1"))
    assert pause.is_mutating
    assert resume.is_mutating


def test_dashscope_cannot_pause_or_resume() -> None:
    dialect = DashScopeDialect()
    assert not dialect.supports_pause
    for build in (dialect.pause_job, dialect.resume_job):
        with pytest.raises(UnsupportedOperationError, match="cancel it instead"):
            build("ft-1")
    with pytest.raises(UnsupportedOperationError, match="DashScope"):
        dialect.ensure_can_pause()


def test_openai_paused_word_is_paused_and_not_terminal() -> None:
    assert OpenAIDialect().job_status("paused") is JobStatus.PAUSED
    assert DashScopeDialect().job_status("SUSPENDED") is JobStatus.PAUSED
    assert not JobStatus.PAUSED.is_terminal


# -- pause --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["running", "queued", "validating_files"])
def test_pause_a_running_or_queued_job(emulator: FineTuningEmulator, openai: str, status: str) -> None:
    job_id = emulator.seed_job("openai", status=status)
    job = FineTuningHook(openai).pause_job(job_id)
    assert job.id == job_id
    assert job.status is JobStatus.PAUSED
    assert job.vendor_status == "paused"
    assert not job.is_terminal
    assert emulator.job("openai", job_id)["status"] == "paused"  # type: ignore[index]
    assert posts(emulator) == [PAUSE_PATH.format(job_id)]
    assert [request.method for request in emulator.requests] == ["GET", "POST"], "read first, then pause"


def test_pause_twice_sends_one_pause(emulator: FineTuningEmulator, openai: str) -> None:
    job_id = emulator.seed_job("openai", status="running")
    hook = FineTuningHook(openai)
    first, second = hook.pause_job(job_id), hook.pause_job(job_id)
    assert first.status is second.status is JobStatus.PAUSED
    assert posts(emulator) == [PAUSE_PATH.format(job_id)]


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_pause_leaves_a_terminal_job_untouched(emulator: FineTuningEmulator, openai: str, status: str) -> None:
    job_id = emulator.seed_job("openai", status=status)
    job = FineTuningHook(openai).pause_job(job_id)
    assert job.vendor_status == status
    assert job.is_terminal
    assert posts(emulator) == []
    assert emulator.job("openai", job_id)["status"] == status  # type: ignore[index]


def test_pause_of_a_missing_job_is_job_not_found(emulator: FineTuningEmulator, openai: str) -> None:
    with pytest.raises(JobNotFoundError, match="ftjob-missing-1"):
        FineTuningHook(openai).pause_job("ftjob-missing-1")
    assert posts(emulator) == []


def test_pause_whose_answer_was_lost_is_retried_safely(emulator: FineTuningEmulator, openai: str) -> None:
    job_id = emulator.seed_job("openai", status="running")
    emulator.inject(Fault(kind="lose_response", method="POST", times=1))
    job = FineTuningHook(openai).pause_job(job_id)
    assert job.status is JobStatus.PAUSED
    lost, retried = (request for request in emulator.requests if request.method == "POST")
    assert lost.status == 0, "the first pause did its work but its answer was lost"
    assert retried.status == 400, "the retried pause was refused (already paused) and confirmed with a read"
    assert emulator.requests[-1].method == "GET"
    assert emulator.job("openai", job_id)["status"] == "paused"  # type: ignore[index]


def test_pause_refused_for_another_reason_is_raised(emulator: FineTuningEmulator, openai: str) -> None:
    job_id = emulator.seed_job("openai", status="running")
    emulator.inject(Fault(kind="status", status=400, method="POST", times=1))
    with pytest.raises(FineTuningApiError) as raised:
        FineTuningHook(openai).pause_job(job_id)
    assert raised.value.http_status == 400
    assert emulator.job("openai", job_id)["status"] == "running"  # type: ignore[index]


# -- resume -------------------------------------------------------------------------------------------------------


def test_resume_a_paused_job(emulator: FineTuningEmulator, openai: str) -> None:
    job_id = emulator.seed_job("openai", status="running")
    hook = FineTuningHook(openai)
    hook.pause_job(job_id)
    job = hook.resume_job(job_id)
    assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    assert not job.is_terminal
    assert posts(emulator) == [PAUSE_PATH.format(job_id), RESUME_PATH.format(job_id)]


@pytest.mark.parametrize("status", ["running", "queued", "succeeded", "failed", "cancelled"])
def test_resume_of_a_job_that_is_not_paused_returns_it_as_is(
    emulator: FineTuningEmulator, openai: str, status: str
) -> None:
    job_id = emulator.seed_job("openai", status=status)
    job = FineTuningHook(openai).resume_job(job_id)
    assert job.vendor_status == status
    assert posts(emulator) == []


def test_resume_twice_sends_one_resume(emulator: FineTuningEmulator, openai: str) -> None:
    job_id = emulator.seed_job("openai", status="paused")
    hook = FineTuningHook(openai)
    first, second = hook.resume_job(job_id), hook.resume_job(job_id)
    assert first.status is second.status is JobStatus.QUEUED
    assert posts(emulator) == [RESUME_PATH.format(job_id)]


def test_resume_whose_answer_was_lost_is_retried_safely(emulator: FineTuningEmulator, openai: str) -> None:
    job_id = emulator.seed_job("openai", status="paused")
    emulator.inject(Fault(kind="lose_response", method="POST", times=1))
    job = FineTuningHook(openai).resume_job(job_id)
    assert job.status is JobStatus.QUEUED
    assert [request.status for request in emulator.requests if request.method == "POST"] == [0, 400]
    assert emulator.requests[-1].method == "GET"


def test_resume_of_a_missing_job_is_job_not_found(emulator: FineTuningEmulator, openai: str) -> None:
    with pytest.raises(JobNotFoundError, match="ftjob-missing-2"):
        FineTuningHook(openai).resume_job("ftjob-missing-2")


# -- refused before any request -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["pause_job", "resume_job"])
def test_dashscope_is_unsupported_before_any_request(emulator: FineTuningEmulator, dashscope: str, method: str) -> None:
    job_id = emulator.seed_job("dashscope", status="RUNNING")
    with pytest.raises(UnsupportedOperationError, match="DashScope API has no way to pause"):
        getattr(FineTuningHook(dashscope), method)(job_id)
    assert emulator.requests == []
    assert emulator.job("dashscope", job_id)["status"] == "RUNNING"  # type: ignore[index]


@pytest.mark.parametrize("method", ["pause_job", "resume_job"])
@pytest.mark.parametrize("job_id", ["", "../other", "a/b", "x" * 200, None])
def test_bad_job_id_is_refused_before_any_request(
    emulator: FineTuningEmulator, openai: str, method: str, job_id: object
) -> None:
    with pytest.raises(InvalidJobIdError):
        getattr(FineTuningHook(openai), method)(job_id)
    assert emulator.requests == []
