import gzip
import json

import pytest

from curate.verify.base import ProblemAnswers
from curate.verify.code import CodeVerifier, extract_code, outputs_match, parse_tests
from tests.conftest import EVALDATA


@pytest.fixture(scope="module")
def verifier():
    return CodeVerifier(timeout_s=3, workers=2)


def judge(verifier, tests, answers):
    problem = ProblemAnswers(None, None, answers, json.dumps(tests))
    return [(r.verdict, r.reason) for r in verifier.verify([problem])[0]]


def fenced(code: str) -> str:
    return f"Here is my solution.\n\n```python\n{code}\n```\n"


def test_stdin_stdout_tests(verifier):
    tests = {"inputs": ["1 2\n", "10 20\n"], "outputs": ["3\n", "30\n"]}
    right = fenced("a, b = map(int, input().split())\nprint(a + b)")
    wrong = fenced("a, b = map(int, input().split())\nprint(a * b)")
    crash = fenced("raise SystemExit(1)")
    slow = fenced("while True:\n    pass")
    assert judge(verifier, tests, [right, wrong, crash, slow, "no code here"]) == [
        ("correct", None),
        ("incorrect", "wrong_answer on test 1"),
        ("incorrect", "runtime_error on test 1"),
        ("incorrect", "timeout on test 1"),
        ("unverifiable", "no_code"),
    ]


def test_function_call_tests_apps_and_livecodebench(verifier):
    apps = {"fn_name": "add", "inputs": [[1, 2], [5, 5]], "outputs": [[3], [10]]}
    code = fenced("def add(a, b):\n    return a + b")
    assert judge(verifier, apps, [code]) == [("correct", None)]
    lcb = {
        "fn_name": "maxOf",
        "tests": [
            {"input": "[1, 5, 2]", "output": "5", "testtype": "functional"},
            {"input": "[7]", "output": "7", "testtype": "functional"},
        ],
    }
    leetcode = fenced("class Solution:\n    def maxOf(self, nums):\n        return max(nums)")
    assert judge(verifier, lcb, [leetcode]) == [("correct", None)]
    stdin_style = [{"input": "3\n", "output": "9\n", "testtype": "stdin"}]
    assert judge(verifier, stdin_style, [fenced("n = int(input())\nprint(n * n)")]) == [
        ("correct", None)
    ]


def test_humaneval_style_check_script(verifier):
    tests = {
        "test": "def check(candidate):\n    assert candidate(2) == 4\n",
        "entry_point": "double",
    }
    assert judge(
        verifier,
        tests,
        [fenced("def double(x):\n    return 2 * x"), fenced("def double(x):\n    return x + 1")],
    ) == [("correct", None), ("incorrect", "wrong_answer on test 1")]


def test_missing_or_bad_tests(verifier):
    answer = fenced("print(1)")
    assert verifier.verify([ProblemAnswers(None, None, [answer], None)])[0][0].reason == "no_tests"
    assert verifier.verify([ProblemAnswers(None, None, [answer], "{not json")])[0][0].reason == (
        "bad_tests"
    )


def test_output_comparison_is_tolerant():
    assert outputs_match("3  \n\n", "3")
    assert outputs_match("0.3333333333\n", "0.333333")
    assert outputs_match("1 2\n3", "1 2 \n3\n")
    assert not outputs_match("4", "3")
    assert not outputs_match("0.34", "0.333333")


def test_code_extraction():
    assert extract_code("```py\nprint(1)\n```") == "print(1)\n"
    assert extract_code("```python\na=1\n```\ntext\n```python\nb=2\n```") == "b=2\n"
    assert extract_code("def f():\n    return 1") == "def f():\n    return 1"
    assert extract_code("The answer is 42.") is None


def test_label_names_the_isolation(verifier):
    assert verifier.label.startswith("code@1[") and verifier.sandbox.isolation in verifier.label


HUMANEVAL = EVALDATA / "humaneval_openai" / "HumanEval.jsonl.gz"
EXIT_TRICKS = [
    "import sys\nsys.exit(0)\n",
    "import os\nos._exit(0)\n",
    "raise SystemExit\n",
    "import atexit, os\natexit.register(os._exit, 0)\n",
]


@pytest.mark.skipif(not HUMANEVAL.exists(), reason="../shared/evaldata is not present")
def test_humaneval_canonical_solutions_pass_and_stubs_fail(verifier):
    with gzip.open(HUMANEVAL, "rt") as handle:
        rows = [json.loads(line) for line in handle][:20]
    problems = []
    for row in rows:
        tests = json.dumps({"test": row["test"], "entry_point": row["entry_point"]})
        solution = fenced(row["prompt"] + row["canonical_solution"])
        stub = row["prompt"] + "    return None\n"
        tricks = [fenced(stub + trick) for trick in EXIT_TRICKS]
        problems.append(ProblemAnswers(None, None, [solution, fenced(stub), *tricks], tests))
    results = verifier.verify(problems)
    assert [r[0].verdict for r in results] == ["correct"] * 20
    assert [r[1].verdict for r in results] == ["incorrect"] * 20
    for position in range(2, 2 + len(EXIT_TRICKS)):  # a wrong body that exits 0 still fails
        assert [r[position].verdict for r in results] == ["incorrect"] * 20


def test_parse_tests_formats():
    assert parse_tests(json.dumps({"inputs": ["1"], "outputs": ["2"]}))[0].kind == "stdio"
    assert parse_tests(json.dumps({"inputs": [[1]], "outputs": [2], "fn_name": "f"}))[0].kind == (
        "call"
    )
    assert parse_tests(None) == []


PROMPT = '''from typing import List


def helper(x: int) -> int:
    return x * 2


def doubled(items: List[int]) -> List[int]:
    """Every item doubled."""
'''
DOUBLED_TESTS = {
    "test": "def check(candidate):\n    assert candidate([1, 2]) == [2, 4]\n",
    "entry_point": "doubled",
}


def judge_with_prompt(verifier, answers, prompt=PROMPT, tests=DOUBLED_TESTS):
    problem = ProblemAnswers(None, None, answers, json.dumps(tests), prompt)
    return [(r.verdict, r.reason) for r in verifier.verify([problem])[0]]


def test_code_as_harnesses_write_it_runs_as_they_run_it(verifier):
    """A body continuing the prompt (a line starting with import included), a fenced body, a
    whole function using the prompt's imports and helpers, helpers in a fence of their own."""
    answers = [
        "    import math\n    return [helper(x) for x in items]\n",
        "    return [helper(x) for x in items]",
        fenced("    return [helper(x) for x in items]"),
        "def doubled(items: List[int]) -> List[int]:\n    return [helper(x) for x in items]\n",
        fenced("def twice(x):\n    return 2 * x\n\nprint(twice(3))")
        + "\nThen:\n"
        + fenced("def doubled(items):\n    return [twice(x) for x in items]"),
    ]
    assert judge_with_prompt(verifier, answers) == [("correct", None)] * len(answers)


def test_a_wrong_body_is_incorrect_and_a_body_without_its_prompt_is_no_code(verifier):
    wrong = judge_with_prompt(verifier, ["    return items\n", "    import os\n    os._exit(0)\n"])
    assert [verdict for verdict, _ in wrong] == ["incorrect", "incorrect"]
    alone = judge_with_prompt(verifier, ["    return [2 * x for x in items]\n"], prompt=None)
    assert alone == [("unverifiable", "no_code")]


def test_mbpp_asserts_name_the_function_a_body_continues(verifier):
    tests = {"test_list": ["assert doubled([3]) == [6]"]}
    assert judge_with_prompt(verifier, ["    return [2 * x for x in items]\n"], tests=tests) == [
        ("correct", None)
    ]


@pytest.mark.skipif(not HUMANEVAL.exists(), reason="../shared/evaldata is not present")
def test_humaneval_solutions_in_every_form_a_sample_file_holds(verifier):
    """HumanEval's own canonical solutions as sample files hold them: the body alone, the body
    fenced, the whole program without the prompt's imports; all pass as its harness says."""
    with gzip.open(HUMANEVAL, "rt") as handle:
        rows = [json.loads(line) for line in handle][:40]
    problems = []
    for row in rows:
        tests = json.dumps({"test": row["test"], "entry_point": row["entry_point"]})
        body = row["canonical_solution"]
        whole = row["prompt"] + body
        bare = "\n".join(
            line for line in whole.splitlines() if not line.startswith(("import ", "from "))
        )
        answers = [body, fenced(body), bare]
        problems.append(ProblemAnswers(None, None, answers, tests, row["prompt"]))
    results = verifier.verify(problems)
    verdicts = [[r.verdict for r in per_problem] for per_problem in results]
    assert verdicts == [["correct"] * 3] * 40
