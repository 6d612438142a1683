"""select's rules beyond correctness: bands, a problem's best traces, groups, a budget,
presets; each on small data, with ties, empty bands and budgets larger than the pool."""

import json

import polars as pl
import pytest

from curate.errors import RecipeError
from curate.recipe import validate
from curate.records import conform
from curate.select import SelectConfig, SelectStage
from curate.stage import StageContext
from curate.units import process_batch


def run(tmp_path, frame, seed=0, **config):
    stage = SelectStage(SelectConfig(**config), StageContext(tmp_path, seed=seed))
    out, stats = process_batch(stage, conform(frame))
    frame = pl.from_arrow(out)
    assert isinstance(frame, pl.DataFrame)
    return frame, stats


def pool(spec: dict[str, dict]) -> pl.DataFrame:
    """Traces from {problem: {source, domain, verdicts, words, metadata}}; a trace of n words
    is n plain words (checks and explores added by the text given, if any)."""
    rows = []
    for pid, p in spec.items():
        for index, verdict in enumerate(p["verdicts"]):
            words = p.get("words", [10] * len(p["verdicts"]))[index]
            text = p.get("texts", [None] * len(p["verdicts"]))[index] or "w " * words
            rows.append(
                {
                    "problem_id": pid,
                    "source": p.get("source", "s"),
                    "domain": p.get("domain", "math"),
                    "metadata": json.dumps(p["metadata"]) if "metadata" in p else None,
                    "sample_idx": index,
                    "verdict": verdict,
                    "extracted_answer": "1" if verdict == "correct" else "2",
                    "reasoning": text,
                    "completion": "done",
                }
            )
    return pl.DataFrame(rows, schema_overrides={"metadata": pl.String})


def kept(frame: pl.DataFrame) -> list[tuple[str, int]]:
    rows = frame.filter(pl.col("selected")).select("problem_id", "sample_idx").rows()
    return sorted(rows)


def kept_problems(frame: pl.DataFrame) -> set[str]:
    return set(frame.filter(pl.col("selected"))["problem_id"])


def test_quality_scores_reward_checking_and_exploring_per_word():
    plain = "We add the numbers. " * 50
    careful = (
        "We add the numbers. Wait, let me check that again. Alternatively, try pairs. "
        "Therefore the sum holds, since each pair matches. "
    ) * 12
    frame = pool({"p": {"verdicts": ["correct", "correct"], "texts": [plain, careful]}})
    out, _ = run(None, frame)
    first, second = out.sort("sample_idx").iter_rows(named=True)
    assert first["checks_per_1k"] == 0 and first["explores_per_1k"] == 0
    assert second["checks_per_1k"] > 20 and second["explores_per_1k"] > 10
    assert second["steps_per_1k"] > 20
    assert second["quality"] > first["quality"]
    assert first["trace_words"] == 201  # 200 words of reasoning, one of completion
    # per 1,000 words: the same careful text twice as long scores the same
    twice = pool({"p": {"verdicts": ["correct"], "texts": [careful * 2]}})
    again, _ = run(None, twice)
    assert again["checks_per_1k"][0] == pytest.approx(second["checks_per_1k"], rel=0.02)


def test_prefer_quality_and_longest_among_a_problems_correct_traces(tmp_path):
    careful = "Wait, let me verify. Alternatively, perhaps. Therefore since. " * 5
    frame = pool(
        {
            "p": {
                "verdicts": ["correct", "correct", "correct", "incorrect"],
                "texts": ["w " * 30, careful, "w " * 80, "w " * 500],
            }
        }
    )
    out, _ = run(tmp_path, frame, max_per_problem=1, prefer="quality")
    assert kept(out) == [("p", 1)]
    out, _ = run(tmp_path, frame, max_per_problem=1, prefer="longest")
    assert kept(out) == [("p", 2)]  # the longest correct one, not the incorrect
    out, _ = run(tmp_path, frame, max_per_problem=1, prefer="checks_per_1k")
    assert kept(out) == [("p", 1)]  # the one that checks itself
    out, stats = run(tmp_path, frame, max_per_problem=2, prefer="shortest")
    assert kept(out) == [("p", 0), ("p", 1)]
    assert stats["dropped"] == {"incorrect": 1, "over_max_per_problem": 1}


def test_ties_fall_to_the_sample_index(tmp_path):
    frame = pool({"p": {"verdicts": ["correct"] * 4, "words": [5, 5, 5, 5]}})
    out, _ = run(tmp_path, frame, max_per_problem=2, prefer="longest")
    assert kept(out) == [("p", 0), ("p", 1)]


def test_policy_all_keeps_every_verdict_as_a_column(tmp_path):
    frame = pool({"p": {"verdicts": ["correct", "incorrect", "unverifiable", None]}})
    out, stats = run(tmp_path, frame, policy="all")
    assert out["selected"].to_list() == [True] * 4
    assert out["verdict"].to_list() == ["correct", "incorrect", "unverifiable", None]
    assert stats["counts"]["kept_not_correct"] == 3


def test_bands_on_problem_and_trace_measures(tmp_path):
    frame = pool(
        {
            "easy": {"verdicts": ["correct"] * 4, "words": [10, 20, 30, 40]},
            "mid": {"verdicts": ["correct", "incorrect"] * 2, "words": [50, 60, 70, 80]},
            "hard": {"verdicts": ["incorrect"] * 3 + ["correct"], "words": [90] * 4},
        }
    )
    out, stats = run(
        tmp_path,
        frame,
        bands=[{"measure": "pass_rate", "max": 0.6}, {"measure": "trace_words", "min": 60}],
    )
    # easy leaves as a problem; of mid's correct traces only the one of 71 words is long enough
    assert kept(out) == [("hard", 3), ("mid", 2)]
    assert stats["dropped"]["out_of_band_pass_rate"] == 4
    assert stats["dropped"]["out_of_band_trace_words"] == 1


def test_quantile_bands_count_problems_once_and_follow_what_is_still_in(tmp_path):
    # mean words per problem: a 10, b 20, c 30, d 40 (d has 3 traces, counted once)
    frame = pool(
        {
            "a": {"verdicts": ["correct"], "words": [9]},
            "b": {"verdicts": ["correct"], "words": [19]},
            "c": {"verdicts": ["correct"], "words": [29]},
            "d": {"verdicts": ["correct"] * 3, "words": [39] * 3},
        }
    )
    out, _ = run(tmp_path, frame, bands=[{"measure": "mean_words", "min_quantile": 0.5}])
    assert kept_problems(out) == {"c", "d"}  # median of 10, 20, 30, 40 is 25
    out, _ = run(tmp_path, frame, bands=[{"measure": "mean_words", "min_quantile": 0.5, "min": 35}])
    assert kept_problems(out) == {"d"}  # the tighter end wins


def test_an_empty_band_keeps_nothing_and_says_why(tmp_path):
    frame = pool({"p": {"verdicts": ["correct"] * 2}})
    out, stats = run(tmp_path, frame, bands=[{"measure": "quality", "min": 0.99}])
    assert not out["selected"].any()
    assert stats["dropped"] == {"out_of_band_quality": 2}


def test_a_missing_measure_is_an_error_unless_skipped(tmp_path):
    frame = pool({"p": {"verdicts": ["correct"]}})
    with pytest.raises(RecipeError, match="no row has 'solver_pass_rate'"):
        run(tmp_path, frame, bands=[{"measure": "solver_pass_rate", "max": 0}])
    out, stats = run(
        tmp_path, frame, bands=[{"measure": "solver_pass_rate", "max": 0, "if_missing": "skip"}]
    )
    assert out["selected"].to_list() == [True]
    assert stats["counts"]["band_skipped_solver_pass_rate"] == 1


def test_a_band_reads_a_metadata_key(tmp_path):
    frame = pool(
        {
            "solved": {"verdicts": ["correct"], "metadata": {"solver_pass_rate": 0.5}},
            "unsolved": {"verdicts": ["correct"], "metadata": {"solver_pass_rate": 0.0}},
        }
    )
    out, _ = run(tmp_path, frame, bands=[{"measure": "solver_pass_rate", "max": 0}])
    assert kept_problems(out) == {"unsolved"}


def groups(sizes: dict[str, int]) -> pl.DataFrame:
    spec = {}
    for source, size in sizes.items():
        for i in range(size):
            spec[f"{source}{i}"] = {"verdicts": ["correct", "correct"], "source": source}
    return pool(spec)


def sources_of(frame: pl.DataFrame) -> dict[str, int]:
    problems = frame.filter(pl.col("selected")).unique("problem_id")
    return dict(problems.group_by("source").len().sort("source").rows())


def test_uniform_budget_takes_each_group_in_turn_and_lets_the_rest_fill(tmp_path):
    frame = groups({"a": 10, "b": 10, "c": 2})
    out, stats = run(tmp_path, frame, mix={"balance": "uniform"}, budget={"problems": 12})
    assert sources_of(out) == {"a": 5, "b": 5, "c": 2}  # c runs out; a and b share its turns
    assert stats["counts"]["problems_kept"] == 12
    kept_in = {k: v for k, v in stats["counts"].items() if k.startswith("kept_in_group:")}
    assert kept_in == {"kept_in_group:a": 5, "kept_in_group:b": 5, "kept_in_group:c": 2}
    went_in = {k: v for k, v in stats["counts"].items() if k.startswith("in_group:")}
    assert went_in == {"in_group:a": 10, "in_group:b": 10, "in_group:c": 2}
    assert stats["dropped"]["over_budget"] == 2 * 10


def test_proportional_and_shares(tmp_path):
    frame = groups({"a": 30, "b": 10})
    out, _ = run(tmp_path, frame, mix={"balance": "proportional"}, budget={"problems": 8})
    assert sources_of(out) == {"a": 6, "b": 2}
    out, _ = run(tmp_path, frame, mix={"shares": {"a": 1, "b": 1}}, budget={"problems": 8})
    assert sources_of(out) == {"a": 4, "b": 4}
    out, stats = run(tmp_path, frame, mix={"shares": {"b": 1}}, budget={"problems": 5})
    assert sources_of(out) == {"b": 5}
    assert stats["dropped"]["group_not_chosen"] == 2 * 30


def test_without_a_budget_uniform_cuts_to_the_smallest_and_shares_fit(tmp_path):
    frame = groups({"a": 9, "b": 3})
    out, stats = run(tmp_path, frame, mix={"balance": "uniform"})
    assert sources_of(out) == {"a": 3, "b": 3}
    assert stats["dropped"] == {"over_group_balance": 12}
    out, _ = run(tmp_path, frame, mix={"shares": {"a": 2, "b": 1}})
    assert sources_of(out) == {"a": 6, "b": 3}


def test_caps_only_and_groups_from_metadata(tmp_path):
    spec = {
        f"q{i}": {"verdicts": ["correct"], "metadata": {"topic": "algebra" if i < 6 else "geo"}}
        for i in range(9)
    }
    frame = pool(spec)
    out, stats = run(tmp_path, frame, mix={"by": "metadata.topic", "caps": {"algebra": 2}})
    assert len(kept_problems(out)) == 2 + 3
    assert stats["dropped"] == {"over_group_cap": 4}
    out, _ = run(tmp_path, frame, mix={"by": "topic", "only": ["geo"]})
    assert kept_problems(out) == {"q6", "q7", "q8"}
    both = {"by": "topic", "only": ["geo"], "shares": {"algebra": 1, "geo": 1}}
    out, _ = run(tmp_path, frame, mix=both)  # only: narrows the shares' groups too
    assert kept_problems(out) == {"q6", "q7", "q8"}


def test_a_group_column_no_row_has_is_named(tmp_path):
    with pytest.raises(RecipeError, match=r"select\.mix\.by: no row has 'topic'"):
        run(tmp_path, groups({"a": 2}), mix={"by": "topic"})


def test_traces_budget_is_exact_and_budget_larger_than_the_pool_keeps_all(tmp_path):
    frame = groups({"a": 3, "b": 3})  # 12 correct traces
    out, stats = run(tmp_path, frame, budget={"traces": 5})
    assert int(out["selected"].sum()) == 5
    assert stats["dropped"] == {"over_budget": 7}
    out, stats = run(tmp_path, frame, budget={"problems": 100})
    assert int(out["selected"].sum()) == 12 and "over_budget" not in stats["dropped"]


def test_budget_orders(tmp_path):
    frame = pool(
        {
            "easy": {"verdicts": ["correct"] * 4, "words": [10] * 4},
            "hard": {"verdicts": ["correct"] + ["incorrect"] * 3, "words": [300] * 4},
            "mid": {"verdicts": ["correct"] * 2 + ["incorrect"] * 2, "words": [100] * 4},
        }
    )
    out, _ = run(tmp_path, frame, budget={"problems": 1, "order": "hardest"})
    assert kept_problems(out) == {"hard"}
    out, _ = run(tmp_path, frame, budget={"problems": 1, "order": "easiest"})
    assert kept_problems(out) == {"easy"}
    out, _ = run(tmp_path, frame, budget={"problems": 2, "order": "shortest"})
    assert kept_problems(out) == {"easy", "mid"}


def test_random_budget_is_the_same_for_a_seed_in_any_input_order(tmp_path):
    frame = groups({"a": 20, "b": 20})
    first, _ = run(tmp_path, frame, seed=7, budget={"problems": 10})
    shuffled, _ = run(
        tmp_path, frame.sample(fraction=1.0, shuffle=True, seed=3), seed=7, budget={"problems": 10}
    )
    other, _ = run(tmp_path, frame, seed=8, budget={"problems": 10})
    assert kept_problems(first) == kept_problems(shuffled)
    assert kept_problems(first) != kept_problems(other)
    assert len(kept_problems(first)) == 10


def test_presets_fill_in_under_what_the_recipe_sets():
    config = SelectConfig(preset="limo", budget={"problems": 50})
    assert config.max_per_problem == 1 and config.prefer == "quality"
    assert config.budget is not None and config.budget.problems == 50
    assert config.budget.order == "quality"  # the preset's order kept under the new size
    assert config.bands[0].measure == "pass_rate" and config.bands[0].max == 3 / 32
    assert SelectConfig(preset="openthoughts3").policy == "all"
    assert SelectConfig(preset="s1k", max_per_problem=2).max_per_problem == 2


def test_limo_preset_keeps_problems_solved_one_to_three_times_in_32(tmp_path):
    spec = {
        name: {"verdicts": ["correct"] * hits + ["incorrect"] * (32 - hits)}
        for name, hits in {"none": 0, "one": 1, "three": 3, "four": 4, "all": 32}.items()
    }
    out, _ = run(tmp_path, pool(spec), preset="limo")
    assert kept_problems(out) == {"one", "three"}
    assert int(out["selected"].sum()) == 2  # one trace each


def test_s1k_preset_skips_the_solver_band_when_no_solver_ran_and_spreads_domains(tmp_path):
    spec = {
        f"{domain}{i}": {"verdicts": ["correct"], "domain": domain, "words": [10 + i]}
        for domain in ("algebra", "geometry")
        for i in range(3)
    }
    out, stats = run(tmp_path, pool(spec), preset="s1k", budget={"problems": 4})
    assert kept_problems(out) == {"algebra2", "algebra1", "geometry2", "geometry1"}  # longest
    assert stats["counts"]["band_skipped_solver_pass_rate"] == 1


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"budget": {"problems": 3, "traces": 4}}, "exactly one of problems or traces"),
        ({"bands": [{"measure": "quality", "min": 0.9, "max": 0.1}]}, "lower end exceeds"),
        ({"mix": {"shares": {"a": 0}}}, "at least one positive share"),
        ({"preset": "s2k"}, "s1k"),
        ({"mix": {"only": []}}, "at least 1 item"),
    ],
)
def test_bad_selection_settings_are_recipe_errors(section, message):
    with pytest.raises(RecipeError, match=message):
        validate(
            {"name": "x", "source": {"kind": "files", "paths": ["a.jsonl"]}, "select": section}
        )


def test_recipe_show_prints_what_a_preset_expands_to(tmp_path):
    from typer.testing import CliRunner

    from curate.cli import app

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: x\nsource: {kind: files, path: a.jsonl}\n"
        "select: {preset: limo, budget: {problems: 50}}\n"
    )
    shown = CliRunner().invoke(app, ["recipe", "show", str(recipe)])
    assert shown.exit_code == 0, shown.output
    section = shown.output.split("select:")[1]
    assert "prefer: quality" in section and "max_per_problem: 1" in section
    assert "problems: 50" in section and "order: quality" in section
    assert "max: 0.09375" in section
