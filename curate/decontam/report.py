"""The decontamination report: per benchmark, what matched, how, and the pair for audit."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa

from curate.decontam.benchmarks import is_private

EXCERPT = 300


def build_report(table: pa.Table) -> dict[str, Any]:
    """Counts and matches per benchmark, from the rows' contamination columns."""
    columns = [
        c
        for c in ("problem_id", "problem", "contaminated", "contamination", "borderline")
        if c in table.column_names
    ]
    per: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "contaminated": 0,
            "borderline": 0,
            "cleared": 0,
            "by_method": Counter(),
            "by_rule": Counter(),
            "matches": [],
        }
    )
    for row in table.select(columns).to_pylist():
        match = row.get("contamination")
        if not match:
            continue
        entry = per[match["benchmark"]]
        flagged = bool(row.get("contaminated"))
        cleared = match.get("rule") == "judge_different"  # the judge found another problem
        entry["contaminated" if flagged else ("cleared" if cleared else "borderline")] += 1
        entry["by_method"][match["method"]] += 1
        entry["by_rule"][match.get("rule") or "text"] += 1
        entry["matches"].append(_pair(row, match, flagged, cleared))
    return {
        name: {**entry, "by_method": dict(entry["by_method"]), "by_rule": dict(entry["by_rule"])}
        for name, entry in sorted(per.items())
    }


def _pair(
    row: dict[str, Any], match: dict[str, Any], flagged: bool, cleared: bool
) -> dict[str, Any]:
    private = is_private(match["benchmark"])
    problem = row.get("problem") or ""
    return {
        "problem_id": row.get("problem_id"),
        "verdict": "contaminated" if flagged else ("cleared" if cleared else "borderline"),
        "judge": match.get("judge"),  # the LLM judge's reasoning, where it was asked
        "method": match["method"],
        "rule": match.get("rule") or "text",  # what decided: the text, or the answers
        "score": match["score"],
        "run": match["run"],
        "item": match["item"],
        # For a private benchmark (GPQA) the matching text is its text: ids only.
        "problem": None if private else problem[:EXCERPT],
        "benchmark_text": None if private else match.get("excerpt"),
    }


def write_report(table: pa.Table, path: Path) -> dict[str, Any] | None:
    """Write the report when any row has a contamination match; return it."""
    if "contamination" not in table.column_names or table["contamination"].null_count == len(table):
        return None
    report = build_report(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return report
