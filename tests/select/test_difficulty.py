"""The difficulty stage: a weaker solver's pass rate and a rubric rating per problem, asked
once per problem through the request cache; and select reading them (the s1k preset)."""

import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from curate.cli import app
from curate.errors import RecipeError
from curate.records import conform
from curate.select.config import DifficultyConfig
from curate.select.difficulty import DifficultyStage
from curate.stage import StageContext
from curate.units import process_batch
from tests.select.fake_rater import FakeRaterServer

EXACT = {"truncate_rate": 0, "unboxed_rate": 0, "repeat_rate": 0, "language_mix_rate": 0}


def traces(problems: dict[str, tuple[str, str, list[str]]]) -> pl.DataFrame:
    """{problem_id: (text, reference, verdicts of its traces)}."""
    rows = [
        {
            "problem_id": pid,
            "problem": text,
            "reference": reference,
            "domain": "math",
            "sample_idx": index,
            "verdict": verdict,
        }
        for pid, (text, reference, verdicts) in problems.items()
        for index, verdict in enumerate(verdicts)
    ]
    return pl.DataFrame(rows)


def run(tmp_path: Path, frame: pl.DataFrame, **config):
    stage = DifficultyStage(DifficultyConfig(**config), StageContext(tmp_path))
    out, stats = process_batch(stage, conform(frame))
    table = pl.from_arrow(out)
    assert isinstance(table, pl.DataFrame)
    return table, stats


def per_problem(frame: pl.DataFrame, column: str) -> dict[str, object]:
    return dict(frame.unique("problem_id").select("problem_id", column).rows())


POOL = {
    "a": ("What is 12 + 30?", "42", ["correct", "incorrect"]),
    "b": ("What is 5 + 6?", "11", ["correct"]),
    "never": ("What is 7 + 7?", "14", ["incorrect", "incorrect"]),
}


def test_a_solver_that_is_always_right_or_always_wrong(tmp_path):
    right = {"backend": "simulated", "samples": 3, "wrong_rate": 0, **EXACT}
    out, stats = run(tmp_path, traces(POOL), solver=right)
    assert per_problem(out, "solver_pass_rate") == {"a": 1.0, "b": 1.0, "never": None}
    assert per_problem(out, "solver_model") == {"a": "simulated", "b": "simulated", "never": None}
    assert stats["counts"]["problems_asked"] == 2  # `never` was not solved by the teacher
    wrong = {**right, "wrong_rate": 1.0, "seed": 3}
    out, _ = run(tmp_path, traces(POOL), solver=wrong, only_solved=False)
    rates = per_problem(out, "solver_pass_rate")
    assert set(rates) == {"a", "b", "never"} and all(
        r is not None and r < 1 for r in rates.values()
    )


def test_ratings_are_read_cached_and_never_guessed(tmp_path):
    pool = {
        **POOL,
        "odd": ("An unratable riddle about 3 + 4", "7", ["correct"]),
    }
    with FakeRaterServer() as server:
        rater = {"backend": "openai", "base_url": server.url, "model": "rater"}
        out, stats = run(tmp_path, traces(pool), rater=rater)
        asked = server.requests
        again, _ = run(tmp_path, traces(pool), rater=rater)
        assert server.requests == asked == 3  # one question per solved problem; rerun: none
    ratings = per_problem(out, "difficulty_rating")
    assert ratings == {"a": 4.0, "b": 2.0, "never": None, "odd": None}
    assert stats["counts"]["rating_unreadable"] == 1
    assert "It needs 4 digits" in per_problem(out, "difficulty_reasoning")["a"]
    assert per_problem(again, "difficulty_rating") == ratings


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("Rating: 7", 7.0),
        ("**Rating:** 10/10", 10.0),
        ("rating: 3\nOn reflection, Rating: 5", 5.0),
        ("I would not rate it.", None),
        ("Rating: 11", None),
        ("The rating depends on 4 things.", None),
    ],
)
def test_read_rating(reply, rating):
    from curate.generate.base import Sample
    from curate.select.difficulty import read_rating

    assert read_rating(Sample(0, None, reply, "stop", 1, 1))[0] == rating


def test_a_section_with_nothing_to_ask_and_a_bad_solver_are_recipe_errors(tmp_path):
    with pytest.raises(ValueError, match="give a solver, a rater or both"):
        DifficultyConfig()
    with pytest.raises(RecipeError, match=r"difficulty\.solver\.samples"):
        DifficultyStage(
            DifficultyConfig(solver={"backend": "simulated", "samples": 0}),
            StageContext(tmp_path),
        )


def test_s1k_reads_the_solver_in_a_run(tmp_path):
    """A run with a solver: s1k's 'a smaller model solves it' band runs (not skipped) and
    every kept problem is one the solver never solved."""
    problems = tmp_path / "p.jsonl"
    lines = [f'{{"problem": "What is {i} + {2 * i}?", "answer": "{3 * i}"}}' for i in range(30)]
    problems.write_text("\n".join(lines) + "\n")
    recipe = {
        "name": "s1",
        "source": {"kind": "files", "path": str(problems)},
        "teacher": {"backend": "simulated", "samples": 2, "wrong_rate": 0.1, **EXACT},
        "verify": {"kind": "math", "workers": 1},
        "difficulty": {
            "solver": {"backend": "simulated", "samples": 2, "wrong_rate": 0.9, "seed": 5, **EXACT}
        },
        "select": {"preset": "s1k"},
    }
    path = tmp_path / "s1.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(app, ["run", str(path), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    ledger = pl.read_parquet(tmp_path / "run" / "ledger")
    kept = ledger.filter(pl.col("selected"))
    assert 0 < kept.height < ledger["problem_id"].n_unique()
    assert kept["solver_pass_rate"].to_list() == [0.0] * kept.height
    assert kept["problem_id"].n_unique() == kept.height  # one trace per problem
    dropped = ledger.filter(pl.col("dropped") == "out_of_band_solver_pass_rate")
    assert dropped["solver_pass_rate"].min() > 0
    # the solver's tokens are counted apart from the teacher's, in the stats and the output
    counts = json.loads((tmp_path / "run" / "stats.json").read_text())["difficulty"]["counts"]
    assert (
        counts["solver_spent_completion_tokens"] > 0 and "rater_spent_prompt_tokens" not in counts
    )
    said = f"also spent: difficulty solver: {counts['solver_spent_prompt_tokens']:,} prompt"
    assert said in result.output
    shown = CliRunner().invoke(app, ["stats", str(tmp_path / "run")]).output
    assert "spent:\n  teacher: " in shown and "\n  difficulty solver: " in shown
