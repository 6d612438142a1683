"""A labelled stand-in teacher for the offline demo, tests and benchmarks.

It is not a model and never claims to be one: every trace it writes says
`model: simulated`. Given a problem with a reference answer it writes a step-by-step
chain of thought and a boxed answer, and at configurable rates gets it wrong, runs out
of tokens, forgets the box, loops, or drifts into another language.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from fractions import Fraction
from typing import Literal

from pydantic import Field

from curate import registry
from curate.generate.base import Backend, Request, Sample, TeacherConfig
from curate.generate.guards import Guard
from curate.records import stable_hash

STEPS = (
    "First, let me restate condition {a} so I do not miss anything.",
    "I will write down quantity {a} and what it tells us about {b}.",
    "Let me try a small case to see the pattern: with {a} and {b} we get {c}.",
    "Now combine the pieces: {a} + {b} = {c}, which fits what we expect.",
    "Hmm, wait. Let me double-check step {a}, since a sign error is easy here.",
    "Checking again: {c} - {b} = {a}, so the arithmetic holds.",
    "Another way to see it is to work backwards from {c}.",
    "Both approaches agree on {c}, so I am fairly confident in this result.",
    "Let me make sure {c} is in the form the question asks for.",
)
FOREIGN = (
    "我们需要仔细检查这一步的计算。",
    "这里的条件意味着结果必须是整数。",
    "所以答案应该是这个值。",
)
LOOP = "Let me reconsider the previous step once more to be sure it is right."


class SimulatedConfig(TeacherConfig):
    """A deterministic stand-in teacher (not a model) for demos, tests and benchmarks."""

    backend: Literal["simulated"] = Field(
        "simulated", description="The simulated stand-in teacher."
    )
    model: Literal["simulated"] = Field("simulated", description="Always 'simulated'.")
    wrong_rate: float = Field(0.25, ge=0, le=1, description="Mean share of wrong answers.")
    truncate_rate: float = Field(0.04, ge=0, le=1, description="Share cut off at max_tokens.")
    unboxed_rate: float = Field(0.04, ge=0, le=1, description="Share with no \\boxed{} answer.")
    repeat_rate: float = Field(
        0.03, ge=0, le=1, description="Share that loop on a paragraph until max_tokens."
    )
    language_mix_rate: float = Field(
        0.03, ge=0, le=1, description="Share that drift into Chinese mid-reasoning."
    )
    mean_steps: int = Field(8, ge=1, description="Median number of reasoning steps.")
    latency_ms: float = Field(0, ge=0, description="Pretend latency per request.")
    style: Literal["filler", "column_addition", "reversed_addition"] = Field(
        "filler",
        description="filler: generic steps around the answer; column_addition: for a problem "
        "'What is A + B?', the digit-by-digit sum with carries (a procedure a small model can "
        "learn); reversed_addition: the same with A, B and the answer written units first "
        "(the easy-to-hard setting of Lee et al. 2025); filler for anything else.",
    )
    gain_per_round: float = Field(
        0,
        ge=0,
        le=1,
        description="wrong_rate falls by this much per training round behind the sampler: a "
        "stand-in for a policy that improves, to test the loop's plumbing (not a model).",
    )
    trained_rounds: int = Field(
        0, ge=0, description="Training rounds behind this sampler (the loop sets it)."
    )

    def effective_wrong_rate(self) -> float:
        return max(0.0, self.wrong_rate - self.gain_per_round * self.trained_rounds)

    volatile = TeacherConfig.volatile | frozenset({"latency_ms"})


@registry.backends.register()
class SimulatedTeacher(Backend):
    """A deterministic stand-in teacher (not a model) for demos, tests and benchmarks."""

    name = "simulated"
    config_class = SimulatedConfig
    config: SimulatedConfig

    def endpoint_identity(self) -> str:
        config = self.config
        if not config.gain_per_round:
            return self.name
        return f"{self.name}:wrong={config.effective_wrong_rate():.6f}"

    async def sample(self, request: Request) -> list[Sample]:
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000)
        return [self.write(request, index) for index in request.sample_indices]

    def write(self, request: Request, sample_idx: int) -> Sample:
        """One trace, the same for the same problem, sample index and seed."""
        config = self.config
        # seeded as before max_tokens left the cache key, so the stand-in writes what it wrote
        key = self.legacy_gen_key(request.messages)
        seed = stable_hash(key, str(sample_idx), str(config.seed), size=8)
        rng = random.Random(int(seed, 16))
        prompt_tokens = sum(len(m["content"]) for m in request.messages) // 4
        reasoning, answer = self._reasoning(request, rng)
        boxed = rng.random() >= config.unboxed_rate
        completion = (
            f"The final answer is $\\boxed{{{answer}}}$."
            if boxed
            else (f"The final answer is {answer}.")
        )
        tokens = (len(reasoning) + len(completion)) // 4 + 4
        if reasoning.endswith(LOOP[:20]) or LOOP in reasoning[-2 * len(LOOP) :]:
            sample = Sample(sample_idx, reasoning, "", "length", prompt_tokens, config.max_tokens)
        elif tokens > config.max_tokens or rng.random() < config.truncate_rate:
            sample = self._truncated(reasoning, rng, sample_idx, prompt_tokens)
        else:
            sample = Sample(sample_idx, reasoning, completion, "stop", prompt_tokens, tokens)
        return self._guarded(sample) if config.guards is not None else sample

    def _guarded(self, sample: Sample) -> Sample:
        """Replay the sample as a stream through the guards; cut it where they stop it."""
        assert self.config.guards is not None
        guard = Guard(self.config.guards)
        text = sample.reasoning or ""
        for end in range(64, len(text) + 64, 64):
            reason = guard.feed(text[end - 64 : end])
            if reason is not None:
                kept = text[:end]
                return Sample(
                    sample.sample_idx, kept, "", reason, sample.prompt_tokens, len(kept) // 4
                )
        return sample

    def _reasoning(self, request: Request, rng: random.Random) -> tuple[str, str]:
        config = self.config
        answer = request.reference or "unknown"
        wrong = rng.random() < self._wrong_chance(request.problem_id)
        operands = SUM.search(request.messages[-1]["content"]) if config.style != "filler" else None
        if operands:
            steps, total = self._addition(operands.group(1), operands.group(2))
            return steps, wrong_answer(total, rng) if wrong else total
        if wrong:
            answer = wrong_answer(answer, rng)
        count = max(1, round(rng.lognormvariate(math.log(config.mean_steps), 0.5)))
        lines = ["Okay, let me work through this carefully."]
        for _ in range(count):
            a, b = rng.randint(2, 60), rng.randint(2, 60)
            lines.append(rng.choice(STEPS).format(a=a, b=b, c=a + b))
        if rng.random() < config.language_mix_rate:
            position = rng.randint(1, len(lines))
            lines[position:position] = rng.sample(FOREIGN, 2)
        if rng.random() < config.repeat_rate:  # a loop never ends: it runs to max_tokens
            lines.extend([LOOP] * (config.max_tokens * 4 // len(LOOP) + 1))
            return "\n\n".join(lines)[: config.max_tokens * 4], answer
        lines.append(f"So the answer is {answer}.")
        return "\n\n".join(lines), answer

    def _addition(self, left: str, right: str) -> tuple[str, str]:
        """Column addition of two written numbers. reversed_addition: units first, where
        each digit may carry an index hint, a letter before it ('c2d4' is 42), named again
        on each step's line (Zhou et al. 2023)."""
        if self.config.style == "column_addition":
            return column_addition(left, right)
        hints = re.findall(r"[a-z]", left)
        left, right = re.sub(r"[a-z]", "", left)[::-1], re.sub(r"[a-z]", "", right)[::-1]
        steps, _ = column_addition(left, right)
        total = column_total(steps)
        if len(hints) == len(steps.splitlines()):
            steps = "\n".join(
                f"{h}:{line}" for h, line in zip(hints, steps.splitlines(), strict=True)
            )
        return steps, total

    def _wrong_chance(self, problem_id: str) -> float:
        """Problems differ in difficulty: an even spread around the configured mean."""
        difficulty = int(stable_hash(problem_id, str(self.config.seed), size=4), 16) / 2**32
        return min(1.0, self.config.effective_wrong_rate() * 2 * difficulty)

    def _truncated(
        self, reasoning: str, rng: random.Random, sample_idx: int, prompt_tokens: int
    ) -> Sample:
        """A trace that ran out of tokens: it keeps reasoning until the budget is spent."""
        budget = self.config.max_tokens * 4
        parts = [reasoning]
        length = len(reasoning)
        while length < budget:
            a, b = rng.randint(2, 999), rng.randint(2, 999)
            parts.append(rng.choice(STEPS).format(a=a, b=b, c=a + b))
            length += len(parts[-1]) + 2
        text = "\n\n".join(parts)[:budget]
        return Sample(sample_idx, text, "", "length", prompt_tokens, self.config.max_tokens)


SUM = re.compile(r"What is ([a-z0-9]*\d) \+ ([a-z0-9]*\d)\?")


def column_addition(left: str, right: str) -> tuple[str, str]:
    """The written sum, one line a column from the units up: 'digit+digit+carry=sum'."""
    width = max(len(left), len(right))
    a, b = left.zfill(width)[::-1], right.zfill(width)[::-1]
    carry, lines, digits = 0, [], []
    for x, y in zip(a, b, strict=True):
        total = int(x) + int(y) + carry
        lines.append(f"{x}+{y}+{carry}={total}")
        digits.append(str(total % 10))
        carry = total // 10
    if carry:
        digits.append("1")
    return "\n".join(lines), "".join(reversed(digits)).lstrip("0") or "0"


def column_total(steps: str) -> str:
    """The sum written units first: each column's digit in order, then a final carry."""
    sums = [int(line.rsplit("=", 1)[1]) for line in steps.splitlines()]
    return "".join(str(v % 10) for v in sums) + ("1" if sums and sums[-1] >= 10 else "")


def wrong_answer(answer: str, rng: random.Random) -> str:
    """A plausible wrong answer: a nearby number, or a changed expression."""
    offset = rng.choice([-3, -2, -1, 1, 2, 3, 10])
    text = answer.strip()
    if re.fullmatch(r"-?\d+", text):
        return str(int(text) + offset)
    if re.fullmatch(r"-?\d+/\d+", text) and not text.endswith("/0"):
        return str(Fraction(text) + offset)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return f"{float(text) + offset:g}"
    return f"{text} + {abs(offset)}"
