"""Kill -9 mid-generation or mid-source, rerun, and compare with a run that was never
interrupted."""

from __future__ import annotations

import importlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from curate import runner as run_module
from curate import units
from curate.generate.stage import CACHE_FILE
from curate.recipe import load_recipe
from curate.runner import run_recipe
from tests.conftest import KILLED_AT_THIRD_CALL, math_rows, write_jsonl
from tests.test_stage_units import traces

PROBLEMS = 240
SAMPLES = 4
TEACHER = ["teacher.latency_ms=40", "teacher.max_concurrency=8", f"teacher.samples={SAMPLES}"]


def curate(recipe: Path, run_dir: Path, *extra: str) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "curate", "run", str(recipe), "--run-dir", str(run_dir)]
    for item in [*TEACHER, *extra]:
        args += ["--set", item]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def cached(run_dir: Path) -> int:
    path = run_dir / "cache" / CACHE_FILE
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return int(db.execute("select count(*) from samples").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # table not created yet


def ledger(run_dir: Path) -> list[dict]:
    rows = pq.read_table(run_dir / "ledger").drop_columns(["latency_s"]).to_pylist()
    return sorted(rows, key=lambda r: (r["problem_id"], r["sample_idx"]))


@pytest.mark.parametrize("kill_at", [150, 610])
def test_kill_mid_generation_then_resume(tmp_path: Path, make_recipe, kill_at: int):
    write_jsonl(tmp_path / "problems.jsonl", math_rows(PROBLEMS))
    recipe = make_recipe(run={"shard_size": 50})
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert curate(recipe, whole).wait(120) == 0

    process = curate(recipe, broken)
    deadline = time.monotonic() + 60
    while cached(broken) < kill_at and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = cached(broken)
    assert kill_at <= before < PROBLEMS * SAMPLES
    finished_shards = (
        pq.read_table(broken / "stages" / "01-generate").num_rows
        if list((broken / "stages" / "01-generate").glob("part-*.parquet"))
        else 0
    )

    resumed = curate(recipe, broken)
    assert resumed.wait(120) == 0, resumed.stderr.read().decode() if resumed.stderr else ""
    rows = ledger(broken)
    assert rows == ledger(whole)
    keys = [(r["problem_id"], r["sample_idx"]) for r in rows]
    assert len(keys) == len(set(keys)) == PROBLEMS * SAMPLES

    import json

    counts = json.loads((broken / "stats.json").read_text())["generate"]["counts"]
    # Shards finished before the kill were not touched; the others took every cached sample
    # from the cache and asked the teacher only for the rest.
    assert counts["cache_hits"] == before - finished_shards
    assert cached(broken) == PROBLEMS * SAMPLES


def test_kill_while_talking_to_a_server_then_resume(tmp_path: Path, make_recipe):
    """The OpenAI backend against FakeChatServer: after kill -9, only missing prompts are sent."""
    from tests.generate.fake_server import FakeChatServer, Faults

    write_jsonl(tmp_path / "problems.jsonl", math_rows(200))
    with FakeChatServer(Faults(latency_s=0.02)) as server:
        recipe = make_recipe(
            run={"shard_size": 25},
            teacher={
                "backend": "openai",
                "model": "fake",
                "base_url": server.url,
                "samples": 4,
                "max_concurrency": 4,
            },
        )
        whole, broken = tmp_path / "whole", tmp_path / "broken"
        args = ["--set", "teacher.max_concurrency=4"]
        assert curate_plain(recipe, whole, *args).wait(120) == 0
        process = curate_plain(recipe, broken, *args)
        deadline = time.monotonic() + 60
        while cached(broken) < 300 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.01)
        assert process.poll() is None, "the run finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        done = cached_keys(broken)
        missing_prompts = 200 - sum(1 for count in done.values() if count == 4)
        before = server.requests
        assert curate_plain(recipe, broken, *args).wait(120) == 0
        assert server.requests - before == missing_prompts
    assert ledger(broken) == ledger(whole)


def curate_plain(recipe: Path, run_dir: Path, *extra: str) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "curate", "run", str(recipe), "--run-dir", str(run_dir), *extra]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cached_keys(run_dir: Path) -> dict[str, int]:
    """Samples cached per gen_key."""
    with sqlite3.connect(f"file:{run_dir / 'cache' / CACHE_FILE}?mode=ro", uri=True) as db:
        return dict(db.execute("select gen_key, count(*) from samples group by gen_key"))


def trace_recipe(tmp_path: Path, scattered: bool = False) -> Path:
    """Existing traces (8 problems of 4) through trace_dedup, in shards of about 6 rows;
    `scattered`: a problem's traces spread through the file."""
    rows = traces(problems=8, per_problem=4, correct=2)
    data = write_jsonl(tmp_path / "traces.jsonl", rows[::2] + rows[1::2] if scattered else rows)
    columns = {"problem": "problem", "reference": "answer", "completion": "completion"}
    source = {"kind": "files", "path": str(data), "columns": columns}
    recipe = tmp_path / "existing.yaml"
    settings = {"name": "kill", "source": source, "trace_dedup": {}, "run": {"shard_size": 6}}
    recipe.write_text(json.dumps(settings))
    return recipe


def killed_then_rerun(
    recipe: Path, run_dir: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Path], Any]:
    """kill -9 at the third call of curate.runner's `name`, then the run again here: the
    paths the rerun wrote through the runner, and its result."""
    args = ["run", str(recipe), "--run-dir", str(run_dir)]
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_THIRD_CALL, name, *args])
    assert killed.returncode == -signal.SIGKILL
    real, written = run_module.write_parquet, []

    def watched(table: Any, path: Path, *args: Any) -> None:
        written.append(path)
        real(table, path, *args)

    monkeypatch.setattr(run_module, "write_parquet", watched)
    shards_written = units.write_shard

    def watched_shard(table: Any, path: Path, *args: Any) -> None:
        written.append(path)
        shards_written(table, path, *args)

    monkeypatch.setattr(units, "write_shard", watched_shard)
    result = run_recipe(load_recipe(recipe), run_dir)
    monkeypatch.undo()
    return written, result


def test_kill_mid_source_keeps_the_shards_it_wrote(tmp_path: Path, monkeypatch):
    """Existing traces read into shards: after kill -9 at the third shard, the rerun keeps
    the two written (it reads the input again, since a row's marks depend on the rows
    before it) and the run ends as an uninterrupted one does."""
    recipe = trace_recipe(tmp_path)
    run_dir = tmp_path / "run"
    written, result = killed_then_rerun(recipe, run_dir, "write_parquet", monkeypatch)
    shards = run_dir / "stages" / "00-source"
    assert [p.name for p in written if p.parent == shards / "keys" / "read"] == [
        f"part-0000{n}.parquet"
        for n in range(2, 4)  # 8 rows each: problems kept whole
    ]
    fresh = run_recipe(load_recipe(recipe), tmp_path / "fresh")
    assert result.stats["source"]["in"] == fresh.stats["source"]["in"] == 32
    assert ledger(run_dir) == ledger(tmp_path / "fresh")


@pytest.mark.parametrize("step", ["write_group", "write_bucket"])
def test_kill_while_the_source_regroups_scattered_traces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
):
    """Traces scattered through the input are regrouped by problem in two passes (here each
    read shard is a group of pass 1): after kill -9 at the third group of pass 1, or the
    third bucket of pass 2, the rerun redoes only the groups or buckets not written, and
    ends as an uninterrupted run does."""
    import curate.regroup as regroup

    monkeypatch.setattr(regroup, "GROUP_BYTES", 1)
    recipe = trace_recipe(tmp_path, scattered=True)
    run_dir = tmp_path / "run"
    args = ["run", str(recipe), "--run-dir", str(run_dir)]
    script = "import curate.regroup as r; r.GROUP_BYTES = 1" + KILLED_AT_THIRD_CALL
    killed = subprocess.run([sys.executable, "-c", script, f"curate.regroup:{step}", *args])
    assert killed.returncode == -signal.SIGKILL
    work = run_dir / "stages" / "00-source" / "keys" / "regroup"
    groups, buckets = len(list(work.glob("group-*"))), len(list(work.glob("*.done")))
    assert (groups, buckets) == ((2, 0) if step == "write_group" else (6, 2))
    calls: list[Any] = []
    real = getattr(regroup, step)
    monkeypatch.setattr(regroup, step, lambda *a: calls.append(a) or real(*a))
    result = run_recipe(load_recipe(recipe), run_dir)
    assert len(calls) == 4  # of 6 groups (one per read shard), or of 6 buckets
    assert result.stats["source"]["regrouped_problems"] == 8
    assert not work.exists()
    monkeypatch.undo()
    run_recipe(load_recipe(recipe), tmp_path / "fresh")
    assert ledger(run_dir) == ledger(tmp_path / "fresh")


def dataset_rows(run_dir: Path) -> list[dict]:
    files = sorted((run_dir / "dataset" / "data").glob("train-*.parquet"))
    rows = [row for path in files for row in pq.read_table(path).to_pylist()]
    return sorted(rows, key=lambda r: (r["problem_id"], r["sample_idx"]))


@pytest.mark.parametrize(
    "step",
    ["curate.shards:materialize", "curate.shards:lean_base", "curate.publish.dataset:write_part"],
)
def test_kill_while_the_run_finishes_redoes_one_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
):
    """The finish (the ledger written whole, the text then kept once, the dataset files) is
    taken up where a kill -9 stopped it: the rerun does only the shards not yet done, and
    its ledger and dataset equal an uninterrupted run's."""
    recipe = trace_recipe(tmp_path)
    run_dir = tmp_path / "run"
    args = ["run", str(recipe), "--run-dir", str(run_dir)]
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_THIRD_CALL, step, *args])
    assert killed.returncode == -signal.SIGKILL
    where, _, name = step.partition(":")
    module = importlib.import_module(where)
    real, calls = getattr(module, name), []
    monkeypatch.setattr(module, name, lambda *a: calls.append(a) or real(*a))
    result = run_recipe(load_recipe(recipe), run_dir)
    shards = len(list((run_dir / "ledger").glob("part-*.parquet")))
    assert shards >= 4
    assert len(calls) == shards - 2
    monkeypatch.undo()
    fresh = run_recipe(load_recipe(recipe), tmp_path / "fresh")
    assert ledger(run_dir) == ledger(tmp_path / "fresh")
    assert dataset_rows(run_dir) == dataset_rows(tmp_path / "fresh")
    assert result.dataset_rows == fresh.dataset_rows == len(dataset_rows(run_dir)) > 0
    assert result.stats["dataset"]["in"] == fresh.stats["dataset"]["in"]


@pytest.mark.parametrize("damaged", ["ledger", "stage"])
def test_a_damaged_shard_is_rebuilt_not_called_current(tmp_path: Path, damaged: str):
    """A truncated ledger shard, or a byte-flipped shard of a stage, makes the run not up to
    date: the rerun rebuilds it and ends with the same ledger and dataset as before."""
    recipe = trace_recipe(tmp_path)
    run_dir = tmp_path / "run"
    first = run_recipe(load_recipe(recipe), run_dir)
    before = (ledger(run_dir), dataset_rows(run_dir))
    if damaged == "ledger":
        shard = sorted((run_dir / "ledger").glob("part-*.parquet"))[1]
        shard.write_bytes(shard.read_bytes()[:-40])  # the footer cut off
    else:
        stage = sorted(p for p in (run_dir / "stages").iterdir() if p.is_dir())[-1]
        shard = sorted(stage.glob("part-*.parquet"))[0]
        data = bytearray(shard.read_bytes())
        data[-12:-8] = b"\xff\xff\xff\xff"  # the footer's length flipped
        shard.write_bytes(bytes(data))
    again = run_recipe(load_recipe(recipe), run_dir)
    assert not again.up_to_date
    assert (ledger(run_dir), dataset_rows(run_dir)) == before
    assert again.dataset_rows == first.dataset_rows
