"""A real Argilla server on loopback for people who have none: `curate argilla up|down|status`.

argilla-server 2.8 pins versions that clash with curate's, so it lives in a virtual
environment of its own, made on first use. Beside it run Debian's redis-server and
osmem-server (an in-memory OpenSearch-compatible server from PyPI); argilla-server starts
with curate's scriptless search engine (annotation/server/curate_engine.py), and the search
index is rebuilt from SQLite at every start because osmem keeps it in memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from curate.errors import ReviewError

SERVER_PINS = ["argilla-server==2.8.0", "osmem-server==0.1.6", "click<8.2", "huggingface_hub<1.0"]
LAUNCHER = Path(__file__).resolve().parents[2] / "annotation" / "server" / "launch.py"
WORKSPACE = "review"


@dataclass
class LocalArgilla:
    """What `curate argilla up` started: processes, ports and the accounts it made."""

    url: str
    owner_key: str
    reviewers: dict[str, dict[str, str]]  # name -> {password, api_key}
    pids: dict[str, int]  # redis, osmem, server

    def environment(self) -> dict[str, str]:
        return {"ARGILLA_API_URL": self.url, "ARGILLA_API_KEY": self.owner_key}


def home() -> Path:
    """Where the server's environment and data live (CURATE_HOME, else ~/.cache/curate)."""
    root = os.environ.get("CURATE_HOME") or Path.home() / ".cache" / "curate"
    return Path(root) / "argilla"


def state_file() -> Path:
    return home() / "state.json"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_python(say: Callable[[str], None] = print) -> Path:
    """argilla-server's own interpreter, its environment made on first use."""
    venv = home() / "venv"
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import argilla_server, osmem_server"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    say(f"installing argilla-server into {venv} (first use; a few minutes)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *SERVER_PINS], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise ReviewError(f"cannot install argilla-server: {done.stderr.strip()[-400:]}")
    return python


def running() -> LocalArgilla | None:
    """The local server described by the state file, if it answers."""
    path = state_file()
    if not path.exists():
        return None
    local = LocalArgilla(**json.loads(path.read_text(encoding="utf-8")))
    return local if answers(local.url, local.owner_key) else None


def answers(url: str, key: str) -> bool:
    request = urllib.request.Request(f"{url}/api/v1/me", headers={"X-Argilla-Api-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def up(
    port: int | None = None, reviewers: int = 2, say: Callable[[str], None] = print
) -> LocalArgilla:
    """Start the stack (or return the one already running)."""
    already = running()
    if already is not None:
        return already
    down()  # what is left of a stack whose server died: stopped before starting afresh
    redis = shutil.which("redis-server")
    if redis is None:
        raise ReviewError("redis-server is not installed (Debian: apt-get install redis-server)")
    python = server_python(say)
    data = home() / "data"
    data.mkdir(parents=True, exist_ok=True)
    saved = _saved_accounts()
    local = LocalArgilla(
        url=f"http://127.0.0.1:{port or free_port()}",
        owner_key=saved.get("owner_key") or f"curate.owner.{secrets.token_hex(12)}",
        reviewers=saved.get("reviewers") or _new_reviewers(reviewers),
        pids={},
    )
    redis_port, osmem_port = free_port(), free_port()
    env = _server_env(data, redis_port, osmem_port)
    local.pids["redis"] = _spawn(
        [redis, "--port", str(redis_port), "--save", "", "--appendonly", "no"], "redis"
    )
    osmem = Path(_site(python)) / "osmem_server" / "bin" / "osmem-server"
    local.pids["osmem"] = _spawn(
        [str(osmem), "-addr", f"127.0.0.1:{osmem_port}", "-no-stdin-watch"], "osmem"
    )
    _wait_port(osmem_port, "osmem-server")
    _manage(python, env, ["database", "migrate"])
    _accounts(python, env, local)
    reindex(python, env)
    port_text = local.url.rsplit(":", 1)[1]
    local.pids["server"] = _spawn(
        [str(python), str(LAUNCHER), "127.0.0.1", port_text], "server", env
    )
    _wait_until(lambda: answers(local.url, local.owner_key), "argilla-server", 120)
    path = state_file()
    path.write_text(json.dumps(asdict(local), indent=2), encoding="utf-8")
    path.chmod(0o600)
    return local


def down() -> bool:
    """Stop the processes `up` started; False when none ran."""
    path = state_file()
    if not path.exists():
        return False
    local = LocalArgilla(**json.loads(path.read_text(encoding="utf-8")))
    for pid in local.pids.values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for pid in local.pids.values():
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    local.pids = {}
    path.write_text(json.dumps(asdict(local), indent=2), encoding="utf-8")
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _saved_accounts() -> dict[str, Any]:
    """Accounts made by an earlier `up`: the SQLite data keeps them, so keys must match."""
    path = state_file()
    if not path.exists():
        return {}
    saved = json.loads(path.read_text(encoding="utf-8"))
    return {"owner_key": saved.get("owner_key"), "reviewers": saved.get("reviewers")}


def _new_reviewers(count: int) -> dict[str, dict[str, str]]:
    return {
        f"reviewer{n}": {
            "password": secrets.token_urlsafe(12),
            "api_key": f"curate.reviewer{n}.{secrets.token_hex(12)}",
        }
        for n in range(1, count + 1)
    }


def _server_env(data: Path, redis_port: int, osmem_port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "ARGILLA_HOME_PATH": str(data),
        "ARGILLA_DATABASE_URL": f"sqlite+aiosqlite:///{data / 'argilla.db'}",
        "ARGILLA_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "ARGILLA_ELASTICSEARCH": f"http://127.0.0.1:{osmem_port}",
        "ARGILLA_SEARCH_ENGINE": "opensearch",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    env.pop("ARGILLA_API_KEY", None)  # the server has no use for a client's key
    return env


def _site(python: Path) -> str:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True).stdout.strip()


def _spawn(command: list[str], name: str, env: dict[str, str] | None = None) -> int:
    log = open(home() / f"{name}.log", "ab")  # noqa: SIM115 (the child keeps it open)
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # outlives this command; stopped by `curate argilla down`
    )
    return process.pid


def _manage(python: Path, env: dict[str, str], args: list[str], check: bool = True) -> None:
    done = subprocess.run(
        [str(python), "-m", "argilla_server", *args], env=env, capture_output=True, text=True
    )
    if check and done.returncode != 0:
        raise ReviewError(f"argilla_server {' '.join(args)}: {done.stderr.strip()[-400:]}")


def reindex(python: Path, env: dict[str, str]) -> None:
    """Rebuild the in-memory search index from the database (records pushed before a
    restart cannot be answered without it), through curate's engine: the stock one stops
    at the first discarded response without values, leaving later records unindexed."""
    done = subprocess.run(
        [str(python), str(LAUNCHER), "manage", "search-engine", "reindex"],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise ReviewError(f"argilla_server search-engine reindex: {done.stderr.strip()[-400:]}")


def _accounts(python: Path, env: dict[str, str], local: LocalArgilla) -> None:
    """The owner (curate's own key) and the reviewers; existing ones are left as they are."""
    people = [("owner", "owner", secrets.token_urlsafe(12), local.owner_key)] + [
        (name, "annotator", account["password"], account["api_key"])
        for name, account in local.reviewers.items()
    ]
    for username, role, password, key in people:
        _manage(
            python,
            env,
            [
                "database",
                "users",
                "create",
                "--first-name",
                username,
                "--username",
                username,
                "--role",
                role,
                "--password",
                password,
                "--api-key",
                key,
                "--workspace",
                WORKSPACE,
            ],
            check=False,  # already there after the first start
        )


def _wait_port(port: int, what: str) -> None:
    def open_port() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    _wait_until(open_port, what, 30)


def _wait_until(ready: Callable[[], bool], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.3)
    raise ReviewError(f"{what} did not start within {seconds:.0f} s (logs in {home()})")
