"""Runs a recipe's stages in order over the run store, reusing whatever is still valid."""

from __future__ import annotations

import errno
import json
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from curate import registry
from curate.decontam.report import write_report
from curate.errors import RecipeError, SourceError, StoreError
from curate.memory import release_memory
from curate.progress import Progress, QuietProgress
from curate.publish.dataset import write_dataset
from curate.recipe import Recipe, dump_recipe
from curate.records import (
    PROBLEM_SCHEMA,
    TRACE_SCHEMA,
    conform,
    read_parquet_metadata,
    stable_hash,
    write_parquet,
)
from curate.regroup import regroup
from curate.shards import live_rows, read_shard, write_shard
from curate.sources.base import Source
from curate.stage import Stage, StageContext
from curate.stats import merge_stats
from curate.store import WORKING, RunStore, Stats

STATS_KEY = "curate_stats"
SECONDS_KEY = "curate_seconds"  # how long a problem-level stage took to make a shard's keys
SHARD = "_shard"
NEW = "_new"
ORDER = "_curate_row"  # a name no stage uses for its own work


@dataclass
class RunResult:
    run_dir: Path
    stats: Stats
    dataset_rows: int
    reused: list[str] = field(default_factory=list)  # steps whose earlier output was kept
    up_to_date: bool = False  # nothing ran and nothing was written


@dataclass
class RunPlan:
    """What a run will do, worked out without writing anything."""

    identities: list[str]  # the source's, then one per stage (each folds in those before)
    complete: list[bool]  # whether that step's earlier output is still valid
    recipe_saved: bool  # recipe.yaml already says exactly this recipe

    @property
    def reusable(self) -> int:
        """How many leading steps keep their output (a step that runs reruns all after it)."""
        count = 0
        for done in self.complete:
            if not done:
                break
            count += 1
        return count


# What a source of existing traces provides besides the problem columns.
SOURCE_TRACE_FIELDS = {"sample_idx", "round", "model", "reasoning", "completion", "finish_reason"}


def build_stages(recipe: Recipe, context: StageContext) -> list[Stage]:
    """The recipe's stages, configured, in order; their columns checked before any work."""
    stages = [make_stage(name, recipe, context) for name in recipe.stage_names()]
    traces = SOURCE_TRACE_FIELDS if recipe.source.traces() else set()
    check_columns(stages, set(PROBLEM_SCHEMA.names) | traces)
    return stages


def make_stage(name: str, recipe: Recipe, context: StageContext) -> Stage:
    cls = registry.stages.get(name)
    config = getattr(recipe, cls.section, None)
    if config is None:
        try:
            config = cls.config_class()
        except (TypeError, ValueError):
            raise RecipeError(f"stage '{name}' needs a '{cls.section}' section") from None
    stage: Stage = cls(config, context)
    return stage


def check_columns(stages: list[Stage], available: set[str] | None = None) -> None:
    """Each stage must read only columns the source or an earlier stage provides."""
    have = set(PROBLEM_SCHEMA.names) if available is None else set(available)
    for stage in stages:
        missing = [c for c in stage.reads if c not in have]
        if missing:
            raise RecipeError(
                f"stage '{stage.name}' reads {', '.join(missing)}, which nothing before it "
                "provides (check the stage order)"
            )
        have.update(stage.writes)


def run_recipe(
    recipe: Recipe,
    run_dir: Path,
    progress: Progress | None = None,
    retry_failed: bool = False,
    stage_runner: Any = None,
) -> RunResult:
    """Run (or resume) a recipe in run_dir and return its funnel.

    retry_failed: run again the stages whose rows failed for good (generation errors); what
    succeeded comes from the cache, so only the failures are sent again.
    stage_runner: runs one stage (default run_stage; curate.cluster spreads it over tasks).
    """
    progress = progress or QuietProgress()
    store = RunStore(run_dir)
    fresh = not run_dir.exists()
    context = StageContext(
        store.cache,
        seed=recipe.seed,
        round=recipe.round,
        progress=progress,
        review_dir=store.review,
    )
    stages = build_stages(recipe, context)
    source: Source = registry.sources.get(recipe.source.kind)(recipe.source)
    try:
        plan = plan_run(store, recipe, source, stages, retry_failed)
        if (
            plan.reusable == len(plan.complete)
            and plan.recipe_saved
            and _dataset_current(store, plan.identities[-1])
        ):
            stats = store.load_stats()
            names = ["source", *(s.name for s in stages)]
            return RunResult(run_dir, stats, int(stats["dataset"]["out"]), names, True)
        for stage in stages[max(0, plan.reusable - 1) :]:
            stage.preflight()
        runner = stage_runner or run_stage
        return _execute(store, recipe, source, stages, plan, retry_failed, progress, runner)
    except OSError as exc:
        raise StoreError(_write_failure(exc, run_dir)) from None
    except SourceError:
        if fresh:  # bad input in a new run: leave no half-made run directory behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        for stage in stages:
            stage.close()


def plan_run(
    store: RunStore, recipe: Recipe, source: Source, stages: list[Stage], retry_failed: bool
) -> RunPlan:
    """Each step's identity and whether its earlier output can be kept; writes nothing."""
    identity = stable_hash(
        "source",
        source.identity(),
        str(recipe.run.shard_rows(source.config.traces())),
        # traces: shards group each problem's traces (regrouped where the input scattered them)
        f"round {recipe.round} grouped" if source.config.traces() else "",
        *sorted(only_problems(recipe) or []),
    )
    identities = [identity]
    complete = [store.is_complete(store.stage_dir(0, "source"), identity)]
    for index, stage in enumerate(stages, start=1):
        identity = stable_hash(identity, stage.identity())
        path = store.stage_dir(index, stage.name)
        done = store.is_complete(path, identity)
        if done and _must_retry(store, stage, path, identity, retry_failed):
            done = False
        identities.append(identity)
        complete.append(done)
    saved = store.recipe.exists() and store.recipe.read_text(encoding="utf-8") == dump_recipe(
        recipe
    )
    return RunPlan(identities, complete, saved)


def _dataset_current(store: RunStore, identity: str) -> bool:
    if not store.stats.exists() or not (store.dataset / "README.md").exists():
        return False
    if not store.readable(store.ledger):  # a damaged ledger shard is written again
        return False
    return bool(store.load_stats().get("dataset", {}).get("identity") == identity)


def _write_failure(exc: OSError, run_dir: Path) -> str:
    where = exc.filename or run_dir
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            f"{where}: cannot write there ({exc.strerror}); a run with work to do needs a "
            "writable run directory (--run-dir)"
        )
    return f"{where}: {exc.strerror or exc}"


def _execute(
    store: RunStore,
    recipe: Recipe,
    source: Source,
    stages: list[Stage],
    plan: RunPlan,
    retry_failed: bool,
    progress: Progress,
    runner: Any,
) -> RunResult:
    store.create()
    store.recipe.write_text(dump_recipe(recipe), encoding="utf-8")
    written = store.load_stats().get("dataset", {}) if store.stats.exists() else {}
    stats: Stats = {}
    identity = plan.identities[0]
    path = store.stage_dir(0, "source")
    # once a step produces new output, every later stage runs again
    rerun = not store.open_stage(path, identity).complete
    stats["source"] = run_source(
        store,
        path,
        identity,
        source,
        recipe.run.shard_rows(source.config.traces()),
        progress,
        only_problems(recipe),
        recipe.round,
    )
    store.save_stats(stats)
    release_memory()
    used = {path}
    for index, stage in enumerate(stages, start=1):
        identity = plan.identities[index]
        in_path, path = path, store.stage_dir(index, stage.name)
        used.add(path)
        if rerun or _must_retry(store, stage, path, identity, retry_failed):
            store.reset_stage(path)
        before = store.open_stage(path, identity).complete
        stats[stage.name] = runner(store, stage, in_path, path, identity)
        stage.close()  # what it held is not needed by the stages after it
        release_memory()
        rerun = rerun or not before
        store.save_stats(stats)
    store.drop_stale_stages(used)
    rows = finish(store, path, identity, recipe, stats, {} if rerun else written)
    names = ["source", *(s.name for s in stages)]
    return RunResult(store.root, stats, rows, names[: plan.reusable])


def _must_retry(
    store: RunStore, stage: Stage, path: Path, identity: str, retry_failed: bool
) -> bool:
    """Run a finished stage again for its failed rows: when asked (--retry-failed), and always
    when failures left it with no row at all (say, an endpoint that was down)."""
    state = store.open_stage(path, identity) if store.is_complete(path, identity) else None
    reason = stage.retry_reason
    if state is None or not reason or not state.stats.get("dropped", {}).get(reason):
        return False
    return retry_failed or state.stats.get("out") == 0


def only_problems(recipe: Recipe) -> set[str] | None:
    """The problem ids `run.problems` names (None: every problem of the source)."""
    if recipe.run.problems is None:
        return None
    path = Path(recipe.run.problems)
    try:
        return {line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()}
    except OSError as exc:
        raise RecipeError(f"run.problems: cannot read {path} ({exc.strerror})") from None


def run_source(
    store: RunStore,
    path: Path,
    identity: str,
    source: Source,
    shard_size: int,
    progress: Progress,
    only: set[str] | None = None,
    recipe_round: int = 0,
) -> Stats:
    """Read the source into problem shards, marking repeated problems as duplicates; with
    `only`, just those problems. Existing traces are read into working shards first: where
    the input scattered a problem's traces over several, they are regrouped by problem
    (curate/regroup.py), so every stage after the source and publishing can work a shard
    at a time. After a crash the source is read again (what a row is marked depends on
    every row before it) but shards already written are kept."""
    state = store.open_stage(path, identity)
    if state.complete:
        return state.stats
    started = time.perf_counter()
    traces = source.config.traces()
    read_dir = path / WORKING / "read" if traces else path
    places, split, stats = read_source(
        source, read_dir, path, shard_size, progress, only, recipe_round
    )
    if split:
        work = path / WORKING / "regroup"
        regroup(store.shards(read_dir), path, work, places, shard_size, progress)
        stats["regrouped_problems"] = split
    elif traces:
        for shard in store.shards(read_dir):
            shard.replace(path / shard.name)
    stats["seconds"] = round(time.perf_counter() - started, 3)
    store.finish_stage(path, identity, stats)
    return stats


def read_source(
    source: Source,
    read_dir: Path,
    path: Path,
    shard_size: int,
    progress: Progress,
    only: set[str] | None,
    recipe_round: int,
) -> tuple[dict[str, int], int, Stats]:
    """The source's rows marked and written in reading order as shards under read_dir
    (those written before a crash, there or already moved to path, kept); each problem's
    place (order of first appearance), how many problems came scattered over several
    shards, and the counts."""
    task = progress.task("source", None, unit="problems")
    problems = source.problems()
    if only is not None:
        problems = (p for p in problems if p["problem_id"] in only)
    traces = source.config.traces()
    mark = TraceMarker(recipe_round) if traces else ProblemMarker()
    places: dict[str, int] = {}
    first_shard: list[int] = []  # by place
    split: set[str] = set()
    dropped: Counter[str] = Counter()
    read = 0
    for index, batch in enumerate(_batches(problems, shard_size, traces)):
        for problem in batch:
            if traces:
                place = places.setdefault(problem["problem_id"], len(places))
                if place == len(first_shard):
                    first_shard.append(index)
                elif first_shard[place] != index:
                    split.add(problem["problem_id"])
            read += 1
            reason = problem["dropped"] = mark(problem)
            problem["dropped_at"] = "source" if reason else None
            if reason:
                dropped[reason] += 1
        name = f"part-{index:05d}.parquet"
        if not ((read_dir / name).exists() or (path / name).exists()):  # kept from a crash
            write_parquet(conform(pa.Table.from_pylist(batch)), read_dir / name)
        task.advance(len(batch))
        release_memory(collect=False)
    stats = {"in": read, "out": read - sum(dropped.values()), "dropped": dict(dropped)}
    return places, len(split), stats


class ProblemMarker:
    """Problems: a problem read twice is a duplicate."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, row: dict[str, Any]) -> str | None:
        repeated = row["problem_id"] in self.seen
        self.seen.add(row["problem_id"])
        return "duplicate_problem" if repeated else None


class TraceMarker:
    """Existing traces: many per problem. Each gets the next sample number of its problem
    where the input gives none, and the run's round; a sample number given twice for one
    problem is a duplicate. Per problem it keeps one number (the next free one); the set of
    numbers taken only for problems whose input numbers its samples."""

    def __init__(self, round_: int) -> None:
        self.round = round_
        self.next: dict[str, int] = {}
        self.numbered: dict[str, set[int]] = {}

    def __call__(self, row: dict[str, Any]) -> str | None:
        problem, number = row["problem_id"], row.get("sample_idx")
        row["round"] = self.round
        top = self.next.get(problem, 0)
        taken = self.numbered.get(problem)
        if number is None:  # numbers so far are 0..top-1, plus any the input gave
            row["sample_idx"] = top
            self.next[problem] = top + 1
            if taken is not None:
                taken.add(top)
            return None
        if taken is None:
            taken = self.numbered[problem] = set(range(top))
        repeated = number in taken
        taken.add(number)
        self.next[problem] = max(top, number + 1)
        return "duplicate_sample" if repeated else None


def _batches(
    rows: Iterator[dict[str, Any]], size: int, whole_problems: bool = False
) -> Iterator[list[dict[str, Any]]]:
    """Rows in batches of `size`; with whole_problems, a batch runs on past `size` to the
    end of the problem it is in (its rows that come together)."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        full = len(batch) >= size
        if full and (not whole_problems or row["problem_id"] != batch[-1]["problem_id"]):
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch


def run_stage(
    store: RunStore,
    stage: Stage,
    in_path: Path,
    path: Path,
    identity: str,
) -> Stats:
    """Run one stage shard by shard; shards already written are kept (crash resume). A
    stage that needs a problem's rows together gets them so: the source's shards never
    split a problem (curate/regroup.py)."""
    state = store.open_stage(path, identity)
    if state.complete:
        return state.stats
    shards = store.shards(in_path)
    if stage.whole and stage.problem_level:
        run_problem_level(stage, shards, path)
    elif stage.whole:
        run_whole(stage, shards, path)
    else:
        pending = [s for s in shards if not (path / s.name).exists()]
        stage.plan(sum(live_rows(s) for s in pending))
        run_shards(stage, pending, path)
    stats = merge_stats(stored_stats(p) for p in store.shards(path))
    store.finish_stage(path, identity, stats)
    return stats


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


def run_shard(stage: Stage, shard: Path, path: Path) -> Stats:
    """One input shard through a stage into the same name under path; its stats."""
    return shard_through(stage, shard, path, read_input(shard))


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


def run_problem_level(stage: Stage, shards: list[Path], path: Path) -> None:
    """Run a whole-input stage that acts on problems in three steps, each kept by shard, so
    a crash redoes at most the shard in hand: each shard's distinct live problems as the
    stage's keys (dedup's hashes and signatures, not the text), one comparison of all the
    keys, then each shard's live rows given their problem's result. Memory holds the keys
    and one shard, however many traces there are. A cluster's tasks do the first and last
    steps (curate/cluster.py)."""
    for shard in shards:
        make_keys(stage, shard, path)
        release_memory(collect=False)
    compare_step(stage, shards, path)
    result, stats = read_results(path)
    for index, shard in enumerate(shards):
        if not (path / shard.name).exists():
            write_back(stage.name, shard, path, result, stats, index)
        release_memory(collect=False)


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
        result, stats = problem_results(stage, first_of_each(pl.read_parquet(f) for f in files))
        making = sum(float(read_parquet_metadata(f).get(SECONDS_KEY, 0)) for f in files)
        stats["seconds"] = round(stats["seconds"] + making, 3)  # the keys' making counts
        write_parquet(result.to_arrow(), results_path(stage_dir), {STATS_KEY: _json(stats)})
    stage.advance(live)


def read_results(stage_dir: Path) -> tuple[pl.DataFrame, Stats]:
    """A problem-level stage's results per problem, and the stage's stats."""
    path = results_path(stage_dir)
    stats = json.loads(read_parquet_metadata(path)[STATS_KEY])
    return pl.read_parquet(path), stats


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
    for index, shard in enumerate(shards):
        rows = pl.from_arrow(read_shard(shard, needed))
        assert isinstance(rows, pl.DataFrame)
        table = stage.keys(rows).to_arrow()  # what it compares, not the text (trace_dedup)
        marked.append(table.append_column(SHARD, pa.array([index] * table.num_rows, pa.int32())))
        release_memory(collect=False)
    stage.plan(sum(t["dropped"].null_count for t in marked))
    # only the columns read get added where missing, not every trace column (a million
    # rows of 35 empty columns would cost more than the keys)
    whole = pa.concat_tables(marked, promote_options="permissive")
    merged, stats = process_batch(stage, whole, trace_fields(needed))
    stage.advance(stats["in"])
    written = [*dict.fromkeys([*stage.writes, "dropped", "dropped_at"])]
    frame = pl.from_arrow(merged.select([SHARD, *written]))
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
        own = shard_stats(
            marked[index]["dropped"].null_count, newly["dropped"].to_list(), stats, index
        )
        before, full = whole_shard(shard)
        full = full.with_columns(part.get_column(name) for name in written)
        write_shard(conform(full), path / shard.name, {STATS_KEY: _json(own)}, shard, before)
        release_memory(collect=False)


def trace_fields(names: list[str]) -> pa.Schema:
    """The trace schema's fields of these names (others are left out)."""
    known = [name for name in dict.fromkeys(names) if name in TRACE_SCHEMA.names]
    return pa.schema([TRACE_SCHEMA.field(name) for name in known])


def process_batch(
    stage: Stage, table: pa.Table, schema: pa.Schema = TRACE_SCHEMA
) -> tuple[pa.Table, Stats]:
    """Run a stage on the live rows of a batch; dropped rows pass through untouched. The
    batch gets the columns of `schema` it lacks (every trace column, unless told)."""
    frame = pl.from_arrow(conform(table, schema))
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_row_index(ORDER)
    is_live = frame["dropped"].is_null()
    if is_live.all():  # no copy of a batch that is all live
        live, dead = frame, frame.clear()
    else:
        live, dead = frame.filter(is_live), frame.filter(~is_live)
    stage.counts.clear()
    stage.errors.clear()
    started = time.perf_counter()
    out = stage.process(live) if live.height else live
    seconds = time.perf_counter() - started
    if "dropped" not in out.columns:
        out = out.with_columns(pl.lit(None, pl.String).alias("dropped"))
    newly = out["dropped"].is_not_null()
    out = out.with_columns(
        pl.when(newly).then(pl.lit(stage.name)).otherwise(None).alias("dropped_at")
    )
    dropped = Counter(out.filter(newly)["dropped"].to_list())
    stats: Stats = {
        "in": live.height,
        "out": out.height - int(newly.sum()),
        "dropped": dict(dropped),
        "seconds": round(seconds, 3),
        "counts": dict(stage.counts),
    }
    if stage.errors:
        stats["errors"] = dict(stage.errors)
    if stage.expands:
        stats["generated"] = out.height
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


def matched_rows(shards: list[Path]) -> pa.Table:
    """The ledger rows with a benchmark match (the decontamination report's input), read
    shard by shard so memory holds only those."""
    columns = ["problem_id", "problem", "contaminated", "contamination", "borderline"]
    parts = []
    for shard in shards:
        table = read_shard(shard, columns)
        if "contamination" in table.column_names:
            parts.append(table.filter(pc.is_valid(table["contamination"])))
    if not parts:
        return pa.table({"problem_id": pa.array([], pa.string())})
    return pa.concat_tables(parts, promote_options="permissive")


def stored_stats(shard: Path) -> Stats:
    """The counts a stage shard was written with (its Parquet metadata)."""
    return dict(json.loads(read_parquet_metadata(shard)[STATS_KEY]))


def _json(data: Stats) -> str:
    return json.dumps(data, sort_keys=True)


def finish(
    store: RunStore, path: Path, identity: str, recipe: Recipe, stats: Stats, written: Stats
) -> int:
    """Publish the ledger and write dataset/, unless what was written matches this pipeline."""
    if written.get("identity") == identity and (store.dataset / "README.md").exists():
        stats["dataset"] = written
    else:
        started = time.perf_counter()
        store.publish_ledger(path)
        shards = store.shards(store.ledger)
        rows = write_dataset(shards, store.dataset, recipe, stats, recipe.published_columns())
        write_report(matched_rows(shards), store.reports / "decontamination.json")
        alive = sum(live_rows(shard) for shard in shards)  # null drop reason: still in
        stats["dataset"] = {
            "in": alive,
            "out": rows,
            "dropped": {},
            "seconds": round(time.perf_counter() - started, 3),
            "identity": identity,
        }
    store.save_stats(stats)
    return int(stats["dataset"]["out"])
