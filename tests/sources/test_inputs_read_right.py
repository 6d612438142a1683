"""Inputs that were once read wrongly without a word: each is read as meant, or refused by name."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from curate.cli import add_stage_commands, app
from curate.errors import SourceError
from curate.sources.files import FilesConfig, FilesSource

runner = CliRunner()
ROWS = [{"question": "What is 1+1?", "answer": "2"}, {"question": "What is 2+2?", "answer": "4"}]


def source(path: str | list[str], **columns: str) -> list[dict]:
    mapping = {"problem": "question", "reference": "answer", **columns}
    return list(FilesSource(FilesConfig(path=path, columns=mapping)).problems())


def test_a_key_or_column_given_twice_is_refused_naming_it(tmp_path: Path):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"question": "one", "question": "two", "answer": "1"}\n')
    with pytest.raises(SourceError, match=r"a\.jsonl line 1: field 'question' given twice"):
        source(str(jsonl))
    csv = tmp_path / "b.csv"
    csv.write_text("question,answer,question\nq,1,r\n")
    with pytest.raises(SourceError, match=r"b\.csv line 1: column 'question' appears 2 times"):
        source(str(csv))
    table = pa.Table.from_arrays(
        [pa.array(["q"]), pa.array(["1"]), pa.array(["r"])],
        names=["question", "answer", "question"],
    )
    parquet = tmp_path / "c.parquet"
    pq.write_table(table, parquet)
    with pytest.raises(SourceError, match="column 'question' appears 2 times"):
        source(str(parquet))
    add_stage_commands()
    result = runner.invoke(app, ["dedup", "--in", str(parquet), "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 1 and "column 'question' appears 2 times" in result.output


def test_each_file_is_its_own_source(tmp_path: Path):
    for name in ("aime", "math500"):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    problems = source([str(tmp_path / "aime.jsonl"), str(tmp_path / "math500.jsonl")])
    assert [p["source"] for p in problems] == ["aime", "aime", "math500", "math500"]
    named = FilesSource(
        FilesConfig(path=str(tmp_path / "*.jsonl"), name="mix", columns={"problem": "question"})
    )
    assert {p["source"] for p in named.problems()} == {"mix"}


def test_compressed_files_and_brackets_in_paths(tmp_path: Path):
    folder = tmp_path / "data [v2]"
    folder.mkdir()
    gz = folder / "math500.jsonl.gz"
    with gzip.open(gz, "wt") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in ROWS)
    problems = source(str(gz))
    assert [p["reference"] for p in problems] == ["2", "4"] and problems[0]["source"] == "math500"
    zst = folder / "more.jsonl.zst"
    with pa.output_stream(str(zst), compression="zstd") as out:
        out.write("".join(json.dumps(r) + "\n" for r in ROWS).encode())
    assert len(source(str(zst))) == 2


def test_a_run_directory_with_brackets(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "runs [round 1]"
    result = runner.invoke(app, ["run", str(make_recipe()), "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    shards = sorted((run_dir / "dataset" / "data").glob("*.parquet"))
    assert pl.read_parquet(shards, glob=False).height > 0


def test_answers_given_as_one_element_lists_are_read(tmp_path: Path):
    path = tmp_path / "minerva.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": ["1.5"]}) + "\n")
    assert source(str(path))[0]["reference"] == "1.5"
    path.write_text(json.dumps({"question": "q", "answer": ["1", "2"]}) + "\n")
    with pytest.raises(SourceError, match="field 'answer': expected text or a number"):
        source(str(path))
