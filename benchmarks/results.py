"""What a benchmark run reports: figures with their baselines and targets, as tables.

A :class:`Row` is one figure, optionally next to a baseline measured in the same run and a
:class:`Target`; a :class:`Group` is the rows of one benchmark with a line on what they
measure. ``console_table`` and ``markdown_document`` lay them out::

    row = Row("encrypt 1 MiB", 950.0, "MB/s", 1000.0, "AESGCM", Target(0.9, True, True))
    row.status  # "met": 950 / 1000 >= 0.9
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "Group",
    "Row",
    "Target",
    "console_table",
    "format_value",
    "keep_peers_section",
    "markdown_document",
    "markdown_table",
]


@dataclass(frozen=True)
class Target:
    """A goal for a row: ``ratio >= limit`` or ``value <= limit`` and so on."""

    limit: float
    at_least: bool
    on_ratio: bool

    def met(self, value: float, ratio: float | None) -> bool:
        subject = ratio if self.on_ratio else value
        if subject is None:
            return False
        return subject >= self.limit if self.at_least else subject <= self.limit

    def describe(self, unit: str) -> str:
        sign = ">=" if self.at_least else "<="
        if self.on_ratio:
            return f"ratio {sign} {self.limit:g}"
        return f"{sign} {format_value(self.limit, unit)}"


@dataclass(frozen=True)
class Row:
    """One measured figure, its baseline (if any) and its target (if any)."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: Target | None = None
    detail: str = ""
    show_ratio: bool = True

    @property
    def ratio(self) -> float | None:
        if not self.show_ratio or self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def status(self) -> str:
        if self.target is None:
            return "info"
        return "met" if self.target.met(self.value, self.ratio) else "MISSED"

    def cells(self) -> list[str]:
        measured = format_value(self.value, self.unit)
        if self.detail:
            measured = f"{measured} ({self.detail})"
        baseline = "" if self.baseline is None else format_value(self.baseline, self.unit)
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        target = "" if self.target is None else self.target.describe(self.unit)
        return [self.name, measured, self.baseline_name, baseline, ratio, target, self.status]


PEERS_BEGIN: Final = "<!-- peers:begin (written by benchmarks/peers.py) -->"
PEERS_END: Final = "<!-- peers:end -->"


def keep_peers_section(old: str, new: str) -> str:
    """``new`` with the peers section of ``old`` (``benchmarks/peers.py``) kept at its end."""
    if PEERS_BEGIN not in old or PEERS_END not in old:
        return new
    kept = PEERS_BEGIN + old.split(PEERS_BEGIN, 1)[1].split(PEERS_END, 1)[0] + PEERS_END
    return new.rstrip("\n") + "\n\n" + kept + "\n"


HEADINGS: Final = ["figure", "measured", "baseline", "baseline value", "ratio", "target", ""]
RIGHT_ALIGNED: Final = frozenset({1, 3, 4})


@dataclass
class Group:
    """The rows of one benchmark group, with a line on what they measure."""

    key: str
    title: str
    about: str
    rows: list[Row] = field(default_factory=list)


def format_value(value: float, unit: str) -> str:
    if unit in {"MB/s", "ops/s", "reads/s", "calls", "bytes", "requests"}:
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:.3g} ms"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:g} {unit}".rstrip()


def console_table(rows: Sequence[Row]) -> str:
    table = [HEADINGS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADINGS))]
    lines = []
    for number, line in enumerate(table):
        cells = [
            cell.rjust(width) if i in RIGHT_ALIGNED else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Row]) -> str:
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|")

    header = "| " + " | ".join([*HEADINGS[:-1], "status"]) + " |"
    rule = "|" + "|".join("---:" if i in RIGHT_ALIGNED else "---" for i in range(7)) + "|"
    body = ["| " + " | ".join(escape(cell) for cell in row.cells()) + " |" for row in rows]
    return "\n".join([header, rule, *body])


def markdown_document(facts: Mapping[str, str], groups: Sequence[Group], command: str) -> str:
    parts = [
        "# Benchmark results",
        "",
        f"Produced by `{command}` (`nox -s bench -- ARGS` runs `benchmarks/run.py ARGS`).",
        "Every time is the best of several repetitions, the repetitions of a figure and of",
        "its baseline interleaved; the ratio is figure / baseline. Figures vary by a few",
        "percent from run to run on this 2-core machine.",
        "",
        "## Machine",
        "",
        *(f"- {name}: {value}" for name, value in facts.items()),
    ]
    for group in groups:
        parts += ["", f"## {group.title}", "", group.about, "", markdown_table(group.rows)]
    return "\n".join(parts) + "\n"
