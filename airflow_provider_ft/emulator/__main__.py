"""``python -m airflow_provider_ft.emulator``: serve both vendor APIs until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from airflow_provider_ft.defaults import DASHSCOPE_TIMEZONE
from airflow_provider_ft.emulator.demo import seed_demo
from airflow_provider_ft.emulator.server import DEFAULT_API_KEY, FineTuningEmulator


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_ft.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8089, help="port to bind; 0 picks a free one (default 8089)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help=f"accepted bearer key (default {DEFAULT_API_KEY})")
    parser.add_argument("--time-scale", type=float, default=1.0, help="emulated seconds per real second")
    parser.add_argument("--cancel-delay", type=float, default=0.0, help="emulated seconds a DashScope job is CANCELING")
    parser.add_argument("--timezone", default=DASHSCOPE_TIMEZONE, help="zone of DashScope time strings")
    parser.add_argument("--seed", choices=["none", "demo"], default="none", help="jobs to start with")
    return parser.parse_args(argv)


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
    )
    with emulator as emu:
        if args.seed == "demo":
            seed_demo(emu)
        print(f"DashScope: {emu.url('dashscope')}", flush=True)
        print(f"OpenAI:    {emu.url('openai')}", flush=True)
        print(f"API key:   {emu.api_key}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
