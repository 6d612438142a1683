"""What every source shares: column mapping and row checks that name file, row and field."""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar, get_args

from pydantic import Field, field_validator

from curate.answers import REASONING_TAGS, TagPair, as_tag_pairs, split_reasoning
from curate.errors import SourceError
from curate.records import Domain, problem_id, to_json
from curate.stage import Config

Row = dict[str, Any]


def served_domain(value: str) -> str:
    """A domain some verifier judges under `verify.kind: auto` (a plugin's may add one)."""
    from curate import registry

    known = set(get_args(Domain))
    known |= {d for _, verifier in registry.verifiers.items() for d in verifier.domains}
    if value not in known:
        raise ValueError(f"no verifier serves domain '{value}'; known: {', '.join(sorted(known))}")
    return value


# Names common public datasets use for curate's fields: the file commands rename them when
# one is present (curate/files.py); a source's missing-column error suggests the mapping.
COMMON_NAMES: dict[str, tuple[str, ...]] = {
    "problem": ("question", "prompt", "instruction", "query"),
    "reference": ("answer", "gold", "final_answer", "ground_truth"),
    "tests": ("test", "test_list", "test_cases", "input_output"),
    "reasoning": ("reasoning_content", "thinking", "cot"),
    "completion": ("response", "output", "generation"),
}


class LongInteger(str):
    """A JSON integer past Python's int() limit, kept as its digits (a reference may be one;
    a problem statement may not)."""


class Columns(Config):
    """Which input column holds each problem field."""

    problem: str = Field("problem", description="Column with the problem statement.")
    reference: str | None = Field(
        "answer", description="Column with the gold answer; null when there is none."
    )
    id: str | None = Field(None, description="Column with the source's own id, kept as source_id.")
    tests: str | None = Field(None, description="Column with code test cases.")
    domain: str | None = Field(None, description="Column with a per-row domain.")
    metadata: list[str] = Field(
        default_factory=list, description="Columns copied into the metadata JSON."
    )
    completion: str | None = Field(
        None,
        description="Existing traces: the column with each trace's text (the answer, or the "
        "whole trace with its reasoning in think tags), or with a list of traces. Set, the "
        "source reads traces, several rows per problem, and no teacher is needed.",
    )
    reasoning: str | None = Field(
        None, description="Existing traces: the column with the chain of thought, if apart."
    )
    model: str | None = Field(None, description="Existing traces: the column naming the model.")
    sample_idx: str | None = Field(
        None, description="Existing traces: the column with the sample number per problem."
    )


class RowSourceConfig(Config):
    """Settings every row-based source shares."""

    kind: str = Field(description="Which source reads the problems (each names its own).")

    domain: str = Field(
        "math",
        description="Domain of every problem (unless columns.domain): math, code, science, "
        "puzzle, choice, or one a plugin verifier serves.",
    )

    @field_validator("domain")
    @classmethod
    def _served(cls, value: str) -> str:
        return served_domain(value)

    columns: Columns = Field(default_factory=Columns, description="Input column names.")
    reference_pattern: str | None = Field(
        None, description="Regex whose first group extracts the answer (e.g. '#### (.+)$')."
    )
    limit: int | None = Field(None, ge=1, description="Read at most this many rows.")
    max_chars: int = Field(
        100_000, ge=1, description="Longest accepted problem, reference or tests field."
    )
    think_tags: list[TagPair] = Field(
        default_factory=lambda: list(REASONING_TAGS),
        description="Existing traces: the tags around reasoning inside the completion column "
        "(a pair, or a list of pairs; default: those of common open models, <think> first).",
    )

    @field_validator("think_tags", mode="before")
    @classmethod
    def _tag_pairs(cls, value: Any) -> list[TagPair]:
        return as_tag_pairs(value)

    trace_model: str = Field(
        "unknown", description="Existing traces: the model stored where no column names it."
    )
    max_trace_chars: int = Field(
        1_000_000, ge=1, description="Existing traces: the longest accepted trace text."
    )

    def traces(self) -> bool:
        """Whether the source reads existing traces rather than problems."""
        return self.columns.completion is not None


class Source(ABC):
    """Yields raw rows; `Problems` turns them into checked problem records."""

    kind: ClassVar[str]
    config_class: ClassVar[type[RowSourceConfig]]

    def __init__(self, config: RowSourceConfig) -> None:
        self.config = config

    @abstractmethod
    def identity(self) -> str:
        """Changes whenever the data read would change (config, file sizes and times...)."""

    @abstractmethod
    def rows(self) -> Iterator[tuple[str, int, Row]]:
        """Yield (location label, 1-based row number, row)."""

    @abstractmethod
    def source_name(self) -> str:
        """The name stored in each problem's `source` column."""

    def source_for(self, where: str) -> str:
        """The source name of the rows read at `where` (a file source names each file)."""
        return self.source_name()

    def problems(self) -> Iterator[Row]:
        """Checked problem records; with existing traces, one record per trace."""
        builder = ProblemBuilder(self.config, self.source_name())
        seen_any = False
        read_at = None
        for count, (where, number, row) in enumerate(self.rows()):
            if self.config.limit is not None and count >= self.config.limit:
                break
            seen_any = True
            if where != read_at:  # named once per file, not per row
                builder.source, read_at = self.source_for(where), where
            if self.config.traces():
                yield from builder.traces(row, where, number)
            else:
                yield builder.build(row, where, number)
        if not seen_any:
            raise SourceError(f"{self.source_name()}: no rows to read (empty input)")


class ProblemBuilder:
    """Checks one input row and maps it to the problem schema."""

    def __init__(self, config: RowSourceConfig, source: str) -> None:
        self.config = config
        self.columns = config.columns
        self.source = source
        pattern = config.reference_pattern
        self.pattern = re.compile(pattern, re.MULTILINE) if pattern else None
        self._last: tuple[tuple[str, str] | None, str] = (None, "")  # (source, text), its id

    def build(self, row: Row, where: str, number: int) -> Row:
        def fail(field: str, message: str) -> SourceError:
            return SourceError(f"{where} row {number}, field '{field}': {message}")

        text = self._text(row, self.columns.problem, fail, required=True)
        assert text is not None
        reference = self._reference(row, fail)
        domain = self.config.domain
        if self.columns.domain:
            domain = self._text(row, self.columns.domain, fail, required=True)  # type: ignore[assignment]
        source_id = self._scalar(row, self.columns.id, fail)
        tests = self._tests(row, fail)
        metadata = {name: self._column(row, name, fail) for name in self.columns.metadata}
        metadata.update(row.get("__metadata__", {}))
        return {
            "problem_id": self._problem_id(text),
            "source": self.source,
            "source_id": source_id,
            "domain": domain,
            "problem": text,
            "reference": reference,
            "tests": tests,
            "metadata": to_json(metadata) if metadata else None,
        }

    def _problem_id(self, text: str) -> str:
        """The problem's id, hashed once for the rows in a row that share it (a problem's
        traces come together in most inputs)."""
        key = (self.source, text)
        if key != self._last[0]:
            self._last = (key, problem_id(self.source, text))
        return self._last[1]

    def traces(self, row: Row, where: str, number: int) -> list[Row]:
        """The row's problem with each of its traces: the completion column holds one trace
        or a list of them; reasoning comes from its own column or from think tags."""

        def fail(field: str, message: str) -> SourceError:
            return SourceError(f"{where} row {number}, field '{field}': {message}")

        problem = self.build(row, where, number)
        columns = self.columns
        assert columns.completion is not None
        texts = self._column(row, columns.completion, fail)
        many = isinstance(texts, (list, tuple))
        reasonings = self._column(row, columns.reasoning, fail) if columns.reasoning else None
        if many and reasonings is not None and not isinstance(reasonings, (list, tuple)):
            raise fail(columns.reasoning or "", "a list of traces needs a list of reasonings")
        model = self._scalar(row, columns.model, fail) or self.config.trace_model
        index = self._scalar(row, columns.sample_idx, fail)
        if index is not None and not index.lstrip("-").isdigit():
            raise fail(columns.sample_idx or "", f"expected an integer, got {_preview(index)}")
        traces = []
        for position, text in enumerate(texts if many else [texts]):
            label = f"{columns.completion}[{position}]" if many else columns.completion
            if not isinstance(text, str):
                raise fail(label, f"expected text, got {type(text).__name__} {_preview(text)}")
            if len(text) > self.config.max_trace_chars:
                raise fail(label, f"{len(text):,} characters, over source.max_trace_chars")
            thought = reasonings[position] if many and reasonings is not None else reasonings
            reasoning, completion, closed = self._split(text, thought)
            traces.append(
                {
                    **problem,
                    "sample_idx": int(index) + position if index is not None else None,
                    # the messages that asked for it are not in the input: the problem alone
                    "prompt": [{"role": "user", "content": problem["problem"]}],
                    "model": model,
                    "reasoning": reasoning,
                    "completion": completion,
                    "finish_reason": "stop" if closed else "length",
                }
            )
        return traces

    def _split(self, text: str, thought: Any) -> tuple[str | None, str, bool]:
        """(reasoning, completion, closed): a reasoning column wins over think tags."""
        if thought is not None:
            return str(thought), text, True
        split = split_reasoning(text, self.config.think_tags)
        if split.tags is None:
            return None, text, True
        if not split.closed:
            return split.reasoning, "", False  # opened, never closed: cut off
        return split.reasoning, split.solution, True

    def _column(self, row: Row, name: str, fail: Any) -> Any:
        if name not in row:
            has = ", ".join(sorted(map(str, row))) or "nothing"
            raise fail(name, f"missing (row has: {has}){self._mapping_hint(row, name)}")
        return row[name]

    def _mapping_hint(self, row: Row, name: str) -> str:
        """How to map the field read from a missing column, where the row has a column by
        its curate name or a common one ('question' for problem)."""
        for field, given in self.columns:
            if given != name or field not in COMMON_NAMES:
                continue
            found = [c for c in (field, *COMMON_NAMES[field]) if c in row and c != name]
            if len(found) == 1:
                return f"; map it with source.columns.{field}: {found[0]}"
            if found:
                return f"; map one with source.columns.{field} ({', '.join(found)})"
        return ""

    def _text(self, row: Row, name: str, fail: Any, required: bool) -> str | None:
        value = self._column(row, name, fail)
        if value is None and not required:
            return None
        if not isinstance(value, str) or isinstance(value, LongInteger):
            kind = "int" if isinstance(value, str) else type(value).__name__
            raise fail(name, f"expected text, got {kind} {_preview(value)}")
        if required and not value.strip():
            raise fail(name, "empty text")
        self._check_size(name, value, fail)
        return value

    def _reference(self, row: Row, fail: Any) -> str | None:
        name = self.columns.reference
        if name is None:
            return None
        value = self._column(row, name, fail)
        if isinstance(value, (list, tuple)) and len(value) == 1:
            value = value[0]  # ["42"]: Minerva's and OlympiadBench's common copies
        if isinstance(value, bool) or not isinstance(value, (str, int, float, type(None))):
            raise fail(name, f"expected text or a number, got {type(value).__name__}")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None  # NaN: a missing value in a table (pandas writes it so), not "nan"
        text = value if isinstance(value, str) else repr(value)
        self._check_size(name, text, fail)
        if self.pattern is not None:
            found = pattern_answer(self.pattern, text)
            if found is None:
                raise fail(name, f"reference_pattern {self.pattern.pattern!r} does not match")
            text = found
        return text.strip()

    def _scalar(self, row: Row, name: str | None, fail: Any) -> str | None:
        if name is None:
            return None
        value = self._column(row, name, fail)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise fail(name, f"expected text or an integer, got {type(value).__name__}")
        return str(value)

    def _tests(self, row: Row, fail: Any) -> str | None:
        name = self.columns.tests
        if name is None:
            return None
        value = self._column(row, name, fail)
        if value is None:
            return None
        text = value if isinstance(value, str) else to_json(value)
        self._check_size(name, text, fail)
        return text

    def _check_size(self, name: str, text: str, fail: Any) -> None:
        if len(text) > self.config.max_chars:
            raise fail(
                name,
                f"{len(text):,} characters, over source.max_chars ({self.config.max_chars:,})",
            )


def pattern_answer(pattern: re.Pattern[str], text: str) -> str | None:
    """What a reference pattern takes of a reference: its first group, else the whole match;
    None where it does not match."""
    match = pattern.search(text)
    if match is None:
        return None
    return (match.group(1) if match.groups() else match.group(0)).strip()


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
