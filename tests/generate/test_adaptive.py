from pathlib import Path

import polars as pl

from curate.generate.simulated import SimulatedConfig
from curate.generate.stage import GenerateStage
from curate.stage import StageContext
from curate.verify.base import ProblemAnswers
from curate.verify.math import MathVerifier


def frame(count: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "problem_id": [f"p{i}" for i in range(count)],
            "problem": [f"What is {i} + {i}?" for i in range(count)],
            "reference": [str(2 * i) for i in range(count)],
        }
    )


def test_waves_stop_solved_problems_and_feed_unsolved_ones(tmp_path: Path):
    config = SimulatedConfig(
        samples=2,
        wrong_rate=0.5,
        truncate_rate=0,
        unboxed_rate=0,
        adaptive={"target_correct": 2, "max_samples": 8},  # verifier: auto (math here)
    )
    stage = GenerateStage(config, StageContext(tmp_path))
    try:
        out = stage.process(frame(60))
    finally:
        stage.close()
    counts = out.group_by("problem_id").agg(
        pl.len().alias("n"), pl.col("completion"), pl.col("reference").first()
    )
    verifier = MathVerifier(workers=1)
    try:
        verdicts = verifier.verify(
            [
                ProblemAnswers(r, None, c)
                for r, c in zip(
                    counts["reference"].to_list(), counts["completion"].to_list(), strict=True
                )
            ]
        )
    finally:
        verifier.close()
    for n, results in zip(counts["n"].to_list(), verdicts, strict=True):
        correct = sum(v.verdict == "correct" for v in results)
        assert correct >= 2 or n == 8  # solved, or the budget is spent
        if n > 2:
            assert sum(v.verdict == "correct" for v in results[: n - 2]) < 2  # it needed more
    sizes = counts["n"].to_list()
    assert min(sizes) == 2 and max(sizes) == 8  # easy ones stopped, hard ones got more
    assert sum(sizes) < 60 * 8
    assert out.select("problem_id", "sample_idx").unique().height == out.height
    assert stage.counts["adaptive_waves"] >= 2


def test_each_wave_is_judged_as_the_verify_stage_judges():
    """A code problem's samples are run against its tests (its domain's verifier, as the
    verify stage does), not read as math answers, which no program is."""
    import json

    from curate.generate.adaptive import judge, problem_facts
    from curate.generate.base import Request, Sample
    from curate.verify.dispatch import Dispatcher

    tests = json.dumps({"inputs": ["1 2\n", "5 5\n"], "outputs": ["3\n", "10\n"]})
    problems = pl.DataFrame(
        {"problem_id": ["c"], "reference": [None], "domain": ["code"], "tests": [tests]},
        schema={name: pl.String for name in ("problem_id", "reference", "domain", "tests")},
    )
    right = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    wrong = "```python\nprint(3)\n```"
    samples = {("k", 0): Sample(0, None, right, "stop"), ("k", 1): Sample(1, None, wrong, "stop")}
    correct: dict[tuple[str, int], bool] = {}
    dispatcher = Dispatcher("auto", 5.0)
    try:
        judge(
            dispatcher, problem_facts(problems), [Request("c", [], [0, 1], "k")], samples, correct
        )
    finally:
        dispatcher.close()
    assert correct == {("k", 0): True, ("k", 1): False}
