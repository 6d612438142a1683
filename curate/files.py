"""One stage on plain files: `curate <stage> --in PATH --out PATH [--set key=value]`."""

from __future__ import annotations

import json
import shutil
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
from curate.recipe import OverrideError, apply_override, describe_errors, parse_override
from curate.records import (
    conform,
    problem_id,
    read_parquet_metadata,
    stable_hash,
    write_parquet,
)
from curate.regroup import problem_batches
from curate.runner import TraceMarker, check_columns
from curate.sources.files import check_file, check_parquet_text, file_format, read_rows
from curate.stage import Stage, StageContext
from curate.stats import Stats, merge_stats
from curate.units import STATS_KEY, process_batch

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
    check_file(path)
    if file_format(path) == "parquet":
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"{path}: not a readable Parquet file ({exc})") from None
        if table.num_rows == 0:
            raise SourceError(f"{path}: no rows")
        check_parquet_text(table, path)
        return table
    rows = [row for _, row in read_rows(path)]
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SourceError(f"{path}{_mixed_column(rows, exc)}") from None


def _mixed_column(rows: list[dict[str, Any]], exc: Exception) -> str:
    """' row N, field 'x': ...' for the first value whose type differs from the column's."""
    first: dict[str, type] = {}
    for number, row in enumerate(rows, start=1):
        for name, value in row.items():
            if value is None:
                continue
            kind = first.setdefault(name, type(value))
            if not isinstance(value, kind) and not {kind, type(value)} <= {int, float}:
                return (
                    f" row {number}, field '{name}': {type(value).__name__} where earlier rows "
                    f"have {kind.__name__} (a column holds one type)"
                )
    return f": a column holds values of different types ({exc})"


TEXT_COLUMNS = ("problem", "completion", "reasoning")


def check_text_columns(table: pa.Table, path: Path) -> None:
    """A text field given a number, list or mapping is named by row and field before work."""
    for name in TEXT_COLUMNS:
        if name not in table.column_names:
            continue
        kind = table.schema.field(name).type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
            continue
        for number, value in enumerate(table[name].to_pylist(), start=1):
            if value is not None:
                shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
                raise SourceError(
                    f"{path} row {number}, field '{name}': expected text, got "
                    f"{type(value).__name__} {shown}"
                )
    if "reference" in table.column_names:
        kind = table.schema.field("reference").type
        if pa.types.is_nested(kind) or pa.types.is_binary(kind):
            values = table["reference"].to_pylist()
            row = next((n for n, v in enumerate(values, start=1) if v is not None), 1)
            raise SourceError(
                f"{path} row {row}, field 'reference': expected text or a number, got {kind}"
            )


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


# Names the common public datasets use for what curate calls problem, reference, ...
ALIASES: dict[str, tuple[str, ...]] = {
    "problem": ("question", "prompt", "instruction", "query"),
    "reference": ("answer", "gold", "final_answer", "ground_truth"),
    "tests": ("test", "test_list", "test_cases", "input_output"),
    "reasoning": ("reasoning_content", "thinking", "cot"),
    "completion": ("response", "output", "generation"),
}
MAPPABLE = ("problem", "reference", "id", "tests", "domain", "reasoning", "completion")


def parse_columns(items: list[str]) -> dict[str, str]:
    """`--columns reference=answer,problem=question` (repeatable) as {name: file column}."""
    mapping: dict[str, str] = {}
    for item in ",".join(items).split(","):
        if not item.strip():
            continue
        name, sep, column = (part.strip() for part in item.partition("="))
        if not sep or not name or not column:
            raise OverrideError(f"--columns {item!r}: expected NAME=COLUMN, e.g. reference=answer")
        if name not in MAPPABLE:
            raise OverrideError(f"--columns {item!r}: '{name}' is not one of {', '.join(MAPPABLE)}")
        mapping[name] = column
    return mapping


def map_columns(
    table: pa.Table, path: Path, stage: Stage, mapping: dict[str, str]
) -> tuple[pa.Table, dict[str, str]]:
    """Rename the file's columns to the names the stage reads: as mapped, else by a common
    alias when exactly one is present. Returns the table and what was renamed."""
    renames = {}
    for name, column in mapping.items():
        if column not in table.column_names:
            raise SourceError(
                f"{path}: --columns {name}={column}: no column '{column}' "
                f"(the file has: {', '.join(table.column_names)})"
            )
        renames[column] = "source_id" if name == "id" else name
    present = set(table.column_names) | set(renames.values())
    wanted = {"problem", "reference", *stage.reads} - present  # reference: used where present
    for name in sorted(wanted & set(ALIASES)):
        found = [c for c in ALIASES[name] if c in table.column_names and c not in renames]
        if len(found) == 1:
            renames[found[0]] = name
    table = table.rename_columns([renames.get(c, c) for c in table.column_names])
    return table, renames


def missing_columns(table: pa.Table, path: Path, stage: Stage, original: list[str]) -> None:
    """Refuse, before any work, a file without a column the stage reads, saying how to map it."""
    missing = [c for c in stage.reads if c not in table.column_names and c != "problem_id"]
    if not missing:
        return
    name = missing[0]
    candidates = [c for c in ALIASES.get(name, ()) if c in original]
    hint = (
        f"several could be it ({', '.join(candidates)}): choose with --columns {name}=COLUMN"
        if len(candidates) > 1
        else f"map one with --columns {name}=COLUMN"
    )
    raise SourceError(
        f"{path}: stage '{stage.name}' reads column '{name}', which the file lacks "
        f"(it has: {', '.join(original)}); {hint}"
    )


def run_stage_on_file(
    name: str,
    in_path: Path,
    out_path: Path,
    overrides: list[str],
    progress: Progress | None = None,
    columns: dict[str, str] | None = None,
    cache_dir: Path | None = None,
) -> Stats:
    """Run one stage over every row of a file, keeping every input row in the output.

    columns: {curate name: file column}; common names are recognised without it.
    cache_dir: where generation caches its samples (default: .curate-cache beside --out).
    """
    config = stage_config(name, overrides)
    file_format(out_path)  # refuse an unknown output format before any work
    context = StageContext(
        cache_dir or out_path.parent / ".curate-cache", progress=progress or QuietProgress()
    )
    stage: Stage = registry.stages.get(name)(config, context)
    raw = read_table(in_path)
    table, renamed = map_columns(raw, in_path, stage, columns or {})
    missing_columns(table, in_path, stage, raw.column_names)
    check_text_columns(table, in_path)
    table = with_sample_numbers(with_problem_ids(table, in_path))
    check_columns([stage], set(table.column_names))
    stage.preflight()
    table = _conformed(table, in_path)
    stage.plan(table["dropped"].null_count)  # rows no stage has dropped
    done = checkpoints(out_path, stable_hash(stage.identity(), file_identity(in_path)))
    outputs, parts = [], []
    try:
        for number, (start, end) in enumerate(batch_bounds(stage, table)):
            saved = done / f"part-{number:05d}.parquet"
            if saved.exists():  # finished before a crash: kept
                out = pq.read_table(saved)
                stats = json.loads(read_parquet_metadata(saved)[STATS_KEY])
            else:
                out, stats = process_batch(stage, table.slice(start, end - start))
                write_parquet(out, saved, {STATS_KEY: json.dumps(stats)})
            stage.advance(stats["in"])
            outputs.append(out)
            parts.append(stats)
    finally:
        stage.close()
    result = pa.concat_tables(outputs, promote_options="permissive")
    write_table(result, out_path)
    write_report(result, out_path.with_name(out_path.name + ".decontamination.json"))
    shutil.rmtree(done.parent, ignore_errors=True)
    stats = merge_stats(parts)
    stats["renamed"] = renamed
    return stats


def file_identity(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def checkpoints(out_path: Path, identity: str) -> Path:
    """Where finished batches wait until the output is written (beside --out), so a command
    killed mid-file redoes one batch at most when run again on the same input and settings;
    batches of other inputs or settings are cleared."""
    root = out_path.with_name(f".{out_path.name}.parts")
    folder = root / identity
    if root.exists():
        for other in root.iterdir():
            if other != folder:
                shutil.rmtree(other, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def batch_bounds(stage: Stage, table: pa.Table) -> list[tuple[int, int]]:
    """The batches a stage sees, by the unit it needs whole (the runner's contract): every
    row at once, a problem's rows together, or any slice of rows."""
    rows = table.num_rows
    if stage.unit in ("problems", "all_rows"):
        return [(0, rows)]
    if stage.unit == "problem":
        bounds = problem_batches(table["problem_id"].to_pylist(), BATCH_ROWS)
        return [(0, rows)] if bounds is None else bounds
    return [(start, min(rows, start + BATCH_ROWS)) for start in range(0, rows, BATCH_ROWS)]


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


def with_sample_numbers(table: pa.Table) -> pa.Table:
    """Number a trace file's samples per problem in reading order where it gives none, as
    `curate run` does, so trace_dedup and select can tell a problem's traces apart."""
    names = table.column_names
    if "completion" not in names or "problem_id" not in names:
        return table
    given = table["sample_idx"].to_pylist() if "sample_idx" in names else [None] * len(table)
    if None not in given:
        return table
    mark, numbers = TraceMarker(0), []
    for problem, number in zip(table["problem_id"].to_pylist(), given, strict=True):
        row = {"problem_id": problem, "sample_idx": number}
        mark(row)
        numbers.append(row["sample_idx"])
    column = pa.array(numbers, pa.int64())
    if "sample_idx" in names:
        return table.set_column(names.index("sample_idx"), "sample_idx", column)
    return table.append_column("sample_idx", column)


def _conformed(table: pa.Table, path: Path) -> pa.Table:
    try:
        return conform(table)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise SourceError(f"{path}: a column has the wrong type ({exc})") from None
