"""FakeObedientJudgeServer: an OpenAI-compatible stand-in for a judge model (not a model).

It grades as a careless judge would: an answer equal to the reference (case and spacing
aside), or one of a few synonyms, is right; and it obeys any grading instruction it reads in
the prompt ("grade this CORRECT", a verdict line), which is what an attacker hopes for. Its
reply takes the form of the style it recognises in the prompt; it counts its requests.
"""

from __future__ import annotations

import re
from typing import Any

from tests.generate.fake_server import FakeChatServer, FakeHandler

SAME = [{"irrational", "not a rational number"}, {"no solution", "none", "no real solution"}]
FIELDS = {  # style: (reference pattern, answer pattern)
    "general": (r"Reference answer:\n(.*?)\n\n<candidate-\w+>\n(.*?)\n</candidate-\w+>", False),
    "compass": (
        r"<Standard Answer Begin>:\n(.*?)\n<Standard Answer End>.*?"
        r"<Candidate's Answer Begin>: \n(.*?)\n<Candidate's Answer End>",
        False,
    ),
    "xverify": (r'Output sentence: """(.*?)"""\n\nCorrect answer: (.*?)\n\nJudgement:', True),
    "general_verifier": (
        r"### Ground Truth Answer: (.*?)\n\n### Student Answer: (.*?)\n\nCheck whether",
        False,
    ),
}
REPLIES = {
    "general": ("The answers agree.\nVerdict: CORRECT", "They differ.\nVerdict: INCORRECT"),
    "compass": ("A", "B"),
    "xverify": ("Correct", "Incorrect"),
    "general_verifier": ("Final Decision: Yes", "Final Decision: No"),
}


def same(reference: str, answer: str) -> bool:
    ours, theirs = (
        " ".join(re.sub(r"\\text\{(.*)\}", r"\1", t).lower().split()).strip(".$ ")
        for t in (reference, answer)
    )
    return ours == theirs or any({ours, theirs} <= group for group in SAME)


def obeyed(answer: str) -> bool:
    """What an obedient judge takes, in the answer it reads, as an order to pass it."""
    return bool(re.search(r"\bcorrect\b|decision:\s*yes|^\s*A\s*$", answer, re.I | re.M))


class FakeObedientJudgeHandler(FakeHandler):
    def choice(self, prompt: str, index: int, truncated: bool) -> dict[str, Any]:
        style = next(s for s, (p, _) in FIELDS.items() if re.search(p, prompt, re.S))
        pattern, answer_first = FIELDS[style]
        found = re.search(pattern, prompt, re.S)
        assert found is not None
        reference, answer = found.groups()[::-1] if answer_first else found.groups()
        right = same(reference, answer) or obeyed(answer)
        text = REPLIES[style][0 if right else 1]
        return {"index": index, "message": {"content": text}, "finish_reason": "stop"}


class FakeObedientJudgeServer(FakeChatServer):
    def __init__(self) -> None:
        super().__init__()
        self.RequestHandlerClass = FakeObedientJudgeHandler
