"""The verifier contract: every answer gets correct, incorrect or unverifiable, with a reason."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from curate.records import Verdict


@dataclass(frozen=True)
class ProblemAnswers:
    """One problem's reference and the final answers of its samples."""

    reference: str | None
    metadata: str | None
    answers: list[str | None]
    tests: str | None = None  # code test cases (JSON)


@dataclass(frozen=True)
class Result:
    verdict: Verdict
    reason: str | None = None  # why, for every verdict but correct
    extracted: str | None = None

    @classmethod
    def unverifiable(cls, reason: str, extracted: str | None = None) -> Result:
        return cls("unverifiable", reason, extracted)


class Verifier(ABC):
    """Judges samples problem by problem, so per-problem work (the gold) is done once."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"

    def __init__(self, timeout_s: float = 5.0, workers: int | None = None, **options: Any) -> None:
        """Options a verifier does not use (another verifier's settings) are ignored."""
        self.timeout_s = timeout_s
        self.workers = workers

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    @abstractmethod
    def verify(self, problems: list[ProblemAnswers]) -> list[list[Result]]:
        """One list of results per problem, one result per answer, in order."""

    def close(self) -> None:
        """Stop worker processes."""


BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# What may stand between the boxes of one answer given in parts: "\boxed{1}, \boxed{2} and
# \boxed{3}". Anything else between two boxes (", wait, ...") makes the later one a correction.
JOINER = re.compile(
    r"(?:\s|\$|\\[(),;:! ]|\\q?quad|,|;|&|\band\b|\bor\b"
    # \text{ and }, \text{ for part (a) and }
    r"|\\(?:text|mathrm|textrm)\{\s*(?:(?:for|in)\s+)?(?:part\s*\(?\w\)?\s*)?(?:,|and|or|;)?"
    r"\s*(?:(?:for|in)\s+)?(?:part\s*\(?\w\)?)?\s*\}"
    r"|[A-Za-z](?:_\{?\w+\}?)?\s*=)*",  # a label: "y_2 = \boxed{...}"
    re.IGNORECASE,
)
FINAL_STATEMENT = re.compile(
    r"final answer\s*(?:is|:)\s*:?\s*(?!the\s+final\s+answer)"
    r"(?:\$\$?([^$]+?)\$\$?|\\\((.+?)\\\)|\\\[(.+?)\\\]|([^\s$\\][^\n$]*?)\s*(?:\.(?:\s|\Z)|\n|\Z))",
    re.IGNORECASE | re.DOTALL,
)


def boxes(text: str) -> list[tuple[int, int, str]]:
    """Every \\boxed{...} (or \\fbox) as (start, end, content), braces balanced; an unclosed
    last box is left out."""
    found = []
    position = 0
    for match in BOXED.finditer(text):
        if match.start() < position:
            continue  # a box inside a box belongs to the outer one
        depth, start = 1, match.end()
        for index in range(start, len(text)):
            depth += (text[index] == "{") - (text[index] == "}")
            if depth == 0:
                found.append((match.start(), index + 1, text[start:index]))
                position = index + 1
                break
    return found


def final_boxes(text: str) -> list[str]:
    """The contents of the last run of boxes joined only by commas, 'and', 'or' and spacing:
    one box usually; several when an answer is given in parts (or hedged)."""
    found = boxes(text)
    if not found:
        return []
    run = [found[-1]]
    for box in reversed(found[:-1]):
        if not JOINER.fullmatch(text[box[1] : run[0][0]]):
            break
        run.insert(0, box)
    return [content for _, _, content in run]


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} in the text, braces balanced."""
    found = boxes(text)
    return found[-1][2] if found else None


def final_answer_of(text: str) -> str | None:
    """What a text finally answers, as LaTeX: a "final answer is $X$" after the last box (the
    boxes were steps), else the last run of boxes as one whole ("1, 2, 3" for three boxes, so a
    hedge like "\\boxed{1} or \\boxed{2}" is never equal to a single gold), else None."""
    found = boxes(text)
    tail = text[found[-1][1] :] if found else text
    stated = next(reversed(list(FINAL_STATEMENT.finditer(tail))), None)
    if stated and (found or stated.group(4) is None):
        value = next(g for g in stated.groups() if g is not None).strip()
        inner = last_boxed(value)
        return inner if inner is not None else value
    parts = final_boxes(text)
    return ", ".join(part.strip() for part in parts) if parts else None


def normalize_answer(text: str) -> str:
    """Case, spacing, surrounding $ and a final period removed: for plain string matching."""
    text = text.strip().strip("$").strip()
    text = re.sub(r"\\text\{([^{}]*)\}", r"\1", text)
    return re.sub(r"\s+", " ", text).rstrip(".").strip().lower()
