"""A real model, really improving: the self-improvement loop on a tiny causal LM, on a CPU.

Easy-to-hard arithmetic (the setting of "Self-Improving Transformers", Lee et al. 2025):
sums of two numbers of 1 to 6 digits, the numbers and the answer written units first, as in
the paper's reversed addition. The simulated teacher writes the column-addition procedure,
but round 0 only covers sums of up to 3 digits. A ~1M-parameter
Qwen2 built here (no download) is trained on those traces by TRL's SFTTrainer; then each
round the model samples the next level's problems, curate verifies and selects, and the
model is trained again on what it got right. The control arm starts from the same round-0
model and trains the same number of steps on teacher data only. Held-out pass@1 per digit
count is printed for both arms after every round.

    python benchmarks/self_improve_tiny.py [--rounds 4] [--work DIR]

Needs the extras `train` and `tokenizers` and a CPU build of torch.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "self-improve-tiny.yaml"
COUNTS = {1: 100, 2: 3000, 3: 4000, 4: 1500, 5: 1500, 6: 1000}


def make_problems(path: Path, seed: int = 0) -> Path:
    """Distinct sums a + b, both numbers with d digits, for each d in COUNTS."""
    rng = random.Random(seed)
    rows = []
    for digits, count in COUNTS.items():
        low = 10 ** (digits - 1) if digits > 1 else 0
        pairs: list[tuple[int, int]] = []
        seen: set[tuple[int, int]] = set()
        while len(pairs) < min(count, (10**digits - low) ** 2):
            pair = (rng.randint(low, 10**digits - 1), rng.randint(low, 10**digits - 1))
            if pair not in seen:
                seen.add(pair)
                pairs.append(pair)
        for a, b in pairs:  # numbers and answer written units first
            question = f"What is {str(a)[::-1]} + {str(b)[::-1]}?"
            rows.append({"question": question, "answer": str(a + b)[::-1], "digits": digits})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def curate(*args: str, cwd: Path) -> None:
    command = [sys.executable, "-m", "curate", *args]
    subprocess.run(command, cwd=cwd, check=True)


def train(data: Path, start: Path, output: Path, max_steps: int, cwd: Path) -> dict[str, Any]:
    if not (output / "training.json").exists():
        command = [sys.executable, "-m", "curate.loop.tiny", "train", str(data), str(start)]
        command += [str(output), "--max-steps", str(max_steps)]
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return dict(json.loads((output / "training.json").read_text()))


def evaluate(model: Path, work: Path, name: str, loop_dir: Path) -> dict[str, Any]:
    """Held-out pass@1 per digit count of a model, with the loop's own held-out set and
    sampling settings (a plain `curate run` of generate + verify)."""
    from curate.loop import rounds

    loop = yaml.safe_load(PIPELINE.read_text())
    held = loop["loop"]["held_out"]
    policy = {**loop["loop"]["policy"], "model": str(model), "samples": held["samples"]}
    recipe = {
        "name": name,
        "source": loop["source"],
        "teacher": policy,
        "verify": loop["verify"],
        "stages": ["generate", "verify"],
        "run": {"problems": str(loop_dir / "round-0" / "held-out.txt"), "shard_size": 1024},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    curate("run", str(path), "--run-dir", str(work / name), cwd=work)
    import polars as pl

    catalogue = pl.read_parquet(loop_dir / "problems.parquet")
    return rounds.pass_at_k(work / name, catalogue, held["samples"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--work", type=Path, default=Path("/tmp/curate-self-improve-tiny"))
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    make_problems(work / "problems.jsonl")
    if not (work / "base" / "config.json").exists():
        curate_module = [sys.executable, "-m", "curate.loop.tiny", "build", "base"]
        subprocess.run([*curate_module, "problems.jsonl"], cwd=work, check=True)
    loop_dir = work / "loop"
    curate(
        "loop", str(PIPELINE), "--rounds", str(args.rounds), "--run-dir", str(loop_dir), cwd=work
    )
    state = json.loads((loop_dir / "loop.json").read_text())["rounds"]
    looped = {int(n): r for n, r in state.items()}
    control: dict[int, dict[str, Any]] = {0: looped[0]["eval"]}
    start = Path(looped[0]["train"]["output"])
    teacher_data = loop_dir / "round-0" / "train" / "data" / "train-00000-of-00001.parquet"
    for number in range(1, args.rounds):
        steps = json.loads((Path(looped[number]["train"]["output"]) / "training.json").read_text())
        output = work / "control" / f"round-{number}"
        train(teacher_data, start, output, int(steps["steps"]), work)
        control[number] = evaluate(output, work, f"control-eval-{number}", loop_dir)
        start = output
    report(looped, control, time.monotonic() - started)


def report(
    looped: dict[int, dict[str, Any]], control: dict[int, dict[str, Any]], seconds: float
) -> None:
    """pass@1 per digit count for both arms, round by round."""
    levels = sorted(
        {level for r in looped.values() for level in r.get("eval", {}).get("by_level", {})},
        key=float,
    )
    print("\nheld-out pass@1 by digit count, after each round's training")
    head = " ".join(f"{level + 'd':>6}" for level in levels)
    print(f"{'round':>5} {'arm':>8} {head}  solved (loop)")
    for number in sorted(looped):
        arms = (("loop", looped[number].get("eval", {})), ("control", control.get(number, {})))
        for arm, scores in arms:
            if not scores:
                continue
            by = scores.get("by_level", {})
            cells = " ".join(f"{by.get(lv, {}).get('pass@1', float('nan')):>6.3f}" for lv in levels)
            solved = (
                looped[number].get("sampled", {}).get("solved_total", "") if arm == "loop" else ""
            )
            print(f"{number:>5} {arm:>8} {cells}  {solved}")
    print(f"\nwall time {seconds / 60:.1f} min on this machine")


if __name__ == "__main__":
    main()
