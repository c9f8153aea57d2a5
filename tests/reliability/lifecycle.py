"""Pieces the reliability suites share for the lifecycle endpoints: job create, file upload and the files listing.

The answers are written here by hand, in each vendor's documented shape (see ``docs/emulator.md``), so that a
``body`` fault can stand in for any one of them; a training file and a task instance make a create operator run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_provider_ft.identity import TaskIdentity
from airflow_provider_ft.vendors.wire import JobSpec
from airflow_provider_ft_emulator import FineTuningEmulator, RecordedRequest
from tests.operators.conftest import TaskInstance

MODELS = {
    "dashscope": "qwen-turbo",
    "openai": "gpt-4o-mini-2024-07-18",
    "azure": "gpt-4o-mini-2024-07-18",
    "together": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
}
#: Regexes of the request paths (relative to the vendor's base URL) of a create, an upload and a files listing.
CREATE_PATHS = {
    "dashscope": r"^/fine-tunes$",
    "openai": r"^/fine_tuning/jobs$",
    "azure": r"^/fine_tuning/jobs$",
    "together": r"^/fine-tunes$",
}
FILES_PATH = r"^/files$"
UPLOAD_PATHS = {"dashscope": FILES_PATH, "openai": FILES_PATH, "azure": FILES_PATH, "together": r"^/files/upload$"}
JOB_LISTING_PATHS = {
    "dashscope": "/fine-tunes",
    "openai": "/fine_tuning/jobs",
    "azure": "/fine_tuning/jobs",
    "together": "/fine-tunes",
}
RECORD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
IDENTITY = TaskIdentity("ft_reliability", "train", "manual__1")


def write_training_file(folder: Path, name: str = "train.jsonl", records: int = 3) -> Path:
    path = folder / name
    path.write_text("".join(json.dumps(RECORD) + "\n" for _ in range(records)))
    return path


def spec_for(vendor: str, training_file: str = "file-to-upload") -> JobSpec:
    return JobSpec(model=MODELS[vendor], training_file=training_file)


def file_entry(vendor: str, file_id: str, size: int = 10) -> dict[str, Any]:
    """A file object of a listing page, as the vendor writes it."""
    if vendor != "dashscope":
        return {
            "object": "file",
            "id": file_id,
            "bytes": size,
            "created_at": 1_767_268_800,
            "filename": f"{file_id}.jsonl",
            "purpose": "fine-tune",
            "status": "processed",
        }
    return {"file_id": file_id, "name": f"{file_id}.jsonl", "size": size, "description": "", "purpose": "fine-tune"}


def files_page(vendor: str, entries: list[Any], *, more: bool, page_no: int = 1, total: Any = None) -> bytes:
    """A files listing page; ``more`` says more follow (DashScope: a ``total`` past this page unless given)."""
    if vendor == "together":  # one page holds every file: it cannot promise more
        return json.dumps({"data": entries}).encode()
    if vendor != "dashscope":
        return json.dumps({"object": "list", "data": entries, "has_more": more}).encode()
    if total is None:
        total = 10**9 if more else (page_no - 1) * 100 + len(entries)
    data = {"total": total, "page_no": page_no, "page_size": 100, "files": entries}
    return json.dumps({"request_id": "req-files", "data": data}).encode()


def upload_answer(vendor: str, file_id: str) -> dict[str, Any]:
    """A well-formed answer to an upload (to damage)."""
    if vendor != "dashscope":
        return file_entry(vendor, file_id)
    return {"request_id": "req-upload", "data": {"uploaded_files": [{"file_id": file_id, "name": "train.jsonl"}]}}


def requests_to(emulator: FineTuningEmulator, method: str, path: str) -> list[RecordedRequest]:
    return [request for request in emulator.requests if request.method == method and request.path.rstrip("/") == path]


def creates(emulator: FineTuningEmulator, vendor: str) -> list[RecordedRequest]:
    return requests_to(emulator, "POST", JOB_LISTING_PATHS[vendor])


def uploads(emulator: FineTuningEmulator) -> list[RecordedRequest]:
    return requests_to(emulator, "POST", "/files") + requests_to(emulator, "POST", "/files/upload")


def file_listings(emulator: FineTuningEmulator) -> list[RecordedRequest]:
    return requests_to(emulator, "GET", "/files")


def job_listings(emulator: FineTuningEmulator, vendor: str) -> list[RecordedRequest]:
    return requests_to(emulator, "GET", JOB_LISTING_PATHS[vendor])


def task_instance() -> TaskInstance:
    """``context["ti"]`` of a create operator whose job's identity is :data:`IDENTITY`."""
    return TaskInstance(dag_id=IDENTITY.dag_id, task_id=IDENTITY.task_id, run_id=IDENTITY.run_id)
