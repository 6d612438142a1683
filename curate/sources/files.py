"""Local files: JSONL, JSON, Parquet and CSV, with checks that name file, row and field."""

from __future__ import annotations

import csv
import glob
import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from curate import registry
from curate.errors import SourceError
from curate.records import stable_hash
from curate.sources.base import LongInteger, Row, RowSourceConfig, Source

Format = Literal["auto", "jsonl", "json", "parquet", "csv"]
SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".csv": "csv",
}


class FilesConfig(RowSourceConfig):
    """Problems from local JSONL, JSON, Parquet or CSV files."""

    kind: Literal["files"] = Field("files", description="Read local files.")
    path: str | list[str] = Field(description="A file, a glob, or a list of them.")
    format: Format = Field("auto", description="File format; auto picks by suffix.")
    name: str | None = Field(None, description="Source name stored with each problem.")


@registry.sources.register("files")
class FilesSource(Source):
    """Problems from local JSONL, JSON, Parquet or CSV files."""

    kind = "files"
    config_class = FilesConfig
    config: FilesConfig

    def paths(self) -> list[Path]:
        patterns = [self.config.path] if isinstance(self.config.path, str) else self.config.path
        found: list[Path] = []
        for pattern in patterns:
            literal = not glob.has_magic(pattern) or Path(pattern).exists()  # `runs/[v2]/x`
            matches = [pattern] if literal else sorted(glob.glob(pattern))
            if not matches:
                raise SourceError(f"{pattern}: no file matches")
            for match in matches:
                path = Path(match)
                check_file(path)
                found.append(path)
        return found

    def identity(self) -> str:
        parts = [self.config.identity()]
        for path in self.paths():
            stat = path.stat()
            parts.append(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
        return stable_hash(*parts)

    def source_name(self) -> str:
        if self.config.name:
            return self.config.name
        return file_stem(self.paths()[0])

    def source_for(self, where: str) -> str:
        """Each file its own source (`aime` rows and `math500` rows), unless source.name
        names one for all."""
        return self.config.name or file_stem(Path(where))

    def rows(self) -> Iterator[tuple[str, int, Row]]:
        for path in self.paths():
            for number, row in read_rows(path, self.config.format):
                yield str(path), number, row


COMPRESSED = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}


def file_stem(path: Path) -> str:
    """A file's name without its format and compression suffixes (`math500.jsonl.gz`)."""
    name = path.name
    if path.suffix.lower() in COMPRESSED:
        name = name[: -len(path.suffix)]
    return Path(name).stem


def open_binary(path: Path) -> Any:
    """The file's bytes, decompressed as they are read where its suffix says (.gz, .zst)."""
    compression = COMPRESSED.get(path.suffix.lower())
    if compression is None:
        return path.open("rb")
    return io.BufferedReader(Decompressed(pa.input_stream(str(path), compression=compression)))


class Decompressed(io.RawIOBase):
    """pyarrow's decompressing stream as a Python binary file (lines, TextIOWrapper)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self.stream.read(len(buffer))
        except (OSError, pa.ArrowException) as exc:
            raise SourceError(f"cannot decompress: {exc}") from None
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.stream.close()
        super().close()


def check_file(path: Path) -> None:
    """An input path that is not a readable file gets an error that says what it is."""
    if path.is_dir():
        raise SourceError(
            f"{path}: a directory, not a file; name its files with a pattern ('{path}/*.jsonl')"
        )
    if not path.is_file():
        raise SourceError(f"{path}: no such file")


def file_format(path: Path, declared: Format = "auto") -> str:
    if declared != "auto":
        return declared
    suffix = path.suffix.lower()
    if suffix in COMPRESSED:  # math500.jsonl.gz: the format is the suffix before it
        suffix = Path(path.name[: -len(path.suffix)]).suffix.lower()
        if SUFFIXES.get(suffix) == "parquet":
            raise SourceError(f"{path}: Parquet compresses itself; give the .parquet file")
    if suffix not in SUFFIXES:
        raise SourceError(f"{path}: cannot tell the format from '{suffix}'; set source.format")
    return SUFFIXES[suffix]


def read_rows(path: Path, declared: Format = "auto") -> Iterator[tuple[int, Row]]:
    """Yield (1-based row number, row) from any supported file; raise on the first bad row."""
    kind = file_format(path, declared)
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: the file is empty")
    readers = {"jsonl": _jsonl_rows, "json": _json_rows, "parquet": _parquet_rows, "csv": _csv_rows}
    count = 0
    for count, row in enumerate(readers[kind](path), start=1):
        yield count, row
    if count == 0:
        raise SourceError(f"{path}: no rows")


def _jsonl_rows(path: Path) -> Iterator[Row]:
    with open_binary(path) as handle:
        for line_number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")  # a BOM
            except UnicodeDecodeError as exc:
                where = f"{path} line {line_number}{_bad_bytes_field(raw)}"
                raise SourceError(
                    f"{where}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
                ) from None
            row = parse_json(text, f"{path} line {line_number}")
            if not isinstance(row, dict):
                raise SourceError(
                    f"{path} line {line_number}: expected a JSON object, got {type(row).__name__}"
                )
            yield row


def parse_json(text: str, where: str, lines: bool = False, check: bool = True) -> Any:
    """JSON text as Python values; an integer past Python's 4,300-digit limit stays its
    digits (a long reference is still a reference), and what cannot be read is named."""
    try:
        value = json.loads(text, parse_int=_integer, object_pairs_hook=_unrepeated)
    except RepeatedKey as exc:
        raise SourceError(f"{where}: {exc}") from None
    except json.JSONDecodeError as exc:
        line = f" line {exc.lineno}" if lines else ""
        raise SourceError(f"{where}{line}: invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise SourceError(f"{where}: JSON nested too deeply to read") from None
    if check and LONE_SURROGATE_ESCAPE.search(text):
        refuse_lone_surrogates(value, where)
    if check and "\\u0000" in text:
        refuse_nul(value, where)
    return value


def refuse_nul(value: Any, where: str) -> None:
    """An escaped NUL (\\u0000) decodes to a character no text holds (C strings end at it)."""

    def nul(text: str) -> str | None:
        return "a NUL character (\\u0000) is not text" if "\x00" in text else None

    refuse_strings(value, where, nul)


class RepeatedKey(ValueError):
    """One JSON object names a key twice: which value is meant cannot be told."""


def _unrepeated(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise RepeatedKey(f"field '{twice[0]}' given twice in one object (which one is meant?)")
    return dict(pairs)


def refuse_repeated(names: list[str], where: str, what: str) -> None:
    """Two columns of one name: a reader would silently take one of them."""
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SourceError(
            f"{where}: {what} '{twice[0]}' appears {names.count(twice[0])} times (rename one)"
        )


LONE_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _integer(digits: str) -> int | str:
    return LongInteger(digits) if len(digits.lstrip("-")) > 4000 else int(digits)


def refuse_lone_surrogates(value: Any, where: str) -> None:
    """A \\uD800-style escape with no partner decodes to a character that is not text."""

    def lone(text: str) -> str | None:
        if any("\ud800" <= c <= "\udfff" for c in text):
            return "a lone UTF-16 surrogate escape (\\uD800-\\uDFFF without its pair) is not text"
        return None

    refuse_strings(value, where, lone)


def refuse_strings(value: Any, where: str, wrong: Any, field: str = "") -> None:
    """Every string in a row's values checked by `wrong` (text -> why, or None), the first
    wrong one named by its field."""
    if isinstance(value, str):
        why = wrong(value)
        if why is not None:
            named = f", field '{field}'" if field else ""
            raise SourceError(f"{where}{named}: {why}")
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_strings(item, where, wrong, field or str(key))
    elif isinstance(value, list):
        for item in value:
            refuse_strings(item, where, wrong, field)


def _bad_bytes_field(raw: bytes) -> str:
    """ ", field 'name'" for the JSON field holding undecodable bytes, when it can be told."""
    try:
        row = json.loads(raw.decode("utf-8", errors="surrogateescape"))
    except json.JSONDecodeError:
        return ""
    if isinstance(row, dict):
        for key, value in row.items():
            if isinstance(value, str) and any("\udc80" <= c <= "\udcff" for c in value):
                return f", field '{key}'"
    return ""


def _json_rows(path: Path) -> Iterator[Row]:
    with open_binary(path) as handle:
        data = handle.read()
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is not part of the data
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SourceError(f"{path} line {line}: not UTF-8 (byte offset {exc.start})") from None
    rows = parse_json(text, str(path), lines=True, check=False)
    escapes = LONE_SURROGATE_ESCAPE.search(text) is not None
    if not isinstance(rows, list):
        raise SourceError(f"{path}: expected a JSON list of objects, got {type(rows).__name__}")
    for index, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise SourceError(f"{path} row {index}: expected an object, got {type(row).__name__}")
        if escapes:
            refuse_lone_surrogates(row, f"{path} row {index}")
        yield row


def _parquet_rows(path: Path) -> Iterator[Row]:
    try:
        # pre_buffer keeps every row group it read until the file is closed: memory would
        # grow with the file (a million traces: the whole file)
        parquet = pq.ParquetFile(path, pre_buffer=False)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise SourceError(f"{path}: not a readable Parquet file ({exc})") from None
    refuse_repeated(parquet.schema_arrow.names, str(path), "column")
    batches = parquet.iter_batches(batch_size=4096)
    done = 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as exc:  # a damaged page inside the file
            raise SourceError(
                f"{path} after row {done:,}: the file is damaged ({_first_line(exc)})"
            ) from None
        check_parquet_text(batch, path, done)
        yield from batch.to_pylist()
        done += batch.num_rows


def check_parquet_text(table: pa.Table | pa.RecordBatch, path: Path, before: int = 0) -> None:
    """Text that is not UTF-8 (bytes flipped on disk) is named by row and field."""
    try:
        table.validate(full=True)
        return
    except pa.ArrowInvalid:
        pass
    for name in table.column_names:
        column = table[name]
        try:
            column.validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        for index in range(len(column)):
            try:
                column[index].as_py()
            except (UnicodeDecodeError, pa.ArrowInvalid):
                raise SourceError(
                    f"{path} row {before + index + 1}, field '{name}': not UTF-8 text "
                    "(the file is damaged)"
                ) from None
    raise SourceError(f"{path} after row {before:,}: the file is damaged")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _csv_rows(path: Path) -> Iterator[Row]:
    csv.field_size_limit(sys.maxsize)
    with open_binary(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.DictReader(text, strict=True)  # strict: an unclosed quote is an error
        started = 1  # the line the record being read begins on (the header is line 1)
        try:
            refuse_repeated(list(reader.fieldnames or []), f"{path} line 1", "column")
            started = 2
            for row in reader:
                _check_csv_row(path, reader, row)
                yield row
                started = reader.line_num + 1
        except UnicodeDecodeError:
            raise SourceError(f"{path} line {started}: not UTF-8") from None
        except csv.Error as exc:  # an unclosed quote would swallow the rest of the file
            raise SourceError(f"{path} line {started}: bad CSV ({exc})") from None


def _check_csv_row(path: Path, reader: csv.DictReader[str], row: dict[str | None, Any]) -> None:
    """A row with more or fewer fields than the header is an error, never shifted data."""
    width = len(reader.fieldnames or [])
    if None in row:
        extra = len(row[None] or [])
        raise SourceError(
            f"{path} line {reader.line_num}: {width + extra} fields, the header has {width}"
        )
    missing = [name for name, value in row.items() if value is None]
    if missing:
        raise SourceError(
            f"{path} line {reader.line_num}: {width - len(missing)} fields, the header has "
            f"{width} (no '{missing[0]}')"
        )
