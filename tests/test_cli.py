import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from curate.cli import add_stage_commands, app
from curate.stats import funnel_problems
from tests.conftest import write_jsonl

add_stage_commands()
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_run_then_stats(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "run"
    result = invoke(
        "run", str(make_recipe()), "--run-dir", str(run_dir), "--set", "teacher.samples=2"
    )
    assert result.exit_code == 0, result.output
    assert f"dataset: {run_dir / 'dataset'}" in result.output
    assert "select" in result.output
    stats = invoke("stats", str(run_dir), "--json")
    data = json.loads(stats.output)
    assert data["generate"]["generated"] == 80
    assert funnel_problems(data) == []
    table = invoke("stats", str(run_dir))
    assert table.exit_code == 0 and "generate" in table.output and "40 → 80" in table.output


def test_bad_set_value_is_a_usage_error_exit_2(make_recipe):
    result = invoke("run", str(make_recipe()), "--set", "teacher.samples=0")
    assert result.exit_code == 2
    assert "--set teacher.samples=0: must be >= 1, got 0" in result.output
    assert "Traceback" not in result.output


def test_bad_set_is_usage_error_exit_2(make_recipe):
    result = invoke("run", str(make_recipe()), "--set", "teacher.samples")
    assert result.exit_code == 2
    assert "expected KEY.PATH=VALUE" in result.output


def test_bad_input_file_message(make_recipe, tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"question": "\xff", "answer": "1", "uid": "a"}\n')
    recipe = make_recipe(
        source={"kind": "files", "path": str(bad), "columns": {"problem": "question"}}
    )
    result = invoke("run", str(recipe), "--run-dir", str(tmp_path / "r"))
    assert result.exit_code == 1
    assert "bad.jsonl line 1, field 'question': not UTF-8" in result.output


def test_stats_of_a_non_run(tmp_path: Path):
    result = invoke("stats", str(tmp_path))
    assert result.exit_code == 1 and "no stats.json" in result.output


def test_stages_and_schema():
    listing = invoke("stages")
    assert listing.exit_code == 0
    for name in ("generate", "verify", "select", "simulated", "openai", "math", "files"):
        assert f"  {name} " in listing.output
    schema = invoke("recipe", "schema")
    assert "teacher.samples: int = 4" in schema.output
    as_json = json.loads(invoke("recipe", "schema", "--json").output)
    assert "teacher" in as_json["properties"]


def test_recipe_show_applies_overrides(make_recipe):
    result = invoke("recipe", "show", str(make_recipe()), "--set", "teacher.samples=9")
    assert result.exit_code == 0 and "samples: 9" in result.output


def test_stages_on_files(tmp_path: Path):
    problems = write_jsonl(
        tmp_path / "p.jsonl",
        [{"problem": f"What is {i}+{i}?", "reference": str(2 * i)} for i in range(10)],
    )
    traces = tmp_path / "traces.parquet"
    result = invoke(
        "generate",
        "--in",
        str(problems),
        "--out",
        str(traces),
        "--set",
        "backend=simulated",
        "--set",
        "teacher.samples=3",
    )
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(traces).height == 30
    verified = tmp_path / "verified.jsonl"
    result = invoke(
        "verify",
        "--in",
        str(traces),
        "--out",
        str(verified),
        "--set",
        "kind=math",
        "--set",
        "workers=1",
    )
    assert result.exit_code == 0, result.output
    frame = pl.read_ndjson(verified)
    assert frame.height == 30
    assert set(frame["verdict"]) <= {"correct", "incorrect", "unverifiable"}
    assert frame.filter(pl.col("verdict") != "correct")["verdict_reason"].null_count() == 0
    selected = tmp_path / "selected.parquet"
    result = invoke("select", "--in", str(verified), "--out", str(selected))
    assert result.exit_code == 0
    out = pl.read_parquet(selected)
    assert out.height == 30  # every input row kept, dropped ones marked
    assert out.filter(pl.col("dropped").is_null()).height == (frame["verdict"] == "correct").sum()


def test_stage_on_file_missing_column(tmp_path: Path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"problem": "p", "reference": "1"}])
    result = invoke("verify", "--in", str(path), "--out", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 1
    assert "stage 'verify' reads" in result.output and "completion" in result.output


def test_stage_on_file_unknown_option(tmp_path: Path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"problem": "p", "reference": "1"}])
    result = invoke(
        "verify", "--in", str(path), "--out", str(tmp_path / "o.jsonl"), "--set", "kinf=math"
    )
    assert result.exit_code == 2 and "verify.kinf: unknown key" in result.output  # usage


def test_cache_stats_and_clear(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "run"
    assert invoke("run", str(make_recipe()), "--run-dir", str(run_dir)).exit_code == 0
    stats = invoke("cache", "stats", str(run_dir))
    assert stats.exit_code == 0 and "160 samples for 40 prompts" in stats.output
    assert invoke("cache", "clear", str(run_dir), "--yes").exit_code == 0
    assert invoke("cache", "stats", str(run_dir)).exit_code == 1


def test_run_reports_teacher_tokens_and_cost(make_recipe, tmp_path: Path):
    result = invoke(
        "run",
        str(make_recipe()),
        "--run-dir",
        str(tmp_path / "run"),
        "--set",
        "teacher.price_prompt=1",
        "--set",
        "teacher.price_completion=2",
    )
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("teacher: "))
    assert "40 prompts sent; samples: 160 new, 0 from cache, 0 failed" in line
    assert "completion" in line
    spent = next(x for x in result.output.splitlines() if x.startswith("spent: "))
    kept = json.loads((tmp_path / "run" / "stats.json").read_text())["dataset"]["out"]
    assert "a kept trace" in spent and f"(${0:,.4f}" not in spent and "$" in spent
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())["generate"]["counts"]
    dollars = stats["cost_micro_usd"] / 1e6
    assert f"${dollars:,.2f} (${dollars / kept:,.4f} a kept trace)" in spent
    again = invoke(
        "run",
        str(make_recipe()),
        "--run-dir",
        str(tmp_path / "run"),
        "--set",
        "teacher.price_prompt=1",
    )  # prices do not change the samples
    assert again.exit_code == 0, again.output
    reused = next(x for x in again.output.splitlines() if x.startswith("reused"))
    assert "generate" in reused and "teacher:" not in again.output  # nothing spent this time


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"problem": 5, "reference": "4", "completion": "4"}',
            "row 1, field 'problem': expected text, got int 5",
        ),
        (
            '{"problem": "x", "reference": {"a": 1}, "completion": "4"}',
            "row 1, field 'reference': expected text or a number",
        ),
        (
            '{"problem": "x", "reference": "4", "completion": [1, 2]}',
            "row 1, field 'completion': expected text, got list",
        ),
        (
            '{"problem": "x", "reference": "4", "completion": "4"}\n'
            '{"problem": "y", "reference": "4", "completion": 4}',
            "row 2, field 'completion': int where earlier rows have str",
        ),
        (
            '{"problem": "x \\ud800", "reference": "4", "completion": "4"}',
            "line 1, field 'problem': a lone UTF-16 surrogate",
        ),
        (
            '{"problem": "x", "reference": "4", "completion": "4", "m": '
            + "[" * 50_000
            + "]" * 50_000
            + "}",
            "line 1: JSON nested too deeply",
        ),
    ],
)
def test_file_commands_name_the_row_and_field_of_bad_input(tmp_path: Path, content, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content + "\n")
    result = invoke("verify", "--in", str(bad), "--out", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 1, result.output
    assert f"bad.jsonl {message}" in result.output
    assert "internal error" not in result.output and not (tmp_path / "out.jsonl").exists()


def test_file_commands_refuse_a_zero_row_parquet_and_keep_long_integers(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"problem": pa.array([], pa.string())}), empty)
    result = invoke("verify", "--in", str(empty), "--out", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 1 and "empty.parquet: no rows" in result.output, result.output
    digits = "3" * 5000
    long = tmp_path / "long.jsonl"
    long.write_text(
        f'{{"problem": "x", "reference": {digits}, "completion": "\\\\boxed{{{digits}}}"}}\n'
    )
    done = invoke("verify", "--in", str(long), "--out", str(tmp_path / "o.jsonl"))
    assert done.exit_code == 0, done.output
    row = json.loads((tmp_path / "o.jsonl").read_text())
    assert (row["reference"], row["verdict"]) == (digits, "correct")


def test_verify_reads_a_code_sample_file_as_harnesses_write_it(tmp_path: Path):
    """A HumanEval-style sample file: the prompt as problem, the body as completion, the tests
    as an object (not JSON text), no reference column: judged by its tests."""
    prompt = 'def add(a: int, b: int) -> int:\n    """Their sum."""\n'
    tests = {
        "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
        "entry_point": "add",
    }
    rows = [
        {"problem": prompt, "completion": "    return a + b\n", "tests": tests, "domain": "code"},
        {"problem": prompt, "completion": "    return a - b\n", "tests": tests, "domain": "code"},
    ]
    path = write_jsonl(tmp_path / "samples.jsonl", rows)
    out = tmp_path / "verified.jsonl"
    result = invoke("verify", "--in", str(path), "--out", str(out), "--set", "workers=1")
    assert result.exit_code == 0, result.output
    frame = pl.read_ndjson(out)
    assert frame["verdict"].to_list() == ["correct", "incorrect"]
    assert frame["verdict_reason"].to_list() == [None, "wrong_answer on test 1"]


def test_the_readmes_code_rows_are_judged_correct(tmp_path: Path):
    """Each test format's example row in the README passes through `curate verify`."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("One row per test\nformat:\n\n```json\n", 1)[1].split("\n```\n", 1)[0]
    rows = [json.loads(line) for line in block.splitlines() if line.strip()]
    assert len(rows) == 5
    path = tmp_path / "rows.jsonl"
    path.write_text(block, encoding="utf-8")
    out = tmp_path / "verified.jsonl"
    result = invoke("verify", "--in", str(path), "--out", str(out), "--set", "workers=1")
    assert result.exit_code == 0, result.output
    assert pl.read_ndjson(out)["verdict"].to_list() == ["correct"] * 5


def test_file_commands_apply_the_sources_size_limits(tmp_path: Path):
    """One huge problem is refused before any work, naming row and field, as `curate run`
    refuses it (it once took 20 GB in dedup)."""
    add_stage_commands()
    rows = [{"problem": "ok", "reference": "1"}, {"problem": "x " * 60_000, "reference": "1"}]
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    result = invoke("dedup", "--in", str(path), "--out", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 1
    assert "row 2, field 'problem': 120,000 characters, over the 100,000" in result.output


def test_report_can_be_written_beside_a_read_only_run(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "run"
    assert invoke("run", str(make_recipe()), "--run-dir", str(run_dir)).exit_code == 0
    result = invoke("report", str(run_dir), "--out", str(tmp_path / "elsewhere"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere" / "index.html").is_file()
    assert not (run_dir / "report").exists()


def test_file_commands_read_raw_gsm8k_with_a_reference_pattern(tmp_path: Path):
    """GSM8K's answer column is a worked solution ending `#### 18`: the pattern takes the
    answer, as a recipe's source.reference_pattern does."""
    rows = [
        {"problem": "p1", "reference": "3 + 4 = 7\n#### 7", "completion": "\\boxed{7}"},
        {"problem": "p2", "reference": "6 * 3 = 18\n#### 18", "completion": "\\boxed{18}"},
    ]
    path = write_jsonl(tmp_path / "gsm8k.jsonl", rows)
    out = tmp_path / "v.jsonl"
    args = ["verify", "--in", str(path), "--out", str(out), "--set", "workers=1"]
    result = invoke(*args, "--reference-pattern", "#### (.+)")
    assert result.exit_code == 0, result.output
    assert pl.read_ndjson(out)["verdict"].to_list() == ["correct", "correct"]
    missing = invoke(*args, "--reference-pattern", "ANSWER: (.+)")
    assert missing.exit_code == 1 and "row 1, field 'reference'" in missing.output


def test_nul_characters_and_null_problems_are_named(tmp_path: Path):
    add_stage_commands()
    nul = tmp_path / "nul.jsonl"
    nul.write_text('{"problem": "a\\u0000b", "reference": "1"}\n')
    result = invoke("dedup", "--in", str(nul), "--out", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 1 and "NUL character" in result.output
    empty = write_jsonl(tmp_path / "null.jsonl", [{"problem": None, "reference": "1"}])
    result = invoke("dedup", "--in", str(empty), "--out", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 1 and "row 1, field 'problem': empty (null)" in result.output


def test_a_type_that_changes_past_the_first_part_of_a_file_is_named(tmp_path: Path):
    """Files are turned into Arrow a part at a time (memory holds one part of Python rows):
    a column whose type changes in a later part still names its row."""
    from curate.files import READ_ROWS

    path = tmp_path / "long.jsonl"
    lines = [json.dumps({"problem": f"p{i}", "reference": "1"}) for i in range(READ_ROWS)]
    lines.append(json.dumps({"problem": "late", "reference": {"a": 1}}))
    path.write_text("\n".join(lines) + "\n")
    result = invoke("dedup", "--in", str(path), "--out", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 1
    assert f"row {READ_ROWS + 1}, field 'reference'" in result.output
