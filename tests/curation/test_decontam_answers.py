"""The answer rule: a strong text match is contamination only when the problem's answer is
the benchmark item's answer; another answer makes it a sibling (same template, another
problem), kept and marked for review. Siblings written here; MATH-500 from
../shared/evaldata when present."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest

from curate.decontam.benchmarks import load_items
from curate.decontam.index import BenchmarkIndex
from curate.decontam.report import build_report
from curate.decontam.stage import DecontamConfig, DecontaminateStage
from curate.stage import StageContext
from tests.conftest import EVALDATA, write_jsonl

ABS = "In the equation |x-4| - 10 = 2, what is the product of all possible values of x?"
BENCH = [
    {"unique_id": "abs", "problem": ABS, "answer": "-128"},
    {
        "unique_id": "gsm",
        "problem": "Natalia sold clips to 48 of her friends in April, and then she sold half "
        "as many clips in May. How many clips did Natalia sell altogether in April and May?",
        "answer": "Natalia sold 48/2 = 24 clips in May.\n#### 72",
    },
]


def stage(tmp_path: Path, bench: list[dict], **config) -> DecontaminateStage:
    path = write_jsonl(tmp_path / "bench.jsonl", bench)
    settings = DecontamConfig(benchmarks=["math500"], files={"math500": str(path)}, **config)
    return DecontaminateStage(settings, StageContext(tmp_path))


def rows(*problems: tuple[str, str | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {"problem": [p for p, _ in problems], "reference": [r for _, r in problems]},
        schema={"problem": pl.String, "reference": pl.String},
    )


def test_a_sibling_is_kept_for_review_and_a_copy_is_dropped(tmp_path: Path):
    sibling = "In the equation |x-7| - 3 = -2, what is the product of all possible values of x?"
    copy_rephrased = "Solve this. " + ABS + " Give an integer."  # the item, words around it
    gsm_copy = BENCH[1]["problem"].replace("altogether in", "in total over")
    out = stage(tmp_path, BENCH).process(
        rows(
            (sibling, "48"),  # (x-7)^2 = 1 -> x = 6, 8
            (copy_rephrased, "-128"),
            (gsm_copy, "72"),
            (sibling, None),  # no answer to compare: today's text rules
            (ABS, "7"),  # the same text is the same problem, whatever the reference says
        )
    )
    rules = [c["rule"] if c else None for c in out["contamination"].to_list()]
    assert rules == ["different_answer", "same_answer", "same_answer", "text", "text"]
    assert out["contaminated"].to_list() == [False, True, True, True, True]
    assert out["dropped"].to_list()[0] is None
    assert out["borderline"].to_list()[0] == ["benchmark_sibling"]
    report = build_report(out.with_columns(pl.lit("p").alias("problem_id")).to_arrow())
    assert report["math500"]["by_rule"] == {"different_answer": 1, "same_answer": 2, "text": 2}


def test_siblings_can_be_dropped_and_the_rule_turned_off(tmp_path: Path):
    sibling = "In the equation |x-9| - 1 = 5, what is the product of all possible values of x?"
    dropped = stage(tmp_path, BENCH, siblings="drop").process(rows((sibling, "45")))
    assert dropped["dropped"].to_list() == ["benchmark_sibling_math500"]
    text_only = stage(tmp_path, BENCH, answers="off").process(rows((sibling, "45")))
    assert text_only["dropped"].to_list() == ["contaminated_math500"]


def test_index_packs_keep_public_answers_only(tmp_path: Path):
    path = write_jsonl(tmp_path / "bench.jsonl", BENCH)
    index = BenchmarkIndex.build(
        load_items("math500", str(path)) + load_items("gpqa_diamond", str(path))
    )
    pack = tmp_path / "pack.npz"
    index.save(pack)
    loaded = BenchmarkIndex.load(pack)
    answers = [loaded.answer(i) for i in range(len(loaded.item_ids))]
    assert sorted(a for a in answers if a) == ["-128", "72"]  # GPQA's never written
    assert "-128" not in json.dumps([str(x) for x in loaded.item_ids])


@pytest.mark.skipif(not (EVALDATA / "derived_math500").exists(), reason="no ../shared/evaldata")
def test_math500_siblings_with_other_answers_are_spared(tmp_path: Path):
    """Real MATH-500 items: verbatim copies with their answers are contaminated; the same
    items with every number changed (so the answer changes) are siblings, never dropped."""
    items = [
        json.loads(line)
        for line in (EVALDATA / "derived_math500" / "math500.jsonl").read_text().splitlines()
    ][:150]
    check = stage(tmp_path, items)
    copies = check.process(rows(*((i["problem"], i["answer"]) for i in items)))
    assert copies["contaminated"].all()

    def bumped(text: str) -> str:
        return re.sub(r"\d+", lambda m: str(int(m.group()) + 1), text)

    # numbers in the problem and the answer, so both change
    numeric = [i for i in items if re.search(r"\d", i["answer"]) and re.search(r"\d", i["problem"])]
    changed = [(bumped(i["problem"]), bumped(i["answer"])) for i in numeric]
    out = check.process(rows(*changed))
    matched = out.filter(pl.col("contamination").is_not_null())
    assert matched.height > 20
    assert out["dropped"].null_count() == out.height  # no innocent sibling dropped
    rules = set(matched["contamination"].struct.field("rule").to_list())
    assert rules == {"different_answer"}
