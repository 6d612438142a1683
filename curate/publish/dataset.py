"""The curated dataset in Hub layout: data/*.parquet plus a card that tells its story."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel

from curate.memory import release_memory
from curate.recipe import dump_recipe
from curate.records import TRACE_SCHEMA, conform, small_types

DATASET_COLUMNS = (
    "problem_id",
    "source",
    "source_id",
    "domain",
    "problem",
    "reference",
    "prompt",
    "reasoning",
    "completion",
    "model",
    "round",
    "sample_idx",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "verdict",
    "verifier",
    "extracted_answer",
    "gen_key",
)
DATA_FILE = "data/train-00000-of-00001.parquet"


def write_dataset(
    shards: list[Path], out_dir: Path, recipe: BaseModel, stats: dict[str, Any]
) -> int:
    """Write the ledger's surviving rows, shard by shard into one file, and the card;
    returns the number of rows. Memory holds one shard, however large the ledger."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    target = out_dir / DATA_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    writer: pq.ParquetWriter | None = None
    models: set[str] = set()
    count = 0
    try:
        sources: list[Path | None] = [*shards] or [None]  # an empty ledger: an empty file
        for shard in sources:
            ledger = conform(pq.read_table(shard)) if shard else TRACE_SCHEMA.empty_table()
            rows = small_types(surviving(ledger))
            if writer is None:
                writer = pq.ParquetWriter(partial, rows.schema, compression="zstd")
            writer.write_table(rows.cast(writer.schema))
            models.update(m for m in rows["model"].to_pylist() if m)
            count += rows.num_rows
            release_memory(collect=False)
    finally:
        if writer is not None:
            writer.close()
    os.replace(partial, target)
    (out_dir / "README.md").write_text(card(recipe, stats, count, sorted(models)), "utf-8")
    return count


def surviving(ledger: pa.Table) -> pa.Table:
    """The rows still in the funnel, with the dataset's columns."""
    rows = ledger.filter(pc.is_null(ledger["dropped"]))
    return rows.select([c for c in DATASET_COLUMNS if c in rows.column_names])


def card(recipe: BaseModel, stats: dict[str, Any], rows: int, models: list[str]) -> str:
    # No `configs:` block: datasets 5.2 keys its cache of a local folder on that block
    # alone, so two runs' folders with the same block load as the same (stale) data.
    # Without it the split comes from the file name (data/train-*.parquet), as on the Hub.
    header = {"tags": ["reasoning", "chain-of-thought", "curate"]}
    name = getattr(recipe, "name", "dataset")
    parts = [
        "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n",
        f"# {name}\n",
        f"{rows:,} verified reasoning traces (prompt, chain of thought, final answer), "
        "built with curate.\n",
    ]
    if "simulated" in models:
        parts.append(
            "> **Not model output.** These traces were written by curate's `simulated` "
            "teacher, a deterministic stand-in used for demos and tests. Do not train on them.\n"
        )
    elif models:
        parts.append(f"Teacher model(s): {', '.join(f'`{m}`' for m in models)}.\n")
    source = getattr(recipe, "source", None)
    existing = source is not None and getattr(source, "traces", lambda: False)()
    prompt = (
        "`prompt` holds the problem as one user message (the traces came with the input; "
        "the messages that produced them are not known)"
        if existing
        else "`prompt` holds the exact chat messages sent to the teacher"
    )
    parts.append(
        f"## Columns\n\n{prompt}, `reasoning` the chain of thought, `completion` the final "
        "answer text, and `verdict` / `verifier` how it was checked.\n"
    )
    parts.append("## How it was made\n\n" + funnel_markdown(stats))
    parts.append("## Recipe\n\n```yaml\n" + dump_recipe(recipe) + "```\n")
    return "\n".join(parts)


def funnel_markdown(stats: dict[str, Any]) -> str:
    lines = ["| stage | in | out | dropped |", "|---|---:|---:|---|"]
    for stage, entry in stats.items():
        start = f"{entry['in']:,}"
        if "generated" in entry:
            start += f" → {entry['generated']:,} samples"
        dropped = ", ".join(f"{k}: {v:,}" for k, v in entry["dropped"].items()) or "-"
        lines.append(f"| {stage} | {start} | {entry['out']:,} | {dropped} |")
    return "\n".join(lines) + "\n"
