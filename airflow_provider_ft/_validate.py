"""The argument checks every module shares; each raises ``FineTuningConfigError`` naming the argument."""

from __future__ import annotations

from datetime import timedelta

from airflow_provider_ft._numbers import is_finite_number
from airflow_provider_ft.exceptions import FineTuningConfigError


def seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    """A finite number of seconds, positive (or 0 with ``allow_zero``); a ``timedelta`` is taken too."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if not is_finite_number(value):
        raise FineTuningConfigError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        least = "0 or a positive number" if allow_zero else "a positive number"
        raise FineTuningConfigError(f"{name} must be {least} of seconds, got {value!r}")
    return float(value)


def optional_seconds(name: str, value: object) -> float | None:
    """``seconds()``, or ``None`` for no limit."""
    return None if value is None else seconds(name, value)


def optional_amount(name: str, value: object) -> float | None:
    """A finite number above 0 (an amount of money: ``max_cost``), or ``None`` for no limit."""
    if value is None:
        return None
    if not is_finite_number(value) or value <= 0:
        raise FineTuningConfigError(f"{name} must be a finite number above 0 or None, got {value!r:.80}")
    return float(value)


def whole_number(name: str, value: object, *, minimum: int = 1, maximum: int | None = None) -> int:
    """An ``int`` (not a ``bool``) from ``minimum`` to ``maximum``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise FineTuningConfigError(f"{name} must be a whole number {bounds}, got {value!r}")
    return value


def flag(name: str, value: object) -> bool:
    """A ``bool``, as given: a string such as ``"false"`` would otherwise read as true."""
    if not isinstance(value, bool):
        raise FineTuningConfigError(f"{name} must be True or False, got {value!r:.80}")
    return value
