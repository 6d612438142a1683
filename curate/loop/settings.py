"""The recipe's `loop:` section: which problems each round samples, how the policy is
trained and sampled, how rounds are merged, and what is held out for evaluation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from curate.stage import Config


class TrainConfig(Config):
    """The training command run between rounds (curate does not train: it runs this)."""

    command: str = Field(
        description=(
            "Shell command; placeholders: {data_file} (the round's training Parquet), "
            "{dataset} (its folder), {policy} (the model that sampled the round, or "
            "base_model), {base_model}, {output} (where the new policy must be written), "
            "{round}, {python} (the interpreter curate runs in)."
        )
    )
    base_model: str | None = Field(
        None, description="The model round 0's training starts from (a path or Hub id)."
    )
    timeout_s: float | None = Field(None, gt=0, description="Stop training after this long.")


class ServeConfig(Config):
    """A server curate starts for a round's sampling and stops after it."""

    command: str = Field(
        description="Shell command; placeholders {policy}, {port} and {python}, e.g. "
        "`vllm serve {policy} --port {port}`; the policy section's base_url may use {port}."
    )
    ready_timeout_s: float = Field(300, gt=0, description="Wait this long for /v1/models.")


class Curriculum(Config):
    """Harder problems enter in later rounds: a problem's metadata value against a schedule."""

    key: str = Field(description="Metadata key holding a number (say, digits or level).")
    schedule: list[float] = Field(
        description="Highest value allowed in round 0, 1, ...; the last applies after."
    )


class HeldOut(Config):
    """Problems the loop never trains on, sampled after each training to measure pass@k."""

    fraction: float = Field(0.1, ge=0, lt=1, description="Share of problems held out.")
    samples: int = Field(4, ge=1, description="Samples per held-out problem (the k of pass@k).")
    temperature: float | None = Field(
        None, ge=0, description="Sampling temperature for evaluation (default: the policy's)."
    )


class MergeConfig(Config):
    """How accepted traces of all rounds so far become the round's training set."""

    max_per_problem: int = Field(4, ge=1, description="Most traces of one problem.")
    prefer: Literal["newer", "shorter"] = Field(
        "newer", description="Which traces a problem keeps first: newer rounds, or shorter."
    )
    teacher_mix: float | None = Field(
        None,
        ge=0,
        description="Teacher (round 0) rows per policy row at most; null keeps them all.",
    )
    exclude_flags: list[str] = Field(
        default_factory=list,
        description="Leave out traces marked borderline for these reasons, e.g. lucky_hit "
        "(the only correct sample of several: often a right answer from wrong steps).",
    )


class Rationalize(Config):
    """STaR rationalisation: problems the policy failed, sampled again with the reference as a
    hint; verified traces are kept with the hint removed from their prompt."""

    hint_template: str = Field(
        "{problem}\n\n(Hint: the correct final answer is {reference}. Explain how to reach "
        "it without mentioning the hint.)\n\nPlease reason step by step, and put your final "
        "answer within \\boxed{}.",
        description="User message for a rationalisation; {problem} and {reference}.",
    )


class LoopConfig(Config):
    """Rounds of sample -> verify -> select -> train; later rounds sample the trained policy."""

    resample: Literal["unsolved", "below_target", "all"] = Field(
        "unsolved",
        description="Which problems a later round samples: unsolved ones, those below "
        "target_pass_rate, or all.",
    )
    target_pass_rate: float = Field(0.75, ge=0, le=1, description="For resample: below_target.")
    policy: dict[str, Any] | None = Field(
        None,
        description="The teacher section used from round 1 on ({policy}: the trained model's "
        "path); default: the teacher section with model: {policy}.",
    )
    serve: ServeConfig | None = Field(None, description="Start a server for each round.")
    train: TrainConfig | None = Field(None, description="Training between rounds.")
    merge: MergeConfig = Field(default_factory=MergeConfig, description="Merging rounds.")
    held_out: HeldOut | None = Field(
        default_factory=HeldOut, description="Held-out evaluation (null: none)."
    )
    curriculum: Curriculum | None = Field(None, description="Harder problems in later rounds.")
    rationalize: Rationalize | None = Field(
        None, description="STaR rationalisation of failed problems (null: off)."
    )
    publish: bool = Field(
        False,
        description="Publish each round to publish.repo_id, on the branch round-R (token from "
        "HF_TOKEN; endpoint from HF_ENDPOINT).",
    )
