"""Semantic matching for paraphrased copies: sentence embeddings and cosine similarity.

Needs the `semantic` extra (sentence-transformers and torch); imported only when used.
N-gram methods miss nearly every rephrased copy; this one catches them, at the cost of
an embedding model.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from pydantic import Field

from curate.errors import RecipeError
from curate.stage import Config


class SemanticMethod(Config):
    """Embedding similarity with benchmark items (catches paraphrases)."""

    model: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="Sentence-transformers model: a local folder or a Hub id.",
    )
    threshold: float = Field(0.9, gt=0, le=1, description="Cosine that marks contamination.")
    borderline: float = Field(0.8, gt=0, le=1, description="Cosine that marks a row for review.")
    batch_size: int = Field(64, ge=1, description="Texts embedded at once.")

    volatile = frozenset({"batch_size"})


@cache
def load_model(name: str) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise RecipeError(
            "decontaminate.semantic needs the semantic extra: pip install 'curate[semantic]'"
        ) from None
    try:
        return SentenceTransformer(name, device="cpu")
    except (OSError, ValueError) as exc:
        raise RecipeError(f"decontaminate.semantic.model: cannot load {name!r} ({exc})") from None


def embed(method: SemanticMethod, texts: list[str]) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text."""
    model = load_model(method.model)
    vectors = model.encode(
        texts,
        batch_size=method.batch_size,
        normalize_embeddings=True,
        show_progress_bar=False,
        convert_to_numpy=True,
    )
    return np.asarray(vectors, dtype=np.float32)


def nearest(
    queries: np.ndarray, items: np.ndarray, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """(best item, cosine) per query row."""
    best = np.empty(len(queries), np.int64)
    score = np.empty(len(queries), np.float32)
    for start in range(0, len(queries), chunk):
        sims = queries[start : start + chunk] @ items.T
        best[start : start + chunk] = sims.argmax(axis=1)
        score[start : start + chunk] = sims.max(axis=1)
    return best, score
