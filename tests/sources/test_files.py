import json
from pathlib import Path

import polars as pl
import pytest

from curate.errors import SourceError
from curate.records import problem_id
from curate.sources.files import FilesConfig, FilesSource
from tests.conftest import math_rows, write_jsonl

COLUMNS = {"problem": "question", "reference": "answer", "id": "uid"}


def read(path: Path, **config) -> list[dict]:
    config.setdefault("columns", COLUMNS)
    return list(FilesSource(FilesConfig(path=str(path), **config)).problems())


@pytest.mark.parametrize("suffix", ["jsonl", "json", "parquet", "csv"])
def test_every_format_reads_the_same_problems(tmp_path: Path, suffix: str):
    rows = math_rows(5)
    path = tmp_path / f"data.{suffix}"
    frame = pl.DataFrame(rows)
    {
        "jsonl": frame.write_ndjson,
        "json": lambda p: p.write_text(json.dumps(rows)),
        "parquet": frame.write_parquet,
        "csv": frame.write_csv,
    }[suffix](path)
    problems = read(path)
    assert [p["problem"] for p in problems] == [r["question"] for r in rows]
    assert [p["reference"] for p in problems] == [r["answer"] for r in rows]
    assert [p["source_id"] for p in problems] == [r["uid"] for r in rows]
    assert problems[0]["source"] == "data"
    assert problems[0]["problem_id"] == problem_id("data", rows[0]["question"])


def test_ids_are_stable_under_whitespace_and_depend_on_source():
    assert problem_id("s", "What is  1+1?\n") == problem_id("s", "What is 1+1?")
    assert problem_id("s", "What is 1+1?") != problem_id("t", "What is 1+1?")


def test_reference_pattern_metadata_and_numbers(tmp_path: Path):
    path = write_jsonl(
        tmp_path / "gsm.jsonl",
        [
            {"question": "q1", "answer": "work...\n#### 1,234", "level": 3},
            {"question": "q2", "answer": 7, "level": 1},
        ],
    )
    problems = read(
        path,
        columns={"problem": "question", "reference": "answer", "metadata": ["level"]},
        reference_pattern=r"#### (.+)$",
        limit=1,
    )
    assert problems[0]["reference"] == "1,234"
    assert json.loads(problems[0]["metadata"]) == {"level": 3}
    with pytest.raises(SourceError, match="row 2, field 'answer': reference_pattern"):
        read(
            path,
            columns={"problem": "question", "reference": "answer"},
            reference_pattern=r"#### (.+)$",
        )
    numbers = read(path, columns={"problem": "question", "reference": "answer"})
    assert numbers[1]["reference"] == "7"


def test_glob_and_limit(tmp_path: Path):
    write_jsonl(tmp_path / "a.jsonl", math_rows(3))
    write_jsonl(tmp_path / "b.jsonl", math_rows(3))
    assert len(read(tmp_path / "*.jsonl")) == 6
    assert len(read(tmp_path / "*.jsonl", limit=4)) == 4


# Bad input: each message names the file, the row and the field.


def test_missing_column(tmp_path: Path):
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [{"question": "q", "answer": "1", "uid": "a"}, {"question": "q2", "uid": "b"}],
    )
    with pytest.raises(SourceError) as info:
        read(path)
    assert str(info.value) == (f"{path} row 2, field 'answer': missing (row has: question, uid)")


def test_a_missing_column_names_the_mapping_a_common_name_needs(tmp_path: Path):
    """The recipe's default columns (problem, answer) on a GSM8K-style file: the error says
    which mapping reads it, from the names the file commands recognise."""
    path = write_jsonl(tmp_path / "gsm8k.jsonl", [{"question": "What is 2+2?", "answer": "4"}])
    with pytest.raises(SourceError) as info:
        read(path, columns={})
    assert str(info.value) == (
        f"{path} row 1, field 'problem': missing (row has: answer, question); "
        "map it with source.columns.problem: question"
    )
    both = write_jsonl(tmp_path / "two.jsonl", [{"prompt": "p", "query": "q", "answer": "4"}])
    with pytest.raises(SourceError, match=r"map one with source.columns.problem \(prompt, query\)"):
        read(both, columns={})
    assert read(path, columns={"problem": "question"})[0]["reference"] == "4"


def test_missing_column_in_parquet(tmp_path: Path):
    path = tmp_path / "d.parquet"
    pl.DataFrame({"text": ["q"], "answer": ["1"], "uid": ["a"]}).write_parquet(path)
    with pytest.raises(SourceError, match=r"d\.parquet row 1, field 'question': missing"):
        read(path)


@pytest.mark.parametrize(
    "value, expected",
    [
        (["a", "list"], "field 'question': expected text, got list"),
        (42, "field 'question': expected text, got int 42"),
        ("   ", "field 'question': empty text"),
    ],
)
def test_wrong_problem_types(tmp_path: Path, value, expected):
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"question": "fine", "answer": "1", "uid": "a"},
            {"question": value, "answer": "1", "uid": "b"},
        ],
    )
    with pytest.raises(SourceError, match=rf"d\.jsonl row 2, {expected}"):
        read(path)


def test_wrong_reference_type(tmp_path: Path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": {"x": 1}, "uid": "a"}])
    with pytest.raises(
        SourceError, match="row 1, field 'answer': expected text or a number, got dict"
    ):
        read(path)


def test_empty_file(tmp_path: Path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(SourceError, match=r"empty\.jsonl: the file is empty"):
        read(path)
    path.write_text("\n\n")
    with pytest.raises(SourceError, match=r"empty\.jsonl: no rows"):
        read(path)


def test_non_utf8_bytes(tmp_path: Path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(
        b'{"question": "ok", "answer": "1", "uid": "a"}\n'
        b'{"question": "caf\xe9 au lait", "answer": "2", "uid": "b"}\n'
    )
    with pytest.raises(SourceError) as info:
        read(path)
    assert str(info.value) == (
        f"{path} line 2, field 'question': not UTF-8 (byte 0xe9 at offset 17)"
    )


def test_non_utf8_csv(tmp_path: Path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"question,answer,uid\nok,1,a\ncaf\xe9,2,b\n")
    with pytest.raises(SourceError, match=r"latin\.csv line \d+: not UTF-8"):
        read(path)


def test_invalid_json_line(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"question": "q", "answer": "1", "uid": "a"}\n{"question": \n')
    with pytest.raises(SourceError, match=r"d\.jsonl line 2: invalid JSON"):
        read(path)


def test_ten_megabyte_row(tmp_path: Path):
    huge = "x" * (10 * 1024 * 1024)
    path = write_jsonl(
        tmp_path / "big.jsonl",
        [
            {"question": "q", "answer": "1", "uid": "a"},
            {"question": huge, "answer": "2", "uid": "b"},
        ],
    )
    with pytest.raises(SourceError) as info:
        read(path)
    assert str(info.value) == (
        f"{path} row 2, field 'question': 10,485,760 characters, over source.max_chars (100,000)"
    )
    assert len(read(path, max_chars=11_000_000)) == 2  # raising the limit lets it through


def test_no_such_file(tmp_path: Path):
    with pytest.raises(SourceError, match="no such file"):
        read(tmp_path / "nope.jsonl")
    with pytest.raises(SourceError, match="no file matches"):
        read(tmp_path / "nope*.jsonl")


PLAIN = {"problem": "problem", "reference": "answer"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "ragged.csv",
            "problem,answer\n1+1,2\n2+2,4,extra\n",
            "line 3: 3 fields, the header has 2",
        ),
        ("short.csv", "problem,answer\n1+1,2\n2+2\n", "line 3: 1 fields, the header has 2"),
        ("quote.csv", 'problem,answer\n1+1,2\n"2+2,4\n3+3,6\n', "line 3: bad CSV"),
    ],
)
def test_bad_csv_rows_are_errors_that_name_the_line(tmp_path: Path, name, content, message):
    """Rows with more or fewer fields than the header, and an unclosed quote that would
    swallow the rest of the file, never pass as data."""
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(SourceError, match=f"{name} {message}"):
        read(path, columns=PLAIN)


def test_a_byte_order_mark_is_not_data(tmp_path: Path):
    jsonl, csv_file = tmp_path / "bom.jsonl", tmp_path / "bom.csv"
    jsonl.write_bytes(b'\xef\xbb\xbf{"problem": "1+1", "answer": "2"}\n')
    csv_file.write_bytes(b"\xef\xbb\xbfproblem,answer\n1+1,2\n")
    for path in (jsonl, csv_file):
        assert [(r["problem"], r["reference"]) for r in read(path, columns=PLAIN)] == [("1+1", "2")]


def test_a_directory_is_named_as_one(tmp_path: Path):
    with pytest.raises(SourceError, match="a directory, not a file; name its files"):
        read(tmp_path, columns=PLAIN)


def test_a_nan_reference_is_no_reference(tmp_path: Path):
    path = tmp_path / "nan.jsonl"
    path.write_text('{"problem": "1+1", "answer": NaN}\n{"problem": "2+2", "answer": 4.0}\n')
    assert [r["reference"] for r in read(path, columns=PLAIN)] == [None, "4.0"]


def test_an_integer_past_pythons_digit_limit_is_a_reference_not_a_problem(tmp_path: Path):
    digits = "7" * 5000
    path = tmp_path / "long.jsonl"
    path.write_text(f'{{"problem": "What is it?", "answer": {digits}}}\n')
    assert [r["reference"] for r in read(path, columns=PLAIN)] == [digits]
    path.write_text(f'{{"problem": {digits}, "answer": "1"}}\n')
    with pytest.raises(
        SourceError, match=r"long.jsonl row 1, field 'problem': expected text, got int"
    ):
        read(path, columns=PLAIN)


@pytest.mark.parametrize("suffix", ["jsonl", "json"])
def test_deep_nesting_and_lone_surrogates_are_named(tmp_path: Path, suffix: str):
    def write(row: str) -> Path:
        path = tmp_path / f"bad.{suffix}"
        path.write_text(row + "\n" if suffix == "jsonl" else f"[{row}]")
        return path

    deep = '{"problem": "1+1", "answer": "2", "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(SourceError, match=f"bad.{suffix}.*: JSON nested too deeply to read"):
        read(write(deep), columns=PLAIN)
    lone = '{"problem": "1+1", "answer": "2 \\udc00"}'
    where = "line 1" if suffix == "jsonl" else "row 1"
    with pytest.raises(SourceError, match=f"bad.{suffix} {where}, field 'answer': a lone UTF-16"):
        read(write(lone), columns=PLAIN)
    paired = '{"problem": "1+1 \\ud83d\\ude00", "answer": "2"}'  # a pair is one character
    assert read(write(paired), columns=PLAIN)[0]["problem"] == "1+1 \U0001f600"


def test_a_damaged_parquet_file_is_named_with_its_row(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [f"What is {i} plus {i}? " * 3 for i in range(6000)]
    table = pa.table({"problem": rows, "answer": [str(2 * i) for i in range(6000)]})
    named = r"(row \d+, field 'problem': not UTF-8|after row [\d,]+: the file is damaged)"
    for compression in ("none", "snappy"):
        path = tmp_path / f"{compression}.parquet"
        pq.write_table(table, path, row_group_size=1000, compression=compression)
        data = bytearray(path.read_bytes())
        for i in range(len(data) // 2, len(data) // 2 + 64):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(SourceError, match=f"{compression}.parquet {named}"):
            read(path, columns=PLAIN)
