"""Peak memory of `curate dedup` (a file command) and `curate run` (a recipe with dedup) on a
file with one 50 MB problem and on many ordinary problems, beside the plain alternative: polars
reading the same file (the least any reader of it holds).

Each command runs in a process of its own; its peak resident memory comes from the kernel's
accounting of that child (getrusage RUSAGE_CHILDREN, measured one child at a time).

    python benchmarks/input_memory.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN = "import polars as pl, sys\npl.read_ndjson(sys.argv[1])\n"


def measured(command: list[str]) -> tuple[int, float, float]:
    """(exit code, seconds, peak MB) of one command in a child process of a fresh helper
    (so the peak is that command's alone)."""
    helper = (
        "import resource, subprocess, sys, time\n"
        "started = time.perf_counter()\n"
        "code = subprocess.run(sys.argv[1:], capture_output=True).returncode\n"
        "seconds = time.perf_counter() - started\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(code, seconds, peak)\n"
    )
    done = subprocess.run([sys.executable, "-c", helper, *command], capture_output=True, text=True)
    code, seconds, peak = done.stdout.split()
    return int(code), float(seconds), float(peak)


def huge_file(folder: Path) -> Path:
    path = folder / "huge.jsonl"
    with path.open("w") as handle:
        handle.write(json.dumps({"problem": "x " * 25_000_000, "reference": "1"}) + "\n")
        handle.write(json.dumps({"problem": "What is 1 + 1?", "reference": "2"}) + "\n")
    return path


def many_file(folder: Path, rows: int) -> Path:
    path = folder / "many.jsonl"
    with path.open("w") as handle:
        for i in range(rows):
            problem = f"Problem {i}: a train leaves at {i % 97} km/h for {i % 89} hours. How far?"
            handle.write(json.dumps({"problem": problem, "reference": str(i % 97 * (i % 89))}))
            handle.write("\n")
    return path


def recipe(folder: Path, data: Path) -> Path:
    path = folder / f"{data.stem}.yaml"
    path.write_text(
        f"name: {data.stem}\n"
        f"source: {{kind: files, path: {data}, "
        "columns: {problem: problem, reference: reference}}\n"
        "dedup: {}\nstages: [dedup]\n"
    )
    return path


def report(label: str, data: Path, folder: Path) -> None:
    curate = [sys.executable, "-m", "curate"]
    runs = {
        "curate dedup (file)": [
            *curate,
            "dedup",
            "--in",
            str(data),
            "--out",
            str(folder / "o.jsonl"),
        ],
        "curate run (dedup)": [
            *curate,
            "run",
            str(recipe(folder, data)),
            "--run-dir",
            str(folder / f"run-{data.stem}"),
        ],
        "polars read (plain)": [sys.executable, "-c", PLAIN, str(data)],
    }
    size = data.stat().st_size / 2**20
    print(f"{label} ({size:,.0f} MB of JSONL)")
    for name, command in runs.items():
        code, seconds, peak = measured(command)
        print(f"  {name:22} exit {code}  {seconds:7.1f} s  peak {peak:8,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        started = time.perf_counter()
        report(
            "one 50 MB problem (refused by name: over source.max_chars)", huge_file(folder), folder
        )
        report(f"{args.rows:,} ordinary problems", many_file(folder, args.rows), folder)
        print(
            f"({time.perf_counter() - started:,.0f} s in all; peak of this script itself: "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB)"
        )


if __name__ == "__main__":
    main()
