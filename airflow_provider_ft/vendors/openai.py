"""OpenAI fine_tuning jobs API (also OpenAI-compatible gateways).

Wire notes: the job object is the body itself; errors are ``{"error": {"message", "type", "param", "code"}}``;
listing pages by cursor (``after`` = id of the last job seen, ``has_more``). There is no job deletion.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from airflow_provider_ft.exceptions import FineTuningApiError
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

JOBS_PATH = "/fine_tuning/jobs"


class OpenAIDialect(Dialect):
    name = "openai"
    display_name = "OpenAI"
    conn_types = ("openai_fine_tuning", "openai")
    default_conn_id = "openai_default"
    default_base_url = "https://api.openai.com/v1"
    list_filters = ("metadata",)
    status_words: ClassVar[Mapping[str, JobStatus]] = {
        "validating_files": JobStatus.QUEUED,
        "queued": JobStatus.QUEUED,
        "running": JobStatus.RUNNING,
        "paused": JobStatus.PAUSED,
        "succeeded": JobStatus.SUCCEEDED,
        "failed": JobStatus.FAILED,
        "cancelled": JobStatus.CANCELLED,
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

    def console_url(self, job_id: str) -> str:
        return f"https://platform.openai.com/finetune/{job_id}"

    def parse_job(self, payload: Mapping[str, Any]) -> FineTuningJob:
        vendor_status = str(payload.get("status") or "")
        status = self.job_status(vendor_status)
        metadata = payload.get("metadata")
        metadata = {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, Mapping) else {}
        return FineTuningJob(
            id=str(payload.get("id") or ""),
            vendor=self.name,
            status=status,
            vendor_status=vendor_status,
            model=optional_str(payload.get("model")),
            fine_tuned_model=optional_str(payload.get("fine_tuned_model")),
            created_at=_from_unix(payload.get("created_at")),
            finished_at=_from_unix(payload.get("finished_at")),
            error=_error_message(payload.get("error")),
            name=optional_str(payload.get("user_provided_suffix")) or metadata.get("name"),
            trained_tokens=optional_int(payload.get("trained_tokens")),
            estimated_finish=_from_unix(payload.get("estimated_finish")),
            metadata=metadata,
            raw=dict(payload),
        )

    def parse_page(self, payload: Mapping[str, Any], cursor: str | None, page_size: int) -> JobPage:
        entries = [entry for entry in payload.get("data") or [] if isinstance(entry, Mapping)]
        jobs = [self.parse_job(entry) for entry in entries]
        has_more = bool(payload.get("has_more")) and bool(jobs)
        return JobPage(jobs, jobs[-1].id if has_more else None)

    def vendor_error(self, response: ApiResponse, payload: Mapping[str, Any] | None) -> VendorError | None:
        if response.status < 400:
            return None
        error = payload.get("error") if payload else None
        if not isinstance(error, Mapping):
            return VendorError(request_id=self.request_id(response, payload))
        return VendorError(
            code=optional_str(error.get("code")) or optional_str(error.get("type")),
            message=optional_str(error.get("message")),
            request_id=self.request_id(response, payload),
        )

    def refuses_in_current_state(self, error: FineTuningApiError) -> bool:
        # OpenAI does not document what cancelling a finished job answers: any 400/409 may mean that,
        # so the hook confirms with a retrieve before treating it as "already terminal".
        return error.http_status in (400, 409)


def _from_unix(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def _error_message(error: Any) -> str | None:
    if not isinstance(error, Mapping):
        return None
    message = optional_str(error.get("message"))
    code = optional_str(error.get("code"))
    if message and code:
        return f"{code}: {message}"
    return message or code
