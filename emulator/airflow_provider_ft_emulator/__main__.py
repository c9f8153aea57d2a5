"""``ft-emulator`` (or ``python -m airflow_provider_ft_emulator``): serve the four vendors' APIs until Ctrl-C."""

from __future__ import annotations

import argparse
import shlex
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from airflow_provider_ft_emulator.demo import seed_demo
from airflow_provider_ft_emulator.server import DEFAULT_API_KEY, FineTuningEmulator
from airflow_provider_ft_emulator.state import LOGS_FORMS
from airflow_provider_ft_emulator.testing import connection_variables
from airflow_provider_ft_emulator.vocabulary import DASHSCOPE_TIMEZONE, DISPLAY_NAMES, VENDORS


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="ft-emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8089, help="port to bind; 0 picks a free one (default 8089)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help=f"accepted bearer key (default {DEFAULT_API_KEY})")
    parser.add_argument("--time-scale", type=float, default=1.0, help="emulated seconds per real second")
    parser.add_argument("--cancel-delay", type=float, default=0.0, help="emulated seconds a DashScope job is CANCELING")
    parser.add_argument("--timezone", default=DASHSCOPE_TIMEZONE, help="zone of DashScope time strings")
    parser.add_argument("--seed", choices=["none", "demo"], default="none", help="jobs to start with")
    parser.add_argument(
        "--seed-running",
        type=_seconds,
        metavar="SECONDS",
        help="also seed one running job per vendor that succeeds after SECONDS emulated seconds (ids are printed)",
    )
    parser.add_argument(
        "--no-check-files",
        dest="check_files",
        action="store_false",
        help="accept jobs created with file ids that were never uploaded",
    )
    parser.add_argument(
        "--dashscope-logs",
        choices=LOGS_FORMS,
        default="alternate",
        help="DashScope logs answers: an array of lines, one string, or each for every other job (default alternate)",
    )
    return parser.parse_args(argv)


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a number of seconds above 0")
    return value


def seed_running(emulator: FineTuningEmulator, seconds: float) -> dict[str, str]:
    """Seed one running job per vendor that succeeds after ``seconds`` emulated seconds; their ids by vendor."""
    return {vendor: emulator.seed_job(vendor, runs_for=seconds) for vendor in VENDORS}


def banner(emulator: FineTuningEmulator, running: dict[str, str], runs_for: float | None = None) -> list[str]:
    """What the command prints once it serves: each API's base URL and the key, the running jobs it seeded, and the
    ``AIRFLOW_CONN_*`` variables that point Airflow's default connections at it.

    :param emulator: the running emulator
    :param running: the ids of the running jobs seeded, by vendor
    :param runs_for: the emulated seconds those jobs run
    """
    width = max(len(name) for name in DISPLAY_NAMES.values()) + 1
    lines = [f"{DISPLAY_NAMES[vendor] + ':':{width}} {emulator.url(vendor)}" for vendor in VENDORS]
    lines.append(f"{'API key:':{width}} {emulator.api_key}")
    lines += [f"Running {vendor} job: {job_id} ({runs_for:g} s)" for vendor, job_id in running.items()]
    lines.append("Airflow's default connections reach it with these variables (in the shell that runs Airflow):")
    variables = connection_variables(emulator, extra={})
    lines += [f"  export {name}={shlex.quote(value)}" for name, value in variables.items()]
    lines.append("Press Ctrl-C to stop.")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM."""
    args = parse_args(argv)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    emulator = FineTuningEmulator(
        api_key=args.api_key,
        time_scale=args.time_scale,
        dashscope_timezone=args.timezone,
        port=args.port,
        host=args.host,
        cancel_delay=args.cancel_delay,
        check_files=args.check_files,
        dashscope_logs=args.dashscope_logs,
    )
    with emulator as emu:
        if args.seed == "demo":
            seed_demo(emu)
        running = {} if args.seed_running is None else seed_running(emu, args.seed_running)
        print("\n".join(banner(emu, running, args.seed_running)), flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
