"""Code answers: the program runs against the problem's tests in the sandbox.

Test formats understood (the problem's `tests` column, JSON):
- {"inputs": [...], "outputs": [...]}: stdin / stdout pairs (APPS, TACO);
- the same with "fn_name": each input is an argument list for that function (APPS call tests);
- [{"input": ..., "output": ..., "testtype": "stdin" | "functional"}, ...] (LiveCodeBench),
  optionally as {"tests": [...], "fn_name": ...};
- {"test": "def check(candidate): ...", "entry_point": "f"}: a HumanEval check script.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from curate import registry
from curate.verify.base import ProblemAnswers, Result, Verifier
from curate.verify.programs import extract_code, is_body, program
from curate.verify.sandbox import Limits, Sandbox
from curate.verify.workers import default_workers


@dataclass(frozen=True)
class TestCase:
    kind: Literal["stdio", "call", "script"]
    input: str
    expected: Any
    fn_name: str | None = None


def parse_tests(raw: str | None) -> list[TestCase]:
    """Test cases from any supported format; ValueError when the JSON is not one of them."""
    if not raw:
        return []
    data = json.loads(raw)
    if isinstance(data, dict) and "test" in data and "entry_point" in data:
        return [TestCase("script", str(data["test"]), None, str(data["entry_point"]))]
    if isinstance(data, dict) and "test_list" in data:  # MBPP
        setup = str(data.get("test_setup_code") or "")
        return [TestCase("script", setup + "\n" + "\n".join(data["test_list"]), None)]
    if isinstance(data, list) and data and all(isinstance(case, str) for case in data):
        return [TestCase("script", "\n".join(data), None)]  # a list of assert lines
    fn_name = data.get("fn_name") if isinstance(data, dict) else None
    if isinstance(data, dict) and "inputs" in data:
        pairs = zip(data["inputs"], data["outputs"], strict=True)
        if fn_name:
            return [TestCase("call", json.dumps(i), o, fn_name) for i, o in pairs]
        return [TestCase("stdio", _text(i), _text(o)) for i, o in pairs]
    cases = data.get("tests", data) if isinstance(data, dict) else data
    if not isinstance(cases, list):
        raise ValueError("unknown test format")
    return [_listed_case(case, fn_name) for case in cases]


def entry_point(tests: list[TestCase]) -> str | None:
    """The function the tests call: named by the tests, or the first one an assert calls."""
    if tests[0].fn_name:
        return tests[0].fn_name
    called = re.search(r"assert\b[^\n]*?\b([A-Za-z_]\w*)\s*\(", tests[0].input)
    return called.group(1) if called and tests[0].kind == "script" else None


def _listed_case(case: dict[str, Any], fn_name: str | None) -> TestCase:
    if case.get("testtype") == "functional":
        args = [json.loads(line) for line in str(case["input"]).splitlines() if line.strip()]
        return TestCase("call", json.dumps(args), json.loads(case["output"]), fn_name)
    return TestCase("stdio", _text(case["input"]), _text(case["output"]))


def _text(value: Any) -> str:
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)


CALL_DRIVER = """

import json as _json, sys as _sys
_args = _json.loads(_sys.stdin.read())
_target = globals().get({name!r})
if _target is None and "Solution" in globals():
    _target = getattr(Solution(), {name!r})
_result = _target(*_args)
print(_json.dumps(_result))
"""


def outputs_match(actual: str, expected: str) -> bool:
    """Equal up to trailing whitespace, or token by token with floats compared loosely."""
    lines = [line.rstrip() for line in actual.rstrip().splitlines()]
    wanted = [line.rstrip() for line in expected.rstrip().splitlines()]
    if lines == wanted:
        return True
    got, want = actual.split(), expected.split()
    return len(got) == len(want) and all(_token_match(a, b) for a, b in zip(got, want, strict=True))


def _token_match(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-6)


def values_match(result: Any, expected: Any) -> bool:
    if result == expected or [result] == expected:  # APPS wraps expected values in a list
        return True
    if isinstance(result, float) and isinstance(expected, (int, float)):
        return math.isclose(result, expected, rel_tol=1e-6, abs_tol=1e-6)
    return False


JUDGE = (Path(__file__).parent / "judge.py").read_text(encoding="utf-8")
JUDGE_FAILURES = {"assertion": "wrong_answer", "runtime_error": "runtime_error"}


def judged(stdout: str, nonce: str) -> str | None:
    """The judge's verdict line ('pass' or 'fail WHY'), found by the nonce only it knows."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(nonce + " "):
            return line[len(nonce) + 1 :]
    return None


@registry.verifiers.register()
class CodeVerifier(Verifier):
    """Python programs run against the problem's tests in the sandbox (stdio, calls, checks)."""

    name = "code"
    domains = ("code",)

    reads_problem = True  # a body continues the prompt's code; the prompt's imports apply

    @classmethod
    def missing_answer(cls, completion: str, judged_reason: str | None = None) -> str | None:
        return None if extract_code(completion) or is_body(completion) else "no_code_block"

    def __init__(
        self,
        timeout_s: float = 5.0,
        workers: int | None = None,
        sandbox: Sandbox | None = None,
        **options: Any,
    ) -> None:
        super().__init__(timeout_s, workers)
        # the CPU budget decides a timeout, so a busy machine gives the same verdict; the wall
        # limit only catches a program that waits without computing
        budget = math.ceil(timeout_s)
        self.sandbox = sandbox or Sandbox(Limits(wall_s=3 * budget + 5, cpu_s=budget))

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}[{self.sandbox.isolation}]"

    def verify(self, problems: list[ProblemAnswers]) -> list[list[Result]]:
        jobs = [(p, answer) for p in problems for answer in p.answers]
        with ThreadPoolExecutor(self.workers or default_workers()) as pool:
            flat = list(pool.map(lambda job: self.check(*job), jobs))
        results, start = [], 0
        for problem in problems:
            results.append(flat[start : start + len(problem.answers)])
            start += len(problem.answers)
        return results

    def check(self, problem: ProblemAnswers, answer: str | None) -> Result:
        try:
            tests = parse_tests(problem.tests)
        except (ValueError, KeyError, TypeError):
            return Result.unverifiable("bad_tests")
        if not tests:
            return Result.unverifiable("no_tests")
        code = program(answer, problem.problem, entry_point(tests))
        if code is None:
            return Result.unverifiable("no_code")
        for number, test in enumerate(tests, start=1):
            failure = self.run_test(code, test)
            if failure is not None:
                return Result("incorrect", f"{failure} on test {number}", None)
        return Result("correct", None, None)

    def run_test(self, code: str, test: TestCase) -> str | None:
        """None when the test passes, else why it failed."""
        if test.kind == "script":
            return self.run_script(code, test)
        if test.kind == "call":
            outcome = self.sandbox.run_python(
                code + CALL_DRIVER.format(name=test.fn_name), test.input
            )
        else:
            outcome = self.sandbox.run_python(code, test.input)
        if outcome.timed_out:
            return "timeout"
        if outcome.returncode != 0:
            return "runtime_error"
        if test.kind == "call":
            try:
                value = json.loads(outcome.stdout.strip().splitlines()[-1])
            except (json.JSONDecodeError, IndexError):
                return "wrong_answer"
            return None if values_match(value, test.expected) else "wrong_answer"
        return None if outputs_match(outcome.stdout, str(test.expected)) else "wrong_answer"

    def run_script(self, code: str, test: TestCase) -> str | None:
        """A test script, run by the judge with the program in a process of its own: passing
        means the judge, not the program's exit status, says every assertion held."""
        nonce = secrets.token_hex(16)
        spec = {"nonce": nonce, "code": code, "test": test.input, "entry_point": test.fn_name}
        outcome = self.sandbox.run_python(JUDGE, json.dumps(spec))
        verdict = judged(outcome.stdout, nonce)
        if verdict == "pass":
            return None
        if verdict is None:
            return "timeout" if outcome.timed_out else "runtime_error"
        why = verdict.removeprefix("fail ").split(" ")[0]
        return JUDGE_FAILURES.get(why, "runtime_error")
