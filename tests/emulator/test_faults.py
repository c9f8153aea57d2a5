"""Every fault kind, observed from a real HTTP client."""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from airflow_provider_ft_emulator import FAULT_KINDS, Fault, FineTuningEmulator
from airflow_provider_ft_emulator.faults import CLASSIC_FAULT_KINDS, HOSTILE_FAULT_KINDS, VARIANTS

DOCS = Path(__file__).parents[2] / "docs" / "emulator.md"


def test_status_429_in_dashscope_shape_with_retry_after(
    emulator: FineTuningEmulator, ds: str, http: requests.Session, dashscope_error
) -> None:
    emulator.inject(Fault("status", vendor="dashscope", status=429, headers={"Retry-After": "1"}))
    response = http.get(f"{ds}/fine-tunes")
    dashscope_error(response, 429, "Throttling")
    assert response.headers["retry-after"] == "1"
    assert http.get(f"{ds}/fine-tunes").status_code == 200


def test_status_429_in_openai_shape_with_retry_after_ms(
    emulator: FineTuningEmulator, oa: str, http: requests.Session, openai_contract
) -> None:
    emulator.inject(Fault("status", status=429, headers={"retry-after-ms": "200"}))
    response = http.get(f"{oa}/fine_tuning/jobs")
    assert response.status_code == 429
    error = openai_contract(response)["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert response.headers["retry-after-ms"] == "200"
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_status_5xx_bodies(
    emulator: FineTuningEmulator,
    ds: str,
    oa: str,
    http: requests.Session,
    dashscope_error,
    openai_contract,
    status: int,
) -> None:
    emulator.inject(Fault("status", status=status, times=2))
    dashscope_error(http.get(f"{ds}/fine-tunes"), status, "InternalError")
    response = http.get(f"{oa}/fine_tuning/jobs")
    assert response.status_code == status
    assert openai_contract(response)["error"]["type"] == "server_error"


def test_http_date_retry_after_is_passed_verbatim(
    emulator: FineTuningEmulator, ds: str, http: requests.Session
) -> None:
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    emulator.inject(Fault("status", status=503, headers={"Retry-After": date}))
    assert http.get(f"{ds}/fine-tunes").headers["retry-after"] == date


def test_matching_by_vendor_method_and_path(
    emulator: FineTuningEmulator, ds: str, oa: str, http: requests.Session
) -> None:
    job_id = emulator.seed_job("dashscope")
    emulator.inject(Fault("status", vendor="dashscope", method="post", path=r"/cancel$", status=500, times=5))
    assert http.get(f"{ds}/fine-tunes/{job_id}").status_code == 200
    assert http.get(f"{oa}/fine_tuning/jobs").status_code == 200
    assert http.post(f"{ds}/fine-tunes/{job_id}/cancel").status_code == 500
    assert emulator.job("dashscope", job_id)["status"] == "RUNNING"  # type: ignore[index]
    assert [r.fault for r in emulator.requests] == [None, None, "status"]


def test_times_then_spent_and_order_of_injection(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    emulator.inject(Fault("status", status=502, times=2))
    emulator.inject(Fault("status", status=504, times=1))
    statuses = [http.get(f"{ds}/fine-tunes").status_code for _ in range(5)]
    assert statuses == [502, 502, 504, 200, 200]


def test_every_nth_request(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    emulator.inject(Fault("status", status=503, every=3, times=1000))
    statuses = [http.get(f"{oa}/fine_tuning/jobs").status_code for _ in range(9)]
    assert statuses == [200, 200, 503] * 3


def test_clear_faults(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    emulator.inject(Fault("status", status=500, times=10))
    emulator.clear_faults()
    assert http.get(f"{ds}/fine-tunes").status_code == 200


def test_latency_delays_then_answers(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    emulator.inject(Fault("latency", delay=0.3))
    started = time.monotonic()
    response = http.get(f"{oa}/fine_tuning/jobs")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    assert emulator.requests[-1].fault == "latency"


def test_latency_does_not_serialize_concurrent_requests(emulator: FineTuningEmulator, oa: str) -> None:
    emulator.inject(Fault("latency", delay=0.5, times=100))
    headers = {"Authorization": f"Bearer {emulator.api_key}"}

    def call(_: int) -> int:
        return requests.get(f"{oa}/fine_tuning/jobs", headers=headers, timeout=10).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=100) as pool:
        statuses = list(pool.map(call, range(100)))
    assert statuses == [200] * 100
    assert time.monotonic() - started < 10  # 100 x 0.5 s in sequence would take 50 s


def test_hang_times_the_client_out(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    emulator.inject(Fault("hang"))
    with pytest.raises(requests.ReadTimeout):
        http.get(f"{ds}/fine-tunes", timeout=0.5)
    record = emulator.requests[-1]
    assert (record.status, record.fault) == (0, "hang")
    assert http.get(f"{ds}/fine-tunes", timeout=5).status_code == 200


def test_drop_closes_without_a_response(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    job_id = emulator.seed_job("dashscope")
    emulator.inject(Fault("drop", method="POST"))
    with pytest.raises(requests.ConnectionError):
        http.post(f"{ds}/fine-tunes/{job_id}/cancel")
    assert emulator.job("dashscope", job_id)["status"] == "RUNNING"  # type: ignore[index]
    assert (emulator.requests[-1].status, emulator.requests[-1].fault) == (0, "drop")
    assert http.get(f"{ds}/fine-tunes/{job_id}").status_code == 200


def test_drop_mid_body_breaks_the_read(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    emulator.inject(Fault("drop_mid_body"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        http.get(f"{oa}/fine_tuning/jobs")
    assert (emulator.requests[-1].status, emulator.requests[-1].fault) == (200, "drop_mid_body")


def test_html_proxy_page(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    emulator.inject(Fault("html", status=502))
    response = http.get(f"{ds}/fine-tunes")
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text
    with pytest.raises(requests.JSONDecodeError):
        response.json()


def test_truncated_json(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    emulator.inject(Fault("truncated"))
    response = http.get(f"{oa}/fine_tuning/jobs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content) > 0
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_empty_body(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    emulator.inject(Fault("empty"))
    response = http.get(f"{ds}/fine-tunes")
    assert (response.status_code, response.content) == (200, b"")


@pytest.mark.parametrize("code", ["InternalError", "Throttling.RateQuota"])
def test_dashscope_200_error(emulator: FineTuningEmulator, ds: str, http: requests.Session, code: str) -> None:
    emulator.inject(Fault("dashscope_200_error", code=code))
    response = http.get(f"{ds}/fine-tunes")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"request_id", "code", "message"}
    assert body["code"] == code


def test_lose_response_deletes_then_retry_is_404(
    emulator: FineTuningEmulator, ds: str, http: requests.Session, dashscope_error
) -> None:
    job_id = emulator.seed_job("dashscope", status="SUCCEEDED", age=3600)
    emulator.inject(Fault("lose_response", method="DELETE"))
    with pytest.raises(requests.ConnectionError):
        http.delete(f"{ds}/fine-tunes/{job_id}")
    assert emulator.job("dashscope", job_id) is None
    assert (emulator.requests[-1].status, emulator.requests[-1].fault) == (0, "lose_response")
    dashscope_error(http.delete(f"{ds}/fine-tunes/{job_id}"), 404, "NotFound")


def test_lose_response_cancels_then_retry_is_unsupported(
    emulator: FineTuningEmulator, ds: str, oa: str, http: requests.Session, dashscope_error
) -> None:
    ds_job = emulator.seed_job("dashscope")
    oa_job = emulator.seed_job("openai")
    emulator.inject(Fault("lose_response", path=r"/cancel$", times=2))
    for url in (f"{ds}/fine-tunes/{ds_job}/cancel", f"{oa}/fine_tuning/jobs/{oa_job}/cancel"):
        with pytest.raises(requests.ConnectionError):
            http.post(url)
    assert emulator.job("dashscope", ds_job)["status"] == "CANCELED"  # type: ignore[index]
    assert emulator.job("openai", oa_job)["status"] == "cancelled"  # type: ignore[index]
    dashscope_error(http.post(f"{ds}/fine-tunes/{ds_job}/cancel"), 400, "UnsupportedOperation")
    assert http.post(f"{oa}/fine_tuning/jobs/{oa_job}/cancel").status_code == 400


def test_faults_apply_before_auth(emulator: FineTuningEmulator, ds: str) -> None:
    emulator.inject(Fault("status", status=503))
    response = requests.get(f"{ds}/fine-tunes")
    assert response.status_code == 503
    assert emulator.requests[-1].authorized is False


@pytest.mark.parametrize(
    "kwargs",
    [{"kind": "explode"}, {"kind": "status", "times": 0}, {"kind": "drop", "every": 0}, {"kind": "drop", "path": "("}],
)
def test_invalid_faults_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"unknown fault kind|must be >= 1|invalid path regex"):
        Fault(**kwargs)  # type: ignore[arg-type]


def test_fault_kinds_are_the_documented_set() -> None:
    assert {
        "status",
        "latency",
        "hang",
        "drop",
        "drop_mid_body",
        "html",
        "truncated",
        "empty",
        "dashscope_200_error",
        "lose_response",
    } == CLASSIC_FAULT_KINDS
    assert {"echo_key", "body", "drip", "gzip", "huge", "endless_pages", "redirect"} == HOSTILE_FAULT_KINDS
    assert FAULT_KINDS == CLASSIC_FAULT_KINDS | HOSTILE_FAULT_KINDS
    assert not CLASSIC_FAULT_KINDS & HOSTILE_FAULT_KINDS


def _faults_table_rows() -> dict[str, str]:
    """The rows of the tables headed ``| `kind` |`` under docs/emulator.md's "## Faults", by their kind."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("\n## Faults\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    previous, in_kinds_table = "", False
    for line in section.splitlines():
        if line.startswith("|") and not previous.startswith("|"):  # a table's header
            in_kinds_table = line.startswith("| `kind` |")
        elif in_kinds_table and (found := re.match(r"\| `([a-z0-9_]+)` \|", line)):
            assert found.group(1) not in rows, f"{found.group(1)} has two rows"
            rows[found.group(1)] = line
        previous = line
    return rows


def test_every_kind_and_variant_is_in_the_docs_faults_table() -> None:
    rows = _faults_table_rows()
    undocumented = FAULT_KINDS - set(rows)
    assert not undocumented, f"kinds without a row: {sorted(undocumented)}"
    for kind, variants in VARIANTS.items():
        # The hostile table's second cell lists the variants, the default first.
        listed = re.findall(r"`(\w+)`", rows[kind].split("|")[2])
        assert listed == list(variants), f"{kind}: the docs list variants {listed}, not {list(variants)}"


def test_stop_is_fast_with_hanging_requests_in_flight() -> None:
    emu = FineTuningEmulator(api_key="k" * 16)
    emu.start()
    emu.inject(Fault("hang", times=5))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            requests.get(
                f"{emu.url('openai')}/fine_tuning/jobs", headers={"Authorization": "Bearer " + "k" * 16}, timeout=30
            )
        except requests.RequestException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for thread in threads:
        thread.start()
    while len(emu.requests) < 5:
        time.sleep(0.01)
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 2
    for thread in threads:
        thread.join(5)
    assert len(errors) == 5
    assert all(isinstance(exc, requests.ConnectionError) for exc in errors)
