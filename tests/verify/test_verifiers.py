import json

import pytest

from curate.answers import last_boxed
from curate.verify.base import ProblemAnswers
from curate.verify.exact import ExactVerifier, PuzzleVerifier
from curate.verify.math import MathVerifier, gold_text


def judge(verifier, reference, answers, metadata=None):
    return verifier.verify([ProblemAnswers(reference, metadata, answers)])[0]


@pytest.mark.parametrize(
    "reference, answer, verdict",
    [
        ("4", "The answer is $\\boxed{4}$.", "correct"),
        ("\\frac{1}{2}", "$\\boxed{0.5}$", "correct"),
        ("(1,2)", "\\boxed{(1, 2)}", "correct"),
        ("x^2+2x+1", "\\boxed{(x+1)^2}", "correct"),
        ("4", "\\boxed{5}", "incorrect"),
        ("4", "first \\boxed{5} then \\boxed{4}", "correct"),
    ],
)
def test_math_verdicts(reference, answer, verdict):
    result = judge(MathVerifier(), reference, [answer])[0]
    assert result.verdict == verdict
    assert (result.reason is None) == (verdict == "correct")


def test_unverifiable_reasons():
    verifier = MathVerifier()
    assert judge(verifier, None, ["\\boxed{1}"])[0].reason == "no_reference"
    assert judge(verifier, "4", [""])[0].reason == "no_answer"
    assert judge(verifier, "4", [None])[0].verdict == "unverifiable"
    unparseable = judge(verifier, "\\text{no math here at all}", ["\\boxed{4}"])[0]
    assert unparseable.verdict in ("unverifiable", "incorrect")


def test_gold_is_wrapped_so_bare_strings_parse():
    assert gold_text("(1,2)") == "$(1,2)$"
    assert gold_text("$x$") == "$x$"
    assert gold_text("\\boxed{3}") == "\\boxed{3}"


def test_worker_pool_matches_in_process():
    problems = [
        ProblemAnswers(str(i), None, [f"\\boxed{{{i}}}", f"\\boxed{{{i + 1}}}"]) for i in range(100)
    ]
    pooled = MathVerifier(workers=2)
    try:
        results = pooled.verify(problems)
    finally:
        pooled.close()
    assert [[r.verdict for r in rs] for rs in results] == [["correct", "incorrect"]] * 100


def test_last_boxed_balances_braces():
    assert last_boxed("x \\boxed{\\frac{1}{2}} y") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{a} \\boxed{b}") == "b"
    assert last_boxed("\\boxed{unclosed") is None
    assert last_boxed("none") is None


def test_exact_match_normalises():
    verifier = ExactVerifier()
    results = judge(verifier, "Paris", ["The answer is paris.", "\\boxed{London}", ""])
    assert [r.verdict for r in results] == ["correct", "incorrect", "unverifiable"]


def test_puzzle_uses_reasoning_gym_scorer():
    from curate.sources.gym import GymConfig, GymSource

    problem = next(GymSource(GymConfig(tasks={"gcd": 3}, seed=1)).problems())
    results = judge(
        PuzzleVerifier(),
        problem["reference"],
        [f"\\boxed{{{problem['reference']}}}", "\\boxed{-1}"],
        problem["metadata"],
    )
    assert [r.verdict for r in results] == ["correct", "incorrect"]
    assert json.loads(problem["metadata"])["gym"]["task"] == "gcd"
