"""The select stage: rejection sampling, keeping verified traces."""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import Field

from curate import registry
from curate.stage import Config, Stage


class SelectConfig(Config):
    """Which verified traces become the dataset."""

    policy: Literal["all_correct"] = Field(
        "all_correct", description="Keep every correct trace (up to max_per_problem)."
    )
    max_per_problem: int | None = Field(
        None, ge=1, description="Keep at most this many traces per problem."
    )


@registry.stages.register("select")
class SelectStage(Stage):
    """Keep correct traces (rejection sampling); every other trace is dropped with its verdict."""

    name = "select"
    section = "select"
    order = 50
    config_class = SelectConfig
    reads = ("problem_id", "sample_idx", "verdict")
    writes = ("selected",)
    config: SelectConfig

    def process(self, frame: pl.DataFrame) -> pl.DataFrame:
        correct = (pl.col("verdict") == "correct").fill_null(False)
        position = correct.cast(pl.Int64).cum_sum().over("problem_id", order_by="sample_idx")
        cap = self.config.max_per_problem
        keep = correct if cap is None else correct & (position <= cap)
        reason = (
            pl.when(keep)
            .then(None)
            .when(~correct)
            .then(pl.col("verdict").fill_null("unverified"))
            .otherwise(pl.lit("over_max_per_problem"))
        )
        return frame.with_columns(keep.alias("selected"), reason.alias("dropped"))
