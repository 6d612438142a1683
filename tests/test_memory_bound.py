"""Memory does not grow with the input: the shipped curate-existing pipeline over 200,000
traces that hold about 1.2 GB of text runs to the end, and `curate publish` stages its Hub
repository, each in a process whose data segment is limited (RLIMIT_DATA) to 900 MB, less
than that text, so no step may hold the whole input (one-off measurements here, not a
benchmark: about 720 MB of data segment at the peak of the run, in finish, and 580 MB in
publish, with 2,048-row shards; memory per step grows with the shard size, not with the
input).

The allocators are told to reserve only what they use (glibc arenas capped, Arrow on the
system allocator, polars' jemalloc not retaining address space), so the limit measures
memory in use, not address space set aside; a user with a hard memory cap can run with the
same settings.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

PIPELINE = Path(__file__).resolve().parents[1] / "pipelines" / "curate-existing.yaml"
TRACES, PER_PROBLEM, GROUP = 200_000, 8, 8_192
SHARD = 2_048  # rows per shard: what a step holds at once is a few shards' worth
LIMIT = 900 << 20  # bytes of data segment for the whole run, below the input's text
# glibc arenas capped, Arrow on the system allocator, polars' jemalloc told to hand back
# address space it no longer uses (it keeps it by default: VmData grew about 10 MB a shard
# in publish with flat RSS)
TUNED = {
    "MALLOC_ARENA_MAX": "2",
    "ARROW_DEFAULT_MEMORY_POOL": "system",
    "_RJEM_MALLOC_CONF": "retain:false",
}
FILE, CONFIGS = "train-00000-of-00001.parquet", ("data", "all", "rl")


def paragraphs(count: int, words: int) -> list[str]:
    """Different paragraphs of made-up words (no sentence repeats, so traces pass the
    repetition filter)."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50_000, (count, words))
    return [" ".join(f"w{t}" for t in line) + "." for line in tokens.tolist()]


def write_corpus(path: Path) -> int:
    """TRACES rows (problem, answer, generation), written a row group at a time; returns
    the bytes of text they hold."""
    texts = paragraphs(64, 500)
    schema = pa.schema([(n, pa.string()) for n in ("problem", "answer", "generations")])
    total = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for start in range(0, TRACES, GROUP):
            rows = range(start, min(start + GROUP, TRACES))
            problems = [f"Add {r // PER_PROBLEM} and {r // PER_PROBLEM + 1}." for r in rows]
            answers = [str(2 * (r // PER_PROBLEM) + 1) for r in rows]
            traces = [
                f"<think>Trace {r}. {texts[r % 64]} {texts[(r // 64) % 64]}</think>"
                f"The sum is $\\boxed{{{2 * (r // PER_PROBLEM) + 1 + r % 2}}}$."
                for r in rows
            ]
            total += sum(len(t) for t in traces) + sum(len(p) for p in problems)
            writer.write_table(pa.table([problems, answers, traces], schema=schema))
    return total


def recipe(tmp_path: Path, data: Path) -> Path:
    settings = yaml.safe_load(PIPELINE.read_text())
    settings["source"] = {
        "kind": "files",
        "path": str(data),
        "columns": {**settings["source"]["columns"], "metadata": []},
    }
    bench = tmp_path / "bench.jsonl"
    bench.write_text('{"problem": "What is 2 + 2?", "answer": "4"}\n', encoding="utf-8")
    settings["decontaminate"] = {
        "benchmarks": ["math500"],
        "files": {"math500": str(bench)},
        "semantic": None,
    }
    settings["run"] = {"shard_size": SHARD}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def test_two_hundred_thousand_traces_run_in_less_memory_than_their_text(tmp_path: Path):
    data = tmp_path / "traces.parquet"
    text = write_corpus(data)
    assert text > LIMIT  # holding the input's text alone would break the limit
    limited = (
        f"import resource; resource.setrlimit(resource.RLIMIT_DATA, ({LIMIT}, {LIMIT})); "
        "from curate.cli import main; main()"
    )
    run_dir = tmp_path / "run"
    for command in (
        ["run", str(recipe(tmp_path, data)), "--run-dir", str(run_dir)],
        ["publish", str(run_dir), "--repo-id", "org/traces", "--dry-run"],
    ):
        done = subprocess.run(
            [sys.executable, "-c", limited, *command],
            env={**os.environ, **TUNED},
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    ledger = sorted((run_dir / "ledger").glob("*.parquet"))
    assert sum(pq.read_metadata(p).num_rows for p in ledger) == TRACES
    dataset = sorted((run_dir / "dataset" / "data").glob("train-*.parquet"))
    assert len(dataset) == len(ledger)  # a file per ledger shard
    kept = sum(pq.read_metadata(p).num_rows for p in dataset)
    assert kept == TRACES // 2  # the right half of each problem's traces
    staged = run_dir / "publish"
    published = {name: pq.read_metadata(staged / name / FILE).num_rows for name in CONFIGS}
    assert published == {"data": TRACES // 2, "all": TRACES, "rl": TRACES // PER_PROBLEM}
