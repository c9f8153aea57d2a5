"""``FineTuningHook.loss_metrics`` over real HTTP to the emulator: Together AI's metrics endpoint read into loss
points; on the vendors whose log carries the figures, no request at all (the operation ends before its first one)."""

from __future__ import annotations

from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.loss import loss_curve
from airflow_provider_ft_emulator import FineTuningEmulator
from tests.conftest import Vendor


def test_loss_metrics_reads_together_s_metrics_and_sends_nothing_elsewhere(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, runs_for=600)
    emulator.advance(250)  # a loss point every tenth of the run: steps 10 to 40
    emulator.clear_requests()

    points = FineTuningHook(connection).loss_metrics(job_id)

    if vendor.name == "together":
        assert [point.step for point in loss_curve(points)] == [10, 20, 30, 40]
        assert all(point.train_loss is not None for point in points)
        assert [(r.method, r.path) for r in emulator.requests] == [("GET", f"/fine-tunes/{job_id}/metrics")]
    else:
        assert points == []
        assert emulator.requests == []
