import polars as pl

from curate.selection import SelectConfig, SelectStage
from curate.stage import StageContext


def run(tmp_path, frame, **config):
    return SelectStage(SelectConfig(**config), StageContext(tmp_path)).process(frame)


def test_keeps_correct_and_labels_the_rest(tmp_path):
    frame = pl.DataFrame(
        {
            "problem_id": ["a", "a", "a", "b", "b"],
            "sample_idx": [0, 1, 2, 0, 1],
            "verdict": ["correct", "incorrect", "correct", "unverifiable", None],
        }
    )
    out = run(tmp_path, frame)
    assert out["selected"].to_list() == [True, False, True, False, False]
    assert out["dropped"].to_list() == [None, "incorrect", None, "unverifiable", "unverified"]


def test_max_per_problem_keeps_lowest_sample_indices(tmp_path):
    frame = pl.DataFrame(
        {
            "problem_id": ["a"] * 4,
            "sample_idx": [3, 0, 2, 1],
            "verdict": ["correct"] * 4,
        }
    )
    out = run(tmp_path, frame, max_per_problem=2)
    assert out.filter(pl.col("selected"))["sample_idx"].sort().to_list() == [0, 1]
    assert out["dropped"].to_list().count("over_max_per_problem") == 2
