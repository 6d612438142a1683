"""The benchmark registry: where each test set lives on the Hub and which columns it uses."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from curate.errors import SourceError

TEXT_COLUMNS = ("problem", "question", "Question", "prompt", "question_content")
ID_COLUMNS = ("unique_id", "id", "task_id", "question_id", "idx", "ID", "Record ID")
INSTRUCTION = re.compile(r"\s*Please reason step by step.*$", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Benchmark:
    """One test set: its Hub location and whether its text may be written anywhere."""

    name: str
    hub_id: str
    split: str = "test"
    config: str | None = None
    private: bool = False  # text never written (GPQA's authors ask for that)


BENCHMARKS = {
    b.name: b
    for b in [
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
        Benchmark(
            "olympiadbench", "Hothan/OlympiadBench", config="OE_TO_maths_en_COMP", split="train"
        ),
        Benchmark("minerva", "math-ai/minervamath"),
    ]
}


@dataclass(frozen=True)
class Item:
    benchmark: str
    item_id: str
    text: str


def benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise SourceError(f"unknown benchmark '{name}'; known: {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[name]


def load_items(name: str, path: str | None = None) -> list[Item]:
    """A benchmark's items from a local file (JSONL, JSON, Parquet, .gz) or from the Hub."""
    spec = benchmark(name)
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
        items.append(Item(name, item_id, INSTRUCTION.sub("", text)))
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


def read_hub(spec: Benchmark) -> list[dict[str, Any]]:
    import datasets

    try:
        data = datasets.load_dataset(spec.hub_id, spec.config, split=spec.split)
    except Exception as exc:  # datasets raises many types for a missing or gated repo
        raise SourceError(
            f"benchmark '{spec.name}' ({spec.hub_id}): cannot load from the Hub ({exc}); "
            f"give a local copy with decontaminate.files.{spec.name}=PATH"
        ) from None
    return list(data)
