import pytest

from curate.errors import VerifyError
from curate.verify.base import ProblemAnswers, Result
from curate.verify.workers import SLOW, KillablePool, run_task, start_order

KILLED = Result.unverifiable("timeout")
REFERENCE_KILLED = Result.unverifiable("gold_timeout")


@pytest.fixture(params=["each", "held"])
def pool(request):
    """A pool whose check sends each result as it comes, or one that announces its slow
    steps, so that its quick results are held and sent together."""
    held = request.param == "held"
    check = "announcing_check" if held else "check"
    workers = KillablePool(f"tests.verify.hang_checks.{check}", 2, 1.0, holds=held)
    yield workers
    workers.close()


def verdicts(rows):
    return [[(r.verdict, r.reason) for r in row] for row in rows]


def test_a_hang_is_killed_and_the_rest_still_checked(pool):
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
    assert pool.killed == 1  # the hang was killed, not waited out


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


class Outbox:
    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(message)


def results(*answers):
    return [Result("correct", None, answer) for answer in answers]


def test_held_results_are_sent_before_each_slow_step_and_at_the_end():
    a, b, c, d = results("a", "b", "c", "d")
    steps = [a, None, b, SLOW, c, d, SLOW, SLOW]
    outbox = Outbox()
    run_task(iter(steps), 7, outbox, holds=True)  # type: ignore[arg-type]
    assert outbox.sent == [(7, True, [a, b]), (7, True, [c, d])]
    outbox = Outbox()
    run_task(iter([None, a, b]), 8, outbox, holds=True)  # type: ignore[arg-type]
    assert outbox.sent == [(8, True, [a, b])]  # all quick: one message for the problem
    outbox = Outbox()
    run_task(iter([SLOW, None, a, b]), 9, outbox, holds=False)  # type: ignore[arg-type]
    assert outbox.sent == [(9, True, []), (9, True, [a]), (9, True, [b])]


def test_results_held_too_long_are_sent_without_waiting_for_a_slow_step(monkeypatch):
    """Each message puts the parent's deadline off: a long run of quick answers is sent in
    parts, not held past the deadline."""
    import curate.verify.workers as workers

    monkeypatch.setattr(workers, "HOLD_S", -1.0)  # every result has been held too long
    a, b = results("a", "b")
    outbox = Outbox()
    run_task(iter([None, a, b]), 3, outbox, holds=True)  # type: ignore[arg-type]
    assert outbox.sent == [(3, True, []), (3, True, [a]), (3, True, [b])]
