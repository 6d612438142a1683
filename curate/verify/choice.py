"""Multiple choice: the chosen letter, however the model wrote it."""

from __future__ import annotations

import re

from curate import registry
from curate.verify.base import ProblemAnswers, Result, Verifier, last_boxed

LETTER = r"\(?\s*([A-J])\s*\)?"
PATTERNS = (
    re.compile(rf"answer\s*(?:is|:)?\s*(?:option\s*)?[:\s]*\**{LETTER}(?![A-Za-z])", re.I),
    re.compile(rf"(?:^|\s){LETTER}[.)]?\s*$"),
    re.compile(r"\(([A-J])\)"),
)


def choice_letter(text: str | None) -> str | None:
    """The letter a text picks: boxed first, then 'the answer is B', then a final '(B)'."""
    if not text:
        return None
    boxed = last_boxed(text)
    if boxed is not None:
        inner = re.sub(r"\\text\{([^{}]*)\}", r"\1", boxed).strip()
        match = re.fullmatch(rf"{LETTER}[.)]?(?:\s.*)?", inner, re.S)
        return match.group(1) if match else None
    for pattern in PATTERNS:
        matches = pattern.findall(text.strip())
        if matches:
            return str(matches[-1]).upper()
    return None


@registry.verifiers.register("choice")
class ChoiceVerifier(Verifier):
    """Multiple choice: the answer's letter (boxed, "(B)", "B)", "the answer is B") vs the key."""

    name = "choice"

    def verify(self, problems: list[ProblemAnswers]) -> list[list[Result]]:
        return [[self.check(p.reference, a) for a in p.answers] for p in problems]

    def check(self, reference: str | None, answer: str | None) -> Result:
        key = choice_letter(f"\\boxed{{{reference}}}") if reference else None
        if key is None:
            return Result.unverifiable("gold_unparseable")
        letter = choice_letter(answer)
        if letter is None:
            return Result.unverifiable("no_answer")
        same = letter == key
        return Result("correct" if same else "incorrect", None if same else "mismatch", letter)
