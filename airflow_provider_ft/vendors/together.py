"""Together AI fine-tunes API (``https://api.together.ai/v1``, bearer key).

Wire notes (``docs/wire/together.md`` gives the sources): the job object is the body itself, its times ISO 8601
strings; errors are ``{"error": {"message", "type", "param", "code"}}``. The job listing (``GET /fine-tunes``) and
a job's events (``GET /fine-tunes/{id}/events``) are not paginated: each answer is ``{"data": [...]}`` holding
everything, bounded here by the transport's ``max_response_bytes``. Events carry no id and no documented order: they
are read oldest first by their own ``created_at``, and an event's cursor is its place in that order (counted from
1), which only grows at its end. Jobs are deleted with ``DELETE /fine-tunes/{id}``.
The API has no metadata and no job name: a job's task-instance identity travels in its ``suffix`` (at most 40
characters), which the listing answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningConfigError
from airflow_provider_ft.jobs import FineTuningJob, JobEvent, JobStatus
from airflow_provider_ft.vendors import training
from airflow_provider_ft.vendors.base import Dialect, RecordCheck, in_time_order, optional_count, optional_str, shown
from airflow_provider_ft.vendors.ids import job_path
from airflow_provider_ft.vendors.wire import (
    ApiRequest,
    ApiResponse,
    ErrorDetails,
    EventPage,
    FilePage,
    JobPage,
    JobSpec,
    LocalFile,
    RemoteFile,
    Upload,
)

if TYPE_CHECKING:
    from airflow_provider_ft.identity import TaskIdentity

JOBS_PATH = "/fine-tunes"
FILES_PATH = "/files"
UPLOAD_PATH = "/files/upload"
#: The longest ``suffix`` the API takes (the identity tag, ``af-`` and 29 hex digits, fits).
MAX_SUFFIX_LENGTH = 40
#: Together's own top-level hyper-parameter fields of ``POST /fine-tunes`` that ``hyperparameters`` may set.
#: Secrets (``wandb_api_key``, ``hf_api_token``) are not among them: a create body is not a place for a key.
HYPERPARAMETERS = frozenset(
    {
        "n_epochs",
        "learning_rate",
        "batch_size",
        "n_checkpoints",
        "n_evals",
        "warmup_ratio",
        "max_grad_norm",
        "weight_decay",
        "lr_scheduler",
        "train_on_inputs",
        "max_seq_length",
        "packing",
        "from_checkpoint",
    }
)
#: ``method`` names and the ``training_method`` each means (OpenAI's ``supervised`` read as ``sft``).
METHODS = {"sft": "sft", "supervised": "sft", "dpo": "dpo"}
#: ``training_type`` words (any case) and the ``type`` each means.
TRAINING_TYPES = {"full": "Full", "lora": "Lora"}
#: Event types that say why a job failed (the v1 SDK's upper-case words, the v2 SDK's lower-case ones).
ERROR_EVENT_TYPES = frozenset({"job_error", "job_user_error", "JOB_ERROR", "JOB_USER_ERROR"})
#: The error code of a rate limit answered with HTTP 400 (the v1 SDK: "Rate limits were previously coded as 400's
#: with code 'rate_limit'").
RATE_LIMIT_CODE = "rate_limit"
#: Events (or page cursors) above this are not believed.
MAX_EVENTS = 10**9


class TogetherDialect(Dialect):
    name = "together"
    display_name = "Together AI"
    conn_types = ("togetherfinetuning", "together_fine_tuning")
    default_base_url = "https://api.together.ai/v1"
    console_pages = {
        host: "https://api.together.ai/fine-tuning/{job_id}" for host in ("api.together.ai", "api.together.xyz")
    }
    supports_delete = True
    jobs_paged = False
    events_paged = False
    create_options = frozenset({"method", "hyperparameters", "training_type", "seed"})
    status_words: ClassVar[Mapping[str, JobStatus]] = {
        "pending": JobStatus.QUEUED,
        "queued": JobStatus.QUEUED,
        "running": JobStatus.RUNNING,
        "compressing": JobStatus.RUNNING,
        "uploading": JobStatus.RUNNING,
        "cancel_requested": JobStatus.CANCELLING,
        "cancelled": JobStatus.CANCELLED,
        "error": JobStatus.FAILED,
        "user_error": JobStatus.FAILED,
        "completed": JobStatus.SUCCEEDED,
    }

    def get_job(self, job_id: object) -> ApiRequest:
        return ApiRequest("get", "GET", job_path(JOBS_PATH, job_id), job_id=str(job_id))

    def list_page(self, cursor: str | None, page_size: int, filters: Mapping[str, Any]) -> ApiRequest:
        """``GET /fine-tunes``: the whole listing in one answer (the API takes no paging parameters)."""
        _no_cursor(cursor, "job listing")
        return ApiRequest("list", "GET", JOBS_PATH)

    def cancel_job(self, job_id: object) -> ApiRequest:
        return ApiRequest("cancel", "POST", job_path(JOBS_PATH, job_id, "/cancel"), job_id=str(job_id))

    def delete_job(self, job_id: object) -> ApiRequest:
        return ApiRequest("delete", "DELETE", job_path(JOBS_PATH, job_id), job_id=str(job_id))

    def events_page(self, job_id: object, cursor: str | None, limit: int) -> ApiRequest:
        """``GET /fine-tunes/{id}/events``: the whole log; ``parse_events`` keeps the entries after ``cursor``."""
        events_read(cursor)
        return ApiRequest("events", "GET", job_path(JOBS_PATH, job_id, "/events"), job_id=str(job_id))

    def create_job(self, spec: JobSpec, identity: TaskIdentity) -> ApiRequest:
        """``POST /fine-tunes``; the identity goes in ``suffix`` (the API has no metadata and no idempotency key)."""
        self.refuse_other_options(spec)
        model, training_file, validation_file = self.create_basics(spec)
        body: dict[str, Any] = {"model": model, "training_file": training_file, "suffix": identity.tag}
        if validation_file is not None:
            body["validation_file"] = validation_file
        body.update(_hyperparameters(spec.hyperparameters))
        if spec.method is not None:
            body["training_method"] = _training_method(spec.method)
        if spec.training_type is not None:
            body["training_type"] = _training_type(spec.training_type)
        if spec.seed is not None:
            body["random_seed"] = _seed(spec.seed)
        return ApiRequest("create", "POST", JOBS_PATH, json_body=body, retry_safe=False)

    def identity_filters(self, spec: JobSpec, identity: TaskIdentity) -> dict[str, Any]:
        # The listing takes no filter: every job is read, and matched by suffix here.
        return {}

    def carries_identity(self, job: FineTuningJob, identity: TaskIdentity) -> bool:
        return job.name == identity.tag

    def record_check(self, spec: JobSpec) -> RecordCheck:
        kind = spec.method.get("method") if isinstance(spec.method, Mapping) else spec.method
        return training.openai_preference_record if kind == "dpo" else together_record

    def upload_file(self, source: LocalFile) -> ApiRequest:
        """``POST /files/upload``, multipart: ``purpose``, ``file_name``, ``file_type`` and the file, named with its
        content hash."""
        fields = (("purpose", "fine-tune"), ("file_name", source.stored_name), ("file_type", "jsonl"))
        upload = Upload("file", source.stored_name, source, fields)
        return ApiRequest("upload", "POST", UPLOAD_PATH, upload=upload, retry_safe=False)

    def parse_upload(self, payload: object) -> RemoteFile:
        return self._file(payload, "the uploaded file")

    def files_page(self, cursor: str | None, page_size: int) -> ApiRequest:
        """``GET /files``: every file in one answer (the API takes no paging parameters)."""
        _no_cursor(cursor, "file listing")
        return ApiRequest("list files", "GET", FILES_PATH)

    def parse_files_page(self, payload: object, cursor: str | None, page_size: int) -> FilePage:
        """``{"data": [file, ...]}``: the one page there is."""
        entries = self._data(payload, "the files page", "files")
        return FilePage([self._file(entry, f"entry {index} of the files page") for index, entry in enumerate(entries)])

    def is_upload_of(self, remote: RemoteFile, source: LocalFile) -> bool:
        """The content's hash in the name and its size, and a fine-tuning file."""
        usable = remote.status in (None, "fine-tune")
        return usable and source.is_stored_as(remote.filename, remote.size)

    def _file(self, payload: object, what: str) -> RemoteFile:
        entry = self.job_object(payload, what)
        return RemoteFile(
            id=self.file_id_in(entry, "id", what),
            filename=optional_str(entry.get("filename")),
            size=optional_count(entry.get("bytes")),
            # Together's file object has no status; its purpose tells a fine-tuning file from the others.
            status=optional_str(entry.get("purpose")),
        )

    def parse_job(self, payload: object, *, job_id: str | None = None) -> FineTuningJob:
        """The job object (the body itself). ``id`` and ``status`` are required; optional fields of the wrong type
        read as absent; ``created_at`` and ``updated_at`` are ISO 8601 times from 2000 to 2200 when given
        (``MalformedAnswerError`` otherwise, naming the field). ``finished_at`` is ``updated_at`` once terminal."""
        job = self.job_object(payload)
        found_id = self.job_id_in(job, "id", job_id)
        vendor_status = self.status_word_in(job, "status", found_id)
        status = self.job_status(vendor_status)
        updated = self.iso_time(job, "updated_at", f"job {found_id}")
        return FineTuningJob(
            id=found_id,
            vendor=self.name,
            status=status,
            vendor_status=vendor_status,
            model=optional_str(job.get("model")),
            fine_tuned_model=optional_str(job.get("model_output_name")) if status is JobStatus.SUCCEEDED else None,
            created_at=self.iso_time(job, "created_at", f"job {found_id}", decides=True),
            finished_at=updated if status.is_terminal else None,
            error=_failure_message(job) if status is JobStatus.FAILED else None,
            name=self.identity_text(job, "suffix", f"job {found_id}"),
            trained_tokens=optional_count(job.get("token_count")),
            raw=dict(job),
        )

    def parse_page(self, payload: object, cursor: str | None, page_size: int) -> JobPage:
        """``{"data": [job, ...]}``: ``data`` required, every entry a job object; the one page there is."""
        entries = self._data(payload, "the page", "jobs")
        jobs = [
            self.parse_job(self.job_object(entry, f"entry {index} of the page's 'data'"))
            for index, entry in enumerate(entries)
        ]
        return JobPage(jobs)

    def parse_events(self, payload: object, cursor: str | None) -> EventPage:
        """``{"data": [event, ...]}``, the whole log: the entries after the ``cursor``-th, oldest first. Each entry
        is an object with a ``message`` string; ``created_at`` (ISO 8601), ``level``, ``step`` and
        ``total_steps`` are optional. Neither the API reference nor the SDKs say in which order the log comes (the
        SDKs' CLIs print it as sent), so the entries are put in the order of their own ``created_at``
        (``in_time_order``: the order sent where a time is missing, and among entries of the same time); an
        entry's cursor is its place in that order, from 1, which new (later) entries do not change."""
        before = events_read(cursor)
        entries = self._data(payload, "the events page", "events")
        ordered = in_time_order([self._event(entry, index) for index, entry in enumerate(entries)])
        events = [replace(event, cursor=str(place)) for place, event in enumerate(ordered, start=1)]
        return EventPage(events[before:])

    def _data(self, payload: object, what: str, items: str) -> list[Any]:
        entries = self.job_object(payload, what).get("data")
        if not isinstance(entries, list):
            raise self.malformed(f"{what}'s 'data' is {shown(entries)}, not an array of {items}")
        return entries

    def _event(self, entry: object, index: int) -> JobEvent:
        where = f"event {index + 1} of the job's log"
        event = self.job_object(entry, where)
        message = event.get("message")
        if not isinstance(message, str):
            self.unusable("message", where, message, "a string")
            message = ""
        return JobEvent(
            cursor=str(index + 1),
            message=message,
            created_at=self.iso_time(event, "created_at", where),
            level=optional_str(event.get("level")),
            step=optional_count(event.get("step")),
            total_steps=optional_count(event.get("total_steps")),
        )

    def iso_time(self, record: Mapping[str, Any], field: str, whose: str, *, decides: bool = False) -> datetime | None:
        """``record[field]`` as an aware time: ``None`` if absent, ``null`` or blank; an ISO 8601 time from 2000 to
        2200, else ``unusable`` (``MalformedAnswerError`` when ``decides``). A time without a zone is read as UTC."""
        value = record.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            moment: datetime | None = datetime.fromisoformat(value.strip()) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None:
            self.unusable(field, whose, value, "an ISO 8601 time", decides=decides)
            return None
        moment = self.checked_time(moment, field, whose, value, decides=decides)
        if moment is None:
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    def vendor_error(self, response: ApiResponse, payload: Mapping[str, Any] | None) -> ErrorDetails | None:
        if response.status < 400:
            return None
        error = payload.get("error") if payload else None
        if isinstance(error, str):
            return ErrorDetails(message=optional_str(error), request_id=self.request_id(response, payload))
        if not isinstance(error, Mapping):
            message = optional_str(payload.get("message")) if payload else None
            return ErrorDetails(message=message, request_id=self.request_id(response, payload))
        return ErrorDetails(
            code=optional_str(error.get("code")) or optional_str(error.get("type")),
            message=optional_str(error.get("message")),
            request_id=self.request_id(response, payload),
        )

    def is_rate_limit_code(self, code: str | None) -> bool:
        return code == RATE_LIMIT_CODE

    def is_retryable_code(self, code: str | None) -> bool:
        return code == RATE_LIMIT_CODE

    def refuses_in_current_state(self, error: FineTuningApiError) -> bool:
        # Together does not document what cancelling or deleting a job in the wrong state answers: a 400 or 409
        # may mean that, so the hook confirms with a retrieve before treating it as "already terminal".
        return error.http_status in (400, 409)


def together_record(record: object) -> str | None:
    """Supervised data in any of Together's formats: chat (``messages``), instruction (``prompt`` and
    ``completion``) or general (``text``)."""
    if isinstance(record, Mapping):
        if "prompt" in record or "completion" in record:
            return _instruction_record(record)
        if "text" in record and "messages" not in record:
            return training.text_record(record)
    return training.chat_record(record)


def _instruction_record(record: Mapping[str, Any]) -> str | None:
    for name in ("prompt", "completion"):
        if not isinstance(record.get(name), str):
            return f"the record's '{name}' is not a string"
    return None


def _no_cursor(cursor: str | None, what: str) -> None:
    if cursor is not None:
        raise FineTuningConfigError(f"The Together AI {what} has one page only, got cursor {printable(cursor, 40)!r}")


def events_read(cursor: str | None) -> int:
    """How many log entries a cursor says were read (``None``: none); the cursors are this dialect's ``str(n)``."""
    if cursor is None:
        return 0
    if not (isinstance(cursor, str) and cursor.isascii() and cursor.isdigit() and len(cursor) <= len(str(MAX_EVENTS))):
        raise FineTuningConfigError(
            f"A Together AI events cursor is an entry number, got '{printable(repr(cursor), 40)}'"
        )
    return int(cursor)


def _hyperparameters(hyperparameters: object) -> dict[str, Any]:
    """Together's own hyper-parameter fields, as given; any other key is refused, naming it."""
    if hyperparameters is None:
        return {}
    if not isinstance(hyperparameters, Mapping):
        raise FineTuningConfigError(f"hyperparameters must be a mapping, got {type(hyperparameters).__name__}")
    unknown = sorted(str(key) for key in hyperparameters if key not in HYPERPARAMETERS)
    if unknown:
        raise FineTuningConfigError(
            f"Together AI takes no hyperparameter {printable(', '.join(unknown), 200)} "
            f"(the ones it takes: {', '.join(sorted(HYPERPARAMETERS))})"
        )
    for key, value in hyperparameters.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise FineTuningConfigError(f"hyperparameter {key} must be a finite number")
    return dict(hyperparameters)


def _training_method(method: object) -> dict[str, Any]:
    """``training_method``: ``sft`` (or ``supervised``) or ``dpo``, or the whole object (``{"method": ...}``)."""
    if isinstance(method, Mapping):
        if method.get("method") not in ("sft", "dpo"):
            raise FineTuningConfigError("method's 'method' must be 'sft' or 'dpo' (Together AI training_method)")
        return dict(method)
    if not isinstance(method, str) or method not in METHODS:
        raise FineTuningConfigError(f"method must be one of {', '.join(METHODS)}, or a training_method object")
    return {"method": METHODS[method]}


def _training_type(training_type: object) -> dict[str, Any]:
    """``training_type``: ``full`` or ``lora`` (any case), or the whole object (``{"type": "Lora", "lora_r": 8}``)."""
    if isinstance(training_type, Mapping):
        if training_type.get("type") not in TRAINING_TYPES.values():
            raise FineTuningConfigError("training_type's 'type' must be 'Full' or 'Lora' (Together AI)")
        return dict(training_type)
    word = TRAINING_TYPES.get(training_type.lower()) if isinstance(training_type, str) else None
    if word is None:
        raise FineTuningConfigError("training_type must be 'full' or 'lora', or a Together AI training_type object")
    return {"type": word}


def _seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2_147_483_647:
        raise FineTuningConfigError(f"seed must be a whole number from 0 to 2147483647, got {seed!r:.40}")
    return seed


def _failure_message(job: Mapping[str, Any]) -> str | None:
    """Why a failed job failed: its ``error`` if it has one, else the message of the last error event among the
    ``events`` a retrieve answer carries (``job_error``, ``job_user_error`` or level ``error``)."""
    error = job.get("error")
    if isinstance(error, Mapping):
        error = error.get("message") or error.get("code")
    if optional_str(error):
        return str(error)
    events = job.get("events")
    for event in reversed(events if isinstance(events, list) else []):
        if isinstance(event, Mapping) and _is_error_event(event) and optional_str(event.get("message")):
            return str(event["message"])
    return None


def _is_error_event(event: Mapping[str, Any]) -> bool:
    kind, level = event.get("type"), event.get("level")
    return kind in ERROR_EVENT_TYPES or (isinstance(level, str) and level.lower() == "error")
