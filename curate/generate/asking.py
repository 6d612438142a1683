"""One question per item put to a model (a judge), through the teacher's backends and request
cache: a rerun asks nothing twice, and a question asked for many rows is asked once."""

from __future__ import annotations

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
    config: TeacherConfig, cache: SampleCache, questions: list[list[Message]]
) -> list[Sample | None]:
    """The model's reply to each question (None where none came), cached replies first."""
    backend: Backend = registry.backends.get(config.backend)(config)
    requests = [
        Request(str(k), messages, [0], backend.gen_key(messages))
        for k, messages in enumerate(questions)
    ]
    client = TeacherClient(backend, cache, config.max_concurrency)
    cached = client.cached(requests)
    unique = {r.gen_key: r for r in requests}
    missing = [r for r in unique.values() if (r.gen_key, 0) not in cached]
    answers = cached | (client.ask(missing) if missing else {})
    return [answers.get((r.gen_key, 0)) for r in requests]


def ask_samples(
    config: TeacherConfig,
    cache: SampleCache,
    questions: list[list[Message]],
    references: list[str | None],
) -> list[list[Sample]]:
    """Each question's `config.samples` replies (those that came), cached ones first (a
    reference goes only to the simulated stand-in, which needs it to write an answer)."""
    backend: Backend = registry.backends.get(config.backend)(config)
    indices = list(range(config.samples))
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
    answers = cached | (client.ask(missing) if missing else {})
    keys = [backend.gen_key(messages) for messages in questions]
    return [[answers[(key, i)] for i in indices if (key, i) in answers] for key in keys]


def reply_text(sample: Sample) -> str:
    """What a model said, its reasoning first."""
    return "\n".join(part for part in (sample.reasoning, sample.completion) if part).strip()
