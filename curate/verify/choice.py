"""Multiple choice: the chosen letter, however the model wrote it.

Read in order: the final box (a letter, or an option's value where the problem lists its
options), then a stated choice ("the answer is B", "the answer would be A (3/11)", "Option B)
No", "答案是 A"), then a closing "(B)" or "B (No)". A text that offers several options, refuses
("cannot confidently select option A or B") or answers under conditions ("if ..., A; if ...,
B") chooses nothing: never correct.
"""

from __future__ import annotations

import re

from curate import registry
from curate.answers import final_boxes
from curate.verify.base import ProblemAnswers, Result, Verifier
from curate.verify.statement import unstated, without_invented

LETTER = r"\(?\s*([A-J])\s*\)?"
PATTERNS = (
    re.compile(
        rf"(?:answer|choice|option)\s*(?:is|would\s+be|will\s+be|:)?\s*(?:option\s*|choice\s*)?"
        rf"[:\s]*\**{LETTER}(?![A-Za-z])",
        re.I,
    ),
    re.compile(
        r"(?:答案|选项|正确答案|所以|因此|故)[^A-Za-z\n]{0,12}?[(（]?\s*([A-J])(?![A-Za-z])"
    ),
    re.compile(
        r"(?:^|\n)\s*\**\s*(?:option\s+)?\(?([A-J])\)?\s*(?:[.):]\s*|\s+\()[^\n]{0,80}$", re.I
    ),
    re.compile(rf"(?:^|\s){LETTER}[.)]?\s*$"),
    re.compile(r"\(([A-J])\)"),
)
# Two options offered as one answer: "A or B", "(A), (C)", "B and D".
HEDGE = re.compile(
    rf"{LETTER}[.)]?\s*(?:,|/|;|&|\bor\b|\band\b|\\text\{{\s*(?:or|and)\s*\}})\s*{LETTER}(?![A-Za-z])",
    re.I,
)
# An option as a problem lists it: "A. 8.5", "(B) 12", "C) no", "D: 7 m"
OPTION = re.compile(r"(?:^|\n|\s)\(?([A-J])[.):]\s*([^\n]+?)(?=\s+\(?[A-J][.):]\s|\n|$)")


def options_of(problem: str | None) -> dict[str, str]:
    """The options a problem lists, letter to value (the last listing, A first)."""
    if not problem:
        return {}
    found: dict[str, str] = {}
    for letter, value in OPTION.findall(problem):
        if letter == "A":
            found = {}  # a new listing starts
        found[letter] = value.strip()
    return found if len(found) >= 2 else {}


def same_value(text: str) -> str:
    """An option's value as compared: layout, dollars, text wrappers and case left out."""
    text = re.sub(r"\\(?:text|mathrm|textbf)\{([^{}]*)\}", r"\1", text)
    return re.sub(r"[\s$]+|\\[,;!]", "", text).rstrip(".").lower()


def letter_of_value(value: str, options: dict[str, str]) -> str | None:
    """The one option whose value a boxed answer repeats, else None."""
    wanted = same_value(value)
    matches = [letter for letter, option in options.items() if same_value(option) == wanted]
    return matches[0] if wanted and len(matches) == 1 else None


def choice_letter(text: str | None, options: dict[str, str] | None = None) -> str | None:
    """The letter a text picks (see the module's text); None when it names none, or several,
    or commits to none."""
    if not text:
        return None
    text = without_invented(text)
    boxed = final_boxes(text)
    if hedged(text) or (not boxed and unstated(text) is not None):
        return None
    return read_letter(text, boxed, options)


def read_letter(text: str, boxed: list[str], options: dict[str, str] | None) -> str | None:
    """The letter of a text known to commit to one answer: from its box (a letter, or an
    option's value), else from how it states it."""
    if boxed:
        inner = re.sub(r"\\text\{([^{}]*)\}", r"\1", boxed[-1]).strip()
        match = re.fullmatch(rf"{LETTER}[.)]?(?:\s.*)?", inner, re.S)
        if match:
            return match.group(1)
        return letter_of_value(inner, options or {})
    text = text.strip()
    listed = [m.span() for m in HEDGE.finditer(text)]
    for pattern in PATTERNS:
        found = list(pattern.finditer(text))
        if found:
            where = found[-1].start(1)
            if any(start <= where < end for start, end in listed):
                return None  # "the options are A, B, C and D": a list, not a choice
            return found[-1].group(1).upper()
    return None


def hedged(text: str) -> bool:
    """The final answer offers more than one option."""
    boxed = final_boxes(text)
    if len(boxed) > 1:
        letters = {re.sub(r"[^A-J]", "", b.upper())[:1] for b in boxed}
        return len(letters) > 1
    if boxed:
        return bool(HEDGE.match(re.sub(r"\\text\{([^{}]*)\}", r"\1", boxed[0]).strip()))
    marker = text.lower().rfind("answer is")
    return marker >= 0 and bool(HEDGE.search(text[marker + 9 : marker + 60]))


@registry.verifiers.register()
class ChoiceVerifier(Verifier):
    """Multiple choice: the answer's letter (boxed, "(B)", "B)", "the answer is B", or the
    option's value boxed) vs the key."""

    name = "choice"
    domains = ("choice",)
    reads_problem = True

    @classmethod
    def missing_answer(cls, completion: str, judged_reason: str | None = None) -> str | None:
        return None if choice_letter(completion) else "no_choice"

    def verify(self, problems: list[ProblemAnswers]) -> list[list[Result]]:
        return [self.judge_problem(p) for p in problems]

    def judge_problem(self, problem: ProblemAnswers) -> list[Result]:
        options = options_of(problem.problem)
        return [self.check(problem.reference, answer, options) for answer in problem.answers]

    def check(
        self, reference: str | None, answer: str | None, options: dict[str, str] | None = None
    ) -> Result:
        key = choice_letter(f"\\boxed{{{reference}}}") if reference else None
        if key is None:
            return Result.unverifiable("gold_unparseable")
        text = without_invented(answer or "")
        boxed = final_boxes(text)
        why = None if boxed or not text else unstated(text)
        if hedged(text) or why == "conditional":
            return Result("incorrect", "several_answers", None)
        letter = None if why is not None or not text else read_letter(text, boxed, options)
        if letter is None:
            return Result.unverifiable("refusal" if why == "refusal" else "no_answer")
        same = letter == key
        return Result("correct" if same else "incorrect", None if same else "mismatch", letter)
