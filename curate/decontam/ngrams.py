"""Stable, vectorised text hashing for decontamination and dedup.

Texts are split into words by polars (in parallel slices), each distinct word is hashed
once with xxhash, and everything else (word n-grams, whole-text hashes, number-masked
hashes) is combined from those word hashes in numpy. The hashes are the same on every
machine and version, so they can be stored in index packs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
import xxhash

Tokens = Literal["words", "whitespace"]
MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: invertible modulo 2**64
INVERSE = np.uint64(pow(int(MULTIPLIER), -1, 1 << 64))
PATTERNS = {"words": r"[\p{L}\p{N}]+", "whitespace": r"\S+"}
SLICE_ROWS = 20_000


@dataclass(frozen=True)
class Words:
    """Every word of a batch of texts, in order."""

    count: int  # number of texts
    rows: np.ndarray  # text index per word (int64, non-decreasing)
    hashes: np.ndarray  # xxhash64 per word (uint64)
    masked: np.ndarray  # the same with digit runs replaced by 0

    def bounds(self) -> np.ndarray:
        """Word offsets per text: text i has words bounds[i]:bounds[i+1]."""
        return np.searchsorted(self.rows, np.arange(self.count + 1))


def tokenize(texts: list[str], tokens: Tokens = "words") -> Words:
    """Lowercased words: letters and digits (words), or whitespace-separated (whitespace)."""
    frame = pl.DataFrame({"text": pl.Series(texts, dtype=pl.String)}).with_row_index("row")
    pattern = PATTERNS[tokens]
    slices = [
        frame.slice(start, SLICE_ROWS)
        .lazy()
        .select(
            "row",
            pl.col("text").fill_null("").str.to_lowercase().str.extract_all(pattern).alias("word"),
        )
        .explode("word")
        .drop_nulls()
        for start in range(0, max(frame.height, 1), SLICE_ROWS)
    ]
    exploded = pl.concat(pl.collect_all(slices)) if len(slices) > 1 else slices[0].collect()
    hashes, masked = _word_hashes(exploded["word"])
    return Words(len(texts), exploded["row"].to_numpy().astype(np.int64), hashes, masked)


def _word_hashes(words: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """xxhash64 of each word and of its number-masked form, each distinct word hashed once."""
    vocabulary = words.unique()
    masked_forms = vocabulary.str.replace_all(r"\d+", "0")
    plain = np.array([xxhash.xxh64_intdigest(w.encode()) for w in vocabulary], np.uint64)
    masked = np.array([xxhash.xxh64_intdigest(w.encode()) for w in masked_forms], np.uint64)
    codes = words.cast(pl.Enum(vocabulary)).to_physical().to_numpy()
    return plain[codes], masked[codes]


def ngrams(words: Words, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(text index, hash) of every word n-gram that lies within one text."""
    if len(words.hashes) < n:
        return np.empty(0, np.int64), np.empty(0, np.uint64)
    starts = len(words.hashes) - n + 1
    combined = words.hashes[:starts].copy()
    for offset in range(1, n):
        combined = combined * MULTIPLIER + words.hashes[offset : offset + starts]
    same_text = words.rows[:starts] == words.rows[n - 1 :]
    return words.rows[:starts][same_text], combined[same_text]


def sequence_hashes(words: Words, masked: bool = False) -> np.ndarray:
    """One hash per text of its whole word sequence (0 for a text with no words).

    Polynomial hash sum(w_j * M^(end-j)), computed for all texts at once from prefix sums
    of w_j * M^-j (mod 2**64).
    """
    values = words.masked if masked else words.hashes
    total = len(values)
    if total == 0:
        return np.zeros(words.count, np.uint64)
    powers = np.cumprod(np.full(total, MULTIPLIER, np.uint64)) * INVERSE  # M^0 .. M^(total-1)
    inverse_powers = np.cumprod(np.full(total, INVERSE, np.uint64)) * MULTIPLIER
    prefix = np.cumsum(values * inverse_powers, dtype=np.uint64)
    bounds = words.bounds()
    first, end = bounds[:-1], bounds[1:] - 1
    result = np.zeros(words.count, np.uint64)
    present = end >= first
    before = np.where(first[present] > 0, prefix[np.maximum(first[present] - 1, 0)], 0)
    result[present] = powers[end[present]] * (prefix[end[present]] - before.astype(np.uint64))
    return result


def ngram_hashes(
    texts: list[str], n: int, tokens: Tokens = "words"
) -> tuple[np.ndarray, np.ndarray]:
    """(text index, n-gram hash) for every word n-gram of every text."""
    return ngrams(tokenize(texts, tokens), n)


def text_hashes(texts: list[str], mask_numbers: bool = False) -> list[int]:
    """Stable hash per text of its lowercased letter-and-digit words (numbers masked if asked)."""
    return [int(h) for h in sequence_hashes(tokenize(texts), mask_numbers)]
