"""FakeJudgeServer: an OpenAI-compatible stand-in for a judge model (not a model). It reads
the two answers in the question and says SAME when they are written alike, DIFFERENT when
not, with a line of reasoning; it counts the requests it answers."""

from __future__ import annotations

import re
from typing import Any

from tests.generate.fake_server import FakeChatServer, FakeHandler


class FakeJudgeHandler(FakeHandler):
    def choice(self, prompt: str, index: int, truncated: bool) -> dict[str, Any]:
        answers = [a.strip() for a in re.findall(r"Its answer: (.*)", prompt)]
        same = len(answers) == 2 and answers[0] == answers[1]
        text = f"A's answer is {answers[0]!r}, B's is {answers[-1]!r}.\n"
        text += f"Verdict: {'SAME' if same else 'DIFFERENT'}"
        return {"index": index, "message": {"content": text}, "finish_reason": "stop"}


class FakeJudgeServer(FakeChatServer):
    def __init__(self) -> None:
        super().__init__()
        self.RequestHandlerClass = FakeJudgeHandler
