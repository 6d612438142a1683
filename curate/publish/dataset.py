"""The curated dataset in Hub layout: data/*.parquet plus a card that tells its story."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from curate.memory import release_memory
from curate.publish.card import RECIPE_NOTE, funnel_markdown, models_notice, public_recipe
from curate.publish.configs import conversation
from curate.recipe import Recipe, recipe_data
from curate.records import TRACE_SCHEMA, conform, small_types, write_parquet
from curate.shards import live_rows, read_shard

DATASET_COLUMNS = (
    "problem_id",
    "source",
    "source_id",
    "domain",
    "problem",
    "reference",
    "prompt",
    "messages",
    "completion",
    "reasoning",
    "solution",
    "model",
    "round",
    "sample_idx",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "verdict",
    "verifier",
    "verdict_tier",
    "extracted_answer",
    "gen_key",
)
# what the dataset is made of, in the ledger's names (its `completion`: the solution text)
LEDGER_COLUMNS = tuple(
    "completion" if c == "solution" else c
    for c in DATASET_COLUMNS
    if c not in ("messages", "completion")
)
DATA_FILES = "data/train-{index:05d}-of-{count:05d}.parquet"  # one per ledger shard


def write_dataset(
    shards: list[Path],
    out_dir: Path,
    recipe: Recipe,
    stats: dict[str, Any],
    extra: tuple[str, ...] = (),
) -> int:
    """Write the ledger's surviving rows, a file per ledger shard that has any (the Hub's
    train-00000-of-00003 naming; `datasets` cannot read a file of no rows beside others),
    and then the card; returns the number of rows. Files already there are kept: a crash
    redoes at most the file in hand (the ledger clears dataset/ whenever it changes:
    RunStore.publish_ledger). Memory holds one shard. extra: columns stages publish."""
    alive = [shard for shard in shards if live_rows(shard)]
    sources: list[Path | None] = [*alive] or [None]  # nothing kept: one empty file
    count, models = 0, set[str]()
    think = recipe.publish.think if recipe.publish is not None else True
    for index, shard in enumerate(sources):
        target = out_dir / DATA_FILES.format(index=index, count=len(sources))
        if not target.exists():
            write_part(shard, target, extra, think)
        count += pq.read_metadata(target).num_rows
        models.update(m for m in pq.read_table(target, columns=["model"])["model"].to_pylist() if m)
        release_memory(collect=False)
    (out_dir / "README.md").write_text(card(recipe, stats, count, sorted(models)), "utf-8")
    return count


def write_part(
    shard: Path | None, target: Path, extra: tuple[str, ...] = (), think: bool = True
) -> None:
    """One ledger shard's surviving rows as a dataset file (atomically), in the names of the
    published configs (`completion` the assistant turn, `solution` the text after the
    reasoning: curate/publish/configs.py) and in the dataset's types whatever the shard
    holds, so every file has the same schema (a published column a shard lacks is null)."""
    ledger = conform(read_shard(shard)) if shard else TRACE_SCHEMA.empty_table()
    rows = small_types(as_view(surviving(ledger, extra), think, extra))
    known = small_types(as_view(surviving(TRACE_SCHEMA.empty_table()), think)).schema
    fields = [
        known.field(name) if name in known.names else rows.schema.field(name)
        for name in rows.column_names
    ]
    write_parquet(rows.cast(pa.schema(fields)), target)


def surviving(ledger: pa.Table, extra: tuple[str, ...] = ()) -> pa.Table:
    """The rows still in the funnel, with the ledger columns the dataset is made of and
    those stages publish."""
    rows = ledger.filter(pc.is_null(ledger["dropped"]))
    for name in extra:
        if name not in rows.column_names:
            rows = rows.append_column(name, pa.nulls(rows.num_rows, pa.string()))
    return rows.select([c for c in (*LEDGER_COLUMNS, *extra) if c in rows.column_names])


def as_view(rows: pa.Table, think: bool, extra: tuple[str, ...] = ()) -> pa.Table:
    """Ledger rows in the published names and order (DATASET_COLUMNS, then extra)."""
    frame = pl.from_arrow(rows.replace_schema_metadata(None))
    assert isinstance(frame, pl.DataFrame)
    view = conversation(frame, think)
    return view.select([c for c in (*DATASET_COLUMNS, *extra) if c in view.columns]).to_arrow()


def card(recipe: Recipe, stats: dict[str, Any], rows: int, models: list[str]) -> str:
    # No `configs:` block: datasets 5.2 keys its cache of a local folder on that block
    # alone, so two runs' folders with the same block load as the same (stale) data.
    # Without it the split comes from the file name (data/train-*.parquet), as on the Hub.
    header = {"tags": ["reasoning", "chain-of-thought", "curate"]}
    name = recipe.name
    parts = [
        "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n",
        f"# {name}\n",
        f"{rows:,} verified reasoning traces (prompt, chain of thought, final answer), "
        "built with curate.\n",
    ]
    parts.append(models_notice(models))
    existing = recipe.source.traces()
    prompt = (
        "`prompt` holds the problem as one user message (the traces came with the input; "
        "the messages that produced them are not known)"
        if existing
        else "`prompt` holds the exact chat messages sent to the teacher"
    )
    parts.append(
        f"## Columns\n\n{prompt}, `completion` the assistant turn to train on (the reasoning "
        "in `<think>` tags, then the solution), `messages` the two together, `reasoning` the "
        "chain of thought, `solution` the text after it, `extracted_answer` the final answer "
        "the verifier read, and `verdict` / `verifier` how it was checked.\n"
    )
    parts.append("## How it was made\n\n" + funnel_markdown(stats))
    public = yaml.safe_dump(public_recipe(recipe_data(recipe)), sort_keys=False)
    parts.append(f"## Recipe\n\n{RECIPE_NOTE}\n\n```yaml\n{public}```\n")
    return "\n".join(parts)
