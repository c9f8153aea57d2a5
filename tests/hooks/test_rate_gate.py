"""The account's shared rate-limit state: the gate alone (plain numbers in, turns out), then transports sharing it.

The gate is pure (its callers pass the clock in), so most of it is tested with made-up moments; the transports'
use of it is tested against the emulator over loopback, with two hooks on one account and one on another.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningConfigError
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.retry import parse_spent_budget
from airflow_provider_ft.transport import ratelimit
from airflow_provider_ft.transport.ratelimit import PROBE_LEASE_SECONDS, RECHECK_SECONDS, SPREAD_SECONDS, RateGate
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.conftest import API_KEY, FAST_RETRIES

if TYPE_CHECKING:
    from tests.conftest import ConnectionFactory

NOW = 1000.0


def refused_gate(wait: float = 10.0) -> RateGate:
    gate = RateGate()
    gate.refused(NOW, wait, probed=False)
    return gate


# -- the gate alone -----------------------------------------------------------------------------------------------


def test_an_open_gate_lets_every_request_go_at_once() -> None:
    gate = RateGate()
    turns = [gate.take_turn(NOW + index * 0.001) for index in range(100)]
    assert all(turn.wait == 0 and turn.final and not turn.probe for turn in turns)


def test_a_refusal_holds_every_request_until_the_pause_ends_spread_over_a_moment() -> None:
    gate = refused_gate(10.0)
    turns = [gate.take_turn(NOW + 2.0) for _ in range(50)]
    assert all(not turn.final and not turn.probe for turn in turns)
    assert all(8.0 <= turn.wait <= 8.0 + SPREAD_SECONDS for turn in turns)
    assert max(turn.wait for turn in turns) - min(turn.wait for turn in turns) > 0, "waiters must not wake together"


def test_after_the_pause_one_request_probes_and_the_others_wait_for_it() -> None:
    gate = refused_gate(10.0)
    probe = gate.take_turn(NOW + 10.0)
    assert probe.probe
    assert probe.wait == 0
    assert probe.final
    others = [gate.take_turn(NOW + 10.1) for _ in range(20)]
    assert not any(turn.probe or turn.final for turn in others)
    assert all(0 < turn.wait <= RECHECK_SECONDS + SPREAD_SECONDS for turn in others)


def test_a_probe_that_gets_through_reopens_the_account() -> None:
    gate = refused_gate()
    probe = gate.take_turn(NOW + 10.0)
    gate.passed(probed=probe.probe)
    assert gate.take_turn(NOW + 10.2) == ratelimit.GO


def test_an_answer_to_a_request_that_is_not_the_probe_does_not_reopen_the_account() -> None:
    gate = refused_gate()
    gate.take_turn(NOW + 10.0)  # the probe goes out
    gate.passed(probed=False)  # an answer to a request sent before the pause
    assert not gate.take_turn(NOW + 10.1).final


def test_a_probe_refused_again_pauses_the_account_again() -> None:
    gate = refused_gate(10.0)
    probe = gate.take_turn(NOW + 10.0)
    gate.refused(NOW + 10.1, 10.0, probed=probe.probe)
    turn = gate.take_turn(NOW + 11.0)
    assert not turn.final
    assert turn.wait >= 9.0
    assert gate.take_turn(NOW + 20.2).probe, "after the new pause a new probe goes"


@pytest.mark.parametrize("lost", ["unanswered", "lease expired"])
def test_a_probe_without_an_answer_lets_another_request_probe(lost: str) -> None:
    gate = refused_gate()
    gate.take_turn(NOW + 10.0)
    if lost == "unanswered":
        gate.unanswered(probed=True)
        later = NOW + 10.1
    else:
        later = NOW + 10.0 + PROBE_LEASE_SECONDS + 0.1
    assert gate.take_turn(later).probe


def test_a_spent_budget_holds_requests_until_it_refills_without_a_probe() -> None:
    gate = RateGate()
    gate.spent(NOW, 2.0)
    assert not gate.take_turn(NOW + 1.0).final
    assert gate.take_turn(NOW + 2.0) == ratelimit.GO


def test_the_ceiling_spaces_requests_and_the_strictest_ceiling_wins() -> None:
    gate = RateGate()
    gate.limit(10)
    gate.limit(None)
    gate.limit(20)
    waits = [gate.take_turn(NOW).wait for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert gate.take_turn(NOW + 10.0).wait == 0


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"}, 360.0),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20ms"}, 0.02),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1h2m3.5s"}, 3723.5),
        ({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1.5"}, 1.5),
        (
            {
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "1s",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "3s",
            },
            3.0,
        ),
        ({"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "6m0s"}, None),
        ({"x-ratelimit-remaining-requests": "0"}, None),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "soon"}, None),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s and then some"}, None),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "nan"}, None),
        ({}, None),
    ],
)
def test_spent_budget_headers(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_spent_budget(headers) == (pytest.approx(seconds) if seconds is not None else None)


# -- which account: the key is never kept, only a digest ----------------------------------------------------------


def hook_on(make_connection: ConnectionFactory, conn_id: str, emulator: FineTuningEmulator, **extra: object) -> str:
    return make_connection(conn_id, "openaifinetuning", host=emulator.url("openai"), **{**FAST_RETRIES, **extra})


def test_connections_to_one_account_share_one_gate_and_other_accounts_do_not(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory
) -> None:
    first = FineTuningHook(hook_on(make_connection, "ft_gate_a", emulator)).settings
    same = FineTuningHook(hook_on(make_connection, "ft_gate_a2", emulator, timeout=5)).settings
    other_org = FineTuningHook(hook_on(make_connection, "ft_gate_b", emulator, organization="org-b")).settings
    other_key = FineTuningHook(
        make_connection("ft_gate_c", "openaifinetuning", host=emulator.url("openai"), password="sk-other-key-123")
    ).settings
    assert ratelimit.gate_for(first) is ratelimit.gate_for(same)
    assert ratelimit.gate_for(first) is not ratelimit.gate_for(other_org)
    assert ratelimit.gate_for(first) is not ratelimit.gate_for(other_key)
    for settings in (first, other_org, other_key):
        assert API_KEY not in settings.account_key
        assert "sk-other-key-123" not in settings.account_key


def test_a_gate_is_released_when_no_transport_uses_it(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory
) -> None:
    settings = FineTuningHook(hook_on(make_connection, "ft_gate_gc", emulator, organization="org-gc")).settings
    gate = ratelimit.gate_for(settings)
    gate.refused(time.monotonic(), 60.0, probed=False)
    del gate
    gc.collect()
    assert ratelimit.gate_for(settings).paused_for(time.monotonic()) == 0, "an unused gate must not linger"


@pytest.mark.parametrize("value", [0, -1, "fast", True, float("nan"), 20_000])
def test_max_requests_per_second_must_be_a_positive_rate(
    value: object, emulator: FineTuningEmulator, make_connection: ConnectionFactory
) -> None:
    conn_id = hook_on(make_connection, "ft_gate_bad", emulator, max_requests_per_second=value)
    with pytest.raises(FineTuningConfigError, match="max_requests_per_second"):
        FineTuningHook(conn_id).settings  # noqa: B018 - reading the settings validates the connection


# -- blocking transports on one account ---------------------------------------------------------------------------


def test_a_429_seen_by_one_hook_pauses_another_hook_of_the_account_and_not_another_account(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory
) -> None:
    throttled_id = emulator.seed_job("openai", status="running")
    neighbour_id = emulator.seed_job("openai", status="running")
    first = FineTuningHook(hook_on(make_connection, "ft_pause_a", emulator, organization="org-pause"))
    second = FineTuningHook(hook_on(make_connection, "ft_pause_a2", emulator, organization="org-pause"))
    elsewhere = FineTuningHook(hook_on(make_connection, "ft_pause_b", emulator, organization="org-elsewhere"))
    emulator.inject(Fault("status", status=429, headers={"Retry-After": "1"}, path=throttled_id, times=1))

    waited: dict[str, float] = {}

    def poll(name: str, hook: FineTuningHook, job_id: str) -> None:
        started = time.monotonic()
        hook.get_job(job_id)
        waited[name] = time.monotonic() - started

    throttled = threading.Thread(target=poll, args=("first", first, throttled_id))
    throttled.start()
    while not any(request.status == 429 for request in emulator.requests):
        time.sleep(0.01)
    poll("elsewhere", elsewhere, neighbour_id)
    poll("second", second, neighbour_id)
    throttled.join()

    assert waited["elsewhere"] < 0.5, "another account must not wait for this one's pause"
    assert waited["second"] >= 0.5, "a hook on the throttled account must wait out the pause the other one met"
    assert waited["first"] >= 0.9
    gets = [request for request in emulator.requests if request.method == "GET"]
    assert [request.status for request in gets].count(429) == 1


def test_a_call_whose_deadline_ends_inside_the_pause_is_refused_without_sending(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory
) -> None:
    job_id = emulator.seed_job("openai", status="running")
    hook = FineTuningHook(hook_on(make_connection, "ft_pause_deadline", emulator, organization="org-deadline"))
    gate = ratelimit.gate_for(hook.settings)  # held here: a gate nobody holds is gone
    gate.refused(time.monotonic(), 30.0, probed=False)
    with pytest.raises(FineTuningApiError, match="rate limited for another") as raised:
        hook.get_job(job_id, deadline=time.monotonic() + 1.0)
    assert raised.value.rate_limited
    assert raised.value.retryable
    assert API_KEY not in str(raised.value)
    assert emulator.requests == [], "nothing may be sent while the account is paused"
