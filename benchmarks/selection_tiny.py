"""Does the selection policy matter? The same number of training examples, chosen from one
pool by each policy, trains the tiny model built here the same number of steps; held-out
accuracy per policy, over several seeds.

The pool: sums of two numbers of 1 to 4 digits (written units first with index hints, as
in benchmarks/self_improve_tiny.py; four difficulty levels) and two reasoning-gym task
kinds (basic_arithmetic, gcd). The simulated teacher (not a model) writes the
column-addition procedure for the sums and generic steps for the gym problems, with a share
of wrong answers; curate verifies every trace. Each policy picks N traces of the verified
pool with `select` (the stage `curate run` runs, called in-process); the tiny Qwen2 is
trained on them by TRL's SFTTrainer for S steps from the same random start; greedy answers
on held-out problems (never in the pool) are verified by curate. Printed: accuracy per kind
and overall, mean and spread over the seeds, per policy.

    python benchmarks/selection_tiny.py [--seeds 3] [--traces 1000] [--steps 500] [--work DIR]

Needs the extras `train` and `tokenizers` and a CPU build of torch.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl
import yaml
from self_improve_tiny import hinted

from curate.publish.configs import sft_config
from curate.records import conform
from curate.select import SelectConfig, SelectStage
from curate.stage import StageContext
from curate.units import process_batch

LEVELS = {1: 100, 2: 700, 3: 700, 4: 400}  # sums per digit count (1-digit: all 100 pairs)
GYM = {"basic_arithmetic": 300, "gcd": 300}
HELD_OUT = 0.1  # of each kind, never in the pool
POLICIES: dict[str, dict[str, Any]] = {
    "random": {},
    # the teacher's pass rate says nothing of difficulty here (the simulated teacher's errors
    # fall at random), so the difficulty band is s1's proxy: the longer traces
    "harder half (mean words)": {"bands": [{"measure": "mean_words", "min_quantile": 0.5}]},
    "uniform over kinds": {"mix": {"by": "metadata.kind", "balance": "uniform"}},
    "quality top half": {
        "prefer": "quality",
        "bands": [{"measure": "quality", "min_quantile": 0.5}],
    },
    "preset openthoughts3": {"preset": "openthoughts3"},
}
TEACHER = {
    "backend": "simulated",
    "style": "reversed_addition",
    "prompt_template": "{problem}",
    "samples": 4,
    "max_tokens": 384,
    "mean_steps": 1,  # gym traces stay short: padding to them is most of a step's cost
    "wrong_rate": 0.3,
    "truncate_rate": 0,
    "unboxed_rate": 0,
    "repeat_rate": 0,
    "language_mix_rate": 0,
}


def sums(rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for digits, count in LEVELS.items():
        low = 10 ** (digits - 1) if digits > 1 else 0
        pairs: set[tuple[int, int]] = set()
        while len(pairs) < min(count, (10**digits - low) ** 2):
            pairs.add((rng.randint(low, 10**digits - 1), rng.randint(low, 10**digits - 1)))
        for a, b in sorted(pairs):
            start = rng.randint(0, 26 - digits - 1)
            question = f"What is {hinted(a, digits, start)} + {hinted(b, digits, start)}?"
            answer = str(a + b).zfill(digits)[::-1]
            rows.append({"question": question, "answer": answer, "kind": f"sum-{digits}d"})
    return rows


def gym_problems(seed: int) -> list[dict[str, Any]]:
    import reasoning_gym

    rows = []
    for task, size in GYM.items():
        data = reasoning_gym.create_dataset(task, size=size, seed=seed)
        rows += [{"question": e["question"], "answer": e["answer"], "kind": task} for e in data]
    return rows


def make_problems(work: Path) -> tuple[Path, Path]:
    """pool.jsonl and held_out.jsonl: each kind split, HELD_OUT of it never in the pool."""
    rng = random.Random(0)
    rows = sums(rng) + gym_problems(0)
    rng.shuffle(rows)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    pool, held = [], []
    for kind_rows in by_kind.values():
        cut = max(1, int(len(kind_rows) * HELD_OUT))
        held += kind_rows[:cut]
        pool += kind_rows[cut:]
    for name, part in (("pool", pool), ("held_out", held)):
        text = "".join(json.dumps(r) + "\n" for r in part)
        (work / f"{name}.jsonl").write_text(text, encoding="utf-8")
    return work / "pool.jsonl", work / "held_out.jsonl"


def curate(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "curate", *args], cwd=cwd, check=True)


def recipe(work: Path, name: str, problems: Path, teacher: dict[str, Any]) -> Path:
    data = {
        "name": name,
        "seed": 0,
        "source": {
            "kind": "files",
            "path": str(problems),
            "columns": {"problem": "question", "reference": "answer", "metadata": ["kind"]},
        },
        "teacher": teacher,
        "verify": {"kind": "math", "workers": 1},
        "stages": ["generate", "verify"],
        "run": {"shard_size": 4096},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def pool_ledger(work: Path, pool: Path) -> pl.DataFrame:
    if not (work / "pool-run" / "ledger").exists():
        curate("run", str(recipe(work, "pool", pool, TEACHER)), "--run-dir", "pool-run", cwd=work)
    return pl.read_parquet(work / "pool-run" / "ledger")


def chosen(ledger: pl.DataFrame, policy: dict[str, Any], traces: int, seed: int) -> pl.DataFrame:
    """The policy's N traces: select as `curate run` runs it, with a budget of N traces."""
    section = {**policy, "budget": {"traces": traces, "order": "random"}}
    stage = SelectStage(SelectConfig(**section), StageContext(Path("/tmp"), seed=seed))
    out, _ = process_batch(stage, conform(ledger))
    frame = pl.from_arrow(out)
    assert isinstance(frame, pl.DataFrame)
    return frame.filter(pl.col("selected"))


def train(work: Path, data: pl.DataFrame, name: str, steps: int, seed: int) -> Path:
    out = work / "models" / name
    if (out / "training.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    data_file = work / "models" / f"{name}.parquet"
    sft_config(data).write_parquet(data_file)
    command = [sys.executable, "-m", "curate.loop.tiny", "train", str(data_file), "base"]
    command += [str(out), "--max-steps", str(steps), "--seed", str(seed)]
    with (work / "models" / f"{name}.log").open("w") as log:
        subprocess.run(command, cwd=work, stdout=log, stderr=subprocess.STDOUT, check=True)
    return out


def accuracy(work: Path, model: Path, held: Path) -> dict[str, float]:
    """Greedy held-out accuracy per kind, verified by curate (generate + verify)."""
    name = f"eval-{model.name}"
    if not (work / name / "ledger").exists():
        policy = {
            "backend": "transformers",
            "model": str(model),
            "prompt_template": "{problem}",
            "samples": 1,
            "temperature": 0,
            "max_tokens": 200,
            "batch_size": 256,
        }
        curate("run", str(recipe(work, name, held, policy)), "--run-dir", name, cwd=work)
    rows = pl.read_parquet(work / name / "ledger").filter(pl.col("sample_idx").is_not_null())
    kind = pl.col("metadata").str.json_path_match("$.kind").alias("kind")
    ok = (pl.col("verdict") == "correct").alias("ok")
    table = rows.with_columns(kind, ok).group_by("kind").agg(pl.col("ok").mean())
    found = {k: float(v) for k, v in table.iter_rows()}
    found["all"] = float(rows.select(ok.mean()).item())
    return found


def run_policy(args: Any, ledger: pl.DataFrame, held: Path, name: str, seed: int) -> dict[str, Any]:
    picked = chosen(ledger, POLICIES[name], args.traces, seed)
    slug = f"policy{list(POLICIES).index(name)}-seed{seed}"
    model = train(args.work, picked, slug, args.steps, seed)
    kinds = picked["metadata"].str.json_path_match("$.kind").value_counts()
    mix = {str(k): int(n) for k, n in kinds.iter_rows()}
    wrong = int(picked["verdict"].ne_missing("correct").sum())
    return {"accuracy": accuracy(args.work, model, held), "mix": mix, "not_correct": wrong}


def report(results: dict[str, list[dict[str, Any]]], seconds: float, args: Any) -> None:
    kinds = sorted({k for rs in results.values() for r in rs for k in r["accuracy"]} - {"all"})
    print(
        f"\nheld-out accuracy (greedy), {args.traces} training traces per policy, "
        f"{args.steps} steps, {args.seeds} seeds: mean ± standard deviation"
    )
    print(f"{'policy':<28} {'all':>13} " + " ".join(f"{k[:10]:>11}" for k in kinds))
    for name, runs in results.items():
        cells = [_spread([r["accuracy"].get(k, 0.0) for r in runs]) for k in ["all", *kinds]]
        print(f"{name:<28} {cells[0]:>13} " + " ".join(f"{c:>11}" for c in cells[1:]))
    print("\nwhat each policy trained on (first seed): traces per kind, not verified correct")
    for name, runs in results.items():
        mix = ", ".join(f"{k} {n}" for k, n in sorted(runs[0]["mix"].items()))
        print(f"{name:<28} {mix}; not correct {runs[0]['not_correct']}")
    print(f"\nwall time {seconds / 60:.1f} min on this machine")


def _spread(values: list[float]) -> str:
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f}±{deviation:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--traces", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--work", type=Path, default=Path("/tmp/curate-selection-tiny"))
    args = parser.parse_args()
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    pool, held = make_problems(args.work)
    if not (args.work / "base" / "config.json").exists():
        build = [sys.executable, "-m", "curate.loop.tiny", "build", "base", str(pool)]
        subprocess.run(build, cwd=args.work, check=True)
    ledger = pool_ledger(args.work, pool)
    jobs = [(name, seed) for seed in range(args.seeds) for name in POLICIES]
    with ThreadPoolExecutor(2) as pool_of_two:  # one training per core
        done = list(pool_of_two.map(lambda job: run_policy(args, ledger, held, *job), jobs))
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in POLICIES}
    for (name, _), result in zip(jobs, done, strict=True):
        results[name].append(result)
    report(results, time.monotonic() - started, args)


if __name__ == "__main__":
    main()
