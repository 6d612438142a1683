"""Generation client throughput against a local server with fixed latency and slots.

    python benchmarks/client_throughput.py [--requests 6000] [--latency 0.2] [--slots 128]
        [--startup-problems 256]

The server (a separate process, plain asyncio) answers each request after `latency` seconds
with at most `slots` in service at once, so its ideal capacity is slots / latency requests
per second. The client is curate's generate stage (OpenAI backend, request cache on); it
reports achieved requests/s as a share of that capacity and its own CPU time per request,
cache writes included. The plain alternative in the same run: a minimal aiohttp loop with
the same concurrency and no cache.

First, start-up: a whole `curate generate` command (process start to exit, a few hundred
problems) against a plain aiohttp script doing the same requests, and what each spends
beyond the server's own time (imports, checks, files).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import polars as pl

from curate.generate.openai import OpenAIConfig
from curate.generate.stage import GenerateStage
from curate.stage import StageContext

QUIET = {**os.environ, "OPENAI_API_KEY": "unused"}  # no warning about a missing key

BODY = json.dumps(
    {
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"content": "<think>short thought</think>\\boxed{1}"},
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 10},
    }
).encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


def serve(port: int, latency: float, slots: int, ready: object) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                async with gate:
                    await asyncio.sleep(latency)
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionResetError):
            writer.close()

    async def main() -> None:
        nonlocal gate
        gate = asyncio.Semaphore(slots)
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        ready.set()  # type: ignore[attr-defined]
        async with server:
            await server.serve_forever()

    gate: asyncio.Semaphore
    asyncio.run(main())


def run_curate(url: str, count: int, concurrency: int) -> tuple[float, float]:
    frame = pl.DataFrame(
        {
            "problem_id": [f"p{i}" for i in range(count)],
            "problem": [f"Problem {i}" for i in range(count)],
            "reference": ["1"] * count,
        }
    )
    config = OpenAIConfig(
        model="bench", base_url=url, samples=1, max_concurrency=concurrency, timeout_s=30
    )
    with tempfile.TemporaryDirectory() as folder:
        stage = GenerateStage(config, StageContext(Path(folder)))
        cpu, wall = time.process_time(), time.perf_counter()
        out = stage.process(frame)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        stage.close()
    assert out.height == count and out["error"].null_count() == count
    return wall, cpu


def run_plain(url: str, count: int, concurrency: int) -> tuple[float, float]:
    """A minimal aiohttp client: the same concurrency, no cache, no bookkeeping."""

    async def go() -> None:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            gate = asyncio.Semaphore(concurrency)

            async def one(i: int) -> None:
                body = {"model": "bench", "messages": [{"role": "user", "content": f"P {i}"}]}
                async with gate, session.post(f"{url}/chat/completions", json=body) as response:
                    await response.json()

            await asyncio.gather(*(one(i) for i in range(count)))

    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(go())
    return time.perf_counter() - wall, time.process_time() - cpu


PLAIN_SCRIPT = """
import asyncio, json, sys
import aiohttp
url, path = sys.argv[1], sys.argv[2]
async def go():
    rows = [json.loads(line) for line in open(path)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=128)) as session:
        async def one(row):
            body = {"model": "bench", "messages": [{"role": "user", "content": row["problem"]}]}
            async with session.post(url + "/chat/completions", json=body) as response:
                return await response.json()
        replies = await asyncio.gather(*(one(row) for row in rows))
    with open(path + ".out", "w") as out:
        out.writelines(json.dumps(r) + "\\n" for r in replies)
asyncio.run(go())
"""


def start_up(url: str, count: int, latency: float) -> None:
    """A whole command from process start to exit, `count` problems: `curate generate`
    against the plain script above; what each spends beyond the server's own time."""
    with tempfile.TemporaryDirectory() as folder:
        rows = Path(folder) / "problems.jsonl"
        rows.write_text(
            "".join(json.dumps({"problem": f"Problem {i}"}) + "\n" for i in range(count))
        )
        curate = [
            sys.executable,
            "-m",
            "curate",
            "generate",
            "--in",
            str(rows),
            "--out",
            str(Path(folder) / "out.parquet"),
            "--set",
            "backend=openai",
            "--set",
            "model=bench",
            "--set",
            f"base_url={url}",
            "--set",
            "samples=1",
        ]
        plain = [sys.executable, "-c", PLAIN_SCRIPT, url, str(rows)]
        busy = latency * -(-count // 128)
        for label, command in (("plain aiohttp script", plain), ("curate generate", curate)):
            walls = []
            for _ in range(3):
                started = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True, env=QUIET)
                walls.append(time.perf_counter() - started)
                Path(folder, "out.parquet").unlink(missing_ok=True)
                shutil.rmtree(Path(folder, ".curate-cache"), ignore_errors=True)
                shutil.rmtree(Path(folder, ".out.parquet.parts"), ignore_errors=True)
            best = min(walls)
            print(
                f"{label:20} {count} problems, process start to exit: best of 3 {best:5.2f} s; "
                f"beyond the server's {busy:.1f} s: {best - busy:5.2f} s"
            )
        imports = [sys.executable, "-c", "import curate.cli"]
        walls = []
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run(imports, check=True)
            walls.append(time.perf_counter() - started)
        print(
            f"{'import curate.cli':20} best of 5 {min(walls):5.2f} s (with the interpreter's start)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=12000)
    parser.add_argument("--startup-problems", type=int, default=256)
    parser.add_argument("--startup-only", action="store_true", help="Skip the throughput runs.")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--slots", type=int, default=128)
    args = parser.parse_args()
    port = 18000 + os.getpid() % 1000
    ready = multiprocessing.Event()
    server = multiprocessing.Process(
        target=serve, args=(port, args.latency, args.slots, ready), daemon=True
    )
    server.start()
    ready.wait(10)
    url = f"http://127.0.0.1:{port}/v1"
    capacity = args.slots / args.latency
    print(
        f"server: {args.slots} slots x {args.latency * 1000:.0f} ms = {capacity:,.0f} req/s "
        f"ideal; {args.requests:,} requests; {os.cpu_count()} cores shared"
    )
    try:
        start_up(url, args.startup_problems, args.latency)
        runs = (
            ()
            if args.startup_only
            else (("plain aiohttp loop", run_plain), ("curate generate", run_curate))
        )
        for label, runner in runs:
            wall, cpu = runner(url, args.requests, args.slots)
            rate = args.requests / wall
            print(
                f"{label:18} {rate:8,.0f} req/s = {rate / capacity:6.1%} of capacity; "
                f"client CPU {cpu / args.requests * 1000:5.2f} ms per request"
            )
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
