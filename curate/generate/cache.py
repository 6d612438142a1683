"""The generation request cache: every finished sample, stored the moment it arrives.

SQLite in WAL mode: a committed sample survives kill -9 of the writer, and a rerun
asks the backend only for what is missing.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from curate.errors import StoreError
from curate.generate.base import Sample

SCHEMA = """
create table if not exists samples (
    gen_key text not null,
    sample_idx integer not null,
    data text not null,
    primary key (gen_key, sample_idx)
) without rowid
"""


WAL_TRIES = 200  # about 20 s of tries at most


class SampleCache:
    """Samples keyed by (gen_key, sample_idx)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(
            path, timeout=60, isolation_level=None, check_same_thread=False
        )  # timeout: other processes (a cluster's tasks) may be writing
        self._use_wal()
        self._db.execute("pragma synchronous=normal")
        self._db.execute(SCHEMA)

    def _use_wal(self) -> None:
        """Switch the file to write-ahead logging, unless it is already. The switch needs
        the file to itself and SQLite answers "locked" at once, without waiting, when
        several processes (a cluster's tasks) open a new cache together: try again."""
        for attempt in range(WAL_TRIES):
            try:
                if self._db.execute("pragma journal_mode").fetchone()[0] != "wal":
                    self._db.execute("pragma journal_mode=wal")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == WAL_TRIES - 1:
                    raise
                time.sleep(0.05 + random.random() * 0.1)

    @property
    def db(self) -> sqlite3.Connection:
        """The open database (the batch store keeps its tables in the same file)."""
        return self._db

    def put(self, gen_key: str, sample: Sample) -> None:
        data = json.dumps(sample.to_dict(), ensure_ascii=False)
        try:
            self._db.execute(
                "insert or replace into samples values (?, ?, ?)",
                (gen_key, sample.sample_idx, data),
            )
        except sqlite3.OperationalError as exc:  # disk full, read-only: say where
            raise StoreError(
                f"{self.path}: cannot save a sample ({exc}); what was saved before is kept, "
                "free some space and run again to resume"
            ) from None

    def get_many(self, gen_keys: Iterable[str]) -> dict[tuple[str, int], Sample]:
        keys = sorted(set(gen_keys))
        found: dict[tuple[str, int], Sample] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"select gen_key, sample_idx, data from samples where gen_key in ({marks})", chunk
            )
            for gen_key, sample_idx, data in rows:
                found[(gen_key, sample_idx)] = Sample(**json.loads(data))
        return found

    def summary(self) -> dict[str, int]:
        row = self._db.execute(
            "select count(*), count(distinct gen_key), "
            "coalesce(sum(json_extract(data, '$.completion_tokens')), 0) from samples"
        ).fetchone()
        return {"samples": int(row[0]), "requests": int(row[1]), "completion_tokens": int(row[2])}

    def count(self) -> int:
        return int(self._db.execute("select count(*) from samples").fetchone()[0])

    def close(self) -> None:
        self._db.close()
