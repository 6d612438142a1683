"""Verifiers as GRPO reward functions (TRL's signature), so training is rewarded by exactly
the checks that built its data.

    from curate.rewards import VerifierReward
    trainer = GRPOTrainer(..., reward_funcs=[VerifierReward("math")])

TRL calls `reward(prompts=..., completions=..., completion_ids=..., **columns)` with the
dataset's other columns as keyword lists; the reference answer is read from one of them
(`reference` by default, as in datasets curate publishes).
"""

from __future__ import annotations

from typing import Any

from curate import registry
from curate.generate.base import split_reasoning
from curate.verify.base import ProblemAnswers, Result, Verifier
from curate.verify.stage import AUTO


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
    does not apply to that sample).
    """

    def __init__(
        self,
        kind: str = "math",
        reference_column: str = "reference",
        unverifiable: float | None = 0.0,
        timeout_s: float = 5.0,
        workers: int | None = None,
    ) -> None:
        self.kind = kind
        self.reference_column = reference_column
        self.unverifiable = unverifiable
        self.timeout_s = timeout_s
        self.workers = workers
        self._verifiers: dict[str, Verifier] = {}
        self.__name__ = f"curate_{kind}"  # TRL logs rewards under the function's name

    def __call__(
        self,
        prompts: list[Any] | None = None,
        completions: list[Any] | None = None,
        completion_ids: list[Any] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        answers = [completion_text(c) for c in completions or []]
        references = columns.get(self.reference_column) or [None] * len(answers)
        tests = columns.get("tests") or [None] * len(answers)
        domains = columns.get("domain") or ["math"] * len(answers)
        rewards: list[float | None] = [self.unverifiable] * len(answers)
        groups: dict[tuple[str, str | None, str | None], list[int]] = {}
        for index, key in enumerate(zip(domains, references, tests, strict=True)):
            groups.setdefault(key, []).append(index)
        by_verifier: dict[str, list[tuple[ProblemAnswers, list[int]]]] = {}
        for (domain, reference, test), indices in groups.items():
            problem = ProblemAnswers(reference, None, [answers[i] for i in indices], test)
            by_verifier.setdefault(self.verifier_name(domain), []).append((problem, indices))
        for name, batch in by_verifier.items():  # one parallel call per verifier
            results = self.verifier(name).verify([problem for problem, _ in batch])
            for (_, indices), problem_results in zip(batch, results, strict=True):
                for index, result in zip(indices, problem_results, strict=True):
                    rewards[index] = self.score(result)
        return rewards

    def score(self, result: Result) -> float | None:
        if result.verdict == "unverifiable":
            return self.unverifiable
        return 1.0 if result.verdict == "correct" else 0.0

    def verifier_name(self, domain: str) -> str:
        return AUTO.get(domain, "math") if self.kind == "auto" else self.kind

    def verifier(self, name: str) -> Verifier:
        if name not in self._verifiers:
            cls = registry.verifiers.get(name)
            self._verifiers[name] = cls(self.timeout_s, self.workers)
        return self._verifiers[name]

    def close(self) -> None:
        for verifier in self._verifiers.values():
            verifier.close()
