"""OpenLineage for the operators: what a create task read and made, and which jobs a cancel or cleanup acted on.

The OpenLineage provider calls the operators' ``get_openlineage_facets_on_start`` and
``get_openlineage_facets_on_complete`` (also for a failed task, which has no method of its own); those call the
functions here. The provider is optional: nothing here imports OpenLineage until one of them is called, and DAG
parsing never calls them. They do no I/O: by default the provider calls them in a forked child of the task
process, which must not read a connection or send a request, so they use only what the task already holds.

Datasets are named by OpenLineage's conventions (https://openlineage.io/docs/spec/naming): a local file is
``file`` + its absolute path, an object-storage URL ``<scheme>://<bucket>`` + its key. What lives at the vendor is
in the namespace ``<vendor>://<API host>`` (``openai://api.openai.com``): a vendor file is ``files/<file id>``, and
the fine-tuned model, the create task's output, is its model id.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_ft.vendors.ids import is_file_id

if TYPE_CHECKING:
    from airflow_provider_ft._compat import OperatorLineage
    from airflow_provider_ft.jobs import FineTuningJob
    from airflow_provider_ft.transport import ClientSettings

#: Run facet names: the job a create task made (or re-attached to), and the jobs an operator acted on.
JOB_FACET = "fineTuningJob"
ACTION_FACET = "fineTuningAction"


@dataclass(frozen=True)
class Vendor:
    """The vendor account a task talked to, as lineage names it.

    :param name: the dialect's name (``openai``, ``dashscope``, ``azure_openai``, ``together``)
    :param namespace: ``<name>://<API host>``
    """

    name: str
    namespace: str

    @classmethod
    def of(cls, settings: ClientSettings | None) -> Vendor | None:
        """The vendor of a hook's settings, or ``None`` if the task never read its connection."""
        if settings is None:
            return None
        name = settings.dialect.name
        return cls(name=name, namespace=f"{name}://{urlsplit(settings.base_url).netloc}")


@dataclass(frozen=True)
class CreateLineage:
    """What a create task's lineage is made of.

    :param vendor: the vendor account, if the task got as far as reading its connection
    :param model: the base model
    :param files: the training and validation file arguments as given (rendered), by name; ``None`` left out
    :param hyperparameters: the hyperparameters asked for
    :param method: OpenAI's ``method``, as asked for
    :param training_type: DashScope's ``training_type``
    :param job_id: the job's id, once known
    :param job: the job as last seen (``None`` before it existed, or when only its id is known)
    """

    vendor: Vendor | None
    model: str
    files: Mapping[str, Any]
    hyperparameters: Mapping[str, Any] | None = None
    method: Any = None
    training_type: str | None = None
    job_id: str | None = None
    job: FineTuningJob | None = None

    def input_names(self) -> list[tuple[str, str]]:
        """(namespace, name) of each data file: the path or URL the user gave, else the vendor file."""
        names = [_file_name(source, self.vendor) for source in self.files.values() if source is not None]
        return [name for name in names if name is not None]

    def output_name(self) -> tuple[str, str] | None:
        """(namespace, name) of the fine-tuned model, once the job has made one."""
        if self.vendor is None or self.job is None or not self.job.fine_tuned_model:
            return None
        return self.vendor.namespace, self.job.fine_tuned_model

    def job_facet(self) -> dict[str, Any]:
        """The ``fineTuningJob`` run facet's fields (``None`` where not known yet)."""
        job = self.job
        return {
            "vendor": self.vendor.name if self.vendor else None,
            "jobId": job.id if job else self.job_id,
            "baseModel": (job.model if job and job.model else None) or self.model,
            "status": job.status.value if job else None,
            "fineTunedModel": job.fine_tuned_model if job else None,
            "trainedTokens": job.trained_tokens if job else None,
            "hyperparameters": _plain(self.hyperparameters),
            "method": _plain(self.method),
            "trainingType": self.training_type,
        }


@dataclass(frozen=True)
class ActionLineage:
    """What a cancel, delete, pause, resume or cleanup task did, for its lineage.

    :param vendor: the vendor account, if the task got as far as reading its connection
    :param action: ``cancel``, ``delete``, ``pause``, ``resume``
    :param job_ids: the jobs acted on
    :param dry_run: a cleanup that only reported what it would do
    :param skipped: jobs matched but not acted on, with the reason (a cleanup)
    :param failed: jobs the action failed on, with the error (a cleanup)
    """

    vendor: Vendor | None
    action: str
    job_ids: Sequence[str]
    dry_run: bool = False
    skipped: Mapping[str, str] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)

    def action_facet(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor.name if self.vendor else None,
            "action": self.action,
            "jobIds": list(self.job_ids),
            "dryRun": self.dry_run,
            "skippedJobs": dict(self.skipped),
            "failedJobs": dict(self.failed),
        }


def create_operator_lineage(lineage: CreateLineage) -> OperatorLineage[Any, Any]:
    """The create task's ``OperatorLineage``: the data as inputs, the model as output, the job as run facets."""
    from airflow_provider_ft._compat import ExternalQueryRunFacet, InputDataset, OperatorLineage, OutputDataset
    from airflow_provider_ft._lineage_facets import FineTuningJobRunFacet

    run_facets: dict[str, Any] = {JOB_FACET: FineTuningJobRunFacet(**lineage.job_facet())}
    job_id = lineage.job.id if lineage.job else lineage.job_id
    if job_id is not None and lineage.vendor is not None:
        run_facets["externalQuery"] = ExternalQueryRunFacet(externalQueryId=job_id, source=lineage.vendor.namespace)
    output = lineage.output_name()
    return OperatorLineage(
        inputs=[InputDataset(namespace=namespace, name=name) for namespace, name in lineage.input_names()],
        outputs=[] if output is None else [OutputDataset(namespace=output[0], name=output[1])],
        run_facets=run_facets,
    )


def action_operator_lineage(lineage: ActionLineage) -> OperatorLineage[Any, Any]:
    """A cancel's, delete's, pause's, resume's or cleanup's ``OperatorLineage``: the jobs acted on, as a run facet."""
    from airflow_provider_ft._compat import OperatorLineage
    from airflow_provider_ft._lineage_facets import FineTuningActionRunFacet

    return OperatorLineage(run_facets={ACTION_FACET: FineTuningActionRunFacet(**lineage.action_facet())})


def _file_name(source: Any, vendor: Vendor | None) -> tuple[str, str] | None:
    """(namespace, name) of one data file argument; ``None`` for a vendor file of a vendor not known yet."""
    if is_file_id(source):
        return None if vendor is None else (vendor.namespace, f"files/{source}")
    text = source if isinstance(source, str) else str(source) if hasattr(source, "protocol") else None
    if text is not None and "://" in text:
        return _url_name(text)
    return "file", os.path.abspath(os.fspath(source))


def _url_name(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme == "file":
        return ("file://" + parts.netloc if parts.netloc else "file"), parts.path
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of an argument (mappings and sequences as dicts and lists)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
