"""OpenAI's Batch API: a JSONL file of chat requests uploaded (`/files`, purpose batch), a
batch made of it (`/batches`), polled, and its output and error files read back.

The batch carries our token as metadata, so a submit whose reply was lost is found again
in the batch list rather than sent twice."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp

from curate.errors import BackendError
from curate.generate.base import Request, Sample
from curate.generate.batch import BatchAPI, BatchState, Line, Result, call_json, custom_id
from curate.generate.openai import RETRY_STATUS, TRANSPORT_ERRORS, describe_failure

if TYPE_CHECKING:
    from curate.generate.openai import OpenAITeacher

ENDED = {"completed", "failed", "expired", "cancelled"}
CHAT = "/v1/chat/completions"
LIST_PAGES = 10  # batches looked through (100 a page) for a lost submit


class OpenAIBatches(BatchAPI):
    provider = "openai"
    max_requests = 50_000  # OpenAI's limits on one batch
    max_bytes = 200 * 1024 * 1024

    def __init__(self, teacher: OpenAITeacher) -> None:
        self.teacher = teacher
        self.url = teacher.replicas.pool[0].url

    def lines(self, request: Request) -> list[Line]:
        groups = (
            [request.sample_indices]
            if self.teacher.config.use_n
            else [[i] for i in request.sample_indices]
        )
        lines = []
        for indices in groups:
            cid = custom_id(request.gen_key, indices)
            body = self.teacher.payload(request.messages, len(indices))
            line = {"custom_id": cid, "method": "POST", "url": CHAT, "body": body}
            lines.append(Line(cid, request.gen_key, indices, line))
        return lines

    async def submit(self, lines: list[dict[str, Any]], token: str) -> str:
        text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", text.encode(), filename=f"curate-{token}.jsonl")
        uploaded = await self._call("POST", "/files", data=form)
        body = {
            "input_file_id": uploaded.get("id"),
            "endpoint": CHAT,
            "completion_window": "24h",
            "metadata": {"curate_token": token},
        }
        made = await self._call("POST", "/batches", json=body)
        if not isinstance(made.get("id"), str):
            raise BackendError(f"{self.url}/batches answered without a batch id")
        return str(made["id"])

    async def find(self, token: str, since: float, size: int, known: set[str]) -> str | None:
        after = None
        for _ in range(LIST_PAGES):
            query = "?limit=100" + (f"&after={after}" if after else "")
            page = await self._call("GET", f"/batches{query}")
            batches = page.get("data") or []
            for batch in batches:
                if (batch.get("metadata") or {}).get("curate_token") == token:
                    return str(batch["id"])
            if not page.get("has_more") or not batches:
                return None
            after = batches[-1].get("id")
        return None

    async def state(self, batch_id: str) -> BatchState:
        batch = await self._call("GET", f"/batches/{batch_id}")
        status = str(batch.get("status"))
        counts = batch.get("request_counts") or {}
        errors = (batch.get("errors") or {}).get("data") or []
        why = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))
        return BatchState(
            batch_id,
            status,
            status in ENDED,
            {k: int(v) for k, v in counts.items() if isinstance(v, int)},
            f"batch {batch_id} {status}" + (f": {why}" if why else ""),
            files=[str(batch[k]) for k in ("output_file_id", "error_file_id") if batch.get(k)],
        )

    async def results(self, state: BatchState) -> AsyncIterator[Result]:
        for file_id in state.files:
            async for record in self._jsonl(f"/files/{file_id}/content"):
                yield result_of(record, state)

    def samples(self, line: Line, body: dict[str, Any]) -> list[Sample]:
        return self.teacher.parse(body, line.indices, None)

    async def _jsonl(self, path: str) -> AsyncIterator[dict[str, Any]]:
        """A file's lines, read as they come (an output file may be large)."""
        try:
            async with self.teacher.session().get(f"{self.url}{path}") as response:
                if response.status != 200:
                    raise BackendError(f"HTTP {response.status} from {self.url}{path}")
                async for raw in response.content:
                    if raw.strip():
                        record = json.loads(raw)
                        if isinstance(record, dict):
                            yield record
        except TRANSPORT_ERRORS as exc:
            raise ConnectionError(describe_failure(exc, self.url)) from None

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.url}{path}"
        return await call_json(self.teacher.session(), method, url, RETRY_STATUS, **kwargs)

    async def aclose(self) -> None:
        await self.teacher.aclose()


def result_of(record: dict[str, Any], state: BatchState) -> Result:
    """One line of an output or error file."""
    cid = str(record.get("custom_id"))
    response = record.get("response") or {}
    body = response.get("body") if isinstance(response, dict) else None
    if isinstance(response, dict) and response.get("status_code") == 200 and isinstance(body, dict):
        return Result(cid, body)
    error = record.get("error") or (body or {}).get("error") or {}
    message = error.get("message") if isinstance(error, dict) else str(error)
    code = error.get("code") if isinstance(error, dict) else None
    why = f"batch {state.batch_id}: {code or 'error'}" + (f": {message}" if message else "")
    return Result(cid, None, why, resubmit=state.status != "cancelled")
