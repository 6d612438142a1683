"""Progress stays readable: whole at 80 columns on a terminal, plain lines in a log."""

from __future__ import annotations

import io

from rich.console import Console

from curate.progress import BarProgress, LineProgress, progress_for


def test_bars_fit_in_80_columns_without_cutting_figures():
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    with BarProgress(console) as progress:
        task = progress.task("trace_dedup", 1_234_567, unit="samples")
        task.note("12,345 prompts  567,756 tok/s  0 errors")
        task.advance(1_234_567)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    last = [line for line in text.splitlines() if "trace_dedup" in line][-1]
    assert "…" not in text
    assert "1234567/1234567" in last and "100%" in last and "samples/s" in last
    assert "eta" in last


def test_logs_get_plain_lines_with_rate_and_eta():
    stream = io.StringIO()
    progress = LineProgress(stream, every_s=0)
    task = progress.task("generate", 4, unit="samples")
    task.note("2 errors")
    task.advance(1)
    task.advance(3)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("generate: 1/4 samples, ") and "eta " in lines[0]
    assert lines[0].endswith("(2 errors)")
    assert lines[1].startswith("generate: 4/4 samples done in ")


def test_lines_are_spaced_out_in_time():
    stream = io.StringIO()
    task = LineProgress(stream, every_s=3600).task("verify", 1000)
    for _ in range(999):
        task.advance(1)
    assert stream.getvalue() == ""  # nothing until the time has come or the stage is done
    task.advance(1)
    assert stream.getvalue().startswith("verify: 1,000/1,000 rows done in ")


def test_a_terminal_gets_bars_and_a_pipe_gets_lines():
    assert isinstance(progress_for(Console(file=io.StringIO(), force_terminal=True)), BarProgress)
    assert isinstance(progress_for(Console(file=io.StringIO())), LineProgress)


def test_a_log_never_goes_quiet_while_nothing_moves():
    """In a pipe, a stage waiting on a hung server still prints a line every few seconds,
    saying how long nothing has come."""
    import io
    import time as clock

    from curate.progress import LineProgress

    stream = io.StringIO()
    with LineProgress(stream, every_s=0.2) as progress:
        task = progress.task("generate", 10, "samples")
        task.advance(1)
        clock.sleep(1.3)
    lines = stream.getvalue().splitlines()
    waiting = [line for line in lines if "nothing new for" in line]
    assert len(waiting) >= 3, lines
    assert all(line.startswith("generate: 1/10 samples") for line in waiting)
