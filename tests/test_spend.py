"""What each model a run asked cost: the teacher's line, and the judge's, solver's, rater's
and classifier's apart, in the run's output, `curate stats`, the report and the card."""

import polars as pl

from curate.publish.card import _teacher
from curate.stats import other_spend, spend_lines

STATS = {
    "generate": {
        "in": 2,
        "out": 8,
        "counts": {"spent_prompt_tokens": 100, "spent_completion_tokens": 900},
    },
    "verify": {
        "in": 8,
        "out": 8,
        "counts": {"judge_spent_prompt_tokens": 40, "judge_spent_completion_tokens": 8},
    },
    "difficulty": {
        "in": 8,
        "out": 8,
        "counts": {
            "solver_spent_prompt_tokens": 30,
            "solver_spent_completion_tokens": 300,
            "solver_cost_micro_usd": 1_500_000,
            "rater_spent_prompt_tokens": 20,
            "rater_spent_completion_tokens": 10,
        },
    },
    "dataset": {"in": 8, "out": 4},
}


def test_each_model_is_counted_apart_with_its_cost():
    assert other_spend(STATS) == [
        "verify judge: 40 prompt + 8 completion tokens",
        "difficulty rater: 20 prompt + 10 completion tokens",
        "difficulty solver: 30 prompt + 300 completion tokens; $1.50",
    ]
    lines = spend_lines(STATS)
    assert lines[0] == "spent:"
    assert lines[1] == "  teacher: 100 prompt + 900 completion tokens (250 a kept trace)"
    assert len(lines) == 5


def test_the_card_says_what_the_other_models_cost():
    every = pl.DataFrame({"model": ["m"]})
    text = _teacher({"teacher": {"backend": "openai"}}, every, STATS)
    assert "Spent generating this run's samples: 100 prompt + 900 completion" in text
    assert "Also spent, difficulty solver: 30 prompt + 300 completion tokens; $1.50." in text
