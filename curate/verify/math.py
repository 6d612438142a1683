"""Math answers checked with math-verify, in worker processes.

math-verify's own timeouts use SIGALRM, which only works in a process's main thread:
each worker process runs checks in its main thread, so the timeouts fire.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from curate import registry
from curate.verify.base import ProblemAnswers, Result, Verifier, last_boxed

CHUNK = 32  # problems per task sent to a worker


def gold_text(reference: str) -> str:
    """Bare gold strings such as `(1,2)` or `x^2+1` parse to nothing unless wrapped."""
    text = reference.strip()
    if "$" in text or "\\boxed" in text or "\\(" in text or "\\[" in text:
        return text
    return f"${text}$"


def shown(parsed: list[Any]) -> str:
    """The extracted answer as text (math-verify puts the source string last)."""
    return str(parsed[-1]) if parsed else ""


def check_problem(reference: str | None, answers: list[str | None], timeout: int) -> list[Result]:
    """Verify one problem's answers; the gold is parsed once."""
    from math_verify import parse, verify

    if reference is None or not reference.strip():
        return [Result.unverifiable("no_reference") for _ in answers]
    gold = parse(gold_text(reference), parsing_timeout=timeout)
    if not gold:
        return [Result.unverifiable("gold_unparseable") for _ in answers]
    results = []
    for answer in answers:
        if not answer or not answer.strip():
            results.append(Result.unverifiable("no_answer"))
            continue
        boxed = last_boxed(answer)
        predicted = parse(
            f"\\boxed{{{boxed}}}" if boxed is not None else answer, parsing_timeout=timeout
        )
        if not predicted:
            results.append(Result.unverifiable("no_answer"))
            continue
        same = verify(gold, predicted, timeout_seconds=timeout)
        results.append(
            Result(
                "correct" if same else "incorrect", None if same else "mismatch", shown(predicted)
            )
        )
    return results


def check_chunk(
    chunk: list[tuple[str | None, list[str | None]]], timeout: int
) -> list[list[Result]]:
    return [check_problem(reference, answers, timeout) for reference, answers in chunk]


@registry.verifiers.register("math")
class MathVerifier(Verifier):
    """Math answers, checked symbolically with math-verify in worker processes."""

    name = "math"
    version = "1"

    def __init__(self, timeout_s: float = 5.0, workers: int | None = None) -> None:
        super().__init__(timeout_s, workers)
        self._pool: ProcessPoolExecutor | None = None

    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["math_verify", "curate.verify.math"])
            self._pool = ProcessPoolExecutor(self.workers or os.cpu_count() or 1, context)
        return self._pool

    def verify(self, problems: list[ProblemAnswers]) -> list[list[Result]]:
        timeout = max(1, round(self.timeout_s))
        items = [(p.reference, p.answers) for p in problems]
        chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
        if len(chunks) <= 1:
            return check_chunk(items, timeout) if items else []
        futures = [self.pool().submit(check_chunk, chunk, timeout) for chunk in chunks]
        return [result for future in futures for result in future.result()]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
