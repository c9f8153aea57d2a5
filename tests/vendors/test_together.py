"""The Together AI dialect alone: its status words, create body, unpaged listing and log, errors (no I/O)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningConfigError
from airflow_provider_ft.identity import TaskIdentity
from airflow_provider_ft.jobs import JobStatus
from airflow_provider_ft.vendors.together import TogetherDialect
from airflow_provider_ft.vendors.wire import ApiResponse, JobSpec

IDENTITY = TaskIdentity("dag", "train", "manual__1")
JOB = {"id": "ft-3b883474-f39c-40d9-9d5a-7f97ba9eeb9f", "status": "running", "created_at": "2025-01-02T03:04:05.678Z"}


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("pending", JobStatus.QUEUED),
        ("queued", JobStatus.QUEUED),
        ("running", JobStatus.RUNNING),
        ("compressing", JobStatus.RUNNING),
        ("uploading", JobStatus.RUNNING),
        ("cancel_requested", JobStatus.CANCELLING),
        ("cancelled", JobStatus.CANCELLED),
        ("error", JobStatus.FAILED),
        ("user_error", JobStatus.FAILED),
        ("completed", JobStatus.SUCCEEDED),
        ("Completed", JobStatus.UNKNOWN),
        ("paused", JobStatus.UNKNOWN),
    ],
)
def test_status_words(word: str, status: JobStatus) -> None:
    assert TogetherDialect().parse_job({**JOB, "status": word}).status is status


def test_a_failed_job_tells_why_from_its_last_error_event_and_times_are_utc() -> None:
    events = [
        {"type": "job_start", "level": "info", "message": "started"},
        {"type": "JOB_USER_ERROR", "level": "Error", "message": "line 7 has no messages"},
    ]
    job = TogetherDialect().parse_job(
        {**JOB, "status": "user_error", "events": events, "updated_at": "2025-01-02T05:00:00Z"}
    )
    assert job.error == "line 7 has no messages"
    assert job.created_at is not None
    assert job.created_at.isoformat() == "2025-01-02T03:04:05.678000+00:00"
    assert job.finished_at is not None
    assert job.finished_at.hour == 5


def test_the_create_body_maps_the_spec_to_togethers_own_fields() -> None:
    spec = JobSpec(
        model="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        training_file="file-3b883474-f39c-40d9-9d5a-7f97ba9eeb9f",
        validation_file="file-00000000-0000-0000-0000-000000000001",
        method="supervised",
        hyperparameters={"n_epochs": 2, "learning_rate": 1e-5, "batch_size": "max", "lr_scheduler": {"x": 1}},
        training_type="LoRA",
        seed=42,
    )
    request = TogetherDialect().create_job(spec, IDENTITY)
    assert (request.method, request.path, request.retry_safe) == ("POST", "/fine-tunes", False)
    assert request.json_body == {
        "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        "training_file": "file-3b883474-f39c-40d9-9d5a-7f97ba9eeb9f",
        "validation_file": "file-00000000-0000-0000-0000-000000000001",
        "suffix": IDENTITY.tag,
        "n_epochs": 2,
        "learning_rate": 1e-5,
        "batch_size": "max",
        "lr_scheduler": {"x": 1},
        "training_method": {"method": "sft"},
        "training_type": {"type": "Lora"},
        "random_seed": 42,
    }
    assert len(IDENTITY.tag) <= 40, "the identity fits Together's suffix"


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"suffix": "mine"}, "takes no suffix"),
        ({"metadata": {"a": "b"}}, "takes no metadata"),
        ({"hyperparameters": {"hf_api_token": "hf_x"}}, "takes no hyperparameter hf_api_token"),
        ({"hyperparameters": {"n_epochs": float("nan")}}, "must be a finite number"),
        ({"method": "reinforcement"}, "method must be one of"),
        ({"method": {"method": "ppo"}}, "'sft' or 'dpo'"),
        ({"training_type": {"type": "QLoRA"}}, "'Full' or 'Lora'"),
        ({"seed": True}, "seed must be"),
    ],
)
def test_refused_options_name_themselves_and_keep_secrets_out(options: dict[str, object], says: str) -> None:
    spec = JobSpec(model="m", training_file="file-1", **options)  # type: ignore[arg-type]
    with pytest.raises(FineTuningConfigError, match=says) as raised:
        TogetherDialect().create_job(spec, IDENTITY)
    assert "hf_x" not in str(raised.value)


def test_the_listing_is_one_unpaged_request_and_a_cursor_is_refused() -> None:
    dialect = TogetherDialect()
    assert dialect.list_page(None, 100, {}).params == ()
    page = dialect.parse_page({"data": [JOB]}, None, 100)
    assert ([job.id for job in page.jobs], page.next_cursor) == ([JOB["id"]], None)
    with pytest.raises(FineTuningConfigError, match="one page only"):
        dialect.list_page("2", 100, {})


def test_events_after_a_cursor_are_the_log_past_that_many_entries() -> None:
    dialect = TogetherDialect()
    log = {"data": [{"message": f"entry {n}", "created_at": "2025-01-02T03:04:05Z"} for n in range(1, 5)]}
    assert [event.cursor for event in dialect.parse_events(log, None).events] == ["1", "2", "3", "4"]
    later = dialect.parse_events(log, "2")
    assert ([event.message for event in later.events], later.next_cursor) == (["entry 3", "entry 4"], None)
    assert dialect.parse_events(log, "9").events == []
    for cursor in ("-1", "x", "1" * 11):
        with pytest.raises(FineTuningConfigError):
            dialect.events_page("ft-1", cursor, 100)
    # The message is informational: an entry without a usable one keeps its place (its cursor), with no text.
    assert [
        (event.cursor, event.message) for event in dialect.parse_events({"data": [{"message": 7}]}, None).events
    ] == [("1", "")]


def event_at(second: int, message: str) -> dict[str, object]:
    return {"object": "fine-tune-event", "message": message, "created_at": f"2025-01-02T03:04:{second:02d}Z"}


def test_events_are_read_oldest_first_by_their_own_times_whatever_order_they_come_in() -> None:
    # No Together source says in which order the log comes: read it by the entries' times, and let an entry's
    # cursor be its place in that order, which newer entries do not change.
    dialect = TogetherDialect()
    newest_first = {"data": [event_at(30, "third"), event_at(20, "second"), event_at(10, "first")]}
    page = dialect.parse_events(newest_first, None)
    assert [(event.cursor, event.message) for event in page.events] == [("1", "first"), ("2", "second"), ("3", "third")]
    grown = {"data": [event_at(40, "fourth"), *newest_first["data"]]}
    assert [(event.cursor, event.message) for event in dialect.parse_events(grown, "3").events] == [("4", "fourth")]
    oldest_first = {"data": list(reversed(grown["data"]))}
    assert dialect.parse_events(oldest_first, "3").events == dialect.parse_events(grown, "3").events


def test_events_without_a_time_on_each_keep_the_order_sent_and_ties_keep_it_too() -> None:
    dialect = TogetherDialect()
    untimed = {"data": [event_at(30, "b"), {"message": "no time"}, event_at(10, "a")]}
    assert [event.message for event in dialect.parse_events(untimed, None).events] == ["b", "no time", "a"]
    tied = {"data": [event_at(10, "x"), event_at(10, "y"), event_at(5, "w")]}
    assert [event.message for event in dialect.parse_events(tied, None).events] == ["w", "x", "y"]


def test_a_rate_limit_sent_as_a_400_is_a_rate_limit() -> None:
    # The v1 SDK: "Rate limits were previously coded as 400's with code 'rate_limit'".
    dialect = TogetherDialect()
    body = {"error": {"message": "Rate limit exceeded", "code": "rate_limit"}}
    with pytest.raises(FineTuningApiError) as raised:
        dialect.decode(dialect.get_job("ft-1"), ApiResponse(400, {}, json.dumps(body).encode()))
    assert (raised.value.rate_limited, raised.value.retryable) == (True, True)


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            {"error": {"message": "Invalid model", "type": "invalid_request_error", "code": "bad_model"}},
            "bad_model",
            "Invalid model",
        ),
        ({"error": {"message": "slow down", "type": "rate_limit"}}, "rate_limit", "slow down"),
        ({"error": "plain text"}, None, "plain text"),
        ({"message": "Not Found"}, None, "Not Found"),
    ],
)
def test_error_bodies(body: dict[str, object], code: str | None, message: str) -> None:
    dialect = TogetherDialect()
    request = dialect.get_job("ft-1")
    with pytest.raises(FineTuningApiError) as raised:
        dialect.decode(request, ApiResponse(400, {"x-request-id": "req-1"}, json.dumps(body).encode()))
    assert raised.value.vendor_code == code
    assert message in str(raised.value)
    assert raised.value.request_id == "req-1"


def test_records_of_every_supervised_format_pass_and_dpo_needs_preferences() -> None:
    dialect = TogetherDialect()
    check = dialect.record_check(JobSpec(model="m", training_file="file-1"))
    assert check({"messages": [{"role": "user", "content": "hi"}]}) is None
    assert check({"prompt": "a", "completion": "b"}) is None
    assert check({"text": "plain"}) is None
    assert check({"prompt": "a"}) == "the record's 'completion' is not a string"
    dpo = dialect.record_check(JobSpec(model="m", training_file="file-1", method="dpo"))
    assert dpo({"messages": [{"role": "user", "content": "hi"}]}) == "the record has no 'input'"
