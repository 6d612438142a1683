"""Stage a run's Hub repository in RUN/publish/: configs, card, recipe and funnel."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import yaml

from curate.errors import PublishError
from curate.memory import release_memory
from curate.publish.card import CARD_COLUMNS, CONFIG_FILES, ConfigFacts, card_text, public_recipe
from curate.publish.configs import all_config, preference_config, rl_config, sft_config
from curate.publish.hub import Published, upload
from curate.publish.settings import PublishConfig
from curate.recipe import Recipe, load_run, recipe_data
from curate.records import small_types
from curate.report import write_report
from curate.store import RunStore, read_json


@dataclass(frozen=True)
class Staged:
    """What `curate publish` put in RUN/publish/."""

    path: Path
    rows: dict[str, int]  # per config
    settings: PublishConfig


def load_settings(store: RunStore, overrides: dict[str, Any]) -> tuple[Recipe, PublishConfig]:
    """The run's saved recipe and its publish settings, flags applied."""
    if not store.recipe.exists():
        raise PublishError(f"{store.root}: no recipe.yaml (is this a finished run directory?)")
    recipe = load_run(store.root)
    given = {k: v for k, v in overrides.items() if v is not None}
    return recipe, PublishConfig.model_validate({**recipe.publish.model_dump(), **given})


def build_configs(
    ledger: pl.DataFrame, think: bool, extra: tuple[str, ...] = ()
) -> dict[str, pl.DataFrame]:
    """The four configs of one part of the ledger; extra: columns the run's stages publish
    (carried by `default` and `all`)."""
    frames = {
        "default": sft_config(ledger, think, extra),
        "all": all_config(ledger, extra, think),
        "rl": rl_config(ledger),
        "preference": preference_config(ledger, think),
    }
    return {name: frame for name, frame in frames.items() if frame.height}


FILE = "train-00000-of-00001.parquet"


def write_configs(
    parts: Iterable[pl.DataFrame], think: bool, target: Path, extra: tuple[str, ...] = ()
) -> ConfigFacts:
    """Each config written a part of the ledger at a time (every part holds its problems'
    traces whole), so memory holds one part, not the ledger; what the card needs of them
    is kept."""
    writers: dict[str, pq.ParquetWriter] = {}
    facts, every, rates = ConfigFacts(), [], []
    try:
        for ledger in parts:
            frames = build_configs(ledger, think, extra)
            for name, frame in frames.items():
                table = small_types(frame.to_arrow())
                if name not in writers:
                    path = target / CONFIG_FILES[name] / FILE
                    path.parent.mkdir(parents=True, exist_ok=True)
                    writers[name] = pq.ParquetWriter(path, table.schema, compression="zstd")
                writers[name].write_table(table.cast(writers[name].schema))
                facts.sizes[name] = facts.sizes.get(name, 0) + frame.height
            every.append(_present(frames.get("all"), CARD_COLUMNS))
            rates.append(_present(frames.get("rl"), ("pass_rate",)))
            release_memory(collect=False)
    finally:
        for writer in writers.values():
            writer.close()
    facts.sizes = {name: facts.sizes[name] for name in CONFIG_FILES if name in facts.sizes}
    facts.every = pl.concat(every, how="diagonal_relaxed") if every else pl.DataFrame()
    facts.rates = pl.concat(rates, how="diagonal_relaxed") if rates else pl.DataFrame()
    return facts


def _present(frame: pl.DataFrame | None, names: tuple[str, ...]) -> pl.DataFrame:
    if frame is None:
        return pl.DataFrame()
    return frame.select([name for name in names if name in frame.columns])


def ledger_parts(store: RunStore, shards: list[Path]) -> Iterator[pl.DataFrame]:
    """The ledger a shard at a time (the source keeps each problem's traces in one shard)."""
    for shard in shards:
        yield pl.read_parquet(shard, glob=False)


def stage_repository(
    run_dir: Path, overrides: dict[str, Any] | None = None, out: Path | None = None
) -> Staged:
    """Write the exact repository content to RUN/publish/, or to `out` (a run kept in a
    read-only place), replacing what was there once the new content is whole."""
    target = out or run_dir / "publish"
    try:
        return _stage_repository(run_dir, overrides or {}, target)
    except OSError as exc:
        where = exc.filename or target
        raise PublishError(
            f"{where}: cannot write ({exc.strerror or exc}); stage the repository elsewhere "
            "with --out DIR"
        ) from None


def _stage_repository(run_dir: Path, overrides: dict[str, Any], target: Path) -> Staged:
    store = RunStore(run_dir)
    recipe, settings = load_settings(store, overrides)
    shards = store.shards(store.ledger)
    if not shards:
        raise PublishError(f"{run_dir}: the ledger is empty (run `curate run` first)")
    building = target.parent / f".{target.name}-building"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(building, ignore_errors=True)
    extra = recipe.published_columns()
    configs = write_configs(ledger_parts(store, shards), settings.think, building, extra)
    if "default" not in configs.sizes:
        shutil.rmtree(building, ignore_errors=True)
        raise PublishError(f"{run_dir}: no kept trace to publish (`curate stats {run_dir}`)")
    stats = store.load_stats()
    report = read_json(store.reports / "decontamination.json")
    page = write_report(run_dir, building / "report")  # the plots the card shows
    page.unlink()  # the page itself is the run's, not the repository's
    plots = sorted(page.parent.glob("*.png"))
    loop = read_json(run_dir.resolve().parent / "loop.json")  # a round of `curate loop`
    data = recipe_data(recipe)
    audit = read_json(store.reports / "audit.json")  # `curate audit`, when it ran
    names = [p.name for p in plots]
    card = card_text(data, settings, stats, configs, report, names, loop, audit)
    (building / "README.md").write_text(card, encoding="utf-8")
    (building / "curate").mkdir()
    (building / "curate" / "recipe.yaml").write_text(
        yaml.safe_dump(public_recipe(data), sort_keys=False), encoding="utf-8"
    )
    (building / "curate" / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", "utf-8")
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    return Staged(target, dict(configs.sizes), settings)


def publish_staged(
    staged: Staged, revision: str | None, tag: str | None, endpoint: str | None
) -> Published:
    """Upload a staged repository: token from HF_TOKEN or the login cache, never shown."""
    from huggingface_hub import get_token

    repo_id = staged.settings.repo_id
    if not repo_id:
        raise PublishError("no repository: give --repo-id ORG/NAME or set publish.repo_id")
    if "/" not in repo_id:
        raise PublishError(f"--repo-id {repo_id!r}: expected ORG/NAME")
    if get_token() is None:
        raise PublishError("no Hugging Face token: set HF_TOKEN or log in (`hf auth login`)")
    return upload(
        staged.path,
        repo_id,
        private=staged.settings.private,
        revision=revision,
        tag=tag,
        endpoint=endpoint or os.environ.get("HF_ENDPOINT"),
    )
