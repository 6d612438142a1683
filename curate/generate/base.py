"""What every teacher backend shares: sampling settings, requests, samples, the gen_key."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from curate import answers
from curate.errors import BackendError
from curate.generate.guards import StreamGuards
from curate.records import stable_hash, to_json
from curate.stage import Config

if TYPE_CHECKING:
    from curate.generate.batch import BatchAPI

DEFAULT_TEMPLATE = (
    "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{}."
)

Message = dict[str, str]


class AdaptiveSampling(Config):
    """Sample in waves: stop a problem once it has enough verified traces, and spend the rest
    of the budget on the problems still unsolved."""

    target_correct: int = Field(1, ge=1, description="Verified traces a problem needs.")
    max_samples: int = Field(16, ge=1, description="Most samples for one problem.")
    verifier: str = Field(
        "auto",
        description="Verifier that checks each wave: auto, by each problem's domain, as the "
        "verify stage does; or one verifier's name for every problem.",
    )
    timeout_s: float = Field(5.0, gt=0, description="Seconds one answer may take to check.")


class BatchOptions(Config):
    """How a provider's batch API is used (`teacher.mode: batch`)."""

    poll_s: float = Field(30.0, gt=0, description="Seconds between looks at a batch's state.")
    resubmits: int = Field(
        2, ge=0, description="Times a failed or expired request is sent again, in a new batch."
    )
    price_factor: float = Field(
        0.5, ge=0, le=1, description="Share of the online price a batch costs (both: half)."
    )
    max_requests: int | None = Field(
        None, ge=1, description="Requests per batch (null: the provider's limit)."
    )
    max_bytes: int | None = Field(
        None, ge=1024, description="Bytes per batch (null: the provider's limit)."
    )


class TeacherConfig(Config):
    """Sampling settings every backend understands."""

    backend: str = Field(description="Which backend serves the teacher.")
    model: str = Field(description="Model name sent to the backend and stored with each trace.")
    samples: int = Field(
        4, ge=1, le=100_000, strict=True, description="Samples (traces) per problem."
    )
    temperature: float = Field(0.6, ge=0, allow_inf_nan=False, description="Sampling temperature.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling probability mass.")
    max_tokens: int = Field(
        8192, ge=1, le=10_000_000, strict=True, description="Most tokens a sample may generate."
    )
    seed: int | None = Field(None, description="Sampling seed passed to the backend.")
    stop: list[str] = Field(default_factory=list, description="Stop strings.")
    system_prompt: str | None = Field(None, description="System message sent before the problem.")
    prompt_template: str = Field(
        DEFAULT_TEMPLATE,
        description="User message; '{problem}' is replaced by the problem ('{reference}', by "
        "the reference answer: a hint, for rationalisation only).",
    )
    think_tags: tuple[str, str] = Field(
        ("<think>", "</think>"), description="Tags around inline reasoning."
    )
    max_concurrency: int = Field(256, ge=1, description="Requests in flight at once.")
    price_prompt: float | None = Field(
        None, ge=0, description="Price per million prompt tokens, for the cost summary."
    )
    price_completion: float | None = Field(
        None, ge=0, description="Price per million completion tokens, for the cost summary."
    )
    guards: StreamGuards | None = Field(
        None, description="Stop samples that loop or change language while they stream."
    )
    adaptive: AdaptiveSampling | None = Field(
        None, description="Sample in waves of `samples` until enough are verified (null: off)."
    )
    mode: Literal["online", "batch"] = Field(
        "online",
        description="online: a request each, answered at once; batch: the provider's batch "
        "API (half the price, within 24 hours; backends openai and anthropic).",
    )
    batch: BatchOptions = Field(
        default_factory=BatchOptions, description="Batch API settings (mode: batch)."
    )

    # how samples are asked for, never what they are: switching reuses every sample made
    volatile: ClassVar[frozenset[str]] = frozenset(
        {"max_concurrency", "price_prompt", "price_completion", "mode", "batch"}
    )

    @field_validator("prompt_template")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        if "{problem}" not in value:
            raise ValueError("must contain '{problem}'")
        return value

    def messages(self, problem: str, reference: str | None = None) -> list[Message]:
        """The exact chat messages sent for a problem ('{reference}' in the template, for
        rationalisation hints, is replaced by the reference answer)."""
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        text = self.prompt_template.replace("{problem}", problem)
        messages.append({"role": "user", "content": text.replace("{reference}", reference or "")})
        return messages

    def sampling(self) -> dict[str, Any]:
        """The settings that change what a sample looks like (part of the gen_key)."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": self.stop,
        }

    def cache_settings(self) -> dict[str, Any]:
        """The sampling settings a cached sample is keyed by: all but max_tokens, which only
        cuts a sample short (a sample that finished under a smaller limit is the same under a
        larger one: TeacherClient.cached decides which samples a new limit can reuse)."""
        return {k: v for k, v in self.sampling().items() if k != "max_tokens"}

    def request_per_sample(self) -> bool:
        """Whether each sample is a request of its own (its prompt paid each time)."""
        return False

    def request_params(self) -> dict[str, Any]:
        """The sampling settings as a backend receives them (unset ones left out)."""
        return {k: v for k, v in self.sampling().items() if v is not None and v != []}


@dataclass(frozen=True)
class Request:
    """Samples wanted for one problem."""

    problem_id: str
    messages: list[Message]
    sample_indices: list[int]
    gen_key: str
    reference: str | None = None  # only the simulated teacher looks at it


@dataclass
class Sample:
    """One generated trace, as the backend returned it."""

    sample_idx: int
    reasoning: str | None
    completion: str | None
    finish_reason: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    error: str | None = None
    max_tokens: int | None = None  # the limit it was generated under (for cache reuse)
    reasoning_tokens: int | None = None  # of completion_tokens, where the provider says

    def to_dict(self) -> dict[str, Any]:
        # a shallow copy: dataclasses.asdict deep-copies, which costs on the hot path
        return dict(self.__dict__)


class Backend(ABC):
    """A teacher: turns requests into samples.

    offline: a batch engine in this process (vLLM, transformers): callers hand it many
    requests at once through `sample_batch`, rather than `sample` one by one concurrently;
    `chunk` requests at a time when it says (None: all at once)."""

    name: ClassVar[str]
    config_class: ClassVar[type[TeacherConfig]]
    offline: ClassVar[bool] = False

    @property
    def chunk(self) -> int | None:
        """Requests per `sample_batch` call for an offline backend (None: every one)."""
        return None

    def __init__(self, config: TeacherConfig) -> None:
        self.config = config

    def endpoint_identity(self) -> str:
        """What, besides model and sampling, decides the outputs (part of the gen_key)."""
        return self.name

    def gen_key(self, messages: list[Message]) -> str:
        """The cache key of a request's samples: the endpoint, the model, the sampling
        settings but max_tokens, the think tags and the exact messages."""
        return self._key(self.config.cache_settings(), messages)

    def legacy_gen_key(self, messages: list[Message]) -> str:
        """The key caches made before max_tokens left it (read, never written)."""
        return self._key(self.config.sampling(), messages)

    def _key(self, settings: dict[str, Any], messages: list[Message]) -> str:
        config = self.config
        return stable_hash(
            self.endpoint_identity(),
            config.model,
            to_json(settings),
            to_json(list(config.think_tags)),
            to_json(messages),
        )

    def preflight(self) -> None:
        """Check the teacher can be used before any work starts: raise a BackendError that
        says how to fix what cannot work; warn (CurateWarning) about what looks wrong."""

    def batch_api(self) -> BatchAPI:
        """The provider's batch API (`teacher.mode: batch`); a backend without one refuses."""
        raise BackendError(
            f"teacher.mode: batch needs a provider with a batch API (backend openai or "
            f"anthropic); backend {self.name} has none: use mode: online"
        )

    @abstractmethod
    async def sample(self, request: Request) -> list[Sample]:
        """Generate the request's samples; failures come back as samples with `error` set."""

    def sample_batch(self, requests: list[Request]) -> list[list[Sample]]:
        """Many requests at once (what an offline backend does best); by default one by one."""

        async def each() -> list[list[Sample]]:
            return [await self.sample(request) for request in requests]

        return asyncio.run(each())

    async def aclose(self) -> None:
        """Close connections."""


def split_reasoning(text: str, tags: tuple[str, str]) -> tuple[str, str, bool]:
    """(reasoning, completion, closed) by the teacher's own tags (curate.answers does the work;
    an unclosed block is reasoning to the end, with no completion)."""
    split = answers.split_reasoning(text, [tags])
    return split.reasoning, split.solution if split.closed else "", split.closed
