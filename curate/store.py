"""The run directory: recipe, funnel, ledger shards, stage markers, cache and dataset.

RUN/
  recipe.yaml    resolved recipe, secrets removed
  stats.json     the funnel: {stage: {in, out, dropped: {reason: n}, seconds, ...}}
  ledger/        every row with all stage columns (the last stage's shards)
  ledger.json    which stage shards ledger/ holds (a publish cut short is taken up)
  cache/         generation request cache
  review/        review exchanges
  dataset/       README.md (card) + data/*.parquet
  reports/       decontamination.json (per benchmark: matches, methods, scores)
  stages/NN-name/  each stage's output shards and its _stage.json marker (a stage that keeps
                   its rows writes only the columns it changed: curate/shards.py)
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import StoreError
from curate.memory import release_memory

MARKER = "_stage.json"
WORKING = "keys"  # a stage's working files, kept until it is complete
LEAN = "_lean.json"  # its shards may read their text from the ledger
Stats = dict[str, Any]


@dataclass
class StageState:
    """What a stage's directory says about earlier work."""

    path: Path
    complete: bool
    stats: Stats = field(default_factory=dict)


class RunStore:
    """Paths and markers of one run directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.recipe = root / "recipe.yaml"
        self.stats = root / "stats.json"
        self.ledger = root / "ledger"
        self.ledger_record = root / "ledger.json"  # the stage shards ledger/ holds, or is given
        self.cache = root / "cache"
        self.review = root / "review"
        self.dataset = root / "dataset"
        self.stages = root / "stages"
        self.reports = root / "reports"

    def create(self) -> None:
        try:
            for path in (self.root, self.ledger, self.cache, self.stages):
                path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.root}: cannot create the run directory ({exc})") from None

    def stage_dir(self, index: int, name: str) -> Path:
        return self.stages / f"{index:02d}-{name}"

    def is_complete(self, path: Path, identity: str) -> bool:
        """Whether a stage's directory holds finished output for this identity (read only)."""
        marker = read_json(path / MARKER)
        done = marker.get("identity") == identity and bool(marker.get("complete"))
        return done and self.intact(path) and self.readable(path)

    def readable(self, path: Path) -> bool:
        """Whether every shard of a folder has a readable Parquet footer: a truncated or
        damaged shard makes its stage run again (and heal) instead of counting as done."""
        return all(readable(shard) for shard in self.shards(path))

    def open_stage(self, path: Path, identity: str) -> StageState:
        """Reuse a stage's directory if its identity matches and every file its shards read
        is there; otherwise start it afresh."""
        marker = read_json(path / MARKER)
        if marker.get("identity") == identity and self.intact(path):
            return StageState(path, bool(marker.get("complete")), marker.get("stats", {}))
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        write_json(path / MARKER, {"identity": identity, "complete": False})
        return StageState(path, False)

    def intact(self, path: Path) -> bool:
        """Whether a stage's shards that read their text from the ledger still can."""
        if not (path / LEAN).exists():
            return True
        return all(readable(self.ledger / shard.name) for shard in self.shards(path))

    def reset_stage(self, path: Path) -> None:
        """Forget a stage's output so it runs again."""
        if path.exists():
            shutil.rmtree(path)

    def finish_stage(self, path: Path, identity: str, stats: Stats) -> None:
        """Mark a stage done; its working files (a problem-level stage's keys/) go."""
        write_json(path / MARKER, {"identity": identity, "complete": True, "stats": stats})
        shutil.rmtree(path / WORKING, ignore_errors=True)

    def drop_stale_stages(self, keep: set[Path]) -> None:
        """Remove directories of stages no longer in the pipeline."""
        if self.stages.exists():
            for path in self.stages.iterdir():
                if path.is_dir() and path not in keep:
                    shutil.rmtree(path)

    @staticmethod
    def shards(path: Path) -> list[Path]:
        return sorted(path.glob("part-*.parquet"))

    def publish_ledger(self, stage_path: Path) -> None:
        """Make ledger/ hold the final stage's shards as whole rows (hard links where the
        stage wrote them whole); the full shards the stage extends then keep only what
        the stages changed and read their text from the ledger (curate/shards.py).

        A publish cut short (a crash) is taken up where it stopped while the stage's
        shards are the ones it was publishing (their names, sizes and times, saved in
        ledger.json): the ledger shards written and the bases made lean are kept. Otherwise
        the old ledger goes, and the dataset made from it."""
        from curate.shards import full_base, lean_base, materialize

        shards = self.shards(stage_path)
        publishing = {"stage": str(stage_path.resolve()), "shards": fingerprints(shards)}
        if read_json(self.ledger_record) != publishing:
            self.restore_bases()
            shutil.rmtree(self.ledger, ignore_errors=True)
            shutil.rmtree(self.dataset, ignore_errors=True)
            write_json(self.ledger_record, publishing)
        self.ledger.mkdir(parents=True, exist_ok=True)  # also where ledger/ alone was removed
        for shard in shards:
            if not (self.ledger / shard.name).exists():
                materialize(shard, self.ledger / shard.name)
                release_memory(collect=False)
        bases = [(shard, base) for shard in shards if (base := full_base(shard))]
        for folder in {base.parent for _, base in bases}:  # before any shard there is lean
            write_json(folder / LEAN, {"ledger": str(self.ledger)})
        for shard, base in bases:
            lean_base(shard, base, self.ledger / shard.name)
            release_memory(collect=False)

    def restore_bases(self) -> None:
        """Make whole again every stage shard that reads its text from the ledger."""
        from curate.shards import restore_base

        for mark in sorted(self.stages.glob(f"*/{LEAN}")):
            for path in self.shards(mark.parent):
                restore_base(path)
                release_memory(collect=False)
            mark.unlink()

    def load_stats(self) -> Stats:
        if not self.stats.exists():
            raise StoreError(f"{self.root}: no stats.json (is this a run directory?)")
        return read_json(self.stats)

    def save_stats(self, stats: Stats) -> None:
        write_json(self.stats, stats)


def fingerprints(paths: list[Path]) -> dict[str, list[int]]:
    """Each file's name with its size and modification time: what tells a file rewritten."""
    return {path.name: [path.stat().st_size, path.stat().st_mtime_ns] for path in paths}


def read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path}: unreadable ({exc})") from None
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (a crash leaves the old file or the new one)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def readable(shard: Path) -> bool:
    """Whether a Parquet file exists and its footer can be read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(shard)
    except (pa.ArrowException, OSError):
        return False
    return True
