"""Azure OpenAI fine-tuning jobs: the OpenAI ``fine_tuning/jobs`` wire under an Azure resource's endpoint.

Wire notes (``docs/wire/azure_openai.md`` gives the sources; every documented answer is a case of
``tests/conformance/azure/``): paths below ``/openai`` with ``?api-version=...`` (a dated version, default
``2024-10-21``), or below ``/openai/v1``; the key in the ``api-key`` header. Jobs are deleted (``204``); pause and
resume are not sent. Jobs have no ``metadata``: the identity rides in the ``suffix``. Events come oldest first.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningConfigError
from airflow_provider_ft.jobs import FineTuningJob
from airflow_provider_ft.vendors import checks, training, wire
from airflow_provider_ft.vendors.base import Dialect, status_table
from airflow_provider_ft.vendors.openai import FILES_PATH, OpenAIDialect
from airflow_provider_ft.vendors.training import RecordCheck

if TYPE_CHECKING:
    from airflow_provider_ft.identity import TaskIdentity

#: The api-version sent when the connection names none: the newest GA version of the dated authoring API (its
#: spec's ``x-ms-client-default``), served by every Azure OpenAI resource.
DEFAULT_API_VERSION = "2024-10-21"
#: The ``api_version`` that selects the v1 surface (``/openai/v1``, no ``api-version`` query).
V1 = "v1"
_DATED_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
#: Microsoft's ``ErrorCode`` for "Quota exceeded.": on a create, the resource is at its training-job limit.
JOB_LIMIT_CODE = "quotaExceeded"


class AzureOpenAIDialect(OpenAIDialect):
    """Azure OpenAI: the OpenAI dialect's job, event, file and error reading, on Azure's paths and auth.

    :param extras: the connection's extra fields (``api_version``: a dated version or ``v1``)
    """

    name = "azure"
    display_name = "Azure OpenAI"
    conn_types: ClassVar[tuple[str, ...]] = ("azureopenaifinetuning", "azure_openai_fine_tuning")
    # The portal's job pages are addressed by subscription, resource group and resource, which neither the job nor
    # the connection carries: the link opens the Azure AI Foundry portal, where the job is listed.
    console_pages: ClassVar[Mapping[str, str]] = {
        suffix: "https://ai.azure.com/"
        for suffix in (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
    }
    #: No default: every resource has its own endpoint, so the connection's host is required.
    default_base_url = ""
    #: No OpenAI headers; lists take no metadata filter (only after and limit).
    extra_header_fields = {}
    list_filters: ClassVar[tuple[str, ...]] = ()
    supports_delete = True
    supports_pause = False
    events_newest_first = False
    create_options = frozenset({"hyperparameters", "seed"})
    unusable_file_statuses = ("error", "deleted", "deleting")
    retryable_codes = frozenset({"serviceUnavailable", "internalFailure", "tooManyRequests"})
    rate_limit_codes = frozenset({"tooManyRequests"})
    state_error_codes = frozenset({"conflict", "unexpectedEntityState"})
    #: The OpenAI words (the v1 surface's) and Microsoft's ``FineTuningState`` beyond them: the active ``pausing`` and
    #: ``resuming`` of 2025-04-01-preview, and the ``canceled`` of the 2023-10-01-preview cancel example.
    status_words = {**OpenAIDialect.status_words, **status_table(RUNNING="pausing resuming", CANCELLED="canceled")}

    def __init__(self, extras: Mapping[str, Any] | None = None) -> None:
        super().__init__(extras)
        self.api_version = _api_version(self.extras.get("api_version"))
        if self.api_version == V1:
            self.path_prefix = "/openai/v1"
        else:
            self.path_prefix = "/openai"
            self.common_params = (("api-version", self.api_version),)

    def headers(self, api_key: str) -> dict[str, str]:
        return {"api-key": api_key, "Accept": "application/json"}

    def create_job(self, spec: wire.JobSpec, identity: TaskIdentity) -> wire.ApiRequest:
        """``POST /fine_tuning/jobs``: model, files, ``hyperparameters`` and ``seed``; the identity goes in
        ``suffix`` (Azure jobs carry no metadata), so a suffix of the user's own is refused."""
        body = self.create_body(spec, suffix=identity.tag)
        if spec.hyperparameters is not None:
            body["hyperparameters"] = checks.mapping(spec.hyperparameters, "hyperparameters")
        if spec.seed is not None:
            body["seed"] = checks.seed(spec.seed)
        return self.request("create", "POST", self.jobs_path, json_body=body)

    # No metadata: the identity rides in the job's name (its suffix), found as the contract does by default.
    identity_filters = Dialect.identity_filters
    carries_identity = Dialect.carries_identity

    def record_check(self, spec: wire.JobSpec) -> RecordCheck:
        return training.chat_record

    def files_page(self, cursor: str | None, page_size: int) -> wire.ApiRequest:
        """The dated API's ``GET /files`` takes ``purpose`` alone and answers every file at once (its ``FileList``
        has no ``has_more``); the v1 API pages as OpenAI's does."""
        if self.api_version == V1:
            return super().files_page(cursor, page_size)
        return self.request("list files", "GET", FILES_PATH, (("purpose", "fine-tune"),))

    def decode(self, request: wire.ApiRequest, response: wire.ApiResponse) -> dict[str, Any]:
        """As every dialect decodes, except that a delete's ``204 No Content`` is a success without a body."""
        if request.operation == "delete" and response.status == 204:
            return {}
        return super().decode(request, response)

    def parse_job(self, payload: object, *, job_id: str | None = None) -> FineTuningJob:
        """The OpenAI job object; its name is Azure's ``suffix`` (which carries the task identity)."""
        job = super().parse_job(payload, job_id=job_id)
        suffix = self.identity_text(self.job_object(payload), "suffix", f"job {job.id}")
        return dataclasses.replace(job, name=suffix or job.name)

    def is_job_limit(self, status: int, failure: wire.ErrorDetails) -> bool:
        """Microsoft's ``quotaExceeded`` on a create (a resource runs 1 training job and queues 20, the defaults
        of its quotas page), or OpenAI's own answers, which the v1 API may send."""
        return (400 <= status < 500 and failure.code == JOB_LIMIT_CODE) or super().is_job_limit(status, failure)


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
