"""Which problems make the cut when they compete: groups kept or capped, shares, a budget.

One table of problems (one row each, with its group and the numbers the budget orders by)
goes in; each gets a place in one order and a reason where it is cut. The order
interleaves the groups by weight: a problem ranked r in its group stands at
(r + 1/2) / weight, so equal weights take one problem of each group in turn (uniform),
weights equal to the group sizes keep the proportions, and a group that runs out leaves its
turns to the others. Ties fall to a hash of the problem id and the run's seed, so the
selection is the same for a seed on any machine and in any input order.
"""

from __future__ import annotations

import polars as pl

from curate.records import stable_hash
from curate.select.config import Budget, Mix, Order

PID = "problem_id"
GROUP = "_group"
WHY = "_why"
PLACE = "_place"

# a budget's order as (column, highest first); random orders by the seeded hash alone
ORDER_KEYS: dict[Order, tuple[str, bool] | None] = {
    "random": None,
    "hardest": ("pass_rate", False),
    "easiest": ("pass_rate", True),
    "longest": ("mean_words", True),
    "shortest": ("mean_words", False),
    "quality": ("best_quality", True),
}


def ordered(problems: pl.DataFrame, order: Order, seed: int) -> pl.DataFrame:
    """Problems in the budget's order, ties (and the random order) by the seeded hash."""
    ties = [stable_hash(str(seed), pid, size=8) for pid in problems[PID].to_list()]
    problems = problems.with_columns(pl.Series("_tie", ties, pl.String))
    key = ORDER_KEYS[order]
    if key is None:
        return problems.sort("_tie")
    column, highest_first = key
    return problems.sort([column, "_tie"], descending=[highest_first, False], nulls_last=True)


def cut(problems: pl.DataFrame, mix: Mix | None, budget: Budget | None) -> pl.DataFrame:
    """Each problem's place in the interleaved order and why it is cut (null: kept, so far;
    a traces budget is applied to rows by the caller, in this order)."""
    problems = problems.with_columns(
        pl.lit(None, pl.String).alias(WHY), pl.int_range(pl.len()).alias("_position")
    )
    if mix is not None:
        problems = _groups_kept(problems, mix)
    problems = _interleaved(problems, mix)
    if budget is not None and budget.problems is not None:
        problems = _mark(problems, pl.col(PLACE) >= budget.problems, "over_budget")
    elif budget is None and mix is not None:
        problems = _balanced_without_budget(problems, mix)
    return problems


def _mark(problems: pl.DataFrame, cut_here: pl.Expr, reason: str) -> pl.DataFrame:
    """Set the reason where the condition holds on a problem still in."""
    newly = pl.col(WHY).is_null() & cut_here.fill_null(False)
    return problems.with_columns(
        pl.when(newly).then(pl.lit(reason)).otherwise(pl.col(WHY)).alias(WHY)
    )


def _rank_in_group() -> pl.Expr:
    """0-based rank of a problem still in among its group's, in the order given."""
    return pl.col("_position").rank("ordinal").over(GROUP) - 1


def _groups_kept(problems: pl.DataFrame, mix: Mix) -> pl.DataFrame:
    """Groups left out (only:, or a share of 0) and each group's cap."""
    chosen = None if mix.only is None else set(mix.only)
    if mix.shares is not None:
        named = set(mix.shares) if chosen is None else chosen
        chosen = {g for g, share in mix.shares.items() if share > 0} & named
    if chosen is not None:
        problems = _mark(problems, ~pl.col(GROUP).is_in(sorted(chosen)), "group_not_chosen")
    if mix.caps:
        live = problems.filter(pl.col(WHY).is_null()).with_columns(_rank_in_group().alias("_r"))
        caps = pl.col(GROUP).replace_strict(mix.caps, default=None, return_dtype=pl.Int64)
        over = live.filter(pl.col("_r") >= caps)[PID]
        problems = _mark(problems, pl.col(PID).is_in(over.implode()), "over_group_cap")
    return problems


def _interleaved(problems: pl.DataFrame, mix: Mix | None) -> pl.DataFrame:
    """Every problem still in gets its place; the cut ones come after, placeless."""
    live = problems.filter(pl.col(WHY).is_null())
    weight = _weights(live, mix)
    live = live.with_columns(
        ((_rank_in_group() + 0.5) / weight).alias("_turn"),
    ).sort(["_turn", GROUP, "_position"], nulls_last=True)
    live = live.with_columns(pl.int_range(pl.len()).alias(PLACE)).select(PID, PLACE)
    return problems.join(live, on=PID, how="left", maintain_order="left")


def _weights(live: pl.DataFrame, mix: Mix | None) -> pl.Expr:
    """How many turns a group gets per round: equal, its size, or its share."""
    if mix is None or (mix.shares is None and mix.balance == "proportional"):
        return pl.len().over(GROUP).cast(pl.Float64)
    if mix.shares is not None:
        return pl.col(GROUP).replace_strict(mix.shares, default=0.0, return_dtype=pl.Float64)
    return pl.lit(1.0)


def _balanced_without_budget(problems: pl.DataFrame, mix: Mix) -> pl.DataFrame:
    """Without a budget, uniform cuts every group to the smallest and shares keep the
    largest selection that meets them; proportional keeps all."""
    live = problems.filter(pl.col(WHY).is_null())
    if live.is_empty() or (mix.shares is None and mix.balance == "proportional"):
        return problems
    sizes = live.group_by(GROUP).len()
    if mix.shares is None:
        per_group = pl.lit(sizes["len"].min())
    else:
        total = sum(mix.shares.values())
        fit = min(
            size / (mix.shares.get(group, 0.0) / total)
            for group, size in sizes.iter_rows()
            if mix.shares.get(group, 0.0) > 0
        )
        share = pl.col(GROUP).replace_strict(mix.shares, default=0.0, return_dtype=pl.Float64)
        per_group = (share / total * fit).floor()
    over = live.filter(_rank_in_group() >= per_group)[PID]
    return _mark(problems, pl.col(PID).is_in(over.implode()), "over_group_balance")
