"""DashScope (Alibaba Cloud Model Studio) fine-tunes API.

Wire notes (``docs/wire/dashscope.md`` gives the sources): success ``{"request_id", "output": {...}}``; error
``{"request_id", "code", "message"}``, also with HTTP 200. Pages are numbered from 1. Times carry no zone. A job's
log is read by line, oldest first, with the ``total`` of lines. A job carries its task-instance identity in
``job_name``, a documented create parameter that every job object returns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_provider_ft import defaults
from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningConfigError
from airflow_provider_ft.jobs import FineTuningJob, JobEvent, JobStatus
from airflow_provider_ft.vendors import checks, training, wire
from airflow_provider_ft.vendors.base import Dialect, status_table
from airflow_provider_ft.vendors.readers import (
    code_and_message,
    first_loss,
    first_step,
    optional_count,
    optional_str,
    shown,
)
from airflow_provider_ft.vendors.training import RecordCheck

if TYPE_CHECKING:
    from airflow_provider_ft.identity import TaskIdentity

T = TypeVar("T")
#: Reads one entry of a list (a JSON object), given its name for a message.
Reader = Callable[[Mapping[str, Any], str], T]
FILES_PATH = "/files"
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f")
_RETRYABLE_CODES = ("Throttling", "InternalError", "ServiceUnavailable", "RequestTimeOut")
_SUCCESS_OUTPUT = '{"status": "success"}'
#: ``total`` counts above this are not believed (a listing stops after ``defaults.MAX_PAGES`` anyway).
MAX_TOTAL = 10**9
#: A log line that is a Python dict of figures (the reference's example: ``{'train_runtime': 216.3999, ...,
#: 'train_loss': 0.912..., 'epoch': 0.857...}``), and the fields that give its step and losses
#: (docs/wire/dashscope.md says which are documented). Longer lines are not read for figures.
MAX_FIGURES_LINE = 2000
_FIGURE = re.compile(r"'([A-Za-z0-9_/]{1,64})':\s?([-+0-9.eE]{1,40}|nan|inf)(?=\s?[,}])")
LOG_STEP_FIELDS = ("step", "global_step")
LOG_TRAIN_LOSS_FIELDS = ("loss", "train_loss")
LOG_VALID_LOSS_FIELDS = ("eval_loss",)


class DashScopeDialect(Dialect):
    name = "dashscope"
    display_name = "DashScope"
    conn_types = ("dashscope",)
    # DashScope has no page per job: Alibaba's guides send you to the console's "Model tuning" page (模型调优,
    # https://bailian.console.aliyun.com/?tab=model#/efm/model_manager), where the region's jobs are listed.
    console_pages = {
        "dashscope.aliyuncs.com": "https://bailian.console.aliyun.com/?tab=model#/efm/model_manager",
        "dashscope-intl.aliyuncs.com": "https://modelstudio.console.alibabacloud.com/?tab=model#/efm/model_manager",
        "dashscope-us.aliyuncs.com": "https://modelstudio.console.alibabacloud.com/?tab=model#/efm/model_manager",
    }
    default_base_url = defaults.DASHSCOPE_BASE_URL
    jobs_path = "/fine-tunes"
    extra_header_fields = {"workspace": "X-DashScope-WorkSpace"}
    list_filters = ("model",)
    supports_delete = True
    events_page_size = 1000
    create_options = frozenset({"hyperparameters", "training_type", "suffix"})
    state_error_codes = frozenset({"UnsupportedOperation"})
    state_error_statuses = ()
    #: The reference's words, the SDK's ``TaskStatus`` (``SUSPENDED``; ``UNKNOWN``, not terminal, as the SDK's
    #: fine-tune plane reads it) and ``CANCELING``.
    status_words = status_table(
        "RUNNING SUCCEEDED FAILED UNKNOWN",
        QUEUED="PENDING QUEUING",
        PAUSED="SUSPENDED",
        CANCELLING="CANCELING",
        CANCELLED="CANCELED",
    )

    def __init__(self, extras: Mapping[str, Any] | None = None) -> None:
        super().__init__(extras)
        self.timezone = parse_timezone(self.extras.get("timezone") or defaults.DASHSCOPE_TIMEZONE)

    def list_page(self, cursor: str | None, page_size: int, filters: Mapping[str, Any]) -> wire.ApiRequest:
        params = [("page_no", str(page_number(cursor))), ("page_size", str(page_size))]
        if filters.get("model"):
            params.append(("model", str(filters["model"])))
        return self.request("list", "GET", self.jobs_path, tuple(params))

    def events_page(self, job_id: object, cursor: str | None, limit: int) -> wire.ApiRequest:
        """The log lines after line ``cursor`` (``None``: from the first): ``offset`` lines skipped, ``line`` read."""
        params = (("offset", str(lines_read(cursor))), ("line", str(limit)))
        return self.job_request("logs", "GET", job_id, "/logs", params)

    def create_job(self, spec: wire.JobSpec, identity: TaskIdentity) -> wire.ApiRequest:
        """``POST /fine-tunes``: the identity in ``job_name``, ``suffix`` sent as ``finetuned_output_suffix``."""
        model, training_file, validation_file = self.create_basics(spec)
        body: dict[str, Any] = {"model": model, "training_file_ids": [training_file], "job_name": identity.tag}
        if spec.suffix is not None:
            problem = "suffix must be a non-empty string (DashScope finetuned_output_suffix)"
            body["finetuned_output_suffix"] = checks.text(spec.suffix, problem)
        if validation_file is not None:
            body["validation_file_ids"] = [validation_file]
        if spec.hyperparameters is not None:
            body["hyper_parameters"] = checks.mapping(spec.hyperparameters, "hyperparameters")
        if spec.training_type is not None:
            problem = "training_type must be a DashScope training type such as 'sft'"
            body["training_type"] = checks.text(spec.training_type, problem)
        return self.request("create", "POST", self.jobs_path, json_body=body)

    def identity_filters(self, spec: wire.JobSpec, identity: TaskIdentity) -> dict[str, Any]:
        # The listing filters by model only: every job of the model is read, and matched by name.
        return {"model": spec.model}

    def record_check(self, spec: wire.JobSpec) -> RecordCheck:
        kind = (spec.training_type or "sft").lower()
        if kind.startswith("dpo"):
            return training.dashscope_preference_record
        return training.text_record if kind.startswith("cpt") else training.chat_record

    def upload_file(self, source: wire.LocalFile) -> wire.ApiRequest:
        """``POST /files``, multipart: the file in ``files``, its content hash in ``descriptions``."""
        fields = (("purpose", "fine-tune"), ("descriptions", source.description))
        upload = wire.Upload("files", source.stored_name, source, fields)
        return self.request("upload", "POST", FILES_PATH, upload=upload)

    def parse_upload(self, payload: object) -> wire.RemoteFile:
        """``{"data": {"uploaded_files": [{"file_id", "name"}], "failed_uploads": [{"name", "code", "message"}]}}``:
        the file sent is the one in ``uploaded_files``; one refused (in ``failed_uploads``, with HTTP 200) is
        ``FineTuningApiError``."""
        data = self.member_object(payload, "data", "the upload answer")
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
        what = "the uploaded file"
        return self.file_in(self.job_object(uploaded[0], what), what, id_field="file_id", name="name")

    def files_page(self, cursor: str | None, page_size: int) -> wire.ApiRequest:
        params = (("page_no", str(page_number(cursor))), ("page_size", str(page_size)))
        return self.request("list files", "GET", FILES_PATH, params)

    def parse_files_page(self, payload: object, cursor: str | None, page_size: int) -> wire.FilePage:
        """``{"data": {"files": [file, ...], "total": n}}``."""
        page = ("data", "files", "the files page")
        return wire.FilePage(*self._numbered_page(payload, cursor, page_size, page, self._file))

    def is_upload_of(self, remote: wire.RemoteFile, source: wire.LocalFile) -> bool:
        """The content hash in the description, and the size where the listing gives it."""
        return remote.description == source.description and remote.size in (None, source.size)

    def _file(self, entry: Mapping[str, Any], what: str) -> wire.RemoteFile:
        return self.file_in(entry, what, id_field="file_id", name="name", size="size", description="description")

    def parse_job(self, payload: object, *, job_id: str | None = None) -> FineTuningJob:
        """The job in ``{"output": {...}}`` (``end_time`` is read only once the job is over)."""
        return self._job(self.member_object(payload, "output", "the answer"), job_id)

    def parse_page(self, payload: object, cursor: str | None, page_size: int) -> wire.JobPage:
        """``{"output": {"jobs": [job, ...], "total": n}}``."""
        page = ("output", "jobs", "the page")
        return wire.JobPage(*self._numbered_page(payload, cursor, page_size, page, lambda job, _: self._job(job, None)))

    def _numbered_page(
        self, payload: object, cursor: str | None, page_size: int, path: tuple[str, str, str], read: Reader[T]
    ) -> tuple[list[T], str | None]:
        """The entries of a numbered page and the next page's number: while its ``total`` says more follow, or,
        without one, while pages are full. ``path``: the envelope's field, the entries' field, the page's name."""
        page_no = page_number(cursor)
        envelope, field, what = path
        body = self.member_object(payload, envelope, what)
        entries = self.array_in(body, field, what, field)
        items = [read(entry, where) for entry, where in self.each(entries, f"{what}'s '{field}'")]
        total = self._total(body.get("total"), f"{what}'s", field)
        has_more = page_no * page_size < total if total is not None else len(items) >= page_size
        return items, self.next_cursor(has_more, items, lambda: str(page_no + 1), what)

    def parse_events(self, payload: object, cursor: str | None) -> wire.EventPage:
        """``{"output": {"total": n, "logs": [line, ...]}}``, both required; ``logs`` may also be one string of lines
        (the SDK's words). A line's cursor is its number; the next cursor is the last one while fewer than ``total``
        lines are read."""
        before = lines_read(cursor)
        output = self.member_object(payload, "output", "the logs answer")
        logs = output.get("logs")
        if isinstance(logs, str):
            lines: list[Any] = text_lines(logs)
        else:
            lines = self.array_in(output, "logs", "the logs answer", "lines or a string")
        total = self._total(output.get("total"), "the logs answer's", "lines")
        if total is None:
            raise self.malformed(f"the logs answer's 'total' is null, not a number of lines from 0 to {MAX_TOTAL}")
        events = []
        for index, line in enumerate(lines):
            if not isinstance(line, str):
                raise self.malformed(f"line {before + index + 1} of the job's log is {shown(line)}, not a string")
            events.append(_log_event(str(before + index + 1), line))
        read = before + len(events)
        return wire.EventPage(events, self.next_cursor(read < total, events, lambda: str(read), "the logs answer"))

    def parse_cancel(self, payload: object, *, job_id: str | None = None) -> FineTuningJob | None:
        """``None`` (fetch the job then): the answer is the call's result, ``{"output": {"status": "success"}}``."""
        self._call_succeeded(payload, "cancel")
        return None

    def parse_delete(self, payload: object) -> None:
        """Check the answer is ``{"output": {"status": "success"}}``."""
        self._call_succeeded(payload, "delete")

    def _job(self, job: Mapping[str, Any], expected_id: str | None) -> FineTuningJob:
        found_id = self.job_id_in(job, "job_id", expected_id)
        vendor_status = self.status_word_in(job, "status", found_id)
        status = self.job_status(vendor_status)
        whose = f"job {found_id}"
        return FineTuningJob(
            id=found_id,
            vendor=self.name,
            status=status,
            vendor_status=vendor_status,
            model=optional_str(job.get("model")) or optional_str(job.get("base_model")),
            fine_tuned_model=optional_str(job.get("finetuned_output")),
            created_at=self._time(job, "create_time", whose, decides=True),
            finished_at=self._time(job, "end_time", whose) if status.is_terminal else None,
            error=code_and_message(job) if status is JobStatus.FAILED else None,
            # The reference's field tables also spell it ``jobs_name``, read when ``job_name`` is absent.
            name=self.identity_text(job, "job_name", whose) or self.identity_text(job, "jobs_name", whose),
            trained_tokens=optional_count(job.get("usage")),
            raw=dict(job),
        )

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

    def vendor_error(self, response: wire.ApiResponse, payload: Mapping[str, Any] | None) -> wire.ErrorDetails | None:
        code = optional_str(payload.get("code")) if payload else None
        if code is None and response.status < 400:
            return None
        payload = payload or {}
        return wire.ErrorDetails(
            code=code,
            message=optional_str(payload.get("message")) or optional_str(payload.get("msg")),
            request_id=self.request_id(response, payload),
        )

    def request_id(self, response: wire.ApiResponse, payload: Mapping[str, Any] | None) -> str | None:
        from_body = optional_str(payload.get("request_id")) if payload else None
        return from_body or super().request_id(response, payload)

    def is_retryable_code(self, code: str | None) -> bool:
        return code is not None and code.startswith(_RETRYABLE_CODES)

    def is_rate_limit_code(self, code: str | None) -> bool:
        return code is not None and code.startswith("Throttling")

    def _time(self, job: Mapping[str, Any], field: str, whose: str, *, decides: bool = False) -> datetime | None:
        """A time of the job: ISO 8601 or ``YYYY-MM-DD HH:MM:SS``, read in the connection's zone if it names none."""
        return self.text_time(job, field, whose, zone=self.timezone, formats=_TIME_FORMATS, decides=decides)


def _log_event(cursor: str, line: str) -> JobEvent:
    figures = log_line_figures(line)
    return JobEvent(
        cursor=cursor,
        message=line,
        step=first_step(figures, LOG_STEP_FIELDS),
        train_loss=first_loss(figures, LOG_TRAIN_LOSS_FIELDS),
        valid_loss=first_loss(figures, LOG_VALID_LOSS_FIELDS),
    )


def log_line_figures(line: str) -> dict[str, int | float]:
    """The numbers of a log line that is a Python dict (``{'loss': 1.2, 'epoch': 0.5}``), by name; ``{}`` for any
    other line, or one longer than ``MAX_FIGURES_LINE``. A value that is not a number is left out."""
    text = line.strip()
    if len(text) > MAX_FIGURES_LINE or not (text.startswith("{") and text.endswith("}")):
        return {}
    figures: dict[str, int | float] = {}
    for name, value in _FIGURE.findall(text):
        number = _number(value)
        if number is not None:
            figures[name] = number
    return figures


def _number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


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
    return 1 if cursor is None else checks.number_cursor(cursor, "A DashScope page cursor is a page number from 1", 1)


def lines_read(cursor: str | None) -> int:
    """The number of log lines a cursor says were read (``None``: none); the cursors are this dialect's ``str(n)``."""
    return 0 if cursor is None else checks.number_cursor(cursor, "A DashScope log cursor is a line number")


def text_lines(text: str) -> list[str]:
    """The lines of a log sent as one string: split at each ``\\n`` (the SDK joins an array of lines with it); a
    final ``\\n`` ends the last line rather than starting an empty one, and an empty string has no line."""
    if not text:
        return []
    return (text[:-1] if text.endswith("\n") else text).split("\n")
