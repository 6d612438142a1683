"""Answer pairs in the styles real models write, checked by the project's math verifier."""

import json
import random
from pathlib import Path

import pytest

from curate.verify.base import ProblemAnswers, Result
from curate.verify.math import MathVerifier, gold_text
from tests.conftest import EVALDATA

PAIRS = [
    # fractions, decimals, \dfrac
    ("\\frac{1}{2}", "The answer is $\\boxed{0.5}$.", "correct"),
    ("0.5", "\\boxed{\\frac12}", "correct"),
    ("\\frac{3}{4}", "\\boxed{\\dfrac{3}{4}}", "correct"),
    ("\\frac{3}{4}", "\\boxed{0.74}", "incorrect"),
    # intervals and tuples
    ("[0,\\infty)", "\\boxed{[0, \\infty)}", "correct"),
    ("(1,2)", "\\boxed{(1,2)}", "correct"),
    ("(1,2)", "\\boxed{[1,2]}", "incorrect"),
    # sets, in any order
    ("\\{1,2,3\\}", "\\boxed{\\{3,2,1\\}}", "correct"),
    ("1,2,3", "\\boxed{3, 2, 1}", "correct"),
    # units
    ("5", "\\boxed{5\\text{ cm}}", "correct"),
    ("12", "\\boxed{12 \\text{ apples}}", "correct"),
    # percent
    ("50\\%", "\\boxed{50}", "correct"),
    ("0.5", "\\boxed{50\\%}", "correct"),
    # text answers
    ("\\text{Monday}", "\\boxed{\\text{Monday}}", "correct"),
    ("\\text{Monday}", "\\boxed{\\text{Tuesday}}", "incorrect"),
    # several boxed answers: the last one counts
    ("4", "first \\boxed{5}, then corrected: \\boxed{4}", "correct"),
    ("4", "\\boxed{4} or maybe \\boxed{5}", "incorrect"),
    # thousands separators
    ("1000000", "\\boxed{1,000,000}", "correct"),
    ("1234", "\\boxed{1{,}234}", "correct"),
    # degrees
    ("30^\\circ", "\\boxed{30}", "correct"),
    ("30", "\\boxed{30^\\circ}", "correct"),
    # expressions, equations
    ("x^2+2x+1", "\\boxed{(x+1)^2}", "correct"),
    ("\\sqrt{2}/2", "\\boxed{\\frac{\\sqrt2}{2}}", "correct"),
    ("3", "\\boxed{x = 3}", "correct"),
    ("-3", "\\boxed{-3.0}", "correct"),
    # no box: the fallbacks find a plain final answer
    ("2", "The answer is 2.", "correct"),
]


@pytest.fixture(scope="module")
def verifier():
    math = MathVerifier(timeout_s=2, workers=2)
    yield math
    math.close()


def test_answer_pairs(verifier):
    results = verifier.verify([ProblemAnswers(g, None, [p]) for g, p, _ in PAIRS])
    got = [(g, p, r[0].verdict) for (g, p, _), r in zip(PAIRS, results, strict=True)]
    assert got == [(g, p, v) for g, p, v in PAIRS]
    for (_, _, verdict), row in zip(PAIRS, results, strict=True):
        assert (row[0].reason is None) == (verdict == "correct")


def test_unverifiable_reasons(verifier):
    results = verifier.verify(
        [
            ProblemAnswers(None, None, ["\\boxed{1}"]),
            ProblemAnswers("4", None, ["", None, "I could not solve it"]),
            ProblemAnswers("\\text{}", None, ["\\boxed{1}"]),
        ]
    )
    assert [r.reason for r in results[0]] == ["no_reference"]
    assert [r.reason for r in results[1]] == ["no_answer", "no_answer", "refusal"]
    assert [r.reason for r in results[2]] == ["gold_unparseable"]
    assert all(r.verdict == "unverifiable" for row in results for r in row)


def test_without_fallbacks_only_boxed_answers_count():
    strict = MathVerifier(workers=1, fallbacks=())
    try:
        results = strict.verify([ProblemAnswers("2", None, ["The answer is 2.", "\\boxed{2}"])])
    finally:
        strict.close()
    assert [(r.verdict, r.reason) for r in results[0]] == [
        ("unverifiable", "no_answer"),
        ("correct", None),
    ]


def test_math_verify_issue_65_input_is_refused_before_sympy(verifier):
    """This input hung math-verify past its own timeout (Math-Verify issue #65)."""
    hang = (
        "\\boxed{\\dfrac{5^{\\left(5^{\\left(5^{\\left(5^5\\right)}\\right)} - 4\\right)} - 5}{16}}"
    )
    results = verifier.verify([ProblemAnswers("4", None, [hang, "\\boxed{4}"])])
    assert (results[0][0].verdict, results[0][0].reason) == ("unverifiable", "too_large")
    assert results[0][1].verdict == "correct"


def test_math_verify_timeout_fires_on_an_equation_sympy_cannot_solve_in_time(verifier):
    """math-verify solves both equations for their symbols; this pair takes sympy over 2 s."""
    gold = "x = \\frac{e^{t}}{3} + ce^{-2t}"
    results = verifier.verify(
        [ProblemAnswers(gold, None, [f"\\boxed{{{gold} + 2}}", "\\boxed{4}"])]
    )
    assert [(r.verdict, r.reason) for r in results[0]] == [
        ("unverifiable", "timeout"),
        ("incorrect", "mismatch"),
    ]


def test_a_huge_numeric_gold_is_refused(verifier):
    results = verifier.verify([ProblemAnswers("9^{9^9}", None, ["\\boxed{4}", "\\boxed{5}"])])
    assert [r.reason for r in results[0]] == ["gold_too_large", "gold_too_large"]


def test_integers_past_pythons_digit_limit_are_compared_not_crashed(verifier):
    """int() refuses more than 4,300 digits; such answers still get a verdict each, and the
    other answers of their problem keep theirs."""
    gold = "7" * 5000
    answers = [f"\\boxed{{{gold}}}", f"\\boxed{{{gold}1}}", "\\boxed{-0}", f"\\boxed{{{gold}}}"]
    results = verifier.verify(
        [ProblemAnswers(gold, None, answers), ProblemAnswers("0", None, ["\\boxed{-0}"])]
    )
    assert [r.verdict for r in results[0]] == ["correct", "incorrect", "incorrect", "correct"]
    assert [r.verdict for r in results[1]] == ["correct"]


def test_gold_is_wrapped_so_bare_strings_parse():
    assert gold_text("(1,2)") == "$(1,2)$"
    assert gold_text("$x$") == "$x$"
    assert gold_text("\\boxed{3}") == "\\boxed{3}"


def perturb(answer: str, rng: random.Random) -> str:
    """The reference answer with a number added inside the box."""
    return f"\\boxed{{{answer} + {rng.randint(1, 9)}}}"


MATH500 = EVALDATA / "derived_math500" / "math500.jsonl"


@pytest.mark.skipif(not MATH500.exists(), reason="../shared/evaldata is not present")
def test_math500_references_verify_against_their_own_answers(verifier):
    rows = [json.loads(line) for line in Path(MATH500).read_text().splitlines()]
    rng = random.Random(0)
    problems = [
        ProblemAnswers(row["answer"], None, [row["solution"], perturb(row["answer"], rng)])
        for row in rows
    ]
    results = verifier.verify(problems)
    own = [r[0].verdict for r in results]
    perturbed = [r[1].verdict for r in results]
    assert own.count("correct") >= 0.97 * len(rows), [
        (rows[i]["answer"], results[i][0]) for i, v in enumerate(own) if v != "correct"
    ][:10]
    assert perturbed.count("correct") <= 0.01 * len(rows)


def test_answers_with_the_same_final_box_are_checked_once(monkeypatch):
    from curate.verify import math as math_module

    calls: list[str] = []
    real = math_module.check_answer

    def counting(gold, reference, answer, timeout, fallbacks):
        calls.append(answer)
        return real(gold, reference, answer, timeout, fallbacks)

    monkeypatch.setattr(math_module, "check_answer", counting)
    answers = [
        "First try: x = 1/2, so \\boxed{0.5}",
        "Another route gives \\boxed{ 0.5 }",
        "\\boxed{0.25}",
        "I get \\boxed{0.25} too",
    ]
    checked = math_module.check_math("\\frac{1}{2}", None, answers)
    results = [r for r in checked if isinstance(r, Result)]
    assert [r.verdict for r in results] == ["correct", "correct", "incorrect", "incorrect"]
    assert len(calls) == 2
