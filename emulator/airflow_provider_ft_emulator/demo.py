"""A small, realistic set of jobs per vendor for demos and manual poking."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_ft_emulator.server import FineTuningEmulator

_H = timedelta(hours=1)
_D = timedelta(days=1)


def seed_demo(emu: FineTuningEmulator) -> dict[str, list[str]]:
    """Seed stale in-flight jobs (older than a day), recent ones and old finished ones; returns ids by vendor."""
    return {"dashscope": _seed_dashscope(emu), "openai": _seed_openai(emu)}


def _seed_dashscope(emu: FineTuningEmulator) -> list[str]:
    seed = emu.seed_job
    return [
        seed("dashscope", status="RUNNING", age=30 * _H, name="nightly-sft-stuck", model="qwen-plus", runs_for=None),
        seed("dashscope", status="RUNNING", age=3 * _D, name="legal-qa-sft", model="qwen-turbo", runs_for=None),
        seed("dashscope", status="QUEUING", age=26 * _H, name="support-bot-queued", runs_for=None),
        seed("dashscope", status="PENDING", age=2 * _D, name="pending-forever", runs_for=None),
        seed("dashscope", status="RUNNING", age=timedelta(minutes=20), name="fresh-sft", runs_for=30 * 60),
        seed("dashscope", status="PENDING", age=timedelta(minutes=2), name="just-submitted"),
        seed("dashscope", status="SUCCEEDED", age=5 * _D, name="old-sft-ok", runs_for=2 * _H),
        seed("dashscope", status="SUCCEEDED", age=9 * _D, name="older-sft-ok", model="qwen-plus", runs_for=3 * _H),
        seed("dashscope", status="FAILED", age=4 * _D, name="bad-data", error="Training file has invalid format."),
        seed("dashscope", status="CANCELED", age=6 * _D, name="abandoned", runs_for=_H),
    ]


def _seed_openai(emu: FineTuningEmulator) -> list[str]:
    seed = emu.seed_job
    team_a, team_b = {"team": "search"}, {"team": "support"}
    return [
        seed("openai", status="running", age=28 * _H, name="nightly-stuck", metadata=team_a, runs_for=None),
        seed("openai", status="queued", age=2 * _D, name="queued-stale", metadata=team_b, runs_for=None),
        seed("openai", status="validating_files", age=30 * _H, name="validating-stale", runs_for=None),
        seed("openai", status="running", age=timedelta(minutes=15), name="fresh", metadata=team_a, runs_for=1800),
        seed("openai", status="queued", age=timedelta(minutes=1), name="just-submitted", metadata=team_b),
        seed("openai", status="succeeded", age=7 * _D, name="old-ok", metadata=team_a, runs_for=_H),
        seed("openai", status="failed", age=3 * _D, name="old-bad", error="Invalid training file format."),
        seed("openai", status="cancelled", age=5 * _D, name="old-cancelled", metadata=team_b, runs_for=_H),
    ]
