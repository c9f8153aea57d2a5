"""What a job costs (``airflow_provider_ft.cost``) and the ``max_cost`` guard of ``JobBudget``: pure, no emulator."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_ft.cost import Price, total_cost
from airflow_provider_ft.jobs import FineTuningJob, JobBudget, JobStatus

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
USD = Price(2.0, "USD")


def job(trained_tokens: int | None, status: JobStatus = JobStatus.RUNNING) -> FineTuningJob:
    return FineTuningJob(
        id="ftjob-1",
        vendor="openai",
        status=status,
        vendor_status=status.value.lower(),
        created_at=NOW - timedelta(minutes=5),
        trained_tokens=trained_tokens,
    )


# -- Price ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "cost"), [(None, None), (0, 0.0), (1_000_000, 2.0), (250_000, 0.5), (1, 2e-6), (3_000_000_000, 6000.0)]
)
def test_cost_of_trained_tokens(tokens: int | None, cost: float | None) -> None:
    assert USD.cost_of(tokens) == cost


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (12.344, "12.34 USD"),
        (12.345, "12.35 USD"),  # half up, on the decimal the amount reads as (binary 12.345 is a little below)
        (2.675, "2.68 USD"),
        (0.0, "0.00 USD"),
        (0.005, "0.01 USD"),
        (0.004, "0.0040 USD"),  # below a cent: two significant digits, never shown as none
        (0.00123, "0.0012 USD"),
        (0.0049999, "0.0050 USD"),
        (1e-7, "0.00000010 USD"),
        (-1.5, "-1.50 USD"),
        (1234567.891, "1234567.89 USD"),
    ],
)
def test_format_rounds_to_cents_half_up(amount: float, shown: str) -> None:
    assert USD.format(amount) == shown


def test_format_without_a_currency_shows_no_unit() -> None:
    assert Price(0.8).format(3.1) == "3.10"
    assert Price(0.8).describe() == "0.8 per million trained tokens"
    assert USD.describe() == "2 USD per million trained tokens"


@pytest.mark.parametrize("per_million", [0, -1, math.nan, math.inf, True, "8"])
def test_a_price_is_a_finite_number_above_0(per_million: object) -> None:
    with pytest.raises(ValueError, match="per_million_tokens"):
        Price(per_million)  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", ["", "US D", "DOLLARS!!", "U\nSD", 5])
def test_a_currency_is_a_short_text(currency: object) -> None:
    with pytest.raises(ValueError, match="currency"):
        Price(1.0, currency)  # type: ignore[arg-type]


# -- total_cost -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amounts", "total"),
    [
        ([], (0.0, 0)),
        ([None, None], (0.0, 2)),
        ([1.5, None, 2.25], (3.75, 1)),
        ([0.1] * 10, (1.0, 0)),  # summed exactly: ten 0.1 are 1.0, not 0.9999999999999999
    ],
)
def test_total_cost_sums_the_known_and_counts_the_unknown(
    amounts: list[float | None], total: tuple[float, int]
) -> None:
    assert total_cost(amounts) == total


def test_total_cost_takes_any_iterable() -> None:
    assert total_cost(USD.cost_of(tokens) for tokens in (500_000, None, 1_500_000)) == (4.0, 1)


# -- JobBudget.max_cost ---------------------------------------------------------------------------------------


def test_max_cost_passed_names_the_limit_and_the_figures() -> None:
    budget = JobBudget(max_cost=1.0, price=USD)
    reason = budget.exceeded(job(600_000), NOW)
    assert reason == (
        "max_cost: the job has cost about 1.20 USD (600000 trained tokens at 2 USD per million trained tokens), "
        "more than the 1.00 USD allowed"
    )


@pytest.mark.parametrize("tokens", [None, 0, 500_000])
def test_max_cost_not_passed(tokens: int | None) -> None:
    assert JobBudget(max_cost=1.0, price=USD).exceeded(job(tokens), NOW) is None  # 500,000 tokens cost exactly 1


def test_max_cost_holds_for_a_job_that_ended_over_it() -> None:
    assert JobBudget(max_cost=1.0, price=USD).exceeded(job(10**6, JobStatus.SUCCEEDED), NOW) is not None


def test_the_token_limit_is_named_first_when_both_are_passed() -> None:
    budget = JobBudget(max_trained_tokens=100, max_cost=0.01, price=USD)
    reason = budget.exceeded(job(10**6), NOW)
    assert reason is not None
    assert reason.startswith("max_trained_tokens:")


def test_max_cost_needs_a_price() -> None:
    with pytest.raises(ValueError, match="price_per_million_tokens"):
        JobBudget(max_cost=1.0)
    assert JobBudget(price=USD).is_set is False  # a price alone guards nothing
    assert JobBudget(max_cost=1.0, price=USD).is_set is True


@pytest.mark.parametrize("most", [0, -1.0, math.nan, math.inf, True, "1"])
def test_max_cost_is_a_finite_number_above_0(most: object) -> None:
    with pytest.raises(ValueError, match="max_cost"):
        JobBudget(max_cost=most, price=USD)  # type: ignore[arg-type]


def test_a_price_must_be_a_price() -> None:
    with pytest.raises(ValueError, match="price must be a Price"):
        JobBudget(max_cost=1.0, price=2.0)  # type: ignore[arg-type]
