"""What a benchmark reports (tables, targets, notes) as JSON between processes and as Markdown in the end."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Cell = str | int | float | None


@dataclass
class Table:
    """A Markdown table: a title line, column names and rows of cells."""

    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)

    def add(self, *cells: Cell) -> None:
        self.rows.append(list(cells))

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", _row(self.columns), _row(["---"] * len(self.columns))]
        lines += [_row([_cell(cell) for cell in row]) for row in self.rows]
        return "\n".join(lines)


@dataclass
class Target:
    """A target of the issue: what was measured against what was asked, and whether it is met."""

    name: str
    measured: str
    target: str
    met: bool
    limit: str = ""

    @property
    def verdict(self) -> str:
        return "met" if self.met else "NOT met"


@dataclass
class Section:
    """Everything one benchmark found."""

    key: str
    title: str
    method: str
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Section:
        tables = [Table(**table) for table in data.pop("tables", [])]
        targets = [Target(**target) for target in data.pop("targets", [])]
        return cls(tables=tables, targets=targets, **data)

    def markdown(self) -> str:
        parts = [f"## {self.title}", "", self.method.strip(), ""]
        if self.error:
            parts += ["**The benchmark did not finish:**", "", "```", self.error.strip(), "```", ""]
        if self.targets:
            parts += [targets_table(self.targets).markdown(), ""]
        for table in self.tables:
            parts += [table.markdown(), ""]
        if self.notes:
            parts += [f"- {note}" for note in self.notes] + [""]
        parts.append(f"_Ran in {self.seconds:.0f} s._")
        return "\n".join(parts)


def targets_table(targets: Sequence[Target], title: str = "Targets") -> Table:
    table = Table(title, ["Target", "Measured", "Asked", "Verdict", "What limits it"])
    for target in targets:
        table.add(target.name, target.measured, target.target, target.verdict, target.limit or "-")
    return table


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cell(value: Cell) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def bench_main(run: Callable[[bool], Section]) -> int:
    """Command line of one benchmark module: ``--smoke`` and ``--result FILE`` (JSON of the ``Section``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny quick mode")
    parser.add_argument("--result", type=Path, help="write the section as JSON here (default: print Markdown)")
    args = parser.parse_args()
    owns_home = "FT_BENCH_AIRFLOW_HOME" not in os.environ  # run alone, not by the runner: clean up after itself
    started = time.perf_counter()
    try:
        section = run(args.smoke)
    finally:
        if owns_home and "FT_BENCH_AIRFLOW_HOME" in os.environ:
            shutil.rmtree(os.environ["FT_BENCH_AIRFLOW_HOME"], ignore_errors=True)
    section.seconds = time.perf_counter() - started
    if args.result is not None:
        args.result.write_text(section.to_json())
    else:
        print(section.markdown())
    return 0
