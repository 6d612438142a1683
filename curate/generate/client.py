"""Ask a teacher through its request cache: one loop for generation and for the
decontamination judge alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from curate.generate.base import Backend, Request, Sample
from curate.generate.batch import BatchClient, BatchStore
from curate.generate.cache import SampleCache

Key = tuple[str, int]  # (gen_key, sample index)
Arrived = Callable[[Request, list[Sample]], None]


class TeacherClient:
    """Samples already cached come back at once; the rest are asked of the backend (an
    offline one in chunks of `chunk` requests, any other concurrently, at most
    `concurrency` at a time), and each good sample is cached the moment it arrives, so a
    kill loses only what was in flight. `arrived` hears of every request's samples."""

    def __init__(
        self,
        backend: Backend,
        cache: SampleCache,
        concurrency: int,
        arrived: Arrived | None = None,
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.concurrency = max(1, concurrency)
        self.arrived = arrived

    def cached(self, requests: Iterable[Request]) -> dict[Key, Sample]:
        """What the cache holds of the requests' samples that the current max_tokens can
        reuse (see `reusable`), with those of caches written before max_tokens left the key."""
        requests = list(requests)
        limit = self.backend.config.max_tokens
        wanted = {(r.gen_key, i) for r in requests for i in r.sample_indices}
        found = self.cache.get_many(r.gen_key for r in requests)
        usable = {k: s for k, s in found.items() if k in wanted and reusable(s, limit)}
        short = [r for r in requests if any((r.gen_key, i) not in usable for i in r.sample_indices)]
        if short:
            usable |= self._legacy(short, wanted, usable, limit)
        return usable

    def _legacy(
        self, requests: list[Request], wanted: set[Key], usable: dict[Key, Sample], limit: int
    ) -> dict[Key, Sample]:
        """Samples under the old key (max_tokens in it): made under exactly this limit."""
        by_old = {self.backend.legacy_gen_key(r.messages): r for r in requests}
        found = {}
        for (old, index), sample in self.cache.get_many(by_old).items():
            key = (by_old[old].gen_key, index)
            if key in wanted and key not in usable:
                sample.max_tokens = limit
                found[key] = sample
        return found

    def ask(self, requests: list[Request]) -> dict[Key, Sample]:
        """Fresh samples of every request (failures come back with `error` set)."""
        wanted = [r for r in requests if r.sample_indices]
        if not wanted:
            return {}
        if self.backend.config.mode == "batch":
            return self._in_batches(wanted)
        if self.backend.offline:
            return self._in_chunks(wanted)
        return asyncio.run(self._concurrently(wanted))

    def batches(
        self,
        note: Callable[[str], None] | None = None,
        results: dict[Key, Sample] | None = None,
    ) -> BatchClient:
        """The provider's batch API over this client's cache (`teacher.mode: batch`); the
        samples it brings are kept as any fresh sample is (and put in `results`, given)."""
        found: dict[Key, Sample] = {} if results is None else results

        def keep(request: Request, samples: list[Sample]) -> None:
            self._keep(request, samples, found)

        store = BatchStore(self.cache.db)
        return BatchClient(self.backend.batch_api(), store, self.backend.config.batch, keep, note)

    def _in_batches(self, requests: list[Request]) -> dict[Key, Sample]:
        results: dict[Key, Sample] = {}
        failed = self.batches(results=results).run(requests)
        return results | failed

    def _in_chunks(self, requests: list[Request]) -> dict[Key, Sample]:
        results: dict[Key, Sample] = {}
        size = self.backend.chunk or len(requests)
        for start in range(0, len(requests), size):
            part = requests[start : start + size]
            for request, samples in zip(part, self.backend.sample_batch(part), strict=True):
                self._keep(request, samples, results)
        return results

    async def _concurrently(self, requests: list[Request]) -> dict[Key, Sample]:
        limit = asyncio.Semaphore(self.concurrency)
        results: dict[Key, Sample] = {}

        async def one(request: Request) -> None:
            async with limit:
                samples = await self.backend.sample(request)
            self._keep(request, samples, results)

        try:
            await asyncio.gather(*(one(r) for r in requests))
        finally:
            await self.backend.aclose()
        return results

    def _keep(self, request: Request, samples: list[Sample], results: dict[Key, Sample]) -> None:
        for sample in samples:
            sample.max_tokens = sample.max_tokens or self.backend.config.max_tokens
            results[(request.gen_key, sample.sample_idx)] = sample
            if sample.error is None:
                self.cache.put(request.gen_key, sample)
        if self.arrived is not None:
            self.arrived(request, samples)


def reusable(sample: Sample, limit: int) -> bool:
    """Whether a cached sample stands under max_tokens `limit`: one cut off at its limit only
    under that same limit; one that finished by itself under any limit it fits in (its own
    limit or smaller, or its token count); one from before limits were kept, never."""
    made = sample.max_tokens
    if made is None:
        return False
    if sample.finish_reason == "length":
        return made == limit
    tokens = sample.completion_tokens
    return made <= limit or (tokens is not None and tokens <= limit)
