"""The decontaminate stage: flag problems (and optionally traces) that copy benchmark items.

Methods, combinable:
- n-gram overlap, scored: the share of a benchmark item's word n-grams found in the text
  (n-grams shared by many items are stock phrasing and do not count), and the longest run;
  rule "any" reproduces the common "any shared 8-gram" rule instead;
- exact match after normalisation, and the same with every number masked.
A score at or above the threshold drops the row as contaminated; a band below it marks the
row borderline, for review.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field, SerializeAsAny, field_validator

from curate import records, registry
from curate.answers import number, spelling, strength
from curate.cores import available_cores
from curate.decontam.answers import SameAnswers
from curate.decontam.benchmarks import BenchmarkUnavailable, load_items
from curate.decontam.index import BenchmarkIndex, Match
from curate.decontam.judge import CACHE_FILE as JUDGE_CACHE
from curate.decontam.judge import Judge, Pair, judge_config
from curate.decontam.ngrams import Tokens, Words, ngrams, sequence_hashes, tokenize
from curate.decontam.semantic import SemanticMethod, embed, embed_items, nearest, unavailable
from curate.errors import CurateWarning, RecipeError
from curate.generate.base import TeacherConfig
from curate.generate.cache import SampleCache
from curate.records import stable_hash
from curate.stage import Config, Stage, StageContext

Field_ = Literal["problem", "reasoning", "completion"]
DEFAULT_BENCHMARKS = ["math500", "aime24", "aime25", "amc23", "gsm8k", "minerva", "olympiadbench"]
# the ledger's contamination column, in polars' terms (one definition: records.py)
CONTAMINATION = records.polars_type(records.CONTAMINATION)


MIN_CHUNK_ROWS = 2_000  # fewer texts are checked in the calling thread
MAX_CHUNK_ROWS = 8_000  # texts per thread task
RANK = {"clean": 0, "borderline": 1, "contaminated": 2}


class NgramMethod(Config):
    """Word n-gram overlap with benchmark items."""

    n: int = Field(8, ge=3, description="Words per n-gram.")
    tokens: Tokens = Field(
        "words",
        description="words: split at whitespace and punctuation; whitespace: at whitespace only.",
    )
    rule: Literal["scored", "any"] = Field(
        "scored", description="scored: share of an item's n-grams found; any: one shared n-gram."
    )
    threshold: float = Field(0.5, gt=0, le=1, description="Score that marks contamination.")
    borderline: float = Field(0.2, gt=0, le=1, description="Score that marks a row for review.")
    max_item_share: int | None = Field(
        3,
        ge=1,
        description="N-grams found in more benchmark items than this are stock "
        "phrasing and ignored (scored rule).",
    )


class DecontamConfig(Config):
    """Which benchmarks to check against, how, and in which columns."""

    def method(self) -> SemanticMethod | None:
        """The semantic method, once `auto` is resolved (unresolved: off)."""
        return self.semantic if isinstance(self.semantic, SemanticMethod) else None

    def resolved(self, index: str | None = None) -> tuple[DecontamConfig, str | None]:
        """This config with `auto` replaced by the semantic method or by off, and why off."""
        if self.semantic != "auto":
            return self, None
        method = SemanticMethod()
        reason = unavailable(method.model)
        if reason is None and index is not None:
            vector_model = BenchmarkIndex.load(Path(index)).vector_model
            if vector_model != method.model:
                reason = f"the index pack {index} has no {method.model} vectors"
        return self.model_copy(update={"semantic": None if reason else method}), reason

    benchmarks: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BENCHMARKS), description="Benchmark names."
    )
    files: dict[str, str] = Field(
        default_factory=dict, description="Local copies: benchmark name -> file path."
    )
    index: str | None = Field(
        None, description="An index pack from `curate decontam build` (replaces loading)."
    )
    fields: list[Field_] = Field(
        default_factory=lambda: list[Field_](["problem"]), description="Columns checked."
    )
    ngram: NgramMethod | None = Field(default_factory=NgramMethod, description="N-gram method.")
    semantic: SemanticMethod | Literal["auto"] | None = Field(
        "auto",
        description="Embedding similarity for paraphrases (extra: semantic). auto: on with "
        "the default model when it is on this machine, else off with a warning; a mapping: "
        "on; null: off.",
    )
    exact: bool = Field(True, description="Exact match after normalisation.")
    masked_numbers: Literal["contaminated", "borderline", "off"] = Field(
        "contaminated", description="What an exact match with every number masked means."
    )
    answers: Literal["decide", "off"] = Field(
        "decide",
        description="decide: where the problem and its benchmark match both have a final "
        "answer, a strong text match with the same answer is contaminated and one with a "
        "different answer is a sibling (same template, another problem); off: text alone.",
    )
    siblings: Literal["keep", "drop"] = Field(
        "keep",
        description="A sibling is kept and marked borderline (benchmark_sibling), or dropped.",
    )
    judge: SerializeAsAny[TeacherConfig] | None = Field(
        None,
        description="An LLM judge for the borderline band: a teacher section (backend, "
        "model, base_url, ...; temperature 0 and 1,024 tokens unless set) asked whether each "
        "pair is the same problem with the same answer; SAME drops the row, DIFFERENT clears "
        "it, its reasoning is kept (null: off).",
    )

    @field_validator("judge", mode="before")
    @classmethod
    def _judge_backend(cls, value: Any) -> Any:
        return judge_config(value) if isinstance(value, dict) else value

    masked_min_words: int = Field(
        12,
        ge=1,
        description="Shorter texts are not compared with numbers masked (a short "
        "template such as 'What is 3 + 9?' says nothing about contamination).",
    )


def build_index(config: DecontamConfig) -> BenchmarkIndex:
    if config.index:
        return BenchmarkIndex.load(Path(config.index))
    items, missing = [], []
    for name in config.benchmarks:
        try:
            items.extend(load_items(name, config.files.get(name)))
        except BenchmarkUnavailable as exc:
            missing.append(exc)
    if missing:  # all of them in one message, not one per run
        names = [name for exc in missing for name in exc.names]
        raise BenchmarkUnavailable(names, missing[0].reason)
    ngram = config.ngram or NgramMethod()
    index = BenchmarkIndex.build(items, ngram.n, ngram.tokens)
    method = config.method()
    if method is not None:
        index.vectors, index.vector_items = embed_items(method, [i.text for i in items])
        index.vector_model = method.model
    return index


class Decontaminator:
    """Finds each text's best benchmark match by every configured method."""

    def __init__(
        self, config: DecontamConfig, index: BenchmarkIndex, threads: int | None = None
    ) -> None:
        self.config = config
        self.index = index
        self.threads = threads or available_cores()
        self.same_answers = SameAnswers()  # its math-verify worker serves every batch
        self.gated = 0  # rows the answer gate kept from the encoder
        self._counts: dict[int | None, np.ndarray] = {}
        self._prepare()

    def _prepare(self) -> None:
        """Build the index's lazy parts now, before threads share them."""
        self.index.filter()
        self.index.sequence_positions()
        empty = np.empty(0, np.uint64)
        self.index.lookup(empty)
        self.index.lookup(empty, masked=True)
        if self.config.ngram is not None:
            self.counts(
                None if self.config.ngram.rule == "any" else self.config.ngram.max_item_share
            )

    def counts(self, share: int | None) -> np.ndarray:
        """Each item's n-gram count the score divides by (stock n-grams left out)."""
        if share not in self._counts:
            self._counts[share] = self.index.informative_counts(share)
        return self._counts[share]

    def matches(
        self, texts: list[str], references: list[str | None] | None = None
    ) -> list[Match | None]:
        """Each text's strongest match by any method, or None. With references (the texts'
        final answers), near benchmark items with the same answer are copies."""
        best = self.lexical_matches(texts)
        if self.config.method() is not None:
            for row, match in self.semantic_matches(texts, references).items():
                if RANK[self.verdict(match)] > RANK[self.verdict(best[row])]:
                    best[row] = match
        return best

    def lexical_matches(self, texts: list[str]) -> list[Match | None]:
        """N-gram and exact matches, chunk by chunk on every core: polars and numpy
        release the GIL, so threads share the index without copying it."""
        if len(texts) <= MIN_CHUNK_ROWS or self.threads == 1:
            return self._lexical(texts)
        count = self.threads * -(-len(texts) // (self.threads * MAX_CHUNK_ROWS))
        size = -(-len(texts) // count)  # equal chunks, a multiple of the threads in number
        chunks = [texts[start : start + size] for start in range(0, len(texts), size)]
        with ThreadPoolExecutor(self.threads) as pool:
            return [match for part in pool.map(self._lexical, chunks) for match in part]

    def _lexical(self, texts: list[str]) -> list[Match | None]:
        best: list[Match | None] = [None] * len(texts)
        method = self.config.ngram
        exact = self.config.exact or self.config.masked_numbers != "off"
        words = tokenize(texts) if exact or (method and method.tokens == "words") else None
        if method is not None:
            ngram_words = words if method.tokens == "words" else tokenize(texts, method.tokens)
            assert ngram_words is not None
            for row, match in self.ngram_matches(ngram_words).items():
                best[row] = match
        if exact and words is not None:
            for row, match in self.exact_matches(words).items():
                best[row] = match
        return best

    def semantic_matches(
        self, texts: list[str], references: list[str | None] | None = None
    ) -> dict[int, Match]:
        """The nearest item of each text within the borderline cosine and, where the text
        has a reference, a near item (any of the candidates) with the same answer."""
        method = self.config.method()
        assert method is not None
        index = self.index
        if index.vectors is None or index.vector_model != method.model:
            raise RecipeError(
                f"the benchmark index has no {method.model} vectors: rebuild it with "
                "decontaminate.semantic set (curate decontam build --semantic)"
            )
        rows = self.rows_to_embed(method, texts, references)
        if not rows:
            return {}
        items, scores = nearest(
            embed(method, [texts[r] for r in rows]),
            index.vectors,
            index.vector_owners(),
            method.candidates,
        )
        found = {
            rows[k]: self._semantic_match(int(items[k, 0]), float(scores[k, 0]))
            for k in np.flatnonzero(scores[:, 0] >= method.borderline).tolist()
        }
        if references is not None and self.config.answers == "decide":
            ours = [references[r] for r in rows]
            matched = self.same_answer_matches(items, scores, ours)
            found.update({rows[k]: match for k, match in matched.items()})
        return found

    def rows_to_embed(
        self, method: SemanticMethod, texts: list[str], references: list[str | None] | None
    ) -> list[int]:
        """Every row, or with the answer gate on, those that may share a benchmark answer:
        no reference, or one that some item's answer equals as spelt or as a number."""
        keys = self.index.answer_keys() if method.answer_gate else None
        if keys is None or references is None or self.config.answers != "decide":
            return list(range(len(texts)))
        spelt, numbers = keys
        kept = []
        for row, reference in enumerate(references):
            ours = str(reference or "").strip()
            if not ours or spelling(ours) in spelt or number(ours) in numbers:
                kept.append(row)
        self.gated += len(texts) - len(kept)
        return kept

    def same_answer_matches(
        self, items: np.ndarray, scores: np.ndarray, references: list[str | None]
    ) -> dict[int, Match]:
        """Rows with a near item whose answer is the row's reference, nearest first; an
        answer that says little needs a nearer item (common_answer) than one that says much
        (same_answer), and one that many items share only turns a borderline match into a
        copy. Spelling and numbers
        decide at once; math-verify looks at the rest of the pairs only from common_answer up
        (it is slow, and far pairs are many)."""
        method = self.config.method()
        assert method is not None
        counts = self.index.answer_counts()
        needed = {
            "distinctive": method.same_answer,
            "common": method.common_answer,
            "none": method.borderline,
        }
        pairs: list[tuple[int, int, float, str, str]] = []
        for row, reference in enumerate(references):
            ours = str(reference or "").strip()
            for item, score in zip(items[row].tolist(), scores[row].tolist(), strict=True):
                gold = self.index.answer(item)
                if ours and gold and score >= needed[strength(gold, counts)]:
                    pairs.append((row, item, score, ours, gold))
        same = self.same_answers([(ours, gold) for *_, ours, gold in pairs], careful=False)
        near = method.common_answer
        # a row's pairs come nearest first, and its nearest agreeing pair decides: pairs
        # behind one that spelling or numbers already found the same are not sent on
        decided: dict[int, int] = {}
        for k, pair in enumerate(pairs):
            if same[k]:
                decided.setdefault(pair[0], k)
        open_near = [
            k
            for k, p in enumerate(pairs)
            if same[k] is None and p[2] >= near and k < decided.get(p[0], len(pairs))
        ]
        judged = self.same_answers.math_verify([(pairs[k][3], pairs[k][4]) for k in open_near])
        for k, verdict in zip(open_near, judged, strict=True):
            same[k] = verdict
        found: dict[int, Match] = {}
        for (row, item, score, _, _), agree in zip(pairs, same, strict=True):
            if agree and row not in found:
                found[row] = self._semantic_match(item, score, "same_answer")
        return found

    def _semantic_match(self, item: int, score: float, rule: str | None = None) -> Match:
        label = self.index.item_label(item)
        return Match(*label, "semantic", round(score, 4), item_index=item, rule=rule)

    def exact_matches(self, words: Words) -> dict[int, Match]:
        index, found = self.index, {}
        if self.config.masked_numbers != "off":
            items = index.lookup(sequence_hashes(words, masked=True), masked=True)
            items[np.diff(words.bounds) < self.config.masked_min_words] = -1
            for row in np.flatnonzero(items >= 0).tolist():
                item = int(items[row])
                found[row] = Match(*index.item_label(item), "exact_masked", 1.0, item_index=item)
        if self.config.exact:
            items = index.lookup(sequence_hashes(words))
            for row in np.flatnonzero(items >= 0).tolist():
                item = int(items[row])
                found[row] = Match(*index.item_label(item), "exact", 1.0, item_index=item)
        return found

    def ngram_matches(self, words: Words) -> dict[int, Match]:
        method = self.config.ngram
        assert method is not None
        share = None if method.rule == "any" else method.max_item_share
        text_rows, text_grams = ngrams(words, method.n)
        if method.rule == "any":  # the common rule: one shared n-gram is enough
            rows, items = self.index.first_hits(text_rows, text_grams)
            return {
                int(row): Match(
                    *self.index.item_label(int(item)), "ngram", 1.0, item_index=int(item)
                )
                for row, item in zip(rows, items, strict=True)
            }
        hit_rows, hit_positions = self.index.hits(text_rows, text_grams)
        rows, items, shared = self.index.overlaps(hit_rows, hit_positions, share)
        scores = shared / self.counts(share)[items]
        strong = scores >= method.borderline
        rows, items, scores = rows[strong], items[strong], scores[strong]
        order = np.lexsort((-scores, rows))  # per row, best score first
        first = np.ones(len(order), bool)
        first[1:] = rows[order][1:] != rows[order][:-1]
        best = order[first]
        runs = self.index.longest_runs(hit_rows, hit_positions, rows[best], items[best])
        return {
            int(rows[position]): Match(
                *self.index.item_label(int(items[position])),
                "ngram",
                round(float(scores[position]), 4),
                int(run),
                int(items[position]),
            )
            for position, run in zip(best.tolist(), runs.tolist(), strict=True)
        }

    def verdict(self, match: Match | None) -> Literal["contaminated", "borderline", "clean"]:
        if match is None:
            return "clean"
        if match.method == "exact":
            return "contaminated"
        if match.method == "exact_masked":
            return "contaminated" if self.config.masked_numbers == "contaminated" else "borderline"
        method = self.config.ngram or NgramMethod()
        if match.method == "semantic":
            semantic = self.config.method()
            assert semantic is not None
            strong = match.rule == "same_answer" or match.score >= semantic.threshold
            return "contaminated" if strong else "borderline"
        if method.rule == "any" or match.score >= method.threshold:
            return "contaminated"
        return "borderline"


@registry.stages.register()
class DecontaminateStage(Stage):
    """Flag rows that copy benchmark items (scored n-grams, exact, numbers masked)."""

    name = "decontaminate"
    section = "decontaminate"
    after = ("dedup",)  # the cheaper check first
    config_class = DecontamConfig
    reads: tuple[str, ...] = ("problem",)
    writes = ("contaminated", "contamination", "borderline")
    config: DecontamConfig

    def __init__(self, config: DecontamConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self.reads = tuple(config.fields)
        self._checker: Decontaminator | None = None
        self.judge_config = config.judge
        self.tasks = 1  # processes running this stage at once (a cluster's tasks)

    def identity(self) -> str:
        """Changes when a benchmark file or the index pack changes, not only the config."""
        paths = [*self.config.files.values(), *([self.config.index] if self.config.index else [])]
        stamps = [
            f"{p}:{Path(p).stat().st_size}:{Path(p).stat().st_mtime_ns}"
            for p in paths
            if Path(p).exists()
        ]
        if self.config.semantic == "auto":  # on or off by what this machine has
            stamps.append(f"semantic:{unavailable(SemanticMethod().model) is None}")
        return stable_hash(super().identity(), *stamps)

    def checker(self) -> Decontaminator:
        if self._checker is None:
            config, off = self.config.resolved(self.config.index)
            if off:
                warnings.warn(
                    f"decontaminate: semantic matching is off: {off}; rephrased copies whose "
                    "words changed go unnoticed (decontaminate.semantic: null: off, quietly)",
                    CurateWarning,
                    stacklevel=2,
                )
            self._checker = Decontaminator(self.own_share(config), build_index(config))
            if self.judge_config is not None and self._checker.index.texts is None:
                raise RecipeError(
                    "decontaminate.judge needs the benchmark text, which index packs leave "
                    "out: name the benchmarks (or files) instead of an index pack"
                )
        return self._checker

    def own_share(self, config: DecontamConfig) -> DecontamConfig:
        """The config with the encoder's threads set to this task's share of the cores."""
        method = config.method()
        if method is None or self.tasks == 1 or method.threads is not None:
            return config
        threads = max(1, available_cores() // self.tasks)
        return config.model_copy(
            update={"semantic": method.model_copy(update={"threads": threads})}
        )

    def share(self, tasks: int) -> None:
        """In one of `tasks` cluster tasks on a machine: the encoder takes its share of the
        cores, so the tasks together use each core once."""
        self.tasks = max(1, tasks)
        self.close()  # a checker made before would use every core

    def close(self) -> None:
        if self._checker is not None:
            self._checker.same_answers.close()
        self._checker = None  # the benchmark index; built again if the stage is used again

    def process(self, frame: pl.DataFrame) -> pl.DataFrame:
        checker = self.checker()
        gated_before = checker.gated
        best: list[Match | None] = [None] * frame.height
        references = (
            frame["reference"].cast(pl.String).to_list()
            if self.config.answers == "decide" and "reference" in frame.columns
            else None
        )
        for field in self.config.fields:
            texts = frame[field].fill_null("").to_list()
            answers = references if field == "problem" else None
            for row, match in enumerate(distinct_matches(checker, texts, answers)):
                if match is not None and (best[row] is None or _stronger(match, best[row])):
                    best[row] = match
        verdicts: list[str] = [checker.verdict(m) for m in best]
        rules = self._rules(frame, best, verdicts)
        for index, rule in enumerate(rules):
            if rule == "different_answer":  # a sibling, not a copy: same template, another problem
                verdicts[index] = "borderline"
        reasons = self._judge(frame, best, verdicts, rules)
        siblings = [rule == "different_answer" for rule in rules]
        for verdict, rule in zip(verdicts, rules, strict=True):
            self.counts[verdict] += 1
            self.counts[f"rule_{rule}"] += rule is not None
        self.counts["not_embedded_answer_gate"] += checker.gated - gated_before
        flags = _append_flag(
            frame,
            [v == "borderline" and not s for v, s in zip(verdicts, siblings, strict=True)],
            "contamination",
        )
        return frame.with_columns(
            pl.Series("contaminated", [v == "contaminated" for v in verdicts], pl.Boolean),
            pl.Series(
                "contamination",
                [self._record(*entry) for entry in zip(best, rules, reasons, strict=True)],
                CONTAMINATION,
            ),
            _append_flag(frame.with_columns(flags), siblings, "benchmark_sibling"),
            pl.Series("dropped", self._dropped(verdicts, best, siblings), pl.String),
        )

    def _dropped(
        self, verdicts: list[str], best: list[Match | None], siblings: list[bool]
    ) -> list[str | None]:
        drop_siblings = self.config.siblings == "drop"
        return [
            f"contaminated_{m.benchmark}"
            if v == "contaminated" and m
            else (f"benchmark_sibling_{m.benchmark}" if sibling and drop_siblings and m else None)
            for v, m, sibling in zip(verdicts, best, siblings, strict=True)
        ]

    def _rules(
        self, frame: pl.DataFrame, best: list[Match | None], verdicts: list[str]
    ) -> list[str | None]:
        """What decides each match: the text alone, or (answers: decide) a strong non-exact
        match whose problem and benchmark item both have answers, by whether they agree."""
        rules: list[str | None] = [None if m is None else (m.rule or "text") for m in best]
        if self.config.answers == "off" or "reference" not in frame.columns:
            return rules
        index = self.checker().index
        pairs: list[tuple[int, str, str]] = []
        for row, (match, verdict, reference) in enumerate(
            zip(best, verdicts, frame["reference"].to_list(), strict=True)
        ):
            gold = index.answer(match.item_index) if match is not None else None
            strong = verdict == "contaminated" and match is not None and match.method != "exact"
            strong = strong and match is not None and match.rule is None
            if strong and gold and reference and str(reference).strip():
                pairs.append((row, str(reference), gold))
        for (row, _, _), same in zip(
            pairs, self.checker().same_answers([(a, b) for _, a, b in pairs]), strict=True
        ):
            if same is not None:
                rules[row] = "same_answer" if same else "different_answer"
        return rules

    def _judge(
        self, frame: pl.DataFrame, best: list[Match | None], verdicts: list[str], rules: list[Any]
    ) -> list[str | None]:
        """Put the borderline pairs to the judge (never a private benchmark's): SAME makes
        the row contaminated, DIFFERENT clean; verdicts and rules change in place. Returns
        the judge's reasoning per row."""
        reasons: list[str | None] = [None] * len(best)
        index = self.checker().index
        rows = [
            row
            for row, (verdict, match) in enumerate(zip(verdicts, best, strict=True))
            if verdict == "borderline" and match is not None and not index.private(match.item_index)
        ]
        if self.judge_config is None or not rows or index.texts is None:
            return reasons
        problems = frame["problem"].cast(pl.String).to_list()
        references = (
            frame["reference"].cast(pl.String).to_list()
            if "reference" in frame.columns
            else [None] * frame.height
        )
        pairs = []
        for row in rows:
            item = best[row].item_index  # type: ignore[union-attr]
            pairs.append(
                Pair(problems[row], references[row], index.texts[item], index.answer(item))
            )
        judge = Judge(self.judge_config, SampleCache(self.context.cache_dir / JUDGE_CACHE))
        for row, judgement in zip(rows, judge.ask(pairs), strict=True):
            reasons[row] = judgement.reasoning
            self.counts["judged"] += 1
            if judgement.same is not None:
                verdicts[row] = "contaminated" if judgement.same else "clean"
                rules[row] = "judge_same" if judgement.same else "judge_different"
        self.counts.update(judge.spent)
        return reasons

    def _record(
        self, match: Match | None, rule: str | None, judge: str | None = None
    ) -> dict[str, Any] | None:
        if match is None:
            return None
        excerpt = self.checker().index.excerpt(match.item_index)
        return {
            "benchmark": match.benchmark,
            "item": match.item,
            "method": match.method,
            "score": match.score,
            "run": match.run,
            "excerpt": excerpt,
            "rule": rule,
            "judge": judge,
        }


def distinct_matches(
    checker: Decontaminator, texts: list[str], answers: list[str | None] | None
) -> list[Match | None]:
    """checker.matches, once per distinct (text, answer): every trace of a problem repeats
    it, and the work is the problem's."""
    keys = list(zip(texts, answers or [None] * len(texts), strict=True))
    first: dict[tuple[str, str | None], int] = {}
    positions = [first.setdefault(key, len(first)) for key in keys]
    if len(first) == len(keys):
        return checker.matches(texts, answers)
    distinct = list(first)
    found = checker.matches(
        [text for text, _ in distinct], [a for _, a in distinct] if answers is not None else None
    )
    return [found[position] for position in positions]


def _stronger(new: Match, old: Match | None) -> bool:
    return old is None or new.score > old.score


def _append_flag(frame: pl.DataFrame, mask: list[bool], flag: str) -> pl.Series:
    """The borderline column with `flag` added where mask is true (earlier flags kept)."""
    existing = (
        frame["borderline"].to_list() if "borderline" in frame.columns else [None] * len(mask)
    )
    merged = [
        [*(old or []), flag] if hit else list(old or [])
        for old, hit in zip(existing, mask, strict=True)
    ]
    return pl.Series("borderline", merged, pl.List(pl.String))
