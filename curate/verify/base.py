"""The verifier contract: every answer gets correct, incorrect or unverifiable, with a reason."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel

from curate.records import Verdict


@dataclass(frozen=True)
class ProblemAnswers:
    """One problem's reference and the final answers of its samples."""

    reference: str | None
    metadata: str | None
    answers: list[str | None]
    tests: str | None = None  # code test cases (JSON)
    problem: str | None = None  # the problem's text, for verifiers that read it (reads_problem)


@dataclass(frozen=True)
class Result:
    verdict: Verdict
    reason: str | None = None  # why, for every verdict but correct
    extracted: str | None = None
    tier: str = "rule"  # rule, or judge (the model tier settled it: verify/tier.py)
    note: str | None = None  # the judge's reasoning, or why it was not asked
    disputed: bool = False  # the judge and a rule's decided verdict disagree (for review)

    @classmethod
    def unverifiable(cls, reason: str, extracted: str | None = None) -> Result:
        return cls("unverifiable", reason, extracted)


class Verifier(ABC):
    """Judges samples problem by problem, so per-problem work (the gold) is done once.

    domains: the problem domains it judges under `verify.kind: auto` (a plugin's claim on a
    domain wins over a built-in's). reads_problem: it is given the problem's text, so
    problems are grouped by it too. settings_class: its own typed settings, written in the
    `verify:` section beside `kind` when it is named there (`{kind: tolerance, tolerance:
    0.01}`); `self.settings` holds them, defaults where the section did not set them."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    domains: ClassVar[tuple[str, ...]] = ()
    settings_class: ClassVar[type[BaseModel] | None] = None
    # whether it reads the problem's text (a choice's options, the code a completion continues)
    reads_problem: ClassVar[bool] = False

    def __init__(self, timeout_s: float = 5.0, workers: int | None = None, **options: Any) -> None:
        """Options a verifier does not use (another verifier's settings) are ignored."""
        self.timeout_s = timeout_s
        self.workers = workers
        self.settings = own_settings(type(self).settings_class, options.get("section"))

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    @abstractmethod
    def verify(self, problems: list[ProblemAnswers]) -> list[list[Result]]:
        """One list of results per problem, one result per answer, in order."""

    @classmethod
    def missing_answer(cls, completion: str, judged_reason: str | None = None) -> str | None:
        """Why a completion holds no answer of the form this verifier reads (the filters'
        answer_format check), or None when it holds one or any form will do.
        judged_reason: the verdict reason where the verify stage already judged it."""
        return None

    def close(self) -> None:
        """Stop worker processes."""


def own_settings(settings_class: type[BaseModel] | None, section: Any) -> Any:
    """A verifier's typed settings, read from the verify section where it holds them."""
    if settings_class is None:
        return None
    given = {
        name: getattr(section, name)
        for name in settings_class.model_fields
        if section is not None and hasattr(section, name)
    }
    return settings_class.model_validate(given)
