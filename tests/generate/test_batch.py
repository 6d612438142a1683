"""Batch mode (`teacher.mode: batch`) against FakeBatchServer, a test server speaking
OpenAI's Batch API and Anthropic's Message Batches: every sample arrives once, failed and
expired requests are sent again alone, a lost submit reply is found instead of sent
twice, a killed run polls its batch again, and batch and online share one cache."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.errors import RecipeError
from curate.files import run_stage_on_file
from curate.generate import asking
from curate.generate.cache import SampleCache
from curate.stats import teacher_spend
from tests.conftest import KILLED_AT_THIRD_CALL, write_jsonl
from tests.generate.fake_batch_server import BatchFaults, FakeBatchServer

SAMPLES = 3


def problems(tmp_path: Path, count: int) -> Path:
    rows = [
        {"problem": f"Problem {i}: what is {i} + 1?", "reference": str(i + 1)} for i in range(count)
    ]
    return write_jsonl(tmp_path / "problems.jsonl", rows)


def settings(server: FakeBatchServer, provider: str, *extra: str) -> list[str]:
    if provider == "openai":
        where = ["backend=openai", f"base_url={server.openai_url}"]
    else:
        where = ["backend=anthropic", f"base_url={server.root}"]
    return [*where, "model=fake", f"samples={SAMPLES}", "mode=batch", "batch.poll_s=0.01", *extra]


def batch_teacher(server: FakeBatchServer, provider: str) -> dict[str, Any]:
    """A recipe's teacher section: two samples a problem, in batch mode."""
    url = server.openai_url if provider == "openai" else server.root
    return {
        "backend": provider,
        "model": "fake",
        "base_url": url,
        "samples": 2,
        "mode": "batch",
        "batch": {"poll_s": 0.01},
    }


def generate(
    tmp_path: Path, server: FakeBatchServer, provider: str, count: int, *extra: str
) -> tuple[dict[str, Any], pl.DataFrame]:
    out = tmp_path / "traces.parquet"
    stats = run_stage_on_file(
        "generate", problems(tmp_path, count), out, settings(server, provider, *extra)
    )
    return stats, pl.read_parquet(out)


def every_sample_once(traces: pl.DataFrame, count: int) -> None:
    assert traces.height == count * SAMPLES
    assert traces["error"].null_count() == traces.height, traces["error"].drop_nulls().to_list()
    assert traces.select("problem_id", "sample_idx").n_unique() == traces.height
    for row in traces.iter_rows(named=True):  # each reply answers its own prompt
        assert row["problem"][:30] in row["reasoning"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_failed_requests_are_sent_again_alone_and_every_sample_arrives_once(
    tmp_path: Path, provider: str
):
    with FakeBatchServer(BatchFaults(fail_first=0.2)) as server:
        stats, traces = generate(tmp_path, server, provider, 40)
    every_sample_once(traces, 40)
    resent = {cid for cid, times in server.sent.items() if times == 2}
    assert resent and max(server.sent.values()) == 2
    assert all(server.fails_at_first(cid) for cid in resent)  # only those that failed
    counts = stats["counts"]
    assert counts["batches_submitted"] == 2  # the first, then the failed ones alone
    assert counts["requests_resubmitted"] == len(resent)
    assert counts["samples_generated"] == 40 * SAMPLES and counts.get("failed", 0) == 0


def test_openai_asks_all_samples_of_a_problem_in_one_line_with_n(tmp_path: Path):
    with FakeBatchServer() as server:
        _, traces = generate(tmp_path, server, "openai", 10)
    every_sample_once(traces, 10)
    assert len(server.sent) == 10  # one line a problem, n=3
    apart = tmp_path / "apart"
    apart.mkdir()
    with FakeBatchServer() as server:
        generate(apart, server, "openai", 10, "use_n=false")
    assert len(server.sent) == 30


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_expired_batch_sends_its_unfinished_requests_again(tmp_path: Path, provider: str):
    with FakeBatchServer(BatchFaults(expire_first=True)) as server:
        stats, traces = generate(tmp_path, server, provider, 20)
    every_sample_once(traces, 20)
    times = Counter(server.sent.values())
    lines = len(server.sent)
    assert times[2] == lines - lines // 2 and times[1] == lines // 2  # the unfinished half
    assert stats["counts"]["batches_submitted"] == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_lost_submit_reply_is_found_again_and_never_sent_twice(tmp_path: Path, provider: str):
    with FakeBatchServer(BatchFaults(lose_submit_reply=True)) as server:
        stats, traces = generate(tmp_path, server, provider, 15)
    every_sample_once(traces, 15)
    assert server.submits == 1 and set(server.sent.values()) == {1}
    assert stats["counts"]["batches_adopted"] == 1


def test_batches_are_split_at_the_size_limit(tmp_path: Path):
    with FakeBatchServer() as server:
        stats, traces = generate(tmp_path, server, "anthropic", 10, "batch.max_requests=7")
    every_sample_once(traces, 10)
    sizes = sorted(len(b.lines) for b in server.batches.values())
    assert sizes == [2, 7, 7, 7, 7] and stats["counts"]["batches_submitted"] == 5


def test_batch_and_online_share_one_cache(tmp_path: Path):
    """Samples made in batch mode are reused online (and back): no request is made."""
    with FakeBatchServer() as server:
        generate(tmp_path, server, "anthropic", 12)
        stats, _ = generate(tmp_path, server, "anthropic", 12, "mode=online")
        assert server.online == 0
        assert stats["counts"]["cache_hits"] == 12 * SAMPLES
        extra = generate(tmp_path, server, "anthropic", 14, "mode=online")[0]
        assert server.online == 2 * SAMPLES and extra["counts"]["cache_hits"] == 12 * SAMPLES
        again = generate(tmp_path, server, "anthropic", 14)[0]
        assert again["counts"]["cache_hits"] == 14 * SAMPLES and len(server.batches) == 1


def test_batch_cost_is_at_the_batch_price_with_reasoning_tokens(tmp_path: Path):
    prices = ["price_prompt=2", "price_completion=8"]
    with FakeBatchServer() as server:
        stats, _ = generate(tmp_path, server, "openai", 10, *prices)
    counts = stats["counts"]
    online = counts["spent_prompt_tokens"] * 2 + counts["spent_completion_tokens"] * 8
    assert counts["cost_micro_usd"] == round(online * 0.5)
    assert counts["spent_reasoning_tokens"] == 10 * SAMPLES * 5  # the fake reports 5 a choice
    assert counts["spent_completion_tokens"] == 10 * SAMPLES * 9
    line = teacher_spend({"generate": stats})  # as curate stats, the report and the card say it
    assert "(150 of them reasoning)" in line and line.endswith("at the batch price")


def test_anthropic_thinking_blocks_are_the_reasoning(tmp_path: Path):
    extra = ["thinking_budget=1024", "max_tokens=4096", "temperature=1", "mode=online"]
    with FakeBatchServer() as server:
        _, traces = generate(tmp_path, server, "anthropic", 4, *extra)
    assert traces["reasoning"].str.starts_with("thinking about").all()
    assert (traces["completion"] == "\\boxed{7}").all()
    with pytest.raises(RecipeError, match="temperature 1"):
        generate(tmp_path, server, "anthropic", 4, "thinking_budget=1024", "max_tokens=4096")


def test_anthropic_online_sends_the_system_prompt_apart_and_waits_out_overload(tmp_path: Path):
    extra = ["mode=online", "system_prompt=Be brief.", "stop=[END]", "retry_base_s=0.01"]
    with FakeBatchServer() as server:
        server.overloaded = 3
        stats, traces = generate(tmp_path, server, "anthropic", 2, *extra)
    every_sample_once(traces, 2)
    body = server.bodies[0]
    assert body["system"] == "Be brief." and [m["role"] for m in body["messages"]] == ["user"]
    assert body["stop_sequences"] == ["END"] and "top_p" not in body  # unless set
    assert traces["finish_reason"].to_list() == ["stop"] * 2 * SAMPLES
    assert stats["counts"]["spent_prompt_tokens"] == sum(traces["prompt_tokens"])  # each paid


def test_a_cancelled_batch_leaves_failed_samples_that_retry_failed_sends_again(
    make_recipe, tmp_path: Path
):
    with FakeBatchServer(BatchFaults(cancel_first=True)) as server:
        recipe = make_recipe(teacher=batch_teacher(server, "anthropic"), select=None)
        run_dir = tmp_path / "r"
        first = CliRunner().invoke(app, ["run", str(recipe), "--run-dir", str(run_dir)])
        assert first.exit_code == 0, first.output
        stats = json.loads((run_dir / "stats.json").read_text())["generate"]
        assert stats["counts"]["failed"] == 40  # half of 40 problems x 2 samples: cancelled
        assert "canceled" in next(iter(stats["errors"]))
        assert set(server.sent.values()) == {1}  # a cancelled request is not sent again unasked
        again = CliRunner().invoke(
            app, ["run", str(recipe), "--run-dir", str(run_dir), "--retry-failed"]
        )
        assert again.exit_code == 0, again.output
    assert Counter(server.sent.values()) == {1: 40, 2: 40}
    traces = pl.read_parquet(run_dir / "ledger")
    assert traces.filter(pl.col("dropped") == "generation_failed").height == 0


def test_a_run_killed_while_polling_polls_its_batch_again(make_recipe, tmp_path: Path):
    with FakeBatchServer(polls=6) as server:
        recipe = make_recipe(teacher=batch_teacher(server, "openai"), select=None)
        run_dir = tmp_path / "r"
        args = ["curate.generate.batch:describe", "run", str(recipe), "--run-dir", str(run_dir)]
        killed = subprocess.run(
            [sys.executable, "-c", KILLED_AT_THIRD_CALL, *args], capture_output=True, text=True
        )
        assert killed.returncode == -9, killed.stderr
        assert server.submits == 1
        resumed = CliRunner().invoke(app, ["run", str(recipe), "--run-dir", str(run_dir)])
        assert resumed.exit_code == 0, resumed.output
    assert server.submits == 1 and set(server.sent.values()) == {1}
    traces = pl.read_parquet(run_dir / "ledger")
    assert traces.filter(pl.col("error").is_null()).height == 80


def test_a_judge_in_batch_mode_answers_through_the_same_client(tmp_path: Path):
    with FakeBatchServer() as server:
        config = asking.judge_config(
            {
                "backend": "anthropic",
                "model": "fake",
                "base_url": server.root,
                "mode": "batch",
                "batch": {"poll_s": 0.01},
            },
            "verify.judge",
        )
        cache = SampleCache(tmp_path / "judge.sqlite")
        questions = [[{"role": "user", "content": f"Is {i} even?"}] for i in range(5)]
        spent: Counter[str] = Counter()
        replies = asking.ask_each(config, cache, questions, spent, "judge_")
        cache.close()
    assert all(r is not None and "Is" in (r.reasoning or "") for r in replies)
    assert len(server.batches) == 1 and spent["judge_spent_completion_tokens"] == 5 * 11


def test_a_backend_without_a_batch_api_refuses_batch_mode(make_recipe, tmp_path: Path):
    recipe = make_recipe(teacher={"backend": "simulated", "mode": "batch"})
    result = CliRunner().invoke(app, ["run", str(recipe), "--run-dir", str(tmp_path / "r")])
    assert result.exit_code != 0
    assert "mode: batch needs a provider with a batch API" in result.output
