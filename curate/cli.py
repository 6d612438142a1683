"""The command line: a thin layer over the library; errors become one line and an exit code."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from curate import __version__, registry
from curate.cluster import ClusterRunner, ClusterSettings, slurm_dry_run
from curate.decontam.benchmarks import BenchmarkUnavailable
from curate.decontam.semantic import SemanticMethod
from curate.decontam.stage import DEFAULT_BENCHMARKS, DecontamConfig, NgramMethod, build_index
from curate.errors import CurateError, CurateWarning, ReviewError, StoreError
from curate.files import parse_columns, run_stage_on_file
from curate.generate.cache import SampleCache
from curate.generate.stage import CACHE_FILE
from curate.lock import exclusive
from curate.loop.driver import loop_lines, open_loop, run_loop
from curate.progress import progress_for
from curate.publish.repo import publish_staged, stage_repository
from curate.recipe import OverrideError, dump_recipe, load_recipe, recipe_model
from curate.report import figures, text_summary, write_report
from curate.review import argilla as review_argilla
from curate.review import local as local_argilla
from curate.review.audit import audit_line
from curate.runner import RunResult, run_recipe
from curate.schema_doc import schema_text
from curate.stats import (
    Stats,
    funnel_problems,
    funnel_table,
    generation_failures,
    mostly_failed,
    other_spend,
    teacher_spend,
    why_empty,
)
from curate.store import RunStore

app = typer.Typer(
    help="Build verified reasoning datasets: generate, verify, curate, review, publish.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
recipe_app = typer.Typer(help="Inspect recipes.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")
cache_app = typer.Typer(help="The generation request cache of a run.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
review_app = typer.Typer(help="Human review in Argilla.", no_args_is_help=True)
app.add_typer(review_app, name="review")
argilla_app = typer.Typer(help="A local Argilla server for review.", no_args_is_help=True)
app.add_typer(argilla_app, name="argilla")
decontam_app = typer.Typer(help="Benchmark index packs for decontamination.", no_args_is_help=True)
app.add_typer(decontam_app, name="decontam")

out = Console()
err = Console(stderr=True)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a recipe key: --set teacher.samples=8 (repeatable)."),
]


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn curate's errors into one line on stderr and exit 1 (2 for usage errors, 130 for
    Ctrl-C)."""
    try:
        yield
    except OverrideError as exc:
        fail(str(exc))
        raise typer.Exit(2) from None
    except CurateError as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:  # before the work began (a command's own handler says more)
        typer.echo("interrupted; nothing was lost: run the same command again", err=True)
        raise typer.Exit(130) from None


def fail(message: str) -> None:
    """One unwrapped line on stderr, whatever the terminal width."""
    typer.echo(f"error: {message}", err=True)


def say_plain(text: str) -> None:
    """A line on stderr as text: brackets in it (`pip install 'curate[semantic]'`) are kept."""
    err.print(text, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def shown_warnings() -> Iterator[None]:
    """curate's warnings as one `warning:` line each on stderr."""

    def show(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        err.print(
            f"[yellow]warning:[/yellow] {escape(str(message))}", highlight=False, soft_wrap=True
        )

    with warnings.catch_warnings():
        warnings.simplefilter("always", CurateWarning)
        warnings.showwarning = show
        yield


VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Also print the resolved recipe.")
]


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe.")],
    run_dir: Annotated[Path | None, typer.Option(help="Run directory (default runs/NAME).")] = None,
    set_: SetOption = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Send again the requests that failed for good.")
    ] = False,
    verbose: VerboseOption = False,
    executor: Annotated[
        str | None,
        typer.Option(help="Spread the stages with datatrove: local, slurm or ray (extra cluster)."),
    ] = None,
    tasks: Annotated[int, typer.Option(help="datatrove tasks per stage.")] = 2,
    workers: Annotated[int, typer.Option(help="local: tasks at once (-1: all).")] = -1,
    partition: Annotated[str, typer.Option(help="slurm: the partition.")] = "cpu",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="slurm: print the sbatch scripts, submit nothing.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="If another process holds the run directory, wait for it."),
    ] = False,
) -> None:
    """Run (or resume) a recipe's whole pipeline.

    Exit codes: 0 done, 1 an error or an empty dataset, 2 a usage error, 130 interrupted.
    """
    with cli_errors(), shown_warnings():
        parsed = load_recipe(recipe, set_ or [])
        target = run_dir or Path("runs") / parsed.name
        if verbose:
            err.print(dump_recipe(parsed), markup=False, highlight=False)
        cluster = cluster_runner(executor, tasks, workers, partition, dry_run)
        if cluster is not None and dry_run:
            for name, script in slurm_dry_run(parsed, target, cluster.settings):
                typer.echo(f"# --- {name} ---\n{script}")
            return
        try:
            with progress_for(err) as progress:
                result = run_recipe(
                    parsed,
                    target,
                    progress,
                    retry_failed=retry_failed,
                    stage_runner=cluster,
                    wait=wait,
                )
        except KeyboardInterrupt:
            fail(f"interrupted: {interrupted_note(target)}; run the same command again to resume")
            raise typer.Exit(130) from None
        report_run(result, target)


def cluster_runner(
    executor: str | None, tasks: int, workers: int, partition: str, dry_run: bool
) -> ClusterRunner | None:
    """The datatrove stage runner `--executor` asks for (None: the plain runner)."""
    if executor is None:
        if dry_run:
            raise OverrideError("--dry-run goes with --executor slurm")
        return None
    if executor not in ("local", "slurm", "ray"):
        raise OverrideError(f"--executor {executor!r}: one of local, slurm, ray")
    if dry_run and executor != "slurm":
        raise OverrideError("--dry-run goes with --executor slurm")
    if tasks < 1:
        raise OverrideError(f"--tasks {tasks}: at least 1")
    settings = ClusterSettings(executor, tasks, workers, partition, dry_run=dry_run)  # type: ignore[arg-type]
    return ClusterRunner(settings)


def report_run(result: RunResult, target: Path) -> None:
    """What the run did, what it cost, where the output is; exit 1 when the dataset is empty."""
    if result.up_to_date:
        typer.echo(
            f"nothing to do: the run is up to date ({result.dataset_rows:,} rows in "
            f"{target / 'dataset'}; `curate stats {target}` shows the funnel)"
        )
    else:
        out.print(funnel_table(result.stats))
        if result.reused:
            typer.echo(f"reused (unchanged since the last run): {', '.join(result.reused)}")
        spent = "" if "generate" in result.reused else teacher_summary(result.stats)
        if spent:
            typer.echo(spent)
        typer.echo(f"recipe:  {target / 'recipe.yaml'} (resolved; --verbose prints it)")
        typer.echo(f"ledger:  {target / 'ledger'}    stats: {target / 'stats.json'}")
        typer.echo(f"dataset: {target / 'dataset'} ({result.dataset_rows:,} rows)")
        review_hint(target)
    failures = generation_failures(result.stats)
    if failures:
        fail(
            f"{failures}; fix the teacher and run again (finished samples are kept; "
            "--retry-failed resends only the failed requests)"
        )
    if result.dataset_rows == 0:
        fail(f"the dataset is empty: {why_empty(result.stats)}")
        raise typer.Exit(1)
    if failures and mostly_failed(result.stats):
        fail("more than half the samples failed: the dataset holds only the rest")
        raise typer.Exit(1)


def review_hint(target: Path) -> None:
    """Borderline traces go to Argilla when a server is configured or running (recipe
    `review.push: auto`); otherwise RUN/review/borderline.jsonl and how to get them reviewed."""
    waiting = review_argilla.write_borderline(target)
    if not waiting:
        return
    where = target / "review" / "borderline.jsonl"
    config = review_argilla.review_config(target)
    server = review_argilla.configured(config)
    if server and config.push == "never":
        typer.echo(
            f"review:  {waiting:,} borderline traces in {where}; not sent (review.push: never): "
            f"`curate review push {target}` sends them"
        )
        return
    if server:
        try:
            counts = review_argilla.push(target)
        except ReviewError as exc:
            warnings.warn(
                f"review: {waiting:,} borderline traces not sent ({exc}); they are in {where}",
                CurateWarning,
                stacklevel=1,
            )
            return
        typer.echo(
            f"review:  {waiting:,} borderline traces in Argilla ({counts['new']:,} new); "
            f"`curate review pull {target}` brings the decisions back"
        )
        return
    typer.echo(
        f"review:  {waiting:,} borderline traces in {where}; for people to judge: "
        f"`curate argilla up`, then `curate review push {target}`"
    )


def interrupted_note(run_dir: Path) -> str:
    """How much of an interrupted run is kept."""
    path = RunStore(run_dir).cache / CACHE_FILE
    if not path.exists():
        return "finished stages and shards are kept"
    cache = SampleCache(path)
    try:
        samples = cache.summary()["samples"]
    finally:
        cache.close()
    return f"{samples:,} samples are cached"


def teacher_summary(stats: dict[str, Any]) -> str:
    """Prompts, samples and tokens the teacher was asked for in this run (and cost), and
    what the other models it asked (judge, solver, rater, classifier) cost."""
    others = [f"also spent: {line}" for line in other_spend(stats)]
    counts = stats.get("generate", {}).get("counts", {})
    if not counts.get("requests_sent") and not counts.get("cache_hits"):
        return "\n".join(others)
    new = counts.get("samples_generated", 0) - counts.get("failed", 0)
    line = (
        f"teacher: {counts.get('requests_sent', 0):,} prompts sent; samples: {new:,} new, "
        f"{counts.get('cache_hits', 0):,} from cache, {counts.get('failed', 0):,} failed; "
        f"tokens: {counts.get('spent_prompt_tokens', 0):,} prompt + "
        f"{counts.get('spent_completion_tokens', 0):,} completion"
    )
    spend = teacher_spend(stats)
    return "\n".join([f"{line}\nspent:   {spend}" if spend else line, *others])


@app.command()
def stats(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print stats.json as is.")] = False,
) -> None:
    """Show a run's funnel: rows in and out of each stage, drops by reason, time."""
    with cli_errors():
        data = RunStore(run_dir).load_stats()
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        out.print(funnel_table(data))
        for problem in funnel_problems(data):
            err.print(f"[yellow]warning:[/yellow] {escape(problem)}")
        for line in text_summary(figures(run_dir)):
            typer.echo(line)
        audited = audit_line(run_dir)
        if audited is not None:
            typer.echo(audited)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of RUN/report/.")
    ] = None,
) -> None:
    """Write RUN/report/index.html: PNG plots of the funnel, pass rates, lengths, verdicts."""
    with cli_errors():
        target = out_dir or run_dir / "report"
        try:
            page = write_report(run_dir, target)
        except PermissionError:
            raise StoreError(f"{target}: not writable (a read-only run?); pass --out DIR") from None
        typer.echo(f"report: {page} ({len(list(page.parent.glob('*.png')))} plots)")


@app.command("loop")
def loop_command(
    target: Annotated[str, typer.Argument(help="A recipe, or `status` to show a loop.")],
    directory: Annotated[
        Path | None, typer.Argument(help="With `status`: the loop directory.")
    ] = None,
    rounds: Annotated[int, typer.Option(help="Rounds to run (0 .. N-1).")] = 3,
    run_dir: Annotated[
        Path | None, typer.Option(help="Loop directory (default runs/NAME-loop).")
    ] = None,
    round_: Annotated[
        int | None, typer.Option("--round", help="Run only this round (earlier ones done).")
    ] = None,
    set_: SetOption = None,
) -> None:
    """Self-improvement rounds: sample, verify, select, train; later rounds sample the
    trained policy. `curate loop RECIPE --rounds N` runs (and resumes) them;
    `curate loop status DIR` shows them."""
    with cli_errors(), shown_warnings():
        if target == "status":
            if directory is None:
                raise CurateError("curate loop status DIR: name the loop directory")
            show_loop(directory)
            return
        loop = open_loop(Path(target), set_ or [], run_dir)
        try:
            with progress_for(err) as progress:
                run_loop(loop, rounds, round_, progress, say=lambda text: say_plain(text))
        except KeyboardInterrupt:
            fail("interrupted: finished rounds and samples are kept; run it again to resume")
            raise typer.Exit(130) from None
        show_loop(loop.root)


def show_loop(root: Path) -> None:
    """One line a round: what it sampled, solved and kept, training, held-out pass@k."""
    for line in loop_lines(root):
        typer.echo(line)


@app.command()
def stages() -> None:
    """List registered stages, teacher backends, verifiers and sources."""
    with cli_errors():
        for title, items in (
            ("stages", registry.stages),
            ("teacher backends", registry.backends),
            ("verifiers", registry.verifiers),
            ("sources", registry.sources),
        ):
            typer.echo(f"{title}:")
            for name, obj in items.items():
                typer.echo(f"  {name:<16} {registry.first_line(obj)}")


@recipe_app.command("schema")
def recipe_schema(
    as_json: Annotated[bool, typer.Option("--json", help="JSON Schema instead of text.")] = False,
) -> None:
    """Print every recipe key with its type, default and description."""
    with cli_errors():
        if as_json:
            typer.echo(json.dumps(recipe_model().model_json_schema(), indent=2))
        else:
            typer.echo(schema_text())


@recipe_app.command("show")
def recipe_show(recipe: Path, set_: SetOption = None) -> None:
    """Print the resolved recipe (defaults filled in, overrides applied, secrets removed)."""
    with cli_errors():
        typer.echo(dump_recipe(load_recipe(recipe, set_ or [])), nl=False)


@cache_app.command("stats")
def cache_stats(run_dir: Annotated[Path, typer.Argument(help="Run directory.")]) -> None:
    """Samples cached, problems covered, tokens they cost, size on disk."""
    with cli_errors():
        path = RunStore(run_dir).cache / CACHE_FILE
        if not path.exists():
            raise CurateError(f"{run_dir}: no generation cache")
        cache = SampleCache(path)
        try:
            summary = cache.summary()
        finally:
            cache.close()
        size = sum(p.stat().st_size for p in path.parent.glob(f"{CACHE_FILE}*"))
        out.print(
            f"{summary['samples']:,} samples for {summary['requests']:,} prompts, "
            f"{summary['completion_tokens']:,} completion tokens, "
            f"{size / 1e6:,.1f} MB in {path}",
            highlight=False,
        )


@cache_app.command("clear")
def cache_clear(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete a run's generation cache (its next run regenerates every sample)."""
    with cli_errors():
        cache = RunStore(run_dir).cache
        files = sorted(cache.glob(f"{CACHE_FILE}*"))
        if not files:
            raise CurateError(f"{run_dir}: no generation cache")
        if not yes and not typer.confirm(f"delete {len(files)} cache file(s) in {cache}?"):
            raise typer.Exit(1)
        for file in files:
            file.unlink()
        out.print(f"cleared {cache}")


@decontam_app.command("build")
def decontam_build(
    out_path: Annotated[Path, typer.Option("--out", help="Index pack to write (.npz).")],
    benchmarks: Annotated[str, typer.Option(help="Comma-separated benchmark names.")] = ",".join(
        DEFAULT_BENCHMARKS
    ),
    file: Annotated[
        list[str] | None,
        typer.Option(
            "--file", help="A local copy: NAME=PATH (repeatable); others load from the Hub."
        ),
    ] = None,
    n: Annotated[int, typer.Option(help="Words per n-gram.")] = 8,
    tokens: Annotated[str, typer.Option(help="words or whitespace.")] = "words",
    semantic: Annotated[
        str | None,
        typer.Option(
            help="Also store embeddings from this sentence-transformers model (folder or id)."
        ),
    ] = None,
) -> None:
    """Build an index pack (hashed n-grams and ids, no benchmark text) for offline use."""
    with cli_errors():
        files = dict(_pair(item) for item in file or [])
        if tokens not in ("words", "whitespace"):
            raise OverrideError(f"--tokens {tokens!r}: expected words or whitespace")
        config = DecontamConfig(
            benchmarks=[b for b in benchmarks.split(",") if b],
            files=files,
            ngram=NgramMethod(n=n, tokens=tokens),
            semantic=SemanticMethod(model=semantic) if semantic else None,
        )
        try:
            index = build_index(config)
        except BenchmarkUnavailable as exc:
            raise exc.with_form("--file {}=PATH") from None
        index.save(out_path)
        out.print(
            f"{len(index.item_ids):,} items from {', '.join(index.bench_names)}, "
            f"{len(index.grams):,} n-grams -> {out_path}",
            highlight=False,
        )


def _pair(item: str) -> tuple[str, str]:
    name, sep, path = item.partition("=")
    if not sep:
        raise OverrideError(f"--file {item!r}: expected NAME=PATH")
    return name, path


def stage_command(name: str) -> Callable[..., None]:
    def command(
        in_path: Annotated[Path, typer.Option("--in", help="Input JSONL, JSON, CSV or Parquet.")],
        out_path: Annotated[Path, typer.Option("--out", help="Output .jsonl or .parquet.")],
        set_: SetOption = None,
        columns: Annotated[
            list[str] | None,
            typer.Option(
                "--columns",
                help="Which file column holds a field: reference=answer,problem=question "
                "(repeatable; the files source's `columns:` names).",
            ),
        ] = None,
        cache_dir: Annotated[
            Path | None,
            typer.Option(help="Generation cache (default: .curate-cache beside --out)."),
        ] = None,
        reference_pattern: Annotated[
            str | None,
            typer.Option(
                help="The part of each reference that is the answer, as a regex (its first "
                "group): GSM8K's '#### (.+)' (a recipe's source.reference_pattern)."
            ),
        ] = None,
    ) -> None:
        with cli_errors(), shown_warnings():
            mapping = parse_columns(columns or [])
            with progress_for(err) as progress:
                result = run_stage_on_file(
                    name,
                    in_path,
                    out_path,
                    set_ or [],
                    progress,
                    mapping,
                    cache_dir,
                    reference_pattern,
                )
            report_file_stage(name, result, out_path, cache_dir)

    cls = registry.stages.get(name)
    command.__doc__ = (
        f"Run the '{name}' stage on a file; every input row is kept in --out.\n\n"
        f"Reads columns: {', '.join(cls.reads) or '-'}. "
        f"Writes columns: {', '.join(cls.writes) or '-'}. "
        "Common names (question, answer, response, ...) are recognised; map others with "
        "--columns."
    )
    return command


def report_file_stage(name: str, result: Stats, out_path: Path, cache_dir: Path | None) -> None:
    """One line of what a file command did, what it renamed, and where its cache is."""
    dropped = ", ".join(f"{k} {v:,}" for k, v in result["dropped"].items()) or "none"
    typer.echo(
        f"{name}: {result['in']:,} rows in, {result['out']:,} kept, "
        f"dropped: {dropped} -> {out_path}"
    )
    if result.get("renamed"):
        pairs = ", ".join(f"{old} -> {new}" for old, new in result["renamed"].items())
        typer.echo(f"columns renamed in the output: {pairs}")
    cache = cache_dir or out_path.parent / ".curate-cache"
    if cache.exists():
        typer.echo(f"cache: {cache} (generated samples, reused by a rerun; --cache-dir moves it)")
    failures = generation_failures({"generate": result}) if name == "generate" else ""
    if failures:
        fail(f"{failures}; fix the teacher and run again (finished samples are kept)")
    if result["out"] == 0 and result["in"] > 0:
        fail(f"no row kept: {why_empty({name: result})}")
        raise typer.Exit(1)


def add_stage_commands() -> None:
    for name, _ in registry.stages.items():
        app.command(name)(stage_command(name))


@app.command()
def publish(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    repo_id: Annotated[
        str | None, typer.Option(help="Hub dataset repository, ORG/NAME (default: the recipe's).")
    ] = None,
    private: Annotated[
        bool | None, typer.Option("--private/--public", help="Visibility of a new repository.")
    ] = None,
    revision: Annotated[str | None, typer.Option(help="Branch to commit to.")] = None,
    tag: Annotated[str | None, typer.Option(help="Tag the commit (e.g. round-1).")] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Hub endpoint (default: HF_ENDPOINT or the Hub).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Stage only; upload nothing.")] = False,
    out: Annotated[
        Path | None, typer.Option(help="Stage here instead of RUN/publish (a read-only run).")
    ] = None,
) -> None:
    """Stage RUN/publish/ (configs, card, recipe, funnel) and upload it in one commit."""
    with cli_errors(), shown_warnings(), exclusive(run_dir, "curate publish"):
        staged = stage_repository(run_dir, {"repo_id": repo_id, "private": private}, out)
        sizes = ", ".join(f"{name} {rows:,}" for name, rows in staged.rows.items())
        typer.echo(f"staged: {staged.path} ({sizes} rows)")
        if dry_run:
            typer.echo(
                f"dry run: nothing uploaded; datasets.load_dataset('{staged.path}', 'default') "
                "loads it as the Hub will"
            )
            return
        result = publish_staged(staged, revision, tag, endpoint)
        where = f"{result.repo_id}@{result.revision}"
        if result.committed:
            typer.echo(
                f"published: {result.commit_url or where} ({result.added} files added or changed, "
                f"{result.deleted} deleted)"
            )
        else:
            typer.echo(f"no changes: {where} already has this content; nothing committed")
        if tag:
            typer.echo(f"tagged: {tag}")


TaskOption = Annotated[
    Path | None,
    typer.Option("--task", help="Review task file (default annotation/review_task.yaml)."),
]


@review_app.command("push")
def review_push(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")], task: TaskOption = None
) -> None:
    """Send the run's borderline traces to Argilla (only those not there yet)."""
    with cli_errors(), exclusive(run_dir, "curate review push"):
        counts = review_argilla.push(run_dir, task)
        typer.echo(
            f"review push: {counts['borderline']:,} borderline traces, {counts['new']:,} sent, "
            f"{counts['already_there']:,} already there"
        )


@review_app.command("pull")
def review_pull(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")], task: TaskOption = None
) -> None:
    """Read reviewers' answers back and write RUN/review/decisions.jsonl."""
    with cli_errors():
        counts = review_argilla.pull(run_dir, task)
        shown = ", ".join(f"{k} {v:,}" for k, v in counts.items())
        typer.echo(f"review pull: {shown} -> {run_dir / 'review' / 'decisions.jsonl'}")


@review_app.command("status")
def review_status(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")], task: TaskOption = None
) -> None:
    """Progress per reviewer and per borderline reason."""
    with cli_errors():
        found = review_argilla.status(run_dir, task)
        typer.echo("per reviewer:")
        for name, counts in sorted(found["reviewers"].items()):
            typer.echo(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        typer.echo("per reason:")
        for reason, counts in sorted(found["reasons"].items()):
            typer.echo(f"  {reason}: {counts['complete']} of {counts['records']} complete")


@argilla_app.command("up")
def argilla_up(
    port: Annotated[int | None, typer.Option(help="Port (default: a free one).")] = None,
    reviewers: Annotated[int, typer.Option(help="Reviewer accounts to create.")] = 2,
) -> None:
    """Start a real argilla-server on loopback and print its URL and reviewer accounts."""
    with cli_errors():
        local = local_argilla.up(port, reviewers, say=lambda text: say_plain(text))
        typer.echo(f"argilla: {local.url}")
        typer.echo(f"export ARGILLA_API_URL={local.url}  # curate finds it without this too")
        for name, account in local.reviewers.items():
            typer.echo(f"reviewer {name}: password {account['password']}")
        state = local_argilla.state_file()
        typer.echo(f"state: {state} (owner key inside); `curate argilla down` stops it")


@argilla_app.command("down")
def argilla_down() -> None:
    """Stop the local Argilla server."""
    with cli_errors():
        typer.echo("stopped" if local_argilla.down() else "no local Argilla was started")


@argilla_app.command("status")
def argilla_status() -> None:
    """Whether the local Argilla server answers."""
    with cli_errors():
        local = local_argilla.running()
        if local is None:
            typer.echo("not running (`curate argilla up` starts one)")
            raise typer.Exit(1)
        typer.echo(f"running: {local.url} (pids {', '.join(map(str, local.pids.values()))})")


@app.command("audit")
def audit_command(
    run_dir: Annotated[
        Path | None, typer.Argument(help="Run directory (leave out with --labels FILE alone).")
    ] = None,
    by: Annotated[
        str,
        typer.Option(
            help="people (a file to label), argilla (reviewers, blind) or judge (verify.judge)."
        ),
    ] = "people",
    width: Annotated[float, typer.Option(help="95% interval width to size the sample.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the random sample.")] = 0,
    labels: Annotated[
        Path | None,
        typer.Option(
            help="Labels: the filled sample of a run, `argilla` (the reviewers' answers), or "
            "a labelled file."
        ),
    ] = None,
    label_column: Annotated[str, typer.Option(help="The labels' column.")] = "right",
    set_: SetOption = None,
) -> None:
    """Measure how often the verifier is wrong: on a run (a stratified sample judged by people
    or the judge) or on a labelled file (every row)."""
    from curate.review import audit as run_audit

    with cli_errors():
        if run_dir is None:
            if labels is None:
                fail("audit needs a run directory, or --labels FILE")
                raise typer.Exit(2)
            with tempfile.TemporaryDirectory() as work:
                report = run_audit.audit_file(labels, label_column, set_ or [], Path(work))
            print_audit(report)
            return
        if labels is not None:
            from_argilla = str(labels) == "argilla"
            labelled = (
                run_audit.pull_audit(run_dir)
                if from_argilla
                else run_audit.read_labels(labels, label_column)
            )
            by_whom = "people in Argilla" if from_argilla else "people"
            print_audit(run_audit.write_audit(run_dir, labelled, by_whom))
            return
        sample, where = run_audit.draw_sample(run_dir, width, seed)
        if by not in ("people", "argilla", "judge"):
            fail(f"--by must be people, argilla or judge, got {by!r}")
            raise typer.Exit(2)
        if by == "judge":
            judged = run_audit.judge_labels(run_dir, sample)
            print_audit(run_audit.write_audit(run_dir, judged, "judge"))
            return
        if by == "argilla":
            counts = run_audit.push_audit(run_dir, sample)
            typer.echo(
                f"audit: {counts['sample']:,} verdicts drawn, {counts['new']:,} sent to Argilla "
                "(blind: reviewers see neither the verdict nor a suggestion); once they have "
                f"answered: curate audit {run_dir} --labels argilla"
            )
            return
        typer.echo(
            f"audit: {sample.height:,} verdicts drawn to {where}; fill its `right` column "
            f"(true, false, or empty), then: curate audit {run_dir} --labels {where}"
        )


def print_audit(report: dict[str, Any]) -> None:
    from curate.verify.audit import summary_lines

    for line in summary_lines(report):
        typer.echo(line)


@app.command()
def version() -> None:
    """Print curate's version."""
    typer.echo(__version__)


def main() -> None:
    try:
        add_stage_commands()
        app()
    except CurateError as exc:  # raised while building the app (a broken plugin)
        fail(str(exc))
        sys.exit(1)
    except Exception as exc:  # the CLI edge: no traceback unless asked for
        if os.environ.get("CURATE_DEBUG"):
            raise
        fail(f"internal error: {type(exc).__name__}: {exc} (CURATE_DEBUG=1 shows the traceback)")
        sys.exit(1)


if __name__ == "__main__":
    main()
