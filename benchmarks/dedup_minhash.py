"""MinHash dedup of many problems: wall time and peak memory, against the plain alternative
(exact dedup on lowercased, whitespace-collapsed text), same rows, same run.

    python benchmarks/dedup_minhash.py [--rows 1000000]

Rows are synthetic; 2% are planted near-copies of earlier rows (one word changed near the
end, or spacing and case changed) and 1% are copies with one number changed, which must
stay apart.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decontam import peak_rss_mb
from synthetic import problems

from curate.dedup import DedupConfig, DedupStage
from curate.stage import StageContext


def make_rows(count: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    texts, _ = problems(count, seed=1)
    rng = np.random.default_rng(2)
    near = np.zeros(count, bool)
    renumbered = np.zeros(count, bool)
    for index in rng.choice(np.arange(1, count), size=count // 33, replace=False):
        source = texts[int(rng.integers(0, index))]
        words = source.split()
        if index % 3 == 0:
            digits = [i for i, w in enumerate(words) if w.isdigit()]
            if not digits:
                continue
            words[digits[0]] = str(int(words[digits[0]]) + 1)
            renumbered[index] = True
        elif index % 3 == 1:
            words[-1] = words[-1].upper() + " ."
            near[index] = True
        else:
            words.append("please")
            near[index] = True
        texts[index] = " ".join(words)
    return texts, near, renumbered


def worker(mode: str, data: Path, out: Path) -> None:
    texts = pl.read_parquet(data)["text"].to_list()
    started = time.perf_counter()
    if mode == "plain":
        seen: set[str] = set()
        dropped = []
        for text in texts:
            key = " ".join(text.lower().split())
            dropped.append(key in seen)
            seen.add(key)
    else:
        frame = pl.DataFrame(
            {
                "problem_id": [str(i) for i in range(len(texts))],
                "problem": texts,
                "reference": [None] * len(texts),
            },
            schema_overrides={"reference": pl.String},
        )
        result = DedupStage(DedupConfig(), StageContext(Path("."))).process(frame)
        dropped = result["dropped"].is_not_null().to_list()
    seconds = time.perf_counter() - started
    out.write_text(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), "dropped": dropped}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--worker", nargs=3)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), Path(args.worker[2]))
        return
    texts, near, renumbered = make_rows(args.rows)
    print(
        f"{args.rows:,} rows: {int(near.sum()):,} planted near-copies, "
        f"{int(renumbered.sum()):,} copies with one number changed (must stay)"
    )
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "rows.parquet"
        pl.DataFrame({"text": texts}).write_parquet(data)
        for mode, label in (("plain", "plain exact dedup"), ("minhash", "curate exact+MinHash")):
            out = Path(folder) / f"{mode}.json"
            subprocess.run(
                [sys.executable, __file__, "--worker", mode, str(data), str(out)], check=True
            )
            result = json.loads(out.read_text())
            dropped = np.array(result["dropped"])
            print(
                f"{label:22} {result['seconds']:7.1f} s  {args.rows / result['seconds']:>9,.0f}"
                f" rows/s  peak {result['peak_mb']:,.0f} MB  dropped {int(dropped.sum()):,}  "
                f"near-copies caught {int(dropped[near].sum()):,} of {int(near.sum()):,}  "
                f"renumbered wrongly dropped {int(dropped[renumbered].sum()):,}"
            )


if __name__ == "__main__":
    main()
