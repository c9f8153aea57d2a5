"""The provider's custom OpenLineage run facets, their fields camelCase as OpenLineage's are.

Imports the OpenLineage client: imported only by ``airflow_provider_ft.lineage``'s functions, which the OpenLineage
provider calls when it is installed.
"""

from __future__ import annotations

from typing import Any

from attrs import define
from openlineage.client.facet_v2 import RunFacet


@define
class FineTuningJobRunFacet(RunFacet):
    """The fine-tuning job a create task started or re-attached to, as last seen (``None``: not known yet).

    :param vendor: the API's name (``openai``, ``dashscope``, ``azure_openai``, ``together``)
    :param jobId: the vendor's job id
    :param baseModel: the model fine-tuned
    :param status: the job's normalized status (``QUEUED``, ``RUNNING``, ``SUCCEEDED``, ...)
    :param fineTunedModel: the model it made
    :param trainedTokens: tokens trained, as the vendor reports them
    :param hyperparameters: the hyperparameters asked for
    :param method: OpenAI's ``method``, as asked for
    :param trainingType: DashScope's ``training_type``
    """

    vendor: str | None
    jobId: str | None
    baseModel: str | None
    status: str | None
    fineTunedModel: str | None
    trainedTokens: int | None
    hyperparameters: dict[str, Any] | None
    method: Any
    trainingType: str | None


@define
class FineTuningActionRunFacet(RunFacet):
    """The fine-tuning jobs a cancel, delete, pause, resume or cleanup task acted on.

    :param vendor: the API's name
    :param action: ``cancel``, ``delete``, ``pause`` or ``resume``
    :param jobIds: the jobs acted on
    :param dryRun: a cleanup that only reported what it would do (``jobIds`` is then empty)
    :param skippedJobs: jobs matched but not acted on, with the reason (a cleanup)
    :param failedJobs: jobs the action failed on, with the error (a cleanup)
    """

    vendor: str | None
    action: str
    jobIds: list[str]
    dryRun: bool
    skippedJobs: dict[str, str]
    failedJobs: dict[str, str]
