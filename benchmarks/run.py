"""Run every benchmark, each in a fresh process, and write the report.

``python -m benchmarks [--smoke] [--output BENCHMARKS.md] [--only NAME ...] [--splice]``

Each benchmark module runs as ``python -m benchmarks.<name> --result <file>`` with its output in a log file of a
throwaway directory (also its ``AIRFLOW_HOME``); a benchmark that crashes or times out is reported as such and
makes the exit status 1 (a target that is not met does not: that is a finding, not a failure). Without
``--output`` nothing is written; the summary is printed either way. With ``--splice`` the report is not rewritten:
the sections of this run replace their namesakes in the existing ``--output`` file (or are added at its end), their
targets replace their rows of its summary (or are added to it), and a line under the title says which sections
came from which run; the rest of the file is kept as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks._common import allow_bytecode_cache, machine, prepare_airflow_home
from benchmarks._report import Section, Table, targets_table

BENCHMARKS = ("import_cost", "call_overhead", "cleanup", "triggerer", "deferral", "poll_cost", "anchor", "page_load")
TIME_LIMITS = {"smoke": 120.0, "full": 1800.0}
LOG_TAIL = 40


def run_one(name: str, smoke: bool, workdir: Path) -> Section:
    result, log_path = workdir / f"{name}.json", workdir / f"{name}.log"
    command = [sys.executable, "-m", f"benchmarks.{name}", "--result", str(result)] + (["--smoke"] if smoke else [])
    started = time.perf_counter()
    print(f"== {name} ...", flush=True)
    try:
        with open(log_path, "w") as log:
            done = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, timeout=TIME_LIMITS["smoke" if smoke else "full"]
            )
        failure = None if done.returncode == 0 and result.exists() else f"exit status {done.returncode}"
    except subprocess.TimeoutExpired:
        failure = "timed out"
    seconds = time.perf_counter() - started
    if failure is None:
        section = Section.from_dict(json.loads(result.read_text()))
        print(f"   done in {seconds:.0f} s", flush=True)
        return section
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-LOG_TAIL:])
    print(f"   FAILED ({failure}) after {seconds:.0f} s; log tail:\n{tail}", flush=True)
    return Section(name, f"{name} (failed)", "", seconds=seconds, error=f"{failure}\n{tail}")


def machine_table(info: dict[str, str]) -> Table:
    table = Table("Machine", ["What", "Value"])
    for key, value in info.items():
        table.add(key, value)
    return table


def render(sections: list[Section], info: dict[str, str], smoke: bool, seconds: float) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    mode = "smoke (tiny quick mode: figures are not meaningful)" if smoke else "full"
    summary = targets_table(
        [target for section in sections for target in section.targets], "Summary of targets (details per section)"
    )
    parts = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`python -m benchmarks`) on {when}; mode: {mode}; the whole run took "
        f"{seconds / 60:.1f} min. Every benchmark measures our code and its baseline in the same run, on this "
        "machine, which is shared with other work: read the ratios before the absolute figures. How each is "
        "measured is stated in its section and in `benchmarks/README.md`.",
        "",
        machine_table(info).markdown(),
        "",
        summary.markdown(),
        "",
    ]
    parts += [section.markdown() + "\n" for section in sections]
    return "\n".join(parts)


SUMMARY_TITLE = "**Summary of targets (details per section)**"


def splice(report: str, sections: list[Section], info: dict[str, str], seconds: float) -> str:
    """``report`` (a whole Markdown report) with ``sections`` put in: each replaces the section under the same
    ``## `` heading (or is added at the end), its targets replace the summary's rows of the same name (or are added
    to it), and a paragraph under the title says where they came from (replacing one of an earlier splice)."""
    lines = report.rstrip("\n").split("\n")
    sections = [section for section in sections if section.error is None]  # a failed run keeps the old figures
    for section in sections:
        heading = f"## {section.title}"
        body = section.markdown().split("\n")
        if heading in lines:
            start = lines.index(heading)
            end = next((at for at in range(start + 1, len(lines)) if lines[at].startswith("## ")), len(lines))
            lines[start:end] = body + ([""] if end < len(lines) else [])
        else:
            lines += ["", *body]
        lines = splice_summary(lines, section)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    for section in sections:
        lead = f"Section {section.title.split('.')[0]} ({section.key}) and its rows in the summary come from"
        note = (
            f"{lead} `python -m benchmarks --only {section.key} --output ... --splice`, run on {when} "
            f"({info.get('CPU', '?')}, load average at its start {info.get('Load average at start (1/5/15 min)', '?')}"
            f"; it took {seconds / 60:.1f} min); the rest of this file is from the runs named above."
        )
        earlier = [at for at, line in enumerate(lines) if line.startswith(lead)]
        if earlier:
            lines[earlier[0]] = note
        else:
            at = lines.index("**Machine**") if "**Machine**" in lines else min(len(lines), 3)
            lines[at:at] = [note, ""]
    return "\n".join(lines) + "\n"


def splice_summary(lines: list[str], section: Section) -> list[str]:
    """``lines`` with the summary's rows of ``section``'s targets replaced, new ones added at the summary's end."""
    if SUMMARY_TITLE not in lines:
        return lines
    start = lines.index(SUMMARY_TITLE) + 4  # title, blank, head, rule
    end = next((at for at in range(start, len(lines)) if not lines[at].startswith("|")), len(lines))
    rows = targets_table(section.targets).markdown().split("\n")[4:]
    names = {re.split(r"(?<!\\)\|", row)[1].strip(): row for row in rows}
    kept: list[str] = []
    for row in lines[start:end]:
        name = re.split(r"(?<!\\)\|", row)[1].strip()
        if name in names:
            kept.append(names.pop(name))
        else:
            kept.append(row)
    kept += [row for row in rows if re.split(r"(?<!\\)\|", row)[1].strip() in names]
    return lines[:start] + kept + lines[end:]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny quick mode: every benchmark in seconds")
    parser.add_argument("--output", type=Path, help="write the Markdown report here")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, Airflow home)")
    parser.add_argument(
        "--splice",
        action="store_true",
        help="put this run's sections (and their summary rows) into the existing --output file instead of rewriting it",
    )
    args = parser.parse_args(argv)
    if args.splice and (args.output is None or not args.output.exists() or args.smoke):
        parser.error("--splice needs an existing --output file, and a full run")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    allow_bytecode_cache()
    os.environ.pop("FT_BENCH_AIRFLOW_HOME", None)
    workdir = prepare_airflow_home()
    info = machine()
    started = time.perf_counter()
    sections = [run_one(name, args.smoke, workdir) for name in args.only or BENCHMARKS]
    seconds = time.perf_counter() - started
    if args.splice:
        report = splice(args.output.read_text(), sections, info, seconds)
    else:
        report = render(sections, info, args.smoke, seconds)
    if args.output is not None:
        args.output.write_text(report)
        print(f"Wrote {args.output}")
    print()
    print(targets_table([target for section in sections for target in section.targets], "Targets").markdown())
    print(f"\nAll benchmarks took {seconds:.0f} s; logs in {workdir}" + ("" if args.keep else " (removed)"))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(section.error for section in sections) else 0
