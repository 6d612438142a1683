"""Existing traces through `curate run` with no teacher: the recipe users copy
(pipelines/curate-existing.yaml) over a local file, problem-level stages acting once per
problem and carrying their result to every trace of it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from curate.errors import SourceError
from curate.recipe import load_recipe
from curate.runner import run_recipe
from curate.shards import read_shard
from tests.conftest import write_jsonl

PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "curate-existing.yaml"
LONG = (
    "A farmer has {n} sheep and buys {m} more at the market on Monday, then sells a third of "
    "the whole flock on Friday to a neighbour who keeps goats. How many sheep are left?"
)
BENCH = "What is the smallest prime number greater than one hundred and ten, written in digits?"


def trace(answer: str, note: str = "") -> str:
    return f"<think>Count carefully. {note}</think>The answer is $\\boxed{{{answer}}}$."


def corpus() -> list[dict[str, Any]]:
    first = LONG.format(n=30, m=30)  # 60 sheep, 20 sold: 40 left
    near = first + " Show your work."  # the same problem, a few words more
    other = LONG.format(n=45, m=15)  # other numbers: another problem (also 40)
    return [
        # one row per trace, reasoning in think tags
        {"problem": first, "answer": "40", "generations": trace("40", "a")},
        {"problem": first, "answer": "40", "generations": trace("39", "b")},
        {"problem": first, "answer": "40", "generations": trace("40", "a")},  # repeated
        {"problem": first, "answer": "40", "generations": "<think>Count care"},  # cut off
        # a list of traces in one row
        {"problem": near, "answer": "40", "generations": [trace("40"), trace("40", "x")]},
        {"problem": other, "answer": "40", "generations": [trace("40"), trace("41")]},
        {"problem": BENCH, "answer": "113", "generations": [trace("113"), trace("113", "y")]},
    ]


def recipe(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    """The shipped pipeline, its source pointed at a local file and its benchmark at a
    local copy (tests never reach the Hub)."""
    data = yaml.safe_load(PIPELINE.read_text())
    data["source"] = {
        "kind": "files",
        "path": str(write_jsonl(tmp_path / "traces.jsonl", rows)),
        "columns": {**data["source"]["columns"], "metadata": []},
        "trace_model": data["source"]["trace_model"],
    }
    bench = write_jsonl(tmp_path / "bench.jsonl", [{"problem": BENCH, "answer": "113"}])
    data["decontaminate"] = {"benchmarks": ["math500"], "files": {"math500": str(bench)}}
    data["decontaminate"]["semantic"] = None
    data["verify"]["workers"] = 1
    data["run"] = {"shard_size": 3}  # problems and traces cross shard boundaries
    path = tmp_path / "existing.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_existing_traces_are_curated_without_a_teacher(tmp_path: Path):
    result = run_recipe(load_recipe(recipe(tmp_path, corpus())), tmp_path / "run")
    stats = result.stats
    assert "generate" not in stats
    assert stats["source"]["in"] == 10 and not stats["source"]["dropped"]
    ledger = pl.from_arrow(pq.read_table(tmp_path / "run" / "ledger")).sort("problem", "sample_idx")
    assert ledger.height == 10  # every trace, none lost as a "duplicate problem"
    first = ledger.filter(pl.col("problem") == LONG.format(n=30, m=30))
    assert first["sample_idx"].to_list() == [0, 1, 2, 3]
    assert set(first["model"].to_list()) == {"deepseek-ai/DeepSeek-R1"}
    assert first["reasoning"].to_list()[0] == "Count carefully. a"
    assert first["finish_reason"].to_list()[3] == "length"
    dropped = dict(zip(first["sample_idx"], first["dropped"], strict=True))
    assert dropped[0] is None and dropped[1] == "incorrect" and dropped[2] == "duplicate_trace"
    # the near-duplicate problem: all its traces go with its problem, pointing at the keeper
    near = ledger.filter(pl.col("problem").str.contains("Show your work"))
    assert near["dropped"].to_list() == ["near_duplicate"] * 2
    assert set(near["dup_of"].to_list()) == {first["problem_id"][0]}
    other = ledger.filter(pl.col("problem") == LONG.format(n=45, m=15))
    assert other["dup_of"].null_count() == 2  # other numbers: another problem
    bench = ledger.filter(pl.col("problem") == BENCH)
    assert bench["contaminated"].to_list() == [True, True]
    assert set(bench["dropped"].to_list()) == {"contaminated_math500"}
    assert result.dataset_rows == 2  # first's correct trace, other's correct trace
    published = pq.read_table(tmp_path / "run" / "dataset" / "data").to_pylist()
    assert published[0]["prompt"] == [{"role": "user", "content": published[0]["problem"]}]
    card = (tmp_path / "run" / "dataset" / "README.md").read_text()
    assert "the messages that produced them are not known" in card


def test_bad_trace_rows_name_file_row_and_field(tmp_path: Path):
    rows = [*corpus()[:1], {"problem": "What is 1 + 1?", "answer": "2", "generations": [3]}]
    with pytest.raises(SourceError, match=r"traces\.jsonl row 2, field 'generations\[0\]'"):
        run_recipe(load_recipe(recipe(tmp_path, rows)), tmp_path / "run")


def worked(n: int) -> str:
    """Long reasoning, no sentence repeated."""
    return " ".join(f"Step {i}: {n} and {i} make {n + i}." for i in range(120))


def long_rows() -> list[dict[str, Any]]:
    """Ten problems with long traces, each a right one, its repeat and a wrong one."""
    return [
        {
            "problem": LONG.format(n=n, m=30),
            "answer": str((n + 30) * 2 // 3),
            "generations": [  # a repeat before a wrong trace: live and dropped rows mix
                trace(str((n + 30) * 2 // 3), worked(n)),
                trace(str((n + 30) * 2 // 3), worked(n)),
                trace(str((n + 30) * 2 // 3 + 1), worked(n + 1)),
            ],
        }
        for n in range(30, 60, 3)
    ]


def test_stages_after_the_source_keep_only_what_they_change(tmp_path: Path):
    """Disk holds the trace text once: verify, dedup, filters and select write the columns
    they change, pointing at the source's shard; the ledger still has whole rows."""
    rows = long_rows()
    path = recipe(tmp_path, rows)
    settings = yaml.safe_load(path.read_text())
    settings["run"]["shard_size"] = 6  # a problem's traces in one shard: shard by shard
    path.write_text(yaml.safe_dump(settings))
    run = tmp_path / "run"
    run_recipe(load_recipe(path), run)
    stages = sorted((run / "stages").iterdir())
    text_bytes = sum(p.stat().st_size for p in (run / "ledger").glob("part-*.parquet"))
    for stage in stages:  # the source's shards, too, read their text from the ledger
        shards = sorted(stage.glob("part-*.parquet"))
        assert shards, stage.name
        for shard in shards:
            columns = pq.read_schema(shard).names
            assert "reasoning" not in columns and "problem" not in columns, stage.name
            assert read_shard(shard).num_rows == pq.read_metadata(shard).num_rows
        later = sum(p.stat().st_size for p in shards)
        assert later < text_bytes / 4, stage.name
    ledger = pl.read_parquet(run / "ledger").sort("problem", "sample_idx")
    shards = sorted(stages[0].glob("part-*.parquet"))
    source = pl.from_arrow(pa.concat_tables(read_shard(s) for s in shards))
    source = source.sort("problem", "sample_idx")
    assert ledger["reasoning"].to_list() == source["reasoning"].to_list()
    assert ledger["dropped"].to_list() == [None, "duplicate_trace", "incorrect"] * len(rows)
    kept = ledger.filter(pl.col("dropped").is_null())
    expected = [f"Count carefully. {worked(n)}" for n in range(30, 60, 3)]
    assert kept["reasoning"].to_list() == expected


def long_recipe(tmp_path: Path) -> Path:
    path = recipe(tmp_path, long_rows())
    settings = yaml.safe_load(path.read_text())
    settings["run"]["shard_size"] = 6
    path.write_text(yaml.safe_dump(settings))
    return path


def ledger_of(run: Path) -> pl.DataFrame:
    return pl.read_parquet(run / "ledger").sort("problem_id", "sample_idx")


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*.parquet"))


def text_once(run: Path) -> bool:
    """Whether the ledger holds the text and no stage's shard (the source's too) does;
    the stages' files together are smaller than the ledger (each file has a footer)."""
    files = list((run / "stages").rglob("part-*.parquet"))
    no_text = all("reasoning" not in pq.read_schema(f).names for f in files)
    return no_text and folder_bytes(run / "stages") < folder_bytes(run / "ledger")


def test_the_text_is_on_disk_once_and_later_runs_still_read_it(tmp_path: Path):
    path = long_recipe(tmp_path)
    run = tmp_path / "run"
    run_recipe(load_recipe(path), run)
    assert text_once(run)
    changed = ["select.max_per_problem=1", "filters.repetition.max_paragraph_repeats=3"]
    run_recipe(load_recipe(path, changed), run)  # later stages run again on the source
    fresh = tmp_path / "fresh"
    run_recipe(load_recipe(path, changed), fresh)
    assert ledger_of(run).equals(ledger_of(fresh))
    assert text_once(run)
    shutil.rmtree(run / "ledger")  # the text's one copy gone: the run reads its input again
    result = run_recipe(load_recipe(path, changed), run)
    assert ledger_of(run).equals(ledger_of(fresh))
    assert result.stats["source"]["in"] == 30
