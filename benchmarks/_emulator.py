"""The emulator in a child process, driven over stdin/stdout with one JSON command per line.

Benchmarks must not share a CPU-bound event loop or the GIL with the server they measure against, so the
``FineTuningEmulator`` runs in its own interpreter. ``EmulatorProcess`` starts it and forwards the few calls the
benchmarks need (seeding jobs, faults, counters). Run as ``python -m benchmarks._emulator`` only by that class.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import IO, Any

API_KEY = "sk-bench-0123456789abcdef"
VENDORS = ("dashscope", "openai")
CONN_TYPES = {
    "dashscope": "dashscope",
    "openai": "openaifinetuning",
    "azure": "azureopenaifinetuning",
    "together": "togetherfinetuning",
}
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Tally:
    """Requests of one stretch of the emulator's log (see ``EmulatorProcess.tally``)."""

    start: int
    end: int
    job_gets: int
    event_gets: int
    other: int
    statuses: dict[str, int]

    @property
    def requests(self) -> int:
        return self.end - self.start


class EmulatorProcess:
    """A ``FineTuningEmulator`` serving on 127.0.0.1 in a child process.

    :param time_scale: emulated seconds per real second
    """

    def __init__(self, time_scale: float = 1.0) -> None:
        self.time_scale = time_scale
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        command = [sys.executable, "-m", "benchmarks._emulator", "--time-scale", str(self.time_scale)]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, close_fds=True
        )
        self.port = int(self._read()["port"])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        finally:
            if process.stdout is not None:
                process.stdout.close()

    @property
    def pid(self) -> int:
        return self._checked().pid

    def url(self, vendor: str) -> str:
        from airflow_provider_ft_emulator.vocabulary import BASE_PATHS, vendor_named

        return f"http://127.0.0.1:{self.port}{BASE_PATHS[vendor_named(vendor)]}"

    def connection_uri(self, vendor: str, **extra: Any) -> str:
        """The JSON an ``AIRFLOW_CONN_*`` variable holds for a connection to this emulator."""
        definition = {"conn_type": CONN_TYPES[vendor], "host": self.url(vendor), "password": API_KEY, "extra": extra}
        return json.dumps(definition)

    def call(self, op: str, **kwargs: Any) -> Any:
        """Run ``op`` in the child; its JSON result."""
        process = self._checked()
        assert process.stdin is not None
        process.stdin.write(json.dumps({"op": op, "kwargs": kwargs}) + "\n")
        process.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(f"emulator {op} failed: {answer['error']}")
        return answer.get("result")

    def seed_jobs(self, vendor: str, n: int, **options: Any) -> list[str]:
        return list(self.call("seed_jobs", vendor=vendor, n=n, **options))

    def inject(self, kind: str, **options: Any) -> None:
        self.call("inject", kind=kind, **options)

    def clear_faults(self) -> None:
        self.call("clear_faults")

    def reset(self) -> None:
        self.call("reset")

    def connections_opened(self) -> int:
        return int(self.call("connections_opened"))

    def request_count(self) -> int:
        return int(self.call("request_count"))

    def status_counts(self) -> dict[str, int]:
        """How many requests were answered with each HTTP status (``"0"``: dropped or in flight)."""
        return {str(key): int(value) for key, value in self.call("status_counts").items()}

    def jobs(self, vendor: str) -> list[dict[str, Any]]:
        return list(self.call("jobs", vendor=vendor))

    def tally(self, since: int = 0, until: int | None = None) -> Tally:
        """What the requests from the ``since``-th on (in arrival order; before the ``until``-th if given) were:
        job GETs, event GETs, other, and their statuses so far (``"0"``: still in flight); ``Tally.end`` is where
        the next tally starts."""
        return Tally(**self.call("tally", since=since, until=until))

    def _checked(self) -> subprocess.Popen[str]:
        if self._process is None:
            raise RuntimeError("the emulator process is not running")
        return self._process

    def _read(self) -> dict[str, Any]:
        stdout = self._checked().stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise RuntimeError("the emulator process exited")
        answer: dict[str, Any] = json.loads(line)
        return answer


# -- the child -------------------------------------------------------------------------------------------------


def _handle(emulator: Any, op: str, kwargs: dict[str, Any]) -> Any:
    from airflow_provider_ft_emulator import Fault

    if op == "seed_jobs":
        return emulator.seed_jobs(kwargs.pop("vendor"), kwargs.pop("n"), **kwargs)
    if op == "inject":
        emulator.inject(Fault(**kwargs))
        return None
    if op == "clear_faults":
        emulator.clear_faults()
        return None
    if op == "reset":
        emulator.reset()
        return None
    if op == "connections_opened":
        return emulator.connections_opened
    if op == "request_count":
        return len(emulator.requests)
    if op == "status_counts":
        counts: dict[str, int] = {}
        for request in emulator.requests:
            counts[str(request.status)] = counts.get(str(request.status), 0) + 1
        return counts
    if op == "jobs":
        return emulator.jobs(kwargs["vendor"])
    if op == "tally":
        until = kwargs.get("until")
        return _tally(emulator, int(kwargs.get("since", 0)), None if until is None else int(until))
    raise ValueError(f"unknown op {op!r}")


_JOB_GET = re.compile(r"^/fine_tuning/jobs/[^/]+$")
_EVENT_GET = re.compile(r"^/fine_tuning/jobs/[^/]+/events$")


def _tally(emulator: Any, since: int, until: int | None) -> dict[str, Any]:
    """Counts of the logged requests from ``since`` on, read without copying the whole log."""
    log = getattr(emulator, "_log", None)
    entries, lock = getattr(log, "_entries", None), getattr(log, "_lock", None)
    if entries is None or lock is None:  # the log's insides changed: the public (whole) copy
        entries, lock = emulator.requests, threading.Lock()
    with lock:
        stretch = [(entry.method, entry.path, entry.status) for entry in entries[since:until]]
    counts = {"job_gets": 0, "event_gets": 0, "other": 0}
    statuses: dict[str, int] = {}
    for method, path, status in stretch:
        kind = "other"
        if method == "GET" and _JOB_GET.match(path):
            kind = "job_gets"
        elif method == "GET" and _EVENT_GET.match(path):
            kind = "event_gets"
        counts[kind] += 1
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {"start": since, "end": since + len(stretch), **counts, "statuses": statuses}


def _answer(out: IO[str], answer: dict[str, Any]) -> None:
    out.write(json.dumps(answer, default=lambda value: asdict(value)) + "\n")
    out.flush()


def serve(time_scale: float) -> int:
    """Serve until stdin closes, answering one command per line."""
    from airflow_provider_ft_emulator import FineTuningEmulator

    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but answers may reach the pipe
    with FineTuningEmulator(api_key=API_KEY, time_scale=time_scale) as emulator:
        _answer(out, {"port": emulator.port})
        for line in sys.stdin:
            command = json.loads(line)
            try:
                _answer(out, {"result": _handle(emulator, command["op"], dict(command.get("kwargs") or {}))})
            except Exception as error:
                _answer(out, {"error": f"{type(error).__name__}: {error}"})
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._emulator")
    parser.add_argument("--time-scale", type=float, default=1.0)
    return serve(parser.parse_args().time_scale)


if __name__ == "__main__":
    raise SystemExit(main())
