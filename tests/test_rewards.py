"""Rewards in TRL's GRPO reward-function signature, on batches shaped like TRL's."""

import inspect

import pytest

from curate.rewards import VerifierReward, completion_text


@pytest.fixture(scope="module")
def reward():
    function = VerifierReward("math", workers=1)
    yield function
    function.close()


def test_plain_completions_batch(reward):
    prompts = ["What is 2+2?"] * 3 + ["What is half of 1?"]
    completions = [
        "<think>2+2=4</think>The answer is $\\boxed{4}$.",
        "<think>hmm</think>\\boxed{5}",
        "<think>no idea",
        "\\boxed{0.5}",
    ]
    rewards = reward(
        prompts=prompts,
        completions=completions,
        completion_ids=None,
        reference=["4", "4", "4", "\\frac{1}{2}"],
        trainer_state=None,
    )
    assert rewards == [1.0, 0.0, 0.0, 1.0]


def test_conversational_completions_and_unverifiable(reward):
    """A problem that cannot be judged (no reference, a gold in words) is skipped with None;
    an answer the policy left unjudgeable ("I give up", an empty box) is 0.0, or a policy
    would learn that giving no answer costs nothing."""
    completions = [
        [{"role": "assistant", "content": "\\boxed{7}"}],
        [{"role": "assistant", "content": "I give up"}],
        [{"role": "assistant", "content": "\\boxed{}"}],
        [{"role": "assistant", "content": "\\boxed{7}"}],
        [{"role": "assistant", "content": "\\boxed{42}"}],
    ]
    references = ["7", "7", "7", None, "forty two"]
    none_for_unverifiable = VerifierReward("math", unverifiable=None, workers=1)
    try:
        assert none_for_unverifiable(
            prompts=[[]] * 5, completions=completions, reference=references
        ) == [1.0, 0.0, 0.0, None, None]
    finally:
        none_for_unverifiable.close()
    scores = reward(prompts=[[]] * 5, completions=completions, reference=references)
    assert scores == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_reasoning_required_and_never_read_for_the_answer():
    """The answer is read after the reasoning (whichever delimiters the model uses); with
    require_reasoning a completion without a closed reasoning block scores 0.0."""
    texts = [
        "<think>maybe \\boxed{3}</think> so \\boxed{7}",
        "<think>the answer is \\boxed{7}</think> no answer here",
        "<|begin_of_thought|>\\boxed{7}<|end_of_thought|><|begin_of_solution|>\\boxed{3}"
        "<|end_of_solution|>",
        "\\boxed{7}",
        "<think>cut off \\boxed{7}",
        "reasoning only closed</think> \\boxed{7}",
    ]
    plain = VerifierReward("math", workers=1)
    strict = VerifierReward("math", workers=1, require_reasoning=True)
    try:
        columns = {"completions": texts, "reference": ["7"] * len(texts)}
        assert plain(**columns) == [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
        assert strict(**columns) == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    finally:
        plain.close()
        strict.close()


def test_signature_and_name_match_trl(reward):
    parameters = inspect.signature(reward.__call__).parameters
    assert list(parameters)[:3] == ["prompts", "completions", "completion_ids"]
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    assert reward.__name__ == "curate_math"


def test_auto_picks_by_domain():
    reward = VerifierReward("auto", workers=1)
    try:
        rewards = reward(
            prompts=["q1", "q2"],
            completions=["\\boxed{3}", "The answer is (B)"],
            reference=["3", "B"],
            domain=["math", "choice"],
        )
    finally:
        reward.close()
    assert rewards == [1.0, 1.0]


def test_completion_text_reads_plain_and_conversational():
    assert completion_text("<think>a</think> final") == "<think>a</think> final"
    assert completion_text([{"role": "assistant", "content": "x"}]) == "x"
    assert completion_text(None) == ""
