"""The OpenAI-compatible backend against FakeChatServer, a small local test server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from curate.generate.base import Request
from curate.generate.openai import OpenAIConfig, OpenAITeacher


class FakeChatServer(ThreadingHTTPServer):
    """A fake OpenAI-compatible server (not a model): scripted replies and failures."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.style = "field"  # "field": reasoning_content; "inline": <think> tags
        self.fail_first: list[int] = []  # statuses returned before succeeding
        self.bodies: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class FakeHandler(BaseHTTPRequestHandler):
    server: FakeChatServer

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # the model list, as a health probe reads it
        data = json.dumps({"data": [{"id": "m"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        self.server.headers_seen.append(dict(self.headers))
        if self.server.fail_first:
            status = self.server.fail_first.pop(0)
            self.send_response(status)
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        choices = [self.choice(i) for i in range(body.get("n", 1))]
        data = json.dumps(
            {
                "choices": choices,
                "usage": {"prompt_tokens": 11, "completion_tokens": 20 * len(choices)},
            }
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data.encode())

    def choice(self, index: int) -> dict[str, Any]:
        if self.server.style == "field":
            message = {"content": f"\\boxed{{{index}}}", "reasoning_content": f"thinking {index}"}
        else:
            message = {"content": f"<think>thinking {index}</think>\n\\boxed{{{index}}}"}
        return {"index": index, "message": message, "finish_reason": "stop"}


@pytest.fixture
def server() -> Iterator[FakeChatServer]:
    fake = FakeChatServer()
    thread = threading.Thread(target=fake.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.shutdown()


def run(config: OpenAIConfig, indices: list[int]):
    import asyncio

    async def go():
        teacher = OpenAITeacher(config)
        messages = config.messages("1+1?")
        try:
            return await teacher.sample(Request("p", messages, indices, teacher.gen_key(messages)))
        finally:
            await teacher.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("style", ["field", "inline"])
def test_both_reasoning_styles(server: FakeChatServer, style: str):
    server.style = style
    out = run(OpenAIConfig(model="m", base_url=server.url), [0, 1, 2])
    assert [(s.sample_idx, s.reasoning, s.completion) for s in out] == [
        (i, f"thinking {i}", f"\\boxed{{{i}}}") for i in range(3)
    ]
    assert server.bodies[0]["n"] == 3 and server.bodies[0]["model"] == "m"
    assert out[0].prompt_tokens == 11 and out[0].completion_tokens == 20


def test_without_n_sends_one_request_per_sample(server: FakeChatServer):
    out = run(OpenAIConfig(model="m", base_url=server.url, use_n=False, top_k=20), [0, 1])
    assert len(server.bodies) == 2 and all(b["n"] == 1 and b["top_k"] == 20 for b in server.bodies)
    assert [s.sample_idx for s in out] == [0, 1]


def test_retries_then_succeeds_and_sends_key(server: FakeChatServer, monkeypatch):
    monkeypatch.setenv("TEST_KEY", "secret-value")
    server.fail_first = [429, 503]
    out = run(OpenAIConfig(model="m", base_url=server.url, api_key_env="TEST_KEY"), [0])
    assert out[0].error is None and len(server.bodies) == 3
    assert server.headers_seen[0]["Authorization"] == "Bearer secret-value"


def test_gives_up_with_an_error_sample(server: FakeChatServer):
    server.fail_first = [500] * 5
    out = run(OpenAIConfig(model="m", base_url=server.url, max_retries=2), [0, 1])
    assert all(s.error and s.error.startswith(f"HTTP 500 from {server.url}") for s in out)
    assert all("(gave up after 3 attempts)" in (s.error or "") for s in out)


def test_failing_replica_is_avoided(server: FakeChatServer):
    broken = FakeChatServer()
    thread = threading.Thread(target=broken.serve_forever, daemon=True)
    thread.start()
    broken.fail_first = [500] * 100
    try:
        config = OpenAIConfig(
            model="m", base_url=[broken.url, server.url], max_retries=3, use_n=False
        )
        out = run(config, list(range(6)))
    finally:
        broken.shutdown()
    assert all(s.error is None for s in out)
    assert len(server.bodies) == 6
    # six requests start at once, half on each replica; each retry avoids the failed one
    assert len(broken.bodies) == 3


def test_replica_that_is_down_at_start_gets_no_traffic(server: FakeChatServer):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    config = OpenAIConfig(model="m", base_url=[dead, server.url], use_n=False, max_retries=0)
    out = run(config, list(range(6)))
    assert all(s.error is None for s in out)  # the dead one was found before any request
    assert len(server.bodies) == 6


def test_gen_key_depends_on_sampling_not_on_concurrency():
    def key(**kwargs: Any) -> str:
        config = OpenAIConfig(**{"model": "m", "base_url": "http://a/v1", **kwargs})
        return OpenAITeacher(config).gen_key(config.messages("p"))

    assert key() == key(max_concurrency=3)
    assert key() == key(base_url=["http://b/v1", "http://c/v1"])  # replicas of one model
    assert key() != key(temperature=1.0)
    assert key() != key(top_k=20) and key() != key(min_p=0.05)
    assert key() != key(system_prompt="be brief")
