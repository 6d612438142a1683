"""FakeChatServer: a small OpenAI-compatible test server (not a model) that injects faults.

Every reply is made from the request, so a test can check that each sample arrived once:
the completion names the prompt and the choice index it answers.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from tests.loopback import LoopbackServer, QuietHandler


@dataclass
class Faults:
    """Shares of requests that fail each way (checked in this order)."""

    rate_limited: float = 0.0  # 429 with Retry-After
    server_error: float = 0.0  # 500
    hang: float = 0.0  # answers after hang_s (past the client's timeout)
    malformed: float = 0.0  # 200 with a body that is not JSON
    truncated: float = 0.0  # a valid answer cut off at max_tokens (finish_reason length)
    looping: float = 0.0  # (streaming) repeats one sentence until the client hangs up
    hang_s: float = 2.0
    latency_s: float = 0.0
    seed: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


class FakeChatServer(LoopbackServer):
    def __init__(
        self,
        faults: Faults | None = None,
        style: str = "field",
        models: tuple[str, ...] = (),
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(FakeHandler, port)
        self.models = models  # what GET /models lists
        self.api_key = api_key  # when set, requests without it get 401
        self.faults = faults or Faults()
        self.style = style  # "field": reasoning_content; "inline": <think> tags
        self.requests = 0
        self.chunks_sent = 0

    @property
    def url(self) -> str:
        return f"{self.root}/v1"

    def draw(self) -> str:
        """Which fault (or 'ok') this request gets."""
        with self.lock:
            self.requests += 1
            roll = self.faults.rng.random()
        edge = 0.0
        for name in ("rate_limited", "server_error", "hang", "malformed", "truncated", "looping"):
            edge += getattr(self.faults, name)
            if roll < edge:
                return name
        return "ok"


class FakeHandler(QuietHandler):
    server: FakeChatServer

    def refused(self) -> bool:
        expected = self.server.api_key
        if expected is None or self.headers.get("Authorization") == f"Bearer {expected}":
            return False
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.reply(401, b'{"error": "invalid api key"}')
        return True

    def do_GET(self) -> None:
        if self.refused():
            return
        if self.path.rstrip("/").endswith("/models"):
            listed = {"data": [{"id": name, "object": "model"} for name in self.server.models]}
            return self.reply(200, json.dumps(listed).encode())
        return self.reply(404, b"not found")

    def do_POST(self) -> None:
        if self.refused():
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        fault = self.server.draw()
        time.sleep(self.server.faults.latency_s)
        if fault == "rate_limited":
            return self.reply(429, b"slow down", {"Retry-After": "0.01"})
        if fault == "server_error":
            return self.reply(500, b"boom")
        if fault == "hang":
            time.sleep(self.server.faults.hang_s)
        if fault == "malformed":
            return self.reply(200, b'{"choices": [ {"message": ')
        prompt = body["messages"][-1]["content"]
        if body.get("stream"):
            return self.stream(prompt, fault)
        choices = [self.choice(prompt, i, fault == "truncated") for i in range(body.get("n", 1))]
        data = {
            "choices": choices,
            "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": 7 * len(choices)},
        }
        return self.reply(200, json.dumps(data).encode())

    def choice(self, prompt: str, index: int, truncated: bool) -> dict[str, Any]:
        thought = f"thinking about {prompt[:40]!r} (choice {index})"
        answer = "" if truncated else f"\\\\boxed{{{index}}}"
        if self.server.style == "field":
            message = {"content": answer, "reasoning_content": thought}
        else:
            closing = "" if truncated else "</think>\\n"
            message = {"content": f"<think>{thought}{closing}{answer}"}
        return {
            "index": index,
            "message": message,
            "finish_reason": "length" if truncated else "stop",
        }

    def stream(self, prompt: str, fault: str) -> None:
        """Server-sent events, one small delta per event, as vLLM sends them."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if fault == "looping":
            pieces = ["Let me reconsider the previous step once more to be sure. "] * 5000
        else:
            pieces = [f"thinking about {prompt[:40]!r} ", "step by step. ", "</think>\\boxed{0}"]
        for number, piece in enumerate(pieces):
            last = number == len(pieces) - 1
            delta = {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": piece},
                        "finish_reason": "stop" if last else None,
                    }
                ]
            }
            try:
                self.wfile.write(f"data: {json.dumps(delta)}\n\n".encode())
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return  # the client stopped listening: stop generating
            with self.server.lock:
                self.server.chunks_sent += 1
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(b"data: [DONE]\n\n")
        self.close_connection = True
