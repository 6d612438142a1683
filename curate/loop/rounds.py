"""The loop's bookkeeping: which problems exist and which are held out, what each round
sampled and solved, the merged training set, pass@k, and the plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from curate import registry
from curate.loop.settings import LoopConfig, MergeConfig
from curate.publish.configs import sft_config
from curate.recipe import Recipe
from curate.records import stable_hash
from curate.store import RunStore

CATALOGUE = "problems.parquet"
PER_PROBLEM = "per_problem.parquet"


def catalogue(root: Path, recipe: Recipe, config: LoopConfig, seed: int) -> pl.DataFrame:
    """Every problem of the source with its curriculum level and split (train / held_out),
    made once and kept in LOOP/problems.parquet, so the split never moves."""
    path = root / CATALOGUE
    if path.exists():
        return pl.read_parquet(path, glob=False)
    source = registry.sources.get(recipe.source.kind)(recipe.source)
    key = config.curriculum.key if config.curriculum else None
    fraction = config.held_out.fraction if config.held_out else 0.0
    rows = []
    seen: set[str] = set()
    for problem in source.problems():
        pid = problem["problem_id"]
        if pid in seen:
            continue
        seen.add(pid)
        draw = int(stable_hash("held_out", str(seed), pid, size=4), 16) / 2**32
        rows.append(
            {
                "problem_id": pid,
                "level": _level(problem.get("metadata"), key),
                "split": "held_out" if draw < fraction else "train",
            }
        )
    frame = pl.DataFrame(
        rows, schema={"problem_id": pl.String, "level": pl.Float64, "split": pl.String}
    )
    frame.write_parquet(path)
    return frame


def _level(metadata: str | None, key: str | None) -> float | None:
    if key is None or not metadata:
        return None
    value = json.loads(metadata).get(key)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def round_problems(
    problems: pl.DataFrame, config: LoopConfig, number: int, past: pl.DataFrame
) -> list[str]:
    """The training problems round `number` samples: those its curriculum level allows,
    less those earlier rounds settled (resample: unsolved / below_target)."""
    train = problems.filter(pl.col("split") == "train")
    if config.curriculum is not None:
        schedule = config.curriculum.schedule
        ceiling = schedule[min(number, len(schedule) - 1)]
        train = train.filter(pl.col("level").is_null() | (pl.col("level") <= ceiling))
    ids = train["problem_id"].to_list()
    if number == 0 or config.resample == "all" or past.is_empty():
        return ids
    if config.resample == "unsolved":
        settled = set(past.filter(pl.col("correct") > 0)["problem_id"].to_list())
    else:
        latest = past.sort("round").group_by("problem_id").agg(pl.col("pass_rate").last())
        done = latest.filter(pl.col("pass_rate") >= config.target_pass_rate)
        settled = set(done["problem_id"].to_list())
    return [pid for pid in ids if pid not in settled]


def write_ids(path: Path, ids: list[str]) -> Path:
    text = "".join(pid + "\n" for pid in ids)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def ledger(run_dir: Path, columns: list[str] | None = None, kept: bool = False) -> pl.DataFrame:
    """A run's traces (rows with a sample; with `kept`, only the correct ones still in), or
    an empty frame when it has none: read a shard at a time, just `columns` (those the
    ledger has), so a big round is never read whole for a few columns."""
    store = RunStore(run_dir)
    shards = store.shards(store.ledger) if store.ledger.exists() else []
    parts = []
    for shard in shards:
        names = pq.read_schema(shard).names
        wanted = None if columns is None else [c for c in names if c in {*columns, *NEEDED}]
        rows = pl.read_parquet(shard, columns=wanted, glob=False).filter(
            pl.col("sample_idx").is_not_null()
        )
        if kept:
            rows = rows.filter(pl.col("dropped").is_null() & (pl.col("verdict") == "correct"))
        parts.append(rows)
    return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()


NEEDED = ("sample_idx", "dropped", "verdict")  # what ledger() itself reads


def outcomes(run_dir: Path, number: int) -> pl.DataFrame:
    """Per problem of one round: samples, correct ones, pass rate, corrected reference."""
    rows = ledger(run_dir, ["problem_id", "review"])
    if rows.is_empty():
        return pl.DataFrame(
            schema={
                "problem_id": pl.String,
                "round": pl.Int64,
                "samples": pl.UInt32,
                "correct": pl.UInt32,
                "pass_rate": pl.Float64,
            }
        )
    corrected = (
        pl.col("review").struct.field("corrected_reference").drop_nulls().first()
        if "review" in rows.columns
        else pl.lit(None, pl.String)
    )
    return rows.group_by("problem_id").agg(
        pl.lit(number, pl.Int64).alias("round"),
        pl.len().alias("samples"),
        (pl.col("verdict") == "correct").sum().alias("correct"),
        (pl.col("verdict") == "correct").mean().alias("pass_rate"),
        corrected.alias("corrected_reference"),
    )


def history(root: Path, before: int) -> pl.DataFrame:
    """Per-problem outcomes of rounds 0..before-1 (the policy's own samples)."""
    frames = [outcomes(root / f"round-{n}", n) for n in range(before)]
    frames = [f for f in frames if not f.is_empty()]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def failed_problems(run_dir: Path) -> list[str]:
    found = outcomes(run_dir, 0)
    return sorted(found.filter(pl.col("correct") == 0)["problem_id"].to_list())


def per_problem(root: Path, upto: int) -> pl.DataFrame:
    """LOOP/per_problem.parquet: each problem's samples, correct ones and pass rate per round,
    the round it was first solved in, and a reference reviewers corrected."""
    past = history(root, upto + 1)
    if past.is_empty():
        return past
    first = (
        past.filter(pl.col("correct") > 0)
        .group_by("problem_id")
        .agg(pl.col("round").min().alias("first_solved"))
    )
    table = past.join(first, on="problem_id", how="left").sort("problem_id", "round")
    table.write_parquet(root / PER_PROBLEM)
    return table


def round_metrics(root: Path, number: int) -> dict[str, Any]:
    """What a round sampled, solved and kept, and what its samples cost per kept trace."""
    folder = root / f"round-{number}"
    rows = ledger(folder, ["problem_id", "borderline"])
    found = outcomes(folder, number)
    solved = set(found.filter(pl.col("correct") > 0)["problem_id"].to_list())
    table = per_problem(root, number)
    ever = table.filter(pl.col("first_solved").is_not_null()) if not table.is_empty() else table
    kept = rows.filter(pl.col("dropped").is_null()) if not rows.is_empty() else rows
    lucky = (
        kept.filter(pl.col("borderline").list.contains("lucky_hit")).height
        if "borderline" in kept.columns
        else 0
    )
    rational = ledger(folder / "rationalize", [])
    rational_kept = rational.filter(pl.col("dropped").is_null()).height if rational.height else 0
    stats = RunStore(folder).load_stats() if (folder / "stats.json").exists() else {}
    tokens = stats.get("generate", {}).get("counts", {}).get("spent_completion_tokens", 0)
    accepted = kept.height + rational_kept
    return {
        "problems": found.height,
        "solved": len(solved),
        "solved_total": ever["problem_id"].n_unique() if not ever.is_empty() else 0,
        "samples": rows.height,
        "accepted": accepted,
        "rationalized": rational_kept,
        "lucky_hits": lucky,
        "sampler": "teacher" if number == 0 else "policy",
        "tokens_per_accepted": round(tokens / accepted, 1) if accepted else None,
    }


def merge(root: Path, number: int, config: MergeConfig, sampler: Any) -> Path:
    """The training set of round `number`: kept traces of rounds 0..number (rationalised ones
    with their hint-free prompt), the merge policy applied, in TRL's conversational layout."""
    parts = []
    for n in range(number + 1):
        own = _kept(ledger(root / f"round-{n}", kept=True), rationalized=False)
        hinted = _kept(ledger(root / f"round-{n}" / "rationalize", kept=True), rationalized=True)
        if not hinted.is_empty():  # published without the hint
            prompts = [sampler.messages(p) for p in hinted["problem"].to_list()]
            hinted = hinted.with_columns(pl.Series("prompt", prompts, dtype=hinted["prompt"].dtype))
        parts += [f for f in (own, hinted) if not f.is_empty()]
    folder = root / f"round-{number}" / "train" / "data"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train-00000-of-00001.parquet"
    if not parts:
        pl.DataFrame({"messages": [], "prompt": [], "completion": []}).write_parquet(path)
        return path
    merged = _capped(_unflagged(pl.concat(parts, how="diagonal_relaxed"), config), config)
    rows = [
        sft_config(merged.filter(pl.col("rationalized") == flag)).with_columns(
            pl.lit(flag).alias("rationalized")
        )
        for flag in (False, True)
    ]
    present = [r for r in rows if not r.is_empty()] or rows[:1]
    pl.concat(present, how="diagonal_relaxed").write_parquet(path)
    return path


def _kept(rows: pl.DataFrame, rationalized: bool) -> pl.DataFrame:
    if rows.is_empty():
        return rows
    kept = rows.filter(pl.col("dropped").is_null() & (pl.col("verdict") == "correct"))
    return kept.with_columns(pl.lit(rationalized).alias("rationalized"))


def _unflagged(rows: pl.DataFrame, config: MergeConfig) -> pl.DataFrame:
    """Rows without any of the borderline reasons the merge leaves out."""
    if not config.exclude_flags or "borderline" not in rows.columns:
        return rows
    flagged = pl.col("borderline").list.eval(pl.element().is_in(config.exclude_flags)).list.any()
    return rows.filter(~flagged.fill_null(False))


def _capped(rows: pl.DataFrame, config: MergeConfig) -> pl.DataFrame:
    """At most max_per_problem traces a problem (newer rounds or shorter traces first), then
    teacher rows cut to teacher_mix per policy row."""
    rows = rows.with_columns(pl.col("completion_tokens").fill_null(0))
    order = (
        [pl.col("round"), pl.col("completion_tokens")]
        if config.prefer == "newer"
        else [pl.col("completion_tokens"), pl.col("round")]
    )
    descending = [True, False] if config.prefer == "newer" else [False, True]
    ranked = rows.sort(order, descending=descending).with_columns(
        pl.int_range(pl.len()).over("problem_id").alias("_rank")
    )
    rows = ranked.filter(pl.col("_rank") < config.max_per_problem).drop("_rank")
    if config.teacher_mix is None:
        return rows
    policy = rows.filter(pl.col("round") > 0)
    if policy.is_empty():
        return rows
    teacher = rows.filter(pl.col("round") == 0)
    keep = int(config.teacher_mix * policy.height)
    teacher = teacher.with_columns(
        pl.col("gen_key").map_elements(lambda k: stable_hash("mix", k), pl.String).alias("_h")
    )
    teacher = teacher.sort("_h").head(keep).drop("_h")
    return pl.concat([policy, teacher], how="diagonal_relaxed")


def row_count(path: Path) -> int:
    return int(pl.scan_parquet(path, glob=False).select(pl.len()).collect().item())


def pass_at_k(run_dir: Path, problems: pl.DataFrame, k: int) -> dict[str, Any]:
    """pass@1 (mean share correct) and pass@k (share with any correct among k samples),
    overall and per curriculum level."""
    found = outcomes(run_dir, 0).join(problems, on="problem_id", how="left")
    scores = _scores(found, k)
    levels = found.filter(pl.col("level").is_not_null())
    if not levels.is_empty():
        scores["by_level"] = {
            _level_name(level): _scores(group, k)
            for (level,), group in sorted(levels.group_by("level"), key=lambda g: g[0][0])
        }
    return scores


def _scores(found: pl.DataFrame, k: int) -> dict[str, Any]:
    if found.is_empty():
        return {"problems": 0, "pass@1": 0.0, f"pass@{k}": 0.0}
    rate = float(found["pass_rate"].sum()) / found.height
    any_correct = float((found["correct"] > 0).sum()) / found.height
    return {"problems": found.height, "pass@1": round(rate, 4), f"pass@{k}": round(any_correct, 4)}


def _level_name(level: float) -> str:
    return str(int(level)) if math.isfinite(level) and level == int(level) else str(level)


def plot(root: Path, state: dict[str, Any]) -> Path | None:
    """LOOP/report/rounds.png: problems solved and held-out pass@1 (per level) by round."""
    numbers = sorted(state.get("rounds", {}), key=int)
    if not numbers:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    records = [state["rounds"][n] for n in numbers]
    xs = [int(n) for n in numbers]
    left.plot(xs, [r.get("sampled", {}).get("solved_total", 0) for r in records], marker="o")
    left.set(title="problems solved (cumulative)", xlabel="round")
    scored = [(x, r["eval"]) for x, r in zip(xs, records, strict=True) if "eval" in r]
    if scored:
        right.plot([x for x, _ in scored], [e["pass@1"] for _, e in scored], "o-", label="all")
        for level in sorted({lv for _, e in scored for lv in e.get("by_level", {})}):
            ys = [(x, e["by_level"][level]["pass@1"]) for x, e in scored if level in e["by_level"]]
            right.plot([x for x, _ in ys], [y for _, y in ys], ".-", label=f"level {level}")
        right.legend()
    right.set(title="held-out pass@1 after the round's training", xlabel="round", ylim=(0, 1))
    figure.tight_layout()
    path = root / "report" / "rounds.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
