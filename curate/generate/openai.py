"""Any OpenAI-compatible chat endpoint: vLLM serve, SGLang, TGI, hosted APIs."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import warnings
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp
from pydantic import Field

from curate import registry
from curate.errors import BackendError, CurateWarning
from curate.generate.base import Backend, Request, Sample, TeacherConfig, split_reasoning
from curate.generate.batch import BatchAPI
from curate.generate.guards import Guard
from curate.generate.limits import RateLimiter, Replica, Replicas

TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIConfig(TeacherConfig):
    """An OpenAI-compatible chat completions endpoint."""

    backend: Literal["openai"] = Field("openai", description="An OpenAI-compatible endpoint.")
    base_url: str | list[str] = Field(
        description="Endpoint root, e.g. http://localhost:8000/v1, or a list of replicas."
    )
    requests_per_minute: float | None = Field(None, gt=0, description="Request rate limit.")
    tokens_per_minute: float | None = Field(
        None, gt=0, description="Token rate limit (prompt + completion)."
    )
    replica_cooldown_s: float = Field(
        30, ge=0, description="Seconds a failing replica rests while others take its traffic."
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key (never the key)."
    )
    top_k: int | None = Field(None, description="Top-k sampling (servers that support it).")
    min_p: float | None = Field(None, ge=0, le=1, description="Min-p sampling (vLLM, SGLang).")
    use_n: bool = Field(True, description="Ask for all samples in one request with `n`.")
    timeout_s: float = Field(600, gt=0, description="Seconds before a request is abandoned.")
    max_retries: int = Field(6, ge=0, description="Retries on 429, 5xx, timeouts and drops.")
    retry_base_s: float = Field(
        0.5, gt=0, description="First retry waits about this long; each later one twice as long."
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Extra JSON fields sent as-is (top_k, min_p, ...)."
    )

    volatile = TeacherConfig.volatile | frozenset(
        {
            "timeout_s",
            "max_retries",
            "base_url",
            "requests_per_minute",
            "tokens_per_minute",
            "replica_cooldown_s",
        }
    )

    def sampling(self) -> dict[str, Any]:
        return {**super().sampling(), "top_k": self.top_k, "min_p": self.min_p}

    def request_per_sample(self) -> bool:
        return not self.use_n or self.guards is not None

    def urls(self) -> list[str]:
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)


@registry.backends.register()
class OpenAITeacher(Backend):
    """An OpenAI-compatible chat completions endpoint."""

    name = "openai"
    config_class = OpenAIConfig
    config: OpenAIConfig

    def __init__(self, config: TeacherConfig) -> None:
        super().__init__(config)
        self._headers = {}
        key = os.environ.get(self.config.api_key_env)
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._session: aiohttp.ClientSession | None = None
        self._checked = False  # replicas probed
        config = self.config
        urls, self._auth = without_credentials(config.urls())
        if self._auth is not None and key:
            raise BackendError(
                f"teacher.base_url carries a user and password and {config.api_key_env} is set: "
                "the server takes one of them; remove one"
            )
        self.replicas = Replicas(urls, config.replica_cooldown_s)
        self.request_limit = (
            RateLimiter(config.requests_per_minute) if (config.requests_per_minute) else None
        )
        self.token_limit = (
            RateLimiter(config.tokens_per_minute) if (config.tokens_per_minute) else None
        )

    def endpoint_identity(self) -> str:
        return f"openai:{self.config.model}"

    def batch_api(self) -> BatchAPI:
        from curate.generate.openai_batch import OpenAIBatches

        return OpenAIBatches(self)

    def session(self) -> aiohttp.ClientSession:
        """One pooled session per event loop (aiohttp: about 0.3 ms of CPU per request here,
        where httpx took about 20 ms at 128 requests in flight)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                auth=self._auth,
                # a server that does not answer the connection is known in seconds, not minutes
                timeout=aiohttp.ClientTimeout(
                    total=self.config.timeout_s, sock_connect=min(30.0, self.config.timeout_s)
                ),
                connector=aiohttp.TCPConnector(limit=self.config.max_concurrency),
            )
        return self._session

    async def check_health(self) -> None:
        """Ask every replica for its model list once; one that does not answer rests first."""
        if self._checked:
            return
        self._checked = True
        if len(self.replicas.pool) < 2:
            return  # nowhere else to send the traffic: let the retries deal with it

        async def probe(replica: Replica) -> None:
            try:
                timeout = aiohttp.ClientTimeout(total=5)
                async with self.session().get(f"{replica.url}/models", timeout=timeout) as answer:
                    healthy = answer.status < 500
            except TRANSPORT_ERRORS:
                healthy = False
            if not healthy:
                self.replicas.failed(replica)

        await asyncio.gather(*(probe(replica) for replica in self.replicas.pool))

    def preflight(self) -> None:
        """Ask each replica for its model list: none answering is an error worth stopping for
        before any other stage spends time; an unset key variable or a model the server does
        not list is a warning (local servers often need no key; some proxies list no models)."""
        env = self.config.api_key_env
        if not os.environ.get(env):
            warn(
                f"teacher.api_key_env names {env}, which is not set: requests go without an "
                "API key (fine for a local server)"
            )
        results = asyncio.run(self._probe_all())
        if not any(r.reached for r in results):
            raise BackendError(
                f"cannot reach the teacher: {results[0].problem}; fix teacher.base_url or start "
                "the server, then run again (finished samples are kept)"
            )
        for result in results:
            if result.problem:
                warn(result.problem)

    async def _probe_all(self) -> list[Probe]:
        timeout = aiohttp.ClientTimeout(total=min(10.0, self.config.timeout_s))
        async with aiohttp.ClientSession(headers=self._headers, timeout=timeout) as session:
            return list(
                await asyncio.gather(*(self._probe(session, u) for u in self.config.urls()))
            )

    async def _probe(self, session: aiohttp.ClientSession, url: str) -> Probe:
        try:
            async with session.get(f"{url}/models") as response:
                status, text = response.status, await response.read()
        except TRANSPORT_ERRORS as exc:
            return Probe(url, False, describe_failure(exc, url))
        if status in (401, 403):
            env = self.config.api_key_env
            hint = f"set {env}" if not os.environ.get(env) else f"check the key in {env}"
            return Probe(
                url, False, f"HTTP {status} from {url}: the server refused the key ({hint})"
            )
        if status in (502, 503, 504):  # a proxy or load balancer with no server behind it
            return Probe(url, False, f"HTTP {status} from {url}/models")
        return Probe(url, True, self._model_problem(url, status, text))

    def _model_problem(self, url: str, status: int, text: bytes) -> str:
        """A warning when the server lists its models and ours is not among them."""
        if status != 200:
            return ""
        try:
            listed = [m.get("id") for m in json.loads(text).get("data") or []]
        except (ValueError, AttributeError):
            return ""
        if not listed or self.config.model in listed:
            return ""
        shown = ", ".join(map(str, listed[:5]))
        return f"{url} does not list model {self.config.model!r} (it lists: {shown})"

    async def sample(self, request: Request) -> list[Sample]:
        await self.check_health()
        if self.config.guards is not None:  # guarded samples stream, one request each
            groups = await asyncio.gather(
                *(self._stream_one(request, index) for index in request.sample_indices)
            )
            return [sample for group in groups for sample in group]
        if self.config.use_n:
            return await self._request(request, request.sample_indices)
        groups = await asyncio.gather(
            *(self._request(request, [index]) for index in request.sample_indices)
        )
        return [sample for group in groups for sample in group]

    async def _request(self, request: Request, indices: list[int]) -> list[Sample]:
        body = self.payload(request.messages, len(indices))
        started = time.monotonic()
        try:
            data = await self._post_with_retries(body)
        except BackendError as exc:
            return [Sample(i, None, None, None, error=str(exc)) for i in indices]
        latency = time.monotonic() - started
        return self.parse(data, indices, latency)

    async def _stream_one(self, request: Request, index: int) -> list[Sample]:
        """One streamed sample, stopped early when a guard says it loops or drifts."""
        body = self.payload(request.messages, 1)
        body.update(stream=True, stream_options={"include_usage": True})
        started, last, replica = time.monotonic(), "no attempt", None
        for attempt in range(self.config.max_retries + 1):
            await self._pace(body)
            replica = self.replicas.pick(avoid=replica if attempt else None)
            replica.in_flight += 1
            try:
                outcome = await self._read_stream(replica, body, index, started)
            except BackendError as exc:  # not worth retrying (e.g. HTTP 400)
                return [Sample(index, None, None, None, error=str(exc))]
            except TRANSPORT_ERRORS as exc:
                self.replicas.failed(replica)
                outcome = describe_failure(exc, replica.url)
            finally:
                replica.in_flight -= 1
            if isinstance(outcome, Sample):
                self.replicas.succeeded(replica)
                return [outcome]
            last = outcome
            await asyncio.sleep(backoff(attempt, base_s=self.config.retry_base_s))
        error = f"{last} (gave up after {self.config.max_retries + 1} attempts)"
        return [Sample(index, None, None, None, error=error)]

    async def _read_stream(
        self, replica: Replica, body: dict[str, Any], index: int, started: float
    ) -> Sample | str:
        """A sample, or why a retry is needed; closing the stream early stops generation."""
        assert self.config.guards is not None
        stream = StreamedSample(Guard(self.config.guards))
        url = f"{replica.url}/chat/completions"
        async with self.session().post(url, json=body) as response:
            if response.status != 200:
                return self._read(response.status, await response.read(), replica)[1]
            async for raw in response.content:
                line = raw.decode("utf-8", errors="replace").strip()
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                if stream.add(payload):
                    response.close()  # hang up: the server stops generating
                    break
        if stream.malformed:
            return "malformed stream chunk"
        return stream.sample(index, self.config.think_tags, time.monotonic() - started)

    def payload(self, messages: list[dict[str, str]], n: int) -> dict[str, Any]:
        config = self.config
        body: dict[str, Any] = {"model": config.model, "messages": messages, "n": n}
        body.update(config.request_params())
        body.update(config.extra_body)
        return body

    async def _post_with_retries(self, body: dict[str, Any]) -> dict[str, Any]:
        last, replica = "no attempt", None
        for attempt in range(self.config.max_retries + 1):
            await self._pace(body)
            replica = self.replicas.pick(avoid=replica if attempt else None)
            replica.in_flight += 1
            try:
                url = f"{replica.url}/chat/completions"
                async with self.session().post(url, json=body) as response:
                    limit = reply_limit(self.config.max_tokens, int(body.get("n", 1)))
                    status, text = response.status, await read_bounded(response, limit)
                    retry_after = response.headers.get("retry-after")
            except TRANSPORT_ERRORS as exc:
                self.replicas.failed(replica)
                last = describe_failure(exc, replica.url)
                await asyncio.sleep(backoff(attempt, base_s=self.config.retry_base_s))
                continue
            finally:
                replica.in_flight -= 1
            data, last = self._read(status, text, replica)
            if data is not None:
                return data
            await asyncio.sleep(backoff(attempt, retry_after, self.config.retry_base_s))
        raise BackendError(f"{last} (gave up after {self.config.max_retries + 1} attempts)")

    async def _pace(self, body: dict[str, Any]) -> None:
        """Wait for the rate limits (tokens: the prompt now, the completion on arrival)."""
        if self.request_limit is not None:
            await self.request_limit.acquire()
        if self.token_limit is not None:
            prompt = sum(len(m["content"]) for m in body["messages"]) // 4
            await self.token_limit.acquire(prompt)

    def _read(
        self, status: int, text: bytes, replica: Replica
    ) -> tuple[dict[str, Any] | None, str]:
        """(data, '') on success; (None, why) for a retryable failure; raises otherwise."""
        if status == 200:
            try:
                data = json.loads(text)
            except ValueError:
                return None, "malformed JSON in response"
            if not isinstance(data, dict):  # valid JSON of another shape: no sample in it
                kind = "null" if data is None else type(data).__name__
                raise BackendError(f"reply from {replica.url} is JSON {kind}, not an object")
            self.replicas.succeeded(replica)
            if self.token_limit is not None:
                self.token_limit.charge(whole(usage_of(data).get("completion_tokens")) or 0)
            return data, ""
        if status in RETRY_STATUS:
            if status >= 500:
                self.replicas.failed(replica)
            return None, f"HTTP {status} from {replica.url}"
        raise BackendError(f"HTTP {status} from {replica.url}: {text[:200]!r}")

    def parse(
        self, data: dict[str, Any], indices: list[int], latency: float | None
    ) -> list[Sample]:
        """One sample per index; a reply of the wrong shape makes failed samples that say
        what was wrong, never a crash."""
        choices = data.get("choices") or []
        if not isinstance(choices, list):
            return [
                Sample(i, None, None, None, error="reply's choices is not a list") for i in indices
            ]
        usage = usage_of(data)
        total = whole(usage.get("completion_tokens"))
        per_sample = total // max(1, len(choices)) if total is not None else None
        thought = reasoning_tokens(usage)
        thought_each = thought // max(1, len(choices)) if thought is not None else None
        samples = []
        for position, index in enumerate(indices):
            if position >= len(choices):
                samples.append(Sample(index, None, None, None, error="missing choice"))
                continue
            choice = choices[position]
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict) or not text_or_none(message):
                why = f"reply's choice {position} holds no message with text content"
                samples.append(Sample(index, None, None, None, error=why))
                continue
            reasoning, completion = self._split(message)
            finish = choice.get("finish_reason")
            samples.append(
                Sample(
                    index,
                    reasoning,
                    completion,
                    finish if isinstance(finish, str) else None,
                    whole(usage.get("prompt_tokens")),
                    per_sample,
                    latency,
                    reasoning_tokens=thought_each,
                )
            )
        return samples

    def _split(self, message: dict[str, Any]) -> tuple[str, str]:
        content = message.get("content") or ""
        field = message.get("reasoning_content") or message.get("reasoning")
        if field:
            return str(field).strip(), content.strip()
        reasoning, completion, _ = split_reasoning(content, self.config.think_tags)
        return reasoning, completion

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass(frozen=True)
class Probe:
    """What asking one replica for its model list found."""

    url: str
    reached: bool
    problem: str  # empty when all is well


BYTES_PER_TOKEN = 64  # far more than any tokenizer's text and JSON escaping need


def reply_limit(max_tokens: int, samples: int) -> int:
    """The largest reply a request can honestly get: max_tokens per sample, with room."""
    return max_tokens * samples * BYTES_PER_TOKEN + (1 << 20)


async def read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, refused (not read into memory) past `limit` bytes: a server sending
    hundreds of megabytes for a few samples is broken, and would fill memory and disk."""
    size = response.content_length
    if size is not None and size > limit:
        raise BackendError(f"reply of {size:,} bytes, over the {limit:,} max_tokens allow")
    chunks, total = [], 0
    async for chunk in response.content.iter_chunked(1 << 16):
        total += len(chunk)
        if total > limit:
            raise BackendError(f"reply over {limit:,} bytes, more than max_tokens allow")
        chunks.append(chunk)
    return b"".join(chunks)


def without_credentials(urls: list[str]) -> tuple[list[str], aiohttp.BasicAuth | None]:
    """The URLs without a `user:password@` part, which goes into basic auth instead, so no
    URL in a message or a log carries it."""
    plain, auth = [], None
    for url in urls:
        parts = urlsplit(url)
        if parts.username is not None:
            auth = aiohttp.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
            host = parts.hostname or ""
            netloc = f"[{host}]" if ":" in host else host
            netloc += f":{parts.port}" if parts.port else ""
            url = urlunsplit(parts._replace(netloc=netloc))
        plain.append(url)
    return plain, auth


def usage_of(data: dict[str, Any]) -> dict[str, Any]:
    usage = data.get("usage")
    return usage if isinstance(usage, dict) else {}


def reasoning_tokens(usage: dict[str, Any]) -> int | None:
    """The reasoning part of the completion tokens, where the provider reports it."""
    details = usage.get("completion_tokens_details")
    return whole(details.get("reasoning_tokens")) if isinstance(details, dict) else None


def whole(value: Any) -> int | None:
    """A token count as the reply gave it, when it is one."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def text_or_none(message: dict[str, Any]) -> bool:
    """The message's content and reasoning are text or absent (integer content is no reply)."""
    parts = [message.get(k) for k in ("content", "reasoning_content", "reasoning")]
    return all(part is None or isinstance(part, str) for part in parts)


def describe_failure(exc: BaseException, url: str) -> str:
    """A transport failure as a person would say it, naming the endpoint."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        code = exc.os_error.errno
        reason = os.strerror(code) if code else str(exc.os_error)
        return f"{reason.lower()} at {url}"
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer from {url} in time (teacher.timeout_s)"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"{url} closed the connection"
    return f"{type(exc).__name__} from {url}: {exc}"


def warn(message: str) -> None:
    warnings.warn(message, CurateWarning, stacklevel=3)


class StreamedSample:
    """Collects one streamed choice; add() says when to stop (a guard fired)."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.reasoning: list[str] = []
        self.content: list[str] = []
        self.finish: str | None = None
        self.usage: dict[str, Any] = {}
        self.malformed = False

    def add(self, payload: str) -> bool:
        try:
            chunk = json.loads(payload)
        except ValueError:
            self.malformed = True
            return True
        self.usage = chunk.get("usage") or self.usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            thought = delta.get("reasoning_content") or delta.get("reasoning") or ""
            text = delta.get("content") or ""
            self.reasoning.append(thought)
            self.content.append(text)
            self.finish = choice.get("finish_reason") or self.finish
            stop = self.guard.feed(thought + text)
            if stop is not None:
                self.finish = stop
                return True
        return False

    def sample(self, index: int, tags: tuple[str, str], seconds: float) -> Sample:
        thought, text = "".join(self.reasoning), "".join(self.content)
        if not thought:
            thought, text, _ = split_reasoning(text, tags)
        if (self.finish or "").startswith("guard_"):
            text = ""  # stopped mid-way: there is no final answer
        tokens = self.usage.get("completion_tokens") or (len(thought) + len(text)) // 4
        return Sample(
            index,
            thought.strip(),
            text.strip(),
            self.finish,
            self.usage.get("prompt_tokens"),
            tokens,
            seconds,
            reasoning_tokens=reasoning_tokens(self.usage),
        )


def backoff(attempt: int, retry_after: str | None = None, base_s: float = 0.5) -> float:
    """Seconds to wait: the server's Retry-After if given, else exponential with jitter."""
    if retry_after:
        try:
            return min(float(retry_after), 120.0)
        except ValueError:
            pass
    return float(min(60.0, base_s * 2**attempt) * (0.5 + random.random()))
