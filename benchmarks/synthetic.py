"""Synthetic problem sets for the curation benchmarks (fast to make, realistic enough in shape:
math-flavoured wording, numbers everywhere, stock phrasing, planted copies and near-copies)."""

from __future__ import annotations

import numpy as np

WORDS = [
    "find",
    "the",
    "number",
    "of",
    "positive",
    "integers",
    "less",
    "than",
    "such",
    "that",
    "sum",
    "product",
    "of",
    "all",
    "real",
    "solutions",
    "equation",
    "triangle",
    "circle",
    "radius",
    "area",
    "perimeter",
    "square",
    "root",
    "probability",
    "randomly",
    "chosen",
    "points",
    "on",
    "a",
    "line",
    "segment",
    "ratio",
    "how",
    "many",
    "ways",
    "can",
    "be",
    "arranged",
    "in",
    "row",
    "each",
    "digit",
    "distinct",
    "value",
    "expression",
    "simplify",
    "compute",
    "let",
    "and",
    "be",
    "two",
    "numbers",
    "if",
    "then",
    "what",
    "is",
    "greatest",
    "common",
    "divisor",
    "least",
    "multiple",
    "polynomial",
    "with",
    "coefficients",
    "roots",
    "function",
    "defined",
    "for",
    "every",
    "integer",
    "sequence",
    "terms",
    "first",
    "second",
    "third",
    "last",
    "average",
    "train",
    "car",
    "speed",
    "hour",
    "minute",
    "distance",
    "time",
    "rate",
    "work",
    "together",
    "alone",
    "apples",
    "oranges",
    "coins",
    "dollars",
    "cents",
    "store",
    "price",
    "discount",
    "percent",
    "total",
    "remaining",
    "shared",
    "equally",
    "among",
]
STOCK = (
    "where m and n are relatively prime positive integers. Find m+n.",
    "Express your answer as a common fraction.",
    "Express your answer in simplest radical form.",
)


def problems(
    count: int,
    seed: int = 0,
    plant: list[str] | None = None,
    plant_share: float = 0.01,
    stock: tuple[str, ...] = STOCK,
) -> tuple[list[str], np.ndarray]:
    """`count` problems; a share are copies (verbatim or lightly edited) of `plant` texts.

    Returns the texts and, per text, the index of the planted item (-1 when none).
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 70, count)
    words = np.array(WORDS)
    picks = rng.integers(0, len(words), int(lengths.sum()))
    numbers = rng.integers(0, 1000, int(lengths.sum()))
    is_number = rng.random(int(lengths.sum())) < 0.15
    tokens = np.where(is_number, numbers.astype(str), words[picks])
    splits = np.cumsum(lengths)[:-1]
    texts = [" ".join(part) for part in np.split(tokens, splits)]
    with_stock = rng.random(count) < 0.2
    for index in np.flatnonzero(with_stock):
        texts[index] += " " + stock[index % len(stock)]
    planted = np.full(count, -1)
    if plant:
        chosen = np.flatnonzero(rng.random(count) < plant_share)
        for index in chosen:
            item = int(rng.integers(0, len(plant)))
            text = plant[item]
            if index % 2:  # lightly edited: one word changed, a preamble added
                parts = text.split()
                if len(parts) > 10:
                    parts[len(parts) // 2] = "exactly"
                text = "Solve the following. " + " ".join(parts)
            texts[index] = text
            planted[index] = item
    return texts, planted
