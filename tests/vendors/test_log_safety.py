"""Server text never forges a log line (issue #10 §6): escaped in errors, progress lines and warnings; pure."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningApiError
from airflow_provider_ft.jobs import FineTuningJob, JobStatus
from airflow_provider_ft.vendors import DashScopeDialect, OpenAIDialect, base
from airflow_provider_ft.vendors.base import UnknownStatusWarnings
from airflow_provider_ft.vendors.decoding import body_snippet
from airflow_provider_ft.vendors.wire import ApiResponse

FORGED = "x\n2026-01-01 00:00:00 INFO job finished \x1b[32mOK\x1b[0m"


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain text, with spaces", "plain text, with spaces"),
        ("a\nb", "a\\nb"),
        ("tab\there\r", "tab\\there\\r"),
        ("\x00\x1b\x7f", "\\x00\\x1b\\x7f"),
        ("line\u2028sep\u200bzero-width", "line\\u2028sep\\u200bzero-width"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        ("back\\slash é 漢字", "back\\slash é 漢字"),
        (42, "42"),
        (None, "None"),
    ],
)
def test_printable_escapes_what_does_not_print_as_repr_does_without_quotes(text: object, escaped: str) -> None:
    assert printable(text) == escaped


def test_printable_cuts_to_the_limit_and_says_so() -> None:
    assert printable("abcdef", 4) == "abcd..."
    assert printable("abcd", 4) == "abcd"
    assert printable("ab\ncd", 3) == "ab..."  # an escape is never cut in half
    assert printable("abc", 0) == "..."
    with pytest.raises(ValueError, match="limit"):
        printable("abc", -1)


def test_describe_progress_escapes_server_text() -> None:
    job = FineTuningJob(
        id="ft-1",
        vendor="openai",
        status=JobStatus.FAILED,
        vendor_status="failed\nINFO forged",
        fine_tuned_model=FORGED,
        error=FORGED + "y" * 2000,
    )
    line = job.describe_progress()
    assert all(char.isprintable() for char in line)
    assert "failed\\nINFO forged" in line
    assert line.endswith("...")
    assert len(line) < 1000


def test_log_progress_warns_about_an_unknown_status_escaped(caplog: pytest.LogCaptureFixture) -> None:
    job = FineTuningJob(id="ft\n1", vendor="dashscope", status=JobStatus.UNKNOWN, vendor_status=FORGED)
    with caplog.at_level(logging.INFO):
        job.log_progress(logging.getLogger("test.progress"))
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert all(char.isprintable() for message in messages for char in message)
    assert "ft\\n1" in messages[1]


def test_an_error_message_from_the_server_is_escaped_with_code_and_request_id() -> None:
    dialect = DashScopeDialect()
    body = {"code": "Bad\nCode", "message": FORGED, "request_id": "r-1\r\nX-Forged: 1"}
    with pytest.raises(FineTuningApiError) as raised:
        dialect.decode(dialect.get_job("ft-1"), ApiResponse(400, {}, json.dumps(body).encode()))
    text = str(raised.value)
    assert all(char.isprintable() for char in text)
    assert raised.value.vendor_code == "Bad\\nCode"
    assert raised.value.request_id == "r-1\\r\\nX-Forged: 1"


def test_an_html_error_body_snippet_is_escaped_and_short() -> None:
    body = b"<html>\x1b[31m" + FORGED.encode() + b"\x00" + b"z" * 100_000
    snippet = body_snippet(body)
    assert all(char.isprintable() for char in snippet)
    assert snippet.endswith("...")
    assert len(snippet) <= 200
    dialect = OpenAIDialect()
    with pytest.raises(FineTuningApiError) as raised:
        dialect.decode(dialect.get_job("ftjob-1"), ApiResponse(502, {}, body))
    assert "\x1b" not in str(raised.value)


def test_the_unknown_status_warning_is_escaped(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "_unknown_statuses", base.UnknownStatusWarnings())
    with caplog.at_level(logging.WARNING):
        OpenAIDialect().parse_job({"id": "ftjob-1", "status": "odd\nINFO forged status"})
    (message,) = [r.getMessage() for r in caplog.records if "odd" in r.getMessage()]
    assert "odd\\nINFO forged status" in message


def test_unknown_status_words_remembered_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    warnings = UnknownStatusWarnings(limit=3)
    with caplog.at_level(logging.WARNING):
        for number in [*range(10), *range(10)]:
            warnings.warn("openai", f"word-{number}")
    messages = [record.getMessage() for record in caplog.records]
    assert [m for m in messages if "reported job status" in m] == [
        f"openai reported job status 'word-{n}', which this provider does not know; treating it as UNKNOWN "
        "(not terminal)"
        for n in range(3)
    ]
    assert sum("further unknown words" in m for m in messages) == 1
    assert len(messages) == 4
