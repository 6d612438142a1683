"""Where a trace's answer is: one extraction used by verify, filters, rewards and decontamination.

A trace is reasoning then a solution. The reasoning is delimited by one of the tag pairs open
models use (`<think>`, Sky-T1's `<|begin_of_thought|>`, ...); the answer is only ever taken
from the solution part when there is one. Within it the final answer is, in order: the last
`<answer>...</answer>` tag (a box inside it wins), a "final answer is $X$" after the last box,
the last run of boxes taken as one whole (so a hedge like `\\boxed{1} or \\boxed{2}` never
equals a single gold), else nothing (the verifiers' own fallbacks may still find one).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

TagPair = tuple[str, str]

# Reasoning delimiters of open reasoning models, the most common first.
REASONING_TAGS: tuple[TagPair, ...] = (
    ("<think>", "</think>"),
    ("<|begin_of_thought|>", "<|end_of_thought|>"),  # Sky-T1, Bespoke-Stratos, OpenThoughts
    ("<thinking>", "</thinking>"),
    ("<reasoning>", "</reasoning>"),
    ("<thought>", "</thought>"),
    ("◁think▷", "◁/think▷"),  # Kimi
    ("[THINK]", "[/THINK]"),  # Magistral
    ("<|START_THINKING|>", "<|END_THINKING|>"),  # Command A Reasoning
    ("<seed:think>", "</seed:think>"),  # Seed-OSS
)
# Tags around the solution part, removed from it.
SOLUTION_TAGS: tuple[TagPair, ...] = (
    ("<|begin_of_solution|>", "<|end_of_solution|>"),
    ("<solution>", "</solution>"),
)
ANSWER_TAGS: tuple[TagPair, ...] = (("<answer>", "</answer>"),)


@dataclass(frozen=True)
class Split:
    """A trace cut at its reasoning delimiters."""

    reasoning: str
    solution: str
    closed: bool  # false when a reasoning block was opened and never closed (cut off)
    tags: TagPair | None = None  # the delimiters found, None when there were none


def as_tag_pairs(value: object) -> list[TagPair]:
    """One pair (`[<think>, </think>]`) or a list of pairs, as a list of pairs (for configs)."""
    if not isinstance(value, (list, tuple)):
        raise ValueError("expected a pair of tags or a list of pairs")
    if len(value) == 2 and all(isinstance(v, str) for v in value):
        return [(str(value[0]), str(value[1]))]
    if all(isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in value):
        return [(str(pair[0]), str(pair[1])) for pair in value]
    raise ValueError("expected a pair of tags or a list of pairs")


def split_reasoning(text: str, tags: Sequence[TagPair] = REASONING_TAGS) -> Split:
    """The reasoning and the solution of a trace, by the first delimiters (of `tags`) it uses.

    An opening tag the chat template already sent (only the closing tag appears) is
    understood; a block opened and never closed is reasoning up to the end (closed=False).
    """
    closing = [(text.rfind(end), (start, end)) for start, end in tags if end in text]
    if closing:
        position, (start, end) = max(closing, key=lambda found: found[0])
        head, tail = text[:position], text[position + len(end) :]
        reasoning = head.split(start, 1)[1] if start in head else head
        return Split(reasoning.strip(), solution_of(tail, after_tag=True), True, (start, end))
    for start, end in tags:
        if start in text:
            before, _, reasoning = text.partition(start)
            return Split(reasoning.strip(), solution_of(before), False, (start, end))
    return Split("", solution_of(text), True)


def solution_of(text: str, after_tag: bool = False) -> str:
    """The solution part without its own tags (Sky-T1's `<|begin_of_solution|>`), blank
    lines around it off; a first line that starts a line keeps its indentation (a code body
    is indented), one that follows a tag on its line does not."""
    for start, end in SOLUTION_TAGS:
        if start in text or end in text:
            inner = text.split(start, 1)[-1]
            return trimmed(inner.split(end, 1)[0], after_tag=True)
    return trimmed(text, after_tag)


def trimmed(text: str, after_tag: bool) -> str:
    """Blank lines and trailing space off; the first line's indentation kept where it starts
    a line."""
    lines_start = not after_tag or LEADING_BLANK_LINES.match(text) is not None
    text = LEADING_BLANK_LINES.sub("", text).rstrip()
    return text if lines_start else text.lstrip()


LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


def answer_part(text: str, tags: Sequence[TagPair] = REASONING_TAGS) -> str:
    """What may hold the answer: the solution when the text still has its reasoning in it
    (an unclosed block leaves only what came before it)."""
    return split_reasoning(text, tags).solution


@dataclass(frozen=True)
class AnswerFormat:
    """How a recipe's traces mark their parts: reasoning delimiters and answer tags."""

    think_tags: tuple[TagPair, ...] = REASONING_TAGS
    answer_tags: tuple[TagPair, ...] = ANSWER_TAGS

    def answer_text(self, text: str | None) -> str | None:
        """The text the verifiers read: the solution part, narrowed to the last answer tag
        (written as `<answer>...</answer>`, whichever tags the recipe names) when there is one."""
        if text is None:
            return None
        solution = answer_part(text, self.think_tags)
        tagged = tagged_answer(solution, self.answer_tags)
        if tagged is None:
            if self.answer_tags:
                return solution
            for pair in ANSWER_TAGS:  # tags turned off: plain text to every verifier
                solution = solution.replace(pair[0], " ").replace(pair[1], " ")
            return solution
        if not tagged:
            return "\\boxed{}"  # an empty answer tag is an empty answer, as an empty box is
        start, end = ANSWER_TAGS[0]
        return f"{start}{tagged}{end}"  # the verifiers read the canonical tag


BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# What may stand between the boxes of one answer given in parts: "\boxed{1}, \boxed{2} and
# \boxed{3}". Anything else between two boxes (", wait, ...") makes the later one a correction.
JOINER = re.compile(
    r"(?:\s|\$|\\[(),;:! ]|\\q?quad|,|;|&|/|\band\b|\bor\b"
    # \text{ and }, \text{ and/or }, \text{ for part (a) and }
    r"|\\(?:text|mathrm|textrm)\{\s*(?:(?:for|in)\s+)?(?:part\s*\(?\w\)?\s*)?"
    r"(?:,|and/or|and|or|;)?"
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


def tagged_answer(text: str, tags: Sequence[TagPair] = ANSWER_TAGS) -> str | None:
    """The content of the last answer tag (`<answer>...</answer>`), else None; a tag left open
    at the end of the text holds the rest of it."""
    for start, end in tags:
        position = text.rfind(start)
        if position >= 0:
            inner = text[position + len(start) :]
            return inner.split(end, 1)[0].strip()
    return None


SHORT_ANSWER = 8  # words at most in an answer tag taken as the answer itself


def final_answer_of(text: str, answer_tags: Sequence[TagPair] = ANSWER_TAGS) -> str | None:
    """What a text finally answers, as LaTeX (see the module's text), or None. An answer tag
    holding a sentence and no box is left to the fallbacks, which read inside it."""
    tagged = tagged_answer(text, answer_tags)
    if tagged is not None:
        inner = final_boxed_answer(tagged)
        if inner is not None or len(tagged.split()) > SHORT_ANSWER:
            return inner
        return tagged
    return final_boxed_answer(text)


def final_boxed_answer(text: str) -> str | None:
    """A "final answer is $X$" after the last box (the boxes were steps), else the last run of
    boxes as one whole ("1, 2, 3" for three boxes), else None."""
    found = boxes(text)
    stated = last_statement(text[found[-1][1] :] if found else text)
    if stated and (found or stated.group(4) is None):
        value = statement_value(stated)
        inner = last_boxed(value)
        return inner if inner is not None else value
    parts = final_boxes(text)
    return ", ".join(part.strip() for part in parts) if parts else None


def last_statement(text: str) -> re.Match[str] | None:
    """The last "final answer is X" in the text."""
    return next(reversed(list(FINAL_STATEMENT.finditer(text))), None)


def statement_value(stated: re.Match[str]) -> str:
    return next(g for g in stated.groups() if g is not None).strip()


def stated_answer(text: str) -> str | None:
    """The value of the last "final answer is X", however it is written, else None: what
    math-verify's fallback then reads as the answer."""
    stated = last_statement(text)
    return statement_value(stated) if stated else None


ANSWER_IS = re.compile(r"answer\s+is\b\s*:?", re.IGNORECASE)


def final_text_answer(text: str, answer_tags: Sequence[TagPair] = ANSWER_TAGS) -> str:
    """A plain-text final answer (puzzles, exact match): an answer tag's whole content (a box
    in it wins), or a box, else what follows the last "answer is", else the closing lines:
    the last line, or the grid that ends the text."""
    tagged = tagged_answer(text, answer_tags)
    if tagged is not None:
        inner = final_boxed_answer(tagged)
        return tagged if inner is None else inner
    found = final_boxed_answer(text)
    if found is not None:
        return found
    markers = list(ANSWER_IS.finditer(text))
    if markers:
        rest = text[markers[-1].end() :].strip()
        return rest.rstrip(".").strip() if "\n" not in rest else rest
    return closing_block(text)


PROSE = re.compile(r"[A-Za-z]{3,}")


def closing_block(text: str) -> str:
    """The last line, or the block of lines that ends the text when it is one answer written
    over several lines: a grid (no words: digits, symbols, emoji; blank rows inside it kept)
    or a list whose lines start alike ("Move disk 1 ...")."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    if not lines:
        return ""
    first = lines[-1].split()[0] if lines[-1].split() else ""

    def belongs(line: str) -> bool:
        return not PROSE.search(line) or (bool(first) and line.split()[:1] == [first])

    start = len(lines) - 1
    while start > 0 and belongs(lines[-1]):
        above = start - 1
        while above > 0 and not lines[above].strip():
            above -= 1  # blank rows inside a grid
        if not lines[above].strip() or not belongs(lines[above]):
            break
        if above < start - 1 and PROSE.search(lines[above]):
            break  # a blank line ends a list of sentences
        start = above
    return "\n".join(lines[start:]) if start < len(lines) - 1 else lines[-1].strip()


# Two normal forms, on purpose. normalize_answer is the exact verifier's: words stay apart
# ("2 3" is not "23"), for a gold answer that is text. spelling compares two answers across
# problems (dedup, decontamination): layout, dollars, wrappers and case go, and numbers
# are compared as numbers (number, quick_same). Equivalence beyond both is math-verify's.


def normalize_answer(text: str) -> str:
    """Case, spacing, surrounding $ and a final period removed: for plain string matching."""
    text = text.strip().strip("$").strip()
    text = re.sub(r"\\text\{([^{}]*)\}", r"\1", text)
    return re.sub(r"\s+", " ", text).rstrip(".").strip().lower()


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
