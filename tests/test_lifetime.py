"""Worker pools end when their parent is killed, and say nothing when it stops them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

PARENT = textwrap.dedent(
    """
    import json, sys, time
    import polars as pl
    from pathlib import Path
    from curate.filters import FiltersConfig, FilterStage
    from curate.stage import StageContext
    from curate.verify.workers import KillablePool

    pool = KillablePool("tests.verify.hang_checks.check", 2, 5.0)
    pool._ensure_workers()
    stage = FilterStage(FiltersConfig(), StageContext(Path(".")))
    rows = [{"reasoning": "x", "completion": "\\\\boxed{1}", "finish_reason": "stop"}] * 5000
    stage._start_row_flags(rows)  # starts the filter's worker processes
    pids = [w.process.pid for w in pool._pool]
    pids += [p.pid for p in stage._pool._processes.values()]
    print(json.dumps(pids), flush=True)
    time.sleep(600)
    """
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()[0] != "Z"


def test_workers_end_when_their_parent_is_killed():
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    pids = json.loads(parent.stdout.readline())
    assert len(pids) >= 3 and all(alive(pid) for pid in pids)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30  # a bound, not a timing: the watch polls twice a second
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in pids if alive(pid)]
    assert "Traceback" not in (parent.stderr.read() if parent.stderr else "")


def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(tmp_path):
    """SIGINT while the CLI imports, loads the recipe or starts the run: exit status 130 and
    one line, never a traceback (the workers leave Ctrl-C to their parent)."""
    import shutil
    from pathlib import Path

    demo = Path(__file__).resolve().parents[1] / "pipelines" / "demo.yaml"
    for delay in (0.2, 0.5, 1.0, 2.0):  # once Python and curate.entry are up
        run_dir = tmp_path / f"run-{delay}"
        args = ["curate", "run", str(demo), "--run-dir", str(run_dir)]
        starter = (
            f"import sys; sys.argv = {args!r}; print('up', flush=True); "
            "from curate.entry import main; main()"
        )
        process = subprocess.Popen(
            [sys.executable, "-c", starter],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None and process.stdout.readline() == "up\n"
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        out, errors = process.communicate(timeout=120)
        if process.returncode == 0:  # finished before the signal came: nothing to check
            continue
        assert process.returncode == 130, (delay, errors[-2000:])
        assert "Traceback" not in errors + out, (delay, errors[-2000:])
        assert "interrupted" in errors
        shutil.rmtree(run_dir, ignore_errors=True)
