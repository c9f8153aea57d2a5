"""The values a dialect, a transport and the hook hand each other: requests, answers, pages, jobs to make, files."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from airflow_provider_ft.jobs import FineTuningJob, JobEvent


@dataclass(frozen=True)
class ApiRequest:
    """One HTTP request, relative to the connection's base URL.

    :param operation: what the request does, for logs (``get``, ``list``, ``cancel``, ``delete``)
    :param method: HTTP method
    :param path: path below the base URL, starting with ``/``, already quoted
    :param params: query parameters, in order
    :param job_id: the job the request is about, if any (a 404 then means that job does not exist)
    :param upload: a file to send as the body (``multipart/form-data``), streamed from its source
    :param retry_safe: whether the transport may send the request again after an error; ``False`` for requests
        that make something (a job, a file): an answer lost after the server acted would otherwise make a second
        one, so the caller looks before sending again
    """

    operation: str
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    json_body: dict[str, Any] | None = None
    job_id: str | None = None
    upload: Upload | None = None
    retry_safe: bool = True

    @property
    def is_mutating(self) -> bool:
        return self.method not in ("GET", "HEAD")


@dataclass(frozen=True)
class ApiResponse:
    """An HTTP answer as the transport received it (header names lower-cased)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class JobPage:
    """One page of a job listing and the cursor of the next page (``None`` on the last page)."""

    jobs: list[FineTuningJob]
    next_cursor: str | None = None


@dataclass(frozen=True)
class EventPage:
    """One page of a job's progress log, oldest first, and the cursor of the next page in the vendor's paging order."""

    events: list[JobEvent]
    next_cursor: str | None = None


@dataclass(frozen=True)
class ErrorDetails:
    """The code, message and request id a vendor put in an error body."""

    code: str | None = None
    message: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class JobSpec:
    """What a new fine-tuning job is to be: the base model, the files (vendor file ids) and the vendor's options
    (those a vendor does not take are refused by its dialect before any request).

    :param model: the base model
    :param training_file: the training file's vendor id
    :param validation_file: the validation file's vendor id, if any
    :param method: OpenAI ``method``: ``supervised``, ``dpo`` or ``reinforcement``, or the whole method object
    :param hyperparameters: hyper-parameters (OpenAI: of the method; DashScope: ``hyper_parameters``)
    :param training_type: DashScope ``training_type`` (``sft``, ``efficient_sft``, ``dpo_full``, ...)
    :param suffix: OpenAI ``suffix`` of the fine-tuned model's name; DashScope ``finetuned_output_suffix``
    :param seed: OpenAI ``seed``
    :param metadata: OpenAI ``metadata`` (string pairs; keys starting ``airflow_`` are this provider's)
    :param integrations: OpenAI ``integrations`` (e.g. Weights and Biases)
    """

    model: str
    training_file: str
    validation_file: str | None = None
    method: str | Mapping[str, Any] | None = None
    hyperparameters: Mapping[str, Any] | None = None
    training_type: str | None = None
    suffix: str | None = None
    seed: int | None = None
    metadata: Mapping[str, str] | None = None
    integrations: Sequence[Mapping[str, Any]] | None = None

    def given_options(self) -> list[str]:
        """The names of the optional fields that were given (not ``None``)."""
        optional = ("method", "hyperparameters", "training_type", "suffix", "seed", "metadata", "integrations")
        return [name for name in optional if getattr(self, name) is not None]


@dataclass(frozen=True)
class LocalFile:
    """A training file checked on this machine: its name, size, content hash and how to read it again.

    :param name: the file's own name (without directories)
    :param size: its size in bytes
    :param sha256: the SHA-256 of its content, in hex
    :param lines: how many records it holds
    :param open: opens it for reading in binary (each upload attempt reads it afresh, from the start)
    """

    name: str
    size: int
    sha256: str
    lines: int
    open: Callable[[], IO[bytes]] = field(repr=False, compare=False)

    @property
    def stored_name(self) -> str:
        """The name it is uploaded under: its stem, the first 16 hex digits of its hash, ``.jsonl``. The hash makes
        an identical file already uploaded findable by name (``is_stored_as``)."""
        stem = self.name[:-6] if self.name.endswith(".jsonl") else self.name
        return f"{stem[:80]}.{self.sha256[:16]}.jsonl"

    def is_stored_as(self, filename: str | None, size: int | None) -> bool:
        """Whether a vendor's file of this name and size holds this content: a ``stored_name`` of any stem with this
        content's hash, and this size. The stem does not count: the same records written to a file of another
        name (a path per DAG run, say) are the same upload.

        :param filename: the name the vendor keeps for the file
        :param size: its size in bytes, as the vendor reports it
        """
        return size == self.size and filename is not None and filename.endswith(f".{self.sha256[:16]}.jsonl")

    @property
    def description(self) -> str:
        return f"sha256:{self.sha256}"


@dataclass(frozen=True)
class Upload:
    """A ``multipart/form-data`` body: form fields, then one file part streamed from ``source``.

    :param file_field: the name of the file's part (OpenAI ``file``, DashScope ``files``)
    :param filename: the file name the part carries
    :param source: the local file
    :param fields: the other form fields, in order
    """

    file_field: str
    filename: str
    source: LocalFile
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RemoteFile:
    """A file stored at the vendor.

    :param id: the vendor's file id
    :param filename: its name at the vendor
    :param size: its size in bytes, where reported
    :param description: its description (DashScope), where reported
    :param status: the vendor's status word for it (OpenAI ``processed``, ``error``), where reported
    """

    id: str
    filename: str | None = None
    size: int | None = None
    description: str | None = None
    status: str | None = None

    def is_named_upload_of(self, source: LocalFile) -> bool:
        """Whether its name carries the content hash of ``source`` (whatever the stem) and its size is ``source``'s:
        the vendor keeps our name and no hash of its own (OpenAI, Azure OpenAI, Together AI)."""
        return source.is_stored_as(self.filename, self.size)


@dataclass(frozen=True)
class FilePage:
    """One page of the vendor's file listing and the cursor of the next page (``None`` on the last page)."""

    files: list[RemoteFile]
    next_cursor: str | None = None
