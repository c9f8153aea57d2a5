"""What the Fine-tuning page shows, from what was read: rows, filters, paging, totals and who may do what.

Pure: the listings, the task instances and the user's permissions come in as data; no Airflow, no I/O.

Who sees what: a user sees every job of a connection they may read, and, on the other connections, the jobs created
by a DAG they may read (a task's job is part of what its DAG shows). Only a user who may edit a connection may act on
its jobs.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from airflow_provider_ft.jobs import FineTuningJob, JobStatus
from airflow_provider_ft.ui.catalog import ConnectionJobs
from airflow_provider_ft.ui.provenance import Provenance, TaskRecord, is_orphan, provenance
from airflow_provider_ft.ui.records import JobRef

PAGE_SIZE = 50
#: The status filter's words beyond the statuses themselves.
ACTIVE, ORPHANS = "active", "orphans"
#: The age filter's choices: the label and the longest age.
AGES: Mapping[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


@dataclass(frozen=True)
class Permissions:
    """What one user may do.

    :param readable_connections: connection ids they may read
    :param editable_connections: connection ids they may edit (act on their jobs)
    :param readable_dags: DAG ids they may read
    """

    readable_connections: frozenset[str]
    editable_connections: frozenset[str]
    readable_dags: frozenset[str]

    def with_readable(self, conn_id: str) -> Permissions:
        """These permissions, with ``conn_id`` readable too."""
        return Permissions(self.readable_connections | {conn_id}, self.editable_connections, self.readable_dags)

    def sees(self, conn_id: str, creator: TaskRecord | None) -> bool:
        return conn_id in self.readable_connections or (creator is not None and creator.dag_id in self.readable_dags)


@dataclass(frozen=True)
class Filters:
    """The page's filters (``None``: any).

    :param conn_id: one connection
    :param status: a ``JobStatus`` name, ``active`` (not terminal) or ``orphans``
    :param age: a key of ``AGES``: created at most that long ago
    :param page: 1-based page number
    """

    conn_id: str | None = None
    status: str | None = None
    age: str | None = None
    page: int = 1

    @classmethod
    def parse(cls, conn_id: str | None, status: str | None, age: str | None, page: int | None) -> Filters:
        """Filters from query parameters; an unknown status or age is ignored (shown unfiltered), never an error."""
        word = (status or "").strip()
        if word.lower() in (ACTIVE, ORPHANS):
            status = word.lower()
        else:
            status = word.upper() if word.upper() in JobStatus.__members__ else None
        return cls(
            conn_id=conn_id or None,
            status=status,
            age=age if age in AGES else None,
            page=max(1, page or 1),
        )


@dataclass(frozen=True)
class JobRow:
    """One job on the page.

    :param conn_id: its connection
    :param vendor: the vendor's display name
    :param job: the job
    :param origin: where it came from
    :param orphan: it still runs and no task of this Airflow waits on it
    :param cost: its estimated cost where the connection gives a price and the vendor the trained tokens
    :param can_act: the user may cancel, pause or resume it
    """

    conn_id: str
    vendor: str
    job: FineTuningJob
    origin: Provenance
    orphan: bool
    cost: float | None
    can_act: bool


@dataclass(frozen=True)
class ConnectionSummary:
    """One connection's line above the table.

    :param listing: what was listed (its error, if any)
    :param shown: jobs of it the user sees
    :param orphans: how many of them are orphans
    :param cost: the sum of their known costs, ``None`` where the connection gives no price
    :param unpriced: how many of them have no known cost although the connection gives a price
    """

    listing: ConnectionJobs
    shown: int
    orphans: int
    cost: float | None
    unpriced: int


@dataclass(frozen=True)
class Page:
    """The whole page: summaries of every connection, and one page of the filtered rows.

    :param summaries: per connection, in id order
    :param rows: this page's rows, newest first
    :param total: rows after filtering
    :param filters: the filters applied
    """

    summaries: tuple[ConnectionSummary, ...]
    rows: tuple[JobRow, ...]
    total: int
    filters: Filters

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / PAGE_SIZE))


def job_rows(
    listings: Iterable[ConnectionJobs],
    tasks: Mapping[str, TaskRecord],
    watched: Collection[JobRef],
    permissions: Permissions,
) -> tuple[list[JobRow], list[ConnectionSummary]]:
    """Every row the user may see, and each connection's summary."""
    rows: list[JobRow] = []
    summaries: list[ConnectionSummary] = []
    for listing in listings:
        watched_ids = {ref.job_id for ref in watched if ref.conn_id == listing.conn_id}
        mine = [_row(listing, job, tasks, watched_ids, permissions) for job in listing.jobs]
        seen = [row for row in mine if permissions.sees(listing.conn_id, row.origin.creator)]
        if not seen and listing.conn_id not in permissions.readable_connections:
            continue  # a connection the user may not read, with no job of theirs: not even its name is shown
        rows.extend(seen)
        summaries.append(_summary(listing, seen))
    return rows, summaries


def page_of(rows: list[JobRow], summaries: list[ConnectionSummary], filters: Filters, now: datetime) -> Page:
    """One page of the rows that pass ``filters``, newest first."""
    kept = sorted((row for row in rows if _passes(row, filters, now)), key=_newest_first)
    start = (filters.page - 1) * PAGE_SIZE
    return Page(tuple(summaries), tuple(kept[start : start + PAGE_SIZE]), len(kept), filters)


def creator_link(creator: TaskRecord) -> str:
    """The task instance's page in Airflow's UI (a path from the site's root)."""
    from urllib.parse import quote

    path = f"/dags/{quote(creator.dag_id, safe='')}/runs/{quote(creator.run_id, safe='')}"
    path += f"/tasks/{quote(creator.task_id, safe='')}"
    return path + (f"/mapped/{creator.map_index}" if creator.map_index >= 0 else "")


def _row(
    listing: ConnectionJobs,
    job: FineTuningJob,
    tasks: Mapping[str, TaskRecord],
    watched_ids: Collection[str],
    permissions: Permissions,
) -> JobRow:
    return job_row(listing, job, provenance(job, listing.namespace, tasks, watched_ids), permissions)


def job_row(listing: ConnectionJobs, job: FineTuningJob, origin: Provenance, permissions: Permissions) -> JobRow:
    """What the page shows of ``job`` of the connection ``listing`` reads, given where it came from."""
    return JobRow(
        conn_id=listing.conn_id,
        vendor=listing.vendor,
        job=job,
        origin=origin,
        orphan=is_orphan(job, origin),
        cost=listing.price.cost_of(job.trained_tokens) if listing.price is not None else None,
        can_act=listing.conn_id in permissions.editable_connections,
    )


def _summary(listing: ConnectionJobs, rows: list[JobRow]) -> ConnectionSummary:
    from airflow_provider_ft.cost import total_cost

    cost, unpriced = total_cost(row.cost for row in rows) if listing.price is not None else (None, 0)
    return ConnectionSummary(listing, len(rows), sum(row.orphan for row in rows), cost, unpriced)


def _passes(row: JobRow, filters: Filters, now: datetime) -> bool:
    if filters.conn_id is not None and row.conn_id != filters.conn_id:
        return False
    if filters.age is not None:
        created = row.job.created_at
        if created is None or now - created > AGES[filters.age]:
            return False
    if filters.status == ORPHANS:
        return row.orphan
    if filters.status == ACTIVE:
        return not row.job.is_terminal
    return filters.status is None or row.job.status.value == filters.status


def _newest_first(row: JobRow) -> tuple[bool, float]:
    created = row.job.created_at
    return (created is None, -created.timestamp() if created is not None else 0.0)
