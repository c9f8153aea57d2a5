"""A job's loss curve: training and validation loss over steps, from the figures of its progress log.

Pure: no I/O and no Airflow. Each vendor's dialect puts the figures it documents on its ``JobEvent``s
(``step``, ``train_loss``, ``valid_loss``); this module only gathers them into points a chart can draw.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

#: The most points ``loss_curve`` returns unless told otherwise.
DEFAULT_MAX_POINTS = 500


class LossFigures(Protocol):
    """Anything that reports losses at a step: a ``JobEvent``, or a ``LossPoint`` itself."""

    @property
    def step(self) -> int | None: ...

    @property
    def train_loss(self) -> float | None: ...

    @property
    def valid_loss(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class LossPoint:
    """The losses reported at one training step.

    :param step: the training step
    :param train_loss: the training loss at ``step``, if reported
    :param valid_loss: the validation loss at ``step``, if reported
    """

    step: int
    train_loss: float | None
    valid_loss: float | None


def loss_curve(events: Iterable[LossFigures], max_points: int = DEFAULT_MAX_POINTS) -> list[LossPoint]:
    """One point per step that has a step and at least one loss, ordered by step, at most ``max_points`` of them.

    Of several reports for one step, a later one replaces the losses it gives and keeps those only an earlier one
    gave (a validation loss reported apart from the training loss of the same step). A longer curve is thinned
    evenly, keeping its first and last points.

    :param events: a job's progress-log entries (``JobEvent``), oldest first, or points
    :param max_points: the most points returned, at least 2
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    by_step: dict[int, LossPoint] = {}
    for event in events:
        step = event.step
        if step is None or (event.train_loss is None and event.valid_loss is None):
            continue
        by_step[step] = _merged(by_step.get(step), step, event)
    return _thinned([by_step[step] for step in sorted(by_step)], max_points)


def latest_loss(points: Sequence[LossPoint]) -> LossPoint | None:
    """The point of the highest step (``loss_curve`` orders them so: the last one), or ``None`` for no point.

    :param points: a loss curve
    """
    return max(points, key=lambda point: point.step, default=None)


def _merged(earlier: LossPoint | None, step: int, later: LossFigures) -> LossPoint:
    if earlier is None:
        return LossPoint(step, later.train_loss, later.valid_loss)
    return LossPoint(
        step,
        later.train_loss if later.train_loss is not None else earlier.train_loss,
        later.valid_loss if later.valid_loss is not None else earlier.valid_loss,
    )


def _thinned(points: list[LossPoint], max_points: int) -> list[LossPoint]:
    """``max_points`` of ``points`` spread evenly over them, the first and the last among them."""
    if len(points) <= max_points:
        return points
    last = len(points) - 1
    # Rounding i * last / (max_points - 1) gives distinct, increasing indexes from 0 to last while max_points <= len.
    return [points[round(index * last / (max_points - 1))] for index in range(max_points)]
