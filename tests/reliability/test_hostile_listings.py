"""Listings: a server whose pages never end cannot keep ``list_jobs`` (or a cleanup reading it) going forever.

Every listing page of the emulator's ``endless_pages`` fault says more follow; each variant fills them differently:
``fresh`` with new jobs forever, ``alternate`` with two pages in turn, ``same`` with one page again and again,
``total`` with a DashScope ``total`` no listing has, ``non_objects`` with values that are not jobs. The hook stops
each in one ``FineTuningApiError`` (``MalformedAnswerError`` for an answer of the wrong shape) saying why, having
sent at most ``max_pages`` listing requests and yielded every job it read once.

The cleanup refuses early: against an endless listing of stale running jobs, ``max_jobs=3`` stops it at the
fourth match, on the first page, with no cancel sent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_ft import defaults
from airflow_provider_ft.emulator import Fault, FineTuningEmulator, RecordedRequest
from airflow_provider_ft.emulator.specimens import LISTING_PATHS, SPECIMEN_AGE
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningError, MalformedAnswerError
from airflow_provider_ft.hooks._transport import ClientSettings
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.operators.fine_tuning import CLEANUP_SUMMARY_XCOM_KEY, CleanupFineTuningJobsOperator
from tests.conftest import API_KEY, CONN_TYPES, ConnectionFactory
from tests.operators.conftest import Run, mutating

VENDORS = ("dashscope", "openai")
AREA = "listings"
ALWAYS = 100_000
#: A small ``max_pages`` (connection extra) and page size, so that an endless listing ends after little work.
MAX_PAGES = 15
PAGE_SIZE = 5
EXTRAS: dict[str, float] = {"timeout": 2.0, "max_retries": 1, "backoff_base": 0.01, "max_pages": MAX_PAGES}
SLACK_SECONDS = 2.0
PATHS = {str(vendor): path for vendor, path in LISTING_PATHS.items()}


def request_bound(settings: ClientSettings) -> float:
    """Longest one listing request may take: every attempt spent its whole deadline, the longest backoffs."""
    policy = settings.retry
    backoffs = sum(
        min(policy.backoff_base * 2.0**retry, policy.backoff_max) * (1 + policy.jitter)
        for retry in range(policy.max_retries)
    )
    return (policy.max_retries + 1) * settings.attempt_seconds + backoffs


def endless(variant: str) -> Fault:
    return Fault(
        kind="endless_pages", variant=variant, method="GET", path=r"^/(fine-tunes|fine_tuning/jobs)/?$", times=ALWAYS
    )


def listing_requests(emulator: FineTuningEmulator, vendor: str) -> list[RecordedRequest]:
    path = PATHS[vendor]
    return [r for r in emulator.requests if r.method == "GET" and r.path.rstrip("/") == path]


# -- how each endless listing must end --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ending:
    """The one error a listing ends in, after how many listing requests, having yielded how many jobs."""

    error: type[FineTuningApiError]
    says: str
    requests: int
    why: str

    @property
    def yielded(self) -> int:
        """Every page but the one that ended the listing brought ``PAGE_SIZE`` new jobs."""
        return (self.requests - 1) * PAGE_SIZE

    def describe(self) -> str:
        return f"`{self.error.__name__}` ({self.why}) after {self.requests} pages"


AT_MAX_PAGES = Ending(FineTuningApiError, f"more after max_pages={MAX_PAGES} pages", MAX_PAGES, "max_pages")
NOT_OBJECTS = Ending(MalformedAnswerError, "not a JSON object", 1, "entries not objects")


@dataclass(frozen=True)
class EndlessCase:
    variant: str
    label: str
    endings: dict[str, Ending]


CASES = [
    EndlessCase("fresh", "new jobs on every page, more always promised", {v: AT_MAX_PAGES for v in VENDORS}),
    EndlessCase(
        "alternate",
        "two pages in turn",
        {
            "dashscope": Ending(FineTuningApiError, "brought no job not seen before", 3, "no new job"),
            "openai": Ending(FineTuningApiError, "a second time", 3, "repeated cursor"),
        },
    ),
    EndlessCase(
        "same",
        "the same page again and again",
        {
            "dashscope": Ending(FineTuningApiError, "brought no job not seen before", 2, "no new job"),
            "openai": Ending(FineTuningApiError, "a second time", 2, "repeated cursor"),
        },
    ),
    EndlessCase(
        "total",
        "DashScope `total` of 10^12 (OpenAI has none: fresh pages)",
        {
            "dashscope": Ending(MalformedAnswerError, "'total' is 1000000000000 (number)", 1, "impossible total"),
            "openai": AT_MAX_PAGES,
        },
    ),
    EndlessCase("non_objects", "pages of values that are not jobs", {v: NOT_OBJECTS for v in VENDORS}),
]


def listing_cases() -> list[Any]:
    params = []
    for case in CASES:
        for vendor in VENDORS:
            ending = case.endings[vendor]
            mark = pytest.mark.reliability(
                area=AREA,
                row=f"endless-{case.variant}",
                column=f"list (max_pages {MAX_PAGES})",
                vendor=vendor,
                label=f"`{case.variant}`: {case.label}",
                expect=ending.describe(),
            )
            params.append(pytest.param(case.variant, vendor, ending, id=f"{case.variant}-{vendor}", marks=mark))
    return params


def read_listing(hook: FineTuningHook) -> tuple[list[str], BaseException | None]:
    """The ids ``list_jobs`` yielded, and the error it ended with (``None``: it ended by itself)."""
    ids: list[str] = []
    try:
        for job in hook.list_jobs():
            ids.append(job.id)
    except FineTuningError as error:
        return ids, error
    return ids, None


def check_ending(error: BaseException | None, ending: Ending, vendor: str) -> None:
    assert error is not None, "an endless listing ended by itself"
    assert type(error) is ending.error, f"expected {ending.error.__name__}, got {error!r}"
    assert ending.says in str(error), f"{ending.says!r} not in {str(error)!r}"
    assert API_KEY not in str(error)
    if ending.error is FineTuningApiError:
        display = {"dashscope": "DashScope", "openai": "OpenAI"}[vendor]
        assert f"Stopped listing {display} jobs after {ending.requests} pages" in str(error)


@pytest.mark.parametrize(("variant", "vendor", "ending"), listing_cases())
def test_endless_listing_ends(
    request: pytest.FixtureRequest,
    emulator: FineTuningEmulator,
    make_connection: ConnectionFactory,
    variant: str,
    vendor: str,
    ending: Ending,
) -> None:
    conn_id = make_connection(f"ft_endless_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), **EXTRAS)
    emulator.inject(endless(variant))
    hook = FineTuningHook(conn_id, page_size=PAGE_SIZE)
    settings = hook.settings
    assert settings.max_pages == MAX_PAGES
    bound = ending.requests * request_bound(settings) + SLACK_SECONDS
    started = time.monotonic()
    try:
        ids, error = read_listing(hook)
    finally:
        hook.close()
    elapsed = time.monotonic() - started
    sent = listing_requests(emulator, vendor)
    request.node.user_properties.extend(
        [("seconds", round(elapsed, 3)), ("bound_seconds", round(bound, 3)), ("listing_requests", len(sent))]
    )
    check_ending(error, ending, vendor)
    assert len(sent) <= settings.max_pages, f"{len(sent)} listing requests, max_pages is {settings.max_pages}"
    assert len(sent) == ending.requests
    assert len(emulator.requests) == len(sent), "nothing but the listing was requested"
    assert {r.fault for r in sent} == {"endless_pages"}
    assert len(ids) == ending.yielded, "every job read before the end was yielded"
    assert len(set(ids)) == len(ids), "each job once"
    assert elapsed <= bound, f"took {elapsed:.3f} s, the configuration allows {bound:.3f} s"


@pytest.mark.parametrize(
    "vendor",
    [
        pytest.param(
            vendor,
            marks=pytest.mark.reliability(
                area=AREA,
                row="endless-fresh-default-max-pages",
                column=f"list (default max_pages {defaults.MAX_PAGES})",
                vendor=vendor,
                label="`fresh`: new jobs on every page, one job a page, default `max_pages`",
                expect=f"`FineTuningApiError` (max_pages) after {defaults.MAX_PAGES} pages",
            ),
        )
        for vendor in VENDORS
    ],
)
def test_endless_listing_ends_at_the_default_max_pages(
    request: pytest.FixtureRequest, emulator: FineTuningEmulator, make_connection: ConnectionFactory, vendor: str
) -> None:
    conn_id = make_connection(
        f"ft_endless_default_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), timeout=2.0, max_retries=0
    )
    emulator.inject(endless("fresh"))
    hook = FineTuningHook(conn_id, page_size=1)
    settings = hook.settings
    assert settings.max_pages == defaults.MAX_PAGES == 1000, "the documented default"
    bound = settings.max_pages * request_bound(settings) + SLACK_SECONDS
    started = time.monotonic()
    try:
        ids, error = read_listing(hook)
    finally:
        hook.close()
    elapsed = time.monotonic() - started
    sent = listing_requests(emulator, vendor)
    request.node.user_properties.extend(
        [("seconds", round(elapsed, 3)), ("bound_seconds", round(bound, 3)), ("listing_requests", len(sent))]
    )
    assert error is not None, "an endless listing ended by itself"
    assert type(error) is FineTuningApiError, repr(error)
    assert f"more after max_pages={defaults.MAX_PAGES} pages" in str(error)
    assert API_KEY not in str(error)
    assert len(sent) <= defaults.MAX_PAGES + 1
    assert len(sent) == defaults.MAX_PAGES
    assert len(ids) == len(set(ids)) == defaults.MAX_PAGES - 1
    assert elapsed <= bound


# -- the cleanup refuses early ----------------------------------------------------------------------------------------

MAX_JOBS = 3
OLDER_THAN = timedelta(hours=1)


@pytest.mark.parametrize(
    "vendor",
    [
        pytest.param(
            vendor,
            marks=pytest.mark.reliability(
                area=AREA,
                row="cleanup-endless-fresh",
                column=f"cleanup (max_jobs {MAX_JOBS})",
                vendor=vendor,
                label="`fresh` listing of stale running jobs, without end",
                expect="refused after the first page, nothing cancelled",
            ),
        )
        for vendor in VENDORS
    ],
)
def test_cleanup_refuses_an_endless_listing_early(
    request: pytest.FixtureRequest,
    emulator: FineTuningEmulator,
    make_connection: ConnectionFactory,
    vendor: str,
) -> None:
    # The endless pages hold running jobs submitted a day before the emulated now: stale for older_than=1 h, as long
    # as the session's emulated clock was not advanced by most of a day (other tests advance it by a few hours).
    skew = emulator.now() - time.time()
    assert SPECIMEN_AGE - skew > 2 * OLDER_THAN.total_seconds(), f"the emulated clock runs {skew:.0f} s ahead"
    conn_id = make_connection(f"ft_cleanup_endless_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), **EXTRAS)
    emulator.inject(endless("fresh"))
    operator = CleanupFineTuningJobsOperator(
        task_id="cleanup", conn_id=conn_id, older_than=OLDER_THAN, max_jobs=MAX_JOBS
    )
    run = Run()
    started = time.monotonic()
    with pytest.raises(FineTuningError) as raised:
        run.execute(operator)
    elapsed = time.monotonic() - started
    sent = listing_requests(emulator, vendor)
    request.node.user_properties.extend([("seconds", round(elapsed, 3)), ("listing_requests", len(sent))])
    error = raised.value
    assert type(error) is FineTuningError, repr(error)
    assert f"more than max_jobs={MAX_JOBS} matched (listing stopped after {MAX_JOBS + 1} jobs)" in str(error)
    assert "none was touched" in str(error)
    assert API_KEY not in str(error)
    assert len(sent) == 1, "the fourth match is on the first page: no second page is read"
    assert mutating(emulator.requests) == [], "no cancel request sent"
    summary = run.ti.xcoms[CLEANUP_SUMMARY_XCOM_KEY]
    assert (summary["seen"], summary["matched"], summary["acted"], summary["skipped"]) == (
        MAX_JOBS + 1,
        MAX_JOBS + 1,
        0,
        MAX_JOBS + 1,
    )
    assert elapsed <= request_bound(operator.hook.settings) + SLACK_SECONDS
