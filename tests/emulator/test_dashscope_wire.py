"""DashScope dialect over real HTTP: envelopes, job fields, pagination, state rules, bad input."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from airflow_provider_ft_emulator import FineTuningEmulator
from airflow_provider_ft_emulator.state import LogsForm
from tests.emulator.conftest import TRAINING_JSONL, dashscope_lines

TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
JOB_ID_RE = re.compile(r"^ft-\d{12}-[0-9a-f]{4}$")


def test_create_answers_pending_job_in_envelope(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    file_id = emulator.seed_file("dashscope", "train.jsonl", TRAINING_JSONL)
    body = {
        "model": "qwen-turbo",
        "training_file_ids": [file_id],
        "hyper_parameters": {"n_epochs": 2},
        "training_type": "efficient_sft",
        "model_name": "my-qwen",
    }
    response = http.post(f"{ds}/fine-tunes", json=body, headers={"X-DashScope-WorkSpace": "ws-42"})
    assert response.status_code == 200
    envelope = response.json()
    assert set(envelope) == {"request_id", "output"}
    assert envelope["request_id"] == response.headers["x-request-id"]
    job = envelope["output"]
    assert JOB_ID_RE.match(job["job_id"])
    assert job["status"] == "PENDING"
    assert job["model"] == job["base_model"] == "qwen-turbo"
    assert job["training_file_ids"] == [file_id]
    assert job["hyper_parameters"] == {"n_epochs": 2}
    assert job["training_type"] == "efficient_sft"
    assert job["workspace_id"] == "ws-42"
    assert TIME_RE.match(job["create_time"])
    assert "end_time" not in job
    assert "finetuned_output" not in job
    assert job["job_name"] == job["job_id"]  # no job_name: the reference names the job after its id


def test_create_takes_the_references_job_name_and_output_suffix(
    emulator: FineTuningEmulator, ds: str, http: requests.Session
) -> None:
    # The reference ("Create a fine-tuning job", 2026): job_name, the job's name; finetuned_output_suffix, which the
    # produced model's name carries (its get example: qwen3-14b-suffix-ft-202410291653-1c7f).
    file_id = emulator.seed_file("dashscope", "train.jsonl", TRAINING_JSONL)
    body = {"model": "qwen-turbo", "training_file_ids": [file_id], "job_name": "af-tag", "finetuned_output_suffix": "x"}
    created = http.post(f"{ds}/fine-tunes", json=body).json()["output"]
    assert created["job_name"] == "af-tag"
    emulator.advance(3600)
    job = http.get(f"{ds}/fine-tunes/{created['job_id']}").json()["output"]
    assert (job["status"], job["finetuned_output"]) == ("SUCCEEDED", f"qwen-turbo-x-{created['job_id']}")


def test_get_serves_the_same_job_as_the_python_view(
    emulator: FineTuningEmulator, ds: str, http: requests.Session
) -> None:
    job_id = emulator.seed_job("dashscope", status="RUNNING", age=timedelta(hours=5), name="nightly-sft")
    response = http.get(f"{ds}/fine-tunes/{job_id}")
    assert response.status_code == 200
    output = response.json()["output"]
    assert output == emulator.job("dashscope", job_id)
    assert output["job_name"] == "nightly-sft"
    assert output["status"] == "RUNNING"


def test_create_time_is_a_zone_less_string_in_the_configured_zone(
    emulator: FineTuningEmulator, ds: str, http: requests.Session
) -> None:
    job_id = emulator.seed_job("dashscope", status="SUCCEEDED", age=timedelta(hours=3), runs_for=timedelta(hours=1))
    job = http.get(f"{ds}/fine-tunes/{job_id}").json()["output"]
    assert TIME_RE.match(job["create_time"])
    assert TIME_RE.match(job["end_time"])
    created = datetime.strptime(job["create_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    ended = datetime.strptime(job["end_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    assert abs(created.timestamp() - (emulator.now() - 3 * 3600)) < 5
    assert ended - created == timedelta(hours=1)


def test_list_pages_newest_first(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    ids = [emulator.seed_job("dashscope", age=timedelta(minutes=100 - i)) for i in range(25)]
    seen: list[str] = []
    for page_no, expected in ((1, 10), (2, 10), (3, 5), (4, 0)):
        output = http.get(f"{ds}/fine-tunes", params={"page_no": page_no, "page_size": 10}).json()["output"]
        assert (output["page_no"], output["page_size"], output["total"]) == (page_no, 10, 25)
        assert len(output["jobs"]) == expected
        seen += [job["job_id"] for job in output["jobs"]]
    assert seen == list(reversed(ids))


def test_list_defaults_and_model_filter(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    emulator.seed_jobs("dashscope", 12, model="qwen-turbo")
    plus = emulator.seed_job("dashscope", model="qwen-plus")
    output = http.get(f"{ds}/fine-tunes").json()["output"]
    assert (output["page_no"], output["page_size"], output["total"], len(output["jobs"])) == (1, 10, 13, 10)
    filtered = http.get(f"{ds}/fine-tunes", params={"model": "qwen-plus"}).json()["output"]
    assert [job["job_id"] for job in filtered["jobs"]] == [plus]


@pytest.mark.parametrize(
    "params", [{"page_size": 0}, {"page_size": 101}, {"page_size": "ten"}, {"page_no": 0}, {"page_no": -1}]
)
def test_list_rejects_bad_paging(ds: str, http: requests.Session, dashscope_error, params: dict[str, object]) -> None:
    dashscope_error(http.get(f"{ds}/fine-tunes", params=params), 400, "InvalidParameter")


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("POST", "/cancel"), ("DELETE", ""), ("GET", "/logs")])
def test_unknown_job_is_404_not_found(
    ds: str, http: requests.Session, dashscope_error, method: str, suffix: str
) -> None:
    body = dashscope_error(http.request(method, f"{ds}/fine-tunes/ft-000000000000-dead{suffix}"), 404, "NotFound")
    assert body["message"] == "Not Found!"


@pytest.mark.parametrize("status", ["RUNNING", "PENDING", "QUEUING", "SUSPENDED", "SOMETHING_NEW"])
def test_cancel_in_flight_job_succeeds_at_once_without_delay(
    emulator: FineTuningEmulator, ds: str, http: requests.Session, status: str
) -> None:
    job_id = emulator.seed_job("dashscope", status=status, runs_for=None)
    response = http.post(f"{ds}/fine-tunes/{job_id}/cancel")
    assert response.status_code == 200
    assert response.json() == {"request_id": response.headers["x-request-id"], "output": {"status": "success"}}
    job = emulator.job("dashscope", job_id)
    assert job is not None
    assert job["status"] == "CANCELED"
    assert TIME_RE.match(job["end_time"])


@pytest.mark.parametrize("status", ["SUCCEEDED", "FAILED", "CANCELED"])
def test_cancel_finished_job_is_unsupported(
    emulator: FineTuningEmulator, ds: str, http: requests.Session, dashscope_error, status: str
) -> None:
    job_id = emulator.seed_job("dashscope", status=status, age=timedelta(days=2))
    dashscope_error(http.post(f"{ds}/fine-tunes/{job_id}/cancel"), 400, "UnsupportedOperation")
    assert emulator.job("dashscope", job_id)["status"] == status  # type: ignore[index]


@pytest.mark.parametrize("status", ["SUCCEEDED", "FAILED", "CANCELED"])
def test_delete_finished_job_removes_it(
    emulator: FineTuningEmulator, ds: str, http: requests.Session, dashscope_error, status: str
) -> None:
    job_id = emulator.seed_job("dashscope", status=status, age=timedelta(days=2))
    response = http.delete(f"{ds}/fine-tunes/{job_id}")
    assert response.status_code == 200
    assert response.json()["output"] == {"status": "success"}
    assert emulator.job("dashscope", job_id) is None
    dashscope_error(http.get(f"{ds}/fine-tunes/{job_id}"), 404, "NotFound")
    dashscope_error(http.delete(f"{ds}/fine-tunes/{job_id}"), 404, "NotFound")


@pytest.mark.parametrize("status", ["RUNNING", "QUEUING", "PENDING", "SUSPENDED", "SOMETHING_NEW"])
def test_delete_in_flight_job_is_unsupported(
    emulator: FineTuningEmulator, ds: str, http: requests.Session, dashscope_error, status: str
) -> None:
    job_id = emulator.seed_job("dashscope", status=status, runs_for=None)
    body = dashscope_error(http.delete(f"{ds}/fine-tunes/{job_id}"), 400, "UnsupportedOperation")
    assert "cancel it first" in body["message"]
    assert emulator.job("dashscope", job_id) is not None


def test_cancel_delay_passes_through_canceling(dashscope_error) -> None:
    with FineTuningEmulator(api_key="k" * 16, cancel_delay=30) as emu:
        base, headers = emu.url("dashscope"), _auth(emu)
        job_id = emu.seed_job("dashscope", status="RUNNING", runs_for=None)
        assert requests.post(f"{base}/fine-tunes/{job_id}/cancel", headers=headers).json()["output"] == {
            "status": "success"
        }
        job = requests.get(f"{base}/fine-tunes/{job_id}", headers=headers).json()["output"]
        assert job["status"] == "CANCELING"
        assert "end_time" not in job
        again = requests.post(f"{base}/fine-tunes/{job_id}/cancel", headers=headers)
        assert again.status_code == 200
        dashscope_error(requests.delete(f"{base}/fine-tunes/{job_id}", headers=headers), 400, "UnsupportedOperation")
        emu.advance(31)
        job = requests.get(f"{base}/fine-tunes/{job_id}", headers=headers).json()["output"]
        assert job["status"] == "CANCELED"
        assert TIME_RE.match(job["end_time"])
        assert requests.delete(f"{base}/fine-tunes/{job_id}", headers=headers).status_code == 200


def test_failed_job_carries_code_and_message(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    job_id = emulator.seed_job("dashscope", status="FAILED", age=timedelta(hours=2), error="Training file is empty")
    response = http.get(f"{ds}/fine-tunes/{job_id}")
    envelope = response.json()
    assert "code" not in envelope
    assert envelope["output"]["code"] == "TrainingFailed"
    assert envelope["output"]["message"] == "Training file is empty"


def test_succeeded_job_names_its_output_model(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    job_id = emulator.seed_job("dashscope", status="SUCCEEDED", age=timedelta(days=1), model="qwen-plus")
    job = http.get(f"{ds}/fine-tunes/{job_id}").json()["output"]
    assert job["finetuned_output"] == f"qwen-plus-{job_id}"
    assert isinstance(job["usage"], int)


def test_unknown_status_is_served_verbatim_and_never_advances(
    emulator: FineTuningEmulator, ds: str, http: requests.Session
) -> None:
    job_id = emulator.seed_job("dashscope", status="WARMING_UP", runs_for=timedelta(seconds=1))
    emulator.advance(86_400)
    assert http.get(f"{ds}/fine-tunes/{job_id}").json()["output"]["status"] == "WARMING_UP"


def test_malformed_json_body_is_invalid_parameter(ds: str, http: requests.Session, dashscope_error) -> None:
    response = http.post(f"{ds}/fine-tunes", data=b"{not json", headers={"Content-Type": "application/json"})
    dashscope_error(response, 400, "InvalidParameter")


@pytest.mark.parametrize(
    "body",
    [{"model": "qwen-turbo"}, {"model": "qwen-turbo", "training_file_ids": []}, {"training_file_ids": ["f"]}, [1, 2]],
)
def test_create_validates_required_fields(ds: str, http: requests.Session, dashscope_error, body: object) -> None:
    dashscope_error(http.post(f"{ds}/fine-tunes", json=body), 400, "InvalidParameter")


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("PUT", "/fine-tunes/x"), ("GET", "/fine-tunes/x/y/z")])
def test_unknown_route_is_vendor_404(ds: str, http: requests.Session, dashscope_error, method: str, path: str) -> None:
    dashscope_error(http.request(method, f"{ds}{path}"), 404, "NotFound")


def test_logs_follow_the_lifecycle(
    emulator: FineTuningEmulator, ds: str, http: requests.Session, dashscope_error
) -> None:
    job_id = emulator.seed_job("dashscope", status="PENDING", runs_for=timedelta(minutes=1))
    emulator.advance(120)
    output = http.get(f"{ds}/fine-tunes/{job_id}/logs").json()["output"]
    lines = dashscope_lines(output)
    assert output["total"] == len(lines) == 13  # three transitions and a step line per tenth of the run
    statuses = [line.rsplit(" ", 1)[1] for line in lines if " status " in line]
    assert statuses == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert lines[0].endswith("status PENDING")
    assert lines[1].endswith("status RUNNING")
    assert lines[-1].endswith("status SUCCEEDED")
    # offset skips that many lines, from 0 (reference, "Query fine-tuning logs"); past the end there is no line.
    window = http.get(f"{ds}/fine-tunes/{job_id}/logs", params={"offset": 1, "line": 1}).json()["output"]
    assert (window["total"], dashscope_lines(window)) == (13, lines[1:2])
    past = http.get(f"{ds}/fine-tunes/{job_id}/logs", params={"offset": 13}).json()["output"]
    assert (past["total"], dashscope_lines(past)) == (13, [])
    dashscope_error(http.get(f"{ds}/fine-tunes/{job_id}/logs", params={"line": 1001}), 400, "InvalidParameter")


@pytest.mark.parametrize(("form", "kinds"), [("lines", [list, list]), ("text", [str, str]), ("alternate", [list, str])])
def test_logs_come_as_an_array_or_as_one_string(form: LogsForm, kinds: list[type]) -> None:
    # The reference shows an array; the SDK (dashscope 2.0.2) says the server may send one string of lines instead.
    with FineTuningEmulator(api_key="k" * 16, dashscope_logs=form) as emu:
        base, headers = emu.url("dashscope"), _auth(emu)
        outputs = [
            requests.get(f"{base}/fine-tunes/{emu.seed_job('dashscope')}/logs", headers=headers).json()["output"]
            for _ in kinds
        ]
        assert [type(output["logs"]) for output in outputs] == kinds
        assert all(dashscope_lines(output)[0].endswith("status RUNNING") for output in outputs)


def _auth(emu: FineTuningEmulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.api_key}"}


def test_time_zone_is_configurable() -> None:
    emu = FineTuningEmulator(dashscope_timezone="UTC")  # serialisation needs no running server
    job = emu.job("dashscope", emu.seed_job("dashscope", age=timedelta(hours=1)))
    assert job is not None
    created = datetime.strptime(job["create_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("UTC"))
    assert abs(created.timestamp() - (emu.now() - 3600)) < 5
    assert job["job_id"][3:15] == created.strftime("%Y%m%d%H%M")
