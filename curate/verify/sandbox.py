"""Run untrusted programs: own session, resource limits, scrubbed environment, no network.

Isolation, strongest first:
- bwrap: bubblewrap namespaces (no network, own PID space, read-only system, private /tmp);
- unshare: util-linux namespaces (no network, own PID space);
- rlimits: limits and a scrubbed environment only (a visible warning: the program can reach
  the network and see the file system).
As root the program runs under an unprivileged user id, so the process-count limit holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from curate.errors import VerifyError

Isolation = Literal["bwrap", "unshare", "rlimits"]
SANDBOX_UID = 61000  # runs use ids from here on: concurrent runs never share one
UID_RANGE = 4000


@dataclass(frozen=True)
class Limits:
    """What one program run may use."""

    wall_s: float = 10.0  # for a program that waits without computing (sleep, a blocked read)
    cpu_s: int = 10  # the budget that decides a timeout: CPU time, the same on a busy machine
    memory_mb: int = 1024
    file_mb: int = 16
    processes: int = 64
    output_bytes: int = 1 << 20  # stdout read back at most


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    isolation: Isolation
    uid: int | None = None  # the private user it ran as (root only); nothing of it survives


class WeakIsolationWarning(UserWarning):
    """Programs run without namespaces: they can reach the network and the file system."""


@cache
def isolation_works(kind: Isolation) -> bool:
    """Whether namespaces of this kind can be made here (as the sandbox user)."""
    probe = ["/bin/true"] if Path("/bin/true").exists() else ["true"]
    command = wrap(kind, probe, Path(tempfile.gettempdir()))
    if shutil.which(command[0]) is None:
        return False
    with leased_uid() as uid:
        try:
            result = subprocess.run(command, capture_output=True, timeout=10, user=uid, group=uid)
        except (OSError, subprocess.TimeoutExpired):
            return False
    return result.returncode == 0


@cache
def available_isolation() -> Isolation:
    """The strongest isolation that works on this machine."""
    kinds: tuple[Isolation, ...] = ("bwrap", "unshare")
    for kind in kinds:
        if isolation_works(kind):
            return kind
    warnings.warn(
        "no namespace isolation (install bubblewrap): sandboxed programs can reach "
        "the network and read the file system",
        WeakIsolationWarning,
        stacklevel=2,
    )
    return "rlimits"


_runs = itertools.count()
LEASES = Path(tempfile.gettempdir()) / "curate-sandbox-uids"
SWEEP_LIMIT_S = 30.0


class SandboxError(VerifyError):
    """The sandbox could not contain or clean up a program (never a verdict)."""


@contextmanager
def leased_uid(own_pid_space: bool = False) -> Iterator[int | None]:
    """As root, an unprivileged user id for one run, held by a lock file so that no other run,
    thread or process uses it meanwhile: root ignores the process-count limit, and a private
    id lets every process the run left behind be found and killed. None when not root.
    own_pid_space: the run's processes live in a PID namespace of their own (bubblewrap),
    which the kernel empties when the run's first process ends; then a look that finds
    nothing of the uid is enough (sweep's pause-and-look-again is for runs without one)."""
    if os.geteuid() != 0:
        yield None
        return
    LEASES.mkdir(mode=0o700, exist_ok=True)
    start = (os.getpid() * 97 + next(_runs)) % UID_RANGE
    for offset in range(UID_RANGE):
        uid = SANDBOX_UID + (start + offset) % UID_RANGE
        with open(LEASES / str(uid), "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another run holds it
            sweep(uid, own_pid_space)  # whatever a crashed earlier holder left behind
            try:
                yield uid
            finally:
                sweep(uid, own_pid_space)
            return
    raise SandboxError(f"all {UID_RANGE} sandbox user ids are in use")


def processes_of(uid: int) -> list[int]:
    """Live (not zombie) processes running as uid (a process's /proc folder is owned by its
    user: only those are read)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            with open(f"/proc/{entry.name}/status") as handle:
                status = handle.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            found.append(int(entry.name))
    return found


# Runs as the sandbox user: kill(-1) reaches every process of that user in one call, so a
# fork bomb cannot outrun it as it outruns killing a list of pids one by one (under load, the
# old five-second sweep gave up and the next run shared the user with the survivors).
KILL_ALL = "import os, sys\nassert os.getuid() == int(sys.argv[1]) != 0\nos.kill(-1, 9)"


def sweep(uid: int, own_pid_space: bool = False) -> None:
    """Kill every process running as a run's private uid (daemons, escaped forks, bombs);
    raise if some survive rather than let a later run share the user with them. With its own
    PID namespace a run leaves nothing once its first process ends: one empty look is proof."""
    if own_pid_space and not processes_of(uid):
        return
    deadline = time.monotonic() + SWEEP_LIMIT_S
    while True:
        _kill_all(uid, deadline)
        time.sleep(0.05)  # a fork caught mid-way shows up a moment later: look twice
        if not processes_of(uid):
            return


def _kill_all(uid: int, deadline: float) -> None:
    while processes_of(uid):
        if time.monotonic() > deadline:
            left = processes_of(uid)
            raise SandboxError(f"sandbox user {uid}: processes {left[:10]} survive SIGKILL")
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [interpreter(), "-I", "-S", "-c", KILL_ALL, str(uid)],
                user=uid,
                group=uid,
                env=CLEAN_ENV,
                capture_output=True,
                timeout=SWEEP_LIMIT_S,
            )
        time.sleep(0.01)


def interpreter() -> str:
    """A Python the sandbox user can execute (a root-only pyenv is not)."""
    candidates = [os.path.realpath(sys.executable), "/usr/bin/python3"]
    if os.geteuid() != 0:
        return candidates[0]
    for path in candidates:
        if _world_usable(Path(path)):
            return path
    return candidates[-1]


def _world_usable(path: Path) -> bool:
    parents_open = all(p.stat().st_mode & 0o001 for p in path.parents if p.exists())
    return path.exists() and bool(path.stat().st_mode & 0o005) and parents_open


def wrap(kind: Isolation, command: list[str], workdir: Path) -> list[str]:
    """The command line that runs `command` under the given isolation."""
    if kind == "bwrap":
        binds = ["--ro-bind", "/usr", "/usr", "--bind", str(workdir), str(workdir)]
        for link in ("bin", "lib", "lib64", "sbin"):
            if Path(f"/{link}").is_symlink():
                binds += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
        program = Path(command[0])
        if program.is_absolute() and not str(program).startswith("/usr/"):
            prefix = str(program.resolve().parents[1])  # an interpreter outside /usr
            binds += ["--ro-bind", prefix, prefix]
        return [
            "bwrap",
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            *binds,
            "--chdir",
            str(workdir),
            "--",
            *command,
        ]
    if kind == "unshare":
        return [
            "unshare",
            "--user",
            "--map-root-user",
            "--net",
            "--pid",
            "--fork",
            "--kill-child",
            "--",
            *command,
        ]
    return command


def limit_args(limits: Limits) -> list[str]:
    """prlimit flags: applied in the child before the program starts."""
    memory = limits.memory_mb << 20
    return [
        "prlimit",
        f"--cpu={limits.cpu_s}",
        f"--as={memory}",
        f"--fsize={limits.file_mb << 20}",
        f"--nproc={limits.processes}",
        "--nofile=64",
        "--core=0",
        "--",
    ]


CLEAN_ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/tmp",
    "PYTHONIOENCODING": "utf-8",
    "PYTHONDONTWRITEBYTECODE": "1",
}


class Sandbox:
    """Runs a Python program on given stdin under limits and the strongest isolation here."""

    def __init__(self, limits: Limits | None = None, isolation: Isolation | None = None) -> None:
        self.limits = limits or Limits()
        self.isolation: Isolation = isolation or available_isolation()
        self.python = interpreter()

    def run_python(self, source: str, stdin: str = "", wall_s: float | None = None) -> RunResult:
        with tempfile.TemporaryDirectory(prefix="curate-sandbox-") as name:
            workdir = Path(name)
            os.chmod(workdir, 0o777)  # the sandbox user writes its output here
            (workdir / "main.py").write_text(source, encoding="utf-8")
            (workdir / "stdin.txt").write_text(stdin, encoding="utf-8")
            command = [self.python, "-I", "-B", str(workdir / "main.py")]
            inner = limit_args(self.limits) + wrap(self.isolation, command, workdir)
            return self._execute(inner, workdir, wall_s or self.limits.wall_s)

    def _execute(self, command: list[str], workdir: Path, wall_s: float) -> RunResult:
        out_path, err_path = workdir / "stdout.txt", workdir / "stderr.txt"
        with (
            leased_uid(own_pid_space=self.isolation == "bwrap") as uid,
            open(workdir / "stdin.txt", "rb") as stdin,
            open(out_path, "wb") as stdout,
            open(err_path, "wb") as stderr,
        ):
            process = subprocess.Popen(
                command,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                cwd=workdir,
                env=CLEAN_ENV,
                start_new_session=True,
                close_fds=True,
                user=uid,
                group=uid,
            )
            try:
                cpu_s = _wait_with_usage(process, wall_s)
            finally:
                _kill_group(process)
        timed_out = cpu_s is None
        out_of_cpu = process.returncode != 0 and (
            (cpu_s or 0.0) >= 0.95 * self.limits.cpu_s or process.returncode in CPU_KILLED
        )
        return RunResult(
            process.returncode,
            _head(out_path, self.limits.output_bytes),
            _head(err_path, 4096),
            timed_out or out_of_cpu,
            self.isolation,
            uid,
        )


# How a program stopped at its CPU budget (RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL at
# the hard one) comes back: as the signal, or as 128 + signal through bubblewrap. unshare
# reports 1, which the CPU time it waited for tells apart.
CPU_KILLED = {-signal.SIGXCPU, 128 + signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGKILL}


def _wait_with_usage(process: subprocess.Popen[bytes], wall_s: float) -> float | None:
    """Wait for the program; the CPU seconds it and the processes it waited for used, or None
    when it ran past wall_s (it is then killed by the caller)."""
    deadline, pause = time.monotonic() + wall_s, 0.002
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return float(usage.ru_utime + usage.ru_stime)
        if time.monotonic() > deadline:
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the program and everything it started in its session."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _head(path: Path, limit: int) -> str:
    with open(path, "rb") as handle:
        return handle.read(limit).decode("utf-8", errors="replace")
