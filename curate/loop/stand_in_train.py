"""A stand-in trainer for testing the loop's plumbing: it trains nothing. It reads the
training file the loop hands it and writes a policy folder that says what it was given, so
a loop with the simulated teacher can be run end to end offline.

    python -m curate.loop.stand_in_train DATA_FILE OUTPUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m curate.loop.stand_in_train DATA_FILE OUTPUT_DIR", file=sys.stderr)
        return 2
    data, output = Path(argv[0]), Path(argv[1])
    rows = pl.read_parquet(data, glob=False).height
    output.mkdir(parents=True, exist_ok=True)
    note = {"stand_in": True, "trained": False, "rows_seen": rows, "data_file": str(data)}
    (output / "stand_in_policy.json").write_text(json.dumps(note, indent=2), encoding="utf-8")
    print(f"stand-in trainer (trains nothing): {rows} rows seen, wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
