"""Teacher tokens per accepted trace: adaptive sampling + stream guards vs fixed k.

    python benchmarks/teacher_tokens.py [--problems 2000]

Simulated teacher (not a model) on a mix of easy and hard problems, with degenerate samples
that loop until max_tokens. Both runs keep up to 4 verified traces per problem that pass
the quality filters; fixed k
draws 8 samples for every problem, adaptive draws waves of 2 until 4 are verified (at most
8), with guards stopping loops early. The simulated samples are the same in both runs, so
problem coverage is equal by construction; the benchmark checks it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import polars as pl

from curate.filters import FiltersConfig, FilterStage
from curate.generate.simulated import SimulatedConfig
from curate.generate.stage import GenerateStage
from curate.select import SelectConfig, SelectStage
from curate.stage import StageContext
from curate.verify.stage import VerifyConfig, VerifyStage

KEEP = 4
MOST = 8


def problems(count: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "problem_id": [f"p{i}" for i in range(count)],
            "problem": [f"What is {i} times {i % 7 + 2}?" for i in range(count)],
            "reference": [str(i * (i % 7 + 2)) for i in range(count)],
            "domain": ["math"] * count,
            "metadata": [None] * count,
        },
        schema_overrides={"metadata": pl.String},
    )


def run(frame: pl.DataFrame, config: SimulatedConfig) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        context = StageContext(Path(folder))
        stage = GenerateStage(config, context)
        traces = stage.process(frame)
        stage.close()
        verify = VerifyStage(VerifyConfig(kind="math"), context)
        verified = verify.process(traces)
        verify.close()
        # Language-mixed traces are dropped by the filters anyway: filter first, then select.
        kept = FilterStage(FiltersConfig(), context).process(verified)
        clean = kept.filter(pl.col("dropped").is_null())
        selected = SelectStage(SelectConfig(max_per_problem=KEEP), context).process(clean)
    accepted = selected.filter(pl.col("selected"))
    tokens = int(traces["completion_tokens"].sum())
    return {
        "samples": traces.height,
        "tokens": tokens,
        "accepted": accepted.height,
        "covered": accepted["problem_id"].n_unique(),
        "per_accepted": tokens / max(1, accepted.height),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--problems", type=int, default=2000)
    args = parser.parse_args()
    frame = problems(args.problems)
    common = {
        "wrong_rate": 0.45,
        "repeat_rate": 0.08,
        "truncate_rate": 0.03,
        "max_tokens": 4096,
        "mean_steps": 12,
    }
    fixed = run(frame, SimulatedConfig(samples=MOST, **common))
    adaptive = run(
        frame,
        SimulatedConfig(
            samples=2, guards={}, adaptive={"target_correct": KEEP, "max_samples": MOST}, **common
        ),
    )
    for label, result in (("fixed k=8", fixed), ("adaptive + guards", adaptive)):
        print(
            f"{label:18} samples {result['samples']:>7,}  teacher tokens {result['tokens']:>11,}"
            f"  accepted {result['accepted']:>6,}  problems covered {result['covered']:>5,}"
            f"  tokens/accepted {result['per_accepted']:8.1f}"
        )
    print(f"coverage equal: {fixed['covered'] == adaptive['covered']}")
    print(
        f"tokens per accepted trace, adaptive/fixed: "
        f"{adaptive['per_accepted'] / fixed['per_accepted']:.2f}x (target <= 0.7x)"
    )


if __name__ == "__main__":
    main()
