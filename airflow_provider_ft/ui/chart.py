"""The loss chart: training and validation loss over steps, drawn as inline SVG on the server.

No chart library and no script: the page stays one request, works inside Airflow's iframe, and its points are in
the markup (``data-step``, ``data-loss``) for the browser tests to read. Pure: points in, markup out; every number
is formatted by this module, so no server text reaches the SVG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from airflow_provider_ft.loss import LossPoint

WIDTH, HEIGHT = 640, 280
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 16, 36
_TICKS = 5
_SERIES = (("train", "training loss", "#1f77b4"), ("valid", "validation loss", "#ff7f0e"))


@dataclass(frozen=True)
class _Scale:
    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.high - self.low
        fraction = 0.5 if span == 0 else (value - self.low) / span
        return round(self.start + fraction * (self.end - self.start), 1)


def loss_chart_svg(points: Sequence[LossPoint]) -> str:
    """The chart of ``points`` as an ``<svg>`` element; ``""`` when no point has a loss."""
    series = {name: _values(points, name) for name, *_ in _SERIES}
    drawn = [(step, loss) for values in series.values() for step, loss in values]
    if not drawn:
        return ""
    steps = [step for step, _ in drawn]
    losses = [loss for _, loss in drawn]
    x = _Scale(min(steps), max(steps), _LEFT, WIDTH - _RIGHT)
    y = _Scale(min(0.0, min(losses)), max(losses), HEIGHT - _BOTTOM, _TOP)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="Loss over training steps" data-testid="loss-chart" class="loss-chart">',
        *_axes(x, y),
    ]
    for name, label, colour in _SERIES:
        parts.extend(_series(name, label, colour, series[name], x, y))
    parts.append(_legend([(label, colour) for name, label, colour in _SERIES if series[name]]))
    parts.append("</svg>")
    return "".join(parts)


def _values(points: Sequence[LossPoint], name: str) -> list[tuple[int, float]]:
    """The (step, loss) pairs of one series: ``train`` or ``valid``."""
    values = []
    for point in points:
        loss = point.train_loss if name == "train" else point.valid_loss
        if loss is not None and math.isfinite(loss):
            values.append((point.step, loss))
    return values


def _series(name: str, label: str, colour: str, values: list[tuple[int, float]], x: _Scale, y: _Scale) -> list[str]:
    if not values:
        return []
    coordinates = " ".join(f"{x(step)},{y(loss)}" for step, loss in values)
    parts = [
        f'<g data-series="{name}"><title>{label}</title>',
        f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coordinates}"/>',
    ]
    parts.extend(
        f'<circle cx="{x(step)}" cy="{y(loss)}" r="2.5" fill="{colour}" data-step="{step}" data-loss="{loss:.6g}">'
        f"<title>step {step}: {label} {loss:.4g}</title></circle>"
        for step, loss in values
    )
    parts.append("</g>")
    return parts


def _axes(x: _Scale, y: _Scale) -> list[str]:
    bottom, left = HEIGHT - _BOTTOM, _LEFT
    parts = [
        f'<line x1="{left}" y1="{_TOP}" x2="{left}" y2="{bottom}" stroke="#888"/>',
        f'<line x1="{left}" y1="{bottom}" x2="{WIDTH - _RIGHT}" y2="{bottom}" stroke="#888"/>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 4}" text-anchor="middle" font-size="12">step</text>',
    ]
    for tick in _ticks(x.low, x.high, whole=True):
        parts.append(f'<text x="{x(tick)}" y="{bottom + 16}" text-anchor="middle" font-size="11">{tick:g}</text>')
    for tick in _ticks(y.low, y.high):
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4}" text-anchor="end" font-size="11">{tick:.3g}</text>')
        parts.append(f'<line x1="{left}" y1="{y(tick)}" x2="{WIDTH - _RIGHT}" y2="{y(tick)}" stroke="#eee"/>')
    return parts


def _ticks(low: float, high: float, *, whole: bool = False) -> list[float]:
    """About ``_TICKS`` round values (1, 2, 2.5 or 5 times a power of ten apart) between ``low`` and ``high``."""
    if high <= low:
        return [low]
    rough = (high - low) / (_TICKS - 1)
    power = 10 ** math.floor(math.log10(rough))
    step = next(power * factor for factor in (1, 2, 2.5, 5, 10) if power * factor >= rough)
    if whole:
        step = max(1.0, round(step))
    first = math.ceil(low / step) * step
    return [first + index * step for index in range(int((high - first) / step + 1e-9) + 1)]


def _legend(entries: list[tuple[str, str]]) -> str:
    items = []
    for index, (label, colour) in enumerate(entries):
        left = WIDTH - _RIGHT - (len(entries) - index) * 130
        items.append(
            f'<rect x="{left}" y="{_TOP}" width="12" height="3" fill="{colour}"/>'
            f'<text x="{left + 16}" y="{_TOP + 5}" font-size="11">{label}</text>'
        )
    return "".join(items)
