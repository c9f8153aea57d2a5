"""Listings that never end, each vendor in its own paging style.

OpenAI pages by cursor (``after`` = the last id seen, ``has_more``); DashScope by number (``page_no``,
``page_size``, ``total``). Every page is full and says more follow; what changes is what is on it. Together AI's
listing does not page: it cannot promise more, so its "endless" listing is one answer of the variant's jobs.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_ft_emulator.exchange import Exchange
from airflow_provider_ft_emulator.specimens import page_answer, shape_of, specimen_job

#: What a page of the ``non_objects`` variant is full of.
NON_OBJECTS: tuple[Any, ...] = (None, 1, "ft-not-a-job", [], True, 2.5)
#: DashScope ``total`` of the ``total`` and ``non_objects`` variants.
FOREVER_TOTAL = 10**12
#: (default, largest) page size, as the real listings have them.
OPENAI_LIMIT = (20, 100)
DASHSCOPE_PAGE_SIZE = (10, 100)
_FRESH_PREFIX = "ftjob-endless"


def endless_page(exchange: Exchange, variant: str) -> dict[str, Any]:
    """The page to answer a listing request with under ``variant``.

    :param exchange: the listing request (its query says which page)
    :param variant: ``fresh``, ``alternate``, ``same``, ``total`` or ``non_objects``
    """
    if shape_of(exchange) == "together":
        return _together_page(exchange, variant)
    if shape_of(exchange) != "dashscope":
        return _openai_page(exchange, variant)
    return _dashscope_page(exchange, variant)


def _together_page(exchange: Exchange, variant: str) -> dict[str, Any]:
    count = OPENAI_LIMIT[0]
    if variant == "non_objects":
        return page_answer(exchange, _non_objects(count))
    return page_answer(exchange, [specimen_job(exchange, f"ft-endless-{index:012d}") for index in range(count)])


def _openai_page(exchange: Exchange, variant: str) -> dict[str, Any]:
    limit = _query_int(exchange, "limit", *OPENAI_LIMIT)
    if variant == "non_objects":
        return page_answer(exchange, _non_objects(limit), more=True)
    ids = _openai_ids(variant, exchange.entry.query.get("after"), limit)
    return page_answer(exchange, [specimen_job(exchange, job_id) for job_id in ids], more=True)


def _openai_ids(variant: str, after: str | None, limit: int) -> list[str]:
    if variant == "same":
        return [f"ftjob-same{index:014d}" for index in range(limit)]
    if variant == "alternate":
        first = [f"ftjob-alternateA{index:08d}" for index in range(limit)]
        second = [f"ftjob-alternateB{index:08d}" for index in range(limit)]
        return second if after == first[-1] else first
    digits = (after or "").removeprefix(_FRESH_PREFIX)
    start = int(digits) + 1 if after and after.startswith(_FRESH_PREFIX) and _is_number(digits) else 0
    return [f"{_FRESH_PREFIX}{start + index:017d}" for index in range(limit)]


def _dashscope_page(exchange: Exchange, variant: str) -> dict[str, Any]:
    page_no = _query_int(exchange, "page_no", 1, None)
    size = _query_int(exchange, "page_size", *DASHSCOPE_PAGE_SIZE)
    one_more = (page_no + 1) * size
    if variant == "non_objects":
        return page_answer(exchange, _non_objects(size), page_no=page_no, page_size=size, total=FOREVER_TOTAL)
    shown = page_no
    if variant == "same":
        ids = [f"ft-same-{index:08d}" for index in range(size)]
    elif variant == "alternate":
        shown = 2 - page_no % 2
        ids = [f"ft-alternate{'AB'[shown - 1]}-{index:08d}" for index in range(size)]
    else:
        ids = [f"ft-endless-{(page_no - 1) * size + index:012d}" for index in range(size)]
    total = FOREVER_TOTAL if variant == "total" else one_more
    jobs = [specimen_job(exchange, job_id) for job_id in ids]
    return page_answer(exchange, jobs, page_no=shown, page_size=size, total=total)


def _non_objects(count: int) -> list[Any]:
    return [NON_OBJECTS[index % len(NON_OBJECTS)] for index in range(count)]


def _query_int(exchange: Exchange, name: str, default: int, largest: int | None) -> int:
    raw = exchange.entry.query.get(name, "")
    value = int(raw) if _is_number(raw) else default
    value = max(value, 1)
    return value if largest is None else min(value, largest)


def _is_number(text: str) -> bool:
    # ASCII only: str.isdigit() also accepts digits such as "²" that int() refuses.
    return text.isascii() and text.isdigit()
