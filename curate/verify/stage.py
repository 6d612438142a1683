"""The verify stage: a three-state verdict with a reason for every trace."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal, Union

import polars as pl
from pydantic import Discriminator, Field, Tag, create_model, field_validator

from curate import registry
from curate.answers import ANSWER_TAGS, REASONING_TAGS, AnswerFormat, TagPair, as_tag_pairs
from curate.generate.cache import SampleCache
from curate.stage import Config, Stage, StageContext
from curate.verify.base import Result
from curate.verify.dispatch import Dispatcher, Item
from curate.verify.math import DEFAULT_FALLBACKS, Fallback
from curate.verify.tier import CACHE_FILE as JUDGE_CACHE
from curate.verify.tier import AnswerJudge, check_judge_section


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

    think_tags: list[TagPair] = Field(
        default_factory=lambda: list(REASONING_TAGS),
        description="Reasoning delimiters (a pair or a list of pairs): an answer is never "
        "taken from inside them (default: those of common open models, <think> first).",
    )
    answer_tags: list[TagPair] = Field(
        default_factory=lambda: list(ANSWER_TAGS),
        description="Tags around a final answer (<answer>...</answer>); [] to ignore them.",
    )

    judge: dict[str, Any] | None = Field(
        None,
        description="A model tier for what the rules leave undecided: a teacher section "
        "(backend, model, base_url, ...) plus style (general | compass | xverify | "
        "general_verifier), second_look (off | mismatch) and max_answer_chars; asked through "
        "the request cache, never about a rule's correct.",
    )

    volatile = frozenset({"workers"})

    @field_validator("judge")
    @classmethod
    def _judge_section(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_judge_section(value)  # errors at recipe time, naming verify.judge.KEY
        return value

    @field_validator("think_tags", "answer_tags", mode="before")
    @classmethod
    def _tag_pairs(cls, value: Any) -> list[TagPair]:
        return as_tag_pairs(value) if value else []

    def answer_format(self) -> AnswerFormat:
        return AnswerFormat(tuple(self.think_tags), tuple(self.answer_tags))


def section_kind(value: Any) -> str:
    """The verifier a verify section names (auto when it names none)."""
    kind = value.get("kind", "auto") if isinstance(value, dict) else getattr(value, "kind", "auto")
    return str(kind)


@cache
def verify_section() -> Any:
    """The verify section's type: one member per verifier (its own typed settings beside the
    shared ones), and auto; a section without `kind` is auto."""
    members: list[Any] = [
        Annotated[VerifyConfig, Tag("auto")],
    ]
    for name, verifier in registry.verifiers.items():
        own = verifier.settings_class
        fields: dict[str, Any] = {
            n: (f.annotation, f) for n, f in (own.model_fields if own else {}).items()
        }
        fields["kind"] = (Literal[name], Field(name, description=f"The '{name}' verifier."))
        member = create_model(
            f"Verify{name.title()}Config",
            __base__=VerifyConfig,
            __doc__=f"The verify section naming the '{name}' verifier.",
            **fields,
        )
        members.append(Annotated[member, Tag(name)])
    return Annotated[Union[tuple(members)], Discriminator(section_kind)]  # noqa: UP007


@registry.stages.register()
class VerifyStage(Stage):
    """Judge every trace correct, incorrect or unverifiable, with a reason."""

    name = "verify"
    section = "verify"
    after = ("dedup", "decontaminate")  # existing traces of dropped problems: not judged
    config_class = VerifyConfig
    reads = ("reference", "completion")
    writes: tuple[str, ...] = (
        "verdict",
        "verdict_reason",
        "extracted_answer",
        "verifier",
        "verdict_tier",
    )
    config: VerifyConfig

    @classmethod
    def config_type(cls) -> Any:
        return verify_section()

    def __init__(self, config: VerifyConfig, context: StageContext) -> None:
        super().__init__(config, context)
        tier = None
        if config.judge is not None:
            cache = SampleCache(context.cache_dir / JUDGE_CACHE)
            tier = AnswerJudge.from_section(config.judge, cache)
            self.writes = (*self.writes, "judge_model", "judge_reasoning", "borderline")
        self.dispatcher = Dispatcher(
            config.kind,
            config.timeout_s,
            config.workers,
            config.fallbacks,
            config.answer_format(),
            section=config,
            model_tier=tier,
        )
        self.reads = ("reference", config.answer_from)

    def process(self, frame: pl.DataFrame) -> pl.DataFrame:
        columns = {"domain", "metadata", "tests", "problem"} & set(frame.columns)
        rows = frame.select("reference", self.config.answer_from, *sorted(columns))
        items = [
            Item(
                row[self.config.answer_from],
                row["reference"],
                row.get("domain"),
                row.get("metadata"),
                row.get("tests"),
                row.get("problem"),
            )
            for row in rows.iter_rows(named=True)
        ]
        judged = self.dispatcher.judge(items)
        for result, _ in judged:
            self.counts[f"verdict_{result.verdict}"] += 1
            self.counts[f"tier_{result.tier}"] += result.tier != "rule"
        out = frame.with_columns(
            pl.Series("verdict", [r.verdict for r, _ in judged], pl.String),
            pl.Series("verdict_reason", [r.reason for r, _ in judged], pl.String),
            pl.Series("extracted_answer", [r.extracted for r, _ in judged], pl.String),
            pl.Series("verifier", [label for _, label in judged], pl.String),
            pl.Series("verdict_tier", [r.tier for r, _ in judged], pl.String),
        )
        tier = self.dispatcher.model_tier
        if tier is None:
            return out
        self.counts.update(tier.spent)  # the judge's tokens of this batch, then start afresh
        tier.spent.clear()
        return with_judge_columns(out, judged, tier.label)

    def close(self) -> None:
        self.dispatcher.close()


def with_judge_columns(
    frame: pl.DataFrame, judged: list[tuple[Result, str]], label: str
) -> pl.DataFrame:
    """Who settled each verdict the judge saw, its reasoning, and a review flag where it and a
    rule disagree."""
    asked = [r.tier == "judge" for r, _ in judged]
    earlier = (
        frame["borderline"].to_list() if "borderline" in frame.columns else [None] * len(judged)
    )
    flags = [
        [*(before or []), *(["judge_disputes_rule"] if r.disputed else [])]
        for (r, _), before in zip(judged, earlier, strict=True)
    ]
    return frame.with_columns(
        pl.Series("judge_model", [label if a else None for a in asked], pl.String),
        pl.Series("judge_reasoning", [r.note for r, _ in judged], pl.String),
        pl.Series("borderline", flags, pl.List(pl.String)),
    )
