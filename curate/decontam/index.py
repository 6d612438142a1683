"""The benchmark index: hashed n-grams with postings, exact and number-masked text hashes.

It holds no problem text, so an index pack (`curate decontam build`) can be shared and used
offline without redistributing any test set; it keeps the final answers of public benchmarks
(short strings, for the answer rule: a match with another answer is a sibling, not a copy),
never of private ones. Texts, when the index was built from files here, are kept in memory
only, for the audit excerpts of the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from curate.decontam.benchmarks import Item, is_private
from curate.decontam.ngrams import Tokens, ngrams, sequence_hashes, tokenize
from curate.errors import SourceError

PACK_VERSION = 2  # 2: words split at whitespace and punctuation
FILTER_MASK = np.uint64((1 << 22) - 1)


@dataclass
class Match:
    """The best match of one text against one benchmark item."""

    benchmark: str
    item: str
    method: str  # ngram | exact | exact_masked | semantic
    score: float
    run: int = 0  # longest run of the item's n-grams found in the text, in words
    item_index: int = -1
    rule: str | None = None  # set when the answers already decided the match


@dataclass
class BenchmarkIndex:
    n: int
    tokens: Tokens
    item_bench: np.ndarray  # benchmark name index per item
    item_ids: np.ndarray  # str
    bench_names: list[str]
    grams: np.ndarray  # sorted unique n-gram hashes (uint64)
    post_offsets: np.ndarray  # CSR: items containing grams[i] are post_items[o[i]:o[i+1]]
    post_items: np.ndarray
    item_counts: np.ndarray  # distinct n-grams per item
    seq_offsets: np.ndarray  # CSR: each item's n-grams in text order
    seq_grams: np.ndarray
    exact: dict[int, int] = field(default_factory=dict)  # text hash -> item
    masked: dict[int, int] = field(default_factory=dict)
    texts: list[str] | None = None  # only when built from files in this process
    vectors: np.ndarray | None = None  # unit embeddings of item parts (semantic method)
    vector_items: np.ndarray | None = None  # the item of each vector (an item's are adjacent)
    vector_model: str | None = None
    answers: np.ndarray | None = None  # str per item, "" where none (or private)
    _filter: np.ndarray | None = None
    _answer_counts: dict[str, int] | None = None
    _answer_keys: tuple[tuple[set[str], set[Fraction]], bool] | None = None
    _tables: dict[bool, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    _sequence_positions: np.ndarray | None = None

    @classmethod
    def build(cls, items: list[Item], n: int = 8, tokens: Tokens = "words") -> BenchmarkIndex:
        names = sorted({item.benchmark for item in items})
        texts = [item.text for item in items]
        words = tokenize(texts)
        rows, hashes = ngrams(words if tokens == "words" else tokenize(texts, tokens), n)
        seq_offsets = np.searchsorted(rows, np.arange(len(items) + 1)).astype(np.int64)
        pair_grams, pair_items = distinct_pairs(hashes, rows)
        grams, first = np.unique(pair_grams, return_index=True)
        offsets = np.append(first, len(pair_grams)).astype(np.int64)
        counts = np.bincount(pair_items, minlength=len(items)).astype(np.int32)
        index = cls(
            n,
            tokens,
            np.array([names.index(i.benchmark) for i in items], np.int16),
            np.array([i.item_id for i in items], dtype=str),
            names,
            grams,
            offsets,
            pair_items.astype(np.int32),
            counts,
            seq_offsets,
            hashes,
            texts=texts,
            answers=np.array([(i.answer or "") for i in items], dtype=str),
        )
        for position, key in enumerate(sequence_hashes(words).tolist()):
            index.exact.setdefault(key, position)
        for position, key in enumerate(sequence_hashes(words, masked=True).tolist()):
            index.masked.setdefault(key, position)
        return index

    def private(self, item: int) -> bool:
        return is_private(self.bench_names[self.item_bench[item]])

    def excerpt(self, item: int, limit: int = 300) -> str | None:
        """The item's text for audit, unless it must never be written or is not here."""
        if self.texts is None or self.private(item):
            return None
        text = self.texts[item]
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def answer(self, item: int) -> str | None:
        """The item's final answer, where its benchmark gives one."""
        if self.answers is None or item < 0 or self.private(item):
            return None
        return str(self.answers[item]) or None

    def save(self, path: Path) -> None:
        """Write an index pack: hashes and ids only, no benchmark text."""
        meta = {
            "version": PACK_VERSION,
            "n": self.n,
            "tokens": self.tokens,
            "benchmarks": self.bench_names,
            "vector_model": self.vector_model,
        }
        vectors = self.vectors if self.vectors is not None else np.empty((0, 0), np.float32)
        exact, masked = key_pairs(self.exact), key_pairs(self.masked)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            np.savez_compressed(
                handle,
                meta=np.array(json.dumps(meta)),
                item_bench=self.item_bench,
                item_ids=self.item_ids,
                grams=self.grams,
                post_offsets=self.post_offsets,
                post_items=self.post_items,
                item_counts=self.item_counts,
                seq_offsets=self.seq_offsets,
                seq_grams=self.seq_grams,
                exact=exact,
                masked=masked,
                vectors=vectors.astype(np.float16),
                vector_items=self.vector_owners(),
                answers=self.answers if self.answers is not None else np.array([], dtype=str),
            )

    @classmethod
    def load(cls, path: Path) -> BenchmarkIndex:
        try:
            data = np.load(path, allow_pickle=False)
            meta = json.loads(str(data["meta"]))
        except (OSError, ValueError, KeyError) as exc:
            raise SourceError(f"{path}: not a curate index pack ({exc})") from None
        if meta.get("version") != PACK_VERSION:
            raise SourceError(
                f"{path}: index pack version {meta.get('version')}, "
                f"this curate reads {PACK_VERSION}; rebuild it"
            )
        return cls(
            meta["n"],
            meta["tokens"],
            data["item_bench"],
            data["item_ids"],
            meta["benchmarks"],
            data["grams"],
            data["post_offsets"],
            data["post_items"],
            data["item_counts"],
            data["seq_offsets"],
            data["seq_grams"],
            exact={int(k): int(v) for k, v in data["exact"]},
            masked={int(k): int(v) for k, v in data["masked"]},
            vectors=data["vectors"].astype(np.float32) if data["vectors"].size else None,
            vector_items=data["vector_items"] if "vector_items" in data.files else None,
            vector_model=meta.get("vector_model"),
            answers=_answers(data, len(data["item_ids"])),
        )

    def vector_owners(self) -> np.ndarray:
        """The item of each vector (one vector per item in packs that predate parts)."""
        if self.vector_items is not None:
            return self.vector_items
        rows = 0 if self.vectors is None else len(self.vectors)
        return np.arange(rows, dtype=np.int32)

    def answer_counts(self) -> dict[str, int]:
        """Items per answer spelling (an answer many items share says little)."""
        if self._answer_counts is None:
            from curate.answers import spelling

            found = [spelling(str(a)) for a in (self.answers if self.answers is not None else [])]
            self._answer_counts = {}
            for text in found:
                if text:
                    self._answer_counts[text] = self._answer_counts.get(text, 0) + 1
        return self._answer_counts

    def answer_keys(self) -> tuple[set[str], set[Fraction]] | None:
        """Every item's answer as spelt and as an exact number; None when some item has no
        answer to compare (a private benchmark, or one that gives none)."""
        if self._answer_keys is None:
            from curate.answers import number, spelling

            answers = [self.answer(item) for item in range(len(self.item_ids))]
            if not answers or any(a is None for a in answers):
                self._answer_keys = (set(), set()), False
            else:
                spelt = {spelling(str(a)) for a in answers}
                numbers = {n for a in answers if (n := number(str(a))) is not None}
                self._answer_keys = (spelt, numbers), True
        keys, complete = self._answer_keys
        return keys if complete else None

    def filter(self) -> np.ndarray:
        """A bitmap over the low bits of the index's n-grams (built once)."""
        if self._filter is None:
            self._filter = np.zeros(int(FILTER_MASK) + 1, bool)
            self._filter[self.grams & FILTER_MASK] = True
        return self._filter

    def lookup(self, keys: np.ndarray, masked: bool = False) -> np.ndarray:
        """The item whose whole normalised text hashes to each key (numbers masked if asked),
        else -1; key 0 (a text with no words) matches nothing."""
        if masked not in self._tables:
            pairs = key_pairs(self.masked if masked else self.exact)
            self._tables[masked] = (pairs[:, 0], pairs[:, 1].astype(np.int64))
        table, items = self._tables[masked]
        if len(table) == 0:
            return np.full(len(keys), -1, np.int64)
        position = np.minimum(np.searchsorted(table, keys), len(table) - 1)
        found = (table[position] == keys) & (keys != 0)
        return np.where(found, items[position], -1)

    def informative_counts(self, max_item_share: int | None) -> np.ndarray:
        """Distinct n-grams per item, leaving out stock ones (found in too many items)."""
        if max_item_share is None:
            return self.item_counts
        spread = np.diff(self.post_offsets)
        keep = np.repeat(spread <= max_item_share, spread)
        counts = np.bincount(self.post_items[keep], minlength=len(self.item_counts))
        return np.maximum(counts, 1)

    def item_label(self, item: int) -> tuple[str, str]:
        return self.bench_names[self.item_bench[item]], str(self.item_ids[item])

    def hits(self, rows: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, position in grams) of every text n-gram found in the index."""
        maybe = self.filter()[hashes & FILTER_MASK]  # cheap rejection of most n-grams
        rows, hashes = rows[maybe], hashes[maybe]
        position = np.searchsorted(self.grams, hashes)
        position[position == len(self.grams)] = 0
        hit = self.grams[position] == hashes
        return rows[hit], position[hit]

    def first_hits(self, rows: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, an item it shares an n-gram with) for each text with any shared n-gram."""
        rows, position = self.hits(rows, hashes)
        unique, first = np.unique(rows, return_index=True)
        return unique, self.post_items[self.post_offsets[position[first]]]

    def overlaps(
        self, rows: np.ndarray, positions: np.ndarray, max_item_share: int | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, item, shared distinct n-grams) for every text sharing an n-gram with an item,
        given the texts' hits as (row, position in grams) from hits().

        N-grams found in more than max_item_share items are stock phrasing and not counted.
        """
        if max_item_share is not None:
            spread = self.post_offsets[positions + 1] - self.post_offsets[positions]
            rows, positions = rows[spread <= max_item_share], positions[spread <= max_item_share]
        if len(rows) == 0:
            empty = np.empty(0, np.int64)
            return empty, empty, empty
        pairs = np.unique(rows * len(self.grams) + positions)  # distinct (row, n-gram)
        pair_rows, pair_grams = pairs // len(self.grams), pairs % len(self.grams)
        starts = self.post_offsets[pair_grams]
        segment, flat = expand(starts, self.post_offsets[pair_grams + 1] - starts)
        key = pair_rows[segment] * len(self.item_counts) + self.post_items[flat]
        unique, shared = np.unique(key, return_counts=True)
        return unique // len(self.item_counts), unique % len(self.item_counts), shared

    def longest_runs(
        self, hit_rows: np.ndarray, hit_positions: np.ndarray, rows: np.ndarray, items: np.ndarray
    ) -> np.ndarray:
        """For each (row, item): the longest stretch of the item's n-grams, in order, all
        found in that row's text, in words (0 when none is)."""
        if len(rows) == 0:
            return np.zeros(0, np.int64)
        found = np.unique(hit_rows * len(self.grams) + hit_positions)
        starts = self.seq_offsets[items]
        lengths = self.seq_offsets[items + 1] - starts
        segment, flat = expand(starts, lengths)
        keys = rows[segment] * len(self.grams) + self.sequence_positions()[flat]
        present = np.isin(keys, found)
        index = np.arange(len(keys))
        barrier = np.where(present, 0, index + 1)  # a run starts after a missing n-gram ...
        first = np.cumsum(lengths) - lengths
        nonempty = first[lengths > 0]
        barrier[nonempty] = np.maximum(barrier[nonempty], nonempty)  # ... or at its item's start
        run = np.where(present, index - np.maximum.accumulate(barrier) + 1, 0)
        best = np.zeros(len(rows), np.int64)
        best[lengths > 0] = np.maximum.reduceat(run, nonempty) if len(run) else 0
        return np.where(best > 0, best + self.n - 1, 0)

    def sequence_positions(self) -> np.ndarray:
        """Each item n-gram's position in grams, in item text order (built once)."""
        if self._sequence_positions is None:
            self._sequence_positions = np.searchsorted(self.grams, self.seq_grams)
        return self._sequence_positions


def expand(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten CSR segments: (segment number, index) of every element of every segment."""
    segment = np.repeat(np.arange(len(starts)), lengths)
    offsets = np.cumsum(lengths) - lengths
    return segment, np.arange(int(lengths.sum())) - offsets[segment] + starts[segment]


def key_pairs(mapping: dict[int, int]) -> np.ndarray:
    """(hash, item) rows sorted by hash."""
    return np.array(sorted(mapping.items()), np.uint64).reshape(-1, 2)


def distinct_pairs(hashes: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (hash, row) pairs, sorted by hash then row."""
    order = np.lexsort((rows, hashes))
    hashes, rows = hashes[order], rows[order]
    fresh = np.ones(len(order), bool)
    fresh[1:] = (hashes[1:] != hashes[:-1]) | (rows[1:] != rows[:-1])
    return hashes[fresh], rows[fresh]


def _answers(data: Any, items: int) -> np.ndarray | None:
    """The pack's answers; None for a pack written before they were kept."""
    if "answers" not in data.files or len(data["answers"]) != items:
        return None
    return np.asarray(data["answers"])
