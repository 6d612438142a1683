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
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from curate import registry
from curate.answers import AnswerFormat, final_answer_of, stated_answer
from curate.records import Verdict
from curate.verify.base import ProblemAnswers, Result, Verifier
from curate.verify.budget import cpu_limit
from curate.verify.forms import (
    PHRASE_WORDS,
    answer_form,
    as_words,
    gold_form,
    has_text,
    words_verdict,
    written_powers,
)
from curate.verify.magnitude import too_large
from curate.verify.scale import differ_at_scale
from curate.verify.statement import unstated, without_invented
from curate.verify.workers import SLOW, KillablePool, default_workers

Fallback = Literal["latex", "expr"]
DEFAULT_FALLBACKS: tuple[Fallback, ...] = ("latex", "expr")


DELIMITED = re.compile(r"(?<!\\)\$|\\boxed|\\\(|\\\[")


def gold_text(reference: str) -> str:
    """Bare gold strings such as `(1,2)` or `x^2+1` parse to nothing unless wrapped; an
    escaped dollar (`\\$18.90`, a price) is not a delimiter."""
    text = reference.strip()
    return text if DELIMITED.search(text) else f"${gold_form(text)}$"


def squeeze(text: str) -> str:
    """Spacing removed where it carries no meaning (around symbols), kept between two words
    or numbers: `2 3` is not `23`."""
    text = re.sub(r"\s+", " ", text.strip().strip("$").strip())
    return re.sub(r" ?([^\w ]) ?", r"\1", text)


INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
ENDING = 200  # characters at the end of an answer that tell answers apart for check_cost
HEDGE = re.compile(r"\\(?:lor|vee)\b|\\text\{\s*\(?\s*(?:or|and/or)\b")


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
        key = without_invented(answer.strip()) if answer else ""
        same = answer_key(key)
        result = seen.get(same) or quick_verdict(reference, key)
        if result is None and gold is None and read_gold(reference).kind == "math":
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


OUTER = re.compile(r"\$\$(.+)\$\$|\$(.+)\$|\\\((.+)\\\)|\\\[(.+)\\\]", re.DOTALL)


@dataclass(frozen=True)
class Gold:
    """What the checks need to know of a reference, worked out once per reference."""

    text: str  # the reference, stripped
    core: str  # its own answer, for telling its kind (math-verify still parses `text`)
    kind: str  # words (`listen`), sentence (no rule compares it), qualified (math with words
    # in it: `(1, n) \\text{ for any } n`) or math
    words: str | None  # what a gold in words says


@lru_cache(maxsize=1024)
def read_gold(reference: str) -> Gold:
    text = reference.strip()
    core, written_as_math = gold_answer(text)
    words = None if DELIMITED.search(core) else as_words(core)
    if DELIMITED.search(core):
        kind = "math"  # a worked solution: math-verify finds its answer
    elif words is not None:
        sentence = len(words.split()) > PHRASE_WORDS and not written_as_math
        kind = "sentence" if sentence else "words"
    else:
        kind = "qualified" if has_text(core) else "math"
    return Gold(text, core, kind, words)


def gold_answer(text: str) -> tuple[str, bool]:
    """The gold's own answer and whether it was written as math (boxed or between dollars)."""
    boxed = final_answer_of(text)
    if boxed is not None:
        return boxed.strip(), True
    outer = OUTER.fullmatch(text)
    if outer is not None:
        return next(g for g in outer.groups() if g is not None).strip(), True
    spans = re.findall(r"(?<!\\)\$([^$]+)\$", text)
    return (spans[-1].strip(), True) if spans else (text, False)  # "$125$ miles": 125


def quick_verdict(reference: str, answer: str) -> Result | None:
    """A verdict that needs no parsing, else None: no answer; an empty box (incorrect: a
    policy must not learn that boxing nothing is skipped); the gold's own text; a gold in
    words (compared as words: as symbols, `silent` would equal `listen`) or qualified by
    words; an integer against an integer."""
    if not answer:
        return Result.unverifiable("no_answer")
    final = final_answer_of(answer)
    if final is not None and not final.strip():
        return Result("incorrect", "empty_answer", "")
    gold = read_gold(reference)
    if gold.kind == "sentence":
        return Result.unverifiable("gold_is_text", final)
    if gold.kind == "words":
        return None if final is None else words_result(gold, final)  # else: the fallbacks
    if same_text(answer if final is None else final, gold.text):
        return Result("correct", None, final)  # the gold's own text, even where none parses
    if gold.kind == "qualified":
        return Result.unverifiable("gold_is_text", final)
    form = answer_form(final, gold.core) if final is not None else ""
    if INTEGER.fullmatch(gold.text) and INTEGER.fullmatch(form):
        same = whole_number(gold.text) == whole_number(form)  # no int(): 5,000 digits
        return Result("correct" if same else "incorrect", None if same else "mismatch", final)
    return None


def words_result(gold: Gold, final: str) -> Result:
    assert gold.words is not None
    verdict, reason = words_verdict(gold.words, final)
    return Result(verdict, reason, final)


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
        with cpu_limit(timeout):
            gold = parse(
                gold_text(reference),
                extraction(("latex", "expr")),
                parsing_timeout=None,
                raise_on_error=True,
            )
    except TimeoutException:
        return [], Result.unverifiable("gold_timeout")
    except Exception:  # math-verify raises many unrelated types on odd LaTeX
        return [], Result.unverifiable("gold_unparseable")
    return gold, None if gold else Result.unverifiable("gold_unparseable")


def check_answer(
    gold: list[Any], reference: str, answer: str, timeout: int, fallbacks: Sequence[Fallback]
) -> Result:
    boxed = final_answer_of(answer)
    if boxed is None and (why := unstated(answer)) is not None:
        return not_stated(why)
    if read_gold(reference).kind == "words":
        return text_verdict(reference, answer, timeout, fallbacks)
    if boxed is not None and HEDGE.search(boxed) and not HEDGE.search(reference):
        return Result("incorrect", "several_answers", boxed)  # 1 \lor 2: a hedge
    if boxed is None and hedged_statement(answer, reference):
        return Result("incorrect", "several_answers", None)  # "The answer is 5 or 6."
    if false_equation(boxed if boxed is not None else unboxed_statement(answer)):
        return Result("incorrect", "mismatch", boxed)  # \boxed{6 = 5} states nothing true
    if too_large(answer if boxed is None else boxed) and not is_collection(gold):
        return Result.unverifiable("too_large", boxed)  # sympy would try to compute it
    predicted = parse_answer(reference, answer, boxed, timeout, fallbacks)
    if isinstance(predicted, Result):
        return predicted
    extracted = next((p for p in predicted if isinstance(p, str)), boxed)
    failure = compare(gold, predicted, timeout)
    complex_forms = imaginary(gold, predicted) if failure is not None else None
    if complex_forms is not None:
        failure = compare(*complex_forms, timeout)
    if failure is None and differ_at_scale(gold, predicted):
        failure = ("incorrect", "mismatch")  # 2.91e-19 for 2.88e-19: equal at 6 decimals only
    if failure is None:
        return Result("correct", None, extracted)
    return Result(*failure, extracted)


def not_stated(why: str) -> Result:
    """The verdict of a text that commits to no single answer: a refusal is no answer
    (unverifiable); an answer under conditions offers several (incorrect)."""
    if why == "conditional":
        return Result("incorrect", "several_answers", None)
    return Result.unverifiable(why)


STATEMENT = re.compile(r"answer\s*(?:is|:)\s*:?\s*([^\n]{1,120}?)\s*(?:\.(?:\s|$)|\n|$)", re.I)
VALUE = r"-?\$?\d+(?:\.\d+)?\$?"
SEVERAL = re.compile(
    rf"{VALUE}\s*(?:,\s+|\s+(?:or|and|and/or)\s+|\s*\\(?:lor|vee)\s*){VALUE}"
    r"|\$\s*-?\d+(?:\.\d+)?\s*\$\s*[/|;]\s*\$\s*-?\d+(?:\.\d+)?\s*\$",  # $5$ / $6$
    re.I,
)


def hedged_statement(answer: str, reference: str) -> bool:
    """An unboxed final statement offering several values ("The answer is 5 or 6.", "Final
    answer: 5, 6") against a gold that is one value: a hedge, never equal to it."""
    statements = STATEMENT.findall(answer)
    if not statements or re.search(r",|\bor\b|\band\b", reference):
        return False
    return bool(SEVERAL.search(statements[-1]))


NUMBER = r"-?\d+(?:\.\d+)?"
EQUALS = r"=|\\approx(?:eq)?\b|\\thickapprox\b|\\simeq\b|\\doteq\b|\\equiv\b|\\cong\b|≈|≃|≅|≡"
NUMERIC_CHAIN = re.compile(rf"\s*{NUMBER}(?:\s*(?:{EQUALS})\s*{NUMBER})+\s*")
CHAIN_LINK = re.compile(rf"({NUMBER})\s*({EQUALS})\s*(?={NUMBER})")


def false_equation(boxed: str) -> bool:
    """A box relating different numbers as equal (`6 = 5`, `5 \\approx 6`, `5 = 6 = 5`):
    math-verify would read one side alone as the answer. Approximately equal holds where the
    more precise number rounds to the other (`3.14159 \\approx 3.14`)."""
    if NUMERIC_CHAIN.fullmatch(boxed) is None:
        return False
    numbers = re.findall(NUMBER, boxed)
    relations = [link.group(2) for link in CHAIN_LINK.finditer(boxed)]
    for left, right, relation in zip(numbers, numbers[1:], relations, strict=False):
        same = float(left) == float(right) if relation == "=" else _rounds_to(left, right)
        if not same:
            return True
    return False


def unboxed_statement(answer: str) -> str:
    """What an unboxed "the answer is $X$" states, its dollar signs off."""
    statements = STATEMENT.findall(answer)
    stated = stated_answer(answer) or (statements[-1] if statements else "")
    return str(stated).strip().strip("$").strip()


def _rounds_to(left: str, right: str) -> bool:
    """Whether the number with more decimals, rounded to the other's, is the other."""
    places = min(len(n.partition(".")[2]) for n in (left, right))
    return round(float(left), places) == round(float(right), places)


def parse_answer(
    reference: str, answer: str, boxed: str | None, timeout: int, fallbacks: Sequence[Fallback]
) -> list[Any] | Result:
    """The parsed final answer (the box in the gold's form, else what the fallbacks find), or
    the verdict when there is none: an extraction that stopped part-way never compares."""
    from math_verify import parse
    from math_verify.errors import TimeoutException

    try:
        with cpu_limit(timeout):
            if boxed is not None:
                text = f"\\boxed{{{answer_form(boxed, read_gold(reference).core)}}}"
                predicted = parse(
                    text, extraction(("latex",)), parsing_timeout=None, raise_on_error=True
                )
            elif fallbacks:
                predicted = parse_unboxed(answer, fallbacks)
            else:
                predicted = []
    except TimeoutException:
        return Result.unverifiable("timeout", boxed)
    except Exception:  # a model's malformed LaTeX must become a verdict, not a crash
        return Result.unverifiable("parse_error", boxed)
    if not predicted:
        return Result.unverifiable("no_answer")
    if truncated(predicted):
        return Result.unverifiable("parse_error", boxed)
    return list(predicted)


def parse_unboxed(answer: str, fallbacks: Sequence[Fallback]) -> list[Any]:
    """What the fallbacks find, with math-verify's unit removal (`$\\frac{1}{3}$ meters`)
    unless it cut the answer short (`\\frac{1}{\\mathrm{e}}` loses its e)."""
    from math_verify import parse

    answer = written_powers(answer)
    for units in (True, False):
        found = parse(
            answer, extraction(fallbacks, units), parsing_timeout=None, raise_on_error=True
        )
        if not truncated(found):
            break
    return list(found)


def truncated(parsed: Sequence[Any]) -> bool:
    """An extraction cut short (`\\lambda_{`, `12^{}`): it must never be compared."""
    return any(
        text.count("{") != text.count("}") or "{}" in text or re.search(r"[_^{\\]\s*$", text)
        for text in parsed
        if isinstance(text, str)
    )


def imaginary(gold: list[Any], predicted: list[Any]) -> tuple[list[Any], list[Any]] | None:
    """Both sides with `i` read as the imaginary unit, when both use a symbol i (`1+2i` and
    `i(2-i)`): equal as polynomials in i stays equal, and i^2 = -1 is what they mean."""
    from sympy import Basic, I

    def units(items: list[Any]) -> set[Any]:
        found = set()
        for item in items:
            if isinstance(item, Basic):
                found |= {s for s in item.free_symbols if getattr(s, "name", None) == "i"}
        return found

    if not (units(gold) and units(predicted)):
        return None

    def read(items: list[Any]) -> list[Any]:
        return [
            item.subs({s: I for s in units([item])}) if isinstance(item, Basic) else item
            for item in items
        ]

    return read(gold), read(predicted)


def text_verdict(
    reference: str, answer: str, timeout: int, fallbacks: Sequence[Fallback]
) -> Result:
    """A gold in words against an answer with no final box: the words the fallback finds."""
    from math_verify import parse

    try:
        with cpu_limit(timeout):
            found = parse(answer, extraction(fallbacks), parsing_timeout=None) if fallbacks else []
    except Exception:  # math-verify raises many unrelated types on odd LaTeX
        found = []
    texts = [item for item in found if isinstance(item, str)]
    if not texts:
        return Result.unverifiable("no_answer")
    return words_result(read_gold(reference), texts[-1])


def compare(gold: list[Any], predicted: list[Any], timeout: int) -> tuple[Verdict, str] | None:
    """None when some gold item equals some predicted item (math-verify's rule), else
    (verdict, reason). When one pair cannot be compared at all (a clock time `12:00` parses
    to zoo), the pairs are judged one by one so that pair no longer sinks those that can."""
    from math_verify import verify
    from math_verify.errors import TimeoutException

    try:
        with cpu_limit(timeout):
            same = verify(gold, predicted, timeout_seconds=None, raise_on_error=True)
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
            with cpu_limit(timeout):
                same = verify(
                    [one_gold], [one_predicted], timeout_seconds=None, raise_on_error=True
                )
            if same:
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


def extraction(fallbacks: Sequence[Fallback], units: bool = False) -> list[Any]:
    """math-verify's extraction, with its unit removal off: it cuts `\\lambda_{\\text{red}}`
    at the `\\text` and drops the `m` of `\\frac{37}{4}m`; forms.py takes units off instead."""
    from latex2sympy2_extended.latex2sympy2 import NormalizationConfig
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    latex = LatexExtractionConfig(
        normalization_config=NormalizationConfig(
            basic_latex=True, units=units, malformed_operators=True, nits=True, boxed="all"
        )
    )
    configs = {"latex": latex, "expr": ExprExtractionConfig()}
    return [configs[name] for name in fallbacks]


# what the verifier says when it found no final answer; any other verdict means it found one
NO_ANSWER_REASONS = ("no_answer", "empty_answer", "refusal")
ANSWER_PART = AnswerFormat()


@registry.verifiers.register()
class MathVerifier(Verifier):
    """Math answers, checked symbolically with math-verify in killable worker processes."""

    domains = ("math", "science")
    name = "math"
    version = "2"
    check_path = "curate.verify.math.check_math"

    @classmethod
    def missing_answer(cls, completion: str, judged_reason: str | None = None) -> str | None:
        """A boxed (or plainly stated) final answer, as the verifier found it where it
        judged the completion, else as the shared extraction finds it."""
        boxed = "\\boxed" in completion
        if judged_reason is not None:
            if judged_reason not in NO_ANSWER_REASONS:
                return None
            return "malformed_boxed_answer" if boxed else "no_boxed_answer"
        text = ANSWER_PART.answer_text(completion) or ""
        final = final_answer_of(text)
        final = stated_answer(text) if final is None else final
        if final is None:
            return "malformed_boxed_answer" if boxed else "no_boxed_answer"
        return None if final.strip() else "malformed_boxed_answer"

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
