"""What the asyncio transports of one vendor account share inside one event loop.

A triggerer runs thousands of waits in one loop. Each with its own HTTP client would hold its own connection
(thousands of idle sockets to the same host) and each would ask the same question when several wait for the same
job. So, per event loop and per account (``_ratelimit.account_key``):

- ``ClientPool``: a few ``httpx.AsyncClient`` of one connection each, every one serving one request at a time. One
  client shared by all would pay for httpcore's pool, which rescans every connection and queued request on each
  request (benchmarks/_httpx_study.py measures it); a client per request would open a connection per request.
- ``ReadCoalescer``: identical reads (``GET`` of the same path and query) in flight at once are sent once, and an
  answer younger than the reader's ``max_age`` is handed out again instead of asking anew; a write (any other
  method) through the account forgets them all, so a read after it sees its effect.

``SharedAccount`` holds both; ``acquire`` and ``release`` count its users and close it when the last one goes.
Everything here belongs to one event loop and is touched from that loop only.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

#: The most requests one account has in flight from one event loop (and so the most connections it holds).
POOL_SIZE = 32


class ClientPool:
    """Up to ``size`` HTTP clients, each lent to one request at a time; the most recently used is lent first.

    :param make_client: builds one client (called only when every client is busy and fewer than ``size`` exist)
    :param size: the most clients, so the most requests in flight at once
    """

    def __init__(self, make_client: Callable[[], httpx.AsyncClient], size: int = POOL_SIZE) -> None:
        self._make_client = make_client
        self._slots = asyncio.Semaphore(size)
        self._idle: list[httpx.AsyncClient] = []
        self._every: list[httpx.AsyncClient] = []

    def __len__(self) -> int:
        return len(self._every)

    @asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        async with self._slots:
            client = self._idle.pop() if self._idle else self._new_client()
            try:
                yield client
            finally:
                self._idle.append(client)

    def _new_client(self) -> httpx.AsyncClient:
        client = self._make_client()
        self._every.append(client)
        return client

    async def aclose(self) -> None:
        every, self._every, self._idle = self._every, [], []
        for client in every:
            await client.aclose()


@dataclass
class _Read:
    task: asyncio.Task[dict[str, Any]] | None
    answer: dict[str, Any] | None = None
    answered_at: float = 0.0


@dataclass
class ReadCoalescer:
    """Reads of one account by key: the one in flight, or the last answer and when it came."""

    _reads: dict[Hashable, _Read] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._reads)

    async def read(
        self,
        key: Hashable,
        fetch: Callable[[], Awaitable[dict[str, Any]]],
        *,
        max_age: float = 0.0,
        bound: float | None = None,
    ) -> dict[str, Any]:
        """The answer to the read ``key``: a recent one, the one in flight, or ``fetch()``'s.

        ``fetch()`` runs as a task of its own, so a reader that is cancelled (or stops waiting at ``bound``) does
        not cancel it for the others. Errors are shared with the readers waiting for them, never kept.

        :param key: what identifies the read (equal keys: the same request to the same account)
        :param fetch: sends the request; called only when no usable answer exists or is coming
        :param max_age: seconds an answer may be old to be handed out again (0: only reads in flight are shared)
        :param bound: ``time.monotonic()`` after which this reader stops waiting (``TimeoutError``)
        """
        read = self._reads.get(key)
        if read is not None and read.task is None and time.monotonic() - read.answered_at <= max_age:
            assert read.answer is not None
            return read.answer
        if read is None or read.task is None:
            read = self._start(key, fetch, max_age)
        assert read.task is not None
        return await _wait(read.task, bound)

    def _start(self, key: Hashable, fetch: Callable[[], Awaitable[dict[str, Any]]], max_age: float) -> _Read:
        task: asyncio.Task[dict[str, Any]] = asyncio.ensure_future(fetch())
        read = self._reads[key] = _Read(task)
        task.add_done_callback(lambda done: self._settle(key, read, done, max_age))
        return read

    def _settle(self, key: Hashable, read: _Read, task: asyncio.Task[dict[str, Any]], max_age: float) -> None:
        if self._reads.get(key) is not read:
            return
        if task.cancelled() or task.exception() is not None or max_age <= 0:
            del self._reads[key]
            return
        read.task, read.answer, read.answered_at = None, task.result(), time.monotonic()
        asyncio.get_running_loop().call_later(max_age, self._forget, key, read)

    def _forget(self, key: Hashable, read: _Read) -> None:
        if self._reads.get(key) is read:
            del self._reads[key]

    def forget(self) -> None:
        """Forget every answer and every read in flight (those still reach their readers): after a write, the
        next read of anything asks the vendor again."""
        self._reads.clear()

    def cancel(self) -> None:
        """Stop every read in flight (their readers get ``CancelledError``)."""
        for read in self._reads.values():
            if read.task is not None:
                read.task.cancel()
        self._reads.clear()


async def _wait(task: asyncio.Task[dict[str, Any]], bound: float | None) -> dict[str, Any]:
    if bound is None:
        return await asyncio.shield(task)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout_at(loop.time() + bound - time.monotonic()):
        return await asyncio.shield(task)


class SharedAccount:
    """The client pool and the reads of one account in one event loop, with how many transports use them.

    :param key: the account (``_ratelimit.account_key``)
    :param make_client: builds one client of the pool
    """

    def __init__(self, key: str, make_client: Callable[[], httpx.AsyncClient]) -> None:
        self.key = key
        self.pool = ClientPool(make_client)
        self.reads = ReadCoalescer()
        self.users = 0

    def __repr__(self) -> str:
        return f"SharedAccount(users={self.users}, clients={len(self.pool)}, reads={len(self.reads)})"

    async def aclose(self) -> None:
        self.reads.cancel()
        await self.pool.aclose()


_accounts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, SharedAccount]] = weakref.WeakKeyDictionary()
_accounts_lock = threading.Lock()


def acquire(key: str, make_client: Callable[[], httpx.AsyncClient]) -> SharedAccount:
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
