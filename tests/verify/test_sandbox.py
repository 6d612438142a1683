"""Hostile programs: the host survives, the program is contained, the run goes on."""

from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from curate.verify.sandbox import (
    Limits,
    Sandbox,
    isolation_works,
    processes_of,
)

STRONG = [kind for kind in ("bwrap", "unshare") if isolation_works(kind)]
KINDS = [*STRONG, "rlimits"]


def sandbox(kind: str, **limits) -> Sandbox:
    return Sandbox(Limits(wall_s=3, cpu_s=3, **limits), isolation=kind)


@pytest.mark.parametrize("kind", KINDS)
def test_normal_program_runs(kind):
    result = sandbox(kind).run_python(
        "import sys\nprint(sum(map(int, sys.stdin.read().split())))", "1 2 3\n"
    )
    assert (result.returncode, result.stdout, result.timed_out) == (0, "6\n", False)
    assert result.isolation == kind


@pytest.mark.parametrize("kind", KINDS)
def test_infinite_loop_is_stopped(kind):
    result = sandbox(kind).run_python("while True:\n    pass\n")
    assert result.timed_out and result.returncode != 0


@pytest.mark.parametrize("kind", KINDS)
def test_fork_bomb_is_contained(kind):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    result = sandbox(kind).run_python(bomb)
    assert result.timed_out or result.returncode != 0
    if os.geteuid() == 0:
        assert processes_of(result.uid) == []  # this run's user only: others may be busy
    assert sandbox(kind).run_python("print('still fine')").stdout == "still fine\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="private sandbox users need root")
@pytest.mark.parametrize("kind", KINDS)
def test_bombs_beside_other_runs_are_contained(kind):
    """Several runs at once (as verify workers, or another curate on the machine, do): each
    bomb is cleaned up completely, and honest programs beside them still get their answer."""
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    honest = "import sys\nprint(sum(map(int, sys.stdin.read().split())))"
    jobs = [(bomb, "")] * 3 + [(honest, "20 22")] * 3
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: sandbox(kind).run_python(*job), jobs))
    assert len({r.uid for r in results}) == len(jobs)  # never two runs under one user
    assert [r.stdout for r in results[3:]] == ["42\n"] * 3
    assert all(processes_of(r.uid) == [] for r in results)


@pytest.mark.skipif(os.geteuid() != 0, reason="private sandbox users need root")
@pytest.mark.parametrize("kind", KINDS)
def test_a_daemon_left_behind_is_killed(kind):
    """Gone when the run returns: swept (rlimits, unshare), or with the PID namespace the
    kernel empties when the program ends (bubblewrap, where the sweep only looks once)."""
    program = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        time.sleep(60)\n    os._exit(0)\nprint('parent done')\n"
    )
    result = sandbox(kind).run_python(program)
    assert result.stdout == "parent done\n"
    assert processes_of(result.uid) == []


@pytest.mark.parametrize("kind", KINDS)
def test_memory_bomb_fails_inside(kind):
    result = sandbox(kind, memory_mb=256).run_python("x = bytearray(2 * 1024**3)\nprint('got it')")
    assert result.returncode != 0 and "got it" not in result.stdout
    assert "MemoryError" in result.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_huge_output_is_capped(kind):
    result = sandbox(kind, file_mb=1, output_bytes=1000).run_python(
        "while True:\n    print('x' * 10000)\n"
    )
    assert len(result.stdout) <= 1000
    assert result.returncode != 0 or result.timed_out


@pytest.mark.parametrize("kind", KINDS)
def test_cannot_write_outside_its_directory(kind, tmp_path: Path):
    target = tmp_path / "escaped.txt"
    os.chmod(tmp_path, 0o755)
    result = sandbox(kind).run_python(
        f"try:\n    open({str(target)!r}, 'w').write('x')\n    print('wrote')\n"
        "except OSError as e:\n    print('blocked', type(e).__name__)\n"
    )
    assert not target.exists()
    assert result.stdout.startswith("blocked")


@pytest.mark.parametrize("kind", KINDS)
def test_cannot_read_the_parents_environment(kind, monkeypatch):
    monkeypatch.setenv("CURATE_TEST_SECRET", "s3cr3t-value")
    program = (
        "import os\nprint(dict(os.environ))\n"
        "for pid in (os.getppid(), 1):\n"
        "    try:\n        print(open(f'/proc/{pid}/environ', 'rb').read())\n"
        "    except OSError as e:\n        print('no', pid, type(e).__name__)\n"
        f"try:\n    print(open('/proc/{os.getpid()}/environ', 'rb').read())\n"
        "except OSError as e:\n    print('no parent', type(e).__name__)\n"
    )
    result = sandbox(kind).run_python(program)
    assert result.returncode == 0
    assert "s3cr3t-value" not in result.stdout


@pytest.mark.parametrize("kind", STRONG)
def test_no_network(kind):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    result = sandbox(kind).run_python(
        "import socket\ntry:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('connected')\n"
        "except OSError as e:\n    print('blocked', type(e).__name__)\n"
    )
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):  # nothing ever reached the listener
        listener.accept()
    listener.close()
    assert result.stdout.startswith("blocked")


@pytest.mark.parametrize("kind", KINDS)
def test_cannot_kill_its_parent(kind):
    result = sandbox(kind).run_python(
        "import os, signal\n"
        "for pid in (os.getppid(), 1, " + str(os.getpid()) + "):\n"
        "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n"
        "print('tried')\n"
    )
    assert result.stdout.endswith("tried\n") or result.returncode != 0
    assert sandbox(kind).run_python("print(1)").stdout == "1\n"  # we are still here
