"""Making jobs: random ids, and jobs that were submitted some time ago and are in a given status now."""

from __future__ import annotations

import secrets
import string
from typing import Any

from airflow_provider_ft_emulator.store import FAILED_MESSAGE, Job, JobStore
from airflow_provider_ft_emulator.vocabulary import WORDS, Vendor, Vocabulary

#: Emulated seconds a job created through the API runs before it succeeds.
DEFAULT_RUN_SECONDS = 600.0
OUTCOMES = ("succeeded", "failed")

_ALNUM = string.ascii_letters + string.digits


def random_token(length: int, alphabet: str = _ALNUM) -> str:
    """Return a random string of ``length`` characters drawn from ``alphabet``."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_job(
    store: JobStore,
    vendor: Vendor,
    job_id: str,
    *,
    status: str,
    model: str,
    age: float = 0.0,
    runs_for: float | None = DEFAULT_RUN_SECONDS,
    outcome: str = "succeeded",
    name: str | None = None,
    metadata: dict[str, str] | None = None,
    error: str | None = None,
    spec: dict[str, Any] | None = None,
) -> Job:
    """Store a job that is in ``status`` now and was created ``age`` seconds ago.

    Its lifecycle timers start now: a queued job runs after :data:`~airflow_provider_ft_emulator.store.QUEUE_SECONDS`,
    a running job ends ``runs_for`` seconds from now (never when ``None``). A terminal job gets ``finished_at`` =
    created + min(age, runs_for).

    :param store: where the job is kept
    :param vendor: whose job it is
    :param job_id: its id
    :param status: the vendor's word for its status now
    :param model: the base model
    :param age: seconds since it was submitted
    :param runs_for: seconds it still runs (``None``: forever)
    :param outcome: how it ends, ``"succeeded"`` or ``"failed"``
    :param name: DashScope ``job_name``, OpenAI suffix
    :param metadata: OpenAI metadata
    :param error: the error of a failed job
    :param spec: request-side fields the vendor serialiser reads
    """
    if outcome not in OUTCOMES:
        raise ValueError("outcome must be 'succeeded' or 'failed'")
    if age < 0:
        raise ValueError("age must be >= 0")
    now = store.clock.now()
    job = Job(
        vendor=vendor,
        id=job_id,
        seq=store.next_seq(),
        status=status,
        model=model,
        created_at=now - age,
        status_since=now,
        runs_for=runs_for,
        outcome=outcome,
        name=name,
        metadata=metadata,
        error=error,
        spec=dict(spec or {}),
    )
    _seed_history(job, WORDS[vendor], age)
    job.run_seconds = _run_seconds(job, WORDS[vendor], age)
    return store.add(job)


def _run_seconds(job: Job, words: Vocabulary, age: float) -> float | None:
    """The running time of the whole run: what has run already (a running job has run since it was created,
    a finished one ran its course) plus ``runs_for``."""
    if job.runs_for is None:
        return None
    if job.status == words.running:
        return age + job.runs_for
    if job.status in words.terminal and job.finished_at is not None:
        return job.finished_at - job.created_at
    return job.runs_for


def _seed_history(job: Job, words: Vocabulary, age: float) -> None:
    if job.status not in words.terminal:
        job.history.append((job.created_at, job.status))
        return
    ran = age if job.runs_for is None else min(age, job.runs_for)
    job.finished_at = job.created_at + ran
    job.history += [(job.created_at, words.running), (job.finished_at, job.status)]
    if job.status == words.failed and job.error is None:
        job.error = FAILED_MESSAGE
