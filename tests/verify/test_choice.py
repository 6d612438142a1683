import pytest

from curate.verify.base import ProblemAnswers
from curate.verify.choice import ChoiceVerifier, choice_letter


@pytest.mark.parametrize(
    "text, letter",
    [
        ("The answer is (B).", "B"),
        ("so the answer is B", "B"),
        ("Answer: C", "C"),
        ("After checking, I pick\n(D)", "D"),
        ("B) is the only option that works.\n\nB)", "B"),
        ("$\\boxed{A}$", "A"),
        ("\\boxed{\\text{(C)}}", "C"),
        ("\\boxed{E. 42}", "E"),
        ("I am not sure.", None),
        ("", None),
    ],
)
def test_letter_extraction(text, letter):
    assert choice_letter(text) == letter


def test_verdicts():
    verifier = ChoiceVerifier()
    results = verifier.verify(
        [ProblemAnswers("B", None, ["The answer is (B)", "Answer: C", "hmm"])]
    )[0]
    assert [(r.verdict, r.reason, r.extracted) for r in results] == [
        ("correct", None, "B"),
        ("incorrect", "mismatch", "C"),
        ("unverifiable", "no_answer", None),
    ]
    key_is_prose = verifier.verify([ProblemAnswers("forty two", None, ["(A)"])])[0][0]
    assert key_is_prose.reason == "gold_unparseable"
