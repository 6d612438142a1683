"""One stage on plain files: `curate <stage> --in PATH --out PATH [--set key=value]`."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import ValidationError, create_model

from curate import registry
from curate.decontam.report import write_report
from curate.errors import SourceError
from curate.lock import exclusive
from curate.progress import Progress, QuietProgress
from curate.recipe import OverrideError, apply_override, describe_errors, parse_override
from curate.records import TRACE_SCHEMA, conform, problem_id, stable_hash, write_parquet
from curate.regroup import problem_batches
from curate.runner import TraceMarker, check_columns
from curate.shards import read_shard
from curate.sources.base import COMMON_NAMES, RowSourceConfig, pattern_answer
from curate.sources.files import (
    check_file,
    check_parquet_text,
    file_format,
    read_rows,
    refuse_repeated,
)
from curate.stage import Stage, StageContext
from curate.stats import Stats
from curate.store import RunStore
from curate.units import run_stage

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
    except ValidationError as exc:  # every value came from --set: a usage error, as in `run`
        raise OverrideError("; ".join(describe_errors(exc, raw, model))) from None


def read_table(path: Path) -> pa.Table:
    """A JSONL, JSON, CSV or Parquet file as an Arrow table, with errors naming the file."""
    check_file(path)
    if file_format(path) == "parquet":
        try:
            refuse_repeated(pq.read_schema(path).names, str(path), "column")
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"{path}: not a readable Parquet file ({exc})") from None
        if table.num_rows == 0:
            raise SourceError(f"{path}: no rows")
        refuse_repeated(table.column_names, str(path), "column")
        check_parquet_text(table, path)
        return table
    parts, rows = [], []
    try:
        for _, row in read_rows(path):
            rows.append(json_text_fields(row))
            if len(rows) == READ_ROWS:  # Python rows held a part at a time, not the file
                parts.append(pa.Table.from_pylist(rows))
                rows = []
        if rows or not parts:
            parts.append(pa.Table.from_pylist(rows))
        return pa.concat_tables(parts, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # a column of two types: find the row
        every = [json_text_fields(row) for _, row in read_rows(path)]
        raise SourceError(f"{path}{_mixed_column(every, exc)}") from None


READ_ROWS = 50_000  # rows of a JSON, JSONL or CSV file turned into Arrow at once


def json_text_fields(row: dict[str, Any]) -> dict[str, Any]:
    """Tests and metadata written as objects, as the JSON text the ledger stores (rows of one
    file may hold tests of several formats)."""
    for name in JSON_TEXT_COLUMNS:
        value = row.get(name)
        if value is not None and not isinstance(value, str):
            row[name] = json.dumps(value)
    return row


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
# the sources' defaults (source.max_chars, source.max_trace_chars): every path, one limit
PROBLEM_CHARS = int(RowSourceConfig.model_fields["max_chars"].default)
TRACE_CHARS = int(RowSourceConfig.model_fields["max_trace_chars"].default)


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
    check_text_sizes(table, path)


def answers_by_pattern(table: pa.Table, path: Path, pattern: str) -> pa.Table:
    """Each reference cut to what the pattern finds (its first group, else the match), as a
    recipe's source.reference_pattern does; a reference it does not match is named."""
    if "reference" not in table.column_names:
        return table
    try:
        compiled = re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        raise OverrideError(f"--reference-pattern {pattern!r}: {exc}") from None
    found: list[str | None] = []
    for number, value in enumerate(table["reference"].to_pylist(), start=1):
        if value is None:
            found.append(None)
            continue
        answer = pattern_answer(compiled, str(value))
        if answer is None:
            raise SourceError(f"{path} row {number}, field 'reference': {pattern!r} does not match")
        found.append(answer)
    place = table.column_names.index("reference")
    return table.set_column(place, "reference", pa.array(found, pa.string()))


def refuse_nulls(table: pa.Table, path: Path, name: str) -> None:
    """A row with no value where the stage needs one (a problem to dedup) is named."""
    if name in table.column_names and table[name].null_count:
        row = pc.index(pc.is_null(table[name]), True).as_py() + 1
        raise SourceError(f"{path} row {row}, field '{name}': empty (null)")


def check_text_sizes(table: pa.Table, path: Path) -> None:
    """The limits `curate run`'s sources apply (source.max_chars, max_trace_chars), applied
    before any work: one 50 MB problem would take gigabytes in dedup's shingles."""
    for name in (*TEXT_COLUMNS, "reference", "tests"):
        if name not in table.column_names:
            continue
        column = table[name]
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        nul = pc.match_substring(column, "\x00")
        if pc.any(nul).as_py():
            row = pc.index(nul, True).as_py() + 1
            raise SourceError(f"{path} row {row}, field '{name}': a NUL character is not text")
        limit = TRACE_CHARS if name in ("completion", "reasoning") else PROBLEM_CHARS
        lengths = pc.utf8_length(column)
        longest = pc.max(lengths).as_py()
        if longest is not None and longest > limit:
            row = pc.index(lengths, longest).as_py() + 1
            raise SourceError(
                f"{path} row {row}, field '{name}': {longest:,} characters, over the "
                f"{limit:,} a {'trace' if limit == TRACE_CHARS else 'problem'} field may hold"
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
    for name in sorted(wanted & set(COMMON_NAMES)):
        found = [c for c in COMMON_NAMES[name] if c in table.column_names and c not in renames]
        if len(found) == 1:
            renames[found[0]] = name
    table = table.rename_columns([renames.get(c, c) for c in table.column_names])
    return table, renames


def missing_columns(table: pa.Table, path: Path, stage: Stage, original: list[str]) -> None:
    """Refuse, before any work, a file without a column the stage reads, saying how to map it
    (code is judged by its tests: a file with tests needs no reference)."""
    needless = {"problem_id"} | ({"reference"} if "tests" in table.column_names else set())
    missing = [c for c in stage.reads if c not in table.column_names and c not in needless]
    if not missing:
        return
    name = missing[0]
    candidates = [c for c in COMMON_NAMES.get(name, ()) if c in original]
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
    reference_pattern: str | None = None,
) -> Stats:
    """Run one stage over every row of a file, keeping every input row in the output.

    The file's rows are written as the input shards of a run store beside --out and run
    through the same executor, steps and stage markers as a recipe's stage
    (curate/units.py): a command killed mid-file, run again on the same input and
    settings, redoes the shard in hand at most.

    columns: {curate name: file column}; common names are recognised without it.
    cache_dir: where generation caches its samples (default: .curate-cache beside --out).
    reference_pattern: the part of each reference that is the answer (source.reference_pattern:
    GSM8K's `#### (.+)`).
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
    if "tests" in table.column_names and "reference" not in table.column_names:
        table = table.append_column("reference", pa.nulls(table.num_rows, pa.string()))
    check_text_columns(table, in_path)
    if reference_pattern is not None:
        table = answers_by_pattern(table, in_path, reference_pattern)
    if "problem" in stage.reads:
        refuse_nulls(table, in_path, "problem")
    table, renamed_ids = rows_as_problems(with_problem_ids(table, in_path), stage)
    table = with_sample_numbers(table)
    check_columns([stage], set(table.column_names))
    stage.preflight()
    table = _conformed(table, in_path)
    root = out_path.with_name(f".{out_path.name}.parts")
    with exclusive(root, f"curate {name} --out {out_path}"):
        result, stats = run_in_store(root, stage, table, in_path)
    result = own_ids(result, renamed_ids)
    write_table(result, out_path)
    write_report(result, out_path.with_name(out_path.name + ".decontamination.json"))
    shutil.rmtree(root, ignore_errors=True)
    return stats | {"renamed": renamed}


def run_in_store(
    root: Path, stage: Stage, table: pa.Table, in_path: Path
) -> tuple[pa.Table, Stats]:
    """The stage run over the file's rows in a run store under root (see run_stage_on_file)."""
    identity = stable_hash("file", file_identity(in_path), str(BATCH_ROWS), stage.unit)
    stage_identity = stable_hash(identity, stage.identity())
    store = RunStore(work_dir(root, stage_identity))
    store.create()
    source = store.stage_dir(0, "input")
    write_input(store, source, identity, table, stage)
    path = store.stage_dir(1, stage.name)
    try:
        stats = run_stage(store, stage, source, path, stage_identity)
    finally:
        stage.close()
    parts = [read_shard(shard) for shard in store.shards(path)]
    result = pa.concat_tables(parts, promote_options="permissive").replace_schema_metadata(None)
    return result, stats


def file_identity(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def work_dir(root: Path, identity: str) -> Path:
    """The run store a file command works in (root: `.OUT.parts` beside --out), kept until the
    output is written, so a command killed mid-file takes up its shards when run again on the
    same input and settings; stores of other inputs or settings are cleared."""
    folder = root / identity
    for other in root.iterdir():
        if other != folder:
            shutil.rmtree(other, ignore_errors=True)
    return folder


def write_input(store: RunStore, path: Path, identity: str, table: pa.Table, stage: Stage) -> None:
    """The file's rows as the store's input shards, cut where the stage's unit allows,
    unless they were written before."""
    if store.open_stage(path, identity).complete:
        return
    for number, (start, end) in enumerate(shard_bounds(stage, table)):
        shard = path / f"part-{number:05d}.parquet"
        if not shard.exists():
            write_parquet(table.slice(start, end - start), shard)
    store.finish_stage(path, identity, {})


def shard_bounds(stage: Stage, table: pa.Table) -> list[tuple[int, int]]:
    """The input's shards: a problem's rows together for a stage that needs them so
    (the whole file where they lie apart), any slice of rows otherwise."""
    rows = table.num_rows
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


def rows_as_problems(table: pa.Table, stage: Stage) -> tuple[pa.Table, dict[str, str]]:
    """In a file of problems every row is a problem of its own, even one listed twice
    (dedup then finds it an exact duplicate, as it always has on files); the store groups
    a problems stage's rows by problem_id, so while the stage runs a repeated problem's
    row has an id of its own. Returns the table and {id while running: the file's id}."""
    if stage.unit != "problems" or "completion" in table.column_names:
        return table, {}
    ids = table["problem_id"].to_pylist()
    seen: Counter[str] = Counter()
    renamed: dict[str, str] = {}
    for index, problem in enumerate(ids):
        seen[problem] += 1
        if seen[problem] > 1:
            ids[index] = f"{problem}#{seen[problem] - 1}"
            renamed[ids[index]] = problem
    if not renamed:
        return table, {}
    place = table.column_names.index("problem_id")
    return table.set_column(place, "problem_id", pa.array(ids, pa.string())), renamed


def own_ids(table: pa.Table, renamed: dict[str, str]) -> pa.Table:
    """The output with the file's problem ids back (rows_as_problems), where rows say
    which problem they are and which one they duplicate."""
    for name in ("problem_id", "dup_of"):
        if renamed and name in table.column_names:
            ids = [renamed.get(pid, pid) for pid in table[name].to_pylist()]
            place = table.column_names.index(name)
            table = table.set_column(place, name, pa.array(ids, table[name].type))
    return table


JSON_TEXT_COLUMNS = ("tests", "metadata")  # stored as JSON text, whatever the file made of them


def as_json_text(table: pa.Table) -> pa.Table:
    """Tests and metadata given as structures (a JSON file's objects, Parquet structs) as the
    JSON text the ledger stores."""
    for name in JSON_TEXT_COLUMNS:
        if name not in table.column_names or pa.types.is_string(table[name].type):
            continue
        if pa.types.is_large_string(table[name].type) or pa.types.is_null(table[name].type):
            continue
        texts = [None if v is None else json.dumps(v) for v in table[name].to_pylist()]
        place = table.column_names.index(name)
        table = table.set_column(place, name, pa.array(texts, pa.string()))
    return table


def _conformed(table: pa.Table, path: Path) -> pa.Table:
    table = as_json_text(table)
    try:
        return conform(table)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        field = next((f for f in TRACE_SCHEMA if _fails_cast(table, f)), None)
        where = f"column '{field.name}' should be {field.type}" if field else "a column"
        raise SourceError(f"{path}: {where}, got another type ({exc})") from None


def _fails_cast(table: pa.Table, field: pa.Field) -> bool:
    if field.name not in table.column_names:
        return False
    try:
        table[field.name].cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return True
    return False
