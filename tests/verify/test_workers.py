import time

import pytest

from curate.errors import VerifyError
from curate.verify.base import ProblemAnswers, Result
from curate.verify.workers import KillablePool, start_order

KILLED = Result.unverifiable("timeout")
REFERENCE_KILLED = Result.unverifiable("gold_timeout")


@pytest.fixture
def pool():
    workers = KillablePool("tests.verify.hang_checks.check", workers=2, deadline_s=1.0)
    yield workers
    workers.close()


def verdicts(rows):
    return [[(r.verdict, r.reason) for r in row] for row in rows]


def test_a_hang_is_killed_and_the_rest_still_checked(pool):
    started = time.monotonic()
    rows = pool.map(
        [ProblemAnswers("a", None, ["a", "HANG", "b", "a"]), ProblemAnswers("b", None, ["b"])],
        KILLED,
        REFERENCE_KILLED,
    )
    assert verdicts(rows) == [
        [
            ("correct", None),
            ("unverifiable", "timeout"),
            ("incorrect", "mismatch"),
            ("correct", None),
        ],
        [("correct", None)],
    ]
    assert pool.killed == 1
    assert time.monotonic() - started < 10


def test_a_hanging_reference_marks_its_answers_only(pool):
    rows = pool.map(
        [ProblemAnswers("HANG", None, ["x", "y"]), ProblemAnswers("c", None, ["c"])],
        KILLED,
        REFERENCE_KILLED,
    )
    assert verdicts(rows) == [[("unverifiable", "gold_timeout")] * 2, [("correct", None)]]


def test_a_crash_is_reported_and_the_pool_recovers(pool):
    rows = pool.map([ProblemAnswers("a", None, ["CRASH", "a"])], KILLED, REFERENCE_KILLED)
    assert verdicts(rows) == [[("unverifiable", "verifier_crash"), ("correct", None)]]
    again = pool.map([ProblemAnswers("z", None, ["z"])], KILLED, REFERENCE_KILLED)
    assert verdicts(again) == [[("correct", None)]]


def test_a_worker_that_cannot_start_is_a_clear_error():
    broken = KillablePool("tests.verify.no_such_module.check", workers=1, deadline_s=1.0)
    with pytest.raises(VerifyError, match="failed to start"):
        broken.map([ProblemAnswers("a", None, ["a"])], KILLED, REFERENCE_KILLED)


def test_problems_start_dearest_first_and_results_keep_input_order(pool):
    problems = [ProblemAnswers(str(i), None, [str(i), "no"]) for i in range(6)]
    problems.append(ProblemAnswers("empty", None, []))
    cost = lambda problem: {"2": 5.0, "4": 9.0}.get(problem.reference or "", 1.0)  # noqa: E731
    assert start_order(problems, cost) == [4, 2, 0, 1, 3, 5]
    rows = pool.map(problems, KILLED, REFERENCE_KILLED, cost=cost)
    assert verdicts(rows) == [[("correct", None), ("incorrect", "mismatch")]] * 6 + [[]]
    assert [row[0].extracted for row in rows[:6]] == [str(i) for i in range(6)]
