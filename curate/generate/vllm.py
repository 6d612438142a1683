"""vLLM offline: every prompt through one `LLM.chat` call with `SamplingParams(n=k)`.

Needs a GPU and the `vllm` extra (`pip install 'curate[vllm]'`); vllm is imported only when
the backend is used. The adapter is thin: it maps curate's requests to vLLM's arguments and
vLLM's outputs back to samples, so the same cache and ledger columns apply.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field

from curate import registry
from curate.errors import BackendError
from curate.generate.base import Backend, Request, Sample, TeacherConfig, split_reasoning


class VLLMConfig(TeacherConfig):
    """vLLM in this process (offline batch inference on local GPUs)."""

    backend: Literal["vllm"] = Field("vllm", description="vLLM offline, on local GPUs.")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs the model is split over.")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="Share of GPU memory.")
    max_model_len: int | None = Field(None, ge=1, description="Context length limit.")
    dtype: str = Field("auto", description="Weights dtype (auto, bfloat16, float16).")
    top_k: int = Field(-1, description="Top-k sampling (-1: off).")
    min_p: float = Field(0.0, ge=0, le=1, description="Min-p sampling.")
    engine_args: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword arguments for vllm.LLM."
    )

    volatile = TeacherConfig.volatile | frozenset(
        {"tensor_parallel_size", "gpu_memory_utilization", "engine_args"}
    )

    def sampling(self) -> dict[str, Any]:
        return {**super().sampling(), "top_k": self.top_k, "min_p": self.min_p}


def sampling_kwargs(config: VLLMConfig, n: int) -> dict[str, Any]:
    """SamplingParams arguments for a request wanting n samples."""
    return {"n": n, **config.request_params()}


def to_samples(config: VLLMConfig, request: Request, output: Any, seconds: float) -> list[Sample]:
    """vLLM's RequestOutput -> one sample per wanted index."""
    prompt_tokens = len(getattr(output, "prompt_token_ids", None) or []) or None
    samples = []
    for index, completion in zip(request.sample_indices, output.outputs, strict=False):
        reasoning, answer, _ = split_reasoning(completion.text, config.think_tags)
        samples.append(
            Sample(
                index,
                reasoning,
                answer,
                completion.finish_reason,
                prompt_tokens,
                len(completion.token_ids),
                seconds,
            )
        )
    return samples


class OfflineEngine:
    """vllm.LLM behind the one call the teacher makes, sampling settings given as plain
    mappings (the teacher never builds vLLM's own objects)."""

    def __init__(self, config: VLLMConfig) -> None:
        try:
            from vllm import LLM
        except ImportError:
            raise BackendError(
                "the vllm backend needs vllm and a GPU: pip install 'curate[vllm]'"
            ) from None
        self.llm = LLM(
            model=config.model,
            tensor_parallel_size=config.tensor_parallel_size,
            gpu_memory_utilization=config.gpu_memory_utilization,
            max_model_len=config.max_model_len,
            dtype=config.dtype,
            **config.engine_args,
        )

    def chat(
        self, conversations: list[Any], settings: list[dict[str, Any]], use_tqdm: bool = True
    ) -> list[Any]:
        from vllm import SamplingParams

        params = [SamplingParams(**one) for one in settings]
        return list(self.llm.chat(conversations, params, use_tqdm=use_tqdm))


@registry.backends.register()
class VLLMTeacher(Backend):
    """vLLM offline batch inference on local GPUs (extra: vllm)."""

    name = "vllm"
    config_class = VLLMConfig
    config: VLLMConfig
    offline = True  # the generate stage hands it all requests at once

    def __init__(self, config: TeacherConfig, llm: Any = None) -> None:
        super().__init__(config)
        self._llm = llm

    def endpoint_identity(self) -> str:
        return f"vllm:{self.config.model}:{self.config.dtype}"

    def llm(self) -> Any:
        """The engine (an OfflineEngine over vllm.LLM unless one was given)."""
        if self._llm is None:
            self._llm = OfflineEngine(self.config)
        return self._llm

    def sample_batch(self, requests: list[Request]) -> list[list[Sample]]:
        """All requests in one call; vLLM schedules them on the GPU itself."""
        if not requests:
            return []
        params = [sampling_kwargs(self.config, len(r.sample_indices)) for r in requests]
        started = time.monotonic()
        outputs = self.llm().chat([r.messages for r in requests], params, use_tqdm=True)
        seconds = (time.monotonic() - started) / len(requests)
        return [
            to_samples(self.config, r, o, seconds) for r, o in zip(requests, outputs, strict=True)
        ]

    async def sample(self, request: Request) -> list[Sample]:
        return self.sample_batch([request])[0]
