"""One dispatch from rows to verifiers, used by the verify stage and by the GRPO rewards alike,
so a reward is the verifier that built the data, by construction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from curate import registry
from curate.answers import AnswerFormat
from curate.errors import RecipeError
from curate.verify.base import ProblemAnswers, Result, Verifier
from curate.verify.math import DEFAULT_FALLBACKS, Fallback

if TYPE_CHECKING:
    from curate.verify.tier import AnswerJudge

ProblemKey = tuple[str | None, str | None, str | None, str | None]  # + problem, where read
DEFAULT_FORMAT = AnswerFormat()


def verifier_for(domain: str) -> str | None:
    """The verifier that claims a domain under `kind: auto`: a plugin's claim wins over a
    built-in's; two plugins claiming one domain is an error naming both."""
    claims = [name for name, cls in registry.verifiers.items() if domain in cls.domains]
    plugins = [name for name in claims if not registry.builtin(registry.verifiers.get(name))]
    if len(plugins) > 1:
        raise RecipeError(
            f"verifiers {', '.join(plugins)} all claim domain '{domain}'; name one with verify.kind"
        )
    chosen = plugins or claims
    return chosen[0] if chosen else None


@dataclass(frozen=True)
class Item:
    """One answer to judge, with what its problem says about checking it."""

    answer: str | None
    reference: str | None
    domain: str | None = None  # None: math (plain files of traces have no domain)
    metadata: str | None = None  # JSON: reasoning-gym's task and index for puzzles
    tests: str | None = None  # JSON: code test cases
    problem: str | None = None  # the problem's text (choice options, code a completion continues)


class Dispatcher:
    """Picks each item's verifier (a fixed one, or by domain) and judges items in batches;
    items share a problem (and its parsed gold) only when everything the verifier reads of
    the problem (reference, tests, metadata, and its text where it reads that) is the same."""

    def __init__(
        self,
        kind: str = "auto",
        timeout_s: float = 5.0,
        workers: int | None = None,
        fallbacks: Sequence[Fallback] = DEFAULT_FALLBACKS,
        answer_format: AnswerFormat = DEFAULT_FORMAT,
        section: Any = None,
        model_tier: AnswerJudge | None = None,
    ) -> None:
        """answer_format: where the answer is in a trace (reasoning delimiters, answer tags);
        every verifier reads only the answer part, never the reasoning. section: the verify
        section, where a named verifier finds its own typed settings. model_tier: the judge
        asked about what the rules leave undecided (verify/tier.py)."""
        if kind != "auto":
            registry.verifiers.get(kind)  # fail early on an unknown name
        self.kind = kind
        self.timeout_s = timeout_s
        self.workers = workers
        self.fallbacks = tuple(fallbacks)
        self.answer_format = answer_format
        self.section = section
        self.model_tier = model_tier
        self._verifiers: dict[str, Verifier] = {}
        self._claims: dict[str, str | None] = {}  # domain -> verifier

    def verifier_name(self, domain: str | None) -> str | None:
        """The verifier for a domain; None when no verifier knows it (never a guess)."""
        if self.kind != "auto":
            return self.kind
        key = domain or "math"
        if key not in self._claims:
            self._claims[key] = verifier_for(key)
        return self._claims[key]

    def verifier(self, name: str) -> Verifier:
        if name not in self._verifiers:
            cls = registry.verifiers.get(name)
            self._verifiers[name] = cls(
                self.timeout_s, self.workers, fallbacks=self.fallbacks, section=self.section
            )
        return self._verifiers[name]

    def judge(self, items: Sequence[Item]) -> list[tuple[Result, str]]:
        """(result, verifier label) per item, in order."""
        out: list[tuple[Result, str] | None] = [None] * len(items)
        answers = [self.answer_format.answer_text(item.answer) for item in items]
        batches: dict[str, dict[ProblemKey, list[int]]] = {}
        for index, item in enumerate(items):
            name = self.verifier_name(item.domain)
            if name is None:
                miss = Result.unverifiable(f"no_verifier_for_domain:{item.domain}")
                out[index] = (miss, "none")
                continue
            problem = item.problem if self.verifier(name).reads_problem else None
            key = (item.reference, item.tests, item.metadata, problem)
            batches.setdefault(name, {}).setdefault(key, []).append(index)
        for name, problems in batches.items():  # one parallel call per verifier
            verifier = self.verifier(name)
            keys = list(problems)
            asked = [
                ProblemAnswers(key[0], key[2], [answers[i] for i in problems[key]], key[1], key[3])
                for key in keys
            ]
            for key, results in zip(keys, verifier.verify(asked), strict=True):
                for index, result in zip(problems[key], results, strict=True):
                    out[index] = (result, verifier.label)
        judged = [found for found in out if found is not None]
        return self.second_tier(items, answers, judged) if self.model_tier else judged

    def second_tier(
        self, items: Sequence[Item], answers: list[str | None], judged: list[tuple[Result, str]]
    ) -> list[tuple[Result, str]]:
        """The rules' results, with those the model tier wants settled by it."""
        from curate.verify.tier import question_for  # the judge's client, only when asked

        assert self.model_tier is not None
        wanted, questions = [], []
        for index, (result, _) in enumerate(judged):
            question = question_for(items[index], answers[index], result)
            if question is not None and self.model_tier.wants(result):
                wanted.append(index)
                questions.append(question)
        if not wanted:
            return judged
        settled = self.model_tier.settle(questions, [judged[i][0] for i in wanted])
        out = list(judged)
        for index, result in zip(wanted, settled, strict=True):
            out[index] = (result, judged[index][1])
        return out

    def close(self) -> None:
        for verifier in self._verifiers.values():
            verifier.close()
