"""Stages as datatrove pipeline steps: the same recipe on more cores (local), a Slurm cluster
or a Ray cluster. Needs the `cluster` extra (datatrove; Ray for `ray`).

Each step of a stage's unit of work that goes shard by shard (curate/units.py) becomes one
datatrove step over the run's shards: task r of N takes shards r, r+N, r+2N, ... through
the same `do_step` the local runner calls, so the bookkeeping (`dropped`, counts, stats) is
the one `curate run` keeps. datatrove's
completion markers make a rerun skip finished tasks; a shard already written is not redone.
A problem-level stage that compares across the whole input (dedup) goes in three steps, as
datatrove's own MinHash dedup does: the tasks work out each problem's keys (a hash, a
signature, its numbers: a few hundred bytes), the driver compares all the keys at once, and
the tasks write each shard back with its problems' results. Generation spreads its requests
over the tasks, each with its share of the rate limits. Per-problem stages over a source
whose problems are spread across shards run in the driver as they do without an executor.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from curate.errors import RecipeError
from curate.lifetime import children_end_with_this_process
from curate.progress import QuietProgress
from curate.stage import Stage, StageContext
from curate.stats import Stats
from curate.store import RunStore
from curate.units import Step, Work, do_step, keys_dir, run_stage, steps

if TYPE_CHECKING:
    from curate.recipe import Recipe

ExecutorKind = Literal["local", "slurm", "ray"]


@dataclass(frozen=True)
class ClusterSettings:
    """How `curate run --executor` spreads the stages."""

    executor: ExecutorKind = "local"
    tasks: int = 2
    workers: int = -1  # local: processes at once (-1: one per task)
    partition: str = "cpu"  # slurm
    time: str = "04:00:00"  # slurm, per task
    cpus_per_task: int = 2  # slurm
    dry_run: bool = False  # slurm: write and print the sbatch scripts, submit nothing


def datatrove_step(run_dir: Path, stage_dir: Path, in_dir: Path, work: Work = "shard") -> Any:
    """A datatrove PipelineStep that does one step of one of the run's stages on its share
    of shards (curate/units.py): the stage itself, or a step of a stage that compares
    problems across the whole input (dedup): each problem's keys, then the results the
    driver decided from all the keys applied to the rows."""
    try:
        from datatrove.pipeline.base import PipelineStep
    except ImportError:
        raise RecipeError(
            "--executor needs the cluster extra: pip install 'curate[cluster]'"
        ) from None

    class CurateStage(PipelineStep):  # type: ignore[misc]
        name = f"curate {stage_dir.name} {work}"
        type = "curate"

        def run(self, data: Any, rank: int = 0, world_size: int = 1) -> Iterator[Any]:
            run_task(run_dir, stage_dir, in_dir, rank, world_size, work)
            yield from ()

    return CurateStage()


def run_task(
    run_dir: Path, stage_dir: Path, in_dir: Path, rank: int, world_size: int, work: Work
) -> None:
    """Task `rank` of `world_size`: its shards of one step of one stage, in a fresh process
    (the recipe is read back from the run; the stage built anew). Shards already done are
    kept."""
    from curate.recipe import load_run
    from curate.runner import make_stage

    recipe = load_run(run_dir)
    store = RunStore(run_dir)
    context = StageContext(
        store.cache,
        seed=recipe.seed,
        round=recipe.round,
        progress=QuietProgress(),
        review_dir=store.review,
    )
    stage: Stage = make_stage(stage_dir.name.split("-", 1)[1], recipe, context)
    stage.share(world_size)
    shards = store.shards(in_dir)
    step = next(step for step in steps(stage) if step.work == work)
    try:
        do_step(stage, step, shards, stage_dir, range(rank, len(shards), world_size))
    finally:
        stage.close()


def executor_for(settings: ClusterSettings, step: Any, logs: Path, depends: Any = None) -> Any:
    """The datatrove executor of the chosen kind for one step."""
    if settings.executor == "local":
        from datatrove.executor import LocalPipelineExecutor

        return LocalPipelineExecutor(
            pipeline=[step], tasks=settings.tasks, workers=settings.workers, logging_dir=str(logs)
        )
    if settings.executor == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        return SlurmPipelineExecutor(
            pipeline=[step],
            tasks=settings.tasks,
            time=settings.time,
            partition=settings.partition,
            cpus_per_task=settings.cpus_per_task,
            job_name=f"curate-{logs.name}",
            logging_dir=str(logs),
            depends=depends,
            venv_path=os.path.join(os.environ["VIRTUAL_ENV"], "bin/activate")
            if os.environ.get("VIRTUAL_ENV")
            else None,
        )
    try:
        from datatrove.executor import RayPipelineExecutor  # imports ray
    except ImportError:
        raise RecipeError("--executor ray needs Ray: pip install 'curate[cluster]' ray") from None
    import ray

    if not ray.is_initialized():  # a cluster named by RAY_ADDRESS, else one on this machine
        ray.init(log_to_driver=False, include_dashboard=False)
    return RayPipelineExecutor(
        pipeline=[step],
        tasks=settings.tasks,
        workers=settings.workers,
        logging_dir=str(logs),
        mem_per_cpu_gb=1,
    )


def sbatch_script(executor: Any) -> str:
    """What a Slurm executor would submit for its step, written beside its logs, without
    submitting it: the pickled executor the job loads, and the sbatch script."""
    import dill

    with executor.logging_dir.open("executor.pik", "wb") as handle:
        dill.dump(executor, handle)
    pickled = executor.logging_dir.resolve_paths("executor.pik")
    script: str = executor.get_launch_file_contents(
        executor.get_sbatch_args(min(executor.tasks, executor.max_array_size)),
        f"srun -l -n 1 launch_pickled_pipeline {pickled}",
    )
    with executor.logging_dir.open("launch_script.slurm", "w") as handle:
        handle.write(script)
    return script


def eligible(stage: Stage) -> bool:
    """Whether some step of a stage can be shared among tasks shard by shard: not for one
    that needs every row at once, but for one that compares problems, whose keys the tasks
    can make. Generation is one: each task takes its share of the rate limits, and they
    share the run's cache (SQLite in WAL mode takes writers from several processes)."""
    return any(step.spread for step in steps(stage))


class ClusterRunner:
    """Runs the stages of `curate run` (the runner's stage hook) as the local runner does,
    except that each step done shard by shard goes to a datatrove executor's tasks; steps
    that need everything at once run in the driver."""

    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings

    def __call__(
        self,
        store: RunStore,
        stage: Stage,
        in_path: Path,
        path: Path,
        identity: str,
    ) -> Stats:
        logs = store.root / "datatrove" / f"{path.name}-{identity[:8]}"
        several = len(steps(stage)) > 1

        def spread(step: Step) -> None:
            out = keys_dir(path) if step.work == "keys" else path
            self.spread(store, path, in_path, logs / step.work if several else logs, step.work, out)

        return run_stage(store, stage, in_path, path, identity, spread)

    def spread(
        self, store: RunStore, path: Path, in_path: Path, logs: Path, work: Work, out: Path
    ) -> None:
        """One step over the stage's shards through the executor; every input shard must
        come out under `out`."""
        step = datatrove_step(store.root, path, in_path, work)
        executor = executor_for(self.settings, step, logs)
        children_end_with_this_process()  # datatrove's local workers and its manager
        executor.run()
        if self.settings.executor == "slurm":
            wait_for(executor)
        missing = {s.name for s in store.shards(in_path)} - {s.name for s in store.shards(out)}
        if missing:
            raise RecipeError(
                f"stage '{path.name.split('-', 1)[1]}': {len(missing)} shards were not "
                f"written by the {self.settings.executor} executor; its logs are in {logs}"
            )


def wait_for(executor: Any, poll_s: float = 30.0) -> None:
    """Until every task of a submitted Slurm job has its completion marker."""
    import time

    while executor.get_incomplete_ranks(skip_completed=True):
        time.sleep(poll_s)


DRIVER_NOTE = "# the driver decides from every task's keys, then submits the next step"


def slurm_dry_run(
    recipe: Recipe, run_dir: Path, settings: ClusterSettings
) -> list[tuple[str, str]]:
    """The sbatch script of every stage that would go to Slurm, each depending on the one
    before, written under RUN/datatrove/ and returned; nothing is submitted or run. A
    problem-level stage across the whole input (dedup) has two, its keys and its
    write-back, with the driver's comparison between."""
    from curate.recipe import dump_recipe
    from curate.runner import build_stages

    store = RunStore(run_dir)
    store.create()
    store.recipe.write_text(dump_recipe(recipe), encoding="utf-8")  # what the jobs read
    context = StageContext(store.cache, seed=recipe.seed, round=recipe.round)
    stages = build_stages(recipe, context)
    scripts: list[tuple[str, str]] = []
    previous = None
    in_dir = store.stage_dir(0, "source")
    try:
        for index, stage in enumerate(stages, start=1):
            path = store.stage_dir(index, stage.name)
            if not eligible(stage):
                scripts.append((path.name, "# runs in the driver (it needs every row at once)"))
                in_dir = path
                continue
            several = len(steps(stage)) > 1
            for work in steps(stage):
                if not work.spread:
                    scripts.append((f"{path.name} {work.work}", DRIVER_NOTE))
                    continue
                logs = store.root / "datatrove" / path.name
                logs = logs / work.work if several else logs
                step = datatrove_step(store.root, path, in_dir, work.work)
                previous = executor_for(settings, step, logs, previous)
                name = f"{path.name} {work.work}" if several else path.name
                scripts.append((name, sbatch_script(previous)))
            in_dir = path
    finally:
        for stage in stages:
            stage.close()
    return scripts
