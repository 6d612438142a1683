"""Every reasoning-gym task that builds: its own answer scores 1 boxed, bare and in the
`<answer>` tags reasoning-gym's prompt asks for; another item's answer does not."""

from __future__ import annotations

import json
import warnings

import pytest

from curate.verify.dispatch import Dispatcher, Item

SIZE, SEED = 2, 7


def gym_tasks() -> list[tuple[str, list[dict[str, object]]]]:
    import reasoning_gym
    from reasoning_gym.factory import DATASETS

    built = []
    for name in sorted(DATASETS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = reasoning_gym.create_dataset(name, size=SIZE, seed=SEED)
                entries = [data[i] for i in range(SIZE)]
        except Exception:  # a task that needs settings of its own (composite) does not build
            continue
        if all(entry["answer"] is not None for entry in entries):  # some have no answer of
            built.append((name, entries))  # their own (graph_color): their scorer checks it
    return built


def formats(answer: str) -> dict[str, str]:
    return {
        "boxed": f"Working it out.\n\nThe answer is \\boxed{{{answer}}}",
        "bare": answer,
        "tags": f"<think>let me try \\boxed{{0}}</think>\n<answer>{answer}</answer>",
    }


@pytest.fixture(scope="module")
def tasks():
    return gym_tasks()


def test_every_task_scores_its_own_answer_in_all_three_formats(tasks):
    assert len(tasks) >= 95
    items, labels = [], []
    for name, entries in tasks:
        for index, entry in enumerate(entries):
            metadata = json.dumps(
                {"gym": {"task": name, "size": SIZE, "seed": SEED, "index": index}}
            )
            for kind, text in formats(str(entry["answer"])).items():
                items.append(Item(text, str(entry["answer"]), "puzzle", metadata))
                labels.append((name, index, kind))
    dispatcher = Dispatcher("auto", workers=1)
    try:
        judged = dispatcher.judge(items)
    finally:
        dispatcher.close()
    wrong = [
        label
        for label, (result, _) in zip(labels, judged, strict=True)
        if result.verdict != "correct"
    ]
    assert wrong == []


def test_another_items_answer_is_not_accepted(tasks):
    items, labels = [], []
    for name, entries in tasks:
        first, second = (str(e["answer"]) for e in entries)
        if first.strip() == second.strip():
            continue
        metadata = json.dumps({"gym": {"task": name, "size": SIZE, "seed": SEED, "index": 0}})
        for kind, text in formats(second).items():
            items.append(Item(text, first, "puzzle", metadata))
            labels.append((name, kind))
    dispatcher = Dispatcher("auto", workers=1)
    try:
        judged = dispatcher.judge(items)
    finally:
        dispatcher.close()
    accepted = {
        name for (name, _), (r, _) in zip(labels, judged, strict=True) if r.verdict == "correct"
    }
    # puzzles with several right answers accept the other item's answer only if it also solves
    # this one; across 90+ tasks that is a handful at most
    assert len(accepted) <= 5, accepted
    assert len(labels) >= 200


HASH_SEEDED_TASKS = ["polynomial_multiplication", "word_ladder", "knight_swap", "ransom_note"]
MAKE_ROWS = """
import json, sys, warnings
warnings.filterwarnings("ignore")
from curate.sources.gym import GymConfig, GymSource
source = GymSource.__new__(GymSource)
source.config = GymConfig(tasks={task: 6 for task in sys.argv[1:]})
rows = [row for _, _, row in source.rows()]
print(json.dumps([[r["answer"], json.dumps(r["__metadata__"])] for r in rows]))
"""
JUDGE_ROWS = """
import json, sys, warnings
warnings.filterwarnings("ignore")
from curate.verify.dispatch import Dispatcher, Item
rows = json.loads(sys.stdin.read())
dispatcher = Dispatcher("puzzle", workers=1)
judged = dispatcher.judge([Item(answer, answer, "puzzle", metadata) for answer, metadata in rows])
print(json.dumps([result.verdict for result, _ in judged]))
dispatcher.close()
"""


def test_puzzles_are_judged_against_the_entry_they_were_made_from():
    """Problems made in a process with one hash seed and judged in another: their own answers
    are correct (a rebuilt entry differs for these tasks), each other's are not."""
    import subprocess
    import sys

    def python(code: str, seed: str, stdin: str = "", *args: str) -> str:
        env = {**__import__("os").environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return done.stdout.strip().splitlines()[-1]

    rows = json.loads(python(MAKE_ROWS, "1", "", *HASH_SEEDED_TASKS))
    verdicts = json.loads(python(JUDGE_ROWS, "2", json.dumps(rows)))
    assert verdicts == ["correct"] * len(rows)
    swapped = [[rows[i - 1][0], rows[i][1]] for i in range(len(rows))]  # another item's answer
    distinct = [i for i in range(len(rows)) if rows[i - 1][0] != rows[i][0]]
    wrong = json.loads(python(JUDGE_ROWS, "2", json.dumps(swapped)))
    assert all(wrong[i] != "correct" for i in distinct)
