"""The topics stage: a model picks each problem's topic from MSC (or the user's list); select
spreads a budget over the topics."""

import polars as pl
import pytest

from curate.generate.base import Sample
from curate.records import conform
from curate.select import SelectConfig, SelectStage
from curate.select.config import TopicsConfig
from curate.select.taxonomy import MSC
from curate.select.topics import TopicsStage, read_topic
from curate.stage import StageContext
from curate.units import process_batch
from tests.select.fake_rater import FakeClassifierServer

PROBLEMS = {
    **{f"prime{i}": f"How many primes are below {10 * i + 20}?" for i in range(4)},
    **{
        f"dice{i}": f"Two dice are rolled {i + 2} times; what is the chance of a 7?"
        for i in range(4)
    },
    **{f"tri{i}": f"A right triangle has legs {i + 3} and 4; find its area." for i in range(4)},
    "stew": "How long should a stew simmer?",
}


def rows() -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "problem_id": pid,
                "problem": text,
                "sample_idx": k,
                "verdict": "correct",
                "extracted_answer": "1",
                "reasoning": "w " * 10,
                "completion": "done",
            }
            for pid, text in PROBLEMS.items()
            for k in range(2)
        ]
    )


def test_topics_are_read_from_msc_and_select_spreads_over_them(tmp_path):
    with FakeClassifierServer() as server:
        section = {"classifier": {"backend": "openai", "base_url": server.url, "model": "c"}}
        stage = TopicsStage(TopicsConfig(**section), StageContext(tmp_path))
        out, stats = process_batch(stage, conform(rows()))
        assert server.requests == len(PROBLEMS)  # once per problem, not per trace
    topics = dict(pl.from_arrow(out).unique("problem_id").select("problem_id", "topic").rows())
    assert topics["prime0"] == "11 Number theory"
    assert topics["dice1"] == "60 Probability theory and stochastic processes"
    assert topics["tri2"] == "51 Geometry"  # named, not coded
    assert topics["stew"] is None  # a topic not on the list is not guessed
    assert stats["counts"]["topic_unreadable"] == 1
    assert stats["counts"]["spent_prompt_tokens"] > 0  # the classifier's, counted by its stage
    select = SelectStage(
        SelectConfig(
            mix={"by": "topic", "balance": "uniform", "only": list(set(topics.values()) - {None})},
            budget={"problems": 6},
        ),
        StageContext(tmp_path, seed=2),
    )
    chosen, _ = process_batch(select, out)
    kept = pl.from_arrow(chosen).filter(pl.col("selected")).unique("problem_id")
    assert sorted(kept["topic"].to_list()) == sorted(
        ["11 Number theory"] * 2 + ["51 Geometry"] * 2 + [topics["dice1"]] * 2
    )


@pytest.mark.parametrize(
    ("reply", "topic"),
    [
        ("Topic: 05", "05 Combinatorics"),
        ("**Topic:** 11 (Number theory)", "11 Number theory"),
        ("Topic: number theory", "11 Number theory"),
        ("Topic: 11\nOn reflection,\nTopic: 60", "60 Probability theory and stochastic processes"),
        ("It is about counting.", None),
        ("Topic: 04", None),
    ],
)
def test_read_topic(reply, topic):
    assert read_topic(Sample(0, None, reply, "stop", 1, 1), MSC)[0] == topic


def test_an_own_taxonomy_is_numbered_and_needs_two_topics():
    config = TopicsConfig(classifier={"backend": "simulated"}, taxonomy=["algebra", "geometry"])
    assert config.taxonomy == ["algebra", "geometry"]
    with pytest.raises(ValueError, match="at least two distinct topics"):
        TopicsConfig(classifier={"backend": "simulated"}, taxonomy=["algebra"])
