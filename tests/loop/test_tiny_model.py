"""The loop on a real model, kept short: a tiny Qwen2 built here (tokenizer trained with
`tokenizers`, random weights), trained by TRL's SFTTrainer for a few steps between rounds
and sampled in-process by the transformers backend. benchmarks/self_improve_tiny.py is the
full-length version."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from curate.cli import add_stage_commands, app

pytestmark = pytest.mark.extras
pytest.importorskip("torch")
pytest.importorskip("trl")
add_stage_commands()
runner = CliRunner()


def sums(path: Path, count: int) -> Path:
    rows = [
        {"question": f"What is {a} + {b}?", "answer": str(a + b), "digits": len(str(max(a, b)))}
        for a, b in ((i * 7 % 97 + 1, i * 13 % 89 + 1) for i in range(count))
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, Path]:
    from curate.loop import tiny

    folder = tmp_path_factory.mktemp("tiny")
    problems = sums(folder / "problems.jsonl", 60)
    texts = [line for line in problems.read_text().splitlines()] + tiny.PHRASES * 20
    return tiny.build(folder / "base", texts, hidden=32, layers=2), problems


def test_two_rounds_train_and_sample_a_real_model(base, tmp_path: Path):
    model, problems = base
    recipe = {
        "name": "tiny",
        "source": {
            "kind": "files",
            "path": str(problems),
            "columns": {"problem": "question", "reference": "answer", "metadata": ["digits"]},
        },
        "teacher": {
            "backend": "simulated",
            "style": "column_addition",
            "prompt_template": "{problem}",
            "wrong_rate": 0.2,
            "samples": 2,
            "max_tokens": 128,
        },
        "verify": {"kind": "math", "workers": 1},
        "select": {"policy": "all_correct"},
        "loop": {
            "curriculum": {"key": "digits", "schedule": [1, 2]},
            "held_out": {"fraction": 0.2, "samples": 2},
            "policy": {
                "backend": "transformers",
                "model": "{policy}",
                "prompt_template": "{problem}",
                "samples": 2,
                "max_tokens": 24,
                "batch_size": 64,
            },
            "train": {
                "command": "{python} -m curate.loop.tiny train {data_file} {policy} {output} "
                "--max-steps 3 --batch-size 8",
                "base_model": str(model),
            },
        },
    }
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(recipe))
    root = tmp_path / "loop"
    result = runner.invoke(app, ["loop", str(path), "--rounds", "2", "--run-dir", str(root)])
    assert result.exit_code == 0, result.output
    state = json.loads((root / "loop.json").read_text())["rounds"]
    policy = root / "round-0" / "policy"
    assert json.loads((policy / "training.json").read_text())["steps"] == 3
    sampled = pl.read_parquet(root / "round-1" / "ledger").filter(
        pl.col("sample_idx").is_not_null()
    )
    assert set(sampled["model"]) == {str(policy)}  # round 1 sampled what round 0 trained
    assert sampled["finish_reason"].is_in(["stop", "length"]).all()
    assert sampled["completion_tokens"].max() <= 24
    assert "by_level" in state["1"]["eval"] and state["1"]["train"]["exit_code"] == 0
    evaluated = pl.read_parquet(root / "round-1" / "eval" / "ledger")
    assert set(evaluated["model"].drop_nulls()) == {str(root / "round-1" / "policy")}
