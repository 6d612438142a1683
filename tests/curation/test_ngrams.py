"""Tokenising and hashing for decontamination: what a word is, and stable results."""

import random

import numpy as np
import pytest

from curate.decontam import stage as stage_module
from curate.decontam.benchmarks import Item
from curate.decontam.index import BenchmarkIndex
from curate.decontam.ngrams import WHITESPACE, ngrams, sequence_hashes, text_hashes, tokenize
from curate.decontam.stage import DecontamConfig, Decontaminator


def word_count(text: str, tokens="words") -> int:
    return len(tokenize([text], tokens).hashes)


def test_whitespace_is_what_python_str_split_uses():
    assert sorted(WHITESPACE) == sorted(c for c in map(chr, range(0x110000)) if c.isspace())
    text = "Let  x\u2003=\u00a03,\ty\u3000be\nreal.\x1c end"
    assert word_count(text, "whitespace") == len(text.lower().split())


def test_words_split_at_punctuation_and_math_symbols():
    same = ["Find m+n.", "find m + n", "FIND (m, n)", "find m\u00d7n", "find \u201cm\u201d\u2014n"]
    assert len(set(text_hashes(same))) == 1
    assert word_count("x^2 \u2264 3.5, so \u03c0r\u00b2 is the area") == 9  # pi-r-2 is one word
    assert word_count("") == 0 and word_count("  ,.; ") == 0


def test_numbers_are_kept_unless_masked():
    texts = ["She sold 48 clips in April", "She sold 24 clips in April"]
    assert len(set(text_hashes(texts))) == 2
    assert len(set(text_hashes(texts, mask_numbers=True))) == 1


def test_sequence_hashes_match_text_by_text_hashing():
    rng = random.Random(1)
    vocabulary = ["alpha", "beta", "gamma", "delta", "7", "x"]
    texts = [" ".join(rng.choices(vocabulary, k=rng.randint(0, 12))) for _ in range(300)]
    together = sequence_hashes(tokenize(texts)).tolist()
    alone = [int(sequence_hashes(tokenize([text]))[0]) for text in texts]
    assert together == alone
    assert all((h == 0) == (not text.strip()) for h, text in zip(together, texts, strict=True))


def test_ngrams_stay_within_one_text():
    rows, _ = ngrams(tokenize(["one two three", "four five six seven", "eight"]), 3)
    assert rows.tolist() == [0, 1, 1]


ITEMS = [
    Item("math500", f"b{i}", " ".join(f"w{i}_{j}" for j in range(40)) + " find m plus n")
    for i in range(30)
]


def runs_by_hand(index: BenchmarkIndex, text: str, item: int) -> int:
    text_grams = set(ngrams(tokenize([text]), index.n)[1].tolist())
    sequence = index.seq_grams[index.seq_offsets[item] : index.seq_offsets[item + 1]]
    best = current = 0
    for gram in sequence.tolist():
        current = current + 1 if gram in text_grams else 0
        best = max(best, current)
    return best + index.n - 1 if best else 0


def test_longest_runs_and_threads_agree_with_a_plain_computation(monkeypatch):
    rng = random.Random(7)
    texts = []
    for _ in range(600):
        words = ITEMS[rng.randrange(len(ITEMS))].text.split()
        start, stop = sorted(rng.sample(range(len(words)), 2))
        piece = words[start:stop]
        if piece and rng.random() < 0.5:
            piece[rng.randrange(len(piece))] = "edited"
        texts.append(" ".join(["noise"] * rng.randint(0, 5) + piece))
    config = DecontamConfig(benchmarks=["math500"], ngram={"borderline": 0.05})
    index = BenchmarkIndex.build(ITEMS)
    alone = Decontaminator(config, index, threads=1).matches(texts)
    monkeypatch.setattr(stage_module, "MIN_CHUNK_ROWS", 10)
    monkeypatch.setattr(stage_module, "MAX_CHUNK_ROWS", 50)
    threaded = Decontaminator(config, index, threads=3).matches(texts)
    assert threaded == alone
    found = [(t, m) for t, m in zip(texts, alone, strict=True) if m is not None]
    assert len(found) > 300
    for text, match in found:
        assert match.run == runs_by_hand(index, text, match.item_index), text


@pytest.mark.parametrize("tokens", ["words", "whitespace"])
def test_hashes_are_stable_across_batches(tokens):
    texts = [f"Problem {i}: compute {i} + {i * 3}." for i in range(50)]
    whole = tokenize(texts, tokens)
    halves = [tokenize(texts[:20], tokens), tokenize(texts[20:], tokens)]
    assert np.array_equal(whole.hashes, np.concatenate([h.hashes for h in halves]))
