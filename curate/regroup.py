"""Gathers each problem's traces into one shard when the input scattered them.

Existing traces need not come grouped by problem (a shuffled dataset, or samples appended
round by round), but the stages that look at a problem's traces together (trace_dedup,
select) and publishing work a shard at a time only when no problem spans two shards. So a
source that found scattered problems partitions its shards by problem in two passes, as an
external hash partition does. Pass 1 reads the shards in groups of about GROUP_BYTES and
writes each group as one Arrow file (zstd) holding one record batch per bucket, a bucket
being a range of problems by their place in the input. Pass 2 takes each bucket's batch
from every group file, orders it by problem and cuts it into shards that end on problem
boundaries. Memory holds one group, then one bucket (the input's rows / buckets); disk
holds the input twice while it runs. A crash redoes the group or the bucket in hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.memory import release_memory
from curate.progress import Progress
from curate.records import write_parquet

MAX_BUCKETS = 512  # batches per group file; a bucket holds rows / MAX_BUCKETS beyond
GROUP_BYTES = 64 << 20  # the rows pass 1 partitions at once (uncompressed)
PLACE = "_curate_problem"  # the problem's place in the input (first appearance)
COMPRESSED = pa.ipc.IpcWriteOptions(compression="zstd")


def bucket_count(rows: int, shard_size: int) -> int:
    """About one shard's rows per bucket, within MAX_BUCKETS."""
    return max(1, min(MAX_BUCKETS, -(-rows // max(shard_size, 1))))


def regroup(
    read: list[Path],
    out: Path,
    work: Path,
    places: dict[str, int],
    shard_size: int,
    progress: Progress,
) -> None:
    """Write the rows of the `read` shards into `out` as shards of about shard_size rows in
    which each problem's rows are together, problems in order of first appearance and
    each problem's rows in reading order; `places` gives each problem its place."""
    metas = [pq.read_metadata(path) for path in read]
    rows = sum(meta.num_rows for meta in metas)
    buckets = bucket_count(rows, shard_size)
    work.mkdir(parents=True, exist_ok=True)
    task = progress.task("regroup: by problem", rows)
    files = []
    for index, (group, group_rows) in enumerate(shard_groups(read, metas)):
        files.append(work / f"group-{index:05d}.arrow")
        if not files[-1].exists():  # written before a crash: the same rows
            write_group(group, files[-1], places, buckets)
            release_memory(collect=False)
        task.advance(group_rows)
    task = progress.task("regroup: into shards", rows)
    for bucket in range(buckets):
        done = work / f"bucket-{bucket:05d}.done"
        table = None if done.exists() else read_bucket(files, bucket)
        if table is not None:
            write_bucket(table, out, bucket, shard_size)
            done.touch()
            release_memory(collect=False)
        task.advance(0 if table is None else table.num_rows)


def shard_groups(
    read: list[Path], metas: list[pq.FileMetaData]
) -> Iterator[tuple[list[Path], int]]:
    """The read shards in runs of about GROUP_BYTES of data, in order, with their rows."""
    group: list[Path] = []
    size = rows = 0
    for path, meta in zip(read, metas, strict=True):
        group.append(path)
        rows += meta.num_rows
        size += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if size >= GROUP_BYTES:
            yield group, rows
            group, size, rows = [], 0, 0
    if group:
        yield group, rows


def write_group(group: list[Path], target: Path, places: dict[str, int], buckets: int) -> None:
    """Pass 1, one group: its rows tagged with their problem's place, as one record batch
    per bucket (batch b holds bucket b's rows, in reading order), written atomically."""
    tables = [pq.read_table(path, pre_buffer=False) for path in group]
    table = pa.concat_tables(tables, promote_options="permissive")  # extra columns may vary
    place = np.fromiter((places[p] for p in table["problem_id"].to_pylist()), np.int64)
    table = table.append_column(PLACE, pa.array(place))
    bucket = place * buckets // len(places)
    order = np.argsort(bucket, kind="stable")
    table = table.take(pa.array(order))
    bounds = np.searchsorted(bucket[order], np.arange(buckets + 1))
    tmp = target.with_name(f".{target.name}.tmp")
    with pa.ipc.new_file(tmp, table.schema, options=COMPRESSED) as writer:
        for b in range(buckets):
            start, end = int(bounds[b]), int(bounds[b + 1])
            writer.write_batch(one_batch(table.slice(start, end - start)))
    tmp.replace(target)


def one_batch(table: pa.Table) -> pa.RecordBatch:
    """The table as one record batch (empty ones too)."""
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)


def read_bucket(files: list[Path], bucket: int) -> pa.Table:
    """Pass 2: one bucket's rows from every group file, in reading order."""
    parts = []
    for path in files:
        with pa.ipc.open_file(pa.memory_map(str(path))) as reader:
            parts.append(pa.Table.from_batches([reader.get_batch(bucket)]))
    return pa.concat_tables(parts, promote_options="permissive").combine_chunks()


def write_bucket(table: pa.Table, out: Path, bucket: int, shard_size: int) -> None:
    """One bucket's rows ordered by problem place (stable: each problem's rows stay in
    reading order), cut on problem boundaries into shards named after the bucket
    (part-BBBBB-KKKK), replacing any a crash left half done."""
    for stale in out.glob(f"part-{bucket:05d}-*.parquet"):
        stale.unlink()
    order = np.argsort(table[PLACE].to_numpy(), kind="stable")
    table = table.take(pa.array(order)).drop_columns([PLACE])
    bounds = problem_batches(table["problem_id"].to_pylist(), shard_size)
    assert bounds is not None  # ordered by problem: each problem's rows are together
    for index, (start, end) in enumerate(bounds):
        write_parquet(
            table.slice(start, end - start), out / f"part-{bucket:05d}-{index:04d}.parquet"
        )


def problem_batches(problem_ids: list[str], size: int) -> list[tuple[int, int]] | None:
    """(start, end) of batches of about `size` rows that never split a problem, or None
    when a problem's rows are not all together (then only the whole input will do)."""
    bounds, start, seen = [], 0, set()
    for row, pid in enumerate(problem_ids):
        if row and pid != problem_ids[row - 1]:
            if pid in seen:
                return None
            if row - start >= size:
                bounds.append((start, row))
                start = row
        seen.add(pid)
    if start < len(problem_ids):
        bounds.append((start, len(problem_ids)))
    return bounds
