"""Adaptive sampling: waves of samples until each problem has enough verified traces.

Easy problems stop after the first wave; the budget goes to the ones still unsolved, up to
`max_samples` each. Every sample stays in the ledger; the verify stage judges them again.
Each wave is judged as the verify stage judges (curate/verify/dispatch.py): by each
problem's domain under `verifier: auto`, with its tests and metadata, on the answer part of
the completion.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import polars as pl

from curate.generate.base import Backend, Request, Sample
from curate.verify.dispatch import Dispatcher, Item

if TYPE_CHECKING:
    from curate.generate.stage import GenerateStage

Samples = dict[tuple[str, int], Sample]
# reference, domain, metadata, tests, problem
Facts = tuple[str | None, str | None, str | None, str | None, str | None]


def more_waves(
    stage: GenerateStage,
    backend: Backend,
    requests: list[Request],
    samples: Samples,
    problems: pl.DataFrame,
) -> tuple[list[Request], Samples]:
    """Grow each unsolved problem's sample list wave by wave; returns the grown requests.
    problems: the stage's rows (what each problem says about checking its answers)."""
    adaptive = stage.config.adaptive
    assert adaptive is not None
    dispatcher = Dispatcher(adaptive.verifier, adaptive.timeout_s)
    facts = problem_facts(problems)
    correct: dict[tuple[str, int], bool] = {}
    try:
        while True:
            judge(dispatcher, facts, requests, samples, correct)
            growing = [
                r
                for r in requests
                if needs_more(r, correct, adaptive.target_correct, adaptive.max_samples)
            ]
            if not growing:
                return requests, samples
            stage.counts["adaptive_waves"] += 1
            wave = [next_wave(r, stage.config.samples, adaptive.max_samples) for r in growing]
            stage.progress_task.set_total(
                sum(len(r.sample_indices) for r in requests)
                + sum(len(r.sample_indices) for r in wave)
            )
            samples = samples | stage.fill(backend, wave)
            grown = {r.problem_id: r for r in growing}
            requests = [
                widen(r, stage.config.samples, adaptive.max_samples) if r.problem_id in grown else r
                for r in requests
            ]
    finally:
        dispatcher.close()


def problem_facts(problems: pl.DataFrame) -> dict[str, Facts]:
    """Per problem_id: its reference, domain, metadata and tests (None where absent)."""
    names = ("reference", "domain", "metadata", "tests", "problem")
    columns = [name for name in names if name in problems.columns]
    facts: dict[str, Facts] = {}
    for row in problems.select("problem_id", *columns).iter_rows(named=True):
        reference, domain, metadata, tests, problem = (row.get(name) for name in names)
        facts[row["problem_id"]] = (reference, domain, metadata, tests, problem)
    return facts


def judge(
    dispatcher: Dispatcher,
    facts: dict[str, Facts],
    requests: list[Request],
    samples: Samples,
    correct: dict[tuple[str, int], bool],
) -> None:
    """Verify the samples not judged yet."""
    todo = [(r, i) for r in requests for i in r.sample_indices if (r.gen_key, i) not in correct]
    items = []
    for request, index in todo:
        reference, domain, metadata, tests, problem = facts[request.problem_id]
        answer = samples[(request.gen_key, index)].completion
        items.append(Item(answer, reference, domain, metadata, tests, problem))
    for (request, index), (result, _) in zip(todo, dispatcher.judge(items), strict=True):
        correct[(request.gen_key, index)] = result.verdict == "correct"


def needs_more(
    request: Request, correct: dict[tuple[str, int], bool], target: int, most: int
) -> bool:
    solved = sum(correct.get((request.gen_key, i), False) for i in request.sample_indices)
    return solved < target and len(request.sample_indices) < most


def next_wave(request: Request, size: int, most: int) -> Request:
    start = len(request.sample_indices)
    return dataclasses.replace(request, sample_indices=list(range(start, min(start + size, most))))


def widen(request: Request, size: int, most: int) -> Request:
    end = min(len(request.sample_indices) + size, most)
    return dataclasses.replace(request, sample_indices=list(range(end)))
