"""Checks a dialect makes on its own input before any I/O: create options and the cursors it hands out.

Each raises ``FineTuningConfigError`` saying what is wrong; vendor-specific rules stay in the dialect's module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningConfigError

#: The largest seed OpenAI and Together AI take (a 32-bit signed integer).
MAX_SEED = 2_147_483_647
#: Counts a cursor may carry (a page or line number); larger ones are not believed.
MAX_CURSOR = 10**9


def mapping(value: object, name: str) -> dict[str, Any]:
    """``value`` as a ``dict`` if it is a mapping (``hyperparameters``); else ``FineTuningConfigError``."""
    if not isinstance(value, Mapping):
        raise FineTuningConfigError(f"{name} must be a mapping, got {type(value).__name__}")
    return dict(value)


def text(value: object, problem: str) -> str:
    """``value`` if it is a string that is not blank; else ``FineTuningConfigError(problem)``."""
    if not isinstance(value, str) or not value.strip():
        raise FineTuningConfigError(problem)
    return value


def seed(value: object) -> int:
    """A seed: a whole number from 0 to ``MAX_SEED``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise FineTuningConfigError(f"seed must be a whole number from 0 to {MAX_SEED}, got {value!r:.40}")
    return value


def number_cursor(cursor: object, described: str, lowest: int = 0) -> int:
    """The number a cursor of the dialect's own (``str(n)``) carries, from ``lowest`` to ``MAX_CURSOR``.

    :param cursor: the cursor given
    :param described: what the cursor is, for the message (``A DashScope log cursor is a line number``)
    :param lowest: the smallest number it may carry
    """
    if not (
        isinstance(cursor, str)
        and cursor.isascii()
        and cursor.isdigit()
        and len(cursor) <= len(str(MAX_CURSOR))
        and int(cursor) >= lowest
    ):
        raise FineTuningConfigError(f"{described}, got {printable(repr(cursor), 40)}")
    return int(cursor)
