"""DashScope (Alibaba Cloud Model Studio) fine-tunes API.

Wire notes (``docs/wire/dashscope.md`` gives the sources): success ``{"request_id", "output": {...}}``; error
``{"request_id", "code", "message"}``, which can also arrive with HTTP 200. Pages are numbered from 1
(``page_no``/``page_size``). Times carry no zone. A job's log is read by line, oldest first, with the ``total`` of
lines: ``offset`` is how many lines to skip (from 0), ``line`` how many to read (at most 1000); ``logs`` is an array
of lines or one string of them. A job is tagged with its task-instance identity in ``job_name``, a documented create
parameter that every job object returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_provider_ft import defaults
from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningConfigError
from airflow_provider_ft.jobs import FineTuningJob, JobEvent, JobStatus
from airflow_provider_ft.vendors import training
from airflow_provider_ft.vendors.base import Dialect, RecordCheck, optional_count, optional_str, shown
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
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f")
_RETRYABLE_CODES = ("Throttling", "InternalError", "ServiceUnavailable", "RequestTimeOut")
_SUCCESS_OUTPUT = '{"status": "success"}'
#: Page numbers and ``total`` above this are not believed (a listing stops after ``defaults.MAX_PAGES`` anyway).
MAX_TOTAL = 10**9


class DashScopeDialect(Dialect):
    name = "dashscope"
    display_name = "DashScope"
    conn_types = ("dashscope",)
    default_base_url = defaults.DASHSCOPE_BASE_URL
    # DashScope has no page per job: Alibaba's guides send you to the console's "Model tuning" page (模型调优,
    # https://bailian.console.aliyun.com/?tab=model#/efm/model_manager), where the region's jobs are listed.
    console_pages = {
        "dashscope.aliyuncs.com": "https://bailian.console.aliyun.com/?tab=model#/efm/model_manager",
        "dashscope-intl.aliyuncs.com": "https://modelstudio.console.alibabacloud.com/?tab=model#/efm/model_manager",
        "dashscope-us.aliyuncs.com": "https://modelstudio.console.alibabacloud.com/?tab=model#/efm/model_manager",
    }
    list_filters = ("model",)
    supports_delete = True
    events_page_size = 1000
    create_options = frozenset({"hyperparameters", "training_type", "suffix"})
    #: The reference's words (``PENDING``, ``QUEUING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED``, ``CANCELED``) and the
    #: SDK's ``TaskStatus`` (``SUSPENDED``, ``UNKNOWN``: a task the gateway does not know; not terminal, as the SDK's
    #: fine-tune plane reads it), with ``CANCELING``.
    status_words: ClassVar[Mapping[str, JobStatus]] = {
        "PENDING": JobStatus.QUEUED,
        "QUEUING": JobStatus.QUEUED,
        "RUNNING": JobStatus.RUNNING,
        "SUSPENDED": JobStatus.PAUSED,
        "CANCELING": JobStatus.CANCELLING,
        "SUCCEEDED": JobStatus.SUCCEEDED,
        "FAILED": JobStatus.FAILED,
        "CANCELED": JobStatus.CANCELLED,
        "UNKNOWN": JobStatus.UNKNOWN,
    }

    def __init__(self, extras: Mapping[str, Any] | None = None) -> None:
        super().__init__(extras)
        self.timezone = parse_timezone(self.extras.get("timezone") or defaults.DASHSCOPE_TIMEZONE)

    def extra_headers(self) -> dict[str, str]:
        workspace = self.extras.get("workspace")
        return {"X-DashScope-WorkSpace": str(workspace)} if workspace else {}

    def get_job(self, job_id: object) -> ApiRequest:
        return ApiRequest("get", "GET", job_path(JOBS_PATH, job_id), job_id=str(job_id))

    def list_page(self, cursor: str | None, page_size: int, filters: Mapping[str, Any]) -> ApiRequest:
        params = [("page_no", str(page_number(cursor))), ("page_size", str(page_size))]
        if filters.get("model"):
            params.append(("model", str(filters["model"])))
        return ApiRequest("list", "GET", JOBS_PATH, params=tuple(params))

    def cancel_job(self, job_id: object) -> ApiRequest:
        return ApiRequest("cancel", "POST", job_path(JOBS_PATH, job_id, "/cancel"), job_id=str(job_id))

    def delete_job(self, job_id: object) -> ApiRequest:
        return ApiRequest("delete", "DELETE", job_path(JOBS_PATH, job_id), job_id=str(job_id))

    def events_page(self, job_id: object, cursor: str | None, limit: int) -> ApiRequest:
        """The log lines after line ``cursor`` (``None``: from the first). ``offset`` is the number of lines to skip:
        the reference ("Query fine-tuning logs") reads from line ``offset + 1``, and its default is 0."""
        params = (("offset", str(lines_read(cursor))), ("line", str(limit)))
        return ApiRequest("logs", "GET", job_path(JOBS_PATH, job_id, "/logs"), params=params, job_id=str(job_id))

    def create_job(self, spec: JobSpec, identity: TaskIdentity) -> ApiRequest:
        """``POST /fine-tunes``; the identity goes in ``job_name``, "the name of the fine-tuning job" (reference
        "Create a fine-tuning job"), which every job object returns (the API has no metadata and no idempotency key).
        ``suffix`` is sent as ``finetuned_output_suffix``, the fine-tuned model's name suffix."""
        self.refuse_other_options(spec)
        model, training_file, validation_file = self.create_basics(spec)
        body: dict[str, Any] = {"model": model, "training_file_ids": [training_file], "job_name": identity.tag}
        if spec.suffix is not None:
            if not isinstance(spec.suffix, str) or not spec.suffix.strip():
                raise FineTuningConfigError("suffix must be a non-empty string (DashScope finetuned_output_suffix)")
            body["finetuned_output_suffix"] = spec.suffix
        if validation_file is not None:
            body["validation_file_ids"] = [validation_file]
        if spec.hyperparameters is not None:
            if not isinstance(spec.hyperparameters, Mapping):
                raise FineTuningConfigError("hyperparameters must be a mapping (DashScope hyper_parameters)")
            body["hyper_parameters"] = dict(spec.hyperparameters)
        if spec.training_type is not None:
            if not isinstance(spec.training_type, str) or not spec.training_type.strip():
                raise FineTuningConfigError("training_type must be a DashScope training type such as 'sft'")
            body["training_type"] = spec.training_type
        return ApiRequest("create", "POST", JOBS_PATH, json_body=body, retry_safe=False)

    def identity_filters(self, spec: JobSpec, identity: TaskIdentity) -> dict[str, Any]:
        # The listing filters by model only: every job of the model is read, and matched by name here.
        return {"model": spec.model}

    def carries_identity(self, job: FineTuningJob, identity: TaskIdentity) -> bool:
        return job.name == identity.tag

    def record_check(self, spec: JobSpec) -> RecordCheck:
        kind = (spec.training_type or "sft").lower()
        if kind.startswith("dpo"):
            return training.dashscope_preference_record
        return training.text_record if kind.startswith("cpt") else training.chat_record

    def upload_file(self, source: LocalFile) -> ApiRequest:
        """``POST /files``, multipart: the file in ``files``, its content hash in ``descriptions``."""
        fields = (("purpose", "fine-tune"), ("descriptions", source.description))
        upload = Upload("files", source.stored_name, source, fields)
        return ApiRequest("upload", "POST", FILES_PATH, upload=upload, retry_safe=False)

    def parse_upload(self, payload: object) -> RemoteFile:
        """``{"data": {"uploaded_files": [{"file_id", "name"}], "failed_uploads": [{"name", "code", "message"}]}}``:
        the one file sent is the one in ``uploaded_files`` (the reference's example answers a request of several
        files, stored and refused side by side); a file refused comes back in ``failed_uploads`` with HTTP 200, and
        is raised as ``FineTuningApiError`` when none was stored."""
        data = self.job_object(self.job_object(payload, "the upload answer").get("data"), "the upload answer's 'data'")
        failed = data.get("failed_uploads")
        uploaded = data.get("uploaded_files")
        if isinstance(failed, list) and failed and not uploaded:
            first = failed[0] if isinstance(failed[0], Mapping) else {}
            code = optional_str(first.get("code"))
            message = printable(optional_str(first.get("message")) or "no reason given", 500)
            # Only a 2xx answer is parsed here; status and code mark the refusal as final (nothing was stored).
            refusal = f"DashScope refused the upload: {message}"
            raise FineTuningApiError(refusal, http_status=200, vendor_code=code or "failed_uploads")
        if not isinstance(uploaded, list) or len(uploaded) != 1:
            raise self.malformed(f"the upload answer's 'uploaded_files' is {shown(uploaded)}, not one file")
        entry = self.job_object(uploaded[0], "the uploaded file")
        return RemoteFile(self.file_id_in(entry, "file_id", "the uploaded file"), optional_str(entry.get("name")))

    def files_page(self, cursor: str | None, page_size: int) -> ApiRequest:
        params = (("page_no", str(page_number(cursor))), ("page_size", str(page_size)))
        return ApiRequest("list files", "GET", FILES_PATH, params=params)

    def parse_files_page(self, payload: object, cursor: str | None, page_size: int) -> FilePage:
        """``{"data": {"files": [file, ...], "total": n}}``: ``files`` required; a full page means more without one."""
        page_no = page_number(cursor)
        data = self.job_object(self.job_object(payload, "the files page").get("data"), "the files page's 'data'")
        entries = data.get("files")
        if not isinstance(entries, list):
            raise self.malformed(f"the files page's 'files' is {shown(entries)}, not an array of files")
        files = [self._file(entry, index) for index, entry in enumerate(entries)]
        total = self._total(data.get("total"), "the files page's", "files")
        has_more = page_no * page_size < total if total is not None else len(files) >= page_size
        return FilePage(files, self.next_cursor(has_more, files, lambda: str(page_no + 1), "the files page"))

    def is_upload_of(self, remote: RemoteFile, source: LocalFile) -> bool:
        """The content hash in the description, and the size where the listing gives it."""
        return remote.description == source.description and remote.size in (None, source.size)

    def _file(self, entry: object, index: int) -> RemoteFile:
        what = f"entry {index} of the files page"
        file = self.job_object(entry, what)
        return RemoteFile(
            id=self.file_id_in(file, "file_id", what),
            filename=optional_str(file.get("name")),
            size=optional_count(file.get("size")),
            description=optional_str(file.get("description")),
        )

    def parse_job(self, payload: object, *, job_id: str | None = None) -> FineTuningJob:
        """The job in ``{"output": {...}}``. ``job_id`` and ``status`` are required; optional fields of the wrong
        type read as absent; times follow ``parse_time`` (``end_time`` is read only once the job is terminal)."""
        job = self.job_object(self.job_object(payload, "the answer").get("output"), "the answer's 'output'")
        return self._job(job, job_id)

    def parse_page(self, payload: object, cursor: str | None, page_size: int) -> JobPage:
        """``{"output": {"jobs": [job, ...], "total": n}}``: ``jobs`` required, every entry a job object;
        ``total`` optional, a whole number from 0 to ``MAX_TOTAL``. Without a total, a full page means more."""
        page_no = page_number(cursor)
        output = self.job_object(self.job_object(payload, "the page").get("output"), "the page's 'output'")
        entries = output.get("jobs")
        if not isinstance(entries, list):
            raise self.malformed(f"the page's 'jobs' is {shown(entries)}, not an array of jobs")
        jobs = [
            self._job(self.job_object(entry, f"entry {index} of the page's 'jobs'"), None)
            for index, entry in enumerate(entries)
        ]
        total = self._total(output.get("total"), "the page's", "jobs")
        has_more = page_no * page_size < total if total is not None else len(jobs) >= page_size
        return JobPage(jobs, self.next_cursor(has_more, jobs, lambda: str(page_no + 1), "the page"))

    def parse_events(self, payload: object, cursor: str | None) -> EventPage:
        """``{"output": {"total": n, "logs": [line, ...]}}``: both required, ``total`` a whole number from 0 to
        ``MAX_TOTAL``, every line a string; ``logs`` may also be one string of lines (the SDK: "the server may return
        logs either as a single string or as an array of lines"), split at its newlines. Each line's cursor is its
        line number; the next cursor is the last line's number while fewer than ``total`` lines are read."""
        before = lines_read(cursor)
        output = self.job_object(
            self.job_object(payload, "the logs answer").get("output"), "the logs answer's 'output'"
        )
        lines = output.get("logs")
        if isinstance(lines, str):
            lines = text_lines(lines)
        if not isinstance(lines, list):
            raise self.malformed(f"the logs answer's 'logs' is {shown(lines)}, not an array of lines or a string")
        total = self._total(output.get("total"), "the logs answer's", "lines")
        if total is None:
            raise self.malformed(f"the logs answer's 'total' is null, not a number of lines from 0 to {MAX_TOTAL}")
        events = []
        for index, line in enumerate(lines):
            if not isinstance(line, str):
                raise self.malformed(f"line {before + index + 1} of the job's log is {shown(line)}, not a string")
            events.append(JobEvent(cursor=str(before + index + 1), message=line))
        read = before + len(events)
        return EventPage(events, self.next_cursor(read < total, events, lambda: str(read), "the logs answer"))

    def parse_cancel(self, payload: object, *, job_id: str | None = None) -> FineTuningJob | None:
        """``None`` (fetch the job then): the answer is ``{"output": {"status": "success"}}``, the call's result,
        not the job's state; any other answer is ``MalformedAnswerError``."""
        self._call_succeeded(payload, "cancel")
        return None

    def parse_delete(self, payload: object) -> None:
        """Check the answer is ``{"output": {"status": "success"}}``; ``MalformedAnswerError`` otherwise."""
        self._call_succeeded(payload, "delete")

    def _job(self, job: Mapping[str, Any], expected_id: str | None) -> FineTuningJob:
        found_id = self.job_id_in(job, "job_id", expected_id)
        vendor_status = self.status_word_in(job, "status", found_id)
        status = self.job_status(vendor_status)
        return FineTuningJob(
            id=found_id,
            vendor=self.name,
            status=status,
            vendor_status=vendor_status,
            model=optional_str(job.get("model")) or optional_str(job.get("base_model")),
            fine_tuned_model=optional_str(job.get("finetuned_output")),
            created_at=self.parse_time(job.get("create_time"), "create_time", f"job {found_id}", decides=True),
            finished_at=self.parse_time(job.get("end_time"), "end_time", f"job {found_id}")
            if status.is_terminal
            else None,
            error=_failure_message(job) if status is JobStatus.FAILED else None,
            name=self._job_name(job, found_id),
            trained_tokens=optional_count(job.get("usage")),
            raw=dict(job),
        )

    def _job_name(self, job: Mapping[str, Any], job_id: str) -> str | None:
        """``job_name``; the reference's field tables also spell it ``jobs_name``, read when ``job_name`` is absent."""
        name = self.identity_text(job, "job_name", f"job {job_id}")
        return name if name is not None else self.identity_text(job, "jobs_name", f"job {job_id}")

    def _total(self, value: object, whose: str, unit: str) -> int | None:
        """A ``total`` count from 0 to ``MAX_TOTAL``; ``None`` if absent (``null``)."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOTAL:
            raise self.malformed(f"{whose} 'total' is {shown(value)}, not a number of {unit} from 0 to {MAX_TOTAL}")
        return value

    def _call_succeeded(self, payload: object, operation: str) -> None:
        output = self.job_object(payload, f"the {operation} answer").get("output")
        result = output.get("status") if isinstance(output, Mapping) else None
        if not isinstance(result, str) or result.lower() != "success":
            raise self.malformed(
                f"the {operation} answer's 'output' is {shown(output)}, not the documented {_SUCCESS_OUTPUT}"
            )

    def vendor_error(self, response: ApiResponse, payload: Mapping[str, Any] | None) -> ErrorDetails | None:
        code = optional_str(payload.get("code")) if payload else None
        if code is None and response.status < 400:
            return None
        payload = payload or {}
        return ErrorDetails(
            code=code,
            message=optional_str(payload.get("message")) or optional_str(payload.get("msg")),
            request_id=self.request_id(response, payload),
        )

    def request_id(self, response: ApiResponse, payload: Mapping[str, Any] | None) -> str | None:
        from_body = optional_str(payload.get("request_id")) if payload else None
        return from_body or super().request_id(response, payload)

    def is_retryable_code(self, code: str | None) -> bool:
        return code is not None and code.startswith(_RETRYABLE_CODES)

    def is_rate_limit_code(self, code: str | None) -> bool:
        return code is not None and code.startswith("Throttling")

    def refuses_in_current_state(self, error: FineTuningApiError) -> bool:
        return error.vendor_code == "UnsupportedOperation"

    def parse_time(
        self, value: object, field: str = "time", whose: str = "the job", *, decides: bool = False
    ) -> datetime | None:
        """A DashScope time string as an aware datetime, reading zone-less values in the configured zone.

        Absent, ``null`` or blank: ``None``. Anything else that is no time this provider reads from the years 2000
        to 2200 is ``unusable``: ``MalformedAnswerError`` naming ``field`` and ``whose`` when ``decides``, else
        "not reported".
        """
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        moment = _parse_with_formats(value.strip()) if isinstance(value, str) else None
        if moment is None:
            self.unusable(field, whose, value, "a time this provider reads", decides=decides)
            return None
        moment = self.checked_time(moment, field, whose, value, decides=decides)
        if moment is None:
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=self.timezone)


def parse_timezone(value: Any) -> tzinfo:
    """An IANA zone name (``Asia/Shanghai``, ``UTC``) or a fixed offset (``+08:00``)."""
    text = str(value).strip()
    if text[:1] in "+-" and ":" in text:
        sign = -1 if text[0] == "-" else 1
        try:
            hours, minutes = (int(part) for part in text[1:].split(":", 1))
            return timezone(sign * timedelta(hours=hours, minutes=minutes))
        except ValueError:
            pass
    else:
        try:
            return ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise FineTuningConfigError(
        f"timezone {text!r} is neither an IANA zone name (e.g. 'Asia/Shanghai', 'UTC') nor an offset like '+08:00'"
    )


def page_number(cursor: str | None) -> int:
    """The page number a cursor names (``None``: page 1); the cursors are this dialect's own ``str(n)``."""
    if cursor is None:
        return 1
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= len(str(MAX_TOTAL))) or int(cursor) < 1:
        raise FineTuningConfigError(f"A DashScope page cursor is a page number from 1, got '{printable(cursor, 40)}'")
    return int(cursor)


def lines_read(cursor: str | None) -> int:
    """The number of log lines a cursor says were read (``None``: none); the cursors are this dialect's ``str(n)``."""
    if cursor is None:
        return 0
    if not (isinstance(cursor, str) and cursor.isascii() and cursor.isdigit() and len(cursor) <= len(str(MAX_TOTAL))):
        raise FineTuningConfigError(f"A DashScope log cursor is a line number, got '{printable(cursor, 40)}'")
    return int(cursor)


def text_lines(text: str) -> list[str]:
    """The lines of a log sent as one string: split at each ``\\n`` (the SDK joins an array of lines with it); a
    final ``\\n`` ends the last line rather than starting an empty one, and an empty string has no line."""
    if not text:
        return []
    return (text[:-1] if text.endswith("\n") else text).split("\n")


def _failure_message(job: Mapping[str, Any]) -> str | None:
    message = optional_str(job.get("message"))
    code = optional_str(job.get("code"))
    if message and code:
        return f"{code}: {message}"
    return message or code


def _parse_with_formats(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for time_format in _TIME_FORMATS:
        try:
            return datetime.strptime(text, time_format)
        except ValueError:
            continue
    return None
