"""Do verdicts depend on how busy the machine is? The same rows judged on an idle machine and
with every core kept busy by spinning processes, by curate (CPU-time budgets) and, in the same
run, by plain math-verify with its own wall-clock timeouts.

Rows: polynomials whose comparison costs 0.2-1.5 s of CPU (so a 1 s budget is near the edge)
and quick integer answers. A row whose verdict changes with the load is a reward that depends
on the machine.

    python benchmarks/verdicts_under_load.py [--timeout 1] [--spinners N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def rows() -> list[tuple[str, str]]:
    import sympy

    x = sympy.symbols("x")
    found = []
    for n in range(20, 72, 3):
        gold = sympy.latex(sympy.expand((x + 1) ** n * (x - 2) ** 3))
        found.append((gold, f"\\boxed{{(x+1)^{{{n}}}(x-2)^3}}"))
        found.append((gold, f"\\boxed{{(x+1)^{{{n}}}(x-2)^2}}"))
    found += [(str(n), f"\\boxed{{{n + n % 2}}}") for n in range(100)]
    return found


def spin() -> None:
    while True:
        pass


@contextmanager
def busy(spinners: int) -> Iterator[None]:
    """Every core kept busy by spinning processes while the block runs."""
    context = multiprocessing.get_context("spawn")
    started = [context.Process(target=spin, daemon=True) for _ in range(spinners)]
    for process in started:
        process.start()
    try:
        time.sleep(1)
        yield
    finally:
        for process in started:
            process.kill()
            process.join()


def curate_verdicts(cases: list[tuple[str, str]], timeout: float) -> list[str]:
    from curate.verify.base import ProblemAnswers
    from curate.verify.math import MathVerifier

    verifier = MathVerifier(timeout_s=timeout)
    try:
        results = verifier.verify([ProblemAnswers(g, None, [a]) for g, a in cases])
    finally:
        verifier.close()
    return [f"{r[0].verdict}/{r[0].reason}" for r in results]


def plain_verdicts(cases: list[tuple[str, str]], timeout: float) -> list[str]:
    """The plain loop: parse and verify with math-verify's own (wall-clock) timeouts."""
    from math_verify import parse, verify

    out = []
    seconds = max(1, round(timeout))
    for gold, answer in cases:
        try:
            same = verify(
                parse(f"${gold}$", parsing_timeout=seconds),
                parse(answer, parsing_timeout=seconds),
                timeout_seconds=seconds,
                raise_on_error=True,
            )
            out.append("correct" if same else "incorrect")
        except Exception as error:  # math-verify's TimeoutException, among others
            out.append(f"unverifiable/{type(error).__name__}")
    return out


def measure(
    judge: Callable[[list[tuple[str, str]], float], list[str]],
    cases: list[tuple[str, str]],
    timeout: float,
    spinners: int,
) -> dict[str, Any]:
    started = time.perf_counter()
    idle = judge(cases, timeout)
    idle_s = time.perf_counter() - started
    with busy(spinners):
        started = time.perf_counter()
        loaded = judge(cases, timeout)
        loaded_s = time.perf_counter() - started
    changed = [i for i, (a, b) in enumerate(zip(idle, loaded, strict=True)) if a != b]
    return {
        "idle": Counter(idle),
        "loaded": Counter(loaded),
        "changed": len(changed),
        "idle_s": round(idle_s, 1),
        "loaded_s": round(loaded_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--spinners", type=int, default=3 * (os.cpu_count() or 2))
    args = parser.parse_args()
    cases = rows()
    print(f"{len(cases)} rows, budget {args.timeout:g} s, {args.spinners} spinning processes")
    for name, judge in (
        ("curate (CPU time)", curate_verdicts),
        ("plain math-verify", plain_verdicts),
    ):
        figures = measure(judge, cases, args.timeout, args.spinners)
        print(
            f"{name}: {figures['changed']}/{len(cases)} verdicts change under load "
            f"(idle {figures['idle_s']} s, loaded {figures['loaded_s']} s)"
        )
        print(f"    idle:   {dict(figures['idle'])}")
        print(f"    loaded: {dict(figures['loaded'])}")


if __name__ == "__main__":
    main()
