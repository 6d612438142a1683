"""The default stage order comes from what stages declare: the columns they read and make,
and `after` / `before` where columns cannot say; never from numbers."""

from __future__ import annotations

import pytest

from curate import registry
from curate.errors import RecipeError
from curate.order import pipeline_order
from curate.recipe import validate
from curate.stage import Stage

BUILTIN = ["dedup", "decontaminate", "generate", "verify", "review", "trace_dedup", "select"]


def stage(
    reads: tuple[str, ...] = (),
    writes: tuple[str, ...] = (),
    after: tuple[str, ...] = (),
    before: tuple[str, ...] = (),
) -> type[Stage]:
    class Declared(Stage):
        config_class = None

        def process(self, frame):  # pragma: no cover - never run: only its place is asked
            return frame

    Declared.reads, Declared.writes = reads, writes
    Declared.after, Declared.before = after, before
    return Declared


def builtins() -> dict[str, type[Stage]]:
    return {name: registry.stages.get(name) for name in [*BUILTIN, "filter"]}


def test_the_built_in_stages_run_in_the_pipeline_order():
    shuffled = dict(reversed(list(builtins().items())))  # registration order does not decide
    assert pipeline_order(shuffled) == [*BUILTIN, "filter"]


def test_a_stage_runs_after_the_stage_that_makes_what_it_reads():
    """A stage reading `verdict` comes after verify (which makes it), wherever it registers;
    review rewrites verdict, so it does not make it."""
    stages = {"grade": stage(reads=("verdict",), writes=("grade",)), **builtins()}
    order = pipeline_order(stages)
    assert order.index("grade") > order.index("verify")
    late = {"tally": stage(reads=("grade",)), **stages}  # and after a plugin's own column
    assert pipeline_order(late).index("tally") > pipeline_order(late).index("grade")


def test_after_and_before_place_a_stage_columns_cannot_place():
    stages = {**builtins(), "length": stage(reads=("completion",), after=("select",))}
    stages["length"].before = ("filter",)
    order = pipeline_order(stages)
    assert order.index("select") < order.index("length") < order.index("filter")


def test_relations_with_stages_the_recipe_lacks_are_ignored():
    traces = {name: registry.stages.get(name) for name in ("select", "verify", "dedup")}
    assert pipeline_order(traces) == ["dedup", "verify", "select"]  # no generate, no review


def test_a_cycle_is_named():
    stages = {
        "a": stage(reads=("x",), writes=("y",)),
        "b": stage(reads=("y",), writes=("x",)),
        "c": stage(),
    }
    with pytest.raises(RecipeError, match="stages a, b each wait for another"):
        pipeline_order(stages)


def test_a_recipe_runs_its_configured_stages_in_this_order():
    recipe = validate(
        {
            "name": "x",
            "source": {"kind": "files", "path": "x"},
            "filters": {},
            "select": {"policy": "all_correct"},
            "verify": {"kind": "math"},
            "dedup": {},
        }
    )
    assert recipe.stage_names() == ["dedup", "verify", "select", "filter"]
