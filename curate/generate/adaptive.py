"""Adaptive sampling: waves of samples until each problem has enough verified traces.

Easy problems stop after the first wave; the budget goes to the ones still unsolved, up to
`max_samples` each. Every sample stays in the ledger; the verify stage judges them again.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from curate import registry
from curate.generate.base import Backend, Request, Sample
from curate.verify.base import ProblemAnswers, Verifier

if TYPE_CHECKING:
    from curate.generate.stage import GenerateStage

Samples = dict[tuple[str, int], Sample]


def more_waves(
    stage: GenerateStage,
    backend: Backend,
    requests: list[Request],
    samples: Samples,
) -> tuple[list[Request], Samples]:
    """Grow each unsolved problem's sample list wave by wave; returns the grown requests."""
    adaptive = stage.config.adaptive
    assert adaptive is not None
    verifier = registry.verifiers.get(adaptive.verifier)(adaptive.timeout_s)
    correct: dict[tuple[str, int], bool] = {}
    try:
        while True:
            judge(verifier, requests, samples, correct)
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
        verifier.close()


def judge(
    verifier: Verifier,
    requests: list[Request],
    samples: Samples,
    correct: dict[tuple[str, int], bool],
) -> None:
    """Verify the samples not judged yet."""
    todo = [(r, [i for i in r.sample_indices if (r.gen_key, i) not in correct]) for r in requests]
    todo = [(r, indices) for r, indices in todo if indices]
    problems = [
        ProblemAnswers(r.reference, None, [samples[(r.gen_key, i)].completion for i in indices])
        for r, indices in todo
    ]
    results = verifier.verify(problems)
    for (request, indices), verdicts in zip(todo, results, strict=True):
        for index, result in zip(indices, verdicts, strict=True):
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
