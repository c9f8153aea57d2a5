"""Small helpers the benchmarks share: statistics, formatting, a throwaway Airflow home, the machine."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

#: Packages whose versions every report names.
VERSIONED = (
    "apache-airflow",
    "apache-airflow-task-sdk",
    "apache-airflow-providers-openai",
    "apache-airflow-providers-dbt-cloud",
    "airflow-provider-ft",
    "requests",
    "httpx",
    "httpcore",
    "tenacity",
    "uvicorn",
)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (0..1), linearly interpolated between the closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def iqr(values: Sequence[float]) -> float:
    return percentile(values, 0.75) - percentile(values, 0.25)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def prepare_airflow_home() -> Path:
    """Point Airflow at a throwaway home (before Airflow is first imported); returns it.

    Reuses ``FT_BENCH_AIRFLOW_HOME`` when the runner already made one, so child processes share it.
    """
    existing = os.environ.get("FT_BENCH_AIRFLOW_HOME")
    home = Path(existing) if existing else Path(tempfile.mkdtemp(prefix="ft-bench-airflow-"))
    (home / "dags").mkdir(parents=True, exist_ok=True)
    os.environ.update(
        FT_BENCH_AIRFLOW_HOME=str(home),
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
    )
    return home


def allow_bytecode_cache() -> None:
    """Let this interpreter and its children read and write ``__pycache__`` (DAG parsers do in production)."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False


def version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    info = {
        "CPU": f"{cpu_model()}, {cores} cores ({usable} usable)",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
    }
    if hasattr(os, "getloadavg"):
        info["Load average at start (1/5/15 min)"] = " / ".join(f"{load:.2f}" for load in os.getloadavg())
    info.update({package: version_of(package) for package in VERSIONED})
    return info
