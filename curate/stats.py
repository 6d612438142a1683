"""The funnel: per stage, rows in and out, drops by reason, time spent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from rich.table import Table

Stats = dict[str, Any]


def merge_stats(parts: Iterable[Stats]) -> Stats:
    """Add up per-shard stats into a stage's stats."""
    total: Stats = {"in": 0, "out": 0, "dropped": Counter(), "seconds": 0.0, "counts": Counter()}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict):
                total.setdefault(key, Counter()).update(value)
            else:
                total[key] = total.get(key, 0) + value
    total["seconds"] = round(total["seconds"], 3)
    total["dropped"] = dict(sorted(total["dropped"].items()))
    total["counts"] = dict(sorted(total["counts"].items()))
    return total


def funnel_problems(stats: Stats) -> list[str]:
    """Where the funnel does not add up: each stage starts where the last one ended,
    and loses exactly what it says it dropped (`generated` replaces `in` for a stage
    that turns each problem into several samples)."""
    problems = []
    previous: tuple[str, int] | None = None
    for name, stage in stats.items():
        if previous is not None and stage["in"] != previous[1]:
            problems.append(f"{name}: in={stage['in']} but {previous[0]} out={previous[1]}")
        start = stage.get("generated", stage["in"])
        if start - sum(stage["dropped"].values()) != stage["out"]:
            problems.append(f"{name}: {start} - dropped {stage['dropped']} != out {stage['out']}")
        previous = (name, stage["out"])
    return problems


def funnel_table(stats: Stats) -> Table:
    table = Table(title="funnel", title_justify="left")
    for column in ("stage", "in", "out", "dropped", "seconds"):
        table.add_column(column, justify="left" if column in ("stage", "dropped") else "right")
    for name, stage in stats.items():
        start = f"{stage['in']:,}"
        if "generated" in stage:
            start += f" → {stage['generated']:,}"
        dropped = ", ".join(f"{reason} {n:,}" for reason, n in stage["dropped"].items())
        table.add_row(name, start, f"{stage['out']:,}", dropped or "-", f"{stage['seconds']:.1f}")
    return table
