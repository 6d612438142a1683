"""Stages as datatrove pipeline steps: the same recipe on more cores (local), a Slurm cluster
or a Ray cluster. Needs the `cluster` extra (datatrove; Ray for `ray`).

Each row- or problem-grain stage becomes one datatrove step over the run's shards: task r of
N takes shards r, r+N, r+2N, ... and writes each through the runner's own `process_batch`,
so the bookkeeping (`dropped`, counts, stats) is the one `curate run` keeps. datatrove's
completion markers make a rerun skip finished tasks; a shard already written is not redone.
Stages that must see every row at once (dedup), and per-problem stages over a source whose
problems are spread across shards, run in the driver as they do without an executor.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from curate.errors import RecipeError
from curate.progress import QuietProgress
from curate.stage import Stage, StageContext
from curate.stats import Stats, merge_stats
from curate.store import RunStore

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


def datatrove_step(run_dir: Path, stage_dir: Path, in_dir: Path) -> Any:
    """A datatrove PipelineStep that runs one of the run's stages on its share of shards."""
    try:
        from datatrove.pipeline.base import PipelineStep
    except ImportError:
        raise RecipeError(
            "--executor needs the cluster extra: pip install 'curate[cluster]'"
        ) from None

    class CurateStage(PipelineStep):  # type: ignore[misc]
        name = f"curate {stage_dir.name}"
        type = "curate"

        def run(self, data: Any, rank: int = 0, world_size: int = 1) -> Iterator[Any]:
            run_shards(run_dir, stage_dir, in_dir, rank, world_size)
            yield from ()

    return CurateStage()


def run_shards(run_dir: Path, stage_dir: Path, in_dir: Path, rank: int, world_size: int) -> None:
    """Task `rank` of `world_size`: its shards of one stage, in a fresh process (the recipe
    is read back from the run; the stage built anew)."""
    from curate.recipe import load_recipe
    from curate.runner import _make_stage, run_shard

    recipe = load_recipe(run_dir / "recipe.yaml")
    store = RunStore(run_dir)
    context = StageContext(
        store.cache,
        seed=recipe.seed,
        round=recipe.round,
        progress=QuietProgress(),
        review_dir=store.review,
    )
    stage: Stage = _make_stage(stage_dir.name.split("-", 1)[1], recipe, context)
    try:
        for shard in store.shards(in_dir)[rank::world_size]:
            if not (stage_dir / shard.name).exists():  # written before a crash: kept
                run_shard(stage, shard, stage_dir)
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
    """Whether a stage can run as a datatrove step over shards (not one that needs every
    row at once, and not generation, whose cache and rate limits are one process's)."""
    return not (stage.whole or stage.expands)


class ClusterRunner:
    """Runs each eligible stage of `curate run` through a datatrove executor (the runner's
    stage hook); the rest run in the driver as they do without one."""

    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings

    def __call__(
        self,
        store: RunStore,
        stage: Stage,
        in_path: Path,
        path: Path,
        identity: str,
        problems_split: bool = False,
    ) -> Stats:
        from curate.runner import _shard_stats, run_stage

        if not eligible(stage) or (stage.per_problem and problems_split):
            return run_stage(store, stage, in_path, path, identity, problems_split)
        state = store.open_stage(path, identity)
        if state.complete:
            return state.stats
        logs = store.root / "datatrove" / f"{path.name}-{identity[:8]}"
        executor = executor_for(self.settings, datatrove_step(store.root, path, in_path), logs)
        executor.run()
        if self.settings.executor == "slurm":
            wait_for(executor)
        written = store.shards(path)
        missing = {s.name for s in store.shards(in_path)} - {s.name for s in written}
        if missing:
            raise RecipeError(
                f"stage '{stage.name}': {len(missing)} shards were not written by the "
                f"{self.settings.executor} executor; its logs are in {logs}"
            )
        stats = merge_stats(_shard_stats(p) for p in written)
        store.finish_stage(path, identity, stats)
        return stats


def wait_for(executor: Any, poll_s: float = 30.0) -> None:
    """Until every task of a submitted Slurm job has its completion marker."""
    import time

    while executor.get_incomplete_ranks(skip_completed=True):
        time.sleep(poll_s)


def slurm_dry_run(recipe: Any, run_dir: Path, settings: ClusterSettings) -> list[tuple[str, str]]:
    """The sbatch script of every stage that would go to Slurm, each depending on the one
    before, written under RUN/datatrove/ and returned; nothing is submitted or run. Stages
    that run in the driver (dedup, generate) are listed with a note instead of a script."""
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
            else:
                logs = store.root / "datatrove" / path.name
                executor = executor_for(
                    settings, datatrove_step(store.root, path, in_dir), logs, previous
                )
                scripts.append((path.name, sbatch_script(executor)))
                previous = executor
            in_dir = path
    finally:
        for stage in stages:
            stage.close()
    return scripts
