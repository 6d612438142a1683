from pathlib import Path

import polars as pl

from curate.dedup import DedupConfig, DedupStage, NearDuplicates, TraceDedupConfig, TraceDedupStage
from curate.stage import StageContext

LONG = (
    "Find all real numbers x such that x squared minus five x plus six equals zero, "
    "and give the sum of all such values of x"
)


def dedup(problems: list[str], references: list[str | None] | None = None, **config):
    frame = pl.DataFrame(
        {
            "problem_id": [f"p{i}" for i in range(len(problems))],
            "problem": problems,
            "reference": references or [None] * len(problems),
        },
        schema_overrides={"reference": pl.String},
    )
    return DedupStage(DedupConfig(**config), StageContext(Path("."))).process(frame)


def test_exact_and_near_duplicates_keep_the_best_copy():
    out = dedup(
        [LONG + ".", LONG + " please.", "  " + LONG.upper() + ". ", "Something else."],
        references=[None, "5", None, None],
    )
    assert out["dup_of"].to_list() == ["p1", None, "p1", None]  # p1 has a reference
    assert out["dropped"].to_list() == ["near_duplicate", None, "near_duplicate", None]
    exact = dedup([LONG, LONG.upper()])
    assert exact["dropped"].to_list() == [None, "exact_duplicate"]


def test_problems_that_differ_only_in_numbers_stay_apart():
    template = (
        "A train leaves the station at {a} km per hour and another follows at {b} km "
        "per hour {c} minutes later. After how many minutes does the second catch up?"
    )
    problems = [
        template.format(a=a, b=b, c=c) for a, b, c in [(60, 90, 20), (50, 75, 30), (40, 100, 15)]
    ]
    assert dedup(problems)["dup_of"].to_list() == [None, None, None]


def test_minhash_is_deterministic_and_threshold_matters():
    near = [LONG, LONG + " now"]  # one shingle of 23 differs: Jaccard about 0.96
    assert dedup(near)["dup_of"].to_list() == [None, "p0"]
    strict = dedup(near, near=NearDuplicates(threshold=0.99).model_dump())
    assert strict["dup_of"].to_list() == [None, None]
    assert dedup(near, near=None)["dup_of"].to_list() == [None, None]


def test_duplicate_traces_within_a_problem():
    frame = pl.DataFrame(
        {
            "problem_id": ["a", "a", "a", "b"],
            "sample_idx": [0, 1, 2, 0],
            "reasoning": ["Think.", "think. ", "Other.", "Think."],
            "completion": ["\\boxed{1}"] * 4,
        }
    )
    out = TraceDedupStage(TraceDedupConfig(), StageContext(Path("."))).process(frame)
    assert out["dup_of"].to_list() == [None, "a#0", None, None]
    assert out["dropped"].to_list() == [None, "duplicate_trace", None, None]


def test_short_problems_differing_in_one_number_stay_apart():
    """MinHash alone estimates these two at ~0.8 Jaccard; their numbers differ, so they differ."""
    problems = [
        "Find the Least Common Multiple (LCM) of these numbers: 11, 69",
        "Find the Least Common Multiple (LCM) of these numbers: 11, 18",
        "Find the least common multiple (LCM) of these numbers: 11, 69 .",
    ]
    assert dedup(problems)["dup_of"].to_list() == [None, None, "p0"]


def test_near_duplicates_must_agree_on_their_answers():
    """Same words, another answer: two problems (a variant asking for another quantity, or
    a copy whose reference was corrected); equal answers in other spellings still merge."""
    asks_product = LONG.replace("the sum", "the product")
    problems = [LONG + ".", LONG + " please.", LONG + " now.", asks_product, LONG + " here."]
    out = dedup(problems, references=["5", "\\frac{10}{2}", "6", "6", None])
    # p1 agrees with p0 (5 = 10/2); p2 says 6: kept apart; p3 is another problem, kept;
    # p4 has no reference: it merges with the group
    assert out["dup_of"].to_list() == [None, "p0", None, None, "p0"]
    merged = dedup(problems, references=["5", "\\frac{10}{2}", "6", "6", None], answers=False)
    assert merged["dup_of"].to_list()[:3] == [None, "p0", "p0"]


def test_a_row_without_an_answer_does_not_join_two_answers():
    out = dedup([LONG + ".", LONG + " please.", LONG + " now."], references=["5", None, "7"])
    assert out["dup_of"].to_list() == [None, "p0", None]  # 5 and 7 never in one group


def test_a_trace_is_a_duplicate_only_with_the_same_reasoning_and_the_same_completion():
    """The same words split differently between reasoning and answer are another trace;
    case and spacing (tabs, no-break spaces, ends) are not a difference."""
    frame = pl.DataFrame(
        {
            "problem_id": ["a"] * 4,
            "sample_idx": [0, 1, 2, 3],
            "reasoning": ["Add them up", "Add them", "add\tthem\u00a0 up  ", None],
            "completion": ["so 4", "up so 4", " So 4", "so 4"],
        }
    )
    out = TraceDedupStage(TraceDedupConfig(), StageContext(Path("."))).process(frame)
    assert out["dup_of"].to_list() == [None, None, "a#0", None]
