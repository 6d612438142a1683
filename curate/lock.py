"""One process at a time in a run directory (or a file command's store).

The lock is an advisory `flock` on DIR/.lock, which the kernel releases when its holder exits
however it exits: a run killed with -9 leaves no lock to clear by hand, and the next run takes
the directory over. The file also says who holds it (pid, host, command, since when), so a
second process can refuse with a message that names the first, or wait for it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from curate.errors import CurateWarning, StoreError

LOCK_FILE = ".lock"


@contextmanager
def exclusive(directory: Path, command: str, wait: bool = False) -> Iterator[None]:
    """Hold DIR/.lock while the block runs; another holder is an error naming it, or (wait)
    a warning and a wait until it is gone."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = (directory / LOCK_FILE).open("a+", encoding="utf-8")
    except PermissionError:  # a read-only directory: nothing can write to it, so no lock
        yield
        return
    try:
        if not _try_lock(handle):
            holder = describe(_holder(handle))
            if not wait:
                raise StoreError(
                    f"{directory} is in use by {holder}; two processes in one run directory "
                    "would corrupt it: wait for it to end, or pass --wait to start then"
                )
            warning = f"waiting for {holder} to finish with {directory}"
            warnings.warn(warning, CurateWarning, stacklevel=3)
            fcntl.flock(handle, fcntl.LOCK_EX)
        _write_holder(handle, command)
        yield
    finally:
        handle.close()  # releases the lock


def _try_lock(handle: IO[str]) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(handle: IO[str]) -> dict[str, Any]:
    handle.seek(0)
    try:
        found = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def _write_holder(handle: IO[str], command: str) -> None:
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "since": since}
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(holder))
    handle.flush()


def describe(holder: dict[str, Any]) -> str:
    """`curate run` (pid 12, host a, since ...), or what is known of it."""
    if not holder:
        return "another curate process"
    return (
        f"`{holder.get('command', 'curate')}` (pid {holder.get('pid', '?')} on "
        f"{holder.get('host', '?')}, since {holder.get('since', '?')})"
    )
