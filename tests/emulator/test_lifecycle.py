"""Seeding, the emulated clock, and how jobs advance when read (mostly through the Python API)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from airflow_provider_ft_emulator.clock import Clock
from airflow_provider_ft_emulator.store import QUEUE_SECONDS


class FakeMonotonic:
    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


def test_clock_scales_real_time_and_adds_advances() -> None:
    source = FakeMonotonic()
    clock = Clock(time_scale=60, monotonic=source)
    start = clock.now()
    source.value += 2
    assert clock.now() - start == pytest.approx(120)
    clock.advance(30)
    assert clock.now() - start == pytest.approx(150)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


@pytest.mark.parametrize(
    ("vendor", "queued", "running", "done"),
    [("dashscope", "PENDING", "RUNNING", "SUCCEEDED"), ("openai", "validating_files", "running", "succeeded")],
)
def test_queued_job_runs_then_succeeds(
    emulator: FineTuningEmulator, vendor: str, queued: str, running: str, done: str
) -> None:
    job_id = emulator.seed_job(vendor, status=queued, runs_for=timedelta(minutes=10))
    assert emulator.job(vendor, job_id)["status"] == queued  # type: ignore[index]
    emulator.advance(QUEUE_SECONDS + 1)
    assert emulator.job(vendor, job_id)["status"] == running  # type: ignore[index]
    emulator.advance(600)
    assert emulator.job(vendor, job_id)["status"] == done  # type: ignore[index]


@pytest.mark.parametrize(("vendor", "failed"), [("dashscope", "FAILED"), ("openai", "failed")])
def test_outcome_failed(emulator: FineTuningEmulator, vendor: str, failed: str) -> None:
    job_id = emulator.seed_job(vendor, runs_for=10, outcome="failed", error="out of memory")
    emulator.advance(11)
    job = emulator.job(vendor, job_id)
    assert job is not None
    assert job["status"] == failed
    assert "out of memory" in str(job)


@pytest.mark.parametrize(("vendor", "status"), [("dashscope", "RUNNING"), ("openai", "running")])
def test_runs_for_none_never_finishes(emulator: FineTuningEmulator, vendor: str, status: str) -> None:
    job_id = emulator.seed_job(vendor, status=status, age=timedelta(days=3), runs_for=None)
    emulator.advance(10 * 86_400)
    assert emulator.job(vendor, job_id)["status"] == status  # type: ignore[index]


def test_age_sets_creation_time(emulator: FineTuningEmulator) -> None:
    job_id = emulator.seed_job("openai", age=timedelta(hours=5))
    job = emulator.job("openai", job_id)
    assert job is not None
    assert job["created_at"] == pytest.approx(emulator.now() - 5 * 3600, abs=2)


@pytest.mark.parametrize(("age", "runs_for", "ran"), [(3600, 600, 600), (300, 600, 300), (900, None, 900)])
def test_terminal_seed_finishes_after_min_of_age_and_runs_for(
    emulator: FineTuningEmulator, age: float, runs_for: float | None, ran: float
) -> None:
    job = emulator.job("openai", emulator.seed_job("openai", status="succeeded", age=age, runs_for=runs_for))
    assert job is not None
    assert job["finished_at"] - job["created_at"] == pytest.approx(ran, abs=1)


def test_explicit_job_id_and_defaults(emulator: FineTuningEmulator) -> None:
    assert emulator.seed_job("dashscope", job_id="ft-202410291653-a1b2") == "ft-202410291653-a1b2"
    job = emulator.job("dashscope", "ft-202410291653-a1b2")
    assert job is not None
    assert (job["status"], job["model"]) == ("RUNNING", "qwen-turbo")
    oa_job = emulator.job("openai", emulator.seed_job("openai"))
    assert oa_job is not None
    assert (oa_job["status"], oa_job["model"], oa_job["metadata"]) == ("running", "gpt-4o-mini-2024-07-18", None)


def test_seed_jobs_and_jobs_newest_first(emulator: FineTuningEmulator) -> None:
    old = emulator.seed_jobs("openai", 3, age=timedelta(days=1))
    new = emulator.seed_jobs("openai", 2)
    assert len(set(old + new)) == 5
    assert [job["id"] for job in emulator.jobs("openai")] == list(reversed(new)) + list(reversed(old))
    with pytest.raises(ValueError, match="job_id"):
        emulator.seed_jobs("openai", 2, job_id="ftjob-same")


def test_job_returns_none_for_unknown(emulator: FineTuningEmulator) -> None:
    assert emulator.job("dashscope", "ft-nope") is None
    assert emulator.job("openai", "ftjob-nope") is None


@pytest.mark.parametrize(
    "kwargs", [{"vendor": "acme"}, {"vendor": "openai", "outcome": "maybe"}, {"vendor": "openai", "age": -5}]
)
def test_seed_rejects_bad_arguments(emulator: FineTuningEmulator, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        emulator.seed_job(**kwargs)  # type: ignore[arg-type]


def test_seeded_canceling_settles_after_cancel_delay() -> None:
    with FineTuningEmulator(api_key="k" * 16, cancel_delay=20) as emu:
        job_id = emu.seed_job("dashscope", status="CANCELING")
        assert emu.job("dashscope", job_id)["status"] == "CANCELING"  # type: ignore[index]
        emu.advance(21)
        job = emu.job("dashscope", job_id)
        assert job is not None
        assert job["status"] == "CANCELED"
        assert job["end_time"]


def test_reset_drops_jobs_faults_and_requests(emulator: FineTuningEmulator, ds: str) -> None:
    emulator.seed_job("dashscope")
    emulator.inject(Fault("status", status=500))
    requests.get(f"{ds}/fine-tunes")
    emulator.reset()
    assert (emulator.jobs("dashscope"), emulator.requests) == ([], [])
    assert requests.get(f"{ds}/fine-tunes", headers={"Authorization": f"Bearer {emulator.api_key}"}).status_code == 200


def test_many_dashscope_jobs_in_one_minute_get_distinct_ids(emulator: FineTuningEmulator) -> None:
    ids = emulator.seed_jobs("dashscope", 2000)
    assert len(set(ids)) == 2000
    assert len(emulator.jobs("dashscope")) == 2000


def test_unknown_timezone_fails_fast() -> None:
    with pytest.raises(KeyError):
        FineTuningEmulator(dashscope_timezone="Mars/Olympus_Mons")
