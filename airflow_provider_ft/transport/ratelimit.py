"""One rate-limit state per vendor account, shared by every transport in the process.

A vendor limits an *account*, not a task: when one request is told to wait, every other one on the account would
be told the same. So the transports of an account share one ``RateGate``: after a 429 (or an answer saying the
request budget is spent) the account is paused; when the pause ends one request goes first (a probe) and the
others follow once it got through: a throttled account is probed, not stormed. An optional ceiling (extra
``max_requests_per_second``) spaces requests out. The gate never sleeps and knows time only as the
``time.monotonic()`` its callers pass, so one gate serves threads and event loops alike.
"""

from __future__ import annotations

import random
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_ft.transport.settings import ClientSettings

#: While a probe is out, the others look again after about this many seconds (spread, see ``SPREAD_SECONDS``).
RECHECK_SECONDS = 0.5
#: How long a probe may stay out before another request may probe instead (its answer may never come).
PROBE_LEASE_SECONDS = 30.0
#: Waiters that wait for the same moment wake spread over up to this many seconds, not in one loop iteration.
SPREAD_SECONDS = 1.0


@dataclass(frozen=True)
class Turn:
    """What the gate says to a request about to be sent.

    :param wait: seconds to wait first
    :param final: after ``wait``, send without asking again (a reserved slot of the ceiling, or no wait at all)
    :param probe: this request finds out whether a pause is over; report its outcome with ``probed=True``
    """

    wait: float
    final: bool = True
    probe: bool = False


GO = Turn(0.0)


class RateGate:
    """The rate-limit state of one account: a pause after a refusal, a probe after the pause, and a ceiling."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._confirmed = True
        self._probe_until = 0.0
        self._spacing = 0.0
        self._next_slot = 0.0

    def __repr__(self) -> str:
        return f"RateGate(paused_until={self._paused_until:.3f}, confirmed={self._confirmed})"

    def limit(self, per_second: float | None) -> None:
        """Keep requests at most ``per_second`` a second; the strictest ceiling asked of this account wins."""
        if per_second:
            with self._lock:
                self._spacing = max(self._spacing, 1.0 / per_second)

    def take_turn(self, now: float) -> Turn:
        """When the request may be sent: at once, after a wait, or after a wait and another look."""
        with self._lock:
            if now < self._paused_until:
                return Turn(self._paused_until - now + _spread(), final=False)
            if not self._confirmed:
                if now < self._probe_until:
                    return Turn(min(RECHECK_SECONDS, self._probe_until - now) + _spread(), final=False)
                self._probe_until = now + PROBE_LEASE_SECONDS
                return Turn(0.0, probe=True)
            if not self._spacing:
                return GO
            slot = max(self._next_slot, now)
            self._next_slot = slot + self._spacing
            return Turn(slot - now) if slot > now else GO

    def paused_for(self, now: float) -> float:
        """Seconds the account is still paused (0 when requests may go)."""
        with self._lock:
            return max(self._paused_until - now, 0.0)

    def refused(self, now: float, wait: float, *, probed: bool) -> None:
        """A request was refused for the rate limit: pause the account ``wait`` seconds, then probe."""
        with self._lock:
            self._paused_until = max(self._paused_until, now + wait)
            self._confirmed = False
            if probed:
                self._probe_until = 0.0

    def spent(self, now: float, wait: float) -> None:
        """An answer said the budget is spent until ``wait`` seconds from now: hold requests until then."""
        with self._lock:
            self._paused_until = max(self._paused_until, now + wait)

    def passed(self, *, probed: bool) -> None:
        """A request got an answer that was not a rate-limit refusal; a probe's reopens the account."""
        if probed:
            with self._lock:
                self._confirmed, self._probe_until = True, 0.0

    def unanswered(self, *, probed: bool) -> None:
        """A request got no answer: a probe's lease is given up, so that another request may probe."""
        if probed:
            with self._lock:
                self._probe_until = 0.0


def _spread() -> float:
    return random.uniform(0.0, SPREAD_SECONDS)


_gates: weakref.WeakValueDictionary[str, RateGate] = weakref.WeakValueDictionary()
_gates_lock = threading.Lock()


def gate_for(settings: ClientSettings) -> RateGate:
    """The gate of the account ``settings`` talk to, shared by every transport of the process on that account; it
    lives as long as one of them holds it."""
    with _gates_lock:
        gate = _gates.get(settings.account_key)
        if gate is None:
            gate = _gates[settings.account_key] = RateGate()
    gate.limit(settings.max_requests_per_second)
    return gate
