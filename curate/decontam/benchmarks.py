"""The benchmark registry: where each test set lives on the Hub and which columns it uses."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from curate import registry
from curate.errors import SourceError
from curate.hub import hub_problem, offline_datasets

TEXT_COLUMNS = ("problem", "question", "Question", "prompt", "question_content")
ID_COLUMNS = ("unique_id", "id", "task_id", "question_id", "idx", "ID", "Record ID")
INSTRUCTION = re.compile(r"\s*Please reason step by step.*$", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Benchmark:
    """One test set: its Hub location and whether its text may be written anywhere."""

    name: str
    hub_id: str | None  # None: only a local file gives it (decontaminate.files)
    split: str = "test"
    config: str | None = None
    private: bool = False  # text never written (GPQA's authors ask for that)


BUILTIN = [
    Benchmark("math500", "HuggingFaceH4/MATH-500"),
    Benchmark("aime24", "HuggingFaceH4/aime_2024", split="train"),
    Benchmark("aime25", "yentinglin/aime_2025", split="train"),
    Benchmark("amc23", "math-ai/amc23"),
    Benchmark("gsm8k", "openai/gsm8k", config="main"),
    Benchmark(
        "gpqa_diamond", "Idavidrein/gpqa", split="train", config="gpqa_diamond", private=True
    ),
    Benchmark("livecodebench", "livecodebench/code_generation_lite"),
    Benchmark("humaneval", "openai/openai_humaneval"),
    Benchmark("mbpp", "google-research-datasets/mbpp", config="full"),
    Benchmark("olympiadbench", "Hothan/OlympiadBench", config="OE_TO_maths_en_COMP", split="train"),
    Benchmark("minerva", "math-ai/minervamath"),
]
for _builtin in BUILTIN:
    registry.benchmarks.register(_builtin.name)(_builtin)


@dataclass(frozen=True)
class Item:
    benchmark: str
    item_id: str
    text: str
    answer: str | None = None  # the final answer, where the benchmark gives one


ANSWER_COLUMNS = ("answer", "final_answer", "Answer", "expected_answer")


def answer_of(row: dict[str, Any]) -> str | None:
    """A row's final answer: GSM8K's after '####', OlympiadBench's first of a list."""
    for column in ANSWER_COLUMNS:
        value = row.get(column)
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        if value is None or isinstance(value, bool):
            continue
        text = str(value)
        if "####" in text:
            text = text.rsplit("####", 1)[1]
        text = text.strip()
        if text:
            return text
    return None


def benchmark(name: str, path: str | None = None) -> Benchmark:
    """A registered benchmark (built-in or a plugin's); any other name is a benchmark of its
    own when a local file gives it."""
    known = registry.benchmarks.find(name)
    if known is not None:
        return known
    if path is not None:
        return Benchmark(name, None)
    names = ", ".join(registry.benchmarks.names())
    raise SourceError(
        f"unknown benchmark '{name}'; known: {names} (another needs a local file: "
        f"decontaminate.files.{name}=PATH)"
    )


def is_private(name: str) -> bool:
    """Whether a benchmark's text must never be written (GPQA's authors ask for that)."""
    known = registry.benchmarks.find(name)
    return known is not None and known.private


def load_items(name: str, path: str | None = None) -> list[Item]:
    """A benchmark's items from a local file (JSONL, JSON, Parquet, .gz) or from the Hub."""
    spec = benchmark(name, path)
    rows = read_file(Path(path)) if path else read_hub(spec)
    items = []
    for index, row in enumerate(rows):
        text = next((row[c] for c in TEXT_COLUMNS if isinstance(row.get(c), str)), None)
        if text is None:
            raise SourceError(
                f"{path or spec.hub_id} row {index + 1}: no text column "
                f"(looked for {', '.join(TEXT_COLUMNS)})"
            )
        item_id = next((str(row[c]) for c in ID_COLUMNS if row.get(c) is not None), str(index))
        answer = None if spec.private else answer_of(row)
        items.append(Item(name, item_id, INSTRUCTION.sub("", text), answer))
    return items


def read_file(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise SourceError(f"{path}: no such benchmark file")
    if path.suffix == ".parquet":
        return list(pq.read_table(path).to_pylist())
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        text = handle.read()
    stripped = text.lstrip()
    if stripped.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class BenchmarkUnavailable(SourceError):
    """Benchmarks that neither a local file nor the Hub (nor its cache) can give."""

    def __init__(self, names: list[str], reason: str, form: str = "decontaminate.files.{}=PATH"):
        self.names, self.reason = names, reason
        copies = " ".join(form.format(name) for name in names)
        which = ", ".join(names)
        pack = ", or an index pack (decontaminate.index)" if form.startswith("decontam") else ""
        super().__init__(
            f"benchmark {which}: cannot load from the Hub ({reason}); give local copies "
            f"with {copies}{pack}"
        )

    def with_form(self, form: str) -> BenchmarkUnavailable:
        """The same error, telling how to give local copies in another place (a CLI flag)."""
        return BenchmarkUnavailable(self.names, self.reason, form)


def read_hub(spec: Benchmark) -> list[dict[str, Any]]:
    import datasets

    if spec.hub_id is None:
        raise BenchmarkUnavailable([spec.name], "it has no Hub copy")
    problem = hub_problem()
    try:
        with offline_datasets(bool(problem)):  # a cached copy still serves
            data = datasets.load_dataset(spec.hub_id, spec.config, split=spec.split)
    except Exception as exc:  # datasets raises many types for a missing or gated repo
        reason = problem or " ".join(str(exc).split())[:300]
        raise BenchmarkUnavailable([spec.name], reason) from None
    return list(data)
