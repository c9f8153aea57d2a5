"""When to send a request again and how long to wait first: the one place that decides it, for every caller.

Pure (no I/O, no clock). Dialects say which vendor codes mean "rate limited" or "try again", with the header
readers here; the transports, and callers that try a whole call again, wait as ``RetryPolicy`` says.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from airflow_provider_ft import defaults

if TYPE_CHECKING:
    from airflow_provider_ft.exceptions import FineTuningApiError

#: HTTP statuses worth sending the same request again for: the server may answer differently next time.
RETRYABLE_STATUSES = frozenset({408, 429})
#: One part of a duration as OpenAI writes it in ``x-ratelimit-reset-*``: ``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s``.
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


@dataclass(frozen=True)
class RetryPolicy:
    """How often to try one request and how long to wait between tries.

    :param max_retries: retries after the first attempt (so ``max_retries + 1`` attempts at most)
    :param backoff_base: first backoff in seconds; doubles each retry
    :param backoff_max: longest backoff in seconds (before jitter)
    :param retry_after_max: longest wait a server's ``Retry-After`` can impose, in seconds
    :param jitter: up to this fraction is added to each backoff at random
    """

    max_retries: int = defaults.MAX_RETRIES
    backoff_base: float = defaults.BACKOFF_BASE
    backoff_max: float = defaults.BACKOFF_MAX
    retry_after_max: float = defaults.RETRY_AFTER_MAX
    jitter: float = defaults.JITTER

    def next_wait(
        self, attempt: int, error: FineTuningApiError, *, retry_safe: bool = True, remaining: float | None = None
    ) -> float | None:
        """Seconds to wait before sending again after attempt ``attempt`` (1-based) failed with ``error``; ``None``:
        the error is final (not retryable, ``max_retries`` used up, or the wait would not end within ``remaining``).

        :param attempt: the attempt that failed, 1 for the first
        :param error: how it failed
        :param retry_safe: whether the request may be sent twice (a create may not: it could make a second job)
        :param remaining: seconds left before the caller's deadline (``None``: no deadline)
        """
        if not (retry_safe and error.retryable) or attempt > self.max_retries:
            return None
        wait = self.wait_seconds(attempt, error.retry_after)
        return None if remaining is not None and wait >= remaining else wait

    def wait_seconds(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): what the server asked (capped at
        ``retry_after_max``), else a doubling backoff with jitter."""
        if retry_after is not None and math.isfinite(retry_after):
            return min(max(float(retry_after), 0.0), self.retry_after_max)
        backoff = self._backoff(attempt)
        return backoff + random.uniform(0, self.jitter * backoff)

    def longest_total_wait(self) -> float:
        """An upper bound of all waits between attempts of one request."""
        return sum(
            max(self.retry_after_max, self._backoff(attempt) * (1 + self.jitter))
            for attempt in range(1, self.max_retries + 1)
        )

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_base * 2.0 ** (attempt - 1), self.backoff_max)


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, else ``Retry-After`` (seconds or HTTP date)."""
    milliseconds = _finite_seconds(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000.0
    value = headers.get("retry-after")
    seconds = _finite_seconds(value)
    if value is None or seconds is not None:
        return seconds
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - (now or datetime.now(UTC))).total_seconds(), 0.0)


def parse_spent_budget(headers: Mapping[str, str]) -> float | None:
    """Seconds until a spent budget is refilled: when an ``x-ratelimit-remaining-*`` header says 0 requests (or
    tokens) are left, its ``x-ratelimit-reset-*`` (a duration such as ``6m0s``, or plain seconds); else ``None``."""
    waits = [
        reset
        for budget in ("requests", "tokens")
        if headers.get(f"x-ratelimit-remaining-{budget}", "").strip() == "0"
        and (reset := _duration_seconds(headers.get(f"x-ratelimit-reset-{budget}"))) is not None
    ]
    return max(waits, default=None)


def _duration_seconds(value: str | None) -> float | None:
    seconds = _finite_seconds(value)
    if value is None or seconds is not None:
        return seconds
    text = value.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    total = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    return total if math.isfinite(total) else None


def _finite_seconds(value: str | None) -> float | None:
    """A non-negative finite number (``nan``, ``inf`` and words are no answer at all)."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return max(number, 0.0) if math.isfinite(number) else None
