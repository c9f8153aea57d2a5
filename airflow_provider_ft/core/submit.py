"""Making a job or a file exactly once: look first, send without blind retries, look again after a lost answer.

No vendor takes an idempotency key, so what was made is found again by what it carries: a job its task instance's
identity (OpenAI ``metadata``, DashScope ``job_name``, Azure OpenAI and Together AI ``suffix``), a file its content
hash (in its name or its description). The rules:

1. Look before making: what a retry, a cleared task or a lost answer made is used again.
2. Send the create once (the transport does not retry it). A clear refusal (a 4xx other than 408, 409 and 429,
   or a 2xx whose body carries an error code that is no passing condition) is final; anything else (no answer, a
   timeout, 5xx, 408, 409, 429, a success answer that cannot be read) may have made the thing, so look again
   after each of ``settle_delays`` before sending again.
3. Several jobs for one identity (two tries that raced, or a job listed too late): the oldest is kept, the others
   are cancelled, and every try picks the same one.

Every function here is an operation of ``core.operations`` (data in, requests out); the hook drives them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_ft._text import printable
from airflow_provider_ft.core.operations import Operation, Pages, Pause, cancel_job, find_in_listing, get_job
from airflow_provider_ft.exceptions import FineTuningApiError, JobNotFoundError, MalformedAnswerError
from airflow_provider_ft.jobs import FineTuningJob
from airflow_provider_ft.vendors.base import Dialect

if TYPE_CHECKING:
    from airflow_provider_ft.identity import TaskIdentity
    from airflow_provider_ft.vendors.wire import JobSpec, LocalFile, RemoteFile

T = TypeVar("T")
_LATEST = datetime.max.replace(tzinfo=UTC)
#: HTTP statuses of a create that may have been acted on (the server timed out, conflicted, or was overloaded).
_UNKNOWN_4XX = frozenset({408, 409, 429})


@dataclass(frozen=True)
class Submission:
    """What ``submit_job`` ended with.

    :param job: the task instance's job
    :param created: whether this call's create made it (``False``: it existed, from an earlier try or a lost answer)
    :param cancelled: ids of duplicate jobs of the same identity that were cancelled
    """

    job: FineTuningJob
    created: bool
    cancelled: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Listing:
    """How the account is listed: jobs per page, the most pages, and the log of the caller."""

    page_size: int
    max_pages: int
    tries: int
    log: logging.Logger | Any


def may_have_acted(error: FineTuningApiError) -> bool:
    """Whether a failed create may still have made its job or file (so it must be looked for before a new one)."""
    if isinstance(error, MalformedAnswerError):
        return True
    status = error.http_status
    if 200 <= status < 300 and error.vendor_code:  # a 2xx body with an error code: DashScope's envelope, or
        return error.retryable or error.rate_limited  # its failed_uploads; a clear refusal unless it may pass
    return not 400 <= status < 500 or status in _UNKNOWN_4XX


def submit_job(
    dialect: Dialect,
    spec: JobSpec,
    identity: TaskIdentity,
    listing: Listing,
    settle_delays: Sequence[float],
    *,
    prepare: Callable[[JobSpec], JobSpec] | None = None,
    remembered: str | None = None,
    on_created: Callable[[FineTuningJob], None] | None = None,
    final: tuple[type[FineTuningApiError], ...] = (),
) -> Operation[Submission]:
    """The job of ``identity``: the one an earlier try recorded (``remembered``), or found by its identity, or else
    created once. See the module's rules. Every argument is checked before any request.

    ``prepare`` (uploading the files, say) runs only when a job is to be created, once, and gives the spec sent;
    ``on_created`` gets the job as soon as the create is answered (before duplicates are looked for), to record it;
    a create refused with one of ``final`` raises that refusal at once, for the caller to handle.
    """
    dialect.create_job(spec, identity)
    log = listing.log
    if remembered is not None:
        recorded = yield from remembered_job(dialect, remembered, identity, log)
        if recorded is not None:
            return Submission(recorded, created=False)
    cancelled: list[str] = []
    sent: list[JobSpec] = []

    def look() -> Operation[FineTuningJob | None]:
        return (yield from keep_oldest(dialect, (yield from jobs_of(dialect, spec, identity, listing)), cancelled, log))

    def build() -> None:
        sent.append(prepare(spec) if prepare else spec)

    def create() -> Operation[FineTuningJob]:
        job = dialect.parse_job((yield dialect.create_job(sent[0], identity)))
        log.info("Created %s job %s for %s", dialect.display_name, job.id, identity.describe())
        if on_created is not None:
            on_created(job)
        tagged = yield from jobs_of(dialect, spec, identity, listing)
        if not dialect.carries_identity(job, identity) and job.id not in {other.id for other in tagged}:
            _warn_untagged(dialect, job, identity, log)
        winner = yield from keep_oldest(dialect, [job, *tagged], cancelled, log)
        return winner or job

    what = f"{dialect.display_name} job for {identity.describe()}"
    job, created = yield from make_once(
        what, look, create, settle_delays, listing, before=build, final=final, found="from an earlier try"
    )
    return Submission(job, created and job.id not in cancelled, cancelled)


def remembered_job(dialect: Dialect, job_id: str, identity: TaskIdentity, log: Any) -> Operation[FineTuningJob | None]:
    """The job an earlier try of ``identity`` recorded, read from the vendor; ``None`` if the vendor has no such job.

    The record was written for this vendor and identity (the caller checks), so the job is the one that try made
    and is used whatever its state, as a job found by its identity is. It need not carry the identity: the record
    is what finds a job whose vendor dropped the tag.
    """
    try:
        job = yield from get_job(dialect, job_id)
    except JobNotFoundError:
        log.warning(
            "The %s job %s recorded by an earlier try no longer exists; looking for the job of %s",
            dialect.display_name,
            job_id,
            identity.describe(),
        )
        return None
    log.info("Found the %s job %s recorded by an earlier try; using it", dialect.display_name, job.id)
    return job


def jobs_of(
    dialect: Dialect, spec: JobSpec, identity: TaskIdentity, listing: Listing
) -> Operation[list[FineTuningJob]]:
    """Every job that carries ``identity``, oldest first (each listed job is checked: a gateway may not filter)."""
    filters = dialect.identity_filters(spec, identity)
    trail = Pages(f"{dialect.display_name} jobs", listing.max_pages)

    def page(cursor: str | None) -> Operation[tuple[list[FineTuningJob], str | None]]:
        found = dialect.parse_page(
            (yield dialect.list_page(cursor, listing.page_size, filters)), cursor, listing.page_size
        )
        return found.jobs, found.next_cursor

    tagged = yield from find_in_listing(trail, page, _job_id, lambda job: dialect.carries_identity(job, identity))
    return sorted(tagged, key=_age)


def upload_file(
    dialect: Dialect, source: LocalFile, listing: Listing, settle_delays: Sequence[float]
) -> Operation[tuple[RemoteFile, bool]]:
    """The vendor's copy of ``source`` and whether this call uploaded it (``False``: an identical one was found)."""
    request = dialect.upload_file(source)
    size = dialect.files_page_size

    def page(cursor: str | None) -> Operation[tuple[list[RemoteFile], str | None]]:
        found = dialect.parse_files_page((yield dialect.files_page(cursor, size)), cursor, size)
        return found.files, found.next_cursor

    def look() -> Operation[RemoteFile | None]:
        trail = Pages(f"{dialect.display_name} files", listing.max_pages, item="file")
        found = yield from find_in_listing(
            trail, page, _file_id, lambda remote: dialect.is_upload_of(remote, source), first=True
        )
        return found[0] if found else None

    def upload() -> Operation[RemoteFile]:
        return dialect.parse_upload((yield request))

    what = f"upload of {source.stored_name}"
    found = "with the same content at the vendor (its content hash)"
    return (yield from make_once(what, look, upload, settle_delays, listing, found=found))


def make_once(
    what: str,
    look: Callable[[], Operation[T | None]],
    make: Callable[[], Operation[T]],
    settle_delays: Sequence[float],
    listing: Listing,
    *,
    found: str,
    before: Callable[[], None] | None = None,
    final: tuple[type[FineTuningApiError], ...] = (),
) -> Operation[tuple[T, bool]]:
    """What ``look`` finds, else what ``make`` makes (``True``), trying ``make`` again only after every look of
    ``settle_delays`` found nothing, and at most ``listing.tries`` times.

    ``before`` (uploading a job's files, say) runs once, after the first look found nothing and before the first
    ``make``; its errors are raised as they are: nothing of this ``make`` was sent, so there is nothing to look for.
    A refusal of a class in ``final`` is raised as it is, at once: the caller takes it over. ``found`` says where a
    thing found by the first look came from, for the log."""
    log = listing.log
    existing = yield from look()
    if existing is not None:
        log.info("Found the %s %s; using it", what, found)
        return existing, False
    if before is not None:
        before()
    for attempt in range(1, listing.tries + 1):
        try:
            return (yield from make()), True
        except FineTuningApiError as error:
            if isinstance(error, final) or not may_have_acted(error):
                raise
            log.warning(
                "The %s got no usable answer (try %d of %d: %s); looking for it before trying again",
                what,
                attempt,
                listing.tries,
                printable(error, 300),
            )
            last = error
        for delay in settle_delays:
            yield Pause(delay)
            existing = yield from look()
            if existing is not None:
                log.info("The %s was made after all; using it", what)
                return existing, False
    raise FineTuningApiError(
        f"Gave up on the {what}: {listing.tries} tries got no usable answer and nothing was made; last error: {last}",
        http_status=last.http_status,
        vendor_code=last.vendor_code,
        request_id=last.request_id,
    )


def keep_oldest(
    dialect: Dialect, jobs: list[FineTuningJob], cancelled: list[str], log: Any
) -> Operation[FineTuningJob | None]:
    """The oldest of ``jobs`` (by creation time, then id: every try picks the same); the others are cancelled."""
    unique = sorted({job.id: job for job in jobs}.values(), key=_age)
    if not unique:
        return None
    winner, *others = unique
    for duplicate in others:
        if duplicate.id in cancelled:
            continue
        log.warning("Job %s duplicates job %s (same task instance); cancelling it", duplicate.id, winner.id)
        yield from cancel_job(dialect, duplicate.id)
        cancelled.append(duplicate.id)
    return winner


def _warn_untagged(dialect: Dialect, job: FineTuningJob, identity: TaskIdentity, log: Any) -> None:
    """The vendor dropped the identity tag: a later try could not find this job, so say so where users look."""
    log.warning(
        "%s job %s does not carry the identity %s and is not listed under it: the vendor did not keep the tag, "
        "so a retry of this task could not find this job and would start another; cancel it by hand if that happens",
        dialect.display_name,
        job.id,
        identity.tag,
    )


def _age(job: FineTuningJob) -> tuple[datetime, str]:
    return job.created_at or _LATEST, job.id


def _job_id(job: FineTuningJob) -> str:
    return job.id


def _file_id(remote: RemoteFile) -> str:
    return remote.id


__all__ = ["Listing", "Submission", "jobs_of", "make_once", "may_have_acted", "submit_job", "upload_file"]
