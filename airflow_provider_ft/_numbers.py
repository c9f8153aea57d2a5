"""What a number is where an argument, a setting or a stored value must be one: an ``int`` or ``float`` that is
finite and not a ``bool``. Imports nothing of this package, so every module can use it."""

from __future__ import annotations

import math
from typing import TypeGuard


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is a finite ``int`` or ``float`` (``True`` and ``False`` are not numbers here)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
