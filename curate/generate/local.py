"""A small local model sampled in this process with `transformers` (extra `train`).

For the self-improvement loop on a CPU: a model of a few million parameters samples about
ten times faster in-process (batched `generate`) than through an HTTP server. Prompts are
rendered with the model's chat template, left-padded and sampled in batches; a sample ends
at the tokenizer's end-of-turn token (finish reason `stop`) or at max_tokens (`length`).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field

from curate import registry
from curate.errors import BackendError
from curate.generate.base import Backend, Request, Sample, TeacherConfig, split_reasoning
from curate.records import stable_hash

_LOADED: dict[tuple[str, str, str], tuple[Any, Any]] = {}


class TransformersConfig(TeacherConfig):
    """A local causal LM sampled in this process with `transformers` (small models, CPU)."""

    backend: Literal["transformers"] = Field(
        "transformers", description="A local model sampled in-process with transformers."
    )
    batch_size: int = Field(128, ge=1, description="Sequences per generate call.")
    threads: int | None = Field(
        1, ge=1, description="torch threads (one was 5-8x faster than two on a busy 2-core box)."
    )
    device: str = Field("cpu", description="torch device.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights dtype."
    )

    volatile = TeacherConfig.volatile | frozenset({"batch_size", "threads", "device"})


@registry.backends.register()
class TransformersTeacher(Backend):
    """A local model sampled in-process with transformers (extra: train)."""

    name = "transformers"
    config_class = TransformersConfig
    config: TransformersConfig
    offline = True  # the generate stage hands it requests in chunks

    @property
    def chunk(self) -> int | None:
        """Requests per call, so progress and the cache advance batch by batch."""
        return max(1, self.config.batch_size // self.config.samples)

    def endpoint_identity(self) -> str:
        return f"transformers:{self.config.model}:{self.config.dtype}"

    def loaded(self) -> tuple[Any, Any]:
        """(tokenizer, model), loaded once per process."""
        config = self.config
        key = (config.model, config.device, config.dtype)
        if key not in _LOADED:
            try:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer
            except ImportError:
                raise BackendError(
                    "the transformers backend needs torch and transformers: "
                    "pip install torch 'curate[train]'"
                ) from None
            try:
                tokenizer = AutoTokenizer.from_pretrained(config.model)
                model: Any = AutoModelForCausalLM.from_pretrained(
                    config.model, dtype=getattr(torch, config.dtype)
                )
            except (OSError, ValueError) as exc:
                raise BackendError(f"cannot load the model at {config.model}: {exc}") from None
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            _LOADED[key] = (tokenizer, model.to(config.device).eval())
        return _LOADED[key]

    def preflight(self) -> None:
        self.loaded()

    def sample_batch(self, requests: list[Request]) -> list[list[Sample]]:
        """Every wanted sample of these requests, batch_size sequences at a time."""
        import torch

        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        wanted = [(r, i) for r in requests for i in r.sample_indices]
        found: dict[tuple[str, int], Sample] = {}
        size = self.config.batch_size
        for start in range(0, len(wanted), size):
            for (request, index), sample in zip(
                wanted[start : start + size],
                self._generate(wanted[start : start + size]),
                strict=True,
            ):
                found[(request.gen_key, index)] = sample
        return [[found[(r.gen_key, i)] for i in r.sample_indices] for r in requests]

    def _generate(self, batch: list[tuple[Request, int]]) -> list[Sample]:
        import torch

        tokenizer, model = self.loaded()
        config = self.config
        texts = [
            tokenizer.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False)
            for r, _ in batch
        ]
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = {k: v.to(config.device) for k, v in encoded.items()}
        seed = stable_hash(*(f"{r.gen_key}:{i}" for r, i in batch), str(config.seed), size=4)
        torch.manual_seed(int(seed, 16))
        started = time.monotonic()
        with torch.no_grad():
            output = model.generate(
                **encoded,
                do_sample=config.temperature > 0,
                temperature=config.temperature if config.temperature > 0 else None,
                top_p=config.top_p if config.temperature > 0 else None,
                max_new_tokens=config.max_tokens,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        seconds = (time.monotonic() - started) / len(batch)
        width = encoded["input_ids"].shape[1]
        prompts = encoded["attention_mask"].sum(dim=1).tolist()
        return [
            self._sample(tokenizer, index, row[width:].tolist(), int(prompt), seconds)
            for (_, index), row, prompt in zip(batch, output, prompts, strict=True)
        ]

    def _sample(
        self, tokenizer: Any, index: int, tokens: list[int], prompt: int, seconds: float
    ) -> Sample:
        end = tokenizer.eos_token_id
        stopped = end in tokens
        kept = tokens[: tokens.index(end)] if stopped else tokens
        text = tokenizer.decode(kept, skip_special_tokens=False)
        reasoning, answer, closed = split_reasoning(text, self.config.think_tags)
        finish = "stop" if stopped and closed else "length"
        return Sample(index, reasoning, answer, finish, prompt, len(kept) + stopped, seconds)

    async def sample(self, request: Request) -> list[Sample]:
        return self.sample_batch([request])[0]
