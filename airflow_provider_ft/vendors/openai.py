"""OpenAI fine_tuning jobs API (also OpenAI-compatible gateways).

Wire notes (``docs/wire/openai.md`` gives the sources; every documented answer is a case of
``tests/conformance/openai/``): the job object is the body itself; errors are ``{"error": {"message", "type",
"param", "code"}}``; listings page by ``after`` (the last id seen) and ``has_more``; job events page the same way,
newest first. There is no job deletion. Pause and resume answer the job (``paused``, then ``queued``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_ft import defaults
from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningConfigError
from airflow_provider_ft.jobs import FineTuningJob, JobEvent
from airflow_provider_ft.vendors import checks, training, wire
from airflow_provider_ft.vendors.base import Dialect, status_table
from airflow_provider_ft.vendors.decoding import error_object
from airflow_provider_ft.vendors.readers import (
    code_and_message,
    first_loss,
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
#: The metadata key that carries a job's task-instance identity (filtered on server-side when looking it up).
IDENTITY_KEY = "airflow_ti"
#: The spec's limits of ``metadata``: pairs, key and value lengths.
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
_OWN_PREFIX = "airflow_"
METHODS = ("supervised", "dpo", "reinforcement")
MAX_SUFFIX_LENGTH = 64
#: The longest event id believed (real ones are ``ftevent-`` and 24 characters).
MAX_EVENT_ID_LENGTH = 200
#: How OpenAI answers (HTTP 429) a create past the organization's fine-tuning job limit: the daily limit's code, and
#: the words its message starts with. docs/operators/create.md gives the sources.
JOB_LIMIT_CODES = frozenset({"daily_rate_limit_exceeded"})
JOB_LIMIT_WORDING = "This fine-tune request has been rate-limited"
#: Where a ``metrics`` event's ``data`` (and a checkpoint's ``metrics``) gives the training and the validation loss,
#: in order of preference: the names of the spec's ``FineTuningJobCheckpoint.metrics`` (docs/wire/openai.md). The
#: batch ``valid_loss`` comes every few steps; ``full_valid_loss``, over the whole validation file, less often.
TRAIN_LOSS_FIELDS = ("train_loss",)
VALID_LOSS_FIELDS = ("valid_loss", "full_valid_loss")


class OpenAIDialect(Dialect):
    name = "openai"
    display_name = "OpenAI"
    conn_types: ClassVar[tuple[str, ...]] = ("openaifinetuning", "openai_fine_tuning", "openai")
    console_pages: ClassVar[Mapping[str, str]] = {"api.openai.com": "https://platform.openai.com/finetune/{job_id}"}
    default_base_url = defaults.OPENAI_BASE_URL
    jobs_path = "/fine_tuning/jobs"
    extra_header_fields = {"organization": "OpenAI-Organization", "project": "OpenAI-Project"}
    list_filters: ClassVar[tuple[str, ...]] = ("metadata",)
    supports_pause = True
    events_newest_first = True
    create_options = frozenset({"method", "hyperparameters", "suffix", "seed", "metadata", "integrations"})
    #: The file statuses of a file that cannot be trained on.
    unusable_file_statuses: ClassVar[tuple[str, ...]] = ("error", "deleted")
    #: Every word of every version of the spec's ``FineTuningJob.status`` (``created`` and ``pending``: the first
    #: API's, 2023-08-31 to 2023-09-19), and the pause answer's ``paused``.
    status_words = status_table(
        "queued running paused succeeded failed cancelled", QUEUED="validating_files created pending"
    )

    def __init__(self, extras: Mapping[str, Any] | None = None) -> None:
        # Connections made for the official OpenAI provider keep client options under openai_client_kwargs;
        # read those too so an existing openai_default connection works as it is.
        extras = dict(extras or {})
        client_kwargs = extras.get("openai_client_kwargs")
        if isinstance(client_kwargs, Mapping):
            extras = {**client_kwargs, **{k: v for k, v in extras.items() if k != "openai_client_kwargs"}}
        super().__init__(extras)

    def list_page(self, cursor: str | None, page_size: int, filters: Mapping[str, Any]) -> wire.ApiRequest:
        params = [("limit", str(page_size)), *_after(cursor)]
        metadata = (filters.get("metadata") if "metadata" in self.list_filters else None) or {}
        params.extend((f"metadata[{key}]", str(value)) for key, value in sorted(metadata.items()))
        return self.request("list", "GET", self.jobs_path, tuple(params))

    def events_page(self, job_id: object, cursor: str | None, limit: int) -> wire.ApiRequest:
        after = () if cursor is None else (("after", event_id(cursor)),)
        return self.job_request("events", "GET", job_id, "/events", (("limit", str(limit)), *after))

    def create_job(self, spec: wire.JobSpec, identity: TaskIdentity) -> wire.ApiRequest:
        """``POST /fine_tuning/jobs``; the identity goes in ``metadata`` (``airflow_ti`` and readable ids)."""
        body = self.create_body(spec)
        method = _method(spec.method, spec.hyperparameters)
        if method is not None:
            body["method"] = method
        if spec.suffix is not None:
            body["suffix"] = _suffix(spec.suffix)
        if spec.seed is not None:
            body["seed"] = checks.seed(spec.seed)
        if spec.integrations is not None:
            body["integrations"] = _integrations(spec.integrations)
        body["metadata"] = {**_user_metadata(spec.metadata), **identity_metadata(identity)}
        return self.request("create", "POST", self.jobs_path, json_body=body)

    def identity_filters(self, spec: wire.JobSpec, identity: TaskIdentity) -> dict[str, Any]:
        return {"metadata": {IDENTITY_KEY: identity.key}}

    def carries_identity(self, job: FineTuningJob, identity: TaskIdentity) -> bool:
        return job.metadata.get(IDENTITY_KEY) == identity.key

    def record_check(self, spec: wire.JobSpec) -> RecordCheck:
        kind = spec.method.get("type") if isinstance(spec.method, Mapping) else spec.method
        return training.openai_preference_record if kind == "dpo" else training.chat_record

    def upload_file(self, source: wire.LocalFile) -> wire.ApiRequest:
        """``POST /files``, multipart: ``purpose=fine-tune`` and the file, named with its content hash."""
        upload = wire.Upload("file", source.stored_name, source, (("purpose", "fine-tune"),))
        return self.request("upload", "POST", FILES_PATH, upload=upload)

    def parse_upload(self, payload: object) -> wire.RemoteFile:
        """The ``file`` object an upload answers; another object, or a deleted file, is ``MalformedAnswerError``."""
        what = "the uploaded file"
        remote = self._file(payload, what)
        if self.job_object(payload, what).get("deleted") is True:
            raise self.malformed(f"{what} {remote.id} is marked deleted")
        return remote

    def files_page(self, cursor: str | None, page_size: int) -> wire.ApiRequest:
        params = (("purpose", "fine-tune"), ("limit", str(page_size)), ("order", "desc"), *_after(cursor))
        return self.request("list files", "GET", FILES_PATH, params)

    def parse_files_page(self, payload: object, cursor: str | None, page_size: int) -> wire.FilePage:
        """``{"data": [file, ...], "has_more": bool}``; the next cursor is the last file's id."""
        entries, has_more = self._list_envelope(payload, "the files page", "files", unpaged=True)
        files = [self._file(entry, what) for entry, what in self.each(entries, "the files page")]
        return wire.FilePage(files, self.next_cursor(has_more, files, lambda: files[-1].id, "the files page"))

    def is_upload_of(self, remote: wire.RemoteFile, source: wire.LocalFile) -> bool:
        """Same content-addressed name and size, and not refused by the vendor."""
        return remote.status not in self.unusable_file_statuses and remote.is_named_upload_of(source)

    def _file(self, payload: object, what: str) -> wire.RemoteFile:
        """A ``file`` object: an ``id`` that is a file id, and an ``object`` that is ``file`` where there is one."""
        entry = self.job_object(payload, what)
        kind = entry.get("object")
        if kind is not None and kind != "file":
            raise self.malformed(f"{what} is {shown(kind)} ('object'), not a file")
        return self.file_in(entry, what, size="bytes", status="status")

    def parse_job(self, payload: object, *, job_id: str | None = None) -> FineTuningJob:
        """The job object (the body itself); its times are Unix seconds."""
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
            error=code_and_message(job.get("error")),
            name=optional_str(job.get("user_provided_suffix")) or metadata.get("name"),
            trained_tokens=optional_count(job.get("trained_tokens")),
            estimated_finish=self.unix_time(job, "estimated_finish", f"job {found_id}"),
            metadata=metadata,
            raw=dict(job),
        )

    def parse_page(self, payload: object, cursor: str | None, page_size: int) -> wire.JobPage:
        """``{"data": [job, ...], "has_more": bool}``: both required, every entry a job object."""
        entries, has_more = self._list_envelope(payload, "the page", "jobs")
        jobs = [self.parse_job(job) for job, _ in self.each(entries, "the page's 'data'")]
        return wire.JobPage(jobs, self.next_cursor(has_more, jobs, lambda: jobs[-1].id, "the page"))

    def parse_events(self, payload: object, cursor: str | None) -> wire.EventPage:
        """``{"data": [event, ...], "has_more": bool}``, newest first where ``events_newest_first`` (OpenAI), oldest
        first otherwise (Azure). An event's ``id`` is its cursor; the next cursor is the id of the page's last one."""
        entries, has_more = self._list_envelope(payload, "the events page", "events")
        events = [self._event(entry, index) for index, entry in enumerate(entries)]
        next_cursor = self.next_cursor(has_more, events, lambda: events[-1].cursor, "the events page")
        return wire.EventPage(in_time_order(events[::-1] if self.events_newest_first else events), next_cursor)

    def _list_envelope(
        self, payload: object, what: str, items: str, *, unpaged: bool = False
    ) -> tuple[list[Any], bool]:
        """The ``data`` array of a list answer and whether more follow. Without ``has_more`` (some API versions send
        none) a listing that pages by ``after`` goes on while a page brings entries, as openai-python's
        ``CursorPage.has_next_page`` does; an ``unpaged`` one ends with this answer."""
        page = self.job_object(payload, what)
        entries = self.array_in(page, "data", what, items)
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
        data = event.get("data")
        figures: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
        return JobEvent(
            cursor=found,
            message=self.message_in(event, where),
            created_at=self.unix_time(event, "created_at", where),
            level=optional_str(event.get("level")),
            step=optional_step(figures.get("step")),
            total_steps=optional_step(figures.get("total_steps")),
            train_loss=first_loss(figures, TRAIN_LOSS_FIELDS),
            valid_loss=first_loss(figures, VALID_LOSS_FIELDS),
        )

    def _metadata(self, value: object, job_id: str) -> dict[str, str]:
        """The job's ``metadata`` (it carries the identity): ``{}`` if absent, strict about its type; values that are
        not strings are kept as their JSON text."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.malformed(f"the 'metadata' of job {job_id} is {shown(value)}, not an object")
        return {str(key): item if isinstance(item, str) else _json_text(item) for key, item in value.items()}

    def vendor_error(self, response: wire.ApiResponse, payload: Mapping[str, Any] | None) -> wire.ErrorDetails | None:
        if response.status < 400:
            return None
        error = payload.get("error") if payload else None
        if not isinstance(error, Mapping):
            return wire.ErrorDetails(request_id=self.request_id(response, payload))
        return error_object(error, self.request_id(response, payload))

    def is_job_limit(self, status: int, failure: wire.ErrorDetails) -> bool:
        """A 429 with the daily job limit's code, or worded as OpenAI words its fine-tuning job limits (sources in
        docs/operators/create.md)."""
        if status != 429:
            return False
        return failure.code in JOB_LIMIT_CODES or (failure.message or "").startswith(JOB_LIMIT_WORDING)


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
    chosen = None if hyperparameters is None else checks.mapping(hyperparameters, "hyperparameters")
    if method is None:
        method = "supervised" if chosen is not None else None
    if method is None:
        return None
    if isinstance(method, Mapping):
        if method.get("type") not in METHODS:
            raise FineTuningConfigError(f"method's 'type' must be one of {', '.join(METHODS)}")
        if chosen is not None:
            raise FineTuningConfigError("give the hyperparameters inside the method object, not beside it")
        return dict(method)
    if method not in METHODS:
        raise FineTuningConfigError(f"method must be one of {', '.join(METHODS)}, or a method object")
    if method == "reinforcement":
        raise FineTuningConfigError("a reinforcement method needs its grader: give the whole method object")
    return {"type": method, method: {"hyperparameters": chosen} if chosen else {}}


def _suffix(suffix: object) -> str:
    if not isinstance(suffix, str) or not 1 <= len(suffix) <= MAX_SUFFIX_LENGTH:
        raise FineTuningConfigError(f"suffix must be a string of 1 to {MAX_SUFFIX_LENGTH} characters")
    return suffix


def _integrations(integrations: object) -> list[dict[str, Any]]:
    if not isinstance(integrations, list | tuple) or not all(isinstance(item, Mapping) for item in integrations):
        raise FineTuningConfigError("integrations must be a list of integration objects")
    return [dict(item) for item in integrations]


def _after(cursor: str | None) -> tuple[tuple[str, str], ...]:
    return (("after", cursor),) if cursor else ()


def event_id(cursor: object) -> str:
    """An events cursor (an event id) as sent in ``after``; ``FineTuningConfigError`` if it cannot be one."""
    if not isinstance(cursor, str) or not cursor.strip() or len(cursor) > MAX_EVENT_ID_LENGTH:
        raise FineTuningConfigError(f"An OpenAI events cursor is an event id, got {printable(repr(cursor), 60)}")
    return cursor


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return str(value)
