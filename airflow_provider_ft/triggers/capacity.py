"""``CapacityWaitTrigger``: wait in the triggerer, without a worker slot, until a create refused for the account's
job limit may be sent again.

It sends nothing: the create must follow the look for the task's job (exactly once), and both happen on a worker
when the task resumes. Waiting is all it does, so it is as cheap as a trigger can be: one ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow_provider_ft._compat import BaseTrigger, TriggerEvent
from airflow_provider_ft._numbers import is_finite_number
from airflow_provider_ft._text import printable
from airflow_provider_ft.capacity import CapacityWait, event_payload
from airflow_provider_ft.exceptions import FineTuningConfigError

#: Longest ``reason`` kept (it is stored with the trigger).
MAX_REASON_LENGTH = 500


class CapacityWaitTrigger(BaseTrigger):
    """Sleep until ``wake_at``, then fire one event for the task to send its create again.

    The event's payload is ``{"status": "capacity", "conn_id", "wait": <CapacityWait.to_dict()>, "message"}``; the
    task resumes in ``CreateFineTuningJobOperator.execute_after_capacity_wait``. Nothing is sent to the vendor, and
    nothing needs stopping when the task is killed (no job exists yet).

    :param conn_id: the task's connection (for messages)
    :param wake_at: Unix time to fire at (absolute, so that a trigger re-created after a triggerer restart keeps it)
    :param wait: the task's ``CapacityWait`` as a dict, handed back in the event
    :param reason: why the task waits (the vendor's refusal, escaped), for the event's message
    """

    def __init__(self, conn_id: str, wake_at: float, wait: dict[str, float], reason: str = "") -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if not is_finite_number(wake_at):
            raise FineTuningConfigError(f"wake_at must be Unix epoch seconds, got {wake_at!r:.80}")
        self.conn_id = conn_id
        self.wake_at = float(wake_at)
        self.wait = CapacityWait.from_dict(wait)
        self.reason = printable(reason, MAX_REASON_LENGTH)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r}, wake_at={self.wake_at!r})"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and keyword arguments that re-create this trigger (plain JSON values only)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"conn_id": self.conn_id, "wake_at": self.wake_at, "wait": self.wait.to_dict(), "reason": self.reason},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Sleep until ``wake_at``, then fire."""
        await asyncio.sleep(max(self.wake_at - time.time(), 0.0))
        message = f"Time to create the job again on connection {self.conn_id!r}; it waited because: {self.reason}"
        yield TriggerEvent(event_payload(self.conn_id, self.wait, message))  # type: ignore[no-untyped-call]
