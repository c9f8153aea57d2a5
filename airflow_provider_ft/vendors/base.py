"""The ``Dialect`` base: what every vendor's API module shares (requests, JSON decoding, error mapping, the rules
every job object must meet).

A dialect is pure: it builds ``ApiRequest`` values and turns ``ApiResponse`` values into jobs or typed errors.
It never does I/O, so the blocking (requests) and asyncio (httpx) transports share every rule.

Whatever a server sends, ``decode`` and the ``parse_*`` functions return a well-formed result or raise
``FineTuningApiError`` (``MalformedAnswerError`` for a success answer of the wrong shape) saying what was wrong
with the answer; any server text in a message or a log line is escaped with ``printable``.

A strict core, a tolerant reader. The fields a decision depends on (``DECISION_FIELDS``) are checked hard: an
unusable value there is ``MalformedAnswerError``, never a guess. Every other field is informational: a value that
cannot be used is "not reported" (``None``), with one debug line, and never costs the caller the job.
"""

from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn
from urllib.parse import urlsplit

from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import (
    FineTuningApiError,
    FineTuningCapacityError,
    FineTuningConfigError,
    InvalidJobIdError,
    JobNotFoundError,
    MalformedAnswerError,
    UnsupportedOperationError,
)
from airflow_provider_ft.jobs import FineTuningJob, JobEvent, JobStatus
from airflow_provider_ft.retry import is_retryable_status, parse_retry_after
from airflow_provider_ft.vendors.ids import validate_file_id, validate_job_id
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
)

if TYPE_CHECKING:
    from airflow_provider_ft.identity import TaskIdentity

RecordCheck = Callable[[object], "str | None"]

#: Deepest nesting of arrays and objects an answer may have (a real job object nests about five levels deep).
MAX_JSON_DEPTH = 64
#: Times outside [EARLIEST_TIME, LATEST_TIME) are not believed: a job created in 1970 or in the year 55000 is a
#: server's mistake (a zero, milliseconds read as seconds), never a job.
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)
TIME_RANGE = f"a time from {EARLIEST_TIME.year} to {LATEST_TIME.year}"
#: The fields of a job a decision reads, checked hard in every dialect (``MalformedAnswerError`` if unusable):
#:
#: - ``id``: every later request is about it, and an answer for another job is refused;
#: - ``status``: whether the job is over decides what the sensor, the trigger, a cancel and the cleanup do (an
#:   unknown word is read as UNKNOWN, not terminal, and warned about: that is a value, not an unusable one);
#: - ``created_at``: ``max_runtime`` and the cleanup's ``older_than`` act on the job's age;
#: - ``identity``: the field a create tags its job with (OpenAI ``metadata``, DashScope ``job_name``, Azure OpenAI
#:   and Together AI ``suffix``), which exactly-once reads to find a job an earlier try made;
#: - of a progress-log entry, its ``cursor`` (the event id, the line number): the next read starts after it.
#:
#: Absent (or ``null``) is not unusable: a job without ``created_at`` has no age to act on. Everything else (finish
#: times, estimates, token counts, hyperparameters, integrations, error text, an entry's time and figures) is
#: informational: see ``Dialect.unusable``.
DECISION_FIELDS = ("id", "status", "created_at", "identity", "cursor")
#: The largest count (tokens, jobs) believed; larger or negative ones are read as absent.
MAX_COUNT = 2**63 - 1
#: Unknown status words remembered (and warned about once each); past that, one warning says so and no more.
MAX_WARNED_STATUSES = 64

_SNIPPET_LENGTH = 160
_SNIPPET_BYTES = 4096
_MESSAGE_LENGTH = 500
_CODE_LENGTH = 100
_VALUE_LENGTH = 60
_STATUS_LENGTH = 64
_MODEL_LENGTH = 256
_FILE_ID = re.compile(r"file-[A-Za-z0-9][A-Za-z0-9_.\-]{0,122}")


def is_file_id(value: object) -> bool:
    """Whether a training or validation file argument names a file at the vendor (else it is a local path).
    Every vendor's ids start ``file-`` and have no ``/`` or ``.jsonl``."""
    return isinstance(value, str) and _FILE_ID.fullmatch(value) is not None and not value.endswith(".jsonl")


log = logging.getLogger(__name__)


def body_snippet(body: bytes) -> str:
    """The start of a body for an error message: whitespace collapsed, non-printable characters escaped, short."""
    head = body[:_SNIPPET_BYTES]
    snippet = printable(" ".join(head.decode("utf-8", errors="replace").split()), _SNIPPET_LENGTH)
    if len(body) > len(head) and not snippet.endswith("..."):
        snippet += "..."
    return snippet


def shown(value: object) -> str:
    """A JSON value as a short, printable excerpt with its JSON type, for a message: ``"false" (string)``."""
    if value is None:
        return "null"
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        text = "..."
    return f"{printable(text, _VALUE_LENGTH)} ({json_type(value)})"


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type (``null``, ``boolean``, ``number``, ``string``, ``array``, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


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


class Dialect(ABC):
    """One vendor's fine-tuning API: its paths, headers, envelopes, errors, pagination and status words.

    :param extras: the connection's extra fields
    """

    name: ClassVar[str]
    display_name: ClassVar[str]
    conn_types: ClassVar[tuple[str, ...]]
    default_base_url: ClassVar[str]
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

    def __init__(self, extras: Mapping[str, Any] | None = None) -> None:
        self.extras: Mapping[str, Any] = extras or {}

    # -- requests ---------------------------------------------------------------------------------------

    def headers(self, api_key: str) -> dict[str, str]:
        """Headers sent with every request: auth, content negotiation, and the vendor's optional ones."""
        return {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            **self.extra_headers(),
        }

    def extra_headers(self) -> dict[str, str]:
        return {}

    @abstractmethod
    def get_job(self, job_id: object) -> ApiRequest: ...

    @abstractmethod
    def list_page(self, cursor: str | None, page_size: int, filters: Mapping[str, Any]) -> ApiRequest: ...

    @abstractmethod
    def cancel_job(self, job_id: object) -> ApiRequest: ...

    def delete_job(self, job_id: object) -> ApiRequest:
        """The request that deletes a job; ``InvalidJobIdError`` or ``UnsupportedOperationError`` before any I/O."""
        self._refuse_unbuilt(job_id, self.ensure_can_delete, "delete")

    def ensure_can_delete(self) -> None:
        """Raise ``UnsupportedOperationError`` (no I/O) if this API cannot delete fine-tuning jobs."""
        if not self.supports_delete:
            raise self._unsupported("delete a fine-tuning job", "cancel it instead")

    def pause_job(self, job_id: object) -> ApiRequest:
        """The request that pauses a job; ``InvalidJobIdError`` or ``UnsupportedOperationError`` before any I/O."""
        self._refuse_unbuilt(job_id, self.ensure_can_pause, "pause")

    def resume_job(self, job_id: object) -> ApiRequest:
        """The request that resumes a paused job; the same checks as ``pause_job``."""
        self._refuse_unbuilt(job_id, self.ensure_can_pause, "resume")

    def ensure_can_pause(self) -> None:
        """Raise ``UnsupportedOperationError`` (no I/O) if this API cannot pause and resume fine-tuning jobs."""
        if not self.supports_pause:
            raise self._unsupported("pause or resume a fine-tuning job", "cancel it instead if it must stop")

    def _refuse_unbuilt(self, job_id: object, ensure_supported: Callable[[], None], verb: str) -> NoReturn:
        """What an optional request does in a dialect that does not build it: the id and capability checks."""
        validate_job_id(job_id)
        ensure_supported()
        raise NotImplementedError(f"{type(self).__name__} says it supports {verb} but builds no request")

    def _unsupported(self, action: str, advice: str) -> UnsupportedOperationError:
        return UnsupportedOperationError(
            f"The {self.display_name} API has no way to {action}; "
            f"{advice} (CancelFineTuningJobOperator or FineTuningHook.cancel_job)"
        )

    @abstractmethod
    def events_page(self, job_id: object, cursor: str | None, limit: int) -> ApiRequest:
        """The request for a page of the job's progress log: the entries after ``cursor`` in the vendor's paging
        order (``None``: the first page). ``InvalidJobIdError`` or ``FineTuningConfigError`` before any I/O."""

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
    def create_job(self, spec: JobSpec, identity: TaskIdentity) -> ApiRequest:
        """The request that creates a job as ``spec`` says, tagged with ``identity``; not retry-safe.
        ``FineTuningConfigError`` (naming the field) before any I/O for anything this API would refuse."""

    @abstractmethod
    def identity_filters(self, spec: JobSpec, identity: TaskIdentity) -> dict[str, Any]:
        """The ``list_page`` filters that narrow a listing to the jobs that may carry ``identity``."""

    @abstractmethod
    def carries_identity(self, job: FineTuningJob, identity: TaskIdentity) -> bool:
        """Whether ``job`` was created for ``identity`` (checked on every listed job: a gateway may not filter)."""

    @abstractmethod
    def record_check(self, spec: JobSpec) -> RecordCheck:
        """The check each record of the training file must pass for ``spec``'s method or training type."""

    @abstractmethod
    def upload_file(self, source: LocalFile) -> ApiRequest:
        """The request that uploads ``source`` for fine-tuning, named so that ``is_upload_of`` finds it again."""

    @abstractmethod
    def parse_upload(self, payload: object) -> RemoteFile:
        """The stored file an upload answer describes; ``FineTuningApiError`` for a refused upload."""

    @abstractmethod
    def files_page(self, cursor: str | None, page_size: int) -> ApiRequest:
        """The request for a page of the account's fine-tuning files (``None``: the first page)."""

    @abstractmethod
    def parse_files_page(self, payload: object, cursor: str | None, page_size: int) -> FilePage:
        """One page of the file listing; ``MalformedAnswerError`` if it is not one."""

    @abstractmethod
    def is_upload_of(self, remote: RemoteFile, source: LocalFile) -> bool:
        """Whether ``remote`` is an earlier upload of ``source`` (same content), so it can be used again."""

    def is_file_id(self, value: object) -> bool:
        """Whether a training or validation file argument names a file at the vendor (else it is a local path)."""
        return is_file_id(value)

    def refuse_other_options(self, spec: JobSpec) -> None:
        """``FineTuningConfigError`` naming the options of ``spec`` this API does not take."""
        refused = [name for name in spec.given_options() if name not in self.create_options]
        if refused:
            taken = ", ".join(sorted(self.create_options)) or "none"
            raise FineTuningConfigError(
                f"The {self.display_name} API takes no {', '.join(refused)} for a fine-tuning job "
                f"(the options it takes: {taken})"
            )

    def create_basics(self, spec: JobSpec) -> tuple[str, str, str | None]:
        """The model, training file id and validation file id of ``spec``, checked before any I/O."""
        if not isinstance(spec.model, str) or not spec.model.strip() or len(spec.model) > _MODEL_LENGTH:
            raise FineTuningConfigError(f"model must be a model name of 1 to {_MODEL_LENGTH} characters")
        training = validate_file_id(spec.training_file, "training file id")
        validation = None
        if spec.validation_file is not None:
            validation = validate_file_id(spec.validation_file, "validation file id")
        return spec.model, training, validation

    def file_id_in(self, entry: Mapping[str, Any], field: str, what: str = "the file") -> str:
        """The vendor's id of a file object (``entry[field]``): a string that is a safe id."""
        value = entry.get(field)
        if not isinstance(value, str) or not value:
            raise self.malformed(f"{what}'s '{field}' is {shown(value)}, not a file id")
        try:
            return validate_file_id(value)
        except FineTuningConfigError as refused:
            raise self.malformed(f"{what}'s '{field}' is not a usable file id: {printable(refused, 200)}") from None

    # -- responses --------------------------------------------------------------------------------------

    @abstractmethod
    def parse_job(self, payload: object, *, job_id: str | None = None) -> FineTuningJob:
        """The job an answer carries; ``MalformedAnswerError`` if it is not a job object.

        :param payload: the decoded answer
        :param job_id: the id the answer must carry (the job asked for), if known
        """

    @abstractmethod
    def parse_page(self, payload: object, cursor: str | None, page_size: int) -> JobPage:
        """One page of a listing; ``MalformedAnswerError`` if it is not a page of job objects.

        :param payload: the decoded answer
        :param cursor: the cursor the page was asked for with (``None``: the first page)
        :param page_size: the page size asked for
        """

    @abstractmethod
    def parse_events(self, payload: object, cursor: str | None) -> EventPage:
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

    @abstractmethod
    def vendor_error(self, response: ApiResponse, payload: Mapping[str, Any] | None) -> ErrorDetails | None:
        """The error a body reports, or ``None`` when the answer is a success."""

    @abstractmethod
    def refuses_in_current_state(self, error: FineTuningApiError) -> bool:
        """Whether ``error`` says the job's current state does not allow the call (e.g. cancel a finished job)."""

    def decode(self, request: ApiRequest, response: ApiResponse) -> dict[str, Any]:
        """The JSON object a successful (2xx) answer carries; a typed error for anything else.

        1xx and 3xx answers are errors too: redirects are not followed (the connection's host must be the API's).
        """
        if response.status < 200 or 300 <= response.status < 400:
            raise self._unfinished_error(request, response)
        payload, problem = _json_object(response.body)
        failure = self.vendor_error(response, payload)
        if failure is not None or response.status >= 400:
            raise self._api_error(request, response, failure or ErrorDetails())
        if payload is None:
            raise FineTuningApiError(
                f"{self.display_name} answered {request.method} {request.path} with a body that {problem.text}: "
                f"'{body_snippet(response.body) or '<empty>'}'",
                http_status=response.status,
                request_id=_short(self.request_id(response, None)),
                retryable=problem.may_heal and not request.is_mutating,
            )
        return payload

    def request_id(self, response: ApiResponse, payload: Mapping[str, Any] | None) -> str | None:
        return response.headers.get("x-request-id")

    def job_status(self, vendor_status: str) -> JobStatus:
        """The normalized status of a vendor word; unknown words are ``UNKNOWN`` (warned about once)."""
        status = self.status_words.get(vendor_status)
        if status is None:
            status = JobStatus.UNKNOWN
            _unknown_statuses.warn(self.name, vendor_status)
        return status

    def _api_error(self, request: ApiRequest, response: ApiResponse, failure: ErrorDetails) -> FineTuningApiError:
        error_class = FineTuningApiError
        if failure.message:
            described = printable(failure.message, _MESSAGE_LENGTH)
        else:
            described = body_snippet(response.body) or "no error message"
        if response.status == 404 and request.job_id is not None:
            error_class = JobNotFoundError
            described = f"job {request.job_id} not found: {described}"
        at_job_limit = request.operation == "create" and self.is_job_limit(response.status, failure)
        if at_job_limit:
            error_class = FineTuningCapacityError
        return error_class(
            f"{self.display_name} {request.operation} failed: {described}",
            http_status=response.status,
            vendor_code=_short(failure.code),
            request_id=_short(failure.request_id or self.request_id(response, None)),
            retryable=is_retryable_status(response.status) or self.is_retryable_code(failure.code),
            retry_after=parse_retry_after(response.headers),
            rate_limited=not at_job_limit and (response.status == 429 or self.is_rate_limit_code(failure.code)),
        )

    def _unfinished_error(self, request: ApiRequest, response: ApiResponse) -> FineTuningApiError:
        """The error for an answer that is neither a success nor an error: informational, or a redirect."""
        if 300 <= response.status < 400:
            location = response.headers.get("location")
            target = f" to '{printable(location, _SNIPPET_LENGTH)}'" if location else ""
            described = (
                f"a redirect{target}; redirects are not followed: set the connection's host to the API's own URL"
            )
        else:
            described = "not a final answer (a success is 2xx)"
        return FineTuningApiError(
            f"{self.display_name} answered {request.method} {request.path} with HTTP {response.status}, {described}",
            http_status=response.status,
            request_id=_short(self.request_id(response, None)),
        )

    def is_retryable_code(self, code: str | None) -> bool:
        """Whether an error code in a 2xx body means a passing condition (throttling, server error)."""
        return False

    def is_rate_limit_code(self, code: str | None) -> bool:
        """Whether an error code means a rate or quota limit, whatever the HTTP status."""
        return False

    def is_job_limit(self, status: int, failure: ErrorDetails) -> bool:
        """Whether a refused create says the account is at its job limit (too many jobs at once, or created
        today) in an answer the vendor documents for that: it passes when the account's jobs end (or age out),
        not when requests slow down. None here; a vendor that documents such an answer recognises it.

        :param status: the answer's HTTP status
        :param failure: the code and message the answer's body carries
        """
        return False

    # -- the rules every job object meets ---------------------------------------------------------------

    def malformed(self, problem: str) -> MalformedAnswerError:
        """The error for an answer of the wrong shape; ``problem`` says what is wrong, server text escaped."""
        return MalformedAnswerError(f"{self.display_name} sent an answer this provider cannot use: {problem}")

    def job_object(self, value: object, what: str = "the job") -> Mapping[str, Any]:
        """``value`` if it is a JSON object, else ``MalformedAnswerError`` naming ``what`` it should have been."""
        if not isinstance(value, Mapping):
            raise self.malformed(f"{what} is {shown(value)}, not a JSON object")
        return value

    def job_id_in(self, job: Mapping[str, Any], field: str, expected: str | None = None) -> str:
        """The job's id (``job[field]``): a non-empty string that is a valid job id, and ``expected`` if given.

        Ids from a server end up in the URLs of later requests, so they meet the same rules as ids from a user.
        """
        value = job.get(field)
        if field not in job:
            raise self.malformed(f"the job has no '{field}'")
        if not isinstance(value, str) or not value:
            raise self.malformed(f"the job's '{field}' is {shown(value)}, not a job id")
        try:
            job_id = validate_job_id(value)
        except InvalidJobIdError as refused:
            raise self.malformed(f"the job's '{field}' is not a usable job id: {printable(refused, 200)}") from None
        if expected is not None and job_id != expected:
            raise self.malformed(f"asked for job {printable(expected, 140)}, the answer is job {job_id}")
        return job_id

    def status_word_in(self, job: Mapping[str, Any], field: str, job_id: str) -> str:
        """The vendor's status word of the job (``job[field]``): a non-blank string, known or not."""
        value = job.get(field)
        if field not in job:
            raise self.malformed(f"job {job_id} has no '{field}'")
        if not isinstance(value, str) or not value.strip():
            raise self.malformed(f"the '{field}' of job {job_id} is {shown(value)}, not a status word")
        return value

    def unusable(self, field: str, whose: str, sent: object, expected: str, *, decides: bool = False) -> None:
        """What a field whose value cannot be used becomes: ``MalformedAnswerError`` when a decision reads it
        (``decides``, see ``DECISION_FIELDS``), else "not reported" (``None``) and one debug line.

        :param field: the field's name on the wire
        :param whose: what it belongs to, for the message (``job ftjob-1``, ``event 3 of the job's log``)
        :param sent: the value sent
        :param expected: what it should have been (``a time from 2000 to 2200``)
        :param decides: whether a decision reads the field
        """
        problem = f"the '{field}' of {whose} is {shown(sent)}, not {expected}"
        if decides:
            raise self.malformed(problem)
        log.debug("%s sent %s; read as not reported", self.display_name, problem)
        return None

    def next_cursor(
        self, has_more: bool, entries: Sequence[object], cursor: Callable[[], str], what: str
    ) -> str | None:
        """The cursor of the page after this one (``cursor()``), or ``None`` on the last page. A page that says
        more follow but brings no entry is ``MalformedAnswerError``: read as the end, it would hide the rest.

        :param has_more: whether the page says more follow
        :param entries: the page's entries
        :param cursor: makes the next page's cursor from this page's entries
        :param what: the page, for the message (``the page``, ``the events page``)
        """
        if not has_more:
            return None
        if not entries:
            raise self.malformed(f"{what} holds no entry but says more follow")
        return cursor()

    def identity_text(self, record: Mapping[str, Any], field: str, whose: str) -> str | None:
        """The text a create tagged its job with (``DECISION_FIELDS``' ``identity``): ``None`` if absent, ``null``
        or empty; anything but a string is ``MalformedAnswerError``: exactly-once must not guess whose job it is."""
        value = record.get(field)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.malformed(f"the '{field}' of {whose} is {shown(value)}, not a string")
        return value

    def checked_time(
        self, moment: datetime, field: str, whose: str, sent: object, *, decides: bool = False
    ) -> datetime | None:
        """``moment`` if it lies from ``EARLIEST_TIME`` to before ``LATEST_TIME``; else ``unusable``: a job created
        in 1970 or in the year 55000 is a server's zero or a unit mistake, never a time."""
        if EARLIEST_TIME.year <= moment.year < LATEST_TIME.year:
            return moment
        self.unusable(field, whose, sent, TIME_RANGE, decides=decides)
        return None


def _short(text: str | None) -> str | None:
    return printable(text, _CODE_LENGTH) if text else None


@dataclass(frozen=True)
class _BodyProblem:
    """Why a body is not a usable JSON object, and whether reading it again may help."""

    text: str
    may_heal: bool


#: Empty, or not JSON: most likely cut short by a proxy or the network, so a read is worth trying again.
_NOT_JSON = _BodyProblem("is not a JSON object", may_heal=True)


class _ConstantRefused(ValueError):
    pass


def _json_object(body: bytes) -> tuple[dict[str, Any] | None, _BodyProblem]:
    """The JSON object ``body`` holds, or ``None`` and why not (a complete document of the wrong kind won't heal)."""
    if not body.strip():
        return None, _NOT_JSON
    try:
        payload = json.loads(body, parse_constant=_refuse_constant)
    except _ConstantRefused as refused:
        return None, _BodyProblem(f"is not a JSON object: it holds {refused}, which JSON does not allow", False)
    except RecursionError:
        return None, _too_deep()
    except ValueError:
        return None, _NOT_JSON
    if not isinstance(payload, dict):
        return None, _BodyProblem(f"is not a JSON object but a JSON {json_type(payload)}", False)
    if _deeper_than(payload, MAX_JSON_DEPTH):
        return None, _too_deep()
    return payload, _NOT_JSON


def _too_deep() -> _BodyProblem:
    return _BodyProblem(f"is not a JSON object of at most {MAX_JSON_DEPTH} levels (arrays and objects)", False)


def _refuse_constant(name: str) -> float:
    # NaN and Infinity are not JSON (RFC 8259); kept, they would make a job's to_dict() unstorable as JSON.
    raise _ConstantRefused(name)


def _deeper_than(value: object, depth: int) -> bool:
    """Whether arrays and objects nest more than ``depth`` levels deep in ``value`` (counted without recursion)."""
    level = [value]
    for _ in range(depth):
        level = [child for container in level for child in _containers_in(container)]
        if not level:
            return False
    return True


def _containers_in(value: object) -> Iterator[object]:
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return (item for item in items if isinstance(item, dict | list))


def in_time_order(events: list[JobEvent]) -> list[JobEvent]:
    """``events``, given in the order the vendor documents turned oldest first, ordered by their own times when every
    entry has one. The sort is stable: entries of the same time keep the documented order. Without a time on every
    entry, the documented order is all there is."""
    if any(event.created_at is None for event in events):
        return events
    return sorted(events, key=lambda event: event.created_at or EARLIEST_TIME)


def optional_str(value: Any) -> str | None:
    """A non-empty string, or ``None`` for anything else: optional text fields of the wrong type read as absent."""
    return value if isinstance(value, str) and value else None


def optional_int(value: Any) -> int | None:
    """An ``int`` (not a ``bool``), or ``None`` for anything else."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def optional_count(value: Any) -> int | None:
    """A count from 0 to ``MAX_COUNT``, or ``None`` for anything else (read as absent, as a wrong type is)."""
    number = optional_int(value)
    return number if number is not None and 0 <= number <= MAX_COUNT else None
