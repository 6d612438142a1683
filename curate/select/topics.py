"""The topics stage: a model names each problem's topic from a taxonomy (MSC's top-level
classes, shipped, or the user's list), so `select.mix: {by: topic}` can spread a selection
over topics where the data names none.

The model sees the numbered list and the problem and ends with 'Topic: CODE'. The code, or
the topic's exact name, is read from its last such line; anything else leaves the topic
empty and is counted, never guessed. Through the teacher's request cache, once per problem.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import polars as pl

from curate import registry
from curate.generate import asking
from curate.generate.base import Message, Sample
from curate.generate.cache import SampleCache
from curate.select.config import TopicsConfig
from curate.select.difficulty import PROBLEM_FACTS, problems_to_ask, with_problem_values
from curate.select.taxonomy import entries
from curate.stage import Stage, StageContext, Unit

CACHE_FILE = "topics.sqlite"
REASONING_CHARS = 1000
TOPIC_LINE = re.compile(r"^\W*topic\W*(.+?)\W*$", re.I | re.M)


@registry.stages.register()
class TopicsStage(Stage):
    """A topic per problem from a taxonomy, named by a model."""

    name = "topics"
    section = "topics"
    after = ("verify", "review")
    before = ("select",)
    unit: ClassVar[Unit] = "problem"
    config_class = TopicsConfig
    reads: tuple[str, ...] = ("problem_id", "verdict", *PROBLEM_FACTS)
    writes: tuple[str, ...] = ("topic", "topic_reasoning")
    publishes = ("topic",)
    config: TopicsConfig

    def __init__(self, config: TopicsConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self.classifier = asking.judge_config(config.classifier, "topics.classifier")
        self.topics = entries(config.taxonomy)
        self.cache = SampleCache(context.cache_dir / CACHE_FILE)

    def process(self, frame: pl.DataFrame) -> pl.DataFrame:
        problems = problems_to_ask(frame, self.config.only_solved)
        self.counts["problems_asked"] += problems.height
        questions = [self._question(text) for text in problems["problem"].to_list()]
        replies = asking.ask_each(self.classifier, self.cache, questions, self.counts)
        values: dict[str, list[Any]] = {"topic": [], "topic_reasoning": []}
        for reply in replies:
            topic, text = read_topic(reply, self.topics)
            self.counts["topic_unreadable"] += topic is None
            values["topic"].append(topic)
            values["topic_reasoning"].append(text)
        return with_problem_values(frame, problems, values)

    def _question(self, problem: str) -> list[Message]:
        listed = "\n".join(f"{code}: {name}" for code, name in self.topics.items())
        text = (
            "Which one of these topics is the problem below about?\n\n"
            f"{listed}\n\nProblem:\n{problem}\n\n"
            "Think briefly, then end with a line 'Topic: CODE' giving the one code that fits best."
        )
        return [{"role": "user", "content": text}]


def read_topic(reply: Sample | None, topics: dict[str, str]) -> tuple[str | None, str | None]:
    """'CODE name' of the last 'Topic:' line that names a listed code or name exactly."""
    if reply is None or reply.error:
        return None, f"classifier: {reply.error if reply else 'no reply'}"
    text = asking.reply_text(reply)
    by_name = {name.lower(): code for code, name in topics.items()}
    for said in reversed(TOPIC_LINE.findall(text)):
        first = said.split()[0].rstrip(":.,)") if said.split() else ""
        code = first if first in topics else by_name.get(said.lower())
        if code is not None:
            return f"{code} {topics[code]}", text[-REASONING_CHARS:]
    return None, text[-REASONING_CHARS:] or None
