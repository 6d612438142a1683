"""Helper processes end with the process that started them.

A kill -9 of `curate run` gives its worker processes no chance to be told; each worker watches
its parent instead and leaves, quietly, as soon as the parent is gone (the parent's death
re-parents it, so its parent id changes). A thread that polls works whichever thread of the
parent started the worker, which PR_SET_PDEATHSIG does not.
"""

from __future__ import annotations

import os
import signal
import threading
import time

POLL_S = 0.5


def become_helper(parent: int) -> None:
    """Set up a worker process started by `parent` (its pid, passed by the parent: the parent
    may already be gone by the time the worker has imported this): Ctrl-C is the parent's to
    handle (the parent stops it), and the worker ends when its parent dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent(parent)


def watch_parent(parent: int) -> None:
    """Start a daemon thread that ends this process once `parent` is no longer its parent."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(POLL_S)
        os._exit(0)  # nobody is left to read a result: leave without a word

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


_forks_watched = False


def children_end_with_this_process() -> None:
    """Every process forked from now on (by a library's pool, a manager) watches this one and
    ends when it dies: a kill -9 of `curate run` leaves none of them behind."""
    global _forks_watched
    if not _forks_watched:
        _forks_watched = True
        os.register_at_fork(after_in_child=lambda: watch_parent(os.getppid()))
