"""The emulated wall clock, and durations given as a ``timedelta`` or as seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta


def as_seconds(value: timedelta | float | None) -> float | None:
    """Normalise a duration given as a ``timedelta`` or as seconds.

    :param value: the duration, or ``None``
    """
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


class Clock:
    """Emulated wall clock: real start + real elapsed * ``time_scale`` + manually advanced seconds.

    :param time_scale: emulated seconds per real second (0 freezes the clock)
    :param monotonic: the real clock to read elapsed time from
    """

    def __init__(self, time_scale: float = 1.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        self._scale = time_scale
        self._monotonic = monotonic
        self._start_wall = time.time()
        self._start_mono = monotonic()
        self._advanced = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Current emulated time as Unix seconds."""
        with self._lock:
            advanced = self._advanced
        return self._start_wall + (self._monotonic() - self._start_mono) * self._scale + advanced

    def advance(self, seconds: float) -> None:
        """Move emulated time forward by ``seconds`` (never backwards).

        :param seconds: how far to move, 0 or more
        """
        if seconds < 0:
            raise ValueError("the emulated clock cannot go backwards")
        with self._lock:
            self._advanced += seconds

    def forget_advances(self) -> None:
        """Undo every ``advance``: only for an emulator that holds nothing dated (see ``FineTuningEmulator.reset``)."""
        with self._lock:
            self._advanced = 0.0
