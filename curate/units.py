"""The units of work a stage declares, and the one place they are executed.

A stage says what it must see at once (`Stage.unit`):

  rows      any slice of rows, each row on its own (generate, verify, decontaminate, filter)
  problem   all the rows of a problem together (select, trace_dedup): the source's shards
            never split a problem (curate/regroup.py), so one shard is enough
  problems  one row of each distinct problem of the whole input, compared (dedup)
  all_rows  every row of the whole input at once (a plugin's global stage)

Each unit is a list of steps. A step done shard by shard (`spread`) may be shared among
processes: the local runner and the file commands (curate/files.py, over a run store
beside --out) do every shard themselves, a datatrove task its share (curate/cluster.py);
a step that needs everything runs in the driver. Each shard a step
writes is kept, so a crash redoes at most the shard in hand, and the bookkeeping (`dropped`,
`dropped_at`, counts, stats) is `process_batch`'s whoever calls it:

  rows, problem  shard   each shard through the stage
  problems       keys    each shard's distinct live problems as the stage's keys (hashes,
                         signatures: not the text)
                 decide  all the keys through the stage at once; the result saved
                 apply   each shard's live rows given their problem's result
  all_rows       all     every row's keys through the stage at once, each shard written back
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from curate.memory import release_memory
from curate.records import TRACE_SCHEMA, conform, read_parquet_metadata, write_parquet
from curate.shards import live_rows, read_shard, write_shard
from curate.stage import Stage, Unit
from curate.stats import merge_stats
from curate.store import WORKING, RunStore, Stats

STATS_KEY = "curate_stats"
SECONDS_KEY = "curate_seconds"  # how long a problem-level stage took to make a shard's keys
SHARD = "_shard"
NEW = "_new"
ORDER = "_curate_row"  # a name no stage uses for its own work

Work = Literal["shard", "keys", "decide", "apply", "all"]


@dataclass(frozen=True)
class Step:
    work: Work
    spread: bool  # done shard by shard (tasks may share it); else in the driver, at once


STEPS: dict[Unit, tuple[Step, ...]] = {
    "rows": (Step("shard", True),),
    "problem": (Step("shard", True),),
    "problems": (Step("keys", True), Step("decide", False), Step("apply", True)),
    "all_rows": (Step("all", False),),
}


def steps(stage: Stage) -> tuple[Step, ...]:
    """The steps of the stage's unit of work, in order."""
    return STEPS[stage.unit]


def run_stage(
    store: RunStore,
    stage: Stage,
    in_path: Path,
    path: Path,
    identity: str,
    spread: Callable[[Step], None] | None = None,
) -> Stats:
    """Run one stage from the shards under in_path into path, unless it is complete there:
    its steps in order, those done shard by shard through `spread` where given (a cluster's
    tasks), the rest here; then its stats, merged from its shards, and the stage marked
    complete. Shards written before a crash are kept."""
    state = store.open_stage(path, identity)
    if state.complete:
        return state.stats
    shards = store.shards(in_path)
    for step in steps(stage):
        if step.spread and spread is not None:
            spread(step)
        else:
            do_step(stage, step, shards, path)
    stats = merge_stats(stored_stats(p) for p in store.shards(path))
    store.finish_stage(path, identity, stats)
    return stats


def do_step(
    stage: Stage,
    step: Step,
    shards: list[Path],
    path: Path,
    share: Sequence[int] | None = None,
) -> None:
    """One step over the input's shards (of them, the numbers in `share`, a task's part,
    where given); a shard already written under path is kept."""
    mine = range(len(shards)) if share is None else share
    if step.work == "keys":
        for index in mine:
            make_keys(stage, shards[index], path)
            release_memory(collect=False)
    elif step.work == "decide":
        compare_step(stage, shards, path)
    elif step.work == "apply":
        result, stats = read_results(path)
        for index in mine:
            if not (path / shards[index].name).exists():
                write_back(stage.name, shards[index], path, result, stats, index)
            release_memory(collect=False)
    elif step.work == "all":
        run_whole(stage, shards, path)
    else:
        pending = [shards[i] for i in mine if not (path / shards[i].name).exists()]
        stage.plan(sum(live_rows(s) for s in pending))
        stage.ahead(shard_problems(stage, shard)[0] for shard in pending)
        run_shards(stage, pending, path)


def run_shards(stage: Stage, shards: list[Path], path: Path) -> None:
    """Each shard through a stage in turn, the next one read meanwhile, so a stage whose
    work runs in other processes (verify's workers) does not leave them waiting on the
    disk. Each shard is written before the next is processed: a crash redoes at most the
    shard in hand."""
    for shard, before in read_ahead(shards):
        stage.advance(shard_through(stage, shard, path, before)["in"])
        del before
        release_memory(collect=False)


def read_ahead(shards: list[Path]) -> Iterator[tuple[Path, pa.Table]]:
    """Each shard with its rows, the next shard read in a thread while the caller works on
    these (Arrow reads without holding the GIL); one shard ahead, never more."""
    with ThreadPoolExecutor(1, thread_name_prefix="curate-read") as reader:
        upcoming = reader.submit(read_input, shards[0]) if shards else None
        for shard, following in zip(shards, [*shards[1:], None], strict=True):
            assert upcoming is not None
            table = upcoming.result()
            upcoming = reader.submit(read_input, following) if following else None
            yield shard, table


def read_input(shard: Path) -> pa.Table:
    return conform(read_shard(shard))


def shard_through(stage: Stage, shard: Path, path: Path, before: pa.Table) -> Stats:
    """A shard's rows (`before`, as read) through a stage, written to the same name under
    path; its stats."""
    table, stats = process_batch(stage, before)
    write_shard(table, path / shard.name, {STATS_KEY: _json(stats)}, shard, before)
    return stats


def shard_stats(live_in: int, newly: list[str], stats: Stats, index: int) -> Stats:
    """A written-back shard's part of a whole-input stage: its rows in and newly dropped
    (their reasons); the stage's time and counts go with the first shard."""
    return {
        "in": live_in,
        "out": live_in - len(newly),
        "dropped": dict(Counter(newly)),
        "seconds": stats["seconds"] if index == 0 else 0.0,
        "counts": stats["counts"] if index == 0 else {},
    }


def keys_dir(stage_dir: Path) -> Path:
    """Where a problem-level stage's keys go: inside its folder, so they go when the stage
    starts afresh (a changed recipe or input never meets old keys) or is complete."""
    return stage_dir / WORKING


def results_path(stage_dir: Path) -> Path:
    return keys_dir(stage_dir) / "results.parquet"


def make_keys(stage: Stage, shard: Path, stage_dir: Path) -> None:
    """One shard's first live row of each problem, as the stage's keys, unless made."""
    target = keys_dir(stage_dir) / shard.name
    if not target.exists():
        started = time.perf_counter()
        problems, _ = shard_problems(stage, shard)
        keys = stage.keys(problems).to_arrow()
        write_parquet(keys, target, {SECONDS_KEY: str(time.perf_counter() - started)})


def compare_step(stage: Stage, shards: list[Path], stage_dir: Path) -> None:
    """Every shard's keys, in shard order, first of each problem (as one pass over the input
    would meet them), through the stage; the results saved for the write-back (unless
    they were before a crash)."""
    live = sum(live_rows(shard) for shard in shards)
    stage.plan(live)
    if not results_path(stage_dir).exists():
        files = [keys_dir(stage_dir) / shard.name for shard in shards]
        result, stats = problem_results(
            stage, first_of_each(pl.read_parquet(f, glob=False) for f in files)
        )
        making = sum(float(read_parquet_metadata(f).get(SECONDS_KEY, 0)) for f in files)
        stats["seconds"] = round(stats["seconds"] + making, 3)  # the keys' making counts
        write_parquet(result.to_arrow(), results_path(stage_dir), {STATS_KEY: _json(stats)})
    stage.advance(live)


def read_results(stage_dir: Path) -> tuple[pl.DataFrame, Stats]:
    """A problem-level stage's results per problem, and the stage's stats."""
    path = results_path(stage_dir)
    stats = json.loads(read_parquet_metadata(path)[STATS_KEY])
    return pl.read_parquet(path, glob=False), stats


def problem_results(stage: Stage, problems: pl.DataFrame) -> tuple[pl.DataFrame, Stats]:
    """A problem-level stage run on its distinct problems: per problem_id, the columns it
    wrote (named with NEW after them), and the stage's stats."""
    written = [*dict.fromkeys([*stage.writes, "dropped"])]
    # only the columns it writes are added, not every trace column (at a million
    # problems, the empty ones would cost more than the keys)
    out, stats = process_batch(stage, problems.to_arrow(), trace_fields([*written, "dropped_at"]))
    result = pl.from_arrow(out.select(["problem_id", *written]))
    assert isinstance(result, pl.DataFrame)
    return result.rename({name: f"{name}{NEW}" for name in written}), stats


def write_back(
    stage_name: str, shard: Path, path: Path, result: pl.DataFrame, stats: Stats, index: int
) -> None:
    """One shard of a problem-level stage written: its live rows take their problem's
    result; the stage's time and counts go with shard 0."""
    written = [name.removesuffix(NEW) for name in result.columns if name != "problem_id"]
    before, full = whole_shard(shard)
    joined = carry_results(full, result, written, stage_name)
    fresh = joined.filter(pl.col(NEW))
    own = shard_stats(full["dropped"].null_count(), fresh["dropped"].to_list(), stats, index)
    kept = joined.drop([NEW, *(f"{n}{NEW}" for n in written)])
    write_shard(conform(kept), path / shard.name, {STATS_KEY: _json(own)}, shard, before)


def whole_shard(shard: Path) -> tuple[pa.Table, pl.DataFrame]:
    """A shard's whole rows, as read (for write_shard) and as a frame to work on."""
    before = conform(read_shard(shard))
    frame = pl.from_arrow(before)
    assert isinstance(frame, pl.DataFrame)
    return before, frame


def shard_problems(stage: Stage, shard: Path) -> tuple[pl.DataFrame, int]:
    """One shard's first live row of each problem (the columns the stage reads), and how
    many live rows it has."""
    needed = [*dict.fromkeys([*stage.reads, "problem_id", "reference", "dropped"])]
    rows = pl.from_arrow(read_shard(shard, needed))
    assert isinstance(rows, pl.DataFrame)
    rows = rows.filter(pl.col("dropped").is_null())
    firsts = rows.unique("problem_id", keep="first", maintain_order=True)
    copied = pl.from_arrow(firsts.to_arrow())  # not views into the whole shard's text
    assert isinstance(copied, pl.DataFrame)
    return copied, rows.height


def first_of_each(parts: Iterable[pl.DataFrame]) -> pl.DataFrame:
    """The parts' rows, the first of each problem kept, in order; each part is cut as it
    comes and the cut parts are joined without copying them again."""
    seen: set[str] = set()
    kept = []
    for part in parts:
        firsts = part.filter(pl.col("problem_id").is_first_distinct())
        ids = firsts["problem_id"].to_list()
        new = [pid not in seen for pid in ids]
        if not all(new):  # a problem whose rows an earlier part had
            firsts = firsts.filter(pl.Series(new, dtype=pl.Boolean))
        seen.update(ids)
        kept.append(firsts)
    if not kept:
        return pl.DataFrame()
    return pl.concat(kept, how="diagonal_relaxed", rechunk=False)


def carry_results(
    full: pl.DataFrame, result: pl.DataFrame, written: list[str], stage: str
) -> pl.DataFrame:
    """A shard's rows with their problem's result in the written columns (live rows only),
    dropped_at stamped where newly dropped, and NEW marking those rows."""
    joined = full.join(result, on="problem_id", how="left", maintain_order="left")
    alive = pl.col("dropped").is_null()
    newly = alive & pl.col(f"dropped{NEW}").is_not_null()
    updates = [
        pl.when(alive).then(pl.col(f"{n}{NEW}")).otherwise(pl.col(n)).alias(n) for n in written
    ]
    stamp = pl.when(newly).then(pl.lit(stage)).otherwise(pl.col("dropped_at"))
    return joined.with_columns(*updates, stamp.alias("dropped_at"), newly.alias(NEW))


def run_whole(stage: Stage, shards: list[Path], path: Path) -> None:
    """Run a stage that needs every row at once on just the columns it reads, made into its
    keys a shard at a time (say, hashes in place of text), then write each
    shard back with the columns it wrote (rows in their order): memory holds those keys of
    the whole input, and one shard in full."""
    fixed = ["problem_id", "reference", "dropped", "dropped_at"]
    # what it writes, it may extend (select adds to earlier borderline flags)
    needed = [*dict.fromkeys([*stage.reads, *stage.writes, *fixed])]
    marked = []
    started = time.perf_counter()
    for index, shard in enumerate(shards):
        rows = pl.from_arrow(read_shard(shard, needed))
        assert isinstance(rows, pl.DataFrame)
        table = stage.keys(rows).to_arrow()  # what it compares, not the text (trace_dedup)
        marked.append(table.append_column(SHARD, pa.array([index] * table.num_rows, pa.int32())))
        release_memory(collect=False)
    live_in = [table["dropped"].null_count for table in marked]
    stage.plan(sum(live_in))
    making = time.perf_counter() - started
    # only the columns read get added where missing, not every trace column (a million
    # rows of 35 empty columns would cost more than the keys); the keys are handed over,
    # not kept here, so process_batch frees them once it has made its frame
    written = [*dict.fromkeys([*stage.writes, "dropped", "dropped_at"])]
    merged, stats = process_batch(
        stage, _handed_over(marked), trace_fields(needed), keep=[SHARD, *written]
    )
    stats["seconds"] = round(stats["seconds"] + making, 3)  # the keys' making counts
    stage.advance(stats["in"])
    frame = pl.from_arrow(merged.select([SHARD, *written]))
    del merged
    assert isinstance(frame, pl.DataFrame)
    # one pass over the rows, not one per shard (a filter per shard is quadratic); each
    # part keeps its rows' order, which process_batch keeps
    parts = frame.partition_by(SHARD, as_dict=True, include_key=False, maintain_order=True)
    empty = frame.clear().drop(SHARD)
    for index, shard in enumerate(shards):
        if (path / shard.name).exists():  # written before a crash: the same result
            continue
        part = parts.get((index,), empty)
        newly = part.filter(pl.col("dropped_at") == stage.name)
        own = shard_stats(live_in[index], newly["dropped"].to_list(), stats, index)
        before, full = whole_shard(shard)
        full = full.with_columns(part.get_column(name) for name in written)
        write_shard(conform(full), path / shard.name, {STATS_KEY: _json(own)}, shard, before)
        release_memory(collect=False)


def _handed_over(tables: list[pa.Table]) -> pa.Table:
    """The tables as one, the list emptied: the one returned is the only reference left."""
    whole = pa.concat_tables(tables, promote_options="permissive")
    tables.clear()
    return whole


def trace_fields(names: list[str]) -> pa.Schema:
    """The trace schema's fields of these names (others are left out)."""
    known = [name for name in dict.fromkeys(names) if name in TRACE_SCHEMA.names]
    return pa.schema([TRACE_SCHEMA.field(name) for name in known])


def process_batch(
    stage: Stage,
    table: pa.Table,
    schema: pa.Schema = TRACE_SCHEMA,
    keep: Sequence[str] | None = None,
) -> tuple[pa.Table, Stats]:
    """Run a stage on the live rows of a batch; dropped rows pass through untouched. The
    batch gets the columns of `schema` it lacks (every trace column, unless told); the
    result has only the columns in `keep`, where given (a whole input's result is not
    copied whole to be cut down after)."""
    frame = pl.from_arrow(conform(table, schema))
    assert isinstance(frame, pl.DataFrame)
    del table  # the caller may have let go of it: a whole input's keys are freed here
    frame = frame.with_row_index(ORDER)
    is_live = frame["dropped"].is_null()
    if is_live.all():  # no copy of a batch that is all live
        live, dead = frame, frame.clear()
    else:
        live, dead = frame.filter(is_live), frame.filter(~is_live)
    del frame  # live and dead are copies: one less copy while the stage works
    stage.counts.clear()
    stage.errors.clear()
    started = time.perf_counter()
    out = stage.process(live) if live.height else live
    seconds = time.perf_counter() - started
    live_in = live.height
    del live  # what the stage did not keep of its input goes now
    if "dropped" not in out.columns:
        out = out.with_columns(pl.lit(None, pl.String).alias("dropped"))
    newly = out["dropped"].is_not_null()
    out = out.with_columns(
        pl.when(newly).then(pl.lit(stage.name)).otherwise(None).alias("dropped_at")
    )
    dropped = Counter(out.filter(newly)["dropped"].to_list())
    stats: Stats = {
        "in": live_in,
        "out": out.height - int(newly.sum()),
        "dropped": dict(dropped),
        "seconds": round(seconds, 3),
        "counts": dict(stage.counts),
    }
    if stage.errors:
        stats["errors"] = dict(stage.errors)
    if stage.expands:
        stats["generated"] = out.height
    if keep is not None:
        names = [*keep, ORDER]
        out, dead = out.select(n for n in names if n in out.columns), dead.select(names)
        schema = pa.schema([field for field in schema if field.name in keep])
    parts = [conform(out, schema), *([conform(dead, schema)] if dead.height else [])]
    merged = pa.concat_tables(parts, promote_options="permissive")
    return _in_order(merged, stage.expands), stats


def _in_order(table: pa.Table, expands: bool) -> pa.Table:
    """The batch's rows where they were (a stage that makes rows puts them first)."""
    if ORDER not in table.column_names:
        return table
    order = table[ORDER]
    moved = len(order) > 1 and not pc.all(pc.less(order[:-1], order[1:])).as_py()
    if moved and not expands:  # no copy of a batch whose rows kept their places
        table = table.take(pc.sort_indices(table, [(ORDER, "ascending")]))
    return table.drop_columns([ORDER])


def stored_stats(shard: Path) -> Stats:
    """The counts a stage shard was written with (its Parquet metadata)."""
    return dict(json.loads(read_parquet_metadata(shard)[STATS_KEY]))


def _json(data: Stats) -> str:
    return json.dumps(data, sort_keys=True)
