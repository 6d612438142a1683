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
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import StoreError
from curate.records import write_parquet

BASE_KEY = "curate_base"


@dataclass(frozen=True)
class Header:
    """What a shard's footer says: its columns, rows and the full shard it extends."""

    schema: pa.Schema
    rows: int
    base: Path | None  # None: the shard is whole


def header(path: Path) -> Header:
    footer = pq.read_metadata(path)
    schema = footer.schema.to_arrow_schema()
    name = (schema.metadata or {}).get(BASE_KEY.encode())
    base = (path.parent / name.decode()).resolve() if name else None
    return Header(schema, footer.num_rows, base)


def read_shard(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A stage shard as whole rows (or just `columns`, those it has), its metadata kept."""
    own = header(path)
    delta = pq.read_table(path, columns=_wanted(own.schema.names, columns))
    if own.base is None:
        return delta
    if not own.base.exists():
        raise StoreError(f"{path}: the shard it extends ({own.base}) is gone; run the stage again")
    base_names = pq.read_schema(own.base).names
    kept = [c for c in _wanted(base_names, columns) if c not in own.schema.names]
    whole = pq.read_table(own.base, columns=kept)
    if kept and whole.num_rows != own.rows:
        raise StoreError(
            f"{path}: {own.rows} rows, but the shard it extends ({own.base}) has "
            f"{whole.num_rows}; run the stage again"
        )
    names = dict.fromkeys([*_wanted(base_names, columns), *delta.column_names])
    parts = {name: whole[name] for name in kept} | {n: delta[n] for n in delta.column_names}
    table = pa.table({name: parts[name] for name in names})
    return table.replace_schema_metadata(delta.schema.metadata)


def _wanted(names: list[str], columns: list[str] | None) -> list[str]:
    return [name for name in names if columns is None or name in columns]


def write_shard(
    table: pa.Table, path: Path, metadata: dict[str, str], source: Path, before: pa.Table
) -> None:
    """Write a stage's output shard: only the columns that differ from the full shard its
    input came from when the rows are the input's rows (`before`, read from `source`);
    whole otherwise (rows made or removed, or a column gone, which a delta cannot say)."""
    gone = any(name not in table.column_names for name in before.column_names)
    if gone or table.num_rows != before.num_rows:
        write_parquet(table, path, metadata)
        return
    given = header(source)
    held_apart = set(given.schema.names) if given.base else set()
    changed = [
        name
        for name in table.column_names
        if name in held_apart
        or name not in before.column_names
        or name == "dropped"  # a delta always has a column, so it knows its rows
        or not table[name].equals(before[name])
    ]
    link = os.path.relpath(given.base or source.resolve(), path.parent.resolve())
    write_parquet(table.select(changed), path, {**metadata, BASE_KEY: link})


def materialize(path: Path, target: Path) -> None:
    """A shard as one whole file at target (a hard link when it already is one)."""
    if header(path).base is not None:
        table = read_shard(path)
        own = {k: v for k, v in (table.schema.metadata or {}).items() if k != BASE_KEY.encode()}
        write_parquet(table.replace_schema_metadata(own), target)
        return
    try:
        os.link(path, target)
    except OSError:
        shutil.copy2(path, target)
