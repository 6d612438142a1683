"""Stage shards that hold only what a stage changed.

A stage that keeps its input's rows (verify, filters, dedup, ...) does not copy the problem,
prompt and trace text again: its shard holds the columns that differ from the full shard
they came from (its base: the source's or generation's), and names that file in its
metadata. Reading a shard joins the two, so every reader sees whole rows. A stage that makes
rows (generation) or changes their number writes them whole. Disk then holds the text once
plus a few small columns per stage, not one copy per stage.

The delta is kept against the full file, not against the stage before, so a read is always
two files, however long the pipeline.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import StoreError
from curate.records import read_parquet_metadata, write_parquet

BASE_KEY = "curate_base"


def base_of(path: Path) -> Path | None:
    """The full shard a delta shard's unchanged columns live in (None: the shard is full)."""
    name = read_parquet_metadata(path).get(BASE_KEY)
    return (path.parent / name).resolve() if name else None


def read_shard(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A stage shard as whole rows (or just `columns`, those it has), its metadata kept."""
    base = base_of(path)
    own = pq.read_schema(path)
    if base is None:
        return pq.read_table(path, columns=_wanted(own.names, columns))
    if not base.exists():
        raise StoreError(f"{path}: the shard it extends ({base}) is gone; run the stage again")
    delta = pq.read_table(path, columns=_wanted(own.names, columns))
    base_schema = pq.read_schema(base)
    kept = [c for c in _wanted(base_schema.names, columns) if c not in own.names]
    whole = pq.read_table(base, columns=kept)
    rows = pq.ParquetFile(path).metadata.num_rows
    if kept and whole.num_rows != rows:
        raise StoreError(
            f"{path}: {rows} rows, but the shard it extends ({base}) has "
            f"{whole.num_rows}; run the stage again"
        )
    names = dict.fromkeys([*_wanted(base_schema.names, columns), *delta.column_names])
    parts = {name: whole[name] for name in kept} | {n: delta[n] for n in delta.column_names}
    table = pa.table({name: parts[name] for name in names})
    return table.replace_schema_metadata(delta.schema.metadata)


def _wanted(names: list[str], columns: list[str] | None) -> list[str]:
    return [name for name in names if columns is None or name in columns]


def write_shard(
    table: pa.Table, path: Path, metadata: dict[str, str], source: Path | None, before: pa.Table
) -> None:
    """Write a stage's output shard: only the columns that differ from the full shard its
    input came from when the rows are the input's rows (`before`, read from `source`);
    whole otherwise."""
    base = None if source is None else base_of(source)
    if source is None or table.num_rows != before.num_rows:
        write_parquet(table, path, metadata)
        return
    if any(name not in table.column_names for name in before.column_names):
        write_parquet(table, path, metadata)  # a column went away: the delta cannot say so
        return
    held_apart = set(pq.read_schema(source).names) if base else set()
    base = base or source.resolve()
    changed = [
        name
        for name in table.column_names
        if name in held_apart
        or name not in before.column_names
        or name == "dropped"  # a delta always has a column, so it knows its rows
        or not _same(table, before, name)
    ]
    link = os.path.relpath(base, path.parent.resolve())
    write_parquet(table.select(changed), path, {**metadata, BASE_KEY: link})


def _same(table: pa.Table, before: pa.Table, name: str) -> bool:
    left, right = table[name], before[name]
    return bool(left.type == right.type and left.equals(right))


def materialize(path: Path, target: Path) -> None:
    """A shard as one whole file at target (a hard link when it already is one)."""
    if base_of(path) is not None:
        table = read_shard(path)
        metadata = {k: v for k, v in read_parquet_metadata(path).items() if k != BASE_KEY}
        write_parquet(table.replace_schema_metadata(None), target, metadata)
        return
    try:
        os.link(path, target)
    except OSError:
        shutil.copy2(path, target)
