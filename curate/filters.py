"""Trace quality filters: each names why a trace fails; the row stays in the ledger.

A trace failing several filters is flagged with every reason (`flags`) and dropped with
the first one, so the funnel counts each trace once and the ledger shows all problems.
"""

from __future__ import annotations

import itertools
import multiprocessing
import operator
import os
import re
import warnings
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import cache
from typing import Any

import polars as pl
from pydantic import Field

from curate import registry
from curate.answers import REASONING_TAGS
from curate.cores import available_cores
from curate.errors import CurateWarning, RecipeError
from curate.lifetime import become_helper
from curate.stage import Config, Stage, StageContext
from curate.text import LETTER, Script, foreign_letter, word_ngrams
from curate.verify.base import Verifier
from curate.verify.dispatch import verifier_for


class LanguageFilter(Config):
    """Drop traces that drift into other scripts (e.g. Chinese runs in an English trace)."""

    allowed: list[Script] = Field(
        default_factory=lambda: list[Script](["latin", "greek"]),
        description="Scripts a trace may use (greek: math symbols).",
    )
    max_foreign_share: float = Field(
        0.01, ge=0, le=1, description="Largest share of letters from other scripts."
    )


class RepetitionFilter(Config):
    """Drop traces that loop: repeated word n-grams or the same paragraph over and over."""

    ngram: int = Field(10, ge=2, description="Word n-gram size for the repeated share.")
    max_repeated_share: float = Field(
        0.5, gt=0, le=1, description="Largest share of word n-grams that are repeats."
    )
    max_paragraph_repeats: int = Field(5, ge=1, description="Most times one paragraph may appear.")
    max_sentence_run: int = Field(
        8,
        ge=2,
        description="Most times one sentence (3 words or more) may follow itself in a row: a "
        "loop at the end of long, varied reasoning repeats few of its n-grams overall.",
    )


class LengthFilter(Config):
    """Bounds on reasoning + completion, in characters or in tokens of the teacher's tokenizer."""

    min_chars: int | None = Field(None, ge=0, description="Fewest characters.")
    max_chars: int | None = Field(None, ge=1, description="Most characters.")
    min_tokens: int | None = Field(None, ge=0, description="Fewest tokens.")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens.")
    tokenizer: str | None = Field(
        None, description="Tokenizer for token bounds: a local folder or a Hub model id."
    )


class FiltersConfig(Config):
    """Which quality filters run; set one to false or null to turn it off."""

    truncated: bool = Field(
        True, description="Drop traces cut off at max_tokens or with unclosed think tags."
    )
    answer_format: bool = Field(
        True, description="Drop traces without a well-formed final answer for their domain."
    )
    empty_reasoning: bool = Field(True, description="Drop traces with no chain of thought.")
    language: LanguageFilter | None = Field(
        default_factory=LanguageFilter, description="Mixed-language check."
    )
    repetition: RepetitionFilter | None = Field(
        default_factory=RepetitionFilter, description="Looping check."
    )
    length: LengthFilter | None = Field(None, description="Length bounds.")


def text_of(row: dict[str, Any]) -> str:
    return f"{row.get('reasoning') or ''}\n\n{row.get('completion') or ''}"


def truncated(row: dict[str, Any]) -> str | None:
    if row.get("finish_reason") == "length":
        return "truncated"
    text = text_of(row)
    if any(tag in text for pair in REASONING_TAGS for tag in pair):
        return "unclosed_think"
    return None


Readers = dict[str, type[Verifier] | None]  # domain -> the verifier that reads its answers


def answer_reader(domain: str) -> type[Verifier] | None:
    """The verifier that reads a domain's answers (verify's choice under kind: auto)."""
    name = verifier_for(domain)
    return None if name is None else registry.verifiers.get(name)


class AnswerForm:
    """Whether a completion holds an answer of the form its domain's verifier reads (the one
    verify picks under kind: auto), as that verifier says; where verify ran, by what it
    found, so the filter and the verifier agree on what the answer is. Each domain's
    verifier is looked up once, in the stage's process (a worker process is handed the
    classes, and does not load every registered module to find them)."""

    def __init__(self, readers: Readers | None = None) -> None:
        self.readers = dict(readers or {})

    def __call__(self, row: dict[str, Any]) -> str | None:
        completion = row.get("completion") or ""
        if not completion.strip():
            return "no_final_answer"
        domain = row.get("domain") or "math"
        if domain not in self.readers:
            self.readers[domain] = answer_reader(domain)
        reader = self.readers[domain]
        if reader is None:
            return None  # no verifier reads this domain: no form to hold it to
        judged = (row.get("verdict_reason") or "") if row.get("verdict") is not None else None
        return reader.missing_answer(completion, judged)


def empty_reasoning(row: dict[str, Any]) -> str | None:
    return None if (row.get("reasoning") or "").strip() else "empty_reasoning"


def repetition(config: RepetitionFilter, row: dict[str, Any]) -> str | None:
    text = text_of(row)
    paragraphs = Counter(p.strip() for p in re.split(r"\n\s*\n", text) if p.strip())
    if paragraphs and max(paragraphs.values()) > config.max_paragraph_repeats:
        return "repetition"
    words = text.split()
    if longest_sentence_run(text, words) > config.max_sentence_run:
        return "repetition"
    if repeats_over(words, config.ngram, config.max_repeated_share):
        return "repetition"
    return None


def repeats_over(words: list[str], n: int, limit: float) -> bool:
    """Whether more than `limit` of the words' n-grams repeat an earlier one.

    Most traces are settled by a cheaper count that gives the same answer: a text has at
    least as many distinct (k+1)-grams as distinct k-grams less one (each k-gram but the
    last starts a (k+1)-gram), so the distinct word pairs less n-2 are at most the distinct
    n-grams; when that many already keep the share of repeats at or under the limit, the
    n-grams need not be made (pairs settle nearly every trace; single words, seldom)."""
    total = len(words) - n + 1
    if total <= 0:
        return False
    enough = total * (1 - limit)  # distinct n-grams that keep the share at or under limit
    if n > 2 and len(set(itertools.pairwise(words))) - (n - 2) >= enough:
        return False
    return 1 - len(set(word_ngrams(words, n))) / total > limit


SENTENCE_END = re.compile(r"([.!?]) ")  # kept by the capture (a lookbehind scans slower)


def longest_sentence_run(text: str, words: list[str] | None = None) -> int:
    """The most times one sentence of 3 words or more follows itself in a row (sentences
    end at . ! or ? and whitespace; compared with their whitespace collapsed, lowercased).

    The whole text is collapsed and lowercased once (its `words`, when the caller has
    split it), then cut at sentence ends: the same sentences as cutting first."""
    flat = " ".join(text.split() if words is None else words).lower()
    parts = SENTENCE_END.split(flat)  # sentence, its end, sentence, ..., the last sentence
    keys = [body + end for body, end in zip(parts[0::2], parts[1::2], strict=False)]
    keys.append(parts[-1])
    if not any(map(operator.eq, keys, keys[1:])):  # no sentence follows itself
        return 1
    longest, run, previous = 0, 0, None
    for key in keys:
        if key and key == previous and key.count(" ") >= 2:
            run += 1
        else:
            run = 1
        previous = key
        longest = max(longest, run)
    return longest


def foreign_shares(frame: pl.DataFrame, config: LanguageFilter) -> list[float]:
    """Share of letters outside the allowed scripts, per row. Letters are counted only in
    rows that have a foreign one: counting every letter of every trace costs ten times
    more than finding the foreign ones."""
    texts = [pl.col(name).fill_null("") for name in ("reasoning", "completion")]
    foreign = frame.select(
        pl.sum_horizontal(t.str.count_matches(foreign_letter(config.allowed)) for t in texts)
    )
    counts = foreign.to_series()
    shares = [0.0] * frame.height
    hit = counts > 0
    if hit.any():
        letters = frame.filter(hit).select(
            pl.sum_horizontal(t.str.count_matches(LETTER) for t in texts)
        )
        places = hit.arg_true().to_list()
        for place, found, total in zip(
            places, counts.filter(hit), letters.to_series(), strict=True
        ):
            shares[place] = found / total
    return shares


@cache
def load_tokenizer(name: str) -> Any:
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise RecipeError(
            "token length bounds need transformers: pip install transformers"
        ) from None
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise RecipeError(f"filters.length.tokenizer: cannot load {name!r} ({exc})") from None


# what row checks read (the verdict where verify ran: the answer it found)
ROW_FIELDS = ["reasoning", "completion", "finish_reason", "domain", "verdict", "verdict_reason"]
PARALLEL_ROWS = 2_000  # a batch this large is spread over worker processes


def row_checks(config: FiltersConfig, readers: Readers | None = None) -> list[Any]:
    checks: list[Any] = []
    if config.truncated:
        checks.append(truncated)
    if config.answer_format:
        checks.append(AnswerForm(readers))
    if config.empty_reasoning:
        checks.append(empty_reasoning)
    if config.repetition is not None:
        repeat = config.repetition
        checks.append(lambda row: repetition(repeat, row))
    return checks


def row_flags(
    config: FiltersConfig, rows: list[dict[str, Any]], readers: Readers | None = None
) -> list[list[str]]:
    """Every row check's reason for each row (a worker process runs this on its part, with
    the answer readers of its rows' domains)."""
    checks = row_checks(config, readers)
    return [[reason for check in checks if (reason := check(row))] for row in rows]


@registry.stages.register()
class FilterStage(Stage):
    """Quality filters: truncation, answer format, empty reasoning, language mix, loops, length."""

    name = "filter"
    section = "filters"
    after = ("select",)
    config_class = FiltersConfig
    reads = ("reasoning", "completion", "finish_reason")
    writes = ("flags",)
    config: FiltersConfig

    def __init__(self, config: FiltersConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self._pool: ProcessPoolExecutor | None = None
        self._alone = False  # the worker processes failed once: check in this process

    def process(self, frame: pl.DataFrame) -> pl.DataFrame:
        fields = [name for name in ROW_FIELDS if name in frame.columns]
        rows = frame.select(fields).to_dicts() if frame.height else []
        pending = self._start_row_flags(rows)
        extra = self._column_checks(frame)  # here, while the worker processes check rows
        flags = self._row_flags(rows, pending)
        for index, reasons in enumerate(flags):
            reasons += [reason for column in extra if (reason := column[index])]
            self.counts.update(f"flag_{reason}" for reason in reasons)
        return frame.with_columns(
            pl.Series("flags", flags, pl.List(pl.String)),
            pl.Series("dropped", [r[0] if r else None for r in flags], pl.String),
        )

    def _start_row_flags(self, rows: list[dict[str, Any]]) -> list[Future[Any]]:
        """A large batch's row checks, started in worker processes (the checks are pure
        Python, so one process keeps one core busy); none for a small batch."""
        cores = available_cores()
        if cores < 2 or len(rows) < PARALLEL_ROWS or self._alone:
            return []
        if self._pool is None:
            context = multiprocessing.get_context("spawn")  # polars' threads and fork clash
            self._pool = ProcessPoolExecutor(
                cores, mp_context=context, initializer=become_helper, initargs=(os.getpid(),)
            )
        size = -(-len(rows) // cores)
        parts = [rows[start : start + size] for start in range(0, len(rows), size)]
        try:
            readers = {d: answer_reader(d) for d in {row.get("domain") or "math" for row in rows}}
            return [self._pool.submit(row_flags, self.config, part, readers) for part in parts]
        except BrokenProcessPool as exc:
            self._give_up_workers(exc)
            return []

    def _row_flags(self, rows: list[dict[str, Any]], pending: list[Future[Any]]) -> list[list[str]]:
        """The row checks' reasons per row: from the worker processes where they were
        started, else (or when the workers failed) checked in this process."""
        try:
            if pending:
                return [reasons for part in pending for reasons in part.result()]
        except BrokenProcessPool as exc:  # e.g. a script without a __main__ guard
            self._give_up_workers(exc)
        return row_flags(self.config, rows)

    def _give_up_workers(self, exc: BrokenProcessPool) -> None:
        warnings.warn(
            f"filter: worker processes failed ({exc}); checking in this process",
            CurateWarning,
            stacklevel=3,
        )
        self.close()
        self._alone = True

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def _column_checks(self, frame: pl.DataFrame) -> list[list[str | None]]:
        """Filters computed for the whole batch at once (vectorised or batched)."""
        columns: list[list[str | None]] = []
        if self.config.language is not None:
            shares = foreign_shares(frame, self.config.language)
            limit = self.config.language.max_foreign_share
            columns.append(["language_mix" if s > limit else None for s in shares])
        if self.config.length is not None:
            columns.append(self._length_reasons(frame, self.config.length))
        return columns

    def _length_reasons(self, frame: pl.DataFrame, bounds: LengthFilter) -> list[str | None]:
        texts = [
            text_of(row) for row in frame.select("reasoning", "completion").iter_rows(named=True)
        ]
        chars = [len(t) for t in texts]
        tokens: list[int | None] = [None] * len(texts)
        if bounds.min_tokens is not None or bounds.max_tokens is not None:
            if bounds.tokenizer is None:
                raise RecipeError("filters.length: token bounds need filters.length.tokenizer")
            encoded = load_tokenizer(bounds.tokenizer)(texts, add_special_tokens=False)
            tokens = [len(ids) for ids in encoded["input_ids"]]
        return [length_reason(bounds, c, t) for c, t in zip(chars, tokens, strict=True)]


def length_reason(bounds: LengthFilter, chars: int, tokens: int | None) -> str | None:
    if bounds.min_chars is not None and chars < bounds.min_chars:
        return "too_short"
    if bounds.max_chars is not None and chars > bounds.max_chars:
        return "too_long"
    if tokens is not None and bounds.min_tokens is not None and tokens < bounds.min_tokens:
        return "too_short"
    if tokens is not None and bounds.max_tokens is not None and tokens > bounds.max_tokens:
        return "too_long"
    return None
