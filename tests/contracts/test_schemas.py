"""The check of exchanges against the vendors' published documents: that it runs, and that it can fail.

Every test of the suite is judged by the autouse fixture ``published_contracts`` (tests/conftest.py); these prove
the judge sees real exchanges of our provider for each vendor, catches a wrong answer and a wrong request, and
reads the documents' older keywords as meant.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.identity import TaskIdentity
from airflow_provider_ft.vendors.wire import JobSpec
from airflow_provider_ft_emulator import FineTuningEmulator
from airflow_provider_ft_emulator.recording import RecordedRequest
from tests.conftest import ConnectionFactory
from tests.contracts.exchanges import (
    CORRECTIONS,
    PUBLISHED,
    Tally,
    contracts,
    find_document,
    has_pointer,
    judge,
    tally,
)
from tests.contracts.schemas import Contract, multipart_form, normalize

#: The vendors whose documents judge exchanges, and the document of each (Azure: its dated API, our default).
JUDGED = {"openai": "openai", "azure": "azure-2024-10-21", "together": "together"}
MODELS = {
    "openai": "gpt-4o-mini-2024-07-18",
    "azure": "gpt-4o-mini-2024-07-18",
    "together": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
}
CONN_TYPES = {
    "openai": "openaifinetuning",
    "azure": "azureopenaifinetuning",
    "together": "togetherfinetuning",
}
IDENTITY = TaskIdentity("dag", "train", "manual__1")
RECORD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
#: Fewest requests of the representative flow judged, per vendor: the listing that looks for the job, create,
#: retrieve, events and cancel (and the upload and file listing where the document has the files paths).
FLOW_REQUESTS = 5


def document_of(vendor: str) -> Contract:
    found = contracts().get(JUDGED[vendor])
    if found is None:
        published = next(p for p in PUBLISHED if p.name == JUDGED[vendor])
        pytest.skip(f"{published.file} is in none of $FT_CONTRACTS_DIR, shared/api/, tests/contracts/")
    return found


@pytest.fixture(params=sorted(JUDGED))
def judged_vendor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run_a_job(emulator: FineTuningEmulator, make_connection: ConnectionFactory, vendor: str, tmp_path: Path) -> str:
    """What a task does with the vendor through our provider: upload, create, read, list, read events, cancel."""
    conn_id = make_connection(f"contract_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), max_retries=0)
    hook = FineTuningHook(conn_id)
    source = tmp_path / "train.jsonl"
    source.write_text(json.dumps(RECORD) + "\n" + json.dumps(RECORD) + "\n")
    spec = JobSpec(model=MODELS[vendor], training_file="file-x")
    remote, _ = hook.upload_file(hook.check_training_file(source, spec), settle_delays=(0,))
    job = hook.submit_job(dataclasses.replace(spec, training_file=remote.id), IDENTITY, settle_delays=(0,)).job
    hook.get_job(job.id)
    hook.new_events(job.id)
    hook.cancel_job(job.id)
    return job.id


def test_a_representative_flow_is_judged_both_ways_and_conforms(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, judged_vendor: str, tmp_path: Path
) -> None:
    document = document_of(judged_vendor)
    run_a_job(emulator, make_connection, judged_vendor, tmp_path)

    result = tally(emulator.requests, {document.name: document})

    assert result.failed == [], result.report()
    covered = [exchange for exchange in emulator.requests if document.covers(exchange.path)]
    assert result.requests[document.name] == len(covered) >= FLOW_REQUESTS
    assert result.answers[document.name] == len(covered)


def flow_exchanges(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, vendor: str, tmp_path: Path
) -> list[RecordedRequest]:
    run_a_job(emulator, make_connection, vendor, tmp_path)
    return emulator.requests


def only(exchanges: list[RecordedRequest], method: str, ending: str) -> RecordedRequest:
    (found,) = [ex for ex in exchanges if ex.method == method and ex.path.endswith(ending)]
    return found


def problems_of(exchange: RecordedRequest, vendor: str) -> list[str]:
    verdict = judge(exchange, {JUDGED[vendor]: document_of(vendor)})
    assert verdict is not None
    return list(verdict.problems)


def with_answer(exchange: RecordedRequest, body: Any) -> RecordedRequest:
    raw = json.dumps(body).encode()
    return dataclasses.replace(exchange, answer_body=raw, answer_size=len(raw))


def test_a_wrong_answer_is_caught(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, judged_vendor: str, tmp_path: Path
) -> None:
    exchanges = flow_exchanges(emulator, make_connection, judged_vendor, tmp_path)
    job_path = "/fine-tunes" if judged_vendor == "together" else "/fine_tuning/jobs"
    retrieve = next(ex for ex in exchanges if ex.method == "GET" and ex.path.startswith(f"{job_path}/"))
    answer = json.loads(retrieve.answer_body)
    assert problems_of(retrieve, judged_vendor) == []

    assert any(
        "status" in p for p in problems_of(with_answer(retrieve, {**answer, "status": "warming"}), judged_vendor)
    )
    assert any("id" in p for p in problems_of(with_answer(retrieve, {**answer, "id": 7}), judged_vendor))
    not_json = dataclasses.replace(retrieve, answer_type="text/html")
    assert problems_of(not_json, judged_vendor) == ["answer a text/html answer where JSON is documented"]


def test_a_wrong_request_is_caught_when_our_provider_sent_it(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, judged_vendor: str, tmp_path: Path
) -> None:
    exchanges = flow_exchanges(emulator, make_connection, judged_vendor, tmp_path)
    create = only(exchanges, "POST", "/fine-tunes" if judged_vendor == "together" else "/fine_tuning/jobs")
    assert problems_of(create, judged_vendor) == []
    body = json.loads(create.raw_body)
    without_model = json.dumps({key: value for key, value in body.items() if key != "model"}).encode()
    wrong = dataclasses.replace(create, raw_body=without_model, body_size=len(without_model))

    assert any("model" in problem for problem in problems_of(wrong, judged_vendor))
    undocumented = dataclasses.replace(create, query={**create.query, "dry_run": "true"})
    assert "query parameter 'dry_run' is not documented" in problems_of(undocumented, judged_vendor)
    by_hand = dataclasses.replace(wrong, headers={**wrong.headers, "user-agent": "python-requests/2"})
    assert problems_of(by_hand, judged_vendor) == [], "a test's own raw request is not judged"


def test_a_multipart_upload_is_read_as_its_form(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, judged_vendor: str, tmp_path: Path
) -> None:
    exchanges = flow_exchanges(emulator, make_connection, judged_vendor, tmp_path)
    upload = only(exchanges, "POST", "/files/upload" if judged_vendor == "together" else "/files")
    if not document_of(judged_vendor).covers(upload.path):
        pytest.skip("this copy of the document has no files paths")
    form = multipart_form(upload.headers["content-type"], upload.raw_body)
    assert form["purpose"] == "fine-tune"
    assert form["file"] == "<file>"
    assert problems_of(upload, judged_vendor) == []
    wrong = upload.raw_body.replace(b"fine-tune", b"fine-tuning", 1)

    assert any("purpose" in p for p in problems_of(dataclasses.replace(upload, raw_body=wrong), judged_vendor))


def test_an_injected_fault_is_exempt_from_the_answer_check(emulator: FineTuningEmulator) -> None:
    contract = document_of("openai")
    recorded = RecordedRequest(
        vendor="openai",
        method="GET",
        path="/fine_tuning/jobs/ftjob-1",
        query={},
        headers={"user-agent": "airflow-provider-ft/1"},
        body=None,
        authorized=True,
        status=200,
        fault="body",
        answer_type="application/json",
        answer_body=b'{"not": "a job"}',
        answer_size=16,
        answered=True,
    )
    faulted = judge(recorded, {"openai": contract})
    clean = judge(dataclasses.replace(recorded, fault=None), {"openai": contract})

    assert faulted is not None
    assert clean is not None
    assert (faulted.request_judged, faulted.answer_judged, faulted.problems) == (True, False, ())
    assert clean.answer_judged
    assert clean.problems


def test_a_failing_exchange_is_reported_with_its_problems() -> None:
    tally_ = Tally()
    recorded = RecordedRequest("openai", "GET", "/fine_tuning/jobs", {"limit": "x"}, {}, None, True, 200, None)
    verdict = judge(dataclasses.replace(recorded, headers={"user-agent": "airflow-provider-ft/1"}))
    if verdict is None:
        pytest.skip("the OpenAI document is not found")
    tally_.add(verdict)
    assert tally_.report().startswith("openai: GET /fine_tuning/jobs?limit=x -> 200\n    query limit: ")


@pytest.mark.parametrize(
    ("schema", "swagger", "null_allowed"),
    [
        ({"type": "string", "nullable": True}, False, True),
        ({"type": "string"}, False, False),
        ({"$ref": "#/x", "nullable": True}, False, True),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": []}, True, True),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, True, False),
    ],
)
def test_older_keywords_are_read_as_their_authors_meant(
    schema: dict[str, Any], swagger: bool, null_allowed: bool
) -> None:
    read = normalize(schema, swagger=swagger)
    if "properties" in schema:
        read = read["properties"]["a"]
    admits_null = "null" in (read.get("type") or []) or {"type": "null"} in read.get("anyOf", [])
    assert admits_null is null_allowed


def test_a_boolean_exclusive_minimum_becomes_the_numeric_form() -> None:
    assert normalize({"minimum": 0, "exclusiveMinimum": True}, swagger=False) == {"exclusiveMinimum": 0}
    assert normalize({"minimum": 0, "exclusiveMinimum": False}, swagger=False) == {"minimum": 0}


@pytest.mark.parametrize("correction", CORRECTIONS, ids=lambda c: f"{c.document}:{c.pointer}")
def test_every_correction_still_changes_what_the_document_says(correction: Any) -> None:
    """A correction the vendor has made needless (the document fixed) is noticed and can be dropped."""
    published = next(p for p in PUBLISHED if p.name == correction.document)
    path = find_document(published.file)
    if path is None:
        pytest.skip(f"{published.file} is not found")
    document = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    if not has_pointer(document, correction.pointer):
        pytest.skip(f"{path} has no {correction.pointer} (an older copy of the document)")
    node: Any = document
    for token in correction.pointer.strip("/").split("/"):
        node = node[token]
    assert correction.change(node) != node
    assert correction.evidence
