"""A problem's samples together: pass rate, majority answer, agreement, and the review flags
that a verifier alone cannot settle."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from curate.select.config import SelectConfig

PID = "problem_id"


def problem_stats(frame: pl.DataFrame) -> pl.DataFrame:
    """Adds pass_rate, majority_answer and agreement (share of answers that are the majority),
    and what the review flags need (`_correct`, `_samples`, `_majority_wrong` per problem).

    Worked out per problem with group-bys and joined back once: windows over a million
    traces (`over(problem_id)`) held an index of every row per window."""
    correct = (pl.col("verdict") == "correct").fill_null(False)
    frame = frame.with_columns(
        pl.col("extracted_answer").str.replace_all(r"\s+", "").alias("_answer")
    )
    votes = (
        frame.select(PID, "_answer", "verdict")  # a filter of the whole frame copies it all
        .filter(pl.col("_answer").is_not_null() & (pl.col("_answer") != ""))
        .group_by(PID, "_answer")
        .agg(pl.len().alias("_votes"), (pl.col("verdict") != "correct").any().alias("_wrong"))
        .sort([PID, "_votes", "_answer"], descending=[False, True, False])
        .group_by(PID, maintain_order=True)
        .agg(
            pl.first("_answer").alias("majority_answer"),
            pl.first("_votes").alias("_top"),
            pl.first("_wrong").alias("_majority_wrong"),
        )
    )
    counts = (
        frame.select(PID, "verdict")
        .group_by(PID)
        .agg(correct.sum().alias("_correct"), pl.len().alias("_samples"))
    )
    per_problem = counts.join(votes, on=PID, how="left").with_columns(
        (pl.col("_correct") / pl.col("_samples")).alias("pass_rate"),
        (pl.col("_top") / pl.col("_samples")).fill_null(0.0).alias("agreement"),
        pl.col("_majority_wrong").fill_null(False),
    )
    # a batch from the ledger has these columns already, empty: replace them, not add copies
    frame = frame.drop("majority_answer", "pass_rate", "agreement", strict=False)
    return with_problem_columns(frame, per_problem.drop("_top"))


def with_problem_columns(frame: pl.DataFrame, per_problem: pl.DataFrame) -> pl.DataFrame:
    """The frame with the per-problem columns beside each row of the problem: joined on the
    problem ids alone and put beside the rows (a join of the whole frame copies every
    column of a million rows)."""
    added = frame.select(PID).join(per_problem, on=PID, how="left", maintain_order="left")
    return frame.hstack(added.drop(PID))


def borderline(config: SelectConfig) -> pl.Expr:
    """Review flags, a list per row (empty when nothing needs a human), from problem_stats'
    columns."""
    correct = pl.col("verdict") == "correct"
    disputed = (pl.col("agreement") >= config.dispute_agreement) & pl.col("_majority_wrong")
    lucky = correct & (pl.col("_correct") == 1) & (pl.col("_samples") > 1)
    flags = [
        pl.when(pl.col("verdict") == "unverifiable").then(pl.lit("unverifiable")),
        pl.when(disputed.fill_null(False)).then(pl.lit("reference_disputed")),
        pl.when(lucky.fill_null(False)).then(pl.lit("lucky_hit")),
    ]
    earlier = pl.col("borderline").fill_null(pl.lit([], pl.List(pl.String)))
    return pl.concat_list([earlier, *flags]).list.drop_nulls().alias("borderline")
