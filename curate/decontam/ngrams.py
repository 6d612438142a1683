"""Stable, vectorised text hashing for decontamination and dedup.

Texts are split into words by polars (in parallel slices), each distinct word is hashed
once with xxhash, and everything else (word n-grams, whole-text hashes, number-masked
hashes) is combined from those word hashes in numpy. The hashes are the same on every
machine and version, so they can be stored in index packs.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import polars as pl
import xxhash

Tokens = Literal["words", "whitespace"]
MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: invertible modulo 2**64
INVERSE = np.uint64(pow(int(MULTIPLIER), -1, 1 << 64))
# what Python's str.isspace() accepts, so "whitespace" splits exactly as str.split()
WHITESPACE = [
    *"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680",
    *(chr(code) for code in range(0x2000, 0x200B)),
    *"\u2028\u2029\u202f\u205f\u3000",
]
PUNCTUATION = [
    *string.punctuation,
    *"\u201c\u201d\u2018\u2019\u00ab\u00bb\u2039\u203a\u201e\u201a",  # quotes
    *"\u2010\u2011\u2012\u2013\u2014\u2015\u2026\u00b7\u2022\u00b4\u00a8",  # dashes, dots
    *"\u00d7\u00f7\u00b1\u2213\u2264\u2265\u2260\u2248\u2261\u223c\u221d\u221e",  # math
    *"\u221a\u2211\u220f\u222b\u2202\u2207\u2208\u2209\u2282\u2283\u2286\u2287",
    *"\u222a\u2229\u2227\u2228\u00ac\u2192\u2190\u2194\u21d2\u21d0\u21d4\u21a6",
    *"\u00b0\u2032\u2033\u2030\u00a7\u27e8\u27e9\u230a\u230b\u2308\u2309\u2223",
    *"\u2225\u2220\u22a5\u25b3\u00bf\u00a1",
    *"\uff0c\u3002\u3001\uff1b\uff1a\uff1f\uff01\uff08\uff09\u3010\u3011\u300a\u300b",
]
SEPARATORS = {"words": WHITESPACE + PUNCTUATION, "whitespace": WHITESPACE}


def separator_pattern(characters: list[str]) -> str:
    """A regex for a separator other than the space and the run after it, spaces included:
    runs never start at a bare space (replacing every space with one is most of the work),
    and "a, b" gives no empty word. Each character is written as a code point escape."""
    escaped = "".join(f"\\x{{{ord(c):x}}}" for c in characters if c != " ")
    return f"[{escaped}][{escaped}\\x{{20}}]*"


PATTERNS = {name: separator_pattern(chars) for name, chars in SEPARATORS.items()}
SLICE_ROWS = 20_000
HASH_BATCH_ROWS = 100_000  # texts tokenised at once by text_hashes


@dataclass(frozen=True)
class Words:
    """Every word of a batch of texts, in order."""

    count: int  # number of texts
    rows: np.ndarray  # text index per word (int64, non-decreasing)
    hashes: np.ndarray  # xxhash64 per word (uint64)
    masked: np.ndarray  # the same with digit runs replaced by 0

    @cached_property
    def bounds(self) -> np.ndarray:
        """Word offsets per text: text i has words bounds[i]:bounds[i+1]."""
        per_text = np.bincount(self.rows, minlength=self.count)
        return np.concatenate(([0], np.cumsum(per_text)))

    @property
    def powers(self) -> tuple[np.ndarray, np.ndarray]:
        """M^j and M^-j (mod 2**64) for every word position j."""
        return word_powers(len(self.hashes))


POWERS: list[tuple[np.ndarray, np.ndarray]] = []  # kept for batches up to CACHED_POWERS words
CACHED_POWERS = 1 << 22  # 64 MB for both arrays


def word_powers(length: int) -> tuple[np.ndarray, np.ndarray]:
    """M^j and M^-j (mod 2**64) for j below length (at least)."""
    if POWERS and len(POWERS[-1][0]) >= length:
        return POWERS[-1]
    size = length if length > CACHED_POWERS else min(CACHED_POWERS, 1 << (length - 1).bit_length())
    forward = np.cumprod(np.full(size, MULTIPLIER, np.uint64)) * INVERSE
    inverse = np.cumprod(np.full(size, INVERSE, np.uint64)) * MULTIPLIER
    if size <= CACHED_POWERS:
        POWERS[:] = [(forward, inverse)]  # one assignment: threads see the old or the new pair
    return forward, inverse


def tokenize(texts: list[str], tokens: Tokens = "words") -> Words:
    """Lowercased words: split at whitespace and punctuation (words), or at whitespace only,
    exactly as Python's str.split() does (whitespace).

    Runs of separators become one space and the texts are split on spaces: several times
    faster than extracting the words with a regex, which allocates every match.
    """
    frame = pl.DataFrame({"text": pl.Series(texts, dtype=pl.String)}).with_row_index("row")
    slices = [
        frame.slice(start, SLICE_ROWS)
        .lazy()
        .select(
            "row",
            pl.col("text")
            .fill_null("")
            .str.to_lowercase()
            .str.replace_all(PATTERNS[tokens], " ")
            .str.split(" ")
            .alias("word"),
        )
        .explode("word")
        .filter(pl.col("word").str.len_bytes() > 0)
        for start in range(0, max(frame.height, 1), SLICE_ROWS)
    ]
    exploded = pl.concat(pl.collect_all(slices)) if len(slices) > 1 else slices[0].collect()
    hashes, masked = _word_hashes(exploded["word"])
    return Words(len(texts), exploded["row"].to_numpy().astype(np.int64), hashes, masked)


def _word_hashes(words: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """xxhash64 of each word and of its number-masked form, each distinct word hashed once."""
    vocabulary = words.unique()
    plain = xxh64(vocabulary)
    masked = xxh64(vocabulary.str.replace_all(r"\d+", "0"))
    codes = words.cast(pl.Enum(vocabulary)).to_physical().to_numpy()
    return plain[codes], masked[codes]


def xxh64(strings: pl.Series) -> np.ndarray:
    """xxhash64 of each string's UTF-8 bytes."""
    encoded = strings.cast(pl.Binary).to_list()
    return np.fromiter(map(xxhash.xxh64_intdigest, encoded), np.uint64, len(encoded))


def ngrams(words: Words, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(text index, hash) of every word n-gram that lies within one text."""
    if len(words.hashes) < n:
        return np.empty(0, np.int64), np.empty(0, np.uint64)
    starts = len(words.hashes) - n + 1
    combined = words.hashes[:starts].copy()
    for offset in range(1, n):
        combined *= MULTIPLIER
        combined += words.hashes[offset : offset + starts]
    same_text = words.rows[:starts] == words.rows[n - 1 :]
    return words.rows[:starts][same_text], combined[same_text]


def sequence_hashes(words: Words, masked: bool = False) -> np.ndarray:
    """One hash per text of its whole word sequence (0 for a text with no words).

    Polynomial hash sum(w_j * M^(end-j)), computed for all texts at once from prefix sums
    of w_j * M^-j (mod 2**64).
    """
    values = words.masked if masked else words.hashes
    if len(values) == 0:
        return np.zeros(words.count, np.uint64)
    forward, inverse = words.powers
    prefix = np.cumsum(values * inverse[: len(values)], dtype=np.uint64)
    bounds = words.bounds
    first, end = bounds[:-1], bounds[1:] - 1
    result = np.zeros(words.count, np.uint64)
    present = end >= first
    before = np.where(first[present] > 0, prefix[np.maximum(first[present] - 1, 0)], 0)
    result[present] = forward[end[present]] * (prefix[end[present]] - before.astype(np.uint64))
    return result


def ngram_hashes(
    texts: list[str], n: int, tokens: Tokens = "words"
) -> tuple[np.ndarray, np.ndarray]:
    """(text index, n-gram hash) for every word n-gram of every text."""
    return ngrams(tokenize(texts, tokens), n)


def text_hashes(texts: list[str], mask_numbers: bool = False) -> list[int]:
    """Stable hash per text of its lowercased words (numbers masked if asked)."""
    return [
        int(h)
        for start in range(0, len(texts), HASH_BATCH_ROWS)
        for h in sequence_hashes(tokenize(texts[start : start + HASH_BATCH_ROWS]), mask_numbers)
    ]
