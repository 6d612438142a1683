"""Borderline traces out to Argilla, reviewers' answers back: `curate review push|pull|status`.

Records carry a stable id (problem, round, sample), so a second push adds only new records
and never touches one a reviewer has answered. Answers are read with the records list API
(raw JSON, paged over the database's own order): the argilla 2.8 SDK crashes on a discarded
response whose values are null, and paging a status-filtered search skips records whose
status changes meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from curate.errors import ReviewError
from curate.memory import release_memory
from curate.records import stable_hash
from curate.review import local
from curate.review.stage import ReviewConfig, record_key
from curate.store import RunStore

DEFAULT_TASK = Path(__file__).resolve().parents[2] / "annotation" / "review_task.yaml"
PAGE = 500
PUSH_BATCH = 100  # records per bulk upsert (the server takes up to 500)
VERDICT_LABEL = {"correct": "correct", "incorrect": "incorrect", "unverifiable": "unsure"}


@dataclass(frozen=True)
class Connection:
    url: str
    key: str
    key_name: str = "ARGILLA_API_KEY"  # what to name in errors, never the key itself

    def headers(self) -> dict[str, str]:
        return {"X-Argilla-Api-Key": self.key}


def review_config(run_dir: Path) -> ReviewConfig:
    """The `review:` section of the run's saved recipe (defaults when it has none)."""
    from curate.recipe import load_run

    if not (run_dir / "recipe.yaml").exists():
        return ReviewConfig()
    section = load_run(run_dir).review
    return section if isinstance(section, ReviewConfig) else ReviewConfig()


def configured(config: ReviewConfig) -> bool:
    """Whether a server is named (recipe or environment) or the local one is running."""
    return bool(config.url or os.environ.get("ARGILLA_API_URL") or local.running())


def connect(config: ReviewConfig | None = None) -> Connection:
    """The recipe's review.url (key from the variable review.api_key_env names), else
    ARGILLA_API_URL / ARGILLA_API_KEY, else the local server `curate argilla up` started;
    checked with one request, so a wrong key or an absent server is one clear error."""
    config = config or ReviewConfig()
    url = config.url or os.environ.get("ARGILLA_API_URL")
    if url:
        key = os.environ.get(config.api_key_env)
        if not key:
            raise ReviewError(
                f"Argilla at {url} needs an API key: set the variable {config.api_key_env}"
            )
        connection = Connection(url.rstrip("/"), key, config.api_key_env)
    else:
        started = local.running()
        if started is None:
            raise ReviewError(
                "no Argilla server: set ARGILLA_API_URL and ARGILLA_API_KEY (or review.url in "
                "the recipe), or run `curate argilla up`"
            )
        connection = Connection(started.url, started.owner_key, "the local server's owner key")
    check(connection)
    return connection


def check(connection: Connection) -> None:
    import httpx

    try:
        answer = httpx.get(f"{connection.url}/api/v1/me", headers=connection.headers(), timeout=10)
    except httpx.TransportError as exc:
        raise ReviewError(f"cannot reach Argilla at {connection.url} ({exc})") from None
    if answer.status_code in (401, 403):
        raise ReviewError(f"Argilla at {connection.url} refused the key ({connection.key_name})")
    _check(answer, "who am I")


def load_task(path: Path | None = None) -> dict[str, Any]:
    task_path = path or DEFAULT_TASK
    try:
        task = yaml.safe_load(task_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ReviewError(f"{task_path}: cannot read the review task ({exc})") from None
    for key in ("name", "fields", "questions", "overlap", "resolve"):
        if key not in task:
            raise ReviewError(f"{task_path}: the review task needs '{key}'")
    return dict(task)


def settings(task: dict[str, Any]) -> Any:
    import argilla as rg

    questions = []
    for name, spec in task["questions"].items():
        required = spec.get("required", True)
        if spec["kind"] == "label":
            questions.append(
                rg.LabelQuestion(
                    name=name, title=spec["title"], labels=spec["labels"], required=required
                )
            )
        elif spec["kind"] == "rating":
            questions.append(
                rg.RatingQuestion(
                    name=name, title=spec["title"], values=spec["values"], required=required
                )
            )
        else:
            questions.append(
                rg.TextQuestion(
                    name=name, title=spec["title"], required=required, use_markdown=True
                )
            )
    numbers = {"pass_rate": rg.FloatMetadataProperty, "round": rg.IntegerMetadataProperty}
    return rg.Settings(
        guidelines=task.get("guidelines"),
        fields=[
            rg.TextField(name=n, title=t, use_markdown=True) for n, t in task["fields"].items()
        ],
        questions=questions,
        metadata=[numbers.get(m, rg.TermsMetadataProperty)(name=m) for m in task["metadata"]],
        distribution=rg.TaskDistribution(min_submitted=int(task["overlap"])),
    )


JSONL_COLUMNS = [
    "problem_id",
    "round",
    "sample_idx",
    "problem",
    "reference",
    "completion",
    "verdict",
    "verdict_reason",
    "borderline",
]


def record_id(row: dict[str, Any]) -> str:
    return record_key(row["problem_id"], row["round"], row["sample_idx"])


def borderline_rows(run_dir: Path) -> pl.DataFrame:
    parts = list(borderline_parts(run_dir))
    frame = pl.from_arrow(pa.concat_tables(parts, promote_options="permissive"))
    assert isinstance(frame, pl.DataFrame)
    return frame


def borderline_parts(run_dir: Path) -> Iterator[pa.Table]:
    """The traces flagged for review, a ledger shard at a time."""
    store = RunStore(run_dir)
    shards = store.shards(store.ledger)
    if not shards:
        raise ReviewError(f"{run_dir}: the ledger is empty (run `curate run` first)")
    for shard in shards:
        part = _borderline_of(pq.read_table(shard))
        release_memory(collect=False)
        yield part


def _borderline_of(ledger: pa.Table) -> pa.Table:
    """A shard's traces flagged for review, copied out (a polars filter would keep views
    into the whole shard's text alive)."""
    if "borderline" not in ledger.column_names:
        return ledger.slice(0, 0)
    flagged = pc.greater(pc.list_value_length(ledger["borderline"]), 0)
    return ledger.filter(pc.and_(pc.is_valid(ledger["sample_idx"]), flagged))


def to_record(
    row: dict[str, Any], task: dict[str, Any], questions: dict[str, str]
) -> dict[str, Any]:
    """One trace as the body of Argilla's bulk upsert, keyed by its stable record id."""
    why = ", ".join(row.get("borderline") or [])
    values = {
        "problem": row.get("problem"),
        "reference": row.get("reference") or "(none)",
        "reasoning": row.get("reasoning") or "(none)",
        "completion": row.get("completion") or "(none)",
        "verdict_text": f"{row.get('verdict')} ({row.get('verdict_reason') or 'no reason'})",
        "why": why,
    }
    contamination = row.get("contamination") or {}
    meta = {
        "source": row.get("source"),
        "pass_rate": row.get("pass_rate"),
        "borderline": (row.get("borderline") or ["-"])[0],
        "verdict": row.get("verdict"),
        "round": row.get("round"),
        "benchmark": contamination.get("benchmark") if contamination else None,
    }
    label = VERDICT_LABEL.get(str(row.get("verdict")))
    agent = re.sub(r"[^a-zA-Z0-9\-_:./ ]", "-", f"curate {row.get('verifier') or 'verifier'}")
    suggestion: dict[str, Any] = {
        "question_id": questions.get("correct"),
        "value": label,
        "agent": agent,
    }
    if row.get("agreement") is not None:
        suggestion["score"] = row["agreement"]
    return {
        "external_id": record_id(row),
        "fields": {name: str(values.get(name) or "-") for name in task["fields"]},
        "metadata": {k: v for k, v in meta.items() if k in task["metadata"] and v is not None},
        "suggestions": [suggestion] if label and suggestion["question_id"] else [],
    }


def dataset_name(run_dir: Path, task: dict[str, Any]) -> str:
    """The name the run's first push chose (kept in RUN/review/sent.json, so a moved run
    finds its dataset), else the task's and the run's names with a hash of the run's path
    (two loops' `round-1` are two datasets)."""
    sent = RunStore(run_dir).review / "sent.json"
    if sent.exists():
        with contextlib.suppress(ValueError, KeyError, OSError):
            return str(json.loads(sent.read_text(encoding="utf-8"))["dataset"])
    where = stable_hash(str(run_dir.resolve()), size=6)
    return f"{task['name']}-{run_dir.resolve().name}-{where}"


def dataset_for(
    connection: Connection,
    run_dir: Path,
    task: dict[str, Any],
    workspace: str | None = None,
    name: str | None = None,
) -> Any:
    """The run's review dataset (or the one named), created with the task's settings when
    missing."""
    import argilla as rg

    client = rg.Argilla(api_url=connection.url, api_key=connection.key)
    name = name or dataset_name(run_dir, task)
    workspace = workspace or os.environ.get("ARGILLA_WORKSPACE") or local.WORKSPACE
    with warnings.catch_warnings():  # "not found" is the normal first push
        warnings.simplefilter("ignore")
        if client.workspaces(name=workspace) is None:
            raise ReviewError(missing_workspace(connection, workspace, client))
        dataset = client.datasets(name=name, workspace=workspace)
    if dataset is None:
        dataset = rg.Dataset(name=name, workspace=workspace, settings=settings(task), client=client)
        dataset.create()
    return dataset


def missing_workspace(connection: Connection, workspace: str, client: Any) -> str:
    """What to say when the server has no such workspace (or the key cannot use it)."""
    names = sorted(item.name for item in client.workspaces)
    has = f"the key's workspaces: {', '.join(names)}" if names else "the key has no workspace"
    return (
        f"Argilla at {connection.url} has no workspace '{workspace}' ({has}); create it as the "
        f'owner (python -c "import argilla as rg; rg.Argilla(api_url=..., api_key=...); '
        f"rg.Workspace(name='{workspace}').create()\") or name one with review.workspace or "
        "ARGILLA_WORKSPACE"
    )


def existing_ids(connection: Connection, dataset_id: str) -> set[str]:
    return {item["external_id"] for item in list_records(connection, dataset_id, False)}


def list_records(connection: Connection, dataset_id: str, responses: bool) -> list[dict[str, Any]]:
    """Every record of a dataset, paged in database order (stable while reviewers work)."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": PAGE, "include": ["responses"] if responses else []}
    while True:
        params["offset"] = len(found)
        answer = _request(connection, "GET", f"datasets/{dataset_id}/records", params=params)
        _check(answer, "list records")
        items = answer.json()["items"]
        found += items
        if len(items) < PAGE:
            return found


def question_ids(connection: Connection, dataset_id: str) -> dict[str, str]:
    answer = _request(connection, "GET", f"datasets/{dataset_id}/questions")
    _check(answer, "list questions")
    return {item["name"]: item["id"] for item in answer.json()["items"]}


def upsert(connection: Connection, dataset_id: str, items: list[dict[str, Any]]) -> None:
    """One batch through the bulk endpoint: records are matched by external id, so a batch
    sent twice (a reply lost to a crash) updates them rather than adding copies."""
    answer = _request(
        connection, "PUT", f"datasets/{dataset_id}/records/bulk", json={"items": items}
    )
    _check(answer, "add records")


def _request(connection: Connection, method: str, path: str, **options: Any) -> Any:
    import httpx

    try:
        return httpx.request(
            method,
            f"{connection.url}/api/v1/{path}",
            headers=connection.headers(),
            timeout=120,
            **options,
        )
    except httpx.TransportError as exc:
        raise ReviewError(f"cannot reach Argilla at {connection.url} ({exc})") from None


def _check(answer: Any, what: str) -> None:
    if answer.status_code in (401, 403):
        raise ReviewError(f"Argilla refused the key ({what}: HTTP {answer.status_code})")
    if answer.status_code >= 400:
        raise ReviewError(f"Argilla {what}: HTTP {answer.status_code} {answer.text[:200]}")


@dataclass
class Session:
    """What push, pull and status share: the task, the checked connection, the dataset."""

    task: dict[str, Any]
    connection: Connection
    dataset_id: str
    dataset_name: str


def open_session(run_dir: Path, task_path: Path | None = None, name: str | None = None) -> Session:
    """The run's review dataset (or the one named: the audit's), ready to use."""
    try:
        import argilla  # noqa: F401
    except ImportError:
        raise ReviewError("review needs the Argilla client: pip install 'curate[review]'") from None
    config = review_config(run_dir)
    task = load_task(task_path or (Path(config.task) if config.task else None))
    connection = connect(config)
    dataset = _guarded(
        lambda: dataset_for(connection, run_dir, task, config.workspace, name), connection
    )
    return Session(task, connection, str(dataset.id), str(dataset.name))


def push(run_dir: Path, task_path: Path | None = None) -> dict[str, int]:
    """Send the run's borderline traces that are not there yet; returns counts. Each batch
    is recorded in RUN/review/sent.json as soon as the server has it."""
    rows = borderline_rows(run_dir)
    session = open_session(run_dir, task_path)
    have = existing_ids(session.connection, session.dataset_id)
    new = [row for row in rows.iter_rows(named=True) if record_id(row) not in have]
    questions = question_ids(session.connection, session.dataset_id)
    for start in range(0, len(new), PUSH_BATCH):
        batch = new[start : start + PUSH_BATCH]
        upsert(
            session.connection,
            session.dataset_id,
            [to_record(r, session.task, questions) for r in batch],
        )
        have |= {record_id(r) for r in batch}
        _write_sent(run_dir, session.dataset_name, have)
    _write_sent(run_dir, session.dataset_name, have)
    return {"borderline": rows.height, "new": len(new), "already_there": rows.height - len(new)}


def _write_sent(run_dir: Path, dataset: str, records: set[str]) -> None:
    folder = RunStore(run_dir).review
    folder.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"dataset": dataset, "records": sorted(records)})
    (folder / "sent.json").write_text(body, encoding="utf-8")


def _guarded(call: Any, connection: Connection) -> Any:
    """An SDK call, its connection failures turned into one clear error."""
    import httpx

    try:
        return call()
    except httpx.TransportError as exc:
        raise ReviewError(f"cannot reach Argilla at {connection.url} ({exc})") from None
    except Exception as exc:  # the SDK's exception tree: one line, never a traceback
        text = str(exc)
        if "401" in text or "Unauthorized" in text or "403" in text:
            raise ReviewError(
                f"Argilla at {connection.url} refused the key ({connection.key_name})"
            ) from None
        raise ReviewError(f"Argilla: {text[:300]}") from None


def usernames(connection: Connection) -> dict[str, str]:
    answer = _request(connection, "GET", "users")
    _check(answer, "list users")
    return {user["id"]: user["username"] for user in answer.json()["items"]}


def answers_of(record: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for response in record.get("responses") or []:
        values = response.get("values") or {}  # a discarded response may have none
        out.append(
            {
                "reviewer": names.get(response["user_id"], response["user_id"]),
                "status": response["status"],
                **{name: (value or {}).get("value") for name, value in values.items()},
            }
        )
    return out


def resolve(answers: list[dict[str, Any]], rule: str, overlap: int) -> tuple[str, str | None]:
    """(accept | reject | undecided, corrected reference) from the submitted answers."""
    submitted = [a for a in answers if a["status"] == "submitted"]
    votes = Counter(a.get("correct") for a in submitted)
    corrections = Counter(
        str(a["corrected_reference"]).strip() for a in submitted if a.get("corrected_reference")
    )
    corrected = corrections.most_common(1)[0][0] if corrections else None
    if rule == "any_incorrect" and votes["incorrect"]:
        return "reject", corrected
    if len(submitted) < overlap:
        return "undecided", corrected
    if rule == "unanimous":
        if set(votes) == {"correct"} and votes["correct"] == len(submitted):
            return "accept", corrected
        if set(votes) == {"incorrect"} and votes["incorrect"] == len(submitted):
            return "reject", corrected
        return "undecided", corrected
    if votes["correct"] > votes["incorrect"]:
        return "accept", corrected
    if votes["incorrect"] > votes["correct"]:
        return "reject", corrected
    return "undecided", corrected


def reasoning_score(answers: list[dict[str, Any]]) -> float | None:
    """The mean rating submitted reviewers gave the reasoning (None when nobody rated it)."""
    ratings = [
        float(a["reasoning_sound"])
        for a in answers
        if a["status"] == "submitted" and a.get("reasoning_sound") is not None
    ]
    return sum(ratings) / len(ratings) if ratings else None


def decide(answers: list[dict[str, Any]], task: dict[str, Any]) -> dict[str, Any]:
    """A record's decision: the task's resolve rule over the answers, then its reasoning
    floor (a right answer reached by reasoning rated below the floor is a lucky hit)."""
    decision, corrected = resolve(answers, task["resolve"], int(task["overlap"]))
    score = reasoning_score(answers)
    floor = task.get("reasoning_floor")
    reason = "rejected" if decision == "reject" else None
    if decision == "accept" and floor is not None and score is not None and score < floor:
        decision, reason = "reject", "reasoning_unsound"
    return {
        "decision": decision,
        "reason": reason,
        "corrected_reference": corrected,
        "reasoning_score": score,
    }


def pull(run_dir: Path, task_path: Path | None = None) -> dict[str, int]:
    """Read every answer back, resolve each record, write RUN/review/decisions.jsonl."""
    session = open_session(run_dir, task_path)
    names = usernames(session.connection)
    lines: list[str] = []
    counts: Counter[str] = Counter()
    for record in list_records(session.connection, session.dataset_id, True):
        answers = answers_of(record, names)
        decided = decide(answers, session.task)
        counts[decided["decision"]] += 1
        counts["corrected_reference"] += decided["corrected_reference"] is not None
        counts["reasoning_unsound"] += decided["reason"] == "reasoning_unsound"
        lines.append(json.dumps({"record": record["external_id"], **decided, "answers": answers}))
    folder = RunStore(run_dir).review
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "decisions.jsonl").write_text("".join(line + "\n" for line in lines))
    return {"records": len(lines), **counts}


def status(run_dir: Path, task_path: Path | None = None) -> dict[str, Any]:
    """Progress per reviewer and per borderline reason."""
    session = open_session(run_dir, task_path)
    names = usernames(session.connection)
    per_reviewer: dict[str, Counter[str]] = {}
    per_reason: dict[str, Counter[str]] = {}
    for record in list_records(session.connection, session.dataset_id, True):
        reason = str((record.get("metadata") or {}).get("borderline", "-"))
        answers = answers_of(record, names)
        per_reason.setdefault(reason, Counter())["records"] += 1
        done = sum(a["status"] == "submitted" for a in answers) >= int(session.task["overlap"])
        per_reason[reason]["complete"] += done
        for answer in answers:
            per_reviewer.setdefault(answer["reviewer"], Counter())[answer["status"]] += 1
    return {"reviewers": per_reviewer, "reasons": per_reason}


def write_borderline(run_dir: Path) -> int:
    """RUN/review/borderline.jsonl: the traces a person should look at, for those without an
    Argilla server; returns how many there are. Written a ledger shard at a time."""
    folder = RunStore(run_dir).review
    target = folder / "borderline.jsonl"
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    partial.unlink(missing_ok=True)
    count = 0
    for part in borderline_parts(run_dir):
        if not part.num_rows:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        rows = part.select([c for c in JSONL_COLUMNS if c in part.column_names]).to_pylist()
        with partial.open("a", encoding="utf-8") as out:
            out.writelines(
                json.dumps({"record": record_id(row), **{c: row.get(c) for c in JSONL_COLUMNS}})
                + "\n"
                for row in rows
            )
        count += len(rows)
    if count:
        os.replace(partial, target)
    return count
