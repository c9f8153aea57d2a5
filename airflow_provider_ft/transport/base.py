"""What both transports decide, written once; ``sync.SyncTransport`` and ``aio.AsyncTransport`` add their I/O:
a retry loop (``send``), an attempt (gate, deadline, exchange) and their library's exchange.

A transport sends a dialect's ``ApiRequest`` and hands back the decoded JSON object or one typed error:

1. each attempt first takes its turn at the account's ``RateGate``, shared by every transport of the process on
   that account, and reports how it went: one 429 pauses the account, not one request;
2. each attempt has a total deadline (connect, headers and whole body): ``attempt_seconds``, never past the
   caller's deadline;
3. the body is read within ``max_response_bytes`` (error answers: their first 64 KiB), and the connection's
   secrets are scrubbed from it and from the headers before the dialect decodes it;
4. ``RetryPolicy.next_wait`` decides whether, and after how long, to send again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow_provider_ft import defaults
from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningTransportError
from airflow_provider_ft.retry import parse_spent_budget
from airflow_provider_ft.transport import ratelimit
from airflow_provider_ft.transport.body import ERROR_BODY_LIMIT, BodyReader
from airflow_provider_ft.transport.settings import ClientSettings
from airflow_provider_ft.vendors.wire import ApiRequest, ApiResponse

log = logging.getLogger(__name__)
#: Bytes of an answer read at a time.
CHUNK = 64 * 1024


class Transport:
    """The decisions of both transports, and their messages.

    :param settings: the account and its limits
    """

    __slots__ = ("_request_errors", "dialect", "gate", "settings")

    def __init__(self, settings: ClientSettings) -> None:
        #: The HTTP library's errors: no usable answer arrived (each driver sets its own).
        self._request_errors: tuple[type[Exception], ...] = ()
        self.settings = settings
        self.dialect = settings.dialect
        self.gate = ratelimit.gate_for(settings)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.settings.conn_id!r}, base_url={self.settings.base_url!r})"

    def _turn(self, request: ApiRequest, deadline: float | None, *, first: bool) -> ratelimit.Turn:
        """The account gate's answer for this attempt; refused at once if its wait would end past ``deadline``.
        A long first wait of an attempt is logged (not each look after it)."""
        now = time.monotonic()
        turn = self.gate.take_turn(now)
        if turn.wait and deadline is not None and now + turn.wait > deadline:
            raise self._held_back(request, self.gate.paused_for(now) or turn.wait)
        if first and turn.wait > 1.0:
            what = f"{self.dialect.display_name} {request.method} {request.path}"
            log.info("%s waits %.1f s: the account is rate limited (shared by every request on it)", what, turn.wait)
        return turn

    def _attempt_deadline(self, request: ApiRequest, deadline: float | None) -> float:
        """When this attempt must be over: its own budget, cut at the caller's deadline. A caller whose deadline has
        already passed still gets one look (a last check before reporting a timeout), within the attempt's budget."""
        now = time.monotonic()
        own = now + self._attempt_seconds(request)
        return own if deadline is None or deadline <= now else min(own, deadline)

    def _attempt_seconds(self, request: ApiRequest) -> float:
        """An attempt's budget: ``attempt_seconds``, plus an upload's size at the slowest upload rate allowed."""
        if request.upload is None:
            return self.settings.attempt_seconds
        return self.settings.attempt_seconds + request.upload.source.size / defaults.UPLOAD_BYTES_PER_SECOND

    def _reader(self, answer: Any) -> tuple[dict[str, str], BodyReader]:
        """An answer's headers (lower-case names), and a reader of its body within the size caps."""
        headers = {name.lower(): value for name, value in answer.headers.items()}
        status: int = answer.status_code
        is_error = not 200 <= status < 300
        limit = ERROR_BODY_LIMIT if is_error else self.settings.max_response_bytes
        return headers, BodyReader(headers.get("content-encoding"), limit, truncate=is_error, status=status)

    def _answer(
        self, request: ApiRequest, probe: bool, status: int, headers: dict[str, str], body: bytes
    ) -> dict[str, Any]:
        """What the dialect makes of a whole answer, secrets scrubbed first; the gate learns how it went."""
        try:
            scrubber = self.settings.scrubber
            response = ApiResponse(status, scrubber.headers(headers), scrubber.body(body))
            spent = parse_spent_budget(response.headers)
            if spent is not None:
                self.gate.spent(time.monotonic(), min(spent, self.settings.retry.retry_after_max))
            answer = self.dialect.decode(request, response)
        except BaseException as error:
            self._report(error, probed=probe)
            raise
        self._report(None, probed=probe)
        return answer

    def _failed(self, request: ApiRequest, probe: bool, error: BaseException | None, *, expired: bool) -> BaseException:
        """What an exchange that raised ``error`` ends in, told to the gate: the library's error (or ``None``, an
        answer the deadline cut short) is a transport error, the deadline's when ``expired``; an answer refused
        while read (too large, badly encoded) an API error named after the request; anything else (a cancel, a
        kill, a file changed mid-upload) itself."""
        if error is None or (expired and isinstance(error, self._request_errors)):
            failure: BaseException = self._deadline_error(request)
        elif isinstance(error, self._request_errors):
            failure = self._transport_error(request, type(error).__name__, f"{type(error).__name__}: {error}")
        elif isinstance(error, FineTuningApiError):
            failure = type(error)(f"{self._subject(request)}: {error.message}", http_status=error.http_status)
        else:
            failure = error
        self._report(failure, probed=probe)
        return failure

    def _report(self, outcome: BaseException | None, *, probed: bool) -> None:
        """Tell the account's gate how an attempt went: answered (``None``, or an error the vendor sent), refused
        for the rate limit, or not answered (no usable answer, or interrupted: a probe's answer will not come)."""
        if isinstance(outcome, FineTuningTransportError) or not isinstance(outcome, FineTuningApiError | None):
            self.gate.unanswered(probed=probed)
        elif isinstance(outcome, FineTuningApiError) and outcome.rate_limited:
            wait = self.settings.retry.wait_seconds(1, outcome.retry_after)
            self.gate.refused(time.monotonic(), wait, probed=probed)
        else:
            self.gate.passed(probed=probed)

    def _retry_wait(
        self, request: ApiRequest, error: FineTuningApiError, attempt: int, deadline: float | None
    ) -> float:
        """Seconds to wait (logged) before sending ``request`` again, attempt ``attempt`` having failed with
        ``error``; when the policy says stop, ``error`` is raised as final, with its number of attempts."""
        policy = self.settings.retry
        remaining = None if deadline is None else deadline - time.monotonic()
        wait = policy.next_wait(attempt, error, retry_safe=request.retry_safe, remaining=remaining)
        if wait is None:
            raise error.after_attempts(attempt) from error.__cause__
        what = f"{self.dialect.display_name} {request.method} {request.path}"
        tries = policy.max_retries + 1
        log.warning("%s failed (%s); attempt %d of %d, retrying in %.2f s", what, _reason(error), attempt, tries, wait)
        return wait

    def _subject(self, request: ApiRequest) -> str:
        return f"{self.dialect.display_name} {request.operation} {request.method} {request.path}"

    def _held_back(self, request: ApiRequest, wait: float) -> FineTuningApiError:
        return FineTuningApiError(
            f"{self._subject(request)} was not sent: the account of connection {self.settings.conn_id!r} is rate "
            f"limited for another {wait:.1f} s (a request on it was refused with a rate limit) and the call's "
            "deadline comes first",
            retryable=True,
            rate_limited=True,
            retry_after=wait,
        )

    def _transport_error(self, request: ApiRequest, reason: str, detail: str) -> FineTuningTransportError:
        return FineTuningTransportError(
            f"{self._subject(request)} got no usable answer from {self.settings.base_url} (connection "
            f"{self.settings.conn_id!r}): {printable(self.settings.scrubber.text(detail), 300)}",
            reason=reason,
        )

    def _deadline_error(self, request: ApiRequest) -> FineTuningTransportError:
        seconds = self._attempt_seconds(request)
        return self._transport_error(request, "deadline", f"the answer was not complete within {seconds:g} s")


def _reason(error: FineTuningApiError) -> str:
    if isinstance(error, FineTuningTransportError):
        return error.reason
    return f"HTTP {error.http_status}" if error.http_status else type(error).__name__
