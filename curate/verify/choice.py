"""Multiple choice: the chosen letter, however the model wrote it."""

from __future__ import annotations

import re

from curate import registry
from curate.answers import final_boxes
from curate.verify.base import ProblemAnswers, Result, Verifier

LETTER = r"\(?\s*([A-J])\s*\)?"
PATTERNS = (
    re.compile(rf"answer\s*(?:is|:)?\s*(?:option\s*)?[:\s]*\**{LETTER}(?![A-Za-z])", re.I),
    re.compile(rf"(?:^|\s){LETTER}[.)]?\s*$"),
    re.compile(r"\(([A-J])\)"),
)


# Two options offered as one answer: "A or B", "(A), (C)", "B and D".
HEDGE = re.compile(
    rf"{LETTER}[.)]?\s*(?:,|/|;|&|\bor\b|\band\b|\\text\{{\s*(?:or|and)\s*\}})\s*{LETTER}(?![A-Za-z])",
    re.I,
)


def choice_letter(text: str | None) -> str | None:
    """The letter a text picks: boxed first, then 'the answer is B', then a final '(B)';
    None when it names none, or several (a hedge is never a choice)."""
    if not text or hedged(text):
        return None
    boxed = final_boxes(text)
    if boxed:
        inner = re.sub(r"\\text\{([^{}]*)\}", r"\1", boxed[-1]).strip()
        match = re.fullmatch(rf"{LETTER}[.)]?(?:\s.*)?", inner, re.S)
        return match.group(1) if match else None
    for pattern in PATTERNS:
        matches = pattern.findall(text.strip())
        if matches:
            return str(matches[-1]).upper()
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
    """Multiple choice: the answer's letter (boxed, "(B)", "B)", "the answer is B") vs the key."""

    domains = ("choice",)

    @classmethod
    def missing_answer(cls, completion: str, judged_reason: str | None = None) -> str | None:
        return None if choice_letter(completion) else "no_choice"

    name = "choice"

    def verify(self, problems: list[ProblemAnswers]) -> list[list[Result]]:
        return [[self.check(p.reference, a) for a in p.answers] for p in problems]

    def check(self, reference: str | None, answer: str | None) -> Result:
        key = choice_letter(f"\\boxed{{{reference}}}") if reference else None
        if key is None:
            return Result.unverifiable("gold_unparseable")
        if answer and hedged(answer):
            return Result("incorrect", "several_answers", None)
        letter = choice_letter(answer)
        if letter is None:
            return Result.unverifiable("no_answer")
        same = letter == key
        return Result("correct" if same else "incorrect", None if same else "mismatch", letter)
