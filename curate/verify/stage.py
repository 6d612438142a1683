"""The verify stage: a three-state verdict with a reason for every trace."""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import Field

from curate import registry
from curate.stage import Config, Stage, StageContext
from curate.verify.base import ProblemAnswers, Result, Verifier
from curate.verify.math import DEFAULT_FALLBACKS, Fallback

AUTO = {"math": "math", "science": "math", "puzzle": "puzzle", "choice": "choice", "code": "code"}


class VerifyConfig(Config):
    """Which verifier judges each trace."""

    kind: str = Field(
        "auto", description="A verifier name (see `curate stages`), or auto: by problem domain."
    )
    timeout_s: float = Field(5.0, gt=0, description="Seconds one answer may take to check.")
    workers: int | None = Field(None, ge=1, description="Worker processes (default: all cores).")
    answer_from: Literal["completion", "reasoning"] = Field(
        "completion", description="Which column holds the answer to check."
    )
    fallbacks: list[Fallback] = Field(
        default_factory=lambda: list(DEFAULT_FALLBACKS),
        description="Math: where to look when there is no \\boxed{} answer (latex, expr); "
        "[] accepts boxed answers only.",
    )

    volatile = frozenset({"workers"})


@registry.stages.register("verify")
class VerifyStage(Stage):
    """Judge every trace correct, incorrect or unverifiable, with a reason."""

    name = "verify"
    section = "verify"
    order = 40
    config_class = VerifyConfig
    reads = ("reference", "completion")
    writes = ("verdict", "verdict_reason", "extracted_answer", "verifier")
    config: VerifyConfig

    def __init__(self, config: VerifyConfig, context: StageContext) -> None:
        super().__init__(config, context)
        if config.kind != "auto":
            registry.verifiers.get(config.kind)  # fail early on an unknown name
        self._verifiers: dict[str, Verifier] = {}
        self.reads = ("reference", config.answer_from)

    def verifier(self, domain: str) -> Verifier | None:
        if self.config.kind != "auto":
            name: str | None = self.config.kind
        else:
            name = AUTO.get(domain)
        if name is None:
            return None
        if name not in self._verifiers:
            cls = registry.verifiers.get(name)
            self._verifiers[name] = cls(
                self.config.timeout_s, self.config.workers, fallbacks=self.config.fallbacks
            )
        return self._verifiers[name]

    def process(self, frame: pl.DataFrame) -> pl.DataFrame:
        frame = frame.with_row_index("_row")
        results: dict[int, tuple[Result, str]] = {}
        for (domain,), group in frame.group_by(["domain"], maintain_order=True):
            # Rows without a domain (plain files of traces) are taken as math.
            results.update(self._verify_domain(str(domain or "math"), group))
        ordered = [results[i] for i in range(frame.height)]
        for result, _ in ordered:
            self.counts[f"verdict_{result.verdict}"] += 1
        return frame.drop("_row").with_columns(
            pl.Series("verdict", [r.verdict for r, _ in ordered], pl.String),
            pl.Series("verdict_reason", [r.reason for r, _ in ordered], pl.String),
            pl.Series("extracted_answer", [r.extracted for r, _ in ordered], pl.String),
            pl.Series("verifier", [label for _, label in ordered], pl.String),
        )

    def _verify_domain(self, domain: str, group: pl.DataFrame) -> dict[int, tuple[Result, str]]:
        verifier = self.verifier(domain)
        if verifier is None:
            miss = Result.unverifiable(f"no_verifier_for_domain:{domain}")
            return {row: (miss, "none") for row in group["_row"]}
        problems, rows = [], []
        # Rows sharing a reference share its parsed gold (one problem, usually).
        keys = ["reference", "tests"] if "tests" in group.columns else ["reference"]
        for _, part in group.group_by(keys, maintain_order=True):
            first = part.row(0, named=True)
            answers = part[self.config.answer_from].to_list()
            problems.append(
                ProblemAnswers(first["reference"], first["metadata"], answers, first.get("tests"))
            )
            rows.append(part["_row"].to_list())
        verdicts = verifier.verify(problems)
        return {
            row: (result, verifier.label)
            for row_ids, problem_results in zip(rows, verdicts, strict=True)
            for row, result in zip(row_ids, problem_results, strict=True)
        }

    def close(self) -> None:
        for verifier in self._verifiers.values():
            verifier.close()
