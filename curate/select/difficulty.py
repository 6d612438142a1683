"""The difficulty stage: how hard each problem is, by models the user names.

- A solver (a weaker model, any teacher backend) answers each problem `samples` times; its
  answers are checked as verify checks them, and the share it gets right is
  `solver_pass_rate`. s1 dropped what Qwen2.5-7B or -32B could solve; `select.bands` with
  `{measure: solver_pass_rate, max: 0}` (the s1k preset) does the same.
- A rater reads each problem with a rubric and ends with 'Rating: N' (1-10); the number is
  `difficulty_rating` and its reply `difficulty_reasoning` (OpenThoughts3 found LLM-rated
  difficulty the best question filter for code).

Both go through the teacher's request cache, so a rerun asks nothing twice; a problem is
asked about once however many traces it has. A rating that cannot be read stays null and is
counted, never guessed.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import polars as pl

from curate import registry
from curate.generate import asking
from curate.generate.base import Message, Sample, TeacherConfig
from curate.generate.cache import SampleCache
from curate.select.config import DifficultyConfig
from curate.stage import Stage, StageContext, Unit
from curate.verify.dispatch import Dispatcher, Item

PID = "problem_id"
CACHE_FILE = "difficulty.sqlite"
REASONING_CHARS = 2000  # of the rater's reply kept as difficulty_reasoning
RATING = re.compile(r"rating\W{0,4}(10|[1-9])(?:\.\d+)?\s*(?:/\s*10)?\W*$", re.I | re.M)
PROBLEM_FACTS = ("problem", "reference", "domain", "metadata", "tests")


@registry.stages.register()
class DifficultyStage(Stage):
    """How hard each problem is: a weaker solver's pass rate and a rubric rating."""

    name = "difficulty"
    section = "difficulty"
    after = ("verify", "review")
    before = ("select",)
    unit: ClassVar[Unit] = "problem"
    config_class = DifficultyConfig
    reads: tuple[str, ...] = ("problem_id", "verdict", *PROBLEM_FACTS)
    writes: tuple[str, ...] = (
        "solver_pass_rate",
        "solver_model",
        "difficulty_rating",
        "difficulty_reasoning",
    )
    publishes = ("solver_pass_rate", "difficulty_rating")
    config: DifficultyConfig

    def __init__(self, config: DifficultyConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self.solver = self._teacher(config.solver, "difficulty.solver", rater=False)
        self.rater = self._teacher(config.rater, "difficulty.rater", rater=True)
        self.cache = SampleCache(context.cache_dir / CACHE_FILE)

    @staticmethod
    def _teacher(section: dict[str, Any] | None, where: str, rater: bool) -> TeacherConfig | None:
        if section is None:
            return None
        if rater:
            return asking.judge_config(section, where)
        return asking.section_config({"samples": 4, **section}, where)

    def process(self, frame: pl.DataFrame) -> pl.DataFrame:
        problems = problems_to_ask(frame, self.config.only_solved)
        self.counts["problems_asked"] += problems.height
        values: dict[str, list[Any]] = {name: [None] * problems.height for name in self.writes}
        if self.solver is not None and problems.height:
            values["solver_pass_rate"] = self._pass_rates(problems, self.solver)
            values["solver_model"] = [self.solver.model] * problems.height
        if self.rater is not None and problems.height:
            ratings = self._ratings(problems, self.rater)
            values["difficulty_rating"] = [rating for rating, _ in ratings]
            values["difficulty_reasoning"] = [text for _, text in ratings]
        return with_problem_values(frame, problems, values)

    def _pass_rates(self, problems: pl.DataFrame, solver: TeacherConfig) -> list[float | None]:
        """The share of the solver's answers to each problem that verify calls correct."""
        questions = [
            solver.messages(p, r)
            for p, r in zip(problems["problem"], problems["reference"], strict=True)
        ]
        references = problems["reference"].to_list()
        replies = asking.ask_samples(
            solver, self.cache, questions, references, self.counts, "solver_"
        )
        items: list[Item] = []
        owners: list[int] = []
        for index, (row, samples) in enumerate(
            zip(problems.iter_rows(named=True), replies, strict=True)
        ):
            for sample in samples:
                if sample.error is None:
                    items.append(answer_item(sample.completion, row))
                    owners.append(index)
        right = [0] * problems.height
        seen = [0] * problems.height
        dispatcher = Dispatcher(self.config.verifier, self.config.timeout_s)
        try:
            for owner, (result, _) in zip(owners, dispatcher.judge(items), strict=True):
                seen[owner] += 1
                right[owner] += result.verdict == "correct"
        finally:
            dispatcher.close()
        self.counts["solver_no_answer"] += sum(n == 0 for n in seen)
        return [r / n if n else None for r, n in zip(right, seen, strict=True)]

    def _ratings(
        self, problems: pl.DataFrame, rater: TeacherConfig
    ) -> list[tuple[float | None, str | None]]:
        """Each problem's rating (None when the reply has no readable 'Rating: N')."""
        questions = [self._rating_question(text) for text in problems["problem"].to_list()]
        out = []
        for reply in asking.ask_each(rater, self.cache, questions, self.counts, "rater_"):
            rating, text = read_rating(reply)
            self.counts["rating_unreadable"] += rating is None
            out.append((rating, text))
        return out

    def _rating_question(self, problem: str) -> list[Message]:
        return [{"role": "user", "content": f"{self.config.rubric}\n\nProblem:\n{problem}"}]


def problems_to_ask(frame: pl.DataFrame, only_solved: bool) -> pl.DataFrame:
    """One row per problem to ask a model about (those the teacher solved, unless told all),
    with every fact of the problem as a column."""
    for name in PROBLEM_FACTS:
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(name))
    if only_solved:
        frame = frame.filter((pl.col("verdict") == "correct").fill_null(False).any().over(PID))
    problems = frame.unique(PID, keep="first", maintain_order=True)
    return problems.filter(pl.col("problem").is_not_null())


def with_problem_values(
    frame: pl.DataFrame, problems: pl.DataFrame, values: dict[str, list[Any]]
) -> pl.DataFrame:
    """Each row given its problem's values (columns named `..._rate`/`..._rating` are numbers,
    the rest text); problems not asked about get nulls."""
    found = problems.select(PID).with_columns(
        pl.Series(
            name, column, dtype=pl.Float64 if name.endswith(("rate", "rating")) else pl.String
        )
        for name, column in values.items()
    )
    return frame.drop(list(values), strict=False).join(
        found, on=PID, how="left", maintain_order="left"
    )


def answer_item(answer: str | None, row: dict[str, Any]) -> Item:
    """A solver's answer with what its problem says about checking it."""
    return Item(
        answer, row["reference"], row["domain"], row["metadata"], row["tests"], row["problem"]
    )


def read_rating(reply: Sample | None) -> tuple[float | None, str | None]:
    """The last 'Rating: N' of a reply, 1 to 10, and the reply's end as its reasoning."""
    if reply is None or reply.error:
        return None, f"rater: {reply.error if reply else 'no reply'}"
    text = asking.reply_text(reply)
    found = RATING.findall(text)
    return (float(found[-1]) if found else None), text[-REASONING_CHARS:] or None
