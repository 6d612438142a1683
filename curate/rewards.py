"""Verifiers as GRPO reward functions (TRL's signature), so training is rewarded by exactly
the checks that built its data.

    from curate.rewards import VerifierReward
    trainer = GRPOTrainer(..., reward_funcs=[VerifierReward("math")])

TRL calls `reward(prompts=..., completions=..., completion_ids=..., **columns)` with the
dataset's other columns as keyword lists; the reference answer is read from one of them
(`reference` by default, as in datasets curate publishes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from curate.answers import ANSWER_TAGS, REASONING_TAGS, AnswerFormat, TagPair, split_reasoning
from curate.generate.cache import SampleCache
from curate.records import to_json
from curate.verify.base import Result
from curate.verify.dispatch import Dispatcher, Item
from curate.verify.math import DEFAULT_FALLBACKS, Fallback
from curate.verify.tier import CACHE_FILE as JUDGE_CACHE
from curate.verify.tier import AnswerJudge


def completion_text(completion: Any) -> str:
    """The text of a completion, plain or conversational (the last assistant message)."""
    if isinstance(completion, list):  # conversational: a list of messages
        assistant = [m for m in completion if m.get("role", "assistant") == "assistant"]
        completion = assistant[-1]["content"] if assistant else ""
    return str(completion or "")


# Reasons that say the problem cannot be judged (its reference or tests), not the answer:
# those get the reward's `unverifiable` value; an answer the policy left unjudgeable (none
# given, malformed, too slow to check) gets 0.0, or a policy would learn to give no answer.
PROBLEM_SIDE = (
    "no_reference",
    "gold_",
    "no_tests",
    "bad_tests",
    "no_verifier_for_domain",
    "verifier_crash",
)


class VerifierReward:
    """A reward function: 1.0 for a correct answer, 0.0 for an incorrect one.

    A problem that cannot be judged (no or unparseable reference, a gold in words, no tests)
    gets `unverifiable` (0.0 by default; None tells TRL the function does not apply to that
    sample); an answer the policy left unjudgeable (none, an empty box, malformed) gets 0.0.
    Rows are judged by the verify stage's own dispatch, with
    the dataset's `domain`, `metadata` and `tests` columns where present: the same verdict
    `curate verify` gives, for the same row.
    """

    def __init__(
        self,
        kind: str = "math",
        reference_column: str = "reference",
        unverifiable: float | None = 0.0,
        timeout_s: float = 5.0,
        workers: int | None = None,
        fallbacks: Sequence[Fallback] = DEFAULT_FALLBACKS,
        think_tags: Sequence[TagPair] = REASONING_TAGS,
        answer_tags: Sequence[TagPair] = ANSWER_TAGS,
        require_reasoning: bool = False,
        judge: dict[str, Any] | None = None,
        judge_cache: str | Path = Path(".curate-cache") / JUDGE_CACHE,
    ) -> None:
        """kind, timeout_s, workers, fallbacks, think_tags, answer_tags and judge mean what the
        recipe's `verify:` keys do (the judge's replies are cached in judge_cache, its calls
        made concurrently per batch); require_reasoning scores 0.0 a completion without a
        closed reasoning block (TRL's reasoning_accuracy_reward contract)."""
        self.kind = kind
        self.reference_column = reference_column
        self.unverifiable = unverifiable
        self.think_tags = tuple(think_tags)
        self.require_reasoning = require_reasoning
        answer_format = AnswerFormat(self.think_tags, tuple(answer_tags))
        tier = (
            None
            if judge is None
            else AnswerJudge.from_section(judge, SampleCache(Path(judge_cache)))
        )
        self.dispatcher = Dispatcher(
            kind, timeout_s, workers, fallbacks, answer_format, model_tier=tier
        )
        self.__name__ = f"curate_{kind}"  # TRL logs rewards under the function's name

    def __call__(
        self,
        prompts: list[Any] | None = None,
        completions: list[Any] | None = None,
        completion_ids: list[Any] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        answers = [completion_text(c) for c in completions or []]

        def column(name: str) -> list[Any]:
            values = columns.get(name)
            return list(values) if values is not None else [None] * len(answers)

        problems = columns.get("problem") or [
            prompt_text(p) for p in prompts or [None] * len(answers)
        ]
        items = [
            Item(answer, reference, domain, _json_text(metadata), _json_text(tests), problem)
            for answer, reference, domain, metadata, tests, problem in zip(
                answers,
                column(self.reference_column),
                column("domain"),
                column("metadata"),
                column("tests"),
                problems,
                strict=True,
            )
        ]
        judged = self.dispatcher.judge(items)
        return [
            0.0 if self.missing_reasoning(answer) else self.score(result)
            for answer, (result, _) in zip(answers, judged, strict=True)
        ]

    def missing_reasoning(self, text: str) -> bool:
        if not self.require_reasoning:
            return False
        split = split_reasoning(text, self.think_tags)
        return split.tags is None or not split.closed

    def score(self, result: Result) -> float | None:
        if result.verdict == "unverifiable":
            problem_side = (result.reason or "").startswith(PROBLEM_SIDE)
            return self.unverifiable if problem_side else 0.0
        return 1.0 if result.verdict == "correct" else 0.0

    def close(self) -> None:
        self.dispatcher.close()


def prompt_text(prompt: Any) -> str | None:
    """The problem as a prompt holds it: the text, or the last user turn of chat messages."""
    if prompt is None or isinstance(prompt, str):
        return prompt
    users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
    return str(users[-1]) if users and users[-1] is not None else None


def _json_text(value: Any) -> str | None:
    """Metadata and tests as the ledger stores them (JSON text), whatever the dataset made
    of them (datasets may load a JSON column as a dict)."""
    if value is None or isinstance(value, str):
        return value
    return to_json(value)
