import json
from pathlib import Path

import polars as pl
import pytest

from curate.errors import SourceError
from curate.sources.gym import GymConfig, GymSource
from curate.sources.hub import HubConfig, HubSource


def test_hub_source_reads_a_local_dataset_folder(tmp_path: Path):
    """load_dataset on a folder in Hub layout: the same code path as a Hub id, offline."""
    folder = tmp_path / "my-dataset"
    (folder / "data").mkdir(parents=True)
    pl.DataFrame({"problem": ["1+1?", "2+2?"], "solution": ["2", "4"]}).write_parquet(
        folder / "data" / "train-00000-of-00001.parquet"
    )
    pl.DataFrame({"problem": ["3+3?"], "solution": ["6"]}).write_parquet(
        folder / "data" / "test-00000-of-00001.parquet"
    )
    config = HubConfig(
        dataset=str(folder),
        split="test",
        name="mine",
        columns={"problem": "problem", "reference": "solution"},
    )
    problems = list(HubSource(config).problems())
    assert [(p["problem"], p["reference"], p["source"]) for p in problems] == [
        ("3+3?", "6", "mine")
    ]


def test_hub_source_error_names_the_dataset(tmp_path: Path):
    config = HubConfig(dataset=str(tmp_path / "missing"), split="train")
    with pytest.raises(SourceError, match="missing \\[train\\]: cannot load"):
        list(HubSource(config).problems())


def test_reasoning_gym_is_deterministic_and_scorable():
    config = GymConfig(tasks={"gcd": 5, "basic_arithmetic": 3}, seed=3, domain="math")
    first = list(GymSource(config).problems())
    again = list(GymSource(config).problems())
    assert first == again and len(first) == 8
    assert all(p["reference"] for p in first)
    gym = json.loads(first[0]["metadata"])["gym"]
    entry = gym.pop("entry")  # the entry the problem was made from, judged against
    assert gym == {"task": "gcd", "size": 5, "seed": 3, "index": 0}
    assert entry["question"] == first[0]["problem"] and entry["answer"] == first[0]["reference"]
    other = list(GymSource(GymConfig(tasks={"gcd": 5}, seed=4)).problems())
    assert [p["problem"] for p in other] != [p["problem"] for p in first[:5]]


def test_reasoning_gym_unknown_task():
    with pytest.raises(SourceError, match="reasoning_gym task 'no_such_task'"):
        list(GymSource(GymConfig(tasks={"no_such_task": 2})).problems())


def test_an_unreachable_hub_fails_at_once_for_a_hub_source(monkeypatch):
    from curate.hub import hub_problem

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    hub_problem.cache_clear()
    try:
        source = HubSource(HubConfig(dataset="someone/not-cached-here"))
        with pytest.raises(SourceError, match=r"cannot load \(cannot reach http://127.0.0.1:9"):
            list(source.problems())
    finally:
        hub_problem.cache_clear()
