"""Which files and functions of the provider a create and one trigger poll go through (issue 23's measure).

Runs both against the embedded emulator with a profiler hook that records every provider function called, and
prints, per path, the files and the functions in them. Module and class bodies run by an import on the way are not
counted: only calls of functions.

    .venv/bin/python scripts/call_paths.py
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[1] / "airflow_provider_ft"


def record(action: Callable[[], Any]) -> dict[str, set[str]]:
    """The provider's functions ``action`` calls, by file (relative to the package)."""
    crossed: dict[str, set[str]] = defaultdict(set)

    def profile(frame: Any, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code.co_flags & inspect.CO_OPTIMIZED:  # functions, not module or class bodies
            path = Path(frame.f_code.co_filename)
            if path.is_relative_to(PACKAGE):
                crossed[str(path.relative_to(PACKAGE))].add(frame.f_code.co_qualname)

    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    return crossed


def show(title: str, crossed: dict[str, set[str]]) -> None:
    functions = sum(len(names) for names in crossed.values())
    print(f"## {title}: {len(crossed)} files, {functions} functions")
    for file in sorted(crossed):
        print(f"- {file}: {', '.join(sorted(crossed[file]))}")
    print()


def main() -> None:
    from airflow_provider_ft.operators.create import CreateFineTuningJobOperator
    from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
    from airflow_provider_ft_emulator import emulated

    class TaskInstance:
        dag_id, task_id, run_id, map_index = "paths", "train", "manual__1", -1

        def xcom_push(self, key: str, value: Any) -> None:
            pass

    with emulated(api_key="emulator-key") as emulator, tempfile.TemporaryDirectory() as folder:
        data = Path(folder, "train.jsonl")
        data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
        operator = CreateFineTuningJobOperator(
            task_id="train",
            conn_id="openai_default",
            model="gpt-4o-mini-2024-07-18",
            training_file=str(data),
            wait_for_completion=False,
        )
        job: dict[str, Any] = {}
        show("create (local file, OpenAI)", record(lambda: job.update(operator.execute({"ti": TaskInstance()}))))

        running = emulator.seed_job("openai", runs_for=1.0)
        trigger = FineTuningJobTrigger(conn_id="openai_default", job_id=running, poll_interval=0.5)

        async def first_event() -> None:
            events = trigger.run()
            await events.__anext__()
            await events.aclose()

        show("trigger, polling a running job until it ends", record(lambda: asyncio.run(first_event())))


if __name__ == "__main__":
    main()
