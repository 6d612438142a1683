"""Fuzzed inputs and recipes: extraction, answer forms and the math check never raise on any
text, and a recipe is either valid or a RecipeError naming its key, never another error."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.answers import AnswerFormat, final_answer_of, final_text_answer, split_reasoning
from curate.errors import RecipeError
from curate.recipe import load_recipe
from curate.verify.forms import answer_form, as_words, has_text, number_form
from curate.verify.math import check_math

PIECES = [
    "\\boxed{",
    "}",
    "{",
    "\\text{",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "<|begin_of_thought|>",
    "<|end_of_thought|>",
    "<|begin_of_solution|>",
    "$",
    "\\frac",
    "^",
    "_",
    "1",
    "2",
    "-",
    ",",
    " or ",
    " and ",
    "x",
    "i",
    "e",
    "\\lor",
    "=",
    "₁",
    "Å",
    "\\,",
    "\\!",
    "\n",
    " ",
    "The final answer is ",
    "answer is",
    "\ud800",
    "1e5",
    "1 1/2",
]
TEXT = st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=25).map("".join)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(TEXT)
def test_extraction_never_raises_and_never_reads_the_reasoning(text: str):
    split_reasoning(text)
    final_answer_of(text)
    final_text_answer(text)
    for value in (AnswerFormat().answer_text(text), answer_form(text, "5"), number_form(text)):
        assert isinstance(value, str)
    as_words(text)
    has_text(text)


@FUZZ
@given(st.text(alphabet="abc12 {}\\$", max_size=12), st.text(alphabet="abc12 {}\\$", max_size=12))
def test_a_closed_reasoning_block_is_never_the_answer(reasoning: str, solution: str):
    text = f"<think>{reasoning}</think>{solution}"
    assert split_reasoning(text).solution == solution.strip()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(TEXT, st.sampled_from(["5", "\\frac{1}{2}", "x^2", "\\text{yes}", "(1, 2)", "forty two"]))
def test_the_math_check_gives_a_verdict_for_any_answer(answer: str, gold: str):
    results = [r for r in check_math(gold, None, [answer], timeout=1) if hasattr(r, "verdict")]
    assert len(results) == 1
    assert results[0].verdict in ("correct", "incorrect", "unverifiable")
    assert results[0].reason != "verifier_crash"


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 10**6)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
SECTIONS = [
    "teacher",
    "verify",
    "select",
    "filters",
    "dedup",
    "decontaminate",
    "run",
    "name",
    "source",
    "publish",
    "seed",
    "stages",
]


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.sampled_from(SECTIONS) | st.text(max_size=6), JSONISH, max_size=5))
def test_any_recipe_is_valid_or_a_recipe_error(tmp_path_factory, sections: dict):
    recipe = {
        "name": "fuzz",
        "source": {"kind": "files", "path": "problems.jsonl"},
        **sections,
    }
    path = Path(tmp_path_factory.mktemp("recipe")) / "r.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    try:
        load_recipe(path)
    except RecipeError as exc:
        assert str(exc).strip()
