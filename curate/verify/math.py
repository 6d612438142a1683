"""Math answers checked with math-verify, in worker processes that are killed when they hang.

math-verify's own timeouts use SIGALRM: they only work in a process's main thread and do
not stop every hang (Math-Verify issue #65). Checks therefore run in the main thread of
worker processes (so those timeouts fire) under a hard deadline enforced by the parent.
Per problem the gold answer is parsed once, and repeated final answers are checked once.
Integer powers too large to compute are refused before sympy sees them (magnitude.py).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from curate import registry
from curate.records import Verdict
from curate.verify.base import ProblemAnswers, Result, Verifier, final_answer_of
from curate.verify.magnitude import too_large
from curate.verify.workers import SLOW, KillablePool, default_workers

Fallback = Literal["latex", "expr"]
DEFAULT_FALLBACKS: tuple[Fallback, ...] = ("latex", "expr")


DELIMITED = re.compile(r"(?<!\\)\$|\\boxed|\\\(|\\\[")


def gold_text(reference: str) -> str:
    """Bare gold strings such as `(1,2)` or `x^2+1` parse to nothing unless wrapped; an
    escaped dollar (`\\$18.90`, a price) is not a delimiter."""
    text = reference.strip()
    return text if DELIMITED.search(text) else f"${text}$"


def squeeze(text: str) -> str:
    """Spacing removed where it carries no meaning (around symbols), kept between two words
    or numbers: `2 3` is not `23`."""
    text = re.sub(r"\s+", " ", text.strip().strip("$").strip())
    return re.sub(r" ?([^\w ]) ?", r"\1", text)


WORDS = re.compile(r"[A-Za-z][A-Za-z' -]*[A-Za-z]")
MATH_WORDS = {"pi", "infty", "inf", "oo", "infinity", "sqrt", "frac", "ln", "log", "sin", "cos"}
TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textit|mathrm|mbox|operatorname)\s*\{([^{}]*)\}")


def as_words(text: str) -> str | None:
    """The words a text answer says (`listen`, `\\text{no}`), lower case; None for math."""
    plain = TEXT_WRAPPER.sub(r"\1", text.strip().strip("$")).strip().rstrip(".").strip()
    if not WORDS.fullmatch(plain) or plain.lower() in MATH_WORDS:
        return None
    return " ".join(plain.lower().split())


INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
ENDING = 200  # characters at the end of an answer that tell answers apart for check_cost


def check_math(
    reference: str | None,
    metadata: str | None,
    answers: Sequence[str | None],
    timeout: int = 5,
    fallbacks: Sequence[Fallback] = DEFAULT_FALLBACKS,
) -> Iterator[Result | str | None]:
    """Yield None once the reference is ready, then one result per answer, and SLOW before
    each use of math-verify (workers.CheckFn).

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
        if result is None and gold is None and as_words(reference) is None:
            yield SLOW
            gold, problem = parse_gold(reference, timeout)
        if not ready:
            yield None
            ready = True
        result = result or problem
        if result is None:
            yield SLOW
            result = check_answer(gold or [], reference, key, timeout, fallbacks)
        seen[same] = result
        yield result
    if not ready:
        yield None


def answer_key(answer: str) -> str:
    """Answers with the same final answer get the same verdict, whatever reasoning precedes."""
    final = final_answer_of(answer)
    return answer if final is None else f"\\boxed{{{final.strip()}}}"


def quick_verdict(reference: str, answer: str) -> Result | None:
    """A verdict that needs no parsing, else None: no answer; an integer against an integer;
    a text gold (`listen`, `no`), compared as words: as symbols, `silent` would equal it."""
    if not answer:
        return Result.unverifiable("no_answer")
    final = final_answer_of(answer)
    gold = reference.strip()
    words = as_words(gold)
    if words is not None:
        if final is None:
            return None  # found by the fallback extraction, if at all
        same = as_words(final) == words
        return Result("correct" if same else "incorrect", None if same else "mismatch", final)
    if final is not None and INTEGER.fullmatch(gold) and INTEGER.fullmatch(final.strip()):
        same = whole_number(gold) == whole_number(final.strip())  # no int(): 5,000 digits
        return Result("correct" if same else "incorrect", None if same else "mismatch", final)
    return None


def whole_number(text: str) -> str:
    """An INTEGER's text as its value (it has no leading zeros): only -0 is written twice."""
    return "0" if text == "-0" else text


def check_cost(problem: ProblemAnswers) -> float:
    """A rough cost, from what the parent sees without extracting answers (the workers do
    that, in parallel): distinct answer endings, where final answers are, weighted by the
    reference's length (equations and long expressions are what make sympy slow); answers
    to an integer reference are mostly settled without math-verify."""
    reference = (problem.reference or "").strip()
    endings = {answer[-ENDING:] for answer in problem.answers if answer}
    weight = 1 if INTEGER.fullmatch(reference) else len(reference) + 10
    return len(endings) * weight


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
    from math_verify import parse
    from math_verify.errors import TimeoutException

    words = as_words(reference)
    if words is not None:
        return text_verdict(words, answer, timeout, fallbacks)
    boxed = final_answer_of(answer)
    if boxed is not None and not DELIMITED.search(reference) and same_text(boxed, reference):
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
    except TimeoutException:
        return Result.unverifiable("timeout", boxed)
    except Exception:  # a model's malformed LaTeX must become a verdict, not a crash
        return Result.unverifiable("parse_error", boxed)
    if not predicted:
        return Result.unverifiable("no_answer")
    extracted = next((p for p in predicted if isinstance(p, str)), boxed)
    failure = compare(gold, predicted, timeout)
    if failure is None:
        return Result("correct", None, extracted)
    return Result(*failure, extracted)


def text_verdict(words: str, answer: str, timeout: int, fallbacks: Sequence[Fallback]) -> Result:
    """A text gold against an answer with no final box: the words the fallback finds."""
    from math_verify import parse

    try:
        found = parse(answer, extraction_config=extraction(fallbacks), parsing_timeout=timeout)
    except Exception:  # math-verify raises many unrelated types on odd LaTeX
        found = []
    texts = [item for item in found if isinstance(item, str)] if fallbacks else []
    if not texts:
        return Result.unverifiable("no_answer")
    same = as_words(texts[-1]) == words
    return Result("correct" if same else "incorrect", None if same else "mismatch", texts[-1])


def compare(gold: list[Any], predicted: list[Any], timeout: int) -> tuple[Verdict, str] | None:
    """None when some gold item equals some predicted item (math-verify's rule), else
    (verdict, reason). When one pair cannot be compared at all (a clock time `12:00` parses
    to zoo), the pairs are judged one by one so that pair no longer sinks those that can."""
    from math_verify import verify
    from math_verify.errors import TimeoutException

    try:
        same = verify(gold, predicted, timeout_seconds=timeout, raise_on_error=True)
    except TimeoutException:
        return "unverifiable", "timeout"
    except Exception:  # sympy raises many types on odd expressions
        return compare_pairs(gold, predicted, timeout)
    return None if same else ("incorrect", "mismatch")


def compare_pairs(
    gold: list[Any], predicted: list[Any], timeout: int
) -> tuple[Verdict, str] | None:
    from math_verify import verify
    from math_verify.errors import TimeoutException

    timed_out = failed = 0
    for one_gold, one_predicted in itertools.product(gold, predicted):
        try:
            if verify([one_gold], [one_predicted], timeout_seconds=timeout, raise_on_error=True):
                return None
        except TimeoutException:
            timed_out += 1
        except Exception:  # sympy raises many types on odd expressions
            failed += 1
    if timed_out:  # the pair that ran out of time might have been the equal one
        return "unverifiable", "timeout"
    if failed == len(gold) * len(predicted):
        return "unverifiable", "parse_error"
    return "incorrect", "mismatch"


def same_text(answer: str, reference: str) -> bool:
    """The answer is written exactly as the gold (up to meaningless spacing)."""
    return squeeze(answer) == squeeze(reference)


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
            holds=True,
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
