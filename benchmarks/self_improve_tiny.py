"""A real model, really improving: the self-improvement loop on a tiny causal LM, on a CPU.

Easy-to-hard arithmetic (the setting of "Self-Improving Transformers", Lee et al. 2025):
sums of two numbers of 1 to 4 digits, the numbers and the answer written units first with
index hints, as in the paper's reversed addition. The simulated teacher writes the
column-addition procedure, but its data covers 3-digit sums sparsely: every 1-2 digit sum
and only 300 of the 3,000 3-digit ones (tier 0); 4-digit sums it never covers. A
~1M-parameter Qwen2 built here (no download) is trained on those traces by TRL's
SFTTrainer; then each round the model samples the next tier's problems (round 1: the 3-digit
sums the teacher left out; round 2: those still unsolved, and 4-digit sums), curate verifies
and selects, and the model is trained again on what it got right. The control arm starts
from the same round-0 model and trains the same number of steps on teacher data only (on
the other core, while the loop goes on). Held-out pass@1 per digit count is printed for both
arms after every round.

    python benchmarks/self_improve_tiny.py [--rounds 3] [--work DIR]

Needs the extras `train` and `tokenizers` and a CPU build of torch.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "self-improve-tiny.yaml"
COUNTS = {1: 100, 2: 3000, 3: 3000, 4: 600}
TEACHER_THREE_DIGIT = 300  # the teacher's data covers all 1-2 digit sums and this many of 3


def hinted(number: int, width: int, start: int) -> str:
    """The number units first, zero-padded to width, each digit after an index hint
    (Zhou et al. 2023): 427, width 4, start 2 -> 'c7d2e4f0'."""
    digits = str(number).zfill(width)[::-1]
    return "".join(string.ascii_lowercase[start + i] + d for i, d in enumerate(digits))


def make_problems(path: Path, seed: int = 0) -> Path:
    """Distinct sums a + b of two d-digit numbers for each d in COUNTS, written units first
    with index hints; the answer units first at the same width. `tier` is the curriculum
    level: 0 for what the teacher covers (every sum of up to 2 digits and the first
    TEACHER_THREE_DIGIT of 3), then one tier per digit count from 3."""
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
        for a, b in pairs:
            width = digits
            start = rng.randint(0, 26 - width - 1)
            question = f"What is {hinted(a, width, start)} + {hinted(b, width, start)}?"
            total = str(a + b).zfill(width)[::-1]
            tier = 0 if digits <= 2 else digits - 2
            rows.append({"question": question, "answer": total, "digits": digits, "tier": tier})
    for row in [r for r in rows if r["digits"] == 3][:TEACHER_THREE_DIGIT]:
        row["tier"] = 0
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def per_digit(run_dir: Path) -> dict[str, float]:
    """pass@1 per digit count of a generate + verify run (the eval of one policy)."""
    import polars as pl

    rows = pl.read_parquet(run_dir / "ledger").filter(pl.col("sample_idx").is_not_null())
    digits = rows["metadata"].str.json_path_match("$.digits").alias("digits")
    table = (
        rows.with_columns(digits, (pl.col("verdict") == "correct").alias("ok"))
        .group_by("digits")
        .agg(pl.col("ok").mean())
    )
    return {d: round(float(v), 3) for d, v in sorted(table.iter_rows())}


def curate(*args: str, cwd: Path) -> None:
    command = [sys.executable, "-m", "curate", *args]
    subprocess.run(command, cwd=cwd, check=True)


def start_training(
    data: Path, start: Path, output: Path, max_steps: int, cwd: Path
) -> subprocess.Popen[bytes] | None:
    """The control arm's training for one round, in the background (None: already done)."""
    if (output / "training.json").exists():
        return None
    command = [sys.executable, "-m", "curate.loop.tiny", "train", str(data), str(start)]
    command += [str(output), "--max-steps", str(max_steps)]
    output.parent.mkdir(parents=True, exist_ok=True)
    log = (output.parent / f"{output.name}.log").open("w")
    return subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)


def evaluate(model: Path, work: Path, name: str, loop_dir: Path) -> dict[str, float]:
    """Held-out pass@1 per digit count of a model, on the loop's own held-out problems with
    its sampling settings (a plain `curate run` of generate + verify)."""
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
    return per_digit(work / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/curate-self-improve-tiny"))
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    make_problems(work / "problems.jsonl")
    if not (work / "base" / "config.json").exists():
        build = [sys.executable, "-m", "curate.loop.tiny", "build", "base", "problems.jsonl"]
        subprocess.run(build, cwd=work, check=True)
    loop_dir = work / "loop"
    teacher_data = loop_dir / "round-0" / "train" / "data" / "train-00000-of-00001.parquet"
    control: list[Path] = []
    running: subprocess.Popen[bytes] | None = None
    for number in range(args.rounds):
        command = [sys.executable, "-m", "curate", "loop", str(PIPELINE), "--rounds"]
        loop = subprocess.Popen([*command, str(number + 1), "--run-dir", str(loop_dir)], cwd=work)
        planned = 0
        if number:  # the control trains as many steps on the other core, meanwhile
            planned = planned_steps(loop_dir, number, loop)
            if running is not None:
                running.wait()  # the control arm's models follow one another, like the loop's
            start = control[-1] if control else loop_dir / "round-0" / "policy"
            control.append(work / "control" / f"round-{number}")
            running = start_training(teacher_data, start, control[-1], planned, work)
        if loop.wait():
            sys.exit(f"curate loop failed with exit code {loop.returncode}")
        if number and training_steps(loop_dir, number) != planned:
            sys.exit(
                f"round {number}: the loop trained {training_steps(loop_dir, number)} "
                f"steps, the control {planned}"
            )
    if running is not None:
        running.wait()
    looped = {
        int(n): r for n, r in json.loads((loop_dir / "loop.json").read_text())["rounds"].items()
    }
    scores = {("loop", n): per_digit(loop_dir / f"round-{n}" / "eval") for n in looped}
    for number, model in enumerate(control, start=1):
        scores[("control", number)] = evaluate(model, work, f"control-eval-{number}", loop_dir)
    report(looped, scores, time.monotonic() - started)


def planned_steps(loop_dir: Path, number: int, loop: subprocess.Popen[bytes]) -> int:
    """The steps the loop's training of round `number` will take, worked out from its
    training set as soon as it is written (as the trainer does: batches per epoch times
    epochs, from the recipe's train command), so the control can start alongside."""
    data = loop_dir / f"round-{number}" / "train" / "data" / "train-00000-of-00001.parquet"
    rows = None
    while rows is None:
        if loop.poll() is not None and not data.exists():
            sys.exit(f"curate loop ended (exit code {loop.returncode}) before round {number}")
        try:
            rows = pq.read_metadata(data).num_rows
        except (OSError, pa.ArrowInvalid):  # not there yet, or still being written
            time.sleep(1)
    train = yaml.safe_load(PIPELINE.read_text())["loop"]["train"]["command"]
    epochs = re.search(r"--epochs (\S+)", train)
    batch = re.search(r"--batch-size (\d+)", train)
    per_epoch = -(-rows // (int(batch.group(1)) if batch else 32))
    return math.ceil(per_epoch * (float(epochs.group(1)) if epochs else 3))


def training_steps(loop_dir: Path, number: int) -> int:
    output = loop_dir / f"round-{number}" / "policy" / "training.json"
    return int(json.loads(output.read_text())["steps"])


def report(
    looped: dict[int, dict[str, Any]],
    scores: dict[tuple[str, int], dict[str, float]],
    seconds: float,
) -> None:
    """pass@1 per digit count for both arms, round by round."""
    digits = sorted({d for found in scores.values() for d in found}, key=int)
    print("\nheld-out pass@1 by digit count, after each round's training")
    head = " ".join(f"{d + 'd':>6}" for d in digits)
    print(f"{'round':>5} {'arm':>8} {head}   solved  own traces")
    for number in sorted(looped):
        sampled = looped[number].get("sampled", {})
        for arm in ("loop", "control"):
            found = scores.get((arm, number))
            if found is None:
                continue
            cells = " ".join(f"{found.get(d, float('nan')):>6.3f}" for d in digits)
            extra = f"{sampled.get('solved_total', 0):>8}  {sampled.get('accepted', 0):>10}"
            print(f"{number:>5} {arm:>8} {cells}" + (f" {extra}" if arm == "loop" else ""))
    print("(round 0: both arms are the model trained on the teacher's data)")
    print(f"\nwall time {seconds / 60:.1f} min on this machine")


if __name__ == "__main__":
    main()
