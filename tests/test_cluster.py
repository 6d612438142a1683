"""The same recipe through datatrove executors (extra: cluster): the local executor with 1
and with 2 workers writes the same ledger as `curate run` without one; a Slurm dry run
writes and prints the sbatch scripts it would submit, one per stage that leaves the
driver, each after the one before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

import curate.units
from curate.cli import app
from tests.conftest import KILLED_AT_THIRD_CALL, write_jsonl
from tests.test_stage_units import traces

pytestmark = pytest.mark.extras
ROOT = Path(__file__).resolve().parents[1]


def recipe(tmp_path: Path, rows: list[dict[str, Any]] | None = None) -> Path:
    pytest.importorskip("datatrove")
    rows = rows or traces(problems=9, per_problem=4, correct=2)
    data = write_jsonl(tmp_path / "traces.jsonl", rows)
    settings = {
        "name": "cluster",
        "source": {
            "kind": "files",
            "path": str(data),
            "columns": {"problem": "problem", "reference": "answer", "completion": "completion"},
        },
        "dedup": {},
        "verify": {"kind": "math", "workers": 1},
        "trace_dedup": {},
        "select": {"policy": "all_correct", "max_per_problem": 1},
        "filters": {"truncated": True},
        "run": {"shard_size": 8},
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def ledger(run_dir: Path) -> pl.DataFrame:
    frame = pl.read_parquet(run_dir / "ledger").sort("problem_id", "sample_idx")
    return frame.drop("latency_s")


@pytest.mark.parametrize("scattered", [False, True], ids=["together", "apart"])
def test_local_executor_one_or_two_workers_same_ledger(tmp_path: Path, scattered: bool):
    """Also where the input scatters each problem's traces: the source regroups them, so
    the per-problem stage (trace_dedup) runs in the tasks too."""
    rows = traces(problems=9, per_problem=4, correct=2)
    path = recipe(tmp_path, rows[::3] + rows[1::3] + rows[2::3] if scattered else rows)
    runner = CliRunner()
    plain = runner.invoke(app, ["run", str(path), "--run-dir", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    for workers in (1, 2):
        run_dir = tmp_path / f"w{workers}"
        args = ["run", str(path), "--run-dir", str(run_dir), "--executor", "local"]
        result = runner.invoke(app, [*args, "--tasks", "3", "--workers", str(workers)])
        assert result.exit_code == 0, result.output
        assert ledger(run_dir).equals(ledger(tmp_path / "plain"))
        for stage in ("verify", "trace_dedup"):
            completions = list((run_dir / "datatrove").glob(f"*-{stage}-*/completions/*"))
            assert len(completions) == 3  # one marker per task
        # select compares every problem (a budget, groups): the driver runs it, on the
        # measures the stage keeps, not the tasks
        assert not list((run_dir / "datatrove").glob("*-select-*/completions/*"))
    again = runner.invoke(app, [*args, "--tasks", "3"])
    assert "nothing to do" in again.output


def plain_and_local(tmp_path: Path, path: Path) -> None:
    """The recipe run plainly (RUN plain) and on 3 local tasks, 2 at a time (RUN local)."""
    runner = CliRunner()
    plain = runner.invoke(app, ["run", str(path), "--run-dir", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    args = ["run", str(path), "--run-dir", str(tmp_path / "local"), "--executor", "local"]
    result = runner.invoke(app, [*args, "--tasks", "3", "--workers", "2"])
    assert result.exit_code == 0, result.output


def test_dedup_across_tasks_finds_copies_in_other_tasks_shards(tmp_path: Path):
    """dedup on the local executor: each task makes its problems' keys, the driver compares
    them all, the tasks write back. A near copy and a respelled copy whose originals sit in
    another task's shards are caught; problems that differ only in numbers stay; the ledger
    is the one `curate run` writes without an executor."""
    pytest.importorskip("datatrove")
    rows = traces(problems=9, per_problem=4, correct=2)
    near = rows[4]["problem"] + " Show your work."
    rows[24:28] = [{**row, "problem": near} for row in rows[4:8]]  # problem 6 ~ problem 1
    respelled = rows[8]["problem"].upper().replace(" ", "  ")
    rows[32:36] = [{**row, "problem": respelled} for row in rows[8:12]]  # problem 8 = 2
    path = recipe(tmp_path, rows)
    plain_and_local(tmp_path, path)
    found = ledger(tmp_path / "local")
    assert found.equals(ledger(tmp_path / "plain"))
    dropped = found.filter(pl.col("dropped_at") == "dedup")
    assert dropped["problem"].unique().sort().to_list() == sorted([near, respelled])
    assert dropped["dropped"].value_counts().sort("dropped").rows() == [
        ("exact_duplicate", 4),
        ("near_duplicate", 4),
    ]
    assert not (tmp_path / "local" / "stages" / "01-dedup" / "keys").exists()  # done: gone


def count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Calls of curate.units' `name` from now on."""
    real, calls = getattr(curate.units, name), []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(curate.units, name, counting)
    return calls


def left_running(marker: str, wait_s: float = 30.0) -> list[int]:
    """Processes whose command line names `marker`, once they had time to notice their
    parent is gone."""
    deadline = time.monotonic() + wait_s
    while True:
        found = []
        for proc in Path("/proc").iterdir():
            try:
                command = (proc / "cmdline").read_bytes() if proc.name.isdigit() else b""
            except OSError:
                continue
            if marker.encode() in command and int(proc.name) != os.getpid():
                found.append(int(proc.name))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.mark.parametrize("executor", ["plain", "local"])
@pytest.mark.parametrize("step", ["curate.units:shard_problems", "curate.units:write_back"])
def test_a_kill_inside_a_dedup_step_redoes_one_shard(
    tmp_path: Path, monkeypatch, step: str, executor: str
):
    """kill -9 in dedup's keys step or its write-back, in a plain run or in the tasks of
    the local executor: the rerun keeps the shards written before (and the comparison),
    redoes the one in hand and finishes with the plain run's ledger."""
    pytest.importorskip("datatrove")
    path = recipe(tmp_path)
    run_dir = tmp_path / executor
    args = ["run", str(path), "--run-dir", str(run_dir)]
    if executor == "local":
        args += ["--executor", "local", "--tasks", "3", "--workers", "1"]
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_THIRD_CALL, step, *args], cwd=ROOT)
    assert killed.returncode == -signal.SIGKILL
    assert not left_running(str(run_dir))  # the executor's workers and manager ended too
    keys = run_dir / "stages" / "01-dedup" / "keys"
    step = step.removeprefix("curate.units:")
    folder = keys if step == "shard_problems" else run_dir / "stages" / "01-dedup"
    assert len(list(folder.glob("part-*.parquet"))) == 2
    if step == "write_back":  # every shard's keys were made, and they hold no text
        assert len(list(keys.glob("part-*.parquet"))) == 5
        assert "problem" not in pq.read_schema(next(keys.glob("part-*.parquet"))).names
    written = {p: p.stat().st_mtime_ns for p in folder.glob("part-*.parquet")}
    calls = count_calls(monkeypatch, step)
    compared = count_calls(monkeypatch, "problem_results")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(calls) == 5 - 2  # five shards of 8 rows; two were written before the kill
    assert len(compared) == (1 if step == "shard_problems" else 0)
    if step == "write_back":
        assert {p: p.stat().st_mtime_ns for p in written} == written
    assert not keys.exists()  # working files go when the stage is complete
    plain = CliRunner().invoke(app, ["run", str(path), "--run-dir", str(tmp_path / "fresh")])
    assert plain.exit_code == 0, plain.output
    assert ledger(run_dir).equals(ledger(tmp_path / "fresh"))


def test_changed_input_is_compared_on_fresh_keys(tmp_path: Path):
    """A cluster run, then the same recipe over a changed input file: the new near copy is
    found (the first run's keys went with its stage) and the ledger is the plain run's."""
    pytest.importorskip("datatrove")
    rows = traces(problems=9, per_problem=4, correct=2)
    path = recipe(tmp_path, rows)
    args = ["run", str(path), "--run-dir", str(tmp_path / "local"), "--executor", "local"]
    first = CliRunner().invoke(app, [*args, "--tasks", "3"])
    assert first.exit_code == 0, first.output
    near = rows[4]["problem"] + " Show your work."
    rows[24:28] = [{**row, "problem": near} for row in rows[4:8]]
    write_jsonl(tmp_path / "traces.jsonl", rows)
    plain_and_local(tmp_path, path)
    found = ledger(tmp_path / "local")
    assert found.equals(ledger(tmp_path / "plain"))
    assert found.filter(pl.col("problem") == near)["dropped"].to_list() == ["near_duplicate"] * 4


def test_generation_spread_over_tasks_writes_the_plain_ledger(tmp_path: Path):
    """The offline demo (simulated teacher) on the local executor: the tasks generate
    their shards' samples, sharing the run's cache, and the ledger is the plain run's."""
    pytest.importorskip("datatrove")
    settings = yaml.safe_load((ROOT / "pipelines" / "demo.yaml").read_text())
    settings["source"]["tasks"] = {"basic_arithmetic": 12, "gcd": 6, "simple_equations": 6}
    settings["run"] = {"shard_size": 8}
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    plain_and_local(tmp_path, path)
    assert ledger(tmp_path / "local").equals(ledger(tmp_path / "plain"))
    completions = list((tmp_path / "local" / "datatrove").glob("*-generate-*/completions/*"))
    assert len(completions) == 3  # the tasks generated, not the driver


def test_int8_semantic_decontamination_in_tasks_flags_what_the_plain_run_flags(tmp_path: Path):
    """The int8 encoder in datatrove tasks (each with its share of the cores): a rephrase with
    the benchmark's answer and a question lifted out of a long item are dropped, a rephrase
    with another answer is kept, as without an executor."""
    pytest.importorskip("datatrove")
    from tests.curation.test_decontam_semantic import BENCH, QUESTION_ONLY, REPHRASE, int8_ready

    model = int8_ready()
    bench = write_jsonl(tmp_path / "bench.jsonl", BENCH)
    copies = [
        (REPHRASE, "Mechanical solidarity"),
        (QUESTION_ONLY, "the market revolution"),
        (REPHRASE, "organic solidarity"),
    ]
    rows = traces(problems=6, per_problem=1, correct=1)
    rows += [{"problem": p, "answer": a, "completion": f"So {a}."} for p, a in copies]
    semantic = {"model": model, "engine": "int8"}
    settings = {
        "name": "semantic",
        "source": {
            "kind": "files",
            "path": str(write_jsonl(tmp_path / "rows.jsonl", rows)),
            "columns": {"problem": "problem", "reference": "answer", "completion": "completion"},
        },
        "decontaminate": {"benchmarks": ["math500"], "files": {"math500": str(bench)}}
        | {"semantic": semantic},
        "run": {"shard_size": 3},
    }
    path = tmp_path / "semantic.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    plain_and_local(tmp_path, path)
    flags = {}
    for run in ("plain", "local"):
        found = ledger(tmp_path / run)
        flags[run] = dict(zip(found["reference"], found["contaminated"], strict=True))
    assert flags["local"] == flags["plain"]
    assert [flags["local"][answer] for _, answer in copies] == [True, True, False]
    completions = list((tmp_path / "local" / "datatrove").glob("*-decontaminate-*/completions/*"))
    assert len(completions) == 3  # the tasks embedded, not the driver


def test_each_task_takes_its_share_of_the_rate_limits(tmp_path: Path):
    from curate.generate.stage import GenerateStage
    from curate.recipe import validate
    from curate.stage import StageContext

    teacher = {"backend": "openai", "model": "m", "base_url": "http://localhost:1/v1"}
    teacher |= {"requests_per_minute": 600, "tokens_per_minute": 90_000, "max_concurrency": 64}
    recipe = validate({"name": "x", "source": {"kind": "files", "path": "x"}, "teacher": teacher})
    stage = GenerateStage(recipe.teacher, StageContext(tmp_path))
    stage.share(4)
    assert stage.config.requests_per_minute == 150
    assert stage.config.tokens_per_minute == 22_500
    assert stage.config.max_concurrency == 16
    assert stage.config.identity() == recipe.teacher.identity()  # same cache keys


def test_slurm_dry_run_prints_the_scripts_it_would_submit(tmp_path: Path):
    path = recipe(tmp_path)
    run_dir = tmp_path / "slurm"
    args = ["run", str(path), "--run-dir", str(run_dir), "--executor", "slurm", "--dry-run"]
    result = CliRunner().invoke(app, [*args, "--tasks", "4", "--partition", "big"])
    assert result.exit_code == 0, result.output
    scripts = sorted((run_dir / "datatrove").rglob("launch_script.slurm"))
    assert [str(p.parent.relative_to(run_dir / "datatrove")) for p in scripts] == [
        "01-dedup/apply",  # sorted by name: keys is submitted first, apply after the decision
        "01-dedup/keys",
        "02-verify",
        "03-trace_dedup",
        "05-filter",  # 04-select runs in the driver: no script
    ]
    text = scripts[2].read_text()
    assert text.startswith("#!/bin/bash\n")
    assert "#SBATCH --partition=big" in text and "#SBATCH --array=0-3" in text
    assert "launch_pickled_pipeline" in text and (scripts[2].parent / "executor.pik").exists()
    assert "# --- 01-dedup decide ---\n# the driver decides from every task's keys" in result.output
    assert not list(run_dir.rglob("*.parquet"))  # nothing ran


def test_ray_executor_on_this_machine_same_ledger(tmp_path: Path):
    pytest.importorskip("ray")
    path = recipe(tmp_path)
    runner = CliRunner()
    plain = runner.invoke(app, ["run", str(path), "--run-dir", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    args = ["run", str(path), "--run-dir", str(tmp_path / "ray"), "--executor", "ray"]
    result = runner.invoke(app, [*args, "--tasks", "2"])
    assert result.exit_code == 0, result.output
    assert ledger(tmp_path / "ray").equals(ledger(tmp_path / "plain"))
