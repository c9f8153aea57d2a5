"""The asyncio path (used by triggers) shares dialects and retry policy with the blocking one."""

from __future__ import annotations

import pytest

from airflow_provider_ft.exceptions import FineTuningApiError, InvalidJobIdError, JobNotFoundError
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.jobs import JobStatus
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.conftest import FAST_RETRIES, Vendor

RUNNING = {"dashscope": "RUNNING", "openai": "running", "azure": "running", "together": "running"}


async def test_aget_job(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    hook = FineTuningHook(connection)
    async with hook.async_transport() as transport:
        first = await hook.aget_job(transport, job_id)
        second = await hook.aget_job(transport, job_id)
    assert first.status is JobStatus.RUNNING
    assert second.id == job_id
    assert all(request.authorized for request in emulator.requests)


async def test_async_retries_with_the_same_policy(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    emulator.inject(Fault(kind="status", status=429, headers={"retry-after-ms": "10"}, times=1))
    emulator.inject(Fault(kind="drop", times=1))
    hook = FineTuningHook(connection)
    async with hook.async_transport() as transport:
        assert (await hook.aget_job(transport, job_id)).id == job_id
    assert len(emulator.requests) == 3


async def test_async_long_outage_is_one_typed_error(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    emulator.inject(Fault(kind="status", status=503, times=50))
    hook = FineTuningHook(connection)
    async with hook.async_transport() as transport:
        with pytest.raises(FineTuningApiError) as raised:
            await hook.aget_job(transport, job_id)
    assert raised.value.attempts == FAST_RETRIES["max_retries"] + 1


async def test_async_not_found_and_bad_ids(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    hook = FineTuningHook(connection)
    async with hook.async_transport() as transport:
        with pytest.raises(JobNotFoundError):
            await hook.aget_job(transport, "ft-missing")
        with pytest.raises(InvalidJobIdError):
            await hook.aget_job(transport, "../x")
    assert len(emulator.requests) == 1
