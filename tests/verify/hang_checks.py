"""Check functions that misbehave on purpose, run inside KillablePool workers by the tests."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

from curate.verify.base import Result
from curate.verify.workers import SLOW


def spin() -> None:
    signal.signal(signal.SIGALRM, signal.SIG_IGN)  # a hang no in-process timeout can stop
    while True:
        pass


def check(reference, metadata, answers, **_) -> Iterator[Result | None]:
    if reference == "HANG":
        spin()
    yield None
    for answer in answers:
        if answer == "HANG":
            spin()
        if answer == "CRASH":
            os._exit(3)
        same = answer == reference
        yield Result("correct" if same else "incorrect", None if same else "mismatch", answer)


def announcing_check(reference, metadata, answers, **_) -> Iterator[Result | str | None]:
    """As check, but it tells its worker before each answer that may hang (SLOW), so the
    quick results before it may travel together."""
    yield None
    for answer in answers:
        if answer in ("HANG", "CRASH"):
            yield SLOW
        yield from check(reference, metadata, [answer])
