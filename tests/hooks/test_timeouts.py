"""``expiring``: asyncio.timeout's contract without a timer per use (transport/timeouts.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from airflow_provider_ft.transport.timeouts import expiring


async def test_a_block_that_outlasts_its_limit_gets_timeout_error_and_not_before_the_limit() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with expiring(0.1):
            await asyncio.sleep(30)
    assert time.monotonic() - started >= 0.1


async def test_a_block_that_ends_in_time_is_left_alone_and_leaves_no_wait_behind() -> None:
    async with expiring(5):
        await asyncio.sleep(0)
    await asyncio.sleep(0.2)  # past the keeper's next look: nothing of the block may expire late
    async with expiring(None):
        await asyncio.sleep(0.01)


async def test_a_cancel_from_outside_stays_a_cancel() -> None:
    async def waits() -> None:
        async with expiring(30):
            await asyncio.sleep(30)

    task = asyncio.ensure_future(waits())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_many_waits_each_expire_on_their_own() -> None:
    async def wait(limit: float, lasts: float) -> str:
        try:
            async with expiring(limit):
                await asyncio.sleep(lasts)
        except TimeoutError:
            return "expired"
        return "ended"

    outcomes = await asyncio.gather(*(wait(0.1, 1.0) if n % 2 else wait(1.0, 0.01) for n in range(20)))
    assert outcomes == ["ended", "expired"] * 10
