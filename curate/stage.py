"""The stage contract: a typed config and one method from a batch of live rows to rows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from curate.progress import NoTask, Progress, QuietProgress, Task
from curate.records import stable_hash, to_json


class Config(BaseModel):
    """Base of every config: unknown keys are errors, values are immutable once parsed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Fields that change how fast a stage runs but never what it outputs.
    volatile: ClassVar[frozenset[str]] = frozenset()

    def identity(self) -> str:
        """A hash of the settings that shape the output (volatile fields left out)."""
        return stable_hash(to_json(self.model_dump(mode="json", exclude=set(self.volatile))))


def union_of(configs: Sequence[type[BaseModel]], key: str) -> Any:
    """A discriminated union of config classes (or the class itself when there is one)."""
    if len(configs) == 1:
        return configs[0]
    return Annotated[Union[tuple(configs)], Field(discriminator=key)]  # noqa: UP007


Unit = Literal["rows", "problem", "problems", "all_rows"]


@dataclass
class StageContext:
    """What a stage may use besides its config: where to cache, the seed, progress."""

    cache_dir: Path
    seed: int = 0
    round: int = 0
    progress: Progress = field(default_factory=QuietProgress)
    review_dir: Path | None = None  # where review decisions are read from (RUN/review)


class Stage(ABC):
    """One step of the pipeline.

    `process` receives only rows no earlier stage dropped. To drop a row it sets the
    `dropped` column to a reason; the runner keeps the row, stamps `dropped_at` and counts it.
    """

    name: ClassVar[str]
    section: ClassVar[str]  # the recipe key that configures this stage
    # place in the default pipeline, besides what reads and writes imply: stages this one
    # runs after, or before, when the recipe has them (names; order.py explains)
    after: ClassVar[tuple[str, ...]] = ()
    before: ClassVar[tuple[str, ...]] = ()
    config_class: ClassVar[Any]  # a Config subclass, or an annotated union of them
    reads: tuple[str, ...] = ()  # a stage may narrow these per config
    writes: tuple[str, ...] = ()  # a stage may widen these per config (verify with a judge)
    publishes: ClassVar[tuple[str, ...]] = ()  # of its writes, those dataset/ and Hub carry
    version: ClassVar[str] = "1"  # bump when the same config starts giving other output
    expands: ClassVar[bool] = False  # one input row may become several (generation)
    # what it must see at once: rows, a problem's rows, every distinct problem (compared),
    # or every row (curate/units.py runs each)
    unit: ClassVar[Unit] = "rows"
    retry_reason: ClassVar[str | None] = None  # drop reason `curate run --retry-failed` retries

    def __init__(self, config: Config, context: StageContext) -> None:
        self.config = config
        self.context = context
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()  # why rows failed, by message (in the stats)
        self.progress_task: Task = NoTask()  # replaced by plan()

    @classmethod
    def config_type(cls) -> Any:
        """The type its recipe section validates against."""
        return cls.config_class

    def preflight(self) -> None:
        """Check, before any stage runs, what would make this one fail (an unreachable
        endpoint, a missing key); raise a CurateError saying how to fix it."""

    def plan(self, rows: int) -> None:
        """Told once, before the first batch, how many live rows the stage will see."""
        self.progress_task = self.context.progress.task(self.name, rows)

    def advance(self, rows: int) -> None:
        """Called by the runner after each batch; stages that report finer progress skip it."""
        self.progress_task.advance(rows)

    def identity(self) -> str:
        """What decides whether earlier output of this stage can be reused."""
        return stable_hash(self.name, self.version, self.config.identity())

    @abstractmethod
    def process(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Map a batch of live rows to output rows (with `dropped` set on rows to drop)."""

    def ahead(self, problems: Iterator[pl.DataFrame]) -> None:
        """Told, before a shard-by-shard stage's first shard, of every live problem its
        shards hold (the columns it reads; read only if iterated): a stage that works
        best on everything at once (a batch API) starts it here, then `process` finds
        the results."""

    def share(self, tasks: int) -> None:
        """Told, in a cluster's task, that `tasks` processes run this stage at once; a stage
        with limits meant for the whole run (generation's rate limits) takes its part."""

    def keys(self, rows: pl.DataFrame) -> pl.DataFrame:
        """What a stage that sees many rows at once compares of them, worked out a shard at
        a time before it does (in a cluster's tasks, too): dedup's hashes and signatures of
        each distinct problem. process() then gets these rows, of every shard, in input
        order. By default the rows as they are."""
        return rows

    def close(self) -> None:
        """Release workers or connections; called once after the last batch."""
