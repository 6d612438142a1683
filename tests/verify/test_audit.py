"""The audit: stratified samples of verdicts, rates with intervals that cover, the CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.verify.audit import (
    allocate,
    audit,
    draw,
    labels_for_width,
    stratified_rate,
    wilson,
)

runner = CliRunner()


def population(seed: int = 0) -> tuple[pl.DataFrame, dict[int, bool]]:
    """Verdicts in strata of unequal size whose rows are truly right at unequal rates."""
    rng = random.Random(seed)
    plan = [  # verdict, reason, domain, rows, share truly right
        ("correct", None, "math", 4000, 0.99),
        ("correct", None, "code", 600, 0.9),
        ("correct", None, "choice", 150, 0.7),
        ("incorrect", "mismatch", "math", 2000, 0.05),
        ("unverifiable", "gold_is_text", "math", 300, 0.5),
    ]
    rows, truth = [], {}
    for verdict, reason, domain, size, share in plan:
        for _ in range(size):
            truth[len(rows)] = rng.random() < share
            rows.append({"verdict": verdict, "verdict_reason": reason, "domain": domain})
    frame = (
        pl.DataFrame(rows, infer_schema_length=None)
        .with_row_index("id")
        .with_columns(pl.col("id").cast(pl.Int64))
    )
    return frame, truth


def test_intervals_cover_the_true_rates_on_simulated_labels():
    """Over 200 samples the 95% intervals hold each verdict's true share at least 92% of the
    time (the nominal 95% less simulation noise), and are narrow enough to be useful."""
    frame, truth = population()
    true_share = {
        verdict: sum(truth[i] for i in frame.filter(pl.col("verdict") == verdict)["id"])
        / frame.filter(pl.col("verdict") == verdict).height
        for verdict in ("correct", "incorrect", "unverifiable")
    }
    held = dict.fromkeys(true_share, 0)
    widths = []
    trials = 200
    for seed in range(trials):
        sample = draw(frame, 150, seed)
        labelled = sample.with_columns(
            pl.Series("right", [truth[i] for i in sample["id"]], pl.Boolean)
        )
        report = audit(frame, labelled)
        for verdict, share in true_share.items():
            rate = report["verdicts"][verdict]
            held[verdict] += rate["low"] <= share <= rate["high"]
        widths.append(report["verdicts"]["correct"]["high"] - report["verdicts"]["correct"]["low"])
    for verdict, count in held.items():
        assert count / trials >= 0.92, (verdict, count)
    assert sum(widths) / len(widths) < 0.08


def test_the_sample_is_stratified_deterministic_and_bounded():
    frame, _ = population()
    sample = draw(frame, 100, seed=3)
    assert sample.equals(draw(frame, 100, seed=3))
    assert not sample.equals(draw(frame, 100, seed=4))
    counts = dict(sample.group_by("verdict").len().iter_rows())
    assert counts == {"correct": 100, "incorrect": 100, "unverifiable": 100}
    small = sample.filter(pl.col("domain") == "choice").height
    assert small >= 1  # every stratum is seen
    assert draw(frame.head(5), 1000).height == 5  # a budget larger than the pool: all of it
    assert draw(frame.head(0), 10).height == 0


def test_allocation_and_rates_at_the_edges():
    assert allocate([10, 1, 1], 2) == [1, 1, 0]
    assert sum(allocate([500, 300, 200], 100)) == 100
    assert allocate([3], 10) == [3]
    assert stratified_rate([(10, 0, 0)]).right is None  # nothing labelled
    everything = stratified_rate([(5, 5, 5)])
    assert everything.right == everything.low == everything.high == 1.0
    low, high = wilson(1.0, 20)
    assert 0.83 < low < 0.84 and high == 1.0
    assert labels_for_width(0.1) == 385
    with pytest.raises(ValueError):
        labels_for_width(0)


def test_audit_a_run_by_people_through_the_cli(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "run"
    done = runner.invoke(app, ["run", str(make_recipe()), "--run-dir", str(run_dir)])
    assert done.exit_code == 0, done.output
    drawn = runner.invoke(app, ["audit", str(run_dir), "--width", "0.3"])
    assert drawn.exit_code == 0, drawn.output
    sample_path = run_dir / "review" / "audit_sample.jsonl"
    sample = pl.read_ndjson(sample_path)
    assert {"solution", "reference", "verdict", "right"} <= set(sample.columns)
    assert "<think>" not in "".join(sample["solution"].to_list())  # the answer part only
    # a reviewer: every verdict right but one correct one
    first_correct = sample["verdict"].to_list().index("correct")
    rights = [v == "correct" for v in sample["verdict"].to_list()]
    rights[first_correct] = False
    sample.with_columns(pl.Series("right", rights)).write_ndjson(sample_path)
    pulled = runner.invoke(app, ["audit", str(run_dir), "--labels", str(sample_path)])
    assert pulled.exit_code == 0, pulled.output
    report = json.loads((run_dir / "reports" / "audit.json").read_text())
    correct = report["verdicts"]["correct"]
    assert correct["labelled"] == sum(v == "correct" for v in sample["verdict"].to_list())
    assert correct["right"] < 1.0 and correct["low"] < correct["right"] < correct["high"]
    assert "precision of correct" in pulled.output
    stats = runner.invoke(app, ["stats", str(run_dir)])
    assert "verifier audited on" in stats.output


def test_audit_a_labelled_file_in_full(tmp_path: Path):
    rows = [
        {"problem": "1+1?", "reference": "2", "completion": "\\boxed{2}", "human": "yes"},
        {"problem": "2+2?", "reference": "4", "completion": "\\boxed{4}", "human": "no"},
        {"problem": "3+3?", "reference": "6", "completion": "\\boxed{7}", "human": "no"},
        {"problem": "4+4?", "reference": "8", "completion": "\\boxed{9}", "human": "yes"},
    ]
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(
        app, ["audit", "--labels", str(path), "--label-column", "human", "--set", "workers=1"]
    )
    assert result.exit_code == 0, result.output
    assert "precision of correct 50.0%" in result.output
    bad = runner.invoke(app, ["audit", "--labels", str(path), "--label-column", "nope"])
    assert bad.exit_code == 1 and "no label column 'nope'" in bad.output


def test_the_report_page_shows_the_audit(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "run"
    assert runner.invoke(app, ["run", str(make_recipe()), "--run-dir", str(run_dir)]).exit_code == 0
    runner.invoke(app, ["audit", str(run_dir), "--width", "0.5"])
    sample = run_dir / "review" / "audit_sample.jsonl"
    labelled = pl.read_ndjson(sample).with_columns(pl.lit(True).alias("right"))
    labelled.write_ndjson(sample)
    assert runner.invoke(app, ["audit", str(run_dir), "--labels", str(sample)]).exit_code == 0
    assert runner.invoke(app, ["report", str(run_dir)]).exit_code == 0
    page = (run_dir / "report" / "index.html").read_text()
    assert "verifier audited on" in page and "truly right 100.0%" in page
