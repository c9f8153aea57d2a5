"""Every error this provider raises. All derive from Airflow's ``AirflowException``."""

from __future__ import annotations

from typing import Any

from airflow_provider_ft._compat import AirflowException, AirflowFailException


class FineTuningError(AirflowException):
    """Base class of this provider's errors."""


class FineTuningConfigError(FineTuningError, ValueError):
    """A connection or argument is unusable; raised before any request is sent."""


class TrainingFileError(FineTuningConfigError):
    """A training or validation file that the vendor would refuse (a missing file, a bad line), found before any
    request; the message names the file and the line."""


class InvalidJobIdError(FineTuningError, ValueError):
    """A job id that is not a safe, non-empty id; raised before any request is sent."""


class UnsupportedOperationError(FineTuningError):
    """The vendor's API has no such operation (for example deleting an OpenAI fine-tuning job)."""


class FineTuningApiError(FineTuningError):
    """The vendor answered with an error, or with a body that is not the JSON it promised.

    :param message: what went wrong, in words (never contains the API key)
    :param http_status: HTTP status of the answer (0 when no answer arrived)
    :param vendor_code: the vendor's error code, e.g. ``NotFound`` or ``rate_limit_exceeded``
    :param request_id: the vendor's request id, for support tickets
    :param retryable: whether sending the same request again may succeed
    :param retry_after: seconds the vendor asked to wait before trying again, if it said
    :param rate_limited: the vendor refused because of a rate or quota limit (HTTP 429, DashScope ``Throttling``)
    :param attempts: how many times the request was sent before this error was final
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int = 0,
        vendor_code: str | None = None,
        request_id: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        rate_limited: bool = False,
        attempts: int = 1,
    ) -> None:
        self.message = message
        self.http_status = http_status
        self.vendor_code = vendor_code
        self.request_id = request_id
        self.retryable = retryable
        self.retry_after = retry_after
        self.rate_limited = rate_limited
        self.attempts = attempts
        super().__init__(self._describe())

    def after_attempts(self, attempts: int) -> FineTuningApiError:
        """The same error, saying it was final after ``attempts`` sends (the transport knows that, not the dialect)."""
        return type(self)(**{**self._fields(), "attempts": attempts})

    def _fields(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "http_status": self.http_status,
            "vendor_code": self.vendor_code,
            "request_id": self.request_id,
            "retryable": self.retryable,
            "retry_after": self.retry_after,
            "rate_limited": self.rate_limited,
            "attempts": self.attempts,
        }

    def _describe(self) -> str:
        details = [f"HTTP {self.http_status}" if self.http_status else "no HTTP answer"]
        if self.vendor_code:
            details.append(f"code {self.vendor_code}")
        if self.request_id:
            details.append(f"request id {self.request_id}")
        return f"{self.message} ({', '.join(details)})"


class JobNotFoundError(FineTuningApiError):
    """The vendor has no job with that id (HTTP 404)."""


class FineTuningCapacityError(FineTuningApiError):
    """The vendor refused to start a job because the account is at its job limit (too many jobs at once, or
    created today), in an answer the vendor documents for that: a refusal, so no job was made.

    Not a request-rate limit (``rate_limited`` is false): the account's other requests go on. The create operator
    waits for room with ``wait_for_capacity``; also raised, naming the limit, when that wait is over.

    Takes the parameters of ``FineTuningApiError``.
    """


class FineTuningTimeout(FineTuningError):
    """A job did not reach a terminal state in the time allowed."""


class FineTuningJobFailed(FineTuningError, AirflowFailException):
    """A job ended ``FAILED`` or ``CANCELLED`` while the caller needed it to succeed.

    Fails the task without retries (retrying cannot change a finished job's outcome).

    :param job: the job's final state as a dict (``FineTuningJob.to_dict()``)
    """

    def __init__(self, message: str, job: dict[str, object] | None = None) -> None:
        self.job = job
        super().__init__(message)


class FineTuningBudgetExceeded(FineTuningJobFailed):
    """A job passed a cost guard (``max_trained_tokens``, ``max_runtime``) and was cancelled.

    Fails the task without retries: a retry would re-attach to the cancelled job.

    :param job: the job's state after the cancel, as a dict (``FineTuningJob.to_dict()``)
    """


class FineTuningTransportError(FineTuningApiError):
    """No usable HTTP answer arrived: the host could not be reached, timed out, or dropped the connection.

    Always retryable: the request may not have reached the server, or its answer was lost.

    :param message: what happened, in words
    :param reason: a short name of the cause for logs (``ConnectTimeout``, ``deadline``, ...)
    :param attempts: how many times the request was sent before this error was final
    """

    def __init__(self, message: str, *, reason: str = "no answer", attempts: int = 1, **_: Any) -> None:
        self.reason = reason
        super().__init__(message, retryable=True, attempts=attempts)

    def _fields(self) -> dict[str, Any]:
        return {"message": self.message, "reason": self.reason, "attempts": self.attempts}


class MalformedAnswerError(FineTuningApiError):
    """A success answer whose JSON is not what the API documents (a job without an id, a page whose ``data`` is
    not a list, a time in the year 55000, ...): what the dialects' ``parse_*`` functions raise.

    Not retryable: a server that sent a wrong shape once is expected to send it again. The dialect sees the JSON,
    not the HTTP answer, so ``http_status`` is 0 unless a caller knows better.

    Takes the parameters of ``FineTuningApiError``; ``message`` says what was wrong with the answer, any server
    text in it escaped.
    """

    def _describe(self) -> str:
        if self.http_status:
            return super()._describe()
        return f"{self.message} (in a success answer)"


class BodyTooLarge(FineTuningApiError):
    """An answer decoded to more bytes than the connection allows (the ``max_response_bytes`` extra). Not retried."""


def describe_error(error: BaseException) -> dict[str, Any]:
    """A JSON-serializable description of ``error`` for an event payload (``error_from_event`` reverses it)."""
    if isinstance(error, FineTuningApiError):
        return {
            "type": type(error).__name__,
            "message": error.message,
            "http_status": error.http_status,
            "vendor_code": error.vendor_code,
            "request_id": error.request_id,
            "retryable": error.retryable,
        }
    return {
        "type": type(error).__name__,
        "message": str(error),
        "http_status": None,
        "vendor_code": None,
        "request_id": None,
        "retryable": False,
    }
