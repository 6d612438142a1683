"""One process at a time in a run directory: a second one refuses, naming the first, or waits;
a lock left by a killed process is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from curate.cli import add_stage_commands, app
from tests.conftest import write_jsonl

runner = CliRunner()
HOLD = """
import sys, time
from pathlib import Path
from curate.lock import exclusive
with exclusive(Path(sys.argv[1]), sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def hold(directory: Path, command: str, seconds: float) -> subprocess.Popen[str]:
    """A real second process holding the directory's lock."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory), command, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_refuses_at_once_naming_the_first(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "run"
    holder = hold(run_dir, "curate run", 60)
    try:
        result = runner.invoke(app, ["run", str(make_recipe()), "--run-dir", str(run_dir)])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 1
    assert f"pid {holder.pid}" in result.output and "`curate run`" in result.output
    assert "--wait" in result.output
    assert not (run_dir / "ledger").exists()  # nothing of the refused run was written


def test_a_lock_left_by_a_killed_run_is_taken_over(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "run"
    holder = hold(run_dir, "curate run", 60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    result = runner.invoke(app, ["run", str(make_recipe()), "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output


def test_wait_starts_when_the_first_ends(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "run"
    holder = hold(run_dir, "curate run", 2)
    result = runner.invoke(app, ["run", str(make_recipe()), "--run-dir", str(run_dir), "--wait"])
    holder.wait()
    assert result.exit_code == 0, result.output
    assert "waiting for `curate run`" in result.output


def test_file_commands_sharing_a_store_refuse(tmp_path: Path):
    add_stage_commands()
    rows = [{"problem": "1+1?", "reference": "2", "completion": "\\boxed{2}"}]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    holder = hold(tmp_path / ".out.jsonl.parts", "curate verify", 60)
    try:
        refused = runner.invoke(app, ["verify", "--in", str(path), "--out", str(out)])
    finally:
        holder.kill()
        holder.wait()
    assert refused.exit_code == 1 and "is in use by `curate verify`" in refused.output
    done = runner.invoke(app, ["verify", "--in", str(path), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert not (tmp_path / ".out.jsonl.parts").exists()


def test_a_run_directory_holds_one_recipes_run(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "run"
    first = runner.invoke(app, ["run", str(make_recipe("first")), "--run-dir", str(run_dir)])
    assert first.exit_code == 0, first.output
    other = runner.invoke(app, ["run", str(make_recipe("second")), "--run-dir", str(run_dir)])
    assert other.exit_code == 1
    assert "holds a run of recipe 'first', not 'second'" in other.output
    again = runner.invoke(app, ["run", str(make_recipe("first")), "--run-dir", str(run_dir)])
    assert again.exit_code == 0 and "up to date" in again.output
