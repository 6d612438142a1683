"""The select stage: rejection sampling over verified traces, with per-problem statistics.

Per problem it records the pass rate, the majority answer and how many samples agree on
it, and flags for review what a verifier alone cannot settle: unverifiable verdicts,
problems where most samples agree on an answer other than the reference (the reference
may be wrong), and single lucky hits (one correct sample out of several).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import polars as pl
from pydantic import Field, model_validator

from curate import registry
from curate.stage import Config, Stage, Unit

Policy = Literal["all_correct", "shortest_correct", "pass_rate_band"]
PID = "problem_id"


class SelectConfig(Config):
    """Which verified traces become the dataset."""

    policy: Policy = Field(
        "all_correct",
        description="all_correct: every correct trace; shortest_correct: the shortest correct "
        "ones; pass_rate_band: correct traces of problems whose pass rate is in the band.",
    )
    max_per_problem: int | None = Field(
        None, ge=1, description="Keep at most this many traces per problem (shortest: 1)."
    )
    pass_rate_min: float = Field(0.0, ge=0, le=1, description="Lower end of the band.")
    pass_rate_max: float = Field(1.0, ge=0, le=1, description="Upper end of the band.")
    dispute_agreement: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Share of samples agreeing on a non-reference answer that flags the "
        "reference as disputed.",
    )

    @model_validator(mode="after")
    def _band_in_order(self) -> SelectConfig:
        if self.pass_rate_min > self.pass_rate_max:
            raise ValueError("pass_rate_min must not exceed pass_rate_max")
        return self


def problem_stats(frame: pl.DataFrame) -> pl.DataFrame:
    """Adds pass_rate, majority_answer and agreement (share of answers that are the majority)."""
    correct = (pl.col("verdict") == "correct").fill_null(False)
    frame = frame.with_columns(
        (correct.sum().over(PID) / pl.len().over(PID)).alias("pass_rate"),
        pl.col("extracted_answer").str.replace_all(r"\s+", "").alias("_answer"),
    )
    votes = (
        frame.filter(pl.col("_answer").is_not_null() & (pl.col("_answer") != ""))
        .group_by(PID, "_answer")
        .agg(pl.len().alias("_votes"))
        .sort([PID, "_votes", "_answer"], descending=[False, True, False])
        .group_by(PID, maintain_order=True)
        .agg(pl.first("_answer").alias("majority_answer"), pl.first("_votes").alias("_top"))
    )
    # a batch from the ledger has the column already, empty: replace it, not add a copy
    frame = frame.drop("majority_answer", strict=False)
    frame = frame.join(votes, on=PID, how="left", maintain_order="left")
    return frame.with_columns(
        (pl.col("_top") / pl.len().over(PID)).fill_null(0.0).alias("agreement")
    )


def borderline(config: SelectConfig) -> pl.Expr:
    """Review flags, a list per row (empty when nothing needs a human)."""
    correct = pl.col("verdict") == "correct"
    majority_rows_wrong = (
        ((pl.col("_answer") == pl.col("majority_answer")) & ~correct).any().over(PID)
    )
    disputed = (pl.col("agreement") >= config.dispute_agreement) & majority_rows_wrong
    lucky = correct & (correct.sum().over(PID) == 1) & (pl.len().over(PID) > 1)
    flags = [
        pl.when(pl.col("verdict") == "unverifiable").then(pl.lit("unverifiable")),
        pl.when(disputed.fill_null(False)).then(pl.lit("reference_disputed")),
        pl.when(lucky.fill_null(False)).then(pl.lit("lucky_hit")),
    ]
    earlier = pl.col("borderline").fill_null(pl.lit([], pl.List(pl.String)))
    return pl.concat_list([earlier, *flags]).list.drop_nulls().alias("borderline")


@registry.stages.register()
class SelectStage(Stage):
    """Rejection sampling: keep verified traces by policy; flag borderline ones for review."""

    name = "select"
    section = "select"
    after = ("review", "trace_dedup")
    unit: ClassVar[Unit] = "problem"  # a problem's rows together
    config_class = SelectConfig
    reads = ("problem_id", "sample_idx", "verdict", "extracted_answer")
    writes = ("selected", "pass_rate", "majority_answer", "agreement", "borderline")
    config: SelectConfig

    def process(self, frame: pl.DataFrame) -> pl.DataFrame:
        config = self.config
        if "borderline" not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.List(pl.String)).alias("borderline"))
        frame = problem_stats(frame).with_columns(borderline(config))
        correct = (pl.col("verdict") == "correct").fill_null(False)
        in_band = pl.col("pass_rate").is_between(config.pass_rate_min, config.pass_rate_max)
        if config.policy != "pass_rate_band":
            in_band = pl.lit(True)
        if "reasoning" in frame.columns:
            frame = frame.with_columns(_length().alias(LENGTH))
        # Rank correct traces only (others have no order, so no rank).
        frame = frame.with_columns(pl.when(correct).then(self._order()).alias("_order"))
        frame = frame.with_columns(pl.col("_order").rank("ordinal").over(PID).alias("_rank"))
        cap = config.max_per_problem or (1 if config.policy == "shortest_correct" else None)
        within = pl.lit(True) if cap is None else pl.col("_rank") <= cap
        keep = correct & in_band & within
        reason = (
            pl.when(keep)
            .then(None)
            .when(~correct)
            .then(pl.col("verdict").fill_null("unverified"))
            .when(~in_band)
            .then(pl.lit("pass_rate_out_of_band"))
            .otherwise(pl.lit("over_max_per_problem"))
        )
        for flag in ("unverifiable", "reference_disputed", "lucky_hit"):
            self.counts[f"borderline_{flag}"] += int(frame["borderline"].list.contains(flag).sum())
        return frame.with_columns(keep.alias("selected"), reason.alias("dropped")).drop(
            "_answer", "_top", "_order", "_rank", LENGTH, strict=False
        )

    def _order(self) -> pl.Expr:
        """Which correct traces come first: shortest (by text length) or by sample index."""
        if self.config.policy == "shortest_correct":
            return pl.col(LENGTH) * 10_000 + pl.col("sample_idx")
        return pl.col("sample_idx").cast(pl.Int64)


LENGTH = "_length"


def _length() -> pl.Expr:
    """A trace's length: its reasoning and its completion, in characters."""
    reasoning = pl.col("reasoning").str.len_chars().fill_null(0)
    return reasoning + pl.col("completion").str.len_chars().fill_null(0)
