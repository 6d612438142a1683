"""Duplicate removal: exact (normalised text) and near-duplicate (MinHash LSH) across problems
and sources, and duplicate traces within a problem.

Numbers are kept when normalising: math problems that differ only in their numbers are
different problems (datatrove's default normalisation maps every number to 0).
"""

from __future__ import annotations

import re
from typing import ClassVar

import numpy as np
import polars as pl
from pydantic import Field

from curate import registry
from curate.decontam.ngrams import ngram_hashes, text_hashes
from curate.stage import Config, Stage, Unit

MERSENNE = np.uint64((1 << 61) - 1)


class NearDuplicates(Config):
    """MinHash LSH over word shingles."""

    threshold: float = Field(0.8, gt=0, le=1, description="Estimated Jaccard that merges two.")
    shingle: int = Field(5, ge=1, description="Words per shingle.")
    num_perm: int = Field(128, ge=8, description="MinHash permutations.")
    bands: int = Field(16, ge=1, description="LSH bands (num_perm must divide evenly).")
    seed: int = Field(0, description="Seed of the hash permutations.")


class DedupConfig(Config):
    """Problem-level duplicate removal."""

    exact: bool = Field(True, description="Drop problems whose normalised text repeats.")
    near: NearDuplicates | None = Field(
        default_factory=NearDuplicates, description="Near-duplicate removal (null: off)."
    )
    answers: bool = Field(
        True,
        description="Near-duplicates whose references are both there and differ (by "
        "spelling, number or math-verify) are two problems and stay apart.",
    )


def signatures(texts: list[str], near: NearDuplicates, chunk: int = 512) -> np.ndarray:
    """MinHash signatures, one row per text (uint32, num_perm columns), made `chunk` texts
    at a time (small chunks stay in cache: 512 is about twice as fast as 4096 here)."""
    rng = np.random.default_rng(near.seed)
    a = rng.integers(1, 1 << 61, near.num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 1 << 61, near.num_perm, dtype=np.uint64)
    out = np.full((len(texts), near.num_perm), np.iinfo(np.uint32).max, np.uint32)
    for start in range(0, len(texts), chunk):
        part = texts[start : start + chunk]
        rows, shingles = ngram_hashes(part, near.shingle)
        short = sorted(set(range(len(part))) - set(np.unique(rows).tolist()))
        if short:  # texts shorter than one shingle: the whole text is the shingle
            rows = np.concatenate([rows, np.array(short, np.int64)])
            shingles = np.concatenate(
                [shingles, np.array(text_hashes([part[i] for i in short]), np.uint64)]
            )
            order = np.argsort(rows, kind="stable")
            rows, shingles = rows[order], shingles[order]
        firsts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        for k in range(0, near.num_perm, 32):
            values = (shingles[:, None] * a[None, k : k + 32] + b[None, k : k + 32]) >> np.uint64(
                32
            )
            mins = np.minimum.reduceat(values.astype(np.uint32), firsts, axis=0)
            out[start + rows[firsts], k : k + 32] = mins
    return out


class UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = np.arange(size)

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the earlier row stays the root


def near_duplicate_pairs(
    sig: np.ndarray, near: NearDuplicates, numbers: list[str]
) -> list[tuple[int, int]]:
    """Pairs (earlier, later) whose signatures collide in a band and agree >= threshold, and
    whose numbers are the same (problems differing only in numbers are different problems)."""
    per_band = near.num_perm // near.bands
    pairs: set[tuple[int, int]] = set()
    for band in range(near.bands):
        block = sig[:, band * per_band : (band + 1) * per_band].astype(np.uint64)
        key = np.zeros(len(sig), np.uint64)
        for column in range(per_band):
            key = key * np.uint64(0x100000001B3) + block[:, column]
        frame = pl.DataFrame({"key": key, "row": np.arange(len(sig))})
        buckets = (
            frame.group_by("key").agg(pl.col("row").sort()).filter(pl.col("row").list.len() > 1)
        )
        for members in buckets["row"].to_list():
            first = members[0]
            for other in members[1:]:
                same_numbers = numbers[first] == numbers[other]
                if same_numbers and np.mean(sig[first] == sig[other]) >= near.threshold:
                    pairs.add((first, other))
    return sorted(pairs)


NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


TEXT_HASH, SIGNATURE, NUMBERS = "_text_hash", "_signature", "_numbers"
KEY_COLUMNS = [TEXT_HASH, SIGNATURE, NUMBERS]


def number_keys(texts: list[str]) -> list[str]:
    """The numbers of each text, in order: near-duplicates must agree on them all."""
    return ["\x1f".join(NUMBER.findall(text)) for text in texts]


def problem_keys(frame: pl.DataFrame, config: DedupConfig) -> pl.DataFrame:
    """What dedup compares of each problem, small beside its text: a hash of its normalised
    words, its numbers and its MinHash signature (a few hundred bytes a problem, so a
    cluster's tasks can make them and one process compare them all)."""
    texts = frame["problem"].fill_null("").to_list()
    keys = [
        pl.Series(TEXT_HASH, text_hashes(texts), pl.UInt64),
        pl.Series(NUMBERS, number_keys(texts), pl.String),
    ]
    if config.near is not None:
        # the low 16 bits of each MinHash value (b-bit minwise hashing): two different
        # values agree by chance once in 65,536, so the similarity estimate moves by less
        # than 0.0001, and a signature takes 256 bytes, not 512
        shape = pl.Array(pl.UInt16, config.near.num_perm)
        short = signatures(texts, config.near).astype(np.uint16)
        keys.append(pl.Series(SIGNATURE, short, shape))
    return frame.with_columns(keys)


def agreeing(pairs: list[tuple[int, int]], references: list[str | None]) -> list[tuple[int, int]]:
    """The pairs whose answers do not contradict each other (a pair where either lacks a
    reference, or where nothing can tell, stays a pair)."""
    from curate.decontam.answers import same_answers

    both = [k for k, (a, b) in enumerate(pairs) if references[a] and references[b]]
    same = same_answers(
        [(str(references[pairs[k][0]]), str(references[pairs[k][1]])) for k in both]
    )
    apart = {k for k, verdict in zip(both, same, strict=True) if verdict is False}
    return [pair for k, pair in enumerate(pairs) if k not in apart]


def merge_agreeing(
    groups: UnionFind, pairs: list[tuple[int, int]], references: list[str | None]
) -> None:
    """Union the pairs, except where the two groups already hold answers that differ (a
    row without a reference must not join two problems with different answers)."""
    from curate.answers import quick_same

    answer: dict[int, str] = {}
    for first, other in pairs:
        a, b = groups.find(first), groups.find(other)
        ours = answer.get(a) or references[a] or ""
        theirs = answer.get(b) or references[b] or ""
        if a == b or (ours and theirs and quick_same(ours, theirs) is False):
            continue
        groups.union(a, b)
        answer[groups.find(a)] = ours or theirs


@registry.stages.register()
class DedupStage(Stage):
    """Exact and near-duplicate problems (numbers kept); the best copy stays, others get dup_of."""

    name = "dedup"
    section = "dedup"
    config_class = DedupConfig
    reads = ("problem_id", "problem")  # reference too, where the input has one
    writes = ("dup_of",)
    unit: ClassVar[Unit] = "problems"  # across the whole input, once per problem
    config: DedupConfig

    def keys(self, problems: pl.DataFrame) -> pl.DataFrame:
        return problem_keys(problems, self.config).drop("problem")

    def process(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Duplicates among distinct problems: their keys (the executor's `keys` step, made a
        shard at a time; curate/units.py), compared without their text, or, called
        directly, their rows."""
        keys = frame if TEXT_HASH in frame.columns else problem_keys(frame, self.config)
        hashes = keys[TEXT_HASH].to_list()
        groups = UnionFind(frame.height)
        if self.config.exact:
            seen: dict[int, int] = {}
            for row, key in enumerate(hashes):
                groups.union(seen.setdefault(key, row), row)
        near = self.config.near
        if near is not None and frame.height > 1:
            numbers = keys[NUMBERS].to_list()
            pairs = near_duplicate_pairs(keys[SIGNATURE].to_numpy(), near, numbers)
            if self.config.answers and "reference" in frame.columns:
                references = frame["reference"].cast(pl.String).to_list()
                merge_agreeing(groups, agreeing(pairs, references), references)
            else:
                for first, other in pairs:
                    groups.union(first, other)
        return self._mark(frame.drop(KEY_COLUMNS, strict=False), groups, hashes)

    def _mark(self, frame: pl.DataFrame, groups: UnionFind, hashes: list[int]) -> pl.DataFrame:
        """Keep one row per group: one with a reference if any, else the earliest."""
        roots = [groups.find(row) for row in range(frame.height)]
        has_reference = frame["reference"].is_not_null().to_list()
        keeper: dict[int, int] = {}
        for row, root in enumerate(roots):
            best = keeper.get(root)
            if best is None or (has_reference[row] and not has_reference[best]):
                keeper[root] = row
        ids = frame["problem_id"].to_list()
        kept = [keeper[root] for root in roots]
        dup_of = [None if keep == row else ids[keep] for row, keep in enumerate(kept)]
        dropped = [
            None
            if keep == row
            else "exact_duplicate"
            if hashes[row] == hashes[keep]
            else "near_duplicate"
            for row, keep in enumerate(kept)
        ]
        return frame.with_columns(
            pl.Series("dup_of", dup_of, pl.String), pl.Series("dropped", dropped, pl.String)
        )


# runs of spacing other than one plain space: the same result as r"\s+" -> " ", with a
# fifth of the work on text that is mostly single spaces
SPACING = r"\s{2,}|[^\S ]"


class TraceDedupConfig(Config):
    """Duplicate traces within one problem."""

    normalize: bool = Field(True, description="Compare case- and spacing-normalised text.")


@registry.stages.register()
class TraceDedupStage(Stage):
    """Drop traces that repeat another trace of the same problem (dup_of: problem_id#sample)."""

    name = "trace_dedup"
    section = "trace_dedup"
    after = ("verify", "review")  # duplicates among judged traces
    unit: ClassVar[Unit] = "problem"  # a problem's rows together
    config_class = TraceDedupConfig
    reads = ("problem_id", "sample_idx", "reasoning", "completion")
    writes = ("dup_of",)
    config: TraceDedupConfig

    def text(self) -> pl.Expr:
        """What two traces of a problem must share to be one: reasoning and completion,
        each in lower case with its spacing collapsed, unless told otherwise."""
        parts = [pl.col(name).fill_null("") for name in ("reasoning", "completion")]
        if self.config.normalize:
            parts = [
                part.str.to_lowercase().str.replace_all(SPACING, " ").str.strip_chars()
                for part in parts
            ]
        return pl.concat_str(parts[0], pl.lit("\x1f"), parts[1])

    def process(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Each trace is marked with the first of its problem's traces with the same text
        (in row order), unless it is that first one; compared whole, not by hash."""
        own = pl.format("{}#{}", pl.col("problem_id"), pl.col("sample_idx"))
        first = own.first().over("problem_id", self.text())
        dup_of = pl.when(first != own).then(first).otherwise(None)
        return frame.with_columns(dup_of.alias("dup_of")).with_columns(
            pl.when(pl.col("dup_of").is_not_null())
            .then(pl.lit("duplicate_trace"))
            .otherwise(None)
            .alias("dropped")
        )
