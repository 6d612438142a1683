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
    completions = [
        [{"role": "assistant", "content": "\\boxed{7}"}],
        [{"role": "assistant", "content": "I give up"}],
    ]
    none_for_unverifiable = VerifierReward("math", unverifiable=None, workers=1)
    try:
        assert none_for_unverifiable(
            prompts=[[], []], completions=completions, reference=["7", "7"]
        ) == [1.0, None]
    finally:
        none_for_unverifiable.close()
    assert reward(prompts=[[], []], completions=completions, reference=["7", "7"]) == [1.0, 0.0]


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


def test_completion_text_strips_reasoning():
    assert completion_text("<think>a</think> final") == "final"
    assert completion_text([{"role": "assistant", "content": "x"}]) == "x"
    assert completion_text(None) == ""
