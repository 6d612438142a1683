"""Stage a run's Hub repository in RUN/publish/: configs, card, recipe and funnel."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from curate.errors import PublishError
from curate.publish.card import CONFIG_FILES, card_text, public_recipe
from curate.publish.configs import all_config, preference_config, rl_config, sft_config
from curate.publish.hub import Published, upload
from curate.publish.settings import PublishConfig
from curate.records import small_types, write_parquet
from curate.report import write_report
from curate.store import RunStore, read_json


@dataclass(frozen=True)
class Staged:
    """What `curate publish` put in RUN/publish/."""

    path: Path
    rows: dict[str, int]  # per config
    settings: PublishConfig


def load_settings(
    store: RunStore, overrides: dict[str, Any]
) -> tuple[dict[str, Any], PublishConfig]:
    """The run's saved recipe (as a mapping) and its publish settings, flags applied."""
    if not store.recipe.exists():
        raise PublishError(f"{store.root}: no recipe.yaml (is this a finished run directory?)")
    recipe = yaml.safe_load(store.recipe.read_text(encoding="utf-8")) or {}
    saved = recipe.get("publish") or {}
    given = {k: v for k, v in overrides.items() if v is not None}
    return recipe, PublishConfig.model_validate({**saved, **given})


def build_configs(ledger: pl.DataFrame, think: bool) -> dict[str, pl.DataFrame]:
    frames = {
        "default": sft_config(ledger, think),
        "all": all_config(ledger),
        "rl": rl_config(ledger),
        "preference": preference_config(ledger, think),
    }
    return {name: frame for name, frame in frames.items() if frame.height}


def stage_repository(run_dir: Path, overrides: dict[str, Any] | None = None) -> Staged:
    """Write the exact repository content to RUN/publish/ (replacing what was there)."""
    store = RunStore(run_dir)
    recipe, settings = load_settings(store, overrides or {})
    shards = store.shards(store.ledger)
    if not shards:
        raise PublishError(f"{run_dir}: the ledger is empty (run `curate run` first)")
    ledger = pl.read_parquet(shards)
    frames = build_configs(ledger, settings.think)
    if "default" not in frames:
        raise PublishError(f"{run_dir}: no kept trace to publish (`curate stats {run_dir}`)")
    target = run_dir / "publish"
    if target.exists():
        shutil.rmtree(target)
    for name, frame in frames.items():
        table = small_types(frame.to_arrow())
        write_parquet(table, target / CONFIG_FILES[name] / "train-00000-of-00001.parquet")
    stats = store.load_stats()
    report = read_json(store.reports / "decontamination.json")
    plots = sorted(write_report(run_dir).parent.glob("*.png"))
    (target / "report").mkdir()
    for plot in plots:
        shutil.copy2(plot, target / "report" / plot.name)
    loop = read_json(run_dir.resolve().parent / "loop.json")  # a round of `curate loop`
    card = card_text(recipe, settings, stats, frames, report, [p.name for p in plots], loop)
    (target / "README.md").write_text(card, encoding="utf-8")
    (target / "curate").mkdir()
    (target / "curate" / "recipe.yaml").write_text(
        yaml.safe_dump(public_recipe(recipe), sort_keys=False), encoding="utf-8"
    )
    (target / "curate" / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", "utf-8")
    return Staged(target, {name: frame.height for name, frame in frames.items()}, settings)


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
