"""FakeBatchServer: a test server (not a model) speaking OpenAI's Batch API and Anthropic's
Messages and Message Batches APIs, as their documentation describes them, with faults.

A batch ends after `polls` looks at it. Each reply names the prompt and the request's
custom id, so a test can check every sample arrived once. Faults: requests that fail the
first time they are seen, a batch that expires or is cancelled half done, and a submit
whose reply is lost after the batch was made.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.loopback import LoopbackServer, QuietHandler


@dataclass
class BatchFaults:
    fail_first: float = 0.0  # share of requests that error the first time they are sent
    expire_first: bool = False  # the first batch expires with half its requests done
    cancel_first: bool = False  # the first batch is cancelled (as a user would) half done
    lose_submit_reply: bool = False  # the first submit makes the batch, then hangs up
    truncate: float = 0.0  # share of replies cut off at max_tokens


@dataclass
class FakeBatch:
    batch_id: str
    provider: str
    lines: list[dict[str, Any]]
    metadata: dict[str, Any]
    created: float
    looks: int = 0
    ending: str = "completed"  # or expired / cancelled
    results: list[dict[str, Any]] = field(default_factory=list)


class FakeBatchServer(LoopbackServer):
    def __init__(self, faults: BatchFaults | None = None, polls: int = 2) -> None:
        super().__init__(BatchHandler)
        self.faults = faults or BatchFaults()
        self.polls = polls
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, FakeBatch] = {}
        self.sent: Counter[str] = Counter()  # custom id -> times it came in a batch
        self.online = 0  # /v1/messages requests
        self.bodies: list[dict[str, Any]] = []  # what /v1/messages received
        self.overloaded = 0  # answer this many /v1/messages requests with 529 first
        self.submits = 0

    @property
    def openai_url(self) -> str:
        return f"{self.root}/v1"

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{len(self.batches) + len(self.files) + 1:04d}"

    def make_batch(self, provider: str, lines: list[dict[str, Any]], metadata: Any) -> FakeBatch:
        with self.lock:
            self.submits += 1
            first = not self.batches
            batch = FakeBatch(
                self.new_id("msgbatch" if provider == "anthropic" else "batch"),
                provider,
                lines,
                metadata if isinstance(metadata, dict) else {},
                time.time(),
            )
            if first and self.faults.expire_first:
                batch.ending = "expired"
            if first and self.faults.cancel_first:
                batch.ending = "cancelled"
            for line in lines:
                self.sent[line["custom_id"]] += 1
            self.batches[batch.batch_id] = batch
            return batch

    def fails_at_first(self, custom_id: str) -> bool:
        """Whether the request is among those that error the first time they are sent."""
        roll = int(hashlib.sha256(custom_id.encode()).hexdigest()[:8], 16) / 2**32
        return roll < self.faults.fail_first

    def fails(self, custom_id: str) -> bool:
        return self.fails_at_first(custom_id) and self.sent[custom_id] == 1

    def truncated(self, custom_id: str) -> bool:
        roll = int(hashlib.sha256(b"t" + custom_id.encode()).hexdigest()[:8], 16) / 2**32
        return roll < self.faults.truncate

    def look(self, batch: FakeBatch) -> str:
        """The batch's status, one look further on."""
        with self.lock:
            batch.looks += 1
            if batch.looks < self.polls:
                return "in_progress"
            if not batch.results:
                batch.results = [self.outcome(batch, n, line) for n, line in enumerate(batch.lines)]
            return batch.ending

    def outcome(self, batch: FakeBatch, number: int, line: dict[str, Any]) -> dict[str, Any]:
        cid = line["custom_id"]
        if batch.ending != "completed" and number >= len(batch.lines) // 2:
            return {"custom_id": cid, "kind": batch.ending}
        if self.fails(cid):
            return {"custom_id": cid, "kind": "errored"}
        params = line.get("body") or line.get("params") or {}
        return {"custom_id": cid, "kind": "succeeded", "params": params}


def prompt_of(params: dict[str, Any]) -> str:
    return str(params["messages"][-1]["content"])


def chat_reply(params: dict[str, Any], cid: str, cut: bool) -> dict[str, Any]:
    prompt = prompt_of(params)
    choices = [
        {
            "index": i,
            "message": {
                "content": "" if cut else f"\\boxed{{{i}}}",
                "reasoning_content": f"thinking about {prompt[:40]!r} ({cid} choice {i})",
            },
            "finish_reason": "length" if cut else "stop",
        }
        for i in range(int(params.get("n", 1)))
    ]
    usage = {
        "prompt_tokens": len(prompt) // 4,
        "completion_tokens": 9 * len(choices),
        "completion_tokens_details": {"reasoning_tokens": 5 * len(choices)},
    }
    return {"object": "chat.completion", "choices": choices, "usage": usage}


def message_reply(params: dict[str, Any], cid: str, cut: bool) -> dict[str, Any]:
    prompt = prompt_of(params)
    blocks = []
    if params.get("thinking"):
        blocks.append({"type": "thinking", "thinking": f"thinking about {prompt[:40]!r} ({cid})"})
        text = "" if cut else "\\boxed{7}"
    else:
        text = f"<think>thinking about {prompt[:40]!r} ({cid})</think>" + (
            "" if cut else "\\boxed{7}"
        )
    blocks.append({"type": "text", "text": text})
    return {
        "id": f"msg_{cid}",
        "type": "message",
        "role": "assistant",
        "content": blocks,
        "stop_reason": "max_tokens" if cut else "end_turn",
        "usage": {"input_tokens": len(prompt) // 4, "output_tokens": 11},
    }


def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


class BatchHandler(QuietHandler):
    server: FakeBatchServer

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send_json(self, data: Any, status: int = 200) -> None:
        self.reply(status, json.dumps(data).encode())

    def reply(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path.rstrip("/"), parse_qs(parts.query)
        if path == "/v1/models":
            return self.send_json({"data": []})
        if path == "/v1/batches":
            return self.list_openai(query)
        if path.startswith("/v1/batches/"):
            return self.send_json(self.openai_batch(self.server.batches[path.split("/")[3]]))
        if path.startswith("/v1/files/") and path.endswith("/content"):
            return self.reply(200, self.server.files[path.split("/")[3]])
        if path == "/v1/messages/batches":
            return self.list_anthropic(query)
        if path.startswith("/v1/messages/batches/") and path.endswith("/results"):
            return self.anthropic_results(self.server.batches[path.split("/")[4]])
        if path.startswith("/v1/messages/batches/"):
            return self.send_json(self.anthropic_batch(self.server.batches[path.split("/")[4]]))
        return self.reply(404, b"not found")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        raw = self.body()
        if path == "/v1/files":
            return self.upload(raw)
        if path == "/v1/batches":
            data = json.loads(raw)
            text = self.server.files[data["input_file_id"]].decode()
            lines = [json.loads(x) for x in text.splitlines() if x.strip()]
            batch = self.server.make_batch("openai", lines, data.get("metadata"))
            return self.answer_submit(self.openai_batch(batch))
        if path == "/v1/messages/batches":
            batch = self.server.make_batch("anthropic", json.loads(raw)["requests"], None)
            return self.answer_submit(self.anthropic_batch(batch))
        if path == "/v1/messages":
            with self.server.lock:
                if self.server.overloaded:
                    self.server.overloaded -= 1
                    return self.reply(529, b'{"type": "error"}', {"retry-after": "0"})
                self.server.online += 1
            params = json.loads(raw)
            self.server.bodies.append(params)
            return self.send_json(message_reply(params, f"online{self.server.online}", False))
        return self.reply(404, b"not found")

    def answer_submit(self, data: dict[str, Any]) -> None:
        if self.server.faults.lose_submit_reply and self.server.submits == 1:
            self.close_connection = True  # the batch exists; its creator never hears of it
            return
        self.send_json(data)

    def upload(self, raw: bytes) -> None:
        """A multipart form with `purpose` and `file`: the file's bytes kept."""
        boundary = self.headers["Content-Type"].split("boundary=")[1].strip('"').encode()
        content = b""
        for part in raw.split(b"--" + boundary):
            head, _, rest = part.partition(b"\r\n\r\n")
            if b'name="file"' in head:
                content = rest.rsplit(b"\r\n", 1)[0]
        with self.server.lock:
            file_id = self.server.new_id("file")
            self.server.files[file_id] = content
        self.send_json({"id": file_id, "object": "file", "purpose": "batch"})

    def openai_batch(self, batch: FakeBatch) -> dict[str, Any]:
        status = self.server.look(batch) if self.command == "GET" else "validating"
        data: dict[str, Any] = {
            "id": batch.batch_id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "status": status,
            "metadata": batch.metadata,
            "created_at": int(batch.created),
            "request_counts": {"total": len(batch.lines), "completed": 0, "failed": 0},
        }
        if status in ("completed", "expired", "cancelled"):
            data.update(self.openai_files(batch))
        return data

    def openai_files(self, batch: FakeBatch) -> dict[str, Any]:
        done, failed = [], []
        for result in batch.results:
            cid = result["custom_id"]
            if result["kind"] == "succeeded":
                body = chat_reply(result["params"], cid, self.server.truncated(cid))
                done.append({"custom_id": cid, "response": {"status_code": 200, "body": body}})
            else:
                code = {"expired": "batch_expired", "cancelled": "batch_cancelled"}.get(
                    result["kind"], "server_error"
                )
                failed.append(
                    {"custom_id": cid, "response": None, "error": {"code": code, "message": "x"}}
                )
        files: dict[str, Any] = {}
        with self.server.lock:
            for key, records in (("output_file_id", done), ("error_file_id", failed)):
                name = f"{batch.batch_id}-{key}"
                if records and name not in self.server.files:
                    self.server.files[name] = "".join(
                        json.dumps(r) + "\n" for r in records
                    ).encode()
                if records:
                    files[key] = name
        counts = {"total": len(batch.lines), "completed": len(done), "failed": len(failed)}
        return {**files, "request_counts": counts}

    def list_openai(self, query: dict[str, list[str]]) -> None:
        batches = sorted(self.server.batches.values(), key=lambda b: b.batch_id, reverse=True)
        data = [
            {"id": b.batch_id, "object": "batch", "metadata": b.metadata}
            for b in batches
            if b.provider == "openai"
        ]
        self.send_json({"object": "list", "data": data, "has_more": False})

    def anthropic_batch(self, batch: FakeBatch) -> dict[str, Any]:
        status = self.server.look(batch) if self.command == "GET" else "in_progress"
        ended = status != "in_progress"
        kinds = Counter(r["kind"] for r in batch.results)
        counts = {
            "processing": 0 if ended else len(batch.lines),
            "succeeded": kinds["succeeded"],
            "errored": kinds["errored"],
            "canceled": kinds["cancelled"],
            "expired": kinds["expired"],
        }
        return {
            "id": batch.batch_id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts,
            "created_at": stamp(batch.created),
            "results_url": f"{self.server.root}/v1/messages/batches/{batch.batch_id}/results"
            if ended
            else None,
        }

    def list_anthropic(self, query: dict[str, list[str]]) -> None:
        batches = sorted(self.server.batches.values(), key=lambda b: b.batch_id, reverse=True)
        data = []
        for batch in batches:
            if batch.provider == "anthropic":
                listed = self.anthropic_batch_listed(batch)
                data.append(listed)
        self.send_json({"data": data, "has_more": False})

    def anthropic_batch_listed(self, batch: FakeBatch) -> dict[str, Any]:
        return {
            "id": batch.batch_id,
            "type": "message_batch",
            "processing_status": "in_progress",
            "request_counts": {"processing": len(batch.lines)},
            "created_at": stamp(batch.created),
        }

    def anthropic_results(self, batch: FakeBatch) -> None:
        lines = []
        for result in batch.results:
            cid, kind = result["custom_id"], result["kind"]
            if kind == "succeeded":
                message = message_reply(result["params"], cid, self.server.truncated(cid))
                record = {"custom_id": cid, "result": {"type": "succeeded", "message": message}}
            elif kind == "errored":
                error = {"type": "error", "error": {"type": "api_error", "message": "boom"}}
                record = {"custom_id": cid, "result": {"type": "errored", "error": error}}
            else:
                record = {
                    "custom_id": cid,
                    "result": {"type": kind.replace("cancelled", "canceled")},
                }
            lines.append(json.dumps(record) + "\n")
        self.reply(200, "".join(lines).encode())
