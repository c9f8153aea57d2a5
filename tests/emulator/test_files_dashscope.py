"""DashScope files over real HTTP: multi-file uploads with per-file failures in a 200, list paging, get, delete
(a missing file is a 400, not a 404), job creates that must name uploaded files; the official SDK's files API."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dashscope
import pytest
import requests
from dashscope.v2 import errors as ds_errors

from airflow_provider_ft_emulator import FineTuningEmulator
from tests.emulator.conftest import TRAINING_JSONL

FILE_ID_RE = re.compile(r"^file-ft-[0-9a-f]{32}$")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
FILE_KEYS = {"id", "file_id", "name", "description", "purpose", "size", "upload_time", "gmt_create"}

Check = Callable[[requests.Response, int, str], dict[str, Any]]


def data_of(response: requests.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"request_id", "data"}
    assert body["request_id"] == response.headers["x-request-id"]
    return body["data"]


def test_upload_several_files_with_descriptions(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    files = [("files", ("a.jsonl", TRAINING_JSONL)), ("files", ("b.jsonl", b'{"x": 1}\n'))]
    data = data_of(http.post(f"{ds}/files", files=files, data={"descriptions": ["first", "second"]}))
    assert data["failed_uploads"] == []
    uploaded = data["uploaded_files"]
    assert [f["name"] for f in uploaded] == ["a.jsonl", "b.jsonl"]
    assert all(FILE_ID_RE.match(f["file_id"]) for f in uploaded)
    assert all(set(f) == {"file_id", "name"} for f in uploaded)
    first = emulator.file_info("dashscope", uploaded[0]["file_id"])
    assert first is not None
    assert (first.description, first.purpose, first.bytes, first.valid) == (
        "first",
        "fine-tune",
        len(TRAINING_JSONL),
        True,
    )
    assert first.sha256 == hashlib.sha256(TRAINING_JSONL).hexdigest()
    second = emulator.file_info("dashscope", uploaded[1]["file_id"])
    assert second is not None
    assert second.description == "second"


def test_a_bad_file_is_a_failed_upload_in_a_200(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    files = [
        ("files", ("good.jsonl", TRAINING_JSONL)),
        ("files", ("bad.jsonl", b'{"x": 1}\n{"x": 2}\n\n{"x": 3}\n')),
        ("files", ("data.csv", b"a,b\n")),
    ]
    data = data_of(http.post(f"{ds}/files", files=files, data={"purpose": "fine-tune"}))
    assert [f["name"] for f in data["uploaded_files"]] == ["good.jsonl"]
    failed = data["failed_uploads"]
    assert [(f["name"], f["code"]) for f in failed] == [
        ("bad.jsonl", "InvalidFileFormat"),
        ("data.csv", "InvalidFileFormat"),
    ]
    assert "line 3" in failed[0]["message"]
    assert ".jsonl" in failed[1]["message"]
    assert [f["name"] for f in emulator.files("dashscope")] == ["good.jsonl"]


def test_other_purposes_are_not_checked(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    data = data_of(http.post(f"{ds}/files", files=[("files", ("doc.pdf", b"%PDF"))], data={"purpose": "file-extract"}))
    assert data["failed_uploads"] == []
    (stored,) = emulator.files("dashscope")
    assert (stored["name"], stored["purpose"], stored["size"]) == ("doc.pdf", "file-extract", 4)


@pytest.mark.parametrize(
    "form",
    [{"data": {"purpose": "fine-tune"}}, {"data": {"files": "not a file"}}],
    ids=["no files", "files not a file"],
)
def test_upload_without_files_is_invalid_parameter(
    ds: str, http: requests.Session, dashscope_error: Check, form: dict[str, Any]
) -> None:
    dashscope_error(http.post(f"{ds}/files", **form), 400, "InvalidParameter")


def test_list_get_delete(emulator: FineTuningEmulator, ds: str, http: requests.Session, dashscope_error: Check) -> None:
    ids = []
    for index in range(12):
        ids.append(emulator.seed_file("dashscope", f"t{index}.jsonl", TRAINING_JSONL, description=f"d{index}"))
        emulator.advance(1)
    first = data_of(http.get(f"{ds}/files"))
    assert (first["total"], first["page_no"], first["page_size"]) == (12, 1, 10)
    assert [f["file_id"] for f in first["files"]] == list(reversed(ids))[:10]
    second = data_of(http.get(f"{ds}/files", params={"page_no": 2, "page_size": 10}))
    assert [f["file_id"] for f in second["files"]] == [ids[1], ids[0]]
    item = first["files"][0]
    assert set(item) == FILE_KEYS
    assert (item["name"], item["description"], item["size"], item["purpose"]) == (
        "t11.jsonl",
        "d11",
        len(TRAINING_JSONL),
        "fine-tune",
    )
    assert TIME_RE.match(item["upload_time"])
    assert item["gmt_create"] == item["upload_time"]
    assert data_of(http.get(f"{ds}/files/{ids[0]}")) == second["files"][-1]
    assert data_of(http.delete(f"{ds}/files/{ids[0]}")) == {"file_id": ids[0], "deleted": True}
    for response in (http.get(f"{ds}/files/{ids[0]}"), http.delete(f"{ds}/files/{ids[0]}")):
        assert dashscope_error(response, 400, "InvalidParameter")["message"] == "File not found."
    dashscope_error(http.get(f"{ds}/files", params={"page_size": 101}), 400, "InvalidParameter")


def test_create_needs_uploaded_files(
    emulator: FineTuningEmulator, ds: str, http: requests.Session, dashscope_error: Check
) -> None:
    good = emulator.seed_file("dashscope", "train.jsonl", TRAINING_JSONL)
    cases = [
        ({"training_file_ids": ["file-ft-missing"]}, "file-ft-missing"),
        ({"training_file_ids": [good, "file-ft-other"]}, "file-ft-other"),
        ({"training_file_ids": [good], "validation_file_ids": ["file-ft-valid"]}, "file-ft-valid"),
    ]
    for fields, missing in cases:
        response = http.post(f"{ds}/fine-tunes", json={"model": "qwen-turbo", **fields})
        assert dashscope_error(response, 400, "InvalidParameter")["message"] == f"File not found: {missing}"
    assert emulator.jobs("dashscope") == []
    body = {"model": "qwen-turbo", "training_file_ids": [good], "job_name": "nightly"}
    job = http.post(f"{ds}/fine-tunes", json=body).json()["output"]
    assert (job["training_file_ids"], job["job_name"]) == ([good], "nightly")


# -- the official SDK ----------------------------------------------------------------------------------------------


@pytest.fixture
def client(emulator: FineTuningEmulator) -> Iterator[dashscope.Client]:
    with dashscope.Client(
        api_key=emulator.api_key, base_url=emulator.url("dashscope"), workspace="ws-test", max_retries=0, timeout=10
    ) as sdk:
        yield sdk


def test_sdk_v2_upload_list_get_delete(emulator: FineTuningEmulator, client: dashscope.Client, tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(TRAINING_JSONL)
    uploaded = client.files.upload(file_path=str(path), description="sha256:abc")
    assert uploaded.file_id is not None
    assert FILE_ID_RE.match(uploaded.file_id)
    assert uploaded.name == "train.jsonl"
    listed = client.files.list(page_no=1, page_size=10)
    assert listed.total_count == 1
    assert [(f.file_id, f.size, f.purpose) for f in listed.files] == [
        (uploaded.file_id, len(TRAINING_JSONL), "fine-tune")
    ]
    got = client.files.get(uploaded.file_id)
    assert (got.name, got.uploaded_at) == ("train.jsonl", emulator.files("dashscope")[0]["upload_time"])
    assert emulator.file_info("dashscope", uploaded.file_id).description == "sha256:abc"  # type: ignore[union-attr]
    job = client.fine_tunes.create(model="qwen-turbo", training_file_ids=uploaded.file_id)
    assert job.status == "PENDING"
    assert client.files.delete(uploaded.file_id).deleted is True
    with pytest.raises(ds_errors.NotFoundError):
        client.files.get(uploaded.file_id)


def test_sdk_legacy_files_api(emulator: FineTuningEmulator, tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(TRAINING_JSONL)
    base = {"api_key": emulator.api_key, "base_address": emulator.url("dashscope")}
    uploaded = dashscope.Files.upload(str(path), description="legacy", **base)
    assert uploaded.status_code == 200
    (entry,) = uploaded.output["uploaded_files"]  # the 1.x SDK reads the data envelope as output
    (stored,) = emulator.files("dashscope")
    assert (entry["file_id"], stored["name"], stored["description"]) == (stored["file_id"], "train.jsonl", "legacy")
    listed = dashscope.Files.list(**base)
    assert (listed.output["total"], listed.output["files"]) == (1, [stored])
    assert dashscope.Files.get(entry["file_id"], **base).output == stored
    assert dashscope.Files.delete(entry["file_id"], **base).output == {"file_id": entry["file_id"], "deleted": True}
    missing = dashscope.Files.get(entry["file_id"], **base)
    assert (missing.status_code, missing.code, missing.message) == (400, "InvalidParameter", "File not found.")
