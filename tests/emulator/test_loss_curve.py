"""Every vendor's emulated job reports its losses in that vendor's shape, read by its dialect into a loss curve
that moves as the job trains: two reads some emulated time apart give more points and a lower training loss."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from airflow_provider_ft.loss import LossPoint, latest_loss, loss_curve
from airflow_provider_ft.vendors.azure_openai import AzureOpenAIDialect
from airflow_provider_ft.vendors.dashscope import DashScopeDialect
from airflow_provider_ft.vendors.openai import OpenAIDialect
from airflow_provider_ft.vendors.together import TogetherDialect
from airflow_provider_ft_emulator import FineTuningEmulator


def openai_curve(http: requests.Session, emulator: FineTuningEmulator, job_id: str) -> list[LossPoint]:
    answer = http.get(f"{emulator.url('openai')}/fine_tuning/jobs/{job_id}/events", params={"limit": 100}).json()
    return loss_curve(OpenAIDialect().parse_events(answer, None).events)


def azure_curve(http: requests.Session, emulator: FineTuningEmulator, job_id: str) -> list[LossPoint]:
    url = f"{emulator.url('azure')}/openai/fine_tuning/jobs/{job_id}/events"
    answer = http.get(url, params={"api-version": "2024-10-21", "limit": 100}).json()
    return loss_curve(AzureOpenAIDialect().parse_events(answer, None).events)


def dashscope_curve(http: requests.Session, emulator: FineTuningEmulator, job_id: str) -> list[LossPoint]:
    answer = http.get(f"{emulator.url('dashscope')}/fine-tunes/{job_id}/logs", params={"line": 1000}).json()
    return loss_curve(DashScopeDialect().parse_events(answer, None).events)


def together_curve(http: requests.Session, emulator: FineTuningEmulator, job_id: str) -> list[LossPoint]:
    answer = http.get(f"{emulator.url('together')}/fine-tunes/{job_id}/metrics").json()
    return loss_curve(TogetherDialect().parse_metrics(answer))


READERS: dict[str, Any] = {
    "openai": openai_curve,
    "azure": azure_curve,
    "dashscope": dashscope_curve,
    "together": together_curve,
}


@pytest.fixture
def keyed_http(http: requests.Session) -> requests.Session:
    http.headers["api-key"] = str(http.headers["Authorization"]).removeprefix("Bearer ")
    return http


@pytest.mark.parametrize("vendor", sorted(READERS))
def test_the_curve_moves_as_the_job_trains(
    emulator: FineTuningEmulator, keyed_http: requests.Session, vendor: str
) -> None:
    job_id = emulator.seed_job(vendor, status=None, runs_for=100, validation_file="file-validation")
    read = READERS[vendor]
    emulator.advance(35)
    early = read(keyed_http, emulator, job_id)
    emulator.advance(40)
    later = read(keyed_http, emulator, job_id)
    assert [point.step for point in early] == [10, 20, 30]
    assert [point.step for point in later] == [10, 20, 30, 40, 50, 60, 70]
    assert later[: len(early)] == early, "points already read do not change"
    first, last = latest_loss(early), latest_loss(later)
    assert first is not None
    assert last is not None
    assert (last.train_loss or 0.0) < (first.train_loss or 0.0)
    trains = [point.train_loss for point in later]
    assert trains == sorted(trains, reverse=True), "the training loss falls at every step"
    assert [point.step for point in later if point.valid_loss is not None] == [20, 40, 60]
    assert all(point.valid_loss is None or point.valid_loss > 0 for point in later)


@pytest.mark.parametrize("vendor", sorted(READERS))
def test_without_a_validation_file_there_is_no_validation_loss(
    emulator: FineTuningEmulator, keyed_http: requests.Session, vendor: str
) -> None:
    job_id = emulator.seed_job(vendor, status=None, runs_for=100)
    emulator.advance(100)
    curve = READERS[vendor](keyed_http, emulator, job_id)
    assert [point.step for point in curve] == list(range(10, 101, 10))
    assert all(point.valid_loss is None for point in curve)


def test_each_job_has_its_own_curve_and_the_same_one_on_every_read(
    emulator: FineTuningEmulator, keyed_http: requests.Session
) -> None:
    first = emulator.seed_job("openai", status="running", runs_for=100)
    second = emulator.seed_job("openai", status="running", runs_for=100)
    emulator.advance(100)
    curve = openai_curve(keyed_http, emulator, first)
    assert curve == openai_curve(keyed_http, emulator, first)
    assert curve != openai_curve(keyed_http, emulator, second)


def test_openai_events_with_a_validation_loss_keep_to_the_published_contract(
    emulator: FineTuningEmulator, oa: str, http: requests.Session, openai_contract: Any
) -> None:
    job_id = emulator.seed_job("openai", status="running", runs_for=100, validation_file="file-validation")
    emulator.advance(50)
    openai_contract(http.get(f"{oa}/fine_tuning/jobs/{job_id}/events"))
