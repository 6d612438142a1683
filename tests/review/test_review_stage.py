"""Reviewers' decisions applied by the pipeline's review stage: counted in the funnel,
applied again on a re-run, a corrected reference re-verifying the problem's traces."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from curate.cli import add_stage_commands, app
from curate.review.stage import record_key

add_stage_commands()
runner = CliRunner()


def decide(run_dir: Path, rows: list[tuple[str, str | None]], ledger: pl.DataFrame) -> None:
    """Write decisions as `curate review pull` does, for the first live traces."""
    live = ledger.filter(pl.col("dropped").is_null()).sort("problem_id", "sample_idx")
    lines = []
    for (decision, corrected), row in zip(rows, live.iter_rows(named=True), strict=False):
        key = record_key(row["problem_id"], row["round"], row["sample_idx"])
        answers = [{"reviewer": "reviewer1", "status": "submitted"}]
        lines.append(
            json.dumps(
                {
                    "record": key,
                    "decision": decision,
                    "corrected_reference": corrected,
                    "answers": answers,
                }
            )
        )
    (run_dir / "review").mkdir(exist_ok=True)
    (run_dir / "review" / "decisions.jsonl").write_text("\n".join(lines) + "\n")


def test_decisions_change_the_data_through_the_pipeline(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "run"
    recipe = str(make_recipe(review={"undecided": "hold"}))
    assert runner.invoke(app, ["run", recipe, "--run-dir", str(run_dir)]).exit_code == 0
    before = pl.read_parquet(run_dir / "ledger")
    live = before.filter(pl.col("dropped").is_null()).sort("problem_id", "sample_idx")
    corrected_problem = live.row(2, named=True)["problem_id"]
    same_problem = live.filter(pl.col("problem_id") == corrected_problem).height
    decide(
        run_dir,
        [("accept", None), ("reject", None), ("accept", "999999"), ("undecided", None)],
        before,
    )
    result = runner.invoke(app, ["run", recipe, "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    stats = json.loads((run_dir / "stats.json").read_text())
    review = stats["review"]
    assert review["counts"]["sent"] == 4, review
    assert review["counts"]["decided"] == 3
    assert review["counts"]["accepted"] == 2 and review["counts"]["rejected"] == 1
    assert review["counts"]["references_corrected"] == 1
    assert review["dropped"]["review_rejected"] == 1
    assert review["dropped"]["review_pending"] == 1
    # the corrected reference (999999) makes every live trace of that problem incorrect
    after = pl.read_parquet(run_dir / "ledger")
    fixed = after.filter(
        (pl.col("problem_id") == corrected_problem) & (pl.col("dropped_at") == "review")
    )
    assert fixed.height == same_problem
    flipped = fixed.filter(pl.col("dropped") == "review_reference_corrected")
    assert review["dropped"]["review_reference_corrected"] == flipped.height >= 1
    assert set(flipped["reference"]) == {"999999"} and set(flipped["verdict"]) == {"incorrect"}
    assert "reused (unchanged since the last run): source, generate, verify, select" in (
        result.output
    )
    again = runner.invoke(app, ["run", recipe, "--run-dir", str(run_dir)])
    assert again.output.strip().startswith("nothing to do")  # the same decisions, applied once
    card = (
        runner.invoke(app, ["publish", str(run_dir), "--dry-run", "--repo-id", "o/n"]).exit_code,
        (run_dir / "publish" / "README.md").read_text(),
    )
    assert card[0] == 0 and "## Human review" in card[1] and "| rejected | 1 |" in card[1]
