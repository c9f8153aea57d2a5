"""OpenAI files over real HTTP: upload and its JSONL check, list paging, retrieve, delete, and job creates that must
name an uploaded ``fine-tune`` file; the official SDK's ``files`` API against the emulator."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from airflow_provider_ft_emulator import FineTuningEmulator
from tests.emulator.conftest import TRAINING_JSONL

FILE_ID_RE = re.compile(r"^file-[A-Za-z0-9]{24}$")
FILE_KEYS = {"object", "id", "bytes", "created_at", "filename", "purpose", "status"}


def upload(http: requests.Session, oa: str, name: str, content: bytes, purpose: str | None = "fine-tune") -> Any:
    data = {} if purpose is None else {"purpose": purpose}
    return http.post(f"{oa}/files", files={"file": (name, content)}, data=data)


def error_of(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


def test_upload_answers_a_processed_file_object(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    response = upload(http, oa, "train.jsonl", TRAINING_JSONL)
    assert response.status_code == 200, response.text
    stored = response.json()
    assert set(stored) == FILE_KEYS
    assert FILE_ID_RE.match(stored["id"])
    assert (stored["object"], stored["filename"], stored["purpose"]) == ("file", "train.jsonl", "fine-tune")
    assert (stored["bytes"], stored["status"]) == (len(TRAINING_JSONL), "processed")
    assert abs(stored["created_at"] - emulator.now()) < 5
    info = emulator.file_info("openai", stored["id"])
    assert info is not None
    assert (info.sha256, info.valid) == (hashlib.sha256(TRAINING_JSONL).hexdigest(), True)
    assert emulator.files("openai") == [stored]


def test_other_purposes_are_stored_unchecked(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    response = upload(http, oa, "notes.txt", b"not json at all", purpose="assistants")
    assert response.status_code == 200, response.text
    assert response.json()["purpose"] == "assistants"
    info = emulator.file_info("openai", response.json()["id"])
    assert info is not None
    assert info.valid is None


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        ("train.jsonl", b'{"a": 1}\n{"a": 2\n', "line 2"),
        ("train.jsonl", b'{"a": 1}\n\n{"a": 2}\n', "line 2"),
        ("train.jsonl", b'{"a": 1}\n[1, 2]\n', "line 2"),
        ("train.jsonl", b'{"a": 1}\n{"a": 2}\n{"a": \xff}\n', "line 3"),
        ("train.jsonl", b"", "line 1"),
        ("train.json", b'{"a": 1}\n', ".jsonl"),
    ],
)
def test_bad_fine_tune_files_are_refused_with_the_line(
    emulator: FineTuningEmulator, oa: str, http: requests.Session, name: str, content: bytes, where: str
) -> None:
    error = error_of(upload(http, oa, name, content), 400)
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", "file", "invalid_file_format")
    assert error["message"].startswith("Invalid file format for Fine-Tuning API. Must be .jsonl")
    assert where in error["message"]
    assert emulator.files("openai") == []


def test_trailing_text_and_crlf_lines_are_fine(oa: str, http: requests.Session) -> None:
    assert upload(http, oa, "a.jsonl", b'{"a": 1}\r\n{"a": 2}').status_code == 200
    assert upload(http, oa, "b.JSONL", b'{"a": 1}\n').status_code == 200


@pytest.mark.parametrize("missing", ["file", "purpose"])
def test_missing_fields_are_missing_required_parameter(oa: str, http: requests.Session, missing: str) -> None:
    if missing == "file":
        response = http.post(f"{oa}/files", data={"purpose": "fine-tune"})
    else:
        response = upload(http, oa, "train.jsonl", TRAINING_JSONL, purpose=None)
    error = error_of(response, 400)
    assert (error["param"], error["code"]) == (missing, "missing_required_parameter")


def test_list_is_newest_first_and_pages_by_after(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    ids = []
    for index in range(5):
        ids.append(upload(http, oa, f"t{index}.jsonl", TRAINING_JSONL).json()["id"])
        emulator.advance(1)
    other = upload(http, oa, "notes.txt", b"x", purpose="assistants").json()["id"]
    everything = http.get(f"{oa}/files").json()
    assert [f["id"] for f in everything["data"]] == [other, *reversed(ids)]
    assert (everything["object"], everything["has_more"]) == ("list", False)
    assert (everything["first_id"], everything["last_id"]) == (other, ids[0])
    first = http.get(f"{oa}/files", params={"purpose": "fine-tune", "limit": 2}).json()
    assert [f["id"] for f in first["data"]] == [ids[4], ids[3]]
    assert (first["has_more"], first["last_id"]) == (True, ids[3])
    rest = http.get(f"{oa}/files", params={"purpose": "fine-tune", "after": first["last_id"]}).json()
    assert [f["id"] for f in rest["data"]] == [ids[2], ids[1], ids[0]]
    assert rest["has_more"] is False
    ascending = http.get(f"{oa}/files", params={"purpose": "fine-tune", "order": "asc", "limit": 3}).json()
    assert [f["id"] for f in ascending["data"]] == ids[:3]
    empty = http.get(f"{oa}/files", params={"purpose": "batch"}).json()
    assert (empty["data"], empty["first_id"], empty["last_id"], empty["has_more"]) == ([], None, None, False)


@pytest.mark.parametrize(
    ("params", "param"), [({"limit": 0}, "limit"), ({"limit": 10001}, "limit"), ({"order": "up"}, "order")]
)
def test_list_rejects_bad_parameters(oa: str, http: requests.Session, params: dict[str, Any], param: str) -> None:
    assert error_of(http.get(f"{oa}/files", params=params), 400)["param"] == param


def test_retrieve_and_delete(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    file_id = emulator.seed_file("openai", "train.jsonl", TRAINING_JSONL)
    got = http.get(f"{oa}/files/{file_id}")
    assert got.status_code == 200
    assert got.json() == emulator.files("openai")[0]
    deleted = http.delete(f"{oa}/files/{file_id}")
    assert deleted.json() == {"id": file_id, "object": "file", "deleted": True}
    for response in (http.get(f"{oa}/files/{file_id}"), http.delete(f"{oa}/files/{file_id}")):
        error = error_of(response, 404)
        assert error == {
            "message": f"No such File object: {file_id}",
            "type": "invalid_request_error",
            "param": "id",
            "code": None,
        }


def test_create_needs_an_uploaded_fine_tune_file(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    good = emulator.seed_file("openai", "train.jsonl", TRAINING_JSONL)
    unchecked = emulator.seed_file("openai", "notes.txt", b"x", purpose="assistants")
    cases = [
        ({"training_file": "file-nosuchfile0000000000000"}, "training_file", "file-nosuchfile0000000000000"),
        ({"training_file": unchecked}, "training_file", unchecked),
        ({"training_file": good, "validation_file": "file-gone"}, "validation_file", "file-gone"),
    ]
    for fields, param, file_id in cases:
        error = error_of(http.post(f"{oa}/fine_tuning/jobs", json={"model": "gpt-4o-mini", **fields}), 400)
        assert error == {
            "message": f"invalid {param}: {file_id}",
            "type": "invalid_request_error",
            "param": param,
            "code": f"invalid_{param}",
        }
    assert emulator.jobs("openai") == []
    created = http.post(f"{oa}/fine_tuning/jobs", json={"model": "gpt-4o-mini", "training_file": good})
    assert created.status_code == 200
    assert created.json()["training_file"] == good


def test_check_files_false_accepts_any_file_id() -> None:
    with FineTuningEmulator(api_key="k" * 16, check_files=False) as emu, requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {'k' * 16}"
        body = {"model": "gpt-4o-mini", "training_file": "file-made-up"}
        assert session.post(f"{emu.url('openai')}/fine_tuning/jobs", json=body).status_code == 200
        dashscope = {"model": "qwen-turbo", "training_file_ids": ["file-made-up"]}
        assert session.post(f"{emu.url('dashscope')}/fine-tunes", json=dashscope).status_code == 200


@pytest.mark.parametrize(
    ("metadata", "param", "code"),
    [
        ({f"k{i}": "v" for i in range(17)}, "metadata", "object_above_max_properties"),
        ({"k" * 65: "v"}, "metadata", "string_above_max_length"),
        ({"team": "v" * 513}, "metadata.team", "string_above_max_length"),
        ({"team": 1}, "metadata", None),
        (["team"], "metadata", None),
    ],
)
def test_metadata_limits(
    emulator: FineTuningEmulator, oa: str, http: requests.Session, metadata: Any, param: str, code: str | None
) -> None:
    body = {"model": "gpt-4o-mini", "training_file": emulator.seed_file("openai", "t.jsonl", TRAINING_JSONL)}
    error = error_of(http.post(f"{oa}/fine_tuning/jobs", json={**body, "metadata": metadata}), 400)
    assert (error["param"], error["code"]) == (param, code)
    assert emulator.jobs("openai") == []


def test_metadata_at_the_limits_is_accepted(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    metadata = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    body = {"model": "gpt-4o-mini", "training_file": emulator.seed_file("openai", "t.jsonl", TRAINING_JSONL)}
    response = http.post(f"{oa}/fine_tuning/jobs", json={**body, "metadata": metadata})
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == metadata


def test_seed_file_refuses_bad_jsonl(emulator: FineTuningEmulator) -> None:
    with pytest.raises(ValueError, match="line 2"):
        emulator.seed_file("openai", "t.jsonl", b'{"a": 1}\nnope\n')
    assert emulator.files("openai") == []


def test_reset_forgets_files(emulator: FineTuningEmulator) -> None:
    emulator.seed_file("openai", "t.jsonl", TRAINING_JSONL)
    emulator.seed_file("dashscope", "t.jsonl", TRAINING_JSONL)
    emulator.reset()
    assert emulator.files("openai") == emulator.files("dashscope") == []


# -- the official SDK ----------------------------------------------------------------------------------------------


@pytest.fixture
def client(emulator: FineTuningEmulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=emulator.url("openai"), api_key=emulator.api_key, max_retries=0, timeout=10) as sdk:
        yield sdk


def test_sdk_upload_list_retrieve_delete_and_create(
    emulator: FineTuningEmulator, client: openai.OpenAI, tmp_path: Path
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(TRAINING_JSONL)
    with path.open("rb") as handle:
        created = client.files.create(file=handle, purpose="fine-tune")
    assert (created.filename, created.bytes, created.purpose, created.status) == (
        "train.jsonl",
        len(TRAINING_JSONL),
        "fine-tune",
        "processed",
    )
    assert [f.id for f in client.files.list(purpose="fine-tune")] == [created.id]
    assert client.files.retrieve(created.id).filename == "train.jsonl"
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=created.id)
    assert job.training_file == created.id
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-unknown")
    assert refused.value.code == "invalid_training_file"
    with pytest.raises(openai.BadRequestError) as bad:
        client.files.create(file=("bad.jsonl", b"{}\nnope\n"), purpose="fine-tune")
    assert bad.value.code == "invalid_file_format"
    assert client.files.delete(created.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)
