"""An example curate plugin with one of every extension point (the README's Contributing
section walks through it). A package makes it visible to curate with an entry point:

    [project.entry-points."curate.plugins"]
    example = "tests.example_plugin"

tests/test_plugins.py installs it that way (a real entry point) and runs it end to end.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, Literal

import polars as pl
from pydantic import Field

from curate import registry
from curate.answers import final_answer_of
from curate.decontam.benchmarks import Benchmark
from curate.generate.base import Backend, Request, Sample, TeacherConfig
from curate.records import stable_hash
from curate.sources.base import Row, RowSourceConfig, Source
from curate.stage import Config, Stage
from curate.verify.base import ProblemAnswers, Result, Verifier

# ---- a source: problems written in the recipe itself ------------------------------------


class InlineConfig(RowSourceConfig):
    """Problems listed in the recipe."""

    kind: Literal["inline"] = Field("inline", description="Problems written in the recipe.")
    rows: list[dict[str, Any]] = Field(description="The problems, one mapping each.")


@registry.sources.register("inline")
class InlineSource(Source):
    """Problems listed in the recipe."""

    kind = "inline"
    config_class = InlineConfig
    config: InlineConfig

    def identity(self) -> str:
        return stable_hash(self.config.identity())

    def source_name(self) -> str:
        return "inline"

    def rows(self) -> Iterator[tuple[str, int, Row]]:
        for number, row in enumerate(self.config.rows, start=1):
            yield "recipe source.rows", number, dict(row)


# ---- a teacher backend: answers with the reference, shifted by `offset` ------------------


class EchoConfig(TeacherConfig):
    """A stand-in teacher that answers with the reference (a plugin example, not a model)."""

    backend: Literal["echo"] = Field("echo", description="Answers with the reference.")
    model: str = Field("echo", description="Stored with each trace.")
    offset: float = Field(0.0, description="Added to a numeric reference: wrong on purpose.")


@registry.backends.register()
class EchoTeacher(Backend):
    """Answers every problem with its reference (plus `offset`)."""

    name = "echo"
    config_class = EchoConfig
    config: EchoConfig

    async def sample(self, request: Request) -> list[Sample]:
        answer = request.reference or ""
        with contextlib.suppress(ValueError):  # a reference that is no number, as it is
            answer = repr(float(answer) + self.config.offset)
        return [
            Sample(index, "I recall the answer.", f"\\boxed{{{answer}}}", "stop")
            for index in request.sample_indices
        ]


# ---- a verifier with typed settings, claiming a domain under `verify.kind: auto` ----------


class ToleranceSettings(Config):
    """Settings of the tolerance verifier (written beside `kind: tolerance`)."""

    tolerance: float = Field(1e-6, gt=0, description="Largest relative error judged correct.")


@registry.verifiers.register()
class ToleranceVerifier(Verifier):
    """Numbers within a relative tolerance of the reference."""

    name = "tolerance"
    domains = ("science", "physics")  # takes science from math; physics is new
    settings_class = ToleranceSettings
    settings: ToleranceSettings

    def verify(self, problems: list[ProblemAnswers]) -> list[list[Result]]:
        return [[self.check(p.reference, a) for a in p.answers] for p in problems]

    def check(self, reference: str | None, answer: str | None) -> Result:
        if reference is None:
            return Result.unverifiable("no_reference")
        stated = final_answer_of(answer or "")
        if stated is None:
            return Result.unverifiable("no_answer")
        try:
            gold, given = float(reference), float(stated)
        except ValueError:
            return Result.unverifiable("not_a_number", stated)
        close = math.isclose(gold, given, rel_tol=self.settings.tolerance)
        return Result("correct", None, stated) if close else Result("incorrect", "off", stated)


# ---- a stage that adds a column and publishes it ------------------------------------------


class AnswerLengthConfig(Config):
    """Measure each completion; drop those longer than max_chars."""

    max_chars: int | None = Field(None, ge=1, description="Longest kept completion (null: any).")


@registry.stages.register()
class AnswerLengthStage(Stage):
    """Count each completion's characters (published with the dataset)."""

    name = "answer_length"
    section = "answer_length"
    after = ("select",)
    before = ("filter",)
    config_class = AnswerLengthConfig
    config: AnswerLengthConfig
    reads = ("completion",)
    writes = ("answer_chars",)
    publishes = ("answer_chars",)

    def process(self, frame: pl.DataFrame) -> pl.DataFrame:
        chars = pl.col("completion").fill_null("").str.len_chars()
        limit = self.config.max_chars
        too_long = chars > limit if limit is not None else pl.lit(False)
        return frame.with_columns(
            chars.alias("answer_chars"),
            pl.when(too_long)
            .then(pl.lit("answer_too_long"))
            .otherwise(pl.col("dropped"))
            .alias("dropped"),
        )


# ---- a benchmark: its text comes from a local file (decontaminate.files) -----------------

registry.benchmarks.register("example_exam")(Benchmark("example_exam", None, private=True))
