"""The trace schema (Arrow) shared by every stage, and helpers to read and write shards."""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA_VERSION = "1"

Domain = Literal["math", "code", "science", "puzzle", "choice"]
Verdict = Literal["correct", "incorrect", "unverifiable"]

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
CONTAMINATION = pa.struct(
    [
        ("benchmark", pa.string()),
        ("item", pa.string()),
        ("method", pa.string()),
        ("score", pa.float64()),
        ("run", pa.int64()),  # longest run of the item's n-grams, in words
        ("excerpt", pa.string()),  # the item's text, for audit (never for private benchmarks)
        ("rule", pa.string()),  # what decided: text, same_answer, different_answer, judge_*
        ("judge", pa.string()),  # the LLM judge's reasoning, where it was asked
    ]
)
REVIEW = pa.struct(
    [
        ("status", pa.string()),
        ("decision", pa.string()),
        ("corrected_reference", pa.string()),
        ("reviewer", pa.string()),
    ]
)

PROBLEM_FIELDS: list[pa.Field] = [
    pa.field("problem_id", pa.string(), nullable=False),
    pa.field("source", pa.string()),
    pa.field("source_id", pa.string()),
    pa.field("domain", pa.string()),
    pa.field("problem", pa.string()),
    pa.field("reference", pa.string()),
    pa.field("tests", pa.string()),  # JSON: code test cases, shape set by the code verifier
    pa.field("metadata", pa.string()),  # JSON object
]

TRACE_FIELDS: list[pa.Field] = [
    pa.field("sample_idx", pa.int32()),
    pa.field("round", pa.int32()),
    pa.field("model", pa.string()),
    pa.field("prompt", pa.list_(MESSAGE)),
    pa.field("reasoning", pa.string()),
    pa.field("completion", pa.string()),
    pa.field("finish_reason", pa.string()),
    pa.field("prompt_tokens", pa.int32()),
    pa.field("completion_tokens", pa.int32()),
    pa.field("reasoning_tokens", pa.int32()),  # of completion_tokens, where reported
    pa.field("latency_s", pa.float64()),
    pa.field("gen_key", pa.string()),
    pa.field("error", pa.string()),
]

STAGE_FIELDS: list[pa.Field] = [
    pa.field("verdict", pa.string()),
    pa.field("verdict_reason", pa.string()),
    pa.field("extracted_answer", pa.string()),
    pa.field("verifier", pa.string()),
    pa.field("verdict_tier", pa.string()),  # rule, or the model tier that settled it
    pa.field("judge_model", pa.string()),
    pa.field("judge_reasoning", pa.string()),
    pa.field("flags", pa.list_(pa.string())),
    pa.field("dup_of", pa.string()),
    pa.field("contaminated", pa.bool_()),
    pa.field("contamination", CONTAMINATION),
    pa.field("review", REVIEW),
    pa.field("selected", pa.bool_()),
    pa.field("pass_rate", pa.float64()),
    pa.field("majority_answer", pa.string()),
    pa.field("agreement", pa.float64()),
    pa.field("solver_pass_rate", pa.float64()),  # the difficulty stage's
    pa.field("solver_model", pa.string()),
    pa.field("difficulty_rating", pa.float64()),
    pa.field("difficulty_reasoning", pa.string()),
    pa.field("topic", pa.string()),  # the topics stage's: "CODE name"
    pa.field("topic_reasoning", pa.string()),
    pa.field("trace_words", pa.int64()),  # select's measures (curate/select/measures.py)
    pa.field("checks_per_1k", pa.float64()),
    pa.field("explores_per_1k", pa.float64()),
    pa.field("steps_per_1k", pa.float64()),
    pa.field("quality", pa.float64()),
    pa.field("borderline", pa.list_(pa.string())),  # why a human should look
    pa.field("dropped", pa.string()),  # reason the row left the funnel; null while alive
    pa.field("dropped_at", pa.string()),  # the stage that dropped it
]

_META = {b"curate_schema_version": SCHEMA_VERSION.encode()}
PROBLEM_SCHEMA = pa.schema(PROBLEM_FIELDS, metadata=_META)
TRACE_SCHEMA = pa.schema(PROBLEM_FIELDS + TRACE_FIELDS + STAGE_FIELDS, metadata=_META)
KNOWN_FIELDS = {f.name: f for f in TRACE_SCHEMA}


def normalize_text(text: str) -> str:
    """Unicode NFKC, collapsed whitespace, stripped: the form problem ids are hashed from."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def stable_hash(*parts: str, size: int = 12) -> str:
    """A hex digest that is the same on every machine and Python version."""
    digest = hashlib.blake2b(digest_size=size)
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x1f")
    return digest.hexdigest()


def problem_id(source: str, problem: str) -> str:
    """Stable content hash of a problem: its source plus its normalized text."""
    return stable_hash(source, normalize_text(problem))


def to_json(value: Any) -> str:
    """Compact, key-sorted JSON, so equal values give equal strings."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def conform(table: pa.Table | pl.DataFrame, schema: pa.Schema = TRACE_SCHEMA) -> pa.Table:
    """Cast a batch to the schema: known columns first, in schema order, then extra columns."""
    if isinstance(table, pl.DataFrame):
        table = table.to_arrow()
    columns: list[pa.Array | pa.ChunkedArray] = []
    fields: list[pa.Field] = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(_without_nan(table[field.name]).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
        fields.append(pa.field(field.name, field.type))
    for name in table.column_names:
        if name not in schema.names:
            column = table[name]
            columns.append(column.cast(_small_type(column.type)))
            fields.append(pa.field(name, _small_type(column.type)))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=schema.metadata))


def _without_nan(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A float column's NaN (a table's missing value: `"reference": NaN`) as null, so it
    never becomes the text "nan"."""
    if not pa.types.is_floating(column.type):
        return column
    import pyarrow.compute as pc

    return pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)


def polars_type(kind: pa.DataType) -> pl.DataType:
    """An Arrow type as polars names it (one schema here, used by both libraries)."""
    # pa.nulls, not pa.array or pa.table: those import pandas (0.3 s at every start)
    frame = pl.from_arrow(pa.Table.from_arrays([pa.nulls(0, kind)], names=["c"]))
    assert isinstance(frame, pl.DataFrame)
    return frame.schema["c"]


def small_types(table: pa.Table) -> pa.Table:
    """The table with large string / list columns (what polars makes) in their plain forms,
    so every published file has the same types whichever library wrote it."""
    return table.cast(pa.schema([pa.field(f.name, _small_type(f.type)) for f in table.schema]))


def _small_type(kind: pa.DataType) -> pa.DataType:
    """Large string / list types (what polars produces) as their plain forms."""
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_large_list(kind) or pa.types.is_list_view(kind) or pa.types.is_list(kind):
        return pa.list_(_small_type(kind.value_type))
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _small_type(f.type)) for f in kind])
    return kind


def write_parquet(table: pa.Table, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write a Parquet file (zstd) atomically: readers see the whole file or none."""
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): v.encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def read_parquet_metadata(path: Path) -> dict[str, str]:
    """The key-value metadata a shard was written with."""
    raw = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in raw.items()}
