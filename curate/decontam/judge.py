"""An optional LLM judge for decontamination's borderline band.

For each borderline pair (a training problem and the benchmark item it matched) a model is
asked whether the two are the same problem with the same answer, as the LLM Decontaminator
does; its reasoning is kept with the match. It goes through the same backends and request
cache as generation, so a rerun asks nothing twice.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from curate.generate import asking
from curate.generate.base import Sample, TeacherConfig
from curate.generate.cache import SampleCache

CACHE_FILE = "decontam_judge.sqlite"
SYSTEM = (
    "You check training data for copies of benchmark questions. Two problems count as the "
    "same when they ask for the same thing about the same objects and quantities and have "
    "the same answer, however differently they are worded. Problems on the same template "
    "with other numbers, or asking for another quantity, are different."
)
QUESTION = (
    "Problem A (training data):\n{ours}\nIts answer: {ours_answer}\n\n"
    "Problem B (benchmark):\n{theirs}\nIts answer: {theirs_answer}\n\n"
    "Are A and B the same problem? Reason briefly, then end with one line: "
    "'Verdict: SAME' or 'Verdict: DIFFERENT'."
)
VERDICT = re.compile(r"verdict\W*(same|different)", re.IGNORECASE)


@dataclass(frozen=True)
class Pair:
    """One borderline match put to the judge."""

    ours: str
    ours_answer: str | None
    theirs: str
    theirs_answer: str | None


@dataclass(frozen=True)
class Judgement:
    same: bool | None  # None: the reply had no verdict, or the request failed
    reasoning: str


def judge_config(section: dict[str, Any]) -> TeacherConfig:
    """The judge section as a teacher section of its backend."""
    return asking.judge_config(section, "decontaminate.judge")


class Judge:
    """Asks the judge model about pairs, through the request cache."""

    def __init__(self, config: TeacherConfig, cache: SampleCache) -> None:
        self.config = config
        self.cache = cache
        self.spent: Counter[str] = Counter()  # tokens of fresh replies, for the stage's stats

    def messages(self, pair: Pair) -> list[dict[str, str]]:
        question = QUESTION.format(
            ours=pair.ours,
            ours_answer=pair.ours_answer or "(not given)",
            theirs=pair.theirs,
            theirs_answer=pair.theirs_answer or "(not given)",
        )
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]

    def ask(self, pairs: list[Pair]) -> list[Judgement]:
        questions = [self.messages(p) for p in pairs]
        replies = asking.ask_each(self.config, self.cache, questions, self.spent, "judge_")
        return [reading(reply) for reply in replies]


def reading(sample: Sample | None) -> Judgement:
    """The verdict in a reply: its last 'Verdict: SAME|DIFFERENT' line."""
    if sample is None or sample.error:
        return Judgement(None, f"no reply ({sample.error if sample else 'missing'})")
    text = asking.reply_text(sample)
    found = VERDICT.findall(text)
    if not found:
        return Judgement(None, text)
    return Judgement(found[-1].lower() == "same", text)
