"""Reward-function and answer-equivalence cases of other projects' test suites, written out here
from their documented test cases (the packages do not ship their tests), each with where it
comes from. A case is (gold, completion, expected reward): 1.0, 0.0, or None for "skip" (the
suite's word for a problem no rule can judge).

Used by benchmarks/peer_suites.py (curate against a plain math-verify loop, per suite) and by
tests/verify/test_peer_suites.py (curate must agree with every case).
"""

from __future__ import annotations

from dataclasses import dataclass, field

TRL = "huggingface/trl tests/test_rewards.py @010eddf0110ae5461b2102eb0977f83106b4106d"
OPEN_R1 = "huggingface/open-r1 tests/test_rewards.py @031ec05d1254c4a444eadf9cfa548c684bfc0fbe"
HENDRYCKS = (
    "hendrycks/math modeling/math_equivalence_test.py @5f3bf91d13367550bed100240554fd11c25abe48"
)
FRAC_63 = "\\frac{63}{400}"


@dataclass(frozen=True)
class RewardCase:
    suite: str
    source: str  # repository, file and commit the case was read from
    test: str  # the test function in that file
    gold: str
    completion: str
    expected: float | None
    require_reasoning: bool = False  # TRL's reasoning_accuracy_reward contract
    think_tags: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # () = defaults


def trl(
    test: str, gold: str, completion: str, expected: float | None, **options: object
) -> RewardCase:
    return RewardCase("trl", TRL, test, gold, completion, expected, **options)  # type: ignore[arg-type]


def open_r1(test: str, gold: str, completion: str, expected: float | None) -> RewardCase:
    return RewardCase("open-r1", OPEN_R1, test, gold, completion, expected)


def hendrycks(test: str, first: str, second: str, equal: bool) -> RewardCase:
    """is_equiv(first, second): the second answer boxed as a model would give it."""
    return RewardCase(
        "hendrycks-math", HENDRYCKS, test, first, f"\\boxed{{{second}}}", 1.0 if equal else 0.0
    )


REASONING = {"require_reasoning": True}
CASES: list[RewardCase] = [
    trl("test_accuracy_reward_correct_answer", FRAC_63, f"\\boxed{{{FRAC_63}}}", 1.0),
    trl("test_accuracy_reward_correct_answer", "63/400", f"\\boxed{{{FRAC_63}}}", 1.0),
    trl("test_accuracy_reward_wrong_answer", FRAC_63, "\\boxed{\\frac{64}{400}}", 0.0),
    trl("test_accuracy_reward_wrong_answer_no_latex", "6", "\\boxed{3}", 0.0),
    trl(
        "test_accuracy_reward_unparsable_gold", "Answer is forty two.", "Answer is forty two.", None
    ),
    trl(
        "test_accuracy_reward_unparsable_gold",
        "Answer is forty three.",
        "Some other content. \\boxed{43}.",
        None,
    ),
    trl("test_accuracy_reward_in_worker_thread", "\\frac{1}{3}", "\\boxed{\\frac{1}{3}}", 1.0),
    trl(
        "test_correct_answer_yields_unit_reward",
        FRAC_63,
        f"<think> Reasoning content </think> \\boxed{{{FRAC_63}}}",
        1.0,
        **REASONING,
    ),
    trl(
        "test_correct_answer_yields_unit_reward",
        FRAC_63,
        f"Reasoning content </think> \\boxed{{{FRAC_63}}}",
        1.0,
        **REASONING,
    ),
    trl(
        "test_correct_answer_with_custom_tags_yields_unit_reward",
        FRAC_63,
        f"<REASONING_START> Reasoning content </REASONING_END> \\boxed{{{FRAC_63}}}",
        1.0,
        require_reasoning=True,
        think_tags=(("<REASONING_START>", "</REASONING_END>"),),
    ),
    trl(
        "test_incorrect_answer_yields_zero_reward",
        FRAC_63,
        "<think> Reasoning content </think> \\boxed{\\frac{64}{400}}",
        0.0,
        **REASONING,
    ),
    trl(
        "test_correct_answer_in_reasoning_yields_zero_reward",
        "\\boxed{42}",
        "<think> My answer is \\boxed{42} </think> Some other text.",
        0.0,
        **REASONING,
    ),
    trl(
        "test_correct_answer_in_reasoning_yields_zero_reward",
        "\\boxed{42}",
        "<think> The answer is \\boxed{42} </think> Here's a wrong answer: \\boxed{43}.",
        0.0,
        **REASONING,
    ),
    trl(
        "test_incomplete_reasoning_yields_zero_reward",
        FRAC_63,
        "<think> Incomplete reasoning without closing tag",
        0.0,
        **REASONING,
    ),
    trl(
        "test_incomplete_reasoning_yields_zero_reward",
        FRAC_63,
        f"Correct answer {FRAC_63} but completely missing reasoning content",
        0.0,
        **REASONING,
    ),
    trl(
        "test_unparsable_gold_solution_yields_none_reward",
        "forty two",
        "<think> Reasoning content </think> \\boxed{42}",
        None,
        **REASONING,
    ),
    trl("test_unparsable_gold_yields_none", "forty two", "\\boxed{42}", None),
    trl("test_wrong_longer_penalized_less", "\\frac{1}{3}", "\\boxed{\\frac{1}{2}}", 0.0),
    open_r1("test_accuracy_reward_correct_answer", FRAC_63, f"\\boxed{{{FRAC_63}}}", 1.0),
    open_r1("test_accuracy_reward_wrong_answer", FRAC_63, "\\boxed{\\frac{64}{400}}", 0.0),
    open_r1("test_cosine_scaled_reward", FRAC_63, f"\\boxed{{{FRAC_63}}}" + " " * 60, 1.0),
    hendrycks("test_fractions", "\\tfrac{1}{2} + \\frac1{72}", "\\\\frac{1}{2} + 2/3", False),
    hendrycks("test_order", "10, 4, -2", "4, 10, -2", False),
    hendrycks("test_order2", "10, 4, 2", "4, 12, 2", False),
    hendrycks(
        "test_dfrac", "\\tfrac{1}{2} +\\! \\frac1{72}", "\\\\dfrac{1}{2} +\\frac{1}{72}", True
    ),
    hendrycks("test_units", "10\\text{ units}", "10 ", True),
    hendrycks("test_units2", "10\\text{ units}", "100 ", False),
    hendrycks("test_dollars", "10", "\\$10", True),
    hendrycks("test_parentheses", "\\left(x-2\\right)\\left(x+2\\right)", "(x-2)(x+2)", True),
    hendrycks("test_decimals", "0.1, 4, 2", "4, .1, 2", False),
    hendrycks("test_decimals2", "0.1", ".1", True),
    hendrycks("test_percentage", "10\\%", "10", True),
    hendrycks("test_sqrt", "10\\sqrt{3} + \\sqrt4", "10\\sqrt3 + \\sqrt{4}", True),
    hendrycks("test_frac", "\\frac34i", "\\frac{3}{4}i", True),
    hendrycks("test_tfrac", "\\tfrac83", "\\frac{8}{3}", True),
    hendrycks("test_expression", "5x - 7y + 11z + 4 = 0", "x + y - z + 2 = 0", False),
    hendrycks("test_half", "1/2", "\\frac{1}{2}", True),
]
