"""How many CPU cores this process may use."""

from __future__ import annotations

import os

import polars as pl


def available_cores() -> int:
    """Cores in this process's affinity mask (containers and taskset), else all of them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def in_chunks(frame: pl.DataFrame, rows: int = 2_000) -> pl.DataFrame:
    """The frame as one chunk per core (of `rows` rows at least): polars runs a string
    expression on each chunk of a column in a thread of its own, and on one chunk in one
    thread, so a single-chunk shard's regex counts kept one core busy."""
    parts = min(available_cores(), frame.height // rows)
    if parts < 2:
        return frame
    size = -(-frame.height // parts)
    pieces = [frame.slice(start, size) for start in range(0, frame.height, size)]
    return pl.concat(pieces, rechunk=False)
