"""Anthropic's native Messages API (`/v1/messages`), online and through Message Batches.

No `n`: each sample is its own request. Extended thinking (`thinking_budget`) comes back
as thinking blocks, kept as the reasoning; without it, `<think>` tags in the text are split
as for any teacher. `stop_reason: max_tokens` is a truncated sample (`finish_reason:
length`)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

import aiohttp
from pydantic import Field, model_validator

from curate import registry
from curate.errors import BackendError
from curate.generate.base import Backend, Request, Sample, TeacherConfig, split_reasoning
from curate.generate.batch import BatchAPI, BatchState, Line, Result, call_json, custom_id
from curate.generate.openai import (
    TRANSPORT_ERRORS,
    backoff,
    describe_failure,
    read_bounded,
    reply_limit,
    warn,
    whole,
)

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}  # 529: overloaded
STOPS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


class AnthropicConfig(TeacherConfig):
    """Anthropic's Messages API."""

    backend: Literal["anthropic"] = Field("anthropic", description="Anthropic's Messages API.")
    base_url: str = Field("https://api.anthropic.com", description="API root (no /v1).")
    api_key_env: str = Field(
        "ANTHROPIC_API_KEY", description="Environment variable holding the key (never the key)."
    )
    api_version: str = Field("2023-06-01", description="The anthropic-version header.")
    thinking_budget: int | None = Field(
        None, ge=1024, description="Extended thinking's budget_tokens (null: no thinking)."
    )
    top_k: int | None = Field(None, ge=1, description="Top-k sampling.")
    timeout_s: float = Field(600, gt=0, description="Seconds before a request is abandoned.")
    max_retries: int = Field(6, ge=0, description="Retries on 429, 529, 5xx, timeouts, drops.")
    retry_base_s: float = Field(0.5, gt=0, description="First retry's wait; doubling after.")
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Extra JSON fields sent as-is."
    )

    volatile = TeacherConfig.volatile | frozenset(
        {"timeout_s", "max_retries", "retry_base_s", "base_url", "api_version"}
    )

    @model_validator(mode="after")
    def _thinking_fits(self) -> AnthropicConfig:
        budget = self.thinking_budget
        if budget is not None and budget >= self.max_tokens:
            raise ValueError("thinking_budget must be below max_tokens (thinking counts in it)")
        if budget is not None and self.temperature != 1:
            raise ValueError("extended thinking takes temperature 1 only: set temperature: 1")
        return self

    def sampling(self) -> dict[str, Any]:
        return {**super().sampling(), "top_k": self.top_k, "thinking": self.thinking_budget}

    def request_per_sample(self) -> bool:
        return True


@registry.backends.register()
class AnthropicTeacher(Backend):
    """Anthropic's Messages API, one request a sample."""

    name = "anthropic"
    config_class = AnthropicConfig
    config: AnthropicConfig

    def __init__(self, config: TeacherConfig) -> None:
        super().__init__(config)
        self._headers = {"anthropic-version": self.config.api_version}
        key = os.environ.get(self.config.api_key_env)
        if key:
            self._headers["x-api-key"] = key
        self._session: aiohttp.ClientSession | None = None
        self.url = self.config.base_url.rstrip("/")

    def endpoint_identity(self) -> str:
        return f"anthropic:{self.config.model}"

    def batch_api(self) -> BatchAPI:
        return AnthropicBatches(self)

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(
                    total=self.config.timeout_s, sock_connect=min(30.0, self.config.timeout_s)
                ),
                connector=aiohttp.TCPConnector(limit=self.config.max_concurrency),
            )
        return self._session

    def preflight(self) -> None:
        """The API must answer; an unset key is a warning (a local proxy may need none)."""
        if not os.environ.get(self.config.api_key_env):
            warn(f"teacher.api_key_env names {self.config.api_key_env}, which is not set")
        problem = asyncio.run(self._probe())
        if problem:
            raise BackendError(
                f"cannot reach the teacher: {problem}; fix teacher.base_url, then run again"
            )

    async def _probe(self) -> str:
        timeout = aiohttp.ClientTimeout(total=min(10.0, self.config.timeout_s))
        try:
            async with (
                aiohttp.ClientSession(headers=self._headers, timeout=timeout) as session,
                session.get(f"{self.url}/v1/models") as response,
            ):
                status = response.status
        except TRANSPORT_ERRORS as exc:
            return describe_failure(exc, self.url)
        if status in (401, 403):
            return f"HTTP {status} from {self.url}: the key was refused ({self.config.api_key_env})"
        return ""

    def payload(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """The Messages API body: system messages go to `system`."""
        config = self.config
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        body: dict[str, Any] = {
            "model": config.model,
            "max_tokens": config.max_tokens,
            "messages": [m for m in messages if m["role"] != "system"],
            "temperature": config.temperature,
        }
        if system:
            body["system"] = system
        if "top_p" in config.model_fields_set:  # newer models refuse top_p beside temperature
            body["top_p"] = config.top_p
        if config.top_k is not None:
            body["top_k"] = config.top_k
        if config.stop:
            body["stop_sequences"] = config.stop
        if config.thinking_budget is not None:
            body["thinking"] = {"type": "enabled", "budget_tokens": config.thinking_budget}
        body.update(config.extra_body)
        return body

    async def sample(self, request: Request) -> list[Sample]:
        return list(await asyncio.gather(*(self._one(request, i) for i in request.sample_indices)))

    async def _one(self, request: Request, index: int) -> Sample:
        started = time.monotonic()
        try:
            data = await self._post(self.payload(request.messages))
        except BackendError as exc:
            return Sample(index, None, None, None, error=str(exc))
        return self.parse(data, index, time.monotonic() - started)

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        url, last = f"{self.url}/v1/messages", "no attempt"
        retry_after = None
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                await asyncio.sleep(backoff(attempt - 1, retry_after, self.config.retry_base_s))
            try:
                async with self.session().post(url, json=body) as response:
                    limit = reply_limit(self.config.max_tokens, 1)
                    status, text = response.status, await read_bounded(response, limit)
                    retry_after = response.headers.get("retry-after")
            except TRANSPORT_ERRORS as exc:
                last, retry_after = describe_failure(exc, self.url), None
                continue
            if status == 200:
                try:
                    data = json.loads(text)
                except ValueError:
                    last = "malformed JSON in response"
                    continue
                if isinstance(data, dict):
                    return data
                raise BackendError(f"reply from {url} is JSON, but not an object")
            if status not in RETRY_STATUS:
                raise BackendError(f"HTTP {status} from {url}: {text[:200]!r}")
            last = f"HTTP {status} from {url}"
        raise BackendError(f"{last} (gave up after {self.config.max_retries + 1} attempts)")

    def parse(self, data: dict[str, Any], index: int, latency: float | None) -> Sample:
        """A Messages reply as a sample; a reply of the wrong shape is a failed sample."""
        blocks = data.get("content")
        if not isinstance(blocks, list):
            return Sample(index, None, None, None, error="reply holds no content list")
        thinking = [b.get("thinking") for b in blocks if isinstance(b, dict)]
        texts = [b.get("text") for b in blocks if isinstance(b, dict)]
        thought = "".join(t for t in thinking if isinstance(t, str))
        text = "".join(t for t in texts if isinstance(t, str))
        if not thought:
            thought, text, _ = split_reasoning(text, self.config.think_tags)
        stop = data.get("stop_reason")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        assert isinstance(usage, dict)
        return Sample(
            index,
            thought.strip(),
            text.strip(),
            STOPS.get(stop, stop) if isinstance(stop, str) else None,
            whole(usage.get("input_tokens")),
            whole(usage.get("output_tokens")),
            latency,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


LIST_PAGES = 10
CLOCK_SLACK_S = 300  # a lost batch's creation time may differ from ours by this much


class AnthropicBatches(BatchAPI):
    """Message Batches: the requests posted inline, polled, results read from results_url."""

    provider = "anthropic"
    max_requests = 100_000  # Anthropic's limits on one batch
    max_bytes = 256 * 1024 * 1024

    def __init__(self, teacher: AnthropicTeacher) -> None:
        self.teacher = teacher
        self.root = f"{teacher.url}/v1/messages/batches"

    def lines(self, request: Request) -> list[Line]:
        body = self.teacher.payload(request.messages)
        lines = []
        for index in request.sample_indices:
            cid = custom_id(request.gen_key, [index])
            lines.append(Line(cid, request.gen_key, [index], {"custom_id": cid, "params": body}))
        return lines

    async def submit(self, lines: list[dict[str, Any]], token: str) -> str:
        made = await self._call("POST", self.root, json={"requests": lines})
        if not isinstance(made.get("id"), str):
            raise BackendError(f"{self.root} answered without a batch id")
        return str(made["id"])

    async def find(self, token: str, since: float, size: int, known: set[str]) -> str | None:
        """Anthropic keeps no metadata: the earliest batch we do not know, made after our
        submit (within the clock's slack), with as many requests as ours."""
        after, found = None, []
        for _ in range(LIST_PAGES):
            query = "?limit=100" + (f"&after_id={after}" if after else "")
            page = await self._call("GET", f"{self.root}{query}")
            batches = [b for b in page.get("data") or [] if isinstance(b, dict)]
            for batch in batches:
                made = epoch(batch.get("created_at"))
                total = sum((batch.get("request_counts") or {}).values())
                if batch.get("id") not in known and total == size and made >= since - CLOCK_SLACK_S:
                    found.append((made, str(batch["id"])))
            if not page.get("has_more") or not batches:
                break
            after = page.get("last_id")
        return min(found)[1] if found else None

    async def state(self, batch_id: str) -> BatchState:
        batch = await self._call("GET", f"{self.root}/{batch_id}")
        status = str(batch.get("processing_status"))
        counts = batch.get("request_counts") or {}
        url = batch.get("results_url")
        return BatchState(
            batch_id,
            status,
            status == "ended",
            {k: int(v) for k, v in counts.items() if isinstance(v, int)},
            f"batch {batch_id} ended without a result for this request",
            files=[url] if isinstance(url, str) else [],
        )

    async def results(self, state: BatchState) -> AsyncIterator[Result]:
        for url in state.files:
            try:
                async with self.teacher.session().get(url) as response:
                    if response.status != 200:
                        raise BackendError(f"HTTP {response.status} from {url}")
                    async for raw in response.content:
                        if raw.strip():
                            yield result_of(json.loads(raw), state)
            except TRANSPORT_ERRORS as exc:
                raise ConnectionError(describe_failure(exc, url)) from None

    def samples(self, line: Line, body: dict[str, Any]) -> list[Sample]:
        return [self.teacher.parse(body, line.indices[0], None)]

    async def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        return await call_json(self.teacher.session(), method, url, RETRY_STATUS, **kwargs)

    async def aclose(self) -> None:
        await self.teacher.aclose()


def result_of(record: Any, state: BatchState) -> Result:
    """One line of a batch's results."""
    record = record if isinstance(record, dict) else {}
    cid = str(record.get("custom_id"))
    result = record.get("result") or {}
    kind = result.get("type")
    if kind == "succeeded" and isinstance(result.get("message"), dict):
        return Result(cid, result["message"])
    error = (result.get("error") or {}).get("error") or {}
    message = error.get("message") if isinstance(error, dict) else None
    why = f"batch {state.batch_id}: {kind or 'no result'}" + (f": {message}" if message else "")
    return Result(cid, None, why, resubmit=kind != "canceled")


def epoch(stamp: Any) -> float:
    """An RFC 3339 time as seconds since the epoch (0 when unreadable)."""
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
