"""The vLLM offline adapter: its mapping is tested with a stand-in LLM; the real thing runs
only where vllm, a GPU and a local model (CURATE_VLLM_TEST_MODEL) are present."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from curate.generate.base import Request
from curate.generate.cache import SampleCache
from curate.generate.stage import CACHE_FILE, GenerateStage
from curate.generate.vllm import VLLMConfig, VLLMTeacher, sampling_kwargs
from curate.stage import StageContext


@dataclass
class FakeCompletion:
    text: str
    finish_reason: str
    token_ids: list[int]


@dataclass
class FakeOutput:
    prompt_token_ids: list[int]
    outputs: list[FakeCompletion]


@dataclass
class FakeLLMForTests:
    """Stands in for vllm.LLM (no GPU here): answers from the prompt, records its calls."""

    calls: list[tuple[list[Any], list[Any]]] = field(default_factory=list)

    def chat(self, conversations: list[Any], params: list[Any], use_tqdm: bool = True) -> list[Any]:
        self.calls.append((conversations, params))
        outputs = []
        for messages, p in zip(conversations, params, strict=True):
            prompt = messages[-1]["content"]
            texts = [
                FakeCompletion(
                    f"<think>about {prompt[:12]}</think>\\boxed{{{i}}}", "stop", [1] * (5 + i)
                )
                for i in range(p["n"])
            ]
            outputs.append(FakeOutput([0] * 9, texts))
        return outputs


def test_sampling_params_mapping():
    config = VLLMConfig(
        model="m", temperature=0.7, top_k=20, min_p=0.05, seed=3, stop=["</a>"], max_tokens=100
    )
    assert sampling_kwargs(config, 4) == {
        "n": 4,
        "temperature": 0.7,
        "top_p": 0.95,
        "top_k": 20,
        "min_p": 0.05,
        "max_tokens": 100,
        "seed": 3,
        "stop": ["</a>"],
    }


def test_outputs_map_to_samples():
    llm = FakeLLMForTests()
    teacher = VLLMTeacher(VLLMConfig(model="m"), llm=llm)
    messages = [{"role": "user", "content": "What is 1+1?"}]
    request = Request("p", messages, [1, 3], teacher.gen_key(messages))
    samples = teacher.sample_batch([request])[0]
    assert [
        (s.sample_idx, s.reasoning, s.completion, s.completion_tokens, s.prompt_tokens)
        for s in samples
    ] == [
        (1, "about What is 1+1?", "\\boxed{0}", 5, 9),
        (3, "about What is 1+1?", "\\boxed{1}", 6, 9),
    ]
    assert llm.calls[0][1][0]["n"] == 2


def test_stage_sends_everything_in_one_call_and_caches(tmp_path: Path, monkeypatch):
    llm = FakeLLMForTests()
    monkeypatch.setattr(VLLMTeacher, "llm", lambda self: llm)
    frame = pl.DataFrame(
        {
            "problem_id": [f"p{i}" for i in range(5)],
            "problem": [f"Problem {i}" for i in range(5)],
            "reference": ["1"] * 5,
        }
    )
    stage = GenerateStage(VLLMConfig(model="m", samples=3), StageContext(tmp_path))
    out = stage.process(frame)
    assert out.height == 15 and len(llm.calls) == 1 and len(llm.calls[0][0]) == 5
    stage.process(frame)
    assert len(llm.calls) == 1  # the second time everything came from the cache
    stage.close()
    cache = SampleCache(tmp_path / CACHE_FILE)
    assert cache.count() == 15
    cache.close()


@pytest.mark.skipif(
    not os.environ.get("CURATE_VLLM_TEST_MODEL"),
    reason="needs vllm, a GPU and CURATE_VLLM_TEST_MODEL (a local model path)",
)
def test_real_vllm(tmp_path: Path):
    pytest.importorskip("vllm")
    config = VLLMConfig(
        model=os.environ["CURATE_VLLM_TEST_MODEL"],
        samples=2,
        max_tokens=64,
        gpu_memory_utilization=0.5,
    )
    frame = pl.DataFrame(
        {
            "problem_id": ["a", "b"],
            "problem": ["What is 2+2?", "What is 3+3?"],
            "reference": ["4", "6"],
        }
    )
    out = GenerateStage(config, StageContext(tmp_path)).process(frame)
    assert out.height == 4
    assert out["completion_tokens"].min() > 0
    assert set(out["finish_reason"]) <= {"stop", "length"}
