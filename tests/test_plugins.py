"""The example plugin (tests/example_plugin.py), installed through a real `curate.plugins`
entry point, run end to end: its source, teacher, verifier (domain claim and typed
settings), stage (a published column) and benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH_ITEM = "A stone falls from rest for two seconds near the ground. How far does it fall?"


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """An environment in which the example plugin is an installed distribution."""
    site = tmp_path / "site"
    info = site / "curate_example_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: curate-example-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text("[curate.plugins]\nexample = tests.example_plugin\n")
    env = {k: v for k, v in os.environ.items() if k != "CURATE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), env.get("PYTHONPATH", "")])
    return env


def curate(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "curate", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_recipe(tmp_path: Path, extra: str = "") -> Path:
    bench = tmp_path / "exam.jsonl"
    bench.write_text(json.dumps({"id": "q1", "problem": BENCH_ITEM, "answer": "19.6"}) + "\n")
    rows = [
        {"problem": "What is g at the Earth's surface, in m/s^2?", "answer": "9.81"},
        {"problem": "What is the speed of light in km/s?", "answer": "299792.458"},
        {"problem": BENCH_ITEM, "answer": "19.6"},
    ]
    recipe = tmp_path / "plugin.yaml"
    recipe.write_text(
        "name: plugin\n"
        f"source: {{kind: inline, domain: science, rows: {json.dumps(rows)}}}\n"
        "decontaminate: {benchmarks: [example_exam], files: {example_exam: "
        f"{bench}}}, semantic: null}}\n"
        "teacher: {backend: echo, samples: 2, offset: 0.0000001}\n"
        "verify: {workers: 1}\n"
        "select: {policy: all_correct}\n"
        "answer_length: {max_chars: 100}\n" + extra
    )
    return recipe


def test_the_example_plugin_runs_end_to_end(plugin_env, tmp_path: Path):
    listing = curate(plugin_env, "stages", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    for name in ("answer_length", "echo", "tolerance", "inline"):
        assert f"  {name} " in listing.stdout, (name, listing.stdout)
    run_dir = tmp_path / "run"
    done = curate(
        plugin_env, "run", str(write_recipe(tmp_path)), "--run-dir", str(run_dir), cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ledger = pl.read_parquet(run_dir / "ledger")
    copied = ledger.filter(pl.col("problem").str.starts_with("A stone"))
    assert copied["contaminated"].to_list() == [True]  # the plugin's benchmark, from its file
    traces = ledger.filter(pl.col("verifier").is_not_null())
    assert traces.height == 4
    # science is the plugin verifier's domain, and 1e-7 off is within its default tolerance
    assert set(traces["verifier"]) == {"tolerance@1"}
    assert set(traces["verdict"]) == {"correct"}
    dataset = pl.read_parquet(run_dir / "dataset" / "data")
    assert dataset["answer_chars"].to_list() == [len(c) for c in dataset["solution"]]
    staged = curate(
        plugin_env, "publish", str(run_dir), "--repo-id", "org/plugin", "--dry-run", cwd=tmp_path
    )
    assert staged.returncode == 0, staged.stdout + staged.stderr
    for folder in ("data", "all"):  # the default config and all
        published = pl.read_parquet(run_dir / "publish" / folder)
        assert "answer_chars" in published.columns, folder


def test_a_verifier_plugin_takes_its_typed_settings(plugin_env, tmp_path: Path):
    traces = tmp_path / "traces.jsonl"
    traces.write_text(
        json.dumps({"problem": "g?", "reference": "9.81", "completion": "\\boxed{9.9}"}) + "\n"
    )
    out = tmp_path / "out.jsonl"

    def verdict(*settings: str) -> str:
        sets = [part for item in settings for part in ("--set", item)]
        done = curate(
            plugin_env, "verify", "--in", str(traces), "--out", str(out), *sets, cwd=tmp_path
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return str(json.loads(out.read_text())["verdict"])

    assert verdict("kind=tolerance") == "incorrect"  # 1% off, default tolerance 1e-6
    assert verdict("kind=tolerance", "tolerance=0.05") == "correct"
    refused = curate(
        plugin_env,
        "verify",
        "--in",
        str(traces),
        "--out",
        str(out),
        "--set",
        "tolerance=0.05",
        cwd=tmp_path,
    )
    assert (
        refused.returncode == 2  # a bad --set: a usage error
        and "verify.tolerance: unknown key" in refused.stderr + refused.stdout
    )


def test_plugins_can_be_turned_off(plugin_env, tmp_path: Path):
    listing = curate({**plugin_env, "CURATE_PLUGINS": "off"}, "stages", cwd=tmp_path)
    assert listing.returncode == 0 and "  answer_length " not in listing.stdout


def test_a_domain_a_plugin_verifier_serves_is_a_domain(plugin_env, tmp_path: Path):
    recipe = tmp_path / "physics.yaml"
    recipe.write_text("name: p\nsource: {kind: files, path: p.jsonl, domain: physics}\n")
    shown = curate(plugin_env, "recipe", "show", str(recipe), cwd=tmp_path)
    assert shown.returncode == 0 and "domain: physics" in shown.stdout, shown.stderr
    off = curate(
        {**plugin_env, "CURATE_PLUGINS": "off"}, "recipe", "show", str(recipe), cwd=tmp_path
    )
    assert off.returncode == 1
    assert "no verifier serves domain 'physics'" in off.stdout + off.stderr
