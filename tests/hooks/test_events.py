"""The vendor's own progress log (OpenAI job events, DashScope log lines): the dialects' strict parsing, the hook's
``new_events`` cursor and paging bound, and the waits (hook, sensor poke, trigger) logging each entry once, in
order, against the emulator over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ft.exceptions import FineTuningConfigError, MalformedAnswerError
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.sensors.fine_tuning import FineTuningJobSensor
from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
from airflow_provider_ft.vendors.dashscope import DashScopeDialect
from airflow_provider_ft.vendors.openai import OpenAIDialect
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.conftest import API_KEY, FAST_RETRIES

if TYPE_CHECKING:
    from tests.conftest import ConnectionFactory, Vendor

QUEUED = {"dashscope": "PENDING", "openai": "validating_files", "azure": "pending", "together": "pending"}
RUNNING = {"dashscope": "RUNNING", "openai": "running", "azure": "running", "together": "running"}
SUCCEEDED = {"dashscope": "SUCCEEDED", "openai": "succeeded", "azure": "succeeded", "together": "completed"}
EVENTS_PATH = {"dashscope": "/logs", "openai": "/events", "azure": "/events", "together": "/events"}
#: A progress line as Airflow's log setup prints it, without the logger name and place it may append.
PROGRESS = re.compile(r"job (\S+) progress: (.*?)(?: \[[\w.]+\] loc=\S+)?$")


def openai_event(index: int, **extra: Any) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.event",
        "id": f"ftevent-{index}",
        "created_at": 1_700_000_000 + index,
        "level": "info",
        "message": f"message {index}",
        "data": {},
        "type": "message",
        **extra,
    }


def openai_page(*indexes: int, has_more: bool = False) -> dict[str, Any]:
    """A page as the API sends it: newest first."""
    return {"object": "list", "data": [openai_event(i) for i in indexes], "has_more": has_more}


# -- the dialects, pure ---------------------------------------------------------------------------------------------


def test_openai_page_is_turned_oldest_first_with_the_oldest_id_as_next_cursor() -> None:
    page = OpenAIDialect().parse_events(openai_page(9, 8, 7, has_more=True), None)
    assert [event.cursor for event in page.events] == ["ftevent-7", "ftevent-8", "ftevent-9"]
    assert [event.message for event in page.events] == ["message 7", "message 8", "message 9"]
    assert page.events[0].created_at is not None
    assert page.events[0].created_at.timestamp() == 1_700_000_007
    assert page.events[0].level == "info"
    assert page.next_cursor == "ftevent-7"
    assert OpenAIDialect().parse_events(openai_page(9, 8), None).next_cursor is None
    with pytest.raises(MalformedAnswerError, match="holds no entry but says more follow"):
        OpenAIDialect().parse_events(openai_page(has_more=True), None)


def test_openai_metrics_event_gives_step_total_and_loss() -> None:
    metrics = openai_event(1, type="metrics", data={"step": 10, "total_steps": 100, "train_loss": 1.2345678})
    (event,) = OpenAIDialect().parse_events({"object": "list", "data": [metrics], "has_more": False}, None).events
    assert (event.step, event.total_steps, event.train_loss) == (10, 100, 1.2345678)
    assert event.describe("ftjob-1").endswith("message 1 (step 10 of 100, training loss 1.235)")
    odd = openai_event(2, data={"step": "10", "train_loss": float("nan"), "total_steps": True})
    (event,) = OpenAIDialect().parse_events({"data": [odd], "has_more": False}, None).events
    assert (event.step, event.total_steps, event.train_loss) == (None, None, None)


def test_event_line_escapes_server_text() -> None:
    hostile = openai_event(1, message="done\nERROR forged line \x1b[31m", level="info\r")
    (event,) = OpenAIDialect().parse_events({"data": [hostile], "has_more": False}, None).events
    line = event.describe("ftjob-1")
    assert not {"\n", "\x1b", "\r"} & set(line)
    assert "done\\nERROR forged line \\x1b[31m" in line


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"data": {}, "has_more": False}, "'data'"),
        ({"has_more": False}, "'data'"),
        ({"data": [], "has_more": "false"}, "'has_more'"),
        ({"data": ["ftevent-1"], "has_more": False}, "entry 0"),
        ({"data": [openai_event(1, id="")], "has_more": False}, "'id'"),
        ({"data": [openai_event(1, id=7)], "has_more": False}, "'id'"),
    ],
)
def test_openai_wrong_shapes_are_malformed(payload: dict[str, Any], problem: str) -> None:
    with pytest.raises(MalformedAnswerError, match=re.escape(problem)):
        OpenAIDialect().parse_events(payload, None)


@pytest.mark.parametrize(
    ("fields", "read"),
    [
        ({"created_at": "2024-01-01"}, ("message 1", None)),
        ({"created_at": None}, ("message 1", None)),
        ({"created_at": 1_700_000_000_000}, ("message 1", None)),
        ({"message": None}, ("", 1_700_000_001)),
    ],
)
def test_openai_event_time_and_message_are_informational(fields: dict[str, Any], read: tuple[str, int | None]) -> None:
    # An entry keeps its place in the log (its id is the cursor) without a usable time or text.
    (event,) = OpenAIDialect().parse_events({"data": [openai_event(1, **fields)], "has_more": False}, None).events
    seconds = None if event.created_at is None else event.created_at.timestamp()
    assert (event.cursor, event.message, seconds) == ("ftevent-1", *read)


def test_dashscope_lines_are_numbered_from_the_cursor() -> None:
    answer = {"request_id": "r", "output": {"total": 7, "logs": ["line 5", "line 6"]}}
    page = DashScopeDialect().parse_events(answer, "4")
    assert [(event.cursor, event.message) for event in page.events] == [("5", "line 5"), ("6", "line 6")]
    assert page.next_cursor == "6"
    last = DashScopeDialect().parse_events({"output": {"total": 7, "logs": ["line 7"]}}, "6")
    assert [event.cursor for event in last.events] == ["7"]
    assert last.next_cursor is None
    with pytest.raises(MalformedAnswerError, match="holds no entry but says more follow"):
        DashScopeDialect().parse_events({"output": {"total": 9, "logs": []}}, "4")


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("line 5\nline 6", ["line 5", "line 6"]),
        ("line 5\nline 6\n", ["line 5", "line 6"]),
        ("line 5\n\nline 7", ["line 5", "", "line 7"]),
        ("", []),
    ],
)
def test_dashscope_logs_sent_as_one_string_are_its_lines(text: str, lines: list[str]) -> None:
    # The SDK (dashscope 2.0.2 JobLogs): "The server may return logs either as a single string or as an array of
    # lines"; it joins the array with newlines, so a string is split at them.
    answer = {"output": {"total": 4 + len(lines), "logs": text}}
    page = DashScopeDialect().parse_events(answer, "4")
    assert [(event.cursor, event.message) for event in page.events] == [
        (str(5 + index), line) for index, line in enumerate(lines)
    ]
    assert page.next_cursor is None


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"output": []}, "'output'"),
        ({}, "'output'"),
        ({"output": {"total": 1}}, "'logs'"),
        ({"output": {"total": 1, "logs": {"line": 1}}}, "'logs'"),
        ({"output": {"total": 1, "logs": 7}}, "'logs'"),
        ({"output": {"logs": ["a"]}}, "'total'"),
        ({"output": {"total": "1", "logs": ["a"]}}, "'total'"),
        ({"output": {"total": -1, "logs": []}}, "'total'"),
        ({"output": {"total": True, "logs": []}}, "'total'"),
        ({"output": {"total": 2, "logs": ["a", {"line": "b"}]}}, "line 2"),
    ],
)
def test_dashscope_wrong_shapes_are_malformed(payload: dict[str, Any], problem: str) -> None:
    with pytest.raises(MalformedAnswerError, match=re.escape(problem)):
        DashScopeDialect().parse_events(payload, None)


def test_requests_follow_each_vendors_paging() -> None:
    openai = OpenAIDialect().events_page("ftjob-abc", "ftevent-3", 100)
    assert (openai.method, openai.path, openai.params) == (
        "GET",
        "/fine_tuning/jobs/ftjob-abc/events",
        (("limit", "100"), ("after", "ftevent-3")),
    )
    assert OpenAIDialect().events_page("ftjob-abc", None, 20).params == (("limit", "20"),)
    # DashScope's offset is the number of lines to skip, from 0 (its reference, "Query fine-tuning logs").
    dashscope = DashScopeDialect().events_page("ft-1", "10", 1000)
    assert (dashscope.path, dashscope.params) == ("/fine-tunes/ft-1/logs", (("offset", "10"), ("line", "1000")))
    assert DashScopeDialect().events_page("ft-1", None, 5).params == (("offset", "0"), ("line", "5"))
    for dialect, bad in ((DashScopeDialect(), "ftevent-1"), (DashScopeDialect(), "-1"), (OpenAIDialect(), "")):
        with pytest.raises(FineTuningConfigError, match="cursor"):
            dialect.events_page("ft-1", bad, 10)


# -- the hook against the emulator ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clock_emulator() -> Iterator[FineTuningEmulator]:
    """An emulator of this module's own: these tests move its clock on, which the shared one must not see."""
    with FineTuningEmulator(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def advancing(
    clock_emulator: FineTuningEmulator, vendor: Vendor, make_connection: ConnectionFactory
) -> Iterator[tuple[FineTuningEmulator, str]]:
    """``clock_emulator``, emptied, and a connection of the parametrized vendor to it."""
    clock_emulator.reset()
    conn_id = make_connection(
        f"clock_{vendor.name}", vendor.conn_type, host=clock_emulator.url(vendor.name), **FAST_RETRIES
    )
    yield clock_emulator, conn_id
    clock_emulator.reset()


def messages(events: list[Any]) -> list[str]:
    return [event.message for event in events]


def test_new_events_returns_each_entry_once_oldest_first_as_the_job_runs(
    advancing: tuple[FineTuningEmulator, str], vendor: Vendor
) -> None:
    emulator, connection = advancing
    job_id = emulator.seed_job(vendor.name, status=QUEUED[vendor.name], runs_for=600)
    hook = FineTuningHook(connection)
    seen, cursor = hook.new_events(job_id)
    assert seen, "a new job has logged something"
    for step in (100, 700):
        emulator.advance(step)
        hook.get_job(job_id)
        fresh, next_cursor = hook.new_events(job_id, cursor)
        assert fresh, "the job moved on, so its log grew"
        assert not {event.cursor for event in fresh} & {event.cursor for event in seen}, "only entries after it"
        assert next_cursor == fresh[-1].cursor
        assert hook.new_events(job_id, next_cursor) == ([], next_cursor), "nothing new: empty, same cursor"
        seen, cursor = seen + fresh, next_cursor
    everything, last = hook.new_events(job_id)
    assert messages(seen) == messages(everything), "each entry once, in the log's own order"
    assert last == cursor == everything[-1].cursor
    times = [event.created_at for event in everything if event.created_at is not None]
    assert times == sorted(times), "oldest first"
    assert hook.new_events(job_id, last) == ([], last)


def test_new_events_is_bounded_by_max_pages(advancing: tuple[FineTuningEmulator, str], vendor: Vendor) -> None:
    emulator, connection = advancing
    job_id = emulator.seed_job(vendor.name, status=QUEUED[vendor.name], runs_for=60)
    hook = FineTuningHook(connection)
    emulator.advance(120)
    hook.get_job(job_id)
    everything, _ = hook.new_events(job_id)
    assert len(everything) >= 3
    hook.dialect.events_page_size = 1  # type: ignore[misc]  # one entry per page, on this hook's dialect only
    before = len(emulator.requests)
    first, cursor = hook.new_events(job_id, max_pages=2)
    if not hook.dialect.events_paged:
        # One answer holds the whole log: one request reads it all, and nothing is left for the next call.
        assert len(emulator.requests) - before == 1
        assert messages(first) == messages(everything)
        assert hook.new_events(job_id, cursor, max_pages=100) == ([], cursor)
        return
    assert len(emulator.requests) - before == 2, "never more requests than max_pages"
    assert len(first) == 2
    rest, _ = hook.new_events(job_id, cursor, max_pages=100)
    if hook.dialect.events_newest_first:
        # Paging from the newest back: the newest two were read, the older ones are skipped for good.
        assert messages(first) == messages(everything)[-2:]
        assert rest == []
    else:
        # Paging forward: the next call reads on where this one stopped.
        assert messages(first + rest) == messages(everything)


# -- the waits log each entry once ----------------------------------------------------------------------------------


def progress_lines(text: str) -> list[str]:
    return [match.group(2) for line in text.splitlines() if (match := PROGRESS.search(line))]


def expected_lines(connection: str, job_id: str) -> list[str]:
    everything, _ = FineTuningHook(connection).new_events(job_id)
    return [event.describe(job_id).split(" progress: ", 1)[1] for event in everything]


def logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """What the provider's loggers wrote, from one source only, so that no line is counted twice: Airflow 3's
    structlog setup writes task and trigger records to the process's stdout/stderr, and Airflow 2 hands them to
    plain logging (caplog) and also echoes them to stdout."""
    out, err = capfd.readouterr()
    records = "\n".join(record.getMessage() for record in caplog.records)
    written = "\n".join([out, err])
    ours = ("progress: ", "Could not read the progress log")
    return records if any(marker in records for marker in ours) else written


def test_wait_for_job_logs_each_entry_once_in_order(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=0.5)
    caplog.set_level(logging.INFO)
    job = FineTuningHook(connection).wait_for_job(job_id, poll_interval=0.05, timeout=20)
    assert job.is_terminal
    lines = progress_lines(logged(caplog, capfd))
    assert lines == expected_lines(connection, job_id)
    assert len(lines) >= 2


def test_wait_for_job_log_events_false_logs_none(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=0.2)
    caplog.set_level(logging.INFO)
    FineTuningHook(connection).wait_for_job(job_id, poll_interval=0.05, timeout=20, log_events=False)
    text = logged(caplog, capfd)
    assert progress_lines(text) == []
    assert not any(request.path.endswith(EVENTS_PATH[vendor.name]) for request in emulator.requests)


def test_a_broken_events_endpoint_does_not_fail_the_wait(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=0.3)
    emulator.inject(Fault(kind="status", status=500, path="/events|/logs", times=1000))
    caplog.set_level(logging.INFO)
    job = FineTuningHook(connection).wait_for_job(job_id, poll_interval=0.05, timeout=30)
    assert job.status.value == "SUCCEEDED"
    text = logged(caplog, capfd)
    warnings = [line for line in text.splitlines() if "Could not read the progress log" in line]
    polls = sum(1 for request in emulator.requests if request.path.endswith("/" + job_id))
    assert 1 <= len(warnings) <= polls, "at most one warning per poll"
    levels = {record.levelno for record in caplog.records if "Could not read the progress log" in record.getMessage()}
    if levels:  # plain logging (Airflow 2) kept the records
        assert levels == {logging.WARNING}
    else:  # Airflow 3's structlog wrote them out with their level
        assert all("warning" in line.lower() for line in warnings)
    assert progress_lines(text) == []


def test_sensor_poke_logs_each_entry_once_in_order(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=0.5)
    caplog.set_level(logging.INFO)
    sensor = FineTuningJobSensor(task_id="wait", job_id=job_id, conn_id=connection, deferrable=False)
    deadline = time.monotonic() + 20
    while not sensor.poke({}).is_done:  # type: ignore[arg-type]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert progress_lines(logged(caplog, capfd)) == expected_lines(connection, job_id)


def test_sensor_poke_survives_a_broken_events_endpoint(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=SUCCEEDED[vendor.name])
    emulator.inject(Fault(kind="status", status=500, path="/events|/logs", times=1000))
    sensor = FineTuningJobSensor(task_id="wait", job_id=job_id, conn_id=connection, deferrable=False)
    assert sensor.poke({}).is_done  # type: ignore[arg-type]


async def test_trigger_logs_each_entry_once_in_order(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=0.5)
    caplog.set_level(logging.INFO)
    trigger = FineTuningJobTrigger(connection, job_id, 0.05, time.time() + 20)
    async with asyncio.timeout(20):
        events = [event async for event in trigger.run()]
    assert events[0].payload["status"] == "success"
    assert progress_lines(logged(caplog, capfd)) == expected_lines(connection, job_id)


async def test_trigger_survives_a_broken_events_endpoint(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=0.2)
    emulator.inject(Fault(kind="status", status=500, path="/events|/logs", times=1000))
    trigger = FineTuningJobTrigger(connection, job_id, 0.05, time.time() + 30)
    async with asyncio.timeout(30):
        events = [event async for event in trigger.run()]
    assert events[0].payload["status"] == "success"


async def test_trigger_log_events_false_reads_no_events(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=0.1)
    trigger = FineTuningJobTrigger(connection, job_id, 0.05, time.time() + 20, log_events=False)
    async with asyncio.timeout(20):
        events = [event async for event in trigger.run()]
    assert events[0].payload["status"] == "success"
    assert not any(request.path.endswith(EVENTS_PATH[vendor.name]) for request in emulator.requests)


async def test_each_entry_is_logged_once_across_a_deferral(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from airflow_provider_ft._compat import TaskDeferred
    from tests.operators.conftest import RecordingTaskInstance

    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=0.5)
    caplog.set_level(logging.INFO)
    sensor = FineTuningJobSensor(task_id="wait", job_id=job_id, conn_id=connection, deferrable=True, poke_interval=0.05)
    with pytest.raises(TaskDeferred) as raised:
        sensor.execute({"ti": RecordingTaskInstance()})  # type: ignore[arg-type]
    before_deferring = progress_lines(logged(caplog, capfd))
    trigger = raised.value.trigger
    assert isinstance(trigger, FineTuningJobTrigger)
    assert trigger.serialize()[1]["events_after"] is not None, "the check before deferring read the log"
    caplog.clear()
    async with asyncio.timeout(20):
        fired = [event async for event in trigger.run()]
    assert fired[0].payload["status"] == "success"
    in_the_triggerer = progress_lines(logged(caplog, capfd))
    assert before_deferring, "entries were logged before deferring"
    assert in_the_triggerer, "and the rest in the triggerer"
    assert before_deferring + in_the_triggerer == expected_lines(connection, job_id)


def test_a_page_sent_oldest_first_against_the_documented_order_is_still_read_oldest_first() -> None:
    # The entries' own times decide: a server that pages the other way than documented does not reverse the log.
    page = OpenAIDialect().parse_events(openai_page(7, 8, 9), None)
    assert [event.cursor for event in page.events] == ["ftevent-7", "ftevent-8", "ftevent-9"]


def test_entries_of_one_time_keep_the_documented_order() -> None:
    same_time = [openai_event(index, created_at=1_700_000_000) for index in (9, 8, 7)]
    page = OpenAIDialect().parse_events({"data": same_time, "has_more": False}, None)
    assert [event.cursor for event in page.events] == ["ftevent-7", "ftevent-8", "ftevent-9"]


def test_a_line_whose_text_already_gives_the_figures_does_not_repeat_them() -> None:
    said = openai_event(1, message="Step 10/100: training loss=0.92", data={"step": 10, "total_steps": 100})
    (event,) = OpenAIDialect().parse_events({"data": [said], "has_more": False}, None).events
    assert event.describe("ftjob-1").endswith("Step 10/100: training loss=0.92")
