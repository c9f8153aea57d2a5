"""What the asyncio transports of one vendor account share inside one event loop (and touch from it only).

A triggerer runs thousands of waits in one loop: each with a client of its own would hold a connection of its own,
and each would ask the same question when several wait for the same job. So ``SharedAccount`` holds, per loop and
account, a ``ClientPool`` (one httpx client shared by all would pay for httpcore's pool, which rescans every
connection and queued request on each request: benchmarks/_httpx_study.py) and a ``ReadCoalescer``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

#: The most requests one account has in flight from one event loop (and so the most connections it holds).
POOL_SIZE = 64
#: Every this many reads started, the entries that are past their age are swept out.
SWEEP_EVERY = 512
#: What the readers that joined a read are handed when its first reader was cancelled: one of them reads anew.
_ABANDONED = object()


class StreamClient(Protocol):
    """What the pool lends: ``httpx.AsyncClient`` and ``h11client.H11Client`` both are one."""

    def stream(
        self, method: str, url: str, *, params: Any = ..., json: Any = ..., timeout: Any = ...
    ) -> AbstractAsyncContextManager[Any]: ...

    async def aclose(self) -> None: ...


class ClientPool:
    """Up to ``size`` HTTP clients, each lent to one request at a time; the most recently used is lent first.

    :param make_client: builds one client (called only when every client is busy and fewer than ``size`` exist)
    :param size: the most clients, so the most requests in flight at once
    """

    def __init__(self, make_client: Callable[[], StreamClient], size: int = POOL_SIZE) -> None:
        self._make_client = make_client
        self._slots = asyncio.Semaphore(size)
        self._idle: list[StreamClient] = []
        self._every: list[StreamClient] = []

    def __len__(self) -> int:
        return len(self._every)

    @asynccontextmanager
    async def client(self) -> AsyncIterator[StreamClient]:
        async with self._slots:
            if self._idle:
                client = self._idle.pop()
            else:
                client = self._make_client()
                self._every.append(client)
            try:
                yield client
            finally:
                self._idle.append(client)

    async def aclose(self) -> None:
        every, self._every, self._idle = self._every, [], []
        for client in every:
            await client.aclose()


@dataclass(slots=True)
class _Read:
    """One read, in flight or done; ``joined`` is made only when a second reader comes while it is in flight."""

    reader: int
    shared: bool = False
    in_flight: bool = True
    joined: asyncio.Future[Any] | None = None
    answer: dict[str, Any] | None = None
    expires_at: float = 0.0


@dataclass
class ReadCoalescer:
    """Identical reads (``GET`` of the same path and query) of one account: one in flight is joined, and an answer
    younger than the reader's ``max_age`` is handed out again; a write through the account forgets them all.

    The reader that finds no read sends the request itself (no task, nothing allocated unless another reader
    comes). Answers are kept only for keys that several readers ask for: triggers mostly watch a job each, and
    every answer kept would outlive CPython's young generations and bring its loop-stalling full collections
    sooner. A key only one reader asks for is remembered as numbers alone (who read it, until when), which the
    collector does not track. No timer: entries past their age are ignored, and swept out every ``SWEEP_EVERY``
    reads.
    """

    _reads: dict[Hashable, _Read] = field(default_factory=dict)
    _last_reader: dict[Hashable, int] = field(default_factory=dict)
    _last_read_expires: dict[Hashable, float] = field(default_factory=dict)
    _started: int = 0

    def __len__(self) -> int:
        return len(self._reads) + len(self._last_reader)

    async def read(
        self,
        key: Hashable,
        fetch: Callable[[], Awaitable[dict[str, Any]]],
        *,
        reader: object = None,
        max_age: float = 0.0,
        bound: float | None = None,
    ) -> dict[str, Any]:
        """The answer to the read ``key``: a recent one, the one in flight, or ``fetch()``'s.

        A reader that joined a read in flight and is cancelled (or stops waiting at ``bound``) leaves it to the
        others; when the reader that sends it is cancelled, one of those that joined sends it again. Errors are
        handed to the readers waiting for them, never kept.

        :param key: what identifies the read (equal keys: the same request to the same account)
        :param fetch: sends the request; called only when no usable answer exists or is coming
        :param reader: who reads (a transport): answers are kept only for keys that more than one reader reads
        :param max_age: seconds an answer may be old to be handed out again (0: only reads in flight are shared)
        :param bound: ``time.monotonic()`` after which a reader that joined stops waiting (``TimeoutError``)
        """
        who = id(reader)
        while True:
            read = self._reads.get(key)
            if read is None:
                last = self._last_reader.get(key)
                return await self._fetch(key, fetch, who, last is not None and last != who, max_age)
            if not read.in_flight and (time.monotonic() > read.expires_at or read.answer is None):
                # A key read by several readers stays shared across its answers, so each new one is kept too.
                return await self._fetch(key, fetch, who, read.shared or read.reader != who, max_age)
            read.shared = read.shared or read.reader != who
            if not read.in_flight:
                return cast(dict[str, Any], read.answer)
            if read.joined is None:
                read.joined = asyncio.get_running_loop().create_future()
            outcome = await _wait(read.joined, bound)
            if outcome is not _ABANDONED:
                return cast(dict[str, Any], outcome)

    async def _fetch(
        self, key: Hashable, fetch: Callable[[], Awaitable[dict[str, Any]]], who: int, shared: bool, max_age: float
    ) -> dict[str, Any]:
        self._started += 1
        if self._started % SWEEP_EVERY == 0:
            self._sweep(time.monotonic())
        read = self._reads[key] = _Read(who, shared)
        try:
            answer = await fetch()
        except BaseException as error:
            if self._reads.get(key) is read:
                del self._reads[key]
            _hand_on(read.joined, _ABANDONED if isinstance(error, asyncio.CancelledError) else error)
            raise
        read.in_flight, read.expires_at = False, time.monotonic() + max_age
        if self._reads.get(key) is read:
            if max_age <= 0:
                del self._reads[key]
            elif read.shared:
                read.answer = answer
                self._last_reader.pop(key, None)
            else:
                del self._reads[key]
                self._last_reader[key], self._last_read_expires[key] = who, read.expires_at
        _hand_on(read.joined, answer)
        return answer

    def _sweep(self, now: float) -> None:
        """Drop the answers and the remembered readers past their age."""
        for old in [old for old, read in self._reads.items() if not read.in_flight and now > read.expires_at]:
            del self._reads[old]
        for old in [old for old, expires in self._last_read_expires.items() if now > expires]:
            del self._last_reader[old], self._last_read_expires[old]

    def forget(self) -> None:
        """Forget every answer and read in flight (those still reach their readers): after a write, ask again."""
        self._reads.clear()
        self._last_reader.clear()
        self._last_read_expires.clear()


async def _wait(joined: asyncio.Future[Any], bound: float | None) -> Any:
    """The outcome of a read joined in flight; the wait is shielded, so a reader that goes does not cancel it."""
    if bound is None:
        return await asyncio.shield(joined)
    async with asyncio.timeout(bound - time.monotonic()):
        return await asyncio.shield(joined)


def _hand_on(joined: asyncio.Future[Any] | None, outcome: object) -> None:
    """Give the readers that joined a read its outcome (an answer, an error, or ``_ABANDONED``)."""
    if joined is None or joined.done():
        return
    if isinstance(outcome, BaseException):
        joined.set_exception(outcome)
        joined.exception()  # retrieved here: no warning when every reader that joined has gone meanwhile
    else:
        joined.set_result(outcome)


class SharedAccount:
    """The client pool and the reads of one account in one event loop, with how many transports use them.

    :param key: the account (``ClientSettings.account_key``)
    :param make_client: builds one client of the pool
    """

    def __init__(self, key: str, make_client: Callable[[], StreamClient]) -> None:
        self.key = key
        self.pool = ClientPool(make_client)
        self.reads = ReadCoalescer()
        self.users = 0

    def __repr__(self) -> str:
        return f"SharedAccount(users={self.users}, clients={len(self.pool)}, reads={len(self.reads)})"

    async def aclose(self) -> None:
        self.reads.forget()
        await self.pool.aclose()


_accounts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, SharedAccount]] = weakref.WeakKeyDictionary()
_accounts_lock = threading.Lock()


def acquire(key: str, make_client: Callable[[], StreamClient]) -> SharedAccount:
    """The running loop's ``SharedAccount`` for ``key`` (made on first use), counting one more user."""
    loop = asyncio.get_running_loop()
    with _accounts_lock:
        accounts = _accounts.setdefault(loop, {})
        account = accounts.get(key)
        if account is None:
            account = accounts[key] = SharedAccount(key, make_client)
        account.users += 1
    return account


async def release(account: SharedAccount) -> None:
    """One user fewer; the last one closes the account's clients and forgets it."""
    loop = asyncio.get_running_loop()
    with _accounts_lock:
        account.users -= 1
        if account.users > 0:
            return
        accounts = _accounts.get(loop, {})
        if accounts.get(account.key) is account:
            del accounts[account.key]
    await account.aclose()


def accounts_in(loop: asyncio.AbstractEventLoop) -> dict[str, SharedAccount]:
    """The accounts ``loop`` holds now (a copy, for tests and diagnostics)."""
    with _accounts_lock:
        return dict(_accounts.get(loop, {}))
