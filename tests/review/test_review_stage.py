"""Reviewers' decisions applied by the pipeline's review stage: counted in the funnel,
applied again on a re-run, a corrected reference re-verifying the problem's traces."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from curate.cli import add_stage_commands, app
from curate.errors import ReviewError
from curate.review.stage import record_key

add_stage_commands()
runner = CliRunner()


def decide(run_dir: Path, rows: list[tuple[dict, str, str | None]]) -> None:
    """Write decisions for these traces as `curate review pull` does."""
    lines = []
    for row, decision, corrected in rows:
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
    traces = before.filter(pl.col("sample_idx").is_not_null())
    unverifiable = traces.filter(pl.col("verdict") == "unverifiable").row(0, named=True)
    correct = traces.filter(pl.col("verdict") == "correct").sort("problem_id", "sample_idx")
    kept, rejected = correct.row(0, named=True), correct.row(1, named=True)
    others = correct.filter(
        ~pl.col("problem_id").is_in([kept["problem_id"], rejected["problem_id"]])
    )
    corrected, pending = others.row(0, named=True), others.row(-1, named=True)
    decide(
        run_dir,
        [
            (unverifiable, "accept", None),  # a human rescues what the verifier could not settle
            (rejected, "reject", None),
            (corrected, "accept", None),
            (
                others.filter(pl.col("problem_id") == corrected["problem_id"]).row(-1, named=True),
                "undecided",
                "999999",
            ),
            (pending, "undecided", None),
        ],
    )
    result = runner.invoke(app, ["run", recipe, "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "reused (unchanged since the last run): source, generate, verify\n" in result.output
    stats = json.loads((run_dir / "stats.json").read_text())
    counts = stats["review"]["counts"]
    assert (counts["sent"], counts["decided"], counts["accepted"], counts["rejected"]) == (
        5,
        3,
        2,
        1,
    )
    assert counts["references_corrected"] == 1
    assert stats["review"]["dropped"] == {"review_pending": 2}
    after = pl.read_parquet(run_dir / "ledger")

    def trace(row):
        same = (pl.col("problem_id") == row["problem_id"]) & (
            pl.col("sample_idx") == row["sample_idx"]
        )
        return after.filter(same).row(0, named=True)

    assert trace(unverifiable)["verdict"] == "correct"
    assert trace(unverifiable)["dropped"] is None  # selected after the review
    assert trace(rejected)["verdict_reason"] == "review_rejected"
    assert trace(rejected)["dropped"] == "incorrect"  # selection drops it
    assert trace(corrected)["verdict"] == "correct"  # the reviewer's word on this trace wins
    problem = after.filter(pl.col("problem_id") == corrected["problem_id"])
    assert set(problem["reference"]) == {"999999"}
    others_of_problem = problem.filter(pl.col("sample_idx") != corrected["sample_idx"])
    assert set(others_of_problem["verdict"]) <= {"incorrect", "unverifiable"}
    assert trace(pending)["dropped"] == "review_pending"
    again = runner.invoke(app, ["run", recipe, "--run-dir", str(run_dir)])
    assert again.output.strip().startswith("nothing to do")  # the same decisions, applied once
    staged = runner.invoke(app, ["publish", str(run_dir), "--dry-run", "--repo-id", "o/n"])
    card = (run_dir / "publish" / "README.md").read_text()
    assert staged.exit_code == 0 and "## Human review" in card and "| rejected | 1 |" in card


def test_a_run_says_where_its_borderline_traces_are(make_recipe, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("ARGILLA_API_URL", raising=False)
    monkeypatch.setenv("CURATE_HOME", str(tmp_path / "home"))  # no local server either
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["run", str(make_recipe()), "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("review:"))
    written = (run_dir / "review" / "borderline.jsonl").read_text().splitlines()
    assert f"review:  {len(written):,} borderline traces in " in line
    assert f"`curate argilla up`, then `curate review push {run_dir}`" in line
    first = json.loads(written[0])
    assert first["borderline"] and first["record"] == record_key(
        first["problem_id"], first["round"], first["sample_idx"]
    )


def test_a_configured_server_that_is_down_costs_the_run_nothing(
    make_recipe, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("REVIEW_KEY", "secret-review-key")
    review = {"url": "http://127.0.0.1:9", "api_key_env": "REVIEW_KEY", "undecided": "keep"}
    recipe = make_recipe(review=review)
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["run", str(recipe), "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    waiting = len((run_dir / "review" / "borderline.jsonl").read_text().splitlines())
    assert f"warning: review: {waiting} borderline traces not sent (" in result.output
    assert "secret-review-key" not in result.output
    pushed = runner.invoke(app, ["review", "push", str(run_dir)])
    assert pushed.exit_code == 1 and "secret-review-key" not in pushed.output


def test_the_recipe_names_the_key_variable_and_an_unset_one_is_named(tmp_path: Path, monkeypatch):
    from curate.review.argilla import connect, review_config

    monkeypatch.delenv("REVIEW_KEY", raising=False)
    (tmp_path / "recipe.yaml").write_text(
        "name: r\nsource: {kind: files, path: p.jsonl}\n"
        "review: {url: 'http://argilla.example:6900/', api_key_env: REVIEW_KEY}\n"
    )
    config = review_config(tmp_path)
    assert config.url == "http://argilla.example:6900/"
    with pytest.raises(ReviewError, match="set the variable REVIEW_KEY"):
        connect(config)


def test_a_right_answer_with_reasoning_rated_unsound_is_rejected():
    from curate.review.argilla import decide as decide_record

    task = {"resolve": "majority", "overlap": 2, "reasoning_floor": 3}
    sound = {"status": "submitted", "correct": "correct", "reasoning_sound": 4}
    lucky = {"status": "submitted", "correct": "correct", "reasoning_sound": 1}
    unrated = {"status": "submitted", "correct": "correct"}
    assert decide_record([sound, sound], task)["decision"] == "accept"
    assert decide_record([sound, unrated], task)["decision"] == "accept"  # one rating, 4
    both_low = decide_record([lucky, lucky], task)
    assert (both_low["decision"], both_low["reason"]) == ("reject", "reasoning_unsound")
    assert decide_record([lucky, sound], task)["reasoning_score"] == 2.5
    assert decide_record([lucky, lucky], {**task, "reasoning_floor": None})["decision"] == "accept"
