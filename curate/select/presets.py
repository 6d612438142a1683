"""Published selection recipes as select settings: `select: {preset: s1k}`.

Each is the recipe's stages, in its order, with its published thresholds, written in the
select section's own keys, so `curate recipe show` prints what a preset means and any key
set beside it replaces the preset's.

- s1k (arXiv 2501.19393): drop what a smaller model solves (a solver's pass rate of 0;
  needs `solver_pass_rate`, skipped and said so when absent), one trace per problem, the
  longest first, uniform over domains, 1,000 problems.
- limo (arXiv 2502.03387): problems the strong model solves 1 to 3 times in 32 tries (the
  teacher's pass rate with 32 samples), the best trace by the rule-based quality score,
  817 problems, best first.
- openthoughts3 (arXiv 2506.04178): no correctness filter (the verdict stays a column), up
  to 16 answers per question, and when a budget is set, the problems with the longest
  answers first.
"""

from __future__ import annotations

from typing import Any, Literal

Preset = Literal["s1k", "limo", "openthoughts3"]

PRESETS: dict[str, dict[str, Any]] = {
    "s1k": {
        "policy": "all_correct",
        "bands": [{"measure": "solver_pass_rate", "max": 0.0, "if_missing": "skip"}],
        "max_per_problem": 1,
        "prefer": "longest",
        "mix": {"by": "domain", "balance": "uniform"},
        "budget": {"problems": 1000, "order": "longest"},
    },
    "limo": {
        "policy": "all_correct",
        "bands": [{"measure": "pass_rate", "min": 1 / 32, "max": 3 / 32}],
        "max_per_problem": 1,
        "prefer": "quality",
        "budget": {"problems": 817, "order": "quality"},
    },
    "openthoughts3": {
        "policy": "all",
        "max_per_problem": 16,
        "prefer": "sample",
    },
}


def with_preset(data: Any) -> Any:
    """A select section with its preset's keys filled in under the ones it sets itself."""
    if not isinstance(data, dict) or data.get("preset") not in PRESETS:
        return data  # no preset, or an unknown name the field itself will refuse
    merged = {**PRESETS[data["preset"]], **data}
    for key, value in PRESETS[data["preset"]].items():  # `budget: {problems: 500}` keeps
        if isinstance(value, dict) and isinstance(data.get(key), dict):  # the preset's order
            merged[key] = {**value, **data[key]}
    return merged
