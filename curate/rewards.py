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
from typing import Any

from curate.generate.base import split_reasoning
from curate.records import to_json
from curate.verify.base import Result
from curate.verify.dispatch import Dispatcher, Item
from curate.verify.math import DEFAULT_FALLBACKS, Fallback


def completion_text(completion: Any) -> str:
    """The final answer text of a completion, plain or conversational, reasoning removed."""
    if isinstance(completion, list):  # conversational: a list of messages
        assistant = [m for m in completion if m.get("role", "assistant") == "assistant"]
        completion = assistant[-1]["content"] if assistant else ""
    text = str(completion or "")
    if "</think>" in text:
        return split_reasoning(text, ("<think>", "</think>"))[1]
    return text


class VerifierReward:
    """A reward function: 1.0 for a correct answer, 0.0 for an incorrect one.

    Unverifiable answers get `unverifiable` (0.0 by default; None tells TRL the function
    does not apply to that sample). Rows are judged by the verify stage's own dispatch, with
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
    ) -> None:
        """kind, timeout_s, workers and fallbacks mean what the recipe's `verify:` keys do."""
        self.kind = kind
        self.reference_column = reference_column
        self.unverifiable = unverifiable
        self.dispatcher = Dispatcher(kind, timeout_s, workers, fallbacks)
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

        items = [
            Item(answer, reference, domain, _json_text(metadata), _json_text(tests))
            for answer, reference, domain, metadata, tests in zip(
                answers,
                column(self.reference_column),
                column("domain"),
                column("metadata"),
                column("tests"),
                strict=True,
            )
        ]
        return [self.score(result) for result, _ in self.dispatcher.judge(items)]

    def score(self, result: Result) -> float | None:
        if result.verdict == "unverifiable":
            return self.unverifiable
        return 1.0 if result.verdict == "correct" else 0.0

    def close(self) -> None:
        self.dispatcher.close()


def _json_text(value: Any) -> str | None:
    """Metadata and tests as the ledger stores them (JSON text), whatever the dataset made
    of them (datasets may load a JSON column as a dict)."""
    if value is None or isinstance(value, str):
        return value
    return to_json(value)
