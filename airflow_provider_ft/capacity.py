"""Waiting for room on an account at its job limit: how long before the next create, and when to stop.

``CapacityWait`` is pure: no I/O and no clock of its own (callers pass the time, Unix seconds, so that a wait
carried through a deferral keeps its end). ``submit_when_there_is_room`` is the create operator's loop over it: it
waits in the worker (``time.sleep``) or, deferrable, hands the wait to the triggerer (``CapacityWaitTrigger`` sleeps
until the moment it is given); either way the next create is sent from the worker, after the look for the job.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_ft._numbers import is_finite_number
from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningCapacityError, FineTuningError

if TYPE_CHECKING:
    from airflow_provider_ft.core.submit import Submission

#: The longest pause between two creates refused for the job limit, whatever ``poll_interval`` says: a slot that
#: opens is taken within this many seconds (or after the vendor's ``Retry-After``, when that asks for longer).
MAX_RECHECK_SECONDS = 300.0
#: ``status`` of the event ``CapacityWaitTrigger`` fires.
EVENT_STATUS = "capacity"
_MESSAGE_LENGTH = 500


@dataclass(frozen=True)
class CapacityWait:
    """When to send a create again while the account is at its job limit, and when to stop.

    :param since: Unix time of the first refusal
    :param until: Unix time after which no create is sent again (``since`` plus ``wait_for_capacity``)
    :param recheck: seconds between two creates (``poll_interval``, at most ``MAX_RECHECK_SECONDS``)
    """

    since: float
    until: float
    recheck: float

    @classmethod
    def starting(cls, now: float, wait_for_capacity: float, poll_interval: float) -> CapacityWait:
        """The wait that a first refusal at ``now`` starts.

        :param now: Unix time of the refusal
        :param wait_for_capacity: seconds to wait for room at most
        :param poll_interval: the task's seconds between checks
        """
        return cls(since=now, until=now + wait_for_capacity, recheck=min(poll_interval, MAX_RECHECK_SECONDS))

    @classmethod
    def from_dict(cls, value: object) -> CapacityWait:
        """The wait ``to_dict()`` gave; ``FineTuningError`` for anything else.

        :param value: what ``to_dict()`` returned, read back from a trigger's arguments or event
        """
        given = value if isinstance(value, Mapping) else {}
        times = {name: float(given[name]) for name in ("since", "until", "recheck") if _is_time(given.get(name))}
        if len(times) != 3 or times["recheck"] <= 0:
            raise FineTuningError(f"Not a wait for room: {value!r:.300}")
        return cls(**times)

    @classmethod
    def from_event(cls, event: object) -> CapacityWait:
        """The wait an event of ``CapacityWaitTrigger`` carries back; ``FineTuningError`` for any other event.

        :param event: the trigger's payload
        """
        if not isinstance(event, Mapping) or event.get("status") != EVENT_STATUS:
            raise FineTuningError(f"Waiting for room ended with an event this task does not understand: {event!r:.300}")
        return cls.from_dict(event.get("wait"))

    def to_dict(self) -> dict[str, float]:
        """Plain JSON values, for a trigger's arguments and its event."""
        return asdict(self)

    def pause(self, refusal: FineTuningApiError, now: float) -> float | None:
        """Seconds to wait before the next create: ``recheck``, or the vendor's ``Retry-After`` when longer, never
        past ``until`` (so the last create is sent when the time allowed ends); ``None`` once it has ended.

        :param refusal: the create's refusal
        :param now: Unix time
        """
        remaining = self.until - now
        if remaining <= 0:
            return None
        asked = refusal.retry_after if refusal.retry_after is not None and math.isfinite(refusal.retry_after) else 0.0
        return min(max(self.recheck, asked), remaining)

    def waiting_line(self, refusal: FineTuningApiError, pause: float, vendor: str, where: str = "") -> str:
        """The log line of one wait: why (the vendor's answer, escaped), how long, and until when at most.

        :param refusal: the create's refusal
        :param pause: seconds until the next create
        :param vendor: the vendor's name
        :param where: where the wait happens, if worth saying (``in the triggerer``)
        """
        place = f" {where}" if where else ""
        return (
            f"The {vendor} account is at its job limit, so no job was made: {printable(refusal, _MESSAGE_LENGTH)}. "
            f"Looking for the job and creating it again in {pause:.1f} s{place} "
            f"(wait_for_capacity: waiting for room until {_moment(self.until)})"
        )

    def gave_up(self, refusal: FineTuningApiError, now: float, vendor: str) -> FineTuningCapacityError:
        """The error when the time allowed is over and the account is still at its limit (no job was made).

        :param refusal: the last create's refusal
        :param now: Unix time
        :param vendor: the vendor's name
        """
        return FineTuningCapacityError(
            f"Gave up waiting for room after {max(now - self.since, 0.0):.0f} s (wait_for_capacity): the {vendor} "
            f"account is still at its job limit and no job was made; the last answer: "
            f"{printable(refusal.message, _MESSAGE_LENGTH)}",
            http_status=refusal.http_status,
            vendor_code=refusal.vendor_code,
            request_id=refusal.request_id,
            retry_after=refusal.retry_after,
        )


def _is_time(value: object) -> bool:
    return is_finite_number(value) and value >= 0


def _moment(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def event_payload(conn_id: str, wait: CapacityWait, message: str) -> dict[str, Any]:
    """The event ``CapacityWaitTrigger`` fires when the next create may be sent.

    :param conn_id: the task's connection
    :param wait: the task's wait, carried back to it
    :param message: what happened, in words
    """
    return {"status": EVENT_STATUS, "conn_id": conn_id, "wait": wait.to_dict(), "message": message}


def submit_when_there_is_room(
    submit: Callable[[], Submission],
    *,
    allowed: float | None,
    waiting: CapacityWait | None,
    poll_interval: float,
    vendor: str,
    log: Any,
    defer: Callable[[CapacityWait, float, FineTuningCapacityError], None] | None = None,
) -> Submission:
    """``submit()`` (which looks for the task's job before it creates one), again after each wait for room while the
    account is at its job limit, for ``allowed`` seconds from the first refusal (``None``: a refusal is raised).

    :param submit: the submission (``FineTuningHook.submit_job`` with ``final=(FineTuningCapacityError,)``)
    :param allowed: ``wait_for_capacity``, seconds
    :param waiting: the wait so far (after a deferral), or ``None``
    :param poll_interval: the operator's, the pause between two creates (at most ``MAX_RECHECK_SECONDS``)
    :param vendor: the vendor's name, for messages
    :param log: where to say why the task waits
    :param defer: hands the wait to the triggerer (raises ``TaskDeferred``); ``None``: sleep in the worker
    """
    while True:
        try:
            return submit()
        except FineTuningCapacityError as refusal:
            if allowed is None:
                raise
            now = time.time()
            waiting = waiting or CapacityWait.starting(now, allowed, poll_interval)
            pause = waiting.pause(refusal, now)
            if pause is None:
                raise waiting.gave_up(refusal, now, vendor) from refusal
            log.warning("%s", waiting.waiting_line(refusal, pause, vendor, "in the triggerer" if defer else ""))
            if defer is not None:
                defer(waiting, now + pause, refusal)
            time.sleep(pause)
