"""Worker processes that can be killed: a hung check costs one timeout, never the run.

The per-answer deadline counts the worker's CPU time (read from /proc), not the wall clock, so
a busy machine does not turn a slow verdict into a timeout; a worker that stalls without using
the processor is still killed after STALL_FACTOR deadlines of wall time.

Each task is one problem: a reference and its answers. A worker streams back results as
they finish, so the parent always knows which answer is being checked; one that runs past
its deadline (or crashes) is killed, that answer gets an unverifiable verdict, a fresh
worker starts, and the rest of the problem's answers are sent again.

A check that yields SLOW before every step that may take long lets its worker hold the
quick results in between and send them together (one message per problem, not per answer,
when every answer is quick): whatever was held is sent before the slow step starts, so a
kill never loses a finished result. Other checks have each result sent as it comes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from curate.cores import available_cores
from curate.errors import VerifyError
from curate.lifetime import become_helper
from curate.verify.base import ProblemAnswers, Result
from curate.verify.budget import cpu_seconds

SLOW = "slow"  # a check yields it just before a step that may take long
HOLD_S = 1.0  # seconds a worker holds quick results at most
# (reference, metadata, answers) -> None once the reference is parsed, then one result
# per answer as each finishes (and SLOW before slow steps, where the pool is told so)
CheckFn = Callable[[str | None, str | None, list[str | None]], Iterator[Result | str | None]]
MEMORY_LIMIT = 4 << 30  # bytes of address space a worker may use
STARTUP_S = 120  # seconds a worker may take to import its check function
CPU_POLL_S = 0.25  # how often the parent reads a busy worker's CPU time
STALL_FACTOR = 20  # wall-clock limit, in CPU budgets, for a worker that makes no progress


def worker_main() -> None:
    """Entry point of a worker process (`python -m curate.verify.workers`).

    Messages are pickles framed by multiprocessing's Connection: stdin carries tasks, the
    original stdout carries results; anything the check prints goes to stderr instead.
    """
    import importlib
    import resource

    become_helper(int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid())
    inbox = Connection(os.dup(0), writable=False)
    outbox = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    check_path, check_args, holds = inbox.recv()
    module, _, name = check_path.rpartition(".")
    check = getattr(importlib.import_module(module), name)
    outbox.send(("ready", False, []))
    while True:
        try:
            task_id, reference, metadata, answers = inbox.recv()
            run_task(check(reference, metadata, answers, **check_args), task_id, outbox, holds)
        except (EOFError, BrokenPipeError, KeyboardInterrupt):
            return  # the parent closed the pipe, died or was interrupted: nothing to say


def run_task(
    checks: Iterator[Result | str | None], task_id: int, outbox: Connection, holds: bool
) -> None:
    """Send one task's results as (task_id, reference ready, results): each as it comes, or,
    when the check announces its slow steps (holds), all that came before each slow step
    (and what was held for a second: each message puts the parent's deadline off)."""
    ready, told, held, since = False, False, [], time.monotonic()
    try:
        for item in checks:
            if item is None:  # the reference is ready
                ready = True
            elif isinstance(item, Result):
                held.append(item)
            due = item == SLOW or not holds or time.monotonic() - since > HOLD_S
            if due and (held or ready != told):
                outbox.send((task_id, ready, held))
                told, held, since = ready, [], time.monotonic()
    finally:  # a check that raises still has its finished results counted
        if held or ready != told:
            outbox.send((task_id, ready, held))


@dataclass
class Task:
    task_id: int
    problem: ProblemAnswers
    offset: int = 0  # answers before this index already have results


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    send: Connection
    conn: Connection  # results arrive here
    task: Task | None = None
    done: int = 0  # results received for the current task
    reference_ready: bool = False
    crashed: bool = False
    deadline: float = 0.0  # wall clock: a worker that stalls without using the processor
    cpu_mark: float | None = None  # its CPU seconds when the current step began
    marked_at: float = 0.0  # and the wall clock then


@dataclass
class KillablePool:
    """Runs a check function over problems in worker processes with a hard per-answer deadline."""

    check_path: str  # "module.function" of a CheckFn, importable in the worker
    workers: int
    deadline_s: float
    check_args: dict[str, Any] = field(default_factory=dict)
    holds: bool = False  # the check yields SLOW before slow steps (see the module's text)
    killed: int = 0
    _pool: list[Worker] = field(default_factory=list)

    def map(
        self,
        problems: list[ProblemAnswers],
        on_kill: Result,
        on_reference_kill: Result,
        cost: Callable[[ProblemAnswers], float] = lambda problem: len(problem.answers),
    ) -> list[list[Result]]:
        """Results for every answer; a killed check gets on_kill, and every answer of a
        problem whose reference could not be prepared in time gets on_reference_kill.

        Problems start in order of their estimated cost, dearest first, so that no worker
        is left with a slow problem while the others sit idle at the end.
        """
        results: list[list[Result | None]] = [[None] * len(p.answers) for p in problems]
        queue = deque(Task(i, problems[i]) for i in start_order(problems, cost))
        self._ensure_workers()
        while queue or any(w.task for w in self._pool):
            for worker in self._pool:
                if worker.task is None and queue:
                    self._assign(worker, queue.popleft())
            self._collect(results)
            self._enforce_deadlines(results, queue, on_kill, on_reference_kill)
        return [[r for r in row if r is not None] for row in results]

    def _ensure_workers(self) -> None:
        self._pool = [w for w in self._pool if w.process.poll() is None]
        while len(self._pool) < self.workers:
            self._pool.append(self._start())

    def _start(self) -> Worker:
        """A fresh worker process; it is ready once it has imported the check function."""
        process = subprocess.Popen(
            [sys.executable, "-m", "curate.verify.workers", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert process.stdin is not None and process.stdout is not None
        send = Connection(os.dup(process.stdin.fileno()), readable=False)
        conn = Connection(os.dup(process.stdout.fileno()), writable=False)
        process.stdin.close()
        process.stdout.close()
        try:
            send.send((self.check_path, self.check_args, self.holds))
            if not conn.poll(STARTUP_S) or conn.recv()[0] != "ready":
                raise EOFError
        except (EOFError, OSError):
            process.kill()
            raise VerifyError(
                f"a verifier worker for {self.check_path} failed to start (see its error above)"
            ) from None
        return Worker(process, send, conn)

    def _assign(self, worker: Worker, task: Task) -> None:
        answers = task.problem.answers[task.offset :]
        worker.task, worker.done, worker.reference_ready = task, 0, False
        self._restart_clock(worker)
        worker.send.send((task.task_id, task.problem.reference, task.problem.metadata, answers))

    def _collect(self, results: list[list[Result | None]]) -> None:
        busy = {w.conn: w for w in self._pool if w.task is not None}
        if not busy:
            return
        timeout = max(0.0, min(w.deadline for w in busy.values()) - time.monotonic())
        ready = wait(list(busy), timeout=min(timeout, CPU_POLL_S))
        for worker in busy.values():
            if worker.conn not in ready:
                continue
            try:
                while worker.conn.poll():
                    self._receive(worker, worker.conn.recv(), results)
            except (EOFError, OSError):
                worker.crashed, worker.deadline = True, 0.0  # handled as a kill below

    def _receive(self, worker: Worker, message: Any, results: list[list[Result | None]]) -> None:
        task = worker.task
        assert task is not None
        _, ready, batch = message
        self._restart_clock(worker)
        worker.reference_ready = worker.reference_ready or ready
        start = task.offset + worker.done
        results[task.task_id][start : start + len(batch)] = batch
        worker.done += len(batch)
        if task.offset + worker.done == len(task.problem.answers):
            worker.task = None

    def _enforce_deadlines(
        self,
        results: list[list[Result | None]],
        queue: deque[Task],
        on_kill: Result,
        on_reference_kill: Result,
    ) -> None:
        for position, worker in enumerate(self._pool):
            task = worker.task
            if task is None or not (self._over_time(worker) or worker.process.poll() is not None):
                continue
            crashed = worker.crashed or worker.process.poll() is not None
            self.killed += 1
            self._kill(worker)
            self._pool[position] = self._start()
            row = results[task.task_id]
            stuck = task.offset + worker.done
            if not worker.reference_ready:
                row[stuck:] = [on_reference_kill] * (len(row) - stuck)
                continue
            row[stuck] = Result.unverifiable("verifier_crash") if crashed else on_kill
            if stuck + 1 < len(row):
                queue.appendleft(Task(task.task_id, task.problem, stuck + 1))

    def _restart_clock(self, worker: Worker) -> None:
        worker.cpu_mark = cpu_seconds(worker.process.pid)
        worker.marked_at = time.monotonic()
        stall = self.deadline_s if worker.cpu_mark is None else STALL_FACTOR * self.deadline_s
        worker.deadline = worker.marked_at + stall

    def _over_time(self, worker: Worker) -> bool:
        """Past the step's CPU budget (where /proc tells), or stalled past the wall limit."""
        now = time.monotonic()
        if worker.crashed or worker.deadline <= now:
            return True
        if worker.cpu_mark is None or now - worker.marked_at < self.deadline_s:
            return False  # a one-thread worker cannot use more CPU time than wall time passed
        used = cpu_seconds(worker.process.pid)
        return used is not None and used - worker.cpu_mark > self.deadline_s

    @staticmethod
    def _kill(worker: Worker) -> None:
        worker.process.kill()
        worker.process.wait()
        worker.send.close()
        worker.conn.close()

    def close(self) -> None:
        for worker in self._pool:
            self._kill(worker)
        self._pool = []


def start_order(
    problems: list[ProblemAnswers], cost: Callable[[ProblemAnswers], float]
) -> list[int]:
    """Indexes of the problems with answers, dearest first (ties keep their order)."""
    with_answers = [i for i, problem in enumerate(problems) if problem.answers]
    return sorted(with_answers, key=lambda i: -cost(problems[i]))


def default_workers() -> int:
    return available_cores()


if __name__ == "__main__":
    with contextlib.suppress(EOFError, BrokenPipeError):  # the parent went away first
        worker_main()
