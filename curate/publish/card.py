"""The dataset card: YAML metadata the Hub reads, and a body that tells the whole story."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import polars as pl
import yaml

from curate.recipe import redact
from curate.select.describe import selection_lines, unverified_warning
from curate.stats import other_spend, teacher_spend
from curate.verify.audit import headline

CONFIG_FILES = {"default": "data", "all": "all", "rl": "rl", "preference": "preference"}
CONFIG_TEXT = {
    "default": "one row per kept trace for SFT: `messages`, or `prompt` + `completion` "
    "(the assistant turn, reasoning in `<think>`); `reasoning` and `solution` (the text "
    "after the reasoning) as text",
    "all": "every generated trace, in the same columns, with its verdict, reason, flags and "
    "drop stage",
    "rl": "one row per problem, a `prompt` of messages and what the reward needs, for GRPO",
    "preference": "(prompt, chosen, rejected) pairs of a correct and an incorrect trace, for DPO",
}
PATH_KEYS = {"path", "files", "index", "model", "cache_dir", "dataset"}
CARD_COLUMNS = ("model", "round", "dropped", "verifier", "verdict", "verdict_reason", "selected")


@dataclass
class ConfigFacts:
    """What the card tells of the configs: rows per config, the small columns of every
    trace (CARD_COLUMNS of `all`) and the pass rate of each problem (`rl`)."""

    sizes: dict[str, int] = field(default_factory=dict)
    every: pl.DataFrame = field(default_factory=pl.DataFrame)
    rates: pl.DataFrame = field(default_factory=pl.DataFrame)


def size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if rows < limit:
            return name
    return "100K<n<1M" if rows < 1_000_000 else "1M<n<10M"


def metadata(settings: Any, name: str, sizes: dict[str, int]) -> dict[str, Any]:
    """The card's YAML header: declared facts only (no license is ever guessed)."""
    header: dict[str, Any] = {}
    if settings.license:
        header["license"] = settings.license
    if settings.language:
        header["language"] = list(settings.language)
    header["pretty_name"] = settings.pretty_name or name
    header["task_categories"] = ["text-generation"]
    header["tags"] = ["reasoning", "chain-of-thought", "synthetic", "curate"]
    header["size_categories"] = [size_category(sizes.get("default", 0))]
    header["configs"] = [
        {
            "config_name": config,
            "data_files": [{"split": "train", "path": f"{CONFIG_FILES[config]}/train-*.parquet"}],
            **({"default": True} if config == "default" else {}),
        }
        for config in CONFIG_FILES
        if config in sizes
    ]
    return header


def public_recipe(recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe as the card shows it: secrets removed, local paths cut to file names,
    endpoint addresses left out (the endpoint kind stays)."""

    def clean(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: clean(v, str(k)) for k, v in value.items() if k != "base_url"}
        if isinstance(value, list):
            return [clean(v, key) for v in value]
        if isinstance(value, str) and (key in PATH_KEYS or value.startswith(("/", "./", "~"))):
            return PurePath(value).name if "/" in value else value
        return value

    return dict(clean(redact(recipe)))


RECIPE_NOTE = "The resolved recipe (secrets removed, local paths cut to file names):"


def card_text(
    recipe: dict[str, Any],
    settings: Any,
    stats: dict[str, Any],
    configs: ConfigFacts,
    contamination: dict[str, Any],
    plots: list[str] | None = None,
    loop: dict[str, Any] | None = None,
    audit: dict[str, Any] | None = None,
) -> str:
    sizes, every = configs.sizes, configs.every
    name = str(recipe.get("name", "dataset"))
    header = metadata(settings, name, sizes)
    parts = [
        "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n",
        f"# {header['pretty_name']}\n",
        _summary(sizes, every),
        _configs_table(sizes),
        _how_to_train(settings.repo_id or f"ORG/{name}"),
        _teacher(recipe, every, stats),
        _rounds(every),
        _loop_rounds(loop or {}),
        _verifiers(every),
        "## Funnel\n\n" + funnel_markdown(stats),
        _selection(recipe.get("select")),
        _review(stats.get("review")),
        "## Verdicts\n\n" + _verdicts(every),
        audit_markdown(audit or {}),
        "## Pass rate per problem\n\n" + _pass_rates(configs.rates),
        _plots(plots or []),
        "## Decontamination\n\n" + _contamination(contamination, recipe.get("decontaminate")),
        f"## Recipe\n\n{RECIPE_NOTE}\n\n"
        "```yaml\n" + yaml.safe_dump(public_recipe(recipe), sort_keys=False) + "```\n",
    ]
    if not settings.license:
        parts.insert(
            2,
            "License: not declared in the recipe (`publish.license`); check the "
            "sources' licenses before use.\n",
        )
    return "\n".join(parts)


def _summary(sizes: dict[str, int], every: pl.DataFrame) -> str:
    models = sorted({m for m in every["model"].to_list() if m}) if "model" in every.columns else []
    unverified = _kept_not_correct(every)
    text = (
        f"{sizes.get('default', 0):,} {'' if unverified else 'verified '}reasoning traces "
        "(prompt, chain of thought, final answer) kept of "
        f"{sizes.get('all', 0):,} generated, built with curate.\n"
    )
    if unverified:
        text += unverified_warning(unverified)
    return text + models_notice(models, named=False)


def _kept_not_correct(every: pl.DataFrame) -> int:
    if not {"selected", "verdict"} <= set(every.columns):
        return 0
    kept = every.filter(pl.col("selected").fill_null(False))
    return int(kept["verdict"].ne_missing("correct").sum())


def _selection(section: dict[str, Any] | None) -> str:
    if not section:
        return ""
    lines = "\n".join(f"- {line}" for line in selection_lines(section))
    return f"## Selection\n\nKept, in this order:\n\n{lines}\n"


def models_notice(models: list[str], named: bool = True) -> str:
    """Who wrote the traces: a warning when it was the simulated stand-in, else (named)
    the teacher models."""
    if "simulated" in models:
        return (
            "\n> **Not model output.** These traces were written by curate's `simulated` "
            "teacher, a deterministic stand-in used for demos and tests. Do not train on them.\n"
        )
    if named and models:
        return f"\nTeacher model(s): {', '.join(f'`{m}`' for m in models)}.\n"
    return ""


def _configs_table(sizes: dict[str, int]) -> str:
    lines = ["## Configs\n", "| config | rows | what |", "|---|---:|---|"]
    lines += [f"| `{c}` | {n:,} | {CONFIG_TEXT[c]} |" for c, n in sizes.items()]
    return "\n".join(lines) + "\n"


def _how_to_train(repo_id: str) -> str:
    return (
        "## Load it and train on it\n\n```python\n"
        "from datasets import load_dataset\n"
        "from trl import SFTConfig, SFTTrainer\n\n"
        f'sft = load_dataset("{repo_id}", "default", split="train")\n'
        'trainer = SFTTrainer(model="Qwen/Qwen2.5-0.5B-Instruct", train_dataset=sft,\n'
        '                     args=SFTConfig(output_dir="out", assistant_only_loss=True))\n'
        "trainer.train()\n```\n\n"
        f'`load_dataset("{repo_id}", "preference")` feeds `DPOTrainer`; `"rl"` feeds '
        '`GRPOTrainer` with `reward_funcs=[curate.rewards.VerifierReward("auto")]`, the checks '
        "that built this data.\n"
    )


def _teacher(recipe: dict[str, Any], every: pl.DataFrame, stats: dict[str, Any]) -> str:
    teacher = recipe.get("teacher") or {}
    keys = ("temperature", "top_p", "max_tokens", "samples", "seed", "top_k", "min_p")
    sampling = ", ".join(f"{k} {teacher[k]}" for k in keys if teacher.get(k) is not None)
    backend = {
        "openai": "an OpenAI-compatible endpoint",
        "vllm": "vLLM offline",
        "simulated": "the simulated stand-in",
    }.get(str(teacher.get("backend")), "-")
    models = sorted({m for m in every["model"].to_list() if m}) if "model" in every.columns else []
    spend = teacher_spend(stats)
    return (
        "## Teacher\n\n"
        f"Model(s): {', '.join(f'`{m}`' for m in models) or '-'}, served by {backend}; "
        f"sampling: {sampling or '-'}.\n"
        + (f"\nSpent generating this run's samples: {spend}.\n" if spend else "")
        + "".join(f"\nAlso spent, {line}.\n" for line in other_spend(stats))
    )


def _review(stage: dict[str, Any] | None) -> str:
    """What human reviewers decided (the review stage's counts)."""
    if not stage:
        return ""
    counts = stage.get("counts") or {}
    keys = (
        "sent",
        "decided",
        "accepted",
        "rejected",
        "references_corrected",
        "dropped_by_corrected_reference",
    )
    lines = ["## Human review\n", "| | traces |", "|---|---:|"]
    lines += [f"| {k.replace('_', ' ')} | {int(counts.get(k, 0)):,} |" for k in keys]
    return "\n".join(lines) + "\n"


def _plots(plots: list[str]) -> str:
    if not plots:
        return ""
    shown = "\n".join(f"![{Path(p).stem}](report/{p})" for p in plots)
    return f"## Plots\n\n{shown}\n"


def _rounds(every: pl.DataFrame) -> str:
    """Traces generated and kept per self-improvement round (a loop publishes each round on
    its own branch or tag, `round-R`)."""
    if "round" not in every.columns or every.is_empty():
        return ""
    lines = ["## Rounds\n", "| round | traces generated | kept |", "|---:|---:|---:|"]
    kept = every["dropped"].is_null() if "dropped" in every.columns else None
    for (number,), group in every.with_columns(_kept=kept).group_by(["round"], maintain_order=True):
        lines.append(f"| {number} | {group.height:,} | {int(group['_kept'].sum()):,} |")
    return "\n".join(lines) + "\n"


def _loop_rounds(loop: dict[str, Any]) -> str:
    """Every round of the self-improvement loop this run belongs to, as `curate loop status`
    shows them: what was sampled and kept, and the held-out pass@1 after training."""
    rounds = loop.get("rounds") or {}
    if not rounds:
        return ""
    lines = [
        "## Self-improvement loop\n",
        "| round | sampler | problems | solved (all rounds) | accepted | rationalised "
        "| training rows | held-out pass@1 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for number in sorted(rounds, key=int):
        record = rounds[number]
        sampled = record.get("sampled", {})
        score = record.get("eval", {}).get("pass@1")
        lines.append(
            f"| {number} | {sampled.get('sampler', '-')} | {sampled.get('problems', 0):,} "
            f"| {sampled.get('solved_total', 0):,} | {sampled.get('accepted', 0):,} "
            f"| {sampled.get('rationalized', 0):,} | {record.get('training_rows', 0):,} "
            f"| {'-' if score is None else f'{score:.3f}'} |"
        )
    return "\n".join(lines) + "\n"


def _verifiers(every: pl.DataFrame) -> str:
    if "verifier" not in every.columns:
        return "## Verifiers\n\nNone ran.\n"
    counts = Counter(v for v in every["verifier"].to_list() if v)
    listed = ", ".join(f"`{v}` ({n:,} traces)" for v, n in sorted(counts.items()))
    return f"## Verifiers\n\n{listed or 'none'}\n"


def _verdicts(every: pl.DataFrame) -> str:
    if "verdict" not in every.columns or every.is_empty():
        return "No trace was verified.\n"
    counts = Counter(
        (v or "not verified", r or "-")
        for v, r in zip(every["verdict"].to_list(), every["verdict_reason"].to_list(), strict=True)
    )
    lines = ["| verdict | reason | traces |", "|---|---|---:|"]
    lines += [f"| {v} | {r} | {n:,} |" for (v, r), n in sorted(counts.items())]
    return "\n".join(lines) + "\n"


def audit_markdown(report: dict[str, Any]) -> str:
    """The verifier's audit (`curate audit`): how often each verdict was truly right."""
    if not report.get("verdicts"):
        return ""
    lines = [
        "## Verifier audit\n",
        headline(report) + ".\n",
        "| verdict | truly right | 95% interval | labelled | of |",
        "|---|---|---|---|---|",
    ]
    for verdict, rate in report["verdicts"].items():
        if rate["right"] is None:
            continue
        lines.append(
            f"| {verdict} | {100 * rate['right']:.1f}% | "
            f"{100 * rate['low']:.1f}-{100 * rate['high']:.1f}% | {rate['labelled']:,} | "
            f"{rate['rows']:,} |"
        )
    return "\n".join(lines) + "\n"


def _pass_rates(rl: pl.DataFrame) -> str:
    if "pass_rate" not in rl.columns or rl.is_empty():
        return "No pass rates (no selection ran).\n"
    rates = [r for r in rl["pass_rate"].to_list() if r is not None]
    buckets = Counter(min(int(r * 5), 4) for r in rates)
    lines = ["| pass rate | problems |", "|---|---:|"]
    for index in range(5):
        low, high = index / 5, (index + 1) / 5
        closing = "]" if index == 4 else ")"
        lines.append(f"| [{low:.1f}, {high:.1f}{closing} | {buckets.get(index, 0):,} |")
    unsolved = sum(1 for r in rates if r == 0)
    return "\n".join(lines) + f"\n\n{unsolved:,} of {len(rates):,} problems were never solved.\n"


def _contamination(report: dict[str, Any], settings: dict[str, Any] | None) -> str:
    """Counts per benchmark and method, and the settings used: never benchmark text."""
    if settings is None:
        return "Not run for this dataset.\n"
    checked = ", ".join(f"`{b}`" for b in settings.get("benchmarks") or []) or "-"
    methods = {k: v for k, v in settings.items() if k in ("ngram", "exact", "semantic") and v}
    text = f"Checked against {checked}; methods and thresholds: `{methods or 'defaults'}`.\n\n"
    if not report:
        return text + "No problem matched a benchmark item.\n"
    lines = [
        "| benchmark | contaminated (dropped) | borderline (kept) | by method |",
        "|---|---:|---:|---|",
    ]
    for name, entry in sorted(report.items()):
        by_method = ", ".join(f"{m}: {n}" for m, n in sorted(entry["by_method"].items()))
        lines.append(
            f"| {name} | {entry['contaminated']:,} | {entry['borderline']:,} | {by_method} |"
        )
    return text + "\n".join(lines) + "\n"


def funnel_markdown(stats: dict[str, Any]) -> str:
    lines = ["| stage | in | out | dropped |", "|---|---:|---:|---|"]
    for stage, entry in stats.items():
        start = f"{entry['in']:,}"
        if "generated" in entry:
            start += f" → {entry['generated']:,} samples"
        dropped = ", ".join(f"{k}: {v:,}" for k, v in entry["dropped"].items()) or "-"
        lines.append(f"| {stage} | {start} | {entry['out']:,} | {dropped} |")
    return "\n".join(lines) + "\n"
