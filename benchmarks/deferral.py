"""Benchmark 5: deferral pays. Worker-slot seconds spent waiting for a 60 s job: poke vs reschedule vs deferrable.

Method. The emulator (own process) runs its clock ``time_scale`` times faster than real time, so a job seeded to
finish 60 emulated seconds later finishes after ``60 / time_scale`` real seconds. For each mode a one-task DAG
(``FineTuningJobSensor`` with ``mode="poke"``, ``mode="reschedule"`` or ``deferrable=True``, ``poke_interval`` =
10 emulated seconds) is run with ``dag.test()`` against a freshly seeded job, in a throwaway ``AIRFLOW_HOME`` with a
migrated SQLite database. ``dag.test()`` runs every try of the task in this process through
``supervisor.run_task_in_process`` and a deferred trigger in line through
``InProcessTestSupervisor.run_trigger_in_process``; both are wrapped (in this benchmark process only) to record
when each try and each trigger run started and ended. A worker slot is held exactly while a try runs, so:

- worker-slot seconds = the summed duration of the task's tries (poke: one try spanning the whole wait;
  reschedule: one short try per poke; deferrable: the first check until ``defer`` plus the resume);
- triggerer seconds = the time the trigger ran (no worker slot);
- pokes = GET requests the emulator answered for the job.

The column "for a real 60 s wait" converts to real time: in poke mode the slot is held for the whole wait, which
scales with the clock (measured x ``time_scale``, less the per-try work that does not scale); the tries of
reschedule and deferrable mode are short calls whose length does not depend on the clock: deferrable is shown as
measured, reschedule as its median try times the 7 pokes a real 60 s wait at a 10 s interval makes.

Not included: in a real deployment each try also pays a worker process start and a DAG parse (typically a second
or more), which reschedule pays once per poke and deferrable twice; the table gives the number of tries so that
cost can be added.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import allow_bytecode_cache, median, prepare_airflow_home, ratio
from benchmarks._emulator import EmulatorProcess
from benchmarks._report import Section, Table, Target, bench_main

VENDOR = "openai"
CONN_ID = "ft_bench_deferral"
JOB_SECONDS = 60.0
POKE_EMULATED = 10.0
#: Pokes a reschedule-mode sensor makes over a real 60 s wait at a 10 s interval (at 0, 10, ..., 60 s).
REAL_POKES = int(JOB_SECONDS // POKE_EMULATED) + 1
MODES = {
    "poke": {"mode": "poke", "deferrable": False},
    "reschedule": {"mode": "reschedule", "deferrable": False},
    "deferrable": {"deferrable": True},
}

DAG_FILE = """
from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_ft.sensors.fine_tuning import FineTuningJobSensor

for mode, options in {modes!r}.items():
    with DAG(
        f"ft_bench_wait_{{mode}}",
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        params={{"job_id": Param("", type="string")}},
        default_args={{"retries": 0}},
    ) as dag:
        FineTuningJobSensor(
            task_id="wait",
            job_id="{{{{ params.job_id }}}}",
            conn_id={conn_id!r},
            poke_interval={poke_interval!r},
            timeout=600,
            **options,
        )
    globals()[f"dag_{{mode}}"] = dag
"""


@dataclass
class Span:
    kind: str  # "try" or "trigger"
    seconds: float


@dataclass
class ModeResult:
    mode: str
    state: str
    wall: float
    tries: list[float]
    triggers: list[float]
    pokes: int

    @property
    def slot_seconds(self) -> float:
        return sum(self.tries)


@contextmanager
def recording(spans: list[Span]) -> Iterator[None]:
    """Record every task try and every in-line trigger run ``dag.test()`` makes."""
    from airflow.sdk.execution_time import supervisor as module

    supervisor: Any = module  # patched for this process only, restored on exit
    run_task, run_trigger = supervisor.run_task_in_process, supervisor.InProcessTestSupervisor.run_trigger_in_process

    def timed_task(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return run_task(*args, **kwargs)
        finally:
            spans.append(Span("try", time.perf_counter() - started))

    def timed_trigger(cls: Any, /, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return run_trigger(**kwargs)
        finally:
            spans.append(Span("trigger", time.perf_counter() - started))

    supervisor.run_task_in_process = timed_task
    supervisor.InProcessTestSupervisor.run_trigger_in_process = classmethod(timed_trigger)
    try:
        yield
    finally:
        supervisor.run_task_in_process = run_task
        supervisor.InProcessTestSupervisor.run_trigger_in_process = run_trigger


def migrate_database() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, timeout=600)
    return time.perf_counter() - started


def load_dags(home: Path, poke_interval: float) -> Any:
    path = home / "dags" / "ft_bench_deferral.py"
    path.write_text(DAG_FILE.format(modes=MODES, conn_id=CONN_ID, poke_interval=poke_interval))
    spec = importlib.util.spec_from_file_location("ft_bench_deferral_dags", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def warm_up(emulator: EmulatorProcess, dags: Any) -> None:
    """Run every DAG once against a finished job: first-run costs (DAG sync, imports) are not the wait's."""
    for mode in MODES:
        emulator.reset()
        [job_id] = emulator.seed_jobs(VENDOR, 1, status="succeeded", age=120.0)
        getattr(dags, f"dag_{mode}").test(run_conf={"job_id": job_id})


def run_mode(emulator: EmulatorProcess, dags: Any, mode: str, time_scale: float) -> ModeResult:
    emulator.reset()
    [job_id] = emulator.seed_jobs(VENDOR, 1, status="running", runs_for=JOB_SECONDS)
    spans: list[Span] = []
    started = time.perf_counter()
    with recording(spans):
        dag_run = getattr(dags, f"dag_{mode}").test(run_conf={"job_id": job_id})
    wall = time.perf_counter() - started
    gets = emulator.status_counts().get("200", 0)
    result = ModeResult(
        mode=mode,
        state=str(getattr(dag_run.state, "value", dag_run.state)),
        wall=wall,
        tries=[span.seconds for span in spans if span.kind == "try"],
        triggers=[span.seconds for span in spans if span.kind == "trigger"],
        pokes=gets,
    )
    print(f"{mode}: {result} (time scale {time_scale})")
    return result


def try_overhead(results: list[ModeResult]) -> float:
    """Median length of a short try (one check, in reschedule or deferrable mode): what does not scale."""
    return median([seconds for found in results if found.mode != "poke" for seconds in found.tries])


def real_slot_seconds(found: ModeResult, time_scale: float, overhead: float) -> float:
    """Worker-slot seconds the same wait would hold in real time (see the module docstring)."""
    if found.mode == "poke":
        return max(found.slot_seconds - overhead, 0.0) * time_scale + overhead
    if found.mode == "reschedule":
        return median(found.tries) * REAL_POKES
    return found.slot_seconds


def table_of(results: list[ModeResult], time_scale: float) -> Table:
    table = Table(
        f"Waiting for a {JOB_SECONDS:.0f} s job (emulator clock x{time_scale:g}; poke_interval "
        f"{POKE_EMULATED:g} emulated s)",
        [
            "Mode",
            "DAG run",
            "Task wall s (accelerated)",
            "Tries (slot acquisitions)",
            "Pokes (GETs)",
            "Worker-slot s (measured)",
            "Slot share of the wait",
            "Triggerer s",
            f"Worker-slot s for a real {JOB_SECONDS:.0f} s wait",
        ],
    )
    overhead = try_overhead(results)
    for found in results:
        table.add(
            found.mode,
            found.state,
            f"{found.wall:.2f}",
            len(found.tries),
            found.pokes,
            f"{found.slot_seconds:.3f}",
            f"{found.slot_seconds / found.wall:.0%}",
            f"{sum(found.triggers):.2f}",
            f"{real_slot_seconds(found, time_scale, overhead):.2f}",
        )
    return table


def run(smoke: bool) -> Section:
    allow_bytecode_cache()
    home = prepare_airflow_home()
    time_scale = 30.0 if smoke else 10.0
    section = Section("deferral", "5. Deferral pays: worker-slot seconds while waiting for a 60 s job", __doc__ or "")
    migrate_seconds = migrate_database()
    with EmulatorProcess(time_scale=time_scale) as emulator:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = emulator.connection_uri(VENDOR)
        dags = load_dags(home, POKE_EMULATED / time_scale)
        warm_up(emulator, dags)
        results = [run_mode(emulator, dags, mode, time_scale) for mode in MODES]
    section.tables.append(table_of(results, time_scale))
    by_mode = {found.mode: found for found in results}
    poke, reschedule, deferrable = by_mode["poke"], by_mode["reschedule"], by_mode["deferrable"]
    all_ok = all(found.state == "success" for found in results)
    section.targets.append(
        Target(
            "Every mode sees the job finish (DAG run success)",
            ", ".join(f"{found.mode}: {found.state}" for found in results),
            "success",
            all_ok,
        )
    )
    overhead = try_overhead(results)
    poke_real = real_slot_seconds(poke, time_scale, overhead)
    reschedule_real = real_slot_seconds(reschedule, time_scale, overhead)
    section.targets.append(
        Target(
            f"Deferrable holds the worker slot for less than poke (real {JOB_SECONDS:.0f} s wait)",
            f"poke {poke_real:.1f} s vs deferrable {deferrable.slot_seconds:.2f} s "
            f"({ratio(poke_real / max(deferrable.slot_seconds, 1e-9))} less); reschedule "
            f"{reschedule_real:.2f} s over {REAL_POKES} tries",
            "deferrable < reschedule < poke",
            deferrable.slot_seconds < reschedule_real < poke_real,
        )
    )
    section.notes.append(f"`airflow db migrate` of the throwaway database took {migrate_seconds:.1f} s (not counted).")
    for found in results:
        tries = ", ".join(f"{seconds:.3f}" for seconds in found.tries)
        section.notes.append(f"{found.mode}: tries lasted {tries} s; trigger runs {sum(found.triggers):.2f} s.")
    section.notes.append(
        f"Poke mode's real-time figure: (measured slot - {overhead:.3f} s of per-try work) x {time_scale:g} "
        f"+ {overhead:.3f} s; the per-try work is the median short try of the other two modes. Reschedule "
        f"mode's: its median try x {REAL_POKES} pokes (a real 60 s wait poked every 10 s); the accelerated run "
        "pokes less often because `dag.test()` looks for due reschedules only once a second."
    )
    return section


if __name__ == "__main__":
    raise SystemExit(bench_main(run))
