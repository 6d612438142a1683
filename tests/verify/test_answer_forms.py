"""Verdicts on the shapes real model outputs take: reasoning delimiters, answer tags, golds in
words, units and equivalent forms, cut-short extractions, empty boxes (issue 25)."""

from __future__ import annotations

import pytest

from curate.answers import AnswerFormat, final_answer_of, final_text_answer, split_reasoning
from curate.verify.base import ProblemAnswers
from curate.verify.magnitude import too_large
from curate.verify.math import MathVerifier


@pytest.fixture(scope="module")
def math_verifier():
    verifier = MathVerifier(timeout_s=5, workers=2)
    yield verifier
    verifier.close()


def judge(verifier: MathVerifier, cases: list[tuple[str, str]]) -> list[tuple[str, str | None]]:
    results = verifier.verify([ProblemAnswers(gold, None, [answer]) for gold, answer in cases])
    return [(r[0].verdict, r[0].reason) for r in results]


SAME = [
    ("p-q", "\\boxed{p - q}"),
    ("a-b", "\\boxed{a - b}"),
    ("x - y", "\\boxed{x-y}"),
    ("12", "\\boxed{12^{\\mathrm{th}} \\text{ grade}}"),
    ("3", "\\boxed{3^{rd}}"),
    ("15000", "\\boxed{15,000 \\, \\text{kcal}}"),
    ("1.69", "\\boxed{1.69 Å}"),
    ("25", "\\boxed{25\\text{ cm}^2}"),
    ("125", "\\boxed{125\\textnormal{ miles}}"),
    ("30", "\\boxed{30^\\circ}"),
    ("32349", "\\boxed{32,\\! 349}"),
    ("0.00001", "\\boxed{1e-5}"),
    ("2500", "\\boxed{2.5E3}"),
    ("\\frac{37m}{4}", "\\boxed{\\frac{37}{4}m}"),
    ("\\frac{3}{2}", "\\boxed{1 1/2}"),
    ("-\\frac{7}{3}", "\\boxed{-2 \\frac{1}{3}}"),
    ("1+2i", "\\boxed{i(2-i)}"),
    ("x₁", "\\boxed{x₁}"),
    ("\\text{Monday}", "\\boxed{\\textbf{Monday}}"),
    ("7", "The final answer is 7"),
]


def test_equivalent_forms_are_correct(math_verifier):
    assert judge(math_verifier, SAME) == [("correct", None)] * len(SAME)


DIFFERENT = [
    ("\\lambda_{\\text{red}}/\\sqrt{2}", "\\boxed{\\lambda_{\\text{blue}}}"),  # cut at \lambda_{
    ("\\lambda_{\\text{red}}", "\\boxed{\\lambda_{\\text{blue}}}"),
    ("5", "\\boxed{5x}"),  # a variable is not a unit
    ("5", "\\boxed{5 \\text{ (or 6)}}"),
    ("5", "\\boxed{5 \\lor 6}"),
    ("2", "\\boxed{1 \\vee 2}"),
    ("1", "\\boxed{1 \\vee 2 \\vee 3}"),
    ("12", "\\boxed{1,2}"),  # a list is not a number with a separator
    ("1234", "\\boxed{1, 234}"),
    ("\\frac{1}{2}", "\\boxed{1 1/2}"),
    ("i", "\\boxed{-1}"),
    ("\\text{Monday}", "\\boxed{\\text{Tuesday}}"),
    ("\\text{yes}", "\\boxed{no}"),
    ("3", "\\boxed{}"),
    ("x^2", "\\boxed{ }"),
]


def test_different_answers_and_hedges_are_incorrect(math_verifier):
    verdicts = judge(math_verifier, DIFFERENT)
    assert [v for v, _ in verdicts] == ["incorrect"] * len(DIFFERENT), verdicts
    assert verdicts[-2:] == [("incorrect", "empty_answer")] * 2
    assert verdicts[4][1] == verdicts[5][1] == "several_answers"


TEXT_GOLDS = [
    ("forty two", "\\boxed{42}"),
    ("Answer is forty two.", "Answer is forty two."),
    ("\\text{not a rational number}", "\\boxed{\\text{irrational}}"),
    ("The sum is always even", "\\boxed{odd}"),
    ("The limit does not exist because the two sides differ", "\\boxed{0}"),
    ("(2, 6), (2^k - 1, 2), (1, n) \\text{ for any } n \\ge 1", "\\boxed{1}"),
    ("x = 2 \\text{ for every prime } p", "\\boxed{2}"),
    ("\\text{" + "a long explanation of why the answer holds " * 8 + "}", "\\boxed{7}"),
]


def test_golds_no_rule_can_compare_are_unverifiable_never_incorrect(math_verifier):
    verdicts = judge(math_verifier, TEXT_GOLDS)
    assert verdicts == [("unverifiable", "gold_is_text")] * len(TEXT_GOLDS)


def test_qualified_gold_written_the_same_way_is_correct(math_verifier):
    gold = "(1, n) \\text{ for any } n \\ge 1"
    assert judge(math_verifier, [(gold, f"\\boxed{{{gold}}}")]) == [("correct", None)]


def test_unicode_digits_never_crash_the_magnitude_guard(math_verifier):
    assert not too_large("x₁^₂ + 2^{₁₀}")
    assert too_large("9^{9^{9}}")
    verdicts = judge(math_verifier, [("x₁^2", "\\boxed{x₁^₂}"), ("2", "\\boxed{²}")])
    assert all(reason != "verifier_crash" for _, reason in verdicts)


SKY_T1 = (
    "<|begin_of_thought|>\nFirst try: \\boxed{0}. No wait, \\frac{9}{2} \\neq 1...\n"
    "<|end_of_thought|>\n\n<|begin_of_solution|>\nSo the answer is \\boxed{3}.\n"
    "<|end_of_solution|>"
)
DELIMITED = [
    ("<think>\\boxed{0}</think>\\boxed{3}", "\\boxed{3}"),
    (SKY_T1, "So the answer is \\boxed{3}."),
    ("<thinking>\\boxed{0}</thinking> Final: \\boxed{3}", "Final: \\boxed{3}"),
    ("<reasoning>\\boxed{0}</reasoning>\\boxed{3}", "\\boxed{3}"),
    ("◁think▷\\boxed{0}◁/think▷\\boxed{3}", "\\boxed{3}"),
    ("[THINK]\\boxed{0}[/THINK]\\boxed{3}", "\\boxed{3}"),
    ("<seed:think>\\boxed{0}</seed:think>\\boxed{3}", "\\boxed{3}"),
    ("only closed \\boxed{0}</think> \\boxed{3}", "\\boxed{3}"),
    ("<think>never closed \\boxed{3}", ""),
]


@pytest.mark.parametrize(("trace", "solution"), DELIMITED)
def test_reasoning_delimiters_of_open_models(trace: str, solution: str):
    assert split_reasoning(trace).solution == solution


def test_an_answer_is_never_taken_from_the_reasoning(math_verifier):
    from curate.verify.dispatch import Dispatcher, Item

    dispatcher = Dispatcher("math", workers=1)
    try:
        judged = dispatcher.judge([Item(trace, "3") for trace, _ in DELIMITED])
    finally:
        dispatcher.close()
    verdicts = [result.verdict for result, _ in judged]
    assert verdicts[:-1] == ["correct"] * (len(DELIMITED) - 1)
    assert verdicts[-1] == "unverifiable"  # cut off inside the reasoning: no answer
    wrong = dispatcher_answers("<|begin_of_thought|>\\boxed{3}<|end_of_thought|>\\boxed{0}")
    assert wrong == "\\boxed{0}"


def dispatcher_answers(text: str) -> str | None:
    return AnswerFormat().answer_text(text)


def test_delimiters_and_answer_tags_are_configurable():
    custom = AnswerFormat(think_tags=(("<REASONING_START>", "</REASONING_END>"),), answer_tags=())
    text = "<REASONING_START>\\boxed{1}</REASONING_END> <answer>2</answer> \\boxed{3}"
    assert custom.answer_text(text).split() == ["2", "\\boxed{3}"]  # tags off: plain text
    assert AnswerFormat().answer_text("<think>x</think><answer>\n1 2\n3 4\n</answer>") == (
        "<answer>1 2\n3 4</answer>"
    )
    other = AnswerFormat(answer_tags=(("[ANS]", "[/ANS]"),))
    assert other.answer_text("[ANS]7[/ANS]") == "<answer>7</answer>"
    assert AnswerFormat().answer_text("<answer></answer>") == "\\boxed{}"  # an empty answer


def test_answer_tags_and_closing_blocks_in_plain_text_answers():
    assert final_answer_of("<answer>\\boxed{5}</answer>") == "5"
    assert final_answer_of("<answer>5</answer>") == "5"
    assert final_answer_of("<answer>I think that the answer here is 5 after all</answer>") is None
    assert final_text_answer("<answer>Move 1\nMove 2</answer>") == "Move 1\nMove 2"
    assert final_text_answer("work\n\n1 2 3\n4 5 6\n7 8 9") == "1 2 3\n4 5 6\n7 8 9"
    assert final_text_answer("I think so.\nThe total is 12") == "The total is 12"
    assert final_text_answer("so the answer is: 42.") == "42"


def test_the_file_command_reads_delimiters_from_the_recipe_keys(tmp_path):
    """`curate verify` on a file of whole traces: Sky-T1 delimiters understood by default,
    other delimiters named with --set verify.think_tags."""
    import json

    from typer.testing import CliRunner

    from curate.cli import add_stage_commands, app

    rows = [
        {"problem": "p", "reference": "3", "completion": SKY_T1},
        {"problem": "q", "reference": "3", "completion": "<r>\\boxed{3}</r> I stop here."},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    add_stage_commands()

    def verdicts(*extra: str) -> list[str]:
        out = tmp_path / "out.jsonl"
        result = CliRunner().invoke(app, ["verify", "--in", str(source), "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
        return [json.loads(line)["verdict"] for line in out.read_text().splitlines()]

    assert verdicts() == ["correct", "correct"]
    custom = verdicts("--set", 'verify.think_tags=[["<r>", "</r>"]]')
    assert custom == ["correct", "unverifiable"]  # the box was inside the reasoning
