"""``CapacityWait``: how long a create refused for the account's job limit waits, and when it stops (pure)."""

from __future__ import annotations

import pytest

from airflow_provider_ft.capacity import MAX_RECHECK_SECONDS, CapacityWait, event_payload
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningCapacityError, FineTuningError

NOW = 1_800_000_000.0


def refusal(
    retry_after: float | None = None, message: str = "OpenAI create failed: at the limit"
) -> FineTuningApiError:
    return FineTuningCapacityError(
        message, http_status=429, vendor_code="daily_rate_limit_exceeded", request_id="req-1", retry_after=retry_after
    )


def test_the_wait_starts_at_the_first_refusal_and_rechecks_every_poll_interval() -> None:
    wait = CapacityWait.starting(NOW, 600.0, 30.0)
    assert wait == CapacityWait(since=NOW, until=NOW + 600.0, recheck=30.0)
    assert wait.pause(refusal(), NOW) == 30.0


def test_a_long_poll_interval_is_cut_to_the_longest_recheck() -> None:
    assert CapacityWait.starting(NOW, 86_400.0, 3_600.0).recheck == MAX_RECHECK_SECONDS


def test_the_vendors_retry_after_is_honoured_when_longer() -> None:
    wait = CapacityWait.starting(NOW, 600.0, 30.0)
    assert wait.pause(refusal(retry_after=120.0), NOW) == 120.0
    assert wait.pause(refusal(retry_after=5.0), NOW) == 30.0
    assert wait.pause(refusal(retry_after=float("inf")), NOW) == 30.0


def test_no_wait_goes_past_the_end_and_none_starts_after_it() -> None:
    wait = CapacityWait.starting(NOW, 600.0, 30.0)
    assert wait.pause(refusal(retry_after=3_600.0), NOW + 500.0) == pytest.approx(100.0)
    assert wait.pause(refusal(), NOW + 590.0) == pytest.approx(10.0)
    assert wait.pause(refusal(), NOW + 600.0) is None
    assert wait.pause(refusal(), NOW + 601.0) is None


def test_the_log_line_says_why_how_long_and_until_when_with_the_vendors_words_escaped() -> None:
    wait = CapacityWait.starting(NOW, 600.0, 30.0)
    line = wait.waiting_line(refusal(message="limit\nreached\x1b[31m"), 30.0, "OpenAI", "in the triggerer")
    assert line.startswith("The OpenAI account is at its job limit, so no job was made: ")
    assert "\n" not in line
    assert "\x1b" not in line
    assert "in 30.0 s in the triggerer" in line
    assert "until 2027-01-15T08:10:00+00:00" in line


def test_giving_up_names_the_limit_the_time_waited_and_the_vendors_answer() -> None:
    wait = CapacityWait.starting(NOW, 600.0, 30.0)
    error = wait.gave_up(refusal(), NOW + 600.0, "OpenAI")
    assert isinstance(error, FineTuningCapacityError)
    assert "Gave up waiting for room after 600 s (wait_for_capacity)" in str(error)
    assert "OpenAI account is still at its job limit and no job was made" in str(error)
    assert "at the limit" in str(error)
    assert (error.http_status, error.vendor_code, error.request_id) == (429, "daily_rate_limit_exceeded", "req-1")


def test_the_wait_travels_through_a_trigger_event() -> None:
    wait = CapacityWait.starting(NOW, 600.0, 30.0)
    assert CapacityWait.from_event(event_payload("ft_openai", wait, "go")) == wait


@pytest.mark.parametrize(
    "event",
    [
        None,
        {"status": "success", "wait": {"since": NOW, "until": NOW, "recheck": 1.0}},
        {"status": "capacity"},
        {"status": "capacity", "wait": {"since": NOW, "until": NOW}},
        {"status": "capacity", "wait": {"since": NOW, "until": "later", "recheck": 1.0}},
        {"status": "capacity", "wait": {"since": NOW, "until": NOW, "recheck": 0}},
        {"status": "capacity", "wait": {"since": NOW, "until": float("nan"), "recheck": 1.0}},
        {"status": "capacity", "wait": {"since": True, "until": NOW, "recheck": 1.0}},
    ],
)
def test_an_event_that_is_no_wait_for_room_is_refused(event: object) -> None:
    with pytest.raises(FineTuningError):
        CapacityWait.from_event(event)
