"""Stable, vectorised n-gram hashing: words are hashed once each (xxhash), n-grams are
combined in numpy, so millions of rows hash in seconds and hashes can be stored in packs."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

import numpy as np
import polars as pl
import xxhash

Tokens = Literal["words", "whitespace"]
MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def words_frame(texts: list[str], tokens: Tokens) -> pl.DataFrame:
    """One row per word, in order: (row, word).

    words: lowercase, every run of non-letters-or-digits is a break (numbers are kept);
    whitespace: lowercase, split on whitespace only (the common contamination rule).
    """
    text = pl.Series("text", texts, pl.String).str.to_lowercase()
    if tokens == "words":
        text = text.str.replace_all(r"[^\p{L}\p{N}]+", " ")
    else:
        text = text.str.replace_all(r"\s+", " ")
    frame = pl.DataFrame({"word": text.str.strip_chars().str.split(" ")}).with_row_index("row")
    return frame.explode("word").filter(pl.col("word").is_not_null() & (pl.col("word") != ""))


def word_hashes(words: pl.Series) -> np.ndarray:
    """xxhash64 of each word, hashing each distinct word once."""
    vocabulary = words.unique()
    table = pl.DataFrame(
        {
            "word": vocabulary,
            "hash": pl.Series(
                [xxhash.xxh64_intdigest(w.encode()) for w in vocabulary], dtype=pl.UInt64
            ),
        }
    )
    joined = words.to_frame("word").join(table, on="word", how="left", maintain_order="left")
    return joined["hash"].to_numpy()


def ngram_hashes(
    texts: list[str], n: int, tokens: Tokens = "words"
) -> tuple[np.ndarray, np.ndarray]:
    """(row index, n-gram hash) for every word n-gram of every text."""
    frame = words_frame(texts, tokens)
    if frame.height < n:
        return np.empty(0, np.int64), np.empty(0, np.uint64)
    rows = frame["row"].to_numpy().astype(np.int64)
    hashes = word_hashes(frame["word"])
    starts = len(hashes) - n + 1
    combined = hashes[:starts].copy()
    for offset in range(1, n):
        combined = combined * MULTIPLIER + hashes[offset : offset + starts]
    same_row = rows[:starts] == rows[n - 1 :]
    return rows[:starts][same_row], combined[same_row]


def normal_form(text: str, mask_numbers: bool = False) -> str:
    """Lowercase words (letters and digits) joined by single spaces; digits masked if asked."""
    text = unicodedata.normalize("NFKC", text).lower()
    if mask_numbers:
        text = re.sub(r"\d+(?:[.,]\d+)*", "0", text)
    return " ".join(re.findall(r"[^\W_]+", text))


def text_hash(text: str, mask_numbers: bool = False) -> int:
    return xxhash.xxh64_intdigest(normal_form(text, mask_numbers).encode())
