"""What a new user meets in the first hour: nothing fails silently, nothing misleads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import yaml
from typer.testing import CliRunner

from curate.cli import add_stage_commands, app
from tests.conftest import write_jsonl
from tests.generate.fake_server import FakeChatServer, Faults

add_stage_commands()
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def openai_teacher(url: str, **extra: object) -> dict[str, object]:
    return {
        "backend": "openai",
        "model": "fake",
        "base_url": url,
        "samples": 2,
        "max_retries": 0,
        "retry_base_s": 0.01,
        "timeout_s": 5,
        "api_key_env": "CURATE_TEST_KEY_THAT_IS_NOT_SET",
        **extra,
    }


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")
    }


def test_unreachable_teacher_stops_before_any_work(make_recipe, tmp_path: Path):
    recipe = make_recipe(teacher=openai_teacher("http://127.0.0.1:9/v1"))
    run_dir = tmp_path / "run"
    result = invoke("run", str(recipe), "--run-dir", str(run_dir))
    assert result.exit_code == 1
    assert "cannot reach the teacher: connection refused at http://127.0.0.1:9/v1" in result.output
    assert "finished samples are kept" in result.output
    assert "CURATE_TEST_KEY_THAT_IS_NOT_SET, which is not set" in result.output
    assert not (run_dir / "stages").exists()  # no stage spent time before the probe


def test_every_request_failing_names_the_cause_and_exits_1(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "run"
    with FakeChatServer(Faults(server_error=1.0)) as broken:
        recipe = make_recipe(teacher=openai_teacher(broken.url))
        result = invoke("run", str(recipe), "--run-dir", str(run_dir))
    assert result.exit_code == 1, result.output
    assert f"0 of 40 prompts succeeded, 80 samples failed: HTTP 500 from {broken.url}" in (
        result.output
    )
    assert "the dataset is empty: stage 'generate' removed all 80 rows" in result.output
    assert "generation_failed 80" in result.output
    # the endpoint is fixed: running again retries what failed, without --retry-failed
    with FakeChatServer() as healthy:
        recipe = make_recipe(teacher=openai_teacher(healthy.url))
        again = invoke("run", str(recipe), "--run-dir", str(run_dir))
        assert healthy.requests == 40
    assert again.exit_code == 0, again.output
    assert "teacher: 40 prompts sent; samples: 80 new, 0 from cache, 0 failed" in again.output


def test_some_failures_are_reported_but_the_run_succeeds(make_recipe, tmp_path: Path):
    # FakeChatServer answers \boxed{0} for sample 0: a reference of 0 makes those correct
    rows = [{"question": f"Problem {i}: what is {i} - {i}?", "answer": "0"} for i in range(40)]
    source = {
        "kind": "files",
        "path": str(write_jsonl(tmp_path / "zeros.jsonl", rows)),
        "columns": {"problem": "question", "reference": "answer"},
    }
    with FakeChatServer(Faults(server_error=0.3, seed=2)) as flaky:
        recipe = make_recipe(teacher=openai_teacher(flaky.url), source=source)
        result = invoke("run", str(recipe), "--run-dir", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "prompts succeeded" in x)
    assert line.startswith("error: ") and "of 40 prompts succeeded" in line
    assert "--retry-failed resends only the failed requests" in line


def test_a_refused_key_is_named(make_recipe, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CURATE_TEST_KEY", "wrong")
    with FakeChatServer(api_key="right") as server:
        recipe = make_recipe(teacher=openai_teacher(server.url, api_key_env="CURATE_TEST_KEY"))
        result = invoke("run", str(recipe), "--run-dir", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert "the server refused the key (check the key in CURATE_TEST_KEY)" in result.output
    assert "wrong" not in result.output.replace("wrong_rate", "")


def test_a_model_the_server_does_not_list_is_a_warning(make_recipe, tmp_path: Path):
    with FakeChatServer(models=("other-model",)) as server:
        recipe = make_recipe(teacher=openai_teacher(server.url))
        result = invoke("run", str(recipe), "--run-dir", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert "does not list model 'fake' (it lists: other-model)" in result.output


def test_an_empty_dataset_says_which_stage_removed_everything(make_recipe, tmp_path: Path):
    recipe = make_recipe(filters={"length": {"min_chars": 10_000_000}})
    result = invoke("run", str(recipe), "--run-dir", str(tmp_path / "r"))
    assert result.exit_code == 1, result.output
    line = next(x for x in result.output.splitlines() if "the dataset is empty" in x)
    assert line.startswith("error: the dataset is empty: stage 'filter' removed all ")
    assert "too_short " in line


def test_rerun_says_nothing_to_do_and_writes_nothing(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "run"
    recipe = str(make_recipe())
    assert invoke("run", recipe, "--run-dir", str(run_dir)).exit_code == 0
    before = snapshot(run_dir)
    again = invoke("run", recipe, "--run-dir", str(run_dir))
    assert again.exit_code == 0
    assert again.output.strip().startswith("nothing to do: the run is up to date (")
    assert "┃ stage" not in again.output  # no funnel table, as if work had been done
    assert snapshot(run_dir) == before  # so a read-only finished run works too
    changed = invoke(
        "run", recipe, "--run-dir", str(run_dir), "--set", "select.policy=shortest_correct"
    )
    assert changed.exit_code == 0, changed.output
    assert "reused (unchanged since the last run): source, generate, verify\n" in changed.output


def test_an_unwritable_run_directory_is_named(make_recipe, tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = invoke("run", str(make_recipe()), "--run-dir", str(blocker / "run"))
    assert result.exit_code == 1
    assert str(blocker) in result.output and "internal error" not in result.output


def test_the_recipe_is_saved_not_dumped(make_recipe, tmp_path: Path):
    recipe = str(make_recipe())
    quiet = invoke("run", recipe, "--run-dir", str(tmp_path / "a"))
    assert "prompt_template" not in quiet.output
    assert f"recipe:  {tmp_path / 'a' / 'recipe.yaml'} (resolved; --verbose prints it)" in (
        quiet.output
    )
    loud = invoke("run", recipe, "--run-dir", str(tmp_path / "b"), "--verbose")
    assert "prompt_template:" in loud.output


def test_set_errors_are_usage_errors_named_as_set(make_recipe):
    recipe = str(make_recipe())
    typo = invoke("run", recipe, "--set", "teacher.sampels=3")
    assert typo.exit_code == 2
    assert "--set teacher.sampels=3: unknown key (did you mean 'samples'?)" in typo.output
    assert "t.yaml" not in typo.output  # the file is not to blame
    other = invoke("run", recipe, "--set", "teacher.base_url=http://x/v1")
    assert other.exit_code == 2
    owners = "('base_url' belongs to backend 'anthropic', backend 'openai')"
    assert f"unknown key for backend 'simulated' {owners}" in other.output
    assert "valid keys: " in other.output and "wrong_rate" in other.output


def test_file_errors_keep_exit_1_and_name_the_file(make_recipe, tmp_path: Path):
    path = Path(make_recipe())
    recipe = yaml.safe_load(path.read_text())
    recipe["teacher"]["sampels"] = 3
    path.write_text(yaml.safe_dump(recipe))
    result = invoke("run", str(path))
    assert result.exit_code == 1
    assert f"{path}: teacher.sampels: unknown key" in result.output


def test_shell_completion_can_be_installed():
    assert "--install-completion" in invoke("--help").output


def test_ctrl_c_says_what_is_kept(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "run"
    with FakeChatServer(Faults(latency_s=0.05)) as server:
        recipe = make_recipe(teacher=openai_teacher(server.url, max_concurrency=2))
        process = subprocess.Popen(
            [sys.executable, "-m", "curate.cli", "run", str(recipe), "--run-dir", str(run_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "100"},
        )
        deadline = time.monotonic() + 60
        while server.requests < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    line = next(x for x in stderr.splitlines() if "interrupted" in x)
    assert line.startswith("error: interrupted: ") and line.endswith(
        "samples are cached; run the same command again to resume"
    )
    cached = int(line.split("interrupted: ")[1].split(" samples")[0].replace(",", ""))
    assert cached >= 2
    with FakeChatServer() as server:
        recipe = make_recipe(teacher=openai_teacher(server.url))
        result = invoke("run", str(recipe), "--run-dir", str(run_dir))
        assert server.requests == 40 - cached // 2  # only the prompts not finished before
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(run_dir / "ledger").height == 80


def test_file_commands_recognise_common_column_names(tmp_path: Path):
    rows = [
        {"question": "What is 2+2?", "answer": "4"},
        {"question": "What is 2+2?", "answer": "4"},
    ]
    source = write_jsonl(tmp_path / "gsm8k.jsonl", rows)
    out = tmp_path / "out.parquet"
    result = invoke("dedup", "--in", str(source), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "columns renamed in the output: question -> problem, answer -> reference" in (
        result.output
    )
    table = pl.read_parquet(out)
    assert table["reference"].to_list() == ["4", "4"]
    assert table["dropped"].to_list() == [None, "exact_duplicate"]


def test_generate_needs_no_reference_and_says_where_its_cache_is(tmp_path: Path):
    source = write_jsonl(tmp_path / "p.jsonl", [{"problem": "What is 2+2?"}])
    out = tmp_path / "out" / "traces.jsonl"
    settings = ["--set", "backend=simulated", "--set", "samples=2"]
    result = invoke("generate", "--in", str(source), "--out", str(out), *settings)
    assert result.exit_code == 0, result.output
    assert f"cache: {out.parent / '.curate-cache'} (generated samples" in result.output
    moved = tmp_path / "elsewhere"
    again = invoke(
        "generate",
        "--in",
        str(source),
        "--out",
        str(tmp_path / "b.jsonl"),
        *settings,
        "--cache-dir",
        str(moved),
    )
    assert again.exit_code == 0, again.output
    assert f"cache: {moved} " in again.output and not (tmp_path / ".curate-cache").exists()


def test_a_missing_column_says_how_to_map_it(tmp_path: Path):
    source = write_jsonl(tmp_path / "t.jsonl", [{"q": "2+2?", "answer": "4", "gold": "4"}])
    out = str(tmp_path / "o.jsonl")
    result = invoke("verify", "--in", str(source), "--out", out, "--columns", "problem=q")
    assert result.exit_code == 1
    assert (
        "stage 'verify' reads column 'reference', which the file lacks (it has: q, answer, "
        "gold); several could be it (answer, gold): choose with --columns reference=COLUMN"
    ) in result.output
    lacking = invoke("verify", "--in", str(source), "--out", out, "--columns", "reference=gold")
    assert "reads column 'completion'" in lacking.output
    assert "map one with --columns completion=COLUMN" in lacking.output
    mapped = write_jsonl(
        tmp_path / "m.jsonl", [{"q": "2+2?", "gold": "4", "said": "so \\boxed{4}"}]
    )
    done = invoke(
        "verify",
        "--in",
        str(mapped),
        "--out",
        out,
        "--columns",
        "problem=q,reference=gold",
        "--columns",
        "completion=said",
        "--set",
        "workers=1",
    )
    assert done.exit_code == 0, done.output
    assert pl.read_ndjson(out)["verdict"].to_list() == ["correct"]
    bad = invoke("verify", "--in", str(mapped), "--out", out, "--columns", "answer")
    assert bad.exit_code == 2 and "expected NAME=COLUMN" in bad.output


def test_stage_help_lists_the_columns_read_and_written():
    text = " ".join(invoke("verify", "--help").output.split())
    assert "Reads columns: reference, completion." in text
    assert "Writes columns: verdict," in text


def test_missing_benchmarks_fail_fast_with_the_hint_of_the_command(make_recipe, tmp_path):
    built = invoke(
        "decontam", "build", "--out", str(tmp_path / "p.npz"), "--benchmarks", "math500,aime24"
    )
    assert built.exit_code == 1
    assert "give local copies with --file math500=PATH --file aime24=PATH" in built.output
    assert "decontaminate.files" not in built.output
    recipe = make_recipe(decontaminate={"benchmarks": ["math500"]})
    ran = invoke("run", str(recipe), "--run-dir", str(tmp_path / "run"))
    assert ran.exit_code == 1
    assert "decontaminate.files.math500=PATH" in ran.output


def test_an_unreachable_hub_is_asked_once(monkeypatch, tmp_path: Path):
    from curate.hub import hub_problem

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    hub_problem.cache_clear()
    try:
        built = invoke(
            "decontam", "build", "--out", str(tmp_path / "p.npz"), "--benchmarks", "math500"
        )
    finally:
        hub_problem.cache_clear()
    assert built.exit_code == 1
    assert "cannot reach http://127.0.0.1:9 (" in built.output
    assert "Retrying" not in built.output and "--file math500=PATH" in built.output
