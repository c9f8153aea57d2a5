"""Uploads at the transport level: a 300 MB file streams through (never whole in memory, a bounded prefix in the
request log), and ``lose_response`` carries out creates and uploads while the client gets no answer."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.emulator.conftest import TRAINING_JSONL

BIG_BYTES = 300 * 1024 * 1024
#: Python memory the whole upload (client and server, one process) may allocate at its peak.
PEAK_BUDGET = 48 * 1024 * 1024


def write_big_jsonl(path: Path, size: int) -> str:
    """A JSONL file of at least ``size`` bytes, written a block at a time; returns its SHA-256."""
    line = json.dumps({"messages": [{"role": "user", "content": "x" * 900}, {"role": "assistant", "content": "y"}]})
    block = ((line + "\n") * 1024).encode()
    sha = hashlib.sha256()
    with path.open("wb") as out:
        written = 0
        while written < size:
            out.write(block)
            sha.update(block)
            written += len(block)
    return sha.hexdigest()


def test_a_300_mb_upload_streams_through(emulator: FineTuningEmulator, tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    sha = write_big_jsonl(path, BIG_BYTES)
    size = path.stat().st_size
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    tracemalloc.start()
    try:
        with path.open("rb") as handle:
            response = httpx.post(
                f"{emulator.url('openai')}/files",
                files={"file": ("big.jsonl", handle)},
                data={"purpose": "fine-tune"},
                headers=headers,
                timeout=120,
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 200, response.text
    assert response.json()["bytes"] == size
    info = emulator.file_info("openai", response.json()["id"])
    assert info is not None
    assert (info.sha256, info.valid) == (sha, True)
    assert peak < PEAK_BUDGET, f"the upload peaked at {peak / 2**20:.0f} MiB of Python memory"
    (record,) = emulator.requests
    assert record.body_size > size
    assert len(record.raw_body) == 64 * 1024
    assert record.raw_body.startswith(b"--")
    assert record.body is None


def test_small_json_bodies_are_still_recorded_whole(emulator: FineTuningEmulator, http: requests.Session) -> None:
    body = {"model": "gpt-4o-mini", "training_file": "x" * 200_000}
    http.post(f"{emulator.url('openai')}/fine_tuning/jobs", json=body)
    (record,) = emulator.requests
    assert record.body == body
    assert record.body_size == len(json.dumps(body))


def _post(http: requests.Session, emulator: FineTuningEmulator, vendor: str, what: str) -> None:
    url = emulator.url(vendor)
    if what == "upload" and vendor == "openai":
        http.post(f"{url}/files", files={"file": ("t.jsonl", TRAINING_JSONL)}, data={"purpose": "fine-tune"})
    elif what == "upload":
        http.post(f"{url}/files", files=[("files", ("t.jsonl", TRAINING_JSONL))])
    elif vendor == "openai":
        file_id = emulator.seed_file("openai", "t.jsonl", TRAINING_JSONL)
        http.post(f"{url}/fine_tuning/jobs", json={"model": "gpt-4o-mini", "training_file": file_id})
    else:
        file_id = emulator.seed_file("dashscope", "t.jsonl", TRAINING_JSONL)
        http.post(f"{url}/fine-tunes", json={"model": "qwen-turbo", "training_file_ids": [file_id]})


@pytest.mark.parametrize(
    ("vendor", "what", "path"),
    [
        ("openai", "upload", "^/files$"),
        ("dashscope", "upload", "^/files$"),
        ("openai", "create", "^/fine_tuning/jobs$"),
        ("dashscope", "create", "^/fine-tunes$"),
    ],
)
def test_lose_response_creates_but_never_answers(
    emulator: FineTuningEmulator, http: requests.Session, vendor: str, what: str, path: str
) -> None:
    files_before = len(emulator.files(vendor))
    emulator.inject(Fault("lose_response", vendor=vendor, method="POST", path=path))
    with pytest.raises(requests.ConnectionError):
        _post(http, emulator, vendor, what)
    assert (emulator.requests[-1].status, emulator.requests[-1].fault) == (0, "lose_response")
    if what == "upload":
        assert len(emulator.files(vendor)) == files_before + 1, "the file was stored"
        assert emulator.jobs(vendor) == []
    else:
        assert len(emulator.jobs(vendor)) == 1, "the job was created"
    _post(http, emulator, vendor, what)  # the fault is spent: a retry is answered, and makes a second one
    made: list[Any] = emulator.files(vendor) if what == "upload" else emulator.jobs(vendor)
    assert len(made) == (files_before + 2 if what == "upload" else 2)
    assert emulator.requests[-1].status == 200
