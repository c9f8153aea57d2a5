"""Making a job or a file exactly once: look first, send without blind retries, look again after a lost answer.

Neither vendor takes an idempotency key, so what was made is found again by what it carries: a job its task
instance's identity (OpenAI ``metadata``, DashScope ``job_name``), a file its content hash (in its name or its
description). The rules:

1. Look before making: what a retry, a cleared task or a lost answer made is used again. A job id the task
   instance remembered (Airflow 3.3's task state store) is read first, with one request; only when there is none,
   or the vendor no longer has that job, are the jobs listed for the identity.
2. Send the create once (the transport does not retry it). A clear refusal (a 4xx other than 408, 409 and 429,
   or a 2xx whose body carries an error code that is no passing condition) is final; anything else (no answer, a
   timeout, 5xx, 408, 409, 429, a success answer that cannot be read) may have made the thing, so look again
   after each of ``settle_delays`` before sending again. A caller may take some refusals over (``final``): the
   account's job limit, when the task waits for room; it calls again, and the look comes first again.
3. Several jobs for one identity (two tries that raced, or a job listed too late): the oldest is kept, the others
   are cancelled, and every try picks the same one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningApiError, JobNotFoundError, MalformedAnswerError

if TYPE_CHECKING:
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
    from airflow_provider_ft.identity import TaskIdentity
    from airflow_provider_ft.jobs import FineTuningJob
    from airflow_provider_ft.vendors.wire import ApiRequest, JobSpec, LocalFile, RemoteFile

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


def may_have_acted(error: FineTuningApiError) -> bool:
    """Whether a failed create may still have made its job or file (so it must be looked for before a new one)."""
    if isinstance(error, MalformedAnswerError):
        return True
    status = error.http_status
    if 200 <= status < 300 and error.vendor_code:  # a 2xx body with an error code: DashScope's envelope, or
        return error.retryable or error.rate_limited  # its failed_uploads; a clear refusal unless it may pass
    return not 400 <= status < 500 or status in _UNKNOWN_4XX


def submit_job(
    hook: FineTuningHook,
    spec: JobSpec,
    identity: TaskIdentity,
    settle_delays: Sequence[float],
    prepare: Callable[[JobSpec], JobSpec] | None = None,
    remembered: str | None = None,
    on_created: Callable[[FineTuningJob], None] | None = None,
    final: tuple[type[FineTuningApiError], ...] = (),
) -> Submission:
    """The job of ``identity``: found again if it exists, else created once. See the module's rules.

    ``prepare`` (uploading the files, say) runs only when a job is to be created, once, and gives the spec sent.
    ``remembered`` is the id an earlier try recorded for ``identity``; ``on_created`` gets the job as soon as the
    create is answered (before duplicates are looked for), to record it.
    A create refused with one of ``final`` raises that refusal at once, for the caller to handle.
    """
    dialect = hook.dialect
    dialect.create_job(spec, identity)  # every argument is checked before any request
    if remembered is not None:
        recorded = remembered_job(hook, remembered, identity)
        if recorded is not None:
            return Submission(recorded, created=False)
    cancelled: list[str] = []
    requests: list[ApiRequest] = []

    def look() -> FineTuningJob | None:
        return _keep_oldest(hook, jobs_of(hook, spec, identity), cancelled)

    def build() -> None:
        requests.append(dialect.create_job(prepare(spec) if prepare else spec, identity))

    def create() -> FineTuningJob:
        job = dialect.parse_job(hook.transport.send(requests[0]))
        hook.log.info("Created %s job %s for %s", dialect.display_name, job.id, identity.describe())
        if on_created is not None:
            on_created(job)
        tagged = jobs_of(hook, spec, identity)
        if not dialect.carries_identity(job, identity) and job.id not in {other.id for other in tagged}:
            _warn_untagged(hook, job, identity)
        winner = _keep_oldest(hook, [job, *tagged], cancelled)
        return winner or job

    what = f"{dialect.display_name} job for {identity.describe()}"
    job, created = make_once(what, look, create, settle_delays, hook, before=build, final=final)
    return Submission(job, created and job.id not in cancelled, cancelled)


def remembered_job(hook: FineTuningHook, job_id: str, identity: TaskIdentity) -> FineTuningJob | None:
    """The job an earlier try of ``identity`` recorded, read from the vendor; ``None`` if the vendor has no such job.

    The record was written for this vendor and identity (the caller checks), so the job is the one that try made
    and is used whatever its state, as a job found by its identity is. It need not carry the identity: the record
    is what finds a job whose vendor dropped the tag.
    """
    try:
        job = hook.get_job(job_id)
    except JobNotFoundError:
        hook.log.warning(
            "The %s job %s recorded by an earlier try no longer exists; looking for the job of %s",
            hook.dialect.display_name,
            job_id,
            identity.describe(),
        )
        return None
    hook.log.info("Found the %s job %s recorded by an earlier try; using it", hook.dialect.display_name, job.id)
    return job


def jobs_of(hook: FineTuningHook, spec: JobSpec, identity: TaskIdentity) -> list[FineTuningJob]:
    """Every job that carries ``identity``, oldest first (each listed job is checked: a gateway may not filter)."""
    dialect = hook.dialect
    listed = hook.list_jobs(**dialect.identity_filters(spec, identity))
    return sorted((job for job in listed if dialect.carries_identity(job, identity)), key=_age)


def upload_file(hook: FineTuningHook, source: LocalFile, settle_delays: Sequence[float]) -> tuple[RemoteFile, bool]:
    """The vendor's copy of ``source`` and whether this call uploaded it (``False``: an identical one was found)."""
    dialect = hook.dialect
    request = dialect.upload_file(source)

    def look() -> RemoteFile | None:
        return next((remote for remote in files(hook) if dialect.is_upload_of(remote, source)), None)

    def upload() -> RemoteFile:
        return dialect.parse_upload(hook.transport.send(request))

    return make_once(f"upload of {source.stored_name}", look, upload, settle_delays, hook)


def files(hook: FineTuningHook) -> Iterator[RemoteFile]:
    """The account's fine-tuning files, page by page, within the connection's ``max_pages``."""
    dialect = hook.dialect
    cursor: str | None = None
    seen: set[str | None] = {None}
    for _ in range(hook.settings.max_pages):
        request = dialect.files_page(cursor, dialect.files_page_size)
        page = dialect.parse_files_page(hook.transport.send(request), cursor, dialect.files_page_size)
        yield from page.files
        if page.next_cursor is None:
            return
        if page.next_cursor in seen or not page.files:
            raise FineTuningApiError(f"Stopped listing {dialect.display_name} files: the listing does not end")
        seen.add(page.next_cursor)
        cursor = page.next_cursor
    raise FineTuningApiError(f"Stopped listing {dialect.display_name} files after max_pages pages")


def make_once(
    what: str,
    look: Callable[[], T | None],
    make: Callable[[], T],
    settle_delays: Sequence[float],
    hook: FineTuningHook,
    before: Callable[[], None] | None = None,
    final: tuple[type[FineTuningApiError], ...] = (),
) -> tuple[T, bool]:
    """What ``look`` finds, else what ``make`` makes (``True``), trying ``make`` again only after every look of
    ``settle_delays`` found nothing, and at most ``max_retries + 1`` times.

    ``before`` (uploading a job's files, say) runs once, after the first look found nothing and before the first
    ``make``; its errors are raised as they are: nothing of this ``make`` was sent, so there is nothing to look for.
    A refusal of a class in ``final`` is raised as it is, at once: the caller takes it over."""
    found = look()
    if found is not None:
        hook.log.info("Found the %s from an earlier try; using it", what)
        return found, False
    if before is not None:
        before()
    tries = hook.settings.retry.max_retries + 1
    for attempt in range(1, tries + 1):
        try:
            return make(), True
        except FineTuningApiError as error:
            if isinstance(error, final) or not may_have_acted(error):
                raise
            hook.log.warning(
                "The %s got no usable answer (try %d of %d: %s); looking for it before trying again",
                what,
                attempt,
                tries,
                printable(error, 300),
            )
            last = error
        for delay in settle_delays:
            time.sleep(delay)
            found = look()
            if found is not None:
                hook.log.info("The %s was made after all; using it", what)
                return found, False
    raise FineTuningApiError(
        f"Gave up on the {what}: {tries} tries got no usable answer and nothing was made; last error: {last}",
        http_status=last.http_status,
        vendor_code=last.vendor_code,
        request_id=last.request_id,
    )


def _warn_untagged(hook: FineTuningHook, job: FineTuningJob, identity: TaskIdentity) -> None:
    """The vendor dropped the identity tag: a later try could not find this job, so say so where users look."""
    hook.log.warning(
        "%s job %s does not carry the identity %s and is not listed under it: the vendor did not keep the tag, "
        "so a retry of this task could not find this job and would start another; cancel it by hand if that happens",
        hook.dialect.display_name,
        job.id,
        identity.tag,
    )


def _keep_oldest(hook: FineTuningHook, jobs: list[FineTuningJob], cancelled: list[str]) -> FineTuningJob | None:
    """The oldest of ``jobs`` (by creation time, then id: every try picks the same); the others are cancelled."""
    unique = sorted({job.id: job for job in jobs}.values(), key=_age)
    if not unique:
        return None
    winner, *others = unique
    for duplicate in others:
        if duplicate.id in cancelled:
            continue
        hook.log.warning("Job %s duplicates job %s (same task instance); cancelling it", duplicate.id, winner.id)
        hook.cancel_job(duplicate.id)
        cancelled.append(duplicate.id)
    return winner


def _age(job: FineTuningJob) -> tuple[datetime, str]:
    return job.created_at or _LATEST, job.id
