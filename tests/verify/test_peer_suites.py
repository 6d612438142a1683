"""Peer suites: other people's test cases, judged by curate's verifiers and rewards."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import polars as pl
import pytest

from curate.rewards import VerifierReward
from curate.stage import StageContext
from curate.verify.base import ProblemAnswers
from curate.verify.math import MathVerifier
from curate.verify.stage import VerifyConfig, VerifyStage
from tests.conftest import EVALDATA

MATH_VERIFY_TESTS = EVALDATA / "math_verify_tests"
BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "peer_suites.py"


def peer_suites_module():
    spec = importlib.util.spec_from_file_location("peer_suites", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not MATH_VERIFY_TESTS.exists(), reason="../shared/evaldata is not present")
def test_math_verify_default_config_cases_all_agree():
    """Every case of Math-Verify's own suite written for its default configuration; the
    others are listed by benchmarks/peer_suites.py with the setting that differs."""
    peers = peer_suites_module()
    every = [c for c in peers.load_cases(MATH_VERIFY_TESTS) if c.default_config]
    cases = [c for c in every if (c.gold, c.pred) not in peers.SUITE_ERRORS]
    assert len(cases) >= 140 and len(every) - len(cases) == len(peers.SUITE_ERRORS)
    verifier = MathVerifier(timeout_s=5, workers=2)
    try:
        results = verifier.verify([ProblemAnswers(c.gold, None, [c.pred]) for c in cases])
    finally:
        verifier.close()
    wrong = [
        (c.test, c.gold, c.pred[-80:], c.expected, r[0])
        for c, r in zip(cases, results, strict=True)
        if (r[0].verdict == "correct") != c.expected
    ]
    assert wrong == []


def test_reward_suites_of_trl_open_r1_and_hendrycks_math_agree():
    """The reward-function cases of TRL and open-r1 and the MATH answer-equivalence cases
    (benchmarks/peer_cases.py, each with its source): curate's reward agrees with every
    case but two order-only cases of Hendrycks' string grader, and never gives 0.0 where a
    suite skips the problem; the plain math-verify loop is run beside it for comparison."""
    peers = peer_suites_module()
    suites = peers.reward_report()
    assert set(suites) == {"trl", "open-r1", "hendrycks-math"}
    for name, suite in suites.items():
        assert suite["curate_zero_where_skip"] == 0, name
        assert suite["curate"] >= suite["plain"], name
    assert suites["trl"]["curate"] == suites["trl"]["cases"] == 18
    assert suites["open-r1"]["curate"] == suites["open-r1"]["cases"]
    order_only = {d["test"] for d in suites["hendrycks-math"]["disagreements"]}
    assert order_only <= {"test_order", "test_decimals"}  # "10, 4, -2": a set, for math-verify


def test_the_loader_reads_settings_from_the_judging_call(tmp_path: Path):
    peers = peer_suites_module()
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "@pytest.mark.parametrize('gold,pred,expected', [('1', '1', 1), ('2', '3', 0)])\n"
        "def test_default(gold, pred, expected):\n"
        "    assert compare_strings(gold, pred, match_types=['latex', 'expr']) == expected\n"
        "@pytest.mark.parametrize('gold,pred,expected,precision', [('1', '1.01', 1, 1)])\n"
        "def test_other(gold, pred, expected, precision):\n"
        "    assert compare_strings(gold, pred, precision=precision) == expected\n"
    )
    cases = peers.load_cases(tmp_path)
    assert [(c.gold, c.expected, c.default_config) for c in cases] == [
        ("1", True, True),
        ("2", False, True),
        ("1", True, False),
    ]
    assert cases[2].config == "{'precision': 1}"


def gym_items(task: str, size: int, seed: int = 3):
    import reasoning_gym

    data = reasoning_gym.create_dataset(task, size=size, seed=seed)
    return data, [
        (
            index,
            data[index],
            json.dumps({"gym": {"task": task, "size": size, "seed": seed, "index": index}}),
        )
        for index in range(size)
    ]


def test_rewards_and_verify_agree_with_reasoning_gym(tmp_path: Path):
    """Right and wrong answers to reasoning-gym items: reasoning-gym's own scorer, the verify
    stage (through `curate verify` on a file) and VerifierReward give the same verdicts."""
    from typer.testing import CliRunner

    from curate.cli import add_stage_commands, app

    rows, expected = [], []
    for task in ("countdown", "basic_arithmetic", "n_queens"):
        data, items = gym_items(task, 8)
        for index, entry, metadata in items:
            for answer in (entry["answer"], "1 + 1"):
                score = data.score_answer(answer=answer, entry=data[index])
                rows.append(
                    {
                        "problem": entry["question"],
                        "reference": entry["answer"],
                        "domain": "puzzle",
                        "metadata": metadata,
                        "completion": f"<answer>{answer}</answer> \\boxed{{{answer}}}",
                    }
                )
                expected.append(score >= 1.0)
    source = tmp_path / "gym.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "verified.jsonl"
    add_stage_commands()
    result = CliRunner().invoke(app, ["verify", "--in", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    verdicts = [json.loads(line)["verdict"] for line in out.read_text().splitlines()]
    assert [v == "correct" for v in verdicts] == expected
    reward = VerifierReward("auto", workers=1)
    try:
        scores = reward(
            prompts=[r["problem"] for r in rows],
            completions=[r["completion"] for r in rows],
            reference=[r["reference"] for r in rows],
            domain=[r["domain"] for r in rows],
            metadata=[json.loads(r["metadata"]) for r in rows],  # as datasets may load it
        )
    finally:
        reward.close()
    assert [s == 1.0 for s in scores] == expected
    assert sum(expected) >= 20 and not all(expected)


def test_puzzles_sharing_a_reference_are_judged_by_their_own_metadata():
    """Two n_queens puzzles with the same stored solution but different given queens: a board
    valid for one only must be correct for that one, whatever else is in the batch."""
    data, items = gym_items("n_queens", 40, seed=1)
    by_answer: dict[str, list[int]] = {}
    for index, entry, _ in items:
        by_answer.setdefault(entry["answer"], []).append(index)
    pair = next(
        (a, b, board)
        for indices in by_answer.values()
        for a in indices
        for b in indices
        if a != b
        for board in data[a]["metadata"]["valid_answers"]
        if board not in data[b]["metadata"]["valid_answers"]
    )
    first, second, board = pair
    completions = [f"\\boxed{{{board}}}"] * 2
    metadata = [items[first][2], items[second][2]]
    reward = VerifierReward("puzzle", workers=1)
    try:
        scores = reward(
            prompts=["", ""],
            completions=completions,
            reference=[data[first]["answer"], data[second]["answer"]],
            metadata=metadata,
        )
    finally:
        reward.close()
    assert scores == [1.0, 0.0]
    stage = VerifyStage(VerifyConfig(workers=1), StageContext(Path("/nonexistent")))
    try:
        frame = stage.process(
            pl.DataFrame(
                {
                    "reference": [data[first]["answer"], data[second]["answer"]],
                    "completion": completions,
                    "domain": ["puzzle", "puzzle"],
                    "metadata": metadata,
                }
            )
        )
    finally:
        stage.close()
    assert frame["verdict"].to_list() == ["correct", "incorrect"]
