"""Topics without labels: the problems embedded (the encoder decontamination uses) and
grouped by k-means, so `mix: {by: cluster}` spreads a selection over what problems are
about when no column says it.

Each distinct problem is embedded once, a shard at a time (select's keys hold the vectors,
not the text). k-means runs on unit vectors (cosine), seeded by the run's seed, over the
problems in problem-id order: the same clusters on any machine and in any input order.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from curate.select.config import Clusters

PID = "problem_id"
VECTOR = "_vector"
ROUNDS = 30  # Lloyd iterations at most; they stop early once no problem moves
STARTS = 4  # k-means++ starts tried; the most cohesive result is kept


def with_vectors(rows: pl.DataFrame, settings: Clusters) -> pl.DataFrame:
    """Rows with the first row of each problem carrying its problem's embedding."""
    first = rows.select(PID, "problem").unique(PID, keep="first", maintain_order=True)
    texts = [text or "" for text in first["problem"].to_list()]
    vectors = embed(texts, settings)
    found = first.select(PID).with_columns(
        pl.Series(VECTOR, vectors.astype(np.float32).tolist(), pl.List(pl.Float32))
    )
    marked = rows.with_columns(pl.int_range(pl.len()).over(PID).alias("_nth"))
    joined = marked.join(found, on=PID, how="left", maintain_order="left")
    vector = pl.when(pl.col("_nth") == 0).then(pl.col(VECTOR))
    return joined.with_columns(vector.alias(VECTOR)).drop("_nth")


def embed(texts: list[str], settings: Clusters) -> np.ndarray:
    from curate.decontam.semantic import SemanticMethod
    from curate.decontam.semantic import embed as embed_texts

    method = SemanticMethod(model=settings.model, engine=settings.engine)
    if not texts:
        return np.empty((0, 0), np.float32)
    return embed_texts(method, texts, settings.max_tokens)


def cluster_of(frame: pl.DataFrame, settings: Clusters, seed: int) -> pl.DataFrame:
    """problem_id -> its cluster's name (cluster-00 ...), for every problem with a vector."""
    found = (
        frame.filter(pl.col(VECTOR).is_not_null())
        .unique(PID, keep="first")
        .sort(PID)
        .select(PID, VECTOR)
    )
    if found.is_empty():
        return pl.DataFrame(schema={PID: pl.String, "cluster": pl.String})
    vectors = np.asarray(found[VECTOR].to_list(), dtype=np.float32)
    labels = kmeans(vectors, min(settings.k, len(vectors)), seed)
    names = [f"cluster-{label:02d}" for label in labels]
    return found.select(PID).with_columns(pl.Series("cluster", names, pl.String))


def kmeans(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Cluster labels of unit vectors: the best (most cohesive) of STARTS runs of k-means++
    starts and Lloyd rounds on cosine."""
    rng = np.random.default_rng(seed)
    best, score = np.zeros(len(vectors), dtype=int), -np.inf
    for _ in range(STARTS):
        labels, centres = _lloyd(vectors, _starts(vectors, k, rng))
        cohesion = float((vectors * centres[labels]).sum())
        if cohesion > score:
            best, score = labels, cohesion
    return best


def _starts(vectors: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++: each next centre drawn with odds the squared distance to the nearest."""
    centres = vectors[[int(rng.integers(len(vectors)))]]
    while len(centres) < k:
        distance = np.clip(1.0 - (vectors @ centres.T).max(axis=1), 0.0, None) ** 2
        total = float(distance.sum())
        if total <= 0:  # every problem sits on a centre: fewer distinct ones than k
            break
        pick = int(rng.choice(len(vectors), p=distance / total))
        centres = np.vstack([centres, vectors[pick]])
    return centres


def _lloyd(vectors: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.full(len(vectors), -1)
    for _ in range(ROUNDS):
        moved = (vectors @ centres.T).argmax(axis=1)
        if np.array_equal(moved, labels):
            break
        labels = moved
        centres = _centres(vectors, labels, centres)
    return labels, centres


def _centres(vectors: np.ndarray, labels: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Each cluster's mean direction (an emptied cluster keeps its old centre)."""
    new = old.copy()
    for label in range(len(old)):
        members = vectors[labels == label]
        if len(members):
            mean = members.mean(axis=0)
            new[label] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return new
