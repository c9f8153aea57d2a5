"""``RetryPolicy``: how long to wait before the next attempt."""

from __future__ import annotations

import pytest

from airflow_provider_ft.exceptions import FineTuningApiError
from airflow_provider_ft.retry import RetryPolicy, parse_retry_after


def test_retry_after_is_obeyed_up_to_the_cap() -> None:
    policy = RetryPolicy(retry_after_max=5.0)
    assert policy.wait_seconds(1, 2.0) == 2.0
    assert policy.wait_seconds(1, 3600.0) == 5.0


@pytest.mark.parametrize("attempt", [1, 2, 3, 8])
def test_backoff_doubles_up_to_its_cap_with_bounded_jitter(attempt: int) -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=2.0, jitter=0.25)
    base = min(0.5 * 2 ** (attempt - 1), 2.0)
    for _ in range(50):
        assert base <= policy.wait_seconds(attempt) <= base * 1.25


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "soon", "Mon, 99 Foo 2026 25:61:61 GMT", ""])
def test_garbage_retry_after_is_no_answer(value: str) -> None:
    assert parse_retry_after({"retry-after": value}) is None


def test_next_wait_says_stop_for_a_final_error_and_how_long_otherwise() -> None:
    policy = RetryPolicy(max_retries=2, retry_after_max=5.0)
    throttled = FineTuningApiError("throttled", http_status=429, retryable=True, retry_after=2.0)
    assert policy.next_wait(1, throttled) == 2.0
    assert policy.next_wait(2, throttled) == 2.0
    assert policy.next_wait(3, throttled) is None, "max_retries used up"
    assert policy.next_wait(1, throttled, retry_safe=False) is None, "a request that must not be sent twice"
    assert policy.next_wait(1, FineTuningApiError("bad request", http_status=400)) is None, "not retryable"
    assert policy.next_wait(1, throttled, remaining=2.5) == 2.0
    assert policy.next_wait(1, throttled, remaining=2.0) is None, "the wait would end at the deadline"
