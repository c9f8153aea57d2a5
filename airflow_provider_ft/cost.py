"""What a job costs: a connection's price per million trained tokens, applied to the tokens a vendor reports.

Pure arithmetic, no I/O: the ``max_cost`` guard (``JobBudget``) and the UI's per-job and per-connection figures
both come from here, so they agree. The price is the connection's own (extra ``price_per_million_tokens``); none
is built in. A cost is an estimate: tokens times price, nothing else a vendor may bill.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TypeGuard

from airflow_provider_ft._numbers import is_finite_number

#: Amounts are shown to the cent, rounded half up.
_CENT = Decimal("0.01")
#: The longest currency text taken (a code such as ``USD``, or a symbol).
MAX_CURRENCY_LENGTH = 8
_TOKENS_PER_PRICE_UNIT = 1_000_000


@dataclass(frozen=True)
class Price:
    """A price per million trained tokens.

    :param per_million_tokens: what one million trained tokens cost, a finite number above 0
    :param currency: shown after an amount (``USD``, ``CNY``, ``€``); ``None``: amounts are shown without a unit
    """

    per_million_tokens: float
    currency: str | None = None

    def __post_init__(self) -> None:
        price = self.per_million_tokens
        if not is_finite_number(price) or price <= 0:
            raise ValueError("per_million_tokens must be a finite number above 0")
        currency = self.currency
        if currency is not None and not is_currency(currency):
            raise ValueError(
                f"currency must be a text of 1 to {MAX_CURRENCY_LENGTH} printable characters without spaces, or None"
            )

    def cost_of(self, trained_tokens: int | None) -> float | None:
        """What ``trained_tokens`` cost at this price, unrounded; ``None`` when the tokens are not known."""
        if trained_tokens is None:
            return None
        return trained_tokens * self.per_million_tokens / _TOKENS_PER_PRICE_UNIT

    def format(self, amount: float) -> str:
        """``amount`` for display, then the currency (``12.34 USD``): two decimals, rounded half up; an amount that
        would show as ``0.00`` but is not 0 keeps two significant digits (``0.0042 USD``), so that a small cost or
        limit is never shown as none."""
        exact = Decimal(repr(float(amount)))
        shown = exact.quantize(_CENT, rounding=ROUND_HALF_UP)
        if shown == 0 and exact != 0:
            shown = exact.quantize(Decimal(1).scaleb(exact.adjusted() - 1), rounding=ROUND_HALF_UP)
        text = format(shown, "f")
        return f"{text} {self.currency}" if self.currency else text

    def describe(self) -> str:
        """The price itself, for messages: ``2.5 USD per million trained tokens``."""
        unit = f" {self.currency}" if self.currency else ""
        return f"{self.per_million_tokens:g}{unit} per million trained tokens"


def total_cost(amounts: Iterable[float | None]) -> tuple[float, int]:
    """The sum of the known ``amounts`` and how many were unknown (``None``): a total over jobs, some of which have
    not reported their tokens yet, is a lower bound, and the count says by how many jobs."""
    known: list[float] = []
    unknown = 0
    for amount in amounts:
        if amount is None:
            unknown += 1
        else:
            known.append(amount)
    return math.fsum(known), unknown


def is_currency(text: object) -> TypeGuard[str]:
    """Whether ``text`` can stand as a currency: 1 to ``MAX_CURRENCY_LENGTH`` printable characters, no spaces."""
    return (
        isinstance(text, str)
        and 0 < len(text) <= MAX_CURRENCY_LENGTH
        and text.isprintable()
        and not any(char.isspace() for char in text)
    )
