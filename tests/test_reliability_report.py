"""``scripts/reliability_report.py``: rendering a run's records, and the check that the README's table still matches.

Small hand-made documents of the shape the reliability suite's conftest writes; no pytest run, no network.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reliability_report.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reliability_report", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


report = load_script()


def case(area: str, row: str, column: str = "-", vendor: str | None = None, **fields: Any) -> dict[str, Any]:
    """One record as the conftest writes it."""
    record: dict[str, Any] = {
        "nodeid": f"tests/reliability/test_x.py::test_{area}[{row}-{column}-{vendor}]".replace(" ", "_"),
        "area": area,
        "row": row,
        "column": column,
        "vendor": vendor,
        "label": row,
        "expect": "",
        "outcome": "passed",
        "duration": 0.25,
        "properties": {},
    }
    record.update(fields)
    return record


def document(tests: list[dict[str, Any]], **facts: Any) -> dict[str, Any]:
    return {
        "generated_at": "2026-11-24T10:00:00+00:00",
        "python": "3.11.7",
        "airflow": "3.3.2",
        "exitstatus": 0,
        "tests": tests,
        **facts,
    }


def faults_run() -> list[dict[str, Any]]:
    return [
        case("faults", fault, operation, vendor, label=f"{fault} fault", expect="succeeds")
        for fault in ("429", "503")
        for operation in ("get", "cancel")
        for vendor in ("dashscope", "openai")
    ]


def readme_with(body: str) -> str:
    return f"# project\n\n## Reliability\n\nProse.\n\n{report.START}\n{body}\n{report.END}\n\n## After\n"


@pytest.fixture
def readme(tmp_path: Path) -> Path:
    """A README whose section was rendered from ``faults_run()`` by an earlier run, on another day and machine."""
    earlier = document(faults_run(), generated_at="2026-01-02T03:04:05+00:00", python="3.11.2", airflow="3.3.1")
    path = tmp_path / "README.md"
    path.write_text(readme_with(report.render(earlier, 0, 93.0, report.SUITE_SOURCE)))
    return path


def write_json(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "reliability.json"
    path.write_text(json.dumps(doc))
    return path


# -- rendering ----------------------------------------------------------------------------------------------------


def test_a_known_area_keeps_its_table() -> None:
    body = report.render(document(faults_run()), 0, None, "a test")

    assert "| faults | 2 faults x 2 operations x vendors, each within a time bound" in body
    assert "| fault | expected | get | cancel |" in body
    assert "| 429 fault | succeeds | ✓ ✓ | ✓ ✓ |" in body
    assert report.FAULT_NOTE in body


def test_an_unknown_area_gets_a_summary_row_and_a_table_with_one_mark_per_vendor() -> None:
    tests = [
        case("key echo", "error text", "get", "openai"),
        case("key echo", "error text", "get", "dashscope", outcome="failed"),
        case("key echo", "error text", "list", "dashscope"),
        case("key echo", "log line", "get", "openai", outcome="xfailed", properties={"xfail_reason": "issue 12"}),
    ]
    body = report.render(document(tests), 1, None, "a test")

    description = report.AREA_DESCRIPTIONS["key echo"]
    assert f"| key echo | {description} (2 rows x 2 columns x vendors) | 2 | 1 | 1 |" in body
    assert "**Key echo (one mark per vendor)**" in body
    assert "| case | get | list |" in body
    assert "| error text | ✗ ✓ | ✓ · |" in body, "DashScope first, then OpenAI, whatever order the tests ran in"
    assert "| log line | · ⚠ | · · |" in body
    assert "- ⚠ known bug, 1 case (strict xfail until fixed): issue 12" in body


def test_unknown_areas_come_after_the_known_ones_in_order_of_first_appearance() -> None:
    tests = [
        case("zeta", "one"),
        case("secrets", "password in the host URL", "transport error"),
        case("alpha", "two"),
        case("faults", "429", "get", "dashscope"),
        case("zeta", "three"),
    ]
    body = report.render(document(tests), 0, None, "a test")

    overview = [line.split(" | ")[0] for line in body.splitlines() if line.startswith("| ") and " | " in line]
    assert overview[2:6] == ["| faults", "| secrets", "| zeta", "| alpha"]
    assert body.index("**Zeta**") < body.index("**Alpha**")


def test_an_area_without_description_vendors_or_columns_shows_its_shape() -> None:
    tests = [case("small things", "a"), case("small things", "b", outcome="skipped")]
    body = report.render(document(tests), 0, None, "a test")

    assert "| small things | 2 rows | 1 | 0 | 0 |" in body
    assert "| case | result |" in body
    assert "| b | - |" in body


def test_hypothesis_examples_of_an_unknown_area_are_counted_when_their_tests_passed() -> None:
    tests = [
        case("wire shapes", "get", "answer", "dashscope", properties={"examples": 50}),
        case("wire shapes", "list", "answer", "dashscope", properties={"examples": 7}, outcome="failed"),
    ]
    body = report.render(document(tests), 1, None, "a test")

    assert "(2 rows x 1 column x vendors, 50 hypothesis examples that passed)" in body


# -- the check ----------------------------------------------------------------------------------------------------


def test_a_run_that_matches_the_readme_passes_whatever_its_date_machine_and_duration(readme: Path) -> None:
    run = document(faults_run(), generated_at="2026-12-31T23:59:59+00:00", python="3.12.1", airflow="3.3.2")
    rendered = report.render(run, 1, None, report.MAKE_TEST_SOURCE)

    assert report.check(run["tests"], rendered, readme) == []


def test_a_run_that_counts_something_else_fails_with_a_diff_and_the_hint(readme: Path) -> None:
    run = document([*faults_run(), case("faults", "500", "get", "dashscope", label="500 fault", expect="fails")])
    rendered = report.render(run, 0, None, "a test")

    found = report.check(run["tests"], rendered, readme)

    assert found[-1] == report.REFRESH_HINT
    assert "-| faults | 2 faults x 2 operations x vendors, each within a time bound" in "\n".join(found)
    assert "+| 500 fault | fails | ✓ · | · · |" in found
    assert "-_Generated by ...: 8 tests ran, 8 passed" in "\n".join(found)


def test_the_first_lines_counts_are_compared_and_the_rest_of_it_is_not() -> None:
    line = report.headline(document(faults_run()), 2, 61.0, "somewhere")
    other_day = report.headline(document(faults_run(), generated_at="2027-05-05T00:00:00+00:00"), 0, None, "here")
    fewer = report.headline(document(faults_run()[:-1]), 2, 61.0, "somewhere")

    assert report.comparable(line) == report.comparable(other_day)
    assert report.comparable(line) != report.comparable(fewer)


def test_a_run_with_a_failure_fails_the_check_naming_the_test(readme: Path) -> None:
    tests = faults_run()
    tests[3]["outcome"] = "error"
    rendered = report.render(document(tests), 1, None, "a test")

    found = report.check(tests, rendered, readme)

    assert found[0] == "1 reliability test did not pass:"
    assert f"  ✗ error: {tests[3]['nodeid']}" in found
    assert report.REFRESH_HINT not in found, "refreshing the table would commit the failure"


def test_a_long_list_of_failures_is_cut_short(readme: Path) -> None:
    tests = [case("faults", f"fault {n}", "get", "openai", outcome="failed") for n in range(25)]

    found = report.check(tests, report.render(document(tests), 1, None, "a test"), readme)

    assert found[0] == "25 reliability tests did not pass:"
    assert len(found) == 1 + report.FAILURES_LISTED + 2
    assert found[-2] == f"  ... and {25 - report.FAILURES_LISTED} more"


def test_a_long_diff_is_cut_short(readme: Path) -> None:
    tests = [case("listings", f"row {n}", "list", "openai") for n in range(100)]

    found = report.check(tests, report.render(document(tests), 0, None, "a test"), readme)

    assert len(found) == 1 + report.DIFF_LINES + 2
    assert re.fullmatch(r"\.\.\. \(\d+ more diff lines\)", found[-2])


def test_a_readme_without_the_markers_fails_the_check(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text("# project\n")

    found = report.check(faults_run(), report.render(document(faults_run()), 0, None, "a test"), path)

    assert found == [f"{path} has no {report.START} / {report.END} section; {report.REFRESH_HINT}"]


# -- the command --------------------------------------------------------------------------------------------------


def test_check_and_output_write_the_report_and_leave_the_readme_alone(
    readme: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = readme.read_text()
    source = write_json(tmp_path, document(faults_run(), exitstatus=1))
    output = tmp_path / "build" / "reliability.md"

    status = report.main(["--from-json", str(source), "--check", "--output", str(output), "--page", str(readme)])

    assert status == 0, capsys.readouterr().out
    assert readme.read_text() == before
    assert output.read_text() == report.render(document(faults_run()), 1, None, report.MAKE_TEST_SOURCE) + "\n"


def test_check_exits_non_zero_and_prints_the_hint_when_the_readme_is_stale(
    readme: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = readme.read_text()
    source = write_json(tmp_path, document(faults_run()[:-1]))

    status = report.main(["--from-json", str(source), "--check", "--page", str(readme)])

    assert status == 1
    assert report.REFRESH_HINT in capsys.readouterr().out
    assert readme.read_text() == before


def test_from_json_alone_rewrites_the_readme_section_and_nothing_else(readme: Path, tmp_path: Path) -> None:
    tests = [*faults_run(), case("sizes", "gzip bomb", "get", "openai")]
    source = write_json(tmp_path, document(tests))

    status = report.main(["--from-json", str(source), "--page", str(readme)])

    assert status == 0
    text = readme.read_text()
    assert text.startswith("# project\n\n## Reliability\n\nProse.\n\n")
    assert text.endswith(f"{report.END}\n\n## After\n")
    assert report.section_of(text) == report.render(document(tests), 0, None, report.MAKE_TEST_SOURCE)
