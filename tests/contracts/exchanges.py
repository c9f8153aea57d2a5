"""Every exchange with the emulator, judged against the vendor's published API document.

Which exchanges, and which half of each:

- the vendors that publish a document: OpenAI, Together AI, and Azure OpenAI's dated API at the api-version we
  send by default (``2024-10-21``). DashScope publishes none; Azure's v1 API (``/openai/v1``) and other
  api-versions are not judged (no document of theirs is read here);
- the request, when our provider sent it (its ``User-Agent`` is the transports' ``airflow-provider-ft/...``): a
  test's raw requests are often wrong on purpose, and an SDK's are the SDK's business;
- the answer, unless a fault was injected into the exchange (a fault's answer is wrong on purpose) or the answer
  was not sent whole (dropped, cut short, or longer than the log keeps);
- an exchange on a path the document has no operation on is judged only as an error answer (against the vendor's
  error object); its request is not judged.

The documents are looked up by file name in ``$FT_CONTRACTS_DIR``, then ``shared/api/`` beside the repository,
then ``tests/contracts/`` (see the README there); a vendor whose document is found nowhere is not judged.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airflow_provider_ft.transport.settings import USER_AGENT
from airflow_provider_ft_emulator.recording import RecordedRequest
from tests.contracts.schemas import Contract

HERE = Path(__file__).parent
REPOSITORY = HERE.parents[1]
#: Where the documents are looked for, in this order (``$FT_CONTRACTS_DIR`` first when set).
SEARCH_PATH = (REPOSITORY.parent / "shared" / "api", HERE)
#: The api-version of Azure OpenAI's dated API whose document is read.
AZURE_VERSION = "2024-10-21"
PROVIDER_AGENT = USER_AGENT.partition("/")[0] + "/"

# OpenAI's error body: the ``ErrorResponse`` component of openai/openai-openapi (openapi.yaml, all four keys of
# ``Error`` required), for a document trimmed to paths that name no error answer and so carries no such component.
OPENAI_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "param", "type"],
            "properties": {
                "code": {"type": ["string", "null"]},
                "message": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "type": {"type": "string"},
            },
        }
    },
}


@dataclass(frozen=True)
class Correction:
    """Where the suite reads a document otherwise than its letter says, and the evidence that the letter is wrong.

    :param document: the document's name (:attr:`Published.name`)
    :param pointer: the JSON pointer of the schema read otherwise
    :param change: what the suite reads there instead, given what the document has
    :param evidence: why
    """

    document: str
    pointer: str
    change: Callable[[Any], Any]
    evidence: str


CORRECTIONS = (
    Correction(
        "openai",
        "/components/schemas/FineTuningJob/properties/status",
        lambda status: {**status, "enum": [*status["enum"], "paused"]},
        "The document's own example answer of POST /fine_tuning/jobs/{fine_tuning_job_id}/pause (its x-oaiMeta) "
        'has "status": "paused", a word the job schema\'s enum lacks.',
    ),
    Correction(
        "openai",
        "/components/schemas/ListFilesResponse",
        lambda listing: {
            **listing,
            "properties": {
                **listing["properties"],
                **{key: {"type": ["string", "null"]} for key in ("first_id", "last_id")},
            },
        },
        "first_id and last_id are required strings, but an empty page has no id to give; the document shows no "
        "empty page. A judgement, not a documented fact: the emulator answers null there.",
    ),
    Correction(
        "together",
        "/components/schemas/TrainingMethodSFT/properties/train_on_inputs",
        lambda field: {key: value for key, value in field.items() if key != "type"},
        'train_on_inputs is "oneOf: boolean or \'auto\'" with default "auto", next to a "type: boolean" that '
        "contradicts both; the type is dropped.",
    ),
    Correction(
        "azure-2024-10-21",
        "/definitions/ErrorCode",
        lambda code: {"anyOf": [code, {"type": "string", "pattern": "^[1-5][0-9][0-9]$"}]},
        "Not a correction but an exemption: Azure's gateway, in front of the service this document describes, "
        "answers a wrong key (401) and an unknown path or missing api-version (404) with the HTTP status as the "
        'code ({"error": {"code": "401", ...}}); the emulator sends those as they are commonly reported '
        "(docs/wire/azure_openai.md), which no Microsoft document describes.",
    ),
)


@dataclass(frozen=True)
class Published:
    """One vendor document: its file name, where its error object is, and its source."""

    name: str
    file: str
    error_schema: str | None
    fallback_error: Mapping[str, Any] | None = None


PUBLISHED = (
    Published("openai", "openai-fine-tuning.openapi.yaml", "/components/schemas/ErrorResponse", OPENAI_ERROR_SCHEMA),
    Published("azure-2024-10-21", "azure-openai-2024-10-21.json", "/definitions/ErrorResponse"),
    Published("together", "together-fine-tuning.openapi.yaml", "/components/schemas/ErrorData"),
)


def find_document(file: str) -> Path | None:
    """Where the document ``file`` is, or ``None``."""
    places = [Path(os.environ["FT_CONTRACTS_DIR"])] if os.environ.get("FT_CONTRACTS_DIR") else []
    for place in [*places, *SEARCH_PATH]:
        if (place / file).is_file():
            return place / file
    return None


def load(published: Published, path: Path) -> Contract:
    """The contract of ``published``, read from ``path``."""
    text = path.read_text(encoding="utf-8")
    document = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_LOADER)
    for correction in CORRECTIONS:
        if correction.document == published.name and has_pointer(document, correction.pointer):
            _replace(document, correction.pointer, correction.change)
    pointer = published.error_schema
    if pointer is not None and not has_pointer(document, pointer):
        pointer = None
    return Contract(
        published.name,
        document,
        source=str(path),
        error_schema=pointer,
        fallback_error=published.fallback_error if pointer is None else None,
    )


@functools.cache
def contracts() -> dict[str, Contract]:
    """Every document found, read once per process, by name."""
    found = {}
    for published in PUBLISHED:
        path = find_document(published.file)
        if path is not None:
            found[published.name] = load(published, path)
    return found


def contract_name(exchange: RecordedRequest) -> str | None:
    """Which document judges ``exchange`` (``None``: none; see the module's doc)."""
    if exchange.vendor in ("openai", "together"):
        return exchange.vendor
    if exchange.vendor == "azure" and not exchange.path.startswith("/v1/"):
        return f"azure-{AZURE_VERSION}" if exchange.query.get("api-version") == AZURE_VERSION else None
    return None


def sent_by_provider(exchange: RecordedRequest) -> bool:
    """Whether our provider's transports sent ``exchange``."""
    return exchange.headers.get("user-agent", "").startswith(PROVIDER_AGENT)


def judgeable_answer(exchange: RecordedRequest) -> bool:
    """Whether the answer of ``exchange`` is one to judge: no fault, sent whole and kept whole."""
    whole = exchange.answered and exchange.answer_size == len(exchange.answer_body)
    return exchange.fault is None and exchange.status > 0 and whole


@dataclass(frozen=True)
class Verdict:
    """What was judged of one exchange, and what is wrong with it."""

    exchange: RecordedRequest
    contract: str
    request_judged: bool
    answer_judged: bool
    problems: tuple[str, ...]

    def describe(self) -> str:
        ex = self.exchange
        query = "&".join(f"{key}={value}" for key, value in ex.query.items())
        head = f"{self.contract}: {ex.method} {ex.path}{'?' + query if query else ''} -> {ex.status}"
        return "\n".join([head, *(f"    {problem}" for problem in self.problems)])


def judge(
    exchange: RecordedRequest, found: Mapping[str, Contract] | None = None, *, answers: bool = True
) -> Verdict | None:
    """``exchange`` judged against its vendor's document; ``None`` when no document judges it.

    :param exchange: a finished exchange of the emulator
    :param found: the contracts to use (default: :func:`contracts`)
    :param answers: whether to judge the answer too (not for a test marked ``off_contract``)
    """
    name = contract_name(exchange)
    contract = (contracts() if found is None else found).get(name or "")
    if contract is None or name is None:
        return None
    matched = contract.operation(exchange.method, exchange.path)
    problems: list[str] = []
    request_judged = matched is not None and sent_by_provider(exchange)
    if request_judged and matched is not None:
        op, path_params = matched
        problems += contract.request_problems(
            op,
            path_params,
            exchange.query,
            exchange.headers.get("content-type", ""),
            exchange.raw_body,
            complete=exchange.body_size == len(exchange.raw_body),
        )
    elif sent_by_provider(exchange) and contract.covers(exchange.path):
        problems.append(f"method {exchange.method} is not documented on this path")
        request_judged = True
    answer_judged = answers and judgeable_answer(exchange) and (matched is not None or exchange.status >= 400)
    if answer_judged:
        op = matched[0] if matched is not None else None
        found = contract.answer_problems(op, exchange.status, exchange.answer_type, exchange.answer_body)
        problems += [f"answer {problem}" for problem in found]
    return Verdict(exchange, name, request_judged, answer_judged, tuple(problems))


@dataclass
class Tally:
    """What was judged, per document, and every verdict with problems."""

    requests: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    failed: list[Verdict] = field(default_factory=list)

    def add(self, verdict: Verdict | None) -> None:
        if verdict is None:
            return
        self.requests[verdict.contract] += verdict.request_judged
        self.answers[verdict.contract] += verdict.answer_judged
        if verdict.problems:
            self.failed.append(verdict)

    def report(self) -> str:
        """The failed verdicts, for a test failure."""
        return "\n".join(verdict.describe() for verdict in self.failed)


def tally(
    exchanges: Iterable[RecordedRequest], found: Mapping[str, Contract] | None = None, *, answers: bool = True
) -> Tally:
    """Judge every exchange of ``exchanges`` (``answers``: their answers too)."""
    result = Tally()
    for exchange in exchanges:
        result.add(judge(exchange, found, answers=answers))
    return result


def _replace(document: dict[str, Any], pointer: str, change: Callable[[Any], Any]) -> None:
    *parents, last = pointer.strip("/").split("/")
    node: Any = document
    for token in parents:
        node = node[token]
    node[last] = change(node[last])


def has_pointer(document: Mapping[str, Any], pointer: str) -> bool:
    """Whether ``document`` has a node at ``pointer``."""
    node: Any = document
    for token in pointer.strip("/").split("/"):
        if not isinstance(node, Mapping) or token not in node:
            return False
        node = node[token]
    return True


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
