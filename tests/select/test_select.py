import polars as pl
import pytest

from curate.errors import RecipeError
from curate.recipe import validate
from curate.records import conform
from curate.select import SelectConfig, SelectStage
from curate.stage import StageContext
from curate.units import process_batch


def run(tmp_path, frame, **config):
    """The stage as `curate run` calls it: on a batch that has every ledger column (so a
    column the stage computes is already there, empty)."""
    stage = SelectStage(SelectConfig(**config), StageContext(tmp_path))
    out, _ = process_batch(stage, conform(frame))
    return pl.from_arrow(out)


def traces(verdicts: dict[str, list[tuple[str | None, str | None]]], lengths=None) -> pl.DataFrame:
    rows = []
    for pid, samples in verdicts.items():
        for index, (verdict, answer) in enumerate(samples):
            text = "x " * (lengths[pid][index] if lengths else 10)
            rows.append(
                {
                    "problem_id": pid,
                    "sample_idx": index,
                    "verdict": verdict,
                    "extracted_answer": answer,
                    "reasoning": text,
                    "completion": "c",
                }
            )
    return pl.DataFrame(
        rows, schema_overrides={"verdict": pl.String, "extracted_answer": pl.String}
    )


def test_keeps_correct_and_labels_the_rest(tmp_path):
    frame = traces(
        {
            "a": [("correct", "4"), ("incorrect", "5"), ("correct", "4")],
            "b": [("unverifiable", None), (None, None)],
        }
    )
    out = run(tmp_path, frame)
    assert out["selected"].to_list() == [True, False, True, False, False]
    assert out["dropped"].to_list() == [None, "incorrect", None, "unverifiable", "unverified"]
    assert out["pass_rate"].to_list()[:3] == pytest.approx([2 / 3] * 3)


def test_max_per_problem_keeps_lowest_sample_indices(tmp_path):
    frame = traces(
        {"a": [("incorrect", "1"), ("correct", "2"), ("correct", "2"), ("correct", "2")]}
    )
    out = run(tmp_path, frame, max_per_problem=2)
    assert out.filter(pl.col("selected"))["sample_idx"].to_list() == [1, 2]
    assert out["dropped"].to_list() == ["incorrect", None, None, "over_max_per_problem"]


def test_shortest_correct(tmp_path):
    frame = traces(
        {"a": [("correct", "2"), ("correct", "2"), ("incorrect", "3")]}, lengths={"a": [50, 20, 5]}
    )
    out = run(tmp_path, frame, policy="shortest_correct")
    assert out.filter(pl.col("selected"))["sample_idx"].to_list() == [1]


def test_pass_rate_band_for_rl_sets(tmp_path):
    frame = traces(
        {
            "easy": [("correct", "1")] * 4,
            "mid": [("correct", "1"), ("incorrect", "2"), ("correct", "1"), ("incorrect", "2")],
            "hard": [("incorrect", "9")] * 4,
        }
    )
    out = run(tmp_path, frame, policy="pass_rate_band", pass_rate_min=0.1, pass_rate_max=0.9)
    kept = out.filter(pl.col("selected"))
    assert set(kept["problem_id"]) == {"mid"}
    easy = out.filter(pl.col("problem_id") == "easy")["dropped"].to_list()
    assert easy == ["pass_rate_out_of_band"] * 4


def test_majority_and_borderline_flags(tmp_path):
    frame = traces(
        {
            # most samples agree on 7 while the reference says otherwise: reference disputed
            "disputed": [
                ("incorrect", "7"),
                ("incorrect", "7 "),
                ("incorrect", "7"),
                ("correct", "5"),
            ],
            # one correct out of four: a lucky hit
            "lucky": [
                ("correct", "3"),
                ("incorrect", "1"),
                ("incorrect", "2"),
                ("unverifiable", None),
            ],
            "clean": [("correct", "2"), ("correct", "2")],
        }
    )
    out = run(tmp_path, frame)
    by = {(r["problem_id"], r["sample_idx"]): r for r in out.iter_rows(named=True)}
    assert by[("disputed", 0)]["majority_answer"] == "7"
    assert by[("disputed", 0)]["agreement"] == pytest.approx(0.75)
    assert "reference_disputed" in by[("disputed", 3)]["borderline"]
    assert by[("lucky", 0)]["borderline"] == ["lucky_hit"]
    assert by[("lucky", 3)]["borderline"] == ["unverifiable"]
    assert by[("lucky", 1)]["borderline"] == []
    assert by[("clean", 0)]["borderline"] == [] and by[("clean", 0)]["agreement"] == 1.0


def test_band_must_be_ordered():
    with pytest.raises(RecipeError, match="pass_rate_min must not exceed pass_rate_max"):
        validate(
            {
                "name": "x",
                "source": {"kind": "files", "path": "p"},
                "select": {"pass_rate_min": 0.9, "pass_rate_max": 0.1},
            }
        )
