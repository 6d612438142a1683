"""The generate stage against FakeChatServer with injected faults: nothing lost, nothing twice."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from curate.files import run_stage_on_file
from tests.conftest import write_jsonl
from tests.generate.fake_server import FakeChatServer, FakeHandler, Faults

PROBLEMS = 2000
SAMPLES = 4


def problems_file(tmp_path: Path, count: int) -> Path:
    return write_jsonl(
        tmp_path / "problems.jsonl",
        [
            {"problem": f"Problem number {i}: what is {i} + 1?", "reference": str(i + 1)}
            for i in range(count)
        ],
    )


def generate(tmp_path: Path, server: FakeChatServer, count: int, *extra: str) -> pl.DataFrame:
    return generated(tmp_path, server, count, *extra)[1]


def generated(
    tmp_path: Path, server: FakeChatServer, count: int, *extra: str
) -> tuple[dict, pl.DataFrame]:
    """The generate stage's stats and traces for `count` problems from the server."""
    out = tmp_path / "traces.parquet"
    settings = [
        "backend=openai",
        "model=fake",
        f"base_url={server.url}",
        f"samples={SAMPLES}",
        "timeout_s=0.5",
        "retry_base_s=0.01",
        "max_retries=12",
        "max_concurrency=64",
        *extra,
    ]
    stats = run_stage_on_file("generate", problems_file(tmp_path, count), out, settings)
    return stats, pl.read_parquet(out)


@pytest.mark.parametrize("style", ["field", "inline"])
def test_twenty_percent_faults_every_sample_once(tmp_path: Path, style: str):
    faults = Faults(
        rate_limited=0.05, server_error=0.05, hang=0.02, malformed=0.04, truncated=0.04, hang_s=1.0
    )
    count = PROBLEMS if style == "field" else 300
    with FakeChatServer(faults, style) as server:
        traces = generate(tmp_path, server, count)
    assert traces.height == count * SAMPLES
    keys = traces.select("problem_id", "sample_idx")
    assert keys.unique().height == count * SAMPLES  # every sample exactly once
    assert traces["error"].null_count() == count * SAMPLES  # all recovered
    for row in traces.sample(50, seed=1).iter_rows(named=True):
        assert row["problem"][:40] in row["reasoning"]  # each answer is its own prompt's
        assert "(choice" in row["reasoning"]
    truncated = traces.filter(pl.col("finish_reason") == "length")
    assert truncated.height > 0 and (truncated["completion"] == "").all()
    assert server.requests > count  # faults were retried


def test_rerun_sends_only_what_is_missing(tmp_path: Path):
    with FakeChatServer() as server:
        first = generate(tmp_path, server, 50)
        sent = server.requests
        again = generate(tmp_path, server, 50)
        assert server.requests == sent  # everything came from the cache
        more = generate(tmp_path, server, 50, "samples=6")
        assert server.requests == sent + 50  # one request per problem, for samples 4 and 5
    assert first.height == 200 and again.height == 200 and more.height == 300


def test_streamed_loops_are_cut_short(tmp_path: Path):
    faults = Faults(looping=0.3, server_error=0.05, seed=3)
    with FakeChatServer(faults, style="inline") as server:
        traces = generate(tmp_path, server, 40, "guards={}", "samples=2")
        sent = server.chunks_sent
    reasons = traces["finish_reason"].value_counts()
    stopped = traces.filter(pl.col("finish_reason") == "guard_repetition")
    assert stopped.height > 5, reasons
    assert (stopped["completion"] == "").all()
    finished = traces.filter(pl.col("finish_reason") == "stop")
    assert finished.height + stopped.height == 80
    assert (finished["completion"] == "\\boxed{0}").all()
    # each loop was read for a few thousand characters, not the 300,000 it would have run to
    assert stopped["reasoning"].str.len_chars().max() < 5000
    assert sent < 5000 * stopped.height  # and the server was told to stop by the hang-up


BAD_SHAPES = [  # valid JSON a misbehaving server sends, each for one problem
    b"[1, 2, 3]",
    b'{"choices": ["x"]}',
    b'{"choices": [{"message": {"content": 5}}]}',
    b"null",
    b'{"choices": 3}',
    b'{"choices": [{"message": "text"}], "usage": [1]}',
]


class ShapesHandler(FakeHandler):
    """Answers each problem's request with one of BAD_SHAPES, by the number in its prompt;
    problem 6 and on get a proper reply whose usage is of the wrong shape."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        number = int(prompt.split("Problem number ")[1].split(":")[0])
        if number < len(BAD_SHAPES):
            return self.reply(200, BAD_SHAPES[number])
        reply = {"choices": [self.choice(prompt, i, False) for i in range(body.get("n", 1))]}
        reply["usage"] = "lots"
        return self.reply(200, json.dumps(reply).encode())


def test_replies_of_the_wrong_shape_are_failed_samples_with_a_reason(tmp_path: Path):
    server = FakeChatServer()
    server.RequestHandlerClass = ShapesHandler
    with server:
        traces = generate(tmp_path, server, len(BAD_SHAPES) + 2, "max_retries=1")
    failed = traces.filter(pl.col("error").is_not_null())
    assert failed["problem_id"].n_unique() == len(BAD_SHAPES)
    assert all(reason.strip() for reason in failed["error"].to_list())
    reasons = " ".join(failed["error"].unique().to_list())
    assert "JSON list" in reasons and "JSON null" in reasons and "not a list" in reasons
    assert "no message with text content" in reasons
    good = traces.filter(pl.col("error").is_null())
    assert good.height == 2 * SAMPLES  # the proper replies are kept, usage or not


class HugeHandler(FakeHandler):
    """Answers every request with a 20 MB body."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        content = "x" * (20 << 20)
        reply = {"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}
        return self.reply(200, json.dumps(reply).encode())


def test_a_reply_larger_than_max_tokens_allow_is_refused_unread(tmp_path: Path):
    server = FakeChatServer()
    server.RequestHandlerClass = HugeHandler
    with server:
        traces = generate(tmp_path, server, 2, "max_tokens=64", "max_retries=0", "samples=1")
    assert traces["error"].null_count() == 0
    assert all("more than max_tokens allow" in e or "over the" in e for e in traces["error"])


def test_a_run_where_most_samples_failed_exits_1(make_recipe, tmp_path: Path):
    from typer.testing import CliRunner

    from curate.cli import app

    with FakeChatServer(Faults(server_error=0.8, seed=3)) as server:
        teacher = {
            "backend": "openai",
            "model": "fake",
            "base_url": server.url,
            "samples": 2,
            "max_retries": 0,
            "retry_base_s": 0.01,
        }
        recipe = make_recipe(teacher=teacher, select=None)  # keep what came
        result = CliRunner().invoke(app, ["run", str(recipe), "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 1, result.output
    assert "more than half the samples failed" in result.output


def test_raising_max_tokens_asks_again_only_for_what_was_cut_off(tmp_path: Path):
    """Samples that finished under a smaller max_tokens are the same under a larger one: only
    the truncated ones are requested again; a smaller limit keeps those that fit in it."""

    def run(max_tokens: int, server: FakeChatServer) -> tuple[dict, pl.DataFrame]:
        return generated(tmp_path, server, 60, f"max_tokens={max_tokens}")

    with FakeChatServer(Faults(truncated=0.25, seed=5)) as server:
        _, first = run(1000, server)
        cut = first.filter(pl.col("finish_reason") == "length").height
        assert 0 < cut < first.height
        stats, larger = run(2000, server)
        assert stats["counts"]["cache_hits"] == first.height - cut
        kept = first.filter(pl.col("finish_reason") == "stop").select("problem_id", "sample_idx")
        same = larger.join(kept, on=["problem_id", "sample_idx"], how="semi")
        before = first.join(kept, on=["problem_id", "sample_idx"], how="semi")
        assert (
            same.sort("problem_id", "sample_idx")["reasoning"].to_list()
            == before.sort("problem_id", "sample_idx")["reasoning"].to_list()
        )
        stats, _ = run(500, server)  # 7 tokens each: every finished sample fits
        finished = larger.filter(pl.col("finish_reason") == "stop").height
        assert stats["counts"]["cache_hits"] == finished


def test_caches_made_before_max_tokens_left_the_key_are_still_read(tmp_path: Path):
    from curate.generate.base import Request, Sample
    from curate.generate.cache import SampleCache
    from curate.generate.client import TeacherClient
    from curate.generate.openai import OpenAIConfig, OpenAITeacher

    config = OpenAIConfig(model="m", base_url="http://127.0.0.1:9/v1", max_tokens=512)
    backend = OpenAITeacher(config)
    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    cache = SampleCache(tmp_path / "cache.sqlite")
    cache.put(backend.legacy_gen_key(messages), Sample(0, "think", "\\boxed{4}", "stop"))
    request = Request("p", messages, [0, 1], backend.gen_key(messages))
    found = TeacherClient(backend, cache, 1).cached([request])
    assert list(found) == [(request.gen_key, 0)]  # the old sample, not a second request
    assert found[(request.gen_key, 0)].completion == "\\boxed{4}"
