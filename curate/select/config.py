"""The select section: which verified traces become the dataset (pydantic only, no I/O)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from curate.select.presets import PRESETS, Preset, with_preset
from curate.stage import Config

Policy = Literal["all_correct", "shortest_correct", "pass_rate_band", "all"]
Prefer = Literal[
    "sample", "shortest", "longest", "quality", "checks_per_1k", "explores_per_1k", "steps_per_1k"
]
Order = Literal["random", "hardest", "easiest", "longest", "shortest", "quality"]

# measures of a whole problem (a band on one keeps or drops all its traces); any other
# measure is a trace's own (select/measures.py, or a numeric column of the ledger)
PROBLEM_MEASURES = ("pass_rate", "solver_pass_rate", "difficulty_rating", "mean_words")


class Band(Config):
    """Keep what lies in a range of one measure: fixed bounds, quantiles, or both."""

    measure: str = Field(
        description="pass_rate, solver_pass_rate, difficulty_rating, mean_words (a problem's "
        "mean trace length), trace_words, quality, checks_per_1k, explores_per_1k, "
        "steps_per_1k, or a numeric column of the input."
    )
    min: float | None = Field(None, description="Lowest value kept.")
    max: float | None = Field(None, description="Highest value kept.")
    min_quantile: float | None = Field(
        None, ge=0, le=1, description="Keep from this quantile of what is still in (0..1)."
    )
    max_quantile: float | None = Field(
        None, ge=0, le=1, description="Keep up to this quantile of what is still in (0..1)."
    )
    if_missing: Literal["error", "skip"] = Field(
        "error",
        description="When no row has the measure: stop with an error, or skip the band and "
        "say so in the stats (presets skip what needs a model the user has not run).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        pairs = ((self.min, self.max), (self.min_quantile, self.max_quantile))
        if any(low is not None and high is not None and low > high for low, high in pairs):
            raise ValueError(f"band on {self.measure}: the lower end exceeds the upper end")
        return self

    @property
    def per_problem(self) -> bool:
        return self.measure in PROBLEM_MEASURES


class Clusters(Config):
    """Topics without labels: k-means over the problems' embeddings."""

    k: int = Field(16, ge=1, description="How many clusters (at most one per problem).")
    model: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="Sentence-transformers model that embeds the problems: a local folder or "
        "a Hub id already on this machine (extra `semantic`).",
    )
    engine: Literal["auto", "int8", "torch"] = Field(
        "auto", description="As decontaminate.semantic.engine: int8 ONNX on CPUs where it can."
    )
    max_tokens: int = Field(128, ge=8, description="Tokens of each problem embedded.")


class Mix(Config):
    """How problems are spread over groups (a source, a domain, a topic)."""

    by: str = Field(
        "source",
        description="The column that names a problem's group: source, domain, any column, "
        "metadata.KEY, or cluster (k-means over the problems' embeddings, `clusters:`).",
    )
    clusters: Clusters = Field(
        default_factory=Clusters, description="How problems are clustered (by: cluster)."
    )
    balance: Literal["uniform", "proportional"] = Field(
        "proportional",
        description="uniform: as many problems of each group as the budget allows (without a "
        "budget, every group cut to the smallest); proportional: groups keep their shares.",
    )
    shares: dict[str, float] | None = Field(
        None, description="Share of the selection per group (normalised); overrides balance."
    )
    caps: dict[str, int] = Field(
        default_factory=dict, description="At most this many problems of a group."
    )
    only: list[str] | None = Field(None, min_length=1, description="Keep only these groups.")

    @model_validator(mode="after")
    def _positive(self) -> Mix:
        if self.shares is not None and (
            not self.shares
            or any(v < 0 for v in self.shares.values())
            or not any(v > 0 for v in self.shares.values())
        ):
            raise ValueError("mix.shares: give at least one positive share, none negative")
        if any(v < 0 for v in self.caps.values()):
            raise ValueError("mix.caps: a cap must be >= 0")
        return self


class Budget(Config):
    """How much to keep in the end, and which problems come first when it is short."""

    problems: int | None = Field(None, ge=1, description="Keep at most this many problems.")
    traces: int | None = Field(None, ge=1, description="Keep at most this many traces.")
    order: Order = Field(
        "random",
        description="Which problems fill the budget first: random (by the run's seed), "
        "hardest/easiest (pass rate), longest/shortest (mean trace words), quality.",
    )

    @model_validator(mode="after")
    def _one_size(self) -> Budget:
        if (self.problems is None) == (self.traces is None):
            raise ValueError("budget: give exactly one of problems or traces")
        return self


class SelectConfig(Config):
    """Which verified traces become the dataset."""

    preset: Preset | None = Field(
        None,
        description="A published recipe's stages and thresholds (s1k, limo, openthoughts3); "
        "any key set beside it wins.",
    )
    policy: Policy = Field(
        "all_correct",
        description="all_correct: every correct trace; shortest_correct: the shortest correct "
        "ones; pass_rate_band: correct traces of problems whose pass rate is in the band; "
        "all: every trace, its verdict a column (OpenThoughts3 found SFT from a strong "
        "teacher does as well without the correctness filter).",
    )
    max_per_problem: int | None = Field(
        None, ge=1, description="Keep at most this many traces per problem (shortest: 1)."
    )
    prefer: Prefer = Field(
        "sample",
        description="Which of a problem's traces come first: sample (index), shortest, "
        "longest, or the highest of a score (quality, checks_per_1k, explores_per_1k, "
        "steps_per_1k).",
    )
    pass_rate_min: float = Field(0.0, ge=0, le=1, description="Lower end of the band.")
    pass_rate_max: float = Field(1.0, ge=0, le=1, description="Upper end of the band.")
    bands: list[Band] = Field(
        default_factory=list, description="Ranges of measures to keep, applied in order."
    )
    mix: Mix | None = Field(None, description="Spread over sources, domains or topics.")
    budget: Budget | None = Field(None, description="How many problems or traces to keep.")
    dispute_agreement: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Share of samples agreeing on a non-reference answer that flags the "
        "reference as disputed.",
    )

    @model_validator(mode="before")
    @classmethod
    def _preset_first(cls, data: Any) -> Any:
        return with_preset(data)

    @model_validator(mode="after")
    def _band_in_order(self) -> SelectConfig:
        if self.pass_rate_min > self.pass_rate_max:
            raise ValueError("pass_rate_min must not exceed pass_rate_max")
        return self

    @property
    def keeps_unverified(self) -> bool:
        return self.policy == "all"


DEFAULT_RUBRIC = (
    "Rate how hard this problem is for a strong student, from 1 to 10: 1 is a one-step "
    "exercise, 4 a standard textbook problem, 7 a hard competition problem (AIME level), 10 "
    "an olympiad problem few can solve. Think briefly about what solving it takes, then end "
    "with a line 'Rating: N'."
)


class DifficultyConfig(Config):
    """How hard each problem is, measured by models: a weaker solver's pass rate (s1's
    'a smaller model solves it') and a rating against a rubric."""

    solver: dict[str, Any] | None = Field(
        None,
        description="A teacher section (backend, model, samples, ...) for a weaker model; "
        "each problem's pass rate over its samples becomes `solver_pass_rate`.",
    )
    rater: dict[str, Any] | None = Field(
        None,
        description="A teacher section for the model that rates each problem against the "
        "rubric; `difficulty_rating` (1-10) and its reasoning become columns.",
    )
    rubric: str = Field(DEFAULT_RUBRIC, description="What the rater is asked; ends 'Rating: N'.")
    verifier: str = Field(
        "auto", description="How the solver's answers are checked (auto: by domain)."
    )
    timeout_s: float = Field(5.0, gt=0, description="Per check of a solver answer.")
    only_solved: bool = Field(
        True,
        description="Ask only about problems the teacher solved at least once (select drops "
        "the others anyway, so asking about them is spent for nothing).",
    )

    @model_validator(mode="after")
    def _something_to_do(self) -> DifficultyConfig:
        if self.solver is None and self.rater is None:
            raise ValueError("give a solver, a rater or both")
        return self


class TopicsConfig(Config):
    """A topic per problem from a taxonomy, chosen by a model: groups for `mix: {by: topic}`
    where the data names none (s1 classified its problems into MSC classes)."""

    classifier: dict[str, Any] = Field(
        description="A teacher section for the model that picks each problem's topic."
    )
    taxonomy: Literal["msc"] | list[str] = Field(
        "msc",
        description="msc (the Mathematics Subject Classification's top-level classes, "
        "shipped) or your own list of topics.",
    )
    only_solved: bool = Field(
        True, description="Ask only about problems the teacher solved at least once."
    )

    @model_validator(mode="after")
    def _topics_given(self) -> TopicsConfig:
        if isinstance(self.taxonomy, list) and len(set(self.taxonomy)) < 2:
            raise ValueError("taxonomy: give at least two distinct topics")
        return self


__all__ = [
    "PRESETS",
    "Band",
    "Budget",
    "Clusters",
    "DifficultyConfig",
    "Mix",
    "SelectConfig",
    "TopicsConfig",
]
