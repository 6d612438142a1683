"""Progress reporting: rich bars with rate and ETA on a terminal, nothing in tests."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import IO, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.progress import Task as RichTask
from rich.text import Text


class Task(Protocol):
    def advance(self, n: int = 1) -> None: ...

    def set_total(self, total: int) -> None: ...

    def note(self, text: str) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: int | None, unit: str = "rows") -> Task: ...


class NoTask:
    def advance(self, n: int = 1) -> None:
        pass

    def set_total(self, total: int) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class QuietProgress:
    """Progress that shows nothing (library use and tests)."""

    def task(self, description: str, total: int | None, unit: str = "rows") -> Task:
        return NoTask()


class _RichTask:
    def __init__(self, bars: RichProgress, task_id: object) -> None:
        self._bars = bars
        self._id = task_id

    def advance(self, n: int = 1) -> None:
        self._bars.advance(self._id, n)  # type: ignore[arg-type]

    def set_total(self, total: int) -> None:
        self._bars.update(self._id, total=total)  # type: ignore[arg-type]

    def note(self, text: str) -> None:
        """Extra figures shown after the bar (tokens/s, errors...)."""
        self._bars.update(self._id, note=text)  # type: ignore[arg-type]


class RateColumn(ProgressColumn):
    """Items per second, named by the task's unit."""

    def render(self, task: RichTask) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "rows")
        text = f"{speed:,.{0 if speed >= 100 else 1}f} {unit}/s" if speed else f"- {unit}/s"
        return Text(text, style="progress.data.speed")


class BarProgress:
    """Rich progress bars with count, rate, elapsed time and ETA, readable at 80 columns."""

    def __init__(self, console: Console | None = None) -> None:
        console = console or Console(stderr=True)
        wide = console.width >= 120
        columns: list[ProgressColumn | str] = [
            TextColumn("[bold]{task.description:<11}"),
            BarColumn(bar_width=20 if wide else 10),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        ]
        if wide:  # the stage's own figures fit only on a wide terminal
            columns.append(TextColumn("{task.fields[note]}"))
        self._bars = RichProgress(*columns, console=console, transient=False, expand=False)

    def __enter__(self) -> BarProgress:
        self._bars.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bars.stop()

    def task(self, description: str, total: int | None, unit: str = "rows") -> Task:
        return _RichTask(
            self._bars, self._bars.add_task(description, total=total, unit=unit, note="")
        )


class _LineTask:
    """One stage's progress as a line every few seconds, and a last line when it is done."""

    def __init__(self, owner: LineProgress, description: str, total: int | None, unit: str):
        self.owner, self.description, self.total, self.unit = owner, description, total, unit
        self.done = 0
        self.started = self.last = self.moved = time.monotonic()
        self.text = ""

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.moved = time.monotonic()
        now = time.monotonic()
        if self.finished or now - self.last >= self.owner.every_s:
            self.last = now
            self.owner.write(self.line(now, self.finished))

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total

    def tick(self, now: float) -> None:
        """A line while nothing moves (a slow or hung server), so a log never goes quiet."""
        if not self.finished and now - self.last >= self.owner.every_s:
            self.last = now
            quiet = now - self.moved
            waited = f", nothing new for {quiet:,.0f} s" if quiet >= self.owner.every_s else ""
            self.owner.write(self.line(now, False) + waited)

    def set_total(self, total: int) -> None:
        self.total = total

    def note(self, text: str) -> None:
        self.text = text

    def line(self, now: float, finished: bool) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = f"{self.done / elapsed:,.1f} {self.unit}/s"
        count = f"{self.done:,}" if self.total is None else f"{self.done:,}/{self.total:,}"
        if finished:
            return f"{self.description}: {count} {self.unit} done in {elapsed:,.1f} s, {rate}"
        eta = ""
        if self.total and self.done:
            eta = f", eta {(self.total - self.done) * elapsed / self.done:,.0f} s"
        extra = f" ({self.text})" if self.text else ""
        return f"{self.description}: {count} {self.unit}, {rate}{eta}{extra}"


class LineProgress:
    """Progress for logs and pipes (stderr is not a terminal): plain lines, a few seconds
    apart, instead of bars that would be cut at the log's width."""

    def __init__(self, stream: IO[str] | None = None, every_s: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.tasks: list[_LineTask] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.ticker: threading.Thread | None = None

    def __enter__(self) -> LineProgress:
        self.ticker = threading.Thread(target=self._tick, daemon=True, name="curate-progress")
        self.ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        if self.ticker is not None:
            self.ticker.join(timeout=1)

    def _tick(self) -> None:
        while not self.stopped.wait(min(1.0, self.every_s)):
            now = time.monotonic()
            for task in list(self.tasks[-1:]):  # the stage running now
                task.tick(now)

    def write(self, line: str) -> None:
        with self.lock:
            print(line, file=self.stream, flush=True)

    def task(self, description: str, total: int | None, unit: str = "rows") -> Task:
        task = _LineTask(self, description, total, unit)
        self.tasks.append(task)
        return task


def progress_for(console: Console) -> BarProgress | LineProgress:
    """Bars on a terminal, periodic lines otherwise."""
    if console.is_terminal:
        return BarProgress(console)
    return LineProgress(console.file)
