"""The request log and the connection counter."""

from __future__ import annotations

import dataclasses

import pytest
import requests

from airflow_provider_ft_emulator import FineTuningEmulator, RecordedRequest
from tests.emulator.conftest import TRAINING_JSONL


def test_records_what_was_sent(emulator: FineTuningEmulator, ds: str, oa: str, http: requests.Session) -> None:
    file_id = emulator.seed_file("dashscope", "train.jsonl", TRAINING_JSONL)
    http.post(
        f"{ds}/fine-tunes",
        json={"model": "qwen-turbo", "training_file_ids": [file_id]},
        headers={"X-DashScope-WorkSpace": "ws-1"},
    )
    http.get(
        f"{oa}/fine_tuning/jobs",
        params={"limit": 5, "metadata[team]": "a"},
        headers={"OpenAI-Organization": "org-1", "OpenAI-Project": "proj-1"},
    )
    create, listing = emulator.requests
    assert (create.vendor, create.method, create.path, create.status) == ("dashscope", "POST", "/fine-tunes", 200)
    assert create.body == {"model": "qwen-turbo", "training_file_ids": [file_id]}
    assert create.headers["x-dashscope-workspace"] == "ws-1"
    assert create.headers["content-type"] == "application/json"
    assert (listing.vendor, listing.method, listing.path, listing.body) == ("openai", "GET", "/fine_tuning/jobs", None)
    assert listing.query == {"limit": "5", "metadata[team]": "a"}
    assert listing.headers["openai-organization"] == "org-1"
    assert listing.headers["openai-project"] == "proj-1"
    assert all(name == name.lower() for r in (create, listing) for name in r.headers)
    assert all("authorization" not in r.headers for r in (create, listing))
    assert (create.authorized, listing.authorized, create.fault) == (True, True, None)


def test_paths_are_relative_to_the_mount(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    job_id = emulator.seed_job("dashscope")
    http.post(f"{ds}/fine-tunes/{job_id}/cancel")
    http.get(f"http://127.0.0.1:{emulator.port}/elsewhere")
    cancel, elsewhere = emulator.requests
    assert cancel.path == f"/fine-tunes/{job_id}/cancel"
    assert (elsewhere.vendor, elsewhere.path, elsewhere.status) == (None, "/elsewhere", 404)


def test_non_json_body_is_recorded_as_none(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    http.post(f"{oa}/fine_tuning/jobs", data=b"not json")
    assert emulator.requests[-1].body is None
    assert emulator.requests[-1].status == 400


def test_log_is_an_ordered_frozen_copy(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    for page in range(1, 4):
        http.get(f"{ds}/fine-tunes", params={"page_no": page})
    snapshot = emulator.requests
    assert [r.query["page_no"] for r in snapshot] == ["1", "2", "3"]
    snapshot.clear()
    assert len(emulator.requests) == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        emulator.requests[0].status = 500  # type: ignore[misc]
    assert isinstance(emulator.requests[0], RecordedRequest)
    emulator.clear_requests()
    assert emulator.requests == []


def test_keep_alive_session_uses_one_connection(emulator: FineTuningEmulator, ds: str, oa: str) -> None:
    before = emulator.connections_opened
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {emulator.api_key}"
        statuses = [
            session.get(f"{url}{path}").status_code
            for url, path in [(ds, "/fine-tunes"), (oa, "/fine_tuning/jobs")] * 2
        ]
        statuses.append(session.get(f"{ds}/fine-tunes").status_code)
    assert statuses == [200] * 5
    assert emulator.connections_opened - before == 1


def test_separate_requests_open_separate_connections(emulator: FineTuningEmulator, ds: str) -> None:
    before = emulator.connections_opened
    for _ in range(3):
        with requests.Session() as session:
            session.get(f"{ds}/fine-tunes")
    assert emulator.connections_opened - before == 3
