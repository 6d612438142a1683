"""One process at a time in a run directory (or a file command's store).

The lock is an advisory `flock` on the directory itself, which the kernel releases when its
holder exits however it exits: a run killed with -9 leaves no lock to clear by hand, and the
next run takes the directory over. Nothing is written into the directory, so a finished run
can sit in a read-only place and a rerun with nothing to do changes nothing. Who holds it (pid,
host, command, since when) is noted in the machine's temporary directory, so a second process
can refuse with a message that names the first, or wait for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from curate.errors import CurateWarning, StoreError


@contextmanager
def exclusive(directory: Path, command: str, wait: bool = False) -> Iterator[None]:
    """Hold the directory's lock while the block runs; another holder is an error naming it,
    or (wait) a warning and a wait until it is gone. A directory that cannot be made or
    opened is left to the work itself to report."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        if not _try_lock(handle):
            holder = describe(_holder(directory))
            if not wait:
                raise StoreError(
                    f"{directory} is in use by {holder}; two processes in one run directory "
                    "would corrupt it: wait for it to end, or pass --wait to start then"
                )
            warning = f"waiting for {holder} to finish with {directory}"
            warnings.warn(warning, CurateWarning, stacklevel=3)
            fcntl.flock(handle, fcntl.LOCK_EX)
        _note_holder(directory, command)
        yield
    finally:
        os.close(handle)  # releases the lock


def _try_lock(handle: int) -> bool:
    """Taken, or not (another holds it); a file system without locks (some network mounts)
    counts as taken, with a warning: the run goes on as it did before locks."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        warnings.warn(
            f"cannot lock the run directory ({exc}): run one process at a time",
            CurateWarning,
            stacklevel=4,
        )
    return True


def _note_path(directory: Path) -> Path:
    key = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / "curate-locks" / f"{key}.json"


def _note_holder(directory: Path, command: str) -> None:
    """Who holds the lock, for the message another process prints (best effort)."""
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "since": since}
    path = _note_path(directory)
    with contextlib.suppress(OSError):
        path.parent.mkdir(mode=0o1777, parents=True, exist_ok=True)
        path.write_text(json.dumps(holder), encoding="utf-8")


def _holder(directory: Path) -> dict[str, Any]:
    try:
        found = json.loads(_note_path(directory).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return found if isinstance(found, dict) else {}


def describe(holder: dict[str, Any]) -> str:
    """`curate run` (pid 12 on host, since ...), or what is known of it."""
    if not holder:
        return "another curate process"
    return (
        f"`{holder.get('command', 'curate')}` (pid {holder.get('pid', '?')} on "
        f"{holder.get('host', '?')}, since {holder.get('since', '?')})"
    )
