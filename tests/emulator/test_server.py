"""Server plumbing: addresses, start/stop, isolation of imports, the demo seed and the CLI."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_ft_emulator import FineTuningEmulator, connection_variables, seed_demo
from airflow_provider_ft_emulator.__main__ import banner, parse_args
from airflow_provider_ft_emulator.vocabulary import VENDORS


def test_urls_point_at_loopback_mounts(emulator: FineTuningEmulator) -> None:
    assert emulator.port > 0
    assert emulator.url("dashscope") == f"http://127.0.0.1:{emulator.port}/dashscope/api/v1"
    assert emulator.url("openai") == f"http://127.0.0.1:{emulator.port}/openai/v1"
    assert emulator.url("azure") == f"http://127.0.0.1:{emulator.port}/azure", "the resource endpoint"
    with pytest.raises(ValueError, match="unknown vendor"):
        emulator.url("acme")


def test_default_key_and_start_stop_methods() -> None:
    emu = FineTuningEmulator()
    emu.start()
    try:
        assert emu.api_key == "emulator-key"
        headers = {"Authorization": "Bearer emulator-key"}
        assert requests.get(f"{emu.url('openai')}/fine_tuning/jobs", headers=headers, timeout=5).status_code == 200
        with pytest.raises(RuntimeError, match="already running"):
            emu.start()
        port = emu.port
    finally:
        emu.stop()
    emu.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/openai/v1/fine_tuning/jobs", timeout=2)


def test_two_emulators_are_independent(emulator: FineTuningEmulator) -> None:
    with FineTuningEmulator(api_key="other-key-123456") as other:
        assert other.port != emulator.port
        other.seed_job("dashscope")
        assert other.jobs("dashscope")
        assert emulator.jobs("dashscope") == []


def test_busy_port_is_an_error(emulator: FineTuningEmulator) -> None:
    with pytest.raises(OSError):  # noqa: PT011 - the errno depends on the platform
        FineTuningEmulator(port=emulator.port).start()


def test_explicit_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with FineTuningEmulator(port=port) as emu:
        assert emu.port == port


def test_package_imports_stay_isolated() -> None:
    code = (
        "import sys, airflow_provider_ft; assert 'fastapi' not in sys.modules, 'provider imported fastapi'; "
        "import airflow_provider_ft_emulator; assert 'airflow' not in sys.modules, 'emulator imported airflow'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_seed_demo_is_realistic(emulator: FineTuningEmulator) -> None:
    ids = seed_demo(emulator)
    assert set(ids) == {"dashscope", "openai"}
    day = timedelta(days=1).total_seconds()
    for vendor, in_flight in (("dashscope", {"RUNNING", "QUEUING", "PENDING"}), ("openai", {"running", "queued"})):
        jobs = {job.get("job_id") or job.get("id"): job for job in emulator.jobs(vendor)}
        assert set(jobs) == set(ids[vendor])
        ages = {job_id: _age(emulator, job) for job_id, job in jobs.items()}
        stale = [i for i, job in jobs.items() if job["status"] in in_flight and ages[i] > day]
        recent = [i for i in jobs if ages[i] < 3600]
        finished_old = [i for i, job in jobs.items() if job["status"] not in in_flight and ages[i] > day]
        assert len(stale) >= 2
        assert len(recent) >= 2
        assert len(finished_old) >= 3


def _age(emu: FineTuningEmulator, job: dict[str, object]) -> float:
    if "created_at" in job:
        return emu.now() - float(job["created_at"])  # type: ignore[arg-type]
    created = datetime.strptime(str(job["create_time"]), "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    return emu.now() - created.timestamp()


def read_banner(process: subprocess.Popen[str]) -> str:
    """What the command printed up to "Press Ctrl-C to stop."."""
    assert process.stdout is not None
    lines: list[str] = []
    while not lines or lines[-1] != "Press Ctrl-C to stop.":
        line = process.stdout.readline()
        assert line, f"the command ended before its banner was out: {lines}"
        lines.append(line.rstrip("\n"))
    return "\n".join(lines)


BANNER_URL = re.compile(r"^(DashScope|OpenAI|Azure OpenAI|Together AI):\s+(\S+)$", re.MULTILINE)


def test_cli_serves_demo_until_interrupted() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "airflow_provider_ft_emulator", "--port", "0", "--seed", "demo"]
    command += ["--api-key", "cli-key-1234567890", "--time-scale", "60"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        text = read_banner(process)
        urls = dict(BANNER_URL.findall(text))
        assert list(urls) == ["DashScope", "OpenAI", "Azure OpenAI", "Together AI"]
        assert re.search(r"^API key:\s+cli-key-1234567890$", text, re.MULTILINE)
        headers = {"Authorization": "Bearer cli-key-1234567890"}
        listed = requests.get(f"{urls['OpenAI']}/fine_tuning/jobs", headers=headers, timeout=5).json()
        assert len(listed["data"]) >= 5
        total = requests.get(f"{urls['DashScope']}/fine-tunes", headers=headers, timeout=5).json()["output"]["total"]
        assert total >= 5
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_seeds_running_jobs_and_can_skip_the_file_check() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "airflow_provider_ft_emulator", "--port", "0", "--api-key", "cli-key-1234567890"]
    command += ["--seed-running", "90", "--no-check-files"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        text = read_banner(process)
        urls = dict(BANNER_URL.findall(text))
        ids = dict(re.findall(r"^Running (\w+) job: (\S+) \(90 s\)$", text, re.MULTILINE))
        assert set(ids) == {"dashscope", "openai", "azure", "together"}
        headers = {"Authorization": "Bearer cli-key-1234567890"}
        job = requests.get(f"{urls['OpenAI']}/fine_tuning/jobs/{ids['openai']}", headers=headers, timeout=5).json()
        assert job["status"] == "running"
        assert 80 <= job["estimated_finish"] - time.time() <= 95
        output = requests.get(f"{urls['DashScope']}/fine-tunes/{ids['dashscope']}", headers=headers, timeout=5)
        assert output.json()["output"]["status"] == "RUNNING"
        azure = f"{urls['Azure OpenAI']}/openai/fine_tuning/jobs/{ids['azure']}?api-version=2024-10-21"
        assert requests.get(azure, headers={"api-key": "cli-key-1234567890"}, timeout=5).json()["status"] == "running"
        body = {"model": "gpt-4o-mini", "training_file": "file-never-uploaded"}
        created = requests.post(f"{urls['OpenAI']}/fine_tuning/jobs", json=body, headers=headers, timeout=5)
        assert created.status_code == 200, "--no-check-files accepts any file id"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_options_parse() -> None:
    args = parse_args(["--seed-running", "30"])
    assert (args.seed_running, args.check_files, args.seed) == (30.0, True, "none")
    assert parse_args([]).seed_running is None
    with pytest.raises(SystemExit):
        parse_args(["--seed-running", "0"])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(min_value=0, max_value=30), limit=st.integers(min_value=1, max_value=12))
def test_openai_paging_visits_each_job_once(shared_emulator: FineTuningEmulator, n: int, limit: int) -> None:
    shared_emulator.reset()
    ids = [shared_emulator.seed_job("openai", age=n - i) for i in range(n)]
    headers = {"Authorization": f"Bearer {shared_emulator.api_key}"}
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": limit}
    with requests.Session() as session:
        while True:
            page = session.get(
                f"{shared_emulator.url('openai')}/fine_tuning/jobs", params=params, headers=headers
            ).json()
            seen += [job["id"] for job in page["data"]]
            if not page["has_more"]:
                break
            params["after"] = page["data"][-1]["id"]
    assert seen == list(reversed(ids))
    shared_emulator.reset()


def test_the_banner_gives_each_apis_url_the_key_and_variables_that_point_airflow_at_it(
    emulator: FineTuningEmulator,
) -> None:
    """Issue 24: the banner named three APIs of four, and the URLs and key were only in docs/emulator.md."""
    lines = banner(emulator, {"together": "ft-1"}, 90)
    text = "\n".join(lines)
    assert dict(BANNER_URL.findall(text)) == {
        "DashScope": emulator.url("dashscope"),
        "OpenAI": emulator.url("openai"),
        "Azure OpenAI": emulator.url("azure"),
        "Together AI": emulator.url("together"),
    }
    assert f"API key:      {emulator.api_key}" in lines
    assert "Running together job: ft-1 (90 s)" in lines
    exports = dict(
        shlex.split(line.removeprefix("  export "))[0].split("=", 1) for line in lines if line.startswith("  export ")
    )
    assert exports == connection_variables(emulator, extra={})
    assert {json.loads(value)["host"] for value in exports.values()} == {emulator.url(vendor) for vendor in VENDORS}
    assert lines[-1] == "Press Ctrl-C to stop."
