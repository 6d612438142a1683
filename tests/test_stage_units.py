"""One stage contract for both executors: a stage that needs every row (dedup) or a
problem's rows together (select, trace_dedup) sees them so, whether it runs in `curate run`
or as a file command, wherever the shard or batch boundaries fall."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml

import curate.files
import curate.units
from curate.files import run_stage_on_file
from curate.recipe import load_recipe
from curate.regroup import problem_batches
from curate.runner import TraceMarker, run_recipe
from tests.conftest import write_jsonl

TEMPLATE = (
    "A shop sells {a} pencils on Monday and {b} pencils on Tuesday, and twice as many on "
    "Wednesday as on the two days before together. How many pencils does it sell in all?"
)


def traces(problems: int, per_problem: int, correct: int) -> list[dict[str, Any]]:
    """`per_problem` traces of each problem, the first `correct` of them right."""
    rows = []
    for p in range(problems):
        answer = 3 * (p + 10 + p * 7)
        for k in range(per_problem):
            said = answer if k < correct else answer + 1
            rows.append(
                {
                    "problem": TEMPLATE.format(a=p + 10, b=p * 7),
                    "answer": str(answer),
                    "completion": f"<think>step {k}</think>So $\\boxed{{{said}}}$.",
                }
            )
    return rows


def run_recipe_file(
    tmp_path: Path, name: str, rows: list[dict[str, Any]], stages: dict[str, Any], shard_size: int
) -> Path:
    """A recipe over `rows` as existing traces (a local file), with `stages`."""
    columns = {"problem": "problem", "reference": "answer", "completion": "completion"}
    source = {"kind": "files", "path": str(write_jsonl(tmp_path / "traces.jsonl", rows))}
    recipe = {"name": name, "source": {**source, "columns": columns}, **stages}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**recipe, "run": {"shard_size": shard_size}}), "utf-8")
    return path


def test_problem_batches_never_split_a_problem():
    ids = ["a"] * 3 + ["b"] * 4 + ["c"] * 2
    assert problem_batches(ids, 2) == [(0, 3), (3, 7), (7, 9)]
    assert problem_batches(ids, 100) == [(0, 9)]
    assert problem_batches(["a", "b", "a"], 1) is None  # a's rows are apart


def test_file_commands_see_problems_whole_across_batches(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(curate.files, "BATCH_ROWS", 5)  # every problem straddles a batch
    rows = traces(problems=4, per_problem=8, correct=1)
    rows[8:16] = [{**row, "problem": row["problem"] + " Show the work."} for row in rows[:8]]
    source = write_jsonl(tmp_path / "traces.jsonl", rows)
    verified = tmp_path / "verified.parquet"
    run_stage_on_file("verify", source, verified, ["workers=1"])
    deduped = tmp_path / "deduped.parquet"
    run_stage_on_file("dedup", verified, deduped, [])
    out = pl.read_parquet(deduped)
    # traces repeat their problem: that is not a duplicate; the reworded copy is
    dropped = out.group_by("problem").agg(pl.col("dropped").drop_nulls().unique())
    assert sorted(dropped["dropped"].to_list(), key=len) == [[], [], [], ["near_duplicate"]]
    selected = tmp_path / "selected.parquet"
    run_stage_on_file("select", deduped, selected, [])
    rates = pl.read_parquet(selected).filter(pl.col("dropped_at") != "dedup")
    rates = rates.filter(pl.col("pass_rate").is_not_null())
    assert set(rates["pass_rate"].to_list()) == {0.125}  # 1 of 8, never 0.25 and 0.0


@pytest.mark.parametrize("shuffled", [False, True], ids=["together", "apart"])
def test_a_run_over_existing_traces_gives_each_problem_its_pass_rate(
    tmp_path: Path, shuffled: bool
):
    rows = traces(problems=5, per_problem=8, correct=3)
    if shuffled:  # a problem's traces scattered through the file
        random.Random(0).shuffle(rows)
    stages = {
        "verify": {"kind": "math", "workers": 1},
        "trace_dedup": {},
        "select": {"policy": "all_correct"},
    }
    path = run_recipe_file(tmp_path, "units", rows, stages, shard_size=6)
    result = run_recipe(load_recipe(path), tmp_path / "run")
    assert_problems_grouped(result, shuffled)
    ledger = pl.from_arrow(pq.read_table(tmp_path / "run" / "ledger"))
    assert isinstance(ledger, pl.DataFrame)
    assert set(ledger["pass_rate"].drop_nulls().to_list()) == {3 / 8}
    assert ledger.height == 40 and result.dataset_rows == 15


@pytest.mark.parametrize("shuffled", [False, True], ids=["together", "apart"])
def test_repeated_traces_are_found_wherever_they_sit(tmp_path: Path, monkeypatch, shuffled):
    """trace_dedup over a problem's traces spread through the input finds the same repeats
    as when they come together, shard by shard: the source regrouped them by problem."""
    from curate.dedup import TraceDedupStage

    rows = []
    for start in range(0, 24, 4):  # a copy of each problem's first trace after its own
        group = traces(problems=6, per_problem=4, correct=2)[start : start + 4]
        rows += [*group, {**group[0], "completion": group[0]["completion"].replace(" ", "  ")}]
    if shuffled:
        random.Random(1).shuffle(rows)
    seen: list[bool] = []  # per call: whether the frame held the traces' text
    real = TraceDedupStage.process

    def watched(self: TraceDedupStage, frame: pl.DataFrame) -> pl.DataFrame:
        seen.append(frame["reasoning"].null_count() < frame.height)
        return real(self, frame)

    monkeypatch.setattr(TraceDedupStage, "process", watched)
    path = run_recipe_file(tmp_path, "repeats", rows, {"trace_dedup": {}}, shard_size=5)
    result = run_recipe(load_recipe(path), tmp_path / "run")
    assert_problems_grouped(result, shuffled)
    assert result.stats["trace_dedup"]["dropped"] == {"duplicate_trace": 6}
    ledger = pl.read_parquet(tmp_path / "run" / "ledger")
    repeats = ledger.filter(pl.col("dropped") == "duplicate_trace")
    assert (repeats["dup_of"].str.split("#").list.first() == repeats["problem_id"]).all()
    assert len(seen) > 1 and all(seen)  # shard by shard, with the text, either way


@pytest.mark.parametrize("shuffled", [False, True], ids=["together", "apart"])
def test_shortest_correct_trace_is_kept_wherever_the_traces_sit(tmp_path: Path, shuffled):
    """select's shortest-first policy over traces spread through the input keeps the same
    trace as when they come together."""
    rows = traces(problems=6, per_problem=4, correct=3)
    for k, row in enumerate(rows):  # the later a correct trace, the shorter its reasoning
        row["completion"] = row["completion"].replace("<think>", "<think>" + "x " * (9 - k % 4))
    if shuffled:
        random.Random(2).shuffle(rows)
    stages = {
        "verify": {"kind": "math", "workers": 1},
        "select": {"policy": "shortest_correct"},
    }
    path = run_recipe_file(tmp_path, "shortest", rows, stages, shard_size=5)
    result = run_recipe(load_recipe(path), tmp_path / "run")
    assert_problems_grouped(result, shuffled)
    ledger = pl.read_parquet(tmp_path / "run" / "ledger")
    kept = ledger.filter(pl.col("selected"))
    assert kept["reasoning"].to_list() == ["x " * 7 + "step 2"] * 6  # the shortest correct one
    assert ledger["reasoning"].null_count() == 0  # the text itself is untouched


KILLED_MID_FILE = """
import os, signal, sys
from pathlib import Path
import curate.files as files
import curate.units as units
files.BATCH_ROWS = 10
real, calls = units.process_batch, []
def dying(stage, table):
    calls.append(1)
    if len(calls) == 4:  # the fourth batch: killed while working on it
        os.kill(os.getpid(), signal.SIGKILL)
    return real(stage, table)
units.process_batch = dying
files.run_stage_on_file("verify", Path(sys.argv[1]), Path(sys.argv[2]), ["workers=1"])
"""


def test_a_file_command_killed_mid_file_redoes_one_batch(tmp_path: Path, monkeypatch):
    source = write_jsonl(tmp_path / "traces.jsonl", traces(problems=30, per_problem=4, correct=2))
    out = tmp_path / "verified.parquet"
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_FILE, str(source), str(out)])
    assert killed.returncode == -signal.SIGKILL and not out.exists()
    monkeypatch.setattr(curate.files, "BATCH_ROWS", 10)
    real, calls = curate.units.process_batch, []

    def counting(stage, table):
        calls.append(table.num_rows)
        return real(stage, table)

    monkeypatch.setattr(curate.units, "process_batch", counting)
    run_stage_on_file("verify", source, out, ["workers=1"])
    assert len(calls) == 12 - 3  # 120 rows in batches of 10; three were finished
    resumed = pl.read_parquet(out)
    fresh = tmp_path / "fresh.parquet"
    run_stage_on_file("verify", source, fresh, ["workers=1"])
    assert resumed.equals(pl.read_parquet(fresh))
    assert not list(tmp_path.glob(".*.parts"))  # the batches are cleared once written


KILLED_AT_DECIDE = """
import os, signal, sys
from pathlib import Path
import curate.files as files
import curate.units as units
files.BATCH_ROWS = 10
def dying(stage, shards, path):
    os.kill(os.getpid(), signal.SIGKILL)  # every shard's keys made, nothing compared yet
units.compare_step = dying
files.run_stage_on_file("dedup", Path(sys.argv[1]), Path(sys.argv[2]), [])
"""


def test_a_file_dedup_killed_after_its_keys_takes_them_up(tmp_path: Path, monkeypatch):
    """A file command runs its stage through the run store's steps and markers: dedup on a
    file killed once every shard's keys were made makes none again when run again, and
    decides as a run that was never killed (a problem listed twice is a duplicate)."""
    from curate.dedup import DedupStage

    rows = [{"problem": TEMPLATE.format(a=p, b=p + 1), "answer": str(p)} for p in range(35)]
    rows += [rows[3], rows[30], {**rows[7], "answer": None}, {**rows[9]}]
    rows[9] = {**rows[9], "answer": None}  # its repeat, with an answer, is the copy kept
    source = write_jsonl(tmp_path / "problems.jsonl", rows)
    out = tmp_path / "deduped.parquet"
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_DECIDE, str(source), str(out)])
    assert killed.returncode == -signal.SIGKILL and not out.exists()
    assert len(list(tmp_path.glob(".deduped.parquet.parts/*/stages/01-dedup/keys/*"))) == 4
    monkeypatch.setattr(curate.files, "BATCH_ROWS", 10)
    real, made = DedupStage.keys, []

    def counting(self, problems):
        made.append(problems.height)
        return real(self, problems)

    monkeypatch.setattr(DedupStage, "keys", counting)
    stats = run_stage_on_file("dedup", source, out, [])
    assert made == []  # the keys made before the kill were taken up
    resumed = pl.read_parquet(out)
    dropped = ["exact_duplicate" if k == 9 or k >= 35 else None for k in range(39)]
    dropped[38] = None
    assert resumed["dropped"].to_list() == dropped
    ids = resumed["problem_id"].to_list()
    assert ids[35:] == [ids[3], ids[30], ids[7], ids[9]]  # the file's ids, repeats alike
    assert resumed["dup_of"].drop_nulls().to_list() == [ids[9], ids[3], ids[30], ids[7]]
    assert stats["in"] == 39 and stats["dropped"] == {"exact_duplicate": 4}
    assert not list(tmp_path.glob(".*.parts"))


def test_trace_numbers_given_or_not_and_repeats_found():
    """Samples without a number take the next free one of their problem; a number given
    twice for one problem (or given after it was handed out) is a duplicate."""
    mark = TraceMarker(round_=2)
    given = [("p", None), ("p", None), ("p", 1), ("p", 5), ("p", None), ("p", 0), ("q", 2)]
    given += [("q", None), ("p", 6), ("q", 2)]
    rows = [{"problem_id": p, "sample_idx": n} for p, n in given]
    reasons = [mark(row) for row in rows]
    assert [row["sample_idx"] for row in rows] == [0, 1, 1, 5, 6, 0, 2, 3, 6, 2]
    repeats = [k for k, reason in enumerate(reasons) if reason]
    assert repeats == [2, 5, 8, 9] and set(reasons) == {None, "duplicate_sample"}
    assert {row["round"] for row in rows} == {2}


def assert_problems_grouped(result: Any, scattered: bool) -> None:
    """Each problem's rows sit in one ledger shard, in reading order (sample numbers
    rising); the source says how many problems it regrouped, only when it had to."""
    regrouped = result.stats["source"].get("regrouped_problems", 0)
    assert (regrouped > 0) == scattered
    owner: dict[str, str] = {}
    for shard in sorted((result.run_dir / "ledger").glob("*.parquet")):
        rows = pl.read_parquet(shard, columns=["problem_id", "sample_idx"])
        for pid, group in rows.group_by("problem_id", maintain_order=True):
            assert owner.setdefault(str(pid[0]), shard.name) == shard.name
            assert group["sample_idx"].is_sorted()


def test_a_stage_that_sees_every_row_at_once_compares_its_keys(tmp_path: Path, monkeypatch):
    """A plugin stage that needs the whole input (here: a reasoning seen anywhere before,
    across problems and shards) gets every shard's keys (hashes, made a shard at a time)
    in one batch, in input order; each shard is written back with what it decided."""
    from curate import registry
    from curate.records import stable_hash
    from curate.stage import Config, Stage

    batches: list[int] = []

    class SeenAnywhere(Stage):
        name = section = "seen_anywhere"
        unit = "all_rows"
        config_class = Config
        reads = ("reasoning",)

        def keys(self, rows: pl.DataFrame) -> pl.DataFrame:
            hashes = [stable_hash(text) for text in rows["reasoning"]]
            return rows.with_columns(pl.Series("reasoning", hashes))

        def process(self, frame: pl.DataFrame) -> pl.DataFrame:
            batches.append(frame.height)
            repeat = frame["reasoning"].is_first_distinct().not_()
            reason = pl.when(repeat).then(pl.lit("seen_before")).otherwise(None)
            return frame.with_columns(reason.alias("dropped"))

    items = {**registry.stages._items, "seen_anywhere": SeenAnywhere}
    monkeypatch.setattr(registry.stages, "_items", items)
    rows = traces(problems=6, per_problem=4, correct=2)  # each reasoning in every problem
    path = run_recipe_file(tmp_path, "anywhere", rows, {"stages": ["seen_anywhere"]}, 5)
    result = run_recipe(load_recipe(path), tmp_path / "run")
    assert batches == [24]
    assert len(list((tmp_path / "run" / "ledger").glob("*.parquet"))) == 3  # 8 rows each
    ledger = pl.read_parquet(tmp_path / "run" / "ledger")
    kept = ledger.filter(pl.col("dropped").is_null())
    assert kept["reasoning"].to_list() == [f"step {k}" for k in range(4)]
    assert result.stats["seen_anywhere"]["dropped"] == {"seen_before": 20}
    assert ledger["reasoning"].to_list() == [f"step {k % 4}" for k in range(24)]  # untouched


@pytest.mark.parametrize("shuffled", [False, True], ids=["together", "apart"])
def test_file_commands_and_a_run_decide_alike_on_existing_traces(tmp_path: Path, shuffled):
    """The same traces through `curate verify|dedup|trace_dedup|select --in` one file after
    another, and through `curate run` with those stages: every trace gets the same verdict,
    drop reason, pass rate and selection (the run's ledger is regrouped by problem and
    splits the think part off; the decisions are what must agree)."""
    rows = traces(problems=6, per_problem=4, correct=2)
    rows += [{**rows[0], "completion": rows[0]["completion"].replace(" ", "  ")}]  # a repeat
    rows += [{**row, "problem": row["problem"] + " Show the work."} for row in rows[4:8]]
    if shuffled:
        random.Random(3).shuffle(rows)
    names = ["verify", "dedup", "trace_dedup", "select"]
    path = write_jsonl(tmp_path / "traces.jsonl", rows)
    for name in names:
        out = tmp_path / f"{name}.parquet"
        run_stage_on_file(name, path, out, ["workers=1"] if name == "verify" else [])
        path = out
    chained = pl.read_parquet(path)
    stages = {"stages": names, "verify": {"kind": "math", "workers": 1}}
    recipe = run_recipe_file(tmp_path, "alike", rows, stages, shard_size=5)
    run_recipe(load_recipe(recipe), tmp_path / "run")
    ledger = pl.read_parquet(tmp_path / "run" / "ledger")
    decided = ["problem", "sample_idx", "verdict", "dropped", "pass_rate", "selected"]
    assert (
        ledger.select(decided)
        .sort("problem", "sample_idx")
        .equals(chained.select(decided).sort("problem", "sample_idx"))
    )
    assert set(ledger["dropped"].drop_nulls()) >= {"duplicate_trace", "near_duplicate"}


def test_existing_traces_are_sharded_in_thousands_unless_told(tmp_path: Path):
    """Per-shard costs (a few file reads and writes per stage) would dominate a million
    traces in the 256-row shards that suit generation: traces get 8,192 rows a shard by
    default, and run.shard_size still decides when set."""
    rows = traces(problems=150, per_problem=4, correct=2)
    recipe = run_recipe_file(tmp_path, "default", rows, {"trace_dedup": {}}, 256)
    settings = yaml.safe_load(recipe.read_text())
    told = run_recipe(load_recipe(recipe), tmp_path / "told")
    del settings["run"]
    recipe.write_text(yaml.safe_dump(settings), "utf-8")
    default = run_recipe(load_recipe(recipe), tmp_path / "default")
    assert len(list((tmp_path / "told" / "ledger").glob("part-*.parquet"))) == 3
    assert len(list((tmp_path / "default" / "ledger").glob("part-*.parquet"))) == 1
    assert default.dataset_rows == told.dataset_rows == 600


def test_a_dataset_of_several_files_loads_when_a_shard_keeps_nothing(tmp_path: Path):
    """A file per ledger shard with kept rows: a shard whose traces were all dropped gets no
    file (`datasets` fails on an empty Parquet file beside others), and the rest load."""
    import datasets

    rows = traces(problems=3, per_problem=4, correct=2)
    for row in rows[4:8]:  # the second problem: every trace wrong
        row["completion"] = row["completion"].replace("boxed{", "boxed{1")
    stages = {"verify": {"workers": 1}, "select": {"policy": "all_correct"}}
    recipe = run_recipe_file(tmp_path, "gaps", rows, stages, 4)
    result = run_recipe(load_recipe(recipe), tmp_path / "run")
    files = sorted((tmp_path / "run" / "dataset" / "data").glob("*.parquet"))
    assert [f.name for f in files] == [
        "train-00000-of-00002.parquet",
        "train-00001-of-00002.parquet",
    ]
    loaded = datasets.load_dataset(str(tmp_path / "run" / "dataset"), split="train")
    assert loaded.num_rows == result.dataset_rows == 4
    assert set(loaded["verdict"]) == {"correct"}
