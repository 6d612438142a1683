"""Existing traces through `curate run` at scale: time per stage, peak memory, disk, and
whether every planted defect is caught; beside a plain math-verify loop on the same traces.

    python benchmarks/scale.py [--traces 100000 200000] [--per-problem 8]
                               [--reasoning-chars 4000 | --short] [--scattered]
                               [--symbolic 0.3] [--shard-size N]

The corpus (synthetic, made here): problems from benchmarks/synthetic.py with integer
answers, `per-problem` traces each (reasoning in <think> tags, about 1 in 3 wrong), and
planted defects: near-duplicate problems (a word changed), verbatim MATH-500 copies (when
../shared/evaldata is here), truncated traces (think never closed), looping traces and
traces that switch language. The run is pipelines/curate-existing.yaml pointed at the file,
in its own process, so its peak memory is its own.

Lengths are real ones by default: reasoning of 4,000 characters a trace on average
(log-normal, sigma 0.6: long right tail, median about 3,350), sentences of 8 to 20 words in
paragraphs of four, and a completion of about 50 characters. The mean is the one of the
1M-trace corpus the scale issue measured (125,000 problems x 8, reasoning about 4,000
characters); R1-style sets run longer still (OpenR1-Math-220k allows traces up to 16,000
tokens), so these figures are a floor. `--short` gives the old one-line traces.

Beside curate, on the same text: polars reading the input's text once (the least any
pass over it costs), and the filter's row checks as a plain per-row Python loop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import problems

ROOT = Path(__file__).resolve().parents[1]
MATH500 = ROOT.parent / "shared" / "evaldata" / "derived_math500" / "math500.jsonl"
VOCABULARY = "so then we add take the sum of both sides and check it again now multiply divide"
LOOP = "Wait, let me check that step again. " * 60
ROW_GROUP = 8192  # rows per Parquet row group of the input, as dataset writers keep them
CHINESE = "我们先计算第一部分，然后把结果加起来。" * 8
REAL_MEAN_CHARS = 4_000  # reasoning per trace, mean (see the module's docstring)
REAL_SIGMA = 0.6  # spread of the log-normal lengths
SENTENCES = 200_000  # distinct sentences traces are made of


def corpus(
    data: Path,
    traces: int,
    per_problem: int,
    seed: int = 0,
    mean_chars: int = REAL_MEAN_CHARS,
    scattered: bool = False,
    symbolic: float = 0.0,
) -> dict[str, Any]:
    """Write trace rows to `data` (Parquet, one row group at a time, so this process stays
    small at a million traces) and return what was planted in them; reasoning of about
    `mean_chars` characters a trace (0: a line only); a share
    `symbolic` of the problems has a fraction or radical for answer, which traces write in
    another form (math-verify must work these out: no integer shortcut)."""
    count = traces // per_problem
    texts, _ = problems(count, seed=seed)
    rng = np.random.default_rng(seed)
    values = rng.integers(1, 10_000, count)
    forms = np.where(rng.random(count) < symbolic, values % 2 + 1, 0)
    answers = [answer_forms(int(v), int(f)) for v, f in zip(values, forms, strict=True)]
    pairs = max(1, count // 200)
    chosen = rng.choice(count, 2 * pairs, replace=False)
    for original, copy in zip(chosen[:pairs], chosen[pairs:], strict=True):
        # the same problem, asked with a few words more
        texts[copy], answers[copy] = texts[original] + " Give the exact value.", answers[original]
    bench = []
    if MATH500.exists():
        items = [json.loads(line) for line in MATH500.read_text().splitlines()]
        slots = rng.choice(count, min(len(items), max(1, count // 1000)), replace=False)
        for slot, item in zip(slots, items, strict=False):
            texts[slot] = item["problem"]
            bench.append(int(slot))
    kinds = rng.choice(
        ["right", "wrong", "truncated", "loop", "mixed"],
        size=count * per_problem,
        p=[0.62, 0.32, 0.02, 0.02, 0.02],
    )
    schema = pa.schema(
        [("problem", pa.string()), ("answer", pa.string()), ("generations", pa.string())]
    )
    pool = sentence_pool(rng) if mean_chars else None
    with pq.ParquetWriter(data, schema, compression="zstd") as writer:
        for start in range(0, count * per_problem, ROW_GROUP):
            rows = range(start, min(start + ROW_GROUP, count * per_problem))
            filler = reasoning_filler(len(rows), mean_chars, rng, pool)
            of = [row % count if scattered else row // per_problem for row in rows]
            columns = trace_rows(rows, of, texts, answers, kinds, filler)
            writer.write_table(pa.table(columns, schema=schema))
    planted = {
        "near_duplicate_problems": pairs,
        "benchmark_copies": len(bench),
        "truncated": int((kinds == "truncated").sum()),
        "loop": int((kinds == "loop").sum()),
        "mixed": int((kinds == "mixed").sum()),
    }
    planted["kinds"] = kinds
    return planted


def trace_rows(
    rows: range,
    problem_of: list[int],
    texts: list[str],
    answers: list[tuple[str, str, str]],
    kinds: np.ndarray,
    filler: list[str],
) -> dict[str, list[str]]:
    """The given trace rows: problem, reference answer and one generation each, of its kind."""
    columns: dict[str, list[str]] = {"problem": [], "answer": [], "generations": []}
    for row, problem, words in zip(rows, problem_of, filler, strict=True):
        kind = str(kinds[row])
        reference, right, wrong = answers[problem]
        said = wrong if kind == "wrong" else right
        thought = f"Trace {row}: set up the quantities. {words} Then combine them."
        if kind == "loop":
            thought += " " + LOOP
        if kind == "mixed":
            thought += " " + CHINESE
        trace = f"<think>{thought}</think>The answer is $\\boxed{{{said}}}$."
        if kind == "truncated":
            trace = f"<think>{thought} and then"
        columns["problem"].append(texts[problem])
        columns["answer"].append(reference)
        columns["generations"].append(trace)
    return columns


def answer_forms(value: int, form: int) -> tuple[str, str, str]:
    """A problem's reference, a right answer and a wrong one: an integer (form 0), a
    fraction (1) or a radical (2), the right answer in another form than the reference."""
    if form == 1:
        denominator = 3 + value % 89
        return (
            f"\\frac{{{value}}}{{{denominator}}}",
            f"\\dfrac{{{2 * value}}}{{{2 * denominator}}}",
            f"\\frac{{{value + 1}}}{{{denominator}}}",
        )
    if form == 2:
        return f"{value}\\sqrt{{3}}", f"\\sqrt{{{3 * value * value}}}", f"{value + 1}\\sqrt{{3}}"
    return str(value), str(value), str(value + 1)


def sentence_pool(rng: np.random.Generator) -> np.ndarray:
    """Sentences of 8 to 20 words and numbers, as reasoning is written (a trace picks its
    own at random, so traces differ and none loops)."""
    vocabulary = np.array(VOCABULARY.split())
    sizes = rng.integers(8, 21, SENTENCES)
    words = vocabulary[rng.integers(0, len(vocabulary), int(sizes.sum()))]
    numbers = rng.integers(0, 1000, int(sizes.sum())).astype(str)
    tokens = np.where(rng.random(int(sizes.sum())) < 0.2, numbers, words).tolist()
    ends = np.cumsum(sizes).tolist()
    starts = [0, *ends[:-1]]
    return np.array(
        [" ".join(tokens[a:b]).capitalize() + "." for a, b in zip(starts, ends, strict=True)]
    )


def reasoning_filler(
    rows: int, mean_chars: int, rng: np.random.Generator, pool: np.ndarray | None
) -> list[str]:
    """Each trace's reasoning: sentences from the pool in paragraphs of four, to a length
    drawn from a log-normal of the given mean (none when mean_chars is 0)."""
    if mean_chars == 0 or pool is None:
        return [""] * rows
    sentence = float(np.mean([len(x) + 1 for x in pool[:1000]]))
    mu = np.log(mean_chars) - REAL_SIGMA**2 / 2  # so that the mean is mean_chars
    lengths = rng.lognormal(mu, REAL_SIGMA, rows)
    counts = np.maximum(1, np.round(lengths / sentence)).astype(int)
    picks = pool[rng.integers(0, len(pool), int(counts.sum()))].tolist()
    texts, at = [], 0
    for count in counts.tolist():
        chosen = picks[at : at + count]
        at += count
        texts.append("\n\n".join(" ".join(chosen[k : k + 4]) for k in range(0, count, 4)))
    return texts


def recipe(data: Path, folder: Path, shard_size: int | None = None) -> Path:
    settings = yaml.safe_load((ROOT / "pipelines" / "curate-existing.yaml").read_text())
    columns = {**settings["source"]["columns"], "metadata": []}
    settings["source"] = {"kind": "files", "path": str(data), "columns": columns}
    settings["decontaminate"] = {"semantic": None, "benchmarks": ["math500"]}
    if MATH500.exists():
        settings["decontaminate"]["files"] = {"math500": str(MATH500)}
    if shard_size is not None:  # else the default for existing traces (8,192 rows)
        settings["run"] = {"shard_size": shard_size}
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def run(recipe_path: Path, run_dir: Path) -> tuple[float, float, dict[str, float]]:
    """Seconds and peak resident memory of `curate run`, watched in /proc while it runs
    (VmHWM starts afresh at exec; ru_maxrss of a child counts this process's memory from
    before the exec), the highest resident memory seen in each step, and (printed) how
    many cores each step kept busy on average (CPU time of curate and its workers)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "curate", "run", str(recipe_path), "--run-dir", str(run_dir)],
        stdout=subprocess.DEVNULL,
    )
    peak_kb = 0
    steps: dict[str, float] = {}
    busy: dict[str, list[float]] = {}  # step: [first wall, first cpu, last wall, last cpu]
    while child.poll() is None:
        try:
            status = Path(f"/proc/{child.pid}/status").read_text()
            peak_kb = max(peak_kb, int(status.split("VmHWM:")[1].split()[0]))
            now = int(status.split("VmRSS:")[1].split()[0]) / 1024
            cpu = cpu_seconds(child.pid)
        except (OSError, IndexError):
            continue
        step = current_step(run_dir)
        steps[step] = max(steps.get(step, 0.0), now)
        wall = time.perf_counter()
        busy.setdefault(step, [wall, cpu, wall, cpu])[2:] = [wall, cpu]
        time.sleep(0.2)
    if child.returncode:
        sys.exit(f"curate run failed with exit code {child.returncode}")
    cores = {k: (c1 - c0) / (w1 - w0) for k, (w0, c0, w1, c1) in busy.items() if w1 - w0 > 1}
    print("  cores busy per step (average): " + ", ".join(f"{k} {v:.2f}" for k, v in cores.items()))
    return time.perf_counter() - started, peak_kb / 1024, steps


def cpu_seconds(pid: int) -> float:
    """CPU time of a process, the children it has waited for, and its live children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    for task in Path(f"/proc/{pid}/task").iterdir():
        for kid in (task / "children").read_text().split():
            try:
                kid_fields = Path(f"/proc/{kid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            ticks += int(kid_fields[11]) + int(kid_fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def current_step(run_dir: Path) -> str:
    """The step a run is in: the newest stage folder, or finish once the ledger is made."""
    if any((run_dir / "ledger").glob("*.parquet")):
        return "finish"
    stages = sorted((run_dir / "stages").glob("*")) if (run_dir / "stages").exists() else []
    return stages[-1].name.partition("-")[2] if stages else "start"


def plain_verify(frame: pl.DataFrame) -> tuple[float, list[bool]]:
    """A plain math-verify loop over the same traces (one process): seconds, and each
    trace's verdict (the answer after </think> equals the reference)."""
    from math_verify import parse, verify

    started = time.perf_counter()
    verdicts = [
        bool(verify(parse(f"${answer}$"), parse(trace.rpartition("</think>")[2])))
        for answer, trace in zip(frame["answer"], frame["generations"], strict=True)
    ]
    return time.perf_counter() - started, verdicts


def compare_verdicts(run_dir: Path, plain: list[bool]) -> str:
    """How curate's verdicts on the first traces of the corpus compare with the plain
    loop's, over the traces curate verified (not dropped before verify) and that closed
    their think (the plain loop reads a truncated trace whole)."""
    ledger = ledger_rows(run_dir).filter(
        pl.col("verdict").is_not_null() & (pl.col("row") < len(plain)) & pl.col("closed")
    )
    ours = (ledger["verdict"] == "correct").to_list()
    theirs = [plain[row] for row in ledger["row"]]
    same = sum(a == b for a, b in zip(ours, theirs, strict=True))
    return f"{same:,} of {len(ours):,} equal ({len(ours) - same:,} differ)"


def plain_passes(data: Path, size: int) -> None:
    """The plain alternatives on the same text: polars reading every trace's text once (and
    counting its words, one vectorised pass), and the filter's row checks as a plain
    per-row Python loop in one process (on 20,000 traces, scaled to the corpus)."""
    from curate.filters import FiltersConfig, row_flags

    started = time.perf_counter()
    words = (
        pl.scan_parquet(data)
        .select(pl.col("generations").str.count_matches(r"\S+").sum())
        .collect()
        .item()
    )
    read = time.perf_counter() - started
    sample = pl.read_parquet(data, columns=["generations"], n_rows=min(size, 20_000))
    split = sample["generations"].str.split_exact("</think>", 1).struct.unnest()
    rows = [
        {"reasoning": r, "completion": c, "finish_reason": "stop", "domain": "math"}
        for r, c in zip(split["field_0"], split["field_1"], strict=True)
    ]
    started = time.perf_counter()
    row_flags(FiltersConfig(), rows)
    each = (time.perf_counter() - started) / len(rows)
    print(
        f"  plain: polars reads the text and counts its {words:,} words in {read:.1f} s; the "
        f"filter's row checks as a per-row Python loop: {each * 1e6:,.0f} us a trace, "
        f"{each * size:,.0f} s for {size:,} on one core"
    )


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def ledger_rows(run_dir: Path) -> pl.DataFrame:
    """The ledger's small columns, and the corpus row each trace came from, read shard by
    shard (the ledger holds every trace's text)."""
    parts = []
    for shard in sorted((run_dir / "ledger").glob("*.parquet")):
        frame = pl.read_parquet(
            shard,
            columns=[
                "problem_id",
                "dropped",
                "contaminated",
                "verdict",
                "finish_reason",
                "reasoning",
            ],
        )
        row = pl.col("reasoning").str.extract(r"Trace (\d+):").cast(pl.Int64).alias("row")
        closed = (pl.col("finish_reason") != "length").fill_null(True).alias("closed")
        parts.append(frame.with_columns(row, closed).drop("reasoning", "finish_reason"))
    return pl.concat(parts)


def report(folder: Path, planted: dict[str, Any], data: Path, steps: dict[str, float]) -> None:
    run_dir = folder / "run"
    stats = json.loads((run_dir / "stats.json").read_text())
    ledger = ledger_rows(run_dir)
    timed = [(name, e["seconds"]) for name, e in stats.items() if "seconds" in e]
    print("  per stage (s): " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in timed))
    print(
        "  peak RSS per step (MB, sampled): " + ", ".join(f"{k} {v:,.0f}" for k, v in steps.items())
    )
    counts = ledger["dropped"].drop_nulls().value_counts().sort("count", descending=True)
    print("  dropped: " + ", ".join(f"{r['dropped']} {r['count']:,}" for r in counts.to_dicts()))
    near = ledger.filter(pl.col("dropped") == "near_duplicate")["problem_id"].n_unique()
    print(
        f"  caught: near-duplicate problems {near} of {planted['near_duplicate_problems']}, "
        f"benchmark copies {ledger.filter(pl.col('contaminated'))['problem_id'].n_unique()} "
        f"of {planted['benchmark_copies']}"
    )
    rows = ledger.select("row", "dropped").drop_nulls("row")
    kinds = planted["kinds"][rows["row"].to_numpy()]
    gone = rows["dropped"].is_not_null().to_numpy()
    caught = [
        f"{kind} {int((gone & (kinds == kind)).sum()):,} of {planted[kind]:,}"
        for kind in ("truncated", "loop", "mixed")
    ]
    print("  bad traces dropped: " + ", ".join(caught))
    disk(run_dir, data)


def disk(run_dir: Path, data: Path) -> None:
    """The run folder beside the input. The ledger holds the text once; the source's shards
    keep only the columns the stages changed (they read the rest from the ledger) and later
    stages only the columns they change. A full copy per stage is what that replaced."""
    stages = sorted(p for p in (run_dir / "stages").iterdir() if p.is_dir())
    source, later = size_mb(stages[0]), sum(size_mb(p) for p in stages[1:])
    ledger, dataset = size_mb(run_dir / "ledger"), size_mb(run_dir / "dataset")
    total = size_mb(run_dir)
    given = size_mb(data)
    print(
        f"  disk: run folder {total:,.1f} MB for {given:,.1f} MB of input "
        f"({total / given:.2f}x): ledger {ledger:,.1f}, source shards {source:,.1f}, the "
        f"{len(stages) - 1} later stages {later:,.1f}, dataset {dataset:,.1f}, other "
        f"{total - ledger - source - later - dataset:,.1f}; a full copy per stage would be "
        f"about {ledger * (len(stages) + 1) + dataset:,.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, nargs="+", default=[100_000, 200_000])
    parser.add_argument("--per-problem", type=int, default=8)
    parser.add_argument(
        "--reasoning-chars",
        type=int,
        default=REAL_MEAN_CHARS,
        help=f"mean reasoning length per trace (default {REAL_MEAN_CHARS:,})",
    )
    parser.add_argument(
        "--short", action="store_true", help="traces of one line of reasoning (the old default)"
    )
    parser.add_argument(
        "--shard-size", type=int, default=None, help="run.shard_size (default: the recipe's)"
    )
    parser.add_argument(
        "--symbolic",
        type=float,
        default=0.0,
        help="share of problems with a fraction or radical for answer (math-verify's work)",
    )
    parser.add_argument(
        "--scattered",
        action="store_true",
        help="a problem's traces spread through the whole file, not together",
    )
    args = parser.parse_args()
    for size in args.traces:
        folder = Path(tempfile.mkdtemp(prefix="curate-scale-"))
        try:
            data = folder / "traces.parquet"
            planted = corpus(
                data,
                size,
                args.per_problem,
                mean_chars=0 if args.short else args.reasoning_chars,
                scattered=args.scattered,
                symbolic=args.symbolic,
            )
            groups = pq.ParquetFile(data).metadata.num_row_groups
            print(f"{size:,} traces, {size_mb(data):,.0f} MB of Parquet in {groups} row groups")
            seconds, peak, steps = run(recipe(data, folder, args.shard_size), folder / "run")
            print(f"  curate run {seconds:.1f} s, peak RSS {peak:,.0f} MB")
            report(folder, planted, data, steps)
            plain_passes(data, size)
            sample = pl.read_parquet(data, n_rows=min(size, 20_000))
            plain, verdicts = plain_verify(sample)
            print(
                f"  plain math-verify loop: {len(sample) / plain:,.0f} traces/s on {len(sample):,} "
                f"(curate's verify stage: see its seconds above); curate's verdicts on them: "
                f"{compare_verdicts(folder / 'run', verdicts)}"
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
