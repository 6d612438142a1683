"""The optional LLM judge for the borderline band, against a stand-in judge server: SAME
drops the row, DIFFERENT clears it, the reasoning is kept, a rerun asks nothing twice."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from curate.decontam.report import build_report
from curate.decontam.stage import DecontamConfig, DecontaminateStage
from curate.errors import RecipeError
from curate.stage import StageContext
from tests.conftest import write_jsonl
from tests.curation.fake_judge import FakeJudgeServer

ITEM = (
    "A rectangular garden is 12 meters long and 5 meters wide. A path 1 meter wide runs "
    "around the outside of the garden. What is the area of the path in square meters?"
)
BENCH = [{"unique_id": "garden", "problem": ITEM, "answer": "38"}]
# Half the item's words: a borderline n-gram match, for the judge to settle.
HALF = (
    "A rectangular garden is 12 meters long and 5 meters wide. A path 1 meter wide is "
    "laid around it. What is the perimeter of the outer edge of that path?"
)


def stage(tmp_path: Path, judge: dict | None, **config) -> DecontaminateStage:
    path = write_jsonl(tmp_path / "bench.jsonl", BENCH)
    settings = DecontamConfig(
        benchmarks=["math500"],
        files={"math500": str(path)},
        semantic=None,
        judge=judge,
        **config,
    )
    return DecontaminateStage(settings, StageContext(tmp_path / "cache"))


def rows(*pairs: tuple[str, str | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "problem_id": [f"p{i}" for i in range(len(pairs))],
            "problem": [p for p, _ in pairs],
            "reference": [r for _, r in pairs],
        },
        schema={"problem_id": pl.String, "problem": pl.String, "reference": pl.String},
    )


def test_the_judge_settles_the_borderline_band(tmp_path: Path):
    frame = rows((HALF, "34"), (HALF, "38"), (ITEM, "38"), ("What is 7 times 8?", "56"))
    plain = stage(tmp_path, None).process(frame)
    assert plain["contamination"].to_list()[0]["score"] < 0.5  # borderline without a judge
    assert [bool(b) for b in plain["borderline"].to_list()] == [True, True, False, False]
    with FakeJudgeServer() as server:
        judge = {"backend": "openai", "base_url": server.url, "model": "judge"}
        out = stage(tmp_path, judge).process(frame)
        asked = server.requests
        again = stage(tmp_path, judge).process(frame)
        assert server.requests == asked == 2  # the borderline rows only; then the cache
    assert out["contaminated"].to_list() == [False, True, True, False]
    assert out["borderline"].to_list()[0] == []  # cleared, not sent to review
    found = out["contamination"].to_list()
    assert [found[0]["rule"], found[1]["rule"], found[2]["rule"]] == [
        "judge_different",
        "judge_same",
        "text",  # verbatim: decided without the judge
    ]
    assert "Verdict: DIFFERENT" in found[0]["judge"] and found[2]["judge"] is None
    assert again["contaminated"].to_list() == out["contaminated"].to_list()
    report = build_report(out.to_arrow())["math500"]
    assert (report["contaminated"], report["cleared"], report["borderline"]) == (2, 1, 0)
    assert {m["verdict"] for m in report["matches"]} == {"contaminated", "cleared"}


def test_the_judge_needs_benchmark_text_and_a_valid_section(tmp_path: Path):
    with pytest.raises(RecipeError, match=r"decontaminate\.judge\.model"):
        stage(tmp_path, {"backend": "openai", "base_url": "http://127.0.0.1:9/v1"})
    checker = stage(tmp_path, None).checker()
    pack = tmp_path / "pack.npz"
    checker.index.save(pack)
    packed = DecontaminateStage(
        DecontamConfig(
            index=str(pack),
            semantic=None,
            judge={"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "j"},
        ),
        StageContext(tmp_path),
    )
    with pytest.raises(RecipeError, match="index packs leave out"):
        packed.process(rows((HALF, "34")))
