"""Providers' batch APIs (`teacher.mode: batch`): requests written as the provider's batch
files, submitted, polled and read back into the same sample cache as online generation,
so switching between online and batch reuses everything done.

Every batch and its requests are kept in the run store (tables beside the sample cache)
before the submit is sent, under a token of ours: a killed run polls what it submitted
and never submits a request twice; a submit whose reply was lost is found again by its
token (OpenAI keeps it as the batch's metadata; Anthropic by the batch's size and time).
Failed and expired requests are sent again alone, in a new batch, `batch.resubmits`
times; what still fails is a failed sample (`curate run --retry-failed` sends it again).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp

from curate.errors import BackendError
from curate.generate.base import BatchOptions, Request, Sample

Key = tuple[str, int]  # (gen_key, sample index)
Keep = Callable[[Request, list[Sample]], None]

SCHEMA = """
create table if not exists batch_jobs (
    token text primary key,
    provider text not null,
    batch_id text,
    state text not null,
    submitted_at real not null,
    size integer not null
);
create table if not exists batch_lines (
    custom_id text primary key,
    token text,
    gen_key text not null,
    indices text not null,
    line text not null
);
create table if not exists batch_failures (
    custom_id text primary key,
    error text not null
)
"""

ACTIVE = ("submitting", "running")
POLL_FAILURES = 20  # looks at a batch that may fail in a row before the run stops


@dataclass(frozen=True)
class Line:
    """One request of a batch: which samples it asks for, and the provider's line."""

    custom_id: str
    gen_key: str
    indices: list[int]
    body: dict[str, Any]

    def size(self) -> int:
        return len(json.dumps(self.body, ensure_ascii=False).encode()) + 1


@dataclass(frozen=True)
class BatchState:
    """What the provider says of a batch."""

    batch_id: str
    status: str  # the provider's word (in_progress, completed, ended, expired, ...)
    ended: bool
    counts: dict[str, int] = field(default_factory=dict)
    error: str = ""  # why the whole batch failed, when it did
    files: list[str] = field(default_factory=list)  # where its results are read


@dataclass(frozen=True)
class Result:
    """One request's outcome in an ended batch: the reply body, or why there is none."""

    custom_id: str
    body: dict[str, Any] | None
    error: str = ""
    resubmit: bool = True  # a cancelled request is not sent again unasked


class BatchAPI(ABC):
    """A provider's batch endpoints."""

    provider: ClassVar[str]
    max_requests: ClassVar[int]
    max_bytes: ClassVar[int]

    @abstractmethod
    def lines(self, request: Request) -> list[Line]:
        """The request as batch lines (custom ids made from the gen_key and indices)."""

    @abstractmethod
    async def submit(self, lines: list[dict[str, Any]], token: str) -> str:
        """Create a batch of these lines; its id."""

    @abstractmethod
    async def find(self, token: str, since: float, size: int, known: set[str]) -> str | None:
        """The id of a batch we submitted under `token` whose reply was lost, if it exists."""

    @abstractmethod
    async def state(self, batch_id: str) -> BatchState:
        """The batch's state now."""

    @abstractmethod
    def results(self, state: BatchState) -> AsyncIterator[Result]:
        """Every request's outcome in an ended batch."""

    @abstractmethod
    def samples(self, line: Line, body: dict[str, Any]) -> list[Sample]:
        """The samples in a request's reply body."""

    async def aclose(self) -> None:
        """Close connections."""


def custom_id(gen_key: str, indices: list[int]) -> str:
    """A line's id: the gen_key, its first sample and how many (64 characters at most, of
    the characters both providers allow)."""
    return f"{gen_key}-{indices[0]}-{len(indices)}"


@dataclass(frozen=True)
class Job:
    token: str
    batch_id: str | None
    submitted_at: float
    size: int


class BatchStore:
    """Batches, their requests and the requests that failed, in the run store's cache file."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.db.executescript(SCHEMA)

    def _among(self, query: str, ids: Iterable[str]) -> Iterator[tuple[Any, ...]]:
        """The rows of `query` (ending `custom_id in ({marks})`) for these ids, 500 at a time."""
        for chunk in chunks(sorted(set(ids)), 500):
            yield from self.db.execute(query.format(marks=",".join("?" * len(chunk))), chunk)

    def active(self, ids: Iterable[str]) -> set[str]:
        """Of these custom ids, those in a batch not yet read back."""
        query = (
            "select l.custom_id from batch_lines l join batch_jobs j on l.token = j.token "
            "where j.state in ('submitting', 'running') and l.custom_id in ({marks})"
        )
        return {row[0] for row in self._among(query, ids)}

    def add_job(self, token: str, provider: str, lines: list[Line]) -> None:
        """Record a batch and its lines before it is submitted."""
        with self.db:
            self.db.execute("begin")
            self.db.execute(
                "insert into batch_jobs values (?, ?, null, 'submitting', ?, ?)",
                (token, provider, time.time(), len(lines)),
            )
            self.db.executemany(
                "insert or replace into batch_lines values (?, ?, ?, ?, ?)",
                [
                    (
                        line.custom_id,
                        token,
                        line.gen_key,
                        json.dumps(line.indices),
                        json.dumps(line.body, ensure_ascii=False),
                    )
                    for line in lines
                ],
            )
            self.db.executemany(
                "delete from batch_failures where custom_id = ?",
                [(line.custom_id,) for line in lines],
            )

    def jobs(self, state: str) -> list[Job]:
        rows = self.db.execute(
            "select token, batch_id, submitted_at, size from batch_jobs where state = ? "
            "order by submitted_at",
            (state,),
        )
        return [Job(*row) for row in rows]

    def known_ids(self) -> set[str]:
        rows = self.db.execute("select batch_id from batch_jobs where batch_id is not null")
        return {row[0] for row in rows}

    def running(self, token: str, batch_id: str) -> None:
        self.db.execute(
            "update batch_jobs set batch_id = ?, state = 'running' where token = ?",
            (batch_id, token),
        )

    def close_job(self, token: str, state: str) -> None:
        """A batch read back ('collected') or never created ('lost'): its lines are free."""
        with self.db:
            self.db.execute("begin")
            self.db.execute("update batch_jobs set state = ? where token = ?", (state, token))
            self.db.execute("update batch_lines set token = null where token = ?", (token,))

    def lines_of(self, token: str) -> list[Line]:
        rows = self.db.execute(
            "select custom_id, gen_key, indices, line from batch_lines where token = ?", (token,)
        )
        return [Line(cid, key, json.loads(idx), json.loads(body)) for cid, key, idx, body in rows]

    def lines(self, ids: Iterable[str]) -> list[Line]:
        query = (
            "select custom_id, gen_key, indices, line from batch_lines where custom_id in ({marks})"
        )
        rows = self._among(query, ids)
        return [Line(c, k, json.loads(i), json.loads(b)) for c, k, i, b in rows]

    def succeeded(self, ids: list[str]) -> None:
        self.db.executemany("delete from batch_lines where custom_id = ?", [(i,) for i in ids])

    def failed(self, failures: dict[str, str]) -> None:
        self.db.executemany(
            "insert or replace into batch_failures values (?, ?)", list(failures.items())
        )

    def failures(self, ids: Iterable[str]) -> dict[str, str]:
        query = "select custom_id, error from batch_failures where custom_id in ({marks})"
        return dict(self._among(query, ids))


class BatchClient:
    """Requests through a provider's batch API into the sample cache: `submit` sends what
    is not cached, in flight or settled; `wait` polls every batch of the store until it
    ends, reads its results back (each good sample cached at once, through `keep`) and
    sends the failed requests again; `run` does both."""

    def __init__(
        self,
        api: BatchAPI,
        store: BatchStore,
        options: BatchOptions,
        keep: Keep,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.api = api
        self.store = store
        self.options = options
        self.keep = keep
        self.note = note or (lambda text: None)
        self.max_requests = min(options.max_requests or api.max_requests, api.max_requests)
        self.max_bytes = min(options.max_bytes or api.max_bytes, api.max_bytes)
        self.counts: Counter[str] = Counter()  # batches submitted, adopted, resubmitted lines
        self._retryable: dict[str, str] = {}  # custom id -> why, failed in this client's waits
        self._queued: list[Line] = []  # lines waiting for a batch to fill
        self._queued_bytes = 0

    def run(self, requests: list[Request]) -> dict[Key, Sample]:
        """Every request's samples: the good ones through `keep`; those that failed for
        good (after the resubmits) returned with `error` set."""
        self.submit(requests)
        self.wait()
        return self.settled(requests)

    def submit(self, requests: Iterable[Request]) -> None:
        """Queue the lines of these requests that no batch holds now; send each batch as it
        fills to the provider's limits (the rest goes with `flush` or `wait`)."""
        lines = {
            line.custom_id: line for r in requests if r.sample_indices for line in self.api.lines(r)
        }
        busy = self.store.active(lines) | {line.custom_id for line in self._queued}
        fresh = [line for cid, line in lines.items() if cid not in busy]
        over = {line.custom_id for line in fresh if line.size() > self.max_bytes}
        if over:
            why = f"request over the batch limit of {self.max_bytes:,} bytes"
            self.store.failed(dict.fromkeys(over, why))
        for line in fresh:
            if line.custom_id not in over:
                self._queued.append(line)
                self._queued_bytes += line.size()
        if len(self._queued) >= self.max_requests or self._queued_bytes >= self.max_bytes:
            self.flush(whole_only=True)

    def flush(self, whole_only: bool = False) -> None:
        """Send the queued lines (only full batches when `whole_only`)."""
        parts = list(split(self._queued, self.max_requests, self.max_bytes))
        if whole_only and parts:
            *parts, last = parts
            self._queued, self._queued_bytes = last, sum(line.size() for line in last)
        else:
            self._queued, self._queued_bytes = [], 0
        if parts:
            asyncio.run(self._submit_all(parts))

    def wait(self) -> None:
        """Send what is queued, then poll until no batch of the store is in flight, reading
        each back as it ends; send failed requests again (at most `resubmits` times) and
        wait for those too."""
        self.flush()
        asyncio.run(self._wait_all())

    def settled(self, requests: list[Request]) -> dict[Key, Sample]:
        """The failed samples of these requests (errors as the batches gave them)."""
        lines = [line for r in requests if r.sample_indices for line in self.api.lines(r)]
        failures = self.store.failures(line.custom_id for line in lines)
        found: dict[Key, Sample] = {}
        for line in lines:
            why = failures.get(line.custom_id)
            if why is not None:
                for index in line.indices:
                    found[(line.gen_key, index)] = Sample(index, None, None, None, error=why)
        return found

    async def _submit_all(self, parts: list[list[Line]]) -> None:
        try:
            for part in parts:
                await self._submit(part)
        finally:
            await self.api.aclose()

    async def _submit(self, lines: list[Line]) -> None:
        token = uuid.uuid4().hex
        self.store.add_job(token, self.api.provider, lines)
        try:
            batch_id = await self.api.submit([line.body for line in lines], token)
        except BackendError as exc:  # refused for good (a bad request, a key): say why per line
            self.store.failed({line.custom_id: f"batch refused: {exc}" for line in lines})
            self.store.close_job(token, "lost")
            return
        except Exception as exc:  # no reply: it may exist; wait() looks for it by token
            self.note(f"no reply to a batch submit ({type(exc).__name__}); looking for it")
            return
        self.store.running(token, batch_id)
        self.counts["batches_submitted"] += 1
        self.note(f"batch {batch_id} submitted: {len(lines):,} requests")

    async def _wait_all(self) -> None:
        try:
            for round_ in range(self.options.resubmits + 1):
                await self._adopt_lost()
                await self._poll()
                again = self._retry_lines() if round_ < self.options.resubmits else []
                if not again:
                    break
                self.counts["requests_resubmitted"] += len(again)
                for part in split(again, self.max_requests, self.max_bytes):
                    await self._submit(part)
            await self._adopt_lost()
            await self._poll()
        finally:
            await self.api.aclose()

    def _retry_lines(self) -> list[Line]:
        """The lines that failed in this client's waits, and may be sent again."""
        ids, self._retryable = list(self._retryable), {}
        return self.store.lines(ids)

    async def _adopt_lost(self) -> None:
        """A batch whose submit got no reply: found by its token and polled, or its lines
        sent again (never both)."""
        for job in self.store.jobs("submitting"):
            known = self.store.known_ids()
            found = await self.api.find(job.token, job.submitted_at, job.size, known)
            if found is not None:
                self.store.running(job.token, found)
                self.counts["batches_adopted"] += 1
                self.note(f"batch {found} found again after a lost reply")
                continue
            lines = self.store.lines_of(job.token)
            self.store.close_job(job.token, "lost")
            for part in split(lines, self.max_requests, self.max_bytes):
                await self._submit(part)

    async def _poll(self) -> None:
        misses: Counter[str] = Counter()
        while jobs := self.store.jobs("running"):
            states = []
            for job in jobs:
                assert job.batch_id is not None
                try:
                    state = await self.api.state(job.batch_id)
                except BackendError:
                    raise
                except Exception as exc:
                    misses[job.token] += 1
                    if misses[job.token] >= POLL_FAILURES:
                        raise BackendError(
                            f"cannot look at batch {job.batch_id} ({type(exc).__name__}); "
                            "it is kept: run again to go on polling it"
                        ) from None
                    continue
                misses[job.token] = 0
                states.append(state)
                if state.ended:
                    await self._collect(job, state)
            self.note(describe(states))
            if any(not s.ended for s in states) or len(states) < len(jobs):
                await asyncio.sleep(self.options.poll_s)

    async def _collect(self, job: Job, state: BatchState) -> None:
        """Read an ended batch back: good samples kept, failures recorded; then the batch is
        closed, so a kill in between only reads it again."""
        lines = {line.custom_id: line for line in self.store.lines_of(job.token)}
        good: list[str] = []
        failures: dict[str, str] = {}
        async for result in self.api.results(state):
            line = lines.pop(result.custom_id, None)
            if line is None:
                continue
            why = self._read(line, result, state)
            if why:
                failures[line.custom_id] = why
                if result.resubmit:
                    self._retryable[line.custom_id] = why
            else:
                good.append(line.custom_id)
        for cid in lines:  # the provider gave nothing for them
            failures[cid] = state.error or f"batch {state.batch_id} ({state.status}) has no result"
            if state.status not in ("cancelled", "canceled"):
                self._retryable[cid] = failures[cid]
        self.store.failed(failures)
        self.store.succeeded(good)
        self.store.close_job(job.token, "collected")
        self.counts["batch_requests_failed"] += len(failures)

    def _read(self, line: Line, result: Result, state: BatchState) -> str:
        """'' when the line's samples came (kept); else why not."""
        if result.body is None:
            return result.error or f"no reply in batch {state.batch_id}"
        samples = self.api.samples(line, result.body)
        request = Request("", [], line.indices, line.gen_key)
        self.keep(request, samples)
        broken = [s.error for s in samples if s.error]
        return broken[0] if broken else ""


async def call_json(
    session: aiohttp.ClientSession, method: str, url: str, retry: set[int], **kwargs: Any
) -> dict[str, Any]:
    """One call to a batch endpoint: its JSON object. A refusal is a BackendError (the run
    stops and says why); a status in `retry`, or an answer that is no object, another
    exception (the caller may try again)."""
    async with session.request(method, url, **kwargs) as response:
        text = await response.read()
        if response.status in retry:
            raise ConnectionError(f"HTTP {response.status} from {url}")
        if response.status != 200:
            raise BackendError(f"HTTP {response.status} from {url}: {text[:200]!r}")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ConnectionError(f"{url} answered with JSON that is not an object")
    return data


def describe(states: list[BatchState]) -> str:
    """One line for the progress bar: each batch's state and counts."""
    parts = []
    for state in states[:4]:
        counts = " ".join(f"{k} {v:,}" for k, v in state.counts.items() if v)
        parts.append(f"{state.batch_id[-8:]}: {state.status}" + (f" ({counts})" if counts else ""))
    if len(states) > 4:
        parts.append(f"+{len(states) - 4} batches")
    return "; ".join(parts)


def split(lines: list[Line], max_requests: int, max_bytes: int) -> Iterator[list[Line]]:
    """Lines in batches of at most max_requests lines and max_bytes bytes."""
    part: list[Line] = []
    size = 0
    for line in lines:
        bytes_ = line.size()
        if part and (len(part) >= max_requests or size + bytes_ > max_bytes):
            yield part
            part, size = [], 0
        part.append(line)
        size += bytes_
    if part:
        yield part


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
