"""Scenarios 2b and 5b: a component frozen (``kill -STOP`` of its whole process group) long enough for Airflow to
hand its work to another, then resumed (``kill -CONT``), as a paused VM, a swap storm or a long collection would.

- **Triggerer freeze**: the triggerer holding 2 deferrable create tasks' and 2 deferrable sensors' triggers (all
  ``cancel_on_kill``, DashScope and OpenAI) is frozen for 25 s; the other takes the triggers over once its heartbeat
  is stale. Resumed, Airflow 3.3.2's runner cancels the triggers it lost "by user action" and calls ``on_kill``,
  which reads the task instance's state, finds it still ``deferred`` and leaves every job running. The tasks succeed
  when their jobs do. Then a user marks the tasks of a new run failed, with the recovered triggerer holding their
  triggers: every job is cancelled, once.
- **Worker freeze**: the Celery workers running 2 non-deferrable create tasks (``cancel_on_kill``, ``retries=1``)
  are frozen past the heartbeat timeout; the scheduler fails the tries, and the retries (on a spare worker) re-attach
  to the jobs. Resumed, each old try's supervisor is told it no longer runs (HTTP 410 to its heartbeat) and SIGTERMs
  the task, whose ``on_kill`` finds the retry's state and leaves the job to it. Both retries succeed.

Skipped unless ``FT_SYSTEM_TESTS=1``; the cluster is the session's.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.system.harness import HEARTBEAT_TIMEOUT_SECONDS, SPARE_WORKER, TRIGGERERS, WORKERS, wait_for
from tests.system.test_lifecycle_system import (
    DAG_SOURCE,
    JOB_SECONDS,
    MODELS,
    RUNNING,
    TASKS,
    VENDOR_OF,
    VENDORS,
    cancel_requests,
    create_requests,
    created_jobs,
    deferred_in_a_triggerer,
    mark_failed_until_cancelled,
    not_ended,
    pytestmark,
    seed_jobs,
    statuses,
    training_file,
)
from tests.system.test_worker_crash_system import CREATE_DAG, job_ids, on_try

if TYPE_CHECKING:
    from airflow_provider_ft_emulator import FineTuningEmulator
    from tests.system.harness import AirflowCluster

__all__ = ["pytestmark", "training_file"]  # the marks and the module fixture of the lifecycle scenarios

BUDGET_SECONDS = 300.0
#: How long the triggerer is frozen, as in the tracker's report (its health threshold is 8 s).
FREEZE_SECONDS = 25.0
#: What Airflow 3.3.2's triggerer logs before it calls ``on_kill``.
ON_KILL_CALLED = "Trigger cancelled by user action, invoking on_kill"
#: What ``on_kill`` logs when it keeps the job (then the reason), and when it goes on to cancel it.
KEPT = "Not cancelling fine-tuning job"
ON_KILL_ENDS = (KEPT, "(the task was killed)")


def triggerer_jobs(cluster: AirflowCluster) -> dict[str, int]:
    """The job id of each triggerer, by component."""
    return {host: job for job, host in cluster.alive_triggerers().items()}


def wait_until_held(cluster: AirflowCluster, dag_id: str, run_id: str, holder: str, job: int, deadline: float) -> None:
    """Wait until every task of the run is deferred on a trigger that the triggerer job ``job`` holds."""
    wait_for(
        f"the 4 tasks to be deferred on {holder}",
        lambda: deferred_in_a_triggerer(cluster, dag_id, run_id) == {job},
        deadline,
        cluster.all_logs,
        interval=0.2,
    )


def defer_on(
    cluster: AirflowCluster, emulator: FineTuningEmulator, dag_id: str, holder: str, deadline: float
) -> tuple[str, dict[str, str], int]:
    """Start a run whose 4 triggers all go to ``holder``: the other triggerer is frozen until they are taken, then
    resumed and alive again. (run id, every job by task id, the request count before the run)."""
    jobs_of = wait_for(
        "both triggerers to be alive",
        lambda: (found := triggerer_jobs(cluster)).keys() == set(TRIGGERERS) and found,
        deadline,
        cluster.all_logs,
    )
    other = next(name for name in TRIGGERERS if name != holder)
    seeded = seed_jobs(emulator)
    before = len(emulator.requests)
    cluster.freeze_component(other)
    try:
        run_id = cluster.trigger(dag_id, seeded)
        wait_until_held(cluster, dag_id, run_id, holder, jobs_of[holder], deadline)
    finally:
        cluster.thaw_component(other)
    wait_for(f"{other} to be alive again", lambda: other in triggerer_jobs(cluster), deadline, cluster.all_logs)
    assert create_requests(emulator, before) == Counter(VENDORS), "one create per create task"
    every_job = {TASKS[vendor]: job_id for vendor, job_id in seeded.items()} | created_jobs(cluster, dag_id, run_id)
    return run_id, every_job, before


@pytest.mark.scenario(
    "2b. Triggerer freeze and recovery",
    f"kill -STOP for {FREEZE_SECONDS:.0f} s the triggerer holding 2 deferrable create tasks' and 2 deferrable "
    "sensors' triggers (cancel_on_kill), then kill -CONT; then a user marks a new run's tasks failed",
)
def test_a_triggerer_that_recovers_from_a_freeze_cancels_nothing(
    cluster: AirflowCluster, emulator_server: FineTuningEmulator, training_file: Path, scenario_notes: list[str]
) -> None:
    deadline = time.monotonic() + BUDGET_SECONDS
    dag_id = "ft_system_triggerer_freeze"
    cluster.add_dag(dag_id, DAG_SOURCE.format(dag_id=dag_id, models=MODELS, training_file=str(training_file)), deadline)
    frozen, other = TRIGGERERS[1], TRIGGERERS[0]
    run_id, every_job, before = defer_on(cluster, emulator_server, dag_id, frozen, deadline)
    jobs_of = triggerer_jobs(cluster)

    frozen_at = time.monotonic()
    cluster.freeze_component(frozen)
    try:
        wait_until_held(cluster, dag_id, run_id, other, jobs_of[other], deadline)  # taken over
        handed_over = time.monotonic() - frozen_at
        polled_at = len(emulator_server.requests)

        def polled_again() -> bool:
            reads = [r for r in emulator_server.requests[polled_at:] if r.method == "GET"]
            return all(sum(r.path.endswith("/" + job_id) for r in reads) >= 2 for job_id in every_job.values())

        wait_for(f"{other} to poll the jobs", polled_again, deadline, cluster.all_logs, 0.2)
        time.sleep(max(frozen_at + FREEZE_SECONDS - time.monotonic(), 0.0))
    finally:
        cluster.thaw_component(frozen)
    thawed_at = time.monotonic()

    def on_kill_done() -> bool:
        logs = [cluster.task_logs(dag_id, task_id) for task_id in VENDOR_OF]
        return all(ON_KILL_CALLED in logged and any(end in logged for end in ON_KILL_ENDS) for logged in logs)

    wait_for(f"{frozen}'s on_kill to run for the 4 triggers it lost", on_kill_done, deadline, cluster.all_logs)
    judged = time.monotonic() - thawed_at
    cancels = cancel_requests(emulator_server, every_job)
    assert cancels == [], f"the recovered triggerer cancelled {len(cancels)} jobs: {cancels}"
    assert not_ended(emulator_server, {task: every_job[task] for task in every_job if task not in TASKS.values()})
    assert statuses(emulator_server, {vendor: every_job[TASKS[vendor]] for vendor in VENDORS}) == RUNNING
    for task_id, job_id in every_job.items():
        logged = cluster.task_logs(dag_id, task_id)
        assert f"{KEPT} {job_id}: the task instance is deferred" in logged, task_id

    emulator_server.advance(JOB_SECONDS)  # every job finishes: the tasks resume (from the other triggerer) and succeed
    assert cluster.wait_for_run(dag_id, run_id, deadline) == "success", cluster.task_states(dag_id, run_id)
    results = cluster.xcom_results(dag_id, run_id)
    assert {task_id: results[task_id]["id"] for task_id in every_job} == every_job
    assert {result["status"] for result in results.values()} == {"SUCCEEDED"}
    assert create_requests(emulator_server, before) == Counter(VENDORS), "a second job was created"
    assert cancel_requests(emulator_server, every_job) == []

    # A user's kill afterwards, with the recovered triggerer holding the new run's triggers, still cancels.
    killed_run, killed_jobs, _ = defer_on(cluster, emulator_server, dag_id, frozen, deadline)
    cancelled_in = mark_failed_until_cancelled(cluster, emulator_server, dag_id, killed_run, killed_jobs)
    cancels = Counter(cancel_requests(emulator_server, killed_jobs))
    assert sorted(cancels.values()) == [1] * len(killed_jobs), f"one cancel per job: {cancels}"
    for task_id, job_id in killed_jobs.items():
        logged = cluster.task_logs(dag_id, task_id)
        assert f"The task was killed (the task instance is failed); cancelling fine-tuning job {job_id}" in logged
        assert f"Cancelled fine-tuning job {job_id} (the task was killed)" in logged, task_id
    scenario_notes.append(
        f"{frozen} frozen {FREEZE_SECONDS:.0f} s; its 4 triggers taken over by {other} {handed_over:.1f} s in; "
        f"resumed, it called on_kill for all 4 within {judged:.1f} s, each read 'deferred' and kept its job: "
        f"0 cancels, all 4 tasks succeeded, 1 job per create task; then 4 tasks of a new run held by {frozen} "
        f"marked failed: 4 jobs cancelled once each, {cancelled_in:.1f} s later"
    )


def attempt_log(cluster: AirflowCluster, dag_id: str, task_id: str, attempt: int) -> str:
    """The log of one try of a task (its file ``attempt=<n>.log``)."""
    folder = cluster.home / "logs" / f"dag_id={dag_id}"
    files = sorted(folder.glob(f"run_id=*/task_id={task_id}/attempt={attempt}.log"))
    return "\n".join(path.read_text(errors="replace") for path in files)


@pytest.mark.scenario(
    "5b. Worker freeze past the heartbeat timeout",
    f"kill -STOP the Celery workers of 2 non-deferrable create tasks (cancel_on_kill, retries=1) past the "
    f"{HEARTBEAT_TIMEOUT_SECONDS} s heartbeat timeout; kill -CONT once the retries have re-attached",
)
def test_a_worker_that_recovers_from_a_freeze_leaves_the_job_to_the_retry(
    cluster: AirflowCluster, emulator: FineTuningEmulator, training_file: Path, scenario_notes: list[str]
) -> None:
    dag_id = "ft_system_worker_freeze"
    deadline = time.monotonic() + BUDGET_SECONDS
    tasks = {vendor: f"train_{vendor}" for vendor in MODELS}
    cluster.add_dag(dag_id, CREATE_DAG.format(dag_id=dag_id, models=MODELS, training_file=str(training_file)), deadline)
    run_id = cluster.trigger(dag_id)
    wait_for(
        "both tasks to wait for their jobs in a worker",
        lambda: (
            on_try(cluster, dag_id, run_id, list(tasks.values()), 1, {"running"})
            and set(cluster.xcoms(dag_id, run_id, "job_id")) == set(tasks.values())
        ),
        deadline,
        cluster.all_logs,
        0.2,
    )
    jobs = {task: str(job) for task, job in cluster.xcoms(dag_id, run_id, "job_id").items()}
    first = cluster.task_instances(dag_id, run_id)
    hosts = sorted({first[task]["hostname"] for task in tasks.values()})
    assert set(hosts) <= set(WORKERS), hosts

    frozen_at = time.monotonic()
    for host in hosts:
        cluster.freeze_component(host)
    try:
        cluster.start_component(SPARE_WORKER)  # the retries need a worker that is not frozen
        wait_for(
            "both retries to re-attach to their jobs",
            lambda: all("Re-attached to" in attempt_log(cluster, dag_id, task, 2) for task in tasks.values()),
            deadline,
            cluster.all_logs,
        )
        retried_in = time.monotonic() - frozen_at
    finally:
        for host in hosts:
            cluster.thaw_component(host)
    thawed_at = time.monotonic()
    try:

        def old_tries_stopped() -> bool:
            logs = [attempt_log(cluster, dag_id, task, 1) for task in tasks.values()]
            return all("shouldn't be running anymore" in logged and "Task killed!" in logged for logged in logs)

        wait_for("the resumed tries to be stopped by their supervisors", old_tries_stopped, deadline, cluster.all_logs)
        stopped_in = time.monotonic() - thawed_at
        old_logs = {task: attempt_log(cluster, dag_id, task, 1) for task in tasks.values()}
        cancels = [r.path for r in emulator.requests if r.method == "POST" and r.path.endswith("/cancel")]
        assert cancels == [], f"a resumed try cancelled the job its retry waits on: {cancels}"
        for task, logged in old_logs.items():
            kept = f"{KEPT} {jobs[task]}: the task instance is "
            assert kept in logged, f"{task}: on_kill did not keep the job\n{tail_of(logged)}"

        emulator.advance(JOB_SECONDS)  # both jobs finish: the retries see them end and succeed
        assert cluster.wait_for_run(dag_id, run_id, deadline) == "success", cluster.task_states(dag_id, run_id)
    finally:
        cluster.stop_component(SPARE_WORKER)
    assert {vendor: job_ids(emulator, vendor) for vendor in MODELS} == {v: [jobs[tasks[v]]] for v in MODELS}
    results = cluster.xcom_results(dag_id, run_id)
    assert {task: (results[task]["id"], results[task]["status"]) for task in tasks.values()} == {
        task: (jobs[task], "SUCCEEDED") for task in tasks.values()
    }
    retries = cluster.task_instances(dag_id, run_id)
    assert {retries[task]["try_number"] for task in tasks.values()} == {2}
    states_seen = sorted({line.split("the task instance is ", 1)[1].split(":")[0] for line in _kept(old_logs)})
    scenario_notes.append(
        f"{' and '.join(hosts)} frozen; both retries re-attached {retried_in:.0f} s later (heartbeat timeout "
        f"{HEARTBEAT_TIMEOUT_SECONDS} s); resumed, both old tries were SIGTERMed by their supervisors within "
        f"{stopped_in:.1f} s and on_kill read the retry's state ({', '.join(states_seen)}): 0 cancels, "
        "1 job per vendor, both retries succeeded"
    )


def _kept(logs: dict[str, str]) -> list[str]:
    return [line for logged in logs.values() for line in logged.splitlines() if KEPT in line]


def tail_of(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])
