"""DashScope (Alibaba Cloud Model Studio) fine-tunes API.

Wire notes: success ``{"request_id", "output": {...}}``; error ``{"request_id", "code", "message"}``, which can
also arrive with HTTP 200. Pages are numbered from 1 (``page_no``/``page_size``). Times carry no zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningConfigError
from airflow_provider_ft.jobs import FineTuningJob, JobStatus
from airflow_provider_ft.vendors.base import (
    ApiRequest,
    ApiResponse,
    Dialect,
    JobPage,
    VendorError,
    job_path,
    optional_int,
    optional_str,
)

JOBS_PATH = "/fine-tunes"
# DashScope sends local times without a zone. Alibaba Cloud's Model Studio console shows them as Beijing time
# and the service is run from China, so UTC+8 is the default; set the connection extra ``timezone`` to change it.
DEFAULT_TIMEZONE = "Asia/Shanghai"
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f")
_RETRYABLE_CODES = ("Throttling", "InternalError", "ServiceUnavailable", "RequestTimeOut")


class DashScopeDialect(Dialect):
    name = "dashscope"
    display_name = "DashScope"
    conn_types = ("dashscope",)
    default_conn_id = "dashscope_default"
    default_base_url = "https://dashscope-intl.aliyuncs.com/api/v1"
    list_filters = ("model",)
    supports_delete = True
    status_words: ClassVar[Mapping[str, JobStatus]] = {
        "PENDING": JobStatus.QUEUED,
        "QUEUING": JobStatus.QUEUED,
        "RUNNING": JobStatus.RUNNING,
        "SUSPENDED": JobStatus.PAUSED,
        "CANCELING": JobStatus.CANCELLING,
        "SUCCEEDED": JobStatus.SUCCEEDED,
        "FAILED": JobStatus.FAILED,
        "CANCELED": JobStatus.CANCELLED,
    }

    def __init__(self, extras: Mapping[str, Any] | None = None) -> None:
        super().__init__(extras)
        self.timezone = parse_timezone(self.extras.get("timezone") or DEFAULT_TIMEZONE)

    def extra_headers(self) -> dict[str, str]:
        workspace = self.extras.get("workspace")
        return {"X-DashScope-WorkSpace": str(workspace)} if workspace else {}

    def get_job(self, job_id: object) -> ApiRequest:
        return ApiRequest("get", "GET", job_path(JOBS_PATH, job_id), job_id=str(job_id))

    def list_page(self, cursor: str | None, page_size: int, filters: Mapping[str, Any]) -> ApiRequest:
        params = [("page_no", cursor or "1"), ("page_size", str(page_size))]
        if filters.get("model"):
            params.append(("model", str(filters["model"])))
        return ApiRequest("list", "GET", JOBS_PATH, params=tuple(params))

    def cancel_job(self, job_id: object) -> ApiRequest:
        return ApiRequest("cancel", "POST", job_path(JOBS_PATH, job_id, "/cancel"), job_id=str(job_id))

    def delete_job(self, job_id: object) -> ApiRequest:
        return ApiRequest("delete", "DELETE", job_path(JOBS_PATH, job_id), job_id=str(job_id))

    def console_url(self, job_id: str) -> str:
        return "https://modelstudio.console.alibabacloud.com/?tab=model#/model-telemetry"

    def parse_job(self, payload: Mapping[str, Any]) -> FineTuningJob:
        job = _output(payload)
        vendor_status = str(job.get("status") or "")
        status = self.job_status(vendor_status)
        return FineTuningJob(
            id=str(job.get("job_id") or ""),
            vendor=self.name,
            status=status,
            vendor_status=vendor_status,
            model=optional_str(job.get("model")) or optional_str(job.get("base_model")),
            fine_tuned_model=optional_str(job.get("finetuned_output")),
            created_at=self.parse_time(job.get("create_time")),
            finished_at=self.parse_time(job.get("end_time")) if status.is_terminal else None,
            error=_failure_message(job) if status is JobStatus.FAILED else None,
            name=optional_str(job.get("job_name")),
            trained_tokens=optional_int(job.get("usage")),
            raw=dict(job),
        )

    def parse_page(self, payload: Mapping[str, Any], cursor: str | None, page_size: int) -> JobPage:
        output = _output(payload)
        entries = output.get("jobs") or []
        jobs = [self.parse_job({"output": entry}) for entry in entries if isinstance(entry, Mapping)]
        page_no = int(cursor or "1")
        total = optional_int(output.get("total"))
        has_more = page_no * page_size < total if total is not None else len(entries) >= page_size
        return JobPage(jobs, str(page_no + 1) if has_more and entries else None)

    def parse_cancel(self, payload: Mapping[str, Any]) -> FineTuningJob | None:
        # The answer is {"output": {"status": "success"}}: the call's result, not the job's state.
        return None

    def vendor_error(self, response: ApiResponse, payload: Mapping[str, Any] | None) -> VendorError | None:
        code = optional_str(payload.get("code")) if payload else None
        if code is None and response.status < 400:
            return None
        payload = payload or {}
        return VendorError(
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

    def parse_time(self, value: Any) -> datetime | None:
        """A DashScope time string as an aware datetime, reading zone-less values in the configured zone."""
        if not isinstance(value, str) or not value.strip():
            return None
        text = value.strip()
        moment = _parse_with_formats(text)
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


def _output(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    output = payload.get("output")
    return output if isinstance(output, Mapping) else {}


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
