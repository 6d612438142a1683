"""The run's report: the numbers behind a dataset (polars), as text and as PNG plots in a
self-contained HTML page (RUN/report/index.html) that the dataset card embeds."""

from __future__ import annotations

import html
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate.stats import spend_lines
from curate.store import RunStore, read_json


@dataclass
class Figures:
    """The numbers of a run, each a small table (label -> values)."""

    funnel: list[tuple[str, int]] = field(default_factory=list)  # stage -> rows out
    reasons: list[tuple[str, int]] = field(default_factory=list)  # verdict: reason -> traces
    pass_rates: list[float] = field(default_factory=list)  # one per problem
    lengths: dict[str, list[int]] = field(default_factory=dict)  # "reasoning correct" -> chars
    acceptance: list[tuple[str, int, int]] = field(default_factory=list)  # source, kept, made
    contamination: list[tuple[str, str, int]] = field(default_factory=list)  # bench, method, n
    # select's measures before (every verified trace) and after (the kept ones):
    # "trace_words" -> {"verified": [...], "kept": [...]}
    selection: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    spend: list[str] = field(default_factory=list)  # what each model the run asked cost
    groups: list[tuple[str, int, int]] = field(default_factory=list)  # select's: group, in, kept


LENGTHS = ("reasoning", "completion")  # texts the figures know by their length only


def figures(run_dir: Path) -> Figures:
    store = RunStore(run_dir)
    stats = store.load_stats()
    found = Figures(funnel=[(name, int(entry["out"])) for name, entry in stats.items()])
    found.spend = spend_lines(stats)
    found.groups = _groups((stats.get("select") or {}).get("counts") or {})
    shards = store.shards(store.ledger)
    if shards:
        traces = _trace_figures(shards)
        found.reasons = _reasons(traces)
        found.pass_rates = _pass_rates(traces)
        found.lengths = _lengths(traces)
        found.acceptance = _acceptance(traces)
        found.selection = _selection(traces)
    report = read_json(store.reports / "decontamination.json")
    found.contamination = [
        (bench, method, int(n))
        for bench, entry in sorted(report.items())
        for method, n in sorted(entry.get("by_method", {}).items())
    ]
    return found


def _trace_figures(shards: list[Path]) -> pl.DataFrame:
    """The ledger's traces with the columns the figures use, the texts as their lengths:
    streamed, so memory holds no text however large the ledger."""
    small = ["problem_id", "verdict", "verdict_reason", "pass_rate", "source", "dropped"]
    small += ["selected", *SELECTION_MEASURES]  # pass_rate is among the small ones
    lengths = [pl.col(c).fill_null("").str.len_chars().alias(c) for c in LENGTHS]
    query = (
        pl.scan_parquet(shards, glob=False, missing_columns="insert")
        .filter(pl.col("sample_idx").is_not_null())
        .select(*small, *lengths)
    )
    return query.collect(engine="streaming")


def _reasons(traces: pl.DataFrame) -> list[tuple[str, int]]:
    if traces.is_empty():
        return []
    labels = traces.select(
        pl.concat_str(
            pl.col("verdict").fill_null("not verified"),
            pl.col("verdict_reason").fill_null("-"),
            separator=": ",
        ).alias("label")
    )["label"]
    counts = labels.value_counts(sort=True)
    return [(str(label), int(n)) for label, n in counts.iter_rows()]


def _pass_rates(traces: pl.DataFrame) -> list[float]:
    per_problem = traces.group_by("problem_id").agg(pl.col("pass_rate").max())
    return [float(r) for r in per_problem["pass_rate"].to_list() if r is not None]


def _lengths(traces: pl.DataFrame) -> dict[str, list[int]]:
    found = {}
    for column in LENGTHS:
        for verdict in ("correct", "incorrect"):
            rows = traces.filter(pl.col("verdict") == verdict)[column]
            found[f"{column} {verdict}"] = rows.to_list()
    return found


def _acceptance(traces: pl.DataFrame) -> list[tuple[str, int, int]]:
    per_source = traces.group_by("source", maintain_order=True).agg(
        pl.col("dropped").is_null().sum().alias("kept"), pl.len().alias("made")
    )
    return [(str(s), int(k), int(m)) for s, k, m in per_source.iter_rows()]


SELECTION_MEASURES = ("trace_words", "quality")
SELECTION_LINES = ("pass_rate", *SELECTION_MEASURES)  # pass rate: of each trace's problem


def _selection(traces: pl.DataFrame) -> dict[str, dict[str, list[float]]]:
    """select's measures of every verified trace and of the kept ones (empty before a select
    that measures)."""
    verified = traces.filter(pl.col("verdict").is_not_null())
    if verified["trace_words"].null_count() == verified.height:
        return {}
    kept = verified.filter(pl.col("selected").fill_null(False) & pl.col("dropped").is_null())
    return {
        name: {
            "verified": verified[name].drop_nulls().cast(pl.Float64).to_list(),
            "kept": kept[name].drop_nulls().cast(pl.Float64).to_list(),
        }
        for name in SELECTION_LINES
    }


def _groups(counts: dict[str, int]) -> list[tuple[str, int, int]]:
    """select's groups (a source, a topic, a cluster): problems in and kept, largest first."""
    sizes = {k.split(":", 1)[1]: int(v) for k, v in counts.items() if k.startswith("in_group:")}
    kept = {k.split(":", 1)[1]: int(v) for k, v in counts.items() if k.startswith("kept_in_group:")}
    return [(g, n, kept.get(g, 0)) for g, n in sorted(sizes.items(), key=lambda i: (-i[1], i[0]))]


def selection_lines(found: Figures) -> list[str]:
    """What select's rules did to the measures: medians before and after."""
    lines = []
    for name, sides in found.selection.items():
        if sides["verified"]:
            kept = statistics.median(sides["kept"]) if sides["kept"] else float("nan")
            lines.append(
                f"{name}: median {statistics.median(sides['verified']):,.3g} of "
                f"{len(sides['verified']):,} verified traces, {kept:,.3g} of "
                f"{len(sides['kept']):,} kept"
            )
    if found.groups:
        spread = ", ".join(f"{g} {n:,} -> {k:,}" for g, n, k in found.groups[:12])
        lines.append(f"problems per group, in -> kept: {spread}")
    return ["selection:", *(f"  {line}" for line in lines)] if lines else []


def text_summary(found: Figures) -> list[str]:
    """The report's numbers as lines for `curate stats`."""
    lines = ["verdicts:"]
    lines += [f"  {label:<40} {n:>9,}" for label, n in found.reasons] or ["  none"]
    rates = found.pass_rates
    if rates:
        solved = sum(1 for r in rates if r > 0)
        lines.append(
            f"pass rate per problem: mean {statistics.mean(rates):.2f}, median "
            f"{statistics.median(rates):.2f}; {solved:,} of {len(rates):,} problems solved "
            "at least once"
        )
    for name, values in found.lengths.items():
        if values:
            median = statistics.median(values)
            lines.append(f"{name} length: median {median:,.0f} chars, n={len(values):,}")
    lines.append("acceptance per source:")
    lines += [f"  {s:<40} {k:>7,} of {m:,} kept" for s, k, m in found.acceptance] or ["  none"]
    lines += selection_lines(found)
    lines += found.spend
    if found.contamination:
        lines.append("contamination matches:")
        lines += [f"  {b} / {method}: {n:,}" for b, method, n in found.contamination]
    return lines


PLOTS: dict[str, tuple[str, Callable[[Any, Figures], bool]]] = {}


def plot(name: str, title: str) -> Callable[[Callable[[Any, Figures], bool]], Any]:
    def register(draw: Callable[[Any, Figures], bool]) -> Callable[[Any, Figures], bool]:
        PLOTS[name] = (title, draw)
        return draw

    return register


@plot("funnel", "Rows out of each stage")
def _plot_funnel(axes: Any, found: Figures) -> bool:
    names = [name for name, _ in found.funnel]
    axes.barh(names[::-1], [n for _, n in found.funnel][::-1], color="#4c72b0")
    axes.set_xlabel("rows")
    return bool(found.funnel)


@plot("pass_rate", "Pass rate per problem")
def _plot_pass_rate(axes: Any, found: Figures) -> bool:
    axes.hist(found.pass_rates, bins=10, range=(0, 1), color="#55a868")
    axes.set_xlabel("share of a problem's samples verified correct")
    axes.set_ylabel("problems")
    return bool(found.pass_rates)


@plot("lengths", "Length of reasoning and final answers")
def _plot_lengths(axes: Any, found: Figures) -> bool:
    shown = {k: v for k, v in found.lengths.items() if v}
    for label, values in shown.items():
        axes.hist(values, bins=30, alpha=0.5, label=label)
    axes.set_xlabel("characters")
    axes.legend()
    return bool(shown)


@plot("selection", "What select kept: trace words, verified vs kept")
def _plot_selection(axes: Any, found: Figures) -> bool:
    return _before_after(axes, found.selection.get("trace_words", {}), "trace words")


@plot("selection_pass_rate", "What select kept: pass rate of each trace's problem")
def _plot_selection_pass_rate(axes: Any, found: Figures) -> bool:
    return _before_after(axes, found.selection.get("pass_rate", {}), "pass rate")


@plot("selection_groups", "What select kept: problems per group, in vs kept")
def _plot_selection_groups(axes: Any, found: Figures) -> bool:
    shown = found.groups[:20]
    if not shown:
        return False
    places = list(range(len(shown)))
    axes.bar([p - 0.2 for p in places], [n for _, n, _ in shown], 0.4, color="#8c8c8c", label="in")
    axes.bar(
        [p + 0.2 for p in places], [k for _, _, k in shown], 0.4, color="#55a868", label="kept"
    )
    axes.set_xticks(places, [g[:14] for g, _, _ in shown], rotation=45, ha="right", fontsize=7)
    axes.set_ylabel("problems")
    axes.legend()
    return True


def _before_after(axes: Any, sides: dict[str, list[float]], label: str) -> bool:
    """Two histograms on the same bins: every verified trace, and the kept ones."""
    verified, kept = sides.get("verified"), sides.get("kept")
    if not verified:
        return False
    _, edges, _ = axes.hist(
        verified, bins=30, alpha=0.6, color="#8c8c8c", label=f"verified ({len(verified):,})"
    )
    if kept:
        axes.hist(kept, bins=edges, alpha=0.8, color="#55a868", label=f"kept ({len(kept):,})")
    axes.set_xlabel(label)
    axes.legend()
    return True


VERDICT_COLOURS = {"correct": "#55a868", "incorrect": "#c44e52", "unverifiable": "#dd8452"}


@plot("reasons", "Verdicts by reason")
def _plot_reasons(axes: Any, found: Figures) -> bool:
    top = found.reasons[:15]
    colours = [VERDICT_COLOURS.get(label.split(":")[0].strip(), "#8c8c8c") for label, _ in top]
    axes.barh([label for label, _ in top][::-1], [n for _, n in top][::-1], color=colours[::-1])
    axes.set_xlabel("traces")
    return bool(top)


@plot("acceptance", "Traces kept per source")
def _plot_acceptance(axes: Any, found: Figures) -> bool:
    sources = [s for s, _, _ in found.acceptance]
    axes.barh(sources, [m for _, _, m in found.acceptance], color="#cccccc", label="generated")
    axes.barh(sources, [k for _, k, _ in found.acceptance], color="#4c72b0", label="kept")
    axes.legend()
    return bool(sources)


@plot("contamination", "Benchmark matches by method")
def _plot_contamination(axes: Any, found: Figures) -> bool:
    labels = [f"{b} / {m}" for b, m, _ in found.contamination]
    axes.barh(labels, [n for _, _, n in found.contamination], color="#8172b2")
    return bool(labels)


def write_report(run_dir: Path, folder: Path | None = None) -> Path:
    """RUN/report/index.html (or FOLDER/index.html) and one PNG per plot that has data;
    returns the page's path."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display here
    from matplotlib import pyplot

    found = figures(run_dir)
    folder = folder or run_dir / "report"
    folder.mkdir(parents=True, exist_ok=True)
    drawn = []
    for name, (title, draw) in PLOTS.items():
        fig, axes = pyplot.subplots(figsize=(7, 3.6))
        if draw(axes, found):
            axes.set_title(title)
            fig.tight_layout()
            fig.savefig(folder / f"{name}.png", dpi=90)
            drawn.append((name, title))
        pyplot.close(fig)
    lines = text_summary(found) + audit_lines(run_dir)
    (folder / "index.html").write_text(page(run_dir.name, drawn, lines), "utf-8")
    return folder / "index.html"


def audit_lines(run_dir: Path) -> list[str]:
    """The verifier's audit (`curate audit`), when the run has one: its headline and the
    share of each verdict that was truly right."""
    from curate.verify.audit import saved_report, summary_lines

    report = saved_report(run_dir / "reports")
    return [] if report is None else ["", *summary_lines(report)]


def page(name: str, drawn: list[tuple[str, str]], lines: list[str]) -> str:
    images = "\n".join(
        f'<figure><img src="{file}.png" alt="{html.escape(title)}">'
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
        for file, title in drawn
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>curate report: {html.escape(name)}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "img{max-width:100%}</style></head><body>"
        f"<h1>{html.escape(name)}</h1>\n{images}\n"
        f"<pre>{html.escape(chr(10).join(lines))}</pre>\n</body></html>\n"
    )
