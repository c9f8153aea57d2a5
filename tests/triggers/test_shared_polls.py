"""Triggers of one account in one event loop share connections, reads and the rate-limit state; none strands another.

Against the emulator over loopback. Requests are counted in the emulator's own log; time only orders what
happens (when a fault is armed, when a trigger is cancelled), no speed is asserted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.transport import ratelimit, shared
from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.conftest import FAST_RETRIES
from tests.triggers.test_job_trigger import GUARD_SECONDS, gets_of, soon

if TYPE_CHECKING:
    from tests.conftest import ConnectionFactory

GET_LATENCY = 0.5


@pytest.fixture
def account(emulator: FineTuningEmulator, make_connection: ConnectionFactory) -> str:
    """An OpenAI connection of an account no other test uses (its own organization), so its gate starts open."""
    return make_connection(
        "ft_shared", "openaifinetuning", host=emulator.url("openai"), organization="org-shared", **FAST_RETRIES
    )


def trigger(conn_id: str, job_id: str, poll: float = 0.05, until: float = 10.0) -> FineTuningJobTrigger:
    return FineTuningJobTrigger(conn_id, job_id, poll_interval=poll, deadline=soon(until), log_events=False)


async def event_of(waiting: FineTuningJobTrigger) -> dict[str, Any]:
    async with asyncio.timeout(GUARD_SECONDS):
        events = [event.payload async for event in waiting.run()]
    assert len(events) == 1
    return dict(events[0])


def statuses_since(emulator: FineTuningEmulator, start: int, job_ids: list[str]) -> list[int]:
    """Statuses of the GETs of ``job_ids`` the emulator received after its first ``start`` requests."""
    wanted = {f"/fine_tuning/jobs/{job_id}" for job_id in job_ids}
    return [request.status for request in emulator.requests[start:] if request.path in wanted]


async def test_triggers_on_one_job_share_each_poll_and_each_fires_its_own_event(
    emulator: FineTuningEmulator, account: str
) -> None:
    job_id = emulator.seed_job("openai", status="running", runs_for=1.5)
    waiters = [trigger(account, job_id, poll=0.3) for _ in range(8)]
    started = time.monotonic()
    events = await asyncio.gather(*(event_of(waiting) for waiting in waiters))
    polls_of_one = (time.monotonic() - started) / 0.3 + 1

    assert [event["status"] for event in events] == ["success"] * 8
    assert all(event["job"]["status"] == "SUCCEEDED" and event["job_id"] == job_id for event in events)
    assert len({id(event) for event in events}) == 8, "every trigger fires its own event"
    # Alone, each of the 8 would GET once per interval; sharing, the 8 together do about that much: the answer of
    # one interval is kept for the next readers, and the key stays shared from one answer to the next.
    assert 1 <= gets_of(emulator, job_id) <= polls_of_one + 1
    assert shared.accounts_in(asyncio.get_running_loop()) == {}, "the last trigger to go releases the account"


async def test_a_trigger_cancelled_while_its_poll_is_shared_strands_none_of_the_others(
    emulator: FineTuningEmulator, account: str
) -> None:
    job_id = emulator.seed_job("openai", status="succeeded")
    emulator.inject(Fault("latency", path=job_id, delay=GET_LATENCY, times=1))
    first = asyncio.create_task(event_of(trigger(account, job_id)))
    while gets_of(emulator, job_id) == 0:  # the first trigger's GET is at the server, held there
        await asyncio.sleep(0.01)
    others = [asyncio.create_task(event_of(trigger(account, job_id))) for _ in range(3)]
    await asyncio.sleep(0.1)  # the others have joined the read in flight
    first.cancel()

    events = await asyncio.gather(*others)
    assert first.cancelled()
    assert [event["status"] for event in events] == ["success"] * 3
    # The GET the cancelled trigger was sending stopped with it; one of the others sent it again, for all three.
    assert gets_of(emulator, job_id) == 2
    assert shared.accounts_in(asyncio.get_running_loop()) == {}


async def test_a_429_met_by_one_trigger_pauses_its_account_and_not_another(
    emulator: FineTuningEmulator, account: str, make_connection: ConnectionFactory
) -> None:
    other_account = make_connection(
        "ft_shared_other", "openaifinetuning", host=emulator.url("openai"), organization="org-other", **FAST_RETRIES
    )
    throttled = emulator.seed_job("openai", status="running", runs_for=None)
    neighbours = emulator.seed_jobs("openai", 4, status="running", runs_for=None)
    elsewhere = emulator.seed_job("openai", status="running", runs_for=None)
    emulator.inject(Fault("status", status=429, headers={"Retry-After": "2"}, path=throttled, times=1))
    waiting = [trigger(account, job_id, until=4.5) for job_id in [throttled, *neighbours]]
    waiting.append(trigger(other_account, elsewhere, until=4.5))
    run = asyncio.gather(*(event_of(one) for one in waiting))

    while 429 not in statuses_since(emulator, 0, [throttled]):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # what was in flight when the 429 came back has arrived
    start = len(emulator.requests)
    await asyncio.sleep(1.2)  # well inside the 2 s pause
    during_account = statuses_since(emulator, start, [throttled, *neighbours])
    during_elsewhere = statuses_since(emulator, start, [elsewhere])
    events = await run

    assert during_account == [], "no trigger of the throttled account may send during its pause"
    assert len(during_elsewhere) >= 5, "a trigger of another account keeps polling"
    assert [event["status"] for event in events] == ["timeout"] * 6
    assert all(gets_of(emulator, job_id) >= 2 for job_id in neighbours), "after the pause polling goes on"


async def test_first_polls_are_spread_over_the_first_interval(
    emulator: FineTuningEmulator, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FineTuningJobTrigger, "first_poll_spread", 1.0)
    job_id = emulator.seed_job("openai", status="succeeded")
    started = time.monotonic()

    async def fired_after(waiting: FineTuningJobTrigger) -> float:
        await event_of(waiting)
        return time.monotonic() - started

    moments = await asyncio.gather(*(fired_after(trigger(account, job_id, poll=1.0)) for _ in range(20)))
    assert max(moments) - min(moments) > 0.3, "triggers started together must not poll together"
    assert max(moments) < 1.0 + GUARD_SECONDS / 10, "the first poll comes within the first interval"


def test_each_event_loop_has_its_own_clients_and_every_loop_shares_the_gate(
    emulator: FineTuningEmulator, account: str
) -> None:
    job_id = emulator.seed_job("openai", status="running")
    seen: list[tuple[object, object]] = []

    async def poll_once() -> None:
        hook = FineTuningHook(account)
        async with hook.async_transport() as transport:
            await hook.aget_job(transport, job_id)
            seen.append((transport.account, transport.gate))

    threads = [threading.Thread(target=asyncio.run, args=(poll_once(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (first_account, first_gate), (second_account, second_gate) = seen
    assert first_account is not second_account, "clients and reads belong to one event loop"
    assert first_gate is second_gate, "the rate-limit state belongs to the account, across loops and threads"
    assert isinstance(first_gate, ratelimit.RateGate)


async def test_a_read_one_reader_asks_for_is_not_kept_and_a_second_reader_shares_the_answers_after() -> None:
    reads = shared.ReadCoalescer()
    answers: list[dict[str, Any]] = []

    async def fetch() -> dict[str, Any]:
        answers.append({"read": len(answers) + 1})
        return answers[-1]

    first, second = object(), object()
    assert await reads.read("job", fetch, reader=first, max_age=60) == {"read": 1}
    assert await reads.read("job", fetch, reader=first, max_age=60) == {"read": 2}, "one reader: nothing kept"
    assert await reads.read("job", fetch, reader=second, max_age=60) == {"read": 3}, "a second reader asks anew"
    assert await reads.read("job", fetch, reader=first, max_age=60) == {"read": 3}, "and that answer is shared"
    assert await reads.read("job", fetch, reader=second, max_age=60) == {"read": 3}
    reads.forget()
    assert await reads.read("job", fetch, reader=second, max_age=60) == {"read": 4}, "a write forgets it all"
    assert len(answers) == 4
