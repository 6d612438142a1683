"""The review stage: reviewers' decisions (RUN/review/decisions.jsonl, from `curate review
pull`) applied inside the pipeline, so the funnel counts them and a re-run applies them again.

It runs right after verification, so selection works on the reviewed verdicts: a corrected
reference replaces the problem's reference and every trace of the problem is verified again
against it; then an accepted trace is correct and a rejected one incorrect (a reviewer's word
on one trace wins over the verifier), so an unverifiable trace a reviewer accepts can be
selected; an undecided one is kept as it is or held back, as the recipe says.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

import polars as pl
from pydantic import Field

from curate import registry
from curate.errors import ReviewError
from curate.records import stable_hash
from curate.stage import Config, Stage, StageContext
from curate.verify.dispatch import Dispatcher, Item

DECISIONS = "decisions.jsonl"


class ReviewConfig(Config):
    """How reviewers' decisions change the data."""

    undecided: Literal["keep", "hold"] = Field(
        "keep", description="Sent traces without a decision yet: keep them, or hold them back."
    )
    apply_corrections: bool = Field(
        True, description="Re-verify a problem's traces against a reviewer-corrected reference."
    )
    url: str | None = Field(
        None,
        description="Argilla server (else ARGILLA_API_URL, else the one `curate argilla up` ran).",
    )
    api_key_env: str = Field(
        "ARGILLA_API_KEY", description="Name of the variable holding the Argilla API key."
    )
    workspace: str | None = Field(None, description="Argilla workspace (default 'review').")
    task: str | None = Field(
        None, description="Review task file (default annotation/review_task.yaml)."
    )
    push: Literal["auto", "never"] = Field(
        "auto",
        description="auto: `curate run` sends borderline traces when a server is configured.",
    )

    # where reviewers work, not what their decisions do to the data
    volatile: ClassVar[frozenset[str]] = frozenset(
        {"url", "api_key_env", "workspace", "task", "push"}
    )


def record_key(problem_id: str, round_: int | None, sample_idx: int | None) -> str:
    """The Argilla record id of a trace (the same as `curate review push` gives it)."""
    return f"{problem_id}-r{round_ or 0}-s{sample_idx}"


@registry.stages.register()
class ReviewStage(Stage):
    """Apply reviewers' decisions: accept, reject, hold back, corrected references."""

    name = "review"
    section = "review"
    after = ("verify",)  # before selection: select reads the verdicts it may change
    config_class = ReviewConfig
    writes = ("review", "reference", "verdict", "verdict_reason")
    reads = ("problem_id", "sample_idx", "reference", "completion", "verdict")
    config: ReviewConfig

    def __init__(self, config: ReviewConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self.decisions = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        folder = self.context.review_dir
        path = folder / DECISIONS if folder is not None else None
        if path is None or not path.exists():
            return {}
        try:
            lines = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
        except ValueError as exc:
            raise ReviewError(f"{path}: not JSON lines ({exc})") from None
        return {line["record"]: line for line in lines}

    def identity(self) -> str:
        # new decisions make the stage run again; the same ones reuse its output
        return stable_hash(super().identity(), json.dumps(self.decisions, sort_keys=True))

    def process(self, frame: pl.DataFrame) -> pl.DataFrame:
        keys = [
            record_key(p, r, s)
            for p, r, s in zip(
                frame["problem_id"], frame["round"], frame["sample_idx"], strict=True
            )
        ]
        found = [self.decisions.get(key) for key in keys]
        frame = frame.with_columns(pl.Series("review", [_review(d) for d in found]))
        if self.config.apply_corrections:
            frame = self._corrected(frame, found)
        return self._decide(frame, found)

    def _decide(self, frame: pl.DataFrame, found: list[dict[str, Any] | None]) -> pl.DataFrame:
        """A reviewer's word on a trace: accepted is correct, rejected incorrect; undecided
        is kept as it is, or held back."""
        verdict = frame["verdict"].to_list()
        reason = frame["verdict_reason"].to_list()
        dropped = frame["dropped"].to_list() if "dropped" in frame.columns else [None] * len(found)
        for index, decision in enumerate(found):
            outcome = decision["decision"] if decision else None
            self.counts["sent"] += decision is not None
            self.counts["decided"] += outcome in ("accept", "reject")
            self.counts["accepted"] += outcome == "accept"
            self.counts["rejected"] += outcome == "reject"
            self.counts["rejected_for_reasoning"] += (decision or {}).get("reason") == (
                "reasoning_unsound"
            )
            if outcome == "accept":
                verdict[index], reason[index] = "correct", None
            elif outcome == "reject":
                why = (decision or {}).get("reason") or "rejected"
                verdict[index], reason[index] = "incorrect", f"review_{why}"
            elif outcome == "undecided" and self.config.undecided == "hold":
                dropped[index] = dropped[index] or "review_pending"
        return frame.with_columns(
            pl.Series("verdict", verdict, pl.String),
            pl.Series("verdict_reason", reason, pl.String),
            pl.Series("dropped", dropped, pl.String),
        )

    def _corrected(self, frame: pl.DataFrame, found: list[dict[str, Any] | None]) -> pl.DataFrame:
        """Every trace of a problem with a corrected reference, verified against it again."""
        corrections = {
            problem: d["corrected_reference"]
            for problem, d in zip(frame["problem_id"], found, strict=True)
            if d and d.get("corrected_reference")
        }
        if not corrections:
            return frame
        self.counts["references_corrected"] += len(corrections)
        rows = frame.with_row_index("_row").filter(pl.col("problem_id").is_in(list(corrections)))
        items = [
            Item(
                r["completion"],
                corrections[r["problem_id"]],
                r.get("domain"),
                r.get("metadata"),
                r.get("tests"),
                r.get("problem"),
            )
            for r in rows.iter_rows(named=True)
        ]
        dispatcher = Dispatcher()
        try:
            judged = dispatcher.judge(items)
        finally:
            dispatcher.close()
        return _apply(frame, rows["_row"].to_list(), corrections, judged, self.counts)


def _apply(
    frame: pl.DataFrame,
    positions: list[int],
    corrections: dict[str, str],
    judged: list[Any],
    counts: Any,
) -> pl.DataFrame:
    reference = frame["reference"].to_list()
    verdict = frame["verdict"].to_list()
    reason = frame["verdict_reason"].to_list()
    problems = frame["problem_id"].to_list()
    for position, (result, _) in zip(positions, judged, strict=True):
        reference[position] = corrections[problems[position]]
        counts["verdicts_changed_by_corrected_reference"] += verdict[position] != result.verdict
        verdict[position], reason[position] = result.verdict, result.reason
    return frame.with_columns(
        pl.Series("reference", reference, pl.String),
        pl.Series("verdict", verdict, pl.String),
        pl.Series("verdict_reason", reason, pl.String),
    )


def _review(decision: dict[str, Any] | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    reviewers = ",".join(sorted({a["reviewer"] for a in decision.get("answers", [])}))
    return {
        "status": "decided" if decision["decision"] != "undecided" else "pending",
        "decision": decision["decision"],
        "corrected_reference": decision.get("corrected_reference"),
        "reviewer": reviewers or None,
    }
