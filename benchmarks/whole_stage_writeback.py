"""A whole-input stage (dedup) writing its rows back into the run's shards: one pass
(partition_by, what curate does) against one filter per shard (what it did), same run.

    python benchmarks/whole_stage_writeback.py [--rows 400000] [--shard-size 256]

The frame is built the way the runner builds it: one chunk per shard read, with the
ledger's columns, so the cost per filter grows with the number of chunks.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl
import pyarrow as pa

from curate.records import conform

SHARD = "__shard"


def frame(rows: int, shard_size: int) -> pl.DataFrame:
    tables = []
    for index, start in enumerate(range(0, rows, shard_size)):
        count = min(shard_size, rows - start)
        table = pa.table(
            {
                "problem_id": [f"p{start + k}" for k in range(count)],
                "problem": [f"What is {start + k} + {k}? " * 4 for k in range(count)],
            }
        )
        tables.append(conform(table).append_column(SHARD, pa.array([index] * count, pa.int32())))
    merged = pl.from_arrow(pa.concat_tables(tables))
    assert isinstance(merged, pl.DataFrame)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--shard-size", type=int, default=256)
    args = parser.parse_args()
    data = frame(args.rows, args.shard_size)
    shards = int(data[SHARD].max() or 0) + 1  # type: ignore[arg-type]
    print(f"{args.rows:,} rows in {shards:,} shards of {args.shard_size}, {data.n_chunks()} chunks")
    started = time.perf_counter()
    parts = data.partition_by(SHARD, as_dict=True, include_key=False)
    one_pass = time.perf_counter() - started
    assert sum(p.height for p in parts.values()) == args.rows
    sample = np.linspace(0, shards - 1, min(shards, 100)).astype(int)
    started = time.perf_counter()
    for index in sample:
        data.filter(pl.col(SHARD) == int(index)).drop(SHARD)
    per_shard = (time.perf_counter() - started) / len(sample) * shards
    print(f"one pass (partition_by):       {one_pass:8.2f} s")
    print(f"a filter per shard (projected): {per_shard:8.2f} s  ({len(sample)} of them timed)")
    print(f"speed-up: {per_shard / one_pass:.0f}x")


if __name__ == "__main__":
    main()
