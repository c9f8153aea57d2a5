"""The ``Dialect`` contract: what a vendor's API module provides (requests, answers read, errors classified).

A dialect is pure: it builds ``ApiRequest`` values and turns ``ApiResponse`` values into jobs or typed errors. It
never does I/O, so the blocking and asyncio transports share every rule. Whatever a server sends, ``decode`` and
the ``parse_*`` methods return a well-formed result or raise ``FineTuningApiError`` (``MalformedAnswerError`` for
a success answer of the wrong shape): ``decoding`` reads the bytes, ``readers`` the fields (a strict core for the
fields a decision reads, a tolerant reader for the rest).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningConfigError, UnsupportedOperationError
from airflow_provider_ft.jobs import FineTuningJob, JobStatus
from airflow_provider_ft.vendors import decoding, wire
from airflow_provider_ft.vendors.ids import is_file_id, job_path, validate_file_id, validate_job_id
from airflow_provider_ft.vendors.readers import AnswerReader
from airflow_provider_ft.vendors.training import RecordCheck

if TYPE_CHECKING:
    from airflow_provider_ft.identity import TaskIdentity
    from airflow_provider_ft.loss import LossPoint

#: Unknown status words remembered (and warned about once each); past that, one warning says so and no more.
MAX_WARNED_STATUSES = 64

_STATUS_LENGTH = 64
_MODEL_LENGTH = 256

log = logging.getLogger(__name__)


def status_table(named: str = "", **words: str) -> dict[str, JobStatus]:
    """A ``Dialect.status_words`` table: the vendor's words that are a status's own name (in any case), and each
    status's other words: ``status_table("queued running", QUEUED="pending")``."""
    table = {word: JobStatus(word.upper()) for word in named.split()}
    return table | {word: JobStatus[status] for status, spaced in words.items() for word in spaced.split()}


class UnknownStatusWarnings:
    """Warns once for each vendor status word this provider does not know, remembering at most ``limit`` words.

    A server that sends a new word on every answer would otherwise grow the memory and the log without end: past
    ``limit`` words, one warning says that further unknown words are not reported, and none follows.

    :param limit: most (vendor, word) pairs remembered
    """

    def __init__(self, limit: int = MAX_WARNED_STATUSES) -> None:
        self.limit = limit
        self._seen: set[tuple[str, str]] = set()
        self._full = False

    def warn(self, vendor: str, vendor_status: str) -> None:
        word = printable(vendor_status, _STATUS_LENGTH)
        if self._full or (vendor, word) in self._seen:
            return
        if len(self._seen) >= self.limit:
            self._full = True
            log.warning(
                "%s reported more than %d job status words this provider does not know; further unknown words "
                "are treated as UNKNOWN (not terminal) without a warning",
                vendor,
                self.limit,
            )
            return
        self._seen.add((vendor, word))
        log.warning(
            "%s reported job status '%s', which this provider does not know; treating it as UNKNOWN (not terminal)",
            vendor,
            word,
        )


_unknown_statuses = UnknownStatusWarnings()


class Dialect(AnswerReader, ABC):
    """One vendor's fine-tuning API: its paths, headers, envelopes, errors, pagination and status words.

    :param extras: the connection's extra fields
    """

    name: ClassVar[str]
    display_name: ClassVar[str]
    conn_types: ClassVar[tuple[str, ...]]
    default_base_url: ClassVar[str]
    #: The job collection's path: a job's own requests go to ``{jobs_path}/{id}`` and below it.
    jobs_path: ClassVar[str]
    #: The connection's extra fields sent as headers, and the header each is sent as.
    extra_header_fields: ClassVar[Mapping[str, str]] = {}
    list_filters: ClassVar[tuple[str, ...]] = ()
    #: Whether the job listing comes in pages of the hook's ``page_size``; ``False``: one answer holds every job.
    jobs_paged: ClassVar[bool] = True
    supports_delete: ClassVar[bool] = False
    #: Whether the API can pause a running job and resume it later (``pause_job``, ``resume_job``).
    supports_pause: ClassVar[bool] = False
    status_words: ClassVar[Mapping[str, JobStatus]]
    #: Entries asked for per page of a job's progress log (at most what the API allows).
    events_page_size: ClassVar[int] = 100
    #: Whether the progress log pages from the newest entry back. A walk for the entries after a cursor then
    #: starts at the newest page and ends where it meets the cursor; otherwise it starts right after the cursor.
    events_newest_first: ClassVar[bool] = False
    #: Whether the progress log is read in pages of ``events_page_size`` entries; ``False``: one answer holds it all.
    events_paged: ClassVar[bool] = True
    #: The optional ``JobSpec`` fields a create request of this API takes; the others are refused before any I/O.
    create_options: ClassVar[frozenset[str]] = frozenset()
    #: Files per page when looking through the vendor's files for one already uploaded.
    files_page_size: ClassVar[int] = 100
    #: The vendor's console page of a job (a template with ``{job_id}``) by the host of its API; a key starting with
    #: ``.`` matches the hosts that end with it. Another host (a gateway, a proxy, the emulator) gets no link.
    console_pages: ClassVar[Mapping[str, str]] = {}
    #: Error codes of a passing condition (worth trying again), and of a rate or quota limit.
    retryable_codes: ClassVar[frozenset[str | None]] = frozenset()
    rate_limit_codes: ClassVar[frozenset[str | None]] = frozenset()
    #: The error codes, and the HTTP statuses, that say a job's state does not allow a call.
    state_error_codes: ClassVar[frozenset[str]] = frozenset()
    state_error_statuses: ClassVar[tuple[int, ...]] = (400, 409)

    def __init__(self, extras: Mapping[str, Any] | None = None) -> None:
        self.extras: Mapping[str, Any] = extras or {}
        #: Put before every request's path, and after every request's query parameters (Azure OpenAI's).
        self.path_prefix = ""
        self.common_params: tuple[tuple[str, str], ...] = ()

    # -- requests ---------------------------------------------------------------------------------------

    def headers(self, api_key: str) -> dict[str, str]:
        """Headers sent with every request: auth, content negotiation, and the vendor's optional ones."""
        return {"Authorization": f"Bearer {api_key}", "Accept": "application/json", **self.extra_headers()}

    def extra_headers(self) -> dict[str, str]:
        """The vendor's optional headers: those of ``extra_header_fields`` whose extra field is set."""
        fields = self.extra_header_fields.items()
        return {header: str(self.extras[field]) for field, header in fields if self.extras.get(field)}

    def request(
        self,
        operation: str,
        method: str,
        path: str,
        params: tuple[tuple[str, str], ...] = (),
        *,
        json_body: dict[str, Any] | None = None,
        upload: wire.Upload | None = None,
        job_id: str | None = None,
    ) -> wire.ApiRequest:
        """A request of this API (every dialect builds its requests here). One that makes something (a body or a
        file to send) is not retry-safe."""
        return wire.ApiRequest(
            operation,
            method,
            self.path_prefix + path,
            (*params, *self.common_params),
            json_body,
            job_id,
            upload,
            retry_safe=json_body is None and upload is None,
        )

    def job_request(
        self, operation: str, method: str, job_id: object, suffix: str = "", params: tuple[tuple[str, str], ...] = ()
    ) -> wire.ApiRequest:
        """A request about one job, to ``{jobs_path}/{job_id}{suffix}``; ``InvalidJobIdError`` before any I/O."""
        return self.request(operation, method, job_path(self.jobs_path, job_id, suffix), params, job_id=str(job_id))

    def get_job(self, job_id: object) -> wire.ApiRequest:
        """The request for one job; ``InvalidJobIdError`` before any I/O."""
        return self.job_request("get", "GET", job_id)

    @abstractmethod
    def list_page(self, cursor: str | None, page_size: int, filters: Mapping[str, Any]) -> wire.ApiRequest: ...

    def cancel_job(self, job_id: object) -> wire.ApiRequest:
        """The request that cancels a job; ``InvalidJobIdError`` before any I/O."""
        return self.job_request("cancel", "POST", job_id, "/cancel")

    def delete_job(self, job_id: object) -> wire.ApiRequest:
        """The request that deletes a job; ``InvalidJobIdError`` or ``UnsupportedOperationError`` before any I/O."""
        return self._optional(job_id, "delete", "DELETE", "", self.ensure_can_delete)

    def ensure_can_delete(self) -> None:
        """Raise ``UnsupportedOperationError`` (no I/O) if this API cannot delete fine-tuning jobs."""
        if not self.supports_delete:
            raise self._unsupported("delete a fine-tuning job", "cancel it instead")

    def pause_job(self, job_id: object) -> wire.ApiRequest:
        """The request that pauses a job; ``InvalidJobIdError`` or ``UnsupportedOperationError`` before any I/O."""
        return self._optional(job_id, "pause", "POST", "/pause", self.ensure_can_pause)

    def resume_job(self, job_id: object) -> wire.ApiRequest:
        """The request that resumes a paused job; the same checks as ``pause_job``."""
        return self._optional(job_id, "resume", "POST", "/resume", self.ensure_can_pause)

    def ensure_can_pause(self) -> None:
        """Raise ``UnsupportedOperationError`` (no I/O) if this API cannot pause and resume fine-tuning jobs."""
        if not self.supports_pause:
            raise self._unsupported("pause or resume a fine-tuning job", "cancel it instead if it must stop")

    def _optional(
        self, job_id: object, operation: str, method: str, suffix: str, ensure_supported: Callable[[], None]
    ) -> wire.ApiRequest:
        validate_job_id(job_id)
        ensure_supported()
        return self.job_request(operation, method, job_id, suffix)

    def _unsupported(self, action: str, advice: str) -> UnsupportedOperationError:
        return UnsupportedOperationError(
            f"The {self.display_name} API has no way to {action}; "
            f"{advice} (CancelFineTuningJobOperator or FineTuningHook.cancel_job)"
        )

    @abstractmethod
    def events_page(self, job_id: object, cursor: str | None, limit: int) -> wire.ApiRequest:
        """The request for a page of the job's progress log: the entries after ``cursor`` in the vendor's paging
        order (``None``: the first page). ``InvalidJobIdError`` or ``FineTuningConfigError`` before any I/O."""

    def metrics_request(self, job_id: object) -> wire.ApiRequest | None:
        """The request for the job's training figures where the API keeps them apart from its log (``None`` here:
        the log's entries carry them). ``InvalidJobIdError`` before any I/O."""
        validate_job_id(job_id)
        return None

    def parse_metrics(self, payload: object) -> list[LossPoint]:
        """The loss points of a ``metrics_request`` answer."""
        return []

    def console_url(self, job_id: str, base_url: str) -> str:
        """Where a person can see the job in the vendor's web console (``console_pages``); ``""`` when ``base_url``
        is not the vendor's API, whose console this provider cannot know."""
        host = (urlsplit(base_url).hostname or "").lower()
        for key, page in self.console_pages.items():
            if host == key or (key.startswith(".") and host.endswith(key)):
                return page.format(job_id=job_id)
        return ""

    # -- making a job: the create request, the identity it carries, the files it trains on ---------------

    @abstractmethod
    def create_job(self, spec: wire.JobSpec, identity: TaskIdentity) -> wire.ApiRequest:
        """The request that creates a job as ``spec`` says, tagged with ``identity``; not retry-safe.
        ``FineTuningConfigError`` (naming the field) before any I/O for anything this API would refuse."""

    def create_basics(self, spec: wire.JobSpec) -> tuple[str, str, str | None]:
        """The model, training file id and validation file id of ``spec``, checked before any I/O, after refusing
        the options of ``spec`` this API does not take (``create_options``)."""
        refused = [name for name in spec.given_options() if name not in self.create_options]
        if refused:
            taken = ", ".join(sorted(self.create_options)) or "none"
            raise FineTuningConfigError(
                f"The {self.display_name} API takes no {', '.join(refused)} for a fine-tuning job "
                f"(the options it takes: {taken})"
            )
        if not isinstance(spec.model, str) or not spec.model.strip() or len(spec.model) > _MODEL_LENGTH:
            raise FineTuningConfigError(f"model must be a model name of 1 to {_MODEL_LENGTH} characters")
        training = validate_file_id(spec.training_file, "training file id")
        validation = None
        if spec.validation_file is not None:
            validation = validate_file_id(spec.validation_file, "validation file id")
        return spec.model, training, validation

    def create_body(self, spec: wire.JobSpec, **tags: str) -> dict[str, Any]:
        """The checked model and files of ``spec`` in the fields most APIs give them (``model``,
        ``training_file``, ``validation_file``), and ``tags`` (the field that carries the identity)."""
        model, training_file, validation_file = self.create_basics(spec)
        body: dict[str, Any] = {"model": model, "training_file": training_file, **tags}
        if validation_file is not None:
            body["validation_file"] = validation_file
        return body

    def identity_filters(self, spec: wire.JobSpec, identity: TaskIdentity) -> dict[str, Any]:
        """The ``list_page`` filters that narrow a listing to the jobs that may carry ``identity`` (here none:
        every listed job is compared)."""
        return {}

    def carries_identity(self, job: FineTuningJob, identity: TaskIdentity) -> bool:
        """Whether ``job`` was created for ``identity`` (checked on every listed job: a gateway may not filter).
        Here the identity's tag is the job's name (DashScope's ``job_name``, a ``suffix`` elsewhere)."""
        return job.name == identity.tag

    @abstractmethod
    def record_check(self, spec: wire.JobSpec) -> RecordCheck:
        """The check each record of the training file must pass for ``spec``'s method or training type."""

    @abstractmethod
    def upload_file(self, source: wire.LocalFile) -> wire.ApiRequest:
        """The request that uploads ``source`` for fine-tuning, named so that ``is_upload_of`` finds it again."""

    @abstractmethod
    def parse_upload(self, payload: object) -> wire.RemoteFile:
        """The stored file an upload answer describes; ``FineTuningApiError`` for a refused upload."""

    @abstractmethod
    def files_page(self, cursor: str | None, page_size: int) -> wire.ApiRequest:
        """The request for a page of the account's fine-tuning files (``None``: the first page)."""

    @abstractmethod
    def parse_files_page(self, payload: object, cursor: str | None, page_size: int) -> wire.FilePage:
        """One page of the file listing; ``MalformedAnswerError`` if it is not one."""

    @abstractmethod
    def is_upload_of(self, remote: wire.RemoteFile, source: wire.LocalFile) -> bool:
        """Whether ``remote`` is an earlier upload of ``source`` (same content), so it can be used again."""

    def is_file_id(self, value: object) -> bool:
        """Whether a training or validation file argument names a file at the vendor (else it is a local path)."""
        return is_file_id(value)

    # -- responses --------------------------------------------------------------------------------------

    @abstractmethod
    def parse_job(self, payload: object, *, job_id: str | None = None) -> FineTuningJob:
        """The job an answer carries; ``MalformedAnswerError`` if it is not a job object.

        :param payload: the decoded answer
        :param job_id: the id the answer must carry (the job asked for), if known
        """

    @abstractmethod
    def parse_page(self, payload: object, cursor: str | None, page_size: int) -> wire.JobPage:
        """One page of a listing; ``MalformedAnswerError`` if it is not a page of job objects.

        :param payload: the decoded answer
        :param cursor: the cursor the page was asked for with (``None``: the first page)
        :param page_size: the page size asked for
        """

    @abstractmethod
    def parse_events(self, payload: object, cursor: str | None) -> wire.EventPage:
        """One page of a job's progress log, entries oldest first; ``MalformedAnswerError`` if it is not one.

        :param payload: the decoded answer
        :param cursor: the cursor the page was asked for with (``None``: the first page)
        """

    def parse_cancel(self, payload: object, *, job_id: str | None = None) -> FineTuningJob | None:
        """The job after a cancel call, or ``None`` when the answer does not carry it (fetch it then).

        :param payload: the decoded answer
        :param job_id: the id of the job cancelled, if known
        """
        return self.parse_job(payload, job_id=job_id)

    def parse_delete(self, payload: object) -> None:
        """Check the answer to a delete call. Here any decoded answer is accepted: its HTTP status said success.

        :param payload: the decoded answer
        """
        return None

    def job_status(self, vendor_status: str) -> JobStatus:
        """The normalized status of a vendor word; unknown words are ``UNKNOWN`` (warned about once)."""
        status = self.status_words.get(vendor_status)
        if status is None:
            status = JobStatus.UNKNOWN
            _unknown_statuses.warn(self.name, vendor_status)
        return status

    def decode(self, request: wire.ApiRequest, response: wire.ApiResponse) -> dict[str, Any]:
        """The JSON object a successful (2xx) answer carries; a typed error for anything else (``decoding``)."""
        return decoding.decode(self, request, response)

    @abstractmethod
    def vendor_error(self, response: wire.ApiResponse, payload: Mapping[str, Any] | None) -> wire.ErrorDetails | None:
        """The error a body reports, or ``None`` when the answer is a success."""

    def request_id(self, response: wire.ApiResponse, payload: Mapping[str, Any] | None) -> str | None:
        """The id the vendor gave the request, for a message."""
        return response.headers.get("x-request-id")

    def refuses_in_current_state(self, error: FineTuningApiError) -> bool:
        """Whether ``error`` says the job's current state does not allow the call (e.g. cancel a finished job): one of
        ``state_error_codes``, or of ``state_error_statuses`` (which may mean more, so the hook confirms with a
        retrieve before it reads the job as already over)."""
        return error.vendor_code in self.state_error_codes or error.http_status in self.state_error_statuses

    def is_retryable_code(self, code: str | None) -> bool:
        """Whether an error code means a passing condition (throttling, a server error): ``retryable_codes``."""
        return code in self.retryable_codes

    def is_rate_limit_code(self, code: str | None) -> bool:
        """Whether an error code means a rate or quota limit, whatever the HTTP status: ``rate_limit_codes``."""
        return code in self.rate_limit_codes

    def is_job_limit(self, status: int, failure: wire.ErrorDetails) -> bool:
        """Whether a refused create says the account is at its job limit (too many jobs at once, or created
        today) in an answer the vendor documents for that: it passes when the account's jobs end (or age out),
        not when requests slow down. None here; a vendor that documents such an answer recognises it.

        :param status: the answer's HTTP status
        :param failure: the code and message the answer's body carries
        """
        return False
