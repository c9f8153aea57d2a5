"""Training progress: OpenAI ``metrics`` events and DashScope figure log lines, one per tenth of the run, that
appear as the emulated clock advances, keep their ids and places, and pause with the job."""

from __future__ import annotations

from typing import Any

import requests

from airflow_provider_ft_emulator import FineTuningEmulator
from tests.emulator.conftest import dashscope_lines


def events(http: requests.Session, oa: str, job_id: str) -> list[dict[str, Any]]:
    page = http.get(f"{oa}/fine_tuning/jobs/{job_id}/events", params={"limit": 100}).json()
    assert page["has_more"] is False
    return list(page["data"])


def metrics(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in items if event["type"] == "metrics"]


def logs(http: requests.Session, ds: str, job_id: str) -> list[str]:
    output = http.get(f"{ds}/fine-tunes/{job_id}/logs", params={"line": 1000}).json()["output"]
    lines = dashscope_lines(output)
    assert output["total"] == len(lines)
    return lines


def test_openai_metrics_events_grow_with_the_clock(
    emulator: FineTuningEmulator, oa: str, http: requests.Session, openai_contract: Any
) -> None:
    job_id = emulator.seed_job("openai", status="running", runs_for=100)
    assert metrics(events(http, oa, job_id)) == []
    emulator.advance(35)
    early = events(http, oa, job_id)
    assert [e["data"]["step"] for e in metrics(early)] == [30, 20, 10]
    newest = early[0]
    assert newest["type"] == "metrics"
    assert newest["message"] == f"Step 30/100: training loss={newest['data']['train_loss']}"
    assert set(newest["data"]) == {"step", "total_steps", "train_loss", "train_mean_token_accuracy"}
    assert newest["data"]["total_steps"] == 100
    assert newest["level"] == "info"
    assert newest["id"].startswith("ftevent-")
    assert abs(newest["created_at"] - (emulator.now() - 5)) <= 1
    openai_contract(http.get(f"{oa}/fine_tuning/jobs/{job_id}/events"))
    emulator.advance(100)
    late = events(http, oa, job_id)
    assert late[-len(early) :] == early, "older events keep their ids and places; the list grows at its new end"
    assert [e["data"]["step"] for e in metrics(late)] == list(range(100, 0, -10))
    losses = [e["data"]["train_loss"] for e in reversed(metrics(late))]
    assert losses == sorted(losses, reverse=True), "the loss falls"
    assert late[0]["message"] == "The job has successfully completed"
    times = [e["created_at"] for e in late]
    assert times == sorted(times, reverse=True)


def test_metrics_pause_with_the_job(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    job_id = emulator.seed_job("openai", status="running", runs_for=100)
    emulator.advance(45)
    assert http.post(f"{oa}/fine_tuning/jobs/{job_id}/pause").status_code == 200
    emulator.advance(1000)
    paused = events(http, oa, job_id)
    assert [e["data"]["step"] for e in metrics(paused)] == [40, 30, 20, 10], "no progress while paused"
    assert http.post(f"{oa}/fine_tuning/jobs/{job_id}/resume").status_code == 200
    emulator.advance(5 + 20)  # queued 5 s, then 20 s more running: 65 of 100 s run
    resumed = events(http, oa, job_id)
    assert [e["data"]["step"] for e in metrics(resumed)] == [60, 50, 40, 30, 20, 10]
    assert resumed[-len(paused) :] == paused
    emulator.advance(40)
    done = events(http, oa, job_id)
    assert [e["data"]["step"] for e in metrics(done)] == list(range(100, 0, -10))
    assert emulator.job("openai", job_id)["status"] == "succeeded"  # type: ignore[index]


def test_seeded_jobs_show_the_progress_they_have_made(
    emulator: FineTuningEmulator, oa: str, ds: str, http: requests.Session
) -> None:
    halfway = emulator.seed_job("openai", status="running", age=50, runs_for=50)
    assert [e["data"]["step"] for e in metrics(events(http, oa, halfway))] == [50, 40, 30, 20, 10]
    forever = emulator.seed_job("openai", status="running", age=500, runs_for=None)
    assert metrics(events(http, oa, forever)) == [], "a job with no run length reports no steps"
    done = emulator.seed_job("dashscope", status="SUCCEEDED", age=3600, runs_for=600)
    assert len([line for line in logs(http, ds, done) if "'step': " in line]) == 10


def test_dashscope_log_lines_grow_with_the_clock(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    job_id = emulator.seed_job("dashscope", status="RUNNING", runs_for=200)
    assert [line.split(" ", 2)[2] for line in logs(http, ds, job_id)] == [f"job {job_id} status RUNNING"]
    emulator.advance(65)
    early = logs(http, ds, job_id)
    assert [line.rsplit("'step': ", 1)[1] for line in early[1:]] == ["10}", "20}", "30}"]
    assert all(line.startswith("{'loss': ") for line in early[1:])
    emulator.advance(200)
    late = logs(http, ds, job_id)
    assert late[: len(early)] == early, "the log only grows at its end, so offsets stay valid"
    assert len(late) == 12
    assert late[-2].endswith("'epoch': 1.0, 'step': 100}")
    assert late[-1].endswith("status SUCCEEDED")
