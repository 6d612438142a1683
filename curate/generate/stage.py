"""The generate stage: k samples per problem, through the request cache."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import polars as pl

from curate import registry
from curate.errors import BackendError
from curate.generate import asking
from curate.generate.adaptive import more_waves
from curate.generate.base import Backend, Request, Sample, TeacherConfig
from curate.generate.cache import SampleCache
from curate.generate.client import TeacherClient
from curate.stage import Stage, StageContext, union_of

CACHE_FILE = "generations.sqlite"


@registry.stages.register()
class GenerateStage(Stage):
    """Sample k chains of thought per problem from the teacher, resumable per request."""

    name = "generate"
    section = "teacher"
    after = ("dedup", "decontaminate")  # no teacher call for a dropped problem
    reads = ("problem_id", "problem")  # reference too, where the input has one
    writes = (
        "sample_idx",
        "round",
        "model",
        "prompt",
        "reasoning",
        "completion",
        "finish_reason",
        "prompt_tokens",
        "completion_tokens",
        "reasoning_tokens",
        "latency_s",
        "gen_key",
        "error",
    )
    expands = True
    retry_reason = "generation_failed"
    config: TeacherConfig

    @classmethod
    def config_type(cls) -> Any:
        return union_of([b.config_class for _, b in registry.backends.items()], "backend")

    def __init__(self, config: TeacherConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self._started = time.monotonic()
        self._live = [0, 0, 0]  # prompts, completion tokens, errors since the stage began
        self._cache: SampleCache | None = None
        # batch mode: what the batches sent ahead brought, told in the first shard's stats
        self._ahead_fresh: dict[str, int] = {}  # gen_key -> bits of its fresh samples
        self._ahead_counts: Counter[str] = Counter()
        self._ahead_errors: Counter[str] = Counter()

    @property
    def cache(self) -> SampleCache:
        """Opened on first use, so a run with nothing to generate writes nothing."""
        if self._cache is None:
            self._cache = SampleCache(self.context.cache_dir / CACHE_FILE)
        return self._cache

    def preflight(self) -> None:
        backend: Backend = registry.backends.get(self.config.backend)(self.config)
        if self.config.mode == "batch":
            backend.batch_api()  # refuses a backend without one
            if self.config.guards is not None:
                raise BackendError("teacher.guards stop samples as they stream: use mode: online")
        backend.preflight()

    def identity(self) -> str:
        # The cache decides what is regenerated; the stage identity adds the round.
        return super().identity() + f":r{self.context.round}"

    def share(self, tasks: int) -> None:
        """One of `tasks` processes generating at once (a cluster's tasks): each keeps its
        part of the request and token rate limits and of the concurrency, so together they
        keep to the recipe's. These settings are volatile: cache keys do not change."""
        updates: dict[str, Any] = {"max_concurrency": max(1, self.config.max_concurrency // tasks)}
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self.config, name, None)
            if value:
                updates[name] = value / tasks
        self.config = self.config.model_copy(update=updates)

    def plan(self, rows: int) -> None:
        """Tell the progress bar how many samples the whole stage will produce."""
        self.progress_task = self.context.progress.task(
            self.name, rows * self.config.samples, unit="samples"
        )
        self._started = time.monotonic()
        self._live = [0, 0, 0]

    def advance(self, rows: int) -> None:
        pass  # advanced per sample as they arrive

    def ahead(self, problems: Iterator[pl.DataFrame]) -> None:
        """Batch mode: every shard's missing samples submitted at once (in the provider's
        batches), then waited for; each shard then finds them in the cache."""
        if self.config.mode != "batch":
            return
        backend: Backend = registry.backends.get(self.config.backend)(self.config)
        client = TeacherClient(backend, self.cache, self.config.max_concurrency, self._ahead)
        batches = client.batches(self.progress_task.note)
        for frame in problems:
            requests = self._requests(backend, frame)
            cached = client.cached(requests)
            batches.submit(self._missing(r, cached) for r in requests)
        batches.wait()
        self._ahead_counts.update(batches.counts)

    def _ahead(self, request: Request, samples: list[Sample]) -> None:
        """A request's samples from a batch sent ahead: counted now, told later."""
        self._tally(request, samples, self._ahead_counts, self._ahead_errors)
        bits = self._ahead_fresh.get(request.gen_key, 0)
        for sample in samples:
            if sample.error is None:
                bits |= 1 << sample.sample_idx
        self._ahead_fresh[request.gen_key] = bits

    def process(self, frame: pl.DataFrame) -> pl.DataFrame:
        self.counts.update(self._ahead_counts)
        self.errors.update(self._ahead_errors)
        self._ahead_counts.clear()
        self._ahead_errors.clear()
        backend_class = registry.backends.get(self.config.backend)
        backend: Backend = backend_class(self.config)
        requests = self._requests(backend, frame)
        samples = self.fill(backend, requests)
        if self.config.adaptive is not None:
            requests, samples = more_waves(self, backend, requests, samples, frame)
        return self._rows(frame, requests, samples)

    def fill(self, backend: Backend, requests: list[Request]) -> dict[tuple[str, int], Sample]:
        """The requests' samples: from the cache where there, generated where not."""
        client = TeacherClient(backend, self.cache, self.config.max_concurrency, self._record)
        cached = client.cached(requests)
        hits = sum(not self._ahead_fresh.get(key, 0) >> index & 1 for key, index in cached)
        self.counts["cache_hits"] += hits
        self.progress_task.advance(hits)
        missing = [self._missing(r, cached) for r in requests]
        if self.config.mode == "batch":  # what the batches sent ahead could not bring
            failed = client.batches().settled(missing)
            for request in missing:  # counted as online failures are, when they arrive
                keys = [(request.gen_key, i) for i in request.sample_indices]
                gone = [failed[key] for key in keys if key in failed]
                if gone:
                    self._record(request, gone)
            missing = [self._missing(r, failed) for r in missing]
            return cached | failed | client.ask(missing)
        return cached | client.ask(missing)

    def _requests(self, backend: Backend, frame: pl.DataFrame) -> list[Request]:
        requests = []
        indices = list(range(self.config.samples))
        for row in frame.select("problem_id", "problem", "reference").iter_rows(named=True):
            messages = self.config.messages(row["problem"], row["reference"])
            requests.append(
                Request(
                    row["problem_id"],
                    messages,
                    indices,
                    backend.gen_key(messages),
                    row["reference"],
                )
            )
        return requests

    @staticmethod
    def _missing(request: Request, cached: dict[tuple[str, int], Sample]) -> Request:
        wanted = [i for i in request.sample_indices if (request.gen_key, i) not in cached]
        return Request(
            request.problem_id, request.messages, wanted, request.gen_key, request.reference
        )

    def _record(self, request: Request, samples: list[Sample]) -> None:
        """Count a request's fresh samples (the client has cached the good ones)."""
        self._tally(request, samples, self.counts, self.errors)

    def _tally(
        self, request: Request, samples: list[Sample], counts: Counter[str], errors: Counter[str]
    ) -> None:
        """Count a request's fresh samples into these counters."""
        for sample in samples:
            if (sample.finish_reason or "").startswith("guard_"):
                counts[sample.finish_reason or ""] += 1
                used = sample.completion_tokens or 0
                counts["guard_tokens_saved_estimate"] += max(0, self.config.max_tokens - used)
            if sample.error is not None:
                counts["failed"] += 1
                errors[sample.error] += 1
        if samples and all(s.error is not None for s in samples):
            counts["prompts_failed"] += 1
        counts["requests_sent"] += 1
        counts["samples_generated"] += len(samples)
        self._spend(samples, counts)
        self.progress_task.advance(len(samples))

    def _spend(self, samples: list[Sample], counts: Counter[str]) -> None:
        """Tokens (and, with prices set, dollars) spent on fresh samples; the live note."""
        _, completion = asking.add_spend(counts, self.config, [samples])
        # the stage's own totals: counts are a shard's, and the rate is over the whole stage
        live = self._live
        live[0] += 1
        live[1] += completion
        live[2] += sum(s.error is not None for s in samples)
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self.progress_task.note(
            f"{live[0]:,} prompts  {live[1] / elapsed:,.0f} tok/s  {live[2]:,} errors"
        )

    def _rows(
        self,
        frame: pl.DataFrame,
        requests: list[Request],
        samples: dict[tuple[str, int], Sample],
    ) -> pl.DataFrame:
        prompts = {r.problem_id: r for r in requests}
        rows: list[dict[str, Any]] = []
        for problem in frame.iter_rows(named=True):
            request = prompts[problem["problem_id"]]
            for index in request.sample_indices:
                sample = samples[(request.gen_key, index)]
                rows.append(problem | self._trace(request, sample))
        return pl.DataFrame(rows, infer_schema_length=None)

    def _trace(self, request: Request, sample: Sample) -> dict[str, Any]:
        trace = sample.to_dict()
        trace.update(
            round=self.context.round,
            model=self.config.model,
            prompt=request.messages,
            gen_key=request.gen_key,
        )
        if sample.completion_tokens:
            self.counts["completion_tokens"] += sample.completion_tokens
        if sample.error is not None:
            trace["dropped"] = "generation_failed"
        return trace

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None
