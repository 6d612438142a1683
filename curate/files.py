"""One stage on plain files: `curate <stage> --in PATH --out PATH [--set key=value]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError, create_model

from curate import registry
from curate.decontam.report import write_report
from curate.errors import RecipeError, SourceError
from curate.progress import Progress, QuietProgress
from curate.recipe import apply_override, describe_errors, parse_override
from curate.records import conform, problem_id, write_parquet
from curate.runner import check_columns, process_batch
from curate.sources.files import file_format, read_rows
from curate.stage import Stage, StageContext
from curate.stats import Stats, merge_stats

BATCH_ROWS = 4096


def stage_config(name: str, overrides: list[str]) -> Any:
    """A stage's config from `--set` items (`key=v` or `section.key=v`)."""
    cls = registry.stages.get(name)
    raw: dict[str, Any] = {cls.section: {}}
    for item in overrides:
        parts, _ = parse_override(item)
        apply_override(raw, item if parts[0] == cls.section else f"{cls.section}.{item}")
    model = create_model("Section", **{cls.section: (cls.config_type(), ...)})  # type: ignore[call-overload]
    try:
        return getattr(model.model_validate(raw), cls.section)
    except ValidationError as exc:
        raise RecipeError("; ".join(describe_errors(exc, raw, model))) from None


def read_table(path: Path) -> pa.Table:
    """A JSONL, JSON, CSV or Parquet file as an Arrow table, with errors naming the file."""
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    if file_format(path) == "parquet":
        try:
            return pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"{path}: not a readable Parquet file ({exc})") from None
    rows = [row for _, row in read_rows(path)]
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SourceError(f"{path}: a column holds values of different types ({exc})") from None


def write_table(table: pa.Table, path: Path) -> None:
    kind = file_format(path)
    if kind == "parquet":
        write_parquet(table, path)
    elif kind == "jsonl":
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        frame.write_ndjson(path)
    else:
        raise SourceError(f"{path}: write .jsonl or .parquet")


def run_stage_on_file(
    name: str,
    in_path: Path,
    out_path: Path,
    overrides: list[str],
    progress: Progress | None = None,
) -> Stats:
    """Run one stage over every row of a file, keeping every input row in the output."""
    config = stage_config(name, overrides)
    file_format(out_path)  # refuse an unknown output format before any work
    table = with_problem_ids(read_table(in_path), in_path)
    context = StageContext(out_path.parent / ".curate-cache", progress=progress or QuietProgress())
    stage: Stage = registry.stages.get(name)(config, context)
    check_columns([stage], set(table.column_names))
    table = _conformed(table, in_path)
    stage.plan(table["dropped"].null_count)  # rows no stage has dropped
    outputs, parts = [], []
    try:
        for start in range(0, table.num_rows, BATCH_ROWS):
            out, stats = process_batch(stage, table.slice(start, BATCH_ROWS))
            stage.advance(stats["in"])
            outputs.append(out)
            parts.append(stats)
    finally:
        stage.close()
    result = pa.concat_tables(outputs, promote_options="permissive")
    write_table(result, out_path)
    write_report(result, out_path.with_name(out_path.name + ".decontamination.json"))
    return merge_stats(parts)


def with_problem_ids(table: pa.Table, path: Path) -> pa.Table:
    """Give rows a problem_id (hash of source and problem text) when the file has none."""
    if "problem_id" in table.column_names or "problem" not in table.column_names:
        return table
    sources = table["source"].to_pylist() if "source" in table.column_names else None
    ids = [
        problem_id(sources[i] if sources and sources[i] else path.stem, text or "")
        for i, text in enumerate(table["problem"].to_pylist())
    ]
    return table.append_column("problem_id", pa.array(ids, pa.string()))


def _conformed(table: pa.Table, path: Path) -> pa.Table:
    try:
        return conform(table)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise SourceError(f"{path}: a column has the wrong type ({exc})") from None
