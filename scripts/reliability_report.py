"""Run the reliability suite and write what it tried, and how that came out, into README.md.

    python scripts/reliability_report.py                       # run tests/reliability, rewrite the README section
    python scripts/reliability_report.py --from-json run.json  # render an existing run instead of running pytest

The suite's conftest writes one record per test that ran (``FT_RELIABILITY_REPORT``); this script renders them
between ``<!-- reliability:start -->`` and ``<!-- reliability:end -->`` in the README. Only tests that ran are
counted; failures are shown as failures, and the script exits with pytest's status so a failing suite fails the
build even though the README was written.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- reliability:start -->", "<!-- reliability:end -->"
SECTION = "## Reliability"
VENDORS = ("dashscope", "openai")
SYMBOLS = {"passed": "✓", "failed": "✗", "error": "✗", "xfailed": "⚠", "xpassed": "✗", "skipped": "-"}
NOT_APPLICABLE = "·"
AREAS = ("faults", "job ids", "connections", "operator arguments", "secrets", "cleanup safety", "checks")

Record = dict[str, Any]
FAULT_NOTE = (
    '_Expected_ is what the hook call ends with. The sensor\'s poke turns a retryable error into "not done yet" '
    "(it looks again at the next poke) and raises the others; the trigger fires one error event naming the error's "
    "type; the cleanup tries every job and then raises one `FineTuningError` listing the jobs it could not act on "
    "(a server that never answers fails its listing with the transport error itself)."
)


# -- running ----------------------------------------------------------------------------------------------------


def run_suite(pytest_args: Sequence[str]) -> tuple[dict[str, Any], int, float]:
    """Run ``pytest tests/reliability`` with the report plugin on; the records, pytest's status and the seconds."""
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "reliability.json"
        env = {**os.environ, "FT_RELIABILITY_REPORT": str(target)}
        command = [sys.executable, "-m", "pytest", "tests/reliability", "-p", "no:cacheprovider", *pytest_args]
        started = time.monotonic()
        status = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
        seconds = time.monotonic() - started
        if not target.exists():
            sys.exit(f"pytest wrote no report (exit status {status}); nothing to render")
        return json.loads(target.read_text()), status, seconds


# -- rendering ----------------------------------------------------------------------------------------------------


def ordered(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def tally(records: Iterable[Record]) -> Counter[str]:
    return Counter(record["outcome"] for record in records)


def of_area(records: Iterable[Record], area: str) -> list[Record]:
    return [record for record in records if record["area"] == area]


def table(header: Sequence[str], rows: Iterable[Sequence[object]], right: int = 0) -> list[str]:
    """A Markdown table; the last ``right`` columns are right-aligned."""
    align = ["---"] * (len(header) - right) + ["---:"] * right
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def cell(records: Sequence[Record], vendors: bool) -> str:
    """One symbol per test of a cell: DashScope then OpenAI when the tests are per vendor."""
    if not vendors:
        return " ".join(SYMBOLS.get(record["outcome"], "?") for record in records) or NOT_APPLICABLE
    by_vendor = {record["vendor"]: record for record in records}
    return " ".join(SYMBOLS.get(by_vendor[v]["outcome"], "?") if v in by_vendor else NOT_APPLICABLE for v in VENDORS)


def grid(records: Sequence[Record], first: str, expect: bool = False) -> list[str]:
    """Rows of the area down, columns (entry points, operations) across, one symbol per test in each cell."""
    rows = ordered(record["row"] for record in records)
    columns = ordered(record["column"] for record in records)
    vendors = any(record["vendor"] for record in records)
    labels = {record["row"]: record["label"] for record in records}
    expected = {record["row"]: record["expect"] for record in records}
    header = [first, *(["expected"] if expect else []), *columns]
    body = []
    for row in rows:
        cells = [cell([r for r in records if r["row"] == row and r["column"] == c], vendors) for c in columns]
        body.append([labels[row], *([expected[row]] if expect else []), *cells])
    return table(header, body)


def count_cells(records: Sequence[Record]) -> tuple[int, int]:
    return len(ordered(r["row"] for r in records)), len(ordered(r["column"] for r in records))


def describe_faults(records: Sequence[Record]) -> str:
    faults, operations = count_cells(records)
    return f"{faults} faults x {operations} operations x vendors, each within a time bound computed from its settings"


def describe_job_ids(records: Sequence[Record]) -> str:
    ids, entries = count_cells(records)
    return f"{ids} bad job ids x {entries} entry points x vendors, refused before any request"


def describe_connections(records: Sequence[Record]) -> str:
    kinds, entries = count_cells(records)
    return f"{kinds} broken connections x {entries} entry points x vendors"


def describe_arguments(records: Sequence[Record]) -> str:
    return f"{len(records)} DAG files parsed by Airflow's `DagBag` ({len(records) - 1} with a bad argument, 1 control)"


def describe_secrets(records: Sequence[Record]) -> str:
    runs = [record for record in records if "scanned" in record["properties"]]
    items = sum(sum(record["properties"]["scanned"].values()) for record in runs)
    places = len({place for record in runs for place in record["properties"]["scanned"]})
    others = Counter(record["row"] for record in records if record not in runs)
    checks = "".join(f"; {row} ({count})" for row, count in others.items())
    return f"{len(runs)} DAG runs scanned for a canary key ({places} kinds of place, {items} items){checks}"


def describe_properties(records: Sequence[Record]) -> str:
    examples = sum(int(record["properties"].get("examples", 0)) for record in records if record["outcome"] == "passed")
    properties, _ = count_cells(records)
    return f"{properties} properties x vendor/action, {examples} hypothesis examples that passed"


def describe_tests(records: Sequence[Record]) -> str:
    return f"{len(records)} tests"


def describe_checks(records: Sequence[Record]) -> str:
    return "; ".join(ordered(record["label"] for record in records))


DESCRIBE: dict[str, Callable[[Sequence[Record]], str]] = {
    "faults": describe_faults,
    "job ids": describe_job_ids,
    "connections": describe_connections,
    "operator arguments": describe_arguments,
    "secrets": describe_secrets,
    "cleanup safety": describe_properties,
    "checks": describe_checks,
}


def summary(records: Sequence[Record]) -> list[str]:
    areas = [area for area in AREAS if of_area(records, area)]
    areas += ordered(record["area"] for record in records if record["area"] not in AREAS)
    rows = []
    for area in areas:
        counts = tally(of_area(records, area))
        describe = DESCRIBE.get(area, describe_tests)
        failed = counts["failed"] + counts["error"] + counts["xpassed"]
        rows.append([area, describe(of_area(records, area)), counts["passed"], failed, counts["xfailed"]])
    return table(["area", "what was tried", "passed", "failed", "known bugs (xfail)"], rows, right=3)


def secrets_table(records: Sequence[Record]) -> list[str]:
    runs = [record for record in records if "scanned" in record["properties"]]
    places = ordered(place for record in runs for place in record["properties"]["scanned"])
    body = [
        [
            record["row"],
            SYMBOLS.get(record["outcome"], "?"),
            *(record["properties"]["scanned"].get(place, 0) for place in places),
            record["properties"].get("hits", "?"),
        ]
        for record in runs
    ]
    return table(["run", "result", *places, "hits"], body, right=len(places) + 1)


def properties_table(records: Sequence[Record]) -> list[str]:
    columns = ordered(f"{r['vendor']} {r['column']}" for r in records)
    body = []
    for row in ordered(record["row"] for record in records):
        cells = []
        for column in columns:
            found = [r for r in records if r["row"] == row and f"{r['vendor']} {r['column']}" == column]
            cells.append(
                " ".join(f"{SYMBOLS.get(r['outcome'], '?')} {r['properties'].get('examples', 0)}" for r in found)
            )
        body.append([row, *cells])
    return table(["property", *(f"{column} (examples)" for column in columns)], body)


def problems(records: Sequence[Record]) -> list[str]:
    lines = []
    reasons = Counter(r["properties"].get("xfail_reason", "?") for r in records if r["outcome"] == "xfailed")
    for reason, count in reasons.items():
        cases = "case" if count == 1 else "cases"
        lines.append(f"- ⚠ known bug, {count} {cases} (strict xfail until fixed): {reason}")
    for record in records:
        if record["outcome"] in ("failed", "error", "xpassed"):
            lines.append(f"- ✗ {record['outcome']}: `{record['nodeid']}`")
    return lines


def render(document: dict[str, Any], status: int, seconds: float | None, source: str) -> str:
    records: list[Record] = document["tests"]
    counts = tally(records)
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    failed = counts["failed"] + counts["error"] + counts["xpassed"]
    lines = [
        f"_Generated by `scripts/reliability_report.py` from {source}{took} on "
        f"{document['generated_at'][:10]} (Python {document['python']}, Airflow {document['airflow']}): "
        f"{len(records)} tests ran, {counts['passed']} passed, {failed} failed, "
        f"{counts['xfailed']} are known bugs (strict xfail), {counts['skipped']} skipped; pytest exit status "
        f"{status}._",
        "",
        *summary(records),
        "",
        "Cells show one mark per vendor, DashScope then OpenAI: ✓ passed, ✗ failed, ⚠ known bug (strict xfail), "
        f"{NOT_APPLICABLE} not applicable.",
    ]
    sections = [
        ("Faults (operation x vendor)", "fault", "faults", True),
        ("Bad job ids (entry point x vendor)", "job id", "job ids", False),
        ("Broken connections (entry point x vendor)", "connection", "connections", False),
        (
            "Bad operator arguments (the DAG file must fail to import, naming the problem)",
            "argument",
            "operator arguments",
            False,
        ),
    ]
    for title, first, area, expect in sections:
        found = of_area(records, area)
        if found:
            lines += ["", f"**{title}**", "", *grid(found, first, expect)]
        if found and area == "faults":
            lines += ["", FAULT_NOTE]
    if of_area(records, "secrets"):
        lines += ["", "**Secrets: places scanned per run (items), and hits of the canary key**", ""]
        lines += secrets_table(of_area(records, "secrets"))
    if of_area(records, "cleanup safety"):
        lines += ["", "**Cleanup safety (hypothesis)**", "", *properties_table(of_area(records, "cleanup safety"))]
    if problem_lines := problems(records):
        lines += ["", "**Known bugs and failures**", "", *problem_lines]
    return "\n".join(lines)


# -- the README ---------------------------------------------------------------------------------------------------


def rewrite(readme: Path, body: str) -> None:
    text = readme.read_text()
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        readme.write_text(f"{before}{START}\n{body}\n{END}{after}")
        return
    if SECTION in text:
        sys.exit(f"{readme} has a '{SECTION}' section without the {START} / {END} markers; add them first")
    readme.write_text(f"{text.rstrip()}\n\n{SECTION}\n\n{START}\n{body}\n{END}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, default=README, help="the README to rewrite")
    parser.add_argument("--from-json", type=Path, help="render this report instead of running pytest")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    options = parser.parse_args(argv)
    if options.from_json:
        document, seconds = json.loads(options.from_json.read_text()), None
        status = int(document.get("exitstatus", 0))
        source = "the reliability tests of a `make test` run"
    else:
        document, status, seconds = run_suite(options.pytest_args or ["-q"])
        source = "a run of `pytest tests/reliability`"
    rewrite(options.readme, render(document, status, seconds, source))
    counts = tally(document["tests"])
    print(f"{options.readme}: reliability section rewritten ({dict(counts)}, pytest exit status {status})")
    return status


if __name__ == "__main__":
    sys.exit(main())
