"""``loss_curve`` and ``latest_loss``: one point per step with a loss, in step order, thinned to a bound."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_ft.jobs import JobEvent
from airflow_provider_ft.loss import LossPoint, latest_loss, loss_curve


def event(step: int | None, train: float | None = None, valid: float | None = None, cursor: str = "1") -> JobEvent:
    return JobEvent(cursor=cursor, message="", step=step, train_loss=train, valid_loss=valid)


def test_no_event_no_point() -> None:
    assert loss_curve([]) == []
    assert latest_loss([]) is None


def test_events_without_a_step_or_without_a_loss_give_no_point() -> None:
    events = [event(None, 1.0), event(5), event(6, 0.9), JobEvent(cursor="x", message="Fine-tuning job started")]
    assert loss_curve(events) == [LossPoint(6, 0.9, None)]


def test_points_come_in_step_order_whatever_the_order_of_the_events() -> None:
    events = [event(30, 0.5), event(10, 0.9), event(20, 0.7, 0.8)]
    assert loss_curve(events) == [LossPoint(10, 0.9, None), LossPoint(20, 0.7, 0.8), LossPoint(30, 0.5, None)]


def test_a_later_report_of_a_step_fills_what_the_earlier_lacked_and_replaces_what_it_gives() -> None:
    events = [event(10, train=0.9), event(10, valid=1.1), event(20, 0.7, 0.8), event(20, train=0.6)]
    assert loss_curve(events) == [LossPoint(10, 0.9, 1.1), LossPoint(20, 0.6, 0.8)]


def test_points_pass_through_as_figures() -> None:
    points = [LossPoint(1, 2.0, None), LossPoint(2, None, 1.5)]
    assert loss_curve(points) == points


def test_a_long_curve_is_thinned_evenly_keeping_the_first_and_the_last() -> None:
    curve = loss_curve([event(step, 10.0 - step / 100) for step in range(1001)], max_points=11)
    assert [point.step for point in curve] == list(range(0, 1001, 100))


def test_max_points_below_two_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        loss_curve([event(1, 1.0)], max_points=1)


def test_latest_loss_is_the_point_of_the_highest_step() -> None:
    assert latest_loss([LossPoint(3, 0.5, None), LossPoint(9, 0.4, 0.6), LossPoint(5, 0.45, None)]) == LossPoint(
        9, 0.4, 0.6
    )


@given(
    steps=st.lists(st.integers(min_value=0, max_value=10_000), max_size=300),
    max_points=st.integers(min_value=2, max_value=50),
)
def test_thinning_bounds(steps: list[int], max_points: int) -> None:
    curve = loss_curve([event(step, 1.0) for step in steps], max_points=max_points)
    distinct = sorted(set(steps))
    assert len(curve) == min(len(distinct), max_points)
    assert [point.step for point in curve] == sorted({point.step for point in curve}), "strictly increasing"
    if distinct:
        assert (curve[0].step, curve[-1].step) == (distinct[0], distinct[-1])
        assert latest_loss(curve) == curve[-1]
