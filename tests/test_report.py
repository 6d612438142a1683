"""The report: PNG plots and a page that loads offline with every image rendered (checked in
headless Chromium where it is installed), and the same numbers as text in `curate stats`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from curate.cli import add_stage_commands, app

add_stage_commands()
runner = CliRunner()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def reported(make_recipe, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    assert runner.invoke(app, ["run", str(make_recipe()), "--run-dir", str(run_dir)]).exit_code == 0
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"report: {run_dir / 'report' / 'index.html'} (")
    return run_dir


def test_plots_are_written_and_the_page_needs_no_network(reported: Path):
    page = (reported / "report" / "index.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    shown = {"funnel.png", "pass_rate.png", "lengths.png", "reasons.png", "selection.png"}
    assert shown | {"selection_pass_rate.png"} <= set(sources)
    for source in sources:
        assert (reported / "report" / source).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in page and "https://" not in page


def test_stats_prints_the_same_numbers(reported: Path):
    text = runner.invoke(app, ["stats", str(reported)]).output
    assert "verdicts:" in text and "correct: -" in text
    assert re.search(r"pass rate per problem: mean \d\.\d\d, median \d\.\d\d; \d+ of 40", text)
    assert "acceptance per source:" in text
    ledger = pl.read_parquet(reported / "ledger")
    verified = ledger.filter(pl.col("verdict").is_not_null())
    kept = ledger.filter(pl.col("selected") & pl.col("dropped").is_null())
    median = f"{verified['trace_words'].median():,.3g}"
    assert 0 < kept.height < verified.height
    assert (
        f"trace_words: median {median} of {verified.height:,} verified traces, "
        f"{kept['trace_words'].median():,.3g} of {kept.height:,} kept"
    ) in text


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_the_page_renders_every_image_in_chromium(reported: Path, tmp_path: Path):
    page = reported / "report" / "index.html"
    checker = tmp_path / "check.html"  # reads the page's images from a frame, offline
    checker.write_text(
        f'<html><body><iframe id="f" src="{page.as_uri()}"></iframe><script>\n'
        "document.getElementById('f').onload = function () {\n"
        "  var images = this.contentDocument.images, seen = [], ok = images.length > 0;\n"
        "  for (var i = 0; i < images.length; i++) {\n"
        "    seen.push(images[i].getAttribute('src') + '=' + images[i].naturalWidth);\n"
        "    if (!(images[i].complete && images[i].naturalWidth > 0)) ok = false;\n"
        "  }\n"
        "  document.body.setAttribute('data-result', (ok ? 'ok ' : 'broken ') + seen.join(','));\n"
        "};\n</script></body></html>\n"
    )
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--allow-file-access-from-files",
        "--virtual-time-budget=10000",
        "--dump-dom",
        checker.as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    result = re.search(r'data-result="([^"]*)"', dom)
    assert result is not None, dom[:500]
    assert result.group(1).startswith("ok "), result.group(1)
    assert result.group(1).count("=") == len(list((reported / "report").glob("*.png")))


def test_the_verdict_bars_are_coloured_by_verdict():
    """correct green, incorrect red, unverifiable orange (the correct bar was once red)."""
    from curate.report import VERDICT_COLOURS, Figures, _plot_reasons

    drawn: dict[str, list[str]] = {}

    class Axes:
        def barh(self, labels, counts, color):
            drawn.update(zip(labels, color, strict=True))

        def set_xlabel(self, text):
            pass

    found = Figures(reasons=[("correct: -", 5), ("incorrect: mismatch", 3), ("unverifiable: x", 1)])
    assert _plot_reasons(Axes(), found)
    assert drawn["correct: -"] == VERDICT_COLOURS["correct"] == "#55a868"
    assert drawn["incorrect: mismatch"] == VERDICT_COLOURS["incorrect"]


def test_select_groups_in_and_kept_are_shown(make_recipe, tmp_path: Path):
    """A spread over groups: problems per group before and after, in `curate stats` and as a
    plot."""
    select = {"mix": {"by": "domain", "balance": "uniform"}, "budget": {"problems": 10}}
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["run", str(make_recipe(select=select)), "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    text = runner.invoke(app, ["stats", str(run_dir)]).output
    ledger = pl.read_parquet(run_dir / "ledger")
    solved = ledger.filter(pl.col("verdict") == "correct")["problem_id"].n_unique()
    assert f"problems per group, in -> kept: math {solved:,} -> 10" in text
    assert runner.invoke(app, ["report", str(run_dir)]).exit_code == 0
    assert (run_dir / "report" / "selection_groups.png").exists()
