"""Whether two final answers are the same: the decontamination and dedup answer rule.

Two problems are one problem only if they also produce the same answer (the rule the LLM
Decontaminator and NeMo-Skills use). Equal spellings and equal numbers are decided here at
once; the rest goes to math-verify, the same equivalence the math verifier applies.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

NOISE = re.compile(r"\s+|\$|\\[!,;: ]|\\left|\\right|\\displaystyle|\^\\circ|\\%|%|\.$")
WRAPPER = re.compile(r"^\\(?:boxed|text|mathrm|textbf)\{(.*)\}$")
FRACTION = re.compile(r"^(-?)\\[dt]?frac\{(-?\d+)\}\{(\d+)\}$")
NUMBER = re.compile(r"^-?\d+(?:\.\d+)?(?:/\d+)?$")


def spelling(answer: str) -> str:
    """The answer with layout, dollars, a box or text wrapper and case left out."""
    text = NOISE.sub("", answer.strip())
    while (inner := WRAPPER.match(text)) is not None:
        text = inner.group(1)
    return text.replace(",", "") if re.fullmatch(r"-?\d{1,3}(,\d{3})+", text) else text.lower()


def number(answer: str) -> Fraction | None:
    """The answer as an exact number, when it is a plain integer, decimal or fraction."""
    text = spelling(answer)
    fraction = FRACTION.match(text)
    if fraction:
        sign, top, bottom = fraction.groups()
        text = f"{sign}{top}/{bottom}"
    if not NUMBER.match(text):
        return None
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def quick_same(ours: str, theirs: str) -> bool | None:
    """True or False where spelling or exact numbers decide, else None."""
    if spelling(ours) == spelling(theirs):
        return True
    left, right = number(ours), number(theirs)
    if left is not None and right is not None:
        return left == right
    return None


class SameAnswers:
    """Whether answers are the same, for as many batches as a stage has: what spelling and
    numbers leave open goes to math-verify, whose worker process starts once, on first use."""

    def __init__(self) -> None:
        self._dispatcher: Any = None

    def __call__(self, pairs: list[tuple[str, str]], careful: bool = True) -> list[bool | None]:
        """For each (ours, theirs): the same answer, or None when nothing can tell.
        careful: what spelling and numbers leave open goes to math-verify; otherwise it
        stays open."""
        found = [quick_same(ours, theirs) for ours, theirs in pairs]
        open_rows = [row for row, same in enumerate(found) if same is None]
        if careful and open_rows:
            judged = self.math_verify([pairs[row] for row in open_rows])
            for row, same in zip(open_rows, judged, strict=True):
                found[row] = same
        return found

    def math_verify(self, pairs: list[tuple[str, str]]) -> list[bool | None]:
        if not pairs:
            return []
        from curate.verify.dispatch import Dispatcher, Item

        if self._dispatcher is None:
            self._dispatcher = Dispatcher("math", workers=1)
        judged = self._dispatcher.judge(
            [Item(f"The final answer is $\\boxed{{{ours}}}$.", theirs) for ours, theirs in pairs]
        )
        verdicts = [result.verdict for result, _ in judged]
        return [True if v == "correct" else (False if v == "incorrect" else None) for v in verdicts]

    def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.close()
            self._dispatcher = None


def same_answers(pairs: list[tuple[str, str]], careful: bool = True) -> list[bool | None]:
    """SameAnswers for one batch (its worker stopped after)."""
    judge = SameAnswers()
    try:
        return judge(pairs, careful)
    finally:
        judge.close()


def strength(answer: str, counts: dict[str, int], common_from: int = 3, none_from: int = 10) -> str:
    """How much an answer says on its own (counts: benchmark items per spelling):
    "none" when many items share it ("True, False"; "2" in MATH-500), "common" for an
    integer, two characters or fewer, or one a few items share, "distinctive" otherwise."""
    text = spelling(answer)
    shared = counts.get(text, 0)
    if shared >= none_from:
        return "none"
    if len(text) <= 2 or re.fullmatch(r"-?\d+", text) or shared >= common_from:
        return "common"
    return "distinctive"
