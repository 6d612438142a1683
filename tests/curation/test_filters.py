import random
import re
from pathlib import Path

import polars as pl
import pytest

from curate.errors import RecipeError
from curate.filters import FiltersConfig, FilterStage, longest_sentence_run, repeats_over
from curate.stage import StageContext
from curate.text import word_ngrams


def run(rows: list[dict], **config) -> pl.DataFrame:
    return FilterStage(FiltersConfig(**config), StageContext(Path("."))).process(run_frame(rows))


def run_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "reasoning": "Let me think step by step about this problem.",
                "completion": "\\boxed{4}",
                "finish_reason": "stop",
                "domain": "math",
            }
            | row
            for row in rows
        ]
    )


def test_each_filter_names_its_reason():
    out = run(
        [
            {},
            {"finish_reason": "length", "completion": ""},
            {"completion": "The answer is 4."},
            {"completion": "\\boxed{}"},
            {"reasoning": ""},
            {"reasoning": "We check this. 我们需要仔细检查这一步的计算。所以答案应该是这个值。"},
            {"reasoning": "\n\n".join(["Let me reconsider the previous step."] * 8)},
            {"reasoning": "half <think> open"},
            {"domain": "code", "completion": "print(4)\nno fence but code", "reasoning": "x"},
            {"domain": "code", "completion": "It is four.", "reasoning": "x"},
            {"domain": "choice", "completion": "The answer is (C).", "reasoning": "x"},
        ]
    )
    assert out["flags"].to_list() == [
        [],
        ["truncated", "no_final_answer"],
        ["no_boxed_answer"],
        ["malformed_boxed_answer"],
        ["empty_reasoning"],
        ["language_mix"],
        ["repetition"],
        ["unclosed_think"],
        [],
        ["no_code_block"],
        [],
    ]
    assert out["dropped"].to_list()[1] == "truncated"  # the first reason; all are in flags


def test_filters_can_be_turned_off_and_tuned():
    mixed = {"reasoning": "We check this. 我们需要仔细检查这一步的计算。"}
    assert run([mixed], language=None)["flags"].to_list() == [[]]
    allowed = run([mixed], language={"allowed": ["latin", "cjk"]})
    assert allowed["flags"].to_list() == [[]]
    looping = {"reasoning": " ".join(["one two three four"] * 30)}
    assert run([looping])["flags"].to_list() == [["repetition"]]
    assert run([looping], repetition={"max_repeated_share": 0.99})["flags"].to_list() == [[]]


def test_length_in_characters():
    out = run(
        [{"reasoning": "short"}, {"reasoning": "x" * 500}],
        length={"min_chars": 20, "max_chars": 300},
    )
    assert out["flags"].to_list() == [["too_short"], ["too_long"]]


@pytest.mark.extras
def test_length_in_tokens_of_a_local_tokenizer(tmp_path: Path):
    """A tokenizer built here, saved as a folder and loaded by transformers like a Hub one."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    model = tokenizers.models.WordLevel({"[UNK]": 0, "a": 1, "b": 2}, unk_token="[UNK]")
    raw = tokenizers.Tokenizer(model)
    raw.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]")
    fast.save_pretrained(tmp_path / "tok")
    out = run(
        [
            {"reasoning": "a b a", "completion": "\\boxed{4}"},
            {"reasoning": " ".join(["a"] * 40), "completion": "\\boxed{4}"},
        ],
        length={"max_tokens": 20, "tokenizer": str(tmp_path / "tok")},
        repetition=None,
    )
    assert out["flags"].to_list() == [[], ["too_long"]]


def test_token_bounds_need_a_tokenizer():
    with pytest.raises(RecipeError, match=r"need filters\.length\.tokenizer"):
        run([{}], length={"max_tokens": 5})


def test_a_loop_after_long_varied_reasoning_is_caught():
    import random

    rng = random.Random(0)
    varied = " ".join(
        f"Step {i}: we take {rng.randint(1, 999)} and add {rng.randint(1, 999)} to it."
        for i in range(200)
    )  # about 2,400 varied words, so repeated n-grams stay a small share
    loop = " Wait, let me check that step again." * 20
    checks = " ".join(f"Wait, let me check. Then {i} works." for i in range(12))
    out = run(
        [
            {"reasoning": varied + loop},
            {"reasoning": varied + " Wait, let me check that step again." * 3},
            {"reasoning": varied + " " + checks},  # the same short check, not in a row
        ]
    )
    assert out["flags"].to_list() == [["repetition"], [], []]
    tolerant = run([{"reasoning": varied + loop}], repetition={"max_sentence_run": 30})
    assert tolerant["flags"].to_list() == [[]]


def test_a_large_batch_is_checked_by_worker_processes_with_the_same_flags(monkeypatch):
    """Past PARALLEL_ROWS the row checks run in worker processes, one part each; the
    flags are the ones one process gives, row for row."""
    kinds = [
        {},
        {"finish_reason": "length", "completion": ""},
        {"reasoning": "\n\n".join(["Let me reconsider the previous step."] * 8)},
        {"reasoning": "", "completion": "no box"},
        {"reasoning": "We check. " + "Wait, let me check that step again. " * 40},
    ]
    rows = [kinds[(k * 7) % len(kinds)] | {"completion": f"\\boxed{{{k}}}"} for k in range(2500)]
    rows[1::5] = [{"finish_reason": "length", "completion": ""}] * len(rows[1::5])
    frame = run_frame(rows)
    spread = FilterStage(FiltersConfig(), StageContext(Path(".")))
    monkeypatch.setattr("curate.filters.available_cores", lambda: 2)
    parallel = spread.process(frame)
    assert spread._pool is not None  # the worker processes did the row checks
    spread.close()
    monkeypatch.setattr("curate.filters.PARALLEL_ROWS", 10**9)
    alone = FilterStage(FiltersConfig(), StageContext(Path("."))).process(frame)
    assert parallel.select("flags", "dropped").equals(alone.select("flags", "dropped"))
    assert set(parallel["dropped"].drop_nulls()) == {"truncated", "repetition", "empty_reasoning"}


@pytest.mark.parametrize("limit, flagged", [(0.04, True), (0.06, False)])
def test_the_foreign_share_counts_letters_of_reasoning_and_completion(limit, flagged):
    """5 foreign letters (3 in the reasoning, 2 in the completion) of 100 letters: a share
    of 0.05; digits, spaces, symbols and Greek letters are not foreign."""
    row = {
        "reasoning": "a" * 40 + " 123 +-= " + "我们需" + "α" * 10,
        "completion": "b" * 43 + "仔细 \\boxed{4}",
    }
    out = run([row, {}], language={"max_foreign_share": limit})
    assert out["flags"].to_list() == [["language_mix"] if flagged else [], []]


def test_the_filter_and_the_verifier_agree_on_what_the_answer_is(tmp_path: Path):
    """An answer the verifier found by its fallbacks ("The final answer is 7") is an answer to
    the filter too; one it did not find is not; an answer tag counts; a box in the reasoning
    of a Sky-T1 trace does not."""
    from curate.verify.stage import VerifyConfig, VerifyStage

    completions = [
        "The final answer is 7",
        "I am not sure.",
        "<answer>7</answer>",
        "\\boxed{}",
        "<|begin_of_thought|>\\boxed{7}<|end_of_thought|> no answer",
    ]
    frame = run_frame([{"completion": c, "reference": "7"} for c in completions])
    verify = VerifyStage(VerifyConfig(workers=1), StageContext(tmp_path))
    try:
        verified = verify.process(frame)
    finally:
        verify.close()
    verdicts = verified["verdict"].to_list()
    assert verdicts == ["correct", "unverifiable", "correct", "incorrect", "unverifiable"]
    stage = FilterStage(FiltersConfig(), StageContext(tmp_path))
    after_verify = stage.process(verified)["flags"].to_list()
    before_verify = stage.process(frame)["flags"].to_list()
    assert [flags[:1] for flags in after_verify] == [
        [],
        ["no_boxed_answer"],
        [],
        ["malformed_boxed_answer"],
        ["unclosed_think"],
    ]
    assert before_verify[:3] == [[], ["no_boxed_answer"], []]


def test_the_filter_and_the_streaming_guard_agree_on_what_is_foreign():
    """One notion of a script for both: fullwidth Latin and Latin Extended-D are Latin to
    each (the guard's own code-point ranges used to call them foreign)."""
    from curate.filters import LanguageFilter, foreign_shares
    from curate.generate.guards import Guard, StreamGuards

    texts = ["ＡＢＣ fullwidth latin", "Ꞔ extended latin", "α and β", "混合 mixed", "plain"]
    frame = pl.DataFrame({"reasoning": texts, "completion": [""] * len(texts)})
    shares = foreign_shares(frame, LanguageFilter(max_foreign_share=0.0))
    config = StreamGuards(max_foreign_share=0.0, min_chars=0, check_every=1)
    stopped = []
    for text in texts:
        guard = Guard(config)
        stopped.append(guard.feed(text) == "guard_language")
    assert stopped == [share > 0 for share in shares] == [False, False, False, True, False]


def test_the_answer_form_is_the_one_the_domains_verifier_reads(monkeypatch):
    """A plugin verifier that claims a domain says which completions hold no answer it can
    read; a domain no verifier claims is held to no form."""
    from curate import registry
    from curate.verify.base import Verifier

    class Units(Verifier):
        name = "units"
        domains = ("physics",)

        def verify(self, problems):  # pragma: no cover - only its answer form is asked
            return []

        @classmethod
        def missing_answer(cls, completion, judged_reason=None):
            return None if completion.rstrip().endswith("m/s") else "no_units"

    monkeypatch.setattr(registry.verifiers, "_items", {**registry.verifiers._items, "units": Units})
    out = run(
        [
            {"domain": "physics", "completion": "It moves at 3 m/s"},
            {"domain": "physics", "completion": "\\boxed{3}"},
            {"domain": "geology", "completion": "Basalt, I think."},
            {"domain": "math", "completion": "Basalt, I think."},
        ]
    )
    assert out["flags"].to_list() == [[], ["no_units"], [], ["no_boxed_answer"]]


def _sentence_run_cut_first(text: str) -> int:
    """The sentence-run rule written plainly: cut at sentence ends, then collapse each."""
    longest, run, previous = 0, 0, None
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        key = " ".join(sentence.split()).lower()
        run = run + 1 if key and key == previous and len(key.split()) >= 3 else 1
        previous, longest = key, max(longest, run)
    return longest


def test_the_quick_repetition_counts_decide_as_the_plain_rules_do():
    """The sentence run (collapsed once, then cut) and the n-gram share (settled by word
    pairs where they suffice) give the plain rules' answers on texts made to trip them:
    odd whitespace (Unicode, tabs, control separators), case, final sigma, loops."""
    rng = random.Random(0)
    pieces = [
        "a",
        "Go on.",
        "go  on.",
        "Wait, check again.",
        "wait,\ncheck again!",
        "\n\n",
        "?",
        ".",
        "x y z.",
        "X Y Z.",
        "ΑΣ.",
        "\x1c",
        "\u3000",
        "\xa0",
        "İ.",
    ]
    for _ in range(3000):
        text = "".join(
            rng.choice(pieces) + rng.choice(["", " ", "\n", "\t"])
            for _ in range(rng.randint(0, 60))
        )
        text += "Let me check that again. " * rng.choice([0, 0, 5, 12])
        assert longest_sentence_run(text) == _sentence_run_cut_first(text), text
        words = text.split()
        for n, limit in ((2, 0.1), (3, 0.5), (10, 0.5), (10, 0.9)):
            total = len(words) - n + 1
            plain = total > 0 and 1 - len(set(word_ngrams(words, n))) / total > limit
            assert repeats_over(words, n, limit) == plain, text
