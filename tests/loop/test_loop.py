"""The self-improvement loop, offline: the simulated stand-in teacher (not a model) whose
wrong_rate falls per training round, and the stand-in trainer (trains nothing). These test
the bookkeeping; tests/loop/test_tiny_model.py trains a real model."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from curate.cli import add_stage_commands, app

add_stage_commands()
runner = CliRunner()
PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "self-improve.yaml"


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    raw = yaml.safe_load(PIPELINE.read_text())
    raw["source"]["tasks"] = {"basic_arithmetic": 60, "gcd": 20}
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def loop(recipe: Path, root: Path, *extra: str):
    return runner.invoke(app, ["loop", str(recipe), "--run-dir", str(root), *extra])


def ids(path: Path) -> set[str]:
    return set(path.read_text().split())


def test_three_rounds_resample_only_what_is_unsolved(recipe: Path, tmp_path: Path):
    root = tmp_path / "loop"
    result = loop(recipe, root, "--rounds", "3")
    assert result.exit_code == 0, result.output
    state = json.loads((root / "loop.json").read_text())["rounds"]
    assert sorted(state) == ["0", "1", "2"]
    table = pl.read_parquet(root / "per_problem.parquet")
    held = set(
        pl.read_parquet(root / "problems.parquet").filter(pl.col("split") == "held_out")[
            "problem_id"
        ]
    )
    assert held and not held & set(table["problem_id"])  # never sampled for training
    for number in (1, 2):
        solved_before = set(
            table.filter((pl.col("round") < number) & (pl.col("correct") > 0))["problem_id"]
        )
        sampled = ids(root / f"round-{number}" / "problems.txt")
        assert sampled and not sampled & solved_before
        ledger = pl.read_parquet(root / f"round-{number}" / "ledger")
        assert set(ledger["round"].drop_nulls()) == {number}  # every trace carries its round
    solved = [state[n]["sampled"]["solved_total"] for n in ("0", "1", "2")]
    assert solved == sorted(solved) and solved[2] > solved[0]
    first = table.group_by("problem_id").agg(pl.col("first_solved").first())
    assert first["first_solved"].drop_nulls().is_in([0, 1, 2]).all()
    assert state["2"]["eval"]["pass@1"] > state["0"]["eval"]["pass@1"]  # the stand-in's gain
    assert (
        state["1"]["train"]["exit_code"] == 0 and "stand_in_train" in state["1"]["train"]["command"]
    )
    status = runner.invoke(app, ["loop", "status", str(root)])
    assert status.exit_code == 0 and len(status.output.splitlines()) == 5
    assert (root / "report" / "rounds.png").stat().st_size > 0
    staged = runner.invoke(app, ["publish", str(root / "round-1"), "--dry-run", "--repo-id", "o/n"])
    assert staged.exit_code == 0, staged.output
    card = (root / "round-1" / "publish" / "README.md").read_text()
    section = card.split("## Self-improvement loop")[1].split("##")[0]
    assert [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")][
        1:
    ] == ["0", "1", "2"]  # the card of a round lists every round
    again = loop(recipe, root, "--rounds", "3")  # all done: nothing sampled or trained again
    assert "sampling" not in again.output and "training on" not in again.output


def test_rationalised_traces_never_carry_the_hint(recipe: Path, tmp_path: Path):
    root = tmp_path / "loop"
    assert loop(recipe, root, "--rounds", "2").exit_code == 0
    data = pl.read_parquet(root / "round-1" / "train" / "data")
    rational = data.filter(pl.col("rationalized"))
    assert rational.height > 0 and data.filter(~pl.col("rationalized")).height > 0
    hinted = pl.read_parquet(root / "round-0" / "rationalize" / "ledger").filter(
        pl.col("sample_idx").is_not_null()
    )
    assert all("Hint: the correct final answer" in p[-1]["content"] for p in hinted["prompt"])
    for column in ("prompt", "messages"):
        text = json.dumps(data[column].to_list())
        assert "Hint" not in text and "hint" not in text
    assert set(rational["problem_id"]) <= set(hinted["problem_id"])


def test_a_failing_training_command_stops_the_loop_and_loses_nothing(recipe: Path, tmp_path: Path):
    root = tmp_path / "loop"
    broken = loop(
        recipe, root, "--rounds", "3", "--set", "loop.train.command=echo out of memory >&2; exit 3"
    )
    assert broken.exit_code == 1
    log = root / "round-0" / "train.log"
    assert "failed with exit code 3" in broken.output and str(log) in broken.output
    assert "out of memory" in log.read_text()
    state = json.loads((root / "loop.json").read_text())["rounds"]
    assert "sampled" in state["0"] and "train" not in state["0"] and "1" not in state
    fixed = loop(recipe, root, "--rounds", "2")
    assert fixed.exit_code == 0, fixed.output
    assert "round 0: sampling" not in fixed.output  # round 0's samples were kept
    assert "round 0: training on" in fixed.output and "round 1: sampling" in fixed.output


def test_an_interrupted_round_resumes_without_regenerating(
    recipe: Path, tmp_path: Path, monkeypatch
):
    from curate.generate.simulated import SimulatedTeacher
    from curate.verify.stage import VerifyStage

    root = tmp_path / "loop"
    assert loop(recipe, root, "--rounds", "1").exit_code == 0
    real_process = VerifyStage.process
    calls = {"verify": 0, "sampled": 0}

    def interrupted(self, frame):
        calls["verify"] += 1
        if self.context.round == 1 and calls["verify"] == 1:
            raise KeyboardInterrupt
        return real_process(self, frame)

    real_write = SimulatedTeacher.write

    def counted(self, request, index):
        calls["sampled"] += 1
        return real_write(self, request, index)

    monkeypatch.setattr(VerifyStage, "process", interrupted)
    monkeypatch.setattr(SimulatedTeacher, "write", counted)
    stopped = loop(recipe, root, "--rounds", "2")
    assert stopped.exit_code == 130 and "interrupted" in stopped.output
    first_pass = calls["sampled"]
    assert first_pass > 0
    resumed = loop(recipe, root, "--rounds", "2")
    assert resumed.exit_code == 0, resumed.output
    round_one = len(ids(root / "round-1" / "problems.txt")) * 4
    # the rerun samples only the rationalisation and the held-out evaluation, not round 1 again
    assert calls["sampled"] - first_pass < round_one
    ledger = pl.read_parquet(root / "round-1" / "ledger").filter(pl.col("sample_idx").is_not_null())
    assert ledger.height == round_one and ledger["verdict"].null_count() == 0


def test_the_training_command_gets_the_round_data_and_the_previous_policy(
    recipe: Path, tmp_path: Path
):
    root = tmp_path / "loop"
    record = tmp_path / "calls.jsonl"
    script = tmp_path / "train.py"
    script.write_text(
        "import json, sys\n"
        "with open(sys.argv[1], 'a') as out:\n"
        "    out.write(json.dumps(sys.argv[2:]) + '\\n')\n"
    )
    command = (
        f"{{python}} {script} {record} {{data_file}} {{policy}} {{output}} {{round}}"
        " && mkdir -p {output}"
    )
    raw = yaml.safe_load(recipe.read_text())
    raw["loop"]["train"] = {"command": command, "base_model": "base/model"}
    recipe.write_text(yaml.safe_dump(raw))
    assert loop(recipe, root, "--rounds", "2").exit_code == 0
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert [c[1] for c in calls] == ["base/model", str(root / "round-0" / "policy")]
    assert [c[3] for c in calls] == ["0", "1"]
    assert pl.read_parquet(calls[1][0]).height > pl.read_parquet(calls[0][0]).height


def test_a_model_policy_without_training_says_what_is_missing(recipe: Path, tmp_path):
    from curate.errors import LoopError
    from curate.loop.driver import open_loop, sampler_section

    raw = yaml.safe_load(recipe.read_text())
    raw["teacher"] = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
    del raw["loop"]["train"]
    recipe.write_text(yaml.safe_dump(raw))
    loop_ = open_loop(recipe, [], tmp_path / "loop")
    assert sampler_section(loop_, 0)["model"] == "m"
    with pytest.raises(LoopError, match=r"no training command \(loop.train.command\)"):
        sampler_section(loop_, 1)
    loop_.state["rounds"]["0"] = {"train": {"output": "/models/round-1"}}
    raw["loop"]["train"] = {"command": "true"}
    assert sampler_section(loop_, 1)["model"] == "/models/round-1"
    result = runner.invoke(app, ["loop", str(recipe), "--run-dir", str(tmp_path / "other")])
    assert result.exit_code == 1 and "cannot reach the teacher" in result.output


def test_each_round_is_published_on_its_branch(recipe: Path, tmp_path: Path, monkeypatch):
    import huggingface_hub.constants

    from tests.publish.fake_hub import FakeHubServer

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_loop_secret_token")
    raw = yaml.safe_load(recipe.read_text())
    raw["loop"]["publish"] = True
    raw["publish"] = {"repo_id": "org/loop"}
    recipe.write_text(yaml.safe_dump(raw))
    with FakeHubServer() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        result = loop(recipe, tmp_path / "loop", "--rounds", "2")
        assert result.exit_code == 0, result.output
        branches = hub.repos["org/loop"]
        assert {"round-0", "round-1"} <= set(branches)
        card = branches["round-1"]["README.md"].decode()
        assert "## Self-improvement loop" in card and "hf_loop_secret_token" not in card


def test_a_served_policy_is_started_for_its_round_and_stopped_after(
    recipe: Path, tmp_path: Path, monkeypatch
):
    import socket

    monkeypatch.setenv("POLICY_KEY", "sk-policy-secret")
    server = Path(__file__).with_name("fake_policy_server.py")
    raw = yaml.safe_load(recipe.read_text())
    raw["loop"]["serve"] = {"command": f"{{python}} {server} {{policy}} {{port}}"}
    raw["loop"]["policy"] = {
        "backend": "openai",
        "model": "{policy}",
        "base_url": "http://127.0.0.1:{port}/v1",
        "api_key_env": "POLICY_KEY",
        "samples": 2,
        "max_tokens": 64,
    }
    raw["loop"]["rationalize"] = None
    recipe.write_text(yaml.safe_dump(raw))
    root = tmp_path / "loop"
    result = loop(recipe, root, "--rounds", "2")
    assert result.exit_code == 0, result.output
    sampled = pl.read_parquet(root / "round-1" / "ledger").filter(
        pl.col("sample_idx").is_not_null()
    )
    assert set(sampled["model"]) == {str(root / "round-0" / "policy")}
    assert sampled["error"].null_count() == sampled.height  # every request answered
    saved = (root / "round-1" / "recipe.yaml").read_text()
    port = int(saved.split("127.0.0.1:")[1].split("/")[0])
    with socket.socket() as probe:  # stopped once the round was done
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    assert "sk-policy-secret" not in result.output + saved


def test_the_merge_can_leave_lucky_hits_out(recipe: Path, tmp_path: Path):
    root = tmp_path / "loop"
    assert loop(recipe, root, "--rounds", "1").exit_code == 0
    ledger = pl.read_parquet(root / "round-0" / "ledger")
    lucky = ledger.filter(
        pl.col("dropped").is_null() & pl.col("borderline").list.contains("lucky_hit")
    )
    assert lucky.height > 0
    every = pl.read_parquet(root / "round-0" / "train" / "data").height
    raw = yaml.safe_load(recipe.read_text())
    raw["loop"]["merge"]["exclude_flags"] = ["lucky_hit"]
    recipe.write_text(yaml.safe_dump(raw))
    assert loop(recipe, root, "--rounds", "1").exit_code == 0
    left = pl.read_parquet(root / "round-0" / "train" / "data")
    assert left.height < every
    assert (
        not set(left["problem_id"])
        & set(lucky.filter(pl.col("round") == 0)["problem_id"].to_list())
        or left.height == every - lucky.height
    )
