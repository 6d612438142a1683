"""The outside programs a loop runs: the training command between rounds, and a server that
samples the policy during a round. curate waits for them, records what they did, and
never shows a secret they were given."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from curate.errors import LoopError
from curate.loop.settings import ServeConfig, TrainConfig
from curate.review.local import free_port

SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD")


def fill(template: str, values: dict[str, Any]) -> str:
    """The template with each {name} replaced by its value, shell-quoted."""
    text = template
    for name, value in values.items():
        text = text.replace("{" + name + "}", shlex.quote(str(value)))
    return text


def masked(text: str) -> str:
    """text with the values of secret-looking environment variables replaced by ***."""
    for name, value in os.environ.items():
        if len(value) >= 6 and any(word in name.upper() for word in SECRET_WORDS):
            text = text.replace(value, "***")
    return text


def train(config: TrainConfig, values: dict[str, Any], log: Path) -> dict[str, Any]:
    """Run the training command; its record (command, exit code, seconds, output, log).
    A failure raises LoopError naming the exit code and the log; nothing is deleted."""
    command = fill(config.command, values)
    output = Path(values["output"])
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as sink:
        try:
            done = subprocess.run(
                command,
                shell=True,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=config.timeout_s,
                start_new_session=True,
            )
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = 124
    record = {
        "command": masked(command),
        "exit_code": code,
        "seconds": round(time.monotonic() - started, 1),
        "output": str(output),
        "log": str(log),
    }
    if code != 0:
        raise LoopError(
            f"training for round {values['round']} failed with exit code {code}"
            f"{' (timed out)' if code == 124 else ''}; its output is in {log}; the round's "
            f"data is kept in {values['dataset']}: fix the command and run the loop again"
        )
    if not output.exists():
        raise LoopError(
            f"training for round {values['round']} exited 0 but wrote nothing to {output} "
            f"(the command must write the new policy to {{output}}); its output is in {log}"
        )
    return record


@contextlib.contextmanager
def serving(config: ServeConfig | None, policy: str, log: Path) -> Iterator[int | None]:
    """Start the serve command for this policy on a free port, wait until it lists its
    models, and stop it (the whole process group) when the block ends."""
    if config is None:
        yield None
        return
    port = free_port()
    command = fill(config.command, {"policy": policy, "port": port, "python": sys.executable})
    log.parent.mkdir(parents=True, exist_ok=True)
    sink = log.open("w", encoding="utf-8")
    process = subprocess.Popen(
        command, shell=True, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_ready(process, port, config.ready_timeout_s, log)
        yield port
    finally:
        _stop(process)
        sink.close()


def _wait_ready(process: subprocess.Popen[bytes], port: int, seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    url = f"http://127.0.0.1:{port}/v1/models"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = masked(log.read_text(encoding="utf-8", errors="replace")[-400:])
            raise LoopError(
                f"the policy server exited with code {process.returncode} before it was "
                f"ready; its output is in {log}: {tail.strip()}"
            )
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise LoopError(f"the policy server did not answer {url} within {seconds:g} s (see {log})")


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
