"""Shared helpers: tiny problem files and recipes written into tmp dirs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

# Tests never reach the Hub: everything they load is made locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Tests see curate's built-ins only, whatever plugins the machine has installed
# (tests/test_plugins.py loads its example plugin through a real entry point).
os.environ["CURATE_PLUGINS"] = "off"

# `python -c` this with a name in curate.runner and the CLI's arguments: the third call of
# that function kills the process (kill -9), as a crash would mid-stage.
# argv: [module:]function (curate.runner's by default), then curate's arguments
KILLED_AT_THIRD_CALL = """
import importlib, os, signal, sys
from curate.cli import main
where, _, name = sys.argv[1].rpartition(":")
module = importlib.import_module(where or "curate.runner")
real, calls = getattr(module, name), []
def dying(*args, **kwargs):
    calls.append(1)
    if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
setattr(module, name, dying)
sys.argv = ["curate", *sys.argv[2:]]
main()
"""
EVALDATA = Path(__file__).resolve().parents[2] / "shared" / "evaldata"


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def math_rows(count: int) -> list[dict[str, Any]]:
    """Small arithmetic problems with integer answers."""
    return [
        {"question": f"What is {i} + {i * 3}?", "answer": str(i * 4), "uid": f"p{i}"}
        for i in range(count)
    ]


@pytest.fixture
def problems_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "problems.jsonl", math_rows(40))


RecipeMaker = Callable[..., Path]


@pytest.fixture
def make_recipe(tmp_path: Path, problems_file: Path) -> RecipeMaker:
    """Write a recipe over problems_file; keyword sections replace the defaults."""

    def make(name: str = "t", **sections: Any) -> Path:
        recipe: dict[str, Any] = {
            "name": name,
            "source": {
                "kind": "files",
                "path": str(problems_file),
                "columns": {"problem": "question", "reference": "answer", "id": "uid"},
            },
            "teacher": {"backend": "simulated", "samples": 4, "max_tokens": 1024},
            "verify": {"kind": "math", "workers": 1},
            "select": {"policy": "all_correct"},
            "run": {"shard_size": 16},
        }
        recipe.update(sections)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
        return path

    return make
