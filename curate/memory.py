"""Giving memory back between steps and shards.

Arrow's pool and the C allocator keep freed pages for reuse, so without this a process stays
at each step's high-water mark through every step after it, and a long run's footprint is
the sum of what its steps once held rather than the largest of them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from typing import Any

import pyarrow as pa


def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None  # glibc only


TRIM = _malloc_trim()


def release_memory(collect: bool = True) -> None:
    """Free what is only held in reference cycles (collect; a full collection costs about
    50 ms, so between shards pass False) and return the pools' free pages to the system."""
    if collect:
        gc.collect()
    pa.default_memory_pool().release_unused()
    if TRIM is not None:
        TRIM(0)
