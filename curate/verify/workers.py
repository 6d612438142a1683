"""Worker processes that can be killed: a hung check costs one timeout, never the run.

Each task is one problem: a reference and its answers. A worker streams back one result
per answer as it finishes, so the parent always knows which answer is being checked; one
that runs past its deadline (or crashes) is killed, that answer gets an unverifiable
verdict, a fresh worker starts, and the rest of the problem's answers are sent again.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from curate.verify.base import ProblemAnswers, Result

# (reference, metadata, answers) -> None once the reference is parsed, then one result
# per answer as each finishes
CheckFn = Callable[[str | None, str | None, list[str | None]], Iterator[Result | None]]
MEMORY_LIMIT = 4 << 30  # bytes of address space a worker may use


def worker_main(conn: Connection, check_path: str, check_args: dict[str, Any]) -> None:
    """Loop: receive (task_id, reference, metadata, answers), send results as they come."""
    import importlib
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    module, _, name = check_path.rpartition(".")
    check = getattr(importlib.import_module(module), name)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        task_id, reference, metadata, answers = task
        index = 0
        for result in check(reference, metadata, answers, **check_args):
            if result is None:  # the reference is ready
                conn.send((task_id, -1, None))
                continue
            conn.send((task_id, index, result))
            index += 1


@dataclass
class Task:
    task_id: int
    problem: ProblemAnswers
    offset: int = 0  # answers before this index already have results


@dataclass
class Worker:
    process: Any
    conn: Connection
    task: Task | None = None
    done: int = 0  # results received for the current task
    reference_ready: bool = False
    deadline: float = 0.0


@dataclass
class KillablePool:
    """Runs a check function over problems in worker processes with a hard per-answer deadline."""

    check_path: str  # "module.function" of a CheckFn, importable in the worker
    workers: int
    deadline_s: float
    check_args: dict[str, Any] = field(default_factory=dict)
    preload: tuple[str, ...] = ()
    killed: int = 0
    _pool: list[Worker] = field(default_factory=list)

    def map(
        self, problems: list[ProblemAnswers], on_kill: Result, on_reference_kill: Result
    ) -> list[list[Result]]:
        """Results for every answer; a killed check gets on_kill, and every answer of a
        problem whose reference could not be prepared in time gets on_reference_kill."""
        results: list[list[Result | None]] = [[None] * len(p.answers) for p in problems]
        queue = deque(Task(i, p) for i, p in enumerate(problems) if p.answers)
        self._ensure_workers()
        while queue or any(w.task for w in self._pool):
            for worker in self._pool:
                if worker.task is None and queue:
                    self._assign(worker, queue.popleft())
            self._collect(results)
            self._enforce_deadlines(results, queue, on_kill, on_reference_kill)
        return [[r for r in row if r is not None] for row in results]

    def _ensure_workers(self) -> None:
        self._pool = [w for w in self._pool if w.process.is_alive()]
        while len(self._pool) < self.workers:
            self._pool.append(self._start())

    def _start(self) -> Worker:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(self.preload))
        parent, child = context.Pipe()
        process = context.Process(target=worker_main, daemon=True,
                                  args=(child, self.check_path, self.check_args))
        process.start()
        child.close()
        return Worker(process, parent)

    def _assign(self, worker: Worker, task: Task) -> None:
        answers = task.problem.answers[task.offset :]
        worker.task, worker.done, worker.reference_ready = task, 0, False
        worker.deadline = time.monotonic() + self.deadline_s
        worker.conn.send((task.task_id, task.problem.reference, task.problem.metadata, answers))

    def _collect(self, results: list[list[Result | None]]) -> None:
        busy = {w.conn: w for w in self._pool if w.task is not None}
        if not busy:
            return
        timeout = max(0.0, min(w.deadline for w in busy.values()) - time.monotonic())
        for conn in wait(list(busy), timeout=timeout):
            worker = busy[conn]  # type: ignore[index]
            try:
                while conn.poll():
                    self._receive(worker, conn.recv(), results)
            except (EOFError, OSError):
                worker.deadline = 0.0  # died: handled as a kill below

    def _receive(self, worker: Worker, message: Any, results: list[list[Result | None]]) -> None:
        task = worker.task
        assert task is not None
        _, index, result = message
        worker.deadline = time.monotonic() + self.deadline_s
        if index < 0:
            worker.reference_ready = True
            return
        results[task.task_id][task.offset + index] = result
        worker.done += 1
        if task.offset + worker.done == len(task.problem.answers):
            worker.task = None

    def _enforce_deadlines(
        self, results: list[list[Result | None]], queue: deque[Task], on_kill: Result,
        on_reference_kill: Result,
    ) -> None:
        now = time.monotonic()
        for position, worker in enumerate(self._pool):
            task = worker.task
            if task is None or (worker.deadline > now and worker.process.is_alive()):
                continue
            crashed = not worker.process.is_alive()
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

    @staticmethod
    def _kill(worker: Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=5)
        worker.conn.close()

    def close(self) -> None:
        for worker in self._pool:
            self._kill(worker)
        self._pool = []


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
