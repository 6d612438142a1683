"""Math verification speed: curate's verifier vs a plain math-verify loop, same traces, same run.

    python benchmarks/verify_math.py [--samples 7] [--limit-problems N]

Problems come from ../shared/evaldata when present (MATH-500, GSM8K, OlympiadBench, Minerva,
AMC, AIME), else from reasoning-gym. Traces are written by the simulated teacher (right and
wrong boxed answers, unboxed and truncated ones) plus a few hostile answers that hang
math-verify's parser. Also measures sandboxed code tests per second against plain
subprocess runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from curate.answers import last_boxed
from curate.generate.base import Request
from curate.generate.simulated import SimulatedConfig, SimulatedTeacher
from curate.verify.base import ProblemAnswers
from curate.verify.code import CodeVerifier
from curate.verify.math import MathVerifier, gold_text

EVALDATA = Path(__file__).resolve().parents[2] / "shared" / "evaldata"
HOSTILE = (
    "\\boxed{\\dfrac{5^{\\left(5^{\\left(5^{\\left(5^5\\right)}\\right)} - 4\\right)} - 5}{16}}"
)


def load_problems(limit: int | None) -> list[tuple[str, str]]:
    """(problem, reference) pairs from the local benchmark copies, else reasoning-gym."""
    sources = [
        ("derived_math500/math500.jsonl", "problem", "answer"),
        ("gsm8k_openai/test.jsonl", "question", "answer"),
        ("qwen25math_eval/olympiadbench/test.jsonl", "question", "final_answer"),
        ("deepscaler/test/minerva.json", "problem", "answer"),
        ("deepscaler/test/amc.json", "problem", "answer"),
        ("deepscaler/test/aime.json", "problem", "answer"),
    ]
    pairs: list[tuple[str, str]] = []
    for path, question, answer in sources:
        file = EVALDATA / path
        if not file.exists():
            continue
        text = file.read_text()
        rows = (
            json.loads(text)
            if file.suffix == ".json"
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
        for row in rows:
            reference = row[answer]
            if isinstance(reference, list):
                reference = reference[0]
            reference = str(reference).split("####")[-1].strip()
            pairs.append((str(row[question]), reference))
    if not pairs:
        import reasoning_gym

        data = reasoning_gym.create_dataset("basic_arithmetic", size=3000, seed=0)
        pairs = [(entry["question"], entry["answer"]) for entry in data]
    return pairs[:limit] if limit else pairs


def make_traces(pairs: list[tuple[str, str]], samples: int) -> list[ProblemAnswers]:
    config = SimulatedConfig(
        samples=samples, wrong_rate=0.35, unboxed_rate=0.05, truncate_rate=0.03, max_tokens=100_000
    )
    teacher = SimulatedTeacher(config)
    problems = []
    for index, (problem, reference) in enumerate(pairs):
        messages = config.messages(problem)
        request = Request(
            str(index), messages, list(range(samples)), teacher.gen_key(messages), reference
        )
        answers: list[str | None] = [s.completion for s in asyncio.run(teacher.sample(request))]
        if index % 500 == 0:
            answers[-1] = HOSTILE
        problems.append(ProblemAnswers(reference, None, answers))
    return problems


def plain_verdict(reference: str, answer: str | None) -> str:
    """What a plain loop does: parse gold and prediction, verify; same extraction rules."""
    from math_verify import parse, verify

    gold = parse(gold_text(reference))
    if not gold:
        return "unverifiable"
    if not answer:
        return "unverifiable"
    boxed = last_boxed(answer)
    predicted = parse(f"\\boxed{{{boxed}}}" if boxed is not None else answer)
    if not predicted:
        return "unverifiable"
    try:
        return "correct" if verify(gold, predicted, raise_on_error=True) else "incorrect"
    except BaseException:  # math-verify's TimeoutException derives from BaseException
        return "unverifiable"


def run_plain(problems: list[ProblemAnswers]) -> tuple[list[str], float]:
    started = time.perf_counter()
    verdicts = [plain_verdict(p.reference or "", a) for p in problems for a in p.answers]
    return verdicts, time.perf_counter() - started


def run_curate(problems: list[ProblemAnswers]) -> tuple[list[str], float, int]:
    verifier = MathVerifier(timeout_s=5)
    started = time.perf_counter()
    try:
        results = verifier.verify(problems)
    finally:
        killed = verifier.pool.killed
        verifier.close()
    return [r.verdict for row in results for r in row], time.perf_counter() - started, killed


def code_tests_per_second(count: int) -> tuple[float, float, str]:
    """Sandboxed stdin/stdout tests per second vs plain unisolated subprocess runs."""
    program = "n = int(input())\nprint(sum(range(n)))\n"
    tests = json.dumps(
        {
            "inputs": [f"{i}\n" for i in range(count)],
            "outputs": [f"{sum(range(i))}\n" for i in range(count)],
        }
    )
    answer = f"```python\n{program}```"
    verifier = CodeVerifier(timeout_s=5)
    started = time.perf_counter()
    result = verifier.verify([ProblemAnswers(None, None, [answer], tests)])[0][0]
    sandboxed = count / (time.perf_counter() - started)
    assert result.verdict == "correct", result
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "main.py"
        path.write_text(program)
        started = time.perf_counter()
        for i in range(count):
            subprocess.run(
                [sys.executable, str(path)],
                input=f"{i}\n",
                capture_output=True,
                text=True,
                check=True,
            )
        plain = count / (time.perf_counter() - started)
    return sandboxed, plain, verifier.sandbox.isolation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=7)
    parser.add_argument("--limit-problems", type=int, default=None)
    parser.add_argument("--code-tests", type=int, default=200)
    args = parser.parse_args()

    problems = make_traces(load_problems(args.limit_problems), args.samples)
    traces = sum(len(p.answers) for p in problems)
    print(f"{len(problems):,} problems, {traces:,} traces, {os.cpu_count()} cores")
    ours, ours_s, killed = run_curate(problems)
    print(
        f"curate verifier: {ours_s:8.1f} s  {traces / ours_s:8.0f} traces/s  "
        f"(workers killed: {killed})"
    )
    plain, plain_s = run_plain(problems)
    print(f"plain loop:      {plain_s:8.1f} s  {traces / plain_s:8.0f} traces/s")
    print(f"speed-up: {plain_s / ours_s:.1f}x")
    differ = [(i, a, b) for i, (a, b) in enumerate(zip(ours, plain, strict=True)) if a != b]
    print(f"verdicts: curate {dict(Counter(ours))}  plain {dict(Counter(plain))}")
    print(f"identical verdicts: {traces - len(differ):,} of {traces:,}")
    flat = [(p.reference, a) for p in problems for a in p.answers]
    for index, mine, theirs in differ[:10]:
        reference, answer = flat[index]
        print(
            f"  differs: reference {reference!r} answer {str(answer)[-60:]!r}: "
            f"curate {mine}, plain {theirs}"
        )
    sandboxed, bare, isolation = code_tests_per_second(args.code_tests)
    print(
        f"code tests: {sandboxed:.1f}/s sandboxed ({isolation}), "
        f"{bare:.1f}/s as plain unisolated subprocesses"
    )


if __name__ == "__main__":
    main()
