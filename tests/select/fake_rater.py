"""FakeRaterServer: an OpenAI-compatible stand-in for a rating model (not a model). It rates
a problem by how many digits its numbers have ('Rating: N', N = digits, at most 10), and
answers without a rating when the problem says 'unratable'; it counts its requests."""

from __future__ import annotations

import re
from typing import Any

from tests.generate.fake_server import FakeChatServer, FakeHandler


class FakeRaterHandler(FakeHandler):
    def choice(self, prompt: str, index: int, truncated: bool) -> dict[str, Any]:
        problem = prompt.split("Problem:\n", 1)[-1]
        digits = len(re.sub(r"\D", "", problem))
        if "unratable" in problem:
            text = "This is hard to say."
        else:
            text = f"It needs {digits} digits of work.\nRating: {min(10, max(1, digits))}"
        return {"index": index, "message": {"content": text}, "finish_reason": "stop"}


class FakeRaterServer(FakeChatServer):
    def __init__(self) -> None:
        super().__init__()
        self.RequestHandlerClass = FakeRaterHandler


class FakeClassifierHandler(FakeHandler):
    """Names a topic by a word of the problem: primes 'Topic: 11', dice 'Topic: 60.',
    triangles by name ('Topic: Geometry'); anything else gets a topic not on the list."""

    def choice(self, prompt: str, index: int, truncated: bool) -> dict[str, Any]:
        problem = prompt.split("Problem:\n", 1)[-1].lower()
        if "prime" in problem:
            text = "About primes.\nTopic: 11"
        elif "dice" in problem:
            text = "Chance.\nTopic: 60."
        elif "triangle" in problem:
            text = "Shapes.\nTopic: Geometry"
        else:
            text = "Hmm.\nTopic: 99 cooking"
        return {"index": index, "message": {"content": text}, "finish_reason": "stop"}


class FakeClassifierServer(FakeChatServer):
    def __init__(self) -> None:
        super().__init__()
        self.RequestHandlerClass = FakeClassifierHandler
