"""Code verification speed: curate's sandboxed verifier against a plain unsandboxed harness.

HumanEval's 164 problems (../shared/evaldata/humaneval_openai, not copied here), each with its
canonical solution and a wrong body, so half the programs pass and half fail. curate runs each
in its sandbox (bubblewrap where present: a judge process and the program in processes of
their own, CPU limits, a private user); the plain harness runs `prompt + completion + test +
check(entry_point)` in one unisolated `python` per program, as HumanEval's own harness does.
Both use every core. Prints programs per second and checks both get every verdict right;
first, what one sandboxed run of `print(1)` costs from start to end (isolation and cleanup
included) against a plain `python` run of it.

    python benchmarks/code_speed.py [--limit N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HUMANEVAL = (
    Path(__file__).resolve().parents[2] / "shared/evaldata/humaneval_openai/HumanEval.jsonl.gz"
)
WRONG_BODY = "    return None\n"


def load(limit: int | None) -> list[dict[str, Any]]:
    with gzip.open(HUMANEVAL, "rt") as handle:
        return [json.loads(line) for line in handle][:limit]


def programs(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str, bool]]:
    """(problem, completion body, whether it should pass), right and wrong alternated."""
    out = []
    for row in rows:
        out.append((row, row["canonical_solution"], True))
        out.append((row, WRONG_BODY, False))
    return out


def run_curate(jobs: list[tuple[dict[str, Any], str, bool]]) -> tuple[float, int]:
    from curate.verify.base import ProblemAnswers
    from curate.verify.code import CodeVerifier

    verifier = CodeVerifier(timeout_s=5)
    problems = [
        ProblemAnswers(
            None,
            None,
            [body],
            json.dumps({"test": row["test"], "entry_point": row["entry_point"]}),
            row["prompt"],
        )
        for row, body, _ in jobs
    ]
    started = time.perf_counter()
    results = verifier.verify(problems)
    seconds = time.perf_counter() - started
    right = sum(
        (found[0].verdict == "correct") == should
        for found, (_, _, should) in zip(results, jobs, strict=True)
    )
    print(f"  curate sandbox: {verifier.sandbox.isolation}")
    return seconds, right


def plain_one(row: dict[str, Any], body: str, folder: Path, index: int) -> bool:
    program = f"{row['prompt']}{body}\n\n{row['test']}\n\ncheck({row['entry_point']})\n"
    path = folder / f"p{index}.py"
    path.write_text(program, encoding="utf-8")
    try:
        done = subprocess.run([sys.executable, str(path)], capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def run_plain(jobs: list[tuple[dict[str, Any], str, bool]]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as name, ThreadPoolExecutor(os.cpu_count()) as pool:
        folder = Path(name)
        started = time.perf_counter()
        passed = list(
            pool.map(lambda job: plain_one(job[1][0], job[1][1], folder, job[0]), enumerate(jobs))
        )
        seconds = time.perf_counter() - started
    right = sum(ok == should for ok, (_, _, should) in zip(passed, jobs, strict=True))
    return seconds, right


def one_run_ms(runs: int = 20) -> tuple[float, float]:
    """Milliseconds a trivial program takes sandboxed and plain, start to end, on average."""
    from curate.verify.sandbox import Sandbox

    sandbox = Sandbox()
    sandbox.run_python("print(1)")  # warm
    started = time.perf_counter()
    for _ in range(runs):
        sandbox.run_python("print(1)")
    sandboxed = (time.perf_counter() - started) / runs * 1000
    started = time.perf_counter()
    for _ in range(runs):
        subprocess.run([sys.executable, "-I", "-c", "print(1)"], capture_output=True, check=True)
    return sandboxed, (time.perf_counter() - started) / runs * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="HumanEval problems to use")
    args = parser.parse_args()
    if not HUMANEVAL.exists():
        sys.exit(f"{HUMANEVAL} is not here (../shared/evaldata is not present)")
    sandboxed, plain = one_run_ms()
    print(f"print(1): {sandboxed:.0f} ms sandboxed, {plain:.0f} ms as a plain python run")
    jobs = programs(load(args.limit))
    print(f"{len(jobs)} HumanEval programs (canonical and wrong bodies), {os.cpu_count()} cores")
    for name, run in (("curate (sandboxed)", run_curate), ("plain harness", run_plain)):
        seconds, right = run(jobs)
        print(
            f"  {name:19} {len(jobs) / seconds:6.1f} programs/s  "
            f"({seconds:.1f} s, {right}/{len(jobs)} verdicts right)"
        )


if __name__ == "__main__":
    main()
