"""`curate audit`: the verifier's error rates on a run's own data, or on a labelled file.

- draw: a stratified sample of a run's verdicts (curate/verify/audit.py) is written to
  RUN/review/audit_sample.jsonl with an empty `right` column, for people to fill (true when
  the answer is truly right, false when not, empty when they cannot tell); with `by: judge`
  the run's verify.judge labels it at once.
- pull: the filled sample (or any file of the same rows) becomes RUN/reports/audit.json.
- labels: a file of traces with a person's label is verified and compared in full.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from curate.answers import AnswerFormat
from curate.errors import ReviewError
from curate.files import read_table
from curate.generate.cache import SampleCache
from curate.recipe import load_run
from curate.records import stable_hash
from curate.store import RunStore, write_json
from curate.verify.audit import (
    REPORT_FILE,
    STRATA,
    audit,
    draw,
    headline,
    labels_for_width,
    saved_report,
)
from curate.verify.base import Result
from curate.verify.dispatch import Item
from curate.verify.tier import CACHE_FILE, AnswerJudge, question_for

SAMPLE_FILE = "audit_sample.jsonl"
KEY = ("problem_id", "sample_idx", "round")
SHOWN = ("problem", "reference", "solution", "verdict", "verdict_reason", "extracted_answer")
TRUE_WORDS = {"true", "yes", "1", "right", "correct"}
FALSE_WORDS = {"false", "no", "0", "wrong", "incorrect"}


def verdicts(run_dir: Path, columns: tuple[str, ...] | None = None) -> pl.LazyFrame:
    """The ledger rows the verifier judged, as a query that reads only `columns` (all when
    None) of the shards."""
    store = RunStore(run_dir)
    shards = store.shards(store.ledger) if store.ledger.is_dir() else []
    if not shards:
        raise ReviewError(f"{run_dir}: no ledger/ (has the run finished?)")
    rows = pl.scan_parquet(shards, glob=False)
    names = rows.collect_schema().names()
    if "verdict" not in names:
        raise ReviewError(f"{run_dir}: the run has no verify stage: nothing to audit")
    rows = rows.filter(pl.col("verdict").is_not_null())
    wanted = [c for c in dict.fromkeys(columns or ()) if c in names]
    return rows if columns is None else rows.select(wanted)


def draw_sample(run_dir: Path, width: float, seed: int) -> tuple[pl.DataFrame, Path]:
    """The stratified sample, written for labelling (an earlier one is kept, never redrawn)."""
    target = RunStore(run_dir).review / SAMPLE_FILE
    if target.exists():
        return read_labels(target, "right"), target
    rows = verdicts(run_dir, (*KEY, *STRATA, *SHOWN, "completion")).collect()
    sample = draw(rows, labels_for_width(width), seed)
    answers = [AnswerFormat().answer_text(c) for c in sample["completion"].to_list()]
    keep = [c for c in (*KEY, *STRATA, *SHOWN) if c in sample.columns and c != "solution"]
    out = sample.select(*dict.fromkeys(keep)).with_columns(
        pl.Series("solution", answers, pl.String), pl.lit(None, pl.Boolean).alias("right")
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    out.write_ndjson(target)
    return out, target


def judge_labels(run_dir: Path, sample: pl.DataFrame) -> pl.DataFrame:
    """The sample labelled by the run's verify.judge (undecided where it gave no verdict)."""
    section = load_run(run_dir).verify
    if section is None or section.judge is None:
        raise ReviewError("audit --by judge needs verify.judge in the run's recipe")
    judge = AnswerJudge.from_section(section.judge, SampleCache(run_dir / "cache" / CACHE_FILE))
    labels: list[bool | None] = [None] * sample.height
    asked, questions = [], []
    for index, row in enumerate(sample.iter_rows(named=True)):
        item = Item(
            row["solution"], row.get("reference"), row.get("domain"), problem=row["problem"]
        )
        question = question_for(item, row["solution"], _result_of(row))
        if question is not None:
            asked.append(index)
            questions.append(question)
    for index, (said, _) in zip(asked, judge.ask(questions), strict=True):
        labels[index] = said
    return sample.with_columns(pl.Series("right", labels, pl.Boolean))


def _result_of(row: dict[str, Any]) -> Result:
    return Result(row["verdict"], row.get("verdict_reason"), row.get("extracted_answer"))


def read_labels(path: Path, column: str) -> pl.DataFrame:
    """A labelled file (JSONL, JSON, CSV or Parquet) with its label column as booleans."""
    frame = pl.from_arrow(read_table(path))
    assert isinstance(frame, pl.DataFrame)
    if column not in frame.columns:
        raise ReviewError(
            f"{path}: no label column '{column}' (it has: {', '.join(frame.columns)})"
        )
    return frame.with_columns(as_label(frame[column], path).alias("right"))


def as_label(values: pl.Series, path: Path) -> pl.Series:
    """true / false / empty, however the file wrote them (booleans, 1/0, yes/no, right/wrong)."""
    out: list[bool | None] = []
    for number, value in enumerate(values.to_list(), start=1):
        word = "" if value is None else str(value).strip().lower()
        if word in TRUE_WORDS or value is True:
            out.append(True)
        elif word in FALSE_WORDS or value is False:
            out.append(False)
        elif word in ("", "none", "null", "?", "unsure"):
            out.append(None)
        else:
            raise ReviewError(f"{path} row {number}, field '{values.name}': {value!r} is no label")
    return pl.Series("right", out, pl.Boolean)


def write_audit(run_dir: Path, labelled: pl.DataFrame, by: str) -> dict[str, Any]:
    """The run's audit from its labelled sample, saved as RUN/reports/audit.json."""
    report = {"by": by, **audit(verdicts(run_dir, STRATA).collect(), labelled)}
    store = RunStore(run_dir)
    store.reports.mkdir(parents=True, exist_ok=True)
    write_json(store.reports / REPORT_FILE, report)
    return report


def audit_line(run_dir: Path) -> str | None:
    """The audit's headline for `curate stats`, when the run was audited."""
    report = saved_report(RunStore(run_dir).reports)
    return None if report is None else headline(report)


def audit_file(path: Path, column: str, overrides: list[str], workdir: Path) -> dict[str, Any]:
    """Verify a labelled file (with the verify settings given) and compare every verdict
    with its label: a census, so the intervals are the labels' own."""
    from curate.files import run_stage_on_file

    labels = read_labels(path, column)
    verified = workdir / "verified.parquet"
    run_stage_on_file("verify", path, verified, overrides)
    frame = pl.read_parquet(verified, glob=False).with_columns(labels["right"])
    return {"by": f"labels in {path.name}", **audit(frame, frame)}


def audit_dataset(run_dir: Path) -> str:
    """The Argilla dataset of a run's audit: apart from its review queue."""
    where = stable_hash(str(run_dir.resolve()), size=6)
    return f"curate-audit-{run_dir.resolve().name}-{where}"


def sampled_traces(run_dir: Path, sample: pl.DataFrame) -> pl.DataFrame:
    """The ledger rows of the sample, in full (reasoning and all) for reviewers."""
    keys = [c for c in KEY if c in sample.columns]
    return verdicts(run_dir).join(sample.lazy().select(keys), on=keys, how="semi").collect()


def push_audit(run_dir: Path, sample: pl.DataFrame) -> dict[str, int]:
    """Send the sample to Argilla as the review task, marked as an audit and blind: the
    reviewers see neither the verifier's verdict nor its suggestion. Records already there
    are not sent again."""
    from curate.review import argilla

    session = argilla.open_session(run_dir, name=audit_dataset(run_dir))
    have = argilla.existing_ids(session.connection, session.dataset_id)
    questions = argilla.question_ids(session.connection, session.dataset_id)
    rows = sampled_traces(run_dir, sample).iter_rows(named=True)
    new = [row for row in rows if argilla.record_id(row) not in have]
    for start in range(0, len(new), argilla.PUSH_BATCH):
        batch = new[start : start + argilla.PUSH_BATCH]
        records = [blind_record(row, session.task, questions) for row in batch]
        argilla.upsert(session.connection, session.dataset_id, records)
    return {"sample": sample.height, "new": len(new), "already_there": sample.height - len(new)}


def blind_record(row: dict[str, Any], task: dict[str, Any], questions: dict[str, str]) -> Any:
    from curate.review import argilla

    record = argilla.to_record(
        {**row, "verdict": None, "verdict_reason": None, "borderline": ["audit"]}, task, questions
    )
    fields = record["fields"]
    if "verdict_text" in fields:
        fields["verdict_text"] = "(not shown: this trace is part of an audit of the verifier)"
    if "why" in fields:
        fields["why"] = "audit: a random sample of the verifier's verdicts"
    record["suggestions"] = []
    return record


def pull_audit(run_dir: Path) -> pl.DataFrame:
    """The sample labelled by reviewers' answers in Argilla (the task's resolve rule: accept
    is right, reject wrong, undecided no label yet)."""
    from curate.review import argilla

    sample = read_labels(RunStore(run_dir).review / SAMPLE_FILE, "right")
    session = argilla.open_session(run_dir, name=audit_dataset(run_dir))
    names = argilla.usernames(session.connection)
    said: dict[str, bool | None] = {}
    for record in argilla.list_records(session.connection, session.dataset_id, True):
        decision = argilla.decide(argilla.answers_of(record, names), session.task)["decision"]
        said[record["external_id"]] = {"accept": True, "reject": False}.get(decision)
    labels = [said.get(argilla.record_id(row)) for row in sample.iter_rows(named=True)]
    return sample.with_columns(pl.Series("right", labels, pl.Boolean))
