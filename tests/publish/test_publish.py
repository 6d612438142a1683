"""Publishing: the staged repository loads as the Hub would serve it, the card tells the
truth, nothing secret or local leaks, and the upload is one commit (FakeHubServer stands in
for the Hub's HTTP API, driven by the real huggingface_hub client)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from curate.cli import add_stage_commands, app
from curate.publish.card import CONFIG_FILES
from curate.publish.repo import stage_repository
from curate.select import SelectStage
from tests.publish.fake_hub import FakeHubServer

add_stage_commands()
runner = CliRunner()
CANARIES = {
    "HF_TOKEN": "hf_CanaryTokenThatMustNeverLeak0001",
    "OPENAI_API_KEY": "sk-CanaryOpenAIKeyThatMustNeverLeak",
    "ARGILLA_API_KEY": "argilla.CanaryKeyThatMustNeverLeak",
}


@pytest.fixture
def finished_run(make_recipe, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    recipe = make_recipe(
        name="pub",
        publish={"repo_id": "org/pub", "license": "apache-2.0", "language": ["en"]},
        teacher={"backend": "simulated", "samples": 4, "max_tokens": 1024, "wrong_rate": 0.4},
    )
    result = runner.invoke(app, ["run", str(recipe), "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    return run_dir


def load(folder: Path, config: str, tmp_path: Path) -> datasets.Dataset:
    # a fresh cache: datasets keys a local folder's cache on its README configs alone
    cache = tmp_path / f"cache-{config}"
    return datasets.load_dataset(str(folder), config, split="train", cache_dir=str(cache))


def test_every_config_loads_as_the_hub_would_serve_it(finished_run: Path, tmp_path: Path):
    staged = stage_repository(finished_run)
    ledger = pl.read_parquet(finished_run / "ledger")
    traces = ledger.filter(pl.col("sample_idx").is_not_null())
    sft = load(staged.path, "default", tmp_path)
    assert (
        sft.num_rows == traces.filter(pl.col("dropped").is_null()).height == staged.rows["default"]
    )
    assert set(sft["verdict"]) == {"correct"}
    first = sft[0]
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    answer = first["messages"][-1]["content"]
    assert answer.startswith("<think>\n") and "\n</think>\n\n" in answer
    assert answer.endswith(first["solution"].strip())
    assert first["messages"][:-1] == first["prompt"]
    assert first["completion"] == first["messages"][-1:]
    every = load(staged.path, "all", tmp_path)
    assert every.num_rows == traces.height
    assert {"verdict", "verdict_reason", "flags", "dropped_at", "pass_rate"} <= set(every.features)
    rl = load(staged.path, "rl", tmp_path)
    assert rl.num_rows == traces["problem_id"].n_unique()
    assert rl[0]["prompt"][-1]["role"] == "user" and rl[0]["reference"] is not None
    pairs = load(staged.path, "preference", tmp_path)
    by_text = {(row["messages"][-1]["content"]): row["verdict"] for row in sft}
    assert pairs.num_rows > 0
    for pair in pairs.select(range(min(20, pairs.num_rows))):
        assert by_text[pair["chosen"][0]["content"]] == "correct"
        assert pair["chosen"] != pair["rejected"]


@pytest.mark.parametrize("scattered", [False, True], ids=["together", "apart"])
def test_configs_built_a_shard_at_a_time_equal_the_whole_ledgers(
    make_recipe, tmp_path: Path, scattered: bool
):
    """Small shards: each config is written a ledger shard at a time and equals the one
    built from the whole ledger at once, also where the input scattered each problem's
    traces (the source regrouped them by problem)."""
    from curate.publish.repo import build_configs
    from tests.test_stage_units import traces

    rows = traces(problems=12, per_problem=4, correct=2)
    if scattered:
        rows = rows[::2] + rows[1::2]
    data = tmp_path / "traces.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    columns = {"problem": "problem", "reference": "answer", "completion": "completion"}
    recipe = make_recipe(
        name="shards",
        source={"kind": "files", "path": str(data), "columns": columns},
        verify={"kind": "math", "workers": 1},
        select={"policy": "all_correct"},
        run={"shard_size": 6},
    )
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["run", str(recipe), "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert len(list((run_dir / "ledger").glob("*.parquet"))) > 3
    staged = stage_repository(run_dir)
    published = SelectStage.publishes  # the measures select publishes
    whole = build_configs(pl.read_parquet(run_dir / "ledger"), think=True, extra=published)
    assert staged.rows == {name: frame.height for name, frame in whole.items()}
    for name, frame in whole.items():
        written = pl.read_parquet(staged.path / CONFIG_FILES[name])
        key = "problem_id"
        assert written.sort(key, maintain_order=True).equals(frame.sort(key, maintain_order=True))


def test_think_tags_can_be_left_out(finished_run: Path, tmp_path: Path):
    path = finished_run / "recipe.yaml"
    recipe = yaml.safe_load(path.read_text())
    recipe["publish"]["think"] = False
    path.write_text(yaml.safe_dump(recipe))
    staged = stage_repository(finished_run)
    sft = load(staged.path, "default", tmp_path)
    assert sft[0]["messages"][-1]["content"] == sft[0]["solution"].strip()


def test_the_card_parses_and_its_numbers_are_the_funnel(finished_run: Path):
    staged = stage_repository(finished_run)
    card = (staged.path / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["license"] == "apache-2.0" and header["language"] == ["en"]
    assert [c["config_name"] for c in header["configs"]] == ["default", "all", "rl", "preference"]
    assert header["size_categories"] == ["n<1K"]
    stats = json.loads((finished_run / "stats.json").read_text())
    for stage, entry in stats.items():
        row = next(line for line in card.splitlines() if line.startswith(f"| {stage} |"))
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1].split(" ")[0] == f"{entry['in']:,}" and cells[2] == f"{entry['out']:,}"
    assert f"| `default` | {staged.rows['default']:,} |" in card
    assert "Do not train on them" in card  # the simulated teacher says so
    assert "Spent generating this run's samples:" in card and "a kept trace" in card
    assert str(finished_run.parent) not in card  # no local path
    run_card = (finished_run / "dataset" / "README.md").read_text()  # the run's own card
    assert str(finished_run.parent) not in run_card and "## Recipe" in run_card
    shown = re.findall(r"!\[[^\]]*\]\((report/[^)]+\.png)\)", card)
    assert shown, "the card embeds the report's plots"
    assert all((staged.path / link).is_file() for link in shown)  # each link resolves
    assert len(shown) == len(list((staged.path / "report").glob("*.png")))


def test_no_license_is_invented(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "r"
    assert runner.invoke(app, ["run", str(make_recipe()), "--run-dir", str(run_dir)]).exit_code == 0
    card = (stage_repository(run_dir).path / "README.md").read_text()
    assert "license" not in yaml.safe_load(card.split("---\n")[1])
    assert "License: not declared" in card


def test_a_card_says_when_traces_are_kept_unverified_and_how_select_chose(
    make_recipe, tmp_path: Path
):
    """policy: all (OpenThoughts3's finding) keeps traces no verifier called correct: the card
    says so where a reader starts, and lists the selection's rules in the order they ran."""
    run_dir = tmp_path / "r"
    recipe = make_recipe(select={"preset": "openthoughts3", "budget": {"traces": 20}})
    assert runner.invoke(app, ["run", str(recipe), "--run-dir", str(run_dir)]).exit_code == 0
    staged = stage_repository(run_dir)
    card = (staged.path / "README.md").read_text()
    kept = pl.read_parquet(staged.path / CONFIG_FILES["default"])
    unverified = kept.filter(pl.col("verdict").ne_missing("correct")).height
    assert 0 < unverified < kept.height == 20
    assert f"kept {unverified:,} traces whose verdict is not `correct`" in card
    assert " verified reasoning traces" not in card.split("## Configs")[0]
    selection = card.split("## Selection")[1].split("##")[0]
    assert "every trace, whatever its verdict (preset `openthoughts3`)" in selection
    assert "at most 16 per problem" in selection and "a budget of 20 traces" in selection
    assert {"quality", "trace_words", "checks_per_1k"} <= set(kept.columns)


def every_text(root: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", errors="replace") for p in root.rglob("*") if p.is_file()
    )


def test_publish_is_one_commit_then_nothing(finished_run: Path, monkeypatch):
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    with FakeHubServer() as hub:
        args = ["publish", str(finished_run), "--endpoint", hub.url]
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.output
        assert "published: " in first.output
        assert len(hub.commits) == 1
        landed = hub.repos["org/pub"]["main"]
        staged = finished_run / "publish"
        assert sorted(landed) == sorted(
            p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()
        )
        again = runner.invoke(app, args)
        assert again.exit_code == 0, again.output
        assert "no changes: org/pub@main already has this content; nothing committed" in (
            again.output
        )
        assert len(hub.commits) == 1
        bodies = "\n".join(
            re.sub(r"(?im)^authorization:.*$", "", text) for _, _, text in hub.requests
        )
    outputs = first.output + again.output + every_text(finished_run) + bodies
    for value in CANARIES.values():
        assert value not in outputs


def test_a_failed_commit_is_retried_and_leaves_nothing_half_done(finished_run: Path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", CANARIES["HF_TOKEN"])
    monkeypatch.setattr("curate.publish.hub.time.sleep", lambda seconds: None)
    with FakeHubServer() as hub:
        hub.fail_commits = [500, 503]
        result = runner.invoke(app, ["publish", str(finished_run), "--endpoint", hub.url])
        assert result.exit_code == 0, result.output
        assert len(hub.commits) == 1  # the failed attempts changed nothing
        assert "README.md" in hub.repos["org/pub"]["main"]
        hub.fail_commits = [400]
        (finished_run / "publish").mkdir(exist_ok=True)
        path = finished_run / "recipe.yaml"
        recipe = yaml.safe_load(path.read_text())
        recipe["publish"]["pretty_name"] = "Renamed"
        path.write_text(yaml.safe_dump(recipe))
        refused = runner.invoke(app, ["publish", str(finished_run), "--endpoint", hub.url])
        assert refused.exit_code == 1
        assert "commit to org/pub@main: HTTP 400" in refused.output
        assert len(hub.commits) == 1


def test_a_commit_whose_reply_was_lost_is_not_made_twice(finished_run: Path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", CANARIES["HF_TOKEN"])
    monkeypatch.setattr("curate.publish.hub.time.sleep", lambda seconds: None)
    with FakeHubServer() as hub:
        hub.lose_replies = [502]
        result = runner.invoke(app, ["publish", str(finished_run), "--endpoint", hub.url])
        assert result.exit_code == 0, result.output
        assert len(hub.commits) == 1  # the retry saw the content there and sent nothing
        assert "published: org/pub@main" in result.output
        staged = finished_run / "publish"
        assert sorted(hub.repos["org/pub"]["main"]) == sorted(
            p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()
        )
        hub.lose_replies = [502]
        hub.fail_commits = [503]  # a commit that did not land is still sent again
        path = finished_run / "recipe.yaml"
        recipe = yaml.safe_load(path.read_text())
        recipe["publish"]["pretty_name"] = "Renamed again"
        path.write_text(yaml.safe_dump(recipe))
        again = runner.invoke(app, ["publish", str(finished_run), "--endpoint", hub.url])
        assert again.exit_code == 0, again.output
        assert len(hub.commits) == 2
        assert b"Renamed again" in hub.repos["org/pub"]["main"]["README.md"]


def test_rounds_go_to_branches_and_tags(finished_run: Path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", CANARIES["HF_TOKEN"])
    with FakeHubServer() as hub:
        args = ["publish", str(finished_run), "--endpoint", hub.url]
        assert runner.invoke(app, [*args, "--revision", "round-1", "--tag", "r1"]).exit_code == 0
        assert "README.md" in hub.repos["org/pub"]["round-1"]
        assert hub.tags["org/pub"] == {"r1": "round-1"}


def test_dry_run_stages_and_sends_nothing(finished_run: Path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with FakeHubServer() as hub:
        result = runner.invoke(
            app, ["publish", str(finished_run), "--dry-run", "--endpoint", hub.url]
        )
        assert hub.requests == []
    assert result.exit_code == 0, result.output
    assert "dry run: nothing uploaded" in result.output
    assert (finished_run / "publish" / "README.md").exists()


def test_missing_token_and_repo_are_named(finished_run: Path, monkeypatch, tmp_path: Path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    result = runner.invoke(app, ["publish", str(finished_run), "--endpoint", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "no Hugging Face token: set HF_TOKEN" in result.output
    monkeypatch.setenv("HF_TOKEN", CANARIES["HF_TOKEN"])
    bad = runner.invoke(app, ["publish", str(finished_run), "--repo-id", "justname"])
    assert bad.exit_code == 1 and "expected ORG/NAME" in bad.output


def test_no_secret_reaches_the_run_the_staged_folder_or_the_output(
    make_recipe, tmp_path: Path, monkeypatch
):
    """Keys set before the run (an OpenAI-compatible teacher that wants one) and while
    publishing never appear in a file the run wrote, the staged repository, or the output."""
    from tests.generate.fake_server import FakeChatServer

    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    run_dir = tmp_path / "run"
    with FakeChatServer(api_key=CANARIES["OPENAI_API_KEY"]) as teacher:
        recipe = make_recipe(
            publish={"repo_id": "org/keys"},
            teacher={
                "backend": "openai",
                "model": "fake",
                "base_url": teacher.url,
                "samples": 2,
                "api_key_env": "OPENAI_API_KEY",
            },
        )
        ran = runner.invoke(app, ["run", str(recipe), "--run-dir", str(run_dir), "--verbose"])
    assert ran.exit_code == 0, ran.output
    with FakeHubServer() as hub:
        published = runner.invoke(app, ["publish", str(run_dir), "--endpoint", hub.url])
        assert published.exit_code == 0, published.output
        bodies = "\n".join(
            re.sub(r"(?im)^authorization:.*$", "", text) for _, _, text in hub.requests
        )
    seen = ran.output + published.output + every_text(run_dir) + bodies
    for value in CANARIES.values():
        assert value not in seen
    assert teacher.url not in (run_dir / "publish" / "README.md").read_text()


def test_a_run_that_cannot_be_written_to_stages_elsewhere(finished_run: Path, tmp_path: Path):
    """Where the repository cannot be staged the error names the place and the way out
    (--out); with --out the run itself is not written to."""
    import shutil

    shutil.rmtree(finished_run / "publish", ignore_errors=True)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = runner.invoke(
        app, ["publish", str(finished_run), "--dry-run", "--out", str(blocker / "staged")]
    )
    assert result.exit_code == 1
    assert "a-file" in result.output and "cannot write" in result.output
    assert "--out DIR" in result.output and "Traceback" not in result.output
    elsewhere = tmp_path / "staged"
    result = runner.invoke(
        app, ["publish", str(finished_run), "--dry-run", "--out", str(elsewhere)]
    )
    assert result.exit_code == 0, result.output
    assert (elsewhere / "README.md").exists() and not (finished_run / "publish").exists()
    assert sorted(p.name for p in (elsewhere / "report").iterdir())  # the card's plots
    assert not (elsewhere / "report" / "index.html").exists()


def test_the_card_tells_the_verifier_audit(finished_run: Path, tmp_path: Path):
    """After `curate audit`, the card says how often each verdict was truly right."""
    from curate.review.audit import draw_sample, write_audit

    sample, _ = draw_sample(finished_run, 0.5, 0)
    labelled = sample.with_columns(pl.Series("right", [True] * sample.height, pl.Boolean))
    write_audit(finished_run, labelled, "people")
    try:
        card = (stage_repository(finished_run).path / "README.md").read_text()
    finally:
        (finished_run / "reports" / "audit.json").unlink()
        (finished_run / "review" / "audit_sample.jsonl").unlink()
    assert "## Verifier audit" in card
    assert "verifier audited on" in card and "precision of correct 100.0%" in card


def test_the_assistant_turn_is_written_as_assistant_text_writes_it():
    """The views' messages and turns, made as columns, hold what assistant_text writes for
    each row: odd whitespace stripped as Python strips it, no think block without reasoning,
    a missing prompt taken as none."""
    import polars as pl
    import pyarrow as pa

    from curate.publish.configs import assistant_text, conversation
    from curate.records import MESSAGE

    reasonings = ["Add them.", None, "  \x1f \u3000", "\x1cStep.\x1d", ""]
    completions = [" \\boxed{2}\n", "7", None, "\xa0x\x1e", "y"]
    prompts = [[{"role": "user", "content": "1+1?"}], None, [], None, []]
    rows = pl.DataFrame(
        {"reasoning": reasonings, "completion": completions, "prompt": prompts},
        schema_overrides={"prompt": pl.List(pl.from_arrow(pa.array([], MESSAGE)).dtype)},
    )
    for think in (True, False):
        out = conversation(rows, think)
        for row, reasoning, completion, prompt in zip(
            out.iter_rows(named=True), reasonings, completions, prompts, strict=True
        ):
            turn = [{"role": "assistant", "content": assistant_text(reasoning, completion, think)}]
            assert row["completion"] == turn
            assert row["messages"] == [*(prompt or []), *turn]
            assert row["solution"] == completion
