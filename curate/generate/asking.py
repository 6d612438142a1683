"""One question per item put to a model (a judge), through the teacher's backends and request
cache: a rerun asks nothing twice, and a question asked for many rows is asked once."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import TypeAdapter, ValidationError

from curate import registry
from curate.errors import RecipeError
from curate.generate.base import Backend, Message, Request, Sample, TeacherConfig
from curate.generate.cache import SampleCache
from curate.generate.client import TeacherClient
from curate.stage import union_of


def judge_config(section: dict[str, Any], where: str) -> TeacherConfig:
    """A judge section as a teacher section of its backend (one sample, temperature 0 unless
    it says otherwise); errors name the key under `where` (`verify.judge.model`)."""
    return section_config({"temperature": 0.0, "max_tokens": 1024, **section, "samples": 1}, where)


def section_config(settings: dict[str, Any], where: str) -> TeacherConfig:
    """A teacher section of any registered backend, validated; errors name the key under
    `where` (`difficulty.solver.samples`)."""
    adapter: TypeAdapter[Any] = TypeAdapter(
        union_of([b.config_class for _, b in registry.backends.items()], "backend")
    )
    try:
        config = adapter.validate_python(settings)
    except ValidationError as exc:
        problem = exc.errors()[0]
        key = ".".join(str(part) for part in problem["loc"][1:] or problem["loc"])
        raise RecipeError(f"{where}.{key}: {problem['msg']}") from None
    assert isinstance(config, TeacherConfig)
    return config


def ask_each(
    config: TeacherConfig,
    cache: SampleCache,
    questions: list[list[Message]],
    spent: Counter[str] | None = None,
    prefix: str = "",
) -> list[Sample | None]:
    """The model's reply to each question (None where none came), cached replies first;
    the tokens (and cost) of fresh replies added to `spent` under `prefix`."""
    nothing: list[str | None] = [None] * len(questions)
    replies = ask_samples(config, cache, questions, nothing, spent, prefix, samples=1)
    return [found[0] if found else None for found in replies]


def ask_samples(
    config: TeacherConfig,
    cache: SampleCache,
    questions: list[list[Message]],
    references: list[str | None],
    spent: Counter[str] | None = None,
    prefix: str = "",
    samples: int | None = None,
) -> list[list[Sample]]:
    """Each question's replies (`samples`, else the config's; those that came), cached ones
    first, a question asked once however often it comes (a reference goes only to the
    simulated stand-in, which needs it to write an answer)."""
    backend: Backend = registry.backends.get(config.backend)(config)
    indices = list(range(samples or config.samples))
    requests: dict[str, Request] = {}
    for k, (messages, reference) in enumerate(zip(questions, references, strict=True)):
        key = backend.gen_key(messages)
        requests.setdefault(key, Request(str(k), messages, indices, key, reference))
    client = TeacherClient(backend, cache, config.max_concurrency)
    cached = client.cached(list(requests.values()))
    missing = [
        Request(r.problem_id, r.messages, wanted, r.gen_key, r.reference)
        for r in requests.values()
        if (wanted := [i for i in indices if (r.gen_key, i) not in cached])
    ]
    fresh = client.ask(missing) if missing else {}
    if spent is not None:
        per_request = [
            [fresh[(r.gen_key, i)] for i in r.sample_indices if (r.gen_key, i) in fresh]
            for r in missing
        ]
        add_spend(spent, config, per_request, prefix)
    answers = cached | fresh
    keys = [backend.gen_key(messages) for messages in questions]
    return [[answers[(key, i)] for i in indices if (key, i) in answers] for key in keys]


def add_spend(
    spent: Counter[str], config: TeacherConfig, requests: list[list[Sample]], prefix: str = ""
) -> tuple[int, int]:
    """Add the tokens of fresh samples, one prompt per request (and, where the config gives
    prices per million tokens, their cost in micro-dollars, at the batch price in batch
    mode); the reasoning tokens where the provider reports them; returns (prompt,
    completion)."""
    if config.request_per_sample():
        prompt = sum(s.prompt_tokens or 0 for samples in requests for s in samples)
    else:
        prompt = sum((samples[0].prompt_tokens or 0) for samples in requests if samples)
    completion = sum(s.completion_tokens or 0 for samples in requests for s in samples)
    thought = sum(s.reasoning_tokens or 0 for samples in requests for s in samples)
    spent[f"{prefix}spent_prompt_tokens"] += prompt
    spent[f"{prefix}spent_completion_tokens"] += completion
    if thought:
        spent[f"{prefix}spent_reasoning_tokens"] += thought
    if config.price_prompt is not None or config.price_completion is not None:
        micro = prompt * (config.price_prompt or 0) + completion * (config.price_completion or 0)
        if config.mode == "batch":  # the provider's batch discount
            micro *= config.batch.price_factor
        spent[f"{prefix}cost_micro_usd"] += round(micro)
    return prompt, completion


def reply_text(sample: Sample) -> str:
    """What a model said, its reasoning first."""
    return "\n".join(part for part in (sample.reasoning, sample.completion) if part).strip()
