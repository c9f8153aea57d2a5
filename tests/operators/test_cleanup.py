"""CleanupFineTuningJobsOperator against the emulator: selection, safety cap, dry run, failures, rate limits."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_ft.exceptions import FineTuningConfigError, FineTuningError, UnsupportedOperationError
from airflow_provider_ft.operators.fine_tuning import CLEANUP_SUMMARY_XCOM_KEY, CleanupFineTuningJobsOperator
from airflow_provider_ft.vendors import DIALECTS_BY_CONN_TYPE
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.conftest import FAST_RETRIES, ConnectionFactory, Vendor
from tests.operators.conftest import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Run,
    acted_ids,
    mutating,
    status_of,
)

HOURS = timedelta(hours=1)
LIST_PATHS = ("/fine-tunes", "/fine_tuning/jobs")
CANCEL_PATHS = {
    "dashscope": "/fine-tunes/{}/cancel",
    "openai": "/fine_tuning/jobs/{}/cancel",
    "azure": "/fine_tuning/jobs/{}/cancel",
    "together": "/fine-tunes/{}/cancel",
}


def cleanup(conn_id: str, **kwargs: Any) -> CleanupFineTuningJobsOperator:
    kwargs.setdefault("older_than", 6 * HOURS)
    return CleanupFineTuningJobsOperator(task_id="cleanup", conn_id=conn_id, **kwargs)


def seed_stale(emulator: FineTuningEmulator, vendor: str, n: int, **kwargs: Any) -> list[str]:
    return emulator.seed_jobs(vendor, n, status=RUNNING[vendor], age=30 * HOURS, runs_for=None, **kwargs)


# -- selection --------------------------------------------------------------------------------------------------


def test_cancels_only_stale_unfinished_jobs(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run
) -> None:
    v = vendor.name
    stale = [
        emulator.seed_job(v, status=RUNNING[v], age=30 * HOURS, runs_for=None),
        emulator.seed_job(v, status=QUEUED[v], age=8 * HOURS),
    ]
    young = emulator.seed_job(v, status=RUNNING[v], age=2 * HOURS, runs_for=None)
    finished = [emulator.seed_job(v, status=words[v], age=50 * HOURS) for words in (SUCCEEDED, FAILED, CANCELLED)]

    summary = run.execute(cleanup(connection))

    assert acted_ids(emulator.requests) == set(stale)
    assert {status_of(emulator, v, job_id) for job_id in stale} == {CANCELLED[v]}
    assert status_of(emulator, v, young) == RUNNING[v]
    assert [status_of(emulator, v, job_id) for job_id in finished] == [SUCCEEDED[v], FAILED[v], CANCELLED[v]]
    assert summary == {
        "action": "cancel",
        "dry_run": False,
        "seen": 6,
        "matched": 2,
        "acted": 2,
        "skipped": 0,
        "failed": 0,
        "acted_ids": summary["acted_ids"],
        "skipped_ids": {},
        "failures": {},
    }
    assert set(summary["acted_ids"]) == set(stale)
    assert run.ti.xcoms[CLEANUP_SUMMARY_XCOM_KEY] == summary


def test_filters_by_status_name_and_model(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run
) -> None:
    v = vendor.name
    wanted = emulator.seed_job(v, status=QUEUED[v], age=30 * HOURS, name="nightly-7", model="base-a")
    emulator.seed_job(v, status=RUNNING[v], age=30 * HOURS, runs_for=None, name="nightly-8", model="base-a")
    emulator.seed_job(v, status=QUEUED[v], age=30 * HOURS, name="Nightly-9", model="base-a")
    emulator.seed_job(v, status=QUEUED[v], age=30 * HOURS, name="nightly-10", model="base-b")
    emulator.seed_job(v, status=QUEUED[v], age=30 * HOURS, model="base-a")

    summary = run.execute(cleanup(connection, statuses=["queued"], name_pattern="nightly-*", model="base-a"))

    assert acted_ids(emulator.requests) == {wanted}
    assert summary["acted_ids"] == [wanted]


def test_dashscope_model_filter_is_also_sent_to_the_server(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, run: Run
) -> None:
    conn_id = make_connection("ds", "dashscope", host=emulator.url("dashscope"), **FAST_RETRIES)
    wanted = seed_stale(emulator, "dashscope", 2, model="qwen-plus")
    seed_stale(emulator, "dashscope", 2, model="qwen-turbo")
    summary = run.execute(cleanup(conn_id, model="qwen-plus"))
    assert set(summary["acted_ids"]) == set(wanted)
    listing = next(r for r in emulator.requests if r.method == "GET")
    assert listing.query.get("model") == "qwen-plus"


def test_openai_metadata_filter(emulator: FineTuningEmulator, make_connection: ConnectionFactory, run: Run) -> None:
    conn_id = make_connection("oa", "openaifinetuning", host=emulator.url("openai"), **FAST_RETRIES)
    wanted = seed_stale(emulator, "openai", 2, metadata={"team": "research", "env": "dev"})
    seed_stale(emulator, "openai", 1, metadata={"team": "prod"})
    seed_stale(emulator, "openai", 1)
    summary = run.execute(cleanup(conn_id, metadata={"team": "research"}))
    assert set(summary["acted_ids"]) == set(wanted)
    assert acted_ids(emulator.requests) == set(wanted)
    listing = next(r for r in emulator.requests if r.method == "GET")
    assert listing.query.get("metadata[team]") == "research"


def test_metadata_filter_matches_nothing_on_a_vendor_without_metadata(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, run: Run
) -> None:
    conn_id = make_connection("ds", "dashscope", host=emulator.url("dashscope"), **FAST_RETRIES)
    seed_stale(emulator, "dashscope", 3, metadata={"team": "research"})
    summary = run.execute(cleanup(conn_id, metadata={"team": "research"}))
    assert summary["seen"] == 3
    assert summary["matched"] == 0
    assert mutating(emulator.requests) == []


def test_lists_every_page_before_acting(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run
) -> None:
    stale = seed_stale(emulator, vendor.name, 120)
    summary = run.execute(cleanup(connection, max_jobs=500, concurrency=8))
    assert summary["acted"] == 120
    assert set(summary["acted_ids"]) == set(stale)
    requests = emulator.requests
    listings = [i for i, r in enumerate(requests) if r.method == "GET" and r.path in LIST_PATHS]
    first_mutation = next(i for i, r in enumerate(requests) if r.method != "GET")
    paged = DIALECTS_BY_CONN_TYPE[vendor.conn_type].jobs_paged
    assert len(listings) == (2 if paged else 1), "120 jobs at 100 a page (LIST_PAGE_SIZE), or in one answer"
    assert max(listings) < first_mutation


def test_cancels_a_listed_job_without_reading_it_first(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run
) -> None:
    # The listing has just shown the job unfinished: the cancel goes straight out. OpenAI, Azure OpenAI and Together
    # AI answer it with the job; DashScope's answer does not carry the job, so it is read once afterwards.
    stale = seed_stale(emulator, vendor.name, 3)
    summary = run.execute(cleanup(connection))
    assert set(summary["acted_ids"]) == set(stale)
    for job_id in stale:
        calls = [request.method for request in emulator.requests if job_id in request.path]
        assert calls == (["POST", "GET"] if vendor.name == "dashscope" else ["POST"])


def test_a_job_finished_since_the_listing_is_skipped_not_failed(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, run: Run
) -> None:
    conn_id = make_connection("oa", "openaifinetuning", host=emulator.url("openai"), **FAST_RETRIES)
    job_id = emulator.seed_job("openai", status="succeeded", age=30 * HOURS)
    as_listed = {**(emulator.job("openai", job_id) or {}), "status": "running", "finished_at": None}
    page = json.dumps({"object": "list", "data": [as_listed], "has_more": False}).encode()
    emulator.inject(Fault(kind="body", method="GET", path=r"^/fine_tuning/jobs$", body=page))
    summary = run.execute(cleanup(conn_id))
    # The cancel was refused (the job had finished); a read confirmed it, so the job is skipped, not failed.
    assert [request.method for request in emulator.requests if job_id in request.path] == ["POST", "GET"]
    assert (summary["matched"], summary["acted"], summary["failed"]) == (1, 0, 0)
    assert summary["skipped_ids"] == {job_id: "already SUCCEEDED"}


def test_deletes_old_finished_dashscope_jobs(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, run: Run
) -> None:
    conn_id = make_connection("ds", "dashscope", host=emulator.url("dashscope"), **FAST_RETRIES)
    old = [emulator.seed_job("dashscope", status=word, age=timedelta(days=10)) for word in ("SUCCEEDED", "FAILED")]
    old.append(emulator.seed_job("dashscope", status="CANCELED", age=timedelta(days=9)))
    kept = [
        emulator.seed_job("dashscope", status="SUCCEEDED", age=timedelta(days=2)),
        emulator.seed_job("dashscope", status="RUNNING", age=timedelta(days=10), runs_for=None),
    ]
    summary = run.execute(cleanup(conn_id, action="delete", older_than=timedelta(days=7)))
    assert set(summary["acted_ids"]) == set(old)
    assert all(emulator.job("dashscope", job_id) is None for job_id in old)
    assert all(emulator.job("dashscope", job_id) is not None for job_id in kept)


def test_delete_on_openai_is_unsupported_before_any_request(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, run: Run
) -> None:
    conn_id = make_connection("oa", "openaifinetuning", host=emulator.url("openai"), **FAST_RETRIES)
    emulator.seed_job("openai", status="succeeded", age=timedelta(days=30))
    with pytest.raises(UnsupportedOperationError):
        run.execute(cleanup(conn_id, action="delete"))
    assert emulator.requests == []


# -- safety -----------------------------------------------------------------------------------------------------


def test_refuses_when_more_than_max_jobs_match(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run
) -> None:
    stale = seed_stale(emulator, vendor.name, 5)
    with pytest.raises(FineTuningError, match=r"max_jobs=4.*after 5 jobs.*none was touched"):
        run.execute(cleanup(connection, max_jobs=4))
    assert mutating(emulator.requests) == []
    assert {status_of(emulator, vendor.name, job_id) for job_id in stale} == {RUNNING[vendor.name]}
    summary = run.ti.xcoms[CLEANUP_SUMMARY_XCOM_KEY]
    assert (summary["matched"], summary["acted"], summary["skipped"]) == (5, 0, 5)


def test_dry_run_sends_no_mutating_request(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run
) -> None:
    stale = seed_stale(emulator, vendor.name, 3)
    summary = run.execute(cleanup(connection, dry_run=True))
    assert mutating(emulator.requests) == []
    assert summary["dry_run"] is True
    assert (summary["matched"], summary["acted"], summary["skipped"]) == (3, 0, 3)
    assert summary["skipped_ids"] == {job_id: "dry run: would cancel" for job_id in stale}


def test_a_failing_job_does_not_stop_the_others(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run
) -> None:
    stale = seed_stale(emulator, vendor.name, 5)
    broken = stale[2]
    emulator.inject(Fault(kind="status", status=500, path=CANCEL_PATHS[vendor.name].format(broken), times=1000))

    with pytest.raises(FineTuningError, match=broken) as raised:
        run.execute(cleanup(connection, concurrency=2))

    assert "1 of 5" in str(raised.value)
    summary = run.ti.xcoms[CLEANUP_SUMMARY_XCOM_KEY]
    assert set(summary["acted_ids"]) == set(stale) - {broken}
    assert list(summary["failures"]) == [broken]
    assert "500" in summary["failures"][broken]
    assert (summary["acted"], summary["failed"]) == (4, 1)
    for job_id in stale:
        expected = RUNNING[vendor.name] if job_id == broken else CANCELLED[vendor.name]
        assert status_of(emulator, vendor.name, job_id) == expected


def test_rate_limits_slow_it_down_but_never_fail_a_job(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run
) -> None:
    stale = seed_stale(emulator, vendor.name, 6)
    emulator.inject(Fault(kind="status", status=429, method="POST", headers={"Retry-After": "0.05"}, times=12, every=1))
    summary = run.execute(cleanup(connection, concurrency=3))
    assert summary["failed"] == 0
    assert set(summary["acted_ids"]) == set(stale)
    assert sum(1 for r in emulator.requests if r.status == 429) == 12
    assert {status_of(emulator, vendor.name, job_id) for job_id in stale} == {CANCELLED[vendor.name]}


def test_rate_limit_outlasting_the_hook_retries_is_waited_out(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run
) -> None:
    (job_id,) = seed_stale(emulator, vendor.name, 1)
    # FAST_RETRIES allows 4 attempts per call: 6 refusals outlast one call's retries.
    emulator.inject(Fault(kind="status", status=429, method="POST", headers={"Retry-After": "0.02"}, times=6))
    summary = run.execute(cleanup(connection))
    assert summary["acted_ids"] == [job_id]
    assert summary["failed"] == 0


def test_persistent_rate_limit_skips_the_job_instead_of_failing(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run
) -> None:
    (job_id,) = seed_stale(emulator, vendor.name, 1)
    emulator.inject(Fault(kind="status", status=429, method="POST", headers={"Retry-After": "0.02"}, times=1000))
    summary = run.execute(cleanup(connection, rate_limit_patience=0.3))
    assert summary["failed"] == 0
    assert list(summary["skipped_ids"]) == [job_id]
    assert "rate limited" in summary["skipped_ids"][job_id]


def test_concurrency_is_bounded(emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run) -> None:
    seed_stale(emulator, vendor.name, 9)
    emulator.inject(Fault(kind="latency", method="POST", delay=0.25, times=1000))
    in_flight_seen: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            in_flight_seen.append(sum(1 for r in emulator.requests if r.method == "POST" and r.status == 0))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        summary = run.execute(cleanup(connection, concurrency=3))
    finally:
        done.set()
        sampler.join()
    assert summary["acted"] == 9
    assert max(in_flight_seen) <= 3
    assert max(in_flight_seen) >= 2, "calls did run in parallel"


def test_worker_threads_never_read_the_connection(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inside an Airflow 3 task a connection is fetched over the task's one channel to its supervisor, which is not
    # safe to use from several threads at once (Airflow 3.0's dag.test() loses its channel when they do).
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

    seed_stale(emulator, vendor.name, 6)
    readers: list[str] = []
    read = FineTuningHook.get_connection

    def spy(conn_id: str) -> Any:
        readers.append(threading.current_thread().name)
        return read(conn_id)

    monkeypatch.setattr(FineTuningHook, "get_connection", staticmethod(spy))
    summary = run.execute(cleanup(connection, concurrency=3))
    assert summary["acted"] == 6
    assert readers == [threading.current_thread().name], "read once, by the task's own thread"


# -- validation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"older_than": timedelta(0)}, "older_than"),
        ({"older_than": -HOURS}, "older_than"),
        ({"older_than": 3600}, "timedelta"),
        ({"action": "archive"}, "action"),
        ({"statuses": ["RUNNING", "BOGUS"]}, "BOGUS"),
        ({"statuses": []}, "at least one"),
        ({"statuses": ["SUCCEEDED"]}, "cannot be cancelled"),
        ({"action": "delete", "statuses": ["RUNNING"]}, "cancel the others first"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"max_jobs": 0}, "max_jobs"),
        ({"name_pattern": ""}, "name_pattern"),
        ({"model": 7}, "model"),
        ({"metadata": {"team": 1}}, "metadata"),
        ({"metadata": ["team"]}, "metadata"),
        ({"rate_limit_patience": "long"}, "rate_limit_patience"),
    ],
)
def test_arguments_are_checked_at_parse_time(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(FineTuningConfigError, match=message):
        cleanup("any", **kwargs)


def test_statuses_are_normalized() -> None:
    operator = cleanup("any", statuses="running, Paused")
    criteria = operator._checked_criteria(allow_templates=False)
    assert {status.value for status in criteria.statuses} == {"RUNNING", "PAUSED"}


def test_templated_values_are_checked_when_rendered(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run
) -> None:
    operator = cleanup(connection, statuses="{{ params.statuses }}", name_pattern="{{ params.pattern }}")
    operator.statuses = "SUCCEEDED"
    operator.name_pattern = "nightly-*"
    with pytest.raises(FineTuningConfigError, match="cannot be cancelled"):
        run.execute(operator)
    assert emulator.requests == []
