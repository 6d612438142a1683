"""String answers: normalised exact match, and reasoning-gym's own scorers for its tasks."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from curate import registry
from curate.answers import final_text_answer, normalize_answer
from curate.verify.base import ProblemAnswers, Result, Verifier


def final_answer(text: str) -> str:
    """The answer a plain-text verifier compares (curate.answers.final_text_answer)."""
    return final_text_answer(text)


@registry.verifiers.register()
class ExactVerifier(Verifier):
    """Normalised exact match of the final answer against the reference."""

    name = "exact"

    def verify(self, problems: list[ProblemAnswers]) -> list[list[Result]]:
        return [[self.check(p, answer) for answer in p.answers] for p in problems]

    def check(self, problem: ProblemAnswers, answer: str | None) -> Result:
        if problem.reference is None:
            return Result.unverifiable("no_reference")
        if not answer or not answer.strip():
            return Result.unverifiable("no_answer")
        extracted = final_answer(answer)
        same = normalize_answer(extracted) == normalize_answer(problem.reference)
        return Result("correct" if same else "incorrect", None if same else "mismatch", extracted)


@cache
def gym_dataset(task: str, size: int, seed: int) -> Any:
    import reasoning_gym

    return reasoning_gym.create_dataset(task, size=size, seed=seed)


@registry.verifiers.register()
class PuzzleVerifier(ExactVerifier):
    """reasoning-gym's scorer for its own tasks (full score = correct), else exact match."""

    domains = ("puzzle",)
    name = "puzzle"

    def check(self, problem: ProblemAnswers, answer: str | None) -> Result:
        gym = json.loads(problem.metadata or "{}").get("gym")
        if gym is None:
            return super().check(problem, answer)
        if not answer or not answer.strip():
            return Result.unverifiable("no_answer")
        data = gym_dataset(gym["task"], gym["size"], gym["seed"])
        extracted = final_answer(answer)
        entry = gym.get("entry") or data[gym["index"]]  # the entry the problem was made from
        try:
            score = data.score_answer(answer=extracted, entry=entry)
        except Exception:  # a task's scorer failing on odd model text is no verdict
            return Result.unverifiable("scorer_error", extracted)
        if score >= 1.0:
            return Result("correct", None, extracted)
        return Result("incorrect", f"mismatch (score {score:.2f})", extracted)
