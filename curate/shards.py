"""Stage shards that hold only what a stage changed.

A stage that keeps its input's rows (verify, filters, dedup, ...) does not copy the problem,
prompt and trace text again: its shard holds the columns that differ from the full shard
they came from (its base: the source's or generation's), and names that file in its
metadata. Reading a shard joins the two, so every reader sees whole rows. A stage that makes
rows (generation) or changes their number writes them whole. Disk then holds the text once
plus a few small columns per stage, not one copy per stage.

The delta is kept against the full file, not against the stage before, so a read is always
two files, however long the pipeline.

When the run ends, ledger/ holds each final shard whole, and the full file the deltas extend
would be a second copy of the same text. So it is turned around (`lean_base`): the full file
keeps only the columns that later stages changed, with its own values, and reads the rest
from its ledger shard. Before the ledger is written again it is made whole (`restore_base`).
The text is then on disk once, in the ledger.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import StoreError
from curate.records import write_parquet

BASE_KEY = "curate_base"
NAMES_KEY = "curate_names"  # a shard's whole-row columns, when its base has more
LEAN_KEY = "curate_lean"  # "1": a full shard whose text is read from the ledger


@dataclass(frozen=True)
class Header:
    """What a shard's footer says: its columns, rows and the full shard it extends."""

    schema: pa.Schema  # the columns the file itself holds
    rows: int
    base: Path | None  # None: the shard is whole
    lean: bool = False  # a full shard kept as a delta of its ledger shard

    @property
    def forward(self) -> bool:
        """Whether this is a stage's delta (it extends a full shard), not a full shard."""
        return self.base is not None and not self.lean

    def names(self) -> list[str]:
        """The columns of the shard's whole rows, in order."""
        listed = (self.schema.metadata or {}).get(NAMES_KEY.encode())
        if listed:
            return [str(name) for name in json.loads(listed)]
        own: list[str] = self.schema.names
        if self.base is None:
            return own
        return [*dict.fromkeys([*header(self.base).names(), *own])]


@contextmanager
def named(path: Path) -> Iterator[None]:
    """A shard that cannot be read is an error that names it and says how to heal."""
    try:
        yield
    except pa.ArrowException as exc:
        raise StoreError(
            f"{path}: not a readable Parquet shard ({exc}); run the same command again to "
            "rebuild it (a stage's shard is made again from its input)"
        ) from None


def header(path: Path) -> Header:
    with named(path):
        footer = pq.read_metadata(path)
    schema = footer.schema.to_arrow_schema()
    meta = schema.metadata or {}
    name = meta.get(BASE_KEY.encode())
    base = (path.parent / name.decode()).resolve() if name else None
    return Header(schema, footer.num_rows, base, meta.get(LEAN_KEY.encode()) == b"1")


def read_shard(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A stage shard as whole rows (or just `columns`, those it has), its metadata kept."""
    own = header(path)
    if own.base is None:
        with named(path):
            return pq.read_table(path, columns=_wanted(own.schema.names, columns))
    if not own.base.exists():
        raise StoreError(f"{path}: the shard it extends ({own.base}) is gone; run the stage again")
    names = _wanted(own.names(), columns)
    with named(path):
        delta = pq.read_table(path, columns=[n for n in names if n in own.schema.names])
    kept = [name for name in names if name not in own.schema.names]
    whole = read_shard(own.base, kept)
    if kept and whole.num_rows != own.rows:
        raise StoreError(
            f"{path}: {own.rows} rows, but the shard it extends ({own.base}) has "
            f"{whole.num_rows}; run the stage again"
        )
    parts = {name: whole[name] for name in kept} | {n: delta[n] for n in delta.column_names}
    table = pa.table({name: parts[name] for name in names})
    return table.replace_schema_metadata(delta.schema.metadata)


def live_rows(shard: Path) -> int:
    """How many of a shard's rows are still in the funnel (a null drop reason)."""
    return int(read_shard(shard, ["dropped"])["dropped"].null_count)


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
    held_apart = set(given.schema.names) if given.forward else set()
    changed = [
        name
        for name in table.column_names
        if name in held_apart
        or name not in before.column_names
        or name == "dropped"  # a delta always has a column, so it knows its rows
        or not table[name].equals(before[name])
    ]
    full = given.base if given.forward and given.base else source.resolve()
    link = os.path.relpath(full, path.parent.resolve())
    write_parquet(table.select(changed), path, {**metadata, BASE_KEY: link})


def materialize(path: Path, target: Path) -> None:
    """A shard as one whole file at target (a hard link when it already is one)."""
    if header(path).base is not None:
        write_parquet(_own_metadata(read_shard(path)), target)
        return
    try:
        os.link(path, target)
    except OSError:
        shutil.copy2(path, target)


def _own_metadata(table: pa.Table) -> pa.Table:
    """The table without the keys that say where a shard's columns live."""
    links = {key.encode() for key in (BASE_KEY, NAMES_KEY, LEAN_KEY)}
    own = {k: v for k, v in (table.schema.metadata or {}).items() if k not in links}
    return table.replace_schema_metadata(own)


def full_base(shard: Path) -> Path | None:
    """The full shard a stage's delta extends (None for a whole shard, or one whose base
    is already lean)."""
    own = header(shard)
    if not own.forward or own.base is None or header(own.base).base is not None:
        return None
    return own.base


def lean_base(shard: Path, full: Path, whole: Path) -> None:
    """Keep the text of `full`, the full shard that a stage's `shard` extends, once:
    `whole` holds `shard` as whole rows (the ledger), so `full` keeps only the columns
    `shard` holds itself (every other column of `whole` is the full shard's, unchanged),
    with its own values, and reads the rest from `whole`."""
    names = pq.read_schema(full).names
    changed = [name for name in names if name in header(shard).schema.names]
    table = pq.read_table(full, columns=changed or names[:1])
    link = os.path.relpath(whole.resolve(), full.parent)
    write_parquet(table, full, {BASE_KEY: link, NAMES_KEY: json.dumps(names), LEAN_KEY: "1"})


def restore_base(path: Path) -> None:
    """Make a full shard kept lean whole again (before the ledger it reads from changes)."""
    if header(path).lean:
        write_parquet(_own_metadata(read_shard(path)), path)
