"""Time limits counted in CPU seconds, so a verdict does not depend on how busy the machine is.

A check that is given 5 s may use 5 s of its own processor time: on a loaded machine it
waits longer in wall time, and comes to the same verdict as on an idle one. math-verify's
own limits (SIGALRM, wall clock) are switched off where these are used.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

# math-verify warns once per process that its own (wall-clock) timeout is off: it is meant to be
for name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(name).setLevel(logging.ERROR)

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@contextmanager
def cpu_limit(seconds: float) -> Iterator[None]:
    """Raise math-verify's TimeoutException once the block has used `seconds` of CPU time
    (ITIMER_PROF: user and system time of this process). Signals reach the main thread only:
    elsewhere the block runs unlimited, and the worker's parent enforces its hard limit."""
    from math_verify.errors import TimeoutException

    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutException(f"over {seconds:g} s of CPU time")

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def cpu_seconds(pid: int) -> float | None:
    """CPU time a process has used so far (user + system), or None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15)
