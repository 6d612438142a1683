"""A problem's samples together: pass rate, majority answer, agreement, and the review flags
that a verifier alone cannot settle."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from curate.select.config import SelectConfig

PID = "problem_id"


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
