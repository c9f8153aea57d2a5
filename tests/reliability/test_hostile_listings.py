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
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft import defaults
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningError, MalformedAnswerError
from airflow_provider_ft.hooks._transport import ClientSettings
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.operators.create import CreateFineTuningJobOperator
from airflow_provider_ft.operators.fine_tuning import CLEANUP_SUMMARY_XCOM_KEY, CleanupFineTuningJobsOperator
from airflow_provider_ft_emulator import Fault, FineTuningEmulator, RecordedRequest
from airflow_provider_ft_emulator.specimens import LISTING_PATHS, SPECIMEN_AGE
from tests.conftest import API_KEY, CONN_TYPES, ConnectionFactory
from tests.operators.conftest import Run, mutating
from tests.reliability import lifecycle

VENDORS = ("dashscope", "openai", "azure")
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
            "azure": Ending(FineTuningApiError, "a second time", 3, "repeated cursor"),
        },
    ),
    EndlessCase(
        "same",
        "the same page again and again",
        {
            "dashscope": Ending(FineTuningApiError, "brought no job not seen before", 2, "no new job"),
            "openai": Ending(FineTuningApiError, "a second time", 2, "repeated cursor"),
            "azure": Ending(FineTuningApiError, "a second time", 2, "repeated cursor"),
        },
    ),
    EndlessCase(
        "total",
        "DashScope `total` of 10^12 (OpenAI has none: fresh pages)",
        {
            "dashscope": Ending(MalformedAnswerError, "'total' is 1000000000000 (number)", 1, "impossible total"),
            "openai": AT_MAX_PAGES,
            "azure": AT_MAX_PAGES,
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
        display = {"dashscope": "DashScope", "openai": "OpenAI", "azure": "Azure OpenAI", "together": "Together AI"}[
            vendor
        ]
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


# -- the files listing: the look before an upload ---------------------------------------------------------------------
#
# ``upload_file`` lists the account's files to find an identical earlier upload before it sends one. A listing that
# cannot be read to its end must end in one error, within ``max_pages`` listing requests, and no upload may follow
# it: a look that failed is not a look that found nothing.

FILES_COLUMN = f"upload_file's look (max_pages {MAX_PAGES})"
CREATE_COLUMN = f"create operator (max_pages {MAX_PAGES})"


def fresh_pages(vendor: str, count: int) -> list[Fault]:
    """``count`` pages, each of one file not seen before and promising more (one fault a page, in order)."""
    return [
        Fault(
            kind="body",
            method="GET",
            path=lifecycle.FILES_PATH,
            body=lifecycle.files_page(
                vendor, [lifecycle.file_entry(vendor, f"file-fresh{index:06d}")], more=True, page_no=index + 1
            ),
        )
        for index in range(count)
    ]


def same_page(vendor: str) -> list[Fault]:
    entries = [lifecycle.file_entry(vendor, f"file-same{index}") for index in range(2)]
    body = lifecycle.files_page(vendor, entries, more=True)
    return [Fault(kind="body", method="GET", path=lifecycle.FILES_PATH, body=body, times=ALWAYS)]


def one_page(body: Any) -> Any:
    def faults(vendor: str) -> list[Fault]:
        return [Fault(kind="body", method="GET", path=lifecycle.FILES_PATH, body=body(vendor), times=ALWAYS)]

    return faults


def empty_page_claiming_more(vendor: str) -> bytes:
    return lifecycle.files_page(vendor, [], more=True)


def non_objects(vendor: str) -> bytes:
    return lifecycle.files_page(vendor, [None, 1, "file-x", [], True], more=True)


def impossible_total(vendor: str) -> bytes:
    return lifecycle.files_page(vendor, [lifecycle.file_entry(vendor, "file-one")], more=True, total=10**12)


AT_MAX_PAGES_FILES = Ending(FineTuningApiError, f"more after max_pages={MAX_PAGES} pages", MAX_PAGES, "max_pages")


@dataclass(frozen=True)
class FilesCase:
    id: str
    label: str
    faults: Any
    endings: dict[str, Ending]


FILES_CASES = [
    FilesCase(
        "files-fresh",
        "files: a new file on every page, more always promised",
        lambda v: fresh_pages(v, MAX_PAGES + 2),
        {v: AT_MAX_PAGES_FILES for v in VENDORS},
    ),
    FilesCase(
        "files-same",
        "files: the same page again and again (OpenAI: the same cursor)",
        same_page,
        {
            # page numbers are the client's own and advance, but the page brings no file not seen before
            "dashscope": Ending(FineTuningApiError, "brought no file not seen before", 2, "no new file"),
            "openai": Ending(FineTuningApiError, "a second time", 2, "repeated cursor"),
            "azure": Ending(FineTuningApiError, "a second time", 2, "repeated cursor"),
        },
    ),
    FilesCase(
        "files-empty-claiming-more",
        "files: an empty page that says more follow",
        one_page(empty_page_claiming_more),
        {
            v: Ending(MalformedAnswerError, "holds no entry but says more follow", 1, "empty page, more promised")
            for v in VENDORS
        },
    ),
    FilesCase(
        "files-non-objects",
        "files: a page of values that are not files",
        one_page(non_objects),
        {v: Ending(MalformedAnswerError, "not a JSON object", 1, "entries not objects") for v in VENDORS},
    ),
    FilesCase(
        "files-total",
        "files: DashScope `total` of 10^12",
        one_page(impossible_total),
        {"dashscope": Ending(MalformedAnswerError, "'total' is 1000000000000", 1, "impossible total")},
    ),
]


def files_cases(column: str, rows: list[FilesCase]) -> list[Any]:
    return [
        pytest.param(
            case,
            vendor,
            case.endings[vendor],
            id=f"{case.id}-{vendor}",
            marks=pytest.mark.reliability(
                area=AREA,
                row=case.id if column == FILES_COLUMN else f"create-operator-{case.id}",
                column=column,
                vendor=vendor,
                label=case.label if column == FILES_COLUMN else f"{case.label}, before the create operator's upload",
                expect=f"{case.endings[vendor].describe()}, no upload"
                + ("" if column == FILES_COLUMN else ", no create"),
            ),
        )
        for case in rows
        for vendor in VENDORS
        if vendor in case.endings
    ]


def check_files_ending(error: BaseException, ending: Ending, emulator: FineTuningEmulator, vendor: str) -> None:
    assert type(error) is ending.error, f"expected {ending.error.__name__}, got {error!r}"
    assert ending.says in str(error), f"{ending.says!r} not in {str(error)!r}"
    assert API_KEY not in str(error)
    listed = lifecycle.file_listings(emulator)
    assert len(listed) <= MAX_PAGES
    assert len(listed) == ending.requests, f"{len(listed)} files listing requests"
    assert lifecycle.uploads(emulator) == [], "no upload after a look that could not be read"
    assert emulator.files(vendor) == []


@pytest.mark.parametrize(("case", "vendor", "ending"), files_cases(FILES_COLUMN, FILES_CASES))
def test_a_files_listing_that_cannot_be_read_ends_and_uploads_nothing(
    emulator: FineTuningEmulator,
    make_connection: ConnectionFactory,
    tmp_path: Path,
    case: FilesCase,
    vendor: str,
    ending: Ending,
) -> None:
    conn_id = make_connection(f"ft_files_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), **EXTRAS)
    for fault in case.faults(vendor):
        emulator.inject(fault)
    with closing(FineTuningHook(conn_id)) as hook:
        assert hook.settings.max_pages == MAX_PAGES
        local = hook.check_training_file(lifecycle.write_training_file(tmp_path), lifecycle.spec_for(vendor))
        with pytest.raises(FineTuningError) as raised:
            hook.upload_file(local, settle_delays=(0.0,))
    check_files_ending(raised.value, ending, emulator, vendor)
    assert len(emulator.requests) == ending.requests, "nothing but the listing was requested"


@pytest.mark.parametrize(("case", "vendor", "ending"), files_cases(CREATE_COLUMN, [FILES_CASES[0], FILES_CASES[2]]))
def test_the_create_operator_stops_at_a_files_listing_that_cannot_be_read(
    emulator: FineTuningEmulator,
    make_connection: ConnectionFactory,
    tmp_path: Path,
    case: FilesCase,
    vendor: str,
    ending: Ending,
) -> None:
    # The upload is the create's preparation: its failure is raised as it is, not taken for a create that may have
    # made the job (which would look for the job and read the whole listing again, max_retries + 1 times).
    conn_id = make_connection(f"ft_files_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), **EXTRAS)
    for fault in case.faults(vendor):
        emulator.inject(fault)
    operator = CreateFineTuningJobOperator(
        task_id="train",
        conn_id=conn_id,
        model=lifecycle.MODELS[vendor],
        training_file=lifecycle.write_training_file(tmp_path),
        settle_delays=(0.0,),
        log_events=False,
        wait_for_completion=False,  # a failing case must not wait for a job
    )
    with pytest.raises(FineTuningError) as raised:
        operator.execute({"ti": lifecycle.task_instance()})
    check_files_ending(raised.value, ending, emulator, vendor)
    assert len(lifecycle.job_listings(emulator, vendor)) == 1, "the job was looked for once, before the upload"
    assert [request for request in emulator.requests if request.method != "GET"] == [], "no upload, no create"
    assert emulator.jobs(vendor) == []
