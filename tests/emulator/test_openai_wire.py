"""OpenAI dialect over real HTTP; every body is checked against the contract in tests/contracts/."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import requests

from airflow_provider_ft_emulator import FineTuningEmulator
from tests.emulator.conftest import TRAINING_JSONL

JOB_ID_RE = re.compile(r"^ftjob-[A-Za-z0-9]{24}$")


def test_create_answers_validating_job(
    emulator: FineTuningEmulator, oa: str, http: requests.Session, openai_contract
) -> None:
    file_id = emulator.seed_file("openai", "train.jsonl", TRAINING_JSONL)
    body = {
        "model": "gpt-4o-mini",
        "training_file": file_id,
        "suffix": "nightly",
        "metadata": {"team": "search"},
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
    }
    response = http.post(f"{oa}/fine_tuning/jobs", json=body)
    assert response.status_code == 200
    job = openai_contract(response)
    assert JOB_ID_RE.match(job["id"])
    assert job["status"] == "validating_files"
    assert job["metadata"] == {"team": "search"}
    assert job["hyperparameters"]["n_epochs"] == 2
    assert job["user_provided_suffix"] == "nightly"
    assert job["training_file"] == file_id
    assert job["finished_at"] is None
    assert job["fine_tuned_model"] is None
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-4o-mini"}, "training_file"),
        ({"training_file": "file-1"}, "model"),
        ({"model": "gpt-4o-mini", "training_file": 7}, "training_file"),
        ({"model": "gpt-4o-mini", "training_file": "f", "metadata": {"a": 1}}, "metadata"),
        ({"model": "gpt-4o-mini", "training_file": "f", "method": {"type": "magic"}}, "method.type"),
    ],
)
def test_create_rejects_bad_bodies(
    oa: str, http: requests.Session, openai_contract, body: dict[str, object], param: str
) -> None:
    response = http.post(f"{oa}/fine_tuning/jobs", json=body)
    assert response.status_code == 400
    error = openai_contract(response)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_malformed_json_is_invalid_request(oa: str, http: requests.Session, openai_contract) -> None:
    response = http.post(f"{oa}/fine_tuning/jobs", data=b'{"model": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "could not parse the JSON body" in openai_contract(response)["error"]["message"]


def test_list_pages_with_after_newest_first(
    emulator: FineTuningEmulator, oa: str, http: requests.Session, openai_contract
) -> None:
    ids = [emulator.seed_job("openai", age=timedelta(minutes=100 - i)) for i in range(45)]
    seen: list[str] = []
    after: str | None = None
    pages = []
    while True:
        params: dict[str, str | int] = {} if after is None else {"after": after}
        page = openai_contract(http.get(f"{oa}/fine_tuning/jobs", params=params))
        pages.append((len(page["data"]), page["has_more"]))
        seen += [job["id"] for job in page["data"]]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert pages == [(20, True), (20, True), (5, False)]
    assert seen == list(reversed(ids))


def test_list_limit_and_metadata_filters(
    emulator: FineTuningEmulator, oa: str, http: requests.Session, openai_contract
) -> None:
    a_ids = emulator.seed_jobs("openai", 3, metadata={"team": "a"})
    emulator.seed_jobs("openai", 2, metadata={"team": "b"})
    bare = emulator.seed_job("openai")
    page = openai_contract(http.get(f"{oa}/fine_tuning/jobs", params={"limit": 2, "metadata[team]": "a"}))
    assert [job["id"] for job in page["data"]] == list(reversed(a_ids))[:2]
    assert page["has_more"] is True
    none = openai_contract(http.get(f"{oa}/fine_tuning/jobs", params={"metadata": "null"}))
    assert [job["id"] for job in none["data"]] == [bare]


@pytest.mark.parametrize(("limit", "code"), [(0, "integer_below_min_value"), (101, "integer_above_max_value")])
def test_list_rejects_out_of_range_limit(
    oa: str, http: requests.Session, openai_contract, limit: int, code: str
) -> None:
    response = http.get(f"{oa}/fine_tuning/jobs", params={"limit": limit})
    assert response.status_code == 400
    error = openai_contract(response)["error"]
    assert (error["param"], error["code"]) == ("limit", code)


@pytest.mark.parametrize("status", ["validating_files", "queued", "running", "succeeded", "failed", "cancelled"])
def test_retrieve_every_known_status_matches_the_contract(
    emulator: FineTuningEmulator, oa: str, http: requests.Session, openai_contract, status: str
) -> None:
    job_id = emulator.seed_job("openai", status=status, age=timedelta(hours=2), runs_for=None)
    job = openai_contract(http.get(f"{oa}/fine_tuning/jobs/{job_id}"))
    assert job == emulator.job("openai", job_id)
    assert job["status"] == status
    assert (job["finished_at"] is not None) == (status in {"succeeded", "failed", "cancelled"})


def test_running_and_finished_job_fields(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    job_id = emulator.seed_job("openai", status="running", name="nightly", runs_for=timedelta(minutes=10))
    running = http.get(f"{oa}/fine_tuning/jobs/{job_id}").json()
    assert running["estimated_finish"] == pytest.approx(emulator.now() + 600, abs=5)
    assert running["trained_tokens"] is None
    assert running["metadata"] == {"name": "nightly"}
    emulator.advance(601)
    done = http.get(f"{oa}/fine_tuning/jobs/{job_id}").json()
    assert done["status"] == "succeeded"
    assert re.match(r"^ft:gpt-4o-mini-2024-07-18:emulator:nightly:[A-Za-z0-9]{8}$", done["fine_tuned_model"])
    assert isinstance(done["trained_tokens"], int)
    assert done["estimated_finish"] == 0  # as OpenAI's retrieveFineTuningJob example answers a succeeded job
    assert done["result_files"]


def test_failed_job_has_error_object(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    job_id = emulator.seed_job("openai", status="running", runs_for=60, outcome="failed", error="bad rows")
    emulator.advance(61)
    job = http.get(f"{oa}/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "failed"
    assert job["error"] == {"code": "job_failed", "message": "bad rows", "param": None}


def test_seed_name_does_not_override_given_metadata_name(emulator: FineTuningEmulator) -> None:
    job = emulator.job("openai", emulator.seed_job("openai", name="suffix", metadata={"name": "mine", "k": "v"}))
    assert job is not None
    assert job["metadata"] == {"name": "mine", "k": "v"}
    assert job["user_provided_suffix"] == "suffix"


def test_unknown_job_is_404(oa: str, http: requests.Session, openai_contract) -> None:
    for method, suffix in (("GET", ""), ("POST", "/cancel"), ("POST", "/pause"), ("GET", "/events")):
        response = http.request(method, f"{oa}/fine_tuning/jobs/ftjob-missing{suffix}")
        assert response.status_code == 404
        assert openai_contract(response)["error"]["code"] == "fine_tune_not_found"


@pytest.mark.parametrize("status", ["validating_files", "queued", "running", "paused", "mystery"])
def test_cancel_in_flight_job(
    emulator: FineTuningEmulator, oa: str, http: requests.Session, openai_contract, status: str
) -> None:
    job_id = emulator.seed_job("openai", status=status, runs_for=None)
    job = openai_contract(http.post(f"{oa}/fine_tuning/jobs/{job_id}/cancel"))
    assert job["status"] == "cancelled"
    assert job["finished_at"] is not None


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_cancel_finished_job_is_400(
    emulator: FineTuningEmulator, oa: str, http: requests.Session, openai_contract, status: str
) -> None:
    job_id = emulator.seed_job("openai", status=status, age=3600)
    response = http.post(f"{oa}/fine_tuning/jobs/{job_id}/cancel")
    assert response.status_code == 400
    error = openai_contract(response)["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_state")
    assert emulator.job("openai", job_id)["status"] == status  # type: ignore[index]


def test_pause_and_resume(emulator: FineTuningEmulator, oa: str, http: requests.Session, openai_contract) -> None:
    job_id = emulator.seed_job("openai", status="running", runs_for=100)
    emulator.advance(40)
    paused = openai_contract(http.post(f"{oa}/fine_tuning/jobs/{job_id}/pause"), allow_paused=True)
    assert paused["status"] == "paused"
    emulator.advance(10_000)
    assert emulator.job("openai", job_id)["status"] == "paused"  # type: ignore[index]
    assert http.post(f"{oa}/fine_tuning/jobs/{job_id}/pause").status_code == 400
    resumed = openai_contract(http.post(f"{oa}/fine_tuning/jobs/{job_id}/resume"))
    assert resumed["status"] == "queued"
    emulator.advance(5 + 59)
    assert emulator.job("openai", job_id)["status"] == "running"  # type: ignore[index]
    emulator.advance(2)
    assert emulator.job("openai", job_id)["status"] == "succeeded"  # type: ignore[index]
    assert http.post(f"{oa}/fine_tuning/jobs/{job_id}/resume").status_code == 400


def test_events_page_newest_first(
    emulator: FineTuningEmulator, oa: str, http: requests.Session, openai_contract
) -> None:
    job_id = emulator.seed_job("openai", status="queued", runs_for=60)
    emulator.advance(100)
    events = openai_contract(http.get(f"{oa}/fine_tuning/jobs/{job_id}/events"))
    messages = [event["message"] for event in events["data"]]
    assert messages[0] == "The job has successfully completed"
    assert messages[-1] == f"Created fine-tuning job: {job_id}"
    assert events["has_more"] is False
    first = openai_contract(http.get(f"{oa}/fine_tuning/jobs/{job_id}/events", params={"limit": 2}))
    rest = openai_contract(
        http.get(f"{oa}/fine_tuning/jobs/{job_id}/events", params={"after": first["data"][-1]["id"]})
    )
    assert first["has_more"] is True
    assert first["data"] + rest["data"] == events["data"]


def test_checkpoints(emulator: FineTuningEmulator, oa: str, http: requests.Session, openai_contract) -> None:
    done = emulator.seed_job("openai", status="succeeded", age=7200)
    running = emulator.seed_job("openai", status="running")
    page = openai_contract(http.get(f"{oa}/fine_tuning/jobs/{done}/checkpoints", params={"limit": 2}))
    assert [c["step_number"] for c in page["data"]] == [300, 200]
    assert (page["first_id"], page["last_id"], page["has_more"]) == (page["data"][0]["id"], page["data"][1]["id"], True)
    assert all(c["fine_tuning_job_id"] == done for c in page["data"])
    empty = openai_contract(http.get(f"{oa}/fine_tuning/jobs/{running}/checkpoints"))
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


def test_there_is_no_delete_route(
    emulator: FineTuningEmulator, oa: str, http: requests.Session, openai_contract
) -> None:
    job_id = emulator.seed_job("openai", status="succeeded", age=60)
    response = http.delete(f"{oa}/fine_tuning/jobs/{job_id}")
    assert response.status_code == 404
    assert openai_contract(response)["error"]["message"] == f"Invalid URL (DELETE /v1/fine_tuning/jobs/{job_id})"
    assert emulator.job("openai", job_id) is not None


def test_unknown_path_is_invalid_url(oa: str, http: requests.Session, openai_contract) -> None:
    response = http.get(f"{oa}/models")
    assert response.status_code == 404
    assert openai_contract(response)["error"]["message"] == "Invalid URL (GET /v1/models)"


@pytest.mark.off_contract("a status word no document has, served on purpose")
def test_unknown_status_is_served_verbatim(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    job_id = emulator.seed_job("openai", status="archived", runs_for=1)
    emulator.advance(3600)
    assert http.get(f"{oa}/fine_tuning/jobs/{job_id}").json()["status"] == "archived"
