"""Gathers each problem's traces into one shard when the input scattered them.

Existing traces need not come grouped by problem (a shuffled dataset, or samples appended
round by round), but the stages that look at a problem's traces together (trace_dedup,
select) and publishing work a shard at a time only when no problem spans two shards. So a
source that found scattered problems partitions its shards by problem in two passes, as an
external hash partition does: each read shard's rows go to buckets by the problem's place
in the input (compressed Arrow streams, at most MAX_BUCKETS files), then each bucket is
ordered by problem and cut into shards that end on problem boundaries. Memory holds one
shard, then one bucket (the input's rows / buckets); disk holds the input twice while it
runs. A crash redoes the first pass, or the bucket in hand.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.memory import release_memory
from curate.records import write_parquet
from curate.store import read_json, write_json

MAX_BUCKETS = 512  # open files in the first pass; a bucket holds rows / MAX_BUCKETS beyond
PLACE = "_curate_problem"  # the problem's place in the input (first appearance)
FILLED = "_filled.json"
STREAM = pa.ipc.IpcWriteOptions(compression="zstd")


def bucket_count(rows: int, shard_size: int) -> int:
    """About one shard's rows per bucket, within the open-file bound."""
    return max(1, min(MAX_BUCKETS, -(-rows // max(shard_size, 1))))


def regroup(
    read: list[Path], out: Path, work: Path, places: dict[str, int], shard_size: int
) -> None:
    """Write the rows of the `read` shards into `out` as shards of about shard_size rows in
    which each problem's rows are together, problems in order of first appearance and
    each problem's rows in reading order; `places` gives each problem its place."""
    rows = sum(pq.read_metadata(path).num_rows for path in read)
    buckets = bucket_count(rows, shard_size)
    if read_json(work / FILLED).get("buckets") != buckets:
        shutil.rmtree(work, ignore_errors=True)
        fill_buckets(read, work, places, buckets)
        write_json(work / FILLED, {"buckets": buckets})
    for bucket in sorted(work.glob("bucket-*.arrow")):
        write_bucket(bucket, out, shard_size)
        bucket.unlink()  # its shards are written: a rerun does not redo them
        release_memory(collect=False)


def fill_buckets(read: list[Path], work: Path, places: dict[str, int], buckets: int) -> None:
    """First pass: every read shard's rows, tagged with their problem's place, appended to
    the bucket of that place (places split evenly over the buckets)."""
    work.mkdir(parents=True, exist_ok=True)
    writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
    try:
        for path in read:
            table = pq.read_table(path, pre_buffer=False)
            place = np.fromiter((places[p] for p in table["problem_id"].to_pylist()), np.int64)
            table = table.append_column(PLACE, pa.array(place))
            for index, part in split_by_bucket(table, place * buckets // len(places)):
                if index not in writers:
                    target = work / f"bucket-{index:05d}.arrow"
                    writers[index] = pa.ipc.new_stream(target, table.schema, options=STREAM)
                writers[index].write_table(part)
            release_memory(collect=False)
    finally:
        for writer in writers.values():
            writer.close()


def split_by_bucket(table: pa.Table, bucket: np.ndarray) -> list[tuple[int, pa.Table]]:
    """The table's rows by bucket, each part in the rows' order (one sort, no filter per
    bucket)."""
    order = np.argsort(bucket, kind="stable")
    table, bucket = table.take(pa.array(order)), bucket[order]
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = [*starts[1:], len(bucket)]
    return [(int(bucket[s]), table.slice(s, e - s)) for s, e in zip(starts, ends, strict=True)]


def write_bucket(bucket: Path, out: Path, shard_size: int) -> None:
    """Second pass, one bucket: its rows ordered by problem place (stable: each problem's
    rows stay in reading order), cut on problem boundaries into shards named after the
    bucket (part-BBBBB-KKKK), replacing any a crash left half done."""
    number = bucket.stem.removeprefix("bucket-")
    for stale in out.glob(f"part-{number}-*.parquet"):
        stale.unlink()
    with pa.ipc.open_stream(bucket) as reader:
        table = reader.read_all()
    place = table[PLACE].to_numpy()
    order = np.argsort(place, kind="stable")
    table, place = table.take(pa.array(order)).drop_columns([PLACE]), place[order]
    for index, (start, end) in enumerate(cuts(place, shard_size)):
        write_parquet(table.slice(start, end - start), out / f"part-{number}-{index:04d}.parquet")


def cuts(place: np.ndarray, size: int) -> list[tuple[int, int]]:
    """(start, end) of runs of about `size` rows over sorted places, never inside a place."""
    bounds, start = [], 0
    changes = np.flatnonzero(place[1:] != place[:-1]) + 1  # where a new problem starts
    for row in changes:
        if row - start >= size:
            bounds.append((start, int(row)))
            start = int(row)
    if start < len(place):
        bounds.append((start, len(place)))
    return bounds
