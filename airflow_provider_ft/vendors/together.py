"""Together AI fine-tunes API (``https://api.together.ai/v1``, bearer key).

Wire notes (``docs/wire/together.md`` gives the sources): the job object is the body itself, its times ISO 8601;
errors are ``{"error": {"message", "type", "param", "code"}}``. The job listing and a job's events are not paged:
each answer is ``{"data": [...]}`` holding everything (bounded by the transport's ``max_response_bytes``). Events
carry no id and no documented order. The API has no metadata and no job name: a job's task-instance identity
travels in its ``suffix``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningConfigError
from airflow_provider_ft.jobs import FineTuningJob, JobEvent, JobStatus
from airflow_provider_ft.loss import LossPoint
from airflow_provider_ft.vendors import checks, training, wire
from airflow_provider_ft.vendors.base import Dialect, status_table
from airflow_provider_ft.vendors.decoding import error_object
from airflow_provider_ft.vendors.readers import (
    first_loss,
    first_step,
    in_time_order,
    optional_count,
    optional_step,
    optional_str,
    shown,
)
from airflow_provider_ft.vendors.training import RecordCheck

if TYPE_CHECKING:
    from airflow_provider_ft.identity import TaskIdentity

FILES_PATH = "/files"
UPLOAD_PATH = "/files/upload"
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
#: The fields of a ``GET /fine-tunes/{id}/metrics`` row that give its step, its training and its validation loss
#: (docs/wire/together.md: training rows carry ``train/*`` keys, evaluation rows ``eval/*``).
METRICS_STEP_FIELDS = ("train/global_step", "eval/global_step")
METRICS_TRAIN_LOSS_FIELDS = ("train/loss",)
METRICS_VALID_LOSS_FIELDS = ("eval/loss",)


class TogetherDialect(Dialect):
    name = "together"
    display_name = "Together AI"
    conn_types = ("togetherfinetuning", "together_fine_tuning")
    console_pages = {
        host: "https://api.together.ai/fine-tuning/{job_id}" for host in ("api.together.ai", "api.together.xyz")
    }
    default_base_url = "https://api.together.ai/v1"
    jobs_path = "/fine-tunes"
    supports_delete = True
    jobs_paged = False
    events_paged = False
    create_options = frozenset({"method", "hyperparameters", "training_type", "seed"})
    retryable_codes = rate_limit_codes = frozenset({RATE_LIMIT_CODE})
    status_words = status_table(
        "queued running cancelled",
        QUEUED="pending",
        RUNNING="compressing uploading",
        CANCELLING="cancel_requested",
        FAILED="error user_error",
        SUCCEEDED="completed",
    )

    def list_page(self, cursor: str | None, page_size: int, filters: Mapping[str, Any]) -> wire.ApiRequest:
        """``GET /fine-tunes``: the whole listing in one answer (the API takes no paging parameters)."""
        _no_cursor(cursor, "job listing")
        return self.request("list", "GET", self.jobs_path)

    def events_page(self, job_id: object, cursor: str | None, limit: int) -> wire.ApiRequest:
        """``GET /fine-tunes/{id}/events``: the whole log; ``parse_events`` keeps the entries after ``cursor``."""
        events_read(cursor)
        return self.job_request("events", "GET", job_id, "/events")

    def create_job(self, spec: wire.JobSpec, identity: TaskIdentity) -> wire.ApiRequest:
        """``POST /fine-tunes``; the identity goes in ``suffix`` (the API has no metadata and no idempotency key)."""
        body = self.create_body(spec, suffix=identity.tag)
        body.update(_hyperparameters(spec.hyperparameters))
        if spec.method is not None:
            body["training_method"] = _training_method(spec.method)
        if spec.training_type is not None:
            body["training_type"] = _training_type(spec.training_type)
        if spec.seed is not None:
            body["random_seed"] = checks.seed(spec.seed)
        return self.request("create", "POST", self.jobs_path, json_body=body)

    def record_check(self, spec: wire.JobSpec) -> RecordCheck:
        kind = spec.method.get("method") if isinstance(spec.method, Mapping) else spec.method
        return training.openai_preference_record if kind == "dpo" else together_record

    def upload_file(self, source: wire.LocalFile) -> wire.ApiRequest:
        """``POST /files/upload``, multipart: ``purpose``, ``file_name``, ``file_type`` and the file, named with its
        content hash."""
        fields = (("purpose", "fine-tune"), ("file_name", source.stored_name), ("file_type", "jsonl"))
        return self.request(
            "upload", "POST", UPLOAD_PATH, upload=wire.Upload("file", source.stored_name, source, fields)
        )

    def parse_upload(self, payload: object) -> wire.RemoteFile:
        return self._file(payload, "the uploaded file")

    def files_page(self, cursor: str | None, page_size: int) -> wire.ApiRequest:
        """``GET /files``: every file in one answer (the API takes no paging parameters)."""
        _no_cursor(cursor, "file listing")
        return self.request("list files", "GET", FILES_PATH)

    def parse_files_page(self, payload: object, cursor: str | None, page_size: int) -> wire.FilePage:
        """``{"data": [file, ...]}``: the one page there is."""
        entries = self.array_in(payload, "data", "the files page", "files")
        return wire.FilePage([self._file(entry, what) for entry, what in self.each(entries, "the files page")])

    def is_upload_of(self, remote: wire.RemoteFile, source: wire.LocalFile) -> bool:
        """Same content-addressed name and size, and a fine-tuning file."""
        return remote.status in (None, "fine-tune") and remote.is_named_upload_of(source)

    def _file(self, payload: object, what: str) -> wire.RemoteFile:
        # Together's file object has no status; its purpose tells a fine-tuning file from the others.
        return self.file_in(self.job_object(payload, what), what, size="bytes", status="purpose")

    def parse_job(self, payload: object, *, job_id: str | None = None) -> FineTuningJob:
        """The job object (the body itself); ``finished_at`` is ``updated_at`` once the job is over."""
        job = self.job_object(payload)
        found_id = self.job_id_in(job, "id", job_id)
        vendor_status = self.status_word_in(job, "status", found_id)
        status = self.job_status(vendor_status)
        updated = self.text_time(job, "updated_at", f"job {found_id}")
        return FineTuningJob(
            id=found_id,
            vendor=self.name,
            status=status,
            vendor_status=vendor_status,
            model=optional_str(job.get("model")),
            fine_tuned_model=optional_str(job.get("model_output_name")) if status is JobStatus.SUCCEEDED else None,
            created_at=self.text_time(job, "created_at", f"job {found_id}", decides=True),
            finished_at=updated if status.is_terminal else None,
            error=_failure_message(job) if status is JobStatus.FAILED else None,
            name=self.identity_text(job, "suffix", f"job {found_id}"),
            trained_tokens=optional_count(job.get("token_count")),
            raw=dict(job),
        )

    def parse_page(self, payload: object, cursor: str | None, page_size: int) -> wire.JobPage:
        """``{"data": [job, ...]}``: ``data`` required, every entry a job object; the one page there is."""
        entries = self.array_in(payload, "data", "the page", "jobs")
        return wire.JobPage([self.parse_job(job) for job, _ in self.each(entries, "the page's 'data'")])

    def parse_events(self, payload: object, cursor: str | None) -> wire.EventPage:
        """``{"data": [event, ...]}``, the whole log: the entries after the ``cursor``-th. Each is an object with a
        ``message``; ``created_at``, ``level``, ``step`` and ``total_steps`` are optional. No source says in which
        order the log comes, so the entries are put in the order of their own times (``in_time_order``); an entry's
        cursor is its place in that order, from 1, which new (later) entries do not change."""
        before = events_read(cursor)
        entries = self.array_in(payload, "data", "the events page", "events")
        ordered = in_time_order([self._event(entry, index) for index, entry in enumerate(entries)])
        events = [replace(event, cursor=str(place)) for place, event in enumerate(ordered, start=1)]
        return wire.EventPage(events[before:])

    def _event(self, entry: object, index: int) -> JobEvent:
        where = f"event {index + 1} of the job's log"
        event = self.job_object(entry, where)
        return JobEvent(
            cursor=str(index + 1),
            message=self.message_in(event, where),
            created_at=self.text_time(event, "created_at", where),
            level=optional_str(event.get("level")),
            step=optional_step(event.get("step")),
            total_steps=optional_step(event.get("total_steps")),
        )

    def metrics_request(self, job_id: object) -> wire.ApiRequest:
        """``GET /fine-tunes/{id}/metrics``: every recorded metrics row of the job (no filter sent)."""
        return self.job_request("metrics", "GET", job_id, "/metrics")

    def parse_metrics(self, payload: object) -> list[LossPoint]:
        """``{"metrics": [row, ...]}``, each row a flat object of numbers, oldest first: the rows that give a step
        and a loss, as points (``loss.loss_curve`` orders and merges them). No ``metrics`` is no row; a row that is
        not an object, or whose figures are unusable, is skipped (the figures are informational)."""
        rows = self.job_object(payload, "the metrics answer").get("metrics")
        if rows is None:
            return []
        if not isinstance(rows, list):
            raise self.malformed(f"the metrics answer's 'metrics' is {shown(rows)}, not an array of rows")
        points = (_metrics_point(row) for row in rows if isinstance(row, Mapping))
        return [point for point in points if point is not None]

    def vendor_error(self, response: wire.ApiResponse, payload: Mapping[str, Any] | None) -> wire.ErrorDetails | None:
        if response.status < 400:
            return None
        error = payload.get("error") if payload else None
        if isinstance(error, Mapping):
            return error_object(error, self.request_id(response, payload))
        message = error if isinstance(error, str) else payload.get("message") if payload else None
        return wire.ErrorDetails(message=optional_str(message), request_id=self.request_id(response, payload))


def _metrics_point(row: Mapping[str, Any]) -> LossPoint | None:
    """The step and losses of one metrics row, or ``None`` if it lacks a usable step or any usable loss."""
    step = first_step(row, METRICS_STEP_FIELDS)
    train_loss = first_loss(row, METRICS_TRAIN_LOSS_FIELDS)
    valid_loss = first_loss(row, METRICS_VALID_LOSS_FIELDS)
    if step is None or (train_loss is None and valid_loss is None):
        return None
    return LossPoint(step, train_loss, valid_loss)


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
    return 0 if cursor is None else checks.number_cursor(cursor, "A Together AI events cursor is an entry number")


def _hyperparameters(hyperparameters: object) -> dict[str, Any]:
    """Together's own hyper-parameter fields, as given; any other key is refused, naming it."""
    if hyperparameters is None:
        return {}
    chosen = checks.mapping(hyperparameters, "hyperparameters")
    unknown = sorted(str(key) for key in chosen if key not in HYPERPARAMETERS)
    if unknown:
        raise FineTuningConfigError(
            f"Together AI takes no hyperparameter {printable(', '.join(unknown), 200)} "
            f"(the ones it takes: {', '.join(sorted(HYPERPARAMETERS))})"
        )
    for key, value in chosen.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise FineTuningConfigError(f"hyperparameter {key} must be a finite number")
    return chosen


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
