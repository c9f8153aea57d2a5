"""``expiring``: ``asyncio.timeout`` for the many short waits of the triggers' requests, without a timer each.

``asyncio.timeout`` schedules a timer on entering and cancels it on leaving; a cancelled timer stays in the event
loop's heap until asyncio sweeps it (when cancelled ones pass half of the heap), so a triggerer polling thousands of
jobs keeps thousands of dead timers, each with a context, and they bring CPython's loop-stalling full collections
sooner (``make bench``, benchmark 7). Here one keeper per event loop looks at the waits in progress every ``TICK``
seconds, while there are any, and expires those past their moment: a wait costs a dict entry, and a timer only when
it expires. It expires at most ``TICK`` late.
"""

from __future__ import annotations

import asyncio
import weakref
from types import TracebackType

#: Seconds between the keeper's looks; a wait expires at most this late.
TICK = 0.05


class expiring:
    """``async with expiring(seconds)``: ``TimeoutError`` if the block has not ended ``seconds`` after it began.

    :param seconds: the limit (``None``: none)
    """

    __slots__ = ("_seconds", "_timeout")

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds
        self._timeout = asyncio.timeout(None)

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()
        if self._seconds is not None:
            loop = asyncio.get_running_loop()
            _keeper(loop).watch(self._timeout, loop.time() + max(self._seconds, 0.0))

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._seconds is not None:
            _keeper(asyncio.get_running_loop()).forget(self._timeout)
        await self._timeout.__aexit__(exc_type, exc, tb)


class _Keeper:
    """The waits of one event loop and their moments; a task looks at them every ``TICK`` while there are any."""

    __slots__ = ("__weakref__", "_due", "_task")

    def __init__(self) -> None:
        self._due: dict[asyncio.Timeout, float] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, timeout: asyncio.Timeout, when: float) -> None:
        self._due[timeout] = when
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._keep(), name="ft-expiring")

    def forget(self, timeout: asyncio.Timeout) -> None:
        self._due.pop(timeout, None)

    async def _keep(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._due:
                await asyncio.sleep(TICK)
                now = loop.time()
                for timeout in [timeout for timeout, when in self._due.items() if when <= now]:
                    del self._due[timeout]
                    timeout.reschedule(now)  # expires it: the task waiting in the block gets TimeoutError
        finally:
            self._task = None


_keepers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Keeper] = weakref.WeakKeyDictionary()


def _keeper(loop: asyncio.AbstractEventLoop) -> _Keeper:
    keeper = _keepers.get(loop)
    if keeper is None:
        keeper = _keepers[loop] = _Keeper()
    return keeper
