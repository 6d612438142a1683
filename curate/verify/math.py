"""Math answers checked with math-verify, in worker processes that are killed when they hang.

math-verify's own timeouts use SIGALRM: they only work in a process's main thread and do
not stop every hang (Math-Verify issue #65). Checks therefore run in the main thread of
worker processes (so those timeouts fire) under a hard deadline enforced by the parent.
Per problem the gold answer is parsed once, and repeated final answers are checked once.
Integer powers too large to compute are refused before sympy sees them (magnitude.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from curate import registry
from curate.verify.base import ProblemAnswers, Result, Verifier, last_boxed
from curate.verify.magnitude import too_large
from curate.verify.workers import KillablePool, default_workers

Fallback = Literal["latex", "expr"]
DEFAULT_FALLBACKS: tuple[Fallback, ...] = ("latex", "expr")


def gold_text(reference: str) -> str:
    """Bare gold strings such as `(1,2)` or `x^2+1` parse to nothing unless wrapped."""
    text = reference.strip()
    if "$" in text or "\\boxed" in text or "\\(" in text or "\\[" in text:
        return text
    return f"${text}$"


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text).strip("$")


INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")


def check_math(
    reference: str | None,
    metadata: str | None,
    answers: Sequence[str | None],
    timeout: int = 5,
    fallbacks: Sequence[Fallback] = DEFAULT_FALLBACKS,
) -> Iterator[Result | None]:
    """Yield None once the reference is ready, then one result per answer (workers.CheckFn).

    The gold is parsed only when an answer needs math-verify: integer answers against an
    integer reference, and empty answers, are settled without it.
    """
    if reference is None or not reference.strip():
        yield None
        yield from (Result.unverifiable("no_reference") for _ in answers)
        return
    gold: list[Any] | None = None
    problem: Result | None = None
    ready = False
    seen: dict[str, Result] = {}
    for answer in answers:
        key = answer.strip() if answer else ""
        same = answer_key(key)
        result = seen.get(same) or quick_verdict(reference, key)
        if result is None and gold is None:
            gold, problem = parse_gold(reference, timeout)
        if not ready:
            yield None
            ready = True
        if result is None:
            result = problem or check_answer(gold or [], reference, key, timeout, fallbacks)
        seen[same] = result
        yield result
    if not ready:
        yield None


def answer_key(answer: str) -> str:
    """Answers with the same final box get the same verdict, whatever reasoning precedes it."""
    boxed = last_boxed(answer)
    return answer if boxed is None else f"\\boxed{{{boxed.strip()}}}"


def quick_verdict(reference: str, answer: str) -> Result | None:
    """A verdict that needs no parsing (no answer; integer against integer), else None."""
    if not answer:
        return Result.unverifiable("no_answer")
    boxed = last_boxed(answer)
    gold = reference.strip()
    if boxed is not None and INTEGER.fullmatch(gold) and INTEGER.fullmatch(boxed.strip()):
        same = int(gold) == int(boxed)
        return Result("correct" if same else "incorrect", None if same else "mismatch", boxed)
    return None


def check_cost(problem: ProblemAnswers) -> float:
    """A rough cost: distinct answers that need math-verify, weighted by the reference's
    length (equations and long expressions are what make sympy slow)."""
    reference = problem.reference or ""
    keys = {answer_key(answer.strip()) for answer in problem.answers if answer}
    slow = [key for key in keys if quick_verdict(reference, key) is None]
    return len(slow) * (len(reference) + 10)


def parse_gold(reference: str | None, timeout: int) -> tuple[list[Any], Result | None]:
    """The parsed gold, or the verdict every answer gets when there is none."""
    from math_verify import parse
    from math_verify.errors import TimeoutException

    if reference is None or not reference.strip():
        return [], Result.unverifiable("no_reference")
    if too_large(reference):
        return [], Result.unverifiable("gold_too_large")
    try:
        gold = parse(gold_text(reference), parsing_timeout=timeout, raise_on_error=True)
    except TimeoutException:
        return [], Result.unverifiable("gold_timeout")
    except Exception:  # math-verify raises many unrelated types on odd LaTeX
        return [], Result.unverifiable("gold_unparseable")
    return gold, None if gold else Result.unverifiable("gold_unparseable")


def check_answer(
    gold: list[Any], reference: str, answer: str, timeout: int, fallbacks: Sequence[Fallback]
) -> Result:
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    boxed = last_boxed(answer)
    if boxed is not None and "$" not in reference and squeeze(boxed) == squeeze(reference):
        return Result("correct", None, boxed)  # the gold's own text: parses as the gold did
    if too_large(answer if boxed is None else boxed) and not is_collection(gold):
        return Result.unverifiable("too_large", boxed)  # sympy would try to compute it
    try:
        if boxed is not None:
            predicted = parse(f"\\boxed{{{boxed}}}", parsing_timeout=timeout, raise_on_error=True)
        elif fallbacks:
            predicted = parse(
                answer,
                extraction_config=extraction(fallbacks),
                parsing_timeout=timeout,
                raise_on_error=True,
            )
        else:
            predicted = []
        if not predicted:
            return Result.unverifiable("no_answer")
        same = verify(gold, predicted, timeout_seconds=timeout, raise_on_error=True)
    except TimeoutException:
        return Result.unverifiable("timeout", boxed)
    except Exception:  # a model's malformed LaTeX must become a verdict, not a crash
        return Result.unverifiable("parse_error", boxed)
    extracted = next((p for p in predicted if isinstance(p, str)), boxed)
    return Result("correct" if same else "incorrect", None if same else "mismatch", extracted)


def is_collection(gold: list[Any]) -> bool:
    """Tuples, intervals and sets are compared by shape and membership first, which often
    settles a huge number against them without computing it; the guard leaves those
    comparisons to math-verify (and to the timeout)."""
    from sympy import Set, Tuple

    return any(isinstance(item, (Set, Tuple)) for item in gold)


def extraction(fallbacks: Sequence[Fallback]) -> list[Any]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    configs = {"latex": LatexExtractionConfig, "expr": ExprExtractionConfig}
    return [configs[name]() for name in fallbacks]


@registry.verifiers.register("math")
class MathVerifier(Verifier):
    """Math answers, checked symbolically with math-verify in killable worker processes."""

    name = "math"
    version = "2"
    check_path = "curate.verify.math.check_math"

    def __init__(
        self,
        timeout_s: float = 5.0,
        workers: int | None = None,
        fallbacks: Sequence[Fallback] = DEFAULT_FALLBACKS,
        **options: Any,
    ) -> None:
        super().__init__(timeout_s, workers)
        timeout = max(1, round(timeout_s))
        self.pool = KillablePool(
            self.check_path,
            workers or default_workers(),
            deadline_s=3 * timeout + 2,  # parse + verify, each under math-verify's own limit
            check_args={"timeout": timeout, "fallbacks": tuple(fallbacks)},
        )

    def verify(self, problems: list[ProblemAnswers]) -> list[list[Result]]:
        return self.pool.map(
            problems,
            Result.unverifiable("timeout"),
            Result.unverifiable("gold_timeout"),
            cost=check_cost,
        )

    def close(self) -> None:
        self.pool.close()
