"""``FineTuningHook.submit_job`` / ``upload_file`` / ``check_training_file`` against the emulator: exactly once.

The identity tag is what makes a job findable again: OpenAI ``metadata["airflow_ti"]``, DashScope ``job_name``.
Seeding a job with that tag stands in for a job made by an earlier try (or a zombie worker).
"""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft.exceptions import FineTuningApiError
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.identity import TaskIdentity
from airflow_provider_ft.transport.multipart import MultipartBody
from airflow_provider_ft.vendors.wire import JobSpec, LocalFile, Upload
from airflow_provider_ft_emulator import FineTuningEmulator
from airflow_provider_ft_emulator.faults import Fault
from tests.conftest import FAST_RETRIES, Vendor, seed_job_of

MODELS = {
    "dashscope": "qwen-turbo",
    "openai": "gpt-4o-mini-2024-07-18",
    "azure": "gpt-4o-mini-2024-07-18",
    "together": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
}
RUNNING = {"dashscope": "RUNNING", "openai": "running", "azure": "running", "together": "running"}
CANCELLED = {"dashscope": "CANCELED", "openai": "cancelled", "azure": "cancelled", "together": "cancelled"}
UPLOAD_PATHS = {"dashscope": r"/files$", "openai": r"/files$", "azure": r"/files$", "together": r"/files/upload$"}
CREATE_PATHS = {
    "dashscope": r"/fine-tunes$",
    "openai": r"/fine_tuning/jobs$",
    "azure": r"/fine_tuning/jobs$",
    "together": r"/fine-tunes$",
}
RECORD = json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})
IDENTITY = TaskIdentity("dag", "train", "manual__1")


def seed_tagged(emulator: FineTuningEmulator, vendor: str, identity: TaskIdentity, **kwargs: Any) -> str:
    return seed_job_of(emulator, vendor, identity, model=MODELS[vendor], **kwargs)


@pytest.fixture
def spec(emulator: FineTuningEmulator, vendor: Vendor) -> JobSpec:
    file_id = emulator.seed_file(vendor.name, "train.jsonl", (RECORD + "\n").encode())
    emulator.clear_requests()
    return JobSpec(model=MODELS[vendor.name], training_file=file_id)


def hook_output(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """What the hook logged: Airflow 3 writes its records through structlog to the process's output, Airflow 2
    through plain logging."""
    return "".join(capfd.readouterr()) + "\n".join(record.getMessage() for record in caplog.records)


def creates(emulator: FineTuningEmulator, vendor: str) -> int:
    paths = ("/fine-tunes", "/fine_tuning/jobs")
    return sum(1 for r in emulator.requests if r.method == "POST" and r.path.endswith(paths))


def test_creates_a_job_tagged_with_the_identity_and_finds_it_again(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, spec: JobSpec
) -> None:
    hook = FineTuningHook(connection)
    first = hook.submit_job(spec, IDENTITY, settle_delays=(0,))
    again = hook.submit_job(spec, IDENTITY, settle_delays=(0,))

    assert first.created
    assert not again.created
    assert again.job.id == first.job.id
    assert creates(emulator, vendor.name) == 1
    assert [job.id for job in hook.find_jobs(spec, IDENTITY)] == [first.job.id]


def test_an_earlier_tries_job_is_re_attached_to_even_when_it_has_ended(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, spec: JobSpec
) -> None:
    ended = seed_tagged(emulator, vendor.name, IDENTITY, status=CANCELLED[vendor.name])
    submission = FineTuningHook(connection).submit_job(spec, IDENTITY, settle_delays=(0,))
    assert (submission.job.id, submission.created) == (ended, False)
    assert creates(emulator, vendor.name) == 0


def test_duplicates_are_cancelled_keeping_the_oldest(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, spec: JobSpec
) -> None:
    oldest = seed_tagged(emulator, vendor.name, IDENTITY, status=RUNNING[vendor.name], age=timedelta(minutes=9))
    younger = seed_tagged(emulator, vendor.name, IDENTITY, status=RUNNING[vendor.name], age=timedelta(minutes=3))

    submission = FineTuningHook(connection).submit_job(spec, IDENTITY, settle_delays=(0,))

    assert submission.job.id == oldest
    assert submission.cancelled == [younger]
    assert emulator.job(vendor.name, younger)["status"] in (CANCELLED[vendor.name], "CANCELING")  # type: ignore[index]
    assert emulator.job(vendor.name, oldest)["status"] == RUNNING[vendor.name]  # type: ignore[index]


def test_jobs_of_other_task_instances_and_other_namespaces_are_not_taken(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, spec: JobSpec
) -> None:
    seed_tagged(emulator, vendor.name, TaskIdentity("dag", "train", "manual__2"))
    seed_tagged(emulator, vendor.name, TaskIdentity("dag", "train", "manual__1", namespace="staging"))
    seed_tagged(emulator, vendor.name, TaskIdentity("dag", "train", "manual__1", map_index=0))

    submission = FineTuningHook(connection).submit_job(spec, IDENTITY, settle_delays=(0,))

    assert submission.created
    assert creates(emulator, vendor.name) == 1


def test_a_lost_create_answer_is_looked_for_not_resent(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, spec: JobSpec
) -> None:
    emulator.inject(Fault("lose_response", vendor=vendor.name, method="POST", path=CREATE_PATHS[vendor.name]))
    submission = FineTuningHook(connection).submit_job(spec, IDENTITY, settle_delays=(0,))
    assert not submission.created  # made by the lost create, found by the look after it
    assert creates(emulator, vendor.name) == 1
    assert len(emulator.jobs(vendor.name)) == 1


@pytest.mark.parametrize("status", [500, 503, 429, 408])
def test_a_create_refused_with_a_passing_error_is_looked_for_then_sent_again(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, spec: JobSpec, status: int
) -> None:
    emulator.inject(Fault("status", vendor=vendor.name, method="POST", path=CREATE_PATHS[vendor.name], status=status))
    submission = FineTuningHook(connection).submit_job(spec, IDENTITY, settle_delays=(0, 0))
    assert submission.created
    assert creates(emulator, vendor.name) == 2  # refused (nothing made), looked for twice, then sent again
    assert len(emulator.jobs(vendor.name)) == 1


def test_a_create_that_never_gets_an_answer_gives_up_after_max_retries(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, spec: JobSpec
) -> None:
    emulator.inject(Fault("status", vendor=vendor.name, method="POST", path=CREATE_PATHS[vendor.name], times=99))
    with pytest.raises(FineTuningApiError, match="Gave up on the"):
        FineTuningHook(connection).submit_job(spec, IDENTITY, settle_delays=(0,))
    assert creates(emulator, vendor.name) == 4  # max_retries 3 of FAST_RETRIES, plus the first
    assert emulator.jobs(vendor.name) == []


def test_a_clear_refusal_is_final(emulator: FineTuningEmulator, vendor: Vendor, connection: str, spec: JobSpec) -> None:
    emulator.inject(Fault("status", vendor=vendor.name, method="POST", path=CREATE_PATHS[vendor.name], status=400))
    with pytest.raises(FineTuningApiError) as raised:
        FineTuningHook(connection).submit_job(spec, IDENTITY, settle_delays=(0,))
    assert raised.value.http_status == 400
    assert creates(emulator, vendor.name) == 1


def test_an_unknown_file_id_is_the_vendors_clear_refusal(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    spec = JobSpec(model=MODELS[vendor.name], training_file="file-never-uploaded")
    with pytest.raises(FineTuningApiError) as raised:
        FineTuningHook(connection).submit_job(spec, IDENTITY, settle_delays=(0,))
    assert raised.value.http_status == 400
    assert creates(emulator, vendor.name) == 1


#: A create answer for a job without the identity tag, as a vendor that ignored ``job_name`` / ``metadata`` sends.
UNTAGGED_ANSWERS = {
    "dashscope": {
        "request_id": "req-1",
        "output": {"job_id": "ft-202601011200-0000", "status": "PENDING", "model": "qwen-turbo", "job_name": None},
    },
    "openai": {
        "object": "fine_tuning.job",
        "id": "ftjob-untagged",
        "status": "validating_files",
        "model": "gpt-4o-mini-2024-07-18",
        "created_at": 1_767_268_800,
        "metadata": None,
    },
    "azure": {
        "object": "fine_tuning.job",
        "id": "ftjob-untagged",
        "status": "pending",
        "model": "gpt-4o-mini-2024-07-18",
        "training_file": "file-untagged",
        "created_at": 1_767_268_800,
        "suffix": None,
    },
    "together": {
        "id": "ft-untagged",
        "status": "pending",
        "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        "created_at": "2026-01-01T12:00:00.000Z",
        "suffix": None,
    },
}


def test_a_vendor_that_drops_the_tag_is_reported_as_unsafe_to_retry(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    spec: JobSpec,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    answer = json.dumps(UNTAGGED_ANSWERS[vendor.name]).encode()
    emulator.inject(Fault("body", vendor=vendor.name, method="POST", path=CREATE_PATHS[vendor.name], body=answer))

    submission = FineTuningHook(connection).submit_job(spec, IDENTITY, settle_delays=(0,))

    assert submission.created
    assert submission.job.id in ("ftjob-untagged", "ft-202601011200-0000", "ft-untagged")
    written = hook_output(capfd, caplog)
    assert f"job {submission.job.id} does not carry the identity {IDENTITY.tag}" in written
    assert "would start another" in written


def test_a_tagged_job_raises_no_warning(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    spec: JobSpec,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    FineTuningHook(connection).submit_job(spec, IDENTITY, settle_delays=(0,))
    written = hook_output(capfd, caplog)
    assert "Created" in written, "the hook's records reach the process's output"
    assert "does not carry the identity" not in written


# -- uploads --------------------------------------------------------------------------------------------------


def write_records(path: Path, count: int) -> Path:
    path.write_text("".join(RECORD + "\n" for _ in range(count)))
    return path


def test_an_upload_is_streamed_named_by_content_and_reused(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, tmp_path: Path
) -> None:
    hook = FineTuningHook(connection)
    spec = JobSpec(model=MODELS[vendor.name], training_file="file-x")
    local = hook.check_training_file(write_records(tmp_path / "train.jsonl", 500), spec)

    remote, uploaded = hook.upload_file(local, settle_delays=(0,))
    again, uploaded_again = hook.upload_file(local, settle_delays=(0,))

    assert (uploaded, uploaded_again) == (True, False)
    assert again.id == remote.id
    (stored,) = emulator.files(vendor.name)
    content = (tmp_path / "train.jsonl").read_bytes()
    assert local.sha256 == hashlib.sha256(content).hexdigest()
    assert local.lines == 500
    assert stored.get("bytes", stored.get("size")) == len(content)
    assert local.stored_name == f"train.{local.sha256[:16]}.jsonl"


def test_the_same_records_in_a_file_of_another_name_are_the_same_upload(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, tmp_path: Path
) -> None:
    """Issue 24: the example DAG writes its data to a file named after the DAG run; a second run uploaded it again
    on OpenAI, Azure OpenAI and Together AI (their files were found by the whole name, stem included), where
    DashScope, which keeps the hash in the file's description, reused it."""
    hook = FineTuningHook(connection)
    spec = JobSpec(model=MODELS[vendor.name], training_file="file-x")
    first = hook.check_training_file(write_records(tmp_path / "data.manual__1.jsonl", 20), spec)
    second = hook.check_training_file(write_records(tmp_path / "data.manual__2.jsonl", 20), spec)
    other = hook.check_training_file(write_records(tmp_path / "data.manual__3.jsonl", 21), spec)

    remote, uploaded = hook.upload_file(first, settle_delays=(0,))
    again, uploaded_again = hook.upload_file(second, settle_delays=(0,))
    changed, uploaded_changed = hook.upload_file(other, settle_delays=(0,))

    assert first.stored_name != second.stored_name
    assert (uploaded, uploaded_again, uploaded_changed) == (True, False, True)
    assert again.id == remote.id
    assert changed.id != remote.id
    assert len(emulator.files(vendor.name)) == 2


def test_a_lost_upload_answer_is_found_and_not_uploaded_twice(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, tmp_path: Path
) -> None:
    hook = FineTuningHook(connection)
    local = hook.check_training_file(write_records(tmp_path / "train.jsonl", 5), JobSpec("m", "file-x"))
    emulator.inject(Fault("lose_response", vendor=vendor.name, method="POST", path=UPLOAD_PATHS[vendor.name]))

    remote, uploaded = hook.upload_file(local, settle_delays=(0,))

    assert not uploaded
    assert [file.get("file_id") or file.get("id") for file in emulator.files(vendor.name)] == [remote.id]


def test_a_changed_file_is_not_mistaken_for_its_earlier_upload(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, tmp_path: Path
) -> None:
    hook = FineTuningHook(connection)
    path = tmp_path / "train.jsonl"
    first, _ = hook.upload_file(hook.check_training_file(write_records(path, 5), JobSpec("m", "file-x")))
    second, uploaded = hook.upload_file(hook.check_training_file(write_records(path, 6), JobSpec("m", "file-x")))
    assert uploaded
    assert second.id != first.id


def test_a_multipart_body_is_read_in_chunks_not_whole(tmp_path: Path) -> None:
    size = 64 * 1024 * 1024
    path = tmp_path / "big.jsonl"
    with path.open("wb") as out:
        line = (RECORD + "\n").encode()
        out.write(line * (size // len(line)))
    local = LocalFile(name=path.name, size=path.stat().st_size, sha256="0" * 64, lines=1, open=lambda: path.open("rb"))
    body = MultipartBody(Upload("file", local.stored_name, local, (("purpose", "fine-tune"),)))

    tracemalloc.start()
    try:
        sent = 0
        while chunk := body.read(16 * 1024):
            sent += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert sent == len(body) > local.size
    assert peak < 2 * 1024 * 1024  # a few chunks, never the 64 MiB file


def test_a_dashscope_upload_refused_in_failed_uploads_is_final_and_sent_once(
    emulator: FineTuningEmulator, make_connection: Any, tmp_path: Path
) -> None:
    connection = make_connection("ft_dashscope", "dashscope", host=emulator.url("dashscope"), **FAST_RETRIES)
    refusal = {
        "request_id": "req-1",
        "data": {
            "uploaded_files": [],
            "failed_uploads": [
                {"name": "train.jsonl", "code": "InvalidFile", "message": "line 3 is not a conversation"}
            ],
        },
    }
    emulator.inject(
        Fault("body", vendor="dashscope", method="POST", path=r"/files$", body=json.dumps(refusal).encode())
    )
    hook = FineTuningHook(connection)
    spec = JobSpec(model=MODELS["dashscope"], training_file="file-to-upload")
    local = hook.check_training_file(write_records(tmp_path / "train.jsonl", 3), spec)

    with pytest.raises(FineTuningApiError, match="line 3 is not a conversation") as raised:
        hook.upload_file(local, settle_delays=(0,))

    assert raised.value.vendor_code == "InvalidFile"
    uploads = [r for r in emulator.requests if r.method == "POST" and r.path.endswith("/files")]
    assert len(uploads) == 1, "a refusal is final: the file is not sent again"
