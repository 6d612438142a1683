"""The same recipe through datatrove executors (extra: cluster): the local executor with 1
and with 2 workers writes the same ledger as `curate run` without one; a Slurm dry run
writes and prints the sbatch scripts it would submit, one per stage that leaves the
driver, each after the one before."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from curate.cli import app
from tests.conftest import write_jsonl
from tests.test_stage_units import traces

pytestmark = pytest.mark.extras


def recipe(tmp_path: Path) -> Path:
    pytest.importorskip("datatrove")
    data = write_jsonl(tmp_path / "traces.jsonl", traces(problems=9, per_problem=4, correct=2))
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


def test_local_executor_one_or_two_workers_same_ledger(tmp_path: Path):
    path = recipe(tmp_path)
    runner = CliRunner()
    plain = runner.invoke(app, ["run", str(path), "--run-dir", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    for workers in (1, 2):
        run_dir = tmp_path / f"w{workers}"
        args = ["run", str(path), "--run-dir", str(run_dir), "--executor", "local"]
        result = runner.invoke(app, [*args, "--tasks", "3", "--workers", str(workers)])
        assert result.exit_code == 0, result.output
        assert ledger(run_dir).equals(ledger(tmp_path / "plain"))
        completions = list((run_dir / "datatrove").glob("*-verify-*/completions/*"))
        assert len(completions) == 3  # one marker per task
    again = runner.invoke(app, [*args, "--tasks", "3"])
    assert "nothing to do" in again.output


def test_slurm_dry_run_prints_the_scripts_it_would_submit(tmp_path: Path):
    path = recipe(tmp_path)
    run_dir = tmp_path / "slurm"
    args = ["run", str(path), "--run-dir", str(run_dir), "--executor", "slurm", "--dry-run"]
    result = CliRunner().invoke(app, [*args, "--tasks", "4", "--partition", "big"])
    assert result.exit_code == 0, result.output
    scripts = sorted((run_dir / "datatrove").glob("*/launch_script.slurm"))
    assert [p.parent.name for p in scripts] == [
        "02-verify",
        "03-trace_dedup",
        "04-select",
        "05-filter",
    ]
    text = scripts[0].read_text()
    assert text.startswith("#!/bin/bash\n")
    assert "#SBATCH --partition=big" in text and "#SBATCH --array=0-3" in text
    assert "launch_pickled_pipeline" in text and (scripts[0].parent / "executor.pik").exists()
    assert "# --- 01-dedup ---\n# runs in the driver" in result.output
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
