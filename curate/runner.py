"""Runs a recipe's stages in order over the run store, reusing whatever is still valid."""

from __future__ import annotations

import errno
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from curate import registry
from curate.decontam.report import write_report
from curate.errors import RecipeError, SourceError, StoreError
from curate.lock import exclusive
from curate.memory import release_memory
from curate.progress import Progress, QuietProgress
from curate.publish.dataset import write_dataset
from curate.recipe import Recipe, dump_recipe
from curate.records import (
    KNOWN_FIELDS,
    PROBLEM_SCHEMA,
    conform,
    stable_hash,
    write_parquet,
)
from curate.regroup import regroup
from curate.shards import live_rows, read_shard
from curate.sources.base import Source
from curate.stage import Stage, StageContext
from curate.store import WORKING, RunStore, Stats
from curate.units import run_stage


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
    wait: bool = False,
) -> RunResult:
    """Run (or resume) a recipe in run_dir and return its funnel.

    retry_failed: run again the stages whose rows failed for good (generation errors); what
    succeeded comes from the cache, so only the failures are sent again.
    stage_runner: runs one stage (default run_stage; curate.cluster spreads it over tasks).
    wait: when another process holds the run directory, wait for it (else an error naming it).
    """
    fresh = not run_dir.exists()
    try:
        with exclusive(run_dir, "curate run", wait):
            return _run_locked(recipe, run_dir, fresh, progress, retry_failed, stage_runner)
    except BaseException:
        if fresh and run_dir.is_dir() and not any(run_dir.iterdir()):
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing was made: leave nothing
        raise


def _run_locked(
    recipe: Recipe,
    run_dir: Path,
    fresh: bool,
    progress: Progress | None,
    retry_failed: bool,
    stage_runner: Any,
) -> RunResult:
    progress = progress or QuietProgress()
    store = RunStore(run_dir)
    refuse_other_recipe(store, recipe)
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


def refuse_other_recipe(store: RunStore, recipe: Recipe) -> None:
    """A run directory holds one recipe's run: another recipe would replace its dataset."""
    if not store.recipe.is_file():
        return
    try:
        saved = yaml.safe_load(store.recipe.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError):
        return  # a damaged copy: the run rewrites it
    name = saved.get("name") if isinstance(saved, dict) else None
    if name is not None and name != recipe.name:
        raise StoreError(
            f"{store.root} holds a run of recipe '{name}', not '{recipe.name}': running here "
            "would replace its dataset; give another --run-dir (or remove that one)"
        )


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
            write_parquet(conform(rows_table(batch)), read_dir / name)
        task.advance(len(batch))
        release_memory(collect=False)
    stats = {"in": read, "out": read - sum(dropped.values()), "dropped": dict(dropped)}
    return places, len(split), stats


def rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows the source made as a table: typed by the ledger's schema where every key of the
    first row is a schema field and every value fits (4x faster than inferring types),
    else by inference."""
    fields = [KNOWN_FIELDS.get(name) for name in rows[0]]
    if all(field is not None for field in fields):
        try:
            return pa.Table.from_pylist(rows, schema=pa.schema(fields))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    return pa.Table.from_pylist(rows)


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
