"""The funnel: per stage, rows in and out, drops by reason, time spent."""

from __future__ import annotations

import re
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


def generation_failures(stats: Stats) -> str:
    """'k of n prompts succeeded: cause (m samples); ...' when the teacher failed, else ''."""
    generate = stats.get("generate") or {}
    counts = generate.get("counts") or {}
    if not counts.get("failed"):
        return ""
    prompts = int(generate.get("in", 0))
    succeeded = prompts - int(counts.get("prompts_failed", 0))
    causes = sorted((generate.get("errors") or {}).items(), key=lambda item: -item[1])
    shown = "; ".join(f"{cause} ({n:,} samples)" for cause, n in causes[:3])
    if len(causes) > 3:
        shown += f"; {len(causes) - 3} other causes"
    return (
        f"{succeeded:,} of {prompts:,} prompts succeeded, {counts['failed']:,} samples failed: "
        f"{shown or 'no cause recorded'}"
    )


def teacher_spend(stats: Stats) -> str:
    """What the teacher cost this run, in all and per kept trace: tokens, and dollars where
    the recipe gives prices; '' when nothing was generated."""
    counts = (stats.get("generate") or {}).get("counts") or {}
    prompt = int(counts.get("spent_prompt_tokens", 0))
    completion = int(counts.get("spent_completion_tokens", 0))
    if not prompt and not completion:
        return ""
    kept = int((stats.get("dataset") or {}).get("out", 0))
    line = f"{prompt:,} prompt + {completion:,} completion tokens"
    thought = int(counts.get("spent_reasoning_tokens", 0))
    if thought:
        line += f" ({thought:,} of them reasoning)"
    if kept:
        line += f" ({(prompt + completion) / kept:,.0f} a kept trace)"
    if "cost_micro_usd" in counts:
        dollars = counts["cost_micro_usd"] / 1e6
        line += f"; ${dollars:,.2f}" + (f" (${dollars / kept:,.4f} a kept trace)" if kept else "")
        if counts.get("batches_submitted") or counts.get("batches_adopted"):
            line += " at the batch price"
    return line


SPENT = re.compile(r"^(.*)spent_prompt_tokens$")


def other_spend(stats: Stats) -> list[str]:
    """What the other models a run asked cost, one line each: a judge, a solver, a rater, a
    classifier (the stage, and the model's role where the stage has several)."""
    lines = []
    for stage, entry in stats.items():
        counts = entry.get("counts") or {}
        for key in sorted(counts):
            found = SPENT.match(key)
            if found is None or (stage == "generate" and not found.group(1)):
                continue
            prefix = found.group(1)
            who = f"{stage} {prefix.rstrip('_')}".strip()
            completion = int(counts.get(f"{prefix}spent_completion_tokens", 0))
            line = f"{who}: {int(counts[key]):,} prompt + {completion:,} completion tokens"
            if f"{prefix}cost_micro_usd" in counts:
                line += f"; ${counts[f'{prefix}cost_micro_usd'] / 1e6:,.2f}"
            lines.append(line)
    return lines


def spend_lines(stats: Stats) -> list[str]:
    """Every model's spend in this run, the teacher first (for `curate stats`, the report)."""
    teacher = teacher_spend(stats)
    lines = ([f"teacher: {teacher}"] if teacher else []) + other_spend(stats)
    return ["spent:", *(f"  {line}" for line in lines)] if lines else []


def mostly_failed(stats: Stats) -> bool:
    """More than half the samples asked of the teacher failed for good: a broken run, even
    when the rest made a dataset."""
    generate = stats.get("generate") or {}
    failed = int((generate.get("counts") or {}).get("failed", 0))
    asked = int(generate.get("generated", 0) or 0)
    return asked > 0 and 2 * failed > asked


def why_empty(stats: Stats) -> str:
    """Which step left no rows, and what it dropped them for."""
    previous = "source"
    for name, stage in stats.items():
        if name == "source" and stage.get("in", 0) == 0:
            return "the source gave no problems"
        if stage.get("out", 0) == 0:
            start = stage.get("generated", stage.get("in", 0))
            if name == "dataset":
                return f"no row of the {start:,} left after {previous} was selected"
            reasons = ", ".join(f"{r} {n:,}" for r, n in stage.get("dropped", {}).items())
            return f"stage '{name}' removed all {start:,} rows ({reasons or 'no reason given'})"
        previous = name
    return "no stage reports a row"
