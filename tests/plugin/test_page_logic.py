"""The Fine-tuning page's pure parts: where a job came from, what is an orphan, who sees what, filters, paging, and
the loss chart's markup."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_ft.identity import TaskIdentity
from airflow_provider_ft.jobs import FineTuningJob, JobStatus
from airflow_provider_ft.loss import LossPoint
from airflow_provider_ft.ui import views
from airflow_provider_ft.ui.catalog import ConnectionJobs
from airflow_provider_ft.ui.chart import loss_chart_svg
from airflow_provider_ft.ui.provenance import Origin, TaskRecord, is_orphan, provenance, tasks_by_identity
from airflow_provider_ft.ui.records import JobRef, job_ref
from airflow_provider_ft.vendors.openai import identity_metadata

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
CREATOR = TaskRecord("train_dag", "train", "manual__1", -1, "success")


def job(job_id: str = "ftjob-1", status: JobStatus = JobStatus.RUNNING, **fields: object) -> FineTuningJob:
    fields.setdefault("created_at", NOW - timedelta(hours=1))
    return FineTuningJob(id=job_id, vendor="openai", status=status, vendor_status=status.value.lower(), **fields)  # type: ignore[arg-type]


def tagged(record: TaskRecord, namespace: str = "", **fields: object) -> FineTuningJob:
    """A job tagged as the create operator tags it on DashScope, Azure and Together (its name is the tag)."""
    return job(name=record.identity(namespace).tag, **fields)


def with_metadata(identity: TaskIdentity, **fields: object) -> FineTuningJob:
    """A job tagged as the create operator tags it on OpenAI (the key and the readable ids in metadata)."""
    return job(metadata=identity_metadata(identity), **fields)


TASKS = tasks_by_identity([CREATOR], {""})


def test_a_tagged_job_is_found_by_its_tag_and_a_metadata_job_by_its_key() -> None:
    assert provenance(tagged(CREATOR), "", TASKS).creator == CREATOR
    assert provenance(with_metadata(CREATOR.identity("")), "", TASKS).creator == CREATOR


def test_a_job_of_another_namespace_is_from_elsewhere_never_an_orphan() -> None:
    stranger = tagged(CREATOR, namespace="another-airflow")
    found = provenance(stranger, "", TASKS)
    assert found.origin is Origin.ELSEWHERE
    assert not is_orphan(stranger, found)


def test_a_job_whose_task_instance_is_gone_but_whose_key_verifies_is_an_orphan() -> None:
    deleted = TaskIdentity("deleted_dag", "train", "manual__9", -1, "")
    gone = with_metadata(deleted)
    found = provenance(gone, "", TASKS)
    assert found.origin is Origin.GONE
    assert found.creator is not None
    assert found.creator.dag_id == "deleted_dag"
    assert is_orphan(gone, found)
    assert provenance(gone, "other-namespace", TASKS).origin is Origin.ELSEWHERE, "the key verifies in its own only"


def test_a_job_without_identity_is_not_from_airflow() -> None:
    assert provenance(job(name="my-experiment"), "", TASKS).origin is Origin.NONE


@pytest.mark.parametrize(
    ("state", "orphan"),
    [
        ("running", False),
        ("deferred", False),
        ("queued", False),
        ("up_for_retry", False),
        ("success", True),
        ("failed", True),
        ("upstream_failed", True),
        (None, True),
    ],
)
def test_an_orphan_is_a_running_job_whose_creator_is_not_live(state: str | None, orphan: bool) -> None:
    record = TaskRecord("d", "t", "r", -1, state)
    running = tagged(record)
    assert is_orphan(running, provenance(running, "", tasks_by_identity([record], {""}))) is orphan


def test_a_finished_job_or_one_a_live_task_waits_on_is_no_orphan() -> None:
    done = tagged(CREATOR, status=JobStatus.SUCCEEDED)
    assert not is_orphan(done, provenance(done, "", TASKS))
    watched = tagged(CREATOR)
    assert not is_orphan(watched, provenance(watched, "", TASKS, watched_ids={watched.id}))


def listing(conn_id: str, *jobs: FineTuningJob) -> ConnectionJobs:
    return ConnectionJobs(conn_id, vendor="OpenAI", jobs=jobs)


def test_a_viewer_sees_only_the_jobs_of_dags_they_read_and_no_hidden_connection_name() -> None:
    ours, other = tagged(CREATOR, job_id="ftjob-ours"), job("ftjob-other")
    viewer = views.Permissions(frozenset(), frozenset(), frozenset({"train_dag"}))
    rows, summaries = views.job_rows(
        [listing("shared", ours, other), listing("secret", job("ftjob-s"))], TASKS, set(), viewer
    )
    assert [row.job.id for row in rows] == ["ftjob-ours"]
    assert [s.listing.conn_id for s in summaries] == ["shared"]
    assert rows[0].can_act is False


def test_an_editor_may_act_and_sees_every_job_of_a_readable_connection() -> None:
    admin = views.Permissions(frozenset({"c"}), frozenset({"c"}), frozenset())
    rows, _ = views.job_rows([listing("c", job("a"), job("b"))], {}, {JobRef("c", "a")}, admin)
    assert [(row.job.id, row.can_act, row.origin.watched) for row in rows] == [("a", True, True), ("b", True, False)]


def test_filters_pages_and_newest_first() -> None:
    admin = views.Permissions(frozenset({"c"}), frozenset(), frozenset())
    jobs = [job(f"j{n:03}", created_at=NOW - timedelta(minutes=n)) for n in range(120)]
    jobs.append(job("old", created_at=NOW - timedelta(days=3)))
    jobs.append(job("done", status=JobStatus.FAILED))
    rows, summaries = views.job_rows([listing("c", *jobs)], {}, set(), admin)

    first = views.page_of(rows, summaries, views.Filters.parse(None, None, None, 1), NOW)
    third = views.page_of(rows, summaries, views.Filters.parse(None, None, None, 3), NOW)
    recent = views.page_of(rows, summaries, views.Filters.parse(None, "Active", "24h", 1), NOW)
    failed = views.page_of(rows, summaries, views.Filters.parse("c", "failed", None, 1), NOW)
    odd = views.Filters.parse(None, "<script>", "1y", 0)

    assert first.total == 122
    assert first.pages == 3
    assert first.rows[0].job.id == "j000"
    assert len(third.rows) == 22
    assert third.rows[-1].job.id == "old"
    assert recent.total == 120
    assert [row.job.id for row in failed.rows] == ["done"]
    assert (odd.status, odd.age, odd.page) == (None, None, 1)


def test_the_creator_link_escapes_the_ids() -> None:
    record = TaskRecord("d/x", "t", "manual__2026-12-08T00:00:00+00:00", 3, "success")
    assert views.creator_link(record) == "/dags/d%2Fx/runs/manual__2026-12-08T00%3A00%3A00%2B00%3A00/tasks/t/mapped/3"


def test_job_refs_are_read_strictly() -> None:
    assert job_ref({"conn_id": "c", "job_id": "j"}) == JobRef("c", "j")
    assert job_ref('{"conn_id": "c", "job_id": "j"}') == JobRef("c", "j")
    assert job_ref({"conn_id": "c"}) is None
    assert job_ref("not json") is None
    assert job_ref(["c", "j"]) is None


def test_the_chart_draws_each_point_with_its_figures() -> None:
    points = [
        LossPoint(10, 2.0, None),
        LossPoint(20, 1.5, 1.7),
        LossPoint(30, 1.1, None),
        LossPoint(40, float("nan"), 1.2),
    ]
    svg = loss_chart_svg(points)
    train = re.findall(r'data-series="train".*?</g>', svg)[0]
    valid = re.findall(r'data-series="valid".*?</g>', svg)[0]
    assert re.findall(r'data-step="(\d+)" data-loss="([\d.]+)"', train) == [("10", "2"), ("20", "1.5"), ("30", "1.1")]
    assert re.findall(r'data-step="(\d+)"', valid) == ["20", "40"]
    ys = [float(y) for y in re.findall(r'cy="([\d.]+)"', train)]
    assert ys == sorted(ys), "a falling loss is drawn going down (SVG's y grows downward)"


def test_no_loss_no_chart_and_one_point_still_draws() -> None:
    assert loss_chart_svg([]) == ""
    assert loss_chart_svg([LossPoint(5, None, None)]) == ""
    assert 'data-step="5"' in loss_chart_svg([LossPoint(5, 0.5, None)])
