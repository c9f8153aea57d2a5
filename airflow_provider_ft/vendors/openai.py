"""OpenAI fine_tuning jobs API (also OpenAI-compatible gateways).

Wire notes: the job object is the body itself; errors are ``{"error": {"message", "type", "param", "code"}}``;
listing pages by cursor (``after`` = id of the last job seen, ``has_more``). Job events page the same way, newest
first (``after`` = id of the oldest event of the previous page). There is no job deletion. Pause and
resume answer the job (``paused``, which the spec's status enum does not list, then ``queued``).

Every answer OpenAI documents is kept, with its source, in ``tests/conformance/openai/``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_ft import defaults
from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningConfigError
from airflow_provider_ft.jobs import FineTuningJob, JobEvent, JobStatus
from airflow_provider_ft.vendors import training
from airflow_provider_ft.vendors.base import (
    EARLIEST_TIME,
    LATEST_TIME,
    TIME_RANGE,
    Dialect,
    RecordCheck,
    in_time_order,
    optional_count,
    optional_str,
    shown,
)
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

JOBS_PATH = "/fine_tuning/jobs"
FILES_PATH = "/files"
#: The metadata key that carries a job's task-instance identity (filtered on server-side when looking it up).
IDENTITY_KEY = "airflow_ti"
#: The spec's limits of ``metadata``: pairs, key and value lengths.
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
_OWN_PREFIX = "airflow_"
METHODS = ("supervised", "dpo", "reinforcement")
MAX_SUFFIX_LENGTH = 64
_EARLIEST_SECONDS = EARLIEST_TIME.timestamp()
_LATEST_SECONDS = LATEST_TIME.timestamp()
#: The longest event id believed (real ones are ``ftevent-`` and 24 characters).
MAX_EVENT_ID_LENGTH = 200
#: How OpenAI answers (HTTP 429) a create past the organization's fine-tuning job limit: the daily limit's code, and
#: the words its message starts with (``... Your organization has reached the maximum of N fine-tuning requests per
#: day for the model ...``). docs/operators/create.md gives the sources.
JOB_LIMIT_CODES = frozenset({"daily_rate_limit_exceeded"})
JOB_LIMIT_WORDING = "This fine-tune request has been rate-limited"


class OpenAIDialect(Dialect):
    name = "openai"
    display_name = "OpenAI"
    conn_types: ClassVar[tuple[str, ...]] = ("openaifinetuning", "openai_fine_tuning", "openai")
    default_base_url = defaults.OPENAI_BASE_URL
    console_pages: ClassVar[Mapping[str, str]] = {"api.openai.com": "https://platform.openai.com/finetune/{job_id}"}
    list_filters: ClassVar[tuple[str, ...]] = ("metadata",)
    supports_pause = True
    events_newest_first = True
    create_options = frozenset({"method", "hyperparameters", "suffix", "seed", "metadata", "integrations"})
    #: Every word of every version of the spec's ``FineTuningJob.status``, and the pause answer's ``paused``.
    status_words: ClassVar[Mapping[str, JobStatus]] = {
        # openai-openapi since 2023-09-20 (e3efc59), an enum since 2023-11-06 (802d487)
        "validating_files": JobStatus.QUEUED,
        "queued": JobStatus.QUEUED,
        "running": JobStatus.RUNNING,
        "succeeded": JobStatus.SUCCEEDED,
        "failed": JobStatus.FAILED,
        "cancelled": JobStatus.CANCELLED,
        # the first fine_tuning API, 2023-08-31 (6654037) to 2023-09-19 (02152fd): a new job was "pending"
        "created": JobStatus.QUEUED,
        "pending": JobStatus.QUEUED,
        # the pauseFineTuningJob example's answer
        "paused": JobStatus.PAUSED,
    }

    def __init__(self, extras: Mapping[str, Any] | None = None) -> None:
        # Connections made for the official OpenAI provider keep client options under openai_client_kwargs;
        # read those too so an existing openai_default connection works as it is.
        extras = dict(extras or {})
        client_kwargs = extras.get("openai_client_kwargs")
        if isinstance(client_kwargs, Mapping):
            extras = {**client_kwargs, **{k: v for k, v in extras.items() if k != "openai_client_kwargs"}}
        super().__init__(extras)

    def extra_headers(self) -> dict[str, str]:
        headers = {}
        if self.extras.get("organization"):
            headers["OpenAI-Organization"] = str(self.extras["organization"])
        if self.extras.get("project"):
            headers["OpenAI-Project"] = str(self.extras["project"])
        return headers

    def get_job(self, job_id: object) -> ApiRequest:
        return ApiRequest("get", "GET", job_path(JOBS_PATH, job_id), job_id=str(job_id))

    def list_page(self, cursor: str | None, page_size: int, filters: Mapping[str, Any]) -> ApiRequest:
        params = [("limit", str(page_size))]
        if cursor:
            params.append(("after", cursor))
        metadata = filters.get("metadata") or {}
        params.extend((f"metadata[{key}]", str(value)) for key, value in sorted(metadata.items()))
        return ApiRequest("list", "GET", JOBS_PATH, params=tuple(params))

    def cancel_job(self, job_id: object) -> ApiRequest:
        return ApiRequest("cancel", "POST", job_path(JOBS_PATH, job_id, "/cancel"), job_id=str(job_id))

    def pause_job(self, job_id: object) -> ApiRequest:
        return ApiRequest("pause", "POST", job_path(JOBS_PATH, job_id, "/pause"), job_id=str(job_id))

    def resume_job(self, job_id: object) -> ApiRequest:
        return ApiRequest("resume", "POST", job_path(JOBS_PATH, job_id, "/resume"), job_id=str(job_id))

    def events_page(self, job_id: object, cursor: str | None, limit: int) -> ApiRequest:
        params = [("limit", str(limit))]
        if cursor is not None:
            params.append(("after", event_id(cursor)))
        return ApiRequest(
            "events", "GET", job_path(JOBS_PATH, job_id, "/events"), params=tuple(params), job_id=str(job_id)
        )

    def create_job(self, spec: JobSpec, identity: TaskIdentity) -> ApiRequest:
        """``POST /fine_tuning/jobs``; the identity goes in ``metadata`` (``airflow_ti`` and readable ids)."""
        self.refuse_other_options(spec)
        model, training_file, validation_file = self.create_basics(spec)
        body: dict[str, Any] = {"model": model, "training_file": training_file}
        if validation_file is not None:
            body["validation_file"] = validation_file
        method = _method(spec.method, spec.hyperparameters)
        if method is not None:
            body["method"] = method
        if spec.suffix is not None:
            body["suffix"] = _suffix(spec.suffix)
        if spec.seed is not None:
            body["seed"] = _seed(spec.seed)
        if spec.integrations is not None:
            body["integrations"] = _integrations(spec.integrations)
        body["metadata"] = {**_user_metadata(spec.metadata), **identity_metadata(identity)}
        return ApiRequest("create", "POST", JOBS_PATH, json_body=body, retry_safe=False)

    def identity_filters(self, spec: JobSpec, identity: TaskIdentity) -> dict[str, Any]:
        return {"metadata": {IDENTITY_KEY: identity.key}}

    def carries_identity(self, job: FineTuningJob, identity: TaskIdentity) -> bool:
        return job.metadata.get(IDENTITY_KEY) == identity.key

    def record_check(self, spec: JobSpec) -> RecordCheck:
        kind = spec.method.get("type") if isinstance(spec.method, Mapping) else spec.method
        return training.openai_preference_record if kind == "dpo" else training.chat_record

    def upload_file(self, source: LocalFile) -> ApiRequest:
        """``POST /files``, multipart: ``purpose=fine-tune`` and the file, named with its content hash."""
        upload = Upload("file", source.stored_name, source, (("purpose", "fine-tune"),))
        return ApiRequest("upload", "POST", FILES_PATH, upload=upload, retry_safe=False)

    def parse_upload(self, payload: object) -> RemoteFile:
        """The ``file`` object an upload answers: one that says it is another object (an ``upload`` of the Uploads
        API, a job) or a deleted file is ``MalformedAnswerError``, never a file to train on."""
        what = "the uploaded file"
        remote = self._file(payload, what)
        if self.job_object(payload, what).get("deleted") is True:
            raise self.malformed(f"{what} {remote.id} is marked deleted")
        return remote

    def files_page(self, cursor: str | None, page_size: int) -> ApiRequest:
        params = [("purpose", "fine-tune"), ("limit", str(page_size)), ("order", "desc")]
        if cursor:
            params.append(("after", cursor))
        return ApiRequest("list files", "GET", FILES_PATH, params=tuple(params))

    def parse_files_page(self, payload: object, cursor: str | None, page_size: int) -> FilePage:
        """``{"data": [file, ...], "has_more": bool}``; the next cursor is the last file's id. Without ``has_more``
        (OpenAI's listing before it paged, Azure's ``FileList``) the answer holds every file."""
        entries, has_more = self._list_envelope(payload, "the files page", "files", unpaged=True)
        files = [self._file(entry, f"entry {index} of the files page") for index, entry in enumerate(entries)]
        return FilePage(files, self.next_cursor(has_more, files, lambda: files[-1].id, "the files page"))

    def is_upload_of(self, remote: RemoteFile, source: LocalFile) -> bool:
        """The content's hash in the name and its size (OpenAI's file object has no hash nor description field: the
        name is what it keeps of ours), and not refused by the vendor (``status``, deprecated: ``uploaded``,
        ``processed`` or ``error``)."""
        return remote.status not in ("error", "deleted") and source.is_stored_as(remote.filename, remote.size)

    def _file(self, payload: object, what: str) -> RemoteFile:
        """A ``file`` object: an ``id`` that is a file id, and an ``object`` that is ``file`` where there is one."""
        entry = self.job_object(payload, what)
        kind = entry.get("object")
        if kind is not None and kind != "file":
            raise self.malformed(f"{what} is {shown(kind)} ('object'), not a file")
        return RemoteFile(
            id=self.file_id_in(entry, "id", what),
            filename=optional_str(entry.get("filename")),
            size=optional_count(entry.get("bytes")),
            status=optional_str(entry.get("status")),
        )

    def parse_job(self, payload: object, *, job_id: str | None = None) -> FineTuningJob:
        """The job object (the body itself). ``id`` and ``status`` are required; optional fields of the wrong
        type read as absent; a number in a time field must be Unix seconds from 2000 to 2200 (``MalformedAnswerError``
        otherwise, naming the field); ``metadata`` values that are not strings are kept as their JSON text."""
        job = self.job_object(payload)
        found_id = self.job_id_in(job, "id", job_id)
        vendor_status = self.status_word_in(job, "status", found_id)
        metadata = self._metadata(job.get("metadata"), found_id)
        return FineTuningJob(
            id=found_id,
            vendor=self.name,
            status=self.job_status(vendor_status),
            vendor_status=vendor_status,
            model=optional_str(job.get("model")),
            fine_tuned_model=optional_str(job.get("fine_tuned_model")),
            created_at=self.unix_time(job, "created_at", f"job {found_id}", decides=True),
            finished_at=self.unix_time(job, "finished_at", f"job {found_id}"),
            error=_error_message(job.get("error")),
            name=optional_str(job.get("user_provided_suffix")) or metadata.get("name"),
            trained_tokens=optional_count(job.get("trained_tokens")),
            estimated_finish=self.unix_time(job, "estimated_finish", f"job {found_id}"),
            metadata=metadata,
            raw=dict(job),
        )

    def parse_page(self, payload: object, cursor: str | None, page_size: int) -> JobPage:
        """``{"data": [job, ...], "has_more": bool}``: both required, every entry a job object."""
        entries, has_more = self._list_envelope(payload, "the page", "jobs")
        jobs = [
            self.parse_job(self.job_object(entry, f"entry {index} of the page's 'data'"))
            for index, entry in enumerate(entries)
        ]
        return JobPage(jobs, self.next_cursor(has_more, jobs, lambda: jobs[-1].id, "the page"))

    def parse_events(self, payload: object, cursor: str | None) -> EventPage:
        """``{"data": [event, ...], "has_more": bool}``, newest first where ``events_newest_first`` (OpenAI), oldest
        first otherwise (Azure): ``data`` required, every entry an event with an ``id`` (the cursor),
        ``created_at`` (Unix seconds from 2000 to 2200) and a ``message`` string; ``level`` and the ``data``
        figures (``step``, ``total_steps``, ``train_loss``) are optional. The next cursor is the id of the page's
        last entry (``after``: "the last event from the previous pagination request")."""
        entries, has_more = self._list_envelope(payload, "the events page", "events")
        events = [self._event(entry, index) for index, entry in enumerate(entries)]
        next_cursor = self.next_cursor(has_more, events, lambda: events[-1].cursor, "the events page")
        return EventPage(in_time_order(events[::-1] if self.events_newest_first else events), next_cursor)

    def _list_envelope(
        self, payload: object, what: str, items: str, *, unpaged: bool = False
    ) -> tuple[list[Any], bool]:
        """The ``data`` array of a list answer (required) and whether more follow.

        ``has_more`` is ``true`` or ``false``, or absent (``null``): some API versions send none (Azure's
        2023-10-01-preview job list, Azure's and older OpenAI file lists). A listing that pages by ``after`` then
        goes on while a page brings entries, as openai-python's ``CursorPage.has_next_page`` does; an ``unpaged``
        one ends with this answer. Any other value is ``MalformedAnswerError``.
        """
        page = self.job_object(payload, what)
        entries = page.get("data")
        if not isinstance(entries, list):
            raise self.malformed(f"{what}'s 'data' is {shown(entries)}, not an array of {items}")
        has_more = page.get("has_more")
        if has_more is None:
            return entries, bool(entries) and not unpaged
        if not isinstance(has_more, bool):
            raise self.malformed(f"{what}'s 'has_more' is {shown(has_more)}, not true or false")
        return entries, has_more

    def _event(self, entry: object, index: int) -> JobEvent:
        event = self.job_object(entry, f"entry {index} of the events page")
        found = event.get("id")
        if not isinstance(found, str) or not found.strip() or len(found) > MAX_EVENT_ID_LENGTH:
            raise self.malformed(f"entry {index} of the events page has 'id' {shown(found)}, not an event id")
        where = f"event {printable(found, 60)}"
        message = event.get("message")
        if not isinstance(message, str):
            self.unusable("message", where, message, "a string")
            message = ""
        data = event.get("data")
        figures: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
        loss = figures.get("train_loss")
        return JobEvent(
            cursor=found,
            message=message,
            created_at=self.unix_time(event, "created_at", where),
            level=optional_str(event.get("level")),
            step=optional_count(figures.get("step")),
            total_steps=optional_count(figures.get("total_steps")),
            train_loss=_finite_number(loss),
        )

    def _metadata(self, value: object, job_id: str) -> dict[str, str]:
        """The job's ``metadata`` (it carries the create's identity): ``{}`` if absent or ``null``, and
        ``MalformedAnswerError`` if it is not an object."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.malformed(f"the 'metadata' of job {job_id} is {shown(value)}, not an object")
        return _metadata_pairs(value)

    def unix_time(self, record: Mapping[str, Any], field: str, whose: str, *, decides: bool = False) -> datetime | None:
        """``record[field]`` as a time: ``None`` if absent; Unix seconds from 2000 to 2200, else ``unusable``."""
        value = record.get(field)
        if value is None:
            return None
        # NaN fails both comparisons; a huge int compares without converting to float.
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not _EARLIEST_SECONDS <= value < _LATEST_SECONDS
        ):
            self.unusable(field, whose, value, TIME_RANGE, decides=decides)
            return None
        return datetime.fromtimestamp(value, tz=UTC)

    def vendor_error(self, response: ApiResponse, payload: Mapping[str, Any] | None) -> ErrorDetails | None:
        if response.status < 400:
            return None
        error = payload.get("error") if payload else None
        if not isinstance(error, Mapping):
            return ErrorDetails(request_id=self.request_id(response, payload))
        return ErrorDetails(
            code=optional_str(error.get("code")) or optional_str(error.get("type")),
            message=optional_str(error.get("message")),
            request_id=self.request_id(response, payload),
        )

    def is_job_limit(self, status: int, failure: ErrorDetails) -> bool:
        """A 429 with the daily job limit's code, or worded as OpenAI words its fine-tuning job limits (sources in
        docs/operators/create.md)."""
        if status != 429:
            return False
        return failure.code in JOB_LIMIT_CODES or (failure.message or "").startswith(JOB_LIMIT_WORDING)

    def refuses_in_current_state(self, error: FineTuningApiError) -> bool:
        # OpenAI does not document what cancelling a finished job answers: any 400/409 may mean that,
        # so the hook confirms with a retrieve before treating it as "already terminal".
        return error.http_status in (400, 409)


def identity_metadata(identity: TaskIdentity) -> dict[str, str]:
    """The metadata pairs that tag a job with its task instance: the key, and the ids for people to read."""
    readable = {
        "airflow_dag_id": identity.dag_id,
        "airflow_task_id": identity.task_id,
        "airflow_run_id": identity.run_id,
        "airflow_map_index": str(identity.map_index),
    }
    return {IDENTITY_KEY: identity.key, **{key: value[:MAX_METADATA_VALUE] for key, value in readable.items()}}


def _user_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """The user's metadata pairs, checked against the spec's limits and the keys this provider keeps for itself."""
    if metadata is None:
        return {}
    room = MAX_METADATA_PAIRS - 5
    if not isinstance(metadata, Mapping) or len(metadata) > room:
        raise FineTuningConfigError(f"metadata must be a mapping of at most {room} pairs (5 are this provider's)")
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY or key.startswith(_OWN_PREFIX):
            raise FineTuningConfigError(
                f"metadata key {printable(repr(key), 80)} must be a string of 1 to {MAX_METADATA_KEY} characters "
                f"not starting with '{_OWN_PREFIX}' (those keys are this provider's)"
            )
        if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE:
            raise FineTuningConfigError(
                f"metadata value of {key!r} must be a string of at most {MAX_METADATA_VALUE} characters"
            )
    return dict(metadata)


def _method(method: object, hyperparameters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``method`` object: a method name (with ``hyperparameters``) or the whole object as given."""
    if hyperparameters is not None and not isinstance(hyperparameters, Mapping):
        raise FineTuningConfigError(f"hyperparameters must be a mapping, got {type(hyperparameters).__name__}")
    if method is None:
        method = "supervised" if hyperparameters is not None else None
    if method is None:
        return None
    if isinstance(method, Mapping):
        if method.get("type") not in METHODS:
            raise FineTuningConfigError(f"method's 'type' must be one of {', '.join(METHODS)}")
        if hyperparameters is not None:
            raise FineTuningConfigError("give the hyperparameters inside the method object, not beside it")
        return dict(method)
    if method not in METHODS:
        raise FineTuningConfigError(f"method must be one of {', '.join(METHODS)}, or a method object")
    if method == "reinforcement":
        raise FineTuningConfigError("a reinforcement method needs its grader: give the whole method object")
    chosen: dict[str, Any] = {"hyperparameters": dict(hyperparameters)} if hyperparameters else {}
    return {"type": method, method: chosen}


def _suffix(suffix: object) -> str:
    if not isinstance(suffix, str) or not 1 <= len(suffix) <= MAX_SUFFIX_LENGTH:
        raise FineTuningConfigError(f"suffix must be a string of 1 to {MAX_SUFFIX_LENGTH} characters")
    return suffix


def _seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2_147_483_647:
        raise FineTuningConfigError(f"seed must be a whole number from 0 to 2147483647, got {seed!r:.40}")
    return seed


def _integrations(integrations: object) -> list[dict[str, Any]]:
    if not isinstance(integrations, list | tuple) or not all(isinstance(item, Mapping) for item in integrations):
        raise FineTuningConfigError("integrations must be a list of integration objects")
    return [dict(item) for item in integrations]


def event_id(cursor: object) -> str:
    """An events cursor (an event id) as sent in ``after``; ``FineTuningConfigError`` if it cannot be one."""
    if not isinstance(cursor, str) or not cursor.strip() or len(cursor) > MAX_EVENT_ID_LENGTH:
        raise FineTuningConfigError(f"An OpenAI events cursor is an event id, got {printable(repr(cursor), 60)}")
    return cursor


def _finite_number(value: object) -> float | None:
    """A finite number as a float, or ``None`` for anything else (an optional figure of the wrong type)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return number if math.isfinite(number) else None


def _metadata_pairs(value: Mapping[str, Any]) -> dict[str, str]:
    """Key-value metadata; values that are not strings (against the API's rule) are kept as their JSON text."""
    return {str(key): item if isinstance(item, str) else _json_text(item) for key, item in value.items()}


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return str(value)


def _error_message(error: Any) -> str | None:
    if not isinstance(error, Mapping):
        return None
    message = optional_str(error.get("message"))
    code = optional_str(error.get("code"))
    if message and code:
        return f"{code}: {message}"
    return message or code
