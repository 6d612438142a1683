"""Progress reporting: rich bars with rate and ETA on a terminal, nothing in tests."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

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
        text = f"{speed:,.1f} {unit}/s" if speed else f"- {unit}/s"
        return Text(text, style="progress.data.speed")


class BarProgress:
    """Rich progress bars with count, rate, elapsed time and ETA."""

    def __init__(self, console: Console | None = None) -> None:
        self._bars = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
            console=console or Console(stderr=True),
            transient=False,
        )

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
