"""Azure OpenAI fine-tuning jobs: the OpenAI ``fine_tuning/jobs`` wire under an Azure resource's endpoint.

Wire notes (sources in ``docs/wire/azure_openai.md``): the connection's host is the resource endpoint
(``https://<resource>.openai.azure.com``). With a dated ``api_version`` (default ``2024-10-21``, the latest GA of
the dated authoring API) every path is below ``{endpoint}/openai`` and carries ``?api-version=...``; with
``api_version`` ``v1`` the paths are below ``{endpoint}/openai/v1`` and carry no version. The key goes in the
``api-key`` header. Jobs are deleted (``DELETE .../fine_tuning/jobs/{id}``, ``204`` and no body); pause and
resume (documented from 2025-04-01-preview) are not sent, though their states are read; there is no job
``metadata``: the task identity rides in the job's ``suffix``. Errors are
``{"error": {"code", "message", ...}}``; job listings page by ``after`` and ``has_more`` as OpenAI's do, but a
job's events come oldest first (every version's ``FineTuning_GetEvents`` example), so they page forward; the dated
API's file listing takes ``purpose`` alone and answers every file at once. Every answer Microsoft documents is
kept, with its source, in ``tests/conformance/azure/``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningConfigError
from airflow_provider_ft.jobs import FineTuningJob, JobStatus
from airflow_provider_ft.vendors import training
from airflow_provider_ft.vendors.base import Dialect, RecordCheck
from airflow_provider_ft.vendors.ids import job_path
from airflow_provider_ft.vendors.openai import FILES_PATH, JOBS_PATH, OpenAIDialect, _seed
from airflow_provider_ft.vendors.wire import (
    ApiRequest,
    ApiResponse,
    ErrorDetails,
    JobSpec,
    LocalFile,
    RemoteFile,
)

if TYPE_CHECKING:
    from airflow_provider_ft.identity import TaskIdentity

#: The api-version sent when the connection names none: the newest GA version of the dated authoring API (its
#: spec's ``x-ms-client-default``), served by every Azure OpenAI resource.
DEFAULT_API_VERSION = "2024-10-21"
#: The ``api_version`` that selects the v1 surface (``/openai/v1``, no ``api-version`` query).
V1 = "v1"
_DATED_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
#: Microsoft's ``ErrorCode`` words that say the job's state does not allow the call.
_STATE_CODES = frozenset({"conflict", "unexpectedEntityState"})
_RETRYABLE_CODES = frozenset({"serviceUnavailable", "internalFailure", "tooManyRequests"})
#: Microsoft's ``ErrorCode`` for "Quota exceeded.": on a create, the resource is at its training-job limit.
JOB_LIMIT_CODE = "quotaExceeded"


class AzureOpenAIDialect(OpenAIDialect):
    """Azure OpenAI: the OpenAI dialect's job, event, file and error reading, on Azure's paths and auth.

    :param extras: the connection's extra fields (``api_version``: a dated version or ``v1``)
    """

    name = "azure"
    display_name = "Azure OpenAI"
    conn_types: ClassVar[tuple[str, ...]] = ("azureopenaifinetuning", "azure_openai_fine_tuning")
    #: No default: every resource has its own endpoint, so the connection's host is required.
    default_base_url = ""
    # The portal's job pages are addressed by subscription, resource group and resource, which neither the job nor
    # the connection carries: the link opens the Azure AI Foundry portal, where the job is listed.
    console_pages: ClassVar[Mapping[str, str]] = {
        suffix: "https://ai.azure.com/"
        for suffix in (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
    }
    list_filters: ClassVar[tuple[str, ...]] = ()
    supports_delete = True
    supports_pause = False
    #: Oldest first, ``after`` the newest event of the page before (the ``FineTuning_GetEvents`` examples of
    #: 2023-10-01-preview to 2025-04-01-preview).
    events_newest_first = False
    create_options = frozenset({"hyperparameters", "seed"})
    status_words: ClassVar[Mapping[str, JobStatus]] = {
        # The OpenAI job object's words, which the v1 surface (OpenAI's wire) may send.
        **OpenAIDialect.status_words,
        # Microsoft's FineTuningState in every version ("created" is documented as never returned).
        "created": JobStatus.QUEUED,
        "pending": JobStatus.QUEUED,
        "running": JobStatus.RUNNING,
        "succeeded": JobStatus.SUCCEEDED,
        "cancelled": JobStatus.CANCELLED,
        "failed": JobStatus.FAILED,
        # ... and since 2025-04-01-preview, with pause and resume: "pausing" and "resuming" are active states
        # (still training), "paused" an inactive one.
        "pausing": JobStatus.RUNNING,
        "paused": JobStatus.PAUSED,
        "resuming": JobStatus.RUNNING,
        # The 2023-10-01-preview FineTuning_Cancel example answers "canceled", a spelling its enum does not list.
        "canceled": JobStatus.CANCELLED,
    }

    def __init__(self, extras: Mapping[str, Any] | None = None) -> None:
        super().__init__(extras)
        self.api_version = _api_version(self.extras.get("api_version"))

    # -- requests ---------------------------------------------------------------------------------------

    def headers(self, api_key: str) -> dict[str, str]:
        return {"api-key": api_key, "Accept": "application/json"}

    def extra_headers(self) -> dict[str, str]:
        return {}

    def on_azure(self, request: ApiRequest) -> ApiRequest:
        """``request`` below the resource's ``/openai`` (or ``/openai/v1``) path, with its api-version."""
        if self.api_version == V1:
            return dataclasses.replace(request, path=f"/openai/v1{request.path}")
        params = (*request.params, ("api-version", self.api_version))
        return dataclasses.replace(request, path=f"/openai{request.path}", params=params)

    def get_job(self, job_id: object) -> ApiRequest:
        return self.on_azure(super().get_job(job_id))

    def list_page(self, cursor: str | None, page_size: int, filters: Mapping[str, Any]) -> ApiRequest:
        # Azure lists take no metadata filter: only after and limit.
        return self.on_azure(super().list_page(cursor, page_size, {}))

    def cancel_job(self, job_id: object) -> ApiRequest:
        return self.on_azure(super().cancel_job(job_id))

    def delete_job(self, job_id: object) -> ApiRequest:
        return self.on_azure(ApiRequest("delete", "DELETE", job_path(JOBS_PATH, job_id), job_id=str(job_id)))

    def pause_job(self, job_id: object) -> ApiRequest:
        return Dialect.pause_job(self, job_id)

    def resume_job(self, job_id: object) -> ApiRequest:
        return Dialect.resume_job(self, job_id)

    def events_page(self, job_id: object, cursor: str | None, limit: int) -> ApiRequest:
        return self.on_azure(super().events_page(job_id, cursor, limit))

    def create_job(self, spec: JobSpec, identity: TaskIdentity) -> ApiRequest:
        """``POST /fine_tuning/jobs``: model, files, ``hyperparameters`` and ``seed``; the identity goes in
        ``suffix`` (Azure jobs carry no metadata), so a suffix of the user's own is refused."""
        self.refuse_other_options(spec)
        model, training_file, validation_file = self.create_basics(spec)
        body: dict[str, Any] = {"model": model, "training_file": training_file, "suffix": identity.tag}
        if validation_file is not None:
            body["validation_file"] = validation_file
        if spec.hyperparameters is not None:
            if not isinstance(spec.hyperparameters, Mapping):
                raise FineTuningConfigError(
                    f"hyperparameters must be a mapping, got {type(spec.hyperparameters).__name__}"
                )
            body["hyperparameters"] = dict(spec.hyperparameters)
        if spec.seed is not None:
            body["seed"] = _seed(spec.seed)
        return self.on_azure(ApiRequest("create", "POST", JOBS_PATH, json_body=body, retry_safe=False))

    def identity_filters(self, spec: JobSpec, identity: TaskIdentity) -> dict[str, Any]:
        # No server-side filter: every listed job's suffix is compared.
        return {}

    def carries_identity(self, job: FineTuningJob, identity: TaskIdentity) -> bool:
        return job.name == identity.tag

    def record_check(self, spec: JobSpec) -> RecordCheck:
        return training.chat_record

    def upload_file(self, source: LocalFile) -> ApiRequest:
        return self.on_azure(super().upload_file(source))

    def files_page(self, cursor: str | None, page_size: int) -> ApiRequest:
        """The dated API's ``GET /files`` takes ``purpose`` alone and answers every file at once (its ``FileList``
        has no ``has_more``); the v1 API pages as OpenAI's does."""
        if self.api_version == V1:
            return self.on_azure(super().files_page(cursor, page_size))
        return self.on_azure(ApiRequest("list files", "GET", FILES_PATH, params=(("purpose", "fine-tune"),)))

    def is_upload_of(self, remote: RemoteFile, source: LocalFile) -> bool:
        """The content's hash in the name and its size, and not refused or deleted (Azure's FileState words)."""
        usable = remote.status not in ("error", "deleted", "deleting")
        return usable and source.is_stored_as(remote.filename, remote.size)

    # -- responses --------------------------------------------------------------------------------------

    def decode(self, request: ApiRequest, response: ApiResponse) -> dict[str, Any]:
        """As every dialect decodes, except that a delete's ``204 No Content`` is a success without a body."""
        if request.operation == "delete" and response.status == 204:
            return {}
        return super().decode(request, response)

    def parse_job(self, payload: object, *, job_id: str | None = None) -> FineTuningJob:
        """The OpenAI job object; its name is Azure's ``suffix`` (which carries the task identity)."""
        job = super().parse_job(payload, job_id=job_id)
        suffix = self.identity_text(self.job_object(payload), "suffix", f"job {job.id}")
        return dataclasses.replace(job, name=suffix or job.name)

    def is_retryable_code(self, code: str | None) -> bool:
        return code in _RETRYABLE_CODES

    def is_rate_limit_code(self, code: str | None) -> bool:
        return code == "tooManyRequests"

    def is_job_limit(self, status: int, failure: ErrorDetails) -> bool:
        """Microsoft's ``quotaExceeded`` on a create (a resource runs 1 training job and queues 20, the defaults
        of its quotas page), or OpenAI's own answers, which the v1 API may send."""
        return (400 <= status < 500 and failure.code == JOB_LIMIT_CODE) or super().is_job_limit(status, failure)

    def refuses_in_current_state(self, error: FineTuningApiError) -> bool:
        # Microsoft documents conflict and unexpectedEntityState; a bare 400 or 409 is confirmed by a retrieve.
        return error.vendor_code in _STATE_CODES or error.http_status in (400, 409)


def _api_version(value: object) -> str:
    """The ``api_version`` extra: ``v1`` or a dated version (``2024-10-21``, ``2025-04-01-preview``)."""
    if value is None or value == "":
        return DEFAULT_API_VERSION
    if isinstance(value, str) and (value == V1 or _DATED_VERSION.fullmatch(value)):
        return value
    raise FineTuningConfigError(
        f"extra 'api_version' must be 'v1' or a dated version such as {DEFAULT_API_VERSION!r}, "
        f"got {printable(repr(value), 60)}"
    )
