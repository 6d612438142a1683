"""The select section in words, for the card and the report: what was kept and by which
rules, and a plain warning when the dataset keeps traces that were not verified correct."""

from __future__ import annotations

from typing import Any

from curate.select.presets import with_preset

POLICY_TEXT = {
    "all_correct": "every trace verified correct",
    "shortest_correct": "the shortest trace verified correct of each problem",
    "pass_rate_band": "traces verified correct of problems whose pass rate is in "
    "[{pass_rate_min}, {pass_rate_max}]",
    "all": "every trace, whatever its verdict",
}


def selection_lines(section: dict[str, Any]) -> list[str]:
    """One line per rule that ran, in the order it ran (a preset's own rules included)."""
    section = with_preset(section)
    policy = section.get("policy", "all_correct")
    lines = [POLICY_TEXT[policy].format(**{"pass_rate_min": 0, "pass_rate_max": 1, **section})]
    if section.get("preset"):
        lines[0] += f" (preset `{section['preset']}`)"
    lines += [_band(band) for band in section.get("bands") or []]
    if section.get("max_per_problem"):
        prefer = section.get("prefer", "sample")
        lines.append(f"at most {section['max_per_problem']} per problem, {prefer} first")
    mix = section.get("mix")
    if mix:
        how = "by shares " + str(mix["shares"]) if mix.get("shares") else mix.get("balance")
        lines.append(f"spread over `{mix.get('by', 'source')}`: {how}")
    budget = section.get("budget")
    if budget:
        size = budget.get("problems") or budget.get("traces")
        unit = "problems" if budget.get("problems") else "traces"
        lines.append(f"a budget of {size:,} {unit}, {budget.get('order', 'random')} first")
    return lines


def _band(band: dict[str, Any]) -> str:
    ends = [
        f"{word} {band[key]}"
        for key, word in (
            ("min", ">="),
            ("max", "<="),
            ("min_quantile", "from quantile"),
            ("max_quantile", "to quantile"),
        )
        if band.get(key) is not None
    ]
    return f"`{band['measure']}` {', '.join(ends)}"


def unverified_warning(kept_not_correct: int) -> str:
    """The card's notice when `policy: all` kept traces no verifier called correct."""
    return (
        f"\n> **Not all traces are verified correct.** `select.policy: all` kept "
        f"{kept_not_correct:,} traces whose verdict is not `correct` (OpenThoughts3 found SFT "
        "from a strong teacher does as well without the filter); the `verdict` column says "
        "which. Filter on it for a verified-only set.\n"
    )
