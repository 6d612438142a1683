"""The select stage: rejection sampling over verified traces, then the rules that choose among
them (bands on difficulty, length and quality; a problem's best traces; groups and a budget).

Per problem it records the pass rate, the majority answer and how many samples agree on
it, and flags for review what a verifier alone cannot settle: unverifiable verdicts,
problems where most samples agree on an answer other than the reference (the reference
may be wrong), and single lucky hits (one correct sample out of several).

The rules run in a fixed order, each on what the one before left, and each drop reason
names the rule, so the stage's stats are the funnel inside select: verdict, pass-rate
band, each band in the recipe's order, the per-problem cap, the groups, the budget.
A budget and a spread over groups compare every problem of the run, so the stage sees all
rows at once; its keys are the measures, worked out a shard at a time, never the text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import polars as pl

from curate import registry
from curate.errors import RecipeError
from curate.select.clusters import VECTOR, cluster_of, with_vectors
from curate.select.config import Band, SelectConfig
from curate.select.measures import MEASURE_COLUMNS, QUALITY, WORDS, with_measures
from curate.select.mix import GROUP, PLACE, WHY, cut, ordered
from curate.select.problems import borderline, problem_stats, with_problem_columns
from curate.stage import Stage, StageContext, Unit

PID = "problem_id"
COMPUTED = {"pass_rate", "mean_words", *MEASURE_COLUMNS}


@registry.stages.register()
class SelectStage(Stage):
    """Rejection sampling and selection: keep traces by policy and rules; flag borderline
    ones for review."""

    name = "select"
    section = "select"
    after = ("review", "trace_dedup")
    unit: ClassVar[Unit] = "all_rows"
    config_class = SelectConfig
    reads: tuple[str, ...] = ("problem_id", "sample_idx", "verdict", "extracted_answer")
    writes: tuple[str, ...] = (
        "selected",
        "pass_rate",
        "majority_answer",
        "agreement",
        "borderline",
    )
    publishes = MEASURE_COLUMNS
    config: SelectConfig

    def __init__(self, config: SelectConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self.writes = (*self.writes, *MEASURE_COLUMNS)
        self.reads = (*self.reads, "reasoning", "completion", *self._columns_used())

    def _columns_used(self) -> list[str]:
        """Input columns the bands and the mix read besides the stage's own."""
        names = [band.measure for band in self.config.bands if band.measure not in COMPUTED]
        if self.clustered:
            names.append("problem")
        elif self.config.mix is not None:
            names.append(self.config.mix.by)
        if any(name not in TRACE_COLUMNS for name in names):
            names.append("metadata")  # a measure or group given as metadata.KEY or a key
        return [name.partition(".")[0] for name in names]

    @property
    def clustered(self) -> bool:
        return self.config.mix is not None and self.config.mix.by == "cluster"

    def keys(self, rows: pl.DataFrame) -> pl.DataFrame:
        """A shard's rows with their measures (and problem vectors) in place of the text."""
        rows = with_measures(rows)
        if self.clustered:
            rows = self._with_vectors(rows)
        return rows.drop("reasoning", "completion", "problem", strict=False)

    def _with_vectors(self, rows: pl.DataFrame) -> pl.DataFrame:
        assert self.config.mix is not None
        if VECTOR in rows.columns:
            return rows
        return with_vectors(rows, self.config.mix.clusters)

    def process(self, frame: pl.DataFrame) -> pl.DataFrame:
        config = self.config
        if "borderline" not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias("borderline"))
        frame = with_measures(frame)
        frame = problem_stats(frame).with_columns(borderline(config))
        frame = frame.with_columns(
            pl.col(WORDS).mean().over(PID).alias("mean_words"), pl.lit(None, pl.String).alias(WHY)
        )
        frame = self._by_verdict(frame)
        for band in config.bands:
            frame = self._banded(frame, band)
        frame = self._capped_per_problem(frame)
        if config.mix is not None or config.budget is not None:
            frame = self._spread(frame)
        self._count(frame)
        return frame.with_columns(
            pl.col(WHY).is_null().alias("selected"), pl.col(WHY).alias("dropped")
        ).drop(*HELPERS, WHY, GROUP, VECTOR, strict=False)

    def _by_verdict(self, frame: pl.DataFrame) -> pl.DataFrame:
        config = self.config
        correct = (pl.col("verdict") == "correct").fill_null(False)
        if config.policy != "all":
            frame = drop(frame, ~correct, pl.col("verdict").fill_null("unverified"))
        if config.policy == "pass_rate_band":
            band = pl.col("pass_rate").is_between(config.pass_rate_min, config.pass_rate_max)
            frame = drop(frame, ~band, pl.lit("pass_rate_out_of_band"))
        return frame

    def _banded(self, frame: pl.DataFrame, band: Band) -> pl.DataFrame:
        value = measure_of(frame, band.measure)
        if value is None or frame.select(value.is_null().all()).item():
            if band.if_missing == "error":
                raise RecipeError(
                    f"select.bands: no row has {band.measure!r}; give it as a column or "
                    "metadata key, or set if_missing: skip"
                )
            self.counts[f"band_skipped_{band.measure}"] += 1
            return frame
        frame = frame.with_columns(value.alias("_value"))
        live = frame.filter(pl.col(WHY).is_null())
        if band.per_problem:
            live = live.unique(PID, keep="first")
        low = bound(live, band.min, band.min_quantile, max)
        high = bound(live, band.max, band.max_quantile, min)
        inside = pl.col("_value").is_between(
            low if low is not None else float("-inf"), high if high is not None else float("inf")
        )
        frame = drop(frame, ~inside.fill_null(False), pl.lit(f"out_of_band_{band.measure}"))
        return frame.drop("_value")

    def _capped_per_problem(self, frame: pl.DataFrame) -> pl.DataFrame:
        config = self.config
        cap = config.max_per_problem or (1 if config.policy == "shortest_correct" else None)
        if cap is None:
            return frame
        frame = frame.with_columns(
            pl.when(pl.col(WHY).is_null())
            .then(self._preference())
            .rank("ordinal")
            .over(PID)
            .alias("_rank")
        )
        return drop(frame, pl.col("_rank") > cap, pl.lit("over_max_per_problem"))

    def _preference(self) -> pl.Expr:
        """Which of a problem's traces come first (lower is better); sample index breaks ties."""
        prefer = "shortest" if self.config.policy == "shortest_correct" else self.config.prefer
        index = pl.col("sample_idx").cast(pl.Float64)
        if prefer == "sample":
            return index
        sign = 1.0 if prefer == "shortest" else -1.0
        column = WORDS if prefer in ("shortest", "longest") else prefer
        return pl.struct((pl.col(column) * sign).fill_null(float("inf")), index)

    def _spread(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Groups and a budget, decided over the problems still in."""
        config = self.config
        frame = self._grouped(frame)
        live = frame.filter(pl.col(WHY).is_null())
        problems = live.group_by(PID, maintain_order=True).agg(
            pl.first(GROUP),
            pl.first("pass_rate"),
            pl.col(WORDS).mean().alias("mean_words"),
            pl.col(QUALITY).max().alias("best_quality"),
        )
        self._count_groups(problems, "in_group")
        order = config.budget.order if config.budget else "random"
        problems = cut(ordered(problems, order, self.context.seed), config.mix, config.budget)
        frame = with_problem_columns(frame, problems.select(PID, PLACE, pl.col(WHY).alias("_cut")))
        frame = drop(frame, pl.col("_cut").is_not_null(), pl.col("_cut"))
        if config.budget is not None and config.budget.traces is not None:
            frame = self._traces_budget(frame, config.budget.traces)
        return frame.drop(PLACE, "_cut")

    def _grouped(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Each row's group: a column, a metadata key, its problem's cluster, or one group."""
        mix = self.config.mix
        if mix is not None and self.clustered:
            found = cluster_of(self._with_vectors(frame), mix.clusters, self.context.seed)
            self.counts["clusters"] += found["cluster"].n_unique()
            frame = frame.join(found, on=PID, how="left", maintain_order="left")
            return frame.with_columns(pl.col("cluster").fill_null("").alias(GROUP)).drop(
                "cluster", VECTOR, strict=False
            )
        if mix is None:
            return frame.with_columns(pl.lit("").alias(GROUP))
        group = measure_of(frame, mix.by, text=True)
        if group is None or frame.select(group.is_null().all()).item():
            raise RecipeError(
                f"select.mix.by: no row has {mix.by!r} (a column, or a metadata key; "
                "cluster groups by embeddings)"
            )
        return frame.with_columns(group.fill_null("").alias(GROUP))

    def _traces_budget(self, frame: pl.DataFrame, size: int) -> pl.DataFrame:
        """The first `size` traces in the problems' order (a problem's own in preference)."""
        turn = pl.when(pl.col(WHY).is_null()).then(pl.struct(pl.col(PLACE), self._preference()))
        frame = frame.with_columns(turn.rank("ordinal").alias("_turn"))
        return drop(frame, pl.col("_turn") > size, pl.lit("over_budget")).drop("_turn")

    def _count(self, frame: pl.DataFrame) -> None:
        for flag in ("unverifiable", "reference_disputed", "lucky_hit"):
            self.counts[f"borderline_{flag}"] += int(frame["borderline"].list.contains(flag).sum())
        kept = frame.filter(pl.col(WHY).is_null())
        self.counts["problems_in"] += frame[PID].n_unique()
        self.counts["problems_kept"] += kept[PID].n_unique()
        if self.config.keeps_unverified:
            self.counts["kept_not_correct"] += int(kept["verdict"].ne_missing("correct").sum())
        if GROUP in frame.columns:
            self._count_groups(kept.unique(PID, keep="first"), "kept_in_group")

    def _count_groups(self, problems: pl.DataFrame, name: str) -> None:
        """Problems per group (the largest 50) as counts `NAME:GROUP`: the spread's input
        (in_group) and what it kept (kept_in_group)."""
        sizes = problems.group_by(GROUP).len("n").sort(["n", GROUP], descending=[True, False])
        for group, size in sizes.head(50).rows():
            self.counts[f"{name}:{group or '(none)'}"] += int(size)


HELPERS = ("_answer", "_correct", "_samples", "_majority_wrong", "mean_words", "_rank")
TRACE_COLUMNS = {"source", "domain", "problem", "reference", "model", "round", "verdict"}


def drop(frame: pl.DataFrame, where: pl.Expr, reason: pl.Expr) -> pl.DataFrame:
    """Give rows still in a drop reason where the condition holds."""
    newly = pl.col(WHY).is_null() & where.fill_null(False)
    return frame.with_columns(pl.when(newly).then(reason).otherwise(pl.col(WHY)).alias(WHY))


def measure_of(frame: pl.DataFrame, name: str, text: bool = False) -> pl.Expr | None:
    """A column, or a metadata key (`metadata.KEY`, or a bare key where no row has the column
    filled), as numbers (or text, for a group); None where neither exists."""
    kind = pl.String if text else pl.Float64
    filled = name in frame.columns and frame[name].null_count() < frame.height
    if filled or (name in frame.columns and "metadata" not in frame.columns):
        return pl.col(name).cast(kind, strict=False)
    if "metadata" not in frame.columns:
        return None
    found = pl.col("metadata").str.json_path_match(f"$.{name.removeprefix('metadata.')}")
    return found.cast(kind, strict=False)


def bound(
    live: pl.DataFrame,
    fixed: float | None,
    quantile: float | None,
    pick: Callable[[list[float]], float],
) -> float | None:
    """A band's end: the fixed bound, the quantile of what is in, or the tighter of both."""
    ends = [fixed] if fixed is not None else []
    if quantile is not None and live.height:
        found = live["_value"].drop_nulls().quantile(quantile, "linear")
        if found is not None:
            ends.append(float(found))
    return pick(ends) if ends else None
